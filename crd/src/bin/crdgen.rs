//! Prints the MediaServerCluster CRD, or writes it to a file: `crdgen [PATH]`.
//! `deploy/crd.yaml` is this output, committed; a test fails when it is stale.

use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match ephyra_crd::crd_yaml() {
        Ok(yaml) => yaml,
        Err(e) => {
            eprintln!("crdgen: cannot render the CRD: {e}");
            return ExitCode::FAILURE;
        }
    };
    match std::env::args().nth(1) {
        Some(path) => match std::fs::write(&path, yaml) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("crdgen: cannot write {path}: {e}");
                ExitCode::FAILURE
            }
        },
        None => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
    }
}

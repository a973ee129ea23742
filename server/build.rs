//! Builds `native/ffprobe_fork_server.c` into the shared library that scans preload into
//! ffprobe (`src/scan/prober.rs` embeds it). On a target other than Linux with glibc the
//! library is left empty and scans start one ffprobe per file.

use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "native/ffprobe_fork_server.c";

fn main() {
    println!("cargo::rerun-if-changed={SOURCE}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("ffprobe_fork_server.so");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os != "linux" || target_env != "gnu" {
        std::fs::write(&out, []).expect("OUT_DIR is writable");
        return;
    }
    let compiler = cc::Build::new().opt_level(2).pic(true).get_compiler();
    let mut command: Command = compiler.to_command();
    command
        .args(["-shared", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&out)
        .arg(SOURCE)
        .arg("-ldl");
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler for {SOURCE}: {e}"));
    assert!(
        status.success(),
        "the C compiler failed on {SOURCE}: {status}"
    );
}

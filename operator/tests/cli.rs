//! The `ephyra-operator` binary as a person runs it: `render -f` on every example prints YAML
//! that `kubernetes-validate --strict` accepts for Kubernetes 1.33 (Traefik kinds, which it has
//! no schema for, are checked against Traefik's own schemas by the library's tests), and bad
//! input ends with exit code 2 and a one-line reason.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator crate sits in the workspace")
        .to_path_buf()
}

fn operator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ephyra-operator"))
}

#[test]
fn render_prints_objects_that_pass_kubernetes_validate_for_every_example() {
    let tool = repo().join("build/venv/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing: run scripts/ensure-deps.sh (or `make test`); this check never skips",
        tool.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut examples: Vec<PathBuf> = std::fs::read_dir(repo().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 2, "deploy/examples holds the examples");
    for example in examples {
        let out = operator()
            .args(["render", "-f"])
            .arg(&example)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "render -f {} failed: {}",
            example.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let yaml = String::from_utf8(out.stdout).unwrap();
        assert!(yaml.contains("kind: StatefulSet"), "{yaml}");
        let file = dir.path().join(example.file_name().unwrap());
        std::fs::write(&file, &yaml).unwrap();
        let check = Command::new(&tool)
            .args(["--strict", "--kubernetes-version", "1.33"])
            .arg(&file)
            .output()
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        assert!(
            check.status.success(),
            "kubernetes-validate refused the render of {}:\n{report}",
            example.display()
        );
        for line in report.lines().filter(|l| l.starts_with("WARN")) {
            // Custom resources kubernetes-validate has no schema for (checked against their own
            // CRD schemas in the operator's unit tests).
            assert!(
                line.contains("traefik.io/v1alpha1") || line.contains("postgresql.cnpg.io/v1"),
                "unexpected warning for {}: {line}",
                example.display()
            );
        }
    }
}

#[test]
fn render_refuses_an_invalid_cluster_with_exit_code_2_and_the_field_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: ephyra.io/v1alpha1\nkind: MediaServerCluster\nmetadata:\n  name: bad\n\
         spec:\n  media:\n    nfs: {server: nas, path: relative/path}\n",
    )
    .unwrap();
    let out = operator()
        .args(["render", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("spec.media.nfs.path"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn render_of_a_missing_file_exits_2() {
    let out = operator()
        .args(["render", "-f", "/nonexistent/cluster.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

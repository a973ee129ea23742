//! One version everywhere: the workspace version (`[workspace.package] version` in Cargo.toml)
//! is the tag of both images as `make images` builds them, the CRD's default server image, the
//! operator image of deploy/operator.yaml, and every image reference in deploy/, docs/ and the
//! README. A release bumps the one number; this test names whatever was left behind.

use std::path::{Path, PathBuf};
use std::process::Command;

use ephyra_crd::{DEFAULT_SERVER_IMAGE, IMAGE_REGISTRY};
use serde_json::Value;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator crate sits in the workspace")
        .to_owned()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_root().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

fn image(name: &str) -> String {
    format!("{IMAGE_REGISTRY}/{name}:{VERSION}")
}

#[test]
fn the_crate_version_is_the_workspace_version() {
    let manifest = read("Cargo.toml");
    let section = manifest
        .split("[workspace.package]")
        .nth(1)
        .expect("a [workspace.package] section");
    let version = section
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("a version in [workspace.package]")
        .trim_matches('"');
    assert_eq!(version, VERSION);
}

#[test]
fn the_crd_defaults_to_the_server_image_of_this_version() {
    assert_eq!(DEFAULT_SERVER_IMAGE, image("ephyra-server"));
    assert!(
        read("deploy/crd.yaml").contains(&format!("default: {DEFAULT_SERVER_IMAGE}\n")),
        "deploy/crd.yaml is stale: run make crd"
    );
}

#[test]
fn deploy_runs_the_operator_image_of_this_version() {
    let deployment: Value = serde_saphyr::from_str(&read("deploy/operator.yaml")).unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        image("ephyra-operator")
    );
}

#[test]
fn make_images_tags_the_images_with_this_version() {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/images.sh"))
        .arg("names")
        .env_remove("PROFILE")
        .env_remove("IMAGE_REGISTRY")
        .output()
        .expect("bash runs scripts/images.sh");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("{}\n{}\n", image("ephyra-server"), image("ephyra-operator"))
    );
    assert!(
        read(".github/workflows/release.yml").contains("scripts/images.sh version"),
        "the release workflow must take its tag from the workspace version"
    );
}

/// Every `<registry>/ephyra-<name>:<tag>` in the files a person copies from.
fn references(text: &str) -> Vec<String> {
    let prefix = format!("{IMAGE_REGISTRY}/ephyra-");
    text.match_indices(&prefix)
        .map(|(at, _)| {
            text[at..]
                .split(|c: char| c.is_whitespace() || "\"'`),]".contains(c))
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "md")
        {
            out.push(path);
        }
    }
}

#[test]
fn every_image_reference_in_deploy_docs_and_readme_names_this_version() {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    files_under(&root.join("deploy"), &mut files);
    files_under(&root.join("docs"), &mut files);
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for reference in references(&text) {
            checked += 1;
            let tag = reference.rsplit_once(':').map(|(_, t)| t);
            assert!(
                // `-dev`: the tag of images made from debug binaries (`make test`).
                tag.is_none_or(|t| t == VERSION
                    || t == format!("{VERSION}-dev")
                    || t == "<version>"),
                "{} names {reference}, not version {VERSION}",
                file.display()
            );
        }
    }
    assert!(
        checked >= 3,
        "the CRD, operator.yaml and an example at least"
    );
}

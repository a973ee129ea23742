//! Every object rendered for every example in `deploy/examples/` (and for fixtures that cover
//! the other branches: NFS config volume, GPUs, external services), plus the operator's own
//! install manifests in `deploy/`, validated against the official schemas:
//!
//! - Kubernetes objects with `kubernetes-validate --strict --kubernetes-version 1.33`, from the
//!   virtualenv `scripts/ensure-deps.sh` makes at `build/venv/bin/kubernetes-validate`. A
//!   missing tool fails the test with the command that installs it; it is never skipped.
//! - IngressRoute and Middleware with the `jsonschema` crate against Traefik's CRD schemas in
//!   `<repo>/../shared/schemas/traefik/` (reference data, read in place, not copied).
//! - CloudNativePG's Cluster likewise against its CRD schema in
//!   `<repo>/../shared/schemas/cnpg/` ([`assert_matches_cnpg_schema`], also used by the
//!   builder's own tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use ephyra_crd::MediaServerCluster;
use serde_json::Value;

use crate::render;
use crate::testing::Fixture;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator crate sits in the workspace")
        .to_path_buf()
}

fn kubernetes_validate() -> PathBuf {
    let tool = repo().join("build/venv/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing. Run `scripts/ensure-deps.sh` (or `make test`) to create the virtualenv \
         with the pinned kubernetes-validate; these schema checks never skip.",
        tool.display()
    );
    tool
}

fn examples() -> Vec<(String, MediaServerCluster)> {
    let dir = repo().join("deploy/examples");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let msc = render::parse(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), msc)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.iter().any(|(n, _)| n == "minimal.yaml")
            && out.iter().any(|(n, _)| n == "homelab.yaml"),
        "deploy/examples must hold minimal.yaml and homelab.yaml, found {:?}",
        out.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    out
}

/// The examples, and fixtures that reach the branches the examples do not.
fn clusters() -> Vec<(String, MediaServerCluster)> {
    let mut all = examples();
    all.push((
        "fixture: nfs config, intel gpu, preferred spread".to_owned(),
        MediaServerCluster::test()
            .nfs_config()
            .intel_gpu(44)
            .unstored(),
    ));
    all.push((
        "fixture: nvidia, external services, tls secret, one replica".to_owned(),
        MediaServerCluster::test()
            .nvidia_gpu()
            .external_db()
            .external_redis()
            .tls_secret("jelly-tls")
            .replicas(1)
            .unstored(),
    ));
    all.push((
        "fixture: stored (owner references), no ingress".to_owned(),
        MediaServerCluster::test().without_ingress(),
    ));
    let mut cnpg = MediaServerCluster::test().cloud_native_pg(3);
    if let Some(pg) = cnpg.spec.database.cloud_native_pg.as_mut() {
        pg.synchronous_replicas = Some(1);
        pg.retain_on_delete = false;
        pg.storage.storage_class_name = Some("fast-ssd".to_owned());
        pg.image_name = Some("ghcr.io/cloudnative-pg/postgresql:17.6".to_owned());
        pg.parameters
            .insert("max_connections".to_owned(), "200".to_owned());
        pg.resources = Some(crate::build::resources(
            &[("cpu", "500m"), ("memory", "1Gi")],
            &[("memory", "2Gi")],
        ));
    }
    all.push((
        "fixture: CloudNativePG with every option, owned".to_owned(),
        cnpg,
    ));
    all
}

fn is_traefik(object: &Value) -> bool {
    object["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("traefik.io/"))
}

/// Objects of a CRD (Traefik, CloudNativePG): kubernetes-validate knows only built-in kinds.
fn is_custom(object: &Value) -> bool {
    is_traefik(object) || is_cnpg(object)
}

fn is_cnpg(object: &Value) -> bool {
    object["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("postgresql.cnpg.io/"))
}

/// `openAPIV3Schema` of version `version` of the CRD in `shared/schemas/<dir>/<file>`:
/// reference data beside the repository, so the check never skips.
fn crd_schema(dir: &str, file: &str, version: &str) -> Value {
    let path = repo().join("../shared/schemas").join(dir).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the CRD schema {}: {e}. It is reference data beside the repository \
             (shared/schemas/{dir}); the check never skips.",
            path.display()
        )
    });
    let crd: Value = serde_saphyr::from_str(&text).unwrap();
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == version)
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .unwrap_or_else(|| panic!("{} does not serve {version}", path.display()))
}

/// `openAPIV3Schema` of CloudNativePG's Cluster CRD, version v1.
fn cnpg_schema() -> Value {
    crd_schema("cnpg", "postgresql.cnpg.io_clusters.yaml", "v1")
}

/// Panics, naming every error, unless `cluster` matches CloudNativePG's Cluster schema.
pub(crate) fn assert_matches_cnpg_schema(label: &str, cluster: &Value) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| jsonschema::validator_for(&cnpg_schema()).unwrap());
    let errors: Vec<String> = validator
        .iter_errors(cluster)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{label}: Cluster {} does not match CloudNativePG's schema:\n{}",
        cluster["metadata"]["name"],
        errors.join("\n")
    );
}

fn run_kubernetes_validate(label: &str, file: &Path) {
    let out = Command::new(kubernetes_validate())
        .args(["--strict", "--kubernetes-version", "1.33"])
        .arg(file)
        .output()
        .expect("kubernetes-validate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate refused the objects of {label}:\n{text}"
    );
    assert!(
        !text.to_lowercase().contains("warn"),
        "kubernetes-validate warned about {label}:\n{text}"
    );
    assert!(
        text.to_lowercase().contains("passed"),
        "kubernetes-validate did not report a pass for {label}:\n{text}"
    );
}

#[test]
fn every_rendered_kubernetes_object_passes_kubernetes_validate_strict_for_1_33() {
    let dir = tempfile::tempdir().unwrap();
    for (label, msc) in clusters() {
        let objects = render::objects(&msc).unwrap_or_else(|e| panic!("{label}: {e}"));
        let mut text = String::new();
        let mut count = 0;
        for object in objects.iter().filter(|o| !is_custom(o)) {
            text.push_str("---\n");
            text.push_str(&serde_saphyr::to_string(object).unwrap());
            count += 1;
        }
        assert!(count >= 8, "{label} rendered only {count} objects");
        let file = dir.path().join("objects.yaml");
        std::fs::write(&file, &text).unwrap();
        run_kubernetes_validate(&label, &file);
    }
}

#[test]
fn the_render_command_output_passes_kubernetes_validate_for_each_example() {
    // The same check on exactly what `ephyra-operator render -f` prints (header comment,
    // document separators, Traefik objects filtered out by kind afterwards).
    let dir = tempfile::tempdir().unwrap();
    for (name, _) in examples() {
        let path = repo().join("deploy/examples").join(&name);
        let text = std::fs::read_to_string(&path).unwrap();
        let rendered = render::render(&text, &name).unwrap();
        let kubernetes_only: Vec<&str> = rendered
            .split("\n---\n")
            .filter(|doc| {
                !doc.contains("apiVersion: traefik.io/")
                    && !doc.contains("apiVersion: postgresql.cnpg.io/")
            })
            .collect();
        let file = dir.path().join(&name);
        std::fs::write(&file, kubernetes_only.join("\n---\n")).unwrap();
        run_kubernetes_validate(&name, &file);
    }
}

#[test]
fn the_install_manifests_in_deploy_pass_kubernetes_validate_strict_for_1_33() {
    for name in [
        "namespace.yaml",
        "rbac.yaml",
        "operator.yaml",
        "namespaced/rbac.yaml",
        "namespaced/operator.yaml",
    ] {
        let path = repo().join("deploy").join(name);
        assert!(path.exists(), "{} is missing", path.display());
        run_kubernetes_validate(name, &path);
    }
}

/// `spec.versions[v1alpha1].schema.openAPIV3Schema` of a Traefik CRD.
fn traefik_schema(file: &str) -> Value {
    crd_schema("traefik", file, "v1alpha1")
}

#[test]
fn every_ingress_route_and_middleware_matches_traefiks_crd_schemas() {
    let routes =
        jsonschema::validator_for(&traefik_schema("traefik.io_ingressroutes.yaml")).unwrap();
    let middlewares =
        jsonschema::validator_for(&traefik_schema("traefik.io_middlewares.yaml")).unwrap();
    let mut checked = 0;
    for (label, msc) in clusters() {
        for object in render::objects(&msc)
            .unwrap()
            .iter()
            .filter(|o| is_traefik(o))
        {
            let validator = match object["kind"].as_str() {
                Some("IngressRoute") => &routes,
                Some("Middleware") => &middlewares,
                other => panic!("unexpected Traefik kind {other:?}"),
            };
            let errors: Vec<String> = validator
                .iter_errors(object)
                .map(|e| format!("{} at {}", e, e.instance_path))
                .collect();
            assert!(
                errors.is_empty(),
                "{label}: {} {} does not match Traefik's schema:\n{}",
                object["kind"],
                object["metadata"]["name"],
                errors.join("\n")
            );
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} Traefik objects were checked");
}

#[test]
fn every_cloudnativepg_cluster_matches_cnpgs_crd_schema() {
    let mut checked = 0;
    for (label, msc) in clusters() {
        for object in render::objects(&msc).unwrap().iter().filter(|o| is_cnpg(o)) {
            assert_eq!(object["kind"], "Cluster", "{label}");
            assert_matches_cnpg_schema(&label, object);
            checked += 1;
        }
    }
    // deploy/examples/cloudnativepg.yaml and the fixture with every option.
    assert!(
        checked >= 2,
        "only {checked} CloudNativePG Clusters were checked"
    );
}

#[test]
fn the_cnpg_schema_check_catches_a_misspelt_field_and_a_bad_value() {
    // Guards the check: CloudNativePG's schema must refuse what CloudNativePG would refuse.
    let cluster = render::objects(&MediaServerCluster::test().cloud_native_pg(3).unstored())
        .unwrap()
        .into_iter()
        .find(is_cnpg)
        .unwrap();
    let validator = jsonschema::validator_for(&cnpg_schema()).unwrap();
    assert!(validator.is_valid(&cluster));
    let mut bad = cluster.clone();
    bad["spec"]["primaryUpdateMethod"] = Value::from("sideways");
    assert!(!validator.is_valid(&bad));
    let mut bad = cluster;
    bad["spec"]["instances"] = Value::from(0);
    assert!(!validator.is_valid(&bad));
}

#[test]
fn the_traefik_schema_check_catches_a_misspelt_sticky_field() {
    // Guards the check itself: Traefik's schema must reject what Traefik would ignore.
    let routes =
        jsonschema::validator_for(&traefik_schema("traefik.io_ingressroutes.yaml")).unwrap();
    let mut route = render::objects(&MediaServerCluster::test().unstored())
        .unwrap()
        .into_iter()
        .find(|o| o["kind"] == "IngressRoute")
        .unwrap();
    route["spec"]["routes"][0]["services"][0]["sticky"]["cookie"]["sameSite"] =
        Value::from("sideways");
    assert!(!routes.is_valid(&route));
}

#[test]
fn the_namespaced_operator_manifest_differs_from_the_cluster_wide_one_by_its_namespaces_only() {
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(repo().join("deploy").join(name)).unwrap();
        serde_saphyr::from_str(&text).unwrap()
    };
    let mut namespaced = read("namespaced/operator.yaml");
    let env = namespaced["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array_mut()
        .unwrap();
    let before = env.len();
    env.retain(|v| v["name"] != "EPHYRA_OPERATOR_WATCH_NAMESPACES");
    assert_eq!(
        before,
        env.len() + 1,
        "the namespaced operator lists its namespaces"
    );
    assert_eq!(namespaced, read("operator.yaml"));
}

//! Checks of the CustomResourceDefinition as the API server will see it: the committed YAML is
//! current, it is a valid CRD for Kubernetes 1.33, the examples are accepted, and invalid specs
//! are refused with the message a person will read.
//!
//! Admission is reproduced offline the way the API server does it: schema defaults first, then
//! the OpenAPI schema, then the CEL rules (`x-kubernetes-validations`, evaluated by kube-cel).

use std::path::{Path, PathBuf};
use std::process::Command;

use ephyra_crd::MediaServerCluster;
use kube::CustomResourceExt;
use serde_json::{Value, json};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn open_api_schema() -> Value {
    let crd = serde_json::to_value(MediaServerCluster::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// What the API server answers to a create: `Ok(defaulted object)` or every error message.
fn admit(object: &Value) -> Result<Value, Vec<String>> {
    let schema = open_api_schema();
    let defaulted = kube_cel::apply_defaults(&schema, object);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut errors: Vec<String> = validator
        .iter_errors(&defaulted)
        .map(|e| {
            let path = e
                .instance_path
                .to_string()
                .trim_start_matches('/')
                .replace('/', ".");
            format!("{path}: {e}")
        })
        .collect();
    if let Err(cel) = kube_cel::Validator::new().validate(&schema, &defaulted, None) {
        errors.extend(
            cel.into_vec()
                .into_iter()
                .map(|e| format!("{}: {}", e.field_path, e.message)),
        );
    }
    if errors.is_empty() {
        Ok(defaulted)
    } else {
        Err(errors)
    }
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn minimal() -> Value {
    json!({
        "apiVersion": "ephyra.io/v1alpha1",
        "kind": "MediaServerCluster",
        "metadata": {"name": "den", "namespace": "media"},
        "spec": {
            "media": {"nfs": {"server": "nas.lan", "path": "/export/media"}},
            "ingress": {"host": "media.example.com"}
        }
    })
}

/// `minimal()` with `patch` merged into `spec` (JSON merge patch semantics, `null` deletes).
fn with_spec(patch: Value) -> Value {
    fn merge(target: &mut Value, patch: &Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            (t, Value::Object(p)) => {
                *t = Value::Object(Default::default());
                merge(t, &Value::Object(p.clone()));
            }
            (t, p) => *t = p.clone(),
        }
    }
    let mut object = minimal();
    merge(&mut object["spec"], &patch);
    object
}

#[test]
fn deploy_crd_yaml_is_what_crdgen_writes() {
    let committed = std::fs::read_to_string(workspace().join("deploy/crd.yaml")).unwrap();
    let generated = ephyra_crd::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "deploy/crd.yaml is stale: run `cargo run -p ephyra-crd --bin crdgen deploy/crd.yaml` and commit it"
    );
}

#[test]
fn crd_passes_kubernetes_validate_strict_for_1_33() {
    let tool = workspace().join("build/venv/bin/kubernetes-validate");
    assert!(
        tool.exists(),
        "{} is missing: run `make test` (scripts/ensure-deps.sh creates it)",
        tool.display()
    );
    let out = Command::new(&tool)
        .args(["--strict", "--kubernetes-version", "1.33"])
        .arg(workspace().join("deploy/crd.yaml"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "kubernetes-validate refused deploy/crd.yaml:\n{text}"
    );
    assert!(
        text.to_lowercase().contains("passed"),
        "kubernetes-validate did not report a pass:\n{text}"
    );
}

#[test]
fn every_example_is_admitted_and_reads_back_as_a_typed_cluster() {
    let dir = workspace().join("deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let object = read_yaml(&path);
            let admitted = admit(&object)
                .unwrap_or_else(|errors| panic!("{} refused: {errors:#?}", path.display()));
            let typed: MediaServerCluster = serde_json::from_value(admitted).unwrap();
            assert!(typed.spec.replicas >= 1);
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "expected at least the minimal and homelab examples, found {seen}"
    );
}

#[test]
fn a_minimal_cluster_gets_complete_defaults_from_the_schema() {
    let admitted = admit(&minimal()).unwrap();
    let spec = &admitted["spec"];
    assert_eq!(spec["replicas"], 2);
    assert_eq!(spec["database"]["managed"]["size"], "5Gi");
    assert_eq!(
        spec["redis"]["managed"]["image"],
        ephyra_crd::DEFAULT_REDIS_IMAGE
    );
    assert_eq!(spec["transcode"]["size"], "20Gi");
    assert_eq!(spec["ingress"]["stickyCookie"]["name"], "ephyra_affinity");
    assert_eq!(spec["ingress"]["stickyCookie"]["sameSite"], "lax");
    assert_eq!(spec["ingress"]["entryPoints"], json!(["websecure"]));
    assert_eq!(spec["hardwareAcceleration"]["kind"], "None");
    assert_eq!(spec["scheduling"]["spread"], "Preferred");
    assert_eq!(spec["disruptionBudget"]["minAvailable"], 1);
    assert_eq!(spec["media"]["libraries"][1]["kind"], "tvshows");
    // The API server's defaults and serde's defaults agree: a typed read of the raw minimal
    // object equals the typed read of the defaulted one.
    let raw: MediaServerCluster = serde_json::from_value(minimal()).unwrap();
    let defaulted: MediaServerCluster = serde_json::from_value(admitted).unwrap();
    assert_eq!(raw.spec, defaulted.spec);
}

#[test]
fn invalid_specs_are_refused_with_a_message_a_person_understands() {
    let table: Vec<(&str, Value, &str)> = vec![
        ("zero replicas", json!({"replicas": 0}), "spec.replicas"),
        (
            "too many replicas",
            json!({"replicas": 500}),
            "spec.replicas",
        ),
        (
            "two media sources",
            json!({"media": {"existingClaim": "library"}}),
            "media: set exactly one of nfs or existingClaim",
        ),
        (
            "no media source",
            json!({"media": {"nfs": null}}),
            "media: set exactly one of nfs or existingClaim",
        ),
        (
            "relative NFS path",
            json!({"media": {"nfs": {"path": "export/media"}}}),
            "nfs.path must be an absolute export path",
        ),
        (
            "managed and external database",
            json!({"database": {"managed": {}, "external": {"name": "pg"}}}),
            "database: set exactly one of managed, external or cloudNativePG",
        ),
        (
            "CloudNativePG without storage",
            json!({"database": {"cloudNativePG": {"instances": 3}}}),
            "\"storage\" is a required property",
        ),
        (
            "CloudNativePG with no instance",
            json!({"database": {"cloudNativePG": {"instances": 0, "storage": {"size": "1Gi"}}}}),
            "spec.database.cloudNativePG.instances",
        ),
        (
            "CloudNativePG together with an external database",
            json!({"database": {"cloudNativePG": {"storage": {"size": "1Gi"}}, "external": {"name": "pg"}}}),
            "cloudNativePG and external exclude each other",
        ),
        (
            "CloudNativePG storage of zero",
            json!({"database": {"cloudNativePG": {"storage": {"size": "0"}}}}),
            "database.cloudNativePG.storage.size must be a size",
        ),
        (
            "CloudNativePG with as many synchronous standbys as instances",
            json!({"database": {"cloudNativePG": {"instances": 2, "synchronousReplicas": 2, "storage": {"size": "1Gi"}}}}),
            "synchronousReplicas must be lower than instances",
        ),
        (
            "neither managed nor external redis",
            json!({"redis": {}}),
            "redis: set exactly one of managed or external",
        ),
        (
            "GPU count zero with Intel",
            json!({"hardwareAcceleration": {"kind": "Intel", "count": 0}}),
            "hardwareAcceleration.count must be at least 1",
        ),
        (
            "Intel resource on NVIDIA",
            json!({"hardwareAcceleration": {"kind": "Nvidia", "intelResource": "xe"}}),
            "intelResource applies only to kind Intel",
        ),
        (
            "unknown acceleration kind",
            json!({"hardwareAcceleration": {"kind": "Amd"}}),
            "spec.hardwareAcceleration.kind",
        ),
        (
            "host with upper case and a space",
            json!({"ingress": {"host": "Media Server.example.com"}}),
            "ingress.host must be a DNS name",
        ),
        (
            "host with a scheme",
            json!({"ingress": {"host": "https://media.example.com"}}),
            "ingress.host must be a DNS name",
        ),
        (
            "TLS secret and resolver",
            json!({"ingress": {"tls": {"secretName": "t", "certResolver": "le"}}}),
            "ingress.tls: set exactly one of secretName or certResolver",
        ),
        (
            "TLS with neither",
            json!({"ingress": {"tls": {}}}),
            "ingress.tls: set exactly one of secretName or certResolver",
        ),
        (
            "SameSite none without secure",
            json!({"ingress": {"stickyCookie": {"sameSite": "none", "secure": false}}}),
            "sameSite none requires secure",
        ),
        (
            "library path escaping the volume",
            json!({"media": {"libraries": [{"name": "x", "kind": "movies", "paths": ["../etc"]}]}}),
            "must not contain '..'",
        ),
        (
            "disruption budget blocking every drain",
            json!({"replicas": 2, "disruptionBudget": {"minAvailable": 2}}),
            "disruptionBudget.minAvailable must be lower than replicas",
        ),
        (
            "NFS config together with a storage class",
            json!({"config": {"nfs": {"server": "nas", "path": "/c"}, "storageClassName": "longhorn"}}),
            "config: use either nfs or storageClassName, not both",
        ),
        (
            "negative render group",
            json!({"hardwareAcceleration": {"kind": "Intel", "renderGroup": -5}}),
            "spec.hardwareAcceleration.renderGroup",
        ),
        (
            "initial administrator with an empty user name",
            json!({"server": {"initialAdmin": {"userName": ""}}}),
            "spec.server.initialAdmin.userName",
        ),
        (
            "initial administrator with a blank user name",
            json!({"server": {"initialAdmin": {"userName": "   "}}}),
            "initialAdmin.userName must not be blank",
        ),
        (
            "initial administrator with a padded user name",
            json!({"server": {"initialAdmin": {"userName": " admin"}}}),
            "initialAdmin.userName must not be blank or start or end with a space",
        ),
        (
            "initial administrator without a user name",
            json!({"server": {"initialAdmin": {"passwordSecret": {"name": "family-admin"}}}}),
            "userName",
        ),
        (
            "initial administrator password in a Secret with an invalid name",
            json!({"server": {"initialAdmin": {"userName": "admin", "passwordSecret": {"name": "Family Admin"}}}}),
            "spec.server.initialAdmin.passwordSecret.name",
        ),
        (
            "initial administrator password under an empty key",
            json!({"server": {"initialAdmin": {"userName": "admin", "passwordSecret": {"name": "family-admin", "key": ""}}}}),
            "spec.server.initialAdmin.passwordSecret.key",
        ),
        // Hostile input: refused at admission, before the operator sees it.
        (
            "empty NFS server",
            json!({"media": {"nfs": {"server": ""}}}),
            "spec.media.nfs.server",
        ),
        (
            "NFS server with a newline",
            json!({"media": {"nfs": {"server": "nas\nevil"}}}),
            "spec.media.nfs.server",
        ),
        (
            "NFS server with backticks",
            json!({"config": {"nfs": {"server": "nas`id`", "path": "/c"}}}),
            "spec.config.nfs.server",
        ),
        (
            "NFS path climbing out of the export",
            json!({"media": {"nfs": {"path": "/export/../../etc"}}}),
            "nfs.path must not contain '..' segments",
        ),
        (
            "NFS path with a NUL",
            json!({"media": {"nfs": {"path": "/export/\u{0}media"}}}),
            "spec.media.nfs.path",
        ),
        (
            "claim name reaching into another namespace",
            json!({"media": {"nfs": null, "existingClaim": "../kube-system/x"}}),
            "spec.media.existingClaim",
        ),
        (
            "database Secret name reaching into another namespace",
            json!({"database": {"managed": null, "external": {"name": "../kube-system/x"}}}),
            "spec.database.external.name",
        ),
        (
            "Redis Secret key with a slash",
            json!({"redis": {"managed": null, "external": {"name": "r", "key": "../k"}}}),
            "spec.redis.external.key",
        ),
        (
            "TLS Secret name with a slash",
            json!({"ingress": {"tls": {"secretName": "kube-system/tls"}}}),
            "spec.ingress.tls.secretName",
        ),
        (
            "storage class with a space",
            json!({"transcode": {"storageClassName": "fast disk"}}),
            "spec.transcode.storageClassName",
        ),
        (
            "transcode size that is not a quantity",
            json!({"transcode": {"size": "lots; rm -rf"}}),
            "transcode.size must be a size such as 20Gi",
        ),
        (
            "config size of zero",
            json!({"config": {"size": "0"}}),
            "config.size must be a size such as 20Gi",
        ),
        (
            "database size that is negative",
            json!({"database": {"managed": {"size": "-5Gi"}}}),
            "database.managed.size must be a size such as 20Gi",
        ),
        (
            "GPU count of 2^31-1",
            json!({"hardwareAcceleration": {"kind": "Nvidia", "count": 2147483647}}),
            "spec.hardwareAcceleration.count",
        ),
        (
            "replicas written as a string",
            json!({"replicas": "3"}),
            "spec.replicas",
        ),
    ];
    assert!(table.len() >= 12);
    for (what, patch, expected) in table {
        let errors = admit(&with_spec(patch))
            .err()
            .unwrap_or_else(|| panic!("{what}: was admitted"));
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{what}: expected a message containing {expected:?}, got {errors:#?}"
        );
    }
}

#[test]
fn status_members_and_conditions_are_lists_keyed_for_server_side_apply() {
    let schema = open_api_schema();
    let status = &schema["properties"]["status"]["properties"];
    assert_eq!(status["members"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        status["members"]["x-kubernetes-list-map-keys"],
        json!(["name"])
    );
    assert_eq!(status["conditions"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        status["conditions"]["x-kubernetes-list-map-keys"],
        json!(["type"])
    );
}

#[test]
fn scale_subresource_and_printer_columns_are_declared() {
    let crd = serde_json::to_value(MediaServerCluster::crd()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(
        version["subresources"]["scale"]["specReplicasPath"],
        ".spec.replicas"
    );
    assert_eq!(
        version["subresources"]["scale"]["statusReplicasPath"],
        ".status.replicas"
    );
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for name in ["Ready", "Replicas", "Leader", "URL", "Age"] {
        assert!(
            columns.contains(&name),
            "missing printer column {name}: {columns:?}"
        );
    }
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["msc"]));
}

#[test]
fn every_spec_field_is_documented_for_kubectl_explain() {
    fn walk(schema: &Value, path: &str, missing: &mut Vec<String>) {
        if let Some(props) = schema["properties"].as_object() {
            for (name, sub) in props {
                let here = format!("{path}.{name}");
                if sub["description"].as_str().is_none_or(str::is_empty) {
                    missing.push(here.clone());
                }
                walk(sub, &here, missing);
            }
        }
        if schema["items"].is_object() {
            walk(&schema["items"], &format!("{path}[]"), missing);
        }
    }
    let mut missing = Vec::new();
    walk(
        &open_api_schema()["properties"]["spec"],
        "spec",
        &mut missing,
    );
    walk(
        &open_api_schema()["properties"]["status"],
        "status",
        &mut missing,
    );
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

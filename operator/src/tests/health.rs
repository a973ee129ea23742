//! The status as GitOps tools read it, over statuses the operator really writes (against
//! `kube_fake`): Flux through kstatus's rules, restated here from `fluxcd/cli-utils`
//! `pkg/kstatus/status` (the order matters), and Argo CD through `deploy/argocd/health.lua` run
//! by Debian's `lua5.4` with only the libraries Argo CD opens for a health script. The Lua
//! script also passes its own cases, `deploy/argocd/health_test.yaml`, in Argo CD's format.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ephyra_crd::MediaServerCluster;
use ephyra_crd::conditions::types;
use ephyra_testsupport::kube_fake::FakeApi;
use serde_json::{Value, json};

use super::reconcile::{Harness, MSC_API};
use crate::testing::{Fixture, NAME, NS};

/// What kstatus computes for a resource, as Flux's `wait: true` and `healthChecks` use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KStatus {
    InProgress,
    Failed,
    Current,
    Terminating,
}

fn condition_status<'a>(obj: &'a Value, type_: &str) -> Option<&'a str> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?["status"]
        .as_str()
}

/// kstatus `Compute` for a custom resource: deletion, then a stale `observedGeneration`, then
/// `Reconciling`/`Stalled`, then `Ready`; a resource with none of them is Current.
fn kstatus(obj: &Value) -> KStatus {
    if !obj["metadata"]["deletionTimestamp"].is_null() {
        return KStatus::Terminating;
    }
    let observed = &obj["status"]["observedGeneration"];
    if !observed.is_null() && *observed != obj["metadata"]["generation"] {
        return KStatus::InProgress;
    }
    if condition_status(obj, "Reconciling") == Some("True") {
        return KStatus::InProgress;
    }
    if condition_status(obj, "Stalled") == Some("True") {
        return KStatus::Failed;
    }
    match condition_status(obj, "Ready") {
        Some("True") | None => KStatus::Current,
        Some(_) => KStatus::InProgress,
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the operator crate sits in the workspace")
        .to_owned()
}

/// A JSON value as a Lua table constructor (integers stay integers, as in Argo CD's VM).
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for byte in s.bytes() {
        match byte {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' '..=b'~' => out.push(char::from(byte)),
            other => out.push_str(&format!("\\{other:03}")),
        }
    }
    out.push('"');
    out
}

/// Runs deploy/argocd/health.lua on `obj` as Argo CD does without `useOpenLibs`: the script
/// sees `obj` and the base and table libraries only. Returns (status, message).
fn argo_health(obj: &Value) -> (String, String) {
    let harness = format!(
        r#"
local file = assert(io.open(arg[1]))
local source = file:read("a")
file:close()
local env = {{
  obj = {obj},
  ipairs = ipairs, pairs = pairs, next = next, select = select, type = type,
  tostring = tostring, tonumber = tonumber, error = error, pcall = pcall, table = table,
}}
local hs = assert(load(source, "=health.lua", "t", env))()
io.write(tostring(hs.status), "\n", tostring(hs.message))
"#,
        obj = lua_literal(obj)
    );
    let script = repo_root().join("deploy/argocd/health.lua");
    let mut child = Command::new("lua5.4")
        .arg("-")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run lua5.4 ({e}): install the Debian package lua5.4 \
                 (scripts/ensure-deps.sh does)"
            )
        });
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(harness.as_bytes())
        .expect("lua5.4 reads the harness");
    let output = child.wait_with_output().expect("lua5.4 runs");
    assert!(
        output.status.success(),
        "health.lua failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 output");
    let (status, message) = text.split_once('\n').expect("status and message");
    (status.to_owned(), message.to_owned())
}

fn stored_value(h: &Harness) -> Value {
    h.api
        .get(MSC_API, "MediaServerCluster", NS, NAME)
        .expect("the cluster is stored")
}

/// Both tools' verdicts on the stored cluster.
fn verdicts(h: &Harness) -> (KStatus, String) {
    let obj = stored_value(h);
    (kstatus(&obj), argo_health(&obj).0)
}

/// Marks every child ready, with all `replicas` server pods on one revision.
fn children_ready(h: &Harness, replicas: i32) {
    h.api
        .edit("apps/v1", "StatefulSet", NS, "jelly-server", |o| {
            o["status"] = json!({
                "observedGeneration": o["metadata"]["generation"],
                "replicas": replicas, "readyReplicas": replicas, "updatedReplicas": replicas,
                "currentRevision": "jelly-server-1", "updateRevision": "jelly-server-1",
            });
        });
    h.api
        .edit("apps/v1", "StatefulSet", NS, "jelly-postgres", |o| {
            o["status"] = json!({"replicas": 1, "readyReplicas": 1});
        });
    h.api.edit("apps/v1", "Deployment", NS, "jelly-redis", |o| {
        o["status"] = json!({"replicas": 1, "readyReplicas": 1});
    });
    h.api
        .edit("v1", "PersistentVolumeClaim", NS, "jelly-config", |o| {
            o["status"] = json!({"phase": "Bound"});
        });
}

#[test]
fn the_argo_cd_health_check_passes_its_cases() {
    let dir = repo_root().join("deploy/argocd");
    let cases: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(dir.join("health_test.yaml")).expect("health_test.yaml"),
    )
    .expect("health_test.yaml parses");
    let cases = cases["tests"].as_array().expect("a list of tests");
    assert!(
        cases.len() >= 5,
        "progressing, healthy, degraded, no status, deleting"
    );
    for case in cases {
        let input = case["inputPath"].as_str().expect("inputPath");
        let obj: Value = serde_saphyr::from_str(
            &std::fs::read_to_string(dir.join(input)).unwrap_or_else(|e| panic!("{input}: {e}")),
        )
        .unwrap_or_else(|e| panic!("{input}: {e}"));
        let (status, message) = argo_health(&obj);
        assert_eq!(
            (status.as_str(), message.as_str()),
            (
                case["healthStatus"]["status"].as_str().unwrap(),
                case["healthStatus"]["message"].as_str().unwrap()
            ),
            "{input}"
        );
    }
}

#[test]
fn argocd_cm_carries_health_lua_verbatim() {
    let dir = repo_root().join("deploy/argocd");
    let script = std::fs::read_to_string(dir.join("health.lua")).unwrap();
    let cm: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(dir.join("argocd-cm.yaml")).unwrap())
            .unwrap();
    assert_eq!(
        cm["data"]["resource.customizations.health.ephyra.io_MediaServerCluster"]
            .as_str()
            .expect("the health key for group ephyra.io, kind MediaServerCluster"),
        script,
        "deploy/argocd/argocd-cm.yaml must embed deploy/argocd/health.lua unchanged \
         (indented by four spaces)"
    );
}

#[tokio::test]
async fn the_first_reconcile_writes_observed_generation_and_a_ready_that_is_not_true() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    let obj = stored_value(&h);
    assert!(obj["status"].is_null());
    assert_eq!(argo_health(&obj).0, "Progressing", "no status yet");

    h.reconcile().await.unwrap();
    let status = h.stored().unwrap().status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(h.condition(types::READY).status, "False");
    assert_eq!(h.condition(types::STALLED).status, "False");
    let reconciling = h.condition(types::RECONCILING);
    assert_eq!(reconciling.status, "True");
    assert_eq!(reconciling.reason, h.condition(types::READY).reason);
    assert_eq!(
        verdicts(&h),
        (KStatus::InProgress, "Progressing".to_owned())
    );
}

#[tokio::test]
async fn a_first_reconcile_that_fails_still_leaves_a_status() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.api.fail(
        "PATCH",
        &format!("/namespaces/{NS}/configmaps/jelly-config"),
        1,
    );
    h.reconcile().await.unwrap_err();
    let status = h
        .stored()
        .unwrap()
        .status
        .expect("a status despite the error");
    assert_eq!(status.observed_generation, Some(1));
    let ready = h.condition(types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("Unknown", "Reconciling")
    );
    let reconciling = h.condition(types::RECONCILING);
    assert_eq!(reconciling.reason, "RetryingAfterError");
    assert!(
        reconciling
            .message
            .contains("etcdserver: request timed out"),
        "{}",
        reconciling.message
    );
    assert_eq!(
        verdicts(&h),
        (KStatus::InProgress, "Progressing".to_owned())
    );

    h.reconcile().await.unwrap();
    assert_eq!(h.condition(types::READY).status, "False");
    assert_ne!(h.condition(types::RECONCILING).reason, "RetryingAfterError");
}

#[tokio::test]
async fn a_ready_cluster_is_current_for_flux_and_healthy_for_argo_cd() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    children_ready(&h, 3);
    h.reconcile().await.unwrap();
    assert_eq!(h.condition(types::READY).status, "True");
    let reconciling = h.condition(types::RECONCILING);
    assert_eq!(
        (reconciling.status.as_str(), reconciling.reason.as_str()),
        ("False", "Reconciled")
    );
    assert_eq!(verdicts(&h), (KStatus::Current, "Healthy".to_owned()));

    h.api.clear_requests();
    h.reconcile().await.unwrap();
    assert_eq!(h.api.writes(), vec![], "a settled cluster costs no write");
}

#[tokio::test]
async fn a_spec_change_is_in_progress_until_reconciled_and_rolled_out() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    children_ready(&h, 3);
    h.reconcile().await.unwrap();
    assert_eq!(verdicts(&h).0, KStatus::Current);

    h.edit_spec(|s| s["server"]["logLevel"] = json!("debug"));
    assert_eq!(
        verdicts(&h),
        (KStatus::InProgress, "Progressing".to_owned()),
        "the old Ready=True describes generation 1"
    );

    h.reconcile().await.unwrap();
    let reconciling = h.condition(types::RECONCILING);
    assert_eq!(
        (reconciling.status.as_str(), reconciling.reason.as_str()),
        ("True", "Applied")
    );
    assert!(
        reconciling.message.contains("StatefulSet/jelly-server"),
        "{}",
        reconciling.message
    );
    assert_eq!(verdicts(&h).0, KStatus::InProgress);

    // The StatefulSet controller rolls one replica at a time.
    h.api
        .edit("apps/v1", "StatefulSet", NS, "jelly-server", |o| {
            o["status"]["observedGeneration"] = o["metadata"]["generation"].clone();
            o["status"]["updateRevision"] = json!("jelly-server-2");
            o["status"]["updatedReplicas"] = json!(1);
        });
    h.reconcile().await.unwrap();
    let reconciling = h.condition(types::RECONCILING);
    assert_eq!(
        (reconciling.reason.as_str(), reconciling.message.as_str()),
        ("RollingOut", "1 of 3 replicas run the current revision")
    );
    assert_eq!(h.condition(types::READY).status, "True", "still serving");
    assert_eq!(
        verdicts(&h),
        (KStatus::InProgress, "Progressing".to_owned())
    );

    h.api
        .edit("apps/v1", "StatefulSet", NS, "jelly-server", |o| {
            o["status"]["currentRevision"] = json!("jelly-server-2");
            o["status"]["updatedReplicas"] = json!(3);
        });
    h.reconcile().await.unwrap();
    assert_eq!(verdicts(&h), (KStatus::Current, "Healthy".to_owned()));
}

#[tokio::test]
async fn an_invalid_spec_is_stalled_failed_for_flux_and_degraded_for_argo_cd() {
    let mut msc = MediaServerCluster::test();
    msc.spec.media.existing_claim = Some("also-a-claim".to_owned());
    let h = Harness::with_traefik(msc);
    h.reconcile().await.unwrap_err();
    let stalled = h.condition(types::STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "SpecInvalid")
    );
    assert_eq!(h.condition(types::RECONCILING).status, "False");
    assert_eq!(verdicts(&h), (KStatus::Failed, "Degraded".to_owned()));
    let (_, message) = argo_health(&stored_value(&h));
    assert!(
        message.contains("spec.media: set exactly one of nfs or existingClaim"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_secret_stalls_the_cluster_until_it_appears() {
    let h = Harness::with_traefik(MediaServerCluster::test().external_db());
    h.reconcile().await.unwrap();
    let stalled = h.condition(types::STALLED);
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "SecretNotFound")
    );
    assert!(
        stalled.message.contains("Secret ext-db"),
        "{}",
        stalled.message
    );
    assert_eq!(verdicts(&h), (KStatus::Failed, "Degraded".to_owned()));

    h.api.insert(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ext-db", "namespace": NS},
        "data": {"uri": "cG9zdGdyZXM6Ly94"},
    }));
    h.reconcile().await.unwrap();
    assert_eq!(h.condition(types::STALLED).status, "False");
    assert_eq!(
        verdicts(&h),
        (KStatus::InProgress, "Progressing".to_owned())
    );
}

#[tokio::test]
async fn a_cluster_being_deleted_is_terminating_and_progressing() {
    let h = Harness::new(FakeApi::new().with_traefik(), MediaServerCluster::test());
    h.reconcile().await.unwrap();
    h.api.edit(MSC_API, "MediaServerCluster", NS, NAME, |o| {
        o["metadata"]["deletionTimestamp"] = json!("2026-11-30T12:00:00Z");
    });
    assert_eq!(
        verdicts(&h),
        (KStatus::Terminating, "Progressing".to_owned())
    );
}

//! Reconcile against the in-memory API (`ephyra_testsupport::kube_fake`): what is created, that a quiet
//! cluster costs no write, that a change writes only what it must, and that every failure ends
//! in a condition and a measured retry rather than a crash loop.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ephyra_crd::conditions::{self, types};
use ephyra_crd::{MediaServerCluster, MemberRole, MemberStatus};
use ephyra_testsupport::kube_fake::FakeApi;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Reporter;
use serde_json::{Value, json};

use crate::controller::{
    self, BACKOFF_START, Context, RESYNC, WAIT_FOR_DEPENDENCY, WAIT_FOR_PERSON,
};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::testing::{Fixture, NAME, NS};

pub(super) const MSC_API: &str = "ephyra.io/v1alpha1";
const NOW: i64 = 1_900_000_000;

/// One stored cluster, the fake API and a context with a fixed clock (also used by `health`).
pub(super) struct Harness {
    pub(super) api: FakeApi,
    pub(super) ctx: Arc<Context>,
}

impl Harness {
    pub(super) fn new(api: FakeApi, msc: MediaServerCluster) -> Harness {
        api.insert(serde_json::to_value(&msc).unwrap());
        let client = api.client();
        let mut ctx = Context::new(
            client,
            Reporter {
                controller: "ephyra-operator".to_owned(),
                instance: Some("test".to_owned()),
            },
            Arc::new(Metrics::default()),
            Duration::from_secs(120),
        );
        ctx.clock = Arc::new(|| Timestamp::from_second(NOW).unwrap());
        Harness {
            api,
            ctx: Arc::new(ctx),
        }
    }

    pub(super) fn with_traefik(msc: MediaServerCluster) -> Harness {
        Harness::new(FakeApi::new().with_traefik(), msc)
    }

    pub(super) fn stored(&self) -> Option<MediaServerCluster> {
        self.api
            .get(MSC_API, "MediaServerCluster", NS, NAME)
            .map(|v| serde_json::from_value(v).unwrap())
    }

    pub(super) async fn reconcile(&self) -> Result<Action, Error> {
        let msc = self.stored().expect("the cluster is stored");
        controller::reconcile(Arc::new(msc), self.ctx.clone()).await
    }

    /// Reconciles until the operator has seen everything it created (two passes), then
    /// forgets the requests.
    pub(super) async fn settle(&self) {
        self.reconcile().await.unwrap();
        self.reconcile().await.unwrap();
        self.api.clear_requests();
    }

    pub(super) fn edit_spec(&self, f: impl FnOnce(&mut Value)) {
        self.api.edit(MSC_API, "MediaServerCluster", NS, NAME, |o| {
            f(&mut o["spec"])
        });
    }

    pub(super) fn condition(&self, type_: &str) -> Condition {
        let status = self.stored().unwrap().status.unwrap();
        conditions::find(&status.conditions, type_)
            .unwrap_or_else(|| panic!("no {type_} condition"))
            .clone()
    }

    fn event_reasons(&self) -> Vec<String> {
        self.api
            .writes()
            .iter()
            .filter(|r| r.is_event())
            .map(|r| {
                let body: Value = serde_json::from_str(&r.body).unwrap();
                body["reason"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn a_new_cluster_creates_everything_with_one_field_manager() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));

    let names = sorted(h.api.names());
    for expected in [
        "ConfigMap/jelly-config",
        "Deployment/jelly-redis",
        "IngressRoute/jelly",
        "Middleware/jelly-headers",
        "NetworkPolicy/jelly-backends",
        "PersistentVolumeClaim/jelly-config",
        "PodDisruptionBudget/jelly-server",
        "Role/jelly-server",
        "RoleBinding/jelly-server",
        "Secret/jelly-postgres",
        "Secret/jelly-redis",
        "Service/jelly",
        "Service/jelly-postgres",
        "Service/jelly-postgres-headless",
        "Service/jelly-redis",
        "Service/jelly-server-headless",
        "ServiceAccount/jelly-server",
        "StatefulSet/jelly-postgres",
        "StatefulSet/jelly-server",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} missing from {names:?}"
        );
    }
    for write in
        h.api.writes().iter().filter(|w| {
            w.method == "PATCH" && w.content_type.starts_with("application/apply-patch")
        })
    {
        assert!(
            write.query.contains("fieldManager=ephyra-operator"),
            "{write:?}"
        );
        assert!(write.query.contains("force=true"), "{write:?}");
    }
    let status = h.stored().unwrap().status.unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.url.as_deref(), Some("https://jelly.test.example"));
    assert_eq!(
        status.selector.as_deref(),
        Some(
            "app.kubernetes.io/component=server,app.kubernetes.io/instance=jelly,app.kubernetes.io/name=ephyra"
        )
    );
    assert_eq!(h.condition(types::INGRESS_READY).reason, "RouteApplied");
    assert_eq!(h.condition(types::READY).status, "False");
    assert!(h.event_reasons().contains(&"Created".to_owned()));
}

#[tokio::test]
async fn a_second_reconcile_of_an_unchanged_cluster_sends_no_writes() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.reconcile().await.unwrap();
    h.api.clear_requests();
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    assert_eq!(
        h.api.writes(),
        vec![],
        "an unchanged cluster must cost no write"
    );
    assert!(!h.api.requests().is_empty(), "it still reads");
}

#[tokio::test]
async fn the_generated_password_is_kept_across_reconciles_and_never_leaves_its_secret() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    let password = |h: &Harness| {
        h.api.get("v1", "Secret", NS, "jelly-postgres").unwrap()["data"]["password"].clone()
    };
    let first = password(&h);
    assert!(first.is_string());
    h.edit_spec(|s| s["replicas"] = json!(4));
    h.reconcile().await.unwrap();
    assert_eq!(password(&h), first);
    let encoded = first.as_str().unwrap();
    for write in h.api.writes() {
        assert!(!write.body.contains(encoded) || write.path.ends_with("/secrets/jelly-postgres"));
    }
}

#[tokio::test]
async fn a_redis_password_secret_deleted_by_hand_is_recreated_and_rolls_redis_and_the_replicas() {
    use k8s_openapi::api::core::v1::Secret;
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    let password = |h: &Harness| {
        h.api.get("v1", "Secret", NS, "jelly-redis").unwrap()["data"]["password"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let hashes = |h: &Harness| {
        let annotation = |api_version: &str, kind: &str, name: &str| {
            h.api.get(api_version, kind, NS, name).unwrap()["spec"]["template"]["metadata"]
                ["annotations"]["ephyra.io/redis-password-hash"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        (
            annotation("apps/v1", "Deployment", "jelly-redis"),
            annotation("apps/v1", "StatefulSet", "jelly-server"),
        )
    };
    let first = password(&h);
    let first_hashes = hashes(&h);
    assert_eq!(first_hashes.0, first_hashes.1);
    h.reconcile().await.unwrap();
    assert_eq!(password(&h), first, "kept across reconciles");

    let secrets: Api<Secret> = Api::namespaced(h.ctx.client.clone(), NS);
    secrets
        .delete("jelly-redis", &DeleteParams::default())
        .await
        .unwrap();
    h.api.clear_requests();
    h.reconcile().await.unwrap();
    let second = password(&h);
    assert_ne!(second, first, "a new password");
    let second_hashes = hashes(&h);
    assert_ne!(
        second_hashes, first_hashes,
        "Redis and the replicas restart onto it"
    );
    assert_eq!(second_hashes.0, second_hashes.1);
    // The password goes to its Secret only: not into another object, not onto a pod template.
    for write in h.api.writes() {
        assert!(
            !write.body.contains(&second) || write.path.ends_with("/secrets/jelly-redis"),
            "{} {}",
            write.method,
            write.path
        );
    }
}

#[tokio::test]
async fn changing_the_replica_count_patches_only_the_server_statefulset() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    h.edit_spec(|s| s["replicas"] = json!(5));
    h.reconcile().await.unwrap();
    assert_eq!(
        h.api.object_writes(),
        vec![format!(
            "PATCH /apis/apps/v1/namespaces/{NS}/statefulsets/jelly-server"
        )]
    );
    let sts = h
        .api
        .get("apps/v1", "StatefulSet", NS, "jelly-server")
        .unwrap();
    assert_eq!(sts["spec"]["replicas"], 5);
    let status = h.stored().unwrap().status.unwrap();
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(
        h.condition(types::REPLICAS_READY).message,
        "0 of 5 replicas ready"
    );
    assert_eq!(h.event_reasons(), vec!["Updated"]);
}

#[tokio::test]
async fn changing_the_transcode_size_recreates_only_the_server_statefulset_keeping_its_pods() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    h.edit_spec(|s| s["transcode"]["size"] = json!("50Gi"));
    h.reconcile().await.unwrap();
    let sts_path = format!("/apis/apps/v1/namespaces/{NS}/statefulsets/jelly-server");
    assert_eq!(
        h.api.object_writes(),
        vec![format!("DELETE {sts_path}"), format!("PATCH {sts_path}")]
    );
    let delete = h
        .api
        .writes()
        .into_iter()
        .find(|w| w.method == "DELETE")
        .unwrap();
    assert!(
        delete.body.contains("\"propagationPolicy\":\"Orphan\""),
        "{}",
        delete.body
    );
    let sts = h
        .api
        .get("apps/v1", "StatefulSet", NS, "jelly-server")
        .unwrap();
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "50Gi"
    );
    assert_eq!(h.event_reasons(), vec!["Recreated"]);
}

#[tokio::test]
async fn a_configuration_change_patches_the_config_map_and_rolls_the_server() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    h.edit_spec(|s| s["server"]["logLevel"] = json!("debug"));
    h.reconcile().await.unwrap();
    assert_eq!(
        h.api.object_writes(),
        vec![
            format!("PATCH /api/v1/namespaces/{NS}/configmaps/jelly-config"),
            format!("PATCH /apis/apps/v1/namespaces/{NS}/statefulsets/jelly-server"),
        ]
    );
}

#[tokio::test]
async fn deleting_the_cluster_runs_the_finalizer_and_removes_the_nfs_volume() {
    let h = Harness::with_traefik(MediaServerCluster::test().nfs_config());
    h.reconcile().await.unwrap();
    let pv = &crate::validate::validate(&h.stored().unwrap())
        .unwrap()
        .names
        .config_volume();
    assert!(pv.starts_with("ephyra-media-test-jelly-config-"), "{pv}");
    assert!(h.api.get("v1", "PersistentVolume", "", pv).is_some());
    assert_eq!(
        h.stored().unwrap().metadata.finalizers,
        Some(vec!["ephyra.io/config-volume".to_owned()])
    );

    let api: Api<MediaServerCluster> = Api::namespaced(h.ctx.client.clone(), NS);
    api.delete(NAME, &DeleteParams::default()).await.unwrap();
    assert!(h.stored().unwrap().metadata.deletion_timestamp.is_some());

    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        h.api.get("v1", "PersistentVolume", "", pv).is_none(),
        "the PV is removed"
    );
    assert!(
        h.stored().is_none(),
        "the finalizer is gone, so is the cluster"
    );
}

#[tokio::test]
async fn a_claim_bound_by_an_earlier_version_keeps_its_volume_and_deletion_removes_it() {
    let h = Harness::with_traefik(MediaServerCluster::test().nfs_config());
    // What operator 0.1 left: the PV named without a hash, and the claim bound to it.
    let legacy = "ephyra-media-test-jelly-config";
    let owner = json!([{
        "apiVersion": MSC_API, "kind": "MediaServerCluster", "name": NAME,
        "uid": crate::testing::UID, "controller": true, "blockOwnerDeletion": true,
    }]);
    h.api.insert(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "jelly-config", "namespace": NS, "ownerReferences": owner},
        "spec": {"volumeName": legacy, "storageClassName": "", "accessModes": ["ReadWriteMany"]},
    }));
    h.api.insert(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": legacy, "labels": {
            "app.kubernetes.io/instance": NAME, "ephyra.io/namespace": NS,
        }},
        "spec": {"nfs": {"server": "nas.test", "path": "/export/jelly-config"}},
    }));
    h.reconcile().await.unwrap();
    let claim = h
        .api
        .get("v1", "PersistentVolumeClaim", NS, "jelly-config")
        .unwrap();
    assert_eq!(claim["spec"]["volumeName"], legacy);
    let volumes: Vec<String> = h
        .api
        .names()
        .into_iter()
        .filter(|n| n.starts_with("PersistentVolume/"))
        .collect();
    assert_eq!(volumes, vec![format!("PersistentVolume/{legacy}")]);

    let api: Api<MediaServerCluster> = Api::namespaced(h.ctx.client.clone(), NS);
    api.delete(NAME, &DeleteParams::default()).await.unwrap();
    h.reconcile().await.unwrap();
    assert!(h.api.get("v1", "PersistentVolume", "", legacy).is_none());
    assert!(h.stored().is_none());
}

#[tokio::test]
async fn a_cluster_without_an_nfs_config_volume_gets_no_finalizer() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.reconcile().await.unwrap();
    assert_eq!(h.stored().unwrap().metadata.finalizers, None);
    assert!(
        !h.api
            .names()
            .iter()
            .any(|n| n.starts_with("PersistentVolume/"))
    );
}

#[tokio::test]
async fn missing_traefik_crds_leave_everything_else_reconciled_and_say_why() {
    let h = Harness::new(FakeApi::new(), MediaServerCluster::test());
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(RESYNC));
    let ingress = h.condition(types::INGRESS_READY);
    assert_eq!(
        (ingress.status.as_str(), ingress.reason.as_str()),
        ("False", "TraefikNotInstalled")
    );
    assert!(
        ingress.message.contains("install Traefik v3"),
        "{}",
        ingress.message
    );
    let names = h.api.names();
    assert!(names.contains(&"StatefulSet/jelly-server".to_owned()));
    assert!(!names.iter().any(|n| n.starts_with("IngressRoute/")));
    assert!(
        h.event_reasons()
            .contains(&"TraefikNotInstalled".to_owned())
    );

    h.api.clear_requests();
    h.reconcile().await.unwrap();
    assert_eq!(h.api.writes(), vec![], "no retry storm, no repeated event");
}

#[tokio::test]
async fn without_cloudnativepg_installed_everything_else_is_reconciled_and_the_database_says_why() {
    let h = Harness::with_traefik(MediaServerCluster::test().cloud_native_pg(3));
    let action = h.reconcile().await.unwrap();
    assert_eq!(
        action,
        Action::requeue(WAIT_FOR_DEPENDENCY),
        "no crash loop"
    );
    let db = h.condition(types::DATABASE_READY);
    assert_eq!(
        (db.status.as_str(), db.reason.as_str()),
        ("False", "CloudNativePGNotInstalled")
    );
    assert!(
        db.message.contains("install CloudNativePG"),
        "{}",
        db.message
    );
    assert_eq!(h.condition(types::STALLED).status, "True");
    let names = h.api.names();
    assert!(names.contains(&"StatefulSet/jelly-server".to_owned()));
    assert!(!names.iter().any(|n| n.starts_with("Cluster/")));
    assert!(!names.contains(&"StatefulSet/jelly-postgres".to_owned()));
    assert!(
        h.event_reasons()
            .contains(&"CloudNativePGNotInstalled".to_owned())
    );

    h.api.clear_requests();
    h.reconcile().await.unwrap();
    assert_eq!(h.api.writes(), vec![], "no retry storm, no repeated event");
}

#[tokio::test]
async fn a_cloudnativepg_cluster_is_created_kept_on_delete_and_read_for_database_readiness() {
    const CNPG_API: &str = "postgresql.cnpg.io/v1";
    let h = Harness::new(
        FakeApi::new().with_traefik().with_cnpg(),
        MediaServerCluster::test().cloud_native_pg(3),
    );
    assert_eq!(
        h.reconcile().await.unwrap(),
        Action::requeue(WAIT_FOR_DEPENDENCY)
    );
    let cluster = h
        .api
        .get(CNPG_API, "Cluster", NS, "jelly-pg")
        .expect("the CloudNativePG Cluster is created");
    assert_eq!(cluster["spec"]["instances"], 3);
    assert!(
        cluster["metadata"].get("ownerReferences").is_none(),
        "retained: no owner reference, so deleting the MediaServerCluster keeps the data"
    );
    // The replicas read CloudNativePG's Secret by reference; the operator never reads it.
    let server = h
        .api
        .get("apps/v1", "StatefulSet", NS, "jelly-server")
        .unwrap();
    let env = &server["spec"]["template"]["spec"]["containers"][0]["env"];
    let url = env
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "EPHYRA_DATABASE_URL")
        .unwrap();
    assert_eq!(
        url["valueFrom"]["secretKeyRef"],
        json!({"name": "jelly-pg-app", "key": "uri", "optional": false})
    );
    assert!(
        !h.api
            .requests()
            .iter()
            .any(|r| r.path.contains("/secrets/jelly-pg-app"))
    );
    assert!(
        !h.api
            .names()
            .contains(&"StatefulSet/jelly-postgres".to_owned())
    );

    // CloudNativePG still setting up: its phase is in the condition, and the operator polls.
    h.api.edit(CNPG_API, "Cluster", NS, "jelly-pg", |o| {
        o["status"] = json!({
            "phase": "Setting up primary",
            "instances": 1,
            "readyInstances": 0,
            "conditions": [{"type": "Ready", "status": "False", "reason": "ClusterIsNotReady",
                            "message": "", "lastTransitionTime": "2030-01-01T00:00:00Z"}],
        });
    });
    assert_eq!(
        h.reconcile().await.unwrap(),
        Action::requeue(WAIT_FOR_DEPENDENCY)
    );
    let db = h.condition(types::DATABASE_READY);
    assert_eq!(
        (db.status.as_str(), db.reason.as_str()),
        ("False", "CloudNativePGNotReady")
    );
    assert!(db.message.contains("Setting up primary"), "{}", db.message);
    assert!(db.message.contains("0 of 3"), "{}", db.message);
    assert_eq!(h.condition(types::READY).reason, "DatabaseNotReady");

    // Healthy.
    let healthy = json!({
        "phase": "Cluster in healthy state",
        "instances": 3,
        "readyInstances": 3,
        "currentPrimary": "jelly-pg-1",
        "targetPrimary": "jelly-pg-1",
        "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady",
                        "message": "", "lastTransitionTime": "2030-01-01T00:00:00Z"}],
    });
    h.api.edit(CNPG_API, "Cluster", NS, "jelly-pg", |o| {
        o["status"] = healthy.clone();
    });
    assert_eq!(h.reconcile().await.unwrap(), Action::requeue(RESYNC));
    let db = h.condition(types::DATABASE_READY);
    assert_eq!(
        (db.status.as_str(), db.reason.as_str()),
        ("True", "CloudNativePGReady")
    );
    assert!(db.message.contains("primary jelly-pg-1"), "{}", db.message);

    // A switchover in progress: Ready may still say True, the primaries differ.
    h.api.edit(CNPG_API, "Cluster", NS, "jelly-pg", |o| {
        o["status"]["targetPrimary"] = json!("jelly-pg-2");
        o["status"]["phase"] = json!("Switchover in progress");
    });
    h.reconcile().await.unwrap();
    let db = h.condition(types::DATABASE_READY);
    assert_eq!(
        (db.status.as_str(), db.reason.as_str()),
        ("False", "CloudNativePGSwitchingPrimary")
    );
    assert!(db.message.contains("jelly-pg-2"), "{}", db.message);

    // Switching back to the managed StatefulSet never prunes the CloudNativePG Cluster.
    h.edit_spec(|s| s["database"] = json!({"managed": {}, "poolSize": 8}));
    h.reconcile().await.unwrap();
    assert!(h.api.get(CNPG_API, "Cluster", NS, "jelly-pg").is_some());
}

#[tokio::test]
async fn a_404_when_applying_the_route_also_means_traefik_is_not_installed() {
    let h = Harness::new(
        FakeApi::new().with_stale_traefik_discovery(),
        MediaServerCluster::test(),
    );
    assert_eq!(h.reconcile().await.unwrap(), Action::requeue(RESYNC));
    assert_eq!(
        h.condition(types::INGRESS_READY).reason,
        "TraefikNotInstalled"
    );
    assert!(
        h.api
            .names()
            .contains(&"StatefulSet/jelly-server".to_owned())
    );
}

#[tokio::test]
async fn a_missing_external_database_secret_is_reported_and_retried_calmly() {
    let h = Harness::with_traefik(MediaServerCluster::test().external_db());
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(WAIT_FOR_DEPENDENCY));
    let db = h.condition(types::DATABASE_READY);
    assert_eq!(
        (db.status.as_str(), db.reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert!(
        db.message.contains("Secret ext-db (key uri)"),
        "{}",
        db.message
    );
    assert_eq!(h.condition(types::READY).reason, "DatabaseNotReady");
    assert!(h.event_reasons().contains(&"DependencyMissing".to_owned()));
    assert!(
        !h.api.names().iter().any(|n| n.contains("postgres")),
        "no managed database"
    );

    h.api.insert(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ext-db", "namespace": NS},
        "data": {"uri": "cG9zdGdyZXM6Ly94"},
    }));
    h.reconcile().await.unwrap();
    let db = h.condition(types::DATABASE_READY);
    assert_eq!(
        (db.status.as_str(), db.reason.as_str()),
        ("True", "ExternalSecretFound")
    );
}

#[tokio::test]
async fn a_missing_or_keyless_initial_admin_secret_is_named_and_no_replica_gets_half_an_admin() {
    let mut msc = MediaServerCluster::test();
    msc.spec.server.initial_admin = Some(ephyra_crd::InitialAdminSpec {
        user_name: "family-admin".to_owned(),
        password_secret: Some(ephyra_crd::PasswordSecretRef {
            name: "family-vault".to_owned(),
            key: "pw".to_owned(),
        }),
    });
    let h = Harness::with_traefik(msc);
    let action = h.reconcile().await.unwrap();
    assert_eq!(action, Action::requeue(WAIT_FOR_DEPENDENCY));
    let first = h.condition(types::FIRST_SIGN_IN);
    assert_eq!(
        (first.status.as_str(), first.reason.as_str()),
        ("False", "SecretNotFound")
    );
    assert!(
        first.message.contains("family-vault") && first.message.contains("pw"),
        "{}",
        first.message
    );
    // (Ready names the first unmet dependency; the fresh managed database comes first here.)
    assert_eq!(h.condition(types::READY).status, "False");
    assert!(h.event_reasons().contains(&"DependencyMissing".to_owned()));

    // The replicas read the password through a required reference: the kubelet starts none
    // of them until the Secret and its key exist, so no replica runs with a user and no
    // password (and no replica falls back to the wizard meanwhile).
    let set = h
        .api
        .get("apps/v1", "StatefulSet", NS, "jelly-server")
        .expect("the server StatefulSet");
    let env = &set["spec"]["template"]["spec"]["containers"][0]["env"];
    let var = |name: &str| {
        env.as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is set"))
    };
    assert_eq!(var("EPHYRA_ADMIN_USER")["value"], "family-admin");
    assert_eq!(
        var("EPHYRA_ADMIN_PASSWORD")["valueFrom"]["secretKeyRef"],
        json!({"name": "family-vault", "key": "pw", "optional": false})
    );

    h.api.insert(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "family-vault", "namespace": NS},
        "data": {"password": "bm90LXRoZS1yaWdodC1rZXk="},
    }));
    assert_eq!(
        h.reconcile().await.unwrap(),
        Action::requeue(WAIT_FOR_DEPENDENCY)
    );
    let first = h.condition(types::FIRST_SIGN_IN);
    assert_eq!(
        (first.status.as_str(), first.reason.as_str()),
        ("False", "SecretKeyMissing")
    );
    assert!(
        first.message.contains("family-vault") && first.message.contains("pw"),
        "{}",
        first.message
    );

    h.api.insert(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "family-vault", "namespace": NS},
        "data": {"pw": "YSBmYW1pbHkgcGFzc3dvcmQ="},
    }));
    h.reconcile().await.unwrap();
    let first = h.condition(types::FIRST_SIGN_IN);
    assert_eq!(
        (first.status.as_str(), first.reason.as_str()),
        ("True", "ExternalSecret")
    );
}

#[tokio::test]
async fn an_invalid_spec_ends_in_a_condition_and_a_long_wait_not_a_crash_loop() {
    let mut msc = MediaServerCluster::test();
    msc.spec.media.existing_claim = Some("also-a-claim".to_owned());
    let h = Harness::with_traefik(msc);
    let msc = Arc::new(h.stored().unwrap());
    let err = controller::reconcile(msc.clone(), h.ctx.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err}");
    assert_eq!(
        controller::error_policy(msc, &err, h.ctx.clone()),
        Action::requeue(WAIT_FOR_PERSON)
    );
    let ready = h.condition(types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SpecInvalid")
    );
    assert!(
        ready
            .message
            .contains("spec.media: set exactly one of nfs or existingClaim"),
        "{}",
        ready.message
    );
    assert_eq!(
        h.stored().unwrap().status.unwrap().observed_generation,
        Some(1)
    );
    assert_eq!(
        h.api.object_writes(),
        Vec::<String>::new(),
        "nothing is built from a bad spec"
    );
    assert_eq!(h.event_reasons(), vec!["SpecInvalid"]);

    h.api.clear_requests();
    assert!(h.reconcile().await.is_err());
    assert_eq!(
        h.api.writes(),
        vec![],
        "the same bad spec writes nothing again"
    );
}

#[tokio::test]
async fn a_hostile_spec_is_refused_in_the_ready_condition_naming_every_field() {
    let mut msc = MediaServerCluster::test();
    msc.spec.media.nfs.as_mut().unwrap().server = "nas`reboot`".to_owned();
    msc.spec.transcode.size =
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("lots; rm -rf".to_owned());
    msc.spec
        .server
        .env
        .push(k8s_openapi::api::core::v1::EnvVar {
            name: "EPHYRA_ADMIN_PASSWORD".to_owned(),
            value: Some("in-plain-sight".to_owned()),
            value_from: None,
        });
    let h = Harness::with_traefik(msc);
    let err = h.reconcile().await.unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err}");
    let ready = h.condition(types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SpecInvalid")
    );
    for field in [
        "spec.server.env[EPHYRA_ADMIN_PASSWORD]",
        "spec.media.nfs.server",
        "spec.transcode.size",
    ] {
        assert!(ready.message.contains(field), "{field}: {}", ready.message);
    }
    assert!(
        !ready.message.contains("in-plain-sight"),
        "the condition never repeats the password: {}",
        ready.message
    );
    assert_eq!(h.api.object_writes(), Vec::<String>::new());
}

#[tokio::test]
async fn an_nfs_export_outside_the_operators_allow_list_is_refused_in_the_condition() {
    let mut h = Harness::with_traefik(MediaServerCluster::test().nfs_config());
    Arc::get_mut(&mut h.ctx).unwrap().nfs_policy =
        crate::validate::NfsPolicy::from_lists("nas.test", "/export/library");
    let err = h.reconcile().await.unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err}");
    let ready = h.condition(types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SpecInvalid")
    );
    assert!(
        ready.message.contains("spec.config.nfs.path")
            && ready.message.contains("/export/jelly-config")
            && ready
                .message
                .contains("not under an export this operator may mount"),
        "{}",
        ready.message
    );
    assert!(!ready.message.contains("spec.media"), "{}", ready.message);
    assert_eq!(h.api.object_writes(), Vec::<String>::new(), "no PV, no pod");

    // Allowed once the administrator adds the export.
    Arc::get_mut(&mut h.ctx).unwrap().nfs_policy =
        crate::validate::NfsPolicy::from_lists("nas.test", "/export/library,/export/jelly-config");
    h.reconcile().await.unwrap();
    assert!(
        h.api
            .names()
            .iter()
            .any(|n| n.starts_with("PersistentVolume/"))
    );
}

#[tokio::test]
async fn transient_errors_back_off_exponentially_and_success_resets_them() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    let msc = Arc::new(h.stored().unwrap());
    let transient = || Error::Discovery {
        group: "traefik.io/v1alpha1".to_owned(),
        source: kube::Error::Api(
            kube::core::Status::failure("etcd timeout", "InternalError")
                .with_code(500)
                .boxed(),
        ),
    };
    let waits: Vec<_> = (0..4)
        .map(|_| controller::error_policy(msc.clone(), &transient(), h.ctx.clone()))
        .collect();
    assert_eq!(
        waits,
        vec![
            Action::requeue(BACKOFF_START),
            Action::requeue(BACKOFF_START * 2),
            Action::requeue(BACKOFF_START * 4),
            Action::requeue(BACKOFF_START * 8),
        ]
    );
    h.reconcile().await.unwrap();
    assert_eq!(
        controller::error_policy(msc, &transient(), h.ctx.clone()),
        Action::requeue(BACKOFF_START)
    );
}

#[tokio::test]
async fn an_object_controlled_by_someone_else_is_not_taken_over() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.api.insert(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "jelly-config", "namespace": NS,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "other", "uid": "someone-else", "controller": true}],
        },
        "data": {"keep": "me"},
    }));
    let err = h.reconcile().await.unwrap_err();
    assert!(matches!(err, Error::NotOwned { .. }), "{err}");
    assert_eq!(
        controller::error_policy(Arc::new(h.stored().unwrap()), &err, h.ctx.clone()),
        Action::requeue(WAIT_FOR_PERSON)
    );
    let cm = h.api.get("v1", "ConfigMap", NS, "jelly-config").unwrap();
    assert_eq!(cm["data"]["keep"], "me");
    let ready = h.condition(types::READY);
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "NameConflict")
    );
    assert!(
        ready
            .message
            .contains("ConfigMap jelly-config already exists"),
        "{}",
        ready.message
    );
    assert_eq!(h.event_reasons(), vec!["NameConflict"]);
}

#[tokio::test]
async fn a_postgres_secret_without_its_password_is_never_regenerated() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    h.api.edit("v1", "Secret", NS, "jelly-postgres", |o| {
        o["data"].as_object_mut().unwrap().remove("password");
    });
    h.edit_spec(|s| s["replicas"] = json!(4));
    let err = h.reconcile().await.unwrap_err();
    assert!(matches!(err, Error::PasswordMissing { .. }), "{err}");
    let secret = h.api.get("v1", "Secret", NS, "jelly-postgres").unwrap();
    assert!(
        secret["data"].get("password").is_none(),
        "no new password was written"
    );
    assert_eq!(h.condition(types::READY).reason, "PasswordMissing");
}

#[tokio::test]
async fn switching_to_an_external_database_prunes_the_managed_one_but_keeps_its_password() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    h.edit_spec(|s| {
        s["database"] = json!({"external": {"name": "ext-db", "key": "uri"}, "poolSize": 8});
    });
    h.reconcile().await.unwrap();
    let names = h.api.names();
    assert!(!names.contains(&"StatefulSet/jelly-postgres".to_owned()));
    assert!(!names.contains(&"Service/jelly-postgres".to_owned()));
    assert!(
        names.contains(&"Secret/jelly-postgres".to_owned()),
        "the password is kept"
    );
    let policy = h
        .api
        .get(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            NS,
            "jelly-backends",
        )
        .unwrap();
    assert_eq!(
        policy["spec"]["podSelector"]["matchExpressions"][0]["values"],
        json!(["redis"])
    );
}

#[tokio::test]
async fn removing_the_ingress_prunes_the_traefik_objects() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    h.api.edit(MSC_API, "MediaServerCluster", NS, NAME, |o| {
        o["spec"].as_object_mut().unwrap().remove("ingress");
    });
    h.reconcile().await.unwrap();
    let names = h.api.names();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("IngressRoute/") || n.starts_with("Middleware/"))
    );
    assert_eq!(h.condition(types::INGRESS_READY).reason, "NotRequested");
    assert_eq!(
        h.stored().unwrap().status.unwrap().url.as_deref(),
        Some("http://jelly.media-test.svc:8096")
    );
}

#[tokio::test]
async fn stale_and_orphaned_members_are_pruned_and_live_ones_kept() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    let member = |name: &str, at: i64| MemberStatus {
        name: name.to_owned(),
        ready: true,
        role: MemberRole::Follower,
        last_heartbeat: Time(Timestamp::from_second(at).unwrap()),
        active_sessions: 1,
        active_transcodes: 0,
        version: Some("0.1.0".to_owned()),
    };
    let members = vec![
        member("jelly-server-0", NOW - 5),
        member("jelly-server-1", NOW - 600),
        member("jelly-server-7", NOW - 5),
    ];
    h.api.edit(MSC_API, "MediaServerCluster", NS, NAME, |o| {
        o["status"]["members"] = serde_json::to_value(&members).unwrap();
    });
    for pod in ["jelly-server-0", "jelly-server-1"] {
        h.api.insert(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": NS, "labels": {
                "app.kubernetes.io/name": "ephyra",
                "app.kubernetes.io/instance": "jelly",
                "app.kubernetes.io/component": "server",
            }},
        }));
    }
    h.reconcile().await.unwrap();
    let kept: Vec<_> = h
        .stored()
        .unwrap()
        .status
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(kept, vec!["jelly-server-0"]);
}

#[tokio::test]
async fn ready_children_make_the_cluster_ready_and_the_operator_says_so_once() {
    let h = Harness::with_traefik(MediaServerCluster::test());
    h.settle().await;
    h.api
        .edit("apps/v1", "StatefulSet", NS, "jelly-server", |o| {
            o["status"] = json!({"replicas": 3, "readyReplicas": 2});
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
    h.reconcile().await.unwrap();
    assert_eq!(h.condition(types::READY).status, "True");
    assert_eq!(h.condition(types::DEGRADED).status, "True");
    assert_eq!(h.api.object_writes(), Vec::<String>::new());
    assert_eq!(h.event_reasons(), vec!["Ready"]);
    let status = h.stored().unwrap().status.unwrap();
    assert_eq!((status.replicas, status.ready_replicas), (Some(3), Some(2)));
}

/// The configuration `controller::run` gets in these tests, watching `namespaces` (all when
/// empty).
fn run_config(namespaces: Vec<String>) -> controller::RunConfig {
    controller::RunConfig {
        lease_namespace: "ephyra-system".to_owned(),
        lease_name: "ephyra-operator".to_owned(),
        identity: "operator-a".to_owned(),
        lease_seconds: 15,
        member_ttl: Duration::from_secs(120),
        nfs_policy: Default::default(),
        namespaces,
    }
}

/// Runs the controller (leader election and its watches) on `api` until it has rendered the
/// stored cluster's server StatefulSet, then stops it.
async fn run_until_reconciled(api: &FakeApi, namespaces: Vec<String>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller::run(
        api.client(),
        run_config(namespaces),
        Arc::new(Metrics::default()),
        Arc::new(AtomicBool::new(false)),
        async move {
            let _ = stopped.await;
        },
    ));
    assert!(
        eventually(Duration::from_secs(20), || {
            api.get("apps/v1", "StatefulSet", NS, "jelly-server")
                .is_some()
        })
        .await
    );
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
}

/// Polls `done` every 20 ms for at most `limit`; false if it never became true.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    ephyra_testsupport::wait::until("the condition", limit, || {
        let now = done();
        async move { Ok(now.then_some(())) }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn run_takes_the_lease_reconciles_stored_clusters_and_releases_the_lease_on_shutdown() {
    use std::sync::atomic::{AtomicBool, Ordering};

    let api = FakeApi::new().with_traefik();
    api.insert(serde_json::to_value(MediaServerCluster::test()).unwrap());
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = run_config(Vec::new());
    let running = tokio::spawn(controller::run(
        api.client(),
        config,
        metrics.clone(),
        ready.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    let reconciled = eventually(Duration::from_secs(20), || {
        api.get("apps/v1", "StatefulSet", NS, "jelly-server")
            .is_some()
    })
    .await;
    assert!(reconciled, "the leader reconciles the stored cluster");
    assert!(ready.load(Ordering::Relaxed));
    assert_eq!(metrics.leader.get(), 1);
    let lease = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "ephyra-system",
            "ephyra-operator",
        )
        .expect("the Lease exists");
    assert_eq!(lease["spec"]["holderIdentity"], "operator-a");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("run stops after the shutdown signal")
        .unwrap()
        .unwrap();
    assert!(!ready.load(Ordering::Relaxed));
    assert_eq!(metrics.leader.get(), 0);
    let lease = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "ephyra-system",
            "ephyra-operator",
        )
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "the Lease is released so the other replica takes over at once: {lease}"
    );
}

/// (group, resource, verb) granted by the ClusterRole and Role in `deploy/rbac.yaml`.
fn granted() -> std::collections::BTreeSet<(String, String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = std::collections::BTreeSet::new();
    for doc in text.split("\n---\n") {
        let object: Value = serde_saphyr::from_str(doc).unwrap();
        if !matches!(object["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        for rule in object["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        out.insert((
                            group.as_str().unwrap().to_owned(),
                            resource.as_str().unwrap().to_owned(),
                            verb.as_str().unwrap().to_owned(),
                        ));
                    }
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn deploy_rbac_grants_every_request_the_operator_makes_and_nothing_unused() {
    use std::collections::BTreeSet;

    let mut needed = BTreeSet::new();
    let mut record = |api: &FakeApi| {
        for request in api.requests() {
            for (g, r, v) in request.permissions() {
                needed.insert((g, r, v.to_owned()));
            }
        }
    };

    // Every path through reconcile: creation, spec changes, pruning, members, deletion.
    let h = Harness::new(
        FakeApi::new().with_traefik().with_cnpg(),
        MediaServerCluster::test().nfs_config(),
    );
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    h.edit_spec(|s| s["transcode"]["size"] = json!("50Gi"));
    h.reconcile().await.unwrap();
    h.edit_spec(|s| {
        s["database"] =
            json!({"cloudNativePG": {"instances": 3, "storage": {"size": "1Gi"}}, "poolSize": 8});
    });
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    h.edit_spec(|s| {
        s["database"] = json!({"external": {"name": "ext-db", "key": "uri"}, "poolSize": 8});
        s["redis"] = json!({"external": {"name": "ext-redis", "key": "url"}});
        s["replicas"] = json!(1);
        s.as_object_mut().unwrap().remove("ingress");
    });
    h.reconcile().await.unwrap();
    h.api.edit(MSC_API, "MediaServerCluster", NS, NAME, |o| {
        o["status"]["members"] = json!([{
            "name": "gone", "ready": true, "role": "Follower",
            "lastHeartbeat": "2020-01-01T00:00:00Z",
        }]);
    });
    h.reconcile().await.unwrap();
    record(&h.api);
    // A person deletes the cluster (not the operator's request).
    let api: Api<MediaServerCluster> = Api::namespaced(h.ctx.client.clone(), NS);
    api.delete(NAME, &DeleteParams::default()).await.unwrap();
    h.api.clear_requests();
    h.reconcile().await.unwrap();
    let mut invalid = MediaServerCluster::test().without_ingress();
    invalid.spec.replicas = 0;
    let bad = Harness::new(FakeApi::new(), invalid);
    assert!(bad.reconcile().await.is_err());
    record(&h.api);
    record(&bad.api);

    // And `run`: leader election and the controller's watches.
    let running_api = FakeApi::new().with_traefik();
    running_api.insert(serde_json::to_value(MediaServerCluster::test()).unwrap());
    run_until_reconciled(&running_api, Vec::new()).await;
    record(&running_api);

    // The Recorder creates events with POST and patches them when the same event repeats
    // within minutes (a series), which these transitions-only events do not reach here.
    needed.insert((
        "events.k8s.io".to_owned(),
        "events".to_owned(),
        "patch".to_owned(),
    ));
    // RBAC escalation prevention: the operator may only grant, in the server's Role, what it
    // holds itself.
    let v = crate::validate::validate(&MediaServerCluster::test()).unwrap();
    for rule in crate::build::rbac::role(&v).rules.unwrap() {
        for group in rule.api_groups.unwrap() {
            for resource in rule.resources.clone().unwrap() {
                for verb in &rule.verbs {
                    needed.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }

    let granted = granted();
    let missing: Vec<_> = needed.difference(&granted).collect();
    assert!(missing.is_empty(), "deploy/rbac.yaml lacks {missing:?}");
    let unused: Vec<_> = granted.difference(&needed).collect();
    assert!(
        unused.is_empty(),
        "deploy/rbac.yaml grants what the operator never uses: {unused:?}"
    );
}

/// (namespace, API group, resource, verb) that `file`'s Roles grant in their namespace and its
/// ClusterRoles grant everywhere (namespace `*`).
fn granted_scoped(file: &str) -> std::collections::BTreeSet<(String, String, String, String)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = std::collections::BTreeSet::new();
    for doc in text.split("\n---\n") {
        let object: Value = serde_saphyr::from_str(doc).unwrap();
        let namespace = match object["kind"].as_str() {
            Some("ClusterRole") => "*".to_owned(),
            Some("Role") => object["metadata"]["namespace"].as_str().unwrap().to_owned(),
            _ => continue,
        };
        for rule in object["rules"].as_array().unwrap() {
            for group in rule["apiGroups"].as_array().unwrap() {
                for resource in rule["resources"].as_array().unwrap() {
                    for verb in rule["verbs"].as_array().unwrap() {
                        out.insert((
                            namespace.clone(),
                            group.as_str().unwrap().to_owned(),
                            resource.as_str().unwrap().to_owned(),
                            verb.as_str().unwrap().to_owned(),
                        ));
                    }
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn the_namespaced_install_grants_what_a_namespaced_operator_uses_and_only_there() {
    use ephyra_testsupport::kube_fake::parse_path;
    use std::collections::BTreeSet;

    // The split is the cluster-wide grant, no more and no less (that one is checked exactly
    // against what the operator uses), and only PersistentVolumes stay cluster-wide.
    let scoped = granted_scoped("../deploy/namespaced/rbac.yaml");
    let flattened: BTreeSet<(String, String, String)> = scoped
        .iter()
        .map(|(_, g, r, v)| (g.clone(), r.clone(), v.clone()))
        .collect();
    assert_eq!(flattened, granted());
    for (namespace, _, resource, _) in &scoped {
        assert!(
            namespace != "*" || resource == "persistentvolumes",
            "cluster-wide grant of {resource} in the namespaced install"
        );
    }

    // A namespaced operator: the controller's watches and every reconcile path.
    let running_api = FakeApi::new().with_traefik();
    running_api.insert(serde_json::to_value(MediaServerCluster::test().nfs_config()).unwrap());
    run_until_reconciled(&running_api, vec![NS.to_owned(), "media-other".to_owned()]).await;
    let h = Harness::with_traefik(MediaServerCluster::test().nfs_config());
    h.reconcile().await.unwrap();
    h.reconcile().await.unwrap();
    let mut requests = running_api.requests();
    requests.extend(h.api.requests());
    // A person deletes the cluster (not the operator's request); the operator cleans up.
    let api: Api<MediaServerCluster> = Api::namespaced(h.ctx.client.clone(), NS);
    api.delete(NAME, &DeleteParams::default()).await.unwrap();
    h.api.clear_requests();
    h.reconcile().await.unwrap();
    requests.extend(h.api.requests());
    let mut watched_namespaces = BTreeSet::new();
    for request in &requests {
        let Some(target) = parse_path(&request.path) else {
            continue;
        };
        // deploy/namespaced/rbac.yaml's Role stands for every watched namespace.
        let namespace = match target.namespace.as_str() {
            NS | "media-other" => "media",
            other => other,
        };
        if request.query.contains("watch=true") {
            watched_namespaces.insert(target.namespace.clone());
        }
        for (group, resource, verb) in request.permissions() {
            let allowed = [namespace, "*"].iter().any(|ns| {
                scoped.contains(&(
                    (*ns).to_owned(),
                    group.clone(),
                    resource.clone(),
                    verb.to_owned(),
                ))
            });
            assert!(
                allowed,
                "{} {} needs {verb} on {group}/{resource} in `{}`, not granted by \
                 deploy/namespaced/rbac.yaml",
                request.method, request.path, target.namespace
            );
        }
    }
    assert_eq!(
        watched_namespaces,
        BTreeSet::from([NS.to_owned(), "media-other".to_owned()]),
        "watches only in the listed namespaces (and the Lease namespace is never watched)"
    );
}

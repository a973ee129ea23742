//! Managed PostgreSQL: a one-replica StatefulSet with its own claim, a headless and a client
//! Service, and the Secret holding the generated password and the URL the server reads.
//!
//! The password is an input: `apply` reads it from the existing Secret and generates one only
//! when there is none, so it never changes under a running database. It lives only in the
//! Secret; the server gets the URL through `secretKeyRef`, PostgreSQL gets the password the
//! same way, and neither appears in a log, an event or a ConfigMap.

use std::collections::BTreeMap;

use ephyra_config::Secret as SecretValue;
use ephyra_crd::ManagedPostgresSpec;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSpec, PodTemplateSpec, Probe, Secret, Service, ServicePort, ServiceSpec,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    empty_dir, env_from_secret, env_value, meta, mount, pod_security, resources,
    restricted_container,
};
use crate::names::Component;
use crate::validate::ValidatedCluster;

/// PostgreSQL port.
pub const PORT: i32 = 5432;
/// Database user and database name.
pub const USER: &str = "ephyra";
/// Key of the password in the Secret.
pub const PASSWORD_KEY: &str = "password";
/// Key of the URL in the Secret (what the server reads).
pub const URL_KEY: &str = "url";
/// uid/gid of `postgres` in the official Alpine image.
const POSTGRES_UID: i64 = 70;

/// The Secret with the password, the user, the database and the URL.
pub fn secret(v: &ValidatedCluster, password: &SecretValue) -> Secret {
    let host = format!(
        "{}.{}.svc",
        v.names.postgres(),
        v.names.namespace().as_str()
    );
    let url = format!(
        "postgres://{USER}:{}@{host}:{PORT}/{USER}",
        percent_encode(password.expose())
    );
    let data = BTreeMap::from([
        ("database".to_owned(), ByteString(USER.as_bytes().to_vec())),
        (
            PASSWORD_KEY.to_owned(),
            ByteString(password.expose().as_bytes().to_vec()),
        ),
        (URL_KEY.to_owned(), ByteString(url.into_bytes())),
        ("username".to_owned(), ByteString(USER.as_bytes().to_vec())),
    ]);
    Secret {
        metadata: meta(v, v.names.postgres(), Component::Postgres),
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Percent-encodes everything but unreserved URL characters (a password edited by hand may
/// hold anything).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn service_spec(v: &ValidatedCluster, headless: bool) -> ServiceSpec {
    ServiceSpec {
        cluster_ip: headless.then(|| "None".to_owned()),
        selector: Some(v.names.selector(Component::Postgres)),
        ports: Some(vec![ServicePort {
            name: Some("postgres".to_owned()),
            port: PORT,
            target_port: Some(IntOrString::String("postgres".to_owned())),
            protocol: Some("TCP".to_owned()),
            ..ServicePort::default()
        }]),
        ..ServiceSpec::default()
    }
}

/// The headless Service that governs the StatefulSet's pod DNS names.
pub fn headless_service(v: &ValidatedCluster) -> Service {
    Service {
        metadata: meta(v, v.names.postgres_headless(), Component::Postgres),
        spec: Some(service_spec(v, true)),
        ..Service::default()
    }
}

/// The client Service the server connects to.
pub fn service(v: &ValidatedCluster) -> Service {
    Service {
        metadata: meta(v, v.names.postgres(), Component::Postgres),
        spec: Some(service_spec(v, false)),
        ..Service::default()
    }
}

fn pg_isready(failure_threshold: i32, period: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(
                [
                    "pg_isready",
                    "-U",
                    USER,
                    "-d",
                    USER,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    "5432",
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// The PostgreSQL StatefulSet.
pub fn stateful_set(v: &ValidatedCluster, pg: &ManagedPostgresSpec) -> StatefulSet {
    let secret = v.names.postgres();
    let container = Container {
        name: "postgres".to_owned(),
        image: Some(pg.image.clone()),
        env: Some(vec![
            env_value("PGDATA", "/var/lib/postgresql/data/pgdata"),
            env_value("POSTGRES_DB", USER),
            env_from_secret("POSTGRES_PASSWORD", &secret, PASSWORD_KEY),
            env_value("POSTGRES_USER", USER),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("postgres".to_owned()),
            container_port: PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        startup_probe: Some(pg_isready(60, 5)),
        readiness_probe: Some(pg_isready(3, 10)),
        liveness_probe: Some(pg_isready(6, 10)),
        resources: Some(pg.resources.clone().unwrap_or_else(|| {
            resources(
                &[("cpu", "100m"), ("memory", "256Mi")],
                &[("memory", "1Gi")],
            )
        })),
        security_context: Some(restricted_container()),
        volume_mounts: Some(vec![
            mount("data", "/var/lib/postgresql/data", false),
            mount("run", "/var/run/postgresql", false),
            mount("tmp", "/tmp", false),
        ]),
        ..Container::default()
    };
    let labels = v.names.labels(Component::Postgres);
    StatefulSet {
        metadata: meta(v, v.names.postgres(), Component::Postgres),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(v.names.postgres_headless()),
            selector: LabelSelector {
                match_labels: Some(v.names.selector(Component::Postgres)),
                match_expressions: None,
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_owned()),
                    when_scaled: Some("Retain".to_owned()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security(POSTGRES_UID, None)),
                    termination_grace_period_seconds: Some(60),
                    containers: vec![container],
                    volumes: Some(vec![empty_dir("run"), empty_dir("tmp")]),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".to_owned()),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                    storage_class_name: pg.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([("storage".to_owned(), pg.size.clone())])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;

    fn pg() -> ManagedPostgresSpec {
        match default_cluster().database {
            crate::validate::Database::Managed(pg) => pg,
            other => unreachable!("fixture is managed, not {other:?}"),
        }
    }

    #[test]
    fn postgres_renders_as_expected() {
        let v = default_cluster();
        let password = SecretValue::new("snapshot-password");
        insta::assert_snapshot!(format!(
            "{}---\n{}---\n{}---\n{}",
            yaml(&secret(&v, &password)),
            yaml(&headless_service(&v)),
            yaml(&service(&v)),
            yaml(&stateful_set(&v, &pg()))
        ));
    }

    #[test]
    fn the_selector_matches_the_template_and_every_mount_has_a_volume() {
        let v = default_cluster();
        let sts = stateful_set(&v, &pg());
        let spec = sts.spec.unwrap();
        crate::build::server_statefulset::tests::assert_selector_matches(
            &spec.selector,
            &spec.template,
        );
        crate::build::server_statefulset::tests::assert_mounts_have_volumes(
            &spec.template,
            spec.volume_claim_templates.as_deref().unwrap_or_default(),
        );
        assert_eq!(
            service(&v).spec.unwrap().selector.unwrap(),
            spec.selector.match_labels.unwrap()
        );
        assert_owned(&sts.metadata);
    }

    #[test]
    fn probes_use_pg_isready_and_the_password_comes_from_the_secret() {
        let sts = stateful_set(&default_cluster(), &pg());
        let container = &sts.spec.unwrap().template.spec.unwrap().containers[0];
        for probe in [
            &container.startup_probe,
            &container.readiness_probe,
            &container.liveness_probe,
        ] {
            let command = probe
                .as_ref()
                .unwrap()
                .exec
                .as_ref()
                .unwrap()
                .command
                .clone();
            assert_eq!(command.unwrap()[0], "pg_isready");
        }
        let env = container.env.as_ref().unwrap();
        let password = env.iter().find(|e| e.name == "POSTGRES_PASSWORD").unwrap();
        assert!(password.value.is_none());
        let key = password
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (key.name.as_str(), key.key.as_str()),
            ("jelly-postgres", "password")
        );
    }

    #[test]
    fn the_url_escapes_a_hand_edited_password() {
        let s = secret(&default_cluster(), &SecretValue::new("p@ss/w:rd"));
        let url = String::from_utf8(s.data.unwrap()["url"].0.clone()).unwrap();
        assert_eq!(
            url,
            "postgres://ephyra:p%40ss%2Fw%3Ard@jelly-postgres.media-test.svc:5432/ephyra"
        );
    }
}

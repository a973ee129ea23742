//! Managed Redis: a one-replica Deployment and its Service, plus a Secret with the URL the
//! server reads (URLs reach the server from Secrets only, managed or not).
//!
//! Redis holds nothing that cannot be rebuilt (QuickConnect codes, presence, the leadership
//! lease), so it runs without persistence on an `emptyDir`. Only the server pods may reach it
//! (see `network_policy`).

use std::collections::BTreeMap;

use ephyra_crd::ManagedRedisSpec;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, PodSpec, PodTemplateSpec, Probe, Secret, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{empty_dir, meta, mount, pod_security, resources, restricted_container};
use crate::names::Component;
use crate::validate::ValidatedCluster;

/// Redis port.
pub const PORT: i32 = 6379;
/// Key of the URL in the Secret.
pub const URL_KEY: &str = "url";
/// uid of `redis` in the official Alpine image.
const REDIS_UID: i64 = 999;

/// The Secret holding the URL of the managed Redis.
pub fn secret(v: &ValidatedCluster) -> Secret {
    let url = format!(
        "redis://{}.{}.svc:{PORT}",
        v.names.redis(),
        v.names.namespace().as_str()
    );
    Secret {
        metadata: meta(v, v.names.redis(), Component::Redis),
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            URL_KEY.to_owned(),
            ByteString(url.into_bytes()),
        )])),
        ..Secret::default()
    }
}

/// The Service the server connects to.
pub fn service(v: &ValidatedCluster) -> Service {
    Service {
        metadata: meta(v, v.names.redis(), Component::Redis),
        spec: Some(ServiceSpec {
            selector: Some(v.names.selector(Component::Redis)),
            ports: Some(vec![ServicePort {
                name: Some("redis".to_owned()),
                port: PORT,
                target_port: Some(IntOrString::String("redis".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn redis_ping(failure_threshold: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(["redis-cli", "ping"].map(str::to_owned).to_vec()),
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// The Redis Deployment.
pub fn deployment(v: &ValidatedCluster, redis: &ManagedRedisSpec) -> Deployment {
    let container = Container {
        name: "redis".to_owned(),
        image: Some(redis.image.clone()),
        args: Some(
            ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
                .map(str::to_owned)
                .to_vec(),
        ),
        ports: Some(vec![ContainerPort {
            name: Some("redis".to_owned()),
            container_port: PORT,
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(redis_ping(3)),
        liveness_probe: Some(redis_ping(6)),
        resources: Some(redis.resources.clone().unwrap_or_else(|| {
            resources(
                &[("cpu", "50m"), ("memory", "64Mi")],
                &[("memory", "256Mi")],
            )
        })),
        security_context: Some(restricted_container()),
        volume_mounts: Some(vec![mount("data", "/data", false)]),
        ..Container::default()
    };
    Deployment {
        metadata: meta(v, v.names.redis(), Component::Redis),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            selector: LabelSelector {
                match_labels: Some(v.names.selector(Component::Redis)),
                match_expressions: None,
            },
            // Never two Redis at once: the leadership lease must have one home.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".to_owned()),
                rolling_update: None,
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(v.names.labels(Component::Redis)),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security(REDIS_UID, None)),
                    containers: vec![container],
                    volumes: Some(vec![empty_dir("data")]),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;

    #[test]
    fn redis_renders_as_expected() {
        let v = default_cluster();
        insta::assert_snapshot!(format!(
            "{}---\n{}---\n{}",
            yaml(&secret(&v)),
            yaml(&service(&v)),
            yaml(&deployment(&v, &ManagedRedisSpec::default()))
        ));
    }

    #[test]
    fn the_selector_matches_the_template_and_every_mount_has_a_volume() {
        let v = default_cluster();
        let d = deployment(&v, &ManagedRedisSpec::default());
        let spec = d.spec.unwrap();
        crate::build::server_statefulset::tests::assert_selector_matches(
            &spec.selector,
            &spec.template,
        );
        crate::build::server_statefulset::tests::assert_mounts_have_volumes(&spec.template, &[]);
        assert_eq!(
            service(&v).spec.unwrap().selector.unwrap(),
            spec.selector.match_labels.unwrap()
        );
        assert_owned(&d.metadata);
    }
}

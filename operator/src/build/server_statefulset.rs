//! The Ephyra server StatefulSet: `replicas` pods sharing the config volume (`/config`), the
//! media library (`/media`, read-only) and the database, each with its own transcode claim
//! (`/transcode`, from `volumeClaimTemplates`).
//!
//! What makes it safe to run several: the configuration comes from the ConfigMap (its hash on
//! the pod template rolls the pods when it changes), URLs from Secrets only, the pod's identity
//! from the downward API (each replica reports itself under its own name); replicas spread
//! across nodes by default; readiness on `/health/ready` is also Traefik's health check (an
//! unready pod leaves the sticky pool); a short `preStop` pause lets the endpoint disappear
//! from the load balancer before the server starts draining.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodAffinityTerm, PodAntiAffinity,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SleepAction, TopologySpreadConstraint,
    Volume, VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config_map::{
    ADMIN_PORT, CONFIG_DIR, CONFIG_KEY, DATA_DIR, HTTP_PORT, MEDIA_DIR, TRANSCODE_DIR, config_hash,
};
use super::{
    empty_dir, env_from_secret, env_value, media_volume, meta, mount, pod_security, resources,
    restricted_container,
};
use crate::names::{CONFIG_HASH, Component};
use crate::validate::{Database, Redis, ValidatedCluster};
use ephyra_crd::SpreadPolicy;

/// uid and gid the server runs as.
pub const SERVER_UID: i64 = 10001;
/// Node label spreading is keyed on.
const HOSTNAME: &str = "kubernetes.io/hostname";

fn http_probe(path: &str, period: i32, timeout: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            scheme: Some("HTTP".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".to_owned()),
                field_path: path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// The server's environment: identity from the downward API, URLs from Secrets, then the
/// person's own variables (validate refused any that clash).
fn env(v: &ValidatedCluster) -> Vec<EnvVar> {
    let (db_secret, db_key) = match &v.database {
        Database::Managed(_) => (v.names.postgres(), super::postgres::URL_KEY.to_owned()),
        Database::External(r) => (r.name.clone(), r.key.clone()),
        // CloudNativePG writes the URL (pointing at the `-rw` Service) into its own Secret.
        Database::CloudNativePg(_) => (v.names.cnpg_app_secret(), super::cnpg::URI_KEY.to_owned()),
    };
    let (redis_secret, redis_key) = match &v.redis {
        Redis::Managed(_) => (v.names.redis(), super::redis::URL_KEY.to_owned()),
        Redis::External(r) => (r.name.clone(), r.key.clone()),
    };
    let mut env = vec![
        env_value("EPHYRA_CLUSTER_NAME", v.names.cluster().as_str()),
        env_from_secret("EPHYRA_DATABASE_URL", &db_secret, &db_key),
        env_from_secret("EPHYRA_REDIS_URL", &redis_secret, &redis_key),
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
    ];
    if v.gpu
        .as_ref()
        .is_some_and(|g| g.hwaccel == ephyra_config::HwAccelKind::Nvenc)
    {
        env.push(env_value(
            "NVIDIA_DRIVER_CAPABILITIES",
            "compute,video,utility",
        ));
    }
    if let (Some(admin), Some((secret, key))) = (&v.initial_admin, v.admin_password_ref()) {
        // Not optional: without the Secret or its key the pod does not start (the kubelet
        // refuses the container), so no replica ever runs with half an administrator.
        env.push(env_value("EPHYRA_ADMIN_USER", &admin.user_name));
        env.push(env_from_secret("EPHYRA_ADMIN_PASSWORD", &secret, &key));
    }
    env.extend(v.server.env.iter().cloned());
    env
}

/// Requests and limits: the person's, or defaults; plus the GPU limit.
fn server_resources(v: &ValidatedCluster) -> ResourceRequirements {
    let mut r = v.server.resources.clone().unwrap_or_else(|| {
        resources(
            &[("cpu", "250m"), ("memory", "512Mi")],
            &[("memory", "2Gi")],
        )
    });
    if let Some(gpu) = &v.gpu {
        r.limits
            .get_or_insert_with(BTreeMap::new)
            .insert(gpu.resource.to_owned(), Quantity(gpu.count.to_string()));
    }
    r
}

/// The person's node selector plus the GPU node label.
fn node_selector(v: &ValidatedCluster) -> Option<BTreeMap<String, String>> {
    let mut selector = v.scheduling.node_selector.clone();
    if let Some((key, value)) = v.gpu.as_ref().and_then(|g| g.node_label) {
        selector.insert(key.to_owned(), value.to_owned());
    }
    (!selector.is_empty()).then_some(selector)
}

/// The person's affinity, or the default spread across nodes.
fn spread(v: &ValidatedCluster) -> (Option<Affinity>, Option<Vec<TopologySpreadConstraint>>) {
    if let Some(affinity) = &v.scheduling.affinity {
        return (Some(affinity.clone()), None);
    }
    let selector = LabelSelector {
        match_labels: Some(v.names.selector(Component::Server)),
        match_expressions: None,
    };
    let term = PodAffinityTerm {
        label_selector: Some(selector.clone()),
        topology_key: HOSTNAME.to_owned(),
        ..PodAffinityTerm::default()
    };
    match v.scheduling.spread {
        SpreadPolicy::None => (None, None),
        SpreadPolicy::Preferred => (
            Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        WeightedPodAffinityTerm {
                            weight: 100,
                            pod_affinity_term: term,
                        },
                    ]),
                    ..PodAntiAffinity::default()
                }),
                ..Affinity::default()
            }),
            Some(vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: HOSTNAME.to_owned(),
                when_unsatisfiable: "ScheduleAnyway".to_owned(),
                label_selector: Some(selector),
                ..TopologySpreadConstraint::default()
            }]),
        ),
        SpreadPolicy::Required => (
            Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    required_during_scheduling_ignored_during_execution: Some(vec![term]),
                    ..PodAntiAffinity::default()
                }),
                ..Affinity::default()
            }),
            None,
        ),
    }
}

/// The server StatefulSet. `config_map` is the one built by `config_map`: its hash goes on the
/// pod template.
pub fn stateful_set(v: &ValidatedCluster, config_map: &ConfigMap) -> StatefulSet {
    let container = Container {
        name: "server".to_owned(),
        image: Some(v.server.image.clone()),
        image_pull_policy: v.server.image_pull_policy.map(|p| format!("{p:?}")),
        args: Some(vec![
            "--config".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_KEY}"),
        ]),
        env: Some(env(v)),
        ports: Some(vec![
            ContainerPort {
                name: Some("http".to_owned()),
                container_port: HTTP_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("admin".to_owned()),
                container_port: ADMIN_PORT,
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            },
        ]),
        // Startup allows five minutes for migrations on a first start.
        startup_probe: Some(http_probe("/health/live", 5, 3, 60)),
        readiness_probe: Some(http_probe("/health/ready", 5, 3, 2)),
        liveness_probe: Some(http_probe("/health/live", 10, 5, 3)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: 5 }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: Some(server_resources(v)),
        security_context: Some(restricted_container()),
        volume_mounts: Some(vec![
            mount("config", DATA_DIR, false),
            mount("media", MEDIA_DIR, true),
            mount("server-config", CONFIG_DIR, true),
            mount("tmp", "/tmp", false),
            mount(v.names.transcode_template(), TRANSCODE_DIR, false),
        ]),
        ..Container::default()
    };
    let volumes = vec![
        Volume {
            name: "config".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: v.names.config_claim(),
                read_only: None,
            }),
            ..Volume::default()
        },
        media_volume::volume(v),
        Volume {
            name: "server-config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: v.names.config_map(),
                default_mode: Some(0o444),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        empty_dir("tmp"),
    ];
    let (affinity, topology_spread_constraints) = spread(v);
    let supplemental_groups = v
        .gpu
        .as_ref()
        .and_then(|g| g.render_group)
        .map(|group| vec![group]);
    let labels = v.names.labels(Component::Server);
    StatefulSet {
        metadata: meta(v, v.names.server(), Component::Server),
        spec: Some(StatefulSetSpec {
            replicas: Some(v.replicas),
            service_name: Some(v.names.server_headless()),
            // Replicas are peers: start and stop them together, not one by one.
            pod_management_policy: Some("Parallel".to_owned()),
            selector: LabelSelector {
                match_labels: Some(v.names.selector(Component::Server)),
                match_expressions: None,
            },
            // Transcode claims are scratch space: remove them with their replica.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Delete".to_owned()),
                    when_scaled: Some("Delete".to_owned()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels.clone()),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH.to_owned(),
                        config_hash(config_map),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(v.names.server_identity()),
                    automount_service_account_token: Some(true),
                    enable_service_links: Some(false),
                    security_context: Some(pod_security(SERVER_UID, supplemental_groups)),
                    termination_grace_period_seconds: Some(30),
                    node_selector: node_selector(v),
                    tolerations: (!v.scheduling.tolerations.is_empty())
                        .then(|| v.scheduling.tolerations.clone()),
                    affinity,
                    topology_spread_constraints,
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(v.names.transcode_template().to_owned()),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                    storage_class_name: v.transcode.storage_class.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_owned(),
                            v.transcode.size.clone(),
                        )])),
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
pub(crate) mod tests {
    use super::*;
    use crate::build::config_map::config_map;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use crate::validate::ValidatedCluster;
    use ephyra_crd::MediaServerCluster;

    /// The selector's labels are all on the pod template.
    pub(crate) fn assert_selector_matches(selector: &LabelSelector, template: &PodTemplateSpec) {
        let wanted = selector.match_labels.as_ref().expect("selector has labels");
        assert!(!wanted.is_empty());
        let labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .expect("template has labels");
        for (k, v) in wanted {
            assert_eq!(labels.get(k), Some(v), "template lacks selector label {k}");
        }
    }

    /// Every container's mounts name a pod volume or a claim template.
    pub(crate) fn assert_mounts_have_volumes(
        template: &PodTemplateSpec,
        claims: &[PersistentVolumeClaim],
    ) {
        let spec = template.spec.as_ref().expect("template has a spec");
        let mut names: Vec<String> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect();
        names.extend(claims.iter().filter_map(|c| c.metadata.name.clone()));
        for container in &spec.containers {
            for m in container.volume_mounts.iter().flatten() {
                assert!(
                    names.contains(&m.name),
                    "mount {} of {} has no volume",
                    m.name,
                    container.name
                );
            }
        }
    }

    fn build(v: &ValidatedCluster) -> StatefulSet {
        stateful_set(v, &config_map(v).unwrap())
    }

    fn pod(sts: &StatefulSet) -> PodSpec {
        sts.spec.clone().unwrap().template.spec.unwrap()
    }

    #[test]
    fn server_statefulset_renders_as_expected() {
        insta::assert_snapshot!(yaml(&build(&default_cluster())));
    }

    #[test]
    fn server_statefulset_with_an_intel_gpu_renders_as_expected() {
        let v = validated(
            MediaServerCluster::test()
                .intel_gpu(44)
                .spread(SpreadPolicy::Required),
        );
        insta::assert_snapshot!(yaml(&build(&v)));
    }

    #[test]
    fn the_selector_matches_the_template_and_every_mount_has_a_volume() {
        for msc in [
            MediaServerCluster::test(),
            MediaServerCluster::test()
                .intel_gpu(44)
                .external_db()
                .external_redis(),
        ] {
            let sts = build(&validated(msc));
            let spec = sts.spec.clone().unwrap();
            assert_selector_matches(&spec.selector, &spec.template);
            assert_mounts_have_volumes(
                &spec.template,
                spec.volume_claim_templates.as_deref().unwrap_or_default(),
            );
            assert_owned(&sts.metadata);
        }
    }

    #[test]
    fn media_is_read_only_and_the_data_folders_are_where_the_config_says() {
        let sts = build(&default_cluster());
        let mounts = pod(&sts).containers[0].volume_mounts.clone().unwrap();
        let by_path: BTreeMap<_, _> = mounts
            .iter()
            .map(|m| (m.mount_path.as_str(), m.read_only))
            .collect();
        assert_eq!(by_path["/media"], Some(true));
        assert_eq!(by_path["/config"], None);
        assert_eq!(by_path["/transcode"], None);
        assert_eq!(by_path["/etc/ephyra"], Some(true));
    }

    #[test]
    fn an_intel_gpu_adds_the_limit_the_render_group_and_the_node_label() {
        let sts = build(&validated(MediaServerCluster::test().intel_gpu(44)));
        let pod = pod(&sts);
        let limits = pod.containers[0].resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["gpu.intel.com/i915"], Quantity("1".to_owned()));
        assert_eq!(
            pod.security_context.unwrap().supplemental_groups,
            Some(vec![44])
        );
        assert_eq!(
            pod.node_selector.unwrap()["intel.feature.node.kubernetes.io/gpu"],
            "true"
        );
    }

    #[test]
    fn an_nvidia_gpu_asks_for_nvidia_com_gpu() {
        let sts = build(&validated(MediaServerCluster::test().nvidia_gpu()));
        let limits = pod(&sts).containers[0]
            .resources
            .clone()
            .unwrap()
            .limits
            .unwrap();
        assert_eq!(limits["nvidia.com/gpu"], Quantity("1".to_owned()));
        assert!(!limits.contains_key("gpu.intel.com/i915"));
    }

    #[test]
    fn without_a_gpu_there_is_no_gpu_limit_group_or_selector() {
        let pod = pod(&build(&default_cluster()));
        let limits = pod.containers[0].resources.clone().unwrap().limits.unwrap();
        assert!(limits.keys().all(|k| !k.contains("gpu")));
        assert_eq!(pod.security_context.unwrap().supplemental_groups, None);
        assert_eq!(pod.node_selector, None);
    }

    #[test]
    fn replicas_spread_across_nodes_by_default_and_strictly_when_required() {
        let preferred = pod(&build(&default_cluster()));
        let tsc = preferred.topology_spread_constraints.unwrap();
        assert_eq!(tsc[0].topology_key, "kubernetes.io/hostname");
        assert_eq!(tsc[0].when_unsatisfiable, "ScheduleAnyway");
        let required = pod(&build(&validated(
            MediaServerCluster::test().spread(SpreadPolicy::Required),
        )));
        let anti = required.affinity.unwrap().pod_anti_affinity.unwrap();
        assert_eq!(
            anti.required_during_scheduling_ignored_during_execution
                .unwrap()[0]
                .topology_key,
            "kubernetes.io/hostname"
        );
        let none = pod(&build(&validated(
            MediaServerCluster::test().spread(SpreadPolicy::None),
        )));
        assert!(none.affinity.is_none() && none.topology_spread_constraints.is_none());
    }

    #[test]
    fn the_pod_is_locked_down() {
        let pod = pod(&build(&default_cluster()));
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let csc = pod.containers[0].security_context.clone().unwrap();
        assert_eq!(csc.allow_privilege_escalation, Some(false));
        assert_eq!(csc.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(csc.read_only_root_filesystem, Some(true));
        assert_eq!(pod.service_account_name.as_deref(), Some("jelly-server"));
    }

    #[test]
    fn the_initial_admin_reaches_the_replicas_by_a_required_secret_reference() {
        let env_of = |admin: Option<ephyra_crd::InitialAdminSpec>| {
            let mut msc = MediaServerCluster::test();
            msc.spec.server.initial_admin = admin;
            pod(&build(&validated(msc))).containers[0]
                .env
                .clone()
                .unwrap()
        };
        let none = env_of(None);
        assert!(!none.iter().any(|e| e.name.starts_with("EPHYRA_ADMIN_")));
        for (secret, expected) in [
            (None, ("jelly-admin", "password")),
            (
                Some(ephyra_crd::PasswordSecretRef {
                    name: "family-vault".to_owned(),
                    key: "pw".to_owned(),
                }),
                ("family-vault", "pw"),
            ),
        ] {
            let env = env_of(Some(ephyra_crd::InitialAdminSpec {
                user_name: "household-head".to_owned(),
                password_secret: secret,
            }));
            let find = |name: &str| env.iter().find(|e| e.name == name).unwrap().clone();
            assert_eq!(
                find("EPHYRA_ADMIN_USER").value.as_deref(),
                Some("household-head")
            );
            let password = find("EPHYRA_ADMIN_PASSWORD");
            assert!(password.value.is_none(), "never a literal password");
            let key = password.value_from.unwrap().secret_key_ref.unwrap();
            assert_eq!((key.name.as_str(), key.key.as_str()), expected);
            assert_ne!(
                key.optional,
                Some(true),
                "a missing Secret must stop the pod"
            );
        }
    }

    #[test]
    fn urls_come_from_secrets_and_identity_from_the_downward_api() {
        let env = pod(&build(&validated(MediaServerCluster::test().external_db()))).containers[0]
            .env
            .clone()
            .unwrap();
        let find = |name: &str| env.iter().find(|e| e.name == name).unwrap().clone();
        let db = find("EPHYRA_DATABASE_URL");
        assert!(db.value.is_none());
        let key = db.value_from.unwrap().secret_key_ref.unwrap();
        assert_eq!((key.name.as_str(), key.key.as_str()), ("ext-db", "uri"));
        let redis = find("EPHYRA_REDIS_URL")
            .value_from
            .unwrap()
            .secret_key_ref
            .unwrap();
        assert_eq!(redis.name, "jelly-redis");
        assert_eq!(
            find("POD_NAME")
                .value_from
                .unwrap()
                .field_ref
                .unwrap()
                .field_path,
            "metadata.name"
        );
        assert_eq!(
            find("POD_NAMESPACE")
                .value_from
                .unwrap()
                .field_ref
                .unwrap()
                .field_path,
            "metadata.namespace"
        );
        assert_eq!(find("EPHYRA_CLUSTER_NAME").value.as_deref(), Some("jelly"));
    }

    #[test]
    fn a_config_change_changes_the_pod_template_hash() {
        let a = build(&default_cluster());
        let mut msc = MediaServerCluster::test();
        msc.spec.transcode.max_concurrent = 7;
        let b = build(&validated(msc));
        let hash = |s: &StatefulSet| {
            s.spec
                .clone()
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[CONFIG_HASH]
                .clone()
        };
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn probes_hit_the_health_endpoints() {
        let c = pod(&build(&default_cluster())).containers[0].clone();
        let path = |p: Option<Probe>| p.unwrap().http_get.unwrap().path.unwrap();
        assert_eq!(path(c.readiness_probe), "/health/ready");
        assert_eq!(path(c.liveness_probe), "/health/live");
        assert_eq!(path(c.startup_probe), "/health/live");
    }
}

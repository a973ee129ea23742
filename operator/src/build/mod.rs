//! Build: a [`ValidatedCluster`] → every object the cluster needs, as data.
//!
//! One file per owned object, each a pure function with a YAML snapshot test and asserts for
//! its invariants. Nothing here talks to the API: inputs that only the API knows (the
//! PostgreSQL password generated at first apply) are passed in as [`BuildInputs`]. Output is
//! deterministic (ordered maps everywhere) so that the same spec always hashes the same and an
//! unchanged cluster costs no write (see `apply`).
//!
//! [`desired`] gathers the typed objects into [`Child`]ren: one uniform shape (a
//! `DynamicObject` and its `ApiResource`) that `apply` writes by server-side apply and
//! `render` prints.

pub mod admin;
pub mod cnpg;
pub mod config_map;
pub mod config_volume;
pub mod ingress_route;
pub mod media_volume;
pub mod network_policy;
pub mod pdb;
pub mod postgres;
pub mod rbac;
pub mod redis;
pub mod server_services;
pub mod server_statefulset;

use std::collections::BTreeMap;

use ephyra_config::Secret as SecretValue;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::names::{APPLIED_HASH, Component};
use crate::validate::{ConfigVolume, Database, Redis, ValidatedCluster};

/// Values the builders need but cannot make up themselves, because they must not change from
/// one reconcile to the next.
#[derive(Debug, Clone)]
pub struct BuildInputs {
    /// The managed PostgreSQL password: read from the existing Secret, or generated once by
    /// `apply` when there is none. Never logged ([`SecretValue`] does not print).
    pub postgres_password: SecretValue,
    /// The generated password of `spec.server.initialAdmin` (unused when the spec names a
    /// Secret or no administrator), kept the same way.
    pub admin_password: SecretValue,
    /// The managed Redis password, kept the same way (unused with an external Redis).
    pub redis_password: SecretValue,
}

/// Why the desired objects could not be built. These are bugs or unrenderable values, never
/// a person's mistake (that is `validate`'s job).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A typed object did not convert to JSON.
    #[error("cannot serialize {kind} {name}: {source}")]
    Serialize {
        /// Kind of the object.
        kind: String,
        /// Its name.
        name: String,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// The server configuration did not render.
    #[error("cannot render the server configuration: {0}")]
    RenderConfig(#[from] ephyra_config::ConfigError),
}

/// One desired object in the uniform shape `apply` and `render` use.
#[derive(Debug, Clone)]
pub struct Child {
    /// Group, version, kind and plural, for the dynamic API.
    pub resource: ApiResource,
    /// Cluster-scoped objects (the NFS PersistentVolume) carry no namespace and no owner
    /// reference.
    pub cluster_scoped: bool,
    /// The object, with [`APPLIED_HASH`] set to the hash of everything else in it.
    pub object: DynamicObject,
}

impl Child {
    /// The object's name.
    pub fn name(&self) -> String {
        self.object.name_any()
    }

    /// The object's kind.
    pub fn kind(&self) -> &str {
        &self.resource.kind
    }

    /// The hash of the desired state, as written in [`APPLIED_HASH`].
    pub fn hash(&self) -> Option<&str> {
        self.object
            .annotations()
            .get(APPLIED_HASH)
            .map(String::as_str)
    }

    /// A typed object as a child.
    pub fn typed<K>(object: &K, cluster_scoped: bool) -> Result<Child, BuildError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let value = serde_json::to_value(object).map_err(|source| BuildError::Serialize {
            kind: K::kind(&()).to_string(),
            name: object.meta().name.clone().unwrap_or_default(),
            source,
        })?;
        Child::from_value(resource, value, cluster_scoped)
    }

    /// A custom object (Traefik) given as JSON.
    pub fn dynamic(
        gvk: &GroupVersionKind,
        plural: &str,
        value: serde_json::Value,
    ) -> Result<Child, BuildError> {
        Child::from_value(ApiResource::from_gvk_with_plural(gvk, plural), value, false)
    }

    fn from_value(
        resource: ApiResource,
        value: serde_json::Value,
        cluster_scoped: bool,
    ) -> Result<Child, BuildError> {
        let kind = resource.kind.clone();
        let name = value["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let hash = hash_value(&value);
        let mut object: DynamicObject = serde_json::from_value(value)
            .map_err(|source| BuildError::Serialize { kind, name, source })?;
        object
            .annotations_mut()
            .insert(APPLIED_HASH.to_owned(), hash);
        Ok(Child {
            resource,
            cluster_scoped,
            object,
        })
    }
}

/// Hash of a JSON value: sha256 over its serialization (struct fields in declaration order,
/// maps ordered), first 16 bytes in hex.
pub fn hash_value(value: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    hash_bytes(&bytes)
}

/// sha256 of `bytes`, first 16 bytes in hex.
pub fn hash_bytes(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    hex::encode(&digest[..16])
}

/// Metadata of a namespaced child: name, namespace, labels and the controller reference.
pub fn meta(v: &ValidatedCluster, name: String, component: Component) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(v.names.namespace().to_string()),
        labels: Some(v.names.labels(component)),
        owner_references: v.owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    }
}

/// Ordered string map from pairs.
pub fn map<const N: usize>(pairs: [(&str, &str); N]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Every object the cluster needs, in the order they are applied: identity and configuration
/// first, then backends, then storage, then the server, then what exposes it. Traefik objects
/// come last so that a cluster without Traefik has everything else in place.
pub fn desired(v: &ValidatedCluster, inputs: &BuildInputs) -> Result<Vec<Child>, BuildError> {
    let mut out = vec![
        Child::typed(&rbac::service_account(v), false)?,
        Child::typed(&rbac::role(v), false)?,
        Child::typed(&rbac::role_binding(v), false)?,
    ];
    let config_map = config_map::config_map(v)?;
    out.push(Child::typed(&config_map, false)?);
    if let Some(secret) = admin::secret(v, &inputs.admin_password) {
        out.push(Child::typed(&secret, false)?);
    }

    if let Database::Managed(pg) = &v.database {
        out.push(Child::typed(
            &postgres::secret(v, &inputs.postgres_password),
            false,
        )?);
        out.push(Child::typed(&postgres::headless_service(v), false)?);
        out.push(Child::typed(&postgres::service(v), false)?);
        out.push(Child::typed(&postgres::stateful_set(v, pg), false)?);
    }
    if let Database::CloudNativePg(pg) = &v.database {
        out.push(cnpg::cluster(v, pg)?);
    }
    let redis_password_hash =
        matches!(v.redis, Redis::Managed(_)).then(|| redis::password_hash(&inputs.redis_password));
    if let (Redis::Managed(redis), Some(hash)) = (&v.redis, &redis_password_hash) {
        out.push(Child::typed(
            &redis::secret(v, &inputs.redis_password),
            false,
        )?);
        out.push(Child::typed(&redis::service(v), false)?);
        out.push(Child::typed(&redis::deployment(v, redis, hash), false)?);
    }
    if let Some(policy) = network_policy::network_policy(v) {
        out.push(Child::typed(&policy, false)?);
    }

    if let ConfigVolume::Nfs { .. } = v.config_volume {
        out.push(Child::typed(&config_volume::persistent_volume(v), true)?);
    }
    out.push(Child::typed(&config_volume::claim(v), false)?);

    out.push(Child::typed(&server_services::headless(v), false)?);
    out.push(Child::typed(&server_services::client(v), false)?);
    let mut server = server_statefulset::stateful_set(v, &config_map);
    if let (Some(hash), Some(template)) = (
        redis_password_hash,
        server.spec.as_mut().map(|s| &mut s.template.metadata),
    ) {
        // A regenerated Redis password restarts the replicas onto it.
        template
            .get_or_insert_with(Default::default)
            .annotations
            .get_or_insert_with(Default::default)
            .insert(redis::PASSWORD_HASH.to_owned(), hash);
    }
    out.push(Child::typed(&server, false)?);
    if let Some(pdb) = pdb::pdb(v) {
        out.push(Child::typed(&pdb, false)?);
    }

    if v.ingress.is_some() {
        out.push(ingress_route::middleware(v)?);
        out.push(ingress_route::retry_middleware(v)?);
        out.push(ingress_route::ingress_route(v)?);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers for builder tests.

    use super::*;
    use crate::testing::Fixture;
    use crate::validate::validate;
    use ephyra_crd::MediaServerCluster;

    /// The validated fixture.
    pub fn validated(msc: MediaServerCluster) -> ValidatedCluster {
        validate(&msc).expect("fixture is valid")
    }

    /// The default fixture, validated.
    pub fn default_cluster() -> ValidatedCluster {
        validated(MediaServerCluster::test())
    }

    /// Inputs with a recognisable fake password.
    pub fn inputs() -> BuildInputs {
        BuildInputs {
            postgres_password: SecretValue::new("test-password-not-real"),
            admin_password: SecretValue::new("test-admin-password-not-real"),
            redis_password: SecretValue::new("test-redis-password-not-real"),
        }
    }

    /// YAML of a typed object, for snapshots.
    pub fn yaml<T: Serialize>(object: &T) -> String {
        serde_saphyr::to_string(object).expect("objects render as YAML")
    }

    /// Asserts that the object carries the fixture's controller reference.
    pub fn assert_owned(meta: &ObjectMeta) {
        let owners = meta.owner_references.as_deref().unwrap_or_default();
        assert_eq!(owners.len(), 1, "{:?} has one owner", meta.name);
        assert_eq!(owners[0].uid, crate::testing::UID);
        assert_eq!(owners[0].kind, "MediaServerCluster");
        assert_eq!(owners[0].controller, Some(true));
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::testing::{Fixture, UID};
    use ephyra_crd::MediaServerCluster;

    #[test]
    fn every_namespaced_child_has_the_controller_reference() {
        for msc in [
            MediaServerCluster::test(),
            MediaServerCluster::test()
                .nfs_config()
                .intel_gpu(109)
                .external_db(),
        ] {
            let children = desired(&validated(msc), &inputs()).unwrap();
            for child in &children {
                let owners = child.object.owner_references();
                if child.cluster_scoped {
                    assert!(owners.is_empty(), "{} {}", child.kind(), child.name());
                    assert_eq!(child.object.metadata.namespace, None);
                } else {
                    assert_eq!(owners.len(), 1, "{} {}", child.kind(), child.name());
                    assert_eq!(owners[0].uid, UID);
                    assert_eq!(owners[0].controller, Some(true));
                    assert_eq!(
                        child.object.metadata.namespace.as_deref(),
                        Some(crate::testing::NS)
                    );
                }
            }
        }
    }

    #[test]
    fn the_same_spec_always_builds_the_same_hashes() {
        let a = desired(&default_cluster(), &inputs()).unwrap();
        let b = desired(&default_cluster(), &inputs()).unwrap();
        let ha: Vec<_> = a.iter().map(|c| c.hash().map(str::to_owned)).collect();
        let hb: Vec<_> = b.iter().map(|c| c.hash().map(str::to_owned)).collect();
        assert_eq!(ha, hb);
        assert!(ha.iter().all(Option::is_some));
    }

    #[test]
    fn a_replica_change_changes_only_the_server_statefulset_hash() {
        let a = desired(&default_cluster(), &inputs()).unwrap();
        let b = desired(
            &validated(MediaServerCluster::test().replicas(5)),
            &inputs(),
        )
        .unwrap();
        let changed: Vec<_> = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x.hash() != y.hash())
            .map(|(x, _)| format!("{}/{}", x.kind(), x.name()))
            .collect();
        assert_eq!(changed, vec!["StatefulSet/jelly-server"]);
        let c = desired(
            &validated(MediaServerCluster::test().transcode_size("1Ti")),
            &inputs(),
        )
        .unwrap();
        let changed: Vec<_> = a
            .iter()
            .zip(&c)
            .filter(|(x, y)| x.hash() != y.hash())
            .map(|(x, _)| format!("{}/{}", x.kind(), x.name()))
            .collect();
        assert_eq!(changed, vec!["StatefulSet/jelly-server"]);
    }

    #[test]
    fn every_child_has_the_standard_labels() {
        for child in desired(&default_cluster(), &inputs()).unwrap() {
            let labels = child.object.labels();
            for key in [
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
                "app.kubernetes.io/managed-by",
                "app.kubernetes.io/part-of",
            ] {
                assert!(labels.contains_key(key), "{} lacks {key}", child.name());
            }
        }
    }

    #[test]
    fn no_secret_value_reaches_a_config_map_or_a_plain_env_value() {
        let children = desired(
            &validated(MediaServerCluster::test().intel_gpu(44)),
            &inputs(),
        )
        .unwrap();
        for child in &children {
            let text = serde_json::to_string(&child.object).unwrap();
            if child.kind() != "Secret" {
                assert!(
                    !text.contains("test-password-not-real"),
                    "{} {} holds the password",
                    child.kind(),
                    child.name()
                );
                assert!(
                    !text.contains("postgres://"),
                    "{} holds a URL",
                    child.name()
                );
                assert!(!text.contains("redis://"), "{} holds a URL", child.name());
            }
        }
    }
}

/// The container security context every operator-made container gets: no privilege
/// escalation, every capability dropped, read-only root filesystem (writable paths are
/// volumes), non-root.
pub fn restricted_container() -> k8s_openapi::api::core::v1::SecurityContext {
    use k8s_openapi::api::core::v1::{Capabilities, SecurityContext};
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

/// The pod security context: non-root user `uid`, group `uid` owning the volumes, RuntimeDefault
/// seccomp, and any supplemental groups (the host's render group for GPUs).
pub fn pod_security(
    uid: i64,
    supplemental_groups: Option<Vec<i64>>,
) -> k8s_openapi::api::core::v1::PodSecurityContext {
    use k8s_openapi::api::core::v1::{PodSecurityContext, SeccompProfile};
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        fs_group_change_policy: Some("OnRootMismatch".to_owned()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        }),
        supplemental_groups,
        ..PodSecurityContext::default()
    }
}

/// An `emptyDir` pod volume (scratch space under a read-only root filesystem).
pub fn empty_dir(name: &str) -> k8s_openapi::api::core::v1::Volume {
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Volume};
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// A volume mount.
pub fn mount(name: &str, path: &str, read_only: bool) -> k8s_openapi::api::core::v1::VolumeMount {
    k8s_openapi::api::core::v1::VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// An environment variable read from a Secret key.
pub fn env_from_secret(name: &str, secret: &str, key: &str) -> k8s_openapi::api::core::v1::EnvVar {
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// A plain environment variable (never a secret).
pub fn env_value(name: &str, value: &str) -> k8s_openapi::api::core::v1::EnvVar {
    k8s_openapi::api::core::v1::EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

/// Resource requirements from a map of requests and of limits.
pub fn resources(
    requests: &[(&str, &str)],
    limits: &[(&str, &str)],
) -> k8s_openapi::api::core::v1::ResourceRequirements {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let to_map = |pairs: &[(&str, &str)]| {
        (!pairs.is_empty()).then(|| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
                .collect()
        })
    };
    k8s_openapi::api::core::v1::ResourceRequirements {
        requests: to_map(requests),
        limits: to_map(limits),
        ..Default::default()
    }
}

/// An object by resource and name.
pub type ObjectRef = (ApiResource, String);

/// Objects the operator creates only for some specs, as (resource, name): what `apply` prunes
/// when the spec no longer wants them. The managed PostgreSQL Secret is deliberately absent
/// (its password still opens the retained database volume), and so are the always-present
/// objects. Traefik objects are listed separately because pruning them needs Traefik's API.
pub fn optional_objects(v: &ValidatedCluster) -> (Vec<ObjectRef>, Vec<ObjectRef>) {
    use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
    use k8s_openapi::api::core::v1::{Secret, Service};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let n = &v.names;
    let core = vec![
        (ApiResource::erase::<StatefulSet>(&()), n.postgres()),
        (ApiResource::erase::<Service>(&()), n.postgres()),
        (ApiResource::erase::<Service>(&()), n.postgres_headless()),
        (ApiResource::erase::<Deployment>(&()), n.redis()),
        (ApiResource::erase::<Service>(&()), n.redis()),
        (ApiResource::erase::<Secret>(&()), n.redis()),
        (
            ApiResource::erase::<NetworkPolicy>(&()),
            n.backends_policy(),
        ),
        (
            ApiResource::erase::<PodDisruptionBudget>(&()),
            n.server_identity(),
        ),
    ];
    let (route, route_plural) = ingress_route::ingress_route_gvk();
    let (mw, mw_plural) = ingress_route::middleware_gvk();
    let traefik = vec![
        (
            ApiResource::from_gvk_with_plural(&route, route_plural),
            n.ingress_route(),
        ),
        (
            ApiResource::from_gvk_with_plural(&mw, mw_plural),
            n.headers_middleware(),
        ),
        (
            ApiResource::from_gvk_with_plural(&mw, mw_plural),
            n.retry_middleware(),
        ),
    ];
    (core, traefik)
}

/// Of `candidates`, those not among `desired`.
pub fn unwanted(candidates: Vec<ObjectRef>, desired: &[Child]) -> Vec<ObjectRef> {
    candidates
        .into_iter()
        .filter(|(r, name)| {
            !desired
                .iter()
                .any(|c| c.resource.kind == r.kind && &c.name() == name)
        })
        .collect()
}

/// Whether a child is a CloudNativePG object (applied only when its CRD is served).
pub fn is_cnpg(child: &Child) -> bool {
    child.resource.group == cnpg::CNPG_GROUP
}

/// Whether a child is a Traefik object.
pub fn is_traefik(child: &Child) -> bool {
    child.resource.group == ingress_route::TRAEFIK_GROUP
}

//! Names and labels of everything the operator creates, derived from the cluster's name.
//!
//! Every object name comes from here so that builders, `apply` (which looks objects up by name)
//! and `status` can never disagree. Pure: no API calls.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest as _, Sha256};

/// `app.kubernetes.io/name` of every object.
pub const APP_NAME: &str = "ephyra";
/// `app.kubernetes.io/managed-by` of every object.
pub const MANAGED_BY: &str = "ephyra-operator";
/// Server-side apply field manager: the one identity every operator write uses.
pub const FIELD_MANAGER: &str = "ephyra-operator";
/// Finalizer on a MediaServerCluster whose config volume is an operator-made (cluster-scoped)
/// NFS PersistentVolume: owner references cannot reach from a namespaced owner to a
/// cluster-scoped child, so the operator removes the PV itself.
pub const PV_FINALIZER: &str = "ephyra.io/config-volume";
/// Annotation holding the hash of the desired state last applied (see `apply`).
pub const APPLIED_HASH: &str = "ephyra.io/applied-hash";
/// Pod-template annotation holding the hash of the rendered server configuration, so that a
/// configuration change rolls the replicas.
pub const CONFIG_HASH: &str = "ephyra.io/config-hash";
/// Label on the cluster-scoped PV naming its cluster's namespace (owner references cannot).
pub const NAMESPACE_LABEL: &str = "ephyra.io/namespace";

/// Longest cluster name: `<name>-postgres` must stay ≤ 52 characters (StatefulSet pods carry a
/// `controller-revision-hash` label of the StatefulSet's name plus 11 characters, ≤ 63) and
/// `<name>-postgres-headless` must be a DNS-1035 label (≤ 63).
pub const MAX_CLUSTER_NAME: usize = 40;

/// A MediaServerCluster's name, checked to be a DNS-1035 label short enough for every derived
/// name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClusterName(String);

impl ClusterName {
    /// Checks `name`: lowercase letters, digits and `-`, starting with a letter, ending with a
    /// letter or digit, at most [`MAX_CLUSTER_NAME`] characters.
    pub fn parse(name: &str) -> Result<Self, String> {
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let starts = name.starts_with(|c: char| c.is_ascii_lowercase());
        let ends = name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        if name.is_empty() || !ok_chars || !starts || !ends {
            return Err(format!(
                "the cluster name `{name}` must start with a lowercase letter and contain only \
                 lowercase letters, digits and '-' (it names Services, which are DNS labels)"
            ));
        }
        if name.len() > MAX_CLUSTER_NAME {
            return Err(format!(
                "the cluster name `{name}` is {} characters long; at most {MAX_CLUSTER_NAME} fit \
                 the names derived from it (e.g. `{name}-postgres-headless`)",
                name.len()
            ));
        }
        Ok(ClusterName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A namespace name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Namespace(String);

impl Namespace {
    /// Wraps a namespace name (the API server already checked it).
    pub fn new(ns: impl Into<String>) -> Self {
        Namespace(ns.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which part of the stack an object belongs to (`app.kubernetes.io/component`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Component {
    /// The Ephyra server replicas and what serves them.
    Server,
    /// Managed PostgreSQL.
    Postgres,
    /// Managed Redis.
    Redis,
    /// The shared config volume.
    Config,
    /// Objects that concern the backends as a whole (the NetworkPolicy).
    Backends,
}

impl Component {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Server => "server",
            Component::Postgres => "postgres",
            Component::Redis => "redis",
            Component::Config => "config",
            Component::Backends => "backends",
        }
    }
}

/// Every name derived from one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    cluster: ClusterName,
    namespace: Namespace,
    /// The config PersistentVolume's name when an earlier operator version already bound the
    /// claim to it (a claim's `volumeName` cannot change); `None` for the current scheme.
    kept_config_volume: Option<String>,
}

impl Names {
    /// Names for cluster `cluster` in `namespace`.
    pub fn new(cluster: ClusterName, namespace: Namespace) -> Self {
        Names {
            cluster,
            namespace,
            kept_config_volume: None,
        }
    }

    /// These names, with the config PersistentVolume named `name` (see
    /// [`Names::legacy_config_volume`]).
    pub fn keeping_config_volume(mut self, name: String) -> Self {
        self.kept_config_volume = Some(name);
        self
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }

    /// The cluster's namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    fn with(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.cluster)
    }

    /// The server StatefulSet (pods `<name>-server-0`, ...).
    pub fn server(&self) -> String {
        self.with("server")
    }
    /// The headless Service that gives each server pod a stable DNS name.
    pub fn server_headless(&self) -> String {
        self.with("server-headless")
    }
    /// The client Service on 8096: the cluster's own name, so in-cluster clients use
    /// `http://<name>:8096`.
    pub fn client_service(&self) -> String {
        self.cluster.to_string()
    }
    /// The rendered server configuration.
    pub fn config_map(&self) -> String {
        self.with("config")
    }
    /// The shared config claim.
    pub fn config_claim(&self) -> String {
        self.with("config")
    }
    /// The cluster-scoped NFS PersistentVolume of the config claim. PV names are global, so
    /// the namespace and the name both appear, followed by a hash of the pair: joined by '-'
    /// alone, `a-b`/`c` and `a`/`b-c` would name the same PV, and one cluster would take over
    /// (and on deletion remove) the other's volume.
    pub fn config_volume(&self) -> String {
        if let Some(kept) = &self.kept_config_volume {
            return kept.clone();
        }
        let digest = Sha256::digest(format!("{}/{}", self.namespace, self.cluster));
        format!(
            "ephyra-{}-{}-config-{}",
            self.namespace,
            self.cluster,
            hex::encode(&digest[..4])
        )
    }
    /// The config PersistentVolume's name before it carried a hash (operator 0.1): kept for
    /// clusters whose claim is already bound to it.
    pub fn legacy_config_volume(&self) -> String {
        format!("ephyra-{}-{}-config", self.namespace, self.cluster)
    }
    /// Name of the transcode volumeClaimTemplate (claims `transcode-<name>-server-N`).
    pub fn transcode_template(&self) -> &'static str {
        "transcode"
    }
    /// Managed PostgreSQL StatefulSet, its client Service and its Secret.
    pub fn postgres(&self) -> String {
        self.with("postgres")
    }
    /// The CloudNativePG Cluster of `spec.database.cloudNativePG`.
    pub fn cnpg(&self) -> String {
        self.with("pg")
    }
    /// The Secret CloudNativePG generates for the application user (keys `uri`, `password`…).
    pub fn cnpg_app_secret(&self) -> String {
        format!("{}-app", self.cnpg())
    }
    /// CloudNativePG's Service that always points at the primary.
    pub fn cnpg_rw_service(&self) -> String {
        format!("{}-rw", self.cnpg())
    }
    /// The Secret with the generated password of `spec.server.initialAdmin`.
    pub fn admin(&self) -> String {
        self.with("admin")
    }
    /// Managed PostgreSQL headless Service.
    pub fn postgres_headless(&self) -> String {
        self.with("postgres-headless")
    }
    /// Managed Redis Deployment, Service and Secret.
    pub fn redis(&self) -> String {
        self.with("redis")
    }
    /// The server's ServiceAccount, Role, RoleBinding and PodDisruptionBudget.
    pub fn server_identity(&self) -> String {
        self.with("server")
    }
    /// NetworkPolicy guarding PostgreSQL and Redis.
    pub fn backends_policy(&self) -> String {
        self.with("backends")
    }
    /// The Traefik IngressRoute.
    pub fn ingress_route(&self) -> String {
        self.cluster.to_string()
    }
    /// The Traefik headers Middleware.
    pub fn headers_middleware(&self) -> String {
        self.with("headers")
    }
    /// The Traefik retry Middleware.
    pub fn retry_middleware(&self) -> String {
        self.with("retry")
    }

    /// Labels that select one component's pods (also the Service and PDB selectors).
    pub fn selector(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), APP_NAME.to_owned()),
            (
                "app.kubernetes.io/instance".to_owned(),
                self.cluster.to_string(),
            ),
            (
                "app.kubernetes.io/component".to_owned(),
                component.as_str().to_owned(),
            ),
        ])
    }

    /// All labels of an object of `component`.
    pub fn labels(&self, component: Component) -> BTreeMap<String, String> {
        let mut labels = self.selector(component);
        labels.insert(
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGED_BY.to_owned(),
        );
        labels.insert("app.kubernetes.io/part-of".to_owned(), APP_NAME.to_owned());
        labels
    }

    /// The server pods' selector as a string, for `status.selector` (scale subresource).
    pub fn server_selector_string(&self) -> String {
        self.selector(Component::Server)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_must_be_dns_labels_that_leave_room_for_suffixes() {
        assert!(ClusterName::parse("media").is_ok());
        assert!(ClusterName::parse("a1-b2").is_ok());
        assert!(ClusterName::parse("1media").is_err());
        assert!(ClusterName::parse("Media").is_err());
        assert!(ClusterName::parse("media-").is_err());
        assert!(ClusterName::parse("").is_err());
        let long = "m".repeat(MAX_CLUSTER_NAME + 1);
        let err = ClusterName::parse(&long).unwrap_err();
        assert!(err.contains("at most 40"), "{err}");
        let longest = Names::new(
            ClusterName::parse(&"m".repeat(MAX_CLUSTER_NAME)).unwrap(),
            Namespace::new("ns"),
        );
        assert!(longest.postgres_headless().len() <= 63);
        assert!(longest.postgres().len() <= 52);
        assert!(longest.server().len() <= 52);
    }

    #[test]
    fn config_volumes_of_look_alike_namespace_and_name_pairs_differ() {
        let pv = |ns: &str, name: &str| {
            Names::new(ClusterName::parse(name).unwrap(), Namespace::new(ns)).config_volume()
        };
        let (one, other) = (pv("a-b", "c"), pv("a", "b-c"));
        assert_ne!(one, other);
        assert!(one.starts_with("ephyra-a-b-c-config-"), "{one}");
        assert_eq!(one, pv("a-b", "c"), "stable across reconciles");
        // The longest namespace and cluster name still make a valid object name.
        let longest = pv(&"n".repeat(63), &"m".repeat(MAX_CLUSTER_NAME));
        assert!(longest.len() <= 253, "{}", longest.len());
        let kept = Names::new(ClusterName::parse("c").unwrap(), Namespace::new("a-b"));
        let legacy = kept.legacy_config_volume();
        assert_eq!(legacy, "ephyra-a-b-c-config");
        assert_eq!(
            kept.keeping_config_volume(legacy.clone()).config_volume(),
            legacy
        );
    }

    #[test]
    fn selector_string_lists_the_server_selector_labels_in_order() {
        let names = Names::new(ClusterName::parse("jelly").unwrap(), Namespace::new("ns"));
        assert_eq!(
            names.server_selector_string(),
            "app.kubernetes.io/component=server,app.kubernetes.io/instance=jelly,app.kubernetes.io/name=ephyra"
        );
    }
}

//! `MediaServerCluster.spec`: what a person asks for.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::MediaServerClusterStatus;

/// Where Ephyra's images are published (`make images` tags them so too).
pub const IMAGE_REGISTRY: &str = "ghcr.io/ephyra-media";
/// Default server image: the workspace version, so the operator deploys the server it was
/// released with. `make images` builds this tag; a test keeps deploy/ and the scripts in step.
pub const DEFAULT_SERVER_IMAGE: &str = concat!(
    "ghcr.io/ephyra-media/ephyra-server:",
    env!("CARGO_PKG_VERSION")
);
/// Default managed PostgreSQL image.
pub const DEFAULT_POSTGRES_IMAGE: &str = "docker.io/library/postgres:17.6-alpine";
/// Default managed Redis image.
pub const DEFAULT_REDIS_IMAGE: &str = "docker.io/library/redis:7.4.6-alpine";

/// A highly available Jellyfin-compatible media server: replicas of the Ephyra server sharing one
/// PostgreSQL and one Redis, a shared config volume, per-replica transcode storage, optional GPU
/// acceleration and a sticky Traefik route.
// Each `printcolumn(...)` repeats `type_` and `json_path`; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[kube(
    group = "ephyra.io",
    version = "v1alpha1",
    kind = "MediaServerCluster",
    plural = "mediaserverclusters",
    shortname = "msc",
    category = "ephyra",
    doc = "A highly available Jellyfin-compatible media server, run by the Ephyra operator",
    namespaced,
    status = "MediaServerClusterStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether the cluster serves clients"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.readyReplicas",
        description = "Replicas ready to serve"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Replicas asked for",
        priority = "1"
    ),
    printcolumn(
        name = "Leader",
        type_ = "string",
        json_path = ".status.leader.pod",
        description = "Pod holding leadership"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.url",
        description = "Where clients connect"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("self.replicas == 1 || self.disruptionBudget.minAvailable < self.replicas").message("disruptionBudget.minAvailable must be lower than replicas, or no node could ever be drained"))]
#[x_kube(validation = Rule::new("self.hardwareAcceleration.kind == 'None' || !has(self.hardwareAcceleration.renderGroup) || self.hardwareAcceleration.renderGroup > 0").message("hardwareAcceleration.renderGroup must be the host's render group id (a positive number)"))]
#[serde(rename_all = "camelCase")]
pub struct MediaServerClusterSpec {
    /// Number of server replicas. Any replica serves any request; two or more survive the loss
    /// of a pod or a node without clients noticing.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 32))]
    pub replicas: i32,

    /// The Ephyra server containers.
    #[serde(default)]
    pub server: ServerSpec,

    /// The media library volume, mounted read-only at /media in every replica.
    pub media: MediaSpec,

    /// The shared ReadWriteMany config volume, mounted at /config in every replica.
    #[serde(default)]
    pub config: ConfigVolumeSpec,

    /// Per-replica scratch storage for transcodes, mounted at /transcode (one claim per replica).
    #[serde(default)]
    pub transcode: TranscodeSpec,

    /// Hardware video acceleration for transcodes.
    #[serde(default)]
    pub hardware_acceleration: HardwareAccelerationSpec,

    /// The PostgreSQL database: managed by the operator, or an external one.
    #[serde(default)]
    pub database: DatabaseSpec,

    /// Redis for shared sessions and leadership: managed by the operator, or an external one.
    #[serde(default)]
    pub redis: RedisSpec,

    /// How clients reach the cluster: a Traefik IngressRoute with a sticky cookie. Without it,
    /// only the in-cluster Service is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    /// Where replicas may run. By default they are spread across nodes.
    #[serde(default)]
    pub scheduling: SchedulingSpec,

    /// The PodDisruptionBudget that keeps replicas serving during node drains.
    #[serde(default)]
    pub disruption_budget: DisruptionBudgetSpec,
}

fn default_replicas() -> i32 {
    2
}

/// The Ephyra server containers.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// Container image of the Ephyra server.
    #[serde(default = "default_server_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// Image pull policy: Always, IfNotPresent or Never. Defaults to Kubernetes' own rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// CPU and memory requests and limits of each replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Log filter of the server, e.g. `info` or `ephyra_server=debug,info`.
    #[serde(default = "default_log_level")]
    #[schemars(length(min = 1, max = 256))]
    pub log_level: String,

    /// Name shown to clients on their server list. Defaults to the cluster's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub server_name: Option<String>,

    /// Extra environment variables for the server container (EPHYRA_* overrides).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,

    /// The first administrator, created by the server once, when its database has no user
    /// (a password changed later is never overwritten). Without it, the first person to open
    /// the web client creates the administrator in Jellyfin's first-run wizard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_admin: Option<InitialAdminSpec>,
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            image: default_server_image(),
            image_pull_policy: None,
            resources: None,
            log_level: default_log_level(),
            server_name: None,
            env: Vec::new(),
            initial_admin: None,
        }
    }
}

/// The first administrator's account.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new(r"self.userName.matches('^\\S(.*\\S)?$')").message("initialAdmin.userName must not be blank or start or end with a space"))]
#[serde(rename_all = "camelCase")]
pub struct InitialAdminSpec {
    /// User name to sign in with (matched without regard to case).
    #[schemars(length(min = 1, max = 100))]
    pub user_name: String,

    /// Where the password is: `key` of an existing Secret. Leave out to have the operator
    /// generate a password into the Secret `<cluster>-admin` (key `password`), read with
    /// `kubectl get secret <cluster>-admin -o jsonpath='{.data.password}' | base64 -d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<PasswordSecretRef>,
}

/// A key of a Secret holding a password.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSecretRef {
    /// Name of the Secret, in the cluster's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_password_key() -> String {
    "password".to_owned()
}

fn default_server_image() -> String {
    DEFAULT_SERVER_IMAGE.to_owned()
}

fn default_log_level() -> String {
    "info".to_owned()
}

/// Kubernetes image pull policy.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull only when the node does not have the image.
    IfNotPresent,
    /// Never pull.
    Never,
}

/// An NFS export.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("self.path.startsWith('/')").message("nfs.path must be an absolute export path such as /export/media"))]
#[x_kube(validation = Rule::new(r"!self.path.matches('(^|/)\\.\\.(/|$)')").message("nfs.path must not contain '..' segments"))]
#[serde(rename_all = "camelCase")]
pub struct NfsSource {
    /// Host name or IP address of the NFS server.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?)$")
    )]
    pub server: String,
    /// Exported path on the server.
    #[schemars(length(min = 1, max = 4096), regex(pattern = r"^[^\x00-\x1f\x7f]*$"))]
    pub path: String,
}

/// The media library volume.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("has(self.nfs) != has(self.existingClaim)").message("media: set exactly one of nfs or existingClaim"))]
#[serde(rename_all = "camelCase")]
pub struct MediaSpec {
    /// Mount this NFS export read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<NfsSource>,

    /// Or mount this existing PersistentVolumeClaim (in the cluster's namespace) read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub existing_claim: Option<String>,

    /// Libraries inside the volume. By default: Films in `movies/` and Series in `tv/`.
    #[serde(default = "default_libraries")]
    #[schemars(length(min = 1, max = 32))]
    pub libraries: Vec<LibrarySpec>,
}

fn default_libraries() -> Vec<LibrarySpec> {
    vec![
        LibrarySpec {
            name: "Films".to_owned(),
            kind: LibraryKind::Movies,
            paths: vec!["movies".to_owned()],
        },
        LibrarySpec {
            name: "Series".to_owned(),
            kind: LibraryKind::Tvshows,
            paths: vec!["tv".to_owned()],
        },
    ]
}

/// One library.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("self.paths.all(p, !p.startsWith('/') && !p.contains('..'))").message("library paths are relative to the media volume and must not contain '..'"))]
#[serde(rename_all = "camelCase")]
pub struct LibrarySpec {
    /// Name shown to clients.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// What the library holds: `movies` or `tvshows`.
    pub kind: LibraryKind,
    /// Folders of this library, relative to the media volume (`.` for its root).
    #[schemars(length(min = 1, max = 16))]
    #[schemars(inner(length(min = 1, max = 1024)))]
    pub paths: Vec<String>,
}

/// What a library holds.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LibraryKind {
    /// Films.
    Movies,
    /// Series with seasons and episodes.
    Tvshows,
}

/// The shared configuration volume (ReadWriteMany).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("!(has(self.nfs) && has(self.storageClassName))").message("config: use either nfs or storageClassName, not both"))]
#[x_kube(validation = Rule::new("isQuantity(string(self.size)) && quantity(string(self.size)).sign() > 0").message("config.size must be a size such as 20Gi or 500M (a Kubernetes quantity above zero)"))]
#[serde(rename_all = "camelCase")]
pub struct ConfigVolumeSpec {
    /// An NFS export; the operator creates a PersistentVolume and a claim bound to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nfs: Option<NfsSource>,

    /// Or a storage class that provisions ReadWriteMany volumes (e.g. `longhorn`, `nfs-client`).
    /// When neither is set the cluster's default storage class is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub storage_class_name: Option<String>,

    /// Size of the config volume.
    #[serde(default = "default_config_size")]
    pub size: Quantity,
}

impl Default for ConfigVolumeSpec {
    fn default() -> Self {
        ConfigVolumeSpec {
            nfs: None,
            storage_class_name: None,
            size: default_config_size(),
        }
    }
}

fn default_config_size() -> Quantity {
    Quantity("1Gi".to_owned())
}

/// Per-replica transcode storage.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("isQuantity(string(self.size)) && quantity(string(self.size)).sign() > 0").message("transcode.size must be a size such as 20Gi or 500M (a Kubernetes quantity above zero)"))]
#[serde(rename_all = "camelCase")]
pub struct TranscodeSpec {
    /// Storage class of each replica's transcode claim; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub storage_class_name: Option<String>,

    /// Size of each replica's transcode claim.
    #[serde(default = "default_transcode_size")]
    pub size: Quantity,

    /// Transcodes one replica runs at once.
    #[serde(default = "default_max_transcodes")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrent: i32,
}

impl Default for TranscodeSpec {
    fn default() -> Self {
        TranscodeSpec {
            storage_class_name: None,
            size: default_transcode_size(),
            max_concurrent: default_max_transcodes(),
        }
    }
}

fn default_transcode_size() -> Quantity {
    Quantity("20Gi".to_owned())
}

fn default_max_transcodes() -> i32 {
    2
}

/// Hardware video acceleration.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("self.kind == 'None' || self.count >= 1").message("hardwareAcceleration.count must be at least 1 when acceleration is enabled"))]
#[x_kube(validation = Rule::new("self.kind == 'Intel' || !has(self.intelResource)").message("hardwareAcceleration.intelResource applies only to kind Intel"))]
#[serde(rename_all = "camelCase")]
pub struct HardwareAccelerationSpec {
    /// `None` (software), `Intel` (Quick Sync / VA-API through the Intel GPU device plugin) or
    /// `Nvidia` (NVENC through the NVIDIA device plugin).
    #[serde(default)]
    pub kind: AccelerationKind,

    /// Intel device-plugin resource: `i915` (most iGPUs and Arc) or `xe` (newer chips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_resource: Option<IntelResource>,

    /// GPUs requested per replica. With several replicas on one iGPU, the Intel plugin's
    /// `sharedDevNum` must be at least the number of replicas.
    #[serde(default = "default_gpu_count")]
    #[schemars(range(min = 0, max = 8))]
    pub count: i32,

    /// The host's `render` group id, added to the pods' supplemental groups so the server may
    /// open /dev/dri/renderD* (some device paths keep the host's group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub render_group: Option<i64>,

    /// Schedule only on nodes labelled by Node Feature Discovery as having the GPU. On by default.
    #[serde(default = "default_true")]
    pub require_gpu_node_label: bool,
}

impl Default for HardwareAccelerationSpec {
    fn default() -> Self {
        HardwareAccelerationSpec {
            kind: AccelerationKind::None,
            intel_resource: None,
            count: default_gpu_count(),
            render_group: None,
            require_gpu_node_label: true,
        }
    }
}

fn default_gpu_count() -> i32 {
    1
}

fn default_true() -> bool {
    true
}

/// Which GPU vendor, if any.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccelerationKind {
    /// Software transcoding.
    #[default]
    None,
    /// Intel Quick Sync / VA-API (`gpu.intel.com/i915` or `gpu.intel.com/xe`).
    Intel,
    /// NVIDIA NVENC (`nvidia.com/gpu`).
    Nvidia,
}

/// The Intel GPU device-plugin resource name.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IntelResource {
    /// `gpu.intel.com/i915`.
    #[default]
    I915,
    /// `gpu.intel.com/xe`.
    Xe,
}

/// A key of a Secret in the cluster's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "default_url_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

fn default_url_key() -> String {
    "url".to_owned()
}

/// The PostgreSQL database.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("!(has(self.cloudNativePG) && has(self.external))").message("database: cloudNativePG and external exclude each other (CloudNativePG runs the database the replicas use)"))]
#[x_kube(validation = Rule::new("(has(self.managed) ? 1 : 0) + (has(self.external) ? 1 : 0) + (has(self.cloudNativePG) ? 1 : 0) == 1").message("database: set exactly one of managed, external or cloudNativePG"))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// A PostgreSQL StatefulSet run by the operator, with a generated password (the default:
    /// needs nothing installed beside the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedPostgresSpec>,
    /// An existing PostgreSQL: a Secret key holding `postgres://user:password@host:5432/db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<SecretKeyRef>,
    /// Highly available PostgreSQL run by CloudNativePG (which must be installed): the operator
    /// creates a `postgresql.cnpg.io/v1` Cluster `<cluster>-pg`, and the replicas connect to its
    /// `-rw` Service with the URL CloudNativePG writes into the Secret `<cluster>-pg-app`.
    #[serde(
        default,
        rename = "cloudNativePG",
        skip_serializing_if = "Option::is_none"
    )]
    pub cloud_native_pg: Option<CloudNativePgSpec>,
    /// Connections each replica may open. Keep replicas × this below the server's
    /// `max_connections` (100 for the managed one, which leaves room for 2–8 replicas).
    #[serde(default = "default_pool_size")]
    #[schemars(range(min = 1, max = 100))]
    pub pool_size: i32,
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        DatabaseSpec {
            managed: Some(ManagedPostgresSpec::default()),
            external: None,
            cloud_native_pg: None,
            pool_size: default_pool_size(),
        }
    }
}

fn default_pool_size() -> i32 {
    8
}

/// The operator-managed PostgreSQL.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("isQuantity(string(self.size)) && quantity(string(self.size)).sign() > 0").message("database.managed.size must be a size such as 20Gi or 500M (a Kubernetes quantity above zero)"))]
#[serde(rename_all = "camelCase")]
pub struct ManagedPostgresSpec {
    /// PostgreSQL container image.
    #[serde(default = "default_postgres_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// Storage class of the database volume; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub storage_class_name: Option<String>,
    /// Size of the database volume.
    #[serde(default = "default_postgres_size")]
    pub size: Quantity,
    /// CPU and memory of the database container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedPostgresSpec {
    fn default() -> Self {
        ManagedPostgresSpec {
            image: default_postgres_image(),
            storage_class_name: None,
            size: default_postgres_size(),
            resources: None,
        }
    }
}

fn default_postgres_image() -> String {
    DEFAULT_POSTGRES_IMAGE.to_owned()
}

fn default_postgres_size() -> Quantity {
    Quantity("5Gi".to_owned())
}

/// PostgreSQL run by CloudNativePG: a primary and hot standbys with automatic failover.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.synchronousReplicas) || self.synchronousReplicas < self.instances").message("database.cloudNativePG.synchronousReplicas must be lower than instances (the primary does not count)"))]
#[serde(rename_all = "camelCase")]
pub struct CloudNativePgSpec {
    /// PostgreSQL instances: one primary and `instances - 1` hot standbys. Three survive the
    /// loss of a node; one has no failover at all.
    #[serde(default = "default_cnpg_instances")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: i32,
    /// The volume of each instance (required: the database must not live on an emptyDir).
    pub storage: CloudNativePgStorageSpec,
    /// CPU and memory of each instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// PostgreSQL parameters (`postgresql.conf`), e.g. `max_connections: "200"`. Parameters
    /// CloudNativePG manages itself are refused by CloudNativePG.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// Standbys that must confirm each commit before it is acknowledged (quorum-based
    /// synchronous replication). Unset: asynchronous replication, where a failover can lose the
    /// last commits the primary acknowledged; 1 or more: no acknowledged commit is lost while
    /// that many standbys are reachable, at the price of write latency (and writes wait when
    /// fewer standbys are up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8))]
    pub synchronous_replicas: Option<i32>,
    /// PostgreSQL operand image; CloudNativePG's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image_name: Option<String>,
    /// Keep the CloudNativePG Cluster (and so its volumes and data) when the MediaServerCluster
    /// is deleted. On by default: the Cluster then carries no owner reference and must be
    /// deleted by hand (`kubectl delete cluster.postgresql.cnpg.io <cluster>-pg`). Set to false
    /// to have it, and its data, deleted with the MediaServerCluster.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

fn default_cnpg_instances() -> i32 {
    3
}

/// Storage of each CloudNativePG instance.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("isQuantity(string(self.size)) && quantity(string(self.size)).sign() > 0").message("database.cloudNativePG.storage.size must be a size such as 20Gi or 500M (a Kubernetes quantity above zero)"))]
#[serde(rename_all = "camelCase")]
pub struct CloudNativePgStorageSpec {
    /// Size of each instance's volume.
    pub size: Quantity,
    /// Storage class of the volumes; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub storage_class_name: Option<String>,
}

/// Redis.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("redis: set exactly one of managed or external"))]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// A Redis Deployment run by the operator (ephemeral: it holds nothing that cannot be rebuilt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedRedisSpec>,
    /// An existing Redis: a Secret key holding `redis://[:password@]host:6379`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<SecretKeyRef>,
}

impl Default for RedisSpec {
    fn default() -> Self {
        RedisSpec {
            managed: Some(ManagedRedisSpec::default()),
            external: None,
        }
    }
}

/// The operator-managed Redis.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRedisSpec {
    /// Redis container image.
    #[serde(default = "default_redis_image")]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,
    /// CPU and memory of the Redis container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

impl Default for ManagedRedisSpec {
    fn default() -> Self {
        ManagedRedisSpec {
            image: default_redis_image(),
            resources: None,
        }
    }
}

fn default_redis_image() -> String {
    DEFAULT_REDIS_IMAGE.to_owned()
}

/// How clients reach the cluster through Traefik.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("self.host.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("ingress.host must be a DNS name such as media.example.com (lowercase letters, digits, dots and dashes)"))]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name clients use, e.g. `media.example.com`.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,

    /// Traefik entry points the route listens on.
    #[serde(default = "default_entry_points")]
    #[schemars(length(min = 1, max = 8))]
    #[schemars(inner(length(min = 1, max = 63)))]
    pub entry_points: Vec<String>,

    /// TLS for the route; plain HTTP when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// The session-affinity cookie. Any replica can serve any request, so affinity only keeps
    /// caches warm and transcodes local; losing it costs nothing but a cache miss.
    #[serde(default)]
    pub sticky_cookie: StickyCookieSpec,
}

fn default_entry_points() -> Vec<String> {
    vec!["websecure".to_owned()]
}

/// TLS: a certificate Secret or a Traefik certificate resolver.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("has(self.secretName) != has(self.certResolver)").message("ingress.tls: set exactly one of secretName or certResolver"))]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret in the cluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub secret_name: Option<String>,
    /// Or a Traefik certificate resolver (e.g. `letsencrypt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub cert_resolver: Option<String>,
}

/// The sticky session cookie Traefik sets.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[x_kube(validation = Rule::new("self.sameSite != 'none' || self.secure").message("ingress.stickyCookie: sameSite none requires secure (browsers drop the cookie otherwise)"))]
#[serde(rename_all = "camelCase")]
pub struct StickyCookieSpec {
    /// Cookie name.
    #[serde(default = "default_cookie_name")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_.-]+$"))]
    pub name: String,
    /// Send the cookie over HTTPS only.
    #[serde(default = "default_true")]
    pub secure: bool,
    /// Hide the cookie from scripts.
    #[serde(default = "default_true")]
    pub http_only: bool,
    /// SameSite policy: `none`, `lax` or `strict`.
    #[serde(default)]
    pub same_site: SameSite,
    /// Lifetime of the cookie in seconds; 0 makes it a session cookie.
    #[serde(default = "default_cookie_max_age")]
    #[schemars(range(min = 0, max = 31536000))]
    pub max_age: i32,
}

impl Default for StickyCookieSpec {
    fn default() -> Self {
        StickyCookieSpec {
            name: default_cookie_name(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            max_age: default_cookie_max_age(),
        }
    }
}

fn default_cookie_name() -> String {
    "ephyra_affinity".to_owned()
}

fn default_cookie_max_age() -> i32 {
    86400
}

/// Cookie SameSite policy.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// Sent on cross-site requests too (requires secure).
    None,
    /// Sent on top-level navigations.
    #[default]
    Lax,
    /// Same site only.
    Strict,
}

/// Placement of the server replicas.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingSpec {
    /// Only nodes with these labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for tainted nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Full affinity rules; replaces the default spread when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// How hard to spread replicas across nodes: `Preferred` (default), `Required`, or `None`.
    #[serde(default)]
    pub spread: SpreadPolicy,
}

/// How replicas are spread across nodes.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SpreadPolicy {
    /// Spread when possible (keeps running on a one-node cluster).
    #[default]
    Preferred,
    /// Never two replicas on one node.
    Required,
    /// No spreading rule.
    None,
}

/// The PodDisruptionBudget of the server replicas.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DisruptionBudgetSpec {
    /// Create the PodDisruptionBudget.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Replicas that must stay available during voluntary disruptions such as node drains.
    #[serde(default = "default_min_available")]
    #[schemars(range(min = 0, max = 31))]
    pub min_available: i32,
}

impl Default for DisruptionBudgetSpec {
    fn default() -> Self {
        DisruptionBudgetSpec {
            enabled: true,
            min_available: default_min_available(),
        }
    }
}

fn default_min_available() -> i32 {
    1
}

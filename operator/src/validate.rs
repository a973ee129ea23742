//! Validate: a `MediaServerCluster` as stored → a [`ValidatedCluster`] that the builders use
//! ("parse, don't validate").
//!
//! The CRD's schema and CEL rules refuse most wrong specs at admission, so a spec that fails
//! here slipped past them (an older CRD, a rule that cannot be expressed in CEL, an object
//! read from a file by `render`). Every problem is reported at once, each naming its field, so
//! a person can fix the object in one go. Defaults the schema does not express (server name,
//! absolute library folders, the GPU resource name and node label) are resolved here.
//!
//! Pure: no API calls.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;

use ephyra_config::HwAccelKind;
use ephyra_crd::{
    AccelerationKind, CloudNativePgSpec, ConfigVolumeSpec, DatabaseSpec, DisruptionBudgetSpec,
    HardwareAccelerationSpec, IngressSpec, IntelResource, LibraryKind, LibrarySpec,
    ManagedPostgresSpec, ManagedRedisSpec, MediaServerCluster, MediaSpec, NfsSource, RedisSpec,
    SameSite, SchedulingSpec, SecretKeyRef, ServerSpec, StickyCookieSpec, TranscodeSpec,
};
use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use crate::names::{ClusterName, Names, Namespace};

/// Environment variables the operator sets itself, or whose value the rendered pod depends on
/// (the probes and Services target the listen ports, the identity comes from the pod);
/// `spec.server.env` may not override them.
pub const RESERVED_ENV: &[&str] = &[
    "EPHYRA_DATABASE_URL",
    "EPHYRA_REDIS_URL",
    "EPHYRA_CLUSTER_NAME",
    "EPHYRA_LISTEN",
    "EPHYRA_ADMIN_LISTEN",
    "EPHYRA_NAMESPACE",
    "EPHYRA_POD_NAME",
    "POD_NAME",
    "POD_NAMESPACE",
];

/// Most GPUs one replica may ask for (the CRD's maximum).
pub const MAX_GPUS: i32 = 8;

/// Set by the operator only when `spec.server.initialAdmin` is: then `spec.server.env` may not
/// set them too.
pub const ADMIN_ENV: &[&str] = &["EPHYRA_ADMIN_USER", "EPHYRA_ADMIN_PASSWORD"];

/// Node Feature Discovery's label for nodes with an Intel GPU.
pub const INTEL_GPU_NODE_LABEL: (&str, &str) = ("intel.feature.node.kubernetes.io/gpu", "true");
/// NVIDIA GPU Feature Discovery's label for nodes with an NVIDIA GPU.
pub const NVIDIA_GPU_NODE_LABEL: (&str, &str) = ("nvidia.com/gpu.present", "true");

/// One problem with a spec: the field at fault and what is expected instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// Path of the field, e.g. `spec.media.nfs.path`.
    pub field: String,
    /// What is wrong, for a person.
    pub message: String,
}

impl fmt::Display for SpecProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSpec(pub Vec<SpecProblem>);

/// The media library volume.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaVolume {
    /// An NFS export mounted read-only straight into the pods.
    Nfs {
        /// NFS server.
        server: String,
        /// Export path (absolute).
        path: String,
    },
    /// An existing claim in the cluster's namespace, mounted read-only.
    Claim(String),
}

/// One library, with folders as the server sees them (absolute, under `/media`).
#[derive(Debug, Clone, PartialEq)]
pub struct Library {
    /// Name shown to clients.
    pub name: String,
    /// What it holds.
    pub kind: LibraryKind,
    /// Absolute folders under `/media`.
    pub folders: Vec<PathBuf>,
}

/// The shared config volume.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigVolume {
    /// An operator-made NFS PersistentVolume and a claim bound to it.
    Nfs {
        /// NFS server.
        server: String,
        /// Export path (absolute).
        path: String,
        /// Capacity written on the PV and the claim.
        size: Quantity,
    },
    /// A claim provisioned by a storage class (the cluster default when `None`).
    Dynamic {
        /// Storage class.
        storage_class: Option<String>,
        /// Requested size.
        size: Quantity,
    },
}

/// Per-replica transcode storage.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcode {
    /// Storage class of each claim; the cluster default when `None`.
    pub storage_class: Option<String>,
    /// Size of each claim.
    pub size: Quantity,
    /// Transcodes one replica runs at once.
    pub max_concurrent: u32,
}

/// A GPU request, resolved to the device-plugin resource and the ffmpeg API.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    /// Extended resource name, e.g. `gpu.intel.com/i915`.
    pub resource: &'static str,
    /// Devices per replica.
    pub count: i32,
    /// Host render group added to the pods' supplemental groups.
    pub render_group: Option<i64>,
    /// Node label the pods require (Node Feature Discovery), unless turned off.
    pub node_label: Option<(&'static str, &'static str)>,
    /// What the server's transcoder uses.
    pub hwaccel: HwAccelKind,
    /// Render node for VA-API.
    pub device: Option<PathBuf>,
}

/// Where the database comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Database {
    /// The operator's PostgreSQL StatefulSet.
    Managed(ManagedPostgresSpec),
    /// A Secret key holding the URL of an existing PostgreSQL.
    External(SecretKeyRef),
    /// A CloudNativePG Cluster the operator creates.
    CloudNativePg(CloudNativePg),
}

/// `spec.database.cloudNativePG`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudNativePg {
    /// Instances (primary and standbys), at least 1.
    pub instances: i32,
    /// Size of each instance's volume.
    pub size: Quantity,
    /// Storage class; the cluster default when `None`.
    pub storage_class: Option<String>,
    /// Resources of each instance.
    pub resources: Option<ResourceRequirements>,
    /// `postgresql.conf` parameters.
    pub parameters: std::collections::BTreeMap<String, String>,
    /// Standbys that confirm each commit (quorum synchronous replication), if any.
    pub synchronous_replicas: Option<i32>,
    /// Operand image; CloudNativePG's default when `None`.
    pub image_name: Option<String>,
    /// Whether the Cluster outlives the MediaServerCluster (then it has no owner reference).
    pub retain_on_delete: bool,
}

/// Where Redis comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Redis {
    /// The operator's Redis Deployment.
    Managed(ManagedRedisSpec),
    /// A Secret key holding the URL of an existing Redis.
    External(SecretKeyRef),
}

/// TLS of the route.
#[derive(Debug, Clone, PartialEq)]
pub enum Tls {
    /// A `kubernetes.io/tls` Secret.
    Secret(String),
    /// A Traefik certificate resolver.
    Resolver(String),
}

/// The sticky session cookie.
#[derive(Debug, Clone, PartialEq)]
pub struct StickyCookie {
    /// Cookie name.
    pub name: String,
    /// HTTPS only.
    pub secure: bool,
    /// Hidden from scripts.
    pub http_only: bool,
    /// `none`, `lax` or `strict`.
    pub same_site: &'static str,
    /// Seconds; 0 for a session cookie.
    pub max_age: i32,
}

/// The Traefik route.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingress {
    /// Host name.
    pub host: String,
    /// Traefik entry points.
    pub entry_points: Vec<String>,
    /// TLS, if any.
    pub tls: Option<Tls>,
    /// The affinity cookie.
    pub sticky_cookie: StickyCookie,
}

impl Ingress {
    /// The URL clients use.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }
}

/// A spec that passed every check, with defaults resolved: what the builders consume.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedCluster {
    /// Every derived name.
    pub names: Names,
    /// Controller reference to the MediaServerCluster; `None` when rendering a file (no uid),
    /// in which case children carry no owner reference.
    pub owner: Option<OwnerReference>,
    /// `metadata.generation` of the spec this was validated from.
    pub generation: Option<i64>,
    /// Server replicas.
    pub replicas: i32,
    /// The first administrator the server creates, if the spec names one.
    pub initial_admin: Option<InitialAdmin>,
    /// Server container settings.
    pub server: ServerSpec,
    /// Name shown to clients (defaults to the cluster's name).
    pub server_name: String,
    /// The library volume.
    pub media: MediaVolume,
    /// Libraries, with absolute folders.
    pub libraries: Vec<Library>,
    /// The shared config volume.
    pub config_volume: ConfigVolume,
    /// Per-replica transcode storage.
    pub transcode: Transcode,
    /// GPU, if asked for.
    pub gpu: Option<Gpu>,
    /// Database source.
    pub database: Database,
    /// Connections per replica.
    pub pool_size: u32,
    /// Redis source.
    pub redis: Redis,
    /// The route, if asked for.
    pub ingress: Option<Ingress>,
    /// Placement.
    pub scheduling: SchedulingSpec,
    /// `minAvailable` of the PodDisruptionBudget; `None` when disabled or with one replica
    /// (a budget on a single replica would block every node drain).
    pub min_available: Option<i32>,
}

/// `spec.server.initialAdmin`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialAdmin {
    /// The user name.
    pub user_name: String,
    /// Where the password comes from.
    pub password: AdminPassword,
}

/// Where the initial administrator's password is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminPassword {
    /// Generated by the operator into the Secret `<cluster>-admin`, key `password`.
    Generated,
    /// A Secret the person made.
    External {
        /// The Secret's name.
        name: String,
        /// The key holding the password.
        key: String,
    },
}

impl ValidatedCluster {
    /// The Secret and key the replicas read the initial administrator's password from.
    pub fn admin_password_ref(&self) -> Option<(String, String)> {
        self.initial_admin.as_ref().map(|a| match &a.password {
            AdminPassword::Generated => (
                self.names.admin(),
                crate::build::admin::PASSWORD_KEY.to_owned(),
            ),
            AdminPassword::External { name, key } => (name.clone(), key.clone()),
        })
    }
}

struct Problems(Vec<SpecProblem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecProblem {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Which NFS exports the operator may mount, from its own configuration (never from a spec):
/// whoever may create a MediaServerCluster otherwise decides what every node mounts, and the
/// config volume is a cluster-scoped PersistentVolume. Empty lists allow any (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NfsPolicy {
    /// NFS servers allowed, compared without regard to case; empty: any.
    pub servers: Vec<String>,
    /// Export path prefixes allowed, whole segments only (`/export/media` allows
    /// `/export/media/films`, not `/export/media-private`); empty: any.
    pub path_prefixes: Vec<String>,
}

impl NfsPolicy {
    /// Reads comma-separated lists (blank entries ignored).
    pub fn from_lists(servers: &str, path_prefixes: &str) -> Self {
        let list = |text: &str| {
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        NfsPolicy {
            servers: list(servers),
            path_prefixes: list(path_prefixes),
        }
    }

    /// Every NFS source of `v` this policy refuses, naming the field and what is allowed.
    pub fn check(&self, v: &ValidatedCluster) -> Result<(), InvalidSpec> {
        let mut p = Problems(Vec::new());
        if let MediaVolume::Nfs { server, path } = &v.media {
            self.check_one("spec.media.nfs", server, path, &mut p);
        }
        if let ConfigVolume::Nfs { server, path, .. } = &v.config_volume {
            self.check_one("spec.config.nfs", server, path, &mut p);
        }
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(InvalidSpec(p.0))
        }
    }

    fn check_one(&self, field: &str, server: &str, path: &str, p: &mut Problems) {
        if !self.servers.is_empty() && !self.servers.iter().any(|s| s.eq_ignore_ascii_case(server))
        {
            p.add(
                format!("{field}.server"),
                format!(
                    "`{server}` is not among the NFS servers this operator may mount ({}); ask \
                     the operator's administrator",
                    self.servers.join(", ")
                ),
            );
        }
        let segments = |path: &str| -> Vec<String> {
            path.split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(str::to_owned)
                .collect()
        };
        let wanted = segments(path);
        let under = |prefix: &String| {
            let prefix = segments(prefix);
            wanted.len() >= prefix.len() && wanted[..prefix.len()] == prefix[..]
        };
        if !self.path_prefixes.is_empty() && !self.path_prefixes.iter().any(under) {
            p.add(
                format!("{field}.path"),
                format!(
                    "`{path}` is not under an export this operator may mount ({}); ask the \
                     operator's administrator",
                    self.path_prefixes.join(", ")
                ),
            );
        }
    }
}

/// Checks `msc` and resolves its defaults. Each section of the spec has its own function; they
/// all add to one list, in spec order, so every problem is reported at once.
pub fn validate(msc: &MediaServerCluster) -> Result<ValidatedCluster, InvalidSpec> {
    let mut p = Problems(Vec::new());
    let spec = &msc.spec;

    let name = ClusterName::parse(&msc.name_any()).map_err(|message| {
        InvalidSpec(vec![SpecProblem {
            field: "metadata.name".to_owned(),
            message,
        }])
    })?;
    let namespace = Namespace::new(msc.namespace().unwrap_or_else(|| "default".to_owned()));
    let names = Names::new(name.clone(), namespace);

    check_replicas(spec.replicas, &mut p);
    let initial_admin = check_server(&spec.server, &mut p);
    let media = media_volume(&spec.media, &mut p);
    let libraries = libraries(&spec.media.libraries, &mut p);
    let config_volume = config_volume(&spec.config, &mut p);
    let transcode = transcode(&spec.transcode, &mut p);
    let gpu = gpu(&spec.hardware_acceleration, &mut p);
    let (database, pool_size) = database(&spec.database, &mut p);
    let redis = redis(&spec.redis, &mut p);
    let ingress = spec.ingress.as_ref().map(|ing| ingress(ing, &mut p));
    let min_available = min_available(&spec.disruption_budget, spec.replicas, &mut p);

    if !p.0.is_empty() {
        return Err(InvalidSpec(p.0));
    }

    Ok(ValidatedCluster {
        server_name: spec
            .server
            .server_name
            .clone()
            .unwrap_or_else(|| name.to_string()),
        names,
        owner: owner_reference(msc),
        generation: msc.meta().generation,
        replicas: spec.replicas,
        initial_admin,
        server: spec.server.clone(),
        media,
        libraries,
        config_volume,
        transcode,
        gpu,
        database,
        pool_size,
        redis,
        ingress,
        scheduling: spec.scheduling.clone(),
        min_available,
    })
}

/// `spec.replicas`.
fn check_replicas(replicas: i32, p: &mut Problems) {
    if !(1..=32).contains(&replicas) {
        p.add("spec.replicas", "must be between 1 and 32");
    }
}

/// `spec.server`: the environment it may set and the initial administrator.
fn check_server(server: &ServerSpec, p: &mut Problems) -> Option<InitialAdmin> {
    for env in &server.env {
        if !is_env_name(&env.name) {
            p.add(
                format!("spec.server.env[{}]", env.name.escape_debug()),
                "must be a variable name: letters, digits, '_', '-' and '.', not starting with \
                 a digit",
            );
        }
        if env.name == "EPHYRA_ADMIN_PASSWORD" && env.value.is_some() {
            p.add(
                "spec.server.env[EPHYRA_ADMIN_PASSWORD]",
                "must not be written in the spec in plain text (anyone who may read the \
                 MediaServerCluster or the StatefulSet would see it): use \
                 spec.server.initialAdmin, or valueFrom.secretKeyRef",
            );
        }
        if RESERVED_ENV.contains(&env.name.as_str()) {
            p.add(
                format!("spec.server.env[{}]", env.name),
                "is set by the operator (URLs come from Secrets, identity from the pod, the \
                 listen addresses are the ports the probes and Services use)",
            );
        }
        if server.initial_admin.is_some() && ADMIN_ENV.contains(&env.name.as_str()) {
            p.add(
                format!("spec.server.env[{}]", env.name),
                "is set by the operator from spec.server.initialAdmin; set one or the other",
            );
        }
    }
    if let Some(resources) = &server.resources {
        check_resources("spec.server.resources", resources, p);
    }
    let admin = server.initial_admin.as_ref()?;
    let name = admin.user_name.as_str();
    if name.trim().is_empty() || name.trim() != name || name.chars().count() > 100 {
        p.add(
            "spec.server.initialAdmin.userName",
            "must be 1 to 100 characters, not blank, without leading or trailing spaces",
        );
    }
    if let Some(secret) = &admin.password_secret {
        check_object_name(
            "spec.server.initialAdmin.passwordSecret.name",
            &secret.name,
            p,
        );
        check_secret_key(
            "spec.server.initialAdmin.passwordSecret.key",
            &secret.key,
            p,
        );
    }
    Some(InitialAdmin {
        user_name: admin.user_name.clone(),
        password: match &admin.password_secret {
            Some(r) => AdminPassword::External {
                name: r.name.clone(),
                key: r.key.clone(),
            },
            None => AdminPassword::Generated,
        },
    })
}

/// `spec.media`: the volume.
fn media_volume(media: &MediaSpec, p: &mut Problems) -> MediaVolume {
    match (&media.nfs, &media.existing_claim) {
        (Some(nfs), None) => {
            check_nfs("spec.media.nfs", nfs, "/export/media", p);
            MediaVolume::Nfs {
                server: nfs.server.clone(),
                path: nfs.path.clone(),
            }
        }
        (None, Some(claim)) => {
            check_object_name("spec.media.existingClaim", claim, p);
            MediaVolume::Claim(claim.clone())
        }
        _ => {
            p.add("spec.media", "set exactly one of nfs or existingClaim");
            MediaVolume::Claim(String::new())
        }
    }
}

/// `spec.media.libraries`, with folders resolved under `/media`.
fn libraries(specs: &[LibrarySpec], p: &mut Problems) -> Vec<Library> {
    let mut libraries = Vec::new();
    let mut library_names = BTreeSet::new();
    if specs.is_empty() {
        p.add("spec.media.libraries", "needs at least one library");
    }
    for (i, lib) in specs.iter().enumerate() {
        if lib.name.trim().is_empty() {
            p.add(
                format!("spec.media.libraries[{i}].name"),
                "must not be empty",
            );
        }
        if !library_names.insert(lib.name.to_lowercase()) {
            p.add(
                format!("spec.media.libraries[{i}].name"),
                format!("the library name `{}` is used twice", lib.name),
            );
        }
        if lib.paths.is_empty() {
            p.add(
                format!("spec.media.libraries[{i}].paths"),
                "needs at least one folder",
            );
        }
        let mut folders = Vec::new();
        for (j, path) in lib.paths.iter().enumerate() {
            let bad = path.is_empty()
                || path.starts_with('/')
                || path.split('/').any(|segment| segment == "..");
            if bad {
                p.add(
                    format!("spec.media.libraries[{i}].paths[{j}]"),
                    format!(
                        "`{path}` must be relative to the media volume (e.g. `movies`) and \
                         must not contain '..'"
                    ),
                );
                continue;
            }
            let relative = path.trim_end_matches('/');
            folders.push(if relative == "." || relative.is_empty() {
                PathBuf::from("/media")
            } else {
                PathBuf::from("/media").join(relative.trim_start_matches("./"))
            });
        }
        libraries.push(Library {
            name: lib.name.clone(),
            kind: lib.kind,
            folders,
        });
    }
    libraries
}

/// `spec.config`: the shared config volume.
fn config_volume(config: &ConfigVolumeSpec, p: &mut Problems) -> ConfigVolume {
    check_size("spec.config.size", &config.size, p);
    if let Some(class) = &config.storage_class_name {
        check_object_name("spec.config.storageClassName", class, p);
    }
    match (&config.nfs, &config.storage_class_name) {
        (Some(_), Some(_)) => {
            p.add(
                "spec.config",
                "use either nfs or storageClassName, not both",
            );
            ConfigVolume::Dynamic {
                storage_class: None,
                size: config.size.clone(),
            }
        }
        (Some(nfs), None) => {
            check_nfs("spec.config.nfs", nfs, "/export/ephyra-config", p);
            ConfigVolume::Nfs {
                server: nfs.server.clone(),
                path: nfs.path.clone(),
                size: config.size.clone(),
            }
        }
        (None, storage_class) => ConfigVolume::Dynamic {
            storage_class: storage_class.clone(),
            size: config.size.clone(),
        },
    }
}

/// `spec.transcode`.
fn transcode(spec: &TranscodeSpec, p: &mut Problems) -> Transcode {
    check_size("spec.transcode.size", &spec.size, p);
    if let Some(class) = &spec.storage_class_name {
        check_object_name("spec.transcode.storageClassName", class, p);
    }
    let max_concurrent = u32::try_from(spec.max_concurrent)
        .ok()
        .filter(|n| *n >= 1)
        .unwrap_or_else(|| {
            p.add("spec.transcode.maxConcurrent", "must be at least 1");
            1
        });
    Transcode {
        storage_class: spec.storage_class_name.clone(),
        size: spec.size.clone(),
        max_concurrent,
    }
}

/// `spec.hardwareAcceleration`, resolved to the device-plugin resource and the ffmpeg API.
fn gpu(hw: &HardwareAccelerationSpec, p: &mut Problems) -> Option<Gpu> {
    if hw.kind != AccelerationKind::Intel && hw.intel_resource.is_some() {
        p.add(
            "spec.hardwareAcceleration.intelResource",
            "applies only to kind Intel",
        );
    }
    if hw.kind == AccelerationKind::None {
        return None;
    }
    if hw.count < 1 {
        p.add(
            "spec.hardwareAcceleration.count",
            "must be at least 1 when acceleration is enabled",
        );
    }
    if hw.count > MAX_GPUS {
        p.add(
            "spec.hardwareAcceleration.count",
            format!("must be at most {MAX_GPUS} (GPUs per replica)"),
        );
    }
    if hw.render_group.is_some_and(|g| g <= 0) {
        p.add(
            "spec.hardwareAcceleration.renderGroup",
            "must be the host's render group id (a positive number)",
        );
    }
    Some(match hw.kind {
        AccelerationKind::Nvidia => Gpu {
            resource: "nvidia.com/gpu",
            count: hw.count,
            render_group: hw.render_group,
            node_label: hw.require_gpu_node_label.then_some(NVIDIA_GPU_NODE_LABEL),
            hwaccel: HwAccelKind::Nvenc,
            device: None,
        },
        _ => Gpu {
            resource: match hw.intel_resource.unwrap_or_default() {
                IntelResource::I915 => "gpu.intel.com/i915",
                IntelResource::Xe => "gpu.intel.com/xe",
            },
            count: hw.count,
            render_group: hw.render_group,
            node_label: hw.require_gpu_node_label.then_some(INTEL_GPU_NODE_LABEL),
            // VA-API works with every ffmpeg build that has the Intel media driver;
            // QSV needs oneVPL on top.
            hwaccel: HwAccelKind::Vaapi,
            device: Some(PathBuf::from("/dev/dri/renderD128")),
        },
    })
}

/// `spec.database`: its source and the pool size of each replica.
fn database(spec: &DatabaseSpec, p: &mut Problems) -> (Database, u32) {
    let database = match (&spec.managed, &spec.external, &spec.cloud_native_pg) {
        (None, None, Some(cnpg)) => Database::CloudNativePg(cloud_native_pg(cnpg, p)),
        (_, Some(_), Some(_)) => {
            p.add(
                "spec.database.cloudNativePG",
                "cloudNativePG and external exclude each other (CloudNativePG runs the \
                 database the replicas use); remove one",
            );
            Database::Managed(ManagedPostgresSpec::default())
        }
        (Some(managed), None, None) => {
            check_size("spec.database.managed.size", &managed.size, p);
            if let Some(class) = &managed.storage_class_name {
                check_object_name("spec.database.managed.storageClassName", class, p);
            }
            if let Some(resources) = &managed.resources {
                check_resources("spec.database.managed.resources", resources, p);
            }
            Database::Managed(managed.clone())
        }
        (None, Some(external), None) => {
            check_secret_ref("spec.database.external", external, p);
            Database::External(external.clone())
        }
        _ => {
            p.add(
                "spec.database",
                "set exactly one of managed, external or cloudNativePG",
            );
            Database::Managed(ManagedPostgresSpec::default())
        }
    };
    let pool_size = u32::try_from(spec.pool_size)
        .ok()
        .filter(|n| (1..=100).contains(n))
        .unwrap_or_else(|| {
            p.add("spec.database.poolSize", "must be between 1 and 100");
            1
        });
    (database, pool_size)
}

/// `spec.database.cloudNativePG`.
fn cloud_native_pg(spec: &CloudNativePgSpec, p: &mut Problems) -> CloudNativePg {
    const FIELD: &str = "spec.database.cloudNativePG";
    if !(1..=9).contains(&spec.instances) {
        p.add(
            format!("{FIELD}.instances"),
            "must be between 1 and 9 (one primary and its standbys)",
        );
    }
    check_size(&format!("{FIELD}.storage.size"), &spec.storage.size, p);
    if let Some(class) = &spec.storage.storage_class_name {
        check_object_name(&format!("{FIELD}.storage.storageClassName"), class, p);
    }
    if let Some(resources) = &spec.resources {
        check_resources(&format!("{FIELD}.resources"), resources, p);
    }
    if let Some(n) = spec.synchronous_replicas
        && (n < 1 || n >= spec.instances)
    {
        p.add(
            format!("{FIELD}.synchronousReplicas"),
            format!(
                "must be at least 1 and lower than instances ({}): the primary does not count",
                spec.instances
            ),
        );
    }
    for name in spec.parameters.keys() {
        let ok = !name.is_empty()
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !ok {
            p.add(
                format!("{FIELD}.parameters[{}]", name.escape_debug()),
                "must be a PostgreSQL parameter name (letters, digits, '_' and '.')",
            );
        }
    }
    CloudNativePg {
        instances: spec.instances,
        size: spec.storage.size.clone(),
        storage_class: spec.storage.storage_class_name.clone(),
        resources: spec.resources.clone(),
        parameters: spec.parameters.clone(),
        synchronous_replicas: spec.synchronous_replicas,
        image_name: spec.image_name.clone(),
        retain_on_delete: spec.retain_on_delete,
    }
}

/// `spec.redis`.
fn redis(spec: &RedisSpec, p: &mut Problems) -> Redis {
    match (&spec.managed, &spec.external) {
        (Some(managed), None) => {
            if let Some(resources) = &managed.resources {
                check_resources("spec.redis.managed.resources", resources, p);
            }
            Redis::Managed(managed.clone())
        }
        (None, Some(external)) => {
            check_secret_ref("spec.redis.external", external, p);
            Redis::External(external.clone())
        }
        _ => {
            p.add("spec.redis", "set exactly one of managed or external");
            Redis::Managed(ManagedRedisSpec::default())
        }
    }
}

/// `spec.ingress`: host, entry points, TLS and the sticky cookie.
fn ingress(ing: &IngressSpec, p: &mut Problems) -> Ingress {
    if !is_dns_name(&ing.host) {
        p.add(
            "spec.ingress.host",
            format!(
                "`{}` must be a DNS name such as media.example.com (lowercase letters, \
                 digits, dots and dashes)",
                ing.host
            ),
        );
    }
    if ing.entry_points.is_empty() {
        p.add("spec.ingress.entryPoints", "needs at least one entry point");
    }
    let tls = ing
        .tls
        .as_ref()
        .and_then(|tls| match (&tls.secret_name, &tls.cert_resolver) {
            (Some(secret), None) => {
                check_object_name("spec.ingress.tls.secretName", secret, p);
                Some(Tls::Secret(secret.clone()))
            }
            (None, Some(resolver)) => Some(Tls::Resolver(resolver.clone())),
            _ => {
                p.add(
                    "spec.ingress.tls",
                    "set exactly one of secretName or certResolver",
                );
                None
            }
        });
    Ingress {
        host: ing.host.clone(),
        entry_points: ing.entry_points.clone(),
        tls,
        sticky_cookie: sticky_cookie(&ing.sticky_cookie, p),
    }
}

/// `spec.ingress.stickyCookie`.
fn sticky_cookie(cookie: &StickyCookieSpec, p: &mut Problems) -> StickyCookie {
    if cookie.same_site == SameSite::None && !cookie.secure {
        p.add(
            "spec.ingress.stickyCookie.sameSite",
            "none requires secure (browsers drop the cookie otherwise)",
        );
    }
    let name_ok = !cookie.name.is_empty()
        && cookie
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !name_ok {
        p.add(
            "spec.ingress.stickyCookie.name",
            "may hold only letters, digits, '_', '.' and '-'",
        );
    }
    if cookie.max_age < 0 {
        p.add("spec.ingress.stickyCookie.maxAge", "must not be negative");
    }
    StickyCookie {
        name: cookie.name.clone(),
        secure: cookie.secure,
        http_only: cookie.http_only,
        same_site: match cookie.same_site {
            SameSite::None => "none",
            SameSite::Lax => "lax",
            SameSite::Strict => "strict",
        },
        max_age: cookie.max_age,
    }
}

/// `spec.disruptionBudget`: `minAvailable`, or `None` when disabled or with one replica.
fn min_available(budget: &DisruptionBudgetSpec, replicas: i32, p: &mut Problems) -> Option<i32> {
    if !budget.enabled || replicas <= 1 {
        None
    } else if budget.min_available < 0 || budget.min_available >= replicas {
        p.add(
            "spec.disruptionBudget.minAvailable",
            format!("must be lower than replicas ({replicas}), or no node could ever be drained"),
        );
        None
    } else {
        Some(budget.min_available)
    }
}

/// The controller owner reference, when the object has a uid (it has one once stored).
fn owner_reference(msc: &MediaServerCluster) -> Option<OwnerReference> {
    let mut owner = msc.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(true);
    Some(owner)
}

/// An NFS source: a server that is a host name or an IP address, and an absolute export path
/// without `..` segments or control characters (both end up in a PersistentVolume or a pod's
/// volume; the kubelet hands them to `mount`).
fn check_nfs(field: &str, nfs: &NfsSource, example: &str, p: &mut Problems) {
    if !is_nfs_server(&nfs.server) {
        p.add(
            format!("{field}.server"),
            format!(
                "`{}` must be a host name (e.g. nas.lan) or an IP address",
                nfs.server.escape_debug()
            ),
        );
    }
    if !nfs.path.starts_with('/') {
        p.add(
            format!("{field}.path"),
            format!("must be an absolute export path such as {example}"),
        );
    } else if nfs.path.chars().any(char::is_control) || nfs.path.split('/').any(|s| s == "..") {
        p.add(
            format!("{field}.path"),
            format!(
                "`{}` must not contain '..' segments or control characters",
                nfs.path.escape_debug()
            ),
        );
    }
}

/// A host name (letters of either case, digits, '-', dots) or an IPv4/IPv6 address.
fn is_nfs_server(server: &str) -> bool {
    let unbracketed = server
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(server);
    unbracketed.parse::<std::net::IpAddr>().is_ok() || is_dns_name(&server.to_ascii_lowercase())
}

/// The name of a Secret, claim or storage class: a DNS-1123 subdomain, so it can name nothing
/// outside the namespace (`../kube-system/x` is not a name).
fn check_object_name(field: &str, name: &str, p: &mut Problems) {
    if !is_dns_name(name) {
        p.add(
            field,
            format!(
                "`{}` must be the name of an object in the cluster's namespace: lowercase \
                 letters, digits, '-' and '.', at most 253 characters",
                name.escape_debug()
            ),
        );
    }
}

/// A key of a Secret: letters, digits, '-', '_' and '.', as Kubernetes requires.
fn check_secret_key(field: &str, key: &str, p: &mut Problems) {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        p.add(
            field,
            format!(
                "`{}` must be a Secret key: letters, digits, '-', '_' and '.'",
                key.escape_debug()
            ),
        );
    }
}

/// `name` and `key` of a Secret the person made.
fn check_secret_ref(field: &str, secret: &SecretKeyRef, p: &mut Problems) {
    check_object_name(&format!("{field}.name"), &secret.name, p);
    check_secret_key(&format!("{field}.key"), &secret.key, p);
}

/// A storage size: a Kubernetes quantity greater than zero.
fn check_size(field: &str, size: &Quantity, p: &mut Problems) {
    if !parse_quantity(&size.0).is_some_and(|bytes| bytes > 0.0) {
        p.add(
            field,
            format!(
                "`{}` must be a size such as 20Gi or 500M (a Kubernetes quantity above zero)",
                size.0.escape_debug()
            ),
        );
    }
}

/// Requests and limits: each a Kubernetes quantity, not negative.
fn check_resources(field: &str, resources: &ResourceRequirements, p: &mut Problems) {
    for (part, map) in [
        ("limits", &resources.limits),
        ("requests", &resources.requests),
    ] {
        for (resource, value) in map.iter().flatten() {
            if !parse_quantity(&value.0).is_some_and(|v| v >= 0.0) {
                p.add(
                    format!("{field}.{part}.{resource}"),
                    format!(
                        "`{}` must be a Kubernetes quantity such as 500m, 2Gi or 1",
                        value.0.escape_debug()
                    ),
                );
            }
        }
    }
}

/// The value of a Kubernetes quantity (`resource.Quantity`'s grammar: a signed decimal number,
/// then a binary suffix `Ki`…`Ei`, a decimal suffix `n u m k M G T P E`, or an exponent), or
/// `None` when `text` is not one.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1.0, &text[1..]),
        b'-' => (-1.0, &text[1..]),
        _ => (1.0, text),
    };
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return None;
    }
    let whole = if whole.is_empty() { "0" } else { whole };
    let value: f64 = format!("{whole}.{fraction}0").parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            10f64.powi(digits.parse::<i32>().ok()?)
        }
    };
    Some(sign * value * scale)
}

/// An environment variable name as Kubernetes accepts it (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
fn is_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || "-._".contains(c))
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fixture;
    use ephyra_crd::{NfsSource, TlsSpec};

    #[test]
    fn a_default_cluster_resolves_library_folders_under_media() {
        let v = validate(&MediaServerCluster::test()).unwrap();
        let folders: Vec<_> = v.libraries.iter().map(|l| l.folders.clone()).collect();
        assert_eq!(
            folders,
            vec![
                vec![PathBuf::from("/media/films")],
                vec![PathBuf::from("/media/shows")]
            ]
        );
        assert_eq!(v.server_name, "jelly");
        assert!(v.owner.as_ref().is_some_and(|o| o.controller == Some(true)));
    }

    #[test]
    fn a_dot_library_path_means_the_volume_root() {
        let mut msc = MediaServerCluster::test();
        msc.spec.media.libraries[0].paths = vec![".".to_owned(), "./extra/".to_owned()];
        let v = validate(&msc).unwrap();
        assert_eq!(
            v.libraries[0].folders,
            vec![PathBuf::from("/media"), PathBuf::from("/media/extra")]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut msc = MediaServerCluster::test().replicas(2);
        msc.spec.media.existing_claim = Some("library".to_owned());
        msc.spec.media.libraries[0].paths = vec!["../etc".to_owned()];
        msc.spec.disruption_budget.min_available = 2;
        msc.spec.ingress.as_mut().unwrap().tls = Some(TlsSpec {
            secret_name: Some("a".to_owned()),
            cert_resolver: Some("b".to_owned()),
        });
        let err = validate(&msc).unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.media",
                "spec.media.libraries[0].paths[0]",
                "spec.ingress.tls",
                "spec.disruptionBudget.minAvailable"
            ]
        );
        assert!(err.to_string().contains("must not contain '..'"));
    }

    #[test]
    fn an_nfs_path_must_be_absolute() {
        let mut msc = MediaServerCluster::test();
        msc.spec.media.nfs = Some(NfsSource {
            server: "nas".to_owned(),
            path: "export".to_owned(),
        });
        let err = validate(&msc).unwrap_err();
        assert_eq!(err.0[0].field, "spec.media.nfs.path");
    }

    #[test]
    fn a_single_replica_gets_no_disruption_budget() {
        let v = validate(&MediaServerCluster::test().replicas(1)).unwrap();
        assert_eq!(v.min_available, None);
        let v = validate(&MediaServerCluster::test().replicas(3)).unwrap();
        assert_eq!(v.min_available, Some(1));
    }

    #[test]
    fn intel_acceleration_resolves_the_plugin_resource_and_node_label() {
        let v = validate(&MediaServerCluster::test().intel_gpu(44)).unwrap();
        let gpu = v.gpu.unwrap();
        assert_eq!(gpu.resource, "gpu.intel.com/i915");
        assert_eq!(gpu.node_label, Some(INTEL_GPU_NODE_LABEL));
        assert_eq!(gpu.render_group, Some(44));
        assert_eq!(gpu.hwaccel, HwAccelKind::Vaapi);
    }

    #[test]
    fn an_initial_admin_refuses_admin_variables_in_env_and_a_blank_name() {
        let mut msc = MediaServerCluster::test();
        msc.spec.server.initial_admin = Some(ephyra_crd::InitialAdminSpec {
            user_name: " ".to_owned(),
            password_secret: None,
        });
        msc.spec
            .server
            .env
            .push(k8s_openapi::api::core::v1::EnvVar {
                name: "EPHYRA_ADMIN_PASSWORD".to_owned(),
                value: Some("literal".to_owned()),
                value_from: None,
            });
        let err = validate(&msc).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert!(
            fields.contains(&"spec.server.env[EPHYRA_ADMIN_PASSWORD]"),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"spec.server.initialAdmin.userName"),
            "{fields:?}"
        );
    }

    #[test]
    fn reserved_environment_variables_are_refused() {
        let mut msc = MediaServerCluster::test();
        msc.spec
            .server
            .env
            .push(k8s_openapi::api::core::v1::EnvVar {
                name: "EPHYRA_DATABASE_URL".to_owned(),
                value: Some("postgres://leak".to_owned()),
                value_from: None,
            });
        let err = validate(&msc).unwrap_err();
        assert_eq!(err.0[0].field, "spec.server.env[EPHYRA_DATABASE_URL]");
    }

    /// A spec patched by `edit` (JSON merge of the test cluster's spec).
    fn edited(edit: serde_json::Value) -> MediaServerCluster {
        let mut value = serde_json::to_value(MediaServerCluster::test()).unwrap();
        json_patch::merge(&mut value["spec"], &edit);
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn hostile_input_the_schema_may_miss_is_refused_naming_the_field() {
        use serde_json::json;
        let table = [
            (
                json!({"media": {"nfs": {"server": ""}}}),
                "spec.media.nfs.server",
                "host name",
            ),
            (
                json!({"media": {"nfs": {"server": "nas\nevil"}}}),
                "spec.media.nfs.server",
                "host name",
            ),
            (
                json!({"config": {"storageClassName": null, "nfs": {"server": "nas`id`", "path": "/c"}}}),
                "spec.config.nfs.server",
                "host name",
            ),
            (
                json!({"media": {"nfs": {"path": "/export/../../etc"}}}),
                "spec.media.nfs.path",
                "'..'",
            ),
            (
                json!({"config": {"storageClassName": null, "nfs": {"server": "nas", "path": "/c\0x"}}}),
                "spec.config.nfs.path",
                "control characters",
            ),
            (
                json!({"media": {"nfs": null, "existingClaim": "../kube-system/x"}}),
                "spec.media.existingClaim",
                "cluster's namespace",
            ),
            (
                json!({"database": {"managed": null, "external": {"name": "../kube-system/x", "key": "uri"}}}),
                "spec.database.external.name",
                "cluster's namespace",
            ),
            (
                json!({"database": {"managed": null, "cloudNativePG": {"instances": 0, "storage": {"size": "1Gi"}}}}),
                "spec.database.cloudNativePG.instances",
                "between 1 and 9",
            ),
            (
                json!({"database": {"managed": null, "cloudNativePG": {"storage": {"size": "0"}}}}),
                "spec.database.cloudNativePG.storage.size",
                "above zero",
            ),
            (
                json!({"database": {"managed": null, "external": {"name": "pg", "key": "uri"}, "cloudNativePG": {"storage": {"size": "1Gi"}}}}),
                "spec.database.cloudNativePG",
                "exclude each other",
            ),
            (
                json!({"database": {"managed": null, "cloudNativePG": {"instances": 2, "synchronousReplicas": 2, "storage": {"size": "1Gi"}}}}),
                "spec.database.cloudNativePG.synchronousReplicas",
                "lower than instances",
            ),
            (
                json!({"database": {"managed": null, "cloudNativePG": {"storage": {"size": "1Gi"}, "parameters": {"work_mem = 1; x": "1"}}}}),
                "spec.database.cloudNativePG.parameters[work_mem = 1; x]",
                "parameter name",
            ),
            (
                json!({"redis": {"managed": null, "external": {"name": "r", "key": "a/b"}}}),
                "spec.redis.external.key",
                "Secret key",
            ),
            (
                json!({"server": {"initialAdmin": {"userName": "a", "passwordSecret": {"name": "Kube System", "key": "pw"}}}}),
                "spec.server.initialAdmin.passwordSecret.name",
                "cluster's namespace",
            ),
            (
                json!({"ingress": {"tls": {"certResolver": null, "secretName": "../x"}}}),
                "spec.ingress.tls.secretName",
                "cluster's namespace",
            ),
            (
                json!({"transcode": {"storageClassName": "fast; rm"}}),
                "spec.transcode.storageClassName",
                "cluster's namespace",
            ),
            (
                json!({"transcode": {"size": "lots; rm -rf"}}),
                "spec.transcode.size",
                "Kubernetes quantity",
            ),
            (
                json!({"config": {"size": "0"}}),
                "spec.config.size",
                "above zero",
            ),
            (
                json!({"database": {"managed": {"size": "-5Gi"}}}),
                "spec.database.managed.size",
                "above zero",
            ),
            (
                json!({"server": {"resources": {"limits": {"memory": "2 GB"}}}}),
                "spec.server.resources.limits.memory",
                "Kubernetes quantity",
            ),
            (
                json!({"hardwareAcceleration": {"kind": "Nvidia", "count": 2147483647}}),
                "spec.hardwareAcceleration.count",
                "at most 8",
            ),
            (
                json!({"server": {"env": [{"name": "EPHYRA_LISTEN", "value": "0.0.0.0:1"}]}}),
                "spec.server.env[EPHYRA_LISTEN]",
                "probes",
            ),
            (
                json!({"server": {"env": [{"name": "EPHYRA_NAMESPACE", "value": "kube-system"}]}}),
                "spec.server.env[EPHYRA_NAMESPACE]",
                "identity from the pod",
            ),
            (
                json!({"server": {"env": [{"name": "EPHYRA_POD_NAME", "value": "x"}]}}),
                "spec.server.env[EPHYRA_POD_NAME]",
                "identity from the pod",
            ),
            (
                json!({"server": {"env": [{"name": "EPHYRA_ADMIN_PASSWORD", "value": "hunter2"}]}}),
                "spec.server.env[EPHYRA_ADMIN_PASSWORD]",
                "plain text",
            ),
            (
                json!({"server": {"env": [{"name": "A=B", "value": "x"}]}}),
                "spec.server.env[A=B]",
                "variable name",
            ),
        ];
        for (edit, field, message) in table {
            let err = validate(&edited(edit.clone()))
                .err()
                .unwrap_or_else(|| panic!("{edit} was accepted"));
            assert!(
                err.0
                    .iter()
                    .any(|p| p.field == field && p.message.contains(message)),
                "{edit}: expected {field} with {message:?}, got {err}"
            );
        }
    }

    #[test]
    fn legitimate_values_next_to_the_hostile_ones_are_accepted() {
        use serde_json::json;
        for edit in [
            json!({"media": {"nfs": {"server": "192.168.1.10"}}}),
            json!({"media": {"nfs": {"server": "[fd00::10]"}}}),
            json!({"media": {"nfs": {"server": "NAS.lan", "path": "/export/media..old/x"}}}),
            json!({"transcode": {"size": "1.5Gi"}}),
            json!({"config": {"size": "500M"}}),
            json!({"database": {"managed": {"size": "1e10"}}}),
            json!({"server": {"resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}}),
            json!({"server": {"env": [{"name": "EPHYRA_ADMIN_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}, {"name": "EPHYRA_ADMIN_USER", "value": "root"}]}}),
            json!({"hardwareAcceleration": {"kind": "Nvidia", "count": 8}}),
            json!({"database": {"managed": null, "cloudNativePG": {"instances": 1, "storage": {"size": "1Gi"}}}}),
            json!({"database": {"managed": null, "cloudNativePG": {"instances": 3, "synchronousReplicas": 2, "storage": {"size": "1Gi", "storageClassName": "fast"}, "parameters": {"max_connections": "200", "auto_explain.log_min_duration": "5s"}}}}),
        ] {
            if let Err(err) = validate(&edited(edit.clone())) {
                panic!("{edit} was refused: {err}");
            }
        }
    }

    #[test]
    fn the_nfs_allow_list_refuses_other_servers_and_paths_by_whole_segments() {
        let policy = NfsPolicy::from_lists(
            " nas.test , 10.0.0.5",
            "/export/library,/export/jelly-config",
        );
        let v = validate(&MediaServerCluster::test().nfs_config()).unwrap();
        policy.check(&v).unwrap();
        assert_eq!(
            NfsPolicy::default().check(&v),
            Ok(()),
            "empty lists allow any"
        );

        let elsewhere = |server: &str, path: &str| {
            let mut msc = MediaServerCluster::test();
            msc.spec.media.nfs = Some(NfsSource {
                server: server.to_owned(),
                path: path.to_owned(),
            });
            policy.check(&validate(&msc).unwrap())
        };
        assert_eq!(elsewhere("NAS.test", "/export/library/films/"), Ok(()));
        assert_eq!(elsewhere("10.0.0.5", "/export/library"), Ok(()));
        let err = elsewhere("evil.example", "/export/library").unwrap_err();
        assert_eq!(err.0[0].field, "spec.media.nfs.server");
        assert!(err.0[0].message.contains("nas.test, 10.0.0.5"), "{err}");
        for path in ["/export/library-private", "/", "/etc", "/export"] {
            let err = elsewhere("nas.test", path).unwrap_err();
            assert_eq!(err.0[0].field, "spec.media.nfs.path", "{path}");
        }
    }

    #[test]
    fn quantities_parse_as_kubernetes_reads_them() {
        for (text, value) in [
            ("1", 1.0),
            ("20Gi", 20.0 * 1024f64.powi(3)),
            ("500m", 0.5),
            (".5", 0.5),
            ("1.5k", 1500.0),
            ("1e3", 1000.0),
            ("2E", 2e18),
            ("-1Mi", -1_048_576.0),
        ] {
            assert_eq!(parse_quantity(text), Some(value), "{text}");
        }
        for text in [
            "",
            "Gi",
            "lots; rm -rf",
            "1.2.3",
            "5 Gi",
            "1Gb",
            "1e",
            "1e+",
        ] {
            assert_eq!(parse_quantity(text), None, "{text}");
        }
    }

    #[test]
    fn a_cluster_name_that_cannot_name_a_service_is_refused() {
        let mut msc = MediaServerCluster::test();
        msc.metadata.name = Some("9lives".to_owned());
        let err = validate(&msc).unwrap_err();
        assert_eq!(err.0[0].field, "metadata.name");
    }
}

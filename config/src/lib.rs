//! Typed configuration of the Ephyra media server, shared by the server (which reads it) and the
//! operator (which renders it into a ConfigMap), so the two can never disagree about a key.
//!
//! Configuration comes from an optional YAML file (`--config`), then environment overrides
//! (`EPHYRA_*`), then defaults derived from other values (the SQLite file and the transcode folder
//! live under the data folder unless told otherwise). The environment is read through
//! [`Source`], so tests pass a map and never touch the process environment.
//!
//! Secrets (database and Redis URLs, the first admin's password) are held in [`Secret`], which
//! never prints its value and is never serialized: the operator passes them through Kubernetes
//! Secrets and environment variables, never through the rendered file.
//!
//! This crate does no I/O beyond reading the file it is given.

mod env;
mod secret;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use env::{MapSource, ProcessEnv, Source};
pub use secret::Secret;

/// The environment variables the server reads, in the order the README documents them.
pub const ENV_KEYS: &[&str] = &[
    "EPHYRA_LISTEN",
    "EPHYRA_ADMIN_LISTEN",
    "EPHYRA_SERVER_NAME",
    "EPHYRA_DATA_DIR",
    "EPHYRA_DATABASE_URL",
    "EPHYRA_DATABASE_MAX_CONNECTIONS",
    "EPHYRA_REDIS_URL",
    "EPHYRA_TRANSCODE_DIR",
    "EPHYRA_MAX_TRANSCODES",
    "EPHYRA_IMAGE_CACHE_MAX_MIB",
    "EPHYRA_LIBRARIES",
    "EPHYRA_SCAN_INTERVAL_SECONDS",
    "EPHYRA_SCAN_WATCH",
    "EPHYRA_SCAN_FORK_SERVER",
    "EPHYRA_ADMIN_USER",
    "EPHYRA_ADMIN_PASSWORD",
    "EPHYRA_FFMPEG",
    "EPHYRA_FFPROBE",
    "EPHYRA_HWACCEL",
    "EPHYRA_HWACCEL_DEVICE",
    "EPHYRA_CLUSTER_NAME",
    "EPHYRA_NAMESPACE",
    "EPHYRA_POD_NAME",
    "EPHYRA_LEASE_MILLIS",
    "EPHYRA_RENEW_MILLIS",
    "EPHYRA_JOB_WORKERS",
    "EPHYRA_JOB_VISIBILITY_SECONDS",
    "EPHYRA_DISCOVERY",
    "EPHYRA_TRUSTED_PROXIES",
    "EPHYRA_LOG",
    "EPHYRA_LOG_FORMAT",
    "EPHYRA_WEB_DIR",
];

/// Everything that can be wrong with a configuration. Each variant names the key at fault and
/// never carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file given with `--config` could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    ReadFile {
        /// The file that was asked for.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not valid YAML for [`ServerConfig`] (unknown key, wrong type, ...).
    #[error("invalid configuration file {path}: {message}")]
    ParseFile {
        /// The file that was read.
        path: PathBuf,
        /// The parser's description, which names the key.
        message: String,
    },
    /// One value is malformed or contradicts another.
    #[error("invalid configuration `{key}`: {message}")]
    Invalid {
        /// The environment variable or file key at fault.
        key: String,
        /// What is wrong and what is expected instead.
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The media server's whole configuration. In YAML the keys are camelCase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the Jellyfin-compatible HTTP API. `EPHYRA_LISTEN`.
    pub listen: SocketAddr,
    /// Address of the admin endpoints (`/metrics`), kept off the public port. `EPHYRA_ADMIN_LISTEN`.
    pub admin_listen: SocketAddr,
    /// Name shown to clients in server discovery and on the login screen. `EPHYRA_SERVER_NAME`.
    pub server_name: String,
    /// Folder for the SQLite database, generated images and the server identity. `EPHYRA_DATA_DIR`.
    pub data_dir: PathBuf,
    /// Durable state: SQLite for one replica, PostgreSQL for several.
    pub database: DatabaseConfig,
    /// Shared ephemeral state and leadership; required for more than one replica.
    pub redis: RedisConfig,
    /// Per-replica scratch space for transcodes.
    pub transcode: TranscodeConfig,
    /// This replica's cache of resized images. Left out of rendered files while default.
    #[serde(skip_serializing_if = "ImagesConfig::is_default")]
    pub images: ImagesConfig,
    /// The media libraries to scan and serve.
    pub libraries: Vec<LibraryConfig>,
    /// How often the leader schedules a full library scan, and how many files are probed at once.
    pub scan: ScanConfig,
    /// Hardware video acceleration used by transcodes.
    pub hardware_acceleration: HardwareAcceleration,
    /// Where the ffmpeg tools are.
    pub ffmpeg: FfmpegConfig,
    /// Identity in Kubernetes, for status reporting; absent outside a cluster.
    pub cluster: Option<ClusterIdentity>,
    /// The first administrator, created when the database has no user yet.
    pub admin: Option<AdminBootstrap>,
    /// Leadership lease timing.
    pub coordination: CoordinationConfig,
    /// Job workers (scans, clean-ups) on this replica. Left out of rendered files while unset.
    #[serde(skip_serializing_if = "JobsConfig::is_unset")]
    pub jobs: JobsConfig,
    /// Answer Jellyfin's UDP discovery broadcasts on port 7359.
    pub discovery: bool,
    /// Networks (CIDR, e.g. `10.42.0.0/16`) of the reverse proxies in front: only a peer in
    /// one of them may name the client's address in `X-Forwarded-For`/`X-Real-IP` (login
    /// limits and connection caps are per client address), and its connections are exempt from
    /// the per-address connection cap. Empty: forwarded headers are ignored.
    /// `EPHYRA_TRUSTED_PROXIES` (comma-separated).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
    /// Log filter and format.
    pub log: LogConfig,
    /// The web client (a built jellyfin-web) served at `/web/`. Left out of rendered files
    /// while unset.
    #[serde(skip_serializing_if = "WebConfig::is_unset")]
    pub web: WebConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8096)),
            admin_listen: SocketAddr::from(([0, 0, 0, 0], 9096)),
            server_name: "Ephyra".to_owned(),
            data_dir: PathBuf::from("./data"),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            transcode: TranscodeConfig::default(),
            images: ImagesConfig::default(),
            libraries: Vec::new(),
            scan: ScanConfig::default(),
            hardware_acceleration: HardwareAcceleration::default(),
            ffmpeg: FfmpegConfig::default(),
            cluster: None,
            admin: None,
            coordination: CoordinationConfig::default(),
            jobs: JobsConfig::default(),
            discovery: true,
            trusted_proxies: Vec::new(),
            log: LogConfig::default(),
            web: WebConfig::default(),
        }
    }
}

/// Durable state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path` or `postgres://user:password@host/db`. Defaults to `sqlite://<dataDir>/ephyra.db`.
    /// A secret: never rendered into files; set it with `EPHYRA_DATABASE_URL`.
    #[serde(skip_serializing)]
    pub url: Option<Secret>,
    /// Upper bound of this replica's connection pool. With N replicas on one PostgreSQL, keep
    /// N × this below the server's `max_connections`. `EPHYRA_DATABASE_MAX_CONNECTIONS`.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 8,
        }
    }
}

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// An embedded SQLite file: one replica only.
    Sqlite,
    /// A PostgreSQL server: any number of replicas.
    Postgres,
}

impl DatabaseConfig {
    /// The resolved URL. [`ServerConfig::load`] always fills it in.
    pub fn url(&self) -> Option<&Secret> {
        self.url.as_ref()
    }

    /// The database kind, from the URL's scheme.
    pub fn kind(&self) -> Option<DatabaseKind> {
        self.url.as_ref().and_then(|u| database_kind(u.expose()))
    }
}

fn database_kind(url: &str) -> Option<DatabaseKind> {
    if url.starts_with("sqlite:") {
        Some(DatabaseKind::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(DatabaseKind::Postgres)
    } else {
        None
    }
}

/// Shared ephemeral state (QuickConnect, presence, cache invalidation) and leadership.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[[user]:password@]host:port[/db]`, or `rediss://…` for TLS (trusting the system's
    /// CA store, or `SSL_CERT_FILE`); absent means in-process coordination (one replica).
    /// A secret: set it with `EPHYRA_REDIS_URL`.
    #[serde(skip_serializing)]
    pub url: Option<Secret>,
}

/// Per-replica transcode scratch space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TranscodeConfig {
    /// Folder for HLS segments. Defaults to `<dataDir>/transcode`. `EPHYRA_TRANSCODE_DIR`.
    pub dir: Option<PathBuf>,
    /// Transcodes this replica runs at once; further requests wait. `EPHYRA_MAX_TRANSCODES`.
    pub max_concurrent: u32,
    /// Length of one HLS segment. Every replica must agree, so that any replica can produce
    /// any segment of a stream.
    pub segment_seconds: u32,
    /// A transcode nobody asked a segment of for this long is stopped and its files removed.
    pub idle_timeout_seconds: u32,
}

impl Default for TranscodeConfig {
    fn default() -> Self {
        TranscodeConfig {
            dir: None,
            max_concurrent: 4,
            segment_seconds: 6,
            idle_timeout_seconds: 60,
        }
    }
}

/// Library scanning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ScanConfig {
    /// Seconds between periodic scans; 0 scans only at start and on request.
    /// `EPHYRA_SCAN_INTERVAL_SECONDS`.
    pub interval_seconds: u64,
    /// Files probed with ffprobe at once.
    pub concurrency: u32,
    /// Watch the library folders for file system events (inotify) and scan only the folder
    /// where something changed; the periodic scan stays the fallback (NFS shares send no
    /// events). `EPHYRA_SCAN_WATCH`.
    pub watch: bool,
    /// Probe through a few long-lived ffprobe processes that fork once per file, skipping
    /// ffprobe's start-up (about 70 ms of CPU for Debian's build) on every file; where that
    /// cannot work (a static ffprobe, a `noexec` data folder) each file gets its own ffprobe,
    /// as with `false`. `EPHYRA_SCAN_FORK_SERVER`.
    pub fork_server: bool,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            interval_seconds: 3600,
            concurrency: 4,
            watch: true,
            fork_server: true,
        }
    }
}

/// What a library holds; decides how file names are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LibraryKind {
    /// Films: `Title (Year).ext`, optionally in a folder of the same name.
    Movies,
    /// Series: `Show/Season 01/Show S01E02.ext` and common variants.
    Tvshows,
}

impl LibraryKind {
    /// The Jellyfin `CollectionType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            LibraryKind::Movies => "movies",
            LibraryKind::Tvshows => "tvshows",
        }
    }
}

/// One library.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LibraryConfig {
    /// Name shown to clients; unique.
    pub name: String,
    /// `movies` or `tvshows`.
    pub kind: LibraryKind,
    /// Folders scanned for this library. Files outside them are never served.
    pub folders: Vec<PathBuf>,
}

/// Hardware video acceleration for transcodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct HardwareAcceleration {
    /// `none`, `vaapi`, `qsv` or `nvenc`. `EPHYRA_HWACCEL`.
    pub kind: HwAccelKind,
    /// Render node for VAAPI/QSV, e.g. `/dev/dri/renderD128`. `EPHYRA_HWACCEL_DEVICE`.
    pub device: Option<PathBuf>,
}

/// The acceleration API ffmpeg uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HwAccelKind {
    /// Software encoding (libx264).
    #[default]
    None,
    /// Intel or AMD through VA-API.
    Vaapi,
    /// Intel Quick Sync Video.
    Qsv,
    /// NVIDIA NVENC.
    Nvenc,
}

impl std::str::FromStr for HwAccelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "" | "none" => Ok(HwAccelKind::None),
            "vaapi" => Ok(HwAccelKind::Vaapi),
            "qsv" => Ok(HwAccelKind::Qsv),
            "nvenc" => Ok(HwAccelKind::Nvenc),
            other => Err(format!("`{other}` is not one of none, vaapi, qsv, nvenc")),
        }
    }
}

/// Locations of the ffmpeg tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct FfmpegConfig {
    /// The ffmpeg binary (a name on PATH or a path). `EPHYRA_FFMPEG`.
    pub ffmpeg: PathBuf,
    /// The ffprobe binary. `EPHYRA_FFPROBE`.
    pub ffprobe: PathBuf,
}

impl Default for FfmpegConfig {
    fn default() -> Self {
        FfmpegConfig {
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
        }
    }
}

/// Where this replica sits in Kubernetes, for reporting into its MediaServerCluster's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterIdentity {
    /// The MediaServerCluster's name. `EPHYRA_CLUSTER_NAME`.
    pub name: String,
    /// Its namespace. `EPHYRA_NAMESPACE` (or `POD_NAMESPACE`).
    pub namespace: String,
    /// This replica's pod name, its key in `status.members`. `EPHYRA_POD_NAME` (or `POD_NAME`).
    pub pod_name: String,
}

/// The first administrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdminBootstrap {
    /// User name. `EPHYRA_ADMIN_USER`.
    pub user: String,
    /// Password. `EPHYRA_ADMIN_PASSWORD`. Never rendered into files.
    #[serde(skip_serializing)]
    pub password: Option<Secret>,
}

/// Leadership lease timing. The lease must outlast several renew intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct CoordinationConfig {
    /// How long a leader's lease lasts without renewal. `EPHYRA_LEASE_MILLIS`.
    pub lease_millis: u64,
    /// How often the leader renews, and followers try to acquire. `EPHYRA_RENEW_MILLIS`.
    pub renew_millis: u64,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        CoordinationConfig {
            lease_millis: 5000,
            renew_millis: 1000,
        }
    }
}

/// Job workers: every replica claims jobs from the database's queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct JobsConfig {
    /// Workers on this replica; unset: 2 on PostgreSQL, 1 on SQLite (one writer).
    /// `EPHYRA_JOB_WORKERS`.
    pub workers: Option<u32>,
    /// A running job whose worker has been silent this long is retried by another worker;
    /// unset: 30. `EPHYRA_JOB_VISIBILITY_SECONDS`.
    pub visibility_seconds: Option<u64>,
}

impl JobsConfig {
    /// True when nothing is set (the defaults apply).
    pub fn is_unset(&self) -> bool {
        *self == JobsConfig::default()
    }
}

/// Resized images, cached in the data folder of each replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagesConfig {
    /// The most the cache of resized images keeps, in MiB; the least recently used go first.
    /// `EPHYRA_IMAGE_CACHE_MAX_MIB`.
    pub cache_max_mib: u64,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig { cache_max_mib: 512 }
    }
}

impl ImagesConfig {
    /// True when nothing differs from the default.
    pub fn is_default(&self) -> bool {
        *self == ImagesConfig::default()
    }
}

/// The web client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct WebConfig {
    /// Folder holding a built jellyfin-web (its `dist/`, with `index.html`), served at
    /// `/web/`; unset: `/web/` answers a page saying how to add one. `EPHYRA_WEB_DIR`.
    pub dir: Option<PathBuf>,
}

impl WebConfig {
    /// True when nothing is set.
    pub fn is_unset(&self) -> bool {
        *self == WebConfig::default()
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `ephyra_server=debug,info`. `EPHYRA_LOG`.
    pub level: String,
    /// `text` for people, `json` for log collectors. `EPHYRA_LOG_FORMAT`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl ServerConfig {
    /// Reads the optional YAML file, applies environment overrides from `env`, fills derived
    /// defaults and checks the result.
    pub fn load(file: Option<&Path>, env: &dyn Source) -> Result<ServerConfig, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                        path: path.to_owned(),
                        source,
                    })?;
                ServerConfig::from_yaml(&text).map_err(|message| ConfigError::ParseFile {
                    path: path.to_owned(),
                    message,
                })?
            }
            None => ServerConfig::default(),
        };
        env::apply(&mut config, env)?;
        config.resolve()?;
        Ok(config)
    }

    /// Parses YAML text (no environment, no defaults resolved).
    pub fn from_yaml(text: &str) -> Result<ServerConfig, String> {
        serde_saphyr::from_str(text).map_err(|e| e.to_string())
    }

    /// Renders the configuration as YAML, without any secret (the operator's ConfigMap).
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        serde_saphyr::to_string(self).map_err(|e| ConfigError::invalid("(render)", e.to_string()))
    }

    /// The transcode folder, resolved.
    pub fn transcode_dir(&self) -> PathBuf {
        self.transcode
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("transcode"))
    }

    /// Fills defaults that depend on other values and checks cross-field rules.
    fn resolve(&mut self) -> Result<(), ConfigError> {
        if self.database.url.is_none() {
            let path = self.data_dir.join("ephyra.db");
            self.database.url = Some(Secret::new(format!("sqlite://{}?mode=rwc", path.display())));
        }
        if self.transcode.dir.is_none() {
            self.transcode.dir = Some(self.data_dir.join("transcode"));
        }
        self.validate()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let kind = self.database.kind().ok_or_else(|| {
            ConfigError::invalid(
                "EPHYRA_DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql:// (value not shown)",
            )
        })?;
        if self.database.max_connections == 0 {
            return Err(ConfigError::invalid(
                "EPHYRA_DATABASE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.redis.url {
            let u = url.expose();
            if !(u.starts_with("redis://") || u.starts_with("rediss://") || u.starts_with("unix:"))
            {
                return Err(ConfigError::invalid(
                    "EPHYRA_REDIS_URL",
                    "must start with redis://, rediss:// or unix: (value not shown)",
                ));
            }
            if kind == DatabaseKind::Sqlite {
                return Err(ConfigError::invalid(
                    "EPHYRA_REDIS_URL",
                    "Redis is set but the database is SQLite: several replicas need PostgreSQL \
                     (set EPHYRA_DATABASE_URL=postgres://...) or unset EPHYRA_REDIS_URL for one replica",
                ));
            }
        }
        let mut names = BTreeSet::new();
        for (i, lib) in self.libraries.iter().enumerate() {
            if lib.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("libraries[{i}].name"),
                    "must not be empty",
                ));
            }
            if !names.insert(lib.name.to_lowercase()) {
                return Err(ConfigError::invalid(
                    format!("libraries[{i}].name"),
                    format!("library name `{}` is used twice", lib.name),
                ));
            }
            if lib.folders.is_empty() {
                return Err(ConfigError::invalid(
                    format!("libraries[{i}].folders"),
                    format!("library `{}` has no folder", lib.name),
                ));
            }
        }
        if let Some(admin) = &self.admin {
            if admin.user.trim().is_empty() {
                return Err(ConfigError::invalid(
                    "EPHYRA_ADMIN_USER",
                    "must not be empty",
                ));
            }
            if admin
                .password
                .as_ref()
                .is_none_or(|p| p.expose().is_empty())
            {
                return Err(ConfigError::invalid(
                    "EPHYRA_ADMIN_PASSWORD",
                    "must be set when EPHYRA_ADMIN_USER is",
                ));
            }
        }
        if self.coordination.renew_millis == 0
            || self.coordination.lease_millis < 2 * self.coordination.renew_millis
        {
            return Err(ConfigError::invalid(
                "EPHYRA_LEASE_MILLIS",
                format!(
                    "the lease ({} ms) must last at least two renew intervals ({} ms)",
                    self.coordination.lease_millis, self.coordination.renew_millis
                ),
            ));
        }
        for (i, network) in self.trusted_proxies.iter().enumerate() {
            if let Err(message) = check_network(network) {
                return Err(ConfigError::invalid(
                    format!("trustedProxies[{i}] (EPHYRA_TRUSTED_PROXIES)"),
                    message,
                ));
            }
        }
        if self.jobs.workers == Some(0) {
            return Err(ConfigError::invalid(
                "EPHYRA_JOB_WORKERS",
                "must be at least 1",
            ));
        }
        if self.jobs.visibility_seconds == Some(0) {
            return Err(ConfigError::invalid(
                "EPHYRA_JOB_VISIBILITY_SECONDS",
                "must be at least 1",
            ));
        }
        if self.transcode.segment_seconds == 0 || self.transcode.segment_seconds > 60 {
            return Err(ConfigError::invalid(
                "transcode.segmentSeconds",
                "must be 1 to 60",
            ));
        }
        if self.transcode.max_concurrent == 0 {
            return Err(ConfigError::invalid(
                "EPHYRA_MAX_TRANSCODES",
                "must be at least 1",
            ));
        }
        if self.images.cache_max_mib == 0 {
            return Err(ConfigError::invalid(
                "EPHYRA_IMAGE_CACHE_MAX_MIB",
                "must be at least 1",
            ));
        }
        if self.scan.concurrency == 0 {
            return Err(ConfigError::invalid(
                "scan.concurrency",
                "must be at least 1",
            ));
        }
        if self.server_name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "EPHYRA_SERVER_NAME",
                "must not be empty",
            ));
        }
        Ok(())
    }
}

/// Parses `EPHYRA_LIBRARIES`: `kind:Name=/folder[,/folder2];kind:Name=/folder`.
pub fn parse_libraries(text: &str) -> Result<Vec<LibraryConfig>, String> {
    let mut out = Vec::new();
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (head, folders) = entry
            .split_once('=')
            .ok_or_else(|| format!("`{entry}` has no `=`: expected kind:Name=/folder"))?;
        let (kind, name) = head.split_once(':').ok_or_else(|| {
            format!("`{head}` has no `:`: expected kind:Name (movies or tvshows)")
        })?;
        let kind = match kind.trim().to_ascii_lowercase().as_str() {
            "movies" => LibraryKind::Movies,
            "tvshows" => LibraryKind::Tvshows,
            other => return Err(format!("library kind `{other}` is not movies or tvshows")),
        };
        let folders: Vec<PathBuf> = folders
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)
            .collect();
        if folders.is_empty() {
            return Err(format!("library `{}` has no folder", name.trim()));
        }
        out.push(LibraryConfig {
            name: name.trim().to_owned(),
            kind,
            folders,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;

/// Checks one `address/prefix` network (a bare address is one host).
pub fn check_network(text: &str) -> Result<(), String> {
    let text = text.trim();
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let ip: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("`{text}` is not an address or a network like 10.42.0.0/16"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix.map(str::parse::<u8>) {
        None => Ok(()),
        Some(Ok(p)) if p <= max => Ok(()),
        Some(_) => Err(format!("`{text}`: the prefix length must be 0 to {max}")),
    }
}

//! Environment overrides, read through an injectable [`Source`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use crate::{
    AdminBootstrap, ClusterIdentity, ConfigError, HwAccelKind, LogFormat, Secret, ServerConfig,
    parse_libraries,
};

/// Where environment values come from: the process in `main`, a map in tests.
pub trait Source {
    /// The value of `key`, if set and not empty.
    fn get(&self, key: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

/// A fixed set of values, for tests and for callers that build a configuration in code.
#[derive(Debug, Clone, Default)]
pub struct MapSource(BTreeMap<String, String>);

impl MapSource {
    /// An empty source.
    pub fn new() -> Self {
        MapSource::default()
    }

    /// Adds one value.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }
}

impl<const N: usize> From<[(&str, &str); N]> for MapSource {
    fn from(pairs: [(&str, &str); N]) -> Self {
        MapSource(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

impl Source for MapSource {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).filter(|v| !v.is_empty()).cloned()
    }
}

fn parsed<T: FromStr>(env: &dyn Source, key: &str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match env.get(key) {
        None => Ok(None),
        Some(raw) => raw
            .trim()
            .parse::<T>()
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                key: key.to_owned(),
                message: format!("cannot parse `{raw}`: {e}"),
            }),
    }
}

fn boolean(env: &dyn Source, key: &str) -> Result<Option<bool>, ConfigError> {
    match env.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(Some(true)),
        Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(Some(false)),
        Some(v) => Err(ConfigError::Invalid {
            key: key.to_owned(),
            message: format!("`{v}` is not a boolean (true/false)"),
        }),
    }
}

/// Applies every `EPHYRA_*` override that is set.
pub(crate) fn apply(config: &mut ServerConfig, env: &dyn Source) -> Result<(), ConfigError> {
    if let Some(v) = parsed(env, "EPHYRA_LISTEN")? {
        config.listen = v;
    }
    if let Some(v) = parsed(env, "EPHYRA_ADMIN_LISTEN")? {
        config.admin_listen = v;
    }
    if let Some(v) = env.get("EPHYRA_SERVER_NAME") {
        config.server_name = v;
    }
    if let Some(v) = env.get("EPHYRA_DATA_DIR") {
        config.data_dir = PathBuf::from(v);
    }
    if let Some(v) = env.get("EPHYRA_DATABASE_URL") {
        config.database.url = Some(Secret::new(v));
    }
    if let Some(v) = parsed(env, "EPHYRA_DATABASE_MAX_CONNECTIONS")? {
        config.database.max_connections = v;
    }
    if let Some(v) = env.get("EPHYRA_REDIS_URL") {
        config.redis.url = Some(Secret::new(v));
    }
    if let Some(v) = env.get("EPHYRA_TRANSCODE_DIR") {
        config.transcode.dir = Some(PathBuf::from(v));
    }
    if let Some(v) = parsed(env, "EPHYRA_MAX_TRANSCODES")? {
        config.transcode.max_concurrent = v;
    }
    if let Some(v) = parsed(env, "EPHYRA_IMAGE_CACHE_MAX_MIB")? {
        config.images.cache_max_mib = v;
    }
    if let Some(v) = env.get("EPHYRA_LIBRARIES") {
        config.libraries = parse_libraries(&v).map_err(|message| ConfigError::Invalid {
            key: "EPHYRA_LIBRARIES".to_owned(),
            message,
        })?;
    }
    if let Some(v) = parsed(env, "EPHYRA_SCAN_INTERVAL_SECONDS")? {
        config.scan.interval_seconds = v;
    }
    if let Some(v) = boolean(env, "EPHYRA_SCAN_WATCH")? {
        config.scan.watch = v;
    }
    if let Some(v) = boolean(env, "EPHYRA_SCAN_FORK_SERVER")? {
        config.scan.fork_server = v;
    }
    let admin_user = env.get("EPHYRA_ADMIN_USER");
    let admin_password = env.get("EPHYRA_ADMIN_PASSWORD").map(Secret::new);
    match (admin_user, admin_password, config.admin.as_mut()) {
        (Some(user), password, _) => {
            let password = password.or_else(|| config.admin.as_ref()?.password.clone());
            config.admin = Some(AdminBootstrap { user, password });
        }
        (None, Some(password), Some(admin)) => admin.password = Some(password),
        (None, Some(_), None) => {
            return Err(ConfigError::Invalid {
                key: "EPHYRA_ADMIN_USER".to_owned(),
                message: "must be set when EPHYRA_ADMIN_PASSWORD is".to_owned(),
            });
        }
        (None, None, _) => {}
    }
    if let Some(v) = env.get("EPHYRA_FFMPEG") {
        config.ffmpeg.ffmpeg = PathBuf::from(v);
    }
    if let Some(v) = env.get("EPHYRA_FFPROBE") {
        config.ffmpeg.ffprobe = PathBuf::from(v);
    }
    if let Some(v) = parsed::<HwAccelKind>(env, "EPHYRA_HWACCEL")? {
        config.hardware_acceleration.kind = v;
    }
    if let Some(v) = env.get("EPHYRA_HWACCEL_DEVICE") {
        config.hardware_acceleration.device = Some(PathBuf::from(v));
    }
    apply_cluster(config, env)?;
    if let Some(v) = parsed(env, "EPHYRA_LEASE_MILLIS")? {
        config.coordination.lease_millis = v;
    }
    if let Some(v) = parsed(env, "EPHYRA_RENEW_MILLIS")? {
        config.coordination.renew_millis = v;
    }
    if let Some(v) = parsed(env, "EPHYRA_JOB_WORKERS")? {
        config.jobs.workers = Some(v);
    }
    if let Some(v) = parsed(env, "EPHYRA_JOB_VISIBILITY_SECONDS")? {
        config.jobs.visibility_seconds = Some(v);
    }
    if let Some(v) = boolean(env, "EPHYRA_DISCOVERY")? {
        config.discovery = v;
    }
    if let Some(v) = env.get("EPHYRA_TRUSTED_PROXIES") {
        config.trusted_proxies = v
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
    }
    if let Some(v) = env.get("EPHYRA_WEB_DIR").filter(|v| !v.is_empty()) {
        config.web.dir = Some(PathBuf::from(v));
    }
    if let Some(v) = env.get("EPHYRA_LOG") {
        config.log.level = v;
    }
    if let Some(v) = env.get("EPHYRA_LOG_FORMAT") {
        config.log.format = match v.to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid {
                    key: "EPHYRA_LOG_FORMAT".to_owned(),
                    message: format!("`{other}` is not text or json"),
                });
            }
        };
    }
    Ok(())
}

/// The cluster identity is all-or-nothing: a name without a pod cannot report anything.
fn apply_cluster(config: &mut ServerConfig, env: &dyn Source) -> Result<(), ConfigError> {
    let name = env.get("EPHYRA_CLUSTER_NAME");
    let namespace = env
        .get("EPHYRA_NAMESPACE")
        .or_else(|| env.get("POD_NAMESPACE"));
    let pod = env.get("EPHYRA_POD_NAME").or_else(|| env.get("POD_NAME"));
    let current = config.cluster.take();
    let merged = (
        name.or_else(|| current.as_ref().map(|c| c.name.clone())),
        namespace.or_else(|| current.as_ref().map(|c| c.namespace.clone())),
        pod.or_else(|| current.as_ref().map(|c| c.pod_name.clone())),
    );
    config.cluster = match merged {
        (Some(name), Some(namespace), Some(pod_name)) => Some(ClusterIdentity {
            name,
            namespace,
            pod_name,
        }),
        (None, _, _) => None,
        (Some(_), None, _) => {
            return Err(ConfigError::Invalid {
                key: "EPHYRA_NAMESPACE".to_owned(),
                message: "must be set (or POD_NAMESPACE) when EPHYRA_CLUSTER_NAME is".to_owned(),
            });
        }
        (Some(_), Some(_), None) => {
            return Err(ConfigError::Invalid {
                key: "EPHYRA_POD_NAME".to_owned(),
                message: "must be set (or POD_NAME) when EPHYRA_CLUSTER_NAME is".to_owned(),
            });
        }
    };
    Ok(())
}

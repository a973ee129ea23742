//! The server configuration, rendered from `ephyra-config`'s own types into a ConfigMap (key
//! `config.yaml`, mounted at `/etc/ephyra/config.yaml`). The server and the operator share
//! those types, so a key can never be misspelt here.
//!
//! Secrets are not in it: `ServerConfig` never serializes the database or Redis URL, and the
//! operator leaves them unset anyway; they reach the pods from Secrets (`EPHYRA_DATABASE_URL`,
//! `EPHYRA_REDIS_URL`). The cluster identity is not in it either: each pod learns its own name
//! through the downward API.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ephyra_config::{HardwareAcceleration, LibraryConfig, LibraryKind, LogFormat, ServerConfig};
use k8s_openapi::api::core::v1::ConfigMap;

use super::{BuildError, hash_bytes, meta};
use crate::names::Component;
use crate::validate::ValidatedCluster;

/// Key of the configuration file in the ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";
/// Folder the ConfigMap is mounted at.
pub const CONFIG_DIR: &str = "/etc/ephyra";
/// The shared config volume (server data dir).
pub const DATA_DIR: &str = "/config";
/// The per-replica transcode claim.
pub const TRANSCODE_DIR: &str = "/transcode";
/// The media library, read-only.
pub const MEDIA_DIR: &str = "/media";
/// Jellyfin API port.
pub const HTTP_PORT: i32 = 8096;
/// Admin port (`/metrics`).
pub const ADMIN_PORT: i32 = 9096;

/// The server's configuration for this cluster.
pub fn server_config(v: &ValidatedCluster) -> ServerConfig {
    let defaults = ServerConfig::default();
    ServerConfig {
        listen: ([0, 0, 0, 0], HTTP_PORT as u16).into(),
        admin_listen: ([0, 0, 0, 0], ADMIN_PORT as u16).into(),
        server_name: v.server_name.clone(),
        data_dir: PathBuf::from(DATA_DIR),
        database: ephyra_config::DatabaseConfig {
            url: None,
            max_connections: v.pool_size,
        },
        redis: ephyra_config::RedisConfig::default(),
        transcode: ephyra_config::TranscodeConfig {
            dir: Some(PathBuf::from(TRANSCODE_DIR)),
            max_concurrent: v.transcode.max_concurrent,
            ..defaults.transcode
        },
        libraries: v
            .libraries
            .iter()
            .map(|lib| LibraryConfig {
                name: lib.name.clone(),
                kind: match lib.kind {
                    ephyra_crd::LibraryKind::Movies => LibraryKind::Movies,
                    ephyra_crd::LibraryKind::Tvshows => LibraryKind::Tvshows,
                },
                folders: lib.folders.clone(),
            })
            .collect(),
        hardware_acceleration: v
            .gpu
            .as_ref()
            .map(|gpu| HardwareAcceleration {
                kind: gpu.hwaccel,
                device: gpu.device.clone(),
            })
            .unwrap_or_default(),
        cluster: None,
        admin: None,
        // UDP broadcast discovery does not cross a Kubernetes Service.
        discovery: false,
        log: ephyra_config::LogConfig {
            level: v.server.log_level.clone(),
            format: LogFormat::Json,
        },
        ..defaults
    }
}

/// The ConfigMap holding [`server_config`] as YAML.
pub fn config_map(v: &ValidatedCluster) -> Result<ConfigMap, BuildError> {
    let yaml = server_config(v).to_yaml()?;
    Ok(ConfigMap {
        metadata: meta(v, v.names.config_map(), Component::Server),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_owned(), yaml)])),
        ..ConfigMap::default()
    })
}

/// Hash of the ConfigMap's data, put on the pod template so a change rolls the pods.
pub fn config_hash(config_map: &ConfigMap) -> String {
    let text = serde_json::to_vec(&config_map.data).unwrap_or_default();
    hash_bytes(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use ephyra_crd::MediaServerCluster;

    #[test]
    fn config_map_renders_as_expected() {
        insta::assert_snapshot!(yaml(&config_map(&default_cluster()).unwrap()));
    }

    #[test]
    fn the_rendered_file_parses_back_into_the_servers_configuration() {
        let v = validated(MediaServerCluster::test().intel_gpu(44));
        let cm = config_map(&v).unwrap();
        let text = &cm.data.unwrap()[CONFIG_KEY];
        let parsed = ServerConfig::from_yaml(text).unwrap();
        assert_eq!(parsed, server_config(&v));
        assert_eq!(
            parsed.libraries[1].folders,
            vec![PathBuf::from("/media/shows")]
        );
        assert_eq!(parsed.transcode.dir, Some(PathBuf::from("/transcode")));
        assert_eq!(parsed.data_dir, PathBuf::from("/config"));
        assert_eq!(
            parsed.hardware_acceleration.kind,
            ephyra_config::HwAccelKind::Vaapi
        );
        assert!(parsed.database.url.is_none() && parsed.redis.url.is_none());
    }

    #[test]
    fn the_hash_follows_the_content() {
        let a = config_map(&default_cluster()).unwrap();
        let mut msc = MediaServerCluster::test();
        msc.spec.server.log_level = "debug".to_owned();
        let b = config_map(&validated(msc)).unwrap();
        assert_ne!(config_hash(&a), config_hash(&b));
        assert_eq!(
            config_hash(&a),
            config_hash(&config_map(&default_cluster()).unwrap())
        );
    }
}

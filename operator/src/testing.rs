//! Test fixtures: a chainable `MediaServerCluster::test()` whose values differ from the CRD's
//! defaults (so a swapped or forgotten value shows). The in-memory API server is
//! `ephyra_testsupport::kube_fake`, shared with the server's tests.

use ephyra_crd::{
    AccelerationKind, MediaServerCluster, NfsSource, SecretKeyRef, SpreadPolicy, TlsSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::json;

/// Namespace of the fixture cluster.
pub const NS: &str = "media-test";
/// Name of the fixture cluster.
pub const NAME: &str = "jelly";
/// uid of the fixture cluster.
pub const UID: &str = "11111111-2222-3333-4444-555555555555";

/// Chainable constructors and modifiers for test clusters.
pub trait Fixture: Sized {
    /// Cluster `jelly` in `media-test`: three replicas, media on NFS `nas.test:/export/library`
    /// with libraries in `films/` and `shows/`, a Traefik route for `jelly.test.example` with a
    /// cert resolver, managed PostgreSQL and Redis, generation 1, stored (it has a uid).
    fn test() -> Self;
    /// Sets `spec.replicas`.
    fn replicas(self, n: i32) -> Self;
    /// Uses an external database from Secret `ext-db` key `uri`.
    fn external_db(self) -> Self;
    /// CloudNativePG with `instances` instances of 7Gi each (retained on delete).
    fn cloud_native_pg(self, instances: i32) -> Self;
    /// Uses an external Redis from Secret `ext-redis` key `url`.
    fn external_redis(self) -> Self;
    /// Asks for one Intel i915 GPU per replica with render group `group`.
    fn intel_gpu(self, group: i64) -> Self;
    /// Asks for one NVIDIA GPU per replica.
    fn nvidia_gpu(self) -> Self;
    /// Puts the config volume on NFS `nas.test:/export/jelly-config`.
    fn nfs_config(self) -> Self;
    /// Sets the transcode claim size.
    fn transcode_size(self, size: &str) -> Self;
    /// Removes the ingress.
    fn without_ingress(self) -> Self;
    /// Uses a TLS Secret instead of a cert resolver.
    fn tls_secret(self, name: &str) -> Self;
    /// Sets the spread policy.
    fn spread(self, policy: SpreadPolicy) -> Self;
    /// Drops the uid, as in a file given to `render`.
    fn unstored(self) -> Self;
}

impl Fixture for MediaServerCluster {
    fn test() -> Self {
        let value = json!({
            "apiVersion": "ephyra.io/v1alpha1",
            "kind": "MediaServerCluster",
            "metadata": {
                "name": NAME,
                "namespace": NS,
                "uid": UID,
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": {
                "replicas": 3,
                "media": {
                    "nfs": {"server": "nas.test", "path": "/export/library"},
                    "libraries": [
                        {"name": "Films", "kind": "movies", "paths": ["films"]},
                        {"name": "Shows", "kind": "tvshows", "paths": ["shows"]},
                    ],
                },
                "config": {"storageClassName": "rwx-test", "size": "3Gi"},
                "transcode": {"storageClassName": "fast-test", "size": "15Gi", "maxConcurrent": 3},
                "ingress": {
                    "host": "jelly.test.example",
                    "entryPoints": ["websecure-test"],
                    "tls": {"certResolver": "le-test"},
                    "stickyCookie": {
                        "name": "jelly_sticky",
                        "secure": true,
                        "httpOnly": false,
                        "sameSite": "strict",
                        "maxAge": 600,
                    },
                },
            },
        });
        serde_json::from_value(value).expect("the fixture is a valid MediaServerCluster")
    }

    fn replicas(mut self, n: i32) -> Self {
        self.spec.replicas = n;
        self
    }

    fn external_db(mut self) -> Self {
        self.spec.database.managed = None;
        self.spec.database.external = Some(SecretKeyRef {
            name: "ext-db".to_owned(),
            key: "uri".to_owned(),
        });
        self
    }

    fn cloud_native_pg(mut self, instances: i32) -> Self {
        self.spec.database.managed = None;
        self.spec.database.cloud_native_pg = Some(ephyra_crd::CloudNativePgSpec {
            instances,
            storage: ephyra_crd::CloudNativePgStorageSpec {
                size: k8s_openapi::apimachinery::pkg::api::resource::Quantity("7Gi".to_owned()),
                storage_class_name: None,
            },
            resources: None,
            parameters: Default::default(),
            synchronous_replicas: None,
            image_name: None,
            retain_on_delete: true,
        });
        self
    }

    fn external_redis(mut self) -> Self {
        self.spec.redis.managed = None;
        self.spec.redis.external = Some(SecretKeyRef {
            name: "ext-redis".to_owned(),
            key: "url".to_owned(),
        });
        self
    }

    fn intel_gpu(mut self, group: i64) -> Self {
        self.spec.hardware_acceleration.kind = AccelerationKind::Intel;
        self.spec.hardware_acceleration.render_group = Some(group);
        self
    }

    fn nvidia_gpu(mut self) -> Self {
        self.spec.hardware_acceleration.kind = AccelerationKind::Nvidia;
        self
    }

    fn nfs_config(mut self) -> Self {
        self.spec.config.storage_class_name = None;
        self.spec.config.nfs = Some(NfsSource {
            server: "nas.test".to_owned(),
            path: "/export/jelly-config".to_owned(),
        });
        self
    }

    fn transcode_size(mut self, size: &str) -> Self {
        self.spec.transcode.size = Quantity(size.to_owned());
        self
    }

    fn without_ingress(mut self) -> Self {
        self.spec.ingress = None;
        self
    }

    fn tls_secret(mut self, name: &str) -> Self {
        if let Some(ingress) = self.spec.ingress.as_mut() {
            ingress.tls = Some(TlsSpec {
                secret_name: Some(name.to_owned()),
                cert_resolver: None,
            });
        }
        self
    }

    fn spread(mut self, policy: SpreadPolicy) -> Self {
        self.spec.scheduling.spread = policy;
        self
    }

    fn unstored(mut self) -> Self {
        self.metadata.uid = None;
        self.metadata.resource_version = None;
        self.metadata.generation = None;
        self
    }
}

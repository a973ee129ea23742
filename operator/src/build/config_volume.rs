//! The shared config volume (ReadWriteMany, mounted at `/config` in every replica): an NFS
//! PersistentVolume made by the operator plus a claim pre-bound to it, or a claim that a
//! storage class provisions.
//!
//! The PV is cluster-scoped, so it cannot carry an owner reference to the namespaced
//! MediaServerCluster; the cluster gets a finalizer instead and `controller` deletes the PV
//! when the cluster goes. Its reclaim policy is `Retain`: deleting the PV object never touches
//! the data on the NFS server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    NFSVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::meta;
use crate::names::{Component, NAMESPACE_LABEL};
use crate::validate::{ConfigVolume, ValidatedCluster};

/// The NFS PersistentVolume (only meaningful for an NFS config volume; with a dynamic one the
/// PV is the provisioner's).
pub fn persistent_volume(v: &ValidatedCluster) -> PersistentVolume {
    let (server, path, size) = match &v.config_volume {
        ConfigVolume::Nfs { server, path, size } => (server.clone(), path.clone(), size.clone()),
        ConfigVolume::Dynamic { size, .. } => (String::new(), String::new(), size.clone()),
    };
    let mut labels = v.names.labels(Component::Config);
    labels.insert(NAMESPACE_LABEL.to_owned(), v.names.namespace().to_string());
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(v.names.config_volume()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: Some(BTreeMap::from([("storage".to_owned(), size)])),
            access_modes: Some(vec!["ReadWriteMany".to_owned()]),
            persistent_volume_reclaim_policy: Some("Retain".to_owned()),
            // Empty class: only the claim named in claimRef may bind it, never a dynamic one.
            storage_class_name: Some(String::new()),
            volume_mode: Some("Filesystem".to_owned()),
            nfs: Some(NFSVolumeSource {
                server,
                path,
                read_only: Some(false),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("PersistentVolumeClaim".to_owned()),
                namespace: Some(v.names.namespace().to_string()),
                name: Some(v.names.config_claim()),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        ..PersistentVolume::default()
    }
}

/// The ReadWriteMany claim the replicas mount at `/config`.
pub fn claim(v: &ValidatedCluster) -> PersistentVolumeClaim {
    let (storage_class, volume_name, size) = match &v.config_volume {
        ConfigVolume::Nfs { size, .. } => (
            Some(String::new()),
            Some(v.names.config_volume()),
            size.clone(),
        ),
        ConfigVolume::Dynamic {
            storage_class,
            size,
        } => (storage_class.clone(), None, size.clone()),
    };
    PersistentVolumeClaim {
        metadata: meta(v, v.names.config_claim(), Component::Config),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteMany".to_owned()]),
            storage_class_name: storage_class,
            volume_name,
            volume_mode: Some("Filesystem".to_owned()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), size)])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use ephyra_crd::MediaServerCluster;

    #[test]
    fn nfs_config_volume_renders_as_expected() {
        let v = validated(MediaServerCluster::test().nfs_config());
        insta::assert_snapshot!(format!(
            "{}---\n{}",
            yaml(&persistent_volume(&v)),
            yaml(&claim(&v))
        ));
    }

    #[test]
    fn dynamic_config_claim_renders_as_expected() {
        insta::assert_snapshot!(yaml(&claim(&default_cluster())));
    }

    #[test]
    fn the_nfs_claim_and_volume_point_at_each_other() {
        let v = validated(MediaServerCluster::test().nfs_config());
        let pv = persistent_volume(&v);
        let pvc = claim(&v);
        let pv_spec = pv.spec.unwrap();
        let claim_ref = pv_spec.claim_ref.unwrap();
        assert_eq!(claim_ref.name, pvc.metadata.name);
        assert_eq!(claim_ref.namespace.as_deref(), Some(crate::testing::NS));
        let pvc_spec = pvc.spec.unwrap();
        assert_eq!(pvc_spec.volume_name, pv.metadata.name);
        assert_eq!(pvc_spec.storage_class_name.as_deref(), Some(""));
        assert_eq!(pv_spec.storage_class_name.as_deref(), Some(""));
        assert_eq!(
            pv_spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Retain")
        );
        assert_eq!(pv.metadata.owner_references, None);
        assert_owned(&pvc.metadata);
    }
}

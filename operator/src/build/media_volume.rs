//! The media library volume of the server pods: an NFS export or an existing claim, always
//! read-only (the server never writes into the library). Not an owned object: it is a pod
//! volume, so nothing has to be created or cleaned up for it.

use k8s_openapi::api::core::v1::{NFSVolumeSource, PersistentVolumeClaimVolumeSource, Volume};

use crate::validate::{MediaVolume, ValidatedCluster};

/// Name of the pod volume.
pub const VOLUME: &str = "media";

/// The pod volume of the media library.
pub fn volume(v: &ValidatedCluster) -> Volume {
    match &v.media {
        MediaVolume::Nfs { server, path } => Volume {
            name: VOLUME.to_owned(),
            nfs: Some(NFSVolumeSource {
                server: server.clone(),
                path: path.clone(),
                read_only: Some(true),
            }),
            ..Volume::default()
        },
        MediaVolume::Claim(claim) => Volume {
            name: VOLUME.to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(true),
            }),
            ..Volume::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use ephyra_crd::MediaServerCluster;

    #[test]
    fn media_volume_renders_as_expected() {
        insta::assert_snapshot!(yaml(&volume(&default_cluster())));
    }

    #[test]
    fn both_kinds_of_media_volume_are_read_only() {
        let nfs = volume(&default_cluster());
        assert_eq!(nfs.nfs.unwrap().read_only, Some(true));
        let mut msc = MediaServerCluster::test();
        msc.spec.media.nfs = None;
        msc.spec.media.existing_claim = Some("library".to_owned());
        let claim = volume(&validated(msc)).persistent_volume_claim.unwrap();
        assert_eq!(claim.claim_name, "library");
        assert_eq!(claim.read_only, Some(true));
    }
}

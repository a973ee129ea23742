//! CloudNativePG (`postgresql.cnpg.io/v1`): the `Cluster` of `spec.database.cloudNativePG`,
//! built as JSON and applied through the dynamic API (like the Traefik objects), so a cluster
//! without CloudNativePG's CRD still gets everything else and says `CloudNativePGNotInstalled`.
//!
//! The operator renders only the Cluster. CloudNativePG makes the rest: the instances, their
//! volumes, the `-rw`/`-ro`/`-r` Services and the Secret `<cluster>-pg-app` whose `uri` key
//! (`postgresql://ephyra:…@<cluster>-pg-rw.<ns>:5432/ephyra`) the replicas read by
//! `secretKeyRef` — the operator never sees or copies the password.
//!
//! Deletion: CloudNativePG's volumes are owned by its Cluster, so deleting the Cluster deletes
//! the data. With `retainOnDelete` (the default) the Cluster carries no owner reference and
//! outlives the MediaServerCluster; it still carries the cluster's labels, and the operator
//! never prunes it.
//!
//! Pure: no API calls.

use kube::core::GroupVersionKind;
use serde_json::{Map, Value, json};

use super::{BuildError, Child, meta};
use crate::names::Component;
use crate::validate::{CloudNativePg, ValidatedCluster};

/// CloudNativePG's API group.
pub const CNPG_GROUP: &str = "postgresql.cnpg.io";
/// CloudNativePG's API version.
pub const CNPG_VERSION: &str = "v1";
/// Key of the connection URL in CloudNativePG's application Secret.
pub const URI_KEY: &str = "uri";
/// Database and owner created by `initdb` (the same names as the managed PostgreSQL).
pub const DATABASE: &str = super::postgres::USER;

/// GroupVersionKind and plural of the Cluster.
pub fn cluster_gvk() -> (GroupVersionKind, &'static str) {
    (
        GroupVersionKind::gvk(CNPG_GROUP, CNPG_VERSION, "Cluster"),
        "clusters",
    )
}

/// The Cluster as JSON.
pub fn cluster_value(v: &ValidatedCluster, pg: &CloudNativePg) -> Value {
    let mut metadata = meta(v, v.names.cnpg(), Component::Postgres);
    if pg.retain_on_delete {
        // No owner: the garbage collector would delete the Cluster, and with it the volumes.
        metadata.owner_references = None;
    }
    let mut storage = Map::new();
    storage.insert("size".into(), json!(pg.size.0));
    if let Some(class) = &pg.storage_class {
        storage.insert("storageClass".into(), json!(class));
    }
    let mut postgresql = Map::new();
    if !pg.parameters.is_empty() {
        postgresql.insert("parameters".into(), json!(pg.parameters));
    }
    if let Some(number) = pg.synchronous_replicas {
        // `required`: a commit waits for `number` standbys rather than silently going
        // asynchronous, which is the point of asking for it.
        postgresql.insert(
            "synchronous".into(),
            json!({"method": "any", "number": number, "dataDurability": "required"}),
        );
    }
    let mut spec = Map::new();
    spec.insert("instances".into(), json!(pg.instances));
    if let Some(image) = &pg.image_name {
        spec.insert("imageName".into(), json!(image));
    }
    // A rolling update promotes an up-to-date standby first instead of restarting the primary
    // in place: writes pause for a switchover (seconds), not a restart.
    spec.insert("primaryUpdateMethod".into(), json!("switchover"));
    spec.insert("storage".into(), Value::Object(storage));
    if let Some(resources) = &pg.resources {
        spec.insert("resources".into(), json!(resources));
    }
    if !postgresql.is_empty() {
        spec.insert("postgresql".into(), Value::Object(postgresql));
    }
    spec.insert(
        "bootstrap".into(),
        json!({"initdb": {"database": DATABASE, "owner": DATABASE}}),
    );
    spec.insert(
        "affinity".into(),
        json!({"enablePodAntiAffinity": true, "topologyKey": "kubernetes.io/hostname"}),
    );
    json!({
        "apiVersion": format!("{CNPG_GROUP}/{CNPG_VERSION}"),
        "kind": "Cluster",
        "metadata": metadata,
        "spec": spec,
    })
}

/// The Cluster as a child.
pub fn cluster(v: &ValidatedCluster, pg: &CloudNativePg) -> Result<Child, BuildError> {
    let (gvk, plural) = cluster_gvk();
    Child::dynamic(&gvk, plural, cluster_value(v, pg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use crate::validate::Database;
    use ephyra_crd::MediaServerCluster;

    fn cnpg(v: &ValidatedCluster) -> &CloudNativePg {
        match &v.database {
            Database::CloudNativePg(pg) => pg,
            other => panic!("not CloudNativePG: {other:?}"),
        }
    }

    #[test]
    fn the_cloudnativepg_cluster_renders_as_expected() {
        let v = validated(MediaServerCluster::test().cloud_native_pg(3));
        let value = cluster_value(&v, cnpg(&v));
        crate::tests::schemas::assert_matches_cnpg_schema("snapshot", &value);
        insta::assert_snapshot!(yaml(&value));
    }

    #[test]
    fn a_retained_cluster_has_no_owner_and_a_deletable_one_has_the_controller_reference() {
        let v = validated(MediaServerCluster::test().cloud_native_pg(3));
        let value = cluster_value(&v, cnpg(&v));
        crate::tests::schemas::assert_matches_cnpg_schema("retained", &value);
        assert!(value["metadata"].get("ownerReferences").is_none());
        assert_eq!(
            value["metadata"]["labels"]["app.kubernetes.io/instance"],
            "jelly"
        );

        let mut msc = MediaServerCluster::test().cloud_native_pg(1);
        if let Some(pg) = msc.spec.database.cloud_native_pg.as_mut() {
            pg.retain_on_delete = false;
        }
        let v = validated(msc);
        let value = cluster_value(&v, cnpg(&v));
        crate::tests::schemas::assert_matches_cnpg_schema("owned", &value);
        let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(value["metadata"].clone()).unwrap();
        assert_owned(&meta);
    }

    #[test]
    fn synchronous_replication_and_parameters_reach_the_postgresql_section() {
        let mut msc = MediaServerCluster::test().cloud_native_pg(3);
        if let Some(pg) = msc.spec.database.cloud_native_pg.as_mut() {
            pg.synchronous_replicas = Some(1);
            pg.parameters
                .insert("max_connections".to_owned(), "200".to_owned());
        }
        let v = validated(msc);
        let value = cluster_value(&v, cnpg(&v));
        crate::tests::schemas::assert_matches_cnpg_schema("synchronous", &value);
        assert_eq!(
            value["spec"]["postgresql"]["synchronous"],
            json!({"method": "any", "number": 1, "dataDurability": "required"})
        );
        assert_eq!(
            value["spec"]["postgresql"]["parameters"]["max_connections"],
            "200"
        );
    }
}

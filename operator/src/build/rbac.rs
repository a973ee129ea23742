//! The server's own identity: a ServiceAccount, and a Role + RoleBinding that let the server
//! pods read their MediaServerCluster and patch only its `status` (each replica reports itself
//! into `status.members`), restricted by `resourceNames` to this one cluster.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::meta;
use crate::names::Component;
use crate::validate::ValidatedCluster;

/// The ServiceAccount the server pods run as.
pub fn service_account(v: &ValidatedCluster) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(v, v.names.server_identity(), Component::Server),
        // The server talks to the API (status reports), so it needs its token.
        automount_service_account_token: Some(true),
        ..ServiceAccount::default()
    }
}

/// Read this cluster; patch only its status.
pub fn role(v: &ValidatedCluster) -> Role {
    let cluster = vec![v.names.cluster().to_string()];
    Role {
        metadata: meta(v, v.names.server_identity(), Component::Server),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec![ephyra_crd::GROUP.to_owned()]),
                resources: Some(vec!["mediaserverclusters".to_owned()]),
                resource_names: Some(cluster.clone()),
                verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
                ..PolicyRule::default()
            },
            PolicyRule {
                api_groups: Some(vec![ephyra_crd::GROUP.to_owned()]),
                resources: Some(vec!["mediaserverclusters/status".to_owned()]),
                resource_names: Some(cluster),
                verbs: vec!["get".to_owned(), "patch".to_owned()],
                ..PolicyRule::default()
            },
        ]),
    }
}

/// Binds [`role`] to [`service_account`].
pub fn role_binding(v: &ValidatedCluster) -> RoleBinding {
    RoleBinding {
        metadata: meta(v, v.names.server_identity(), Component::Server),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: v.names.server_identity(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: v.names.server_identity(),
            namespace: Some(v.names.namespace().to_string()),
            ..Subject::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;

    #[test]
    fn server_rbac_renders_as_expected() {
        let v = default_cluster();
        insta::assert_snapshot!(format!(
            "{}---\n{}---\n{}",
            yaml(&service_account(&v)),
            yaml(&role(&v)),
            yaml(&role_binding(&v))
        ));
    }

    #[test]
    fn the_role_reaches_only_this_cluster_and_only_its_status_for_writes() {
        let v = default_cluster();
        let rules = role(&v).rules.unwrap();
        for rule in &rules {
            assert_eq!(
                rule.resource_names.as_deref(),
                Some(&["jelly".to_owned()][..])
            );
        }
        let writes: Vec<_> = rules
            .iter()
            .filter(|r| {
                r.verbs
                    .iter()
                    .any(|v| v != "get" && v != "list" && v != "watch")
            })
            .collect();
        assert_eq!(writes.len(), 1);
        assert_eq!(
            writes[0].resources.as_deref(),
            Some(&["mediaserverclusters/status".to_owned()][..])
        );
        assert_eq!(writes[0].verbs, vec!["get", "patch"]);
    }

    #[test]
    fn the_binding_names_the_role_and_the_service_account() {
        let v = default_cluster();
        let binding = role_binding(&v);
        assert_eq!(binding.role_ref.name, role(&v).metadata.name.unwrap());
        assert_eq!(
            binding.subjects.unwrap()[0].name,
            service_account(&v).metadata.name.unwrap()
        );
        assert_owned(&role(&v).metadata);
    }
}

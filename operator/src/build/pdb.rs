//! The server's PodDisruptionBudget: node drains keep `minAvailable` replicas serving. None for
//! a single replica (it would block every drain) or when disabled.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta;
use crate::names::Component;
use crate::validate::ValidatedCluster;

/// The budget, if the cluster wants one.
pub fn pdb(v: &ValidatedCluster) -> Option<PodDisruptionBudget> {
    let min_available = v.min_available?;
    Some(PodDisruptionBudget {
        metadata: meta(v, v.names.server_identity(), Component::Server),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(min_available)),
            selector: Some(LabelSelector {
                match_labels: Some(v.names.selector(Component::Server)),
                match_expressions: None,
            }),
            // A pod that never became ready protects nothing; let drains evict it.
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".to_owned()),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use ephyra_crd::MediaServerCluster;

    #[test]
    fn pdb_renders_as_expected() {
        insta::assert_snapshot!(yaml(&pdb(&default_cluster()).unwrap()));
    }

    #[test]
    fn the_budget_selects_the_server_pods() {
        let budget = pdb(&default_cluster()).unwrap();
        assert_owned(&budget.metadata);
        let spec = budget.spec.unwrap();
        assert_eq!(spec.min_available, Some(IntOrString::Int(1)));
        assert_eq!(
            spec.selector.unwrap().match_labels.unwrap()["app.kubernetes.io/component"],
            "server"
        );
    }

    #[test]
    fn one_replica_or_a_disabled_budget_makes_none() {
        assert!(pdb(&validated(MediaServerCluster::test().replicas(1))).is_none());
        let mut msc = MediaServerCluster::test();
        msc.spec.disruption_budget.enabled = false;
        assert!(pdb(&validated(msc)).is_none());
    }
}

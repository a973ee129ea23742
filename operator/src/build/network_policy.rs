//! The NetworkPolicy that lets only this cluster's server pods reach its managed PostgreSQL and
//! Redis. Nothing else in the namespace (or the cluster) can open a connection to them. None
//! when both backends are external.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{map, meta};
use crate::names::{APP_NAME, Component};
use crate::validate::{Database, Redis, ValidatedCluster};

/// The policy, when at least one backend is managed.
pub fn network_policy(v: &ValidatedCluster) -> Option<NetworkPolicy> {
    let mut components = Vec::new();
    let mut ports = Vec::new();
    if matches!(v.database, Database::Managed(_)) {
        components.push(Component::Postgres.as_str().to_owned());
        ports.push(super::postgres::PORT);
    }
    if matches!(v.redis, Redis::Managed(_)) {
        components.push(Component::Redis.as_str().to_owned());
        ports.push(super::redis::PORT);
    }
    if components.is_empty() {
        return None;
    }
    let cluster = v.names.cluster().to_string();
    Some(NetworkPolicy {
        metadata: meta(v, v.names.backends_policy(), Component::Backends),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(map([
                    ("app.kubernetes.io/instance", &cluster),
                    ("app.kubernetes.io/name", APP_NAME),
                ])),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "app.kubernetes.io/component".to_owned(),
                    operator: "In".to_owned(),
                    values: Some(components),
                }]),
            }),
            policy_types: Some(vec!["Ingress".to_owned()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: Some(v.names.selector(Component::Server)),
                        match_expressions: None,
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(
                    ports
                        .into_iter()
                        .map(|port| NetworkPolicyPort {
                            port: Some(IntOrString::Int(port)),
                            protocol: Some("TCP".to_owned()),
                            ..NetworkPolicyPort::default()
                        })
                        .collect(),
                ),
            }]),
            ..NetworkPolicySpec::default()
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use ephyra_crd::MediaServerCluster;

    #[test]
    fn network_policy_renders_as_expected() {
        insta::assert_snapshot!(yaml(&network_policy(&default_cluster()).unwrap()));
    }

    #[test]
    fn only_server_pods_may_reach_the_managed_backends() {
        let policy = network_policy(&default_cluster()).unwrap();
        assert_owned(&policy.metadata);
        let spec = policy.spec.unwrap();
        let rule = &spec.ingress.unwrap()[0];
        let from = rule.from.as_ref().unwrap();
        assert_eq!(from.len(), 1);
        let peer = from[0].pod_selector.clone().unwrap().match_labels.unwrap();
        assert_eq!(peer["app.kubernetes.io/component"], "server");
        assert_eq!(peer["app.kubernetes.io/instance"], "jelly");
        assert!(from[0].namespace_selector.is_none());
        let guarded = spec.pod_selector.unwrap().match_expressions.unwrap()[0]
            .values
            .clone()
            .unwrap();
        assert_eq!(guarded, vec!["postgres", "redis"]);
    }

    #[test]
    fn external_backends_need_no_policy() {
        let v = validated(MediaServerCluster::test().external_db().external_redis());
        assert!(network_policy(&v).is_none());
        let v = validated(MediaServerCluster::test().external_db());
        let spec = network_policy(&v).unwrap().spec.unwrap();
        assert_eq!(
            spec.pod_selector.unwrap().match_expressions.unwrap()[0].values,
            Some(vec!["redis".to_owned()])
        );
    }
}

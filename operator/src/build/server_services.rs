//! The server's Services: a headless one that gives each replica a stable DNS name (it governs
//! the StatefulSet, and lets Prometheus reach each pod's admin port), and the client Service on
//! 8096 that Traefik and in-cluster clients use. Only ready pods are endpoints, so a replica
//! that turns unready leaves the load balancer's pool.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::config_map::{ADMIN_PORT, HTTP_PORT};
use super::meta;
use crate::names::Component;
use crate::validate::ValidatedCluster;

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_owned()),
        port: number,
        target_port: Some(IntOrString::String(name.to_owned())),
        protocol: Some("TCP".to_owned()),
        ..ServicePort::default()
    }
}

/// The headless Service of the StatefulSet.
pub fn headless(v: &ValidatedCluster) -> Service {
    Service {
        metadata: meta(v, v.names.server_headless(), Component::Server),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(v.names.selector(Component::Server)),
            ports: Some(vec![port("http", HTTP_PORT), port("admin", ADMIN_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The client Service on 8096.
pub fn client(v: &ValidatedCluster) -> Service {
    Service {
        metadata: meta(v, v.names.client_service(), Component::Server),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(v.names.selector(Component::Server)),
            ports: Some(vec![port("http", HTTP_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;

    #[test]
    fn server_services_render_as_expected() {
        let v = default_cluster();
        insta::assert_snapshot!(format!("{}---\n{}", yaml(&headless(&v)), yaml(&client(&v))));
    }

    #[test]
    fn both_services_select_the_server_pods_and_the_headless_one_governs_the_statefulset() {
        let v = default_cluster();
        let sts = crate::build::server_statefulset::stateful_set(
            &v,
            &crate::build::config_map::config_map(&v).unwrap(),
        );
        let spec = sts.spec.unwrap();
        for svc in [headless(&v), client(&v)] {
            assert_eq!(
                svc.spec.unwrap().selector,
                spec.selector.match_labels.clone()
            );
            assert_owned(&svc.metadata);
        }
        assert_eq!(spec.service_name, headless(&v).metadata.name);
        assert_eq!(client(&v).spec.unwrap().ports.unwrap()[0].port, 8096);
    }
}

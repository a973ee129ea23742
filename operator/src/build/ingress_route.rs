//! Traefik v3 (`traefik.io/v1alpha1`): an IngressRoute for the host with the sticky cookie from
//! the spec, and a headers Middleware. Built as JSON and applied through the dynamic API, so a
//! cluster without Traefik's CRDs still gets everything else.
//!
//! `nativeLB` stays off: with it Traefik would send to the Service's ClusterIP and per-pod
//! stickiness would be lost. Traefik's own health checks do not apply to ordinary Services;
//! the pods' readiness probe decides who is in the pool.

use kube::core::GroupVersionKind;
use serde_json::{Map, Value, json};

use super::config_map::HTTP_PORT;
use super::{BuildError, Child, meta};
use crate::names::Component;
use crate::validate::{Ingress, Tls, ValidatedCluster};

/// Traefik's API group.
pub const TRAEFIK_GROUP: &str = "traefik.io";
/// Traefik's API version.
pub const TRAEFIK_VERSION: &str = "v1alpha1";

/// GroupVersionKind and plural of the IngressRoute.
pub fn ingress_route_gvk() -> (GroupVersionKind, &'static str) {
    (
        GroupVersionKind::gvk(TRAEFIK_GROUP, TRAEFIK_VERSION, "IngressRoute"),
        "ingressroutes",
    )
}

/// GroupVersionKind and plural of the Middleware.
pub fn middleware_gvk() -> (GroupVersionKind, &'static str) {
    (
        GroupVersionKind::gvk(TRAEFIK_GROUP, TRAEFIK_VERSION, "Middleware"),
        "middlewares",
    )
}

fn ingress(v: &ValidatedCluster) -> Option<&Ingress> {
    v.ingress.as_ref()
}

/// The IngressRoute as JSON (`None` without `spec.ingress`).
pub fn ingress_route_value(v: &ValidatedCluster) -> Option<Value> {
    let ing = ingress(v)?;
    let c = &ing.sticky_cookie;
    let mut cookie = Map::new();
    cookie.insert("name".into(), json!(c.name));
    cookie.insert("secure".into(), json!(c.secure));
    cookie.insert("httpOnly".into(), json!(c.http_only));
    cookie.insert("sameSite".into(), json!(c.same_site));
    if c.max_age > 0 {
        cookie.insert("maxAge".into(), json!(c.max_age));
    }
    cookie.insert("path".into(), json!("/"));
    let mut spec = json!({
        "entryPoints": ing.entry_points,
        "routes": [{
            "kind": "Rule",
            "match": format!("Host(`{}`)", ing.host),
            "middlewares": [{"name": v.names.headers_middleware()}],
            "services": [{
                "kind": "Service",
                "name": v.names.client_service(),
                "port": HTTP_PORT,
                "nativeLB": false,
                "passHostHeader": true,
                "sticky": {"cookie": Value::Object(cookie)},
            }],
        }],
    });
    match &ing.tls {
        Some(Tls::Secret(secret)) => spec["tls"] = json!({"secretName": secret}),
        Some(Tls::Resolver(resolver)) => spec["tls"] = json!({"certResolver": resolver}),
        None => {}
    }
    Some(json!({
        "apiVersion": format!("{TRAEFIK_GROUP}/{TRAEFIK_VERSION}"),
        "kind": "IngressRoute",
        "metadata": meta(v, v.names.ingress_route(), Component::Server),
        "spec": spec,
    }))
}

/// The headers Middleware as JSON (`None` without `spec.ingress`).
pub fn middleware_value(v: &ValidatedCluster) -> Option<Value> {
    let ing = ingress(v)?;
    let mut headers = json!({
        "contentTypeNosniff": true,
        "referrerPolicy": "same-origin",
        "customFrameOptionsValue": "SAMEORIGIN",
        "customRequestHeaders": {
            "X-Forwarded-Proto": if ing.tls.is_some() { "https" } else { "http" },
        },
    });
    if ing.tls.is_some() {
        headers["stsSeconds"] = json!(31_536_000);
    }
    Some(json!({
        "apiVersion": format!("{TRAEFIK_GROUP}/{TRAEFIK_VERSION}"),
        "kind": "Middleware",
        "metadata": meta(v, v.names.headers_middleware(), Component::Server),
        "spec": {"headers": headers},
    }))
}

/// The IngressRoute as a child.
pub fn ingress_route(v: &ValidatedCluster) -> Result<Child, BuildError> {
    let (gvk, plural) = ingress_route_gvk();
    Child::dynamic(&gvk, plural, ingress_route_value(v).unwrap_or_default())
}

/// The Middleware as a child.
pub fn middleware(v: &ValidatedCluster) -> Result<Child, BuildError> {
    let (gvk, plural) = middleware_gvk();
    Child::dynamic(&gvk, plural, middleware_value(v).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::test_support::*;
    use crate::testing::Fixture;
    use ephyra_crd::MediaServerCluster;

    #[test]
    fn ingress_route_and_middleware_render_as_expected() {
        let v = default_cluster();
        insta::assert_snapshot!(format!(
            "{}---\n{}",
            yaml(&ingress_route_value(&v).unwrap()),
            yaml(&middleware_value(&v).unwrap())
        ));
    }

    #[test]
    fn the_sticky_cookie_is_carried_over_field_by_field() {
        let route = ingress_route_value(&default_cluster()).unwrap();
        let service = &route["spec"]["routes"][0]["services"][0];
        let cookie = &service["sticky"]["cookie"];
        assert_eq!(cookie["name"], "jelly_sticky");
        assert_eq!(cookie["secure"], true);
        assert_eq!(cookie["httpOnly"], false);
        assert_eq!(cookie["sameSite"], "strict");
        assert_eq!(cookie["maxAge"], 600);
        assert_eq!(service["nativeLB"], false);
        assert_eq!(service["name"], "jelly");
        assert_eq!(service["port"], 8096);
        assert_eq!(
            route["spec"]["routes"][0]["match"],
            "Host(`jelly.test.example`)"
        );
        assert_eq!(route["spec"]["entryPoints"][0], "websecure-test");
        assert_eq!(
            route["metadata"]["ownerReferences"][0]["uid"],
            crate::testing::UID
        );
    }

    #[test]
    fn tls_is_a_secret_or_a_cert_resolver() {
        let route = ingress_route_value(&default_cluster()).unwrap();
        assert_eq!(route["spec"]["tls"], json!({"certResolver": "le-test"}));
        let v = validated(MediaServerCluster::test().tls_secret("jelly-tls"));
        let route = ingress_route_value(&v).unwrap();
        assert_eq!(route["spec"]["tls"], json!({"secretName": "jelly-tls"}));
    }

    #[test]
    fn the_route_uses_the_headers_middleware() {
        let v = default_cluster();
        let route = ingress_route_value(&v).unwrap();
        let mw = middleware_value(&v).unwrap();
        assert_eq!(
            route["spec"]["routes"][0]["middlewares"][0]["name"],
            mw["metadata"]["name"]
        );
    }

    #[test]
    fn no_ingress_spec_means_no_traefik_objects() {
        let v = validated(MediaServerCluster::test().without_ingress());
        assert!(ingress_route_value(&v).is_none() && middleware_value(&v).is_none());
    }
}

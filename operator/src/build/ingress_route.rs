//! Traefik v3 (`traefik.io/v1alpha1`): an IngressRoute for the host with the sticky cookie from
//! the spec, and a headers Middleware. Built as JSON and applied through the dynamic API, so a
//! cluster without Traefik's CRDs still gets everything else.
//!
//! `nativeLB` stays off: with it Traefik would send to the Service's ClusterIP and per-pod
//! stickiness would be lost. Traefik's active health checks do not apply to ordinary Services;
//! the pods' readiness probe decides who is in the pool.
//!
//! Failover without a run of `502`s: when a replica dies, its pod stays in the endpoints for a second or
//! more, and Traefik keeps sending the clients stuck to it there. A Retry middleware alone does
//! not help, because each retry follows the sticky cookie back to the dead pod. With a passive
//! health check on the service, the failed attempts mark that pod down at once, so the retry
//! that follows goes to a live replica and Traefik rewrites the client's cookie. A request
//! already written to the dead pod gets a `502` from Traefik itself; the retry on that status
//! ([`RETRY_STATUS`], Traefik v3.7) sends it again if its method is idempotent (a `POST` is
//! never resent). Measured with the real Traefik in `e2e/tests/e2e/traefik.rs` (figures in
//! `docs/ha.md`).

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

/// Attempts the retry middleware makes; with [`PASSIVE_MAX_FAILED_ATTEMPTS`] below it, the last
/// attempt always goes to another replica than the one that refused the first.
pub const RETRY_ATTEMPTS: u32 = 3;
/// Wait before the first retry (the next ones back off from it).
pub const RETRY_INITIAL_INTERVAL: &str = "50ms";
/// Answers that are retried (Traefik v3.7): the `502`/`504` Traefik itself answers when a
/// replica died with the request already written to it (EOF, reset) or never answered. The
/// server never answers these itself, so no answer of a live replica is repeated, and
/// non-idempotent methods (`POST`) are still never retried (`retryNonIdempotentMethod` off).
pub const RETRY_STATUS: [&str; 2] = ["502", "504"];
/// Failed attempts (refused connections or `5xx`) within [`PASSIVE_FAILURE_WINDOW`] that take a
/// pod out of Traefik's pool. Two, so a single error answer does not move a client.
pub const PASSIVE_MAX_FAILED_ATTEMPTS: u32 = 2;
/// How long the failures are counted, and how long a pod stays out once they are reached:
/// longer than Kubernetes takes to drop a dead pod from the endpoints.
pub const PASSIVE_FAILURE_WINDOW: &str = "10s";

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
            "middlewares": [
                {"name": v.names.headers_middleware()},
                {"name": v.names.retry_middleware()},
            ],
            "services": [{
                "kind": "Service",
                "name": v.names.client_service(),
                "port": HTTP_PORT,
                "nativeLB": false,
                "passHostHeader": true,
                "sticky": {"cookie": Value::Object(cookie)},
                "passiveHealthCheck": {
                    "maxFailedAttempts": PASSIVE_MAX_FAILED_ATTEMPTS,
                    "failureWindow": PASSIVE_FAILURE_WINDOW,
                },
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

/// The retry Middleware as JSON (`None` without `spec.ingress`): requests that could not reach
/// a replica (refused or reset before an answer) are sent again, and so are idempotent ones
/// Traefik answered `502`/`504` itself (a replica that died after reading the request).
pub fn retry_middleware_value(v: &ValidatedCluster) -> Option<Value> {
    ingress(v)?;
    Some(json!({
        "apiVersion": format!("{TRAEFIK_GROUP}/{TRAEFIK_VERSION}"),
        "kind": "Middleware",
        "metadata": meta(v, v.names.retry_middleware(), Component::Server),
        "spec": {"retry": {
            "attempts": RETRY_ATTEMPTS,
            "initialInterval": RETRY_INITIAL_INTERVAL,
            "status": RETRY_STATUS,
        }},
    }))
}

/// The IngressRoute as a child.
pub fn ingress_route(v: &ValidatedCluster) -> Result<Child, BuildError> {
    let (gvk, plural) = ingress_route_gvk();
    Child::dynamic(&gvk, plural, ingress_route_value(v).unwrap_or_default())
}

/// The headers Middleware as a child.
pub fn middleware(v: &ValidatedCluster) -> Result<Child, BuildError> {
    let (gvk, plural) = middleware_gvk();
    Child::dynamic(&gvk, plural, middleware_value(v).unwrap_or_default())
}

/// The retry Middleware as a child.
pub fn retry_middleware(v: &ValidatedCluster) -> Result<Child, BuildError> {
    let (gvk, plural) = middleware_gvk();
    Child::dynamic(&gvk, plural, retry_middleware_value(v).unwrap_or_default())
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
            "{}---\n{}---\n{}",
            yaml(&ingress_route_value(&v).unwrap()),
            yaml(&middleware_value(&v).unwrap()),
            yaml(&retry_middleware_value(&v).unwrap())
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
    fn the_route_retries_refused_requests_and_drops_a_failing_pod_from_the_pool() {
        let v = default_cluster();
        let route = ingress_route_value(&v).unwrap();
        let retry = retry_middleware_value(&v).unwrap();
        assert_eq!(
            route["spec"]["routes"][0]["middlewares"][1]["name"],
            retry["metadata"]["name"]
        );
        let attempts = retry["spec"]["retry"]["attempts"].as_u64().unwrap();
        let passive = &route["spec"]["routes"][0]["services"][0]["passiveHealthCheck"];
        let max_failed = passive["maxFailedAttempts"].as_u64().unwrap();
        // The pod is out of the pool before the last attempt is made.
        assert!(
            max_failed < attempts,
            "{max_failed} failures, {attempts} attempts"
        );
        assert_eq!(passive["failureWindow"], PASSIVE_FAILURE_WINDOW);
    }

    #[test]
    fn no_ingress_spec_means_no_traefik_objects() {
        let v = validated(MediaServerCluster::test().without_ingress());
        assert!(
            ingress_route_value(&v).is_none()
                && middleware_value(&v).is_none()
                && retry_middleware_value(&v).is_none()
        );
    }
}

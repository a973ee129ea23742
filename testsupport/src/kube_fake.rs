//! A small in-memory Kubernetes API server behind `kube::Client`, for the operator's reconcile
//! tests and the server's status reporting tests.
//!
//! Objects are stored as JSON by (group/version, plural, namespace, name). It answers what the
//! operator sends: GET (one object or a list with equality label selectors), POST, DELETE
//! (finalizers honoured: the object is marked and removed once they are gone), PATCH as
//! server-side apply (the applied object replaces the stored one except for server-owned
//! fields: uid, resourceVersion, generation, finalizers, status), apply on the `status`
//! subresource (top-level status keys replaced, others kept; `members` entries merged by
//! `name`, as the list-map merge of the real API does for each replica's own entry), JSON patch
//! and merge patch. It bumps `resourceVersion` on every write and `generation` when anything
//! but metadata and status changes, refuses a StatefulSet `volumeClaimTemplates` change with
//! 422 like the real API, and answers 404 for `traefik.io` unless Traefik is "installed".
//! [`FakeApi::fail`] makes chosen requests answer 500, as a flaky API server does.
//! Every request is recorded so tests can count writes exactly. A watch request gets a stream
//! that stays open and never sends an event (enough for a controller to start and stop).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The query string.
    pub query: String,
    /// `Content-Type` of the body, if any.
    pub content_type: String,
    /// The body, for assertions on what was sent.
    pub body: String,
}

impl Recorded {
    /// The RBAC permissions this request needs: (API group, resource[/subresource], verb).
    /// Server-side apply may create an object, so it needs `create` as well as `patch`.
    pub fn permissions(&self) -> Vec<(String, String, &'static str)> {
        let Some(target) = parse_path(&self.path) else {
            return Vec::new();
        };
        let Some(plural) = target.plural else {
            return Vec::new(); // discovery is open to every authenticated user
        };
        let group = target
            .group_version
            .split_once('/')
            .map(|(g, _)| g.to_owned())
            .unwrap_or_default();
        let subresource = target.subresource.is_some();
        let resource = match target.subresource {
            Some(sub) => format!("{plural}/{sub}"),
            None => plural,
        };
        let verbs: Vec<&'static str> = match (self.method.as_str(), target.name.is_some()) {
            ("GET", true) => vec!["get"],
            ("GET", false) if self.query.split('&').any(|p| p == "watch=true") => vec!["watch"],
            ("GET", false) => vec!["list"],
            ("POST", _) => vec!["create"],
            // Apply to a subresource never creates.
            ("PATCH", _)
                if self.content_type.starts_with("application/apply-patch") && !subresource =>
            {
                vec!["patch", "create"]
            }
            ("PATCH", _) => vec!["patch"],
            ("DELETE", _) => vec!["delete"],
            _ => vec![],
        };
        verbs
            .into_iter()
            .map(|v| (group.clone(), resource.clone(), v))
            .collect()
    }

    /// Whether it changes anything.
    pub fn is_write(&self) -> bool {
        self.method != "GET"
    }

    /// Whether it is an event being published.
    pub fn is_event(&self) -> bool {
        self.path.contains("/events")
    }

    /// Whether it writes the MediaServerCluster itself (status, finalizers).
    pub fn is_cluster(&self) -> bool {
        self.path.contains("/mediaserverclusters/")
    }
}

type Key = (String, String, String, String);

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<Key, Value>,
    requests: Vec<Recorded>,
    traefik: bool,
    /// Discovery lists Traefik's resources but they answer 404 (CRDs removed in between).
    traefik_stale_discovery: bool,
    /// CloudNativePG's `postgresql.cnpg.io/v1` is served.
    cnpg: bool,
    version: u64,
    /// Requests to answer with 500: (method, path suffix, how many more times).
    failures: Vec<(String, String, usize)>,
}

/// The fake API server. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn status_body(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    respond(code, &body)
}

fn respond(code: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = code;
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Where a path points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `v1` or `group/version`.
    pub group_version: String,
    /// Resource plural; `None` for discovery.
    pub plural: Option<String>,
    /// Namespace, empty for cluster-scoped paths.
    pub namespace: String,
    /// Object name, for single-object requests.
    pub name: Option<String>,
    /// Subresource such as `status`.
    pub subresource: Option<String>,
}

/// Splits an API path into its parts.
pub fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group_version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ((*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => ((*ns).to_owned(), rest),
        _ => (String::new(), rest),
    };
    Some(Target {
        group_version,
        plural: rest.first().map(|s| (*s).to_owned()),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        subresource: rest.get(2).map(|s| (*s).to_owned()),
    })
}

fn labels_match(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        object["metadata"]["labels"][k].as_str() == Some(v)
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| {
            v.replace("%2C", ",")
                .replace("%3D", "=")
                .replace("%2F", "/")
                .replace('+', " ")
        })
    })
}

/// Everything except metadata and status: what a generation counts.
fn spec_part(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

impl FakeApi {
    /// An empty API without Traefik.
    pub fn new() -> Self {
        FakeApi::default()
    }

    /// Serves Traefik's `traefik.io/v1alpha1`.
    pub fn with_traefik(self) -> Self {
        self.lock().traefik = true;
        self
    }

    /// Serves CloudNativePG's `postgresql.cnpg.io/v1` (Clusters).
    pub fn with_cnpg(self) -> Self {
        self.lock().cnpg = true;
        self
    }

    /// Discovery still lists Traefik's resources, but the resources themselves answer 404, as
    /// right after the CRDs were deleted.
    pub fn with_stale_traefik_discovery(self) -> Self {
        {
            let mut state = self.lock();
            state.traefik = true;
            state.traefik_stale_discovery = true;
        }
        self
    }

    /// The next `times` requests with `method` whose path ends with `path_suffix` answer 500
    /// InternalError (recorded, but not carried out).
    pub fn fail(&self, method: &str, path_suffix: &str, times: usize) {
        self.lock()
            .failures
            .push((method.to_owned(), path_suffix.to_owned(), times));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake API state lock")
    }

    /// A client talking to this fake.
    pub fn client(&self) -> kube::Client {
        let fake = self.clone();
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let fake = fake.clone();
            async move { Ok::<_, Infallible>(fake.handle(request).await) }
        });
        kube::Client::new(service, "default")
    }

    /// Stores an object as if someone had created it (not recorded as a request).
    pub fn insert(&self, object: Value) {
        let api_version = object["apiVersion"].as_str().unwrap_or("v1").to_owned();
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut state = self.lock();
        state.version += 1;
        let mut object = object;
        object["metadata"]["resourceVersion"] = json!(state.version.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{name}"));
        }
        state
            .objects
            .insert((api_version, plural(&kind), namespace, name), object);
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(
                api_version.to_owned(),
                plural(kind),
                namespace.to_owned(),
                name.to_owned(),
            ))
            .cloned()
    }

    /// Changes a stored object in place (a person editing it, a controller setting status).
    pub fn edit(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) {
        let mut state = self.lock();
        state.version += 1;
        let version = state.version;
        let key = (
            api_version.to_owned(),
            plural(kind),
            namespace.to_owned(),
            name.to_owned(),
        );
        let object = state.objects.get_mut(&key).expect("object to edit exists");
        let before = spec_part(object);
        f(object);
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        if spec_part(object) != before {
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
    }

    /// `Kind/name` of every stored object of `api_version` in `namespace` ("" for
    /// cluster-scoped), sorted.
    pub fn names(&self) -> Vec<String> {
        self.lock()
            .objects
            .values()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Every write so far.
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_write)
            .collect()
    }

    /// Writes to objects other than the cluster itself and its events: `METHOD path`.
    pub fn object_writes(&self) -> Vec<String> {
        self.writes()
            .into_iter()
            .filter(|r| !r.is_event() && !r.is_cluster())
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    async fn handle(&self, request: Request<kube::client::Body>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => Bytes::new(),
        };
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or_default().to_owned();
        let content_type = parts
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let mut state = self.lock();
        state.requests.push(Recorded {
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let failure = state.failures.iter_mut().find(|(method, suffix, times)| {
            *times > 0 && parts.method.as_str() == method && path.ends_with(suffix.as_str())
        });
        if let Some((_, _, times)) = failure {
            *times -= 1;
            return status_body(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "etcdserver: request timed out",
            );
        }
        if parts.method == Method::GET && query.split('&').any(|p| p == "watch=true") {
            let quiet = futures::stream::pending::<Result<Frame<Bytes>, Infallible>>();
            return Response::new(StreamBody::new(quiet).boxed());
        }
        let Some(target) = parse_path(&path) else {
            return status_body(StatusCode::NOT_FOUND, "NotFound", "unknown path");
        };
        if target.group_version.starts_with("traefik.io/") {
            if !state.traefik {
                return status_body(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                );
            }
            if target.plural.is_some() && state.traefik_stale_discovery {
                return status_body(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                );
            }
            if target.plural.is_none() {
                return respond(
                    StatusCode::OK,
                    &json!({
                        "kind": "APIResourceList",
                        "apiVersion": "v1",
                        "groupVersion": target.group_version,
                        "resources": [
                            {"name": "ingressroutes", "singularName": "ingressroute", "namespaced": true, "kind": "IngressRoute", "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                            {"name": "middlewares", "singularName": "middleware", "namespaced": true, "kind": "Middleware", "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                        ],
                    }),
                );
            }
        }
        if target.group_version.starts_with("postgresql.cnpg.io/") {
            if !state.cnpg {
                return status_body(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "the server could not find the requested resource",
                );
            }
            if target.plural.is_none() {
                return respond(
                    StatusCode::OK,
                    &json!({
                        "kind": "APIResourceList",
                        "apiVersion": "v1",
                        "groupVersion": target.group_version,
                        "resources": [
                            {"name": "clusters", "singularName": "cluster", "namespaced": true, "kind": "Cluster", "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
                        ],
                    }),
                );
            }
        }
        let Some(plural) = target.plural.clone() else {
            return status_body(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no discovery for this group",
            );
        };
        let key = (
            target.group_version.clone(),
            plural.clone(),
            target.namespace.clone(),
            target.name.clone().unwrap_or_default(),
        );
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match (parts.method, target.name.is_some()) {
            (Method::GET, true) => match state.objects.get(&key) {
                Some(object) => respond(StatusCode::OK, object),
                None => status_body(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("{plural} \"{}\" not found", key.3),
                ),
            },
            (Method::GET, false) => {
                let selector = query_param(&query, "labelSelector").unwrap_or_default();
                let items: Vec<Value> = state
                    .objects
                    .iter()
                    .filter(|((gv, p, ns, _), o)| {
                        gv == &target.group_version
                            && p == &plural
                            && (target.namespace.is_empty() || ns == &target.namespace)
                            && labels_match(o, &selector)
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                respond(
                    StatusCode::OK,
                    &json!({
                        "apiVersion": target.group_version,
                        "kind": "List",
                        "metadata": {"resourceVersion": state.version.to_string()},
                        "items": items,
                    }),
                )
            }
            (Method::POST, _) => {
                let name = body["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let key = (key.0, key.1, key.2, name.clone());
                if state.objects.contains_key(&key) {
                    return status_body(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        &format!("{name} already exists"),
                    );
                }
                let object = state.create(body);
                state.objects.insert(key, object.clone());
                respond(StatusCode::CREATED, &object)
            }
            (Method::DELETE, true) => {
                let Some(object) = state.objects.get(&key).cloned() else {
                    return status_body(StatusCode::NOT_FOUND, "NotFound", "not found");
                };
                let has_finalizers = object["metadata"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
                if has_finalizers {
                    state.version += 1;
                    let version = state.version;
                    let stored = state.objects.get_mut(&key).expect("present");
                    stored["metadata"]["deletionTimestamp"] = json!("2030-01-01T00:00:00Z");
                    stored["metadata"]["resourceVersion"] = json!(version.to_string());
                    let generation = stored["metadata"]["generation"].as_i64().unwrap_or(1);
                    stored["metadata"]["generation"] = json!(generation + 1);
                    let stored = stored.clone();
                    respond(StatusCode::OK, &stored)
                } else {
                    state.objects.remove(&key);
                    respond(StatusCode::OK, &object)
                }
            }
            (Method::PATCH, true) => {
                state.patch(key, target.subresource.as_deref(), &content_type, body)
            }
            (method, _) => status_body(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!("{method} is not supported by the fake"),
            ),
        }
    }
}

impl State {
    fn bump(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    fn create(&mut self, mut object: Value) -> Value {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let version = self.bump();
        let metadata = &mut object["metadata"];
        metadata["uid"] = json!(format!("uid-{name}-{version}"));
        metadata["resourceVersion"] = json!(version);
        metadata["generation"] = json!(1);
        metadata["creationTimestamp"] = json!("2030-01-01T00:00:00Z");
        object
    }

    fn patch(
        &mut self,
        key: Key,
        subresource: Option<&str>,
        content_type: &str,
        body: Value,
    ) -> Response<Body> {
        let existing = self.objects.get(&key).cloned();
        let updated = if content_type.starts_with("application/apply-patch") {
            match (subresource, existing) {
                (Some("status"), None) => {
                    return status_body(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        "no object for this status",
                    );
                }
                (Some("status"), Some(mut stored)) => {
                    if !stored["status"].is_object() {
                        stored["status"] = json!({});
                    }
                    if let Some(fields) = body["status"].as_object() {
                        for (k, v) in fields {
                            if k == "members" {
                                merge_members(&mut stored["status"]["members"], v);
                            } else {
                                stored["status"][k] = v.clone();
                            }
                        }
                    }
                    stored
                }
                (_, None) => self.create(body),
                (_, Some(stored)) => {
                    let mut merged = body;
                    for field in [
                        "uid",
                        "resourceVersion",
                        "generation",
                        "creationTimestamp",
                        "finalizers",
                        "deletionTimestamp",
                    ] {
                        if !stored["metadata"][field].is_null() {
                            merged["metadata"][field] = stored["metadata"][field].clone();
                        }
                    }
                    if !stored["status"].is_null() {
                        merged["status"] = stored["status"].clone();
                    }
                    if stored["kind"] == "StatefulSet"
                        && stored["spec"]["volumeClaimTemplates"]
                            != merged["spec"]["volumeClaimTemplates"]
                    {
                        return status_body(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "Invalid",
                            "StatefulSet.apps is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                        );
                    }
                    merged
                }
            }
        } else {
            let Some(mut stored) = existing else {
                return status_body(StatusCode::NOT_FOUND, "NotFound", "not found");
            };
            if content_type.starts_with("application/json-patch") {
                let patch: json_patch::Patch = match serde_json::from_value(body) {
                    Ok(p) => p,
                    Err(e) => {
                        return status_body(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string());
                    }
                };
                if let Err(e) = json_patch::patch(&mut stored, &patch) {
                    return status_body(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Invalid",
                        &e.to_string(),
                    );
                }
            } else {
                json_patch::merge(&mut stored, &body);
            }
            stored
        };
        let mut updated = updated;
        let before = self.objects.get(&key).map(spec_part);
        let version = self.bump();
        updated["metadata"]["resourceVersion"] = json!(version);
        if let Some(before) = before
            && before != spec_part(&updated)
        {
            let generation = updated["metadata"]["generation"].as_i64().unwrap_or(1);
            updated["metadata"]["generation"] = json!(generation + 1);
        }
        let finished = !updated["metadata"]["deletionTimestamp"].is_null()
            && updated["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        if finished {
            self.objects.remove(&key);
        } else {
            self.objects.insert(key, updated.clone());
        }
        respond(StatusCode::OK, &updated)
    }
}

/// Merges applied `members` entries into the stored list by `name` (`x-kubernetes-list-type:
/// map`): an applied entry replaces the stored one of the same name, other entries stay.
fn merge_members(stored: &mut Value, applied: &Value) {
    if !stored.is_array() {
        *stored = json!([]);
    }
    let (Some(list), Some(entries)) = (stored.as_array_mut(), applied.as_array()) else {
        return;
    };
    for entry in entries {
        match list.iter_mut().find(|m| m["name"] == entry["name"]) {
            Some(existing) => *existing = entry.clone(),
            None => list.push(entry.clone()),
        }
    }
}

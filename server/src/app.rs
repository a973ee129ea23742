//! Assembly and serving: [`app`] builds the public router (the web client's files at `/web/`;
//! every other request lowercased, traced, counted, CORS-enabled, body-limited),
//! [`admin_app`] the admin router (`/metrics`), and [`run`] opens the store, starts the
//! listeners (the public one through [`crate::listener`], which bounds connections) and shuts
//! down gracefully.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ephyra_config::ServerConfig;
use http::uri::PathAndQuery;
use http::{HeaderValue, Uri, header};
use tokio::net::TcpListener;
use tower::Layer;
use tower_http::cors::CorsLayer;
use tracing::Instrument;

use crate::auth::password::{self, PasswordError};
use crate::error::{ApiError, DisplayChain};
use crate::state::AppState;
use crate::store::{PoolSettings, Store, StoreError};

/// Largest request body accepted; larger ones get 413. Device profiles in PlaybackInfo are
/// the largest bodies clients send (tens of kilobytes).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long in-flight requests may run after shutdown begins before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long job workers and the status reporter get to finish at shutdown.
pub const JOBS_GRACE: Duration = Duration::from_secs(5);

/// The public router: the Jellyfin API and health checks.
pub fn app(state: AppState) -> Router {
    let web_dir = state.config.web.dir.clone();
    let routes = crate::api::router()
        .merge(crate::health::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            retry_idempotent,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state);
    // Lowercasing must happen before routing, so it wraps the routed service; CORS answers
    // preflights before anything else.
    let lowercased = middleware::map_request(lowercase_path).layer(routes);
    // The web client's files keep their case, so they are routed before lowercasing.
    crate::web::router(web_dir).fallback_service(CorsLayer::permissive().layer(lowercased))
}

/// The admin router: Prometheus metrics, on its own listener.
pub fn admin_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .merge(crate::health::router())
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found("No such endpoint.")
}

/// Rewrites the path to lowercase, collapses repeated slashes (a base URL with a trailing
/// slash joined to `/System/...`) and drops a trailing slash, keeping the query as it is.
async fn lowercase_path(mut req: Request) -> Request {
    let path = req.uri().path();
    let mut lowered = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && lowered.ends_with('/')) {
            lowered.push(c.to_ascii_lowercase());
        }
    }
    while lowered.len() > 1 && lowered.ends_with('/') {
        lowered.pop();
    }
    if lowered != path {
        let pq = match req.uri().query() {
            Some(q) => format!("{lowered}?{q}"),
            None => lowered,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(pq) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// How long an idempotent request waits before its one retry after a database failure: long
/// enough for a re-pointed Service or a restarting primary to answer, short against a client's
/// timeout.
const FAILOVER_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Rides through a PostgreSQL failover. A response that failed on a broken or demoted
/// database connection ([`crate::error::DatabaseFailure`]) makes the pool drop every
/// connection opened before it; a `GET` or `HEAD` without a body is then answered once more,
/// on fresh connections.
///
/// Nothing else is repeated: a write whose connection broke may have committed before the
/// error, so running it again could apply it twice (a play counted twice). It answers 503
/// with `Retry-After`, and the client decides (Jellyfin clients resend progress reports, which
/// are upserts by user and item, so a resend cannot double anything).
async fn retry_idempotent(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let idempotent =
        matches!(*req.method(), http::Method::GET | http::Method::HEAD) && has_no_body(&req);
    if !idempotent {
        let response = next.run(req).await;
        if response
            .extensions()
            .get::<crate::error::DatabaseFailure>()
            .is_some()
        {
            state.store.recycle_connections();
        }
        return response;
    }
    let (parts, body) = req.into_parts();
    let again = Request::from_parts(parts.clone(), axum::body::Body::empty());
    let response = next.clone().run(Request::from_parts(parts, body)).await;
    if response
        .extensions()
        .get::<crate::error::DatabaseFailure>()
        .is_none()
    {
        return response;
    }
    state.store.recycle_connections();
    tracing::info!("database connection failed; retrying the request once on a fresh one");
    tokio::time::sleep(FAILOVER_RETRY_PAUSE).await;
    next.run(again).await
}

/// Whether a request carries no body, by its headers (the listener's stall timeout hides the
/// body's own size hint): without `Content-Length` or `Transfer-Encoding`, an HTTP/1.1 request
/// has none. The retry sends an empty body, so a request with one is never repeated.
fn has_no_body(req: &Request) -> bool {
    let headers = req.headers();
    !headers.contains_key(header::TRANSFER_ENCODING)
        && headers
            .get(header::CONTENT_LENGTH)
            .is_none_or(|length| length.as_bytes() == b"0")
}

/// One span per request named by its route template (never the raw path, which holds ids and
/// tokens), and the request metrics.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    // Standard methods or `other`: a client may send any token as a method.
    let method = crate::metrics::method_label(req.method().as_str());
    let span = tracing::info_span!(
        "request",
        method = %method,
        route = %route,
        status = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    let started = Instant::now();
    state.metrics.http_in_flight.inc();
    let response = next.run(req).instrument(span.clone()).await;
    state.metrics.http_in_flight.dec();
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.record("status", status);
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if route.starts_with("/health") {
        tracing::debug!(parent: &span, latency_ms, "answered");
    } else {
        tracing::info!(parent: &span, latency_ms, "answered");
    }
    state
        .metrics
        .observe_request(method, &route, status, elapsed);
    response
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data folder could not be created.
    #[error("cannot create data folder {path}")]
    DataDir {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("database")]
    Store(#[from] StoreError),
    /// The first administrator's password could not be hashed.
    #[error("first administrator")]
    Password(#[from] PasswordError),
    /// Coordination could not start (a malformed Redis URL; an unreachable Redis is not an
    /// error: the replica serves without leadership until it answers).
    #[error("coordination")]
    Coordination(#[from] crate::coord::CoordError),
    /// A listener failed.
    #[error("serving HTTP")]
    Serve(#[source] std::io::Error),
}

/// Creates `dir` (and missing parents) readable by this user only (0700); an existing folder
/// is left as it is (it may be a mounted volume whose mode the platform decides).
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The file of a `sqlite:` URL, unless it is in memory.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:") && !url.contains("mode=memory"))
        .then(|| std::path::PathBuf::from(path))
}

/// Makes the SQLite file (created empty if missing) and its journals readable by this user
/// only (0600): it holds password hashes and token hashes. SQLite gives its `-wal` and `-shm`
/// files the database file's mode.
fn private_file(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_dir(parent)?;
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = std::path::PathBuf::from(name);
            // An existing file made by an older version may be world-readable: tighten it.
            if let Ok(meta) = std::fs::metadata(&file)
                && meta.permissions().mode() & 0o077 != 0
                && let Err(e) =
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(file = %file.display(), error = %e, "cannot make the database file private");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Opens (and migrates) the store, creates the first administrator if configured and there is
/// no user yet, and builds the app state.
pub async fn start(config: ServerConfig) -> Result<AppState, RunError> {
    if let Err(source) = private_dir(&config.data_dir) {
        return Err(RunError::DataDir {
            path: config.data_dir.clone(),
            source,
        });
    }
    let url = config
        .database
        .url()
        .map(|u| u.expose().to_owned())
        .unwrap_or_default();
    if let Some(path) = sqlite_file(&url)
        && let Err(source) = private_file(&path)
    {
        return Err(RunError::DataDir { path, source });
    }
    let settings = PoolSettings {
        max_connections: config.database.max_connections,
        ..PoolSettings::default()
    };
    let store = Store::open(&url, &settings).await?;
    tracing::info!(provider = store.dialect().name(), "database ready");
    if let Some(admin) = &config.admin
        && let Some(pw) = &admin.password
    {
        // Given an administrator, nobody should meet the first-run wizard: it closes either
        // way. An existing user is never touched (the password may have been changed since).
        if store.count_users().await? == 0 {
            let hash = password::hash(pw.expose()).await?;
            if store.ensure_first_admin(&admin.user, &hash).await? {
                tracing::info!(user = %admin.user, "created the first administrator");
            }
        } else {
            store.complete_wizard().await?;
        }
    }
    Ok(AppState::new(config, store).await?)
}

/// Starts the server with `config` on the given listeners and serves until `shutdown`
/// completes; then readiness turns false, new connections are refused, and in-flight requests
/// get [`SHUTDOWN_GRACE`] to finish.
pub async fn run(
    config: ServerConfig,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let state = start(config).await?;
    serve(state, listener, admin_listener, shutdown).await
}

/// Serves an already started state (see [`start`]).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let stopping = state.shutdown.clone();
    let trigger = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: readiness off, finishing in-flight requests");
        trigger.begin_shutdown();
        // Leadership goes at once, not after in-flight requests: another replica takes over.
        trigger.coordinator.shutdown().await;
    });

    if state.config.discovery {
        crate::discovery::spawn_default(state.clone());
    }
    // Scans and clean-ups are jobs: a scan at start, workers here, the schedule by the leader.
    let mut background = crate::jobs::start(&state).await;
    // In Kubernetes, this replica reports itself into its MediaServerCluster's status.
    background.extend(crate::k8s::start(&state));

    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving the Jellyfin API");
    }
    if let Ok(addr) = admin_listener.local_addr() {
        tracing::info!(%addr, "serving metrics");
    }

    // The public listener bounds what one client may hold (timeouts, connections per
    // address); the admin listener is internal and keeps axum's defaults.
    let public = crate::listener::serve(
        listener,
        app(state.clone()),
        std::sync::Arc::clone(&state.trusted_proxies),
        crate::listener::ConnectionLimits::default(),
        stopping.clone(),
    );
    let admin = axum::serve(admin_listener, admin_app(state.clone()))
        .with_graceful_shutdown(stopping.clone().cancelled_owned());

    let served = async {
        let ((), admin) = tokio::join!(public, admin.into_future());
        admin
    };
    tokio::pin!(served);
    let result = tokio::select! {
        r = &mut served => r,
        () = async {
            stopping.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("in-flight requests outlived the shutdown grace period; closing");
            Ok(())
        }
    };
    // Workers give their interrupted jobs back to the queue before the pool closes; the status
    // reporter says this replica is draining.
    if tokio::time::timeout(JOBS_GRACE, futures::future::join_all(background))
        .await
        .is_err()
    {
        tracing::warn!(
            "job workers did not stop in time; their jobs are retried after the visibility timeout"
        );
    }
    // No ffmpeg outlives the server, and the replica's transcode folder is left empty.
    state.transcodes.stop_all().await;
    state.coordinator.shutdown().await;
    state.store.close().await;
    if let Err(e) = &result {
        tracing::error!(error = %DisplayChain(e), "server stopped with an error");
    }
    result.map_err(RunError::Serve)
}

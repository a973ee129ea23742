//! The state every handler can reach: storage, configuration, metrics, the server's identity,
//! and the single-replica pieces (QuickConnect requests, live sessions, the login limiter) that
//! issue 5 moves behind a coordination interface backed by Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ephyra_config::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::auth::{LoginLimiter, LoginPolicy};
use crate::jf::JfId;
use crate::metrics::Metrics;
use crate::quickconnect::QuickConnect;
use crate::sessions::Sessions;
use crate::store::{Store, StoreResult};

/// Shared by all requests; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Durable state (users, tokens, items, user data, jobs).
    pub store: Store,
    /// The configuration the server was started with.
    pub config: Arc<ServerConfig>,
    /// Prometheus metrics; features update their own gauges.
    pub metrics: Arc<Metrics>,
    /// The server's id, stored in the database so every replica reports the same one.
    pub server_id: JfId,
    /// Pending QuickConnect requests (in process: one replica).
    pub quick_connect: Arc<QuickConnect>,
    /// Live client sessions and their WebSockets (in process).
    pub sessions: Arc<Sessions>,
    /// Failed-login rate limiting.
    pub login_limiter: Arc<LoginLimiter>,
    /// Readiness: false once shutdown has begun, so load balancers stop sending work.
    pub accepting: Arc<AtomicBool>,
    /// Cancelled when the server shuts down: long-lived work (WebSockets, streams, scans)
    /// watches it to end promptly.
    pub shutdown: CancellationToken,
    /// A session WebSocket silent this long is dropped (Jellyfin: 60 s); clients are told to
    /// send a KeepAlive every half of it.
    pub socket_timeout: Duration,
}

impl AppState {
    /// State over an opened (migrated) store.
    pub async fn new(config: ServerConfig, store: Store) -> StoreResult<AppState> {
        let server_id = store.server_id().await?;
        Ok(AppState {
            store,
            config: Arc::new(config),
            metrics: Arc::new(Metrics::new()),
            server_id,
            quick_connect: Arc::new(QuickConnect::new(true)),
            sessions: Arc::new(Sessions::default()),
            login_limiter: Arc::new(LoginLimiter::new(LoginPolicy::default())),
            accepting: Arc::new(AtomicBool::new(true)),
            shutdown: CancellationToken::new(),
            socket_timeout: Duration::from_secs(60),
        })
    }

    /// The same state with another failed-login policy (tests use small limits).
    pub fn with_login_policy(mut self, policy: LoginPolicy) -> Self {
        self.login_limiter = Arc::new(LoginLimiter::new(policy));
        self
    }

    /// The same state with QuickConnect switched on or off.
    pub fn with_quick_connect(mut self, enabled: bool) -> Self {
        self.quick_connect = Arc::new(QuickConnect::new(enabled));
        self
    }

    /// The same state with another WebSocket silence timeout (tests use a short one).
    pub fn with_socket_timeout(mut self, timeout: Duration) -> Self {
        self.socket_timeout = timeout;
        self
    }

    /// The server name shown to clients.
    pub fn server_name(&self) -> &str {
        &self.config.server_name
    }

    /// True until shutdown begins.
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }

    /// Starts draining: readiness turns false, long-lived work is told to stop.
    pub fn begin_shutdown(&self) {
        self.accepting.store(false, Ordering::Relaxed);
        self.shutdown.cancel();
    }
}

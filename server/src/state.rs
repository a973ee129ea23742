//! The state every handler can reach: storage, configuration, metrics, the server's and the
//! replica's identity, coordination between replicas (leadership, events, QuickConnect, the
//! token cache), and the per-replica pieces (live sessions, the login limiter).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ephyra_config::ServerConfig;
use tokio_util::sync::CancellationToken;

use crate::auth::{LoginLimiter, LoginPolicy, TrustedProxies};
use crate::coord::{CoordResult, Coordinator, Event, LeaseTiming};
use crate::jf::JfId;
use crate::metrics::Metrics;
use crate::sessions::{Outbound, Sessions};
use crate::store::Store;
use crate::transcode::Transcodes;

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
    /// This replica's identity: the pod name in Kubernetes, else `hostname-pid`.
    pub replica_id: String,
    /// Coordination with the other replicas (in process when there is only one).
    pub coordinator: Coordinator,
    /// Whether QuickConnect is offered (`/QuickConnect/Enabled`).
    pub quick_connect_enabled: bool,
    /// Live client sessions and their WebSockets (in process).
    pub sessions: Arc<Sessions>,
    /// Failed-login rate limiting.
    pub login_limiter: Arc<LoginLimiter>,
    /// The reverse proxies whose forwarded headers name the client (`trustedProxies`).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Readiness: false once shutdown has begun, so load balancers stop sending work.
    pub accepting: Arc<AtomicBool>,
    /// The first-run wizard was seen closed (it never reopens; see `api::startup`).
    pub wizard_closed: Arc<AtomicBool>,
    /// Cancelled when the server shuts down: long-lived work (WebSockets, streams, scans)
    /// watches it to end promptly.
    pub shutdown: CancellationToken,
    /// A session WebSocket silent this long is dropped (Jellyfin: 60 s); clients are told to
    /// send a KeepAlive every half of it.
    pub socket_timeout: Duration,
    /// This replica's transcodes (HLS and progressive).
    pub transcodes: Transcodes,
    /// This replica's resized images, bounded in disk and in resizes at once.
    pub images: Arc<crate::api::images::cache::ImageCache>,
}

impl AppState {
    /// State over an opened (migrated) store, coordinated through Redis when
    /// `config.redis.url` is set, in process otherwise.
    pub async fn new(config: ServerConfig, store: Store) -> CoordResult<AppState> {
        let server_id = store.server_id().await?;
        let metrics = Arc::new(Metrics::new());
        let replica_id = crate::coord::replica_id(&config);
        let coordinator = match &config.redis.url {
            Some(url) => Coordinator::redis(
                url.expose(),
                LeaseTiming::from_config(&config.coordination),
                replica_id.clone(),
                store.clone(),
                Arc::clone(&metrics),
            )?,
            None => {
                Coordinator::in_process(replica_id.clone(), store.clone(), Arc::clone(&metrics))
                    .await?
            }
        };
        let sessions = Arc::new(Sessions::default());
        let trusted_proxies = Arc::new(TrustedProxies::new(&config.trusted_proxies));
        tokio::spawn(forward_pushes(
            coordinator.clone(),
            Arc::clone(&sessions),
            store.clone(),
        ));
        let transcodes = Transcodes::new(
            config.transcode_dir(),
            usize::try_from(config.transcode.max_concurrent).unwrap_or(usize::MAX),
            Duration::from_secs(u64::from(config.transcode.idle_timeout_seconds)),
            config.ffmpeg.ffmpeg.clone(),
            Arc::clone(&metrics),
        );
        let images = crate::api::images::cache::ImageCache::new(
            config.data_dir.join("image-cache"),
            config.images.cache_max_mib.saturating_mul(1024 * 1024),
            std::thread::available_parallelism().map_or(2, |n| n.get().min(4)),
        );
        let shutdown = CancellationToken::new();
        crate::transcode::start(&transcodes, &config, shutdown.clone()).await;
        Ok(AppState {
            store,
            config: Arc::new(config),
            metrics,
            server_id,
            replica_id,
            coordinator,
            quick_connect_enabled: true,
            sessions,
            login_limiter: Arc::new(LoginLimiter::new(LoginPolicy::default())),
            trusted_proxies,
            accepting: Arc::new(AtomicBool::new(true)),
            wizard_closed: Arc::new(AtomicBool::new(false)),
            shutdown,
            socket_timeout: Duration::from_secs(60),
            transcodes,
            images,
        })
    }

    /// The same state with another failed-login policy (tests use small limits).
    pub fn with_login_policy(mut self, policy: LoginPolicy) -> Self {
        self.login_limiter = Arc::new(LoginLimiter::new(policy));
        self
    }

    /// The same state with QuickConnect switched on or off.
    pub fn with_quick_connect(mut self, enabled: bool) -> Self {
        self.quick_connect_enabled = enabled;
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
        self.coordinator.stop();
    }
}

/// Hands WebSocket pushes from every replica to this replica's sockets, and closes the sockets
/// whose tokens a revocation (on any replica) ended. Ends when the coordinator is gone.
async fn forward_pushes(coordinator: Coordinator, sessions: Arc<Sessions>, store: Store) {
    let mut events = coordinator.subscribe();
    // Only the receiver is kept: holding the coordinator would keep it alive forever.
    drop(coordinator);
    loop {
        match events.recv().await {
            Ok(Event::Push {
                user,
                message_type,
                data,
            }) => sessions.notify(Outbound {
                user,
                message_type,
                data,
            }),
            Ok(Event::TokensRevoked { revocation }) => {
                // Off this loop: the checks query the database and pushes must keep flowing.
                let (sessions, store) = (Arc::clone(&sessions), store.clone());
                tokio::spawn(async move {
                    let closed = sessions.close_revoked(revocation, &store).await;
                    if closed > 0 {
                        tracing::info!(closed, "closed sockets of revoked tokens");
                    }
                });
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "socket pushes fell behind");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

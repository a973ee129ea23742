//! Coordination between replicas behind one type, [`Coordinator`], with two providers:
//! in process (one replica, any database) and Redis (several replicas, PostgreSQL), chosen by
//! `EPHYRA_REDIS_URL`.
//!
//! What it coordinates:
//! - **leadership**: [`Coordinator::leadership`] says who leads and with which fencing number
//!   (epoch). Leader-only work runs inside `Store::fenced_write(epoch)`, which the database
//!   refuses once a newer leader has written. In process the replica is always leader; with
//!   Redis it holds a lease (`SET NX PX`, renewed by compare-and-extend, released by
//!   compare-and-delete) and stops acting as leader before the lease can expire;
//! - **events** ([`Event`]): WebSocket pushes and token-cache invalidations reach every
//!   replica ([`Coordinator::publish`], [`Coordinator::subscribe`]);
//! - **QuickConnect** requests, so the three steps may hit three replicas;
//! - the **token cache** ([`tokens::TokenCache`]), invalidated through events.
//!
//! It must not hold durable state: everything here may be lost with Redis, and the database
//! stays the truth.

mod inprocess;
pub mod quickconnect;
pub mod ratelimit;
mod redis;
pub mod tokens;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::jf::{JfId, now_millis};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

pub use quickconnect::{Authorization, InitiateRefusal, Pending};
pub use tokens::{Revocation, TokenCache};

/// One leadership term: who leads, with which fencing number, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderTerm {
    /// The fencing number taken at acquisition; strictly increasing across terms.
    pub epoch: i64,
    /// The replica holding it (its `replica_id`).
    pub holder: String,
    /// When the term started.
    pub since: DateTime<Utc>,
}

/// This replica's part in leadership, as readiness and metrics report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// It holds the lease.
    Leader,
    /// Another replica may; this one tries to acquire on every renew interval.
    Follower,
    /// Nobody can lead now (Redis is unreachable).
    None,
}

/// Something every replica must hear about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// A message for session WebSockets (`UserDataChanged`, `LibraryChanged`, ...): to one
    /// user's sockets, or with `user: None` to every socket.
    Push {
        /// Recipient user, or everyone.
        user: Option<JfId>,
        /// Jellyfin message type.
        message_type: String,
        /// The `Data` payload.
        data: Value,
    },
    /// Cached token lookups to drop.
    TokensRevoked {
        /// Which.
        revocation: Revocation,
    },
}

impl Event {
    /// Jellyfin's `UserDataChanged` for `user` (`data` is `{UserId, UserDataList}`).
    pub fn user_data_changed(user: JfId, data: Value) -> Event {
        Event::Push {
            user: Some(user),
            message_type: "UserDataChanged".to_owned(),
            data,
        }
    }

    /// Jellyfin's `LibraryChanged` for everyone (`data` is `{ItemsAdded, ItemsUpdated, ...}`).
    pub fn library_changed(data: Value) -> Event {
        Event::Push {
            user: None,
            message_type: "LibraryChanged".to_owned(),
            data,
        }
    }
}

/// What coordination reports to readiness.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoordStatus {
    /// `in-process` or `redis`.
    pub provider: &'static str,
    /// `ok`, `unreachable`, or `not used` (in process).
    pub redis: &'static str,
    /// This replica's role.
    pub role: Role,
    /// The epoch of this replica's term while it leads.
    pub epoch: Option<i64>,
}

/// What can go wrong in coordination. Messages never carry URLs or keys' contents.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// Redis did not answer (down, timed out, connection lost).
    #[error("redis is unreachable")]
    Unavailable(#[source] ::redis::RedisError),
    /// Redis answered something this code did not write.
    #[error("redis returned unexpected data: {0}")]
    Protocol(String),
    /// The database refused or failed.
    #[error("database")]
    Store(#[from] StoreError),
}

impl From<::redis::RedisError> for CoordError {
    fn from(e: ::redis::RedisError) -> Self {
        CoordError::Unavailable(e)
    }
}

/// Result of a coordination call.
pub type CoordResult<T> = Result<T, CoordError>;

/// Lease timing, from `config.coordination`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How often the leader renews and followers try to acquire.
    pub renew: Duration,
}

impl LeaseTiming {
    /// From the configuration (the config crate checks lease > renew).
    pub fn from_config(c: &ephyra_config::CoordinationConfig) -> LeaseTiming {
        LeaseTiming {
            lease: Duration::from_millis(c.lease_millis.max(2)),
            renew: Duration::from_millis(c.renew_millis.max(1)),
        }
    }

    /// How long after sending a renewal that succeeded the leader may still act: the lease
    /// minus a safety margin (one renew interval, at most half the lease), so the leader stops
    /// before Redis could hand the lease to another replica even if its clock runs slow.
    pub fn act_for(&self) -> Duration {
        let margin = self.renew.min(self.lease / 2);
        self.lease.saturating_sub(margin)
    }
}

/// Where shared state lives.
#[derive(Debug)]
enum Backend {
    InProcess(inprocess::InProcess),
    Redis(Arc<redis::RedisBackend>),
}

#[derive(Debug)]
struct Inner {
    replica_id: String,
    store: Store,
    metrics: Arc<Metrics>,
    leadership: watch::Sender<Option<LeaderTerm>>,
    events: broadcast::Sender<Event>,
    tokens: TokenCache,
    backend: Backend,
    /// Cancelled by [`Coordinator::stop`]: leadership is released and background tasks end.
    stop: CancellationToken,
    /// Completed once leadership has been released for good: every caller of
    /// [`Coordinator::shutdown`] waits for the same release.
    shut_down: tokio::sync::OnceCell<()>,
    /// Background tasks (lease loop, subscriber), awaited by [`Coordinator::shutdown`].
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Background tasks hold only weak references; this wakes them so they end.
        self.stop.cancel();
    }
}

/// The coordination handle in the app state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

impl Coordinator {
    fn build(
        replica_id: String,
        store: Store,
        metrics: Arc<Metrics>,
        backend: Backend,
    ) -> Coordinator {
        let (leadership, _) = watch::channel(None);
        let (events, _) = broadcast::channel(1024);
        Coordinator {
            inner: Arc::new(Inner {
                replica_id,
                store,
                metrics,
                leadership,
                events,
                tokens: TokenCache::default(),
                backend,
                stop: CancellationToken::new(),
                shut_down: tokio::sync::OnceCell::new(),
                tasks: std::sync::Mutex::default(),
            }),
        }
    }

    /// The in-process provider: this replica is the only one and always leader, with an epoch
    /// taken from the database fence (so a restarted server's epoch is higher than before).
    pub async fn in_process(
        replica_id: String,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> CoordResult<Coordinator> {
        let coordinator = Coordinator::build(
            replica_id,
            store,
            metrics,
            Backend::InProcess(inprocess::InProcess::default()),
        );
        let epoch = coordinator
            .inner
            .store
            .take_next_epoch(&coordinator.inner.replica_id, now_millis())
            .await?;
        coordinator.become_leader(epoch);
        coordinator.inner.metrics.redis_up.set(1);
        Ok(coordinator)
    }

    /// The Redis provider on `url`: starts the lease loop and the event subscriber. Never
    /// fails because Redis is down: the replica serves without leadership until it is back.
    pub fn redis(
        url: &str,
        timing: LeaseTiming,
        replica_id: String,
        store: Store,
        metrics: Arc<Metrics>,
    ) -> CoordResult<Coordinator> {
        let backend = Arc::new(redis::RedisBackend::new(url, timing, &replica_id)?);
        let coordinator = Coordinator::build(
            replica_id,
            store,
            metrics,
            Backend::Redis(Arc::clone(&backend)),
        );
        let lease = tokio::spawn(redis::lease_loop(coordinator.clone_weak(), backend.clone()));
        let subscriber = tokio::spawn(redis::subscribe_loop(coordinator.clone_weak(), backend));
        coordinator.push_task(lease);
        coordinator.push_task(subscriber);
        Ok(coordinator)
    }

    fn clone_weak(&self) -> WeakCoordinator {
        WeakCoordinator {
            inner: Arc::downgrade(&self.inner),
            stop: self.inner.stop.clone(),
        }
    }

    fn push_task(&self, task: tokio::task::JoinHandle<()>) {
        let mut tasks = match self.inner.tasks.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        tasks.push(task);
    }

    /// This replica's identity (pod name in Kubernetes, else `hostname-pid`).
    pub fn replica_id(&self) -> &str {
        &self.inner.replica_id
    }

    /// Who leads, as this replica knows it: `Some(term)` exactly while this replica is the
    /// leader and may act as one, `None` otherwise. Watch it to start and stop leader-only
    /// work; pass `term.epoch` to `Store::fenced_write`.
    pub fn leadership(&self) -> watch::Receiver<Option<LeaderTerm>> {
        self.inner.leadership.subscribe()
    }

    /// This replica's term while it leads.
    pub fn current_term(&self) -> Option<LeaderTerm> {
        self.inner.leadership.borrow().clone()
    }

    /// True while this replica leads.
    pub fn is_leader(&self) -> bool {
        self.inner.leadership.borrow().is_some()
    }

    /// The provider's name.
    pub fn provider(&self) -> &'static str {
        match &self.inner.backend {
            Backend::InProcess(_) => "in-process",
            Backend::Redis(_) => "redis",
        }
    }

    /// What readiness reports.
    pub fn status(&self) -> CoordStatus {
        let term = self.current_term();
        let (redis, reachable) = match &self.inner.backend {
            Backend::InProcess(_) => ("not used", true),
            Backend::Redis(r) if r.is_reachable() => ("ok", true),
            Backend::Redis(_) => ("unreachable", false),
        };
        let role = match (&term, reachable) {
            (Some(_), _) => Role::Leader,
            (None, true) => Role::Follower,
            (None, false) => Role::None,
        };
        CoordStatus {
            provider: self.provider(),
            redis,
            role,
            epoch: term.map(|t| t.epoch),
        }
    }

    /// Sends an event to every replica, this one included (delivered here at once, even when
    /// Redis is away; then an error says the other replicas missed it).
    pub async fn publish(&self, event: Event) -> CoordResult<()> {
        self.deliver(event.clone());
        match &self.inner.backend {
            Backend::InProcess(_) => Ok(()),
            Backend::Redis(r) => r.publish(&event).await,
        }
    }

    /// Publishes, logging instead of failing: for handlers whose own work already succeeded.
    pub async fn publish_or_log(&self, event: Event) {
        if let Err(e) = self.publish(event).await {
            tracing::warn!(error = %crate::error::DisplayChain(&e), "event not shared with other replicas");
        }
    }

    /// Events from every replica (and this one), in order per publisher.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Applies an event here: cache invalidation now, pushes to subscribers.
    fn deliver(&self, event: Event) {
        if let Event::TokensRevoked { revocation } = &event {
            self.inner.tokens.revoke(*revocation);
        }
        let _ = self.inner.events.send(event);
    }

    /// The token lookup cache.
    pub fn tokens(&self) -> &TokenCache {
        &self.inner.tokens
    }

    /// Drops cached lookups on every replica (logout, password change, user deletion).
    pub async fn revoke_tokens(&self, revocation: Revocation) {
        self.publish_or_log(Event::TokensRevoked { revocation })
            .await;
    }

    /// Starts a QuickConnect request for `device`; `Ok(Err(_))` when the pending requests are
    /// at their cap (or, in theory, no free code was drawn).
    pub async fn quick_connect_initiate(
        &self,
        device: crate::store::users::DeviceInfo,
    ) -> CoordResult<Result<Pending, InitiateRefusal>> {
        match &self.inner.backend {
            Backend::InProcess(p) => Ok(p.quick_connect.initiate(device)),
            Backend::Redis(r) => r.quick_connect_initiate(device).await,
        }
    }

    /// Takes one of `limit` slots of the rate limit `key` in the current `window`, on every
    /// replica together; `Ok(Err(seconds))` when they are all taken.
    pub async fn take_slot(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> CoordResult<Result<(), u64>> {
        match &self.inner.backend {
            Backend::InProcess(p) => Ok(p.rates.take(key, limit, window)),
            Backend::Redis(r) => r.take_slot(key, limit, window).await,
        }
    }

    /// The pending request with this secret.
    pub async fn quick_connect_get(&self, secret: &str) -> CoordResult<Option<Pending>> {
        match &self.inner.backend {
            Backend::InProcess(p) => Ok(p.quick_connect.get(secret)),
            Backend::Redis(r) => r.quick_connect_get(secret).await,
        }
    }

    /// Authorizes the request with this code for `user`, unless another user already did.
    pub async fn quick_connect_authorize(
        &self,
        code: &str,
        user: JfId,
    ) -> CoordResult<Authorization> {
        match &self.inner.backend {
            Backend::InProcess(p) => Ok(p.quick_connect.authorize(code, user)),
            Backend::Redis(r) => r.quick_connect_authorize(code, user).await,
        }
    }

    /// Consumes an authorized request, once: `(user, device)`.
    pub async fn quick_connect_redeem(
        &self,
        secret: &str,
    ) -> CoordResult<Option<(JfId, crate::store::users::DeviceInfo)>> {
        match &self.inner.backend {
            Backend::InProcess(p) => Ok(p.quick_connect.redeem(secret)),
            Backend::Redis(r) => r.quick_connect_redeem(secret).await,
        }
    }

    /// Begins stopping: leadership is released at once (the lease loop wakes up), background
    /// tasks end. Safe to call more than once.
    pub fn stop(&self) {
        self.inner.stop.cancel();
    }

    /// Stops and waits (bounded) until leadership is released and recorded. Concurrent and
    /// later callers all return only once the release is done.
    pub async fn shutdown(&self) {
        self.stop();
        self.inner
            .shut_down
            .get_or_init(|| async {
                let tasks: Vec<_> = {
                    let mut tasks = match self.inner.tasks.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    tasks.drain(..).collect()
                };
                for task in tasks {
                    if tokio::time::timeout(Duration::from_secs(3), task)
                        .await
                        .is_err()
                    {
                        tracing::warn!("coordination task did not stop in time");
                    }
                }
                // The in-process provider has no lease loop: its term ends here.
                self.step_down("shutdown").await;
            })
            .await;
    }

    /// Records and announces a new term of this replica.
    fn become_leader(&self, epoch: i64) {
        let term = LeaderTerm {
            epoch,
            holder: self.inner.replica_id.clone(),
            since: Utc::now(),
        };
        tracing::info!(epoch, replica = %term.holder, "became leader");
        self.inner.metrics.leader.set(1);
        self.inner.metrics.leader_epoch.set(epoch);
        self.inner.metrics.leader_transitions.inc();
        self.inner.leadership.send_replace(Some(term));
    }

    /// Stops acting as leader now, then records the end of the term (best effort: the
    /// database may be what failed).
    async fn step_down(&self, why: &str) {
        let Some(term) = self.inner.leadership.send_replace(None) else {
            return;
        };
        self.inner.metrics.leader.set(0);
        self.inner.metrics.leader_epoch.set(0);
        self.inner.metrics.leader_transitions.inc();
        tracing::info!(epoch = term.epoch, why, "stopped being leader");
        if let Err(e) = self.inner.store.end_term(term.epoch, now_millis()).await {
            tracing::warn!(error = %crate::error::DisplayChain(&e), "could not record the end of a leadership term");
        }
    }
}

/// What background tasks hold, so that dropping every [`Coordinator`] ends them.
#[derive(Debug, Clone)]
struct WeakCoordinator {
    inner: std::sync::Weak<Inner>,
    stop: CancellationToken,
}

impl WeakCoordinator {
    fn upgrade(&self) -> Option<Coordinator> {
        self.inner.upgrade().map(|inner| Coordinator { inner })
    }
}

/// The replica identity: the pod name when the cluster identity is configured, else
/// `hostname-pid` (with a counter after the first, for several servers in one process).
pub fn replica_id(config: &ephyra_config::ServerConfig) -> String {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if let Some(cluster) = &config.cluster {
        return cluster.pod_name.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ephyra".to_owned());
    let base = format!("{host}-{}", std::process::id());
    match SEQ.fetch_add(1, Ordering::Relaxed) {
        0 => base,
        n => format!("{base}-{}", n + 1),
    }
}

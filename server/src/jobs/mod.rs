//! Work that must happen once across replicas, run from the job queue in the database
//! ([`crate::store::jobs`]).
//!
//! - [`worker`]: every replica runs a few workers (`jobs.workers`; 2 on PostgreSQL, 1 on
//!   SQLite, whose single writer gains nothing from more). A worker claims a job, runs its [`Handler`] while
//!   heartbeating, and records the outcome; on shutdown it stops the handler and gives the job
//!   back to the queue.
//! - [`scheduler`]: while this replica leads, it enqueues the periodic jobs once per time slot,
//!   each enqueue fenced by the leader's epoch so a deposed leader enqueues nothing.
//! - [`kinds`]: the job kinds and their handlers (`library_scan`, `folder_scan`,
//!   `frame_extraction`, `token_cleanup`, `jobs_cleanup`).
//! - [`transcode_cleanup`]: not a job. Transcode files live on the replica's own disk, so
//!   only that replica can remove them, and a job aimed at one replica would wait for ever
//!   once that replica is gone (its pod's files go with it, or are cleaned when it starts
//!   again). It is a per-replica periodic task instead; running it on every replica is the
//!   point, not a duplicate.
//!
//! Nothing here decides who leads (that is `coord`) or what a scan does (that is `scan`).

pub mod kinds;
pub mod scheduler;
pub mod transcode_cleanup;
pub mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::store::jobs::ClaimedJob;

pub use kinds::{
    FOLDER_SCAN, FRAME_EXTRACTION, JOBS_CLEANUP, LIBRARY_SCAN, TOKEN_CLEANUP, default_handlers,
};
pub use scheduler::{Periodic, SchedulerSettings, run_scheduler};
pub use worker::{WorkerSettings, run_worker, spawn_workers};

/// Why a job's attempt failed; the message is stored in `jobs.last_error` (no secrets, no
/// row data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JobError(pub String);

impl JobError {
    /// A failure described by an error and its causes.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> JobError {
        JobError(crate::error::DisplayChain(error).to_string())
    }
}

/// Runs one kind of job. A handler must tolerate being stopped at any await point (the
/// worker drops it on shutdown or when its claim is lost) and being run again for the same
/// job after a failure.
pub trait Handler: Send + Sync + 'static {
    /// Runs `job` to the end.
    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobError>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(ClaimedJob) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobError>> {
        Box::pin(self(job))
    }
}

/// The handlers a worker knows, by job kind. Cheap to clone.
#[derive(Clone, Default)]
pub struct Handlers(Arc<BTreeMap<String, Arc<dyn Handler>>>);

impl Handlers {
    /// No handler.
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// The same set with `handler` for `kind`.
    pub fn with(self, kind: impl Into<String>, handler: impl Handler) -> Handlers {
        let mut map = Arc::unwrap_or_clone(self.0);
        map.insert(kind.into(), Arc::new(handler));
        Handlers(Arc::new(map))
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.0.get(kind).cloned()
    }
}

impl fmt::Debug for Handlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Starts this replica's part of the job system: the scan every replica asks for when it
/// starts (skipped when one is already waiting), the workers, the leader's scheduler (idle
/// while another replica leads) and the transcode folder's sweep. Every task ends when
/// `state.shutdown` is cancelled; await the handles before closing the store so that
/// interrupted jobs are given back.
pub async fn start(state: &crate::state::AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let settings = WorkerSettings::from_config(&state.config.jobs, state.store.dialect());
    start_with(state, &settings).await
}

/// [`start`] with other worker settings (count, visibility timeout, heartbeat).
pub async fn start_with(
    state: &crate::state::AppState,
    settings: &WorkerSettings,
) -> Vec<tokio::task::JoinHandle<()>> {
    if let Err(e) = state.store.enqueue(&kinds::library_scan()).await {
        tracing::warn!(error = %crate::error::DisplayChain(&e), "cannot enqueue the start-up scan");
    }
    let mut tasks = spawn_workers(
        &state.store,
        &default_handlers(state),
        settings,
        &state.replica_id,
        &state.shutdown,
    );
    tasks.push(tokio::spawn(run_scheduler(
        state.store.clone(),
        state.coordinator.leadership(),
        kinds::periodic_jobs(&state.config),
        SchedulerSettings::default(),
        state.shutdown.clone(),
    )));
    // Not a job either: every replica watches the library folders; only the leader enqueues
    // the scans their events ask for.
    tasks.push(tokio::spawn(crate::scan::watch::run(
        state.clone(),
        state.shutdown.clone(),
    )));
    tasks.push(tokio::spawn(transcode_cleanup::run(
        state.config.transcode_dir(),
        transcode_cleanup::orphan_age(state.config.transcode.idle_timeout_seconds),
        transcode_cleanup::SWEEP_INTERVAL,
        state.shutdown.clone(),
    )));
    tasks
}

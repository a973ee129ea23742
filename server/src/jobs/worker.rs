//! Job workers: claim, run while heartbeating, record the outcome.
//!
//! The handler runs inside the worker's own task, next to its heartbeat, so whatever stops
//! the worker (shutdown, a lost claim, the task being aborted) stops the work with it: a job
//! is never worked on by a worker that no longer heartbeats it.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Handlers, JobError};
use crate::error::DisplayChain;
use crate::store::jobs::ClaimedJob;
use crate::store::{Dialect, Store};

/// How workers run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Workers on this replica.
    pub workers: usize,
    /// A running job whose worker has been silent this long is claimed again.
    pub visibility: Duration,
    /// How often a worker heartbeats its job; well under `visibility`.
    pub heartbeat: Duration,
    /// How long an idle worker waits before looking for work again.
    pub idle_poll: Duration,
    /// How long a failed job waits before its next attempt.
    pub retry_after: Duration,
}

impl WorkerSettings {
    /// The settings `config.jobs` asks for, with [`WorkerSettings::for_dialect`]'s defaults
    /// where it is silent. The heartbeat keeps to a sixth of the visibility timeout.
    pub fn from_config(config: &ephyra_config::JobsConfig, dialect: Dialect) -> WorkerSettings {
        let mut settings = WorkerSettings::for_dialect(dialect);
        if let Some(n) = config.workers {
            settings.workers = usize::try_from(n).unwrap_or(1).max(1);
        }
        if let Some(secs) = config.visibility_seconds {
            settings.visibility = Duration::from_secs(secs.max(1));
            settings.heartbeat = settings.heartbeat.min(settings.visibility / 6);
        }
        settings
    }

    /// The defaults for a provider: two workers on PostgreSQL, one on SQLite (one writer).
    pub fn for_dialect(dialect: Dialect) -> WorkerSettings {
        WorkerSettings {
            workers: match dialect {
                Dialect::Postgres => 2,
                Dialect::Sqlite => 1,
            },
            visibility: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            idle_poll: Duration::from_secs(1),
            retry_after: Duration::from_secs(30),
        }
    }
}

/// Starts `settings.workers` workers named `<replica>/<n>`. They stop when `shutdown` is
/// cancelled, giving their jobs back to the queue; await the handles to know they have.
pub fn spawn_workers(
    store: &Store,
    handlers: &Handlers,
    settings: &WorkerSettings,
    replica: &str,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    (0..settings.workers.max(1))
        .map(|n| {
            tokio::spawn(run_worker(
                store.clone(),
                handlers.clone(),
                settings.clone(),
                format!("{replica}/{n}"),
                shutdown.clone(),
            ))
        })
        .collect()
}

/// One worker's loop, until `shutdown`.
pub async fn run_worker(
    store: Store,
    handlers: Handlers,
    settings: WorkerSettings,
    name: String,
    shutdown: CancellationToken,
) {
    tracing::debug!(worker = %name, "job worker started");
    while !shutdown.is_cancelled() {
        match store.claim_job(&name, settings.visibility).await {
            Ok(Some(job)) => run_one(&store, &handlers, &settings, job, &shutdown).await,
            Ok(None) => {
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(settings.idle_poll) => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = %name, error = %DisplayChain(&e), "cannot claim jobs");
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(settings.idle_poll) => {}
                }
            }
        }
    }
    tracing::debug!(worker = %name, "job worker stopped");
}

/// How an attempt ended, as the worker saw it.
enum Ended {
    Finished(Result<(), JobError>),
    ClaimLost,
    Shutdown,
}

async fn run_one(
    store: &Store,
    handlers: &Handlers,
    settings: &WorkerSettings,
    job: ClaimedJob,
    shutdown: &CancellationToken,
) {
    let span = tracing::info_span!(
        "job",
        id = %job.id.to_n(),
        kind = %job.kind,
        attempt = job.attempt,
        worker = %job.worker,
    );
    let started = std::time::Instant::now();
    tracing::info!(parent: &span, "job started");
    let ended = match handlers.get(&job.kind) {
        None => Ended::Finished(Err(JobError(format!(
            "no handler for job kind `{}` on this replica",
            job.kind
        )))),
        Some(handler) => {
            let work = handler.run(job.clone());
            tokio::pin!(work);
            let mut beat = tokio::time::interval(settings.heartbeat);
            beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            beat.tick().await; // the first tick is immediate; the claim was the first beat
            loop {
                tokio::select! {
                    result = &mut work => break Ended::Finished(result),
                    () = shutdown.cancelled() => break Ended::Shutdown,
                    _ = beat.tick() => match store.heartbeat_job(&job).await {
                        Ok(true) => {}
                        Ok(false) => break Ended::ClaimLost,
                        // Keep working: if the database stays away longer than the visibility
                        // timeout another worker takes the job, and this one's writes are
                        // refused from then on.
                        Err(e) => tracing::warn!(parent: &span, error = %DisplayChain(&e), "cannot heartbeat the job"),
                    },
                }
            }
        }
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let recorded = match &ended {
        Ended::Finished(Ok(())) => store.complete_job(&job).await,
        Ended::Finished(Err(e)) => store.fail_job(&job, &e.0, settings.retry_after).await,
        Ended::Shutdown => store.release_job(&job).await,
        Ended::ClaimLost => Ok(false),
    };
    match (&ended, recorded) {
        (Ended::Finished(Ok(())), Ok(true)) => {
            tracing::info!(parent: &span, elapsed_ms, "job done");
        }
        (Ended::Finished(Err(e)), Ok(true)) => {
            tracing::warn!(parent: &span, elapsed_ms, error = %e, "job failed");
        }
        (Ended::Shutdown, Ok(true)) => {
            tracing::info!(parent: &span, "job given back to the queue at shutdown");
        }
        (_, Ok(_)) => {
            tracing::warn!(parent: &span, elapsed_ms, "job was taken over by another worker; its outcome here is dropped");
        }
        (_, Err(e)) => {
            // The claim lapses after the visibility timeout and another worker retries.
            tracing::warn!(parent: &span, error = %DisplayChain(&e), "cannot record the job's outcome");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_workers_and_visibility_override_the_providers_defaults() {
        let unset = ephyra_config::JobsConfig::default();
        assert_eq!(
            WorkerSettings::from_config(&unset, Dialect::Postgres).workers,
            2
        );
        assert_eq!(
            WorkerSettings::from_config(&unset, Dialect::Sqlite).workers,
            1
        );
        let set = ephyra_config::JobsConfig {
            workers: Some(4),
            visibility_seconds: Some(6),
        };
        let s = WorkerSettings::from_config(&set, Dialect::Sqlite);
        assert_eq!(s.workers, 4);
        assert_eq!(s.visibility, Duration::from_secs(6));
        assert_eq!(s.heartbeat, Duration::from_secs(1));
    }
}

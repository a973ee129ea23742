//! The job kinds the server runs, their handlers, and the leader's periodic schedule.

use std::time::Duration;

use ephyra_config::ServerConfig;

use super::{Handlers, JobError, Periodic};
use crate::scan::{self, ScanError};
use crate::state::AppState;
use crate::store::Store;
use crate::store::jobs::{ClaimedJob, NewJob, Progress};

/// Scans every library (`scan::scan_all`). Its lane keeps scans one at a time across all
/// replicas, with at most one more waiting.
pub const LIBRARY_SCAN: &str = "library_scan";
/// Scans only the folders where file system events said something changed
/// (`scan::scan_folders`; payload `{"folders": [{"library": name, "path": folder}]}`). It
/// shares the library scan's lane: never beside a full scan, which could take its new files
/// for deleted ones.
pub const FOLDER_SCAN: &str = "folder_scan";
/// Extracts the frames the scans recorded for films and episodes without artwork
/// (`scan::extract_planned_frames`), one at a time, after the scan. Its lane keeps one running
/// and one waiting across replicas.
pub const FRAME_EXTRACTION: &str = "frame_extraction";
/// Deletes login tokens nobody has used for `idleDays` (payload; default
/// [`TOKEN_IDLE_DAYS`]).
pub const TOKEN_CLEANUP: &str = "token_cleanup";
/// Deletes finished jobs older than [`JOB_HISTORY_DAYS`].
pub const JOBS_CLEANUP: &str = "jobs_cleanup";

/// A token unused this long is deleted (the device logs in again). Logout and password
/// changes already delete tokens at once; this removes the ones clients simply forgot.
pub const TOKEN_IDLE_DAYS: i64 = 180;
/// Finished jobs are kept this long, for inspection and for the dedupe keys of recent slots.
pub const JOB_HISTORY_DAYS: i64 = 7;
/// How often the clean-ups are scheduled.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(3600);

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A library scan job (on demand, at start, or periodic).
pub fn library_scan() -> NewJob {
    NewJob::new(LIBRARY_SCAN).lane(LIBRARY_SCAN)
}

/// A scan of the folders in `payload` (see [`FOLDER_SCAN`]).
pub fn folder_scan(payload: serde_json::Value) -> NewJob {
    NewJob::new(FOLDER_SCAN).lane(LIBRARY_SCAN).payload(payload)
}

/// A frame job (enqueued by a scan that recorded new frames).
pub fn frame_extraction() -> NewJob {
    NewJob::new(FRAME_EXTRACTION).lane(FRAME_EXTRACTION)
}

/// The handlers of every kind above, over the server's state.
pub fn default_handlers(state: &AppState) -> Handlers {
    let scan_state = state.clone();
    let store = state.store.clone();
    let jobs_store = state.store.clone();
    let frames_state = state.clone();
    let folders_state = state.clone();
    Handlers::new()
        .with(FOLDER_SCAN, move |job: ClaimedJob| {
            let state = folders_state.clone();
            async move { run_folder_scan(&state, &job).await }
        })
        .with(LIBRARY_SCAN, move |job: ClaimedJob| {
            let state = scan_state.clone();
            async move { run_library_scan(&state, &job).await }
        })
        .with(FRAME_EXTRACTION, move |_job: ClaimedJob| {
            let state = frames_state.clone();
            async move {
                let done = scan::extract_planned_frames(&state.config, &state.store)
                    .await
                    .map_err(|e| JobError::from_error(&e))?;
                tracing::info!(
                    extracted = done.extracted,
                    present = done.present,
                    failed = done.failed,
                    "frames extracted"
                );
                Ok(())
            }
        })
        .with(TOKEN_CLEANUP, move |job: ClaimedJob| {
            let store = store.clone();
            async move {
                let days = job
                    .payload
                    .get("idleDays")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(TOKEN_IDLE_DAYS)
                    .max(1);
                let removed = store
                    .delete_idle_tokens(Store::now() - days * DAY_MS)
                    .await
                    .map_err(|e| JobError::from_error(&e))?;
                tracing::info!(removed, idle_days = days, "deleted idle login tokens");
                Ok(())
            }
        })
        .with(JOBS_CLEANUP, move |_job: ClaimedJob| {
            let store = jobs_store.clone();
            async move {
                let removed = store
                    .purge_finished_jobs(Store::now() - JOB_HISTORY_DAYS * DAY_MS)
                    .await
                    .map_err(|e| JobError::from_error(&e))?;
                tracing::info!(removed, "deleted old finished jobs");
                Ok(())
            }
        })
}

/// How often a running scan writes its progress to its job row (where every replica's
/// dashboard reads it).
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

async fn run_library_scan(state: &AppState, job: &ClaimedJob) -> Result<(), JobError> {
    let mut reported = None;
    // One reporter future, polled beside the scan: a progress write waiting for the database
    // (SQLite's write lock, held by the scan's transaction) never stops the scan from being
    // polled, as a write awaited in a `select!` arm would.
    let reporter = async {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            report_progress(state, job, &mut reported).await;
        }
    };
    let result = tokio::select! {
        result = scan::scan_all(state) => result,
        never = reporter => never,
    };
    // The last figures, so a finished job shows everything done however fast it ran.
    report_progress(state, job, &mut reported).await;
    match result {
        Ok(_) => Ok(()),
        // The lane keeps scans apart across replicas; a scan started outside the queue (a
        // test, an older code path) in this process covers the same files.
        Err(ScanError::AlreadyRunning) => {
            tracing::info!("a scan is already running in this process; it covers this job");
            Ok(())
        }
        Err(e) => Err(JobError::from_error(&e)),
    }
}

async fn run_folder_scan(state: &AppState, job: &ClaimedJob) -> Result<(), JobError> {
    let folders: Vec<(String, std::path::PathBuf)> = job
        .payload
        .get("folders")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let library = f.get("library")?.as_str()?.to_owned();
            let path = f.get("path")?.as_str()?;
            Some((library, std::path::PathBuf::from(path)))
        })
        .collect();
    let result = scan::scan_folders(state, &folders).await;
    let mut reported = None;
    report_progress(state, job, &mut reported).await;
    match result {
        Ok(_) => Ok(()),
        Err(ScanError::AlreadyRunning) => {
            // Its lane keeps it from running beside a queued scan; a scan started outside the
            // queue in this process is given the job back to run after it.
            Err(JobError(
                "a scan is already running in this process".to_owned(),
            ))
        }
        Err(e) => Err(JobError::from_error(&e)),
    }
}

/// Copies this process's scan gauges (files done, files found so far) to the job's row when
/// they changed since the last report (`reported`).
async fn report_progress(state: &AppState, job: &ClaimedJob, reported: &mut Option<Progress>) {
    let progress = Progress {
        done: state.metrics.scan_files_done.get(),
        total: state.metrics.scan_files_total.get(),
    };
    if *reported == Some(progress) {
        return;
    }
    match state.store.set_job_progress(job, progress).await {
        Ok(_) => *reported = Some(progress),
        // The next tick tries again; progress is for display only.
        Err(e) => {
            tracing::debug!(error = %crate::error::DisplayChain(&e), "cannot record the scan's progress");
        }
    }
}

/// What the leader enqueues, and how often: the library scan on `scan.intervalSeconds`
/// (none when 0: then only at start and on request), the clean-ups hourly.
pub fn periodic_jobs(config: &ServerConfig) -> Vec<Periodic> {
    let mut jobs = Vec::new();
    if config.scan.interval_seconds > 0 {
        jobs.push(Periodic {
            job: library_scan(),
            every: Duration::from_secs(config.scan.interval_seconds),
            in_current_slot: false,
        });
    }
    for kind in [TOKEN_CLEANUP, JOBS_CLEANUP] {
        jobs.push(Periodic {
            job: NewJob::new(kind).lane(kind),
            every: CLEANUP_INTERVAL,
            in_current_slot: true,
        });
    }
    jobs
}

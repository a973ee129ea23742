//! The job queue: concurrent workers run every job exactly once, a silent worker's job is
//! retried by another, a stale leader's enqueue is refused, and `POST /Library/Refresh`
//! enqueues a scan that runs once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use chrono::Utc;
use ephyra_config::{LibraryConfig, LibraryKind};
use ephyra_server::coord::LeaderTerm;
use ephyra_server::jobs::scheduler::enqueue_fenced;
use ephyra_server::jobs::{
    Handlers, JobError, LIBRARY_SCAN, Periodic, SchedulerSettings, WorkerSettings,
    default_handlers, run_scheduler, run_worker, spawn_workers,
};
use ephyra_server::store::jobs::{ClaimedJob, JobRun, JobState, NewJob, Progress};
use ephyra_server::store::{Store, StoreError};
use http::StatusCode;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::on_both_providers;
use crate::support::{Provider, TestServer, test_config, with_token};

/// Silence after which the retry test's job is taken over.
const SHORT_VISIBILITY: Duration = Duration::from_millis(600);

/// Fast settings for tests: frequent heartbeats, quick polls, and a visibility timeout long
/// enough that a busy test machine (SQLite's single writer delays heartbeats behind a scan's
/// writes) does not look like a dead worker.
fn fast(workers: usize) -> WorkerSettings {
    WorkerSettings {
        workers,
        visibility: Duration::from_secs(5),
        heartbeat: Duration::from_millis(100),
        idle_poll: Duration::from_millis(20),
        retry_after: Duration::ZERO,
    }
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
async fn eventually<T, F, Fut>(deadline: Duration, what: &str, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    ephyra_testsupport::wait::until(what, deadline, check).await
}

/// Waits until every job of `kind` has ended (done or failed). On a timeout the error says
/// where each job was (state, attempts, last error), so a failure on a slow machine explains
/// itself.
async fn all_ended(store: &Store, kind: &str, count: usize) -> Result<()> {
    ephyra_testsupport::wait::eventually(
        "every job to end",
        // A bound for a failure only: a scan on SQLite on a machine whose disk is busy (each
        // commit waits for its fsync) has taken most of a minute.
        Duration::from_secs(180),
        ephyra_testsupport::wait::POLL,
        || async {
            // SQLite's writers (workers polling, heartbeats, a scan, the frame job it
            // enqueues) can hold every pooled connection for a while on a loaded machine: a
            // read that times out is asked again, not a failure.
            let jobs = store
                .jobs_of_kind(kind)
                .await
                .map_err(|e| format!("cannot read the jobs: {e}"))?;
            let ended = jobs
                .iter()
                .filter(|j| matches!(j.state, JobState::Done | JobState::Failed))
                .count();
            if jobs.len() == count && ended == count {
                return Ok(());
            }
            let states: Vec<String> = jobs
                .iter()
                .map(|j| {
                    format!(
                        "{:?} after {} attempt(s), last error {:?}, progress {:?}",
                        j.state, j.attempts, j.last_error, j.progress
                    )
                })
                .collect();
            Err(format!("{} of {count} ended: {states:?}", ended))
        },
    )
    .await
}

/// Asserts that no two attempts of one job overlapped in time.
fn assert_no_overlap(runs: &[JobRun]) -> Result<()> {
    let mut by_job: BTreeMap<String, Vec<&JobRun>> = BTreeMap::new();
    for run in runs {
        by_job.entry(run.job_id.to_n()).or_default().push(run);
    }
    for (job, mut attempts) in by_job {
        attempts.sort_by_key(|r| r.attempt);
        for pair in attempts.windows(2) {
            ensure!(
                pair[0].last_alive() <= pair[1].started_at,
                "attempts of job {job} overlap: {:?}",
                pair
            );
        }
    }
    Ok(())
}

on_both_providers! {
    async fn concurrent_workers_run_every_job_exactly_once(server) {
        let store = server.state.store.clone();
        const JOBS: usize = 40;
        for n in 0..JOBS {
            store.enqueue(&NewJob::new("count").payload(serde_json::json!({"n": n}))).await?;
        }
        let calls: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let seen = Arc::clone(&calls);
        let handlers = Handlers::new().with("count", move |job: ClaimedJob| {
            let seen = Arc::clone(&seen);
            async move {
                *seen.lock().expect("lock").entry(job.id.to_n()).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(15)).await;
                Ok(())
            }
        });
        let shutdown = CancellationToken::new();
        let workers = spawn_workers(&store, &handlers, &fast(6), "replica-test", &shutdown);
        all_ended(&store, "count", JOBS).await?;
        shutdown.cancel();
        for w in workers {
            w.await?;
        }

        let jobs = store.jobs_of_kind("count").await?;
        ensure!(jobs.iter().all(|j| j.state == JobState::Done && j.attempts == 1), "{jobs:?}");
        ensure!(jobs.iter().all(|j| j.worker.as_deref().is_some_and(|w| w.starts_with("replica-test/"))));
        let calls = calls.lock().expect("lock").clone();
        ensure!(calls.len() == JOBS && calls.values().all(|&c| c == 1), "handler calls: {calls:?}");
        let runs = store.job_runs().await?;
        ensure!(runs.len() == JOBS, "one run per job: {runs:?}");
        ensure!(runs.iter().all(|r| r.outcome.as_deref() == Some("done") && r.finished_at.is_some()));
        assert_no_overlap(&runs)?;
        Ok(())
    }

    async fn a_worker_that_stops_heartbeating_has_its_job_retried_by_another(server) {
        let store = server.state.store.clone();
        store.enqueue(&NewJob::new("stuck_once")).await?;
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let handlers = Handlers::new().with("stuck_once", move |job: ClaimedJob| {
            let started = started_tx.clone();
            async move {
                let _ = started.send(job.worker.clone());
                if job.attempt == 1 {
                    // The first worker hangs until it is aborted.
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
        });
        let shutdown = CancellationToken::new();
        let first = tokio::spawn(run_worker(
            store.clone(),
            handlers.clone(),
            WorkerSettings {
                visibility: SHORT_VISIBILITY,
                ..fast(1)
            },
            "replica-a/0".to_owned(),
            shutdown.clone(),
        ));
        let who = tokio::time::timeout(Duration::from_secs(10), started_rx.recv())
            .await?
            .context("first attempt started")?;
        assert_eq!(who, "replica-a/0");
        // The replica dies: no more heartbeats, no release.
        first.abort();
        let second = tokio::spawn(run_worker(
            store.clone(),
            handlers,
            WorkerSettings {
                visibility: SHORT_VISIBILITY,
                ..fast(1)
            },
            "replica-b/0".to_owned(),
            shutdown.clone(),
        ));
        all_ended(&store, "stuck_once", 1).await?;
        shutdown.cancel();
        second.await?;

        let job = store.jobs_of_kind("stuck_once").await?.remove(0);
        assert_eq!(job.state, JobState::Done);
        assert_eq!(job.attempts, 2);
        assert_eq!(job.worker.as_deref(), Some("replica-b/0"));
        let runs = store.job_runs().await?;
        let outcomes: Vec<(&str, Option<&str>)> =
            runs.iter().map(|r| (r.worker.as_str(), r.outcome.as_deref())).collect();
        assert_eq!(outcomes, [("replica-a/0", Some("lost")), ("replica-b/0", Some("done"))]);
        // The retry waited for the silence to last the visibility timeout.
        let silence = i64::try_from(SHORT_VISIBILITY.as_millis())?;
        ensure!(runs[1].started_at >= runs[0].last_alive() + silence, "{runs:?}");
        assert_no_overlap(&runs)?;
        Ok(())
    }

    async fn a_worker_that_lost_its_claim_can_neither_heartbeat_nor_complete(server) {
        let store = server.state.store.clone();
        store.enqueue(&NewJob::new("contested")).await?;
        let a = store.claim_job("replica-a/0", Duration::from_secs(60)).await?.context("a claims")?;
        // With a zero visibility timeout the claim lapses at once: b takes the job over.
        let b = eventually(Duration::from_secs(5), "b's claim", || async {
            Ok(store.claim_job("replica-b/0", Duration::ZERO).await?)
        })
        .await?;
        assert_eq!((a.id, a.attempt, b.attempt), (b.id, 1, 2));
        assert!(!store.heartbeat_job(&a).await?);
        assert!(!store.complete_job(&a).await?);
        assert!(!store.fail_job(&a, "late", Duration::ZERO).await?);
        assert!(!store.release_job(&a).await?);
        assert!(store.heartbeat_job(&b).await?);
        assert!(store.complete_job(&b).await?);
        let job = store.job(a.id).await?.context("job")?;
        assert_eq!((job.state, job.worker.as_deref()), (JobState::Done, Some("replica-b/0")));
        Ok(())
    }

    async fn a_job_that_keeps_failing_ends_failed_after_its_attempts(server) {
        let store = server.state.store.clone();
        store.enqueue(&NewJob::new("broken").max_attempts(2)).await?;
        let handlers = Handlers::new().with("broken", |_job: ClaimedJob| async {
            Err::<(), _>(JobError("the disk is on fire".to_owned()))
        });
        let shutdown = CancellationToken::new();
        let workers = spawn_workers(&store, &handlers, &fast(1), "replica-f", &shutdown);
        all_ended(&store, "broken", 1).await?;
        shutdown.cancel();
        for w in workers {
            w.await?;
        }
        let job = store.jobs_of_kind("broken").await?.remove(0);
        assert_eq!((job.state, job.attempts), (JobState::Failed, 2));
        assert_eq!(job.last_error.as_deref(), Some("the disk is on fire"));
        let runs = store.job_runs().await?;
        ensure!(runs.len() == 2 && runs.iter().all(|r| r.outcome.as_deref() == Some("failed")));
        Ok(())
    }

    async fn a_job_interrupted_by_shutdown_goes_back_to_the_queue_without_using_an_attempt(server) {
        let store = server.state.store.clone();
        store.enqueue(&NewJob::new("long").max_attempts(1)).await?;
        let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let handlers = Handlers::new().with("long", move |_job: ClaimedJob| {
            let started = started_tx.clone();
            async move {
                let _ = started.send(());
                std::future::pending::<Result<(), JobError>>().await
            }
        });
        let shutdown = CancellationToken::new();
        let workers = spawn_workers(&store, &handlers, &fast(1), "replica-s", &shutdown);
        tokio::time::timeout(Duration::from_secs(10), started_rx.recv()).await?;
        shutdown.cancel();
        for w in workers {
            w.await?;
        }
        let job = store.jobs_of_kind("long").await?.remove(0);
        assert_eq!(job.state, JobState::Queued);
        // One attempt was started and one is still allowed.
        assert_eq!((job.attempts, job.max_attempts), (1, 2));
        let runs = store.job_runs().await?;
        assert_eq!(runs[0].outcome.as_deref(), Some("released"));
        let again = store.claim_job("replica-t/0", Duration::from_secs(60)).await?.context("claimable again")?;
        assert_eq!(again.attempt, 2);
        Ok(())
    }

    async fn a_lane_runs_one_job_at_a_time_and_queues_at_most_one(server) {
        let store = server.state.store.clone();
        let lane_job = || NewJob::new("lane_job").lane("only-one");
        assert!(matches!(store.enqueue(&lane_job()).await?, ephyra_server::store::jobs::Enqueued::Added(_)));
        assert_eq!(store.enqueue(&lane_job()).await?, ephyra_server::store::jobs::Enqueued::Duplicate);
        let first = store.claim_job("replica-a/0", Duration::from_secs(60)).await?.context("claimed")?;
        // Once the first runs, another may wait in the queue, but nobody can claim it yet.
        assert!(matches!(store.enqueue(&lane_job()).await?, ephyra_server::store::jobs::Enqueued::Added(_)));
        assert!(store.claim_job("replica-b/0", Duration::from_secs(60)).await?.is_none());
        assert!(store.complete_job(&first).await?);
        let second = store.claim_job("replica-b/0", Duration::from_secs(60)).await?.context("claimed")?;
        assert_ne!(second.id, first.id);
        Ok(())
    }

    async fn the_token_cleanup_job_deletes_only_tokens_idle_for_longer_than_its_limit(server) {
        let store = server.state.store.clone();
        let (admin, _token) = server.admin().await?;
        let (viewer, _) = server.viewer().await?;
        // The administrator's token was last used 40 days ago, the viewer's just now.
        let forty_days_ago = Store::now() - 40 * 24 * 3600 * 1000;
        sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE user_id = $2")
            .bind(forty_days_ago)
            .bind(admin.id.to_n())
            .execute(store.pool())
            .await?;
        store
            .enqueue(&NewJob::new(ephyra_server::jobs::TOKEN_CLEANUP).payload(serde_json::json!({"idleDays": 30})))
            .await?;
        let shutdown = CancellationToken::new();
        let workers = spawn_workers(&store, &default_handlers(&server.state), &fast(1), "replica-c", &shutdown);
        all_ended(&store, ephyra_server::jobs::TOKEN_CLEANUP, 1).await?;
        shutdown.cancel();
        for w in workers {
            w.await?;
        }
        let job = store.jobs_of_kind(ephyra_server::jobs::TOKEN_CLEANUP).await?.remove(0);
        assert_eq!(job.state, JobState::Done);
        assert_eq!(store.count_tokens(admin.id).await?, 0);
        assert_eq!(store.count_tokens(viewer.id).await?, 1);
        Ok(())
    }

    async fn a_stale_leaders_enqueue_is_refused(server) {
        let store = server.state.store.clone();
        let periodic = Periodic {
            job: NewJob::new("tidy").lane("tidy"),
            every: Duration::from_secs(3600),
            in_current_slot: true,
        };
        // The leader of epoch 8 writes first; the deposed leader of epoch 7 comes later.
        let slot = periodic.slot(Store::now());
        enqueue_fenced(&store, 8, &periodic, slot).await?;
        let refused = enqueue_fenced(&store, 7, &periodic, slot + 1).await;
        assert!(matches!(refused, Err(StoreError::StaleLeader { epoch: 7 })), "{refused:?}");
        let jobs = store.jobs_of_kind("tidy").await?;
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].fencing_token, Some(8));
        assert_eq!(jobs[0].dedupe_key.as_deref(), Some(periodic.dedupe_key(slot).as_str()));
        // The same slot again, by the current leader: skipped, not an error.
        let again = enqueue_fenced(&store, 8, &periodic, slot).await?;
        assert_eq!(again, ephyra_server::store::jobs::Enqueued::Duplicate);
        Ok(())
    }

    async fn the_scheduler_enqueues_each_slot_once_while_leading_and_stops_when_deposed(server) {
        let store = server.state.store.clone();
        let periodic = vec![Periodic {
            job: NewJob::new("tick"),
            every: Duration::from_millis(200),
            in_current_slot: true,
        }];
        let term = |epoch| LeaderTerm { epoch, holder: "replica-a".to_owned(), since: Utc::now() };
        let (lead_a, watch_a) = watch::channel(Some(term(3)));
        let shutdown = CancellationToken::new();
        let settings = SchedulerSettings { tick: Duration::from_millis(20) };
        let a = tokio::spawn(run_scheduler(store.clone(), watch_a, periodic.clone(), settings.clone(), shutdown.clone()));
        eventually(Duration::from_secs(10), "three slots", || async {
            Ok((store.jobs_of_kind("tick").await?.len() >= 3).then_some(()))
        })
        .await?;
        // A newer leader (epoch 4) takes over while A still believes it leads.
        let (_lead_b, watch_b) = watch::channel(Some(term(4)));
        let b = tokio::spawn(run_scheduler(store.clone(), watch_b, periodic.clone(), settings, shutdown.clone()));
        let handover = Store::now();
        eventually(Duration::from_secs(10), "the new leader's jobs", || async {
            let jobs = store.jobs_of_kind("tick").await?;
            Ok((jobs.iter().filter(|j| j.fencing_token == Some(4)).count() >= 3).then_some(()))
        })
        .await?;
        shutdown.cancel();
        a.await?;
        b.await?;
        drop(lead_a);
        let jobs = store.jobs_of_kind("tick").await?;
        let mut keys: Vec<&str> = jobs.iter().filter_map(|j| j.dedupe_key.as_deref()).collect();
        let all = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), all, "one job per slot");
        assert_eq!(all, jobs.len());
        // Once B had written, A's enqueues were refused (it wrote nothing for later slots).
        let first_of_b = jobs.iter().filter(|j| j.fencing_token == Some(4)).map(|j| j.created_at).min().context("b wrote")?;
        ensure!(first_of_b >= handover);
        ensure!(
            jobs.iter().all(|j| j.fencing_token == Some(4) || j.created_at <= first_of_b),
            "a deposed leader enqueued after the new one: {jobs:?}"
        );
        Ok(())
    }
}

on_both_providers! {
    async fn a_running_scans_progress_is_read_from_its_job_row_by_any_replica(server) {
        let (_, token) = server.admin().await?;
        let auth = with_token(&token);
        let store = &server.state.store;
        let library = ephyra_server::store::items::Library {
            id: store.ids().library("Progress Films"),
            name: "Progress Films".to_owned(),
            kind: LibraryKind::Movies,
            folders: vec![],
            created_at: 0,
        };
        store.sync_libraries(&[library]).await?;
        store.enqueue(&ephyra_server::jobs::kinds::library_scan()).await?;
        // Claimed by a worker of another replica, which reports a quarter done.
        let job = store.claim_job("replica-b/0", Duration::from_secs(30)).await?.context("a job")?;
        assert_eq!(job.kind, LIBRARY_SCAN);
        assert!(store.set_job_progress(&job, Progress { done: 250, total: 1000 }).await?);
        let tasks = server.get("/ScheduledTasks", Some(&auth)).await?.json()?;
        let scan = tasks.as_array().into_iter().flatten().find(|t| t["Key"] == "RefreshLibrary").context("the scan task")?.clone();
        assert_eq!(scan["State"], "Running");
        assert_eq!(scan["CurrentProgressPercentage"], 25.0);
        let id = scan["Id"].as_str().context("an id")?;
        let one = server.get(&format!("/ScheduledTasks/{id}"), Some(&auth)).await?.json()?;
        assert_eq!(one["CurrentProgressPercentage"], 25.0);
        let folders = server.get("/Library/VirtualFolders", Some(&auth)).await?.json()?;
        assert_eq!(folders.as_array().map(Vec::len), Some(1), "{folders}");
        for folder in folders.as_array().into_iter().flatten() {
            assert_eq!(folder["RefreshStatus"], "Active", "{folder}");
            assert_eq!(folder["RefreshProgress"], 25.0, "{folder}");
        }
        // A worker that does not hold the job writes nothing.
        let stranger = ClaimedJob { worker: "replica-c/0".to_owned(), ..job.clone() };
        assert!(!store.set_job_progress(&stranger, Progress { done: 999, total: 1000 }).await?);
        assert_eq!(store.job(job.id).await?.context("the job")?.progress, Some(Progress { done: 250, total: 1000 }));
        // Done: the task is idle again and the folders say nothing of progress.
        assert!(store.complete_job(&job).await?);
        let tasks = server.get("/ScheduledTasks", Some(&auth)).await?.json()?;
        assert_eq!(tasks[0]["State"], "Idle");
        assert!(tasks[0].get("CurrentProgressPercentage").is_none(), "{tasks}");
        let folders = server.get("/Library/VirtualFolders", Some(&auth)).await?.json()?;
        assert!(folders[0].get("RefreshProgress").is_none(), "{folders}");
        Ok(())
    }
}

mod refresh {
    use super::*;

    /// A server over the sample library, not scanned yet, and an administrator's token.
    async fn unscanned(provider: Provider) -> Result<(TestServer, String)> {
        let sample = ephyra_testsupport::media::cached_sample_library().await?;
        let data = tempfile::tempdir()?;
        let mut config = test_config(provider, data.path()).await?;
        config.libraries = vec![
            LibraryConfig {
                name: "Queued Films".to_owned(),
                kind: LibraryKind::Movies,
                folders: vec![sample.root.join("films")],
            },
            LibraryConfig {
                name: "Queued Shows".to_owned(),
                kind: LibraryKind::Tvshows,
                folders: vec![sample.root.join("series")],
            },
        ];
        let server = TestServer::from_config(config, data).await?;
        let (_, token) = server.admin().await?;
        Ok((server, token))
    }

    async fn body(provider: Provider) -> Result<()> {
        let (server, token) = unscanned(provider).await?;
        let store = server.state.store.clone();
        for _ in 0..3 {
            let reply = server
                .post("/Library/Refresh", Some(&with_token(&token)), None)
                .await?;
            assert_eq!(reply.status, StatusCode::NO_CONTENT);
        }
        // Nothing was scanned in the request; one scan waits in the queue.
        let queued = store.jobs_of_kind(LIBRARY_SCAN).await?;
        assert_eq!(queued.len(), 1, "{queued:?}");
        assert_eq!(queued[0].state, JobState::Queued);
        let items = server
            .get("/Items?Recursive=true", Some(&with_token(&token)))
            .await?
            .json()?;
        assert_eq!(items["TotalRecordCount"], 0);

        let shutdown = CancellationToken::new();
        // The heartbeat and visibility of a real replica, not `fast`'s: this test is about the
        // scan running once, and on SQLite a heartbeat every 100 ms (each commit an fsync)
        // can keep a busy disk's write lock from the scan long enough for a 5 s claim to lapse.
        let settings = WorkerSettings {
            workers: 2,
            idle_poll: Duration::from_millis(20),
            ..WorkerSettings::for_dialect(store.dialect())
        };
        let workers = spawn_workers(
            &store,
            &default_handlers(&server.state),
            &settings,
            "replica-r",
            &shutdown,
        );
        all_ended(&store, LIBRARY_SCAN, 1).await?;
        shutdown.cancel();
        for w in workers {
            w.await?;
        }
        let job = store.jobs_of_kind(LIBRARY_SCAN).await?.remove(0);
        assert_eq!((job.state, job.attempts), (JobState::Done, 1));
        assert_eq!(
            job.progress,
            Some(Progress { done: 4, total: 4 }),
            "every file done"
        );
        let runs: Vec<JobRun> = store
            .job_runs()
            .await?
            .into_iter()
            .filter(|r| r.job_id == job.id)
            .collect();
        assert_eq!(runs.len(), 1, "the scan ran once: {runs:?}");
        let items = server
            .get(
                "/Items?Recursive=true&IncludeItemTypes=Movie,Episode",
                Some(&with_token(&token)),
            )
            .await?
            .json()?;
        assert_eq!(items["TotalRecordCount"], 4, "{items}");
        Ok(())
    }

    #[tokio::test]
    async fn a_library_refresh_enqueues_one_scan_that_a_worker_runs_once_sqlite() -> Result<()> {
        body(Provider::Sqlite).await
    }

    #[tokio::test]
    async fn a_library_refresh_enqueues_one_scan_that_a_worker_runs_once_postgres() -> Result<()> {
        body(Provider::Postgres).await
    }
}

//! Jobs that run once: periodic library scans on a short interval (scheduled by the leader)
//! and on-demand ones (`POST /Library/Refresh`), while replicas are SIGKILLed at random and
//! restarted. Afterwards the database's record says: every job completed; no job's attempts
//! overlapped (`job_runs`), nor did two scans (one lane); every acknowledged refresh was
//! followed by a scan that started after it and finished (none lost).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ephyra_e2e::LocalCluster;
use ephyra_e2e::wait::{eventually, now_millis};
use reqwest::StatusCode;
use sqlx::Row as _;

/// How long replicas are killed at random.
const CHAOS: Duration = Duration::from_secs(20);
/// Time between two kills.
const KILL_EVERY: Duration = Duration::from_secs(3);
/// How long a killed replica stays down before it is restarted.
const DOWN_FOR: Duration = Duration::from_millis(1500);
/// How long jobs may take to finish once the kills stop (a dead worker's job waits for the
/// visibility timeout before it is retried).
const SETTLE: Duration = Duration::from_secs(60);

/// One attempt of a job, as `job_runs` recorded it.
#[derive(Debug, Clone)]
struct Run {
    job_id: String,
    attempt: i64,
    worker: String,
    started_at: i64,
    finished_at: Option<i64>,
    outcome: Option<String>,
}

/// One job, as `jobs` recorded it.
#[derive(Debug, Clone)]
struct Job {
    id: String,
    kind: String,
    lane: Option<String>,
    state: String,
    created_at: i64,
}

/// A small deterministic generator (the seed is printed, so a failing run can be replayed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((self.0 >> 33) % n as u64).unwrap_or(0)
    }
}

/// The pid in a worker name `<hostname>-<pid>/<n>` (a replica outside Kubernetes calls
/// itself `<hostname>-<pid>`).
fn worker_pid(worker: &str) -> Option<u32> {
    let replica = worker.split('/').next()?;
    replica.rsplit('-').next()?.parse().ok()
}

async fn read_jobs(cluster: &LocalCluster) -> anyhow::Result<(Vec<Job>, Vec<Run>)> {
    let mut db = cluster.sql().await?;
    let jobs =
        sqlx::query("SELECT id, kind, lane, state, created_at FROM jobs ORDER BY created_at")
            .fetch_all(&mut db)
            .await?
            .iter()
            .map(|r| {
                Ok(Job {
                    id: r.try_get("id")?,
                    kind: r.try_get("kind")?,
                    lane: r.try_get("lane")?,
                    state: r.try_get("state")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
    let runs = sqlx::query(
        "SELECT job_id, attempt, worker, started_at, finished_at, outcome FROM job_runs \
         ORDER BY job_id, attempt",
    )
    .fetch_all(&mut db)
    .await?
    .iter()
    .map(|r| {
        Ok(Run {
            job_id: r.try_get("job_id")?,
            attempt: r.try_get("attempt")?,
            worker: r.try_get("worker")?,
            started_at: r.try_get("started_at")?,
            finished_at: r.try_get("finished_at")?,
            outcome: r.try_get("outcome")?,
        })
    })
    .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((jobs, runs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_once_each_while_replicas_are_killed_at_random() -> anyhow::Result<()> {
    let mut cluster = LocalCluster::builder(3)
        .env("EPHYRA_LEASE_MILLIS", "1500")
        .env("EPHYRA_RENEW_MILLIS", "300")
        .env("EPHYRA_SCAN_INTERVAL_SECONDS", "1")
        // A dead worker's job is retried after 3 s of silence (heartbeats every 0.5 s).
        .env("EPHYRA_JOB_VISIBILITY_SECONDS", "3")
        .start()
        .await?;
    let admin = cluster.admin(0, "jobs-admin").await?;
    let seed = u64::try_from(now_millis()).unwrap_or(1);
    println!("random seed {seed}");
    let mut rng = Lcg(seed);

    // When each acknowledged refresh was sent, and when each killed process died.
    let mut refreshes: Vec<i64> = Vec::new();
    let mut deaths: BTreeMap<u32, i64> = BTreeMap::new();
    let mut down: Vec<(usize, Instant)> = Vec::new();
    let started = Instant::now();
    let mut next_kill = started + KILL_EVERY;
    while started.elapsed() < CHAOS {
        let running = cluster.running();
        let via = running[rng.below(running.len())];
        let sent = now_millis();
        match admin.on(&cluster.url(via)).refresh_library().await {
            Ok(StatusCode::NO_CONTENT) => refreshes.push(sent),
            // A replica killed while answering; the request was not acknowledged.
            Ok(status) => println!("refresh through {} answered {status}", cluster.name(via)),
            Err(e) => println!("refresh through {} failed: {e:#}", cluster.name(via)),
        }
        if Instant::now() >= next_kill && running.len() > 1 {
            let victim = running[rng.below(running.len())];
            if let Some(pid) = cluster.kill(victim) {
                deaths.insert(pid, now_millis());
                println!("SIGKILL {} (pid {pid})", cluster.name(victim));
            }
            down.push((victim, Instant::now() + DOWN_FOR));
            next_kill = Instant::now() + KILL_EVERY;
        }
        let (due, later): (Vec<_>, Vec<_>) =
            down.into_iter().partition(|(_, at)| Instant::now() >= *at);
        down = later;
        for (i, _) in due {
            cluster.start_replica(i).await?;
        }
        // Pacing of the load, not a wait for anything.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for (i, _) in down {
        cluster.start_replica(i).await?;
    }
    let chaos_end = now_millis();
    println!(
        "{} refreshes acknowledged, {} replicas killed",
        refreshes.len(),
        deaths.len()
    );
    assert!(
        refreshes.len() >= 20,
        "too few refreshes: {}",
        refreshes.len()
    );

    // Every job created during the run ends.
    let (jobs, runs) = eventually(
        "every job created during the run to finish",
        SETTLE,
        Duration::from_millis(250),
        || async {
            let (jobs, runs) = read_jobs(&cluster).await.map_err(|e| format!("{e:#}"))?;
            let open: Vec<&Job> = jobs
                .iter()
                .filter(|j| j.created_at <= chaos_end)
                .filter(|j| j.state == "queued" || j.state == "running")
                .collect();
            if open.is_empty() {
                Ok((jobs, runs))
            } else {
                Err(format!("{} still open, e.g. {:?}", open.len(), open[0]))
            }
        },
    )
    .await?;
    let jobs: Vec<Job> = jobs
        .into_iter()
        .filter(|j| j.created_at <= chaos_end)
        .collect();

    let mut by_kind: BTreeMap<(String, String), usize> = BTreeMap::new();
    for job in &jobs {
        *by_kind
            .entry((job.kind.clone(), job.state.clone()))
            .or_default() += 1;
    }
    println!("jobs by kind and state: {by_kind:?}");
    assert!(jobs.len() >= 10, "too few jobs ran: {by_kind:?}");

    // Completed: done, or a retry superseded by an equal job already queued in its lane. A job
    // may also have failed when the chaos killed the replica running it at every one of its
    // attempts (the attempt limit is there for a job that kills its worker): then each of its
    // runs never finished and its worker's process is one this test killed.
    let killed_at_every_attempt = |job: &Job| {
        let attempts: Vec<&Run> = runs.iter().filter(|r| r.job_id == job.id).collect();
        !attempts.is_empty()
            && attempts.iter().all(|r| {
                r.finished_at.is_none()
                    && worker_pid(&r.worker).is_some_and(|pid| deaths.contains_key(&pid))
            })
    };
    for job in &jobs {
        assert!(
            job.state == "done"
                || job.state == "superseded"
                || (job.state == "failed" && killed_at_every_attempt(job)),
            "job {job:?} did not complete; its runs: {:?}",
            runs.iter()
                .filter(|r| r.job_id == job.id)
                .collect::<Vec<_>>()
        );
    }

    // The end of an attempt: when it finished, or when its worker's process was killed.
    let end_of = |run: &Run| -> i64 {
        run.finished_at.unwrap_or_else(|| {
            let died = worker_pid(&run.worker).and_then(|pid| deaths.get(&pid).copied());
            died.unwrap_or_else(|| panic!("run {run:?} never ended and its worker was not killed"))
        })
    };
    // No job ran on two workers at once.
    for pair in runs.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.job_id == b.job_id {
            assert_eq!(b.attempt, a.attempt + 1);
            assert!(
                end_of(a) <= b.started_at,
                "attempts overlap: {a:?} (ended {}) and {b:?}",
                end_of(a)
            );
        }
    }
    // No two jobs of a lane (library scans) ran at once.
    let lane_of: BTreeMap<&str, &str> = jobs
        .iter()
        .filter_map(|j| Some((j.id.as_str(), j.lane.as_deref()?)))
        .collect();
    let mut lanes: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for run in &runs {
        if let Some(lane) = lane_of.get(run.job_id.as_str()) {
            lanes.entry(lane).or_default().push(run);
        }
    }
    for (lane, mut lane_runs) in lanes {
        lane_runs.sort_by_key(|r| r.started_at);
        for pair in lane_runs.windows(2) {
            assert!(
                end_of(pair[0]) <= pair[1].started_at,
                "lane {lane}: {:?} and {:?} ran at once",
                pair[0],
                pair[1]
            );
        }
    }

    // None lost: after every acknowledged refresh, a scan started and finished.
    let scans: Vec<&Run> = runs
        .iter()
        .filter(|r| r.outcome.as_deref() == Some("done"))
        .filter(|r| {
            jobs.iter()
                .any(|j| j.id == r.job_id && j.kind.contains("scan"))
        })
        .collect();
    let latest_scan = eventually(
        "a finished scan after the last refresh",
        SETTLE,
        Duration::from_millis(250),
        || async {
            let (all_jobs, all_runs) = read_jobs(&cluster).await.map_err(|e| format!("{e:#}"))?;
            all_runs
                .iter()
                .filter(|r| r.outcome.as_deref() == Some("done"))
                .filter(|r| {
                    all_jobs
                        .iter()
                        .any(|j| j.id == r.job_id && j.kind.contains("scan"))
                })
                .map(|r| r.started_at)
                .max()
                .filter(|&s| refreshes.last().is_none_or(|&t| s >= t))
                .ok_or_else(|| "no scan after the last refresh yet".to_owned())
        },
    )
    .await?;
    for &sent in &refreshes {
        let served = scans.iter().any(|r| r.started_at >= sent) || latest_scan >= sent;
        assert!(
            served,
            "the refresh sent at {sent} was never followed by a scan"
        );
    }
    println!(
        "{} scans finished; {} runs in all; every refresh was followed by a scan",
        scans.len(),
        runs.len()
    );
    Ok(())
}

//! The job queue (migration `0002_job_queue`): work that must happen once across replicas.
//!
//! A job is enqueued `queued`; a worker on any replica claims it (`running`, its name in
//! `worker`, `attempts` raised by one), heartbeats while it runs, and ends it `done`, or
//! `queued` again for a retry, or `failed` once `max_attempts` is used up. A `running` job
//! whose worker has not heartbeated for the visibility timeout is claimed again by another
//! worker (its worker is taken for dead).
//!
//! Why a job never runs on two workers at once:
//! - the claim is one atomic step: on PostgreSQL the candidate row is selected
//!   `FOR UPDATE SKIP LOCKED` and updated in the same transaction, so concurrent workers skip
//!   each other's rows; on SQLite the transaction takes the write lock up front;
//! - every later write of a worker (heartbeat, completion, failure, release) matches
//!   `worker = me AND attempts = n AND state = 'running'`, so a worker whose claim was taken
//!   over writes nothing and learns that it lost the job (a heartbeat returning `false`);
//! - jobs of one *lane* (`library_scan`) exclude each other: two partial unique indexes allow
//!   one queued and one running job per lane, and the claim skips a lane that has a live
//!   running job.
//!
//! `job_runs` gets one row per attempt (claimed → finished), never rewritten after it closes:
//! tests read it to prove that no two attempts of a job overlapped.
//!
//! De-duplication: `dedupe_key` is unique for ever (the scheduler's `kind@slot` keys, so a
//! periodic job is enqueued once per time slot even across leaders); the lane allows one
//! queued job at a time. An enqueue that would break either is skipped, not an error.

use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row, Transaction};

use super::{Dialect, Store, StoreError, StoreResult};
use crate::jf::JfId;

/// State of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting to be claimed (from `run_after` on).
    Queued,
    /// Claimed by a worker.
    Running,
    /// Finished successfully.
    Done,
    /// Gave up after `max_attempts`.
    Failed,
    /// A retry that was dropped because an equal job was already queued in its lane.
    Superseded,
}

impl JobState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Superseded => "superseded",
        }
    }

    fn parse(text: &str) -> StoreResult<JobState> {
        Ok(match text {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "superseded" => JobState::Superseded,
            other => return Err(StoreError::Corrupt(format!("unknown job state `{other}`"))),
        })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What to run (`library_scan`, `token_cleanup`, ...): picks the handler.
    pub kind: String,
    /// JSON arguments for the handler.
    pub payload: serde_json::Value,
    /// Enqueued at most once for ever under this key (e.g. `library_scan@29150`).
    pub dedupe_key: Option<String>,
    /// Jobs of one lane never run at once and at most one of them is queued.
    pub lane: Option<String>,
    /// Not claimed before this time (unix ms); `None` = now.
    pub run_after: Option<i64>,
    /// Attempts before the job is `failed`.
    pub max_attempts: i64,
    /// Epoch of the leader that enqueued it, for the record.
    pub fencing_token: Option<i64>,
}

impl NewJob {
    /// A job of `kind` with an empty payload, no de-duplication, three attempts.
    pub fn new(kind: impl Into<String>) -> NewJob {
        NewJob {
            kind: kind.into(),
            payload: serde_json::json!({}),
            dedupe_key: None,
            lane: None,
            run_after: None,
            max_attempts: 3,
            fencing_token: None,
        }
    }

    /// Sets the payload.
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }

    /// Sets the de-duplication key.
    pub fn dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Puts the job in a lane.
    pub fn lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }

    /// Sets the number of attempts.
    pub fn max_attempts(mut self, n: i64) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: JfId,
    /// What it runs.
    pub kind: String,
    /// JSON arguments.
    pub payload: serde_json::Value,
    /// Where it is.
    pub state: JobState,
    /// De-duplication key.
    pub dedupe_key: Option<String>,
    /// Lane.
    pub lane: Option<String>,
    /// Attempts started so far.
    pub attempts: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// The worker running it, or the last one that did.
    pub worker: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// Epoch of the leader that enqueued it.
    pub fencing_token: Option<i64>,
    /// When it was enqueued (unix ms).
    pub created_at: i64,
    /// When it ended (unix ms).
    pub finished_at: Option<i64>,
    /// What its worker last reported of its progress (migration `0013_job_progress`).
    pub progress: Option<Progress>,
}

/// A running job's progress as its worker reports it: units done out of those known so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Units done (files scanned).
    pub done: i64,
    /// Units known so far; it may grow while the job runs (a scan finds each library's files
    /// as it walks it).
    pub total: i64,
}

impl Progress {
    /// Done in percent, 0 to 100 (0 while nothing is known).
    pub fn percent(self) -> f64 {
        if self.total <= 0 {
            return 0.0;
        }
        (self.done.clamp(0, self.total) as f64 * 100.0 / self.total as f64).clamp(0.0, 100.0)
    }
}

/// A job a worker holds: the claim is (`id`, `worker`, `attempt`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The job.
    pub id: JfId,
    /// What to run.
    pub kind: String,
    /// JSON arguments.
    pub payload: serde_json::Value,
    /// This attempt's number (1 for the first).
    pub attempt: i64,
    /// Attempts allowed.
    pub max_attempts: i64,
    /// The worker holding it.
    pub worker: String,
}

/// One attempt of a job, from `job_runs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    /// The job.
    pub job_id: JfId,
    /// Attempt number.
    pub attempt: i64,
    /// Who ran it.
    pub worker: String,
    /// Claimed at (unix ms).
    pub started_at: i64,
    /// Last heartbeat (unix ms).
    pub heartbeat_at: i64,
    /// Ended at (unix ms); `None` while running or when its worker died.
    pub finished_at: Option<i64>,
    /// `done`, `failed`, `released`, `lost`, or `None`.
    pub outcome: Option<String>,
}

impl JobRun {
    /// The last moment this attempt can have been working: its end, else its last heartbeat.
    pub fn last_alive(&self) -> i64 {
        self.finished_at.unwrap_or(self.heartbeat_at)
    }
}

/// What happened to an enqueue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job with this id.
    Added(JfId),
    /// Skipped: its dedupe key was used, or its lane already has a queued job.
    Duplicate,
}

/// The columns of [`Job`], as a literal so queries stay constant strings.
macro_rules! job_columns {
    () => {
        "id, kind, payload, state, dedupe_key, lane, attempts, max_attempts, worker, \
         last_error, fencing_token, created_at, finished_at, progress_done, progress_total"
    };
}

/// The claim's candidate: a due queued job whose lane has no running job, or a running job
/// silent since before `$2` with attempts left; oldest first. PostgreSQL appends the locking
/// clause.
macro_rules! claim_candidate {
    () => {
        "SELECT id, kind, payload, state, attempts, max_attempts FROM jobs c \
         WHERE (c.state = 'queued' AND c.run_after <= $1 AND (c.lane IS NULL OR NOT EXISTS \
               (SELECT 1 FROM jobs r WHERE r.lane = c.lane AND r.state = 'running'))) \
            OR (c.state = 'running' AND c.heartbeat_at < $2 AND c.attempts < c.max_attempts) \
         ORDER BY c.run_after, c.created_at, c.id LIMIT 1"
    };
}

impl Store {
    /// Enqueues a job (see [`enqueue_in`] for leader-only enqueues inside
    /// [`Store::fenced_write`]).
    pub async fn enqueue(&self, job: &NewJob) -> StoreResult<Enqueued> {
        let mut tx = self.begin_write().await?;
        let done = enqueue_in(&mut tx, job).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Claims the next job for `worker`: a queued job that is due (oldest first), or a running
    /// job whose worker has been silent for `visibility` and has attempts left. Jobs silent
    /// that long with no attempts left are marked `failed` on the way. `None` when there is
    /// nothing to do (or another worker won a race for the last job).
    pub async fn claim_job(
        &self,
        worker: &str,
        visibility: Duration,
    ) -> StoreResult<Option<ClaimedJob>> {
        match self.try_claim(worker, visibility).await {
            // Two workers took the last free slot of a lane at once: the loser waits.
            Err(StoreError::Conflict(_)) => Ok(None),
            other => other,
        }
    }

    async fn try_claim(
        &self,
        worker: &str,
        visibility: Duration,
    ) -> StoreResult<Option<ClaimedJob>> {
        let now = Store::now();
        let cutoff = now - i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE jobs SET state = 'failed', finished_at = $1, updated_at = $1, \
             last_error = 'its worker stopped heartbeating and no attempts are left' \
             WHERE state = 'running' AND heartbeat_at < $2 AND attempts >= max_attempts",
        )
        .bind(now)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let select = match self.dialect() {
            Dialect::Postgres => concat!(claim_candidate!(), " FOR UPDATE SKIP LOCKED"),
            // One writer at a time: BEGIN IMMEDIATE already holds the lock.
            Dialect::Sqlite => claim_candidate!(),
        };
        let Some(row) = sqlx::query(select)
            .bind(now)
            .bind(cutoff)
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let id: String = row.try_get("id")?;
        let kind: String = row.try_get("kind")?;
        let payload: String = row.try_get("payload")?;
        let state: String = row.try_get("state")?;
        let attempts: i64 = row.try_get("attempts")?;
        let max_attempts: i64 = row.try_get("max_attempts")?;
        let attempt = attempts + 1;
        if state == "running" {
            // The previous attempt's worker went silent: close its run as lost.
            sqlx::query(
                "UPDATE job_runs SET outcome = 'lost' \
                 WHERE job_id = $1 AND attempt = $2 AND outcome IS NULL",
            )
            .bind(&id)
            .bind(attempts)
            .execute(&mut *tx)
            .await?;
        }
        // The claim's time is read after the candidate was found, not before the transaction
        // began: a lane's previous job whose completion this select saw was stamped before
        // its commit, so the new run never appears to start before the last one ended (with
        // `now`, taken while waiting for a connection, it could by a few milliseconds).
        let now = Store::now().max(now);
        let updated = sqlx::query(
            "UPDATE jobs SET state = 'running', worker = $1, started_at = $2, heartbeat_at = $2, \
             attempts = $3, updated_at = $2, progress_done = NULL, progress_total = NULL \
             WHERE id = $4 AND attempts = $5 AND state = $6",
        )
        .bind(worker)
        .bind(now)
        .bind(attempt)
        .bind(&id)
        .bind(attempts)
        .bind(&state)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO job_runs (job_id, attempt, worker, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&id)
        .bind(attempt)
        .bind(worker)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(ClaimedJob {
            id: super::parse_id(&id)?,
            kind,
            payload: parse_payload(&payload)?,
            attempt,
            max_attempts,
            worker: worker.to_owned(),
        }))
    }

    /// Records that `job`'s worker is alive. `false`: the claim was lost (another worker took
    /// the job over after a silence), and the worker must stop working on it.
    pub async fn heartbeat_job(&self, job: &ClaimedJob) -> StoreResult<bool> {
        let now = Store::now();
        let mut tx = self.begin_write().await?;
        let held = sqlx::query(
            "UPDATE jobs SET heartbeat_at = $1 \
             WHERE id = $2 AND worker = $3 AND attempts = $4 AND state = 'running'",
        )
        .bind(now)
        .bind(job.id.to_n())
        .bind(&job.worker)
        .bind(job.attempt)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if held {
            sqlx::query("UPDATE job_runs SET heartbeat_at = $1 WHERE job_id = $2 AND attempt = $3")
                .bind(now)
                .bind(job.id.to_n())
                .bind(job.attempt)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(held)
    }

    /// Records `job`'s progress; like a heartbeat, only while this worker holds it. `false`:
    /// the claim was lost and nothing was written.
    pub async fn set_job_progress(
        &self,
        job: &ClaimedJob,
        progress: Progress,
    ) -> StoreResult<bool> {
        let held = sqlx::query(
            "UPDATE jobs SET progress_done = $1, progress_total = $2 \
             WHERE id = $3 AND worker = $4 AND attempts = $5 AND state = 'running'",
        )
        .bind(progress.done)
        .bind(progress.total)
        .bind(job.id.to_n())
        .bind(&job.worker)
        .bind(job.attempt)
        .execute(self.pool())
        .await?
        .rows_affected()
            == 1;
        Ok(held)
    }

    /// Ends `job` as done. `false`: the claim was lost and nothing was written.
    pub async fn complete_job(&self, job: &ClaimedJob) -> StoreResult<bool> {
        let now = Store::now();
        let mut tx = self.begin_write().await?;
        let held = sqlx::query(
            "UPDATE jobs SET state = 'done', finished_at = $1, heartbeat_at = $1, updated_at = $1, \
             last_error = NULL WHERE id = $2 AND worker = $3 AND attempts = $4 AND state = 'running'",
        )
        .bind(now)
        .bind(job.id.to_n())
        .bind(&job.worker)
        .bind(job.attempt)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if held {
            close_run(&mut tx, job, now, "done", None).await?;
        }
        tx.commit().await?;
        Ok(held)
    }

    /// Ends this attempt of `job` as failed: queued again after `retry_after` while attempts
    /// are left, else `failed` for good. `false`: the claim was lost.
    pub async fn fail_job(
        &self,
        job: &ClaimedJob,
        error: &str,
        retry_after: Duration,
    ) -> StoreResult<bool> {
        let now = Store::now();
        let run_after = now + i64::try_from(retry_after.as_millis()).unwrap_or(i64::MAX / 2);
        let error: String = error.chars().take(2000).collect();
        let mut tx = self.begin_write().await?;
        let held = if job.attempt < job.max_attempts {
            requeue(&mut tx, job, now, run_after, Some(&error), false).await?
        } else {
            sqlx::query(
                "UPDATE jobs SET state = 'failed', finished_at = $1, updated_at = $1, \
                 last_error = $2 \
                 WHERE id = $3 AND worker = $4 AND attempts = $5 AND state = 'running'",
            )
            .bind(now)
            .bind(&error)
            .bind(job.id.to_n())
            .bind(&job.worker)
            .bind(job.attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        };
        if held {
            close_run(&mut tx, job, now, "failed", Some(&error)).await?;
        }
        tx.commit().await?;
        Ok(held)
    }

    /// Gives `job` back to the queue without counting the attempt (its worker is shutting
    /// down). `false`: the claim was lost.
    pub async fn release_job(&self, job: &ClaimedJob) -> StoreResult<bool> {
        let now = Store::now();
        let mut tx = self.begin_write().await?;
        let held = requeue(&mut tx, job, now, now, None, true).await?;
        if held {
            close_run(&mut tx, job, now, "released", None).await?;
        }
        tx.commit().await?;
        Ok(held)
    }

    /// One job by id.
    pub async fn job(&self, id: JfId) -> StoreResult<Option<Job>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id.to_n())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Jobs of `kind`, oldest first.
    pub async fn jobs_of_kind(&self, kind: &str) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE kind = $1 ORDER BY created_at, id"
        ))
        .bind(kind)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Every attempt of every job, by job then attempt.
    pub async fn job_runs(&self) -> StoreResult<Vec<JobRun>> {
        let rows = sqlx::query(
            "SELECT job_id, attempt, worker, started_at, heartbeat_at, finished_at, outcome \
             FROM job_runs ORDER BY job_id, attempt",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobRun {
                    job_id: super::get_id(r, "job_id")?,
                    attempt: r.try_get("attempt")?,
                    worker: r.try_get("worker")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at: r.try_get("heartbeat_at")?,
                    finished_at: r.try_get("finished_at")?,
                    outcome: r.try_get("outcome")?,
                })
            })
            .collect()
    }

    /// Deletes finished jobs (and their runs) that ended before `before` (unix ms), keeping
    /// the dedupe keys of recent slots. Returns how many went.
    pub async fn purge_finished_jobs(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('done', 'failed', 'superseded') \
             AND finished_at < $1",
        )
        .bind(before)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}

/// Enqueues `job` inside a transaction the caller commits, e.g. one opened by
/// [`Store::fenced_write`], so that a stale leader's enqueue is refused with the fence.
pub async fn enqueue_in(tx: &mut Transaction<'static, Any>, job: &NewJob) -> StoreResult<Enqueued> {
    enqueue_on(tx, job).await
}

async fn enqueue_on(conn: &mut AnyConnection, job: &NewJob) -> StoreResult<Enqueued> {
    let now = Store::now();
    let id = JfId::random();
    // No conflict target: any unique index (dedupe key, one queued job per lane) skips it.
    let done = sqlx::query(
        "INSERT INTO jobs (id, kind, payload, state, dedupe_key, lane, run_after, attempts, \
         max_attempts, fencing_token, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', $4, $5, $6, 0, $7, $8, $9, $9) ON CONFLICT DO NOTHING",
    )
    .bind(id.to_n())
    .bind(&job.kind)
    .bind(job.payload.to_string())
    .bind(job.dedupe_key.as_deref())
    .bind(job.lane.as_deref())
    .bind(job.run_after.unwrap_or(now))
    .bind(job.max_attempts.max(1))
    .bind(job.fencing_token)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(if done.rows_affected() == 1 {
        Enqueued::Added(id)
    } else {
        Enqueued::Duplicate
    })
}

/// Puts a held job back to `queued`. When its lane already has a queued job, that one will do
/// the same work: this one ends `superseded` instead.
async fn requeue(
    tx: &mut Transaction<'static, Any>,
    job: &ClaimedJob,
    now: i64,
    run_after: i64,
    error: Option<&str>,
    refund_attempt: bool,
) -> StoreResult<bool> {
    let lane_taken = sqlx::query(
        "SELECT 1 FROM jobs q WHERE q.state = 'queued' AND q.lane IS NOT NULL \
         AND q.lane = (SELECT lane FROM jobs WHERE id = $1)",
    )
    .bind(job.id.to_n())
    .fetch_optional(&mut **tx)
    .await?
    .is_some();
    let done = if lane_taken {
        sqlx::query(
            "UPDATE jobs SET state = 'superseded', finished_at = $1, updated_at = $1, \
             last_error = COALESCE($2, last_error) \
             WHERE id = $3 AND worker = $4 AND attempts = $5 AND state = 'running'",
        )
        .bind(now)
        .bind(error)
        .bind(job.id.to_n())
        .bind(&job.worker)
        .bind(job.attempt)
        .execute(&mut **tx)
        .await?
    } else {
        // A release does not use up an attempt: max_attempts grows by one instead of
        // attempts shrinking, so attempt numbers stay unique per job.
        sqlx::query(
            "UPDATE jobs SET state = 'queued', run_after = $1, updated_at = $2, \
             last_error = COALESCE($3, last_error), max_attempts = max_attempts + $4 \
             WHERE id = $5 AND worker = $6 AND attempts = $7 AND state = 'running'",
        )
        .bind(run_after)
        .bind(now)
        .bind(error)
        .bind(i64::from(refund_attempt))
        .bind(job.id.to_n())
        .bind(&job.worker)
        .bind(job.attempt)
        .execute(&mut **tx)
        .await?
    };
    let held = done.rows_affected() == 1;
    Ok(held)
}

async fn close_run(
    tx: &mut Transaction<'static, Any>,
    job: &ClaimedJob,
    now: i64,
    outcome: &str,
    error: Option<&str>,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE job_runs SET finished_at = $1, heartbeat_at = $1, outcome = $2, error = $3 \
         WHERE job_id = $4 AND attempt = $5 AND worker = $6",
    )
    .bind(now)
    .bind(outcome)
    .bind(error)
    .bind(job.id.to_n())
    .bind(job.attempt)
    .bind(&job.worker)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn parse_payload(text: &str) -> StoreResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt("job payload is not JSON".into()))
}

fn job_from_row(row: &AnyRow) -> StoreResult<Job> {
    let payload: String = row.try_get("payload")?;
    let state: String = row.try_get("state")?;
    Ok(Job {
        id: super::get_id(row, "id")?,
        kind: row.try_get("kind")?,
        payload: parse_payload(&payload)?,
        state: JobState::parse(&state)?,
        dedupe_key: row.try_get("dedupe_key")?,
        lane: row.try_get("lane")?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        worker: row.try_get("worker")?,
        last_error: row.try_get("last_error")?,
        fencing_token: row.try_get("fencing_token")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
        progress: match (
            row.try_get::<Option<i64>, _>("progress_done")?,
            row.try_get::<Option<i64>, _>("progress_total")?,
        ) {
            (Some(done), Some(total)) => Some(Progress { done, total }),
            _ => None,
        },
    })
}

impl Store {
    /// Deletes login tokens last used before `before` (unix ms), for the `token_cleanup` job.
    /// Returns how many went.
    pub async fn delete_idle_tokens(&self, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM access_tokens WHERE last_used_at < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

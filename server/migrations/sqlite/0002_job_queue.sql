-- The jobs table becomes a queue (issue 5): any replica's workers claim queued jobs, heartbeat
-- while they run, and a job whose worker stopped heartbeating for the visibility timeout is
-- claimed again (up to max_attempts, then 'failed'). States: 'queued', 'running', 'done',
-- 'failed', and 'superseded' (a retry dropped because an equal job was already queued in its
-- lane). Kept equal to ../postgres/0002_job_queue.sql.

-- The claim is (worker, attempts): completion and heartbeats must match both, so a worker
-- that lost its claim cannot overwrite the new one. locked_by/locked_until are replaced.
ALTER TABLE jobs DROP COLUMN locked_by;
ALTER TABLE jobs DROP COLUMN locked_until;
-- the worker holding the job ('<replica>/<n>'), or the last one that ran it
ALTER TABLE jobs ADD COLUMN worker TEXT;
-- when the current attempt started, and its worker's last sign of life
ALTER TABLE jobs ADD COLUMN started_at BIGINT;
ALTER TABLE jobs ADD COLUMN heartbeat_at BIGINT;
-- jobs of one lane (e.g. 'library_scan') never run at the same time, and at most one of them
-- waits in the queue; NULL = no such limits
ALTER TABLE jobs ADD COLUMN lane TEXT;

CREATE UNIQUE INDEX jobs_one_queued_per_lane ON jobs (lane) WHERE state = 'queued';
CREATE UNIQUE INDEX jobs_one_running_per_lane ON jobs (lane) WHERE state = 'running';
CREATE INDEX jobs_by_heartbeat ON jobs (state, heartbeat_at);

-- One row per attempt, written at claim and closed when the attempt ends: the record that
-- proves no job ran on two workers at once. outcome: NULL while running (or when the worker
-- died), then 'done', 'failed', 'released' (shutdown), 'lost' (claimed again after silence).
CREATE TABLE job_runs (
    job_id       TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    attempt      BIGINT NOT NULL,
    worker       TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    finished_at  BIGINT,
    outcome      TEXT,
    error        TEXT,
    PRIMARY KEY (job_id, attempt)
);

-- A running job's progress (issue 10): the library scan runs on one replica's worker, and the
-- dashboard may ask any replica, so the files done and the files found so far live on the job
-- row, written by the worker that holds it (every second or so). NULL: no progress reported.
-- Kept equal to the other dialect's 0013_job_progress.sql.
ALTER TABLE jobs ADD COLUMN progress_done BIGINT;
ALTER TABLE jobs ADD COLUMN progress_total BIGINT;

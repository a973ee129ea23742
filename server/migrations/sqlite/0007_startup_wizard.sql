-- The first-run wizard (issue 15), shared by every replica. One row, created here.
--
-- `first_admin_id` is the guard that makes the first administrator unique: whoever creates it
-- (the wizard's `POST /Startup/User` or the `EPHYRA_ADMIN_*` bootstrap) sets it in the same
-- transaction as the user row, with `WHERE first_admin_id IS NULL`, so a second attempt on any
-- replica updates no row and is rolled back. `completed_at` closes the wizard for every replica
-- at once; it never opens again.
CREATE TABLE startup_wizard (
    id                          BIGINT PRIMARY KEY CHECK (id = 1),
    first_admin_id              TEXT UNIQUE,
    -- unix ms; NULL while the wizard is open
    completed_at                BIGINT,
    -- what the wizard's first and settings pages chose (Jellyfin's ServerConfiguration fields)
    ui_culture                  TEXT NOT NULL DEFAULT 'en-US',
    metadata_country_code       TEXT NOT NULL DEFAULT 'US',
    preferred_metadata_language TEXT NOT NULL DEFAULT 'en',
    -- the wizard's remote-access page (0/1); informational: the Ingress decides exposure
    enable_remote_access        BIGINT NOT NULL DEFAULT 1
);

-- A database that already has users was set up before the wizard existed: it is complete.
INSERT INTO startup_wizard (id, completed_at)
SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM users) THEN 0 ELSE NULL END;

-- Item ids become keyed with a per-installation secret (server/src/store/ids.rs). On SQLite
-- the rewrite defers its foreign key checks with PRAGMA defer_foreign_keys inside its own
-- transaction, so the schema does not change; this file keeps the two dialects' migration
-- numbers in step.
SELECT 1;

-- Item ids become keyed with a per-installation secret (server/src/store/ids.rs). The first
-- replica to create the key rewrites every stored id in one transaction; a row's id and the
-- references to it change in separate statements, so the foreign keys to items and libraries
-- must be checked at commit, not per statement. DEFERRABLE INITIALLY IMMEDIATE keeps today's
-- behaviour for every other transaction; only one that says SET CONSTRAINTS ALL DEFERRED waits.
DO $$
DECLARE
    fk record;
BEGIN
    FOR fk IN
        SELECT conrelid::regclass AS tbl, conname
        FROM pg_constraint
        WHERE contype = 'f'
          AND confrelid IN ('items'::regclass, 'libraries'::regclass)
    LOOP
        EXECUTE format('ALTER TABLE %s ALTER CONSTRAINT %I DEFERRABLE INITIALLY IMMEDIATE',
                       fk.tbl, fk.conname);
    END LOOP;
END
$$;

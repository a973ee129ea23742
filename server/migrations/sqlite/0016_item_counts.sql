-- Listed items counted per library, kind and level, kept by the database as items are written
-- (issue 10, "reads that scale"): a library page without filters beyond library and kinds
-- sums a few rows of this table instead of counting every match (`Store::count_items`).
-- Counted: what a listing can show (`probe_error IS NULL AND owner_id IS NULL`), keyed by
-- `top_level` (1 when `parent_id IS NULL`). Triggers keep it in the writer's transaction,
-- cascades from a removed library or series included; a row may stay at 0. The PostgreSQL
-- migration of the same number does the same with one trigger function.
CREATE TABLE item_counts (
    library_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    top_level  BIGINT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (library_id, kind, top_level)
);

INSERT INTO item_counts (library_id, kind, top_level, n)
SELECT library_id, kind, parent_id IS NULL, COUNT(*)
FROM items
WHERE probe_error IS NULL AND owner_id IS NULL
GROUP BY library_id, kind, parent_id IS NULL;

CREATE TRIGGER items_counted_on_insert AFTER INSERT ON items
WHEN NEW.probe_error IS NULL AND NEW.owner_id IS NULL
BEGIN
    INSERT INTO item_counts (library_id, kind, top_level, n)
    VALUES (NEW.library_id, NEW.kind, NEW.parent_id IS NULL, 1)
    ON CONFLICT (library_id, kind, top_level) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER items_counted_on_delete AFTER DELETE ON items
WHEN OLD.probe_error IS NULL AND OLD.owner_id IS NULL
BEGIN
    UPDATE item_counts SET n = n - 1
    WHERE library_id = OLD.library_id AND kind = OLD.kind AND top_level = (OLD.parent_id IS NULL);
END;

-- Only when what is counted changes: a rescan's upserts of unchanged rows touch no count.
CREATE TRIGGER items_counted_on_update
AFTER UPDATE OF library_id, kind, parent_id, probe_error, owner_id ON items
WHEN OLD.library_id IS NOT NEW.library_id
  OR OLD.kind IS NOT NEW.kind
  OR (OLD.parent_id IS NULL) <> (NEW.parent_id IS NULL)
  OR (OLD.probe_error IS NULL) <> (NEW.probe_error IS NULL)
  OR (OLD.owner_id IS NULL) <> (NEW.owner_id IS NULL)
BEGIN
    UPDATE item_counts SET n = n - 1
    WHERE OLD.probe_error IS NULL AND OLD.owner_id IS NULL
      AND library_id = OLD.library_id AND kind = OLD.kind
      AND top_level = (OLD.parent_id IS NULL);
    INSERT INTO item_counts (library_id, kind, top_level, n)
    SELECT NEW.library_id, NEW.kind, NEW.parent_id IS NULL, 1
    WHERE NEW.probe_error IS NULL AND NEW.owner_id IS NULL
    ON CONFLICT (library_id, kind, top_level) DO UPDATE SET n = n + 1;
END;

-- Naming as Jellyfin reads it (issue 10): extras, versions and stacked parts stored as items
-- linked to the film or series they belong to, provider ids from id tags in names, the last
-- episode of a multi-episode file, and each library's last scan summary.

-- The film or series an extra belongs to; the primary film of a version or a further part.
-- Items with an owner are never listed (they are reached through their owner).
ALTER TABLE items ADD COLUMN owner_id TEXT;
-- 'extra', 'version' or 'part' when owner_id is set.
ALTER TABLE items ADD COLUMN owner_role TEXT;
-- Jellyfin's ExtraType of an extra ('Trailer', 'Sample', 'Featurette', ...).
ALTER TABLE items ADD COLUMN extra_type TEXT;
-- The label of a film's version ('1080p', 'Director''s Cut'), shown as its media source name.
ALTER TABLE items ADD COLUMN version_name TEXT;
-- The number of a further part of a stacked film (2, 3, ...).
ALTER TABLE items ADD COLUMN part_number BIGINT;
-- The last episode of a multi-episode file (S01E01-E03 -> 3).
ALTER TABLE items ADD COLUMN index_number_end BIGINT;
-- Provider ids as a JSON object ({"Imdb": "tt0133093", "Tvdb": "81189"}).
ALTER TABLE items ADD COLUMN provider_ids TEXT;
-- The file's own duration; run_time_ticks of a stacked film is the sum over its parts.
ALTER TABLE items ADD COLUMN file_run_time_ticks BIGINT;
-- What the naming rules made of the file at the last scan; a rescan re-places an unchanged
-- file only when this changes (a new version beside it, new rules).
ALTER TABLE items ADD COLUMN placement TEXT;
CREATE INDEX items_by_owner ON items (owner_id);

CREATE TABLE scan_summaries (
    library_id  TEXT PRIMARY KEY NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    finished_at BIGINT NOT NULL,
    -- JSON: counts by role and examples of files that could not be placed
    summary     TEXT NOT NULL
);

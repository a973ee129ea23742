-- The segment grid's facts about each media file (issue 8): frame rate, start, duration and
-- every video keyframe, computed once per file by whichever replica first streams it, so every
-- replica writes the same HLS playlist. `data` is JSON; the file's size and mtime say whether
-- it still describes the file on disk.
CREATE TABLE media_index (
    item_id TEXT PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
    file_size BIGINT NOT NULL,
    file_mtime BIGINT NOT NULL,
    data TEXT NOT NULL,
    computed_at_ms BIGINT NOT NULL
);

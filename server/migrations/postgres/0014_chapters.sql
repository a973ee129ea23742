-- Chapters of a video file (ffprobe's `chapters`), served as `Chapters` on item DTOs. The
-- scanner replaces an item's chapters whenever it probes the file again.
CREATE TABLE chapters (
    item_id        TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE
                   DEFERRABLE INITIALLY IMMEDIATE,
    chapter_index  BIGINT NOT NULL,
    start_ticks    BIGINT NOT NULL,
    name           TEXT,
    PRIMARY KEY (item_id, chapter_index)
);

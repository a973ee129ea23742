-- Local metadata read from .nfo files (issue 10): one row per item that has an .nfo, with the
-- file's size and mtime so a rescan re-reads it only when it changed. Values here override the
-- ones the naming rules derived from file names when items are read (COALESCE in the store),
-- so a re-probe of the video never loses them. Online providers may later write rows of
-- their own kind beside these (the `source` column).
CREATE TABLE item_metadata (
    item_id          TEXT PRIMARY KEY NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    -- 'nfo' today
    source           TEXT NOT NULL,
    nfo_path         TEXT NOT NULL,
    nfo_size         BIGINT NOT NULL,
    nfo_mtime        BIGINT NOT NULL,
    -- why the file could not be read in full (broken XML, too large); the fields are then empty
    parse_error      TEXT,
    title            TEXT,
    original_title   TEXT,
    -- the sort title, or the title's sort name
    sort_title       TEXT,
    production_year  BIGINT,
    premiere_date    BIGINT,
    overview         TEXT,
    tagline          TEXT,
    official_rating  TEXT,
    community_rating DOUBLE PRECISION,
    run_time_ticks   BIGINT,
    -- JSON object, as items.provider_ids
    provider_ids     TEXT,
    collection       TEXT
);

-- Genres, studios and people of items. Ids are derived from the lower-cased name, so the same
-- genre has the same id in every library and on every replica.
CREATE TABLE item_genres (
    item_id  TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    genre_id TEXT NOT NULL,
    name     TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (item_id, genre_id)
);
CREATE INDEX item_genres_by_genre ON item_genres (genre_id);

CREATE TABLE item_studios (
    item_id   TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    studio_id TEXT NOT NULL,
    name      TEXT NOT NULL,
    position  BIGINT NOT NULL,
    PRIMARY KEY (item_id, studio_id)
);
CREATE INDEX item_studios_by_studio ON item_studios (studio_id);

CREATE TABLE item_people (
    item_id   TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    position  BIGINT NOT NULL,
    person_id TEXT NOT NULL,
    name      TEXT NOT NULL,
    role      TEXT,
    -- 'Actor', 'Director', 'Writer'
    kind      TEXT NOT NULL,
    PRIMARY KEY (item_id, position)
);
CREATE INDEX item_people_by_person ON item_people (person_id);

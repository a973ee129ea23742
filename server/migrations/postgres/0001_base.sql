-- Ephyra's base schema (PostgreSQL). Kept column for column equal to ../sqlite/0001_base.sql,
-- so one query set serves both: ids are 32-hex TEXT, times are BIGINT unix milliseconds,
-- booleans are BIGINT 0/1, fractions are DOUBLE.

-- One row per server-wide value, e.g. the server id that every replica reports.
CREATE TABLE server_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL,
    -- lower-cased name: logins match names without regard to case
    name_key         TEXT NOT NULL UNIQUE,
    -- argon2id PHC string; NULL = no password set
    password_hash    TEXT,
    is_admin         BIGINT NOT NULL DEFAULT 0,
    is_hidden        BIGINT NOT NULL DEFAULT 0,
    is_disabled      BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    last_login_at    BIGINT,
    last_activity_at BIGINT
);

-- A client installation used by a user (Jellyfin keys sessions by Client + DeviceId).
CREATE TABLE devices (
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id        TEXT NOT NULL,
    device_name      TEXT NOT NULL,
    client           TEXT NOT NULL,
    app_version      TEXT NOT NULL,
    -- ClientCapabilities as posted by the client (JSON), or NULL
    capabilities     TEXT,
    last_seen_at     BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

-- Login tokens. Only the SHA-256 of the token is stored; the token itself is shown once.
CREATE TABLE access_tokens (
    id               TEXT PRIMARY KEY NOT NULL,
    token_hash       TEXT NOT NULL UNIQUE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id        TEXT NOT NULL,
    device_name      TEXT NOT NULL,
    client           TEXT NOT NULL,
    app_version      TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_used_at     BIGINT NOT NULL
);
CREATE INDEX access_tokens_by_user_device ON access_tokens (user_id, device_id);

CREATE TABLE libraries (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL UNIQUE,
    -- 'movies' or 'tvshows' (the Jellyfin CollectionType)
    kind             TEXT NOT NULL,
    -- JSON array of the configured folders
    folders          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

-- Films, series, seasons and episodes.
CREATE TABLE items (
    id                  TEXT PRIMARY KEY NOT NULL,
    library_id          TEXT NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
    parent_id           TEXT REFERENCES items(id) ON DELETE CASCADE,
    -- BaseItemKind: 'Movie', 'Series', 'Season', 'Episode'
    kind                TEXT NOT NULL,
    name                TEXT NOT NULL,
    sort_name           TEXT NOT NULL,
    -- the media file (Movie, Episode) or folder (Series, Season); NULL for virtual items
    path                TEXT UNIQUE,
    series_id           TEXT REFERENCES items(id) ON DELETE CASCADE,
    season_id           TEXT REFERENCES items(id) ON DELETE CASCADE,
    index_number        BIGINT,
    parent_index_number BIGINT,
    production_year     BIGINT,
    premiere_date       BIGINT,
    overview            TEXT,
    run_time_ticks      BIGINT,
    container           TEXT,
    size_bytes          BIGINT,
    bitrate             BIGINT,
    -- file modification time (ms) and size seen at the last probe: a scan re-probes on change
    file_mtime          BIGINT,
    -- ffprobe failure, when the file could not be read; the item is then not playable
    probe_error         TEXT,
    date_created        BIGINT NOT NULL,
    date_modified       BIGINT NOT NULL
);
CREATE INDEX items_by_library ON items (library_id, kind);
CREATE INDEX items_by_parent ON items (parent_id);
CREATE INDEX items_by_series ON items (series_id);
CREATE INDEX items_by_season ON items (season_id);
CREATE INDEX items_by_sort_name ON items (sort_name);

CREATE TABLE media_streams (
    item_id             TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    stream_index        BIGINT NOT NULL,
    -- 'Video', 'Audio', 'Subtitle', 'EmbeddedImage', 'Data'
    kind                TEXT NOT NULL,
    codec               TEXT,
    profile             TEXT,
    level               DOUBLE PRECISION,
    language            TEXT,
    title               TEXT,
    width               BIGINT,
    height              BIGINT,
    bit_rate            BIGINT,
    channels            BIGINT,
    channel_layout      TEXT,
    sample_rate         BIGINT,
    average_frame_rate  DOUBLE PRECISION,
    real_frame_rate     DOUBLE PRECISION,
    pixel_format        TEXT,
    bit_depth           BIGINT,
    is_default          BIGINT NOT NULL DEFAULT 0,
    is_forced           BIGINT NOT NULL DEFAULT 0,
    is_interlaced       BIGINT NOT NULL DEFAULT 0,
    is_hearing_impaired BIGINT NOT NULL DEFAULT 0,
    is_external         BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (item_id, stream_index)
);

CREATE TABLE images (
    item_id             TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    -- ImageType: 'Primary', 'Backdrop', 'Thumb', ...
    image_type          TEXT NOT NULL,
    image_index         BIGINT NOT NULL DEFAULT 0,
    -- a file inside a library folder or the data folder, recorded by the scanner
    path                TEXT NOT NULL,
    -- cache tag sent to clients (changes when the file changes)
    tag                 TEXT NOT NULL,
    width               BIGINT,
    height              BIGINT,
    file_mtime          BIGINT,
    PRIMARY KEY (item_id, image_type, image_index)
);

-- Per-user state of an item: resume position, played, favourite.
CREATE TABLE user_item_data (
    user_id                 TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    item_id                 TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    playback_position_ticks BIGINT NOT NULL DEFAULT 0,
    play_count              BIGINT NOT NULL DEFAULT 0,
    is_favorite             BIGINT NOT NULL DEFAULT 0,
    played                  BIGINT NOT NULL DEFAULT 0,
    last_played_at          BIGINT,
    rating                  DOUBLE PRECISION,
    audio_stream_index      BIGINT,
    subtitle_stream_index   BIGINT,
    updated_at              BIGINT NOT NULL,
    PRIMARY KEY (user_id, item_id)
);
CREATE INDEX user_item_data_by_last_played ON user_item_data (user_id, last_played_at);

-- Work that must run once across replicas (scans, image extraction, clean-ups). The queue
-- logic (claiming with FOR UPDATE SKIP LOCKED, heartbeats, retries) comes with replication.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY NOT NULL,
    kind            TEXT NOT NULL,
    -- JSON arguments
    payload         TEXT NOT NULL DEFAULT '{}',
    -- 'queued', 'running', 'done', 'failed'
    state           TEXT NOT NULL DEFAULT 'queued',
    -- at most one queued/running job per key (e.g. 'scan:<library>'); NULL = no de-duplication
    dedupe_key      TEXT UNIQUE,
    run_after       BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    max_attempts    BIGINT NOT NULL DEFAULT 3,
    -- the worker running it, and until when its claim holds without a heartbeat
    locked_by       TEXT,
    locked_until    BIGINT,
    -- leadership epoch of the scheduler that enqueued it (refuses stale leaders)
    fencing_token   BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX jobs_by_state ON jobs (state, run_after);

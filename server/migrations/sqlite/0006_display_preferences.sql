-- Display preferences that clients save per user, per preference set and per client
-- (jellyfin-web's "usersettings" for the home screen, one per library view, ...): the posted
-- DisplayPreferencesDto as JSON, returned as saved.
CREATE TABLE display_preferences (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- the id in the path, lowercased (jellyfin-web uses names such as 'usersettings')
    pref_id     TEXT NOT NULL,
    -- the `client` query parameter ('emby' for jellyfin-web)
    client      TEXT NOT NULL,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, pref_id, client)
);

-- A user's UserConfiguration (audio and subtitle languages, home-screen order, libraries
-- left out of "Latest", ...) as posted to /Users/{id}/Configuration, as JSON.
CREATE TABLE user_configuration (
    user_id     TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    body        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

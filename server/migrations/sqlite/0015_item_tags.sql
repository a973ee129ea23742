-- Tags an item's .nfo gives (`<tag>`), served as `Tags` and filtered by `Tags=`, as Jellyfin
-- reads them. Like genres, a tag is matched by an id derived from its name without regard to
-- case (store::ids::name_id).
CREATE TABLE item_tags (
    item_id  TEXT NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    tag_id   TEXT NOT NULL,
    name     TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (item_id, tag_id)
);
CREATE INDEX item_tags_by_tag ON item_tags (tag_id);

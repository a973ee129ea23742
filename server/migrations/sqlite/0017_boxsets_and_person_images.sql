-- Collections (BoxSets) from the `.nfo` `<set>` of films (issue 10): a set is not a row of its
-- own but every film whose metadata names it, so a film leaving its set or removed leaves it
-- and an empty set is gone, with nothing to keep in step. `collection_id` is the set's keyed
-- id, derived from its name (ignoring case) by the store when the `.nfo` is written, so every
-- replica and every rescan gives a set the same id; rows from before this migration get theirs
-- when the store starts (`Store::fill_collection_ids`).
ALTER TABLE item_metadata ADD COLUMN collection_id TEXT;

CREATE INDEX item_metadata_by_collection ON item_metadata (collection_id)
WHERE collection_id IS NOT NULL;

-- A person's local image, from an actor's `<thumb>` naming a file inside the library (Jellyfin
-- sets it as the person's Primary image): the canonical file and its cache tag, recorded when
-- the `.nfo` is read. A person shows the image of its first credit that has one.
ALTER TABLE item_people ADD COLUMN image_path TEXT;
ALTER TABLE item_people ADD COLUMN image_tag TEXT;

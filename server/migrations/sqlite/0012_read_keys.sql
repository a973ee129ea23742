-- Stored read keys (issue 10, "reads that scale"): what a library page sorts by and what a
-- search matches, kept on the item row so an index can serve them instead of every read
-- computing them from the item and its .nfo row.
--
-- sort_key:    the .nfo sort title, else the sort name (what `SortBy=SortName` orders by).
-- search_name: the display name (the .nfo title, else the name) and the .nfo original title,
--              lower-cased with diacritics removed, one per line (what `SearchTerm` matches).
-- The store writes both whenever it writes an item or its .nfo values; rows written before
-- this migration are filled by the store when it opens (it folds diacritics, which SQL
-- cannot do alike on both databases), so they start NULL here except for the sort key.
ALTER TABLE items ADD COLUMN sort_key TEXT;
ALTER TABLE items ADD COLUMN search_name TEXT;
UPDATE items SET sort_key = COALESCE(
    (SELECT m.sort_title FROM item_metadata m WHERE m.item_id = items.id), sort_name);

-- A library page: one library's listed items of some kinds, in sort-key order, read from the
-- index until the page is full; the count reads the same index only.
CREATE INDEX items_listed_by_sort_key ON items (library_id, kind, sort_key)
    WHERE probe_error IS NULL AND owner_id IS NULL;
-- Recently added per library: newest first within one library, in exactly the order Latest
-- asks (`date_created DESC, sort_name, id`): a scan writes a batch of items with one time, and
-- without the tie-breakers in the index every item of the newest batch would be read and
-- sorted to return the first 128.
CREATE INDEX items_listed_by_date_created ON items (library_id, date_created DESC, sort_name, id)
    WHERE probe_error IS NULL AND owner_id IS NULL;
-- 0010's index by date alone goes: PostgreSQL preferred it for one library's Latest too (it
-- expects the library's items spread evenly through time) and read every newer item of the
-- other libraries first: 28 ms where the index above answers in 0.9 ms at 100,000 items.
-- Latest across all libraries (no parentId) now sorts the films and episodes instead.
DROP INDEX items_by_date_created;

-- Search scans the items' `search_name` (SQLite has no trigram index of this kind; a library
-- of 20,000 items scans in a few milliseconds in process).

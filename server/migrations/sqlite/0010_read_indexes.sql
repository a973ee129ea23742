-- Indexes for the reads a home screen and a library page make (issue 10, "reads that scale").

-- Recently added (`/Items/Latest`): newest first, read from the index until the page is full
-- instead of sorting every film and episode.
CREATE INDEX items_by_date_created ON items (date_created);

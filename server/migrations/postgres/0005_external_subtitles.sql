-- External subtitle files beside a video (issue 8): stored as Subtitle media streams with
-- is_external = 1 and the file's path (never sent to clients), numbered after the file's own
-- streams. The scanner replaces them on every scan, so added or removed files are seen even
-- when the video is unchanged.
ALTER TABLE media_streams ADD COLUMN path TEXT;

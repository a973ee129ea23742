//! What the scanner writes (libraries, items with their streams, images, naming details,
//! scan summaries) and the little it reads back to compare with the disk (known files,
//! placements, a library's images). No API reads here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sqlx::Row;

use super::keys;
use super::model::{ItemImage, ItemKind, ItemNaming, KnownFile, Library, NewItem};
use super::query::Sql;
use crate::jf::JfId;
use crate::store::streams::StreamInfo;
use crate::store::{Store, StoreError, StoreResult, flag, get_id, get_opt_id};

/// The columns of an item the scan's passes over a library read ([`Store::scan_items_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanItem {
    /// Stable id.
    pub id: JfId,
    /// What it is.
    pub kind: ItemKind,
    /// The file (films, episodes) or folder (series, seasons).
    pub path: Option<String>,
    /// Season of an episode, series of a season.
    pub parent_id: Option<JfId>,
    /// Series of a season or episode.
    pub series_id: Option<JfId>,
    /// Season of an episode.
    pub season_id: Option<JfId>,
    /// Episode number, or season number for a season.
    pub index_number: Option<i64>,
    /// Season number of an episode.
    pub parent_index_number: Option<i64>,
    /// File size in bytes.
    pub size_bytes: Option<i64>,
    /// File modification time at the last probe (unix ms).
    pub file_mtime: Option<i64>,
}

/// Keyset paging over [`Store::scan_items_page`] (see [`Store::scan_item_pages`]).
#[derive(Debug)]
pub struct ScanItemPages<'a> {
    store: &'a Store,
    library_id: JfId,
    kinds: &'a [ItemKind],
    page_size: i64,
    after: Option<JfId>,
    done: bool,
}

impl ScanItemPages<'_> {
    /// The next page, or `None` after the last (a page shorter than the page size is the
    /// last one).
    pub async fn next(&mut self) -> StoreResult<Option<Vec<ScanItem>>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .scan_items_page(self.library_id, self.kinds, self.after, self.page_size)
            .await?;
        self.after = page.last().map(|i| i.id);
        self.done = page.len() < usize::try_from(self.page_size).unwrap_or(usize::MAX);
        Ok((!page.is_empty()).then_some(page))
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn provider_ids_json(ids: &BTreeMap<String, String>) -> Option<String> {
    (!ids.is_empty()).then(|| serde_json::to_string(ids).unwrap_or_default())
}

impl Store {
    /// Makes the stored libraries exactly `libraries`: upserts each (keeping its creation time)
    /// and deletes any other, with all its items.
    pub async fn sync_libraries(&self, libraries: &[Library]) -> StoreResult<()> {
        let now = Store::now();
        let mut tx = self.begin_write().await?;
        for library in libraries {
            let folders = serde_json::to_string(&library.folders)
                .map_err(|_| StoreError::Corrupt("library folders".to_owned()))?;
            sqlx::query(
                "INSERT INTO libraries (id, name, kind, folders, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind, \
                 folders = excluded.folders, updated_at = excluded.updated_at",
            )
            .bind(library.id.to_n())
            .bind(&library.name)
            .bind(library.kind.as_str())
            .bind(folders)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let mut delete = Sql::new("DELETE FROM libraries");
        if !libraries.is_empty() {
            delete
                .push(" WHERE id NOT IN (")
                .texts(libraries.iter().map(|l| l.id.to_n()))
                .push(")");
        }
        delete.query().execute(&mut *tx).await?;
        tx.commit().await?;
        self.note_library_ids(libraries.iter().map(|l| l.id));
        Ok(())
    }

    /// A page of the files under library folder `folder` that the store knows (films and
    /// episodes, readable or not, with their placement), in the byte order of their paths,
    /// after `after`: a scan reads them beside its walk of the folder, one top-level folder at
    /// a time, instead of the library's at once.
    pub async fn known_files_page(
        &self,
        library_id: JfId,
        folder: &Path,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<(String, KnownFile)>> {
        let collate = self.byte_order();
        let folder = path_text(folder);
        let mut sql = Sql::new(
            "SELECT id, path, size_bytes, file_mtime, placement FROM items WHERE library_id = ",
        );
        sql.text(library_id.to_n())
            .push(" AND kind NOT IN ('Series', 'Season') AND path IS NOT NULL AND ");
        push_path_under(&mut sql, collate, &folder);
        push_path_page(&mut sql, collate, after, limit);
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("path")?,
                    KnownFile {
                        id: get_id(row, "id")?,
                        size_bytes: row.try_get::<Option<i64>, _>("size_bytes")?.unwrap_or(-1),
                        file_mtime: row.try_get::<Option<i64>, _>("file_mtime")?.unwrap_or(-1),
                        placement: row
                            .try_get::<Option<String>, _>("placement")?
                            .unwrap_or_default(),
                    },
                ))
            })
            .collect()
    }

    /// Up to `limit` paths of files of a library the store knows that lie under none of
    /// `folders` (a folder since taken out of the library's configuration), in byte order
    /// after `after`.
    pub async fn known_files_outside(
        &self,
        library_id: JfId,
        folders: &[PathBuf],
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<String>> {
        let collate = self.byte_order();
        let mut sql = Sql::new("SELECT path FROM items WHERE library_id = ");
        sql.text(library_id.to_n())
            .push(" AND kind NOT IN ('Series', 'Season') AND path IS NOT NULL");
        for folder in folders {
            let folder = path_text(folder);
            sql.push(" AND NOT (");
            push_path_under(&mut sql, collate, &folder);
            sql.push(")");
        }
        push_path_page(&mut sql, collate, after, limit);
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter().map(|row| Ok(row.try_get("path")?)).collect()
    }

    /// The collation that compares text byte by byte (as the scan compares paths): SQLite's
    /// default; PostgreSQL's is the database's locale unless told.
    fn byte_order(&self) -> &'static str {
        match self.dialect() {
            crate::store::Dialect::Postgres => " COLLATE \"C\"",
            crate::store::Dialect::Sqlite => "",
        }
    }

    /// Writes items in one transaction (a series, its season and an episode go in together),
    /// keeping each one's creation date. Where `streams` is given for an item, its media
    /// streams are replaced by them.
    pub async fn upsert_items(
        &self,
        items: &[(NewItem, Option<Vec<StreamInfo>>)],
    ) -> StoreResult<()> {
        let now = Store::now();
        let mut tx = self.begin_write().await?;
        for (item, streams) in items {
            sqlx::query(
                "INSERT INTO items (id, library_id, parent_id, kind, name, sort_name, path, \
                 series_id, season_id, index_number, parent_index_number, production_year, \
                 run_time_ticks, container, size_bytes, bitrate, file_mtime, probe_error, \
                 date_created, date_modified, sort_key, search_name) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $19, $6, $20) \
                 ON CONFLICT (id) DO UPDATE SET library_id = excluded.library_id, \
                 parent_id = excluded.parent_id, kind = excluded.kind, name = excluded.name, \
                 sort_name = excluded.sort_name, path = excluded.path, \
                 series_id = excluded.series_id, season_id = excluded.season_id, \
                 index_number = excluded.index_number, \
                 parent_index_number = excluded.parent_index_number, \
                 production_year = excluded.production_year, \
                 run_time_ticks = excluded.run_time_ticks, container = excluded.container, \
                 size_bytes = excluded.size_bytes, bitrate = excluded.bitrate, \
                 file_mtime = excluded.file_mtime, probe_error = excluded.probe_error, \
                 date_modified = excluded.date_modified, sort_key = excluded.sort_key, \
                 search_name = excluded.search_name",
            )
            .bind(item.id.to_n())
            .bind(item.library_id.to_n())
            .bind(item.parent_id.map(|i| i.to_n()))
            .bind(item.kind.as_str())
            .bind(&item.name)
            .bind(&item.sort_name)
            .bind(item.path.as_deref().map(path_text))
            .bind(item.series_id.map(|i| i.to_n()))
            .bind(item.season_id.map(|i| i.to_n()))
            .bind(item.index_number)
            .bind(item.parent_index_number)
            .bind(item.production_year)
            .bind(item.run_time_ticks)
            .bind(item.container.clone())
            .bind(item.size_bytes)
            .bind(item.bitrate)
            .bind(item.file_mtime)
            .bind(item.probe_error.clone())
            .bind(now)
            // The keys without an `.nfo`; `keys::refresh` below applies one where it exists.
            .bind(keys::fold(&item.name))
            .execute(&mut *tx)
            .await?;
            if let Some(streams) = streams {
                sqlx::query("DELETE FROM media_streams WHERE item_id = $1")
                    .bind(item.id.to_n())
                    .execute(&mut *tx)
                    .await?;
                for s in streams {
                    sqlx::query(
                        "INSERT INTO media_streams (item_id, stream_index, kind, codec, profile, \
                         level, language, title, width, height, bit_rate, channels, \
                         channel_layout, sample_rate, average_frame_rate, pixel_format, \
                         is_default, is_forced, is_interlaced, is_hearing_impaired, \
                         is_external, path) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                         $15, $16, $17, $18, $19, $20, $21, $22)",
                    )
                    .bind(item.id.to_n())
                    .bind(s.index)
                    .bind(s.kind.as_str())
                    .bind(s.codec.clone())
                    .bind(s.profile.clone())
                    .bind(s.level.map(|l| l as f64))
                    .bind(s.language.clone())
                    .bind(s.title.clone())
                    .bind(s.width)
                    .bind(s.height)
                    .bind(s.bit_rate)
                    .bind(s.channels)
                    .bind(s.channel_layout.clone())
                    .bind(s.sample_rate)
                    .bind(s.frame_rate)
                    .bind(s.pixel_format.clone())
                    .bind(flag(s.is_default))
                    .bind(flag(s.is_forced))
                    .bind(flag(s.is_interlaced))
                    .bind(flag(s.is_hearing_impaired))
                    .bind(flag(s.is_external))
                    .bind(s.path.clone())
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        let ids: Vec<String> = items.iter().map(|(item, _)| item.id.to_n()).collect();
        keys::refresh(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces an item's external subtitle streams (files beside the video) with `streams`,
    /// leaving the streams of the file itself alone.
    pub async fn replace_external_subtitles(
        &self,
        item_id: JfId,
        streams: &[StreamInfo],
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM media_streams WHERE item_id = $1 AND is_external = 1")
            .bind(item_id.to_n())
            .execute(&mut *tx)
            .await?;
        for s in streams {
            sqlx::query(
                "INSERT INTO media_streams (item_id, stream_index, kind, codec, language, title, \
                 is_default, is_forced, is_hearing_impaired, is_external, path) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10)",
            )
            .bind(item_id.to_n())
            .bind(s.index)
            .bind(s.kind.as_str())
            .bind(s.codec.clone())
            .bind(s.language.clone())
            .bind(s.title.clone())
            .bind(flag(s.is_default))
            .bind(flag(s.is_forced))
            .bind(flag(s.is_hearing_impaired))
            .bind(s.path.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes the items of files that are gone (their user data, streams and images go with
    /// them), then seasons and series left without episodes. Returns how many files' items
    /// were removed.
    pub async fn remove_files(&self, library_id: JfId, paths: &[PathBuf]) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        for path in paths {
            removed += sqlx::query("DELETE FROM items WHERE library_id = $1 AND path = $2")
                .bind(library_id.to_n())
                .bind(path_text(path))
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        self.remove_empty_folders(library_id).await?;
        Ok(removed)
    }

    /// Deletes seasons without episodes, then series without seasons.
    pub async fn remove_empty_folders(&self, library_id: JfId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM items WHERE library_id = $1 AND kind = 'Season' AND NOT EXISTS \
             (SELECT 1 FROM items e WHERE e.season_id = items.id)",
        )
        .bind(library_id.to_n())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM items WHERE library_id = $1 AND kind = 'Series' AND NOT EXISTS \
             (SELECT 1 FROM items c WHERE c.series_id = items.id)",
        )
        .bind(library_id.to_n())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an item's image (replacing one of the same type and index).
    pub async fn set_image(&self, image: &ItemImage) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO images (item_id, image_type, image_index, path, tag, file_mtime) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (item_id, image_type, image_index) DO UPDATE SET path = excluded.path, \
             tag = excluded.tag, file_mtime = excluded.file_mtime",
        )
        .bind(image.item_id.to_n())
        .bind(&image.image_type)
        .bind(image.image_index)
        .bind(path_text(&image.path))
        .bind(&image.tag)
        .bind(image.file_mtime)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Forgets an item's image of a type and index.
    pub async fn remove_image(
        &self,
        item_id: JfId,
        image_type: &str,
        index: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM images WHERE item_id = $1 AND image_type = $2 AND image_index = $3",
        )
        .bind(item_id.to_n())
        .bind(image_type)
        .bind(index)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The items a scan's passes look at ([`Store::scan_items_page`]), `page_size` at a time:
    /// call [`ScanItemPages::next`] until it answers `None`.
    pub fn scan_item_pages<'a>(
        &'a self,
        library_id: JfId,
        kinds: &'a [ItemKind],
        page_size: i64,
    ) -> ScanItemPages<'a> {
        ScanItemPages {
            store: self,
            library_id,
            kinds,
            page_size: page_size.max(1),
            after: None,
            done: false,
        }
    }

    /// One page of the items a scan's passes look at: a library's readable films, series,
    /// seasons and episodes (of `kinds`, or all), not its extras, versions and parts, in id
    /// order after `after`. Only the columns the passes read, and no joins: what a client's
    /// listing costs (names, user data, counts) is not paid 40 times per rescan.
    pub async fn scan_items_page(
        &self,
        library_id: JfId,
        kinds: &[ItemKind],
        after: Option<JfId>,
        limit: i64,
    ) -> StoreResult<Vec<ScanItem>> {
        let mut sql = Sql::new(
            "SELECT id, kind, path, parent_id, series_id, season_id, index_number, \
             parent_index_number, size_bytes, file_mtime FROM items WHERE library_id = ",
        );
        sql.text(library_id.to_n())
            .push(" AND probe_error IS NULL AND owner_id IS NULL");
        if !kinds.is_empty() {
            sql.push(" AND kind IN (")
                .texts(kinds.iter().map(|k| k.as_str().to_owned()))
                .push(")");
        }
        if let Some(after) = after {
            sql.push(" AND id > ").text(after.to_n());
        }
        sql.push(" ORDER BY id LIMIT ").int(limit);
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok(ScanItem {
                    id: get_id(row, "id")?,
                    kind: super::read::kind_from_row(row)?,
                    path: row.try_get("path")?,
                    parent_id: get_opt_id(row, "parent_id")?,
                    series_id: get_opt_id(row, "series_id")?,
                    season_id: get_opt_id(row, "season_id")?,
                    index_number: row.try_get("index_number")?,
                    parent_index_number: row.try_get("parent_index_number")?,
                    size_bytes: row.try_get("size_bytes")?,
                    file_mtime: row.try_get("file_mtime")?,
                })
            })
            .collect()
    }

    /// One page of a library's Primary images (item id, stored path), in the order of their
    /// paths then item ids, after `after` (the last row of the previous page; `None` for the
    /// first): the frame job reads a library's images this way, so that items sharing one
    /// frame (an episode, its season and series) come one after the other and its memory does
    /// not grow with the library.
    pub async fn primary_images_page(
        &self,
        library_id: JfId,
        after: Option<(&Path, JfId)>,
        limit: i64,
    ) -> StoreResult<Vec<(JfId, PathBuf)>> {
        let (after_path, after_id) = after.map_or((None, String::new()), |(path, id)| {
            (Some(path_text(path)), id.to_n())
        });
        let rows = sqlx::query(
            "SELECT m.item_id, m.path FROM images m JOIN items i ON i.id = m.item_id \
             WHERE i.library_id = $1 AND m.image_type = 'Primary' AND m.image_index = 0 \
             AND ($2 IS NULL OR m.path > $2 OR (m.path = $2 AND m.item_id > $3)) \
             ORDER BY m.path, m.item_id LIMIT $4",
        )
        .bind(library_id.to_n())
        .bind(after_path)
        .bind(after_id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let path: String = row.try_get("path")?;
                Ok((get_id(row, "item_id")?, PathBuf::from(path)))
            })
            .collect()
    }

    /// Writes items with their naming details.
    pub async fn upsert_named_items(
        &self,
        items: &[(NewItem, Option<Vec<StreamInfo>>, ItemNaming)],
    ) -> StoreResult<()> {
        let plain: Vec<(NewItem, Option<Vec<StreamInfo>>)> = items
            .iter()
            .map(|(item, streams, _)| (item.clone(), streams.clone()))
            .collect();
        // Two transactions: a file found for the first time as a version or extra can be
        // listed for the instant between them; a rescan never shows it (the owner is kept).
        self.upsert_items(&plain).await?;
        self.set_naming(
            &items
                .iter()
                .map(|(item, _, naming)| (item.id, naming.clone(), item.run_time_ticks))
                .collect::<Vec<_>>(),
        )
        .await
    }

    /// Re-places items whose files did not change: names, parents, numbers and naming
    /// columns; the media columns (duration, streams) are left as probed.
    pub async fn relink_items(&self, items: &[(NewItem, ItemNaming)]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for (item, _) in items {
            sqlx::query(
                "UPDATE items SET kind = $2, name = $3, sort_name = $4, parent_id = $5, \
                 series_id = $6, season_id = $7, index_number = $8, parent_index_number = $9, \
                 production_year = $10 WHERE id = $1",
            )
            .bind(item.id.to_n())
            .bind(item.kind.as_str())
            .bind(&item.name)
            .bind(&item.sort_name)
            .bind(item.parent_id.map(|i| i.to_n()))
            .bind(item.series_id.map(|i| i.to_n()))
            .bind(item.season_id.map(|i| i.to_n()))
            .bind(item.index_number)
            .bind(item.parent_index_number)
            .bind(item.production_year)
            .execute(&mut *tx)
            .await?;
        }
        let ids: Vec<String> = items.iter().map(|(item, _)| item.id.to_n()).collect();
        keys::refresh(&mut tx, &ids).await?;
        tx.commit().await?;
        self.set_naming(
            &items
                .iter()
                .map(|(item, naming)| (item.id, naming.clone(), None))
                .collect::<Vec<_>>(),
        )
        .await
    }

    /// Writes the naming columns; `file_runtime`, when given, is the file's own duration.
    async fn set_naming(&self, rows: &[(JfId, ItemNaming, Option<i64>)]) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for (id, naming, file_runtime) in rows {
            sqlx::query(
                "UPDATE items SET owner_id = $2, owner_role = $3, extra_type = $4, \
                 version_name = $5, part_number = $6, index_number_end = $7, \
                 provider_ids = $8, premiere_date = COALESCE($9, premiere_date), \
                 placement = $10, \
                 file_run_time_ticks = COALESCE($11, file_run_time_ticks) WHERE id = $1",
            )
            .bind(id.to_n())
            .bind(naming.owner.map(|(o, _)| o.to_n()))
            .bind(naming.owner.map(|(_, r)| r.as_str()))
            .bind(naming.extra_type.clone())
            .bind(naming.version_name.clone())
            .bind(naming.part_number)
            .bind(naming.index_number_end)
            .bind(provider_ids_json(&naming.provider_ids))
            .bind(naming.premiere_date)
            .bind(&naming.placement)
            .bind(*file_runtime)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sets series and films' provider ids (and a series' year) without touching the rest.
    pub async fn set_provider_ids(
        &self,
        id: JfId,
        ids: &BTreeMap<String, String>,
        year: Option<i64>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE items SET provider_ids = $2, \
             production_year = COALESCE($3, production_year) WHERE id = $1",
        )
        .bind(id.to_n())
        .bind(provider_ids_json(ids))
        .bind(year)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Makes a stacked film's duration the sum of its parts' (each file's own duration).
    pub async fn sum_stacked_runtimes(&self, library_id: JfId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE items SET run_time_ticks = COALESCE(file_run_time_ticks, 0) + \
             (SELECT COALESCE(SUM(COALESCE(p.file_run_time_ticks, p.run_time_ticks, 0)), 0) \
              FROM items p WHERE p.owner_id = items.id AND p.owner_role = 'part') \
             WHERE library_id = $1 AND file_run_time_ticks IS NOT NULL AND EXISTS \
             (SELECT 1 FROM items p WHERE p.owner_id = items.id AND p.owner_role = 'part')",
        )
        .bind(library_id.to_n())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a library's scan summary (replacing the previous one).
    pub async fn set_scan_summary(
        &self,
        library_id: JfId,
        summary: &serde_json::Value,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO scan_summaries (library_id, finished_at, summary) VALUES ($1, $2, $3) \
             ON CONFLICT (library_id) DO UPDATE SET finished_at = excluded.finished_at, \
             summary = excluded.summary",
        )
        .bind(library_id.to_n())
        .bind(Store::now())
        .bind(summary.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

/// `path` lies under `folder` (a path text without its trailing `/`), compared in byte order:
/// every path under the folder is at least `<folder>/` and, since '0' follows '/', below
/// `<folder>0`.
fn push_path_under(sql: &mut Sql, collate: &'static str, folder: &str) {
    sql.push("path")
        .push(collate)
        .push(" >= ")
        .text(format!("{folder}/"))
        .push(" AND path")
        .push(collate)
        .push(" < ")
        .text(format!("{folder}0"));
}

/// A page of rows in the byte order of their paths: those after `after`, at most `limit`.
fn push_path_page(sql: &mut Sql, collate: &'static str, after: Option<&str>, limit: i64) {
    if let Some(after) = after {
        sql.push(" AND path").push(collate).push(" > ").text(after);
    }
    sql.push(" ORDER BY path")
        .push(collate)
        .push(" LIMIT ")
        .int(limit.max(1));
}

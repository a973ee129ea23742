//! What the API reads: libraries, items with the asking user's data, listings, next up,
//! media streams, images, folder counts, naming details and extras. Reads only.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use ephyra_config::LibraryKind;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::model::{
    FolderCounts, Item, ItemImage, ItemKey, ItemKind, ItemPage, Library, Linked, LocalInfo,
    NamingRead, OwnerRole, ScanSummaryRow, UserData,
};
use super::query::{
    ItemQuery, Sql, push_filter_joins, push_filters, push_item_from, push_item_joins,
    push_item_select, push_order, user_key,
};
use crate::jf::JfId;
use crate::store::metadata::PersonRead;
use crate::store::streams::{StreamInfo, StreamKind};
use crate::store::{Store, StoreError, StoreResult, get_bool, get_id, get_opt_id};

/// Ids per statement when items are read by id (well under SQLite's limit on bound values).
const ID_CHUNK: usize = 500;

/// The row's `kind` column; a kind this version does not know is a corrupt row.
pub(super) fn kind_from_row(row: &AnyRow) -> StoreResult<ItemKind> {
    let kind: String = row.try_get("kind")?;
    ItemKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("unknown item kind `{kind}`")))
}

fn item_from_row(row: &AnyRow) -> StoreResult<Item> {
    let kind = kind_from_row(row)?;
    let opt_flag = |column: &str| -> StoreResult<bool> {
        let v: Option<i64> = row.try_get(column)?;
        Ok(v.unwrap_or(0) != 0)
    };
    Ok(Item {
        id: get_id(row, "id")?,
        library_id: get_id(row, "library_id")?,
        parent_id: get_opt_id(row, "parent_id")?,
        kind,
        name: row.try_get("name")?,
        sort_name: row.try_get("sort_name")?,
        path: row.try_get("path")?,
        series_id: get_opt_id(row, "series_id")?,
        season_id: get_opt_id(row, "season_id")?,
        index_number: row.try_get("index_number")?,
        parent_index_number: row.try_get("parent_index_number")?,
        production_year: row.try_get("production_year")?,
        premiere_date: row.try_get("premiere_date")?,
        overview: row.try_get("overview")?,
        run_time_ticks: row.try_get("run_time_ticks")?,
        container: row.try_get("container")?,
        size_bytes: row.try_get("size_bytes")?,
        bitrate: row.try_get("bitrate")?,
        file_mtime: row.try_get("file_mtime")?,
        date_created: row.try_get("date_created")?,
        date_modified: row.try_get("date_modified")?,
        series_name: row.try_get("series_name")?,
        season_name: row.try_get("season_name")?,
        user_data: UserData {
            playback_position_ticks: row
                .try_get::<Option<i64>, _>("playback_position_ticks")?
                .unwrap_or(0),
            play_count: row.try_get::<Option<i64>, _>("play_count")?.unwrap_or(0),
            is_favorite: opt_flag("is_favorite")?,
            played: opt_flag("played")?,
            last_played_at: row.try_get("last_played_at")?,
        },
        naming: NamingRead {
            extra_type: row.try_get("extra_type")?,
            version_name: row.try_get("version_name")?,
            index_number_end: row.try_get("index_number_end")?,
            provider_ids: provider_ids_from(row.try_get("provider_ids")?),
        },
        local: LocalInfo {
            original_title: row.try_get("original_title")?,
            tagline: row.try_get("tagline")?,
            official_rating: row.try_get("official_rating")?,
            community_rating: row.try_get("community_rating")?,
            provider_ids: provider_ids_from(row.try_get("md_provider_ids")?),
            collection: row.try_get("collection")?,
        },
        linked_sources: row.try_get::<Option<i64>, _>("linked_count")?.unwrap_or(0),
        counts: match kind {
            ItemKind::Series | ItemKind::Season => {
                let count = |column: &str| -> StoreResult<i64> {
                    Ok(row.try_get::<Option<i64>, _>(column)?.unwrap_or(0))
                };
                let episodes = count("episode_count")?;
                Some(FolderCounts {
                    children: if kind == ItemKind::Series {
                        count("season_count")?
                    } else {
                        episodes
                    },
                    episodes,
                    played_episodes: count("played_count")?,
                })
            }
            _ => None,
        },
    })
}

fn library_from_row(row: &AnyRow) -> StoreResult<Library> {
    let kind: String = row.try_get("kind")?;
    let kind = match kind.as_str() {
        "movies" => LibraryKind::Movies,
        "tvshows" => LibraryKind::Tvshows,
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown library kind `{other}`"
            )));
        }
    };
    let folders: String = row.try_get("folders")?;
    let folders: Vec<PathBuf> = serde_json::from_str(&folders)
        .map_err(|_| StoreError::Corrupt("library folders are not a JSON list".to_owned()))?;
    Ok(Library {
        id: get_id(row, "id")?,
        name: row.try_get("name")?,
        kind,
        folders,
        created_at: row.try_get("created_at")?,
    })
}

fn image_from_row(row: &AnyRow) -> StoreResult<ItemImage> {
    let path: String = row.try_get("path")?;
    Ok(ItemImage {
        item_id: get_id(row, "item_id")?,
        image_type: row.try_get("image_type")?,
        image_index: row.try_get("image_index")?,
        path: PathBuf::from(path),
        tag: row.try_get("tag")?,
        file_mtime: row.try_get("file_mtime")?,
    })
}

pub(super) fn group_images(rows: &[AnyRow]) -> StoreResult<HashMap<JfId, Vec<ItemImage>>> {
    let mut out: HashMap<JfId, Vec<ItemImage>> = HashMap::new();
    for row in rows {
        let image = image_from_row(row)?;
        out.entry(image.item_id).or_default().push(image);
    }
    Ok(out)
}

fn provider_ids_from(text: Option<String>) -> BTreeMap<String, String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The genres, studios and people of one item, in the `.nfo`'s order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemNames {
    /// Genres (id, name).
    pub genres: Vec<(JfId, String)>,
    /// Studios (id, name).
    pub studios: Vec<(JfId, String)>,
    /// People in credit order.
    pub people: Vec<PersonRead>,
    /// Tags, in the `.nfo`'s order.
    pub tags: Vec<String>,
}

/// What a page of DTOs needs beyond the items' own rows, read in one statement.
#[derive(Debug, Clone, Default)]
pub struct PageRelated {
    /// Images, by item, by type then index.
    pub images: HashMap<JfId, Vec<ItemImage>>,
    /// Genres, studios and people, by item.
    pub names: HashMap<JfId, ItemNames>,
}

impl Store {
    /// The images of `image_ids` and the genres, studios, people and tags of `name_ids`, in
    /// one statement: five kinds of rows in one shape (`src` tells them apart, `a`..`d` and `n`
    /// hold their values), sorted here rather than by the database.
    pub async fn images_and_names(
        &self,
        image_ids: &[JfId],
        name_ids: &[JfId],
    ) -> StoreResult<PageRelated> {
        let mut out = PageRelated::default();
        if image_ids.is_empty() && name_ids.is_empty() {
            return Ok(out);
        }
        let images = || image_ids.iter().map(|i| i.to_n());
        let names = || name_ids.iter().map(|i| i.to_n());
        let mut sql = Sql::new("");
        let union = |sql: &mut Sql, fragment: &'static str| {
            if !sql.is_empty() {
                sql.push(" UNION ALL ");
            }
            sql.push(fragment);
        };
        if !image_ids.is_empty() {
            union(
                &mut sql,
                "SELECT 'image' AS src, item_id, image_type AS a, path AS b, tag AS c, \
                 CAST(NULL AS TEXT) AS d, image_index AS n, file_mtime AS m \
                 FROM images WHERE item_id IN (",
            );
            sql.texts(images()).push(")");
        }
        if !name_ids.is_empty() {
            for fragment in [
                "SELECT 'genre', item_id, genre_id, name, CAST(NULL AS TEXT), \
                 CAST(NULL AS TEXT), position, CAST(NULL AS BIGINT) \
                 FROM item_genres WHERE item_id IN (",
                "SELECT 'studio', item_id, studio_id, name, CAST(NULL AS TEXT), \
                 CAST(NULL AS TEXT), position, CAST(NULL AS BIGINT) \
                 FROM item_studios WHERE item_id IN (",
                "SELECT 'person', item_id, person_id, name, role, kind, position, \
                 CAST(NULL AS BIGINT) FROM item_people WHERE item_id IN (",
                "SELECT 'tag', item_id, tag_id, name, CAST(NULL AS TEXT), \
                 CAST(NULL AS TEXT), position, CAST(NULL AS BIGINT) \
                 FROM item_tags WHERE item_id IN (",
            ] {
                union(&mut sql, fragment);
                sql.texts(names()).push(")");
            }
        }
        // (position, value) pairs, put in order once every row is read.
        #[derive(Default)]
        struct Positioned {
            genres: Vec<(i64, JfId, String)>,
            studios: Vec<(i64, JfId, String)>,
            people: Vec<(i64, PersonRead)>,
            tags: Vec<(i64, String)>,
        }
        let mut positioned: HashMap<JfId, Positioned> = HashMap::new();
        for row in sql.query().fetch_all(self.pool()).await? {
            let src: String = row.try_get("src")?;
            let item_id = get_id(&row, "item_id")?;
            let n: i64 = row.try_get("n")?;
            if src == "image" {
                let path: String = row.try_get("b")?;
                out.images.entry(item_id).or_default().push(ItemImage {
                    item_id,
                    image_type: row.try_get("a")?,
                    image_index: n,
                    path: PathBuf::from(path),
                    tag: row.try_get("c")?,
                    file_mtime: row.try_get("m")?,
                });
                continue;
            }
            let entry = positioned.entry(item_id).or_default();
            let id = get_id(&row, "a")?;
            let name: String = row.try_get("b")?;
            match src.as_str() {
                "genre" => entry.genres.push((n, id, name)),
                "studio" => entry.studios.push((n, id, name)),
                "tag" => entry.tags.push((n, name)),
                _ => entry.people.push((
                    n,
                    PersonRead {
                        id,
                        name,
                        role: row.try_get("c")?,
                        kind: row.try_get::<Option<String>, _>("d")?.unwrap_or_default(),
                    },
                )),
            }
        }
        for images in out.images.values_mut() {
            images.sort_by(|x, y| {
                (&x.image_type, x.image_index).cmp(&(&y.image_type, y.image_index))
            });
        }
        for (item_id, mut p) in positioned {
            p.genres.sort_by_key(|g| g.0);
            p.studios.sort_by_key(|g| g.0);
            p.people.sort_by_key(|p| p.0);
            p.tags.sort_by_key(|t| t.0);
            let (genres, studios, people) = (p.genres, p.studios, p.people);
            out.names.insert(
                item_id,
                ItemNames {
                    genres: genres.into_iter().map(|(_, id, name)| (id, name)).collect(),
                    studios: studios
                        .into_iter()
                        .map(|(_, id, name)| (id, name))
                        .collect(),
                    people: people.into_iter().map(|(_, p)| p).collect(),
                    tags: p.tags.into_iter().map(|(_, tag)| tag).collect(),
                },
            );
        }
        Ok(out)
    }

    /// Every library, by name.
    pub async fn libraries(&self) -> StoreResult<Vec<Library>> {
        let rows = sqlx::query(
            "SELECT id, name, kind, folders, created_at FROM libraries ORDER BY name, id",
        )
        .fetch_all(self.pool())
        .await?;
        let libraries: Vec<Library> = rows
            .iter()
            .map(library_from_row)
            .collect::<StoreResult<_>>()?;
        self.note_library_ids(libraries.iter().map(|l| l.id));
        Ok(libraries)
    }

    /// One library.
    pub async fn library(&self, id: JfId) -> StoreResult<Option<Library>> {
        let row =
            sqlx::query("SELECT id, name, kind, folders, created_at FROM libraries WHERE id = $1")
                .bind(id.to_n())
                .fetch_optional(self.pool())
                .await?;
        let library = row.as_ref().map(library_from_row).transpose()?;
        self.note_library_ids(library.iter().map(|l| l.id));
        Ok(library)
    }

    /// How many readable top-level items each library holds (a view's `ChildCount`): one
    /// query for every library.
    pub async fn library_child_counts(&self) -> StoreResult<HashMap<JfId, i64>> {
        let rows = sqlx::query(
            "SELECT library_id, CAST(SUM(n) AS BIGINT) AS n FROM item_counts \
             WHERE top_level = 1 GROUP BY library_id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((get_id(row, "library_id")?, row.try_get("n")?)))
            .collect()
    }

    /// One readable item, with `user`'s data.
    pub async fn item(&self, id: JfId, user: Option<JfId>) -> StoreResult<Option<Item>> {
        let mut sql = Sql::new("");
        push_item_select(&mut sql, user);
        push_item_from(&mut sql, user);
        sql.push(" WHERE i.probe_error IS NULL AND i.id = ")
            .text(id.to_n());
        let row = sql.query().fetch_optional(self.pool()).await?;
        row.as_ref().map(item_from_row).transpose()
    }

    /// A page of readable items matching `query`, and how many matched in all (unless the
    /// query says it needs no total). The page's ids come first, filtered and sorted with only
    /// the joins the filters and sort keys read (a library sorted by sort name reads them from
    /// an index, page by page), then their rows in full ([`Store::items_in_order`]); the
    /// count runs beside them on another connection.
    pub async fn query_items(&self, query: &ItemQuery) -> StoreResult<ItemPage> {
        let resolved = self.narrowed(query).await?;
        let query = resolved.as_ref().unwrap_or(query);
        if query.limit == Some(0) {
            let total = if query.without_total {
                0
            } else {
                self.count_items(query).await?
            };
            return Ok(ItemPage {
                items: Vec::new(),
                total,
            });
        }
        // The page and its total are read at once, on two connections: the count reads
        // every match (from an index where one serves the filters), the page only its rows,
        // and neither waits for the other.
        // A page without a limit is every match: its rows are read in one statement, as
        // finding their ids first would read the same rows twice.
        let unlimited = query.limit.is_none();
        let page = async {
            if unlimited {
                let mut sql = Sql::new("");
                push_item_select(&mut sql, query.user_id);
                push_item_from(&mut sql, query.user_id);
                push_filters(&mut sql, query);
                push_order(&mut sql, &query.sort);
                push_page(&mut sql, query);
                let rows = sql.query().fetch_all(self.pool()).await?;
                return rows
                    .iter()
                    .map(item_from_row)
                    .collect::<StoreResult<Vec<_>>>();
            }
            let mut sql = Sql::new("SELECT i.id AS page_id FROM items i");
            push_filter_joins(&mut sql, query.user_id);
            push_filters(&mut sql, query);
            push_order(&mut sql, &query.sort);
            push_page(&mut sql, query);
            let rows = sql.query().fetch_all(self.pool()).await?;
            let ids = rows
                .iter()
                .map(|row| get_id(row, "page_id"))
                .collect::<StoreResult<Vec<_>>>()?;
            self.items_in_order(&ids, query.user_id).await
        };
        // A page without a limit holds every match from its start: its length is the total,
        // unless it starts past the end (counted then).
        let count = async {
            if query.without_total || unlimited {
                Ok(None)
            } else {
                self.count_items(query).await.map(Some)
            }
        };
        let (items, counted) = futures::try_join!(page, count)?;
        let start = query.start_index.max(0);
        let total = match counted {
            Some(total) => total,
            None if !items.is_empty() => start + items.len() as i64,
            None if start == 0 || query.without_total => 0,
            // An unlimited page that starts past the last match.
            None => self.count_items(query).await?,
        };
        Ok(ItemPage { items, total })
    }

    /// The readable items of `ids` with `user`'s data, in the order of `ids`: a listing's
    /// second step. A statement whose plan does not depend on the values bound (the rows of
    /// some ids, joined by primary keys), so PostgreSQL soon keeps one plan for it instead of
    /// planning its joins and counts for every page. Read in chunks, so any number of ids
    /// stays within the databases' limits on bound values.
    pub async fn items_in_order(&self, ids: &[JfId], user: Option<JfId>) -> StoreResult<Vec<Item>> {
        let mut by_id: HashMap<JfId, Item> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(ID_CHUNK) {
            let mut sql = Sql::new("");
            push_item_select(&mut sql, user);
            push_item_from(&mut sql, user);
            sql.push(" WHERE i.probe_error IS NULL AND i.id IN (")
                .texts(chunk.iter().map(|i| i.to_n()))
                .push(")");
            for row in sql.query().fetch_all(self.pool()).await? {
                let item = item_from_row(&row)?;
                by_id.insert(item.id, item);
            }
        }
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// The ids, kinds and series of the items matching `query`, in its order, a page of them:
    /// a listing's first step alone, for callers that choose among the matches before reading
    /// the few they show in full (`Latest` folds new episodes into their series). The total
    /// is not counted.
    pub async fn query_keys(&self, query: &ItemQuery) -> StoreResult<Vec<ItemKey>> {
        let resolved = self.narrowed(query).await?;
        let query = resolved.as_ref().unwrap_or(query);
        let mut sql = Sql::new("SELECT i.id, i.kind, i.series_id FROM items i");
        push_filter_joins(&mut sql, query.user_id);
        push_filters(&mut sql, query);
        push_order(&mut sql, &query.sort);
        push_page(&mut sql, query);
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok(ItemKey {
                    id: get_id(row, "id")?,
                    kind: kind_from_row(row)?,
                    series_id: get_opt_id(row, "series_id")?,
                })
            })
            .collect()
    }

    /// `query` with a `parentId` known to be a library turned into the library condition
    /// (which the listing indexes serve, where the either-or condition of an unknown id
    /// cannot use them); `None` when nothing changes. The library ids are read once per
    /// store when none is known yet.
    async fn narrowed(&self, query: &ItemQuery) -> StoreResult<Option<ItemQuery>> {
        let Some(parent) = query.parent_id else {
            return Ok(None);
        };
        if !self.is_known_library(parent) && !self.any_library_known() {
            self.libraries().await?;
        }
        if !self.is_known_library(parent) || query.library_id.is_some() {
            return Ok(None);
        }
        Ok(Some(ItemQuery {
            parent_id: None,
            library_id: Some(parent),
            ..query.clone()
        }))
    }

    /// How many readable items match `query` (paging and sorting ignored). A query that
    /// narrows by library and kinds only (a library page) sums the counts the database keeps
    /// (migration 0016) instead of reading every match.
    async fn count_items(&self, query: &ItemQuery) -> StoreResult<i64> {
        if let Some(kept) = kept_count(query) {
            return Ok(kept.query().fetch_one(self.pool()).await?.try_get("n")?);
        }
        let mut count = Sql::new("SELECT COUNT(*) AS n FROM items i");
        push_filter_joins(&mut count, query.user_id);
        push_filters(&mut count, query);
        Ok(count.query().fetch_one(self.pool()).await?.try_get("n")?)
    }

    /// Production years of the items a query matches, newest first (the year filter's
    /// choices). Paging and sorting of the query are ignored.
    pub async fn production_years(&self, query: &ItemQuery) -> StoreResult<Vec<i64>> {
        let mut sql =
            Sql::new("SELECT DISTINCT COALESCE(md.production_year, i.production_year) AS year ");
        push_item_from(&mut sql, query.user_id);
        push_filters(&mut sql, query);
        sql.push(
            " AND COALESCE(md.production_year, i.production_year) IS NOT NULL \
             ORDER BY year DESC",
        );
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| r.try_get::<i64, _>("year").map_err(Into::into))
            .collect()
    }

    /// "Next up" for `user`: for every series in which the user played an episode, the first
    /// unplayed episode after the one played last (by season, then episode number), series
    /// played most recently first, read in full. One statement, computed in the database: one
    /// row per series, never every episode. `scope` (a library or a series) and `series`
    /// narrow it.
    pub async fn next_up(
        &self,
        user: JfId,
        scope: Option<JfId>,
        series: Option<JfId>,
    ) -> StoreResult<Vec<Item>> {
        let user_n = user.to_n();
        let mut sql = Sql::new("");
        push_item_select(&mut sql, Some(user));
        sql.push(
            " FROM (SELECT a.played_at, a.series_id AS up_series, (\
             SELECT n.id FROM items n \
             LEFT JOIN user_item_data nd ON nd.item_id = n.id AND nd.user_id = ",
        )
        .text(user_n.clone())
        .push(
            " WHERE n.series_id = a.series_id AND n.kind = 'Episode' \
             AND n.probe_error IS NULL AND COALESCE(nd.played, 0) = 0 \
             AND (COALESCE(n.parent_index_number, 0) > a.season \
             OR (COALESCE(n.parent_index_number, 0) = a.season \
             AND COALESCE(n.index_number, 0) > a.episode)) \
             ORDER BY COALESCE(n.parent_index_number, 0), COALESCE(n.index_number, 0), \
             n.sort_name, n.id LIMIT 1) AS next_id \
             FROM (SELECT i.series_id, COALESCE(ud.last_played_at, 0) AS played_at, \
             COALESCE(i.parent_index_number, 0) AS season, \
             COALESCE(i.index_number, 0) AS episode, \
             ROW_NUMBER() OVER (PARTITION BY i.series_id ORDER BY \
             COALESCE(ud.last_played_at, 0) DESC, COALESCE(i.parent_index_number, 0) DESC, \
             COALESCE(i.index_number, 0) DESC) AS rn \
             FROM items i JOIN user_item_data ud ON ud.item_id = i.id AND ud.user_id = ",
        )
        .text(user_n)
        .push(
            " WHERE i.kind = 'Episode' AND ud.played = 1 AND i.series_id IS NOT NULL \
             AND i.probe_error IS NULL",
        );
        if let Some(scope) = scope {
            // A library or a series: ids never collide, so one condition covers both.
            let id = scope.to_n();
            sql.push(" AND (i.library_id = ")
                .text(id.clone())
                .push(" OR i.series_id = ")
                .text(id)
                .push(")");
        }
        if let Some(series) = series {
            sql.push(" AND i.series_id = ").text(series.to_n());
        }
        sql.push(") a WHERE a.rn = 1) nu JOIN items i ON i.id = nu.next_id");
        push_item_joins(&mut sql, Some(user));
        sql.push(" ORDER BY nu.played_at DESC, nu.up_series");
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter().map(item_from_row).collect()
    }

    /// Media streams of items, by item, in stream order.
    pub async fn media_streams(&self, ids: &[JfId]) -> StoreResult<HashMap<JfId, Vec<StreamInfo>>> {
        let mut out: HashMap<JfId, Vec<StreamInfo>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut sql = Sql::new(
            "SELECT item_id, stream_index, kind, codec, profile, level, language, title, width, \
             height, bit_rate, channels, channel_layout, sample_rate, average_frame_rate, \
             pixel_format, is_default, is_forced, is_interlaced, is_hearing_impaired, \
             is_external, path FROM media_streams \
             WHERE item_id IN (",
        );
        sql.texts(ids.iter().map(|i| i.to_n()))
            .push(") ORDER BY item_id, stream_index");
        for row in sql.query().fetch_all(self.pool()).await? {
            let kind: String = row.try_get("kind")?;
            let level: Option<f64> = row.try_get("level")?;
            let stream = StreamInfo {
                index: row.try_get("stream_index")?,
                kind: StreamKind::from_name(&kind),
                codec: row.try_get("codec")?,
                language: row.try_get("language")?,
                title: row.try_get("title")?,
                width: row.try_get("width")?,
                height: row.try_get("height")?,
                channels: row.try_get("channels")?,
                channel_layout: row.try_get("channel_layout")?,
                sample_rate: row.try_get("sample_rate")?,
                frame_rate: row.try_get("average_frame_rate")?,
                bit_rate: row.try_get("bit_rate")?,
                profile: row.try_get("profile")?,
                level: level.map(|l| l.round() as i64),
                pixel_format: row.try_get("pixel_format")?,
                is_default: get_bool(&row, "is_default")?,
                is_forced: get_bool(&row, "is_forced")?,
                is_interlaced: get_bool(&row, "is_interlaced")?,
                is_hearing_impaired: get_bool(&row, "is_hearing_impaired")?,
                is_external: get_bool(&row, "is_external")?,
                path: row.try_get("path")?,
            };
            out.entry(get_id(&row, "item_id")?)
                .or_default()
                .push(stream);
        }
        Ok(out)
    }

    /// Images of items, by item.
    pub async fn images(&self, ids: &[JfId]) -> StoreResult<HashMap<JfId, Vec<ItemImage>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = Sql::new(
            "SELECT item_id, image_type, image_index, path, tag, file_mtime FROM images \
             WHERE item_id IN (",
        );
        sql.texts(ids.iter().map(|i| i.to_n()))
            .push(") ORDER BY item_id, image_type, image_index");
        let rows = sql.query().fetch_all(self.pool()).await?;
        group_images(&rows)
    }

    /// One image of an item, of a readable item.
    pub async fn image(
        &self,
        item_id: JfId,
        image_type: &str,
        index: i64,
    ) -> StoreResult<Option<ItemImage>> {
        let row = sqlx::query(
            "SELECT m.item_id, m.image_type, m.image_index, m.path, m.tag, m.file_mtime \
             FROM images m JOIN items i ON i.id = m.item_id \
             WHERE m.item_id = $1 AND m.image_type = $2 AND m.image_index = $3 \
             AND i.probe_error IS NULL",
        )
        .bind(item_id.to_n())
        .bind(image_type)
        .bind(index)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(image_from_row).transpose()
    }

    /// Episode and child counts of series and seasons, with `user`'s played episodes.
    pub async fn folder_counts(
        &self,
        folders: &[(JfId, ItemKind)],
        user: Option<JfId>,
    ) -> StoreResult<HashMap<JfId, FolderCounts>> {
        let mut out: HashMap<JfId, FolderCounts> = HashMap::new();
        let series: Vec<String> = folders
            .iter()
            .filter(|(_, k)| *k == ItemKind::Series)
            .map(|(id, _)| id.to_n())
            .collect();
        let seasons: Vec<String> = folders
            .iter()
            .filter(|(_, k)| *k == ItemKind::Season)
            .map(|(id, _)| id.to_n())
            .collect();
        let episodes_by = |column: &'static str, ids: Vec<String>| {
            let mut sql = Sql::new("SELECT ");
            sql.push(column)
                .push(
                    " AS folder, COUNT(*) AS n, \
                     SUM(CASE WHEN ud.played = 1 THEN 1 ELSE 0 END) AS played \
                     FROM items e LEFT JOIN user_item_data ud \
                     ON ud.item_id = e.id AND ud.user_id = ",
                )
                .text(user_key(user))
                .push(" WHERE e.kind = 'Episode' AND e.probe_error IS NULL AND ")
                .push(column)
                .push(" IN (")
                .texts(ids)
                .push(") GROUP BY ")
                .push(column);
            sql
        };
        if !series.is_empty() {
            for row in episodes_by("e.series_id", series.clone())
                .query()
                .fetch_all(self.pool())
                .await?
            {
                let entry = out.entry(get_id(&row, "folder")?).or_default();
                entry.episodes = row.try_get("n")?;
                entry.played_episodes = row.try_get::<Option<i64>, _>("played")?.unwrap_or(0);
            }
            let mut sql = Sql::new(
                "SELECT parent_id AS folder, COUNT(*) AS n FROM items \
                 WHERE kind = 'Season' AND parent_id IN (",
            );
            sql.texts(series).push(") GROUP BY parent_id");
            for row in sql.query().fetch_all(self.pool()).await? {
                out.entry(get_id(&row, "folder")?).or_default().children = row.try_get("n")?;
            }
        }
        if !seasons.is_empty() {
            for row in episodes_by("e.season_id", seasons)
                .query()
                .fetch_all(self.pool())
                .await?
            {
                let entry = out.entry(get_id(&row, "folder")?).or_default();
                entry.episodes = row.try_get("n")?;
                entry.children = entry.episodes;
                entry.played_episodes = row.try_get::<Option<i64>, _>("played")?.unwrap_or(0);
            }
        }
        Ok(out)
    }

    /// Other versions and further parts of items, by owner, in version-label or part order.
    pub async fn linked_of(&self, ids: &[JfId]) -> StoreResult<HashMap<JfId, Vec<Linked>>> {
        let mut out: HashMap<JfId, Vec<Linked>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut sql = Sql::new(
            "SELECT owner_id, id, owner_role, version_name, part_number, \
             COALESCE(file_run_time_ticks, run_time_ticks) AS runtime, container, size_bytes, \
             bitrate FROM items WHERE probe_error IS NULL \
             AND owner_role IN ('version', 'part') AND owner_id IN (",
        );
        sql.texts(ids.iter().map(|i| i.to_n()))
            .push(") ORDER BY owner_id, part_number, version_name, id");
        for row in sql.query().fetch_all(self.pool()).await? {
            let role: String = row.try_get("owner_role")?;
            let owner_id = get_id(&row, "owner_id")?;
            out.entry(owner_id).or_default().push(Linked {
                owner_id,
                id: get_id(&row, "id")?,
                role: if role == "part" {
                    OwnerRole::Part
                } else {
                    OwnerRole::Version
                },
                version_name: row.try_get("version_name")?,
                part_number: row.try_get("part_number")?,
                run_time_ticks: row.try_get("runtime")?,
                container: row.try_get("container")?,
                size_bytes: row.try_get("size_bytes")?,
                bitrate: row.try_get("bitrate")?,
            });
        }
        Ok(out)
    }

    /// The readable extras of an item, of the given kinds (all when empty), by sort name.
    pub async fn extras_of(
        &self,
        owner: JfId,
        user: Option<JfId>,
        kinds: &[ItemKind],
    ) -> StoreResult<Vec<Item>> {
        let mut sql = Sql::new("");
        push_item_select(&mut sql, user);
        push_item_from(&mut sql, user);
        sql.push(" WHERE i.probe_error IS NULL AND i.owner_role = 'extra' AND i.owner_id = ")
            .text(owner.to_n());
        if !kinds.is_empty() {
            sql.push(" AND i.kind IN (")
                .texts(kinds.iter().map(|k| k.as_str().to_owned()))
                .push(")");
        }
        sql.push(" ORDER BY i.sort_name, i.id");
        let rows = sql.query().fetch_all(self.pool()).await?;
        rows.iter().map(item_from_row).collect()
    }

    /// Every library's last scan summary.
    pub async fn scan_summaries(&self) -> StoreResult<Vec<ScanSummaryRow>> {
        let rows = sqlx::query(
            "SELECT library_id, finished_at, summary FROM scan_summaries ORDER BY library_id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        for row in &rows {
            let text: String = row.try_get("summary")?;
            out.push(ScanSummaryRow {
                library_id: get_id(row, "library_id")?,
                finished_at: row.try_get("finished_at")?,
                summary: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(out)
    }
}

/// The statement summing the kept counts (`item_counts`) that answer `query`'s total, or
/// `None` when the query filters by more than a library, its level and kinds. The fields are
/// spelled out so that a filter added to [`ItemQuery`] must be considered here.
fn kept_count(query: &ItemQuery) -> Option<Sql> {
    let ItemQuery {
        user_id: _,
        library_id,
        ancestor_id,
        parent_id,
        recursive,
        include_kinds,
        exclude_kinds,
        ids,
        search_term,
        is_played,
        is_favorite,
        is_resumable,
        sort: _,
        start_index: _,
        limit: _,
        exclude_ids,
        years,
        name_starts_with,
        name_less_than,
        metadata,
        without_total: _,
    } = query;
    let crate::store::metadata::MetadataFilter {
        genres,
        genre_ids,
        studios,
        studio_ids,
        person_ids,
        persons,
        person_kinds,
        official_ratings,
        tags,
        collection_id,
    } = metadata;
    let filtered = ancestor_id.is_some()
        || parent_id.is_some()
        || !ids.is_empty()
        || search_term.as_deref().is_some_and(|t| !t.trim().is_empty())
        || is_played.is_some()
        || is_favorite.is_some()
        || *is_resumable
        || !exclude_ids.is_empty()
        || !years.is_empty()
        || name_starts_with.as_deref().is_some_and(|p| !p.is_empty())
        || name_less_than.as_deref().is_some_and(|b| !b.is_empty())
        || !(genres.is_empty()
            && genre_ids.is_empty()
            && studios.is_empty()
            && studio_ids.is_empty()
            && person_ids.is_empty()
            && persons.is_empty()
            && person_kinds.is_empty()
            && official_ratings.is_empty()
            && tags.is_empty()
            && collection_id.is_none());
    if filtered {
        return None;
    }
    let mut sql = Sql::new("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM item_counts");
    match library_id {
        Some(library) => {
            sql.push(" WHERE library_id = ").text(library.to_n());
            if !recursive {
                sql.push(" AND top_level = 1");
            }
        }
        // Every library, every level: without a library or parent, `recursive` narrows
        // nothing (see `push_filters`).
        None => {
            sql.push(" WHERE 1 = 1");
        }
    }
    if !include_kinds.is_empty() {
        sql.push(" AND kind IN (")
            .texts(include_kinds.iter().map(|k| k.as_str().to_owned()))
            .push(")");
    }
    if !exclude_kinds.is_empty() {
        sql.push(" AND kind NOT IN (")
            .texts(exclude_kinds.iter().map(|k| k.as_str().to_owned()))
            .push(")");
    }
    Some(sql)
}

/// `LIMIT`/`OFFSET` of a listing. SQLite needs a LIMIT before OFFSET (-1 means none there),
/// so a listing without a limit spells out a large one.
fn push_page(sql: &mut Sql, query: &ItemQuery) {
    let limit = query.limit.unwrap_or(i64::from(i32::MAX)).max(0);
    sql.push(" LIMIT ")
        .int(limit)
        .push(" OFFSET ")
        .int(query.start_index.max(0));
}

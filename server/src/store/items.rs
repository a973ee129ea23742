//! Libraries, items (films, series, seasons, episodes), their media streams and images: what
//! the scanner writes and the browsing API reads.
//!
//! Item queries with optional filters are assembled by [`Sql`] from constant fragments only,
//! every request value bound as a parameter, and sort columns chosen from the [`SortBy`]
//! whitelist, so no request text ever reaches the SQL. Items whose file ffprobe could not read
//! (`probe_error` set) are kept so the scanner does not re-probe them, but are never listed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use ephyra_config::LibraryKind;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row};

use super::{Store, StoreError, StoreResult, flag, get_bool, get_id, get_opt_id};
use crate::jf::JfId;
use crate::scan::probe::{StreamInfo, StreamKind};

/// What an item is (Jellyfin's `BaseItemKind`, for the kinds Ephyra stores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    /// A film.
    Movie,
    /// A series: the folder of its seasons.
    Series,
    /// A season of a series.
    Season,
    /// An episode of a season.
    Episode,
    /// A trailer of a film or series (an extra: always has an owner, never listed).
    Trailer,
    /// Any other extra video (featurette, sample, deleted scene, ...).
    Video,
}

impl ItemKind {
    /// Every kind, in the order Jellyfin lists them.
    pub const ALL: [ItemKind; 6] = [
        ItemKind::Movie,
        ItemKind::Series,
        ItemKind::Season,
        ItemKind::Episode,
        ItemKind::Trailer,
        ItemKind::Video,
    ];

    /// The `BaseItemKind` name, as stored and as sent in `Type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Movie => "Movie",
            ItemKind::Series => "Series",
            ItemKind::Season => "Season",
            ItemKind::Episode => "Episode",
            ItemKind::Trailer => "Trailer",
            ItemKind::Video => "Video",
        }
    }

    /// Parses a `BaseItemKind` name without regard to case.
    pub fn parse(text: &str) -> Option<ItemKind> {
        ItemKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// Folders hold other items; films and episodes are playable files.
    pub fn is_folder(self) -> bool {
        matches!(self, ItemKind::Series | ItemKind::Season)
    }
}

impl std::str::FromStr for ItemKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ItemKind::parse(s).ok_or(())
    }
}

/// A configured library as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// Stable id, derived from the name (see `store::ids`).
    pub id: JfId,
    /// Name shown to clients.
    pub name: String,
    /// Films or series.
    pub kind: LibraryKind,
    /// Configured folders.
    pub folders: Vec<PathBuf>,
    /// When first configured (unix ms).
    pub created_at: i64,
}

/// A user's state of an item (zero values when the user never touched it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserData {
    /// Resume position in ticks; 0 = start from the beginning.
    pub playback_position_ticks: i64,
    /// Times playback started.
    pub play_count: i64,
    /// Marked as favourite.
    pub is_favorite: bool,
    /// Watched to the end (or marked so).
    pub played: bool,
    /// Last playback start (unix ms).
    pub last_played_at: Option<i64>,
}

/// An item as read for the API, with its series and season names and the asking user's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable id.
    pub id: JfId,
    /// The library it belongs to (its `ParentId` when it has no parent item).
    pub library_id: JfId,
    /// Season of an episode, series of a season; `None` for films and series.
    pub parent_id: Option<JfId>,
    /// What it is.
    pub kind: ItemKind,
    /// Display name.
    pub name: String,
    /// Name to sort by.
    pub sort_name: String,
    /// The file (films, episodes) or folder (series, seasons). Never sent to clients.
    pub path: Option<String>,
    /// Series of a season or episode.
    pub series_id: Option<JfId>,
    /// Season of an episode.
    pub season_id: Option<JfId>,
    /// Episode number, or season number for a season.
    pub index_number: Option<i64>,
    /// Season number of an episode.
    pub parent_index_number: Option<i64>,
    /// Year of release.
    pub production_year: Option<i64>,
    /// First aired / released (unix ms).
    pub premiere_date: Option<i64>,
    /// Plot summary.
    pub overview: Option<String>,
    /// Duration in ticks.
    pub run_time_ticks: Option<i64>,
    /// Container (`mkv`, `mp4`).
    pub container: Option<String>,
    /// File size in bytes.
    pub size_bytes: Option<i64>,
    /// Overall bitrate (bits/s).
    pub bitrate: Option<i64>,
    /// File modification time at the last probe (unix ms).
    pub file_mtime: Option<i64>,
    /// First seen by a scan (unix ms).
    pub date_created: i64,
    /// Last changed by a scan (unix ms).
    pub date_modified: i64,
    /// Name of the series, for seasons and episodes.
    pub series_name: Option<String>,
    /// Name of the season, for episodes.
    pub season_name: Option<String>,
    /// The asking user's data.
    pub user_data: UserData,
}

/// An image recorded for an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemImage {
    /// The item.
    pub item_id: JfId,
    /// `Primary`, `Backdrop`, `Thumb`, ...
    pub image_type: String,
    /// Position among images of the same type.
    pub image_index: i64,
    /// The file, inside a library folder or the data folder. Never sent to clients.
    pub path: PathBuf,
    /// Cache tag; changes with the file.
    pub tag: String,
    /// Modification time of the file when recorded (unix ms).
    pub file_mtime: Option<i64>,
}

/// A film, series, season or episode as the scanner writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewItem {
    /// Stable id (see `store::ids`).
    pub id: JfId,
    /// Its library.
    pub library_id: JfId,
    /// Series of a season, season of an episode.
    pub parent_id: Option<JfId>,
    /// What it is.
    pub kind: ItemKind,
    /// Display name.
    pub name: String,
    /// Name to sort by.
    pub sort_name: String,
    /// File or folder; `None` for a season or series without a folder of its own.
    pub path: Option<PathBuf>,
    /// Series of a season or episode.
    pub series_id: Option<JfId>,
    /// Season of an episode.
    pub season_id: Option<JfId>,
    /// Episode number, or a season's number.
    pub index_number: Option<i64>,
    /// An episode's season number.
    pub parent_index_number: Option<i64>,
    /// Year of release.
    pub production_year: Option<i64>,
    /// Duration in ticks.
    pub run_time_ticks: Option<i64>,
    /// Container.
    pub container: Option<String>,
    /// File size in bytes.
    pub size_bytes: Option<i64>,
    /// Overall bitrate.
    pub bitrate: Option<i64>,
    /// File modification time (unix ms).
    pub file_mtime: Option<i64>,
    /// Why ffprobe could not read the file; the item is then hidden.
    pub probe_error: Option<String>,
}

/// What the store remembers of a scanned file, to tell whether it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownFile {
    /// The file's item.
    pub id: JfId,
    /// Size at the last probe.
    pub size_bytes: i64,
    /// Modification time at the last probe (unix ms).
    pub file_mtime: i64,
}

/// Sort keys a client may ask for; anything else is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// By sort name (articles dropped).
    SortName,
    /// By display name.
    Name,
    /// By when the scanner first saw the item.
    DateCreated,
    /// By the user's last playback.
    DatePlayed,
    /// By release date.
    PremiereDate,
    /// By year.
    ProductionYear,
    /// By duration.
    Runtime,
    /// By season number.
    ParentIndexNumber,
    /// By episode number.
    IndexNumber,
    /// By play count.
    PlayCount,
    /// Shuffled.
    Random,
}

impl std::str::FromStr for SortBy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "sortname" => SortBy::SortName,
            "name" => SortBy::Name,
            "datecreated" => SortBy::DateCreated,
            "dateplayed" | "datelastcontentadded" => SortBy::DatePlayed,
            "premieredate" => SortBy::PremiereDate,
            "productionyear" => SortBy::ProductionYear,
            "runtime" => SortBy::Runtime,
            "parentindexnumber" => SortBy::ParentIndexNumber,
            "indexnumber" => SortBy::IndexNumber,
            "playcount" => SortBy::PlayCount,
            "random" => SortBy::Random,
            _ => return Err(()),
        })
    }
}

impl SortBy {
    /// The SQL expression, from a fixed list. Nullable columns are coalesced so both databases
    /// order them alike.
    fn column(self) -> &'static str {
        match self {
            SortBy::SortName => "COALESCE(md.sort_title, i.sort_name)",
            SortBy::Name => "COALESCE(md.title, i.name)",
            SortBy::DateCreated => "i.date_created",
            SortBy::DatePlayed => "COALESCE(ud.last_played_at, 0)",
            SortBy::PremiereDate => {
                "COALESCE(md.premiere_date, i.premiere_date, md.production_year, \
                 i.production_year, 0)"
            }
            SortBy::ProductionYear => "COALESCE(md.production_year, i.production_year, 0)",
            SortBy::Runtime => "COALESCE(i.run_time_ticks, 0)",
            SortBy::ParentIndexNumber => "COALESCE(i.parent_index_number, 0)",
            SortBy::IndexNumber => "COALESCE(i.index_number, 0)",
            SortBy::PlayCount => "COALESCE(ud.play_count, 0)",
            SortBy::Random => "RANDOM()",
        }
    }
}

/// Which items a listing wants. Empty lists mean "no restriction".
#[derive(Debug, Clone, Default)]
pub struct ItemQuery {
    /// Whose user data to join and filter on.
    pub user_id: Option<JfId>,
    /// Only items of this library.
    pub library_id: Option<JfId>,
    /// Only items under this item (a series or season).
    pub ancestor_id: Option<JfId>,
    /// With a library or ancestor: all descendants, not only direct children.
    pub recursive: bool,
    /// Only these kinds.
    pub include_kinds: Vec<ItemKind>,
    /// Not these kinds.
    pub exclude_kinds: Vec<ItemKind>,
    /// Only these ids.
    pub ids: Vec<JfId>,
    /// Name contains this text (case-insensitive).
    pub search_term: Option<String>,
    /// Played (true) or not (false).
    pub is_played: Option<bool>,
    /// Favourite (true) or not (false).
    pub is_favorite: Option<bool>,
    /// Has a resume position.
    pub is_resumable: bool,
    /// Sort keys with "descending" flags, applied in order.
    pub sort: Vec<(SortBy, bool)>,
    /// Rows to skip.
    pub start_index: i64,
    /// Rows to return at most.
    pub limit: Option<i64>,
    /// Not these ids (a film's similar items leave the film out).
    pub exclude_ids: Vec<JfId>,
    /// Only these production years.
    pub years: Vec<i64>,
    /// Sort name starts with this text, without regard to case (the A–Z picker).
    pub name_starts_with: Option<String>,
    /// Sort name sorts before this text, without regard to case (the picker's `#`).
    pub name_less_than: Option<String>,
    /// Genres, studios, people and ratings from local metadata.
    pub metadata: super::metadata::MetadataFilter,
}

/// A page of items and the total that matched.
#[derive(Debug, Clone, Default)]
pub struct ItemPage {
    /// The page.
    pub items: Vec<Item>,
    /// How many items matched in all.
    pub total: i64,
}

/// Counts of a series' or season's episodes, for `ChildCount` and `UnplayedItemCount`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderCounts {
    /// Seasons of a series, episodes of a season.
    pub children: i64,
    /// All episodes below.
    pub episodes: i64,
    /// Of those, played by the user.
    pub played_episodes: i64,
}

/// A bound value.
#[derive(Debug, Clone)]
pub(super) enum Bind {
    Text(String),
    Int(i64),
}

/// SQL assembled from `&'static str` fragments, with every value bound as `$n`. Because
/// fragments must be static, request text cannot become SQL.
#[derive(Debug, Clone, Default)]
pub(super) struct Sql {
    text: String,
    binds: Vec<Bind>,
}

impl Sql {
    pub(super) fn new(fragment: &'static str) -> Sql {
        Sql {
            text: fragment.to_owned(),
            binds: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, fragment: &'static str) -> &mut Sql {
        self.text.push_str(fragment);
        self
    }

    fn placeholder(&mut self, bind: Bind) -> &mut Sql {
        self.binds.push(bind);
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self
    }

    pub(super) fn text(&mut self, value: impl Into<String>) -> &mut Sql {
        self.placeholder(Bind::Text(value.into()))
    }

    pub(super) fn int(&mut self, value: i64) -> &mut Sql {
        self.placeholder(Bind::Int(value))
    }

    /// `$a, $b, ...` for a non-empty list.
    pub(super) fn texts<I: IntoIterator<Item = String>>(&mut self, values: I) -> &mut Sql {
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.text(value);
        }
        self
    }

    pub(super) fn query(&self) -> Query<'_, Any, AnyArguments> {
        // Safe: `text` is built only from static fragments and `$n` placeholders.
        let mut query = sqlx::query(AssertSqlSafe(self.text.clone()));
        for bind in &self.binds {
            query = match bind {
                Bind::Text(v) => query.bind(v.clone()),
                Bind::Int(v) => query.bind(*v),
            };
        }
        query
    }
}

/// Columns of [`Item`], over `items i` joined to its series `s`, season `se` and the user's
/// data `ud`.
/// Names, years, dates and overviews from an `.nfo` (`md`, `smd` for the series) take the place
/// of those derived from file names.
const ITEM_SELECT: &str = "SELECT i.id, i.library_id, i.parent_id, i.kind, \
     COALESCE(md.title, i.name) AS name, COALESCE(md.sort_title, i.sort_name) AS sort_name, \
     i.path, i.series_id, i.season_id, i.index_number, i.parent_index_number, \
     COALESCE(md.production_year, i.production_year) AS production_year, \
     COALESCE(md.premiere_date, i.premiere_date) AS premiere_date, \
     COALESCE(md.overview, i.overview) AS overview, \
     COALESCE(i.run_time_ticks, md.run_time_ticks) AS run_time_ticks, i.container, \
     i.size_bytes, i.bitrate, i.file_mtime, i.date_created, i.date_modified, \
     COALESCE(smd.title, s.name) AS series_name, se.name AS season_name, \
     ud.playback_position_ticks, ud.play_count, ud.is_favorite, ud.played, ud.last_played_at ";

/// Joins for [`ITEM_SELECT`]; the user id is bound right after.
pub(super) const ITEM_FROM: &str = "FROM items i \
     LEFT JOIN items s ON s.id = i.series_id \
     LEFT JOIN items se ON se.id = i.season_id \
     LEFT JOIN item_metadata md ON md.item_id = i.id \
     LEFT JOIN item_metadata smd ON smd.item_id = i.series_id \
     LEFT JOIN user_item_data ud ON ud.item_id = i.id AND ud.user_id = ";

fn item_from_row(row: &AnyRow) -> StoreResult<Item> {
    let kind: String = row.try_get("kind")?;
    let kind = ItemKind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown item kind `{kind}`")))?;
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

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The user id bound into the user-data join; no user matches the nil id.
pub(super) fn user_key(user: Option<JfId>) -> String {
    user.map_or_else(|| "-".to_owned(), |u| u.to_n())
}

impl Store {
    // ----- libraries -----------------------------------------------------------------------

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
        Ok(())
    }

    /// Every library, by name.
    pub async fn libraries(&self) -> StoreResult<Vec<Library>> {
        let rows = sqlx::query(
            "SELECT id, name, kind, folders, created_at FROM libraries ORDER BY name, id",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(library_from_row).collect()
    }

    /// One library.
    pub async fn library(&self, id: JfId) -> StoreResult<Option<Library>> {
        let row =
            sqlx::query("SELECT id, name, kind, folders, created_at FROM libraries WHERE id = $1")
                .bind(id.to_n())
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(library_from_row).transpose()
    }

    // ----- scanner writes ------------------------------------------------------------------

    /// The files of a library the store knows (films and episodes, readable or not), by path.
    pub async fn known_files(&self, library_id: JfId) -> StoreResult<BTreeMap<PathBuf, KnownFile>> {
        let rows = sqlx::query(
            "SELECT id, path, size_bytes, file_mtime FROM items \
             WHERE library_id = $1 AND kind NOT IN ('Series', 'Season') AND path IS NOT NULL",
        )
        .bind(library_id.to_n())
        .fetch_all(self.pool())
        .await?;
        let mut known = BTreeMap::new();
        for row in &rows {
            let path: String = row.try_get("path")?;
            known.insert(
                PathBuf::from(path),
                KnownFile {
                    id: get_id(row, "id")?,
                    size_bytes: row.try_get::<Option<i64>, _>("size_bytes")?.unwrap_or(-1),
                    file_mtime: row.try_get::<Option<i64>, _>("file_mtime")?.unwrap_or(-1),
                },
            );
        }
        Ok(known)
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
                 date_created, date_modified) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $19) \
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
                 date_modified = excluded.date_modified",
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

    /// Every image of a library's items, by item (the scanner compares them with the disk).
    pub async fn library_images(
        &self,
        library_id: JfId,
    ) -> StoreResult<HashMap<JfId, Vec<ItemImage>>> {
        let rows = sqlx::query(
            "SELECT m.item_id, m.image_type, m.image_index, m.path, m.tag, m.file_mtime \
             FROM images m JOIN items i ON i.id = m.item_id WHERE i.library_id = $1",
        )
        .bind(library_id.to_n())
        .fetch_all(self.pool())
        .await?;
        group_images(&rows)
    }

    // ----- API reads -----------------------------------------------------------------------

    /// One readable item, with `user`'s data.
    pub async fn item(&self, id: JfId, user: Option<JfId>) -> StoreResult<Option<Item>> {
        let mut sql = Sql::new(ITEM_SELECT);
        sql.push(ITEM_FROM)
            .text(user_key(user))
            .push(" WHERE i.probe_error IS NULL AND i.id = ")
            .text(id.to_n());
        let row = sql.query().fetch_optional(self.pool()).await?;
        row.as_ref().map(item_from_row).transpose()
    }

    /// A page of readable items matching `query`, and how many matched in all.
    pub async fn query_items(&self, query: &ItemQuery) -> StoreResult<ItemPage> {
        let mut count = Sql::new("SELECT COUNT(*) AS n ");
        count.push(ITEM_FROM).text(user_key(query.user_id));
        push_filters(&mut count, query);
        let total: i64 = count.query().fetch_one(self.pool()).await?.try_get("n")?;

        let mut sql = Sql::new(ITEM_SELECT);
        sql.push(ITEM_FROM).text(user_key(query.user_id));
        push_filters(&mut sql, query);
        sql.push(" ORDER BY ");
        for (by, descending) in &query.sort {
            sql.push(by.column())
                .push(if *descending { " DESC, " } else { " ASC, " });
        }
        sql.push("i.sort_name ASC, i.id ASC");
        if let Some(limit) = query.limit {
            sql.push(" LIMIT ").int(limit.max(0));
        } else {
            // SQLite needs a LIMIT before OFFSET; -1 means none there, so spell out a large one.
            sql.push(" LIMIT ").int(i64::from(i32::MAX));
        }
        sql.push(" OFFSET ").int(query.start_index.max(0));
        let rows = sql.query().fetch_all(self.pool()).await?;
        let items = rows.iter().map(item_from_row).collect::<StoreResult<_>>()?;
        Ok(ItemPage { items, total })
    }

    /// Production years of the items a query matches, newest first (the year filter's
    /// choices). Paging and sorting of the query are ignored.
    pub async fn production_years(&self, query: &ItemQuery) -> StoreResult<Vec<i64>> {
        let mut sql =
            Sql::new("SELECT DISTINCT COALESCE(md.production_year, i.production_year) AS year ");
        sql.push(ITEM_FROM).text(user_key(query.user_id));
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
    /// played most recently first. Computed in the database: one row per series, never every
    /// episode. `library` and `series` narrow it.
    pub async fn next_up(
        &self,
        user: JfId,
        library: Option<JfId>,
        series: Option<JfId>,
    ) -> StoreResult<Vec<JfId>> {
        let mut sql = Sql::new(
            "SELECT a.played_at, (\
             SELECT n.id FROM items n \
             LEFT JOIN user_item_data nd ON nd.item_id = n.id AND nd.user_id = ",
        );
        let user_n = user.to_n();
        sql.text(user_n.clone()).push(
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
        );
        sql.text(user_n).push(
            " WHERE i.kind = 'Episode' AND ud.played = 1 AND i.series_id IS NOT NULL \
             AND i.probe_error IS NULL",
        );
        if let Some(library) = library {
            sql.push(" AND i.library_id = ").text(library.to_n());
        }
        if let Some(series) = series {
            sql.push(" AND i.series_id = ").text(series.to_n());
        }
        sql.push(") a WHERE a.rn = 1 ORDER BY a.played_at DESC, a.series_id");
        let rows = sql.query().fetch_all(self.pool()).await?;
        let mut out = Vec::new();
        for row in &rows {
            if let Some(id) = get_opt_id(row, "next_id")? {
                out.push(id);
            }
        }
        Ok(out)
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

fn group_images(rows: &[AnyRow]) -> StoreResult<HashMap<JfId, Vec<ItemImage>>> {
    let mut out: HashMap<JfId, Vec<ItemImage>> = HashMap::new();
    for row in rows {
        let image = image_from_row(row)?;
        out.entry(image.item_id).or_default().push(image);
    }
    Ok(out)
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_pattern(term: &str) -> String {
    let mut out = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(super) fn push_filters(sql: &mut Sql, q: &ItemQuery) {
    sql.push(" WHERE i.probe_error IS NULL");
    // Extras, alternate versions and further parts are reached through their owner only.
    sql.push(" AND i.owner_id IS NULL");
    if let Some(library) = q.library_id {
        sql.push(" AND i.library_id = ").text(library.to_n());
        if !q.recursive && q.ancestor_id.is_none() {
            sql.push(" AND i.parent_id IS NULL");
        }
    }
    if let Some(ancestor) = q.ancestor_id {
        let id = ancestor.to_n();
        if q.recursive {
            sql.push(" AND (i.parent_id = ")
                .text(id.clone())
                .push(" OR i.series_id = ")
                .text(id.clone())
                .push(" OR i.season_id = ")
                .text(id)
                .push(")");
        } else {
            sql.push(" AND i.parent_id = ").text(id);
        }
    }
    if !q.include_kinds.is_empty() {
        sql.push(" AND i.kind IN (")
            .texts(q.include_kinds.iter().map(|k| k.as_str().to_owned()))
            .push(")");
    }
    if !q.exclude_kinds.is_empty() {
        sql.push(" AND i.kind NOT IN (")
            .texts(q.exclude_kinds.iter().map(|k| k.as_str().to_owned()))
            .push(")");
    }
    if !q.ids.is_empty() {
        sql.push(" AND i.id IN (")
            .texts(q.ids.iter().map(|i| i.to_n()))
            .push(")");
    }
    if let Some(term) = q
        .search_term
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        sql.push(" AND LOWER(COALESCE(md.title, i.name)) LIKE ")
            .text(like_pattern(term))
            .push(" ESCAPE '\\'");
    }
    match q.is_played {
        Some(true) => {
            sql.push(" AND COALESCE(ud.played, 0) = 1");
        }
        Some(false) => {
            sql.push(" AND COALESCE(ud.played, 0) = 0");
        }
        None => {}
    }
    match q.is_favorite {
        Some(true) => {
            sql.push(" AND COALESCE(ud.is_favorite, 0) = 1");
        }
        Some(false) => {
            sql.push(" AND COALESCE(ud.is_favorite, 0) = 0");
        }
        None => {}
    }
    if q.is_resumable {
        sql.push(" AND COALESCE(ud.playback_position_ticks, 0) > 0");
    }
    if !q.exclude_ids.is_empty() {
        sql.push(" AND i.id NOT IN (")
            .texts(q.exclude_ids.iter().map(|i| i.to_n()))
            .push(")");
    }
    if !q.years.is_empty() {
        sql.push(" AND COALESCE(md.production_year, i.production_year) IN (");
        for (n, year) in q.years.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            sql.int(*year);
        }
        sql.push(")");
    }
    if let Some(prefix) = q.name_starts_with.as_deref().filter(|p| !p.is_empty()) {
        let mut pattern = like_pattern(prefix);
        pattern.remove(0);
        sql.push(" AND LOWER(COALESCE(md.sort_title, i.sort_name)) LIKE ")
            .text(pattern)
            .push(" ESCAPE '\\'");
    }
    if let Some(bound) = q.name_less_than.as_deref().filter(|b| !b.is_empty()) {
        sql.push(" AND LOWER(COALESCE(md.sort_title, i.sort_name)) < ")
            .text(bound.to_lowercase());
    }
    super::metadata::push_metadata_filters(sql, &q.metadata);
}

// ----- naming: extras, versions, parts, provider ids (migration 0008) ----------------------

/// How an item with an owner relates to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerRole {
    /// An extra (trailer, featurette, sample, ...) of a film or series.
    Extra,
    /// Another version of a film: one more media source of its owner.
    Version,
    /// A further part of a stacked film.
    Part,
}

impl OwnerRole {
    fn as_str(self) -> &'static str {
        match self {
            OwnerRole::Extra => "extra",
            OwnerRole::Version => "version",
            OwnerRole::Part => "part",
        }
    }
}

/// What the naming rules say about an item beyond its base row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemNaming {
    /// The owning film or series (extras), or the primary film (versions, parts).
    pub owner: Option<(JfId, OwnerRole)>,
    /// Jellyfin's `ExtraType`, for extras.
    pub extra_type: Option<String>,
    /// Version label, for films with several versions (the primary too).
    pub version_name: Option<String>,
    /// Part number of a further part.
    pub part_number: Option<i64>,
    /// Last episode of a multi-episode file.
    pub index_number_end: Option<i64>,
    /// Provider ids from id tags in names.
    pub provider_ids: BTreeMap<String, String>,
    /// Air date of a daily show's episode (unix ms).
    pub premiere_date: Option<i64>,
    /// Fingerprint of the placement, compared by the next scan.
    pub placement: String,
}

/// A film's other version or part, as read for its media sources.
#[derive(Debug, Clone, PartialEq)]
pub struct Linked {
    /// The owning (primary) item.
    pub owner_id: JfId,
    /// The version or part item.
    pub id: JfId,
    /// Version or part.
    pub role: OwnerRole,
    /// Version label (versions).
    pub version_name: Option<String>,
    /// Part number (parts).
    pub part_number: Option<i64>,
    /// The file's own duration.
    pub run_time_ticks: Option<i64>,
    /// Container.
    pub container: Option<String>,
    /// File size.
    pub size_bytes: Option<i64>,
    /// Overall bitrate.
    pub bitrate: Option<i64>,
}

/// Naming details of an item as read for its DTO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamingRead {
    /// `ExtraType`.
    pub extra_type: Option<String>,
    /// Version label of the primary.
    pub version_name: Option<String>,
    /// `IndexNumberEnd`.
    pub index_number_end: Option<i64>,
    /// `ProviderIds`.
    pub provider_ids: BTreeMap<String, String>,
}

/// A library's last scan summary, as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanSummaryRow {
    /// The library.
    pub library_id: JfId,
    /// When the scan finished (unix ms).
    pub finished_at: i64,
    /// Counts and examples.
    pub summary: serde_json::Value,
}

fn provider_ids_json(ids: &BTreeMap<String, String>) -> Option<String> {
    (!ids.is_empty()).then(|| serde_json::to_string(ids).unwrap_or_default())
}

fn provider_ids_from(text: Option<String>) -> BTreeMap<String, String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

impl Store {
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

    /// The placement fingerprints of a library's files, by path.
    pub async fn placements(&self, library_id: JfId) -> StoreResult<HashMap<PathBuf, String>> {
        let rows = sqlx::query(
            "SELECT path, placement FROM items WHERE library_id = $1 AND path IS NOT NULL \
             AND kind NOT IN ('Series', 'Season')",
        )
        .bind(library_id.to_n())
        .fetch_all(self.pool())
        .await?;
        let mut out = HashMap::new();
        for row in &rows {
            let path: String = row.try_get("path")?;
            let placement: Option<String> = row.try_get("placement")?;
            out.insert(PathBuf::from(path), placement.unwrap_or_default());
        }
        Ok(out)
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

    /// Naming details of items, by item.
    pub async fn naming_of(&self, ids: &[JfId]) -> StoreResult<HashMap<JfId, NamingRead>> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut sql = Sql::new(
            "SELECT id, extra_type, version_name, index_number_end, provider_ids FROM items \
             WHERE id IN (",
        );
        sql.texts(ids.iter().map(|i| i.to_n())).push(")");
        for row in sql.query().fetch_all(self.pool()).await? {
            out.insert(
                get_id(&row, "id")?,
                NamingRead {
                    extra_type: row.try_get("extra_type")?,
                    version_name: row.try_get("version_name")?,
                    index_number_end: row.try_get("index_number_end")?,
                    provider_ids: provider_ids_from(row.try_get("provider_ids")?),
                },
            );
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
        let mut sql = Sql::new(ITEM_SELECT);
        sql.push(ITEM_FROM)
            .text(user_key(user))
            .push(" WHERE i.probe_error IS NULL AND i.owner_role = 'extra' AND i.owner_id = ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_kinds_parse_without_regard_to_case() {
        assert_eq!(ItemKind::parse("movie"), Some(ItemKind::Movie));
        assert_eq!(ItemKind::parse("EPISODE"), Some(ItemKind::Episode));
        assert_eq!(ItemKind::parse("BoxSet"), None);
    }

    #[test]
    fn sql_binds_every_value_as_a_numbered_placeholder() {
        let mut sql = Sql::new("SELECT 1 FROM items WHERE id IN (");
        sql.texts(["a".to_owned(), "b".to_owned()])
            .push(") AND x = ")
            .int(3);
        assert_eq!(
            sql.text,
            "SELECT 1 FROM items WHERE id IN ($1, $2) AND x = $3"
        );
        assert_eq!(sql.binds.len(), 3);
    }

    #[test]
    fn search_terms_cannot_inject_wildcards() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
        assert_eq!(like_pattern("The"), "%the%");
    }

    #[test]
    fn unknown_sort_keys_are_refused_so_the_list_drops_them() {
        assert_eq!("SortName".parse::<SortBy>(), Ok(SortBy::SortName));
        assert_eq!("dateplayed".parse::<SortBy>(), Ok(SortBy::DatePlayed));
        assert!("name; DROP TABLE items".parse::<SortBy>().is_err());
    }
}

//! The records of libraries and items as the store holds them: what the scanner writes
//! ([`NewItem`], [`ItemNaming`]) and what the API reads ([`Item`], [`ItemImage`], [`Linked`],
//! [`NamingRead`], [`FolderCounts`]). Plain values: no SQL here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ephyra_config::LibraryKind;

use crate::jf::JfId;

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
    /// Naming details: extra type, version label, multi-episode end, provider ids from names.
    pub naming: NamingRead,
    /// The single values of the item's `.nfo` (its genres, studios and people are lists, read
    /// for a whole page at once by `Store::images_and_names`).
    pub local: LocalInfo,
    /// Seasons and episodes below a series or season, with the user's played episodes; `None`
    /// for anything else.
    pub counts: Option<FolderCounts>,
    /// Other versions and further parts of a film (media sources beyond its own file), so a
    /// page without any skips looking them up.
    pub linked_sources: i64,
}

/// The single values an `.nfo` gives an item beyond the names, years, dates and overviews
/// overlaid on its own columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalInfo {
    /// `<originaltitle>`.
    pub original_title: Option<String>,
    /// `<tagline>`.
    pub tagline: Option<String>,
    /// `<mpaa>` / `<certification>`.
    pub official_rating: Option<String>,
    /// `<rating>`.
    pub community_rating: Option<f64>,
    /// Provider ids from the `.nfo` (merged over those from names).
    pub provider_ids: BTreeMap<String, String>,
    /// The film's collection (`<set>`).
    pub collection: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownFile {
    /// The file's item.
    pub id: JfId,
    /// Size at the last probe.
    pub size_bytes: i64,
    /// Modification time at the last probe (unix ms).
    pub file_mtime: i64,
    /// What the naming rules made of it at the last scan (a fingerprint; see
    /// `scan::placement_key`).
    pub placement: String,
}

/// What a listing's first step knows of an item: enough to choose it (see
/// `Store::query_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemKey {
    /// The item.
    pub id: JfId,
    /// What it is.
    pub kind: ItemKind,
    /// Its series, for seasons and episodes.
    pub series_id: Option<JfId>,
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
    /// The stored `owner_role` text.
    pub fn as_str(self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_kinds_parse_without_regard_to_case() {
        assert_eq!(ItemKind::parse("movie"), Some(ItemKind::Movie));
        assert_eq!(ItemKind::parse("EPISODE"), Some(ItemKind::Episode));
        assert_eq!(ItemKind::parse("BoxSet"), None);
    }
}

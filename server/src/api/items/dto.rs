//! Jellyfin's item shapes: `BaseItemDto`, `UserItemDataDto`, `MediaSourceInfo`, `MediaStream`
//! (PascalCase, nulls left out), built from stored rows by pure functions.
//!
//! Paths on disk are put in a DTO only for administrators who ask with `fields=Path` (as
//! Jellyfin does); everyone else addresses files by item id only.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::jf::{JfId, date};
use crate::scan::probe::{StreamInfo, StreamKind};
use crate::store::chapters::Chapter;
use crate::store::items::{
    FolderCounts, Item, ItemImage, ItemKind, ItemNames, Library, Linked, NamingRead, OwnerRole,
    UserData,
};

/// `BaseItemDto`: the fields clients read (jellyfin-web, the Kotlin and TypeScript SDKs and
/// the Android TV app), as Jellyfin spells them.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct BaseItemDto {
    pub name: String,
    pub server_id: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date_created: Option<String>,
    pub can_delete: bool,
    pub can_download: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub sort_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub premiere_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_sources: Option<Vec<MediaSourceInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overview: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_time_ticks: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_year: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_index_number: Option<i64>,
    pub is_folder: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection_type: Option<&'static str>,
    pub user_data: UserItemDataDto,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recursive_item_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series_primary_image_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_image_aspect_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_streams: Option<Vec<MediaStream>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_type: Option<&'static str>,
    pub image_tags: BTreeMap<&'static str, String>,
    pub backdrop_image_tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chapters: Option<Vec<ChapterInfo>>,
    pub location_type: &'static str,
    pub media_type: &'static str,
    pub provider_ids: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_subtitles: Option<bool>,
    /// The file or folder, for administrators who asked with `fields=Path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Last episode of a multi-episode file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_number_end: Option<i64>,
    /// Jellyfin's `ExtraType` of an extra.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_type: Option<String>,
    /// How many media sources (versions) the item has, when more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_source_count: Option<i64>,
    /// From local metadata (`.nfo`): `<originaltitle>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_title: Option<String>,
    /// `<tagline>`, as Jellyfin's one-element list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taglines: Option<Vec<String>>,
    /// Genre names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genres: Option<Vec<String>>,
    /// Genres with their ids (what the web client links to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genre_items: Option<Vec<NameGuidPair>>,
    /// Studios with their ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub studios: Option<Vec<NameGuidPair>>,
    /// `<tag>` values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Cast and crew.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub people: Option<Vec<BaseItemPerson>>,
    /// Certification (`<mpaa>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub official_rating: Option<String>,
    /// Rating out of 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub community_rating: Option<f64>,
}

/// Jellyfin's `NameGuidPair`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct NameGuidPair {
    pub name: String,
    pub id: String,
}

/// Jellyfin's `BaseItemPerson`: `Type` is a `PersonKind` (`Actor`, `Director`, `Writer`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct BaseItemPerson {
    pub name: String,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(rename = "Type")]
    pub kind: String,
    /// The person's local image (an actor's `<thumb>`), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_image_tag: Option<String>,
}

/// `UserItemDataDto`; the Kotlin SDK requires the six unconditional fields.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct UserItemDataDto {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub played_percentage: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unplayed_item_count: Option<i64>,
    pub playback_position_ticks: i64,
    pub play_count: i64,
    pub is_favorite: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_played_date: Option<String>,
    pub played: bool,
    pub key: String,
    pub item_id: String,
}

/// `ChapterInfo`: a chapter of the file. No chapter images are extracted, so the image date is
/// .NET's minimum, as Jellyfin sends it for chapters without one (the Kotlin SDK requires
/// the field).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ChapterInfo {
    pub start_position_ticks: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub image_date_modified: &'static str,
}

impl From<&Chapter> for ChapterInfo {
    fn from(chapter: &Chapter) -> ChapterInfo {
        ChapterInfo {
            start_position_ticks: chapter.start_ticks,
            name: chapter.name.clone(),
            image_date_modified: "0001-01-01T00:00:00.0000000Z",
        }
    }
}

/// `MediaStream`; booleans the Kotlin SDK requires (it fails to decode an item without them)
/// are always present.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MediaStream {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub display_title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_range: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_range_type: Option<&'static str>,
    pub is_interlaced: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_layout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bit_rate: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<i64>,
    pub is_default: bool,
    pub is_forced: bool,
    pub is_hearing_impaired: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average_frame_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub real_frame_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aspect_ratio: Option<String>,
    pub index: i64,
    pub is_external: bool,
    pub is_text_subtitle_stream: bool,
    pub supports_external_stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pixel_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<i64>,
    pub is_original: bool,
    /// Subtitles in `PlaybackInfo`: `External`, `Embed`, `Hls`, `Encode` or `Drop`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_method: Option<&'static str>,
    /// Subtitles delivered `External`: where the client fetches them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_url: Option<String>,
    /// Whether `DeliveryUrl` points outside the server (never, for Ephyra).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_external_url: Option<bool>,
}

/// `MediaSourceInfo`: one playable version of an item (Ephyra has one per file).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct MediaSourceInfo {
    pub protocol: &'static str,
    pub id: String,
    #[serde(rename = "Type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    pub name: String,
    pub is_remote: bool,
    #[serde(rename = "ETag", skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_time_ticks: Option<i64>,
    pub read_at_native_framerate: bool,
    pub ignore_dts: bool,
    pub ignore_index: bool,
    pub gen_pts_input: bool,
    pub supports_transcoding: bool,
    pub supports_direct_stream: bool,
    pub supports_direct_play: bool,
    pub is_infinite_stream: bool,
    pub requires_opening: bool,
    pub requires_closing: bool,
    pub requires_looping: bool,
    pub supports_probing: bool,
    pub video_type: &'static str,
    pub media_streams: Vec<MediaStream>,
    pub media_attachments: Vec<serde_json::Value>,
    pub formats: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<i64>,
    pub required_http_headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcoding_url: Option<String>,
    pub transcoding_sub_protocol: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transcoding_container: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_audio_stream_index: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_subtitle_stream_index: Option<i64>,
    pub has_segments: bool,
}

/// Which optional parts of an item a listing asked for with `fields=`. A single item
/// (`GET /Items/{id}`) gets everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fields {
    /// `MediaSources` (with their streams).
    pub media_sources: bool,
    /// `MediaStreams` on the item itself.
    pub media_streams: bool,
    /// `Chapters`.
    pub chapters: bool,
    /// `Path` (sent to administrators only).
    pub path: bool,
}

impl Fields {
    /// Everything, for single-item answers.
    pub const ALL: Fields = Fields {
        media_sources: true,
        media_streams: true,
        chapters: true,
        path: true,
    };

    /// Reads `fields=` values; unknown names are ignored, as Jellyfin does.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Fields {
        let has = |wanted: &str| {
            names
                .iter()
                .any(|n| n.as_ref().eq_ignore_ascii_case(wanted))
        };
        Fields {
            media_sources: has("MediaSources"),
            media_streams: has("MediaStreams"),
            chapters: has("Chapters"),
            path: has("Path"),
        }
    }

    /// Whether any asked part needs the items' media streams.
    pub fn needs_streams(&self) -> bool {
        self.media_sources || self.media_streams
    }
}

/// What a DTO needs beyond its own row: looked up once for a whole page.
#[derive(Debug, Default)]
pub struct Related {
    /// Images of the items and of their series.
    pub images: HashMap<JfId, Vec<ItemImage>>,
    /// Media streams of the items (only when asked for).
    pub streams: HashMap<JfId, Vec<StreamInfo>>,
    /// Counts of series and seasons.
    pub counts: HashMap<JfId, FolderCounts>,
    /// Provider ids, extra types, version labels, multi-episode ends.
    pub naming: HashMap<JfId, NamingRead>,
    /// Other versions and further parts of films.
    pub linked: HashMap<JfId, Vec<Linked>>,
    /// Genres, studios and people from local metadata (the single `.nfo` values are in the
    /// item's own row, `Item::local`).
    pub names: HashMap<JfId, ItemNames>,
    /// Chapters of the items (only when asked for).
    pub chapters: HashMap<JfId, Vec<Chapter>>,
    /// Whether the asking user may see paths (an administrator).
    pub show_paths: bool,
    /// Image tags of the people credited, by person (only those with a local image).
    pub person_images: HashMap<JfId, String>,
}

impl Related {
    fn primary_tag(&self, id: JfId) -> Option<String> {
        self.images.get(&id).and_then(|images| {
            images
                .iter()
                .find(|i| i.image_type == "Primary" && i.image_index == 0)
                .map(|i| i.tag.clone())
        })
    }
}

/// The user data of an item.
pub fn user_data_dto(item_id: JfId, data: &UserData, runtime: Option<i64>) -> UserItemDataDto {
    let played_percentage = match runtime {
        Some(r) if r > 0 && data.playback_position_ticks > 0 => {
            Some((data.playback_position_ticks as f64 * 100.0 / r as f64).min(100.0))
        }
        _ => None,
    };
    UserItemDataDto {
        played_percentage,
        unplayed_item_count: None,
        playback_position_ticks: data.playback_position_ticks,
        play_count: data.play_count,
        is_favorite: data.is_favorite,
        last_played_date: data.last_played_at.map(date),
        played: data.played,
        key: item_id.to_n(),
        item_id: item_id.to_n(),
    }
}

/// A library as the `CollectionFolder` view clients list.
pub fn library_dto(library: &Library, server_id: JfId, child_count: Option<i64>) -> BaseItemDto {
    BaseItemDto {
        name: library.name.clone(),
        server_id: server_id.to_n(),
        id: library.id.to_n(),
        etag: Some(short_hash(&[
            library.id.to_n().as_bytes(),
            library.name.as_bytes(),
        ])),
        date_created: Some(date(library.created_at)),
        sort_name: crate::scan::names::sort_name(&library.name),
        is_folder: true,
        kind: "CollectionFolder",
        collection_type: Some(library.kind.as_str()),
        user_data: user_data_dto(library.id, &UserData::default(), None),
        child_count,
        location_type: "FileSystem",
        media_type: "Unknown",
        ..BaseItemDto::default()
    }
}

/// An item as `BaseItemDto`, with the parts `fields` asks for.
pub fn item_dto(item: &Item, server_id: JfId, fields: Fields, related: &Related) -> BaseItemDto {
    let is_folder = item.kind.is_folder();
    let mut image_tags = BTreeMap::new();
    if let Some(tag) = related.primary_tag(item.id) {
        image_tags.insert("Primary", tag);
    }
    let own_images: &[ItemImage] = related
        .images
        .get(&item.id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for kind in ["Logo", "Thumb", "Banner"] {
        if let Some(image) = own_images
            .iter()
            .find(|i| i.image_type == kind && i.image_index == 0)
        {
            image_tags.insert(kind, image.tag.clone());
        }
    }
    let mut backdrops: Vec<&ItemImage> = own_images
        .iter()
        .filter(|i| i.image_type == "Backdrop")
        .collect();
    backdrops.sort_by_key(|i| i.image_index);
    let backdrop_image_tags: Vec<String> = backdrops.iter().map(|i| i.tag.clone()).collect();
    let streams: &[StreamInfo] = related
        .streams
        .get(&item.id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let video = streams.iter().find(|s| s.kind == StreamKind::Video);
    let mut user_data = user_data_dto(item.id, &item.user_data, item.run_time_ticks);
    let counts = related.counts.get(&item.id).copied();
    let (child_count, recursive_item_count) = match (item.kind, counts) {
        (ItemKind::Series | ItemKind::Season, c) => {
            let c = c.unwrap_or_default();
            user_data.unplayed_item_count = Some(c.episodes - c.played_episodes);
            user_data.played = c.episodes > 0 && c.played_episodes == c.episodes;
            (Some(c.children), Some(c.episodes))
        }
        _ => (None, None),
    };
    let media_streams: Vec<MediaStream> = streams.iter().map(media_stream).collect();
    let naming = related.naming.get(&item.id).cloned().unwrap_or_default();
    let local = &item.local;
    let names = related.names.get(&item.id);
    let mut provider_ids = naming.provider_ids.clone();
    provider_ids.extend(local.provider_ids.clone());
    let pairs = |list: &[(JfId, String)]| -> Vec<NameGuidPair> {
        list.iter()
            .map(|(id, name)| NameGuidPair {
                name: name.clone(),
                id: id.to_n(),
            })
            .collect()
    };
    let linked: &[Linked] = related
        .linked
        .get(&item.id)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let versions: Vec<&Linked> = linked
        .iter()
        .filter(|l| l.role == OwnerRole::Version)
        .collect();
    let media_sources = (fields.media_sources && !is_folder).then(|| {
        let mut primary = media_source(item, media_streams.clone());
        if let Some(label) = naming.version_name.clone() {
            primary.name = label;
        }
        let mut sources = vec![primary];
        for version in &versions {
            let streams: Vec<MediaStream> = related
                .streams
                .get(&version.id)
                .map(|s| s.iter().map(media_stream).collect())
                .unwrap_or_default();
            let mut source = media_source(item, streams);
            source.id = version.id.to_n();
            source.name = version.version_name.clone().unwrap_or_default();
            source.container = version.container.clone();
            source.size = version.size_bytes;
            source.bitrate = version.bitrate;
            source.run_time_ticks = version.run_time_ticks;
            sources.push(source);
        }
        sources
    });
    BaseItemDto {
        name: item.name.clone(),
        server_id: server_id.to_n(),
        id: item.id.to_n(),
        etag: Some(item_etag(item)),
        date_created: Some(date(item.date_created)),
        can_delete: false,
        can_download: !is_folder,
        container: item.container.clone(),
        sort_name: item.sort_name.clone(),
        premiere_date: item.premiere_date.map(date),
        media_sources,
        overview: item.overview.clone(),
        run_time_ticks: item.run_time_ticks,
        production_year: item.production_year,
        index_number: item.index_number,
        parent_index_number: item.parent_index_number,
        is_folder,
        parent_id: Some(item.parent_id.unwrap_or(item.library_id).to_n()),
        kind: item.kind.as_str(),
        collection_type: None,
        user_data,
        child_count,
        recursive_item_count,
        series_name: item.series_name.clone(),
        series_id: item.series_id.map(|i| i.to_n()),
        season_id: item.season_id.map(|i| i.to_n()),
        season_name: item.season_name.clone(),
        series_primary_image_tag: item.series_id.and_then(|s| related.primary_tag(s)),
        primary_image_aspect_ratio: None,
        media_streams: (fields.media_streams && !is_folder).then_some(media_streams),
        video_type: (!is_folder).then_some("VideoFile"),
        image_tags,
        backdrop_image_tags,
        chapters: (fields.chapters && !is_folder).then(|| {
            related
                .chapters
                .get(&item.id)
                .map(|list| list.iter().map(ChapterInfo::from).collect())
                .unwrap_or_default()
        }),
        location_type: "FileSystem",
        media_type: if is_folder { "Unknown" } else { "Video" },
        provider_ids,
        width: video.and_then(|v| v.width),
        height: video.and_then(|v| v.height),
        has_subtitles: (!is_folder).then(|| streams.iter().any(|s| s.kind == StreamKind::Subtitle)),
        path: (fields.path && related.show_paths)
            .then(|| item.path.clone())
            .flatten(),
        index_number_end: naming.index_number_end,
        extra_type: naming.extra_type.clone(),
        media_source_count: (!versions.is_empty()).then(|| versions.len() as i64 + 1),
        original_title: local.original_title.clone(),
        taglines: local.tagline.clone().map(|t| vec![t]),
        genres: names
            .filter(|m| !m.genres.is_empty())
            .map(|m| m.genres.iter().map(|(_, n)| n.clone()).collect()),
        genre_items: names
            .filter(|m| !m.genres.is_empty())
            .map(|m| pairs(&m.genres)),
        studios: names
            .filter(|m| !m.studios.is_empty())
            .map(|m| pairs(&m.studios)),
        tags: names.filter(|m| !m.tags.is_empty()).map(|m| m.tags.clone()),
        people: names.filter(|m| !m.people.is_empty()).map(|m| {
            m.people
                .iter()
                .map(|p| BaseItemPerson {
                    name: p.name.clone(),
                    id: p.id.to_n(),
                    role: p.role.clone(),
                    kind: p.kind.clone(),
                    primary_image_tag: related.person_images.get(&p.id).cloned(),
                })
                .collect()
        }),
        official_rating: local.official_rating.clone(),
        community_rating: local.community_rating,
    }
}

/// The one media source of a playable item: its file, played by id. The flags say what a
/// client without a device profile may do; `PlaybackInfo` refines them.
pub fn media_source(item: &Item, media_streams: Vec<MediaStream>) -> MediaSourceInfo {
    let default_audio = media_streams
        .iter()
        .filter(|s| s.kind == "Audio")
        .find(|s| s.is_default)
        .or_else(|| media_streams.iter().find(|s| s.kind == "Audio"))
        .map(|s| s.index);
    let default_subtitle = media_streams
        .iter()
        .filter(|s| s.kind == "Subtitle")
        .find(|s| s.is_default || s.is_forced)
        .map(|s| s.index);
    MediaSourceInfo {
        protocol: "File",
        id: item.id.to_n(),
        kind: "Default",
        container: item.container.clone(),
        size: item.size_bytes,
        name: item.name.clone(),
        is_remote: false,
        etag: Some(item_etag(item)),
        run_time_ticks: item.run_time_ticks,
        read_at_native_framerate: false,
        ignore_dts: false,
        ignore_index: false,
        gen_pts_input: false,
        supports_transcoding: true,
        supports_direct_stream: true,
        supports_direct_play: true,
        is_infinite_stream: false,
        requires_opening: false,
        requires_closing: false,
        requires_looping: false,
        supports_probing: true,
        video_type: "VideoFile",
        media_streams,
        media_attachments: Vec::new(),
        formats: Vec::new(),
        bitrate: item.bitrate,
        required_http_headers: BTreeMap::new(),
        transcoding_url: None,
        transcoding_sub_protocol: "http",
        transcoding_container: None,
        default_audio_stream_index: default_audio,
        default_subtitle_stream_index: default_subtitle,
        has_segments: false,
    }
}

/// Changes whenever the file does (size, modification time) or the item is renamed.
fn item_etag(item: &Item) -> String {
    short_hash(&[
        item.id.as_bytes(),
        item.name.as_bytes(),
        &item.size_bytes.unwrap_or(0).to_le_bytes(),
        &item.file_mtime.unwrap_or(0).to_le_bytes(),
    ])
}

fn short_hash(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hex::encode(&hash.finalize()[..16])
}

/// Subtitle codecs that are text (clients can render them outside the video).
fn is_text_subtitle(codec: Option<&str>) -> bool {
    matches!(
        codec.map(str::to_ascii_lowercase).as_deref(),
        Some("subrip" | "srt" | "ass" | "ssa" | "webvtt" | "vtt" | "mov_text" | "text" | "ttml")
    )
}

/// A stream as Jellyfin describes it.
pub fn media_stream(s: &StreamInfo) -> MediaStream {
    let text_subtitle = s.kind == StreamKind::Subtitle && is_text_subtitle(s.codec.as_deref());
    let is_video = s.kind == StreamKind::Video;
    MediaStream {
        codec: s.client_codec().map(str::to_owned),
        language: s.language.clone(),
        title: s.title.clone(),
        display_title: display_title(s),
        video_range: is_video.then_some("SDR"),
        video_range_type: is_video.then_some("SDR"),
        is_interlaced: s.is_interlaced,
        channel_layout: s.channel_layout.clone(),
        bit_rate: s.bit_rate,
        channels: s.channels,
        sample_rate: s.sample_rate,
        is_default: s.is_default,
        is_forced: s.is_forced,
        is_hearing_impaired: s.is_hearing_impaired,
        height: s.height,
        width: s.width,
        average_frame_rate: s.frame_rate,
        real_frame_rate: s.frame_rate,
        profile: s.profile.clone(),
        kind: s.kind.as_str(),
        aspect_ratio: match (s.width, s.height) {
            (Some(w), Some(h)) if is_video && h > 0 => Some(aspect_ratio(w, h)),
            _ => None,
        },
        index: s.index,
        is_external: s.is_external,
        is_text_subtitle_stream: text_subtitle,
        supports_external_stream: text_subtitle,
        pixel_format: s.pixel_format.clone(),
        level: s.level,
        is_original: false,
        delivery_method: None,
        delivery_url: None,
        is_external_url: None,
    }
}

fn aspect_ratio(width: i64, height: i64) -> String {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(width, height).max(1);
    format!("{}:{}", width / g, height / g)
}

/// `1080p H264 SDR`, `English - AAC - Stereo - Default`; subtitles as
/// `scan::subtitles::display_title` writes them (`French - Forced - SUBRIP`).
pub(crate) fn display_title(s: &StreamInfo) -> String {
    let codec = s.client_codec().map(str::to_ascii_uppercase);
    let language = s.language.as_deref().map(language_name);
    let mut parts: Vec<String> = Vec::new();
    match s.kind {
        StreamKind::Video => {
            let resolution = s.height.map(|h| match h {
                h if h >= 2000 => "4K".to_owned(),
                h if h >= 1000 => "1080p".to_owned(),
                h if h >= 700 => "720p".to_owned(),
                h => format!("{h}p"),
            });
            let line = [resolution, codec, Some("SDR".to_owned())]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            return line;
        }
        StreamKind::Subtitle => return crate::scan::subtitles::display_title(s),
        StreamKind::Audio => {
            parts.extend(language);
            parts.extend(codec);
            parts.extend(match s.channels {
                Some(1) => Some("Mono".to_owned()),
                Some(2) => Some("Stereo".to_owned()),
                Some(6) => Some("5.1".to_owned()),
                Some(8) => Some("7.1".to_owned()),
                Some(n) => Some(format!("{n} ch")),
                None => None,
            });
        }
        _ => {
            parts.extend(language);
            parts.extend(codec);
        }
    }
    if s.is_default {
        parts.push("Default".to_owned());
    }
    if s.is_forced {
        parts.push("Forced".to_owned());
    }
    if parts.is_empty() {
        return s.title.clone().unwrap_or_else(|| "Unknown".to_owned());
    }
    parts.join(" - ")
}

fn language_name(code: &str) -> String {
    match code {
        "eng" | "en" => "English",
        "fre" | "fra" | "fr" => "French",
        "ger" | "deu" | "de" => "German",
        "spa" | "es" => "Spanish",
        "ita" | "it" => "Italian",
        "jpn" | "ja" => "Japanese",
        "por" | "pt" => "Portuguese",
        "dut" | "nld" | "nl" => "Dutch",
        other => {
            return crate::scan::subtitles::language_name(other)
                .map_or_else(|| other.to_owned(), str::to_owned);
        }
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: ItemKind) -> Item {
        Item {
            id: JfId::from_bytes([1; 16]),
            library_id: JfId::from_bytes([2; 16]),
            parent_id: None,
            kind,
            name: "Big Buck Test".to_owned(),
            sort_name: "big buck test".to_owned(),
            path: Some("/secret/media/Big Buck Test (2019).mkv".to_owned()),
            series_id: None,
            season_id: None,
            index_number: None,
            parent_index_number: None,
            production_year: Some(2019),
            premiere_date: None,
            overview: None,
            run_time_ticks: Some(120_000_000),
            container: Some("mkv".to_owned()),
            size_bytes: Some(1000),
            bitrate: Some(800),
            file_mtime: Some(5),
            date_created: 1_704_067_200_000,
            date_modified: 1_704_067_200_000,
            series_name: None,
            season_name: None,
            user_data: UserData {
                playback_position_ticks: 30_000_000,
                ..UserData::default()
            },
            naming: Default::default(),
            local: Default::default(),
            counts: None,
            linked_sources: 0,
        }
    }

    fn streams() -> Vec<StreamInfo> {
        vec![
            StreamInfo {
                index: 0,
                kind: StreamKind::Video,
                codec: Some("h264".to_owned()),
                width: Some(1920),
                height: Some(1080),
                is_default: true,
                ..StreamInfo::default()
            },
            StreamInfo {
                index: 1,
                kind: StreamKind::Audio,
                codec: Some("aac".to_owned()),
                channels: Some(2),
                language: Some("eng".to_owned()),
                is_default: true,
                ..StreamInfo::default()
            },
        ]
    }

    #[test]
    fn a_film_in_a_list_has_no_media_sources_unless_asked() {
        let film = item(ItemKind::Movie);
        let related = Related::default();
        let dto = item_dto(
            &film,
            JfId::from_bytes([9; 16]),
            Fields::default(),
            &related,
        );
        let json = serde_json::to_value(&dto).expect("serializes");
        assert_eq!(json["Type"], "Movie");
        assert_eq!(json["Id"], "01010101010101010101010101010101");
        assert_eq!(json["ParentId"], "02020202020202020202020202020202");
        assert_eq!(json["DateCreated"], "2024-01-01T00:00:00.0000000Z");
        assert_eq!(json["UserData"]["PlayedPercentage"], 25.0);
        assert!(json.get("MediaSources").is_none());
        assert!(json.get("Chapters").is_none());
        assert!(
            !json.to_string().contains("/secret/"),
            "paths never leave: {json}"
        );
    }

    #[test]
    fn a_film_with_all_fields_has_one_media_source_with_its_streams() {
        let film = item(ItemKind::Movie);
        let mut related = Related::default();
        related.streams.insert(film.id, streams());
        let dto = item_dto(&film, JfId::from_bytes([9; 16]), Fields::ALL, &related);
        let json = serde_json::to_value(&dto).expect("serializes");
        let source = &json["MediaSources"][0];
        assert_eq!(source["Id"], json["Id"]);
        assert_eq!(source["Protocol"], "File");
        assert_eq!(source["Container"], "mkv");
        assert_eq!(source["TranscodingSubProtocol"], "http");
        assert_eq!(source["MediaStreams"].as_array().map(Vec::len), Some(2));
        assert_eq!(source["DefaultAudioStreamIndex"], 1);
        assert_eq!(json["MediaStreams"][0]["DisplayTitle"], "1080p H264 SDR");
        assert_eq!(
            json["MediaStreams"][1]["DisplayTitle"],
            "English - AAC - Stereo - Default"
        );
        assert_eq!(json["Chapters"], serde_json::json!([]));
        assert_eq!(json["Width"], 1920);
        assert!(
            !json.to_string().contains("/secret/"),
            "paths never leave: {json}"
        );
    }

    #[test]
    fn a_series_counts_its_unplayed_episodes() {
        let mut series = item(ItemKind::Series);
        series.container = None;
        let mut related = Related::default();
        related.counts.insert(
            series.id,
            FolderCounts {
                children: 1,
                episodes: 2,
                played_episodes: 1,
            },
        );
        let dto = item_dto(&series, JfId::from_bytes([9; 16]), Fields::ALL, &related);
        assert!(dto.is_folder);
        assert!(dto.media_sources.is_none());
        assert_eq!(dto.child_count, Some(1));
        assert_eq!(dto.recursive_item_count, Some(2));
        assert_eq!(dto.user_data.unplayed_item_count, Some(1));
        assert!(!dto.user_data.played);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let fields = Fields::from_names(&["Metascore", "mediasources", "ShortOverview"]);
        assert_eq!(
            fields,
            Fields {
                media_sources: true,
                ..Fields::default()
            }
        );
    }
}

//! Browsing: user views (libraries), item listings and search, one item, TV seasons, episodes
//! and next-up, continue watching (Resume), recently added (Latest), and the library refresh.
//!
//! Also what jellyfin-web's item pages ask beside the item: similar items, theme media,
//! intros, special features, local trailers; filter choices and the name lists (genres,
//! studios, people, years) are in [`names`].
//!
//! Every route exists in both of Jellyfin's styles: the new one (`/Items?userId=`,
//! `/UserViews`, `/UserItems/Resume`) that the TypeScript SDK uses and the legacy one
//! (`/Users/{userId}/Items`, `/Users/{userId}/Views`, ...) that the Python client uses. One
//! handler serves both: [`ActingUser`] reads the user from either place.
//!
//! Listings include `MediaSources`, `MediaStreams` and `Chapters` only when `fields=` asks;
//! `GET /Items/{id}` always includes them. `/Items/Latest` answers a bare array.

mod boxsets;
pub mod dto;
pub mod names;

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

use self::dto::{BaseItemDto, Fields, Related, item_dto, library_dto};
use crate::api::acting::{ActingUser, ItemId};
use crate::api::dto::QueryResult;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::jf::{JfId, Json, List, Path, Query};
use crate::scan::nfo::PersonKind;
use crate::state::AppState;
use crate::store::items::{Item, ItemKind, ItemQuery, Library, PageRelated, SortBy};
use crate::store::metadata::MetadataFilter;

/// The routes. Each handler serves both route styles (see [`ActingUser`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/userviews", get(views))
        .route("/users/{userid}/views", get(views))
        .route("/items", get(items))
        .route("/users/{userid}/items", get(items))
        .route("/items/latest", get(latest))
        .route("/users/{userid}/items/latest", get(latest))
        .route("/useritems/resume", get(resume))
        .route("/users/{userid}/items/resume", get(resume))
        .route("/items/{itemid}", get(item))
        .route("/users/{userid}/items/{itemid}", get(item))
        .route("/items/{itemid}/similar", get(similar))
        .route("/items/{itemid}/thememedia", get(theme_media))
        .route("/items/{itemid}/themesongs", get(theme_list))
        .route("/items/{itemid}/themevideos", get(theme_list))
        .route("/items/{itemid}/intros", get(no_extras_page))
        .route("/users/{userid}/items/{itemid}/intros", get(no_extras_page))
        // Special features and local trailers: `api::extras`, from the scanner's extras.
        .route("/items/filters", get(names::filters))
        .route("/items/filters2", get(names::filters2))
        .route("/items/counts", get(counts))
        .route("/genres", get(names::genres))
        .route("/genres/{name}", get(names::genre))
        .route("/studios", get(names::studios))
        .route("/studios/{name}", get(names::studio))
        .route("/persons", get(names::persons))
        .route("/persons/{name}", get(names::person))
        .route("/years", get(names::years))
        .route("/artists", get(no_names))
        .route("/artists/albumartists", get(no_names))
        .route("/musicgenres", get(no_names))
        .route("/channels", get(no_names))
        .route("/movies/recommendations", get(no_recommendations))
        .route("/shows/upcoming", get(no_names))
        .route("/shows/{seriesid}/seasons", get(seasons))
        .route("/shows/{seriesid}/episodes", get(episodes))
        .route("/shows/nextup", get(next_up))
        .route("/library/refresh", post(refresh))
}

/// Sort direction of a `sortOrder` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortOrder {
    Ascending,
    Descending,
}

impl std::str::FromStr for SortOrder {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ascending" => Ok(SortOrder::Ascending),
            "descending" => Ok(SortOrder::Descending),
            _ => Err(()),
        }
    }
}

/// `filters=` values Ephyra understands; others are ignored. Named as Jellyfin names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
enum ItemFilter {
    IsPlayed,
    IsUnplayed,
    IsFavorite,
    IsResumable,
    IsFolder,
    IsNotFolder,
}

impl std::str::FromStr for ItemFilter {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s.trim().to_ascii_lowercase().as_str() {
            "isplayed" => ItemFilter::IsPlayed,
            "isunplayed" => ItemFilter::IsUnplayed,
            "isfavorite" | "isfavoriteorlikes" => ItemFilter::IsFavorite,
            "isresumable" => ItemFilter::IsResumable,
            "isfolder" => ItemFilter::IsFolder,
            "isnotfolder" => ItemFilter::IsNotFolder,
            _ => return Err(()),
        })
    }
}

/// The query of every listing. Keys in any case; lists comma-separated or repeated; values
/// Ephyra does not know are dropped. The acting user comes from [`ActingUser`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListParams {
    parent_id: Option<JfId>,
    recursive: Option<bool>,
    include_item_types: List<String>,
    exclude_item_types: List<String>,
    media_types: List<String>,
    fields: List<String>,
    sort_by: List<SortBy>,
    sort_order: List<SortOrder>,
    start_index: Option<i64>,
    limit: Option<i64>,
    search_term: Option<String>,
    ids: List<JfId>,
    exclude_item_ids: List<JfId>,
    filters: List<ItemFilter>,
    is_played: Option<bool>,
    is_favorite: Option<bool>,
    is_folder: Option<bool>,
    years: List<i64>,
    name_starts_with: Option<String>,
    name_less_than: Option<String>,
    name_starts_with_or_greater: Option<String>,
    genres: List<String>,
    genre_ids: List<String>,
    studios: List<String>,
    studio_ids: List<String>,
    person_ids: List<String>,
    person: Option<String>,
    person_types: List<String>,
    tags: List<String>,
    official_ratings: List<String>,
    series_id: Option<JfId>,
    season_id: Option<JfId>,
    season: Option<i64>,
    start_item_id: Option<JfId>,
    group_items: Option<bool>,
    enable_total_record_count: Option<bool>,
}

/// Kinds named in a list; `None` when the list named only kinds Ephyra never stores (the
/// answer is then empty, not everything).
fn kinds(names: &List<String>) -> Option<Vec<ItemKind>> {
    let known: Vec<ItemKind> = names.0.iter().filter_map(|n| ItemKind::parse(n)).collect();
    if !names.is_empty() && known.is_empty() {
        None
    } else {
        Some(known)
    }
}

impl ListParams {
    fn fields(&self) -> Fields {
        Fields::from_names(self.fields.as_slice())
    }

    fn page(&self) -> Page {
        Page::new(self.start_index, self.limit)
    }

    /// `sortBy` paired with `sortOrder` by position (a single order applies to all).
    fn sort(&self) -> Vec<(SortBy, bool)> {
        let orders = self.sort_order.as_slice();
        self.sort_by
            .as_slice()
            .iter()
            .enumerate()
            .map(|(i, by)| {
                let order = orders.get(i).or(orders.first());
                (*by, order == Some(&SortOrder::Descending))
            })
            .collect()
    }

    /// The local-metadata filters; `None` when ids were given and none of them is an id (so
    /// nothing can match). Names are pipe-separated in Jellyfin (`Genres=Action|Drama`).
    fn metadata_filter(&self) -> Option<MetadataFilter> {
        let names = |list: &List<String>| -> Vec<String> {
            list.as_slice()
                .iter()
                .flat_map(|v| v.split('|'))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let ids = |list: &List<String>| -> Option<Vec<JfId>> {
            let parsed: Vec<JfId> = list
                .as_slice()
                .iter()
                .filter_map(|v| v.trim().parse().ok())
                .collect();
            (list.is_empty() || !parsed.is_empty()).then_some(parsed)
        };
        Some(MetadataFilter {
            genres: names(&self.genres),
            genre_ids: ids(&self.genre_ids)?,
            studios: names(&self.studios),
            studio_ids: ids(&self.studio_ids)?,
            person_ids: ids(&self.person_ids)?,
            persons: self
                .person
                .as_deref()
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| vec![p.to_owned()])
                .unwrap_or_default(),
            person_kinds: self.person_kinds(),
            official_ratings: names(&self.official_ratings),
            tags: names(&self.tags),
            collection_id: None,
        })
    }

    /// `personTypes=` values Ephyra knows (`Actor`, `Director`, `Writer`).
    fn person_kinds(&self) -> Vec<PersonKind> {
        self.person_types
            .as_slice()
            .iter()
            .filter_map(|t| PersonKind::parse(t.trim()))
            .collect()
    }

    /// The store query these parameters describe, or `None` when nothing can match.
    fn to_query(&self, user: JfId) -> Option<ItemQuery> {
        let mut include = kinds(&self.include_item_types)?;
        let exclude = kinds(&self.exclude_item_types).unwrap_or_default();
        if !self.media_types.is_empty() {
            if !self
                .media_types
                .as_slice()
                .iter()
                .any(|m| m.eq_ignore_ascii_case("Video"))
            {
                return None;
            }
            include = restrict(include, &[ItemKind::Movie, ItemKind::Episode]);
        }
        let filters = self.filters.as_slice();
        let folder = if filters.contains(&ItemFilter::IsFolder) {
            Some(true)
        } else if filters.contains(&ItemFilter::IsNotFolder) {
            Some(false)
        } else {
            self.is_folder
        };
        match folder {
            Some(true) => include = restrict(include, &[ItemKind::Series, ItemKind::Season]),
            Some(false) => include = restrict(include, &[ItemKind::Movie, ItemKind::Episode]),
            None => {}
        }
        if include.is_empty() && (!self.media_types.is_empty() || folder.is_some()) {
            return None;
        }
        let is_played = if filters.contains(&ItemFilter::IsPlayed) {
            Some(true)
        } else if filters.contains(&ItemFilter::IsUnplayed) {
            Some(false)
        } else {
            self.is_played
        };
        let page = self.page();
        let metadata = self.metadata_filter()?;
        Some(ItemQuery {
            user_id: Some(user),
            metadata,
            recursive: self.recursive.unwrap_or(false),
            include_kinds: include,
            exclude_kinds: exclude,
            ids: self.ids.0.clone(),
            exclude_ids: self.exclude_item_ids.0.clone(),
            search_term: self.search_term.clone(),
            is_played,
            is_favorite: if filters.contains(&ItemFilter::IsFavorite) {
                Some(true)
            } else {
                self.is_favorite
            },
            is_resumable: filters.contains(&ItemFilter::IsResumable),
            years: self.years.0.clone(),
            name_starts_with: self
                .name_starts_with
                .clone()
                .or_else(|| self.name_starts_with_or_greater.clone()),
            name_less_than: self.name_less_than.clone(),
            sort: self.sort(),
            start_index: page.start,
            limit: page.limit,
            // Counting every match costs a full scan; clients that show no total say so.
            without_total: self.enable_total_record_count == Some(false),
            ..ItemQuery::default()
        })
    }
}

/// `current` narrowed to `allowed` (all of `allowed` when `current` is empty).
fn restrict(current: Vec<ItemKind>, allowed: &[ItemKind]) -> Vec<ItemKind> {
    if current.is_empty() {
        allowed.to_vec()
    } else {
        current
            .into_iter()
            .filter(|k| allowed.contains(k))
            .collect()
    }
}

/// `startIndex` and `limit` of a listing, read once (negative values count as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Page {
    start: i64,
    limit: Option<i64>,
}

impl Page {
    fn new(start: Option<i64>, limit: Option<i64>) -> Page {
        Page {
            start: start.unwrap_or(0).max(0),
            limit: limit.map(|l| l.max(0)),
        }
    }

    /// This page of a list held in memory, and the list's length.
    fn slice<T>(self, all: Vec<T>) -> (Vec<T>, i64) {
        let total = i64::try_from(all.len()).unwrap_or(i64::MAX);
        let skip = usize::try_from(self.start).unwrap_or(usize::MAX);
        let take = self
            .limit
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(usize::MAX);
        (all.into_iter().skip(skip).take(take).collect(), total)
    }

    /// Jellyfin's `QueryResult` for this page.
    fn result<T>(self, items: Vec<T>, total: i64) -> Json<QueryResult<T>> {
        Json(QueryResult {
            items,
            total_record_count: u64::try_from(total).unwrap_or(0),
            start_index: u64::try_from(self.start).unwrap_or(0),
        })
    }

    fn empty<T>(self) -> Json<QueryResult<T>> {
        self.result(Vec::new(), 0)
    }
}

/// `fields` with `Path` kept only for administrators (Jellyfin sends paths to them alone).
async fn allowed(state: &AppState, user: &ActingUser, fields: Fields) -> Result<Fields, ApiError> {
    Ok(Fields {
        path: fields.path && user.is_admin(state).await?,
        ..fields
    })
}

/// Builds a page's DTOs. The items' rows carry their user data, naming details, `.nfo`
/// values and folder counts; what they do not is read for the whole page at once: images and
/// names in one statement, and media streams and other versions only when `fields` asks.
pub async fn dtos(
    state: &AppState,
    items: &[Item],
    fields: Fields,
) -> Result<Vec<BaseItemDto>, ApiError> {
    let ids: Vec<JfId> = items.iter().map(|i| i.id).collect();
    let mut image_ids: Vec<JfId> = ids.clone();
    image_ids.extend(items.iter().filter_map(|i| i.series_id));
    image_ids.sort();
    image_ids.dedup();
    let playable: Vec<JfId> = items
        .iter()
        .filter(|i| !i.kind.is_folder())
        .map(|i| i.id)
        .collect();
    // Width, Height and HasSubtitles come from the streams too, so single items and listings
    // asking for sources read them; other listings skip the query, as they skip chapters
    // unless asked. The reads go out at once (pooled connections), so a page waits for one
    // round trip, not one per read.
    let streams = async {
        if fields.needs_streams() {
            state.store.media_streams(&playable).await
        } else {
            Ok(HashMap::new())
        }
    };
    let chapters = async {
        if fields.chapters {
            state.store.chapters(&playable).await
        } else {
            Ok(HashMap::new())
        }
    };
    let (PageRelated { images, names }, streams, chapters) = futures::try_join!(
        state.store.images_and_names(&image_ids, &ids),
        streams,
        chapters
    )?;
    let mut related = Related {
        images,
        streams,
        counts: items
            .iter()
            .filter_map(|i| Some((i.id, i.counts?)))
            .collect(),
        naming: items.iter().map(|i| (i.id, i.naming.clone())).collect(),
        names,
        linked: HashMap::new(),
        chapters,
        // The caller decided: `fields.path` is set for administrators only.
        show_paths: fields.path,
        person_images: HashMap::new(),
    };
    // Only pages that credit people (an item's details, mostly) look up their images.
    let mut people: Vec<JfId> = related
        .names
        .values()
        .flat_map(|n| n.people.iter().map(|p| p.id))
        .collect();
    if !people.is_empty() {
        people.sort();
        people.dedup();
        related.person_images = state
            .store
            .person_images(&people)
            .await?
            .into_iter()
            .map(|(id, b)| (id, b.image.tag))
            .collect();
    }
    let any_linked = items.iter().any(|i| i.linked_sources > 0);
    if (fields.media_sources || fields.needs_streams()) && any_linked {
        related.linked = state.store.linked_of(&playable).await?;
        if fields.needs_streams() {
            let linked_ids: Vec<JfId> = related.linked.values().flatten().map(|l| l.id).collect();
            related
                .streams
                .extend(state.store.media_streams(&linked_ids).await?);
        }
    }
    Ok(items
        .iter()
        .map(|i| item_dto(i, state.server_id, fields, &related))
        .collect())
}

/// Runs a store query and builds the page's DTOs.
async fn query_page(
    state: &AppState,
    query: &ItemQuery,
    fields: Fields,
    page: Page,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let found = state.store.query_items(query).await?;
    let dtos = dtos(state, &found.items, fields).await?;
    Ok(page.result(dtos, found.total))
}

// ----- views -----------------------------------------------------------------------------

/// The user's libraries, in the order of their `OrderedViews` setting (others after, by
/// name), without the ones they left out of "My media".
async fn views(
    State(state): State<AppState>,
    user: ActingUser,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let views = view_dtos(&state, user.id).await?;
    let total = i64::try_from(views.len()).unwrap_or(0);
    Ok(Page::default().result(views, total))
}

/// The user's views: their libraries and, once a collection exists, the Collections view
/// (as Jellyfin lists its `boxsets` folder only when it holds a set), in the order of
/// `OrderedViews`, then by name, without those left out of "My media".
async fn view_dtos(state: &AppState, user: JfId) -> Result<Vec<BaseItemDto>, ApiError> {
    let libraries = user_libraries(state, user).await?;
    let mut views = library_dtos(state, &libraries).await?;
    let sets = boxsets::count(state).await?;
    if sets == 0 {
        return Ok(views);
    }
    let collections = boxsets::collections_view_dto(state, sets);
    let config = match state.store.user_by_id(user).await? {
        Some(user) => Some(
            crate::api::users::user_dto(state, &user)
                .await?
                .configuration,
        ),
        None => None,
    };
    let named = |list: &[String], id: &str| {
        list.iter()
            .position(|v| v.parse::<JfId>().ok().map(|i| i.to_n()).as_deref() == Some(id))
    };
    let (ordered, excluded): (&[String], &[String]) = config
        .as_ref()
        .map_or((&[], &[]), |c| (&c.ordered_views, &c.my_media_excludes));
    if named(excluded, &collections.id).is_some() {
        return Ok(views);
    }
    let rank = |id: &str| named(ordered, id).unwrap_or(usize::MAX);
    let key = (rank(&collections.id), collections.sort_name.to_lowercase());
    let at = views
        .iter()
        .position(|v| (rank(&v.id), v.sort_name.to_lowercase()) > key)
        .unwrap_or(views.len());
    views.insert(at, collections);
    Ok(views)
}

async fn user_libraries(state: &AppState, user: JfId) -> Result<Vec<Library>, ApiError> {
    let mut libraries = state.store.libraries().await?;
    let Some(user) = state.store.user_by_id(user).await? else {
        return Ok(libraries);
    };
    let config = crate::api::users::user_dto(state, &user)
        .await?
        .configuration;
    let excluded = |id: JfId| {
        config
            .my_media_excludes
            .iter()
            .any(|e| e.parse::<JfId>().ok() == Some(id))
    };
    libraries.retain(|l| !excluded(l.id));
    let rank = |id: JfId| {
        config
            .ordered_views
            .iter()
            .position(|v| v.parse::<JfId>().ok() == Some(id))
            .unwrap_or(usize::MAX)
    };
    // Stable: libraries not in the order keep their order by name.
    libraries.sort_by_key(|l| rank(l.id));
    Ok(libraries)
}

async fn library_dtos(
    state: &AppState,
    libraries: &[Library],
) -> Result<Vec<BaseItemDto>, ApiError> {
    if libraries.is_empty() {
        return Ok(Vec::new());
    }
    let counts = state.store.library_child_counts().await?;
    Ok(libraries
        .iter()
        .map(|library| {
            let count = counts.get(&library.id).copied().unwrap_or(0);
            library_dto(library, state.server_id, Some(count))
        })
        .collect())
}

// ----- listings --------------------------------------------------------------------------

/// `/Items`: children of a library or folder, or search across everything.
async fn items(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let fields = allowed(&state, &user, params.fields()).await?;
    let user = user.id;
    let page = params.page();
    // Collections: the Collections folder holds the sets; `IncludeItemTypes=BoxSet` lists
    // them wherever the parent points (a library narrows them to sets with a film in it, as
    // Jellyfin 12 does; the movies "Collections" tab sends its library).
    if let Some(parent) = params.parent_id
        && boxsets::is_collections_folder(&state, parent)
    {
        let types = params.include_item_types.as_slice();
        if !types.is_empty() && !boxsets::asks_for_sets_only(&params) {
            return Ok(page.empty());
        }
        return boxsets::list(&state, user, &params, None).await;
    }
    if boxsets::asks_for_sets_only(&params) {
        let library = match params.parent_id {
            None => None,
            Some(parent) if state.store.library(parent).await?.is_some() => Some(parent),
            // Sets hold films only: no other item has one below it.
            Some(_) => return Ok(page.empty()),
        };
        return boxsets::list(&state, user, &params, library).await;
    }
    let Some(mut query) = params.to_query(user) else {
        return Ok(page.empty());
    };
    match params.parent_id {
        // A set: its films.
        Some(parent) if state.store.is_boxset(parent).await? => {
            boxsets::children_query(&mut query, parent);
        }
        // A library or an item: the store narrows to either without asking which.
        Some(parent) => query.parent_id = Some(parent),
        // The user's root: its children are the views (libraries, Collections).
        None if !query.recursive && query.ids.is_empty() && query.search_term.is_none() => {
            let views = view_dtos(&state, user).await?;
            let (shown, total) = page.slice(views);
            return Ok(page.result(shown, total));
        }
        None => {
            // Searching by id or text looks everywhere.
            query.recursive = true;
        }
    }
    query_page(&state, &query, fields, page).await
}

// ----- one item --------------------------------------------------------------------------

/// An item with every field, or a library's view.
async fn item(
    State(state): State<AppState>,
    user: ActingUser,
    ItemId(id): ItemId,
) -> Result<Json<BaseItemDto>, ApiError> {
    // Items are asked for far more often than libraries: look for one first.
    let Some(item) = state.store.item(id, Some(user.id)).await? else {
        if let Some(library) = state.store.library(id).await? {
            let mut views = library_dtos(&state, &[library]).await?;
            return views
                .pop()
                .map(Json)
                .ok_or_else(|| ApiError::not_found("Item not found."));
        }
        if boxsets::is_collections_folder(&state, id) {
            let sets = boxsets::count(&state).await?;
            if sets > 0 {
                return Ok(Json(boxsets::collections_view_dto(&state, sets)));
            }
        }
        if let Some(set) = boxsets::boxset_item(&state, user.id, id).await? {
            return Ok(Json(set));
        }
        // A person, genre or studio page asks for its name as an item.
        return names::name_item(&state, id)
            .await?
            .map(Json)
            .ok_or_else(|| ApiError::not_found("Item not found."));
    };
    let fields = allowed(&state, &user, Fields::ALL).await?;
    let mut dtos = dtos(&state, &[item], fields).await?;
    dtos.pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Item not found."))
}

/// The item a route names, or 404.
async fn existing_item(state: &AppState, user: JfId, id: JfId) -> Result<Item, ApiError> {
    state
        .store
        .item(id, Some(user))
        .await?
        .ok_or_else(|| ApiError::not_found("Item not found."))
}

/// 404 unless `id` is an item or a collection (the pages of both ask for theme media and
/// intros).
async fn existing_item_or_set(state: &AppState, user: JfId, id: JfId) -> Result<(), ApiError> {
    if state.store.item(id, Some(user)).await?.is_some() || state.store.is_boxset(id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("Item not found."))
    }
}

/// Most candidates `similar` reads to choose from.
const SIMILAR_CANDIDATES: i64 = 500;

/// `/Items/{id}/Similar`: items of the same kind in the same library, those from the nearest
/// years first. (Jellyfin ranks by shared genres, studios and people; Ephyra stores none of
/// those, so release year is the closeness it can measure.)
async fn similar(
    State(state): State<AppState>,
    user: ActingUser,
    ItemId(id): ItemId,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let page = Page::new(None, Some(params.limit.unwrap_or(12).clamp(0, 100)));
    let item = existing_item(&state, user.id, id).await?;
    let kind = match item.kind {
        // An extra (trailer, featurette) is like the films around it.
        ItemKind::Movie | ItemKind::Trailer | ItemKind::Video => ItemKind::Movie,
        ItemKind::Series | ItemKind::Season | ItemKind::Episode => ItemKind::Series,
    };
    let own_series = item.series_id.unwrap_or(item.id);
    let found = state
        .store
        .query_items(&ItemQuery {
            user_id: Some(user.id),
            library_id: Some(item.library_id),
            recursive: true,
            include_kinds: vec![kind],
            exclude_ids: vec![item.id, own_series],
            sort: vec![(SortBy::ProductionYear, false)],
            limit: Some(SIMILAR_CANDIDATES),
            ..ItemQuery::default()
        })
        .await?;
    let year = item.production_year.unwrap_or(0);
    let mut candidates = found.items;
    candidates.sort_by_key(|c| (c.production_year.unwrap_or(0) - year).abs());
    let (shown, total) = page.slice(candidates);
    let fields = allowed(&state, &user, params.fields()).await?;
    let dtos = dtos(&state, &shown, fields).await?;
    Ok(page.result(dtos, total))
}

/// `/Items/{id}/ThemeMedia`: Ephyra keeps no theme songs or videos, so all three lists are
/// empty (Jellyfin's answer for an item without any).
async fn theme_media(
    State(state): State<AppState>,
    user: ActingUser,
    ItemId(id): ItemId,
) -> Result<Json<serde_json::Value>, ApiError> {
    existing_item_or_set(&state, user.id, id).await?;
    let empty = || serde_json::json!({ "OwnerId": id, "Items": [], "TotalRecordCount": 0, "StartIndex": 0 });
    Ok(Json(serde_json::json!({
        "ThemeVideosResult": empty(),
        "ThemeSongsResult": empty(),
        "SoundtrackSongsResult": empty(),
    })))
}

async fn theme_list(
    State(state): State<AppState>,
    user: ActingUser,
    ItemId(id): ItemId,
) -> Result<Json<serde_json::Value>, ApiError> {
    existing_item_or_set(&state, user.id, id).await?;
    Ok(Json(
        serde_json::json!({ "OwnerId": id, "Items": [], "TotalRecordCount": 0, "StartIndex": 0 }),
    ))
}

/// Intros: none (Ephyra plays no pre-rolls). A `QueryResult`, as Jellyfin answers.
async fn no_extras_page(
    State(state): State<AppState>,
    user: ActingUser,
    ItemId(id): ItemId,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    existing_item_or_set(&state, user.id, id).await?;
    Ok(Page::default().empty())
}

/// Genres, studios, people, artists, channels, upcoming episodes: Ephyra stores none, so
/// the answer is Jellyfin's empty `QueryResult`.
async fn no_names(
    _user: ActingUser,
    Query(params): Query<ListParams>,
) -> Json<QueryResult<BaseItemDto>> {
    params.page().empty()
}

/// Film recommendations need the genres and people Ephyra does not store: none.
async fn no_recommendations(_user: ActingUser) -> Json<Vec<serde_json::Value>> {
    Json(Vec::new())
}

/// `/Items/Counts`: how many films, series and episodes the user can see.
async fn counts(
    State(state): State<AppState>,
    user: ActingUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    let count = |kind: ItemKind| {
        let state = state.clone();
        async move {
            state
                .store
                .query_items(&ItemQuery {
                    user_id: Some(user.id),
                    recursive: true,
                    include_kinds: vec![kind],
                    limit: Some(0),
                    ..ItemQuery::default()
                })
                .await
                .map(|p| p.total)
        }
    };
    let movies = count(ItemKind::Movie).await?;
    let series = count(ItemKind::Series).await?;
    let episodes = count(ItemKind::Episode).await?;
    let sets = boxsets::count(&state).await?;
    Ok(Json(serde_json::json!({
        "MovieCount": movies,
        "SeriesCount": series,
        "EpisodeCount": episodes,
        "ArtistCount": 0,
        "ProgramCount": 0,
        "TrailerCount": 0,
        "SongCount": 0,
        "AlbumCount": 0,
        "MusicVideoCount": 0,
        "BoxSetCount": sets,
        "BookCount": 0,
        "ItemCount": movies + series + episodes + sets,
    })))
}

// ----- latest, resume --------------------------------------------------------------------

/// Recently added films and episodes, newest first; with `groupItems` (the default) several
/// new episodes of one series show as that series. A bare array, as Jellyfin answers.
async fn latest(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<BaseItemDto>>, ApiError> {
    let fields = allowed(&state, &user, params.fields()).await?;
    let user = user.id;
    let limit = usize::try_from(params.limit.unwrap_or(20).clamp(0, 500)).unwrap_or(20);
    let include = match kinds(&params.include_item_types) {
        Some(k) if !k.is_empty() => restrict(k, &[ItemKind::Movie, ItemKind::Episode]),
        Some(_) => vec![ItemKind::Movie, ItemKind::Episode],
        None => return Ok(Json(Vec::new())),
    };
    if include.is_empty() {
        return Ok(Json(Vec::new()));
    }
    let query = ItemQuery {
        user_id: Some(user),
        recursive: true,
        include_kinds: include,
        is_played: params.is_played,
        sort: vec![(SortBy::DateCreated, true)],
        // Grouping folds episodes together: read enough to fill the page after it.
        limit: Some(i64::try_from(limit.saturating_mul(8).max(64)).unwrap_or(i64::MAX)),
        // Newest first by an indexed column: without a total, only those rows are read.
        without_total: true,
        parent_id: params.parent_id,
        ..ItemQuery::default()
    };
    // The newest matches' ids only; the few shown are read in full below, so grouping 128
    // candidates costs one narrow index read instead of 128 full rows.
    let candidates = state.store.query_keys(&query).await?;
    let group = params.group_items.unwrap_or(true);
    // (what is shown: the item, or the series of several new episodes; how many it stands for)
    let mut entries: Vec<(JfId, usize)> = Vec::new();
    let mut series_slot: HashMap<JfId, usize> = HashMap::new();
    for key in candidates {
        match (group, key.kind, key.series_id) {
            (true, ItemKind::Episode, Some(series)) => match series_slot.get(&series) {
                // A second new episode: the series stands for them.
                Some(&slot) => entries[slot] = (series, entries[slot].1 + 1),
                None => {
                    series_slot.insert(series, entries.len());
                    entries.push((key.id, 1));
                }
            },
            _ => entries.push((key.id, 1)),
        }
        if entries.len() > limit {
            break;
        }
    }
    entries.truncate(limit);
    let ids: Vec<JfId> = entries.iter().map(|(id, _)| *id).collect();
    let shown = state.store.items_in_order(&ids, Some(user)).await?;
    let new_counts: HashMap<JfId, i64> = entries
        .iter()
        .filter(|(_, count)| *count > 1)
        .map(|(id, count)| (*id, i64::try_from(*count).unwrap_or(0)))
        .collect();
    let mut dtos = dtos(&state, &shown, fields).await?;
    for (dto, item) in dtos.iter_mut().zip(&shown) {
        if let Some(count) = new_counts.get(&item.id) {
            dto.child_count = Some(*count);
        }
    }
    Ok(Json(dtos))
}

/// Films and episodes with a resume position, most recently played first.
async fn resume(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let fields = allowed(&state, &user, params.fields()).await?;
    let user = user.id;
    let page = params.page();
    let Some(mut query) = params.to_query(user) else {
        return Ok(page.empty());
    };
    query.recursive = true;
    query.is_resumable = true;
    query.include_kinds = restrict(query.include_kinds, &[ItemKind::Movie, ItemKind::Episode]);
    if query.include_kinds.is_empty() {
        return Ok(page.empty());
    }
    query.sort = vec![(SortBy::DatePlayed, true)];
    query.parent_id = params.parent_id;
    query_page(&state, &query, fields, page).await
}

// ----- TV ----------------------------------------------------------------------------------

/// The series of a `/Shows/{id}/...` route: 400 for a bad id, 404 for anything but a series.
async fn series(state: &AppState, id: JfId, user: JfId) -> Result<Item, ApiError> {
    state
        .store
        .item(id, Some(user))
        .await?
        .filter(|i| i.kind == ItemKind::Series)
        .ok_or_else(|| ApiError::not_found("Series not found."))
}

async fn seasons(
    State(state): State<AppState>,
    user: ActingUser,
    Path(series_id): Path<JfId>,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let series = series(&state, series_id, user.id).await?;
    let query = ItemQuery {
        user_id: Some(user.id),
        ancestor_id: Some(series.id),
        include_kinds: vec![ItemKind::Season],
        sort: vec![(SortBy::IndexNumber, false)],
        ..ItemQuery::default()
    };
    let fields = allowed(&state, &user, params.fields()).await?;
    query_page(&state, &query, fields, Page::default()).await
}

async fn episodes(
    State(state): State<AppState>,
    user: ActingUser,
    Path(series_id): Path<JfId>,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let fields = allowed(&state, &user, params.fields()).await?;
    let user = user.id;
    let series = series(&state, series_id, user).await?;
    let ancestor = match (params.season_id, params.season) {
        (Some(season), _) => season,
        (None, Some(number)) => state.store.ids().season(
            series.id,
            u32::try_from(number).map_err(|_| ApiError::bad_request("Bad season number."))?,
        ),
        (None, None) => series.id,
    };
    let mut sort = params.sort();
    if sort.is_empty() {
        sort = vec![
            (SortBy::ParentIndexNumber, false),
            (SortBy::IndexNumber, false),
        ];
    }
    let found = state
        .store
        .query_items(&ItemQuery {
            user_id: Some(user),
            ancestor_id: Some(ancestor),
            recursive: true,
            include_kinds: vec![ItemKind::Episode],
            sort,
            ..ItemQuery::default()
        })
        .await?;
    let mut episodes = found.items;
    if let Some(start_item) = params.start_item_id {
        let at = episodes
            .iter()
            .position(|e| e.id == start_item)
            .unwrap_or(0);
        episodes.drain(..at);
    }
    let page = params.page();
    let (shown, total) = page.slice(episodes);
    let dtos = dtos(&state, &shown, fields).await?;
    Ok(page.result(dtos, total))
}

/// For each series the user has watched: the first unplayed episode after the one watched
/// last, series watched most recently first (the store computes it, one row per series); for
/// an explicitly named series that nobody watched yet, its first episode.
async fn next_up(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let fields = allowed(&state, &user, params.fields()).await?;
    let user = user.id;
    let page = params.page();
    // `parentId` (a library, or a series narrowing like `seriesId`) unless `seriesId` is given.
    let scope = params.parent_id.filter(|_| params.series_id.is_none());
    let mut found = state.store.next_up(user, scope, params.series_id).await?;
    if found.is_empty()
        && let Some(series) = params.series_id
    {
        let first = state
            .store
            .query_items(&ItemQuery {
                user_id: Some(user),
                ancestor_id: Some(series),
                recursive: true,
                include_kinds: vec![ItemKind::Episode],
                is_played: Some(false),
                sort: vec![
                    (SortBy::ParentIndexNumber, false),
                    (SortBy::IndexNumber, false),
                ],
                limit: Some(1),
                without_total: true,
                ..ItemQuery::default()
            })
            .await?;
        found.extend(first.items);
    }
    let (shown, total) = page.slice(found);
    let dtos = dtos(&state, &shown, fields).await?;
    Ok(page.result(dtos, total))
}

// ----- library refresh -------------------------------------------------------------------

/// `POST /Library/Refresh` (administrators): enqueues a library scan for any replica's
/// workers and answers 204 at once. When a scan is already waiting, that one covers it.
async fn refresh(State(state): State<AppState>, caller: AuthUser) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    state
        .store
        .enqueue(&crate::jobs::kinds::library_scan())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> ListParams {
        crate::jf::from_value(crate::jf::parse_query(query)).expect("parses")
    }

    #[test]
    fn sort_orders_pair_with_sort_keys_by_position() {
        let p = params("SortBy=SortName,DateCreated&SortOrder=Descending");
        assert_eq!(
            p.sort(),
            vec![(SortBy::SortName, true), (SortBy::DateCreated, true)]
        );
        let p = params("sortBy=ProductionYear&sortBy=SortName&sortOrder=Descending,Ascending");
        assert_eq!(
            p.sort(),
            vec![(SortBy::ProductionYear, true), (SortBy::SortName, false)]
        );
    }

    #[test]
    fn only_unknown_item_types_match_nothing() {
        let user = JfId::from_bytes([1; 16]);
        assert!(params("IncludeItemTypes=BoxSet").to_query(user).is_none());
        let q = params("IncludeItemTypes=Movie,BoxSet&Recursive=True")
            .to_query(user)
            .expect("a query");
        assert_eq!(q.include_kinds, vec![ItemKind::Movie]);
        assert!(q.recursive);
    }

    #[test]
    fn filters_become_store_conditions() {
        let user = JfId::from_bytes([1; 16]);
        let q = params("Filters=IsResumable,IsFavorite&filters=IsUnplayed,Likes")
            .to_query(user)
            .expect("a query");
        assert!(q.is_resumable);
        assert_eq!(q.is_favorite, Some(true));
        assert_eq!(q.is_played, Some(false));
    }

    #[test]
    fn media_types_other_than_video_match_nothing() {
        let user = JfId::from_bytes([1; 16]);
        assert!(params("MediaTypes=Audio").to_query(user).is_none());
        let q = params("mediaTypes=Video").to_query(user).expect("a query");
        assert_eq!(q.include_kinds, vec![ItemKind::Movie, ItemKind::Episode]);
    }
}

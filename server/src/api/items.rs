//! Browsing: user views (libraries), item listings and search, one item, TV seasons, episodes
//! and next-up, continue watching (Resume), recently added (Latest), and the library refresh.
//!
//! Every route exists in both of Jellyfin's styles: the new one (`/Items?userId=`,
//! `/UserViews`, `/UserItems/Resume`) that the TypeScript SDK uses and the legacy one
//! (`/Users/{userId}/Items`, `/Users/{userId}/Views`, ...) that the Python client uses. Both
//! resolve the user the same way: the token's user, or another one for administrators.
//!
//! Listings include `MediaSources`, `MediaStreams` and `Chapters` only when `fields=` asks;
//! `GET /Items/{id}` always includes them. `/Items/Latest` answers a bare array.

pub mod dto;

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

use self::dto::{BaseItemDto, Fields, Related, item_dto, library_dto};
use crate::api::dto::QueryResult;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::jf::{JfId, Json, List, Path, Query};
use crate::state::AppState;
use crate::store::items::{Item, ItemKind, ItemQuery, Library, SortBy};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/userviews", get(views))
        .route("/users/{userid}/views", get(views_legacy))
        .route("/items", get(items))
        .route("/users/{userid}/items", get(items_legacy))
        .route("/items/latest", get(latest))
        .route("/users/{userid}/items/latest", get(latest_legacy))
        .route("/useritems/resume", get(resume))
        .route("/users/{userid}/items/resume", get(resume_legacy))
        .route("/items/{itemid}", get(item))
        .route("/users/{userid}/items/{itemid}", get(item_legacy))
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
/// Ephyra does not know are dropped.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListParams {
    user_id: Option<JfId>,
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
    filters: List<ItemFilter>,
    is_played: Option<bool>,
    is_favorite: Option<bool>,
    is_folder: Option<bool>,
    series_id: Option<JfId>,
    season_id: Option<JfId>,
    season: Option<i64>,
    start_item_id: Option<JfId>,
    group_items: Option<bool>,
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
        Some(ItemQuery {
            user_id: Some(user),
            recursive: self.recursive.unwrap_or(false),
            include_kinds: include,
            exclude_kinds: exclude,
            ids: self.ids.0.clone(),
            search_term: self.search_term.clone(),
            is_played,
            is_favorite: if filters.contains(&ItemFilter::IsFavorite) {
                Some(true)
            } else {
                self.is_favorite
            },
            is_resumable: filters.contains(&ItemFilter::IsResumable),
            sort: self.sort(),
            start_index: self.start_index.unwrap_or(0).max(0),
            limit: self.limit.map(|l| l.max(0)),
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

/// Looks up what a page of items needs (images, streams if asked, folder counts) and builds
/// their DTOs.
pub async fn dtos(
    state: &AppState,
    items: &[Item],
    user: JfId,
    fields: Fields,
) -> Result<Vec<BaseItemDto>, ApiError> {
    let mut image_ids: Vec<JfId> = items.iter().map(|i| i.id).collect();
    image_ids.extend(items.iter().filter_map(|i| i.series_id));
    image_ids.sort();
    image_ids.dedup();
    let playable: Vec<JfId> = items
        .iter()
        .filter(|i| !i.kind.is_folder())
        .map(|i| i.id)
        .collect();
    let folders: Vec<(JfId, ItemKind)> = items
        .iter()
        .filter(|i| i.kind.is_folder())
        .map(|i| (i.id, i.kind))
        .collect();
    let related = Related {
        images: state.store.images(&image_ids).await?,
        // Width, Height and HasSubtitles come from the streams too, so single items and
        // listings asking for sources read them; other listings skip the query.
        streams: if fields.needs_streams() {
            state.store.media_streams(&playable).await?
        } else {
            HashMap::new()
        },
        counts: state.store.folder_counts(&folders, Some(user)).await?,
        naming: state.store.naming_of(&image_ids).await?,
        linked: HashMap::new(),
        // Jellyfin sends `Path` to administrators only.
        show_paths: fields.path && crate::api::extras::is_admin(state, user).await?,
    };
    let mut related = related;
    if fields.media_sources || fields.needs_streams() {
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

fn page(items: Vec<BaseItemDto>, total: i64, start: i64) -> Json<QueryResult<BaseItemDto>> {
    Json(QueryResult {
        items,
        total_record_count: u64::try_from(total).unwrap_or(0),
        start_index: u64::try_from(start).unwrap_or(0),
    })
}

fn empty_page(start: i64) -> Json<QueryResult<BaseItemDto>> {
    page(Vec::new(), 0, start)
}

// ----- views -----------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ViewParams {
    user_id: Option<JfId>,
}

async fn views(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(params): Query<ViewParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    caller.acting_for(params.user_id)?;
    let libraries = state.store.libraries().await?;
    let views = library_dtos(&state, &libraries).await?;
    let total = i64::try_from(views.len()).unwrap_or(0);
    Ok(page(views, total, 0))
}

async fn views_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(user_id): Path<JfId>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    caller.acting_for(Some(user_id))?;
    let libraries = state.store.libraries().await?;
    let views = library_dtos(&state, &libraries).await?;
    let total = i64::try_from(views.len()).unwrap_or(0);
    Ok(page(views, total, 0))
}

async fn library_dtos(
    state: &AppState,
    libraries: &[Library],
) -> Result<Vec<BaseItemDto>, ApiError> {
    let mut out = Vec::with_capacity(libraries.len());
    for library in libraries {
        let top = state
            .store
            .query_items(&ItemQuery {
                library_id: Some(library.id),
                limit: Some(0),
                ..ItemQuery::default()
            })
            .await?;
        out.push(library_dto(library, state.server_id, Some(top.total)));
    }
    Ok(out)
}

// ----- listings --------------------------------------------------------------------------

async fn items(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    list(&state, user, params).await
}

async fn items_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(user_id): Path<JfId>,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(Some(user_id))?;
    list(&state, user, params).await
}

/// `/Items`: children of a library or folder, or search across everything.
async fn list(
    state: &AppState,
    user: JfId,
    params: ListParams,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let start = params.start_index.unwrap_or(0).max(0);
    let Some(mut query) = params.to_query(user) else {
        return Ok(empty_page(start));
    };
    match params.parent_id {
        Some(parent) => {
            if state.store.library(parent).await?.is_some() {
                query.library_id = Some(parent);
            } else if state.store.item(parent, None).await?.is_some() {
                query.ancestor_id = Some(parent);
            } else {
                return Ok(empty_page(start));
            }
        }
        // The user's root: its children are the libraries (Jellyfin lists the views).
        None if !query.recursive && query.ids.is_empty() && query.search_term.is_none() => {
            let libraries = state.store.libraries().await?;
            let views = library_dtos(state, &libraries).await?;
            let total = i64::try_from(views.len()).unwrap_or(0);
            let views = views
                .into_iter()
                .skip(usize::try_from(start).unwrap_or(0))
                .take(
                    params
                        .limit
                        .and_then(|l| usize::try_from(l).ok())
                        .unwrap_or(usize::MAX),
                )
                .collect();
            return Ok(page(views, total, start));
        }
        None => {
            // Searching by id or text looks everywhere.
            query.recursive = true;
        }
    }
    let found = state.store.query_items(&query).await?;
    let dtos = dtos(state, &found.items, user, params.fields()).await?;
    Ok(page(dtos, found.total, start))
}

// ----- one item --------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ItemParams {
    user_id: Option<JfId>,
}

async fn item(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item_id): Path<JfId>,
    Query(params): Query<ItemParams>,
) -> Result<Json<BaseItemDto>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    one_item(&state, user, item_id).await
}

async fn item_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user_id, item_id)): Path<(JfId, JfId)>,
) -> Result<Json<BaseItemDto>, ApiError> {
    let user = caller.acting_for(Some(user_id))?;
    one_item(&state, user, item_id).await
}

/// An item with every field, or a library's view.
async fn one_item(state: &AppState, user: JfId, id: JfId) -> Result<Json<BaseItemDto>, ApiError> {
    if let Some(library) = state.store.library(id).await? {
        let mut views = library_dtos(state, &[library]).await?;
        return views
            .pop()
            .map(Json)
            .ok_or_else(|| ApiError::not_found("Item not found."));
    }
    let item = state
        .store
        .item(id, Some(user))
        .await?
        .ok_or_else(|| ApiError::not_found("Item not found."))?;
    let mut dtos = dtos(state, &[item], user, Fields::ALL).await?;
    dtos.pop()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Item not found."))
}

// ----- latest, resume --------------------------------------------------------------------

async fn latest(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    latest_for(&state, user, params).await
}

async fn latest_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(user_id): Path<JfId>,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(Some(user_id))?;
    latest_for(&state, user, params).await
}

/// Recently added films and episodes, newest first; with `groupItems` (the default) several
/// new episodes of one series show as that series.
async fn latest_for(
    state: &AppState,
    user: JfId,
    params: ListParams,
) -> Result<Json<Vec<BaseItemDto>>, ApiError> {
    let limit = usize::try_from(params.limit.unwrap_or(20).clamp(0, 500)).unwrap_or(20);
    let include = match kinds(&params.include_item_types) {
        Some(k) if !k.is_empty() => restrict(k, &[ItemKind::Movie, ItemKind::Episode]),
        Some(_) => vec![ItemKind::Movie, ItemKind::Episode],
        None => return Ok(Json(Vec::new())),
    };
    if include.is_empty() {
        return Ok(Json(Vec::new()));
    }
    let mut query = ItemQuery {
        user_id: Some(user),
        recursive: true,
        include_kinds: include,
        is_played: params.is_played,
        sort: vec![(SortBy::DateCreated, true)],
        // Grouping folds episodes together: read enough to fill the page after it.
        limit: Some(i64::try_from(limit.saturating_mul(8).max(64)).unwrap_or(i64::MAX)),
        ..ItemQuery::default()
    };
    if let Some(parent) = params.parent_id {
        if state.store.library(parent).await?.is_some() {
            query.library_id = Some(parent);
        } else {
            query.ancestor_id = Some(parent);
        }
    }
    let found = state.store.query_items(&query).await?;
    let group = params.group_items.unwrap_or(true);
    // (representative item, series to show instead, number of new episodes)
    let mut entries: Vec<(Item, usize)> = Vec::new();
    let mut series_slot: HashMap<JfId, usize> = HashMap::new();
    for item in found.items {
        match (group, item.kind, item.series_id) {
            (true, ItemKind::Episode, Some(series)) => match series_slot.get(&series) {
                Some(&slot) => entries[slot].1 += 1,
                None => {
                    series_slot.insert(series, entries.len());
                    entries.push((item, 1));
                }
            },
            _ => entries.push((item, 1)),
        }
        if entries.len() > limit {
            break;
        }
    }
    entries.truncate(limit);
    let mut shown: Vec<Item> = Vec::with_capacity(entries.len());
    let mut new_counts: HashMap<JfId, i64> = HashMap::new();
    for (item, count) in entries {
        match (count > 1, item.series_id) {
            (true, Some(series_id)) => {
                if let Some(series) = state.store.item(series_id, Some(user)).await? {
                    new_counts.insert(series.id, i64::try_from(count).unwrap_or(0));
                    shown.push(series);
                }
            }
            _ => shown.push(item),
        }
    }
    let mut dtos = dtos(state, &shown, user, params.fields()).await?;
    for dto in &mut dtos {
        if let Some(count) = shown
            .iter()
            .find(|i| i.id.to_n() == dto.id)
            .and_then(|i| new_counts.get(&i.id))
        {
            dto.child_count = Some(*count);
        }
    }
    Ok(Json(dtos))
}

async fn resume(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    resume_for(&state, user, params).await
}

async fn resume_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(user_id): Path<JfId>,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(Some(user_id))?;
    resume_for(&state, user, params).await
}

/// Films and episodes with a resume position, most recently played first.
async fn resume_for(
    state: &AppState,
    user: JfId,
    params: ListParams,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let start = params.start_index.unwrap_or(0).max(0);
    let Some(mut query) = params.to_query(user) else {
        return Ok(empty_page(start));
    };
    query.recursive = true;
    query.is_resumable = true;
    query.include_kinds = restrict(query.include_kinds, &[ItemKind::Movie, ItemKind::Episode]);
    if query.include_kinds.is_empty() {
        return Ok(empty_page(start));
    }
    query.sort = vec![(SortBy::DatePlayed, true)];
    if let Some(parent) = params.parent_id {
        if state.store.library(parent).await?.is_some() {
            query.library_id = Some(parent);
        } else {
            query.ancestor_id = Some(parent);
        }
    }
    let found = state.store.query_items(&query).await?;
    let dtos = dtos(state, &found.items, user, params.fields()).await?;
    Ok(page(dtos, found.total, start))
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
    caller: AuthUser,
    Path(series_id): Path<JfId>,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    let series = series(&state, series_id, user).await?;
    let found = state
        .store
        .query_items(&ItemQuery {
            user_id: Some(user),
            ancestor_id: Some(series.id),
            include_kinds: vec![ItemKind::Season],
            sort: vec![(SortBy::IndexNumber, false)],
            ..ItemQuery::default()
        })
        .await?;
    let dtos = dtos(&state, &found.items, user, params.fields()).await?;
    Ok(page(dtos, found.total, 0))
}

async fn episodes(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(series_id): Path<JfId>,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    let series = series(&state, series_id, user).await?;
    let ancestor = match (params.season_id, params.season) {
        (Some(season), _) => season,
        (None, Some(number)) => crate::scan::ids::season_id(
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
    let total = i64::try_from(episodes.len()).unwrap_or(0);
    let start = params.start_index.unwrap_or(0).max(0);
    let episodes: Vec<Item> = episodes
        .into_iter()
        .skip(usize::try_from(start).unwrap_or(0))
        .take(
            params
                .limit
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(usize::MAX),
        )
        .collect();
    let dtos = dtos(&state, &episodes, user, params.fields()).await?;
    Ok(page(dtos, total, start))
}

/// For each series the user has watched: the first unplayed episode after the one watched
/// last; for an explicitly named series that nobody watched yet, its first episode. Series
/// whose last watched episode was played most recently come first.
async fn next_up(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    let mut query = ItemQuery {
        user_id: Some(user),
        recursive: true,
        include_kinds: vec![ItemKind::Episode],
        sort: vec![
            (SortBy::ParentIndexNumber, false),
            (SortBy::IndexNumber, false),
        ],
        ..ItemQuery::default()
    };
    if let Some(series) = params.series_id {
        query.ancestor_id = Some(series);
    } else if let Some(parent) = params.parent_id {
        if state.store.library(parent).await?.is_some() {
            query.library_id = Some(parent);
        } else {
            query.ancestor_id = Some(parent);
        }
    }
    let episodes = state.store.query_items(&query).await?.items;
    let mut by_series: Vec<(JfId, Vec<Item>)> = Vec::new();
    for episode in episodes {
        let Some(series) = episode.series_id else {
            continue;
        };
        match by_series.iter_mut().find(|(s, _)| *s == series) {
            Some((_, list)) => list.push(episode),
            None => by_series.push((series, vec![episode])),
        }
    }
    let mut next: Vec<(i64, Item)> = Vec::new();
    for (_, list) in by_series {
        let last_watched = list
            .iter()
            .enumerate()
            .filter(|(_, e)| e.user_data.played)
            .max_by_key(|(i, e)| (e.user_data.last_played_at.unwrap_or(0), *i));
        match last_watched {
            Some((at, watched)) => {
                let when = watched.user_data.last_played_at.unwrap_or(0);
                if let Some(upcoming) = list.iter().skip(at + 1).find(|e| !e.user_data.played) {
                    next.push((when, upcoming.clone()));
                }
            }
            None if params.series_id.is_some() => {
                if let Some(first) = list.iter().find(|e| !e.user_data.played) {
                    next.push((0, first.clone()));
                }
            }
            None => {}
        }
    }
    next.sort_by_key(|(when, _)| std::cmp::Reverse(*when));
    let total = i64::try_from(next.len()).unwrap_or(0);
    let start = params.start_index.unwrap_or(0).max(0);
    let shown: Vec<Item> = next
        .into_iter()
        .map(|(_, e)| e)
        .skip(usize::try_from(start).unwrap_or(0))
        .take(
            params
                .limit
                .and_then(|l| usize::try_from(l).ok())
                .unwrap_or(usize::MAX),
        )
        .collect();
    let dtos = dtos(&state, &shown, user, params.fields()).await?;
    Ok(page(dtos, total, start))
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

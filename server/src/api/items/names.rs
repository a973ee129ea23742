//! Names items carry from their local metadata, listed for browsing and filter dialogs:
//! `/Genres`, `/Studios`, `/Persons`, `/Years` (and one of each by name), `/Items/Filters`,
//! `/Items/Filters2`; plus a genre, studio or person looked up by id for `/Items/{id}`.
//!
//! Each takes the same query as `/Items` (parent, item types, the user's filters) and lists
//! the names the matching items carry; it never lists a name no visible item carries.

use axum::extract::State;

use super::ListParams;
use super::dto::{BaseItemDto, user_data_dto};
use crate::api::acting::ActingUser;
use crate::api::dto::QueryResult;
use crate::error::ApiError;
use crate::jf::{JfId, Json, Path, Query};
use crate::state::AppState;
use crate::store::ids::name_id;
use crate::store::items::ItemQuery;
use crate::store::items::UserData;
use crate::store::metadata::{NameCount, NameKind};

/// The store query of a name listing: everything below the parent, unpaged; `None` when
/// nothing can match. Search and name-prefix parameters apply to the names, not the items.
fn names_query(user: JfId, params: &ListParams) -> Option<ItemQuery> {
    let mut query = params.to_query(user)?;
    query.recursive = true;
    query.search_term = None;
    query.name_starts_with = None;
    query.name_less_than = None;
    query.start_index = 0;
    query.limit = None;
    query.parent_id = params.parent_id;
    Some(query)
}

/// A genre, studio, person or year as the `BaseItemDto` Jellyfin sends for it.
fn name_dto(
    state: &AppState,
    kind: NameKind,
    id: JfId,
    name: &str,
    items: Option<i64>,
) -> BaseItemDto {
    let (type_name, is_folder) = match kind {
        NameKind::Genre => ("Genre", true),
        NameKind::Studio => ("Studio", true),
        NameKind::Person => ("Person", false),
    };
    BaseItemDto {
        name: name.to_owned(),
        server_id: state.server_id.to_n(),
        id: id.to_n(),
        sort_name: crate::scan::names::sort_name(name),
        is_folder,
        kind: type_name,
        user_data: user_data_dto(id, &UserData::default(), None),
        child_count: items,
        location_type: "Virtual",
        media_type: "Unknown",
        ..BaseItemDto::default()
    }
}

/// The name-side parameters of a list of named things (the search box, the A–Z picker), read
/// once: genres, studios, people and collections filter by them alike.
pub(super) struct NameMatch {
    /// Search text, folded as item search folds it (case and accents ignored).
    term: Option<String>,
    /// `NameStartsWith` (or `NameStartsWithOrGreater`), on the sort name.
    prefix: Option<String>,
    /// `NameLessThan`, on the sort name.
    below: Option<String>,
}

impl NameMatch {
    pub(super) fn from_params(params: &ListParams) -> NameMatch {
        let lower = |text: Option<&str>| text.map(str::to_lowercase).filter(|t| !t.is_empty());
        NameMatch {
            term: params
                .search_term
                .as_deref()
                .map(|t| crate::store::items::keys::fold(t.trim()))
                .filter(|t| !t.is_empty()),
            prefix: lower(
                params
                    .name_starts_with
                    .as_deref()
                    .or(params.name_starts_with_or_greater.as_deref()),
            ),
            below: lower(params.name_less_than.as_deref()),
        }
    }

    pub(super) fn matches(&self, name: &str) -> bool {
        let sort = crate::scan::names::sort_name(name).to_lowercase();
        self.term
            .as_ref()
            .is_none_or(|t| crate::store::items::keys::fold(name).contains(t.as_str()))
            && self
                .prefix
                .as_ref()
                .is_none_or(|p| sort.starts_with(p.as_str()))
            && self
                .below
                .as_ref()
                .is_none_or(|b| sort.as_str() < b.as_str())
    }
}

/// Applies the name-side parameters (search, A–Z picker) and the page.
fn page_of_names(
    state: &AppState,
    kind: NameKind,
    params: &ListParams,
    names: Vec<NameCount>,
) -> Json<QueryResult<BaseItemDto>> {
    let matching = NameMatch::from_params(params);
    let chosen: Vec<BaseItemDto> = names
        .into_iter()
        .filter(|n| matching.matches(&n.name))
        .map(|n| name_dto(state, kind, n.id, &n.name, Some(n.items)))
        .collect();
    let page = params.page();
    let (items, total) = page.slice(chosen);
    page.result(items, total)
}

async fn list(
    state: &AppState,
    user: JfId,
    kind: NameKind,
    params: &ListParams,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let Some(query) = names_query(user, params) else {
        return Ok(params.page().empty());
    };
    let names = state
        .store
        .name_counts(kind, &query, &params.person_kinds())
        .await?;
    let mut page = page_of_names(state, kind, params, names);
    if kind == NameKind::Person {
        // The page's people with a local image (an actor's `<thumb>`) show it.
        let ids: Vec<JfId> = page
            .0
            .items
            .iter()
            .filter_map(|d| d.id.parse().ok())
            .collect();
        let images = state.store.person_images(&ids).await?;
        for dto in &mut page.0.items {
            if let Some(image) = dto.id.parse::<JfId>().ok().and_then(|id| images.get(&id)) {
                dto.image_tags.insert("Primary", image.image.tag.clone());
            }
        }
    }
    Ok(page)
}

/// `/Genres`.
pub(super) async fn genres(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    list(&state, user.id, NameKind::Genre, &params).await
}

/// `/Studios`.
pub(super) async fn studios(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    list(&state, user.id, NameKind::Studio, &params).await
}

/// `/Persons` (`personTypes=Actor` narrows to actors).
pub(super) async fn persons(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    list(&state, user.id, NameKind::Person, &params).await
}

async fn one_by_name(
    state: &AppState,
    kind: NameKind,
    label: &str,
    name: &str,
) -> Result<Json<BaseItemDto>, ApiError> {
    let id = name_id(label, name);
    let stored = state
        .store
        .name_of(kind, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Item not found."))?;
    Ok(Json(name_dto(state, kind, id, &stored, None)))
}

/// `/Genres/{name}`.
pub(super) async fn genre(
    State(state): State<AppState>,
    _user: ActingUser,
    Path(name): Path<String>,
) -> Result<Json<BaseItemDto>, ApiError> {
    one_by_name(&state, NameKind::Genre, "genre", &name).await
}

/// `/Studios/{name}`.
pub(super) async fn studio(
    State(state): State<AppState>,
    _user: ActingUser,
    Path(name): Path<String>,
) -> Result<Json<BaseItemDto>, ApiError> {
    one_by_name(&state, NameKind::Studio, "studio", &name).await
}

/// `/Persons/{name}`.
pub(super) async fn person(
    State(state): State<AppState>,
    _user: ActingUser,
    Path(name): Path<String>,
) -> Result<Json<BaseItemDto>, ApiError> {
    one_by_name(&state, NameKind::Person, "person", &name).await
}

/// A genre, studio or person by id (the web client opens a person's page as `/Items/{id}`).
pub(super) async fn name_item(state: &AppState, id: JfId) -> Result<Option<BaseItemDto>, ApiError> {
    for kind in [NameKind::Person, NameKind::Genre, NameKind::Studio] {
        if let Some(name) = state.store.name_of(kind, id).await? {
            let mut dto = name_dto(state, kind, id, &name, None);
            if kind == NameKind::Person
                && let Some(image) = state.store.person_images(&[id]).await?.remove(&id)
            {
                dto.image_tags.insert("Primary", image.image.tag);
            }
            return Ok(Some(dto));
        }
    }
    Ok(None)
}

/// `/Years`: the production years of the matching items, newest first, as `Year` items.
pub(super) async fn years(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let Some(query) = names_query(user.id, &params) else {
        return Ok(params.page().empty());
    };
    let years: Vec<BaseItemDto> = state
        .store
        .production_years(&query)
        .await?
        .into_iter()
        .map(|year| {
            let name = year.to_string();
            let id = name_id("year", &name);
            BaseItemDto {
                production_year: Some(year),
                ..name_dto(&state, NameKind::Genre, id, &name, None)
            }
        })
        .map(|mut dto| {
            dto.kind = "Year";
            dto
        })
        .collect();
    let page = params.page();
    let (items, total) = page.slice(years);
    Ok(page.result(items, total))
}

/// `/Items/Filters` (the legacy filter dialog): genre names, tags, official ratings and years
/// of the matching items.
pub(super) async fn filters(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(query) = names_query(user.id, &params) else {
        return Ok(Json(serde_json::json!({
            "Genres": [], "Tags": [], "OfficialRatings": [], "Years": [],
        })));
    };
    let genres: Vec<String> = state
        .store
        .name_counts(NameKind::Genre, &query, &[])
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
    let tags = state.store.tag_names(&query).await?;
    let ratings = state.store.official_ratings(&query).await?;
    let years = state.store.production_years(&query).await?;
    Ok(Json(serde_json::json!({
        "Genres": genres,
        "Tags": tags,
        "OfficialRatings": ratings,
        "Years": years,
    })))
}

/// `/Items/Filters2`: genres as `NameGuidPair`s, and tag names.
pub(super) async fn filters2(
    State(state): State<AppState>,
    user: ActingUser,
    Query(params): Query<ListParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(query) = names_query(user.id, &params) else {
        return Ok(Json(serde_json::json!({ "Genres": [], "Tags": [] })));
    };
    let genres: Vec<serde_json::Value> = state
        .store
        .name_counts(NameKind::Genre, &query, &[])
        .await?
        .into_iter()
        .map(|n| serde_json::json!({ "Name": n.name, "Id": n.id.to_n() }))
        .collect();
    let tags = state.store.tag_names(&query).await?;
    Ok(Json(serde_json::json!({ "Genres": genres, "Tags": tags })))
}

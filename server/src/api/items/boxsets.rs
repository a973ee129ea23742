//! Collections (BoxSets) as clients browse them: the "Collections" view (Jellyfin's `boxsets`
//! collection folder, listed among the user's views once a set exists), the sets themselves
//! (`IncludeItemTypes=BoxSet`, or the Collections folder's children), one set as an item, and
//! its films (`ParentId={set}`).
//!
//! Sets come from the films' `.nfo` `<set>` (see `store::boxsets`): read-only here, never
//! created, edited or deleted through the API. A set has no artwork of its own, so it borrows
//! the poster and backdrop of its first film that has one (Jellyfin composes a collage of its
//! films' posters; one poster is what the web client's card shows without a broken image).

use std::collections::HashMap;

use super::dto::{BaseItemDto, user_data_dto};
use super::{ListParams, Page};
use crate::api::dto::QueryResult;
use crate::error::ApiError;
use crate::jf::{JfId, Json, date};
use crate::state::AppState;
use crate::store::boxsets::{BorrowedImage, BoxSet};
use crate::store::items::{ItemKind, ItemQuery, SortBy, UserData};

/// The name of the Collections view, as Jellyfin names its folder.
const COLLECTIONS_NAME: &str = "Collections";

/// Whether a listing's `IncludeItemTypes` asks for sets only (Jellyfin then lists every set,
/// wherever the `ParentId` points).
pub(super) fn asks_for_sets_only(params: &ListParams) -> bool {
    let types = params.include_item_types.as_slice();
    !types.is_empty()
        && types
            .iter()
            .all(|t| t.trim().eq_ignore_ascii_case("BoxSet"))
}

/// The Collections view, holding `count` sets.
pub(super) fn collections_view_dto(state: &AppState, count: i64) -> BaseItemDto {
    let id = state.store.ids().collections_folder();
    BaseItemDto {
        name: COLLECTIONS_NAME.to_owned(),
        server_id: state.server_id.to_n(),
        id: id.to_n(),
        sort_name: COLLECTIONS_NAME.to_lowercase(),
        is_folder: true,
        kind: "CollectionFolder",
        collection_type: Some("boxsets"),
        user_data: user_data_dto(id, &UserData::default(), None),
        child_count: Some(count),
        location_type: "FileSystem",
        media_type: "Unknown",
        ..BaseItemDto::default()
    }
}

/// A set as Jellyfin's `BoxSet` item: a folder of its films, in the Collections folder, with
/// the images it borrows from them and the user's progress through them.
fn boxset_dto(state: &AppState, set: &BoxSet, borrowed: &[BorrowedImage]) -> BaseItemDto {
    let mut image_tags = std::collections::BTreeMap::new();
    let mut backdrop_image_tags = Vec::new();
    for b in borrowed {
        match b.image.image_type.as_str() {
            "Primary" => {
                image_tags.insert("Primary", b.image.tag.clone());
            }
            "Backdrop" => backdrop_image_tags.push(b.image.tag.clone()),
            _ => {}
        }
    }
    let played = set.children > 0 && set.played_children >= set.children;
    let mut user_data = user_data_dto(
        set.id,
        &UserData {
            played,
            ..UserData::default()
        },
        None,
    );
    user_data.unplayed_item_count = Some((set.children - set.played_children).max(0));
    BaseItemDto {
        name: set.name.clone(),
        server_id: state.server_id.to_n(),
        id: set.id.to_n(),
        date_created: Some(date(set.date_created)),
        sort_name: crate::scan::names::sort_name(&set.name),
        production_year: set.production_year,
        is_folder: true,
        parent_id: Some(state.store.ids().collections_folder().to_n()),
        kind: "BoxSet",
        user_data,
        child_count: Some(set.children),
        recursive_item_count: Some(set.children),
        // Posters, as Jellyfin's `BoxSet.GetDefaultPrimaryImageAspectRatio`.
        primary_image_aspect_ratio: image_tags.contains_key("Primary").then_some(2.0 / 3.0),
        image_tags,
        backdrop_image_tags,
        location_type: "FileSystem",
        media_type: "Unknown",
        ..BaseItemDto::default()
    }
}

/// DTOs of `sets`, their borrowed images read in one statement.
async fn boxset_dtos(state: &AppState, sets: &[BoxSet]) -> Result<Vec<BaseItemDto>, ApiError> {
    let ids: Vec<JfId> = sets.iter().map(|s| s.id).collect();
    let images: HashMap<JfId, Vec<BorrowedImage>> = state.store.boxset_images(&ids).await?;
    Ok(sets
        .iter()
        .map(|s| boxset_dto(state, s, images.get(&s.id).map_or(&[], Vec::as_slice)))
        .collect())
}

/// One set as an item (`/Items/{id}`), when `id` is a set with a film.
pub(super) async fn boxset_item(
    state: &AppState,
    user: JfId,
    id: JfId,
) -> Result<Option<BaseItemDto>, ApiError> {
    let Some(set) = state.store.boxset(id, Some(user)).await? else {
        return Ok(None);
    };
    Ok(boxset_dtos(state, std::slice::from_ref(&set)).await?.pop())
}

/// How many sets exist (`BoxSetCount`, and whether the Collections view shows).
pub(super) async fn count(state: &AppState) -> Result<i64, ApiError> {
    Ok(state.store.boxset_count().await?)
}

/// Sets listed as `/Items` lists items: every set, or with `library` those with a film in it;
/// narrowed by the name, played and id filters Jellyfin applies to sets; sorted as asked (by
/// name when not asked or asked for a key sets do not have); paged.
pub(super) async fn list(
    state: &AppState,
    user: JfId,
    params: &ListParams,
    library: Option<JfId>,
) -> Result<Json<QueryResult<BaseItemDto>>, ApiError> {
    let page: Page = params.page();
    let mut sets = state.store.boxsets(Some(user), library, None).await?;
    let matching = super::names::NameMatch::from_params(params);
    let filters = params.filters.as_slice();
    let played = if filters.contains(&super::ItemFilter::IsPlayed) {
        Some(true)
    } else if filters.contains(&super::ItemFilter::IsUnplayed) {
        Some(false)
    } else {
        params.is_played
    };
    // Sets cannot be favourites or resumed (the API never records either for them).
    let nothing = filters.contains(&super::ItemFilter::IsFavorite)
        || filters.contains(&super::ItemFilter::IsResumable)
        || params.is_favorite == Some(true)
        || filters.contains(&super::ItemFilter::IsNotFolder)
        || params.is_folder == Some(false);
    if nothing {
        return Ok(page.empty());
    }
    sets.retain(|s| {
        let is_played = s.children > 0 && s.played_children >= s.children;
        matching.matches(&s.name)
            && played.is_none_or(|p| p == is_played)
            && (params.ids.is_empty() || params.ids.as_slice().contains(&s.id))
            && !params.exclude_item_ids.as_slice().contains(&s.id)
            && (params.years.is_empty()
                || s.production_year
                    .is_some_and(|y| params.years.as_slice().contains(&y)))
    });
    sort_sets(&mut sets, &params.sort());
    let (shown, total) = page.slice(sets);
    Ok(page.result(boxset_dtos(state, &shown).await?, total))
}

/// Sorts sets by the keys they have (name, date added, year); others are skipped, and the
/// name decides last.
fn sort_sets(sets: &mut [BoxSet], sort: &[(SortBy, bool)]) {
    let name = |s: &BoxSet| crate::scan::names::sort_name(&s.name).to_lowercase();
    sets.sort_by(|a, b| {
        for (by, descending) in sort {
            let order = match by {
                SortBy::SortName | SortBy::Name => name(a).cmp(&name(b)),
                SortBy::DateCreated => a.date_created.cmp(&b.date_created),
                SortBy::ProductionYear | SortBy::PremiereDate => {
                    a.production_year.cmp(&b.production_year)
                }
                _ => std::cmp::Ordering::Equal,
            };
            let order = if *descending { order.reverse() } else { order };
            if order.is_ne() {
                return order;
            }
        }
        name(a).cmp(&name(b)).then(a.id.cmp(&b.id))
    });
}

/// Narrows a listing to the films of `set` (`ParentId={set}`): films only, in Jellyfin's
/// BoxSet order (year, release date, name) unless the client asks for another.
pub(super) fn children_query(query: &mut ItemQuery, set: JfId) {
    query.parent_id = None;
    query.recursive = true;
    query.metadata.collection_id = Some(set);
    if query.include_kinds.is_empty() {
        query.include_kinds = vec![ItemKind::Movie];
    }
    if query.sort.is_empty() {
        query.sort = vec![
            (SortBy::ProductionYear, false),
            (SortBy::PremiereDate, false),
            (SortBy::SortName, false),
        ];
    }
}

/// Whether `id` is the Collections folder.
pub(super) fn is_collections_folder(state: &AppState, id: JfId) -> bool {
    id == state.store.ids().collections_folder()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, year: Option<i64>, added: i64) -> BoxSet {
        BoxSet {
            id: JfId::from_bytes([name.len() as u8; 16]),
            name: name.to_owned(),
            children: 1,
            played_children: 0,
            date_created: added,
            production_year: year,
        }
    }

    #[test]
    fn sets_sort_by_the_keys_they_have_then_by_name() {
        let mut sets = vec![
            set("The Zed Collection", Some(2001), 3),
            set("Alpha", Some(1999), 1),
            set("Beta Set", None, 2),
        ];
        sort_sets(&mut sets, &[]);
        let names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Alpha", "Beta Set", "The Zed Collection"]);
        sort_sets(&mut sets, &[(SortBy::DateCreated, true)]);
        assert_eq!(sets[0].name, "The Zed Collection");
        // A key sets do not have (play count) leaves the name to decide.
        sort_sets(&mut sets, &[(SortBy::PlayCount, true)]);
        assert_eq!(sets[0].name, "Alpha");
    }
}

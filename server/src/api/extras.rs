//! Extras of films and series (`/Items/{id}/SpecialFeatures`, `/Items/{id}/LocalTrailers`, in
//! both Jellyfin route styles) and each library's last scan summary
//! (`/Library/ScanSummary`, administrators: counts by role, ignored entries, and examples of
//! files the naming rules could not place).
//!
//! Extras are stored as items owned by their film or series (see `scan::place`); they are
//! never listed by `/Items`, only here. Both lists answer a bare array, as Jellyfin does.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use crate::api::items::dto::{BaseItemDto, Fields};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::jf::{JfId, Json, Path, Query, date};
use crate::state::AppState;
use crate::store::items::ItemKind;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/items/{itemid}/specialfeatures", get(special_features))
        .route(
            "/users/{userid}/items/{itemid}/specialfeatures",
            get(special_features_legacy),
        )
        .route("/items/{itemid}/localtrailers", get(local_trailers))
        .route(
            "/users/{userid}/items/{itemid}/localtrailers",
            get(local_trailers_legacy),
        )
        .route("/library/scansummary", get(scan_summary))
}

/// Whether `user` is an administrator (an unknown user is not).
pub async fn is_admin(state: &AppState, user: JfId) -> Result<bool, ApiError> {
    Ok(state
        .store
        .user_by_id(user)
        .await?
        .is_some_and(|u| u.is_admin))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UserParam {
    user_id: Option<JfId>,
}

/// Which extras a route lists.
#[derive(Debug, Clone, Copy)]
enum Which {
    /// Everything but trailers (Jellyfin's special features).
    SpecialFeatures,
    /// Trailers only.
    LocalTrailers,
}

async fn extras(
    state: &AppState,
    user: JfId,
    owner: JfId,
    which: Which,
) -> Result<Json<Vec<BaseItemDto>>, ApiError> {
    if state.store.item(owner, Some(user)).await?.is_none() {
        return Err(ApiError::not_found("Item not found."));
    }
    let kinds = match which {
        Which::SpecialFeatures => [ItemKind::Video],
        Which::LocalTrailers => [ItemKind::Trailer],
    };
    let items = state.store.extras_of(owner, Some(user), &kinds).await?;
    let dtos = crate::api::items::dtos(state, &items, Fields::default()).await?;
    Ok(Json(dtos))
}

async fn special_features(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item_id): Path<JfId>,
    Query(params): Query<UserParam>,
) -> Result<Json<Vec<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    extras(&state, user, item_id, Which::SpecialFeatures).await
}

async fn special_features_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user_id, item_id)): Path<(JfId, JfId)>,
) -> Result<Json<Vec<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(Some(user_id))?;
    extras(&state, user, item_id, Which::SpecialFeatures).await
}

async fn local_trailers(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item_id): Path<JfId>,
    Query(params): Query<UserParam>,
) -> Result<Json<Vec<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    extras(&state, user, item_id, Which::LocalTrailers).await
}

async fn local_trailers_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user_id, item_id)): Path<(JfId, JfId)>,
) -> Result<Json<Vec<BaseItemDto>>, ApiError> {
    let user = caller.acting_for(Some(user_id))?;
    extras(&state, user, item_id, Which::LocalTrailers).await
}

/// One library's last scan, as the dashboard reads it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct LibrarySummary {
    library_id: String,
    name: String,
    finished: String,
    summary: serde_json::Value,
}

async fn scan_summary(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Vec<LibrarySummary>>, ApiError> {
    caller.require_admin()?;
    let libraries = state.store.libraries().await?;
    let rows = state.store.scan_summaries().await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| LibrarySummary {
                library_id: row.library_id.to_n(),
                name: libraries
                    .iter()
                    .find(|l| l.id == row.library_id)
                    .map(|l| l.name.clone())
                    .unwrap_or_default(),
                finished: date(row.finished_at),
                summary: row.summary,
            })
            .collect(),
    ))
}

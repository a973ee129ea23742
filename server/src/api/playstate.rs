//! Playstate: playback start / progress / stop reports, played and favourite marks.
//!
//! Reports follow Jellyfin's rules ([`rules`]): a start counts a play; progress and stop store
//! a resume position, or mark the item played near its end. Every write is committed before
//! the 204 goes out, so a client that reports and then lists "Continue watching" (on any
//! replica) sees its position. Bodies are often partial and carry keys Ephyra does not know;
//! both are fine. Routes exist in the new style (`/Sessions/Playing`, `/PlayingItems/{id}`,
//! `/UserPlayedItems/{id}`, `/UserFavoriteItems/{id}`) and the legacy `/Users/{userId}/...` one.

pub mod rules;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use http::StatusCode;
use serde::Deserialize;

use self::rules::PlayOutcome;
use crate::api::items::dto::{UserItemDataDto, user_data_dto};
use crate::auth::AuthUser;
use crate::coord::Event;
use crate::error::ApiError;
use crate::jf::{JfId, Json, Path, Query, now_millis};
use crate::state::AppState;
use crate::store::items::Item;
use crate::store::userdata::PositionUpdate;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions/playing", post(started))
        .route("/sessions/playing/progress", post(progress))
        .route("/sessions/playing/stopped", post(stopped))
        .route("/sessions/playing/ping", post(ping))
        .route(
            "/playingitems/{itemid}",
            post(started_by_path).delete(stopped_by_path),
        )
        .route("/playingitems/{itemid}/progress", post(progress_by_path))
        .route(
            "/users/{userid}/playingitems/{itemid}",
            post(started_legacy).delete(stopped_legacy),
        )
        .route(
            "/users/{userid}/playingitems/{itemid}/progress",
            post(progress_legacy),
        )
        .route(
            "/userplayeditems/{itemid}",
            post(mark_played).delete(mark_unplayed),
        )
        .route(
            "/users/{userid}/playeditems/{itemid}",
            post(mark_played_legacy).delete(mark_unplayed_legacy),
        )
        .route(
            "/userfavoriteitems/{itemid}",
            post(mark_favorite).delete(unmark_favorite),
        )
        .route(
            "/users/{userid}/favoriteitems/{itemid}",
            post(mark_favorite_legacy).delete(unmark_favorite_legacy),
        )
        .route("/useritems/{itemid}/userdata", get(user_data))
}

/// `PlaybackStartInfo` / `PlaybackProgressInfo` / `PlaybackStopInfo`: the fields Ephyra uses;
/// the rest (`EventName`, `IsPaused`, `NowPlayingQueue`, ...) is accepted and ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PlaybackReport {
    item_id: Option<JfId>,
    position_ticks: Option<i64>,
    failed: Option<bool>,
    /// Ends (Stopped) or keeps alive (Progress) the session's transcodes.
    play_session_id: Option<String>,
}

/// The query of the path-style reports (`?positionTicks=`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ReportParams {
    position_ticks: Option<i64>,
    failed: Option<bool>,
    user_id: Option<JfId>,
}

/// Which report a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Start,
    Progress,
    Stop,
}

fn item_of(report: &PlaybackReport) -> Result<JfId, ApiError> {
    report
        .item_id
        .ok_or_else(|| ApiError::bad_request("ItemId is required."))
}

async fn started(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(body): Json<PlaybackReport>,
) -> Result<StatusCode, ApiError> {
    let item = item_of(&body)?;
    apply(
        &state,
        caller.user_id,
        item,
        Report::Start,
        body.position_ticks,
        false,
    )
    .await
}

async fn progress(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(body): Json<PlaybackReport>,
) -> Result<StatusCode, ApiError> {
    let item = item_of(&body)?;
    if let Some(session) = body.play_session_id.as_deref() {
        state.transcodes.ping_session(session);
    }
    apply(
        &state,
        caller.user_id,
        item,
        Report::Progress,
        body.position_ticks,
        false,
    )
    .await
}

async fn stopped(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(body): Json<PlaybackReport>,
) -> Result<StatusCode, ApiError> {
    let item = item_of(&body)?;
    let failed = body.failed.unwrap_or(false);
    if let Some(session) = body.play_session_id.as_deref() {
        state.transcodes.stop_session(session).await;
    }
    apply(
        &state,
        caller.user_id,
        item,
        Report::Stop,
        body.position_ticks,
        failed,
    )
    .await
}

/// The query of `/Sessions/Playing/Ping`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PingParams {
    play_session_id: Option<String>,
}

/// Keeps the session's transcodes alive; direct streams need nothing.
async fn ping(
    State(state): State<AppState>,
    _caller: AuthUser,
    Query(p): Query<PingParams>,
) -> StatusCode {
    if let Some(session) = p.play_session_id.as_deref() {
        state.transcodes.ping_session(session);
    }
    StatusCode::NO_CONTENT
}

async fn started_by_path(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item): Path<JfId>,
    Query(p): Query<ReportParams>,
) -> Result<StatusCode, ApiError> {
    let user = caller.acting_for(p.user_id)?;
    apply(&state, user, item, Report::Start, p.position_ticks, false).await
}

async fn progress_by_path(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item): Path<JfId>,
    Query(p): Query<ReportParams>,
) -> Result<StatusCode, ApiError> {
    let user = caller.acting_for(p.user_id)?;
    apply(
        &state,
        user,
        item,
        Report::Progress,
        p.position_ticks,
        false,
    )
    .await
}

async fn stopped_by_path(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item): Path<JfId>,
    Query(p): Query<ReportParams>,
) -> Result<StatusCode, ApiError> {
    let user = caller.acting_for(p.user_id)?;
    let failed = p.failed.unwrap_or(false);
    apply(&state, user, item, Report::Stop, p.position_ticks, failed).await
}

async fn started_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user, item)): Path<(JfId, JfId)>,
    Query(p): Query<ReportParams>,
) -> Result<StatusCode, ApiError> {
    let user = caller.acting_for(Some(user))?;
    apply(&state, user, item, Report::Start, p.position_ticks, false).await
}

async fn progress_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user, item)): Path<(JfId, JfId)>,
    Query(p): Query<ReportParams>,
) -> Result<StatusCode, ApiError> {
    let user = caller.acting_for(Some(user))?;
    apply(
        &state,
        user,
        item,
        Report::Progress,
        p.position_ticks,
        false,
    )
    .await
}

async fn stopped_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user, item)): Path<(JfId, JfId)>,
    Query(p): Query<ReportParams>,
) -> Result<StatusCode, ApiError> {
    let user = caller.acting_for(Some(user))?;
    let failed = p.failed.unwrap_or(false);
    apply(&state, user, item, Report::Stop, p.position_ticks, failed).await
}

/// A playable item, or 404.
async fn playable(state: &AppState, id: JfId) -> Result<Item, ApiError> {
    state
        .store
        .item(id, None)
        .await?
        .filter(|i| !i.kind.is_folder())
        .ok_or_else(|| ApiError::not_found("Item not found."))
}

/// Applies one report to the user's data and answers 204 once it is stored.
async fn apply(
    state: &AppState,
    user: JfId,
    item_id: JfId,
    report: Report,
    position: Option<i64>,
    failed: bool,
) -> Result<StatusCode, ApiError> {
    let item = playable(state, item_id).await?;
    tracing::debug!(item_id = %item.id, ?report, position, failed, runtime = item.run_time_ticks, "play state report");
    let now = now_millis();
    let store = &state.store;
    match (report, position) {
        (Report::Start, _) => store.record_playback_start(user, item.id, now).await?,
        // A progress report without a position says nothing about where the user is.
        (Report::Progress, None) => {}
        // Jellyfin stores nothing for a playback that failed.
        (Report::Stop, _) if failed => {}
        (Report::Stop, None) => {
            store
                .record_position(user, item.id, PositionUpdate::PlayedWithoutPosition, now)
                .await?;
        }
        (Report::Progress | Report::Stop, Some(position)) => {
            let update = match rules::outcome(position, item.run_time_ticks) {
                PlayOutcome::Resume(p) => PositionUpdate::Resume(p),
                PlayOutcome::Played => PositionUpdate::Played,
            };
            store.record_position(user, item.id, update, now).await?;
        }
    }
    // Durable before the 204; the other clients of the user hear of it on every replica.
    if !matches!(
        (report, position, failed),
        (Report::Progress, None, _) | (Report::Stop, _, true)
    ) {
        let Json(dto) = reread(state, item.id, user).await?;
        announce(state, user, &dto);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Publishes `UserDataChanged` for one item to the user's sockets on every replica, off the
/// request path (the change is already stored; a Redis outage must not slow the answer).
fn announce(state: &AppState, user: JfId, dto: &UserItemDataDto) {
    let data = serde_json::json!({
        "UserId": user.to_n(),
        "UserDataList": [dto],
    });
    let coordinator = state.coordinator.clone();
    tokio::spawn(async move {
        coordinator
            .publish_or_log(Event::user_data_changed(user, data))
            .await;
    });
}

// ----- played, favourite, user data ------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MarkParams {
    user_id: Option<JfId>,
    date_played: Option<String>,
}

/// Any item, folders included (marking a series played marks its episodes).
async fn existing(state: &AppState, id: JfId, user: JfId) -> Result<Item, ApiError> {
    state
        .store
        .item(id, Some(user))
        .await?
        .ok_or_else(|| ApiError::not_found("Item not found."))
}

async fn reread(state: &AppState, id: JfId, user: JfId) -> Result<Json<UserItemDataDto>, ApiError> {
    let item = existing(state, id, user).await?;
    let mut dto = user_data_dto(item.id, &item.user_data, item.run_time_ticks);
    if item.kind.is_folder() {
        let counts = state
            .store
            .folder_counts(&[(item.id, item.kind)], Some(user))
            .await?
            .remove(&item.id)
            .unwrap_or_default();
        dto.unplayed_item_count = Some(counts.episodes - counts.played_episodes);
        dto.played = counts.episodes > 0 && counts.played_episodes == counts.episodes;
    }
    Ok(Json(dto))
}

async fn set_played(
    state: &AppState,
    user: JfId,
    id: JfId,
    played: bool,
    date_played: Option<&str>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let item = existing(state, id, user).await?;
    let at = match date_played.map(str::trim).filter(|d| !d.is_empty()) {
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map_err(|_| ApiError::bad_request("DatePlayed must be an ISO-8601 date."))?
            .timestamp_millis(),
        None => now_millis(),
    };
    state
        .store
        .set_played(user, item.id, item.kind, played, at)
        .await?;
    let dto = reread(state, id, user).await?;
    announce(state, user, &dto.0);
    Ok(dto)
}

async fn mark_played(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item): Path<JfId>,
    Query(p): Query<MarkParams>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let user = caller.acting_for(p.user_id)?;
    set_played(&state, user, item, true, p.date_played.as_deref()).await
}

async fn mark_unplayed(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item): Path<JfId>,
    Query(p): Query<MarkParams>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let user = caller.acting_for(p.user_id)?;
    set_played(&state, user, item, false, None).await
}

async fn mark_played_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user, item)): Path<(JfId, JfId)>,
    Query(p): Query<MarkParams>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let user = caller.acting_for(Some(user))?;
    set_played(&state, user, item, true, p.date_played.as_deref()).await
}

async fn mark_unplayed_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user, item)): Path<(JfId, JfId)>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let user = caller.acting_for(Some(user))?;
    set_played(&state, user, item, false, None).await
}

async fn set_favorite(
    state: &AppState,
    user: JfId,
    id: JfId,
    favorite: bool,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let item = existing(state, id, user).await?;
    state
        .store
        .set_favorite(user, item.id, favorite, now_millis())
        .await?;
    let dto = reread(state, id, user).await?;
    announce(state, user, &dto.0);
    Ok(dto)
}

async fn mark_favorite(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item): Path<JfId>,
    Query(p): Query<MarkParams>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let user = caller.acting_for(p.user_id)?;
    set_favorite(&state, user, item, true).await
}

async fn unmark_favorite(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item): Path<JfId>,
    Query(p): Query<MarkParams>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let user = caller.acting_for(p.user_id)?;
    set_favorite(&state, user, item, false).await
}

async fn mark_favorite_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user, item)): Path<(JfId, JfId)>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let user = caller.acting_for(Some(user))?;
    set_favorite(&state, user, item, true).await
}

async fn unmark_favorite_legacy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((user, item)): Path<(JfId, JfId)>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let user = caller.acting_for(Some(user))?;
    set_favorite(&state, user, item, false).await
}

async fn user_data(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item): Path<JfId>,
    Query(p): Query<MarkParams>,
) -> Result<Json<UserItemDataDto>, ApiError> {
    let user = caller.acting_for(p.user_id)?;
    reread(&state, item, user).await
}

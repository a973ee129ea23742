//! Playback: `PlaybackInfo` (which ways a client may play an item) and the direct stream
//! `GET`/`HEAD /Videos/{itemId}/stream[.{container}]` with byte ranges.
//!
//! Security: a file is served only through an item id the scanner recorded,
//! and only while its stored path, links resolved at request time, is still inside one of its
//! library's configured folders. No request text is ever joined onto a path: the container in
//! `stream.{container}` and every query parameter are ignored for locating the file.
//! Filesystem errors are logged and answered with a generic 404 or 500.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::response::Response;
use axum::routing::get;
use http::request::Parts;
use http::{HeaderMap, Method, header};
use serde::Deserialize;

use crate::api::items::dto::{MediaSourceInfo, media_source, media_stream};
use crate::auth::{AuthUser, request_token};
use crate::error::ApiError;
use crate::jf::{JfId, Json, Path, Query};
use crate::metrics::Metrics;
use crate::playback::decision::{self, Options, PlayMethod, Source, UrlParts};
use crate::playback::profile::DeviceProfile;
use crate::scan::media_path_for_serving;
use crate::state::AppState;
use crate::store::items::{Item, OwnerRole};
use crate::stream::{ServeError, ServeOptions, content_type, serve_file};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/items/{itemid}/playbackinfo",
            get(playback_info_get).post(playback_info_post),
        )
        .route("/videos/{itemid}/stream", get(stream).head(stream))
        .route(
            "/videos/{itemid}/stream.{container}",
            get(stream_with_container).head(stream_with_container),
        )
}

// ----- PlaybackInfo ----------------------------------------------------------------------

/// `PlaybackInfoDto` (request body); property names in any case, unknown keys ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PlaybackInfoBody {
    user_id: Option<JfId>,
    max_streaming_bitrate: Option<i64>,
    start_time_ticks: Option<i64>,
    audio_stream_index: Option<i64>,
    subtitle_stream_index: Option<i64>,
    max_audio_channels: Option<i64>,
    media_source_id: Option<String>,
    device_profile: Option<DeviceProfile>,
    enable_direct_play: Option<bool>,
    enable_direct_stream: Option<bool>,
    enable_transcoding: Option<bool>,
    allow_video_stream_copy: Option<bool>,
    allow_audio_stream_copy: Option<bool>,
    always_burn_in_subtitle_when_transcoding: Option<bool>,
}

/// The query of `PlaybackInfo`: the `GET` form sends everything here, the `POST` form may
/// send some of it here too (the body wins).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PlaybackInfoParams {
    user_id: Option<JfId>,
    max_streaming_bitrate: Option<i64>,
    start_time_ticks: Option<i64>,
    audio_stream_index: Option<i64>,
    subtitle_stream_index: Option<i64>,
    max_audio_channels: Option<i64>,
    media_source_id: Option<String>,
    device_id: Option<String>,
    enable_direct_play: Option<bool>,
    enable_direct_stream: Option<bool>,
    enable_transcoding: Option<bool>,
    allow_video_stream_copy: Option<bool>,
    allow_audio_stream_copy: Option<bool>,
    always_burn_in_subtitle_when_transcoding: Option<bool>,
}

/// `PlaybackInfoResponse`.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct PlaybackInfoResponse {
    media_sources: Vec<MediaSourceInfo>,
    play_session_id: String,
}

/// The caller's token as sent (header or `ApiKey`), to put in the `TranscodingUrl` that HLS
/// players fetch without headers.
#[derive(Debug)]
struct CallerToken(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for CallerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(CallerToken(request_token(parts)))
    }
}

async fn playback_info_get(
    State(state): State<AppState>,
    caller: AuthUser,
    token: CallerToken,
    Path(item_id): Path<JfId>,
    Query(params): Query<PlaybackInfoParams>,
) -> Result<Json<PlaybackInfoResponse>, ApiError> {
    let body = PlaybackInfoBody::default();
    playback_info(&state, &caller, token, item_id, params, body).await
}

async fn playback_info_post(
    State(state): State<AppState>,
    caller: AuthUser,
    token: CallerToken,
    Path(item_id): Path<JfId>,
    Query(params): Query<PlaybackInfoParams>,
    Json(body): Json<PlaybackInfoBody>,
) -> Result<Json<PlaybackInfoResponse>, ApiError> {
    playback_info(&state, &caller, token, item_id, params, body).await
}

/// The source a `MediaSourceId` names (N or dashed form): the item itself, or one of its
/// other `versions` (each version is an item of its own, its id the source's id); anything else
/// is 404.
fn check_media_source(
    item: &Item,
    requested: Option<&str>,
    versions: &[JfId],
) -> Result<JfId, ApiError> {
    let not_found = || ApiError::not_found("Media source not found.");
    match requested.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(item.id),
        Some(text) => {
            let id = text.parse::<JfId>().map_err(|_| not_found())?;
            (id == item.id || versions.contains(&id))
                .then_some(id)
                .ok_or_else(not_found)
        }
    }
}

/// The item whose file plays when `item` is asked for with `MediaSourceId=requested`: the
/// item, or the version the client picked from its `MediaSources`.
pub(crate) async fn source_item(
    state: &AppState,
    item: Item,
    requested: Option<&str>,
    user: Option<JfId>,
) -> Result<Item, ApiError> {
    let names_other = requested
        .map(str::trim)
        .is_some_and(|r| !r.is_empty() && r.parse::<JfId>().ok() != Some(item.id));
    if !names_other {
        check_media_source(&item, requested, &[])?;
        return Ok(item);
    }
    let versions: Vec<JfId> = state
        .store
        .linked_of(&[item.id])
        .await?
        .remove(&item.id)
        .unwrap_or_default()
        .into_iter()
        .filter(|l| l.role == OwnerRole::Version)
        .map(|l| l.id)
        .collect();
    let id = check_media_source(&item, requested, &versions)?;
    playable_item(state, id, user).await
}

async fn playback_info(
    state: &AppState,
    caller: &AuthUser,
    CallerToken(token): CallerToken,
    item_id: JfId,
    params: PlaybackInfoParams,
    body: PlaybackInfoBody,
) -> Result<Json<PlaybackInfoResponse>, ApiError> {
    let user = caller.acting_for(body.user_id.or(params.user_id))?;
    let item = playable_item(state, item_id, Some(user)).await?;
    let item = source_item(
        state,
        item,
        body.media_source_id
            .as_deref()
            .or(params.media_source_id.as_deref()),
        Some(user),
    )
    .await?;
    let streams = state
        .store
        .media_streams(&[item.id])
        .await?
        .remove(&item.id)
        .unwrap_or_default();
    let profile = body.device_profile.as_ref();
    let mut source = media_source(&item, streams.iter().map(media_stream).collect());
    let options = Options {
        profile,
        max_bitrate: body
            .max_streaming_bitrate
            .or(params.max_streaming_bitrate)
            .or(profile.and_then(|p| p.max_streaming_bitrate))
            .filter(|b| *b > 0),
        enable_direct_play: body
            .enable_direct_play
            .or(params.enable_direct_play)
            .unwrap_or(true),
        enable_direct_stream: body
            .enable_direct_stream
            .or(params.enable_direct_stream)
            .unwrap_or(true),
        enable_transcoding: body
            .enable_transcoding
            .or(params.enable_transcoding)
            .unwrap_or(true),
        allow_video_copy: body
            .allow_video_stream_copy
            .or(params.allow_video_stream_copy)
            .unwrap_or(true),
        allow_audio_copy: body
            .allow_audio_stream_copy
            .or(params.allow_audio_stream_copy)
            .unwrap_or(true),
        audio_stream_index: body.audio_stream_index.or(params.audio_stream_index),
        subtitle_stream_index: body.subtitle_stream_index.or(params.subtitle_stream_index),
        max_audio_channels: body.max_audio_channels.or(params.max_audio_channels),
        always_burn_in: body
            .always_burn_in_subtitle_when_transcoding
            .or(params.always_burn_in_subtitle_when_transcoding)
            .unwrap_or(false),
    };
    let decision = decision::decide(
        Source {
            container: item.container.as_deref().unwrap_or_default(),
            bitrate: item.bitrate,
            streams: &streams,
            default_audio_index: source.default_audio_stream_index,
            default_subtitle_index: source.default_subtitle_stream_index,
        },
        options,
    );
    source.supports_direct_play = decision.supports_direct_play;
    source.supports_direct_stream = decision.supports_direct_stream;
    source.supports_transcoding = decision.supports_transcoding;
    source.default_audio_stream_index = decision
        .audio_stream_index
        .or(source.default_audio_stream_index);
    source.default_subtitle_stream_index = decision.subtitle_stream_index;

    let play_session_id = JfId::random().to_n();
    let start_time_ticks = body.start_time_ticks.or(params.start_time_ticks);
    let item_n = item.id.to_n();
    let mut subtitle_start = 0;
    if let Some(plan) = &decision.transcode {
        let device_id = params
            .device_id
            .clone()
            .unwrap_or_else(|| caller.device.device_id.clone());
        let url = plan.url(
            UrlParts {
                item_id: &item_n,
                media_source_id: &item_n,
                device_id: &device_id,
                play_session_id: &play_session_id,
                token: token.as_deref(),
                start_time_ticks,
            },
            decision.reasons,
        );
        tracing::debug!(
            method = decision.method.map_or("none", PlayMethod::as_str),
            reasons = ?decision.reasons.names(),
            "transcoding url built"
        );
        source.transcoding_url = Some(url);
        source.transcoding_sub_protocol = plan.protocol;
        source.transcoding_container = Some(match plan.container.as_str() {
            "mp4" => "mp4",
            "mkv" => "mkv",
            "webm" => "webm",
            _ => "ts",
        });
        if plan.protocol == "http" {
            // A progressive transcode starts at the start position; HLS keeps timestamps.
            subtitle_start = start_time_ticks.unwrap_or(0).max(0);
        }
    }
    crate::api::subtitles::set_delivery(
        &mut source,
        &decision.subtitles,
        &item_n,
        token.as_deref(),
        subtitle_start,
    );
    Ok(Json(PlaybackInfoResponse {
        media_sources: vec![source],
        play_session_id,
    }))
}

/// A film or episode that can be played, or 404.
pub(crate) async fn playable_item(
    state: &AppState,
    id: JfId,
    user: Option<JfId>,
) -> Result<Item, ApiError> {
    state
        .store
        .item(id, user)
        .await?
        .filter(|i| !i.kind.is_folder() && i.path.is_some())
        .ok_or_else(|| ApiError::not_found("Item not found."))
}

// ----- direct stream ---------------------------------------------------------------------

/// Counts a stream in `active_streams` for as long as its body is being sent.
struct ActiveStream(Arc<Metrics>);

impl ActiveStream {
    fn start(metrics: &Arc<Metrics>) -> ActiveStream {
        metrics.active_streams.inc();
        ActiveStream(metrics.clone())
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.active_streams.dec();
    }
}

async fn stream(
    State(state): State<AppState>,
    caller: AuthUser,
    method: Method,
    headers: HeaderMap,
    Path(item_id): Path<JfId>,
    params: Result<Query<crate::transcode::request::StreamParams>, ApiError>,
) -> Result<Response, ApiError> {
    let source = params.ok().and_then(|Query(p)| p.media_source_id);
    serve_item(
        &state,
        &caller,
        &method,
        &headers,
        item_id,
        source.as_deref(),
    )
    .await
}

async fn stream_with_container(
    State(state): State<AppState>,
    caller: AuthUser,
    method: Method,
    headers: HeaderMap,
    Path((item_id, container)): Path<(JfId, String)>,
    params: Result<Query<crate::transcode::request::StreamParams>, ApiError>,
) -> Result<Response, ApiError> {
    // Codec or bitrate parameters without `static=true` ask for a transcode (api::hls); a
    // query that does not parse is a direct stream, as before.
    if let Ok(Query(params)) = &params
        && method == Method::GET
        && crate::api::hls::wants_transcode(params)
    {
        return crate::api::hls::progressive(&state, &caller, item_id, &container, params).await;
    }
    // The container in the URL only mirrors `MediaSource.Container`; the file is sent as it
    // is (no remuxing), and the name is never used to find it.
    let source = params.ok().and_then(|Query(p)| p.media_source_id);
    serve_item(
        &state,
        &caller,
        &method,
        &headers,
        item_id,
        source.as_deref(),
    )
    .await
}

/// Sends an item's file as it is on disk. `static`, transcode parameters and the like are
/// ignored: this route never transcodes.
async fn serve_item(
    state: &AppState,
    caller: &AuthUser,
    method: &Method,
    headers: &HeaderMap,
    item_id: JfId,
    media_source_id: Option<&str>,
) -> Result<Response, ApiError> {
    let item = playable_item(state, item_id, Some(caller.user_id)).await?;
    let item = source_item(state, item, media_source_id, Some(caller.user_id)).await?;
    let stored = item.path.as_deref().map(std::path::Path::new);
    let Some(path) = stored
        .and_then(|p| media_path_for_serving(&state.config, state.store.ids(), item.library_id, p))
    else {
        tracing::warn!(item_id = %item_id, "media file missing or outside its library; refused");
        return Err(ApiError::not_found("Item not found."));
    };
    let head = method == Method::HEAD;
    let options = ServeOptions {
        content_type: content_type(item.container.as_deref().unwrap_or_default()),
        head,
        range: headers.get(header::RANGE).map(|v| v.as_bytes()),
    };
    let result = if head {
        serve_file(&path, options, ()).await
    } else {
        serve_file(&path, options, ActiveStream::start(&state.metrics)).await
    };
    result.map_err(|e| match e {
        ServeError::RangeNotSatisfiable { size } => ApiError::RangeNotSatisfiable { size },
        ServeError::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(item_id = %item_id, "media file vanished since the scan");
            ApiError::not_found("Item not found.")
        }
        ServeError::Io(io) => ApiError::internal(io),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::items::{ItemKind, UserData};

    fn film() -> Item {
        Item {
            id: JfId::from_bytes([7; 16]),
            library_id: JfId::from_bytes([2; 16]),
            parent_id: None,
            kind: ItemKind::Movie,
            name: "Film".to_owned(),
            sort_name: "film".to_owned(),
            path: Some("/m/film.mkv".to_owned()),
            series_id: None,
            season_id: None,
            index_number: None,
            parent_index_number: None,
            production_year: None,
            premiere_date: None,
            overview: None,
            run_time_ticks: Some(1),
            container: Some("mkv".to_owned()),
            size_bytes: Some(1),
            bitrate: Some(1),
            file_mtime: None,
            date_created: 0,
            date_modified: 0,
            series_name: None,
            season_name: None,
            user_data: UserData::default(),
            naming: Default::default(),
            local: Default::default(),
            counts: None,
            linked_sources: 0,
        }
    }

    #[test]
    fn a_media_source_id_must_name_the_items_source_or_one_of_its_versions() {
        let item = film();
        let version = JfId::from_bytes([9; 16]);
        assert_eq!(check_media_source(&item, None, &[]).unwrap(), item.id);
        assert_eq!(check_media_source(&item, Some(""), &[]).unwrap(), item.id);
        assert_eq!(
            check_media_source(&item, Some(&item.id.to_n()), &[version]).unwrap(),
            item.id
        );
        assert_eq!(
            check_media_source(&item, Some(&item.id.to_dashed()), &[]).unwrap(),
            item.id
        );
        assert_eq!(
            check_media_source(&item, Some(&version.to_dashed()), &[version]).unwrap(),
            version
        );
        for other in ["07070707070707070707070707070708", "nonsense"] {
            let err = check_media_source(&item, Some(other), &[version]).unwrap_err();
            assert_eq!(err.status(), http::StatusCode::NOT_FOUND);
        }
    }
}

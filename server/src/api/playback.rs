//! Playback: `PlaybackInfo` (which ways a client may play an item) and the direct stream
//! `GET`/`HEAD /Videos/{itemId}/stream[.{container}]` with byte ranges.
//!
//! Security (issue 3, point 8): a file is served only through an item id the scanner recorded,
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
use crate::scan::media_path_for_serving;
use crate::scan::probe::{StreamInfo, StreamKind};
use crate::state::AppState;
use crate::store::items::Item;
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
    audio_stream_index: Option<i64>,
    media_source_id: Option<String>,
    device_profile: Option<DeviceProfile>,
    enable_direct_play: Option<bool>,
    enable_direct_stream: Option<bool>,
    enable_transcoding: Option<bool>,
}

/// The query of `PlaybackInfo` (older clients send these instead of a body).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PlaybackInfoParams {
    user_id: Option<JfId>,
    max_streaming_bitrate: Option<i64>,
    audio_stream_index: Option<i64>,
    media_source_id: Option<String>,
    device_id: Option<String>,
}

/// The parts of a `DeviceProfile` that decide direct play.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DeviceProfile {
    max_streaming_bitrate: Option<i64>,
    direct_play_profiles: Vec<DirectPlayProfile>,
    transcoding_profiles: Vec<TranscodingProfile>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct DirectPlayProfile {
    container: Option<String>,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct TranscodingProfile {
    container: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<String>,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    protocol: Option<String>,
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
    let streams = state
        .store
        .media_streams(&[item.id])
        .await?
        .remove(&item.id)
        .unwrap_or_default();
    let profile = body.device_profile.clone();
    let max_bitrate = body
        .max_streaming_bitrate
        .or(params.max_streaming_bitrate)
        .or(profile.as_ref().and_then(|p| p.max_streaming_bitrate));
    let verdict = direct_play(&item, &streams, profile.as_ref(), max_bitrate);
    let mut source = media_source(&item, streams.iter().map(media_stream).collect());
    source.supports_direct_play = verdict.is_ok() && body.enable_direct_play != Some(false);
    source.supports_direct_stream = verdict.is_ok() && body.enable_direct_stream != Some(false);
    source.supports_transcoding = body.enable_transcoding != Some(false);

    let play_session_id = JfId::random().to_n();
    if source.supports_transcoding {
        let hls = HlsRequest {
            item: &item,
            streams: &streams,
            profile: profile.as_ref(),
            max_bitrate,
            audio_stream_index: body
                .audio_stream_index
                .or(params.audio_stream_index)
                .or(source.default_audio_stream_index),
            device_id: params
                .device_id
                .clone()
                .unwrap_or_else(|| caller.device.device_id.clone()),
            play_session_id: &play_session_id,
            token,
            reasons: verdict.err().unwrap_or_default(),
        };
        let (url, video_codec) = hls.url();
        tracing::debug!(%video_codec, "transcoding url built");
        source.transcoding_url = Some(url);
        source.transcoding_sub_protocol = "hls";
        source.transcoding_container = Some("ts");
    }
    // A client asking for another media source id gets the one source there is.
    let _ = body.media_source_id.or(params.media_source_id);
    Ok(Json(PlaybackInfoResponse {
        media_sources: vec![source],
        play_session_id,
    }))
}

/// A film or episode that can be played, or 404.
async fn playable_item(state: &AppState, id: JfId, user: Option<JfId>) -> Result<Item, ApiError> {
    state
        .store
        .item(id, user)
        .await?
        .filter(|i| !i.kind.is_folder() && i.path.is_some())
        .ok_or_else(|| ApiError::not_found("Item not found."))
}

/// Containers that are the same thing under another name.
fn container_aliases(container: &str) -> &'static [&'static str] {
    match container {
        "mkv" | "matroska" => &["mkv", "matroska"],
        "mp4" | "m4v" | "mov" => &["mp4", "m4v", "mov"],
        "ts" | "mpegts" | "m2ts" => &["ts", "mpegts", "m2ts"],
        "webm" => &["webm"],
        "avi" => &["avi"],
        _ => &[],
    }
}

/// True when `list` (comma-separated, empty = anything) names `value`.
fn list_accepts(list: Option<&str>, values: &[&str]) -> bool {
    let Some(list) = list.map(str::trim).filter(|l| !l.is_empty()) else {
        return true;
    };
    list.split(',')
        .map(str::trim)
        .any(|entry| values.iter().any(|v| v.eq_ignore_ascii_case(entry)))
}

/// Whether the client can play the file as it is; otherwise the transcode reasons.
fn direct_play(
    item: &Item,
    streams: &[StreamInfo],
    profile: Option<&DeviceProfile>,
    max_bitrate: Option<i64>,
) -> Result<(), Vec<&'static str>> {
    if let (Some(max), Some(bitrate)) = (max_bitrate, item.bitrate)
        && max > 0
        && bitrate > max
    {
        return Err(vec!["ContainerBitrateExceedsLimit"]);
    }
    // Without a profile, a client is trusted to know what it plays.
    let Some(profile) = profile else {
        return Ok(());
    };
    let container = item.container.as_deref().unwrap_or_default();
    let mut containers: Vec<&str> = container_aliases(container).to_vec();
    if containers.is_empty() {
        containers.push(container);
    }
    let codec_of = |kind: StreamKind| {
        streams
            .iter()
            .find(|s| s.kind == kind)
            .and_then(|s| s.codec.as_deref())
    };
    let video = codec_of(StreamKind::Video);
    let audio = codec_of(StreamKind::Audio);
    let mut reasons = vec!["ContainerNotSupported"];
    for p in &profile.direct_play_profiles {
        if p.kind
            .as_deref()
            .is_some_and(|k| !k.eq_ignore_ascii_case("Video"))
        {
            continue;
        }
        if !list_accepts(p.container.as_deref(), &containers) {
            continue;
        }
        let video_ok = video.is_none_or(|c| list_accepts(p.video_codec.as_deref(), &[c]));
        let audio_ok = audio.is_none_or(|c| list_accepts(p.audio_codec.as_deref(), &[c]));
        if video_ok && audio_ok {
            return Ok(());
        }
        reasons = Vec::new();
        if !video_ok {
            reasons.push("VideoCodecNotSupported");
        }
        if !audio_ok {
            reasons.push("AudioCodecNotSupported");
        }
    }
    Err(reasons)
}

/// The inputs of a `TranscodingUrl`.
struct HlsRequest<'a> {
    item: &'a Item,
    streams: &'a [StreamInfo],
    profile: Option<&'a DeviceProfile>,
    max_bitrate: Option<i64>,
    audio_stream_index: Option<i64>,
    device_id: String,
    play_session_id: &'a str,
    token: Option<String>,
    reasons: Vec<&'static str>,
}

impl HlsRequest<'_> {
    /// `/videos/{id}/master.m3u8?...` as Jellyfin's `StreamInfo.ToUrl` writes it (relative;
    /// clients prefix their server address). Returns the URL and the video codec chosen.
    fn url(&self) -> (String, String) {
        let hls_profile = self.profile.and_then(|p| {
            p.transcoding_profiles.iter().find(|t| {
                t.kind
                    .as_deref()
                    .is_none_or(|k| k.eq_ignore_ascii_case("Video"))
                    && t.protocol
                        .as_deref()
                        .is_none_or(|p| p.eq_ignore_ascii_case("hls"))
                    && t.container
                        .as_deref()
                        .is_none_or(|c| c.eq_ignore_ascii_case("ts"))
            })
        });
        let first = |list: Option<&str>, default: &str| {
            list.and_then(|l| l.split(',').map(str::trim).find(|c| !c.is_empty()))
                .unwrap_or(default)
                .to_ascii_lowercase()
        };
        let video_codec = first(hls_profile.and_then(|p| p.video_codec.as_deref()), "h264");
        let audio_codec = first(hls_profile.and_then(|p| p.audio_codec.as_deref()), "aac");
        let audio_bitrate: i64 = 192_000;
        let source_bitrate = self.item.bitrate.unwrap_or(8_000_000);
        let video_bitrate = self
            .max_bitrate
            .filter(|m| *m > 0)
            .map_or(source_bitrate, |m| m.min(source_bitrate.max(1_000_000)))
            .saturating_sub(audio_bitrate)
            .max(500_000);
        let id = self.item.id.to_n();
        let mut q: Vec<(&str, String)> = vec![
            ("DeviceId", self.device_id.clone()),
            ("MediaSourceId", id.clone()),
            ("VideoCodec", video_codec.clone()),
            ("AudioCodec", audio_codec),
        ];
        if let Some(index) = self.audio_stream_index {
            q.push(("AudioStreamIndex", index.to_string()));
        }
        q.push(("VideoBitrate", video_bitrate.to_string()));
        q.push(("AudioBitrate", audio_bitrate.to_string()));
        if let Some(video) = self.streams.iter().find(|s| s.kind == StreamKind::Video) {
            if let Some(w) = video.width {
                q.push(("MaxWidth", w.to_string()));
            }
            if let Some(h) = video.height {
                q.push(("MaxHeight", h.to_string()));
            }
        }
        q.extend([
            ("SegmentContainer", "ts".to_owned()),
            ("MinSegments", "1".to_owned()),
            ("BreakOnNonKeyFrames", "True".to_owned()),
            ("PlaySessionId", self.play_session_id.to_owned()),
        ]);
        if let Some(token) = &self.token {
            q.push(("ApiKey", token.clone()));
        }
        q.push(("TranscodingMaxAudioChannels", "2".to_owned()));
        if !self.reasons.is_empty() {
            q.push(("TranscodeReasons", self.reasons.join(",")));
        }
        let query = q
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        (format!("/videos/{id}/master.m3u8?{query}"), video_codec)
    }
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
) -> Result<Response, ApiError> {
    serve_item(&state, &caller, &method, &headers, item_id).await
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
    serve_item(&state, &caller, &method, &headers, item_id).await
}

/// Sends an item's file as it is on disk. `static`, transcode parameters and the like are
/// ignored: this route never transcodes.
async fn serve_item(
    state: &AppState,
    caller: &AuthUser,
    method: &Method,
    headers: &HeaderMap,
    item_id: JfId,
) -> Result<Response, ApiError> {
    let item = playable_item(state, item_id, Some(caller.user_id)).await?;
    let stored = item.path.as_deref().map(std::path::Path::new);
    let Some(path) = stored.and_then(|p| media_path_for_serving(&state.config, item.library_id, p))
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

    fn film(container: &str, bitrate: i64) -> Item {
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
            container: Some(container.to_owned()),
            size_bytes: Some(1),
            bitrate: Some(bitrate),
            file_mtime: None,
            date_created: 0,
            date_modified: 0,
            series_name: None,
            season_name: None,
            user_data: UserData::default(),
        }
    }

    fn h264_aac() -> Vec<StreamInfo> {
        vec![
            StreamInfo {
                index: 0,
                kind: StreamKind::Video,
                codec: Some("h264".to_owned()),
                width: Some(320),
                height: Some(180),
                ..StreamInfo::default()
            },
            StreamInfo {
                index: 1,
                kind: StreamKind::Audio,
                codec: Some("aac".to_owned()),
                ..StreamInfo::default()
            },
        ]
    }

    fn profile(container: &str, video: &str, audio: &str) -> DeviceProfile {
        DeviceProfile {
            direct_play_profiles: vec![DirectPlayProfile {
                container: Some(container.to_owned()),
                video_codec: Some(video.to_owned()),
                audio_codec: Some(audio.to_owned()),
                kind: Some("Video".to_owned()),
            }],
            ..DeviceProfile::default()
        }
    }

    #[test]
    fn a_profile_that_accepts_container_and_codecs_allows_direct_play() {
        let p = profile("mkv,webm", "h264,hevc", "aac,mp3");
        assert_eq!(
            direct_play(&film("mkv", 1000), &h264_aac(), Some(&p), None),
            Ok(())
        );
        let p = profile("mp4", "", "");
        assert_eq!(
            direct_play(&film("m4v", 1000), &h264_aac(), Some(&p), None),
            Ok(())
        );
    }

    #[test]
    fn an_unknown_container_or_codec_gives_transcode_reasons() {
        let p = profile("mp4", "h264", "aac");
        assert_eq!(
            direct_play(&film("mkv", 1000), &h264_aac(), Some(&p), None),
            Err(vec!["ContainerNotSupported"])
        );
        let p = profile("mkv", "hevc", "aac");
        assert_eq!(
            direct_play(&film("mkv", 1000), &h264_aac(), Some(&p), None),
            Err(vec!["VideoCodecNotSupported"])
        );
    }

    #[test]
    fn a_bitrate_above_the_limit_prevents_direct_play() {
        assert_eq!(
            direct_play(&film("mkv", 9_000_000), &h264_aac(), None, Some(1_000_000)),
            Err(vec!["ContainerBitrateExceedsLimit"])
        );
        assert_eq!(
            direct_play(&film("mkv", 9_000_000), &h264_aac(), None, None),
            Ok(())
        );
    }

    #[test]
    fn the_transcoding_url_is_relative_hls_with_the_session_and_token() {
        let item = film("mkv", 2_000_000);
        let streams = h264_aac();
        let hls = HlsRequest {
            item: &item,
            streams: &streams,
            profile: None,
            max_bitrate: None,
            audio_stream_index: Some(1),
            device_id: "dev 1".to_owned(),
            play_session_id: "abc",
            token: Some("tok".to_owned()),
            reasons: vec!["ContainerNotSupported"],
        };
        let (url, codec) = hls.url();
        assert_eq!(codec, "h264");
        assert!(
            url.starts_with(
                "/videos/07070707070707070707070707070707/master.m3u8?DeviceId=dev%201&"
            ),
            "{url}"
        );
        for part in [
            "MediaSourceId=07070707070707070707070707070707",
            "VideoCodec=h264",
            "AudioCodec=aac",
            "AudioStreamIndex=1",
            "SegmentContainer=ts",
            "PlaySessionId=abc",
            "ApiKey=tok",
            "TranscodeReasons=ContainerNotSupported",
        ] {
            assert!(url.contains(part), "{part} missing from {url}");
        }
    }
}

//! On-demand HLS, as Jellyfin's `DynamicHlsController`: `master.m3u8`, `main.m3u8` (the whole
//! VOD list written up front from the segment grid), segments
//! `hls1/{playlistId}/{n}.{ts|mp4}` (fMP4 init `-1.mp4`), `DELETE /Videos/ActiveEncodings`,
//! and the progressive transcode behind `/Videos/{id}/stream.{container}` (called from
//! `playback`). Authentication by header or `ApiKey`/`api_key` query, like every route.
//!
//! Every parameter is checked (item, media source, container, codecs, segment index) before
//! any ffmpeg starts, so bad input leaves no process behind. Which replica serves a request
//! does not matter: playlists come from the grid stored per file, segments from whichever
//! replica is asked.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use futures::StreamExt;
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;

use crate::api::items::dto::display_title;
use crate::auth::{AuthUser, request_token};
use crate::error::ApiError;
use crate::jf::{JfId, Path, Query};
use crate::playback::decision::is_text_subtitle_codec;
use crate::scan::media_path_for_serving;
use crate::scan::probe::{StreamInfo, StreamKind};
use crate::state::AppState;
use crate::store::items::Item;
use crate::transcode::grid::Grid;
use crate::transcode::request::{
    AudioCodec, AudioOut, Container, OutputSpec, StreamParams, VideoCodec, VideoOut, decide,
};
use crate::transcode::{Stream, StreamSource, TranscodeError, file_identity, load_index};

/// Seconds a client is told to wait when every transcode slot is taken.
pub const BUSY_RETRY_AFTER_SECONDS: u64 = 10;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/videos/{itemid}/master.m3u8", get(master))
        .route("/videos/{itemid}/main.m3u8", get(main_playlist))
        .route("/videos/{itemid}/hls1/{playlistid}/{segment}", get(segment))
        .route("/videos/activeencodings", delete(stop_encodings))
}

/// Everything a request resolved: the item, its file, its streams, the decided output.
struct Resolved {
    item: Item,
    path: PathBuf,
    streams: Vec<StreamInfo>,
    spec: OutputSpec,
}

/// Checks the item, media source and parameters; no process is started here.
async fn resolve(
    state: &AppState,
    caller: &AuthUser,
    item_id: JfId,
    params: &StreamParams,
    container: Option<Container>,
) -> Result<Resolved, ApiError> {
    let item = state
        .store
        .item(item_id, Some(caller.user_id))
        .await?
        .filter(|i| !i.kind.is_folder() && i.path.is_some())
        .ok_or_else(|| ApiError::not_found("Item not found."))?;
    // The item itself or the version the client picked.
    let item = crate::api::playback::source_item(
        state,
        item,
        params.media_source_id.as_deref(),
        Some(caller.user_id),
    )
    .await?;
    let stored = item.path.as_deref().map(std::path::Path::new);
    let Some(path) = stored
        .and_then(|p| media_path_for_serving(&state.config, state.store.ids(), item.library_id, p))
    else {
        tracing::warn!(item_id = %item_id, "media file missing or outside its library; refused");
        return Err(ApiError::not_found("Item not found."));
    };
    let streams = state
        .store
        .media_streams(&[item.id])
        .await?
        .remove(&item.id)
        .unwrap_or_default();
    let spec = decide(
        params,
        &streams,
        item.bitrate,
        state.config.transcode.segment_seconds,
        container,
    )
    .map_err(ApiError::bad_request)?;
    Ok(Resolved {
        item,
        path,
        streams,
        spec,
    })
}

/// The grid of a resolved request (indexing the file on first use).
async fn grid_of(state: &AppState, r: &Resolved) -> Result<Grid, ApiError> {
    let index = load_index(
        &state.store,
        &state.config.ffmpeg.ffprobe,
        r.item.id,
        &r.path,
    )
    .await
    .map_err(ApiError::internal)?;
    Ok(match r.spec.video {
        VideoOut::Copy => Grid::remux(&index, r.spec.segment_seconds),
        VideoOut::Encode { .. } => Grid::transcode(&index, r.spec.segment_seconds),
    })
}

/// The query with Jellyfin's per-segment parameters removed, to pass on in playlist URIs.
fn passed_query(raw: Option<&str>) -> String {
    raw.unwrap_or_default()
        .split('&')
        .filter(|p| {
            let key = p.split('=').next().unwrap_or_default();
            !p.is_empty()
                && !key.eq_ignore_ascii_case("runtimeTicks")
                && !key.eq_ignore_ascii_case("actualSegmentLengthTicks")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn playlist_response(body: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-mpegURL"),
            ),
            (header::EXPIRES, HeaderValue::from_static("0")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

/// `avc1.PPCCLL`, `hvc1...`, `mp4a.40.2`: what the client must decode.
fn codecs_attribute(r: &Resolved) -> String {
    let video = r.streams.iter().find(|s| s.kind == StreamKind::Video);
    let v = match &r.spec.video {
        VideoOut::Encode {
            codec: VideoCodec::H264,
            ..
        } => "avc1.640028".to_owned(),
        VideoOut::Encode {
            codec: VideoCodec::Hevc,
            ..
        } => "hvc1.1.4.L120.B0".to_owned(),
        VideoOut::Copy => match video.and_then(|v| v.codec.as_deref()) {
            Some("hevc") => format!(
                "hvc1.{}.4.L{}.B0",
                if video
                    .and_then(|v| v.profile.as_deref())
                    .is_some_and(|p| p.contains("10"))
                {
                    2
                } else {
                    1
                },
                video.and_then(|v| v.level).unwrap_or(120)
            ),
            _ => {
                let profile = match video.and_then(|v| v.profile.as_deref()) {
                    Some(p) if p.contains("Baseline") => "42",
                    Some("Main") => "4d",
                    _ => "64",
                };
                format!(
                    "avc1.{profile}00{:02x}",
                    video.and_then(|v| v.level).unwrap_or(40).clamp(0, 255)
                )
            }
        },
    };
    let a = r.spec.audio.as_ref().map(|(index, out)| {
        let codec = match out {
            AudioOut::Encode { codec, .. } => match codec {
                AudioCodec::Aac => "aac",
                AudioCodec::Mp3 => "mp3",
                AudioCodec::Ac3 => "ac3",
                AudioCodec::Eac3 => "eac3",
            },
            AudioOut::Copy => r
                .streams
                .iter()
                .find(|s| s.index == *index)
                .and_then(|s| s.codec.as_deref())
                .unwrap_or("aac"),
        };
        match codec {
            "mp3" => "mp4a.40.34",
            "ac3" => "ac-3",
            "eac3" => "ec-3",
            "flac" => "fLaC",
            "opus" => "Opus",
            _ => "mp4a.40.2",
        }
    });
    match a {
        Some(a) => format!("{v},{a}"),
        None => v,
    }
}

async fn master(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item_id): Path<JfId>,
    Query(params): Query<StreamParams>,
    RawQuery(raw): RawQuery,
    parts: http::request::Parts,
) -> Result<Response, ApiError> {
    let r = resolve(&state, &caller, item_id, &params, None).await?;
    let video = r.streams.iter().find(|s| s.kind == StreamKind::Video);
    let (width, height, bitrate) = match &r.spec.video {
        VideoOut::Encode {
            width,
            height,
            bitrate,
            ..
        } => (i64::from(*width), i64::from(*height), *bitrate as i64),
        VideoOut::Copy => (
            video.and_then(|v| v.width).unwrap_or(1920),
            video.and_then(|v| v.height).unwrap_or(1080),
            video
                .and_then(|v| v.bit_rate)
                .or(r.item.bitrate)
                .unwrap_or(8_000_000),
        ),
    };
    let audio_bitrate = match &r.spec.audio {
        Some((_, AudioOut::Encode { bitrate, .. })) => *bitrate as i64,
        Some((_, AudioOut::Copy)) => 384_000,
        None => 0,
    };
    let bandwidth = bitrate + audio_bitrate;
    let mut line = format!(
        "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},AVERAGE-BANDWIDTH={bandwidth},VIDEO-RANGE=SDR,CODECS=\"{}\",RESOLUTION={width}x{height}",
        codecs_attribute(&r)
    );
    if let Some(fps) = video.and_then(|v| v.frame_rate).filter(|f| *f > 0.0) {
        line.push_str(&format!(",FRAME-RATE={fps:.3}"));
    }
    let subtitles = subtitle_media(&r, &params, request_token(&parts).as_deref());
    if !subtitles.is_empty() {
        line.push_str(",SUBTITLES=\"subs\"");
    }
    let body = format!(
        "#EXTM3U\n{subtitles}{line}\nmain.m3u8?{}\n",
        passed_query(raw.as_deref())
    );
    Ok(playlist_response(body))
}

/// `#EXT-X-MEDIA` lines of the text subtitles, when the client asked for them in the manifest
/// (`SubtitleMethod=Hls` or `EnableSubtitlesInManifest=true`), as Jellyfin's
/// `DynamicHlsHelper.AddSubtitles`; none when a subtitle is burned in.
fn subtitle_media(r: &Resolved, params: &StreamParams, token: Option<&str>) -> String {
    let wanted = params.enable_subtitles_in_manifest == Some(true)
        || params
            .subtitle_method
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("hls"));
    if !wanted || r.spec.burn_in.is_some() {
        return String::new();
    }
    let yes = |b: bool| if b { "YES" } else { "NO" };
    let mut key = token.map_or_else(String::new, |t| format!("&ApiKey={t}"));
    if r.spec.container == Container::Mp4 {
        // fMP4 segments carry source times: the WebVTT time map must say so.
        key.insert_str(0, "&SegmentContainer=mp4");
    }
    let source = r.item.id.to_n();
    r.streams
        .iter()
        .filter(|s| s.kind == StreamKind::Subtitle && is_text_subtitle_codec(s.codec.as_deref()))
        .map(|s| {
            let name = display_title(s).replace('"', "'");
            let language = s
                .language
                .as_deref()
                .map_or_else(String::new, |l| format!(",LANGUAGE=\"{}\"", l.replace('"', "")));
            format!(
                "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"{name}\",DEFAULT={},FORCED={},\
                 AUTOSELECT=YES,URI=\"{source}/Subtitles/{}/subtitles.m3u8?SegmentLength=30{key}\"{language}\n",
                yes(params.subtitle_stream_index == Some(s.index)),
                yes(s.is_forced),
                s.index,
            )
        })
        .collect()
}

async fn main_playlist(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(item_id): Path<JfId>,
    Query(params): Query<StreamParams>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let r = resolve(&state, &caller, item_id, &params, None).await?;
    let grid = grid_of(&state, &r).await?;
    let query = passed_query(raw.as_deref());
    let ext = r.spec.container.extension();
    let mp4 = r.spec.container == Container::Mp4;
    let mut out = String::with_capacity(128 + grid.segments.len() * (query.len() + 96));
    out.push_str("#EXTM3U\n#EXT-X-PLAYLIST-TYPE:VOD\n");
    out.push_str(if mp4 {
        "#EXT-X-VERSION:7\n"
    } else {
        "#EXT-X-VERSION:3\n"
    });
    out.push_str(&format!(
        "#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n",
        grid.target_duration()
    ));
    if mp4 {
        out.push_str(&format!(
            "#EXT-X-MAP:URI=\"hls1/main/-1.mp4?{query}&runtimeTicks=0&actualSegmentLengthTicks=0\"\n"
        ));
    }
    for (i, s) in grid.segments.iter().enumerate() {
        out.push_str(&format!(
            "#EXTINF:{:.6}, nodesc\nhls1/main/{i}.{ext}?{query}&runtimeTicks={}&actualSegmentLengthTicks={}\n",
            s.duration,
            s.start_ticks(grid.origin),
            s.duration_ticks()
        ));
    }
    out.push_str("#EXT-X-ENDLIST\n");
    Ok(playlist_response(out))
}

/// The path parameter of a segment: `12.ts`, `-1.mp4`.
fn parse_segment_name(name: &str) -> Result<(i64, Container), ApiError> {
    let (index, ext) = name
        .rsplit_once('.')
        .ok_or_else(|| ApiError::bad_request("A segment name is `<index>.<container>`."))?;
    let container = Container::parse(ext).map_err(ApiError::bad_request)?;
    if container == Container::Mkv {
        return Err(ApiError::bad_request("Unsupported container: mkv"));
    }
    let index = index
        .parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("Invalid segment index: {index}")))?;
    Ok((index, container))
}

/// Maps a transcode failure to the response; busy adds `Retry-After`.
fn transcode_error(e: TranscodeError) -> Response {
    match e {
        TranscodeError::Busy { max } => {
            tracing::warn!(max, "transcode refused: every slot is in use");
            let mut response = ApiError::Unavailable(
                "Every transcode slot of this server is in use; retry later.",
            )
            .into_response();
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(BUSY_RETRY_AFTER_SECONDS),
            );
            response
        }
        other => ApiError::internal(other).into_response(),
    }
}

/// Opens this replica's stream of a resolved request.
fn open_stream(state: &AppState, r: &Resolved, grid: Grid, session: Option<&str>) -> Arc<Stream> {
    let key = r.spec.key(&file_identity(r.item.id, &r.path));
    let source_sample_rate = r.spec.audio.as_ref().and_then(|(index, _)| {
        r.streams
            .iter()
            .find(|s| s.index == *index)
            .and_then(|s| s.sample_rate)
            .and_then(|s| u32::try_from(s).ok())
    });
    let input = r.path.clone();
    let spec = r.spec.clone();
    state.transcodes.open(
        &key,
        move || StreamSource {
            input,
            spec,
            grid: Arc::new(grid),
            source_sample_rate,
        },
        session,
    )
}

async fn segment(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((item_id, _playlist, name)): Path<(JfId, String, String)>,
    Query(params): Query<StreamParams>,
) -> Result<Response, ApiError> {
    let (index, container) = parse_segment_name(&name)?;
    let r = resolve(&state, &caller, item_id, &params, None).await?;
    if container != r.spec.container {
        return Err(ApiError::bad_request(format!(
            "Segment container {} does not match SegmentContainer {}",
            container.extension(),
            r.spec.container.extension()
        )));
    }
    let init = index == -1 && container == Container::Mp4;
    if index < 0 && !init {
        return Err(ApiError::bad_request(format!(
            "Invalid segment index: {index}"
        )));
    }
    let grid = grid_of(&state, &r).await?;
    if !init && index as usize >= grid.segments.len() {
        return Err(ApiError::not_found(format!(
            "Segment {index} is past the end ({} segments).",
            grid.segments.len()
        )));
    }
    let stream = open_stream(&state, &r, grid, params.play_session_id.as_deref());
    let files = if init {
        state
            .transcodes
            .init_segment(&stream)
            .await
            .map(|p| vec![p])
    } else {
        state.transcodes.segment(&stream, index as usize).await
    };
    let files = match files {
        Ok(f) => f,
        Err(e) => return Ok(transcode_error(e)),
    };
    send_files(files, container.content_type()).await
}

/// Sends `files` one after the other as one body. They are opened first, so a stream
/// removed meanwhile still sends what it had.
async fn send_files(files: Vec<PathBuf>, content_type: &'static str) -> Result<Response, ApiError> {
    let mut opened = Vec::with_capacity(files.len());
    let mut length = 0u64;
    for f in &files {
        let file = tokio::fs::File::open(f).await.map_err(ApiError::internal)?;
        length += file.metadata().await.map_err(ApiError::internal)?.len();
        opened.push(file);
    }
    let body = futures::stream::iter(opened).flat_map(tokio_util::io::ReaderStream::new);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, length)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .map_err(ApiError::internal)
}

/// The query of `DELETE /Videos/ActiveEncodings`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StopParams {
    device_id: Option<String>,
    play_session_id: Option<String>,
}

async fn stop_encodings(
    State(state): State<AppState>,
    _caller: AuthUser,
    Query(p): Query<StopParams>,
) -> Result<StatusCode, ApiError> {
    let session = p
        .play_session_id
        .ok_or_else(|| ApiError::bad_request("PlaySessionId is required."))?;
    let stopped = state.transcodes.stop_session(&session).await;
    tracing::info!(
        stopped,
        device = p.device_id.as_deref().unwrap_or("-"),
        "active encodings stopped"
    );
    Ok(StatusCode::NO_CONTENT)
}

// ----- progressive transcode ---------------------------------------------------------------

/// True when a `/Videos/{id}/stream.{container}` request asks for a transcode rather than
/// the file: not `static=true`, and codec or bitrate parameters present.
pub fn wants_transcode(params: &StreamParams) -> bool {
    params.is_static != Some(true)
        && (params.video_codec.is_some()
            || params.audio_codec.is_some()
            || params.video_bitrate.is_some()
            || params.max_width.is_some()
            || params.max_height.is_some())
}

/// Streams ffmpeg's output of the item in `container` (fragmented MP4, MPEG-TS or Matroska)
/// from `StartTimeTicks`. The process ends when the client goes away.
pub async fn progressive(
    state: &AppState,
    caller: &AuthUser,
    item_id: JfId,
    container: &str,
    params: &StreamParams,
) -> Result<Response, ApiError> {
    let container = Container::parse(container).map_err(ApiError::bad_request)?;
    let r = resolve(state, caller, item_id, params, Some(container)).await?;
    let slot = match state.transcodes.take_slot() {
        Ok(s) => s,
        Err(e) => return Ok(transcode_error(e)),
    };
    let start = params
        .start_time_ticks
        .filter(|t| *t > 0)
        .map(|t| t as f64 / 1e7);
    let args = progressive_args(&r, start, &state.transcodes.hw());
    let mut child = state
        .transcodes
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(ApiError::internal)?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| ApiError::internal(std::io::Error::other("no ffmpeg output")))?;
    state.metrics.transcodes_started.inc();
    // The child and the slot live as long as the body: dropping the body kills ffmpeg.
    let guard = (child, slot);
    let body = tokio_util::io::ReaderStream::new(stdout).map(move |chunk| {
        let _keep = &guard;
        chunk
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, container.content_type())
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(body))
        .map_err(ApiError::internal)
}

fn progressive_args(
    r: &Resolved,
    start: Option<f64>,
    hw: &crate::transcode::command::HwPath,
) -> Vec<std::ffi::OsString> {
    let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        .map(str::to_owned)
        .to_vec();
    let encodes = r.spec.encodes_video();
    if encodes {
        a.extend(hw.init_args());
        a.extend(hw.decode_args());
    }
    if let Some(s) = start {
        a.extend(["-ss".to_owned(), format!("{s:.3}")]);
    }
    let mut out: Vec<std::ffi::OsString> = a.into_iter().map(Into::into).collect();
    out.push("-i".into());
    out.push(crate::scan::probe::prefixed_file_arg(&r.path));
    let mut b: Vec<String> = [
        "-map_metadata",
        "-1",
        "-map_chapters",
        "-1",
        "-map",
        "0:v:0",
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some((index, _)) = &r.spec.audio {
        b.extend(["-map".to_owned(), format!("0:{index}")]);
    }
    match &r.spec.video {
        VideoOut::Copy => b.extend(["-c:v".to_owned(), "copy".to_owned()]),
        VideoOut::Encode {
            codec,
            width,
            height,
            bitrate,
            ten_bit_source,
        } => {
            b.extend([
                "-vf".to_owned(),
                hw.scale_filter(*width, *height, *ten_bit_source),
            ]);
            b.extend(hw.encoder_args(*codec, *bitrate, 250));
        }
    }
    match &r.spec.audio {
        Some((_, AudioOut::Copy)) => b.extend(["-c:a".to_owned(), "copy".to_owned()]),
        Some((
            _,
            AudioOut::Encode {
                codec,
                channels,
                bitrate,
                sample_rate,
            },
        )) => b.extend([
            "-c:a".to_owned(),
            codec.encoder().to_owned(),
            "-ac".to_owned(),
            channels.to_string(),
            "-ar".to_owned(),
            sample_rate.to_string(),
            "-b:a".to_owned(),
            bitrate.to_string(),
        ]),
        None => {}
    }
    let format: &[&str] = match r.spec.container {
        Container::Mp4 => &[
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
            "-f",
            "mp4",
        ],
        Container::Ts => &["-f", "mpegts"],
        Container::Mkv => &["-f", "matroska"],
    };
    b.extend(format.iter().map(|s| (*s).to_owned()));
    b.push("pipe:1".to_owned());
    out.extend(b.into_iter().map(Into::into));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_parse_and_bad_ones_are_named() {
        assert_eq!(parse_segment_name("12.ts").ok(), Some((12, Container::Ts)));
        assert_eq!(
            parse_segment_name("-1.mp4").ok(),
            Some((-1, Container::Mp4))
        );
        assert!(parse_segment_name("x.ts").is_err());
        let err = parse_segment_name("3.avi").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("avi")));
    }

    #[test]
    fn per_segment_parameters_are_not_passed_on() {
        assert_eq!(
            passed_query(Some(
                "A=1&runtimeTicks=5&RuntimeTicks=6&actualSegmentLengthTicks=7&b=2"
            )),
            "A=1&b=2"
        );
    }

    #[test]
    fn only_non_static_requests_with_codec_parameters_transcode() {
        let mut p = StreamParams::default();
        assert!(!wants_transcode(&p));
        p.video_codec = Some("h264".to_owned());
        assert!(wants_transcode(&p));
        p.is_static = Some(true);
        assert!(!wants_transcode(&p));
    }
}

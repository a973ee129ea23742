//! Subtitles (Jellyfin's `SubtitleController`): `GET
//! /Videos/{itemId}/{mediaSourceId}/Subtitles/{index}[/{startTicks}]/Stream.{vtt|srt|ass|ssa}`
//! converted as asked, and the HLS subtitle playlist `…/Subtitles/{index}/subtitles.m3u8` whose
//! WebVTT segments carry the `X-TIMESTAMP-MAP` the video segments need. Also
//! [`set_delivery`], which fills `DeliveryMethod`/`DeliveryUrl` in `PlaybackInfo`.
//!
//! ffmpeg converts (and extracts embedded text streams, cached in this replica's transcode
//! folder under a name derived from the item, stream and file version); the cue window and the
//! timestamp map are text work (`playback::subtitle_text`). A file is read only through the
//! stored path of the item's stream, and only while it still resolves inside the library;
//! reads are bounded ([`MAX_SUBTITLE_BYTES`]); ffmpeg runs with a time limit and is killed
//! when the request goes away.

use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::items::dto::MediaSourceInfo;
use crate::api::playback::playable_item;
use crate::auth::{AuthUser, request_token};
use crate::error::ApiError;
use crate::jf::{JfId, Path, Query};
use crate::playback::decision::{SubtitleDelivery, SubtitleMethod, is_text_subtitle_codec};
use crate::playback::subtitle_text::{self, Format, Window};
use crate::scan::media_path_for_serving;
use crate::scan::probe::{StreamInfo, StreamKind, TICKS_PER_SECOND, prefixed_file_arg};
use crate::state::AppState;
use crate::store::items::Item;

/// The largest subtitle file read or produced (16 MiB; real ones are well under 1 MiB).
pub const MAX_SUBTITLE_BYTES: u64 = 16 * 1024 * 1024;
/// How long ffmpeg may take to extract or convert one subtitle stream.
const FFMPEG_TIMEOUT: Duration = Duration::from_secs(120);

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/videos/{itemid}/{mediasourceid}/subtitles/{index}/stream.{format}",
            get(stream),
        )
        .route(
            "/videos/{itemid}/{mediasourceid}/subtitles/{index}/{startticks}/stream.{format}",
            get(stream_from),
        )
        .route(
            "/videos/{itemid}/{mediasourceid}/subtitles/{index}/subtitles.m3u8",
            get(playlist),
        )
}

/// Sets `DeliveryMethod` on every subtitle stream of `source`, and `DeliveryUrl` on those
/// fetched by the client (`MediaInfoHelper.SetDeviceSpecificSubtitleInfo`).
pub fn set_delivery(
    source: &mut MediaSourceInfo,
    deliveries: &[SubtitleDelivery],
    item_n: &str,
    token: Option<&str>,
    start_ticks: i64,
) {
    let media_source_id = source.id.clone();
    for stream in source
        .media_streams
        .iter_mut()
        .filter(|s| s.kind == StreamKind::Subtitle.as_str())
    {
        let Some(delivery) = deliveries.iter().find(|d| d.index == stream.index) else {
            continue;
        };
        stream.delivery_method = Some(delivery.method.as_str());
        if delivery.method == SubtitleMethod::External {
            let format = Format::parse(&delivery.format).map_or("vtt", Format::extension);
            let mut url = format!(
                "/Videos/{item_n}/{media_source_id}/Subtitles/{}/{start_ticks}/Stream.{format}",
                stream.index
            );
            if let Some(token) = token {
                url.push_str("?ApiKey=");
                url.push_str(token);
            }
            stream.delivery_url = Some(url);
            stream.is_external_url = Some(false);
        }
    }
}

/// The query of the subtitle stream routes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StreamParams {
    start_position_ticks: Option<i64>,
    end_position_ticks: Option<i64>,
    copy_timestamps: Option<bool>,
    add_vtt_time_map: Option<bool>,
    /// The container of the video segments the cues go with (Ephyra's master playlist adds
    /// it for fMP4; Jellyfin clients never send it): it decides the time map.
    segment_container: Option<String>,
}

/// The query of the playlist route.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PlaylistParams {
    segment_length: Option<i64>,
    /// Passed on to the segments (see [`StreamParams`]).
    segment_container: Option<String>,
}

/// Whether the video segments are fMP4.
fn is_fmp4(segment_container: Option<&str>) -> bool {
    segment_container
        .is_some_and(|c| c.eq_ignore_ascii_case("mp4") || c.eq_ignore_ascii_case("fmp4"))
}

/// The MPEG-TS time (90 kHz) that source time 0 has in the video segments: TS segments carry the
/// muxer's constant offset ([`crate::transcode::HLS_MPEGTS_OFFSET_90K`]); fMP4 segments carry
/// source times, so there it is 0 (with 900000, hls.js showed every cue 10 s late).
fn time_map_offset(segment_container: Option<&str>) -> u64 {
    if is_fmp4(segment_container) {
        0
    } else {
        crate::transcode::HLS_MPEGTS_OFFSET_90K
    }
}

async fn stream(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((item_id, media_source_id, index, format)): Path<(JfId, String, i64, String)>,
    Query(params): Query<StreamParams>,
) -> Result<Response, ApiError> {
    serve(
        &state,
        &caller,
        item_id,
        &media_source_id,
        index,
        None,
        &format,
        params,
    )
    .await
}

async fn stream_from(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((item_id, media_source_id, index, start, format)): Path<(JfId, String, i64, i64, String)>,
    Query(params): Query<StreamParams>,
) -> Result<Response, ApiError> {
    serve(
        &state,
        &caller,
        item_id,
        &media_source_id,
        index,
        Some(start),
        &format,
        params,
    )
    .await
}

/// The item and its subtitle stream `index`, or 404.
async fn subtitle_stream(
    state: &AppState,
    caller: &AuthUser,
    item_id: JfId,
    media_source_id: &str,
    index: i64,
) -> Result<(Item, StreamInfo), ApiError> {
    let item = playable_item(state, item_id, Some(caller.user_id)).await?;
    // The item itself or the version the client picked.
    let item =
        crate::api::playback::source_item(state, item, Some(media_source_id), Some(caller.user_id))
            .await?;
    let stream = state
        .store
        .media_streams(&[item.id])
        .await?
        .remove(&item.id)
        .unwrap_or_default()
        .into_iter()
        .find(|s| s.kind == StreamKind::Subtitle && s.index == index)
        .ok_or_else(|| ApiError::not_found(format!("Subtitle stream {index} not found.")))?;
    Ok((item, stream))
}

#[allow(clippy::too_many_arguments)] // the route's parts, passed on as they came
async fn serve(
    state: &AppState,
    caller: &AuthUser,
    item_id: JfId,
    media_source_id: &str,
    index: i64,
    route_start: Option<i64>,
    format: &str,
    params: StreamParams,
) -> Result<Response, ApiError> {
    // `js`/`json`: the cues as JSON for jellyfin-web's own renderer, made from WebVTT.
    let as_json = ["js", "json"]
        .iter()
        .any(|j| format.eq_ignore_ascii_case(j));
    let output = if as_json {
        Format::Vtt
    } else {
        Format::parse(format).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Unsupported subtitle format '{format}': use vtt, srt, ass, ssa or js."
            ))
        })?
    };
    let (item, stream) = subtitle_stream(state, caller, item_id, media_source_id, index).await?;
    let codec = stream.codec.clone().unwrap_or_default();
    if !is_text_subtitle_codec(Some(codec.as_str())) {
        return Err(ApiError::bad_request(format!(
            "Subtitle stream {index} is an image format ({codec}) and cannot be converted to \
             text; ask for it to be burned in (SubtitleMethod=Encode)."
        )));
    }
    let input = source_text(state, &item, &stream).await?;
    let converted = convert(state, &input.text, input.format, output, index).await?;
    let window = Window {
        start_ticks: params
            .start_position_ticks
            .or(route_start)
            .unwrap_or(0)
            .max(0),
        end_ticks: params.end_position_ticks.filter(|e| *e > 0),
        copy_timestamps: params.copy_timestamps.unwrap_or(false),
    };
    let mut text = subtitle_text::apply_window(&converted, output, window);
    if as_json {
        return Ok(axum::Json(subtitle_text::track_events(&text)).into_response());
    }
    if output == Format::Vtt && params.add_vtt_time_map.unwrap_or(false) {
        text = subtitle_text::add_time_map(
            &text,
            time_map_offset(params.segment_container.as_deref()),
        );
    }
    Ok(([(header::CONTENT_TYPE, output.content_type())], text).into_response())
}

/// Subtitle text in a format ffmpeg reads.
struct SourceText {
    text: String,
    format: Format,
}

/// The text of an external file, or of an embedded stream extracted (once) by ffmpeg.
async fn source_text(
    state: &AppState,
    item: &Item,
    stream: &StreamInfo,
) -> Result<SourceText, ApiError> {
    let index = stream.index;
    let codec = stream.codec.as_deref().unwrap_or_default();
    if stream.is_external {
        let stored = stream.path.as_deref().map(FsPath::new);
        let Some(path) = stored.and_then(|p| {
            media_path_for_serving(&state.config, state.store.ids(), item.library_id, p)
        }) else {
            tracing::warn!(item_id = %item.id, index, "subtitle file missing or outside its library");
            return Err(ApiError::not_found(format!(
                "Subtitle stream {index} not found."
            )));
        };
        let bytes = read_bounded(&path, index).await?;
        let format = Format::of_codec(codec).unwrap_or(Format::Srt);
        return Ok(SourceText {
            text: subtitle_text::decode(&bytes),
            format,
        });
    }
    let video = item
        .path
        .as_deref()
        .map(FsPath::new)
        .and_then(|p| media_path_for_serving(&state.config, state.store.ids(), item.library_id, p))
        .ok_or_else(|| ApiError::not_found("Item not found."))?;
    // ASS keeps its styling; every other text codec is extracted as SRT.
    let format = match Format::of_codec(codec) {
        Some(f @ (Format::Ass | Format::Ssa)) => f,
        _ => Format::Srt,
    };
    let cached = extracted_path(state, item, index, format);
    if tokio::fs::metadata(&cached).await.is_err() {
        extract(state, &video, index, format, &cached).await?;
    }
    let bytes = read_bounded(&cached, index).await?;
    Ok(SourceText {
        text: subtitle_text::decode(&bytes),
        format,
    })
}

/// Reads a subtitle file, refusing one larger than [`MAX_SUBTITLE_BYTES`].
async fn read_bounded(path: &FsPath, index: i64) -> Result<Vec<u8>, ApiError> {
    let file = tokio::fs::File::open(path).await.map_err(|e| {
        tracing::warn!(path = %path.display(), error = %e, "subtitle file unreadable");
        ApiError::not_found(format!("Subtitle stream {index} not found."))
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_SUBTITLE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(ApiError::internal)?;
    if bytes.len() as u64 > MAX_SUBTITLE_BYTES {
        return Err(ApiError::bad_request(format!(
            "Subtitle stream {index} is larger than {} MiB and is not served.",
            MAX_SUBTITLE_BYTES / 1024 / 1024
        )));
    }
    Ok(bytes)
}

/// Where an embedded stream's extraction is cached: named by item, stream and the file's
/// size and modification time, so a replaced file is extracted again.
fn extracted_path(state: &AppState, item: &Item, index: i64, format: Format) -> PathBuf {
    state.config.transcode_dir().join("subtitles").join(format!(
        "{}-{index}-{}-{}.{}",
        item.id.to_n(),
        item.size_bytes.unwrap_or(0),
        item.file_mtime.unwrap_or(0),
        format.extension()
    ))
}

/// Extracts stream `index` of `video` to `target` as `format` (written beside it first, then
/// renamed, so a concurrent reader never sees half a file).
async fn extract(
    state: &AppState,
    video: &FsPath,
    index: i64,
    format: Format,
    target: &FsPath,
) -> Result<(), ApiError> {
    let dir = target.parent().unwrap_or(FsPath::new("."));
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(ApiError::internal)?;
    let partial = dir.join(format!(".{}.{}", JfId::random().to_n(), format.extension()));
    let child = tokio::process::Command::new(&state.config.ffmpeg.ffmpeg)
        // `-copyts`: cue times stay on the file's own timeline, as the video segments are.
        .args(["-v", "error", "-nostdin", "-y", "-copyts", "-i"])
        .arg(prefixed_file_arg(video))
        .args(["-map", &format!("0:{index}"), "-an", "-vn", "-c:s"])
        .arg(format.ffmpeg_codec())
        .args(["-f", format.ffmpeg_format()])
        .arg(prefixed_file_arg(&partial))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ApiError::internal)?;
    let result = tokio::time::timeout(FFMPEG_TIMEOUT, child.wait_with_output()).await;
    let ok = matches!(&result, Ok(Ok(out)) if out.status.success());
    if !ok {
        let _ = tokio::fs::remove_file(&partial).await;
        let reason = match result {
            Ok(Ok(out)) => last_line(&out.stderr),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        tracing::warn!(video = %video.display(), index, %reason, "subtitle extraction failed");
        return Err(ApiError::bad_request(format!(
            "Subtitle stream {index} could not be extracted from the video."
        )));
    }
    tokio::fs::rename(&partial, target)
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}

fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .last()
        .unwrap_or("no message")
        .trim()
        .to_owned()
}

/// Converts subtitle `text` from `input` to `output` with ffmpeg (stdin to stdout), bounded
/// in time and output size.
async fn convert(
    state: &AppState,
    text: &str,
    input: Format,
    output: Format,
    index: i64,
) -> Result<String, ApiError> {
    let mut child = tokio::process::Command::new(&state.config.ffmpeg.ffmpeg)
        .args(["-v", "error", "-nostdin", "-f", input.ffmpeg_format()])
        // ffmpeg's own charset guessing is off: the text is UTF-8 by now.
        .args([
            "-sub_charenc",
            "UTF-8",
            "-i",
            "pipe:0",
            "-map",
            "0:s:0",
            "-c:s",
        ])
        .arg(output.ffmpeg_codec())
        .args(["-f", output.ffmpeg_format(), "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ApiError::internal)?;
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ApiError::internal("ffmpeg pipes missing"));
    };
    let input_bytes = text.as_bytes().to_vec();
    let run = async move {
        let write = async move {
            // ffmpeg may stop reading early on bad input; a broken pipe is its error to report.
            let _ = stdin.write_all(&input_bytes).await;
            drop(stdin);
        };
        let read = async move {
            let mut out = Vec::new();
            stdout
                .take(MAX_SUBTITLE_BYTES * 4 + 1)
                .read_to_end(&mut out)
                .await
                .map(|_| out)
        };
        let errors = async move {
            let mut err = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut err).await;
            err
        };
        let ((), out, err) = tokio::join!(write, read, errors);
        let status = child.wait().await;
        (out, err, status)
    };
    let Ok((out, err, status)) = tokio::time::timeout(FFMPEG_TIMEOUT, run).await else {
        return Err(ApiError::bad_request(format!(
            "Subtitle stream {index} could not be converted in time."
        )));
    };
    let out = out.map_err(ApiError::internal)?;
    let status = status.map_err(ApiError::internal)?;
    if !status.success() || out.len() as u64 > MAX_SUBTITLE_BYTES * 4 {
        tracing::warn!(index, reason = %last_line(&err), "subtitle conversion failed");
        return Err(ApiError::bad_request(format!(
            "Subtitle stream {index} is not valid {} and cannot be converted to {}.",
            input.extension(),
            output.extension()
        )));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `subtitles.m3u8`: the whole runtime in `SegmentLength`-second WebVTT segments that keep
/// source timestamps and carry the timestamp map (Jellyfin's `GetSubtitlePlaylist`).
async fn playlist(
    State(state): State<AppState>,
    caller: AuthUser,
    Path((item_id, media_source_id, index)): Path<(JfId, String, i64)>,
    Query(params): Query<PlaylistParams>,
    parts: http::request::Parts,
) -> Result<Response, ApiError> {
    let segment = params.segment_length.unwrap_or(30);
    if !(1..=3600).contains(&segment) {
        return Err(ApiError::bad_request(
            "SegmentLength must be a number of seconds from 1 to 3600.",
        ));
    }
    let (item, stream) = subtitle_stream(&state, &caller, item_id, &media_source_id, index).await?;
    if !is_text_subtitle_codec(stream.codec.as_deref()) {
        return Err(ApiError::bad_request(format!(
            "Subtitle stream {index} is an image format and cannot be listed as WebVTT."
        )));
    }
    let runtime = item
        .run_time_ticks
        .filter(|r| *r > 0)
        .ok_or_else(|| ApiError::bad_request("HLS subtitles need the item's duration."))?;
    let token = request_token(&parts);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-mpegURL"),
            (header::EXPIRES, "0"),
        ],
        playlist_text(
            runtime,
            segment,
            token.as_deref(),
            is_fmp4(params.segment_container.as_deref()),
        ),
    )
        .into_response())
}

/// The playlist text: one `stream.vtt` segment per `segment` seconds of `runtime`, for TS or
/// (`fmp4`) fMP4 video segments.
pub fn playlist_text(runtime: i64, segment: i64, token: Option<&str>, fmp4: bool) -> String {
    let segment_ticks = segment * TICKS_PER_SECOND;
    let mut out = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:{segment}\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n"
    );
    let mut position = 0;
    while position < runtime {
        let length = (runtime - position).min(segment_ticks);
        let end = (position + segment_ticks).min(runtime);
        out.push_str(&format!(
            "#EXTINF:{:.6},\nstream.vtt?CopyTimestamps=true&AddVttTimeMap=true&StartPositionTicks={position}&EndPositionTicks={end}",
            length as f64 / TICKS_PER_SECOND as f64
        ));
        if fmp4 {
            out.push_str("&SegmentContainer=mp4");
        }
        if let Some(token) = token {
            out.push_str("&ApiKey=");
            out.push_str(token);
        }
        out.push('\n');
        position += segment_ticks;
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_playlist_covers_the_runtime_in_segments_that_keep_timestamps() {
        let text = playlist_text(75 * TICKS_PER_SECOND, 30, Some("tok"), false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#EXTM3U");
        assert!(text.contains("#EXT-X-TARGETDURATION:30\n"));
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        let segments: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with("stream.vtt?"))
            .collect();
        assert_eq!(segments.len(), 3);
        assert!(segments[0].contains("StartPositionTicks=0&EndPositionTicks=300000000"));
        assert!(segments[2].contains("StartPositionTicks=600000000&EndPositionTicks=750000000"));
        assert!(segments[2].ends_with("&ApiKey=tok"));
        assert!(text.contains("#EXTINF:15.000000,"));
        assert!(segments[0].contains("CopyTimestamps=true&AddVttTimeMap=true"));
        assert!(!text.contains("SegmentContainer"));
        let fmp4 = playlist_text(75 * TICKS_PER_SECOND, 30, None, true);
        assert!(fmp4.contains("&EndPositionTicks=300000000&SegmentContainer=mp4\n"));
    }

    #[test]
    fn the_time_map_follows_the_video_segments_container() {
        assert_eq!(time_map_offset(None), 900_000);
        assert_eq!(time_map_offset(Some("ts")), 900_000);
        assert_eq!(time_map_offset(Some("mp4")), 0);
        assert_eq!(time_map_offset(Some("FMP4")), 0);
    }
}

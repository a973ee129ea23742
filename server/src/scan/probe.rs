//! What is inside a media file, as ffprobe reports it: container, duration, bitrate, streams
//! and chapters.
//!
//! [`probe`] runs `ffprobe -v error -print_format json -show_entries …` (the format, stream
//! and chapter fields [`parse`] reads) with a time limit; [`parse`] turns its JSON into a
//! [`MediaInfo`] and is pure, so the mapping is tested without ffprobe. A file ffprobe cannot
//! read is a [`ProbeError`], never a panic: the scanner records it and moves on. Scans reach
//! ffprobe through [`super::prober`], which runs the same arguments without paying ffprobe's
//! start-up per file.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;

/// Ticks (100 ns units, as Jellyfin counts time) per second.
pub const TICKS_PER_SECOND: i64 = 10_000_000;

/// Why a file could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// ffprobe could not be started (missing binary, no permission).
    #[error("cannot run ffprobe: {0}")]
    Spawn(#[source] std::io::Error),
    /// ffprobe ran longer than the time limit and was killed.
    #[error("ffprobe took longer than {0:?}")]
    Timeout(Duration),
    /// ffprobe exited with an error: the file is not media it can read.
    #[error("ffprobe cannot read the file: {0}")]
    Unreadable(String),
    /// ffprobe's output was not the JSON it documents.
    #[error("ffprobe output is not valid JSON: {0}")]
    Output(#[source] serde_json::Error),
    /// The file has neither a video nor an audio stream.
    #[error("the file has no audio or video stream")]
    NoMediaStreams,
}

/// A probed file.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// Short container name as Jellyfin clients use it in `stream.{container}` (`mkv`, `mp4`).
    pub container: String,
    /// Duration in ticks, when ffprobe knows it.
    pub duration_ticks: Option<i64>,
    /// Overall bitrate in bits per second.
    pub bitrate: Option<i64>,
    /// Size in bytes as ffprobe saw it.
    pub size: Option<i64>,
    /// The streams, in file order.
    pub streams: Vec<StreamInfo>,
    /// The container's chapters, in order of their start.
    pub chapters: Vec<Chapter>,
}

// The stream types are the store's (storage must not depend on scanning); the scanner fills
// them and callers keep reaching them here.
pub use crate::store::chapters::Chapter;
pub use crate::store::streams::{StreamInfo, StreamKind};

/// The fields [`parse`] reads, and no others: a Matroska file's per-stream statistics tags
/// and programs are neither printed nor parsed. (The probe's cost is mostly
/// ffprobe's start-up, about 70 ms of CPU here whatever the file, so `-probesize` and
/// `-analyzeduration` are left at their defaults: lowering them saves little on real files
/// and loses frame rates and bitrates that some containers only reveal by reading further.)
const SHOWN_ENTRIES: &str = "format=format_name,duration,size,bit_rate:\
     stream=index,codec_type,codec_name,profile,level,width,height,pix_fmt,field_order,\
     avg_frame_rate,r_frame_rate,sample_rate,channels,channel_layout,bit_rate:\
     stream_disposition=default,forced,attached_pic,hearing_impaired:\
     stream_tags=language,title:\
     chapter=start_time:chapter_tags=title";

/// Runs ffprobe on `file`, killing it after `timeout`. A scan probes through a
/// [`Prober`](super::prober::Prober), which answers the same without starting ffprobe per file.
pub async fn probe(
    ffprobe: &Path,
    file: &Path,
    timeout: Duration,
) -> Result<MediaInfo, ProbeError> {
    let child = tokio::process::Command::new(ffprobe)
        .args(arguments(file))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(ProbeError::Spawn)?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| ProbeError::Timeout(timeout))?
        .map_err(ProbeError::Spawn)?;
    answer(
        file,
        output.status.success(),
        &output.stdout,
        &output.stderr,
    )
}

/// ffprobe's arguments for probing `file` (after the program name).
pub fn arguments(file: &Path) -> Vec<std::ffi::OsString> {
    let mut arguments: Vec<std::ffi::OsString> = [
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_entries",
        SHOWN_ENTRIES,
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    // `file:` keeps a file whose name looks like a protocol (`http:x.mkv`) a plain file.
    arguments.push(prefixed_file_arg(file));
    arguments
}

/// What an ffprobe run on `file` found: its JSON when it succeeded, else the last line it
/// printed on stderr, which names the reason.
pub fn answer(
    file: &Path,
    succeeded: bool,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<MediaInfo, ProbeError> {
    if !succeeded {
        let message = String::from_utf8_lossy(stderr);
        let message = message.lines().last().unwrap_or("no message").trim();
        return Err(ProbeError::Unreadable(message.to_owned()));
    }
    parse(stdout, file.extension().and_then(|e| e.to_str()))
}

/// The input argument for ffmpeg tools: the path with the `file:` protocol prefix.
pub fn prefixed_file_arg(file: &Path) -> std::ffi::OsString {
    let mut arg = std::ffi::OsString::from("file:");
    arg.push(file.as_os_str());
    arg
}

/// Maps ffprobe's JSON output to a [`MediaInfo`]. `extension` (without the dot) names the
/// container when it is one clients know.
pub fn parse(json: &[u8], extension: Option<&str>) -> Result<MediaInfo, ProbeError> {
    let raw: RawOutput = serde_json::from_slice(json).map_err(ProbeError::Output)?;
    let streams: Vec<StreamInfo> = raw.streams.iter().map(stream_info).collect();
    if !streams
        .iter()
        .any(|s| matches!(s.kind, StreamKind::Video | StreamKind::Audio))
    {
        return Err(ProbeError::NoMediaStreams);
    }
    let format = raw.format.unwrap_or_default();
    let duration_ticks = format
        .duration
        .as_deref()
        .and_then(parse_f64)
        .filter(|d| d.is_finite() && *d >= 0.0)
        .map(seconds_to_ticks);
    Ok(MediaInfo {
        container: container_name(extension, format.format_name.as_deref()),
        duration_ticks,
        bitrate: format.bit_rate.as_deref().and_then(parse_i64),
        size: format.size.as_deref().and_then(parse_i64),
        streams,
        chapters: chapters(&raw.chapters),
    })
}

/// Chapters as Jellyfin keeps them: the start rounded to the millisecond, the `title` tag as
/// the name; chapters without a readable start are dropped.
fn chapters(raw: &[RawChapter]) -> Vec<Chapter> {
    let mut chapters: Vec<Chapter> = raw
        .iter()
        .filter_map(|c| {
            let seconds = c
                .start_time
                .as_deref()
                .and_then(parse_f64)
                .filter(|s| s.is_finite() && *s >= 0.0)?;
            Some(Chapter {
                start_ticks: seconds_to_ticks((seconds * 1000.0).round() / 1000.0),
                name: non_empty(c.tags.as_ref().and_then(|t| t.title.clone())),
            })
        })
        .collect();
    chapters.sort_by_key(|c| c.start_ticks);
    chapters
}

/// Converts seconds to ticks, rounding to the nearest tick.
pub fn seconds_to_ticks(seconds: f64) -> i64 {
    // Durations of real files are far below i64::MAX ticks (29,000 years); `as` saturates.
    (seconds * TICKS_PER_SECOND as f64).round() as i64
}

/// The container name clients expect: the file's extension when it is a known one, else a
/// short name derived from ffprobe's `format_name`.
fn container_name(extension: Option<&str>, format_name: Option<&str>) -> String {
    let ext = extension.map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some(
            e @ ("mkv" | "mp4" | "m4v" | "avi" | "mov" | "webm" | "ts" | "m2ts" | "wmv" | "flv"
            | "ogv" | "3gp" | "mpg" | "mpeg"),
        ) => e.to_owned(),
        Some("mts") => "ts".to_owned(),
        _ => {
            let first = format_name.and_then(|f| f.split(',').next()).unwrap_or("");
            match first {
                "matroska" => "mkv",
                "mov" => "mp4",
                "mpegts" => "ts",
                "" => "unknown",
                other => other,
            }
            .to_owned()
        }
    }
}

fn stream_info(raw: &RawStream) -> StreamInfo {
    let disposition = raw.disposition.clone().unwrap_or_default();
    let kind = match raw.codec_type.as_deref() {
        Some("video") if disposition.attached_pic == 1 => StreamKind::EmbeddedImage,
        Some("video") => StreamKind::Video,
        Some("audio") => StreamKind::Audio,
        Some("subtitle") => StreamKind::Subtitle,
        _ => StreamKind::Data,
    };
    let tags = raw.tags.clone().unwrap_or_default();
    let frame_rate = raw
        .avg_frame_rate
        .as_deref()
        .and_then(parse_rational)
        .or_else(|| raw.r_frame_rate.as_deref().and_then(parse_rational));
    StreamInfo {
        index: raw.index,
        kind,
        codec: non_empty(raw.codec_name.clone()),
        language: non_empty(tags.language).filter(|l| l != "und"),
        title: non_empty(tags.title),
        width: raw.width,
        height: raw.height,
        channels: raw.channels,
        channel_layout: non_empty(raw.channel_layout.clone()),
        sample_rate: raw.sample_rate.as_deref().and_then(parse_i64),
        frame_rate,
        bit_rate: raw.bit_rate.as_deref().and_then(parse_i64),
        profile: non_empty(raw.profile.clone()),
        level: raw.level.filter(|l| *l > 0),
        pixel_format: non_empty(raw.pix_fmt.clone()),
        is_default: disposition.default == 1,
        is_forced: disposition.forced == 1,
        is_interlaced: raw
            .field_order
            .as_deref()
            .is_some_and(|f| !matches!(f, "progressive" | "unknown")),
        is_hearing_impaired: disposition.hearing_impaired == 1,
        is_external: false,
        path: None,
    }
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn parse_i64(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

fn parse_f64(text: &str) -> Option<f64> {
    text.trim().parse().ok()
}

/// `24000/1001` → 23.976…; `0/0` → none.
fn parse_rational(text: &str) -> Option<f64> {
    let (num, den) = text.split_once('/')?;
    let num: f64 = num.trim().parse().ok()?;
    let den: f64 = den.trim().parse().ok()?;
    (den != 0.0 && num > 0.0).then(|| num / den)
}

/// The parts of ffprobe's JSON the scanner reads. ffprobe writes numbers in `format` and some
/// stream fields as strings.
#[derive(Debug, Deserialize)]
struct RawOutput {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
    #[serde(default)]
    chapters: Vec<RawChapter>,
}

#[derive(Debug, Deserialize)]
struct RawChapter {
    start_time: Option<String>,
    tags: Option<RawChapterTags>,
}

#[derive(Debug, Deserialize)]
struct RawChapterTags {
    title: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    duration: Option<String>,
    size: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawStream {
    #[serde(default)]
    index: i64,
    codec_type: Option<String>,
    codec_name: Option<String>,
    profile: Option<String>,
    level: Option<i64>,
    width: Option<i64>,
    height: Option<i64>,
    pix_fmt: Option<String>,
    field_order: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    sample_rate: Option<String>,
    channels: Option<i64>,
    channel_layout: Option<String>,
    bit_rate: Option<String>,
    disposition: Option<RawDisposition>,
    tags: Option<RawTags>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawDisposition {
    #[serde(default)]
    default: i64,
    #[serde(default)]
    forced: i64,
    #[serde(default)]
    attached_pic: i64,
    #[serde(default)]
    hearing_impaired: i64,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawTags {
    language: Option<String>,
    title: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed output of ffprobe 6 on an H.264/AAC Matroska file with an English subtitle.
    const MKV: &str = r#"{
      "streams": [
        {"index": 0, "codec_name": "h264", "profile": "High", "codec_type": "video",
         "width": 1920, "height": 1080, "pix_fmt": "yuv420p", "level": 41,
         "field_order": "progressive", "r_frame_rate": "24000/1001",
         "avg_frame_rate": "24000/1001",
         "disposition": {"default": 1, "forced": 0, "attached_pic": 0},
         "tags": {"language": "und", "title": "Main"}},
        {"index": 1, "codec_name": "aac", "profile": "LC", "codec_type": "audio",
         "sample_rate": "48000", "channels": 6, "channel_layout": "5.1", "bit_rate": "384000",
         "disposition": {"default": 1, "forced": 0},
         "tags": {"language": "eng"}},
        {"index": 2, "codec_name": "subrip", "codec_type": "subtitle",
         "disposition": {"default": 0, "forced": 1},
         "tags": {"language": "fre"}},
        {"index": 3, "codec_name": "mjpeg", "codec_type": "video", "width": 600, "height": 900,
         "disposition": {"default": 0, "attached_pic": 1}}
      ],
      "format": {"filename": "x.mkv", "format_name": "matroska,webm", "duration": "12.345000",
                 "size": "1048576", "bit_rate": "679520"}
    }"#;

    #[test]
    fn chapters_are_read_in_order_rounded_to_the_millisecond_with_their_titles() {
        let json = r#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264"}],
            "format":{},
            "chapters":[
              {"id":2,"start_time":"9.250000","end_time":"12.0","tags":{"title":""}},
              {"id":0,"start_time":"0.000000","end_time":"4.5","tags":{"title":"Opening"}},
              {"id":1,"start_time":"4.5004","end_time":"9.25","tags":{"title":"The Chase"}},
              {"id":3,"end_time":"13.0"}
            ]}"#;
        let info = parse(json.as_bytes(), Some("mkv")).unwrap();
        assert_eq!(
            info.chapters,
            vec![
                Chapter {
                    start_ticks: 0,
                    name: Some("Opening".to_owned())
                },
                Chapter {
                    start_ticks: 45_000_000,
                    name: Some("The Chase".to_owned())
                },
                Chapter {
                    start_ticks: 92_500_000,
                    name: None
                },
            ]
        );
        let none =
            r#"{"streams":[{"index":0,"codec_type":"audio","codec_name":"aac"}],"format":{}}"#;
        assert!(parse(none.as_bytes(), None).unwrap().chapters.is_empty());
    }

    #[test]
    fn a_matroska_file_is_read_with_all_its_streams() {
        let info = parse(MKV.as_bytes(), Some("mkv")).expect("valid output");
        assert_eq!(info.container, "mkv");
        assert_eq!(info.duration_ticks, Some(123_450_000));
        assert_eq!(info.bitrate, Some(679_520));
        assert_eq!(info.size, Some(1_048_576));
        assert_eq!(info.streams.len(), 4);

        let video = &info.streams[0];
        assert_eq!(video.kind, StreamKind::Video);
        assert_eq!(video.codec.as_deref(), Some("h264"));
        assert_eq!((video.width, video.height), (Some(1920), Some(1080)));
        assert_eq!(video.profile.as_deref(), Some("High"));
        assert_eq!(video.level, Some(41));
        assert_eq!(video.pixel_format.as_deref(), Some("yuv420p"));
        assert_eq!(video.language, None, "`und` means no language");
        assert_eq!(video.title.as_deref(), Some("Main"));
        assert!(video.is_default);
        assert!(!video.is_interlaced);
        let fps = video.frame_rate.expect("frame rate");
        assert!((fps - 23.976).abs() < 0.001, "{fps}");

        let audio = &info.streams[1];
        assert_eq!(audio.kind, StreamKind::Audio);
        assert_eq!(audio.channels, Some(6));
        assert_eq!(audio.sample_rate, Some(48_000));
        assert_eq!(audio.language.as_deref(), Some("eng"));
        assert_eq!(audio.bit_rate, Some(384_000));

        let subtitle = &info.streams[2];
        assert_eq!(subtitle.kind, StreamKind::Subtitle);
        assert!(subtitle.is_forced);
        assert!(!subtitle.is_default);

        assert_eq!(info.streams[3].kind, StreamKind::EmbeddedImage);
    }

    #[test]
    fn the_container_comes_from_ffprobe_when_the_extension_is_unusual() {
        let json = r#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264"}],
                       "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2"}}"#;
        let info = parse(json.as_bytes(), Some("bin")).expect("valid output");
        assert_eq!(info.container, "mp4");
        assert_eq!(info.duration_ticks, None);
        let info = parse(json.as_bytes(), Some("MP4")).expect("valid output");
        assert_eq!(info.container, "mp4");
    }

    #[test]
    fn output_without_audio_or_video_is_an_error() {
        let json = r#"{"streams":[{"index":0,"codec_type":"subtitle"}],"format":{}}"#;
        assert!(matches!(
            parse(json.as_bytes(), None),
            Err(ProbeError::NoMediaStreams)
        ));
        assert!(matches!(
            parse(b"{}", None),
            Err(ProbeError::NoMediaStreams)
        ));
    }

    #[test]
    fn output_that_is_not_json_is_an_error() {
        assert!(matches!(
            parse(b"nonsense", None),
            Err(ProbeError::Output(_))
        ));
    }

    #[test]
    fn frame_rates_of_zero_are_unknown() {
        assert_eq!(parse_rational("0/0"), None);
        assert_eq!(parse_rational("25/1"), Some(25.0));
        assert_eq!(parse_rational("bad"), None);
    }

    #[test]
    fn seconds_become_ticks_of_one_hundred_nanoseconds() {
        assert_eq!(seconds_to_ticks(1.0), 10_000_000);
        assert_eq!(seconds_to_ticks(0.0000001), 1);
    }

    #[tokio::test]
    async fn a_file_ffprobe_cannot_read_is_an_error_value() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("broken.mkv");
        std::fs::write(&file, b"this is not a video").expect("write");
        let result = probe(Path::new("ffprobe"), &file, Duration::from_secs(30)).await;
        assert!(
            matches!(
                result,
                Err(ProbeError::Unreadable(_) | ProbeError::NoMediaStreams)
            ),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_missing_ffprobe_is_a_spawn_error() {
        let result = probe(
            Path::new("/nonexistent/ffprobe"),
            Path::new("/nonexistent.mkv"),
            Duration::from_secs(5),
        )
        .await;
        assert!(matches!(result, Err(ProbeError::Spawn(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_real_video_is_probed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("clip.mkv");
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=2:size=160x120:rate=25",
            ])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=duration=2",
                "-shortest",
                "-c:v",
                "mpeg4",
                "-c:a",
            ])
            .args(["aac", "-y"])
            .arg(&file)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        let info = probe(Path::new("ffprobe"), &file, Duration::from_secs(30))
            .await
            .expect("probe");
        assert_eq!(info.container, "mkv");
        let seconds = info.duration_ticks.expect("duration") as f64 / TICKS_PER_SECOND as f64;
        assert!((seconds - 2.0).abs() < 0.2, "{seconds}");
        assert!(
            info.streams.iter().any(|s| s.kind == StreamKind::Video
                && s.width == Some(160)
                && s.height == Some(120))
        );
        assert!(info.streams.iter().any(|s| s.kind == StreamKind::Audio));
    }
}

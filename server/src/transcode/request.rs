//! A stream request's query, treated as untrusted input, and the output it decides: whether
//! video and audio are copied or encoded (like Jellyfin's `EncodingHelper.TryStreamCopy`), to
//! what codec, size and bitrate, in which container, with which segment length.
//!
//! Everything that changes the bytes of a segment is in [`OutputSpec`], and its
//! [`OutputSpec::key`] names the output's folder: the same request from any device on any
//! replica names the same files. Nothing here runs ffmpeg.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::scan::probe::{StreamInfo, StreamKind};

/// The query keys of `master.m3u8`, `main.m3u8`, segments and the progressive stream
/// (matched without regard to case by [`crate::jf::Query`]).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StreamParams {
    /// The media source (the item's id in N form; there is one source per item).
    pub media_source_id: Option<String>,
    /// Video codecs the client accepts; the first is encoded to.
    pub video_codec: Option<String>,
    /// Audio codecs the client accepts; the first is encoded to.
    pub audio_codec: Option<String>,
    /// The audio stream (`MediaStream.Index`).
    pub audio_stream_index: Option<i64>,
    /// Subtitle stream to burn in (with `SubtitleMethod=Encode`).
    pub subtitle_stream_index: Option<i64>,
    /// `Encode`, `Hls`, `External`, ...
    pub subtitle_method: Option<String>,
    /// True lists every text subtitle in `master.m3u8` (Android TV, Swiftfin).
    pub enable_subtitles_in_manifest: Option<bool>,
    /// Video bitrate limit, bits per second.
    pub video_bitrate: Option<i64>,
    /// Audio bitrate, bits per second.
    pub audio_bitrate: Option<i64>,
    /// Largest width the client wants.
    pub max_width: Option<i64>,
    /// Largest height the client wants.
    pub max_height: Option<i64>,
    /// Largest frame rate the client wants.
    pub max_framerate: Option<f64>,
    /// `ts` or `mp4`.
    pub segment_container: Option<String>,
    /// Segment length in seconds, if the client chooses it.
    pub segment_length: Option<u32>,
    /// The playback session (ends the transcode on `Playing/Stopped`).
    pub play_session_id: Option<String>,
    /// The device.
    pub device_id: Option<String>,
    /// Channel limit for encoded audio.
    pub transcoding_max_audio_channels: Option<i64>,
    /// Channel limit (older clients).
    pub max_audio_channels: Option<i64>,
    /// False forbids copying the video.
    pub allow_video_stream_copy: Option<bool>,
    /// False forbids copying the audio.
    pub allow_audio_stream_copy: Option<bool>,
    /// Progressive stream: start position.
    pub start_time_ticks: Option<i64>,
    /// Progressive stream: send the file as it is.
    #[serde(rename = "Static")]
    pub is_static: Option<bool>,
}

/// Segment containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    /// MPEG-TS segments.
    Ts,
    /// Fragmented MP4 segments with an init segment.
    Mp4,
    /// Matroska (progressive only).
    Mkv,
}

impl Container {
    /// The container named `name`, or a 400 message naming it.
    pub fn parse(name: &str) -> Result<Container, String> {
        match name.to_ascii_lowercase().as_str() {
            "ts" | "mpegts" => Ok(Container::Ts),
            "mp4" | "fmp4" | "m4s" => Ok(Container::Mp4),
            "mkv" | "matroska" => Ok(Container::Mkv),
            other => Err(format!("Unsupported container: {other}")),
        }
    }

    /// File extension of a segment.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Ts => "ts",
            Container::Mp4 => "mp4",
            Container::Mkv => "mkv",
        }
    }

    /// The HTTP content type of a segment or stream.
    pub fn content_type(self) -> &'static str {
        match self {
            Container::Ts => "video/mp2t",
            Container::Mp4 => "video/mp4",
            Container::Mkv => "video/x-matroska",
        }
    }
}

/// Video codecs this server encodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    Hevc,
}

impl VideoCodec {
    fn parse(name: &str) -> Result<VideoCodec, String> {
        match name.to_ascii_lowercase().as_str() {
            "h264" | "avc" => Ok(VideoCodec::H264),
            "hevc" | "h265" => Ok(VideoCodec::Hevc),
            other => Err(format!("Unsupported video codec: {other}")),
        }
    }

    /// The ffmpeg codec name as ffprobe reports it.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::H264 => "h264",
            VideoCodec::Hevc => "hevc",
        }
    }
}

/// Audio codecs this server encodes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// AAC-LC.
    Aac,
    /// MP3.
    Mp3,
    /// AC-3.
    Ac3,
    /// E-AC-3.
    Eac3,
}

impl AudioCodec {
    fn parse(name: &str) -> Result<AudioCodec, String> {
        match name.to_ascii_lowercase().as_str() {
            "aac" => Ok(AudioCodec::Aac),
            "mp3" => Ok(AudioCodec::Mp3),
            "ac3" => Ok(AudioCodec::Ac3),
            "eac3" => Ok(AudioCodec::Eac3),
            other => Err(format!("Unsupported audio codec: {other}")),
        }
    }

    /// The ffmpeg encoder.
    pub fn encoder(self) -> &'static str {
        match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Mp3 => "libmp3lame",
            AudioCodec::Ac3 => "ac3",
            AudioCodec::Eac3 => "eac3",
        }
    }

    /// Samples per encoded frame: the audio pre-roll is aligned to it.
    pub fn frame_samples(self) -> u64 {
        match self {
            AudioCodec::Aac => 1024,
            AudioCodec::Mp3 => 1152,
            AudioCodec::Ac3 | AudioCodec::Eac3 => 1536,
        }
    }
}

/// What happens to the video.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VideoOut {
    /// Copied as it is (remux; segments cut at source keyframes).
    Copy,
    /// Encoded.
    Encode {
        /// Codec.
        codec: VideoCodec,
        /// Output width (even).
        width: u32,
        /// Output height (even).
        height: u32,
        /// Target bitrate, bits per second.
        bitrate: u64,
        /// The source is 10-bit: converted to 8-bit 4:2:0 on the way.
        ten_bit_source: bool,
    },
}

/// What happens to the audio.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AudioOut {
    /// Copied as it is.
    Copy,
    /// Encoded.
    Encode {
        /// Codec.
        codec: AudioCodec,
        /// Channels.
        channels: u32,
        /// Bits per second.
        bitrate: u64,
        /// Sample rate in Hz.
        sample_rate: u32,
    },
}

/// A subtitle stream burned into the video.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BurnIn {
    /// Its position among the file's subtitle streams (`si=` of the subtitles filter).
    pub subtitle_position: u32,
    /// Its ffprobe index.
    pub stream_index: i64,
    /// Bitmap subtitles (PGS, VobSub, DVB) are overlaid; text ones rendered.
    pub bitmap: bool,
}

/// Everything that decides the bytes of the output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutputSpec {
    /// Container.
    pub container: Container,
    /// Video.
    pub video: VideoOut,
    /// The audio stream's ffprobe index and what happens to it; `None` without audio.
    pub audio: Option<(i64, AudioOut)>,
    /// Subtitle burned in.
    pub burn_in: Option<BurnIn>,
    /// Segment length in seconds.
    pub segment_seconds: u32,
}

impl OutputSpec {
    /// The output's name: a digest of the file's identity and this spec, never of the
    /// device, session or replica, so any replica's files of the same output are
    /// interchangeable.
    pub fn key(&self, file_identity: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(file_identity.as_bytes());
        hasher.update(format!("{self:?}").as_bytes());
        hex::encode(&hasher.finalize()[..16])
    }

    /// True when the video is re-encoded (the grid is then frame-exact).
    pub fn encodes_video(&self) -> bool {
        matches!(self.video, VideoOut::Encode { .. })
    }
}

/// Splits a comma-separated codec list.
fn codec_list(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default()
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect()
}

/// How many bits a codec needs for the same picture, relative to H.264 (Jellyfin's
/// `GetVideoBitrateScaleFactor`).
fn codec_bitrate_factor(codec: &str) -> f64 {
    match codec {
        "hevc" | "h265" | "vp9" => 0.6,
        "av1" => 0.5,
        _ => 1.0,
    }
}

/// The encoded video's bitrate, as Jellyfin's `GetVideoBitrateParamValue`: the client's limit,
/// but no more than the source needs (low source bitrates get headroom, `GetMinBitrate`),
/// scaled by how efficient the source and output codecs are, never above the limit. Without
/// this a `VideoBitrate` of 120 Mb/s (PlaybackInfo's MaxStreamingBitrate) made a 320x180
/// source an ABR encode at 120 Mb/s.
fn output_video_bitrate(
    limit: Option<i64>,
    source: Option<i64>,
    source_codec: &str,
    target: VideoCodec,
) -> u64 {
    let wanted = match (limit, source) {
        (Some(limit), Some(source)) => {
            let headroom = if source <= 2_000_000 {
                source.saturating_mul(5) / 2
            } else if source <= 3_000_000 {
                source.saturating_mul(2)
            } else {
                source
            };
            Some(headroom.min(limit))
        }
        (limit, source) => limit.or(source),
    };
    let scaled = wanted.map(|b| {
        let factor = codec_bitrate_factor(target.name()) / codec_bitrate_factor(source_codec);
        let scaled = (b as f64 * factor) as i64;
        limit.map_or(scaled, |l| scaled.min(l))
    });
    scaled.unwrap_or(4_000_000).clamp(64_000, 400_000_000) as u64
}

/// Decides the output of `params` for a file with `streams` and overall `item_bitrate`.
/// `default_segment` is the configured segment length; `container` the one the route names
/// (progressive) or `None` for HLS (`SegmentContainer`). Errors are 400 messages.
pub fn decide(
    params: &StreamParams,
    streams: &[StreamInfo],
    item_bitrate: Option<i64>,
    default_segment: u32,
    container: Option<Container>,
) -> Result<OutputSpec, String> {
    let container = match container {
        Some(c) => c,
        None => match params.segment_container.as_deref() {
            None => Container::Ts,
            Some(name) => match Container::parse(name)? {
                Container::Mkv => return Err("Unsupported segment container: mkv".to_owned()),
                c => c,
            },
        },
    };
    let segment_seconds = match params.segment_length {
        None => default_segment,
        Some(s) if (1..=60).contains(&s) => s,
        Some(s) => return Err(format!("SegmentLength {s} is outside 1 to 60")),
    };
    let video = streams
        .iter()
        .find(|s| s.kind == StreamKind::Video)
        .ok_or_else(|| "The item has no video stream".to_owned())?;

    let burn_in = match (
        params.subtitle_stream_index,
        params.subtitle_method.as_deref(),
    ) {
        (Some(index), Some(method)) if method.eq_ignore_ascii_case("encode") && index >= 0 => {
            let subtitles: Vec<&StreamInfo> = streams
                .iter()
                .filter(|s| s.kind == StreamKind::Subtitle)
                .collect();
            let position = subtitles
                .iter()
                .position(|s| s.index == index)
                .ok_or_else(|| {
                    format!("SubtitleStreamIndex {index} is not an embedded subtitle")
                })?;
            let codec = subtitles[position].codec.as_deref().unwrap_or_default();
            Some(BurnIn {
                subtitle_position: position as u32,
                stream_index: index,
                bitmap: matches!(
                    codec,
                    "hdmv_pgs_subtitle" | "dvd_subtitle" | "dvb_subtitle" | "xsub"
                ),
            })
        }
        _ => None,
    };

    let video_codecs = codec_list(params.video_codec.as_deref());
    let target_codec = VideoCodec::parse(video_codecs.first().map_or("h264", String::as_str))?;
    let source_codec = video
        .codec
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (src_w, src_h) = (
        video.width.unwrap_or(1920).max(2),
        video.height.unwrap_or(1080).max(2),
    );
    let source_bitrate = video.bit_rate.or(item_bitrate).filter(|b| *b > 0);
    let ten_bit = video
        .pixel_format
        .as_deref()
        .is_some_and(|p| p.contains("10") || p.contains("12"));
    let limit_w = params.max_width.filter(|w| *w > 0).unwrap_or(i64::MAX);
    let limit_h = params.max_height.filter(|h| *h > 0).unwrap_or(i64::MAX);
    let bitrate_limit = params.video_bitrate.filter(|b| *b > 0);
    let copy_video = params.allow_video_stream_copy != Some(false)
        && video_codecs
            .iter()
            .any(|c| c == &source_codec || (c == "h265" && source_codec == "hevc"))
        && burn_in.is_none()
        && src_w <= limit_w
        && src_h <= limit_h
        && !(source_codec == "h264" && ten_bit)
        && match (bitrate_limit, source_bitrate) {
            (Some(limit), Some(source)) => source <= limit,
            _ => true,
        }
        && match container {
            Container::Ts => matches!(source_codec.as_str(), "h264" | "hevc" | "mpeg2video"),
            Container::Mp4 => matches!(source_codec.as_str(), "h264" | "hevc" | "av1" | "vp9"),
            Container::Mkv => true,
        };
    let video_out = if copy_video {
        VideoOut::Copy
    } else {
        // Fit inside the limits, keep the aspect ratio, never upscale, even dimensions.
        let scale = (limit_w as f64 / src_w as f64)
            .min(limit_h as f64 / src_h as f64)
            .min(1.0);
        let even = |v: f64| ((v / 2.0).round() as u32 * 2).max(2);
        let bitrate =
            output_video_bitrate(bitrate_limit, source_bitrate, &source_codec, target_codec);
        VideoOut::Encode {
            codec: target_codec,
            width: even(src_w as f64 * scale),
            height: even(src_h as f64 * scale),
            bitrate,
            ten_bit_source: ten_bit,
        }
    };

    let audio_stream = match params.audio_stream_index {
        Some(index) => Some(
            streams
                .iter()
                .find(|s| s.index == index && s.kind == StreamKind::Audio)
                .ok_or_else(|| format!("AudioStreamIndex {index} is not an audio stream"))?,
        ),
        None => streams
            .iter()
            .filter(|s| s.kind == StreamKind::Audio)
            .find(|s| s.is_default)
            .or_else(|| streams.iter().find(|s| s.kind == StreamKind::Audio)),
    };
    let audio = match audio_stream {
        None => None,
        Some(stream) => Some((stream.index, decide_audio(params, stream, container)?)),
    };
    Ok(OutputSpec {
        container,
        video: video_out,
        audio,
        burn_in,
        segment_seconds,
    })
}

fn decide_audio(
    params: &StreamParams,
    stream: &StreamInfo,
    container: Container,
) -> Result<AudioOut, String> {
    let codecs = codec_list(params.audio_codec.as_deref());
    let target = AudioCodec::parse(codecs.first().map_or("aac", String::as_str))?;
    let source = stream
        .codec
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let channels = stream.channels.unwrap_or(2).max(1);
    let max_channels = params
        .transcoding_max_audio_channels
        .or(params.max_audio_channels)
        .filter(|c| *c > 0)
        .unwrap_or(6);
    let fits_container = match container {
        Container::Ts => matches!(source.as_str(), "aac" | "mp3" | "ac3" | "eac3"),
        Container::Mp4 => matches!(
            source.as_str(),
            "aac" | "mp3" | "ac3" | "eac3" | "flac" | "alac" | "opus"
        ),
        Container::Mkv => true,
    };
    if params.allow_audio_stream_copy != Some(false)
        && codecs.iter().any(|c| c == &source)
        && channels <= max_channels
        && fits_container
    {
        return Ok(AudioOut::Copy);
    }
    let out_channels = channels.min(max_channels).min(6) as u32;
    let default_bitrate = 96_000 * u64::from(out_channels.min(2))
        + 64_000 * u64::from(out_channels.saturating_sub(2));
    let bitrate = params
        .audio_bitrate
        .filter(|b| *b > 0)
        .map_or(default_bitrate, |b| b.clamp(32_000, 640_000) as u64);
    let sample_rate = match stream.sample_rate {
        Some(44_100) => 44_100,
        _ => 48_000,
    };
    Ok(AudioOut::Encode {
        codec: target,
        channels: out_channels,
        bitrate,
        sample_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(video: &str, pix: &str, audio: &str, channels: i64) -> Vec<StreamInfo> {
        vec![
            StreamInfo {
                index: 0,
                kind: StreamKind::Video,
                codec: Some(video.to_owned()),
                width: Some(1920),
                height: Some(1080),
                pixel_format: Some(pix.to_owned()),
                bit_rate: Some(8_000_000),
                ..StreamInfo::default()
            },
            StreamInfo {
                index: 1,
                kind: StreamKind::Audio,
                codec: Some(audio.to_owned()),
                channels: Some(channels),
                sample_rate: Some(48_000),
                ..StreamInfo::default()
            },
        ]
    }

    fn params(video: &str, audio: &str) -> StreamParams {
        StreamParams {
            video_codec: Some(video.to_owned()),
            audio_codec: Some(audio.to_owned()),
            ..StreamParams::default()
        }
    }

    #[test]
    fn a_source_the_client_accepts_is_copied() {
        let spec = decide(
            &params("h264,hevc", "aac"),
            &streams("h264", "yuv420p", "aac", 2),
            None,
            6,
            None,
        )
        .expect("decide");
        assert_eq!(spec.video, VideoOut::Copy);
        assert_eq!(spec.audio, Some((1, AudioOut::Copy)));
        assert_eq!(spec.container, Container::Ts);
    }

    #[test]
    fn hevc_with_ac3_5_1_is_encoded_to_h264_and_stereo_aac() {
        let mut p = params("h264", "aac");
        p.transcoding_max_audio_channels = Some(2);
        p.max_width = Some(1280);
        p.video_bitrate = Some(3_000_000);
        let spec =
            decide(&p, &streams("hevc", "yuv420p10le", "ac3", 6), None, 6, None).expect("decide");
        assert_eq!(
            spec.video,
            VideoOut::Encode {
                codec: VideoCodec::H264,
                width: 1280,
                height: 720,
                bitrate: 3_000_000,
                ten_bit_source: true
            }
        );
        assert!(matches!(
            spec.audio,
            Some((
                1,
                AudioOut::Encode {
                    codec: AudioCodec::Aac,
                    channels: 2,
                    ..
                }
            ))
        ));
    }

    #[test]
    fn the_encoded_bitrate_is_the_limit_but_no_more_than_the_source_needs() {
        // A 1 Mb/s H.264 source asked at 120 Mb/s: 2.5 Mb/s of headroom, not 120.
        assert_eq!(
            output_video_bitrate(Some(120_000_000), Some(1_000_000), "h264", VideoCodec::H264),
            2_500_000
        );
        // HEVC needs 0.6 of H.264's bits: the H.264 encode gets more, still under the limit.
        assert_eq!(
            output_video_bitrate(Some(120_000_000), Some(6_000_000), "hevc", VideoCodec::H264),
            10_000_000
        );
        assert_eq!(
            output_video_bitrate(Some(8_000_000), Some(6_000_000), "hevc", VideoCodec::H264),
            8_000_000
        );
        // A limit below the source wins; no source bitrate leaves the limit.
        assert_eq!(
            output_video_bitrate(Some(700_000), Some(5_000_000), "h264", VideoCodec::H264),
            700_000
        );
        assert_eq!(
            output_video_bitrate(Some(3_000_000), None, "hevc", VideoCodec::H264),
            3_000_000
        );
        assert_eq!(
            output_video_bitrate(None, None, "h264", VideoCodec::H264),
            4_000_000
        );
    }

    #[test]
    fn limits_and_flags_force_a_reencode() {
        let s = streams("h264", "yuv420p", "aac", 2);
        let mut p = params("h264", "aac");
        p.video_bitrate = Some(1_000_000);
        assert!(
            decide(&p, &s, None, 6, None)
                .expect("decide")
                .encodes_video()
        );
        let mut p = params("h264", "aac");
        p.allow_video_stream_copy = Some(false);
        assert!(
            decide(&p, &s, None, 6, None)
                .expect("decide")
                .encodes_video()
        );
        let spec = decide(
            &params("h264", "aac"),
            &streams("h264", "yuv420p10le", "aac", 2),
            None,
            6,
            None,
        )
        .expect("decide");
        assert!(spec.encodes_video(), "10-bit H.264 is not widely playable");
    }

    #[test]
    fn unknown_codecs_and_containers_are_named_in_the_error() {
        let s = streams("h264", "yuv420p", "aac", 2);
        let err = decide(&params("h264", "aac"), &s, None, 6, Some(Container::Ts)).map(|_| ());
        assert_eq!(err, Ok(()));
        assert_eq!(
            decide(&params("vp8", "aac"), &s, None, 6, None).map(|_| ()),
            Err("Unsupported video codec: vp8".to_owned())
        );
        assert_eq!(
            decide(&params("h264", "wma"), &s, None, 6, None).map(|_| ()),
            Err("Unsupported audio codec: wma".to_owned())
        );
        let mut p = params("h264", "aac");
        p.segment_container = Some("avi".to_owned());
        assert_eq!(
            decide(&p, &s, None, 6, None).map(|_| ()),
            Err("Unsupported container: avi".to_owned())
        );
        let mut p = params("h264", "aac");
        p.audio_stream_index = Some(0);
        assert_eq!(
            decide(&p, &s, None, 6, None).map(|_| ()),
            Err("AudioStreamIndex 0 is not an audio stream".to_owned())
        );
    }

    #[test]
    fn the_key_ignores_the_device_and_follows_the_output() {
        let s = streams("h264", "yuv420p", "aac", 2);
        let mut a = params("h264", "aac");
        a.device_id = Some("phone".to_owned());
        a.play_session_id = Some("1".to_owned());
        let mut b = params("h264", "aac");
        b.device_id = Some("tv".to_owned());
        let (sa, sb) = (
            decide(&a, &s, None, 6, None).expect("a"),
            decide(&b, &s, None, 6, None).expect("b"),
        );
        assert_eq!(sa.key("f:1:2"), sb.key("f:1:2"));
        assert_ne!(sa.key("f:1:2"), sa.key("f:1:3"));
        b.segment_container = Some("mp4".to_owned());
        assert_ne!(
            sa.key("f"),
            decide(&b, &s, None, 6, None).expect("b").key("f")
        );
    }
}

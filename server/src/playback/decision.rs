//! The playback decision, as Jellyfin's `StreamBuilder.BuildVideoItem` and
//! `MediaInfoHelper.SetDeviceSpecificData` make it: from the client's [`DeviceProfile`] and the
//! request's flags, play the file as it is (**DirectPlay**), remux it with the video copied
//! (**DirectStream**; audio copied or transcoded), or **Transcode** it, with the
//! `TranscodeReasons` that ruled out direct play; and how each subtitle stream reaches the
//! client (`External`, `Embed`, `Hls`, `Encode` = burned in, `Drop`).
//!
//! Pure: no I/O, no clock, no randomness. The caller supplies the streams, the ids and the
//! token, and gets back the flags and the `TranscodingUrl` shaped as
//! `/work/notes/interface-hls.md` pins it. The HLS side re-decides stream copy from that URL
//! (it must treat it as untrusted input), so what this module says about copying is advice
//! carried in `AllowVideoStreamCopy`/`AllowAudioStreamCopy`.
//!
//! Like Jellyfin (which turns `EnableDirectStream` off for HTTP streaming), direct streaming
//! the raw file is offered only when it can be direct played; remuxing goes through the
//! transcoding URL with the video copied.

use crate::scan::probe::{StreamInfo, StreamKind};

use super::profile::{
    CodecProfile, DeviceProfile, ProfileCondition, SubtitleProfile, TranscodingProfile, Value,
    list_contains, satisfied, split_list,
};

/// How the client will play the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayMethod {
    /// The file as it is.
    DirectPlay,
    /// Remuxed into the transcoding container, video copied.
    DirectStream,
    /// Video re-encoded.
    Transcode,
}

impl PlayMethod {
    /// Jellyfin's `PlayMethod` name.
    pub fn as_str(self) -> &'static str {
        match self {
            PlayMethod::DirectPlay => "DirectPlay",
            PlayMethod::DirectStream => "DirectStream",
            PlayMethod::Transcode => "Transcode",
        }
    }
}

/// Jellyfin's `TranscodeReason` bit flags (`MediaBrowser.Model/Session/TranscodeReason.cs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reasons(u32);

macro_rules! reasons {
    ($($name:ident = $bit:expr),* $(,)?) => {
        impl Reasons {
            $(
                #[allow(non_upper_case_globals, missing_docs)]
                pub const $name: Reasons = Reasons(1 << $bit);
            )*
            /// Every flag with its name, in bit order.
            const NAMED: &'static [(Reasons, &'static str)] = &[$((Reasons::$name, stringify!($name))),*];
        }
    };
}

reasons! {
    ContainerNotSupported = 0,
    VideoCodecNotSupported = 1,
    AudioCodecNotSupported = 2,
    SubtitleCodecNotSupported = 3,
    AudioIsExternal = 4,
    SecondaryAudioNotSupported = 5,
    VideoProfileNotSupported = 6,
    VideoLevelNotSupported = 7,
    VideoResolutionNotSupported = 8,
    VideoBitDepthNotSupported = 9,
    VideoFramerateNotSupported = 10,
    RefFramesNotSupported = 11,
    AnamorphicVideoNotSupported = 12,
    InterlacedVideoNotSupported = 13,
    AudioChannelsNotSupported = 14,
    AudioProfileNotSupported = 15,
    AudioSampleRateNotSupported = 16,
    AudioBitDepthNotSupported = 17,
    ContainerBitrateExceedsLimit = 18,
    VideoBitrateNotSupported = 19,
    AudioBitrateNotSupported = 20,
    UnknownVideoStreamInfo = 21,
    UnknownAudioStreamInfo = 22,
    DirectPlayError = 23,
    VideoRangeTypeNotSupported = 24,
    VideoCodecTagNotSupported = 25,
    StreamCountExceedsLimit = 26,
    VideoRotationNotSupported = 27,
}

impl Reasons {
    /// No reason.
    pub const NONE: Reasons = Reasons(0);

    /// Reasons that come from the video stream's codec conditions.
    pub const VIDEO_CODEC: Reasons = Reasons(
        Reasons::VideoResolutionNotSupported.0
            | Reasons::AnamorphicVideoNotSupported.0
            | Reasons::InterlacedVideoNotSupported.0
            | Reasons::VideoBitDepthNotSupported.0
            | Reasons::VideoBitrateNotSupported.0
            | Reasons::VideoFramerateNotSupported.0
            | Reasons::VideoLevelNotSupported.0
            | Reasons::RefFramesNotSupported.0
            | Reasons::VideoRangeTypeNotSupported.0
            | Reasons::VideoProfileNotSupported.0
            | Reasons::VideoRotationNotSupported.0,
    );
    /// Every video reason.
    pub const VIDEO: Reasons = Reasons(Reasons::VIDEO_CODEC.0 | Reasons::VideoCodecNotSupported.0);
    /// Reasons that come from the audio stream's codec conditions.
    pub const AUDIO_CODEC: Reasons = Reasons(
        Reasons::AudioBitrateNotSupported.0
            | Reasons::AudioChannelsNotSupported.0
            | Reasons::AudioProfileNotSupported.0
            | Reasons::AudioSampleRateNotSupported.0
            | Reasons::SecondaryAudioNotSupported.0
            | Reasons::AudioBitDepthNotSupported.0
            | Reasons::AudioIsExternal.0,
    );
    /// Every audio reason.
    pub const AUDIO: Reasons = Reasons(Reasons::AUDIO_CODEC.0 | Reasons::AudioCodecNotSupported.0);
    /// Container reasons.
    pub const CONTAINER: Reasons =
        Reasons(Reasons::ContainerNotSupported.0 | Reasons::ContainerBitrateExceedsLimit.0);

    /// Whether any flag of `other` is set.
    pub fn any(self, other: Reasons) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the set flags, in bit order (`TranscodeReasons=` takes them comma-joined).
    pub fn names(self) -> Vec<&'static str> {
        Reasons::NAMED
            .iter()
            .filter(|(flag, _)| self.any(*flag))
            .map(|(_, name)| *name)
            .collect()
    }
}

impl std::ops::BitOr for Reasons {
    type Output = Reasons;
    fn bitor(self, rhs: Reasons) -> Reasons {
        Reasons(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Reasons {
    fn bitor_assign(&mut self, rhs: Reasons) {
        self.0 |= rhs.0;
    }
}

/// How a subtitle stream reaches the client (`SubtitleDeliveryMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubtitleMethod {
    /// Burned into the video by the transcoder.
    Encode,
    /// Left inside the container the client receives.
    Embed,
    /// Fetched by the client from the subtitle route.
    External,
    /// Listed in the HLS master playlist as a WebVTT rendition.
    Hls,
    /// Not delivered.
    Drop,
}

impl SubtitleMethod {
    /// Jellyfin's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubtitleMethod::Encode => "Encode",
            SubtitleMethod::Embed => "Embed",
            SubtitleMethod::External => "External",
            SubtitleMethod::Hls => "Hls",
            SubtitleMethod::Drop => "Drop",
        }
    }

    fn parse(name: Option<&str>) -> Option<SubtitleMethod> {
        let name = name?.trim();
        [
            SubtitleMethod::Encode,
            SubtitleMethod::Embed,
            SubtitleMethod::External,
            SubtitleMethod::Hls,
            SubtitleMethod::Drop,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(name))
    }
}

/// How one subtitle stream is delivered, and in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtitleDelivery {
    /// The stream's `Index`.
    pub index: i64,
    /// The method.
    pub method: SubtitleMethod,
    /// The format it is delivered in (`vtt`, `ass`, `subrip`...): the profile's format, or
    /// the stream's codec when burned in.
    pub format: String,
}

/// The file being played.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Container (`mkv`, `mp4`).
    pub container: &'a str,
    /// Overall bitrate (bits/s), when known.
    pub bitrate: Option<i64>,
    /// Every stream, external subtitles included.
    pub streams: &'a [StreamInfo],
    /// The audio stream played when the client names none.
    pub default_audio_index: Option<i64>,
    /// The subtitle shown when the client names none (`None` = off).
    pub default_subtitle_index: Option<i64>,
}

/// What the client asked for in `PlaybackInfo`.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// The client's profile; without one the client is trusted to play the file.
    pub profile: Option<&'a DeviceProfile>,
    /// Upper limit of the total bitrate (the request's, else the profile's).
    pub max_bitrate: Option<i64>,
    /// `EnableDirectPlay`.
    pub enable_direct_play: bool,
    /// `EnableDirectStream`.
    pub enable_direct_stream: bool,
    /// `EnableTranscoding`.
    pub enable_transcoding: bool,
    /// `AllowVideoStreamCopy`.
    pub allow_video_copy: bool,
    /// `AllowAudioStreamCopy`.
    pub allow_audio_copy: bool,
    /// `AudioStreamIndex`.
    pub audio_stream_index: Option<i64>,
    /// `SubtitleStreamIndex` (`-1` = off).
    pub subtitle_stream_index: Option<i64>,
    /// `MaxAudioChannels`.
    pub max_audio_channels: Option<i64>,
    /// `AlwaysBurnInSubtitleWhenTranscoding`.
    pub always_burn_in: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            profile: None,
            max_bitrate: None,
            enable_direct_play: true,
            enable_direct_stream: true,
            enable_transcoding: true,
            allow_video_copy: true,
            allow_audio_copy: true,
            audio_stream_index: None,
            subtitle_stream_index: None,
            max_audio_channels: None,
            always_burn_in: false,
        }
    }
}

/// What the transcoder is asked to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscodePlan {
    /// `hls` or `http`.
    pub protocol: &'static str,
    /// Output container (`ts`, `mp4`).
    pub container: String,
    /// Accepted output video codecs; the first is the one to encode to.
    pub video_codecs: Vec<String>,
    /// Accepted output audio codecs; the first is the one to encode to.
    pub audio_codecs: Vec<String>,
    /// Audio stream to play.
    pub audio_stream_index: Option<i64>,
    /// Target video bitrate.
    pub video_bitrate: i64,
    /// Target audio bitrate.
    pub audio_bitrate: i64,
    /// Most pixels across.
    pub max_width: Option<i64>,
    /// Most lines.
    pub max_height: Option<i64>,
    /// Most frames per second.
    pub max_framerate: Option<f64>,
    /// Most audio channels in the output.
    pub max_audio_channels: i64,
    /// Segments the player wants before it starts.
    pub min_segments: i64,
    /// Segment length the client asked for.
    pub segment_length: Option<i64>,
    /// Whether the video may be copied.
    pub copy_video: bool,
    /// Whether the audio may be copied.
    pub copy_audio: bool,
    /// The subtitle the transcoder handles (burned in or in the manifest).
    pub subtitle: Option<(i64, SubtitleMethod)>,
    /// The client wants text subtitles in the manifest.
    pub enable_subtitles_in_manifest: bool,
}

/// The decision for one media source.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// How the client will play, or `None` when nothing the client accepts can be produced.
    pub method: Option<PlayMethod>,
    /// Why the file cannot be played as it is.
    pub reasons: Reasons,
    /// `SupportsDirectPlay`.
    pub supports_direct_play: bool,
    /// `SupportsDirectStream` (the raw file through `stream.{container}`).
    pub supports_direct_stream: bool,
    /// `SupportsTranscoding`.
    pub supports_transcoding: bool,
    /// The audio stream that plays.
    pub audio_stream_index: Option<i64>,
    /// The subtitle stream that shows (`DefaultSubtitleStreamIndex`).
    pub subtitle_stream_index: Option<i64>,
    /// Set when the client is to use the `TranscodingUrl`.
    pub transcode: Option<TranscodePlan>,
    /// The delivery of every subtitle stream.
    pub subtitles: Vec<SubtitleDelivery>,
}

/// Video codecs HLS segments can carry (Jellyfin's `_supportedHlsVideoCodecs`).
const HLS_VIDEO_CODECS: [&str; 4] = ["h264", "hevc", "vp9", "av1"];
/// Audio codecs in MPEG-TS segments.
const HLS_AUDIO_CODECS_TS: [&str; 4] = ["aac", "ac3", "eac3", "mp3"];
/// Audio codecs in fMP4 segments.
const HLS_AUDIO_CODECS_MP4: [&str; 9] = [
    "aac", "ac3", "eac3", "mp3", "alac", "flac", "opus", "dts", "truehd",
];

/// The transcoding profile used when a client sends no profile at all: what every Jellyfin
/// client plays.
fn fallback_transcoding_profile() -> TranscodingProfile {
    TranscodingProfile {
        container: Some("ts".to_owned()),
        kind: Some("Video".to_owned()),
        video_codec: Some("h264".to_owned()),
        audio_codec: Some("aac".to_owned()),
        protocol: Some("hls".to_owned()),
        context: Some("Streaming".to_owned()),
        max_audio_channels: Some(2),
        min_segments: Some(1),
        ..TranscodingProfile::default()
    }
}

/// Subtitle codecs that are text (Jellyfin's `MediaStream.IsTextFormat`, by exclusion).
pub fn is_text_subtitle_codec(codec: Option<&str>) -> bool {
    let Some(codec) = codec.map(str::to_ascii_lowercase) else {
        return false;
    };
    codec.contains("microdvd")
        || !(codec.contains("pgs")
            || codec.contains("dvdsub")
            || codec.contains("dvd_subtitle")
            || codec.contains("vobsub")
            || codec.contains("dvbsub")
            || codec.contains("dvb_subtitle")
            || codec.contains("dvb_teletext")
            || codec == "sup"
            || codec == "sub"
            || codec == "xsub")
}

fn is_text_format(format: &str) -> bool {
    is_text_subtitle_codec(Some(format))
}

/// Whether a text subtitle can be converted to `to` (`MediaStream.SupportsSubtitleConversionTo`:
/// nothing converts from or to ASS/SSA, styling would be lost).
fn converts_to(stream: &StreamInfo, to: &str) -> bool {
    let from = stream.codec.as_deref().unwrap_or_default();
    is_text_subtitle_codec(Some(from))
        && !matches!(from.to_ascii_lowercase().as_str(), "ass" | "ssa")
        && !matches!(to.to_ascii_lowercase().as_str(), "ass" | "ssa")
}

/// Bit depth from the pixel format (`yuv420p10le` → 10); 8 for the common formats.
pub fn bit_depth(pixel_format: Option<&str>) -> Option<i64> {
    let format = pixel_format?.to_ascii_lowercase();
    for depth in [16, 12, 10, 9] {
        if format.contains(&format!("p{depth}")) {
            return Some(depth);
        }
    }
    Some(8)
}

/// The values of a video stream's properties, as conditions read them.
fn video_value(property: &str, video: &StreamInfo, streams: &[StreamInfo]) -> Option<Value> {
    let count = |kind: StreamKind| streams.iter().filter(|s| s.kind == kind).count() as i64;
    Some(match property.to_ascii_lowercase().as_str() {
        "width" => Value::Int(video.width?),
        "height" => Value::Int(video.height?),
        "videobitdepth" => Value::Int(bit_depth(video.pixel_format.as_deref())?),
        "videobitrate" => Value::Int(video.bit_rate?),
        "videoprofile" => Value::Text(video.profile.clone()?),
        // Ephyra does not read colour metadata yet; the DTO reports SDR too.
        "videorangetype" => Value::Text("SDR".to_owned()),
        "videolevel" => Value::Float(video.level? as f64),
        "videoframerate" => Value::Float(video.frame_rate?),
        "isinterlaced" => Value::Bool(video.is_interlaced),
        "numstreams" => Value::Int(streams.len() as i64),
        "numaudiostreams" => Value::Int(count(StreamKind::Audio)),
        "numvideostreams" => Value::Int(count(StreamKind::Video)),
        // Anamorphic, ref frames, codec tag, rotation, AVC flag, timestamp: not probed, so
        // unknown (passes unless required).
        _ => return None,
    })
}

/// The values of an audio stream's properties.
fn audio_value(property: &str, audio: &StreamInfo, secondary: bool) -> Option<Value> {
    Some(match property.to_ascii_lowercase().as_str() {
        "audiochannels" => Value::Int(audio.channels?),
        "audiobitrate" => Value::Int(audio.bit_rate?),
        "audiosamplerate" => Value::Int(audio.sample_rate?),
        "audioprofile" => Value::Text(audio.profile.clone()?),
        "issecondaryaudio" => Value::Bool(secondary),
        _ => return None,
    })
}

/// The reason a failed condition on `property` gives (`GetTranscodeReasonForFailedCondition`).
fn reason_for(property: &str) -> Reasons {
    match property.to_ascii_lowercase().as_str() {
        "audiobitrate" => Reasons::AudioBitrateNotSupported,
        "audiochannels" => Reasons::AudioChannelsNotSupported,
        "audioprofile" => Reasons::AudioProfileNotSupported,
        "audiosamplerate" => Reasons::AudioSampleRateNotSupported,
        "audiobitdepth" => Reasons::AudioBitDepthNotSupported,
        "height" | "width" => Reasons::VideoResolutionNotSupported,
        "isanamorphic" => Reasons::AnamorphicVideoNotSupported,
        "isinterlaced" => Reasons::InterlacedVideoNotSupported,
        "issecondaryaudio" => Reasons::SecondaryAudioNotSupported,
        "numstreams" => Reasons::StreamCountExceedsLimit,
        "refframes" => Reasons::RefFramesNotSupported,
        "videobitdepth" => Reasons::VideoBitDepthNotSupported,
        "videobitrate" => Reasons::VideoBitrateNotSupported,
        "videocodectag" => Reasons::VideoCodecTagNotSupported,
        "videoframerate" => Reasons::VideoFramerateNotSupported,
        "videolevel" => Reasons::VideoLevelNotSupported,
        "videoprofile" => Reasons::VideoProfileNotSupported,
        "videorangetype" => Reasons::VideoRangeTypeNotSupported,
        "videorotation" => Reasons::VideoRotationNotSupported,
        _ => Reasons::NONE,
    }
}

fn is_kind(kind: Option<&str>, wanted: &str) -> bool {
    kind.is_some_and(|k| k.trim().eq_ignore_ascii_case(wanted))
}

/// Containers that are the same thing under another name.
fn container_names(container: &str) -> String {
    match container.to_ascii_lowercase().as_str() {
        "mkv" | "matroska" => "mkv,matroska".to_owned(),
        "ts" | "mpegts" | "m2ts" => "ts,mpegts,m2ts".to_owned(),
        "mp4" | "m4v" => "mp4,m4v".to_owned(),
        other => other.to_owned(),
    }
}

struct Decider<'a> {
    profile: &'a DeviceProfile,
    source: Source<'a>,
    options: Options<'a>,
    video: Option<&'a StreamInfo>,
    first_audio_index: Option<i64>,
}

impl<'a> Decider<'a> {
    /// Reasons from conditions a video stream fails.
    fn video_reasons(&self, video: &StreamInfo, conditions: &[ProfileCondition]) -> Reasons {
        conditions
            .iter()
            .filter(|c| {
                let property = c.property.as_deref().unwrap_or_default();
                !satisfied(
                    c,
                    video_value(property, video, self.source.streams).as_ref(),
                )
            })
            .fold(Reasons::NONE, |acc, c| {
                acc | reason_for(c.property.as_deref().unwrap_or_default())
            })
    }

    fn video_applies(&self, video: &StreamInfo, conditions: &[ProfileCondition]) -> bool {
        conditions.iter().all(|c| {
            let property = c.property.as_deref().unwrap_or_default();
            satisfied(
                c,
                video_value(property, video, self.source.streams).as_ref(),
            )
        })
    }

    fn is_secondary(&self, audio: &StreamInfo) -> bool {
        !audio.is_external && self.first_audio_index.is_some_and(|i| i != audio.index)
    }

    fn audio_reasons(&self, audio: &StreamInfo, conditions: &[ProfileCondition]) -> Reasons {
        let secondary = self.is_secondary(audio);
        conditions
            .iter()
            .filter(|c| {
                let property = c.property.as_deref().unwrap_or_default();
                !satisfied(c, audio_value(property, audio, secondary).as_ref())
            })
            .fold(Reasons::NONE, |acc, c| {
                acc | reason_for(c.property.as_deref().unwrap_or_default())
            })
    }

    /// `GetCompatibilityContainer`: conditions of container profiles for this container.
    fn container_reasons(&self, container: &str) -> Reasons {
        let Some(video) = self.video else {
            return Reasons::NONE;
        };
        self.profile
            .containers()
            .iter()
            .filter(|p| is_kind(p.kind.as_deref(), "Video"))
            .filter(|p| list_contains(p.container.as_deref(), container))
            .fold(Reasons::NONE, |acc, p| {
                acc | self.video_reasons(video, p.conditions.as_deref().unwrap_or_default())
            })
    }

    /// `GetCompatibilityVideoCodec`: conditions of the video codec profiles that apply.
    fn video_codec_reasons(&self, video: &StreamInfo, container: &str) -> Reasons {
        self.profile
            .codecs()
            .iter()
            .filter(|p| is_kind(p.kind.as_deref(), "Video"))
            .filter(|p| p.applies_to(video.codec.as_deref(), container))
            .filter(|p| self.video_applies(video, p.apply_conditions()))
            .fold(Reasons::NONE, |acc, p| {
                acc | self.video_reasons(video, p.conditions())
            })
    }

    /// `GetCompatibilityAudioCodec` for audio inside a video, optionally as if it were
    /// `codec` (a transcoding target).
    fn audio_codec_reasons(
        &self,
        audio: &StreamInfo,
        container: &str,
        codec: Option<&str>,
    ) -> Reasons {
        let codec = codec.or(audio.codec.as_deref());
        let secondary = self.is_secondary(audio);
        let applies = |p: &&CodecProfile| {
            is_kind(p.kind.as_deref(), "VideoAudio")
                && p.applies_to(codec, container)
                && p.apply_conditions().iter().all(|c| {
                    let property = c.property.as_deref().unwrap_or_default();
                    satisfied(c, audio_value(property, audio, secondary).as_ref())
                })
        };
        let mut reasons = self
            .profile
            .codecs()
            .iter()
            .filter(applies)
            .fold(Reasons::NONE, |acc, p| {
                acc | self.audio_reasons(audio, p.conditions())
            });
        if audio.is_external {
            reasons |= Reasons::AudioIsExternal;
        }
        reasons
    }

    /// `GetVideoDirectPlayProfile`: whether a direct play profile accepts the file, else the
    /// reasons of the profile that came closest.
    fn direct_play(
        &self,
        audio_candidates: &[&StreamInfo],
        subtitle: Option<&StreamInfo>,
    ) -> Result<Option<i64>, Reasons> {
        let container = container_names(self.source.container);
        let container_reasons = self.container_reasons(&container);
        let video_codec_reasons = self
            .video
            .map_or(Reasons::NONE, |v| self.video_codec_reasons(v, &container));
        let subtitle_reasons = match subtitle {
            Some(s) => {
                let delivery = subtitle_profile(
                    self.profile.subtitles(),
                    s,
                    PlayMethod::DirectPlay,
                    Some(container.as_str()),
                    None,
                );
                if matches!(
                    delivery.method,
                    SubtitleMethod::Drop | SubtitleMethod::External | SubtitleMethod::Embed
                ) {
                    Reasons::NONE
                } else {
                    Reasons::SubtitleCodecNotSupported
                }
            }
            None => Reasons::NONE,
        };
        let rankings = [
            Reasons::VideoCodecNotSupported,
            Reasons::VIDEO_CODEC,
            Reasons::AudioCodecNotSupported,
            Reasons::AUDIO_CODEC,
            Reasons::CONTAINER,
        ];
        let rank = |r: Reasons| {
            rankings
                .iter()
                .position(|flag| r.any(*flag))
                .unwrap_or(rankings.len())
        };
        let mut container_supported = false;
        let mut failures: Vec<(usize, usize, Reasons)> = Vec::new();
        let profiles = self
            .profile
            .direct_play()
            .iter()
            .filter(|p| is_kind(p.kind.as_deref(), "Video"));
        for (order, p) in profiles.enumerate() {
            let mut reasons = Reasons::NONE;
            if list_contains(p.container.as_deref(), &container) {
                container_supported = true;
            } else {
                reasons |= Reasons::ContainerNotSupported;
            }
            if let Some(codec) = self.video.and_then(|v| v.codec.as_deref())
                && !list_contains(p.video_codec.as_deref(), codec)
            {
                reasons |= Reasons::VideoCodecNotSupported;
            }
            let mut selected = None;
            let mut audio_reasons = Reasons::NONE;
            if !audio_candidates.is_empty() {
                selected = audio_candidates.iter().find(|a| {
                    a.codec
                        .as_deref()
                        .is_none_or(|c| list_contains(p.audio_codec.as_deref(), c))
                });
                match selected {
                    Some(a) => audio_reasons = self.audio_codec_reasons(a, &container, None),
                    None => reasons |= Reasons::AudioCodecNotSupported,
                }
            }
            let mut all = reasons | container_reasons | subtitle_reasons;
            if !all.any(Reasons::VideoCodecNotSupported) {
                all |= video_codec_reasons;
            }
            if !all.any(Reasons::AudioCodecNotSupported) {
                all |= audio_reasons;
            }
            if all.is_empty() {
                return Ok(selected.map(|a| a.index));
            }
            failures.push((rank(all), order, all));
        }
        // The profile that came closest: highest rank (its worst problem is the mildest),
        // then the client's order; skip profiles of another container if one matched.
        failures.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let best = failures
            .into_iter()
            .map(|(_, _, r)| r)
            .find(|r| !container_supported || !r.any(Reasons::ContainerNotSupported))
            .unwrap_or(Reasons::NONE);
        Err(if best.is_empty() {
            Reasons::DirectPlayError
        } else {
            best
        })
    }

    /// `GetVideoTranscodeProfile`: the first transcoding profile that can copy the video,
    /// else one that can copy the audio, else the first. Returns it and whether the video can
    /// be copied into it.
    fn transcoding_profile(
        &self,
        audio: Option<&StreamInfo>,
    ) -> Option<(&'a TranscodingProfile, bool)> {
        let profile = self.profile;
        let mut ranked: Vec<((u8, u8), usize, &TranscodingProfile)> = profile
            .transcoding()
            .iter()
            .filter(|t| is_kind(t.kind.as_deref(), "Video"))
            .filter(|t| {
                t.context
                    .as_deref()
                    .is_none_or(|c| c.trim().eq_ignore_ascii_case("Streaming"))
            })
            .enumerate()
            .map(|(order, t)| {
                let container = t.container.clone().unwrap_or_default();
                let mut video_rank = 3;
                if let Some(video) = self.video
                    && self.options.allow_video_copy
                    && video
                        .codec
                        .as_deref()
                        .is_some_and(|c| list_contains(t.video_codec.as_deref(), c))
                {
                    let failures = self.video_codec_reasons(video, &container);
                    video_rank = if failures.is_empty() { 1 } else { 2 };
                }
                let mut audio_rank = 3;
                if let Some(audio) = audio
                    && self.options.allow_audio_copy
                {
                    for codec in split_list(t.audio_codec.as_deref()) {
                        let failures =
                            self.audio_codec_reasons(audio, &container, Some(codec.as_str()));
                        if failures.is_empty() {
                            let same = audio
                                .codec
                                .as_deref()
                                .is_some_and(|c| c.eq_ignore_ascii_case(&codec));
                            audio_rank = audio_rank.min(if same { 1 } else { 2 });
                        }
                        if audio_rank == 1 {
                            break;
                        }
                    }
                }
                ((video_rank, audio_rank), order, t)
            })
            .collect();
        ranked.sort_by_key(|(rank, order, _)| (*rank, *order));
        ranked
            .into_iter()
            .next()
            .map(|((video_rank, _), _, t)| (t, video_rank == 1))
    }
}

/// `StreamBuilder.GetSubtitleProfile`: how `stream` reaches a client with `profiles` when the
/// item plays by `method` into `container` over `protocol`.
pub fn subtitle_profile(
    profiles: &[SubtitleProfile],
    stream: &StreamInfo,
    method: PlayMethod,
    container: Option<&str>,
    protocol: Option<&str>,
) -> SubtitleDelivery {
    // Profiles name image formats as Jellyfin does (`pgssub`), not as ffprobe does.
    let codec = stream.client_codec().unwrap_or_default().to_owned();
    let is_text = is_text_subtitle_codec(Some(codec.as_str()));
    let is_hls = protocol.is_some_and(|p| p.eq_ignore_ascii_case("hls"));
    let embed_supported = container.is_some_and(|c| list_contains(Some("mkv,matroska"), c));
    let can_embed = if stream.is_external {
        method == PlayMethod::Transcode && !is_hls && embed_supported
    } else {
        method != PlayMethod::Transcode || !is_hls
    };
    let delivery = |p: &SubtitleProfile, method: SubtitleMethod| SubtitleDelivery {
        index: stream.index,
        method,
        format: p.format.clone().unwrap_or_default().to_ascii_lowercase(),
    };
    let language = stream.language.as_deref();
    if can_embed {
        let embeddable = |p: &&SubtitleProfile| {
            p.supports_language(language)
                && SubtitleMethod::parse(p.method.as_deref()) == Some(SubtitleMethod::Embed)
                && container.is_none_or(|c| list_contains(p.container.as_deref(), c))
                && (method != PlayMethod::Transcode || embed_supported)
        };
        let same = profiles.iter().filter(embeddable).find(|p| {
            let format = p.format.as_deref().unwrap_or_default();
            is_text == is_text_format(format) && format.eq_ignore_ascii_case(&codec)
        });
        if let Some(p) = same {
            return delivery(p, SubtitleMethod::Embed);
        }
        let convertible = profiles
            .iter()
            .filter(embeddable)
            .find(|p| is_text && converts_to(stream, p.format.as_deref().unwrap_or_default()));
        if let Some(p) = convertible {
            return delivery(p, SubtitleMethod::Embed);
        }
    }
    for allow_conversion in [false, true] {
        for p in profiles {
            let Some(m @ (SubtitleMethod::External | SubtitleMethod::Hls)) =
                SubtitleMethod::parse(p.method.as_deref())
            else {
                continue;
            };
            if m == SubtitleMethod::Hls && method != PlayMethod::Transcode {
                continue;
            }
            if !p.supports_language(language) {
                continue;
            }
            let format = p.format.as_deref().unwrap_or_default();
            let fits = match m {
                SubtitleMethod::External => is_text == is_text_format(format),
                _ => is_text,
            };
            if !fits {
                continue;
            }
            let needs_conversion = !format.eq_ignore_ascii_case(&codec);
            if !needs_conversion {
                return delivery(p, m);
            }
            if allow_conversion && is_text && converts_to(stream, format) {
                return delivery(p, m);
            }
        }
    }
    SubtitleDelivery {
        index: stream.index,
        method: SubtitleMethod::Encode,
        format: codec,
    }
}

/// Jellyfin's default audio bitrates (`GetDefaultAudioBitrate`).
fn default_audio_bitrate(codec: Option<&str>, channels: Option<i64>) -> i64 {
    let channels = channels.unwrap_or(0);
    match codec.map(str::to_ascii_lowercase).as_deref() {
        Some("aac" | "mp3" | "ac3" | "eac3") => match channels {
            c if c < 2 => 128_000,
            c if c >= 6 => 640_000,
            _ => 384_000,
        },
        Some("flac" | "alac") => match channels {
            c if c < 2 => 768_000,
            c if c >= 6 => 3_584_000,
            _ => 1_536_000,
        },
        _ => 192_000,
    }
}

/// The most audio bitrate a total bitrate allows (`GetMaxAudioBitrateForTotalBitrate`).
fn max_audio_bitrate_for(total: i64) -> i64 {
    match total {
        t if t <= 640_000 => 128_000,
        t if t <= 2_000_000 => 384_000,
        t if t <= 3_000_000 => 448_000,
        t if t <= 4_000_000 => 640_000,
        t if t <= 5_000_000 => 768_000,
        t if t <= 10_000_000 => 1_536_000,
        t if t <= 15_000_000 => 2_304_000,
        t if t <= 20_000_000 => 3_584_000,
        _ => 7_168_000,
    }
}

/// Decides how `source` plays for a client asking `options`.
pub fn decide(source: Source<'_>, options: Options<'_>) -> Decision {
    let empty = DeviceProfile::default();
    let has_profile = options.profile.is_some();
    let profile = options.profile.unwrap_or(&empty);
    let streams = source.streams;
    let video = streams.iter().find(|s| s.kind == StreamKind::Video);
    let first_audio_index = streams
        .iter()
        .find(|s| s.kind == StreamKind::Audio && !s.is_external)
        .map(|s| s.index);
    let audio = options
        .audio_stream_index
        .or(source.default_audio_index)
        .and_then(|i| {
            streams
                .iter()
                .find(|s| s.kind == StreamKind::Audio && s.index == i)
        })
        .or_else(|| streams.iter().find(|s| s.kind == StreamKind::Audio));
    // Without an explicit choice, any default audio stream may stand in for the default one
    // when its codec plays directly (Jellyfin's candidate audio streams).
    let audio_candidates: Vec<&StreamInfo> = match (options.audio_stream_index, audio) {
        (None, Some(a)) => streams
            .iter()
            .filter(|s| s.kind == StreamKind::Audio && (!a.is_default || s.is_default))
            .collect(),
        (_, Some(a)) => vec![a],
        (_, None) => Vec::new(),
    };
    let subtitle_index = match options.subtitle_stream_index {
        Some(i) if i < 0 => None,
        Some(i) => Some(i),
        None => source.default_subtitle_index,
    };
    let subtitle = subtitle_index.and_then(|i| {
        streams
            .iter()
            .find(|s| s.kind == StreamKind::Subtitle && s.index == i)
    });
    let decider = Decider {
        profile,
        source,
        options,
        video,
        first_audio_index,
    };

    let bitrate_exceeded = options
        .max_bitrate
        .filter(|m| *m > 0)
        // Jellyfin assumes 40 Mb/s for a file of unknown bitrate.
        .is_some_and(|max| source.bitrate.unwrap_or(40_000_000) > max);
    let mut reasons = if bitrate_exceeded {
        Reasons::ContainerBitrateExceedsLimit
    } else {
        Reasons::NONE
    };

    let mut direct_audio = None;
    let direct_play = if !options.enable_direct_play || bitrate_exceeded {
        false
    } else if !has_profile {
        true
    } else {
        match decider.direct_play(&audio_candidates, subtitle) {
            Ok(audio_index) => {
                direct_audio = audio_index;
                true
            }
            Err(r) => {
                reasons |= r;
                false
            }
        }
    };

    let subtitles_for = |method: PlayMethod, container: Option<&str>, protocol: Option<&str>| {
        streams
            .iter()
            .filter(|s| s.kind == StreamKind::Subtitle)
            .map(|s| subtitle_profile(profile.subtitles(), s, method, container, protocol))
            .collect::<Vec<_>>()
    };

    if direct_play {
        let container = container_names(source.container);
        return Decision {
            method: Some(PlayMethod::DirectPlay),
            reasons: Reasons::NONE,
            supports_direct_play: true,
            supports_direct_stream: options.enable_direct_stream && options.allow_video_copy,
            supports_transcoding: options.enable_transcoding,
            audio_stream_index: direct_audio.or(audio.map(|a| a.index)),
            subtitle_stream_index: subtitle.map(|s| s.index),
            transcode: None,
            subtitles: subtitles_for(PlayMethod::DirectPlay, Some(container.as_str()), None),
        };
    }

    let fallback = fallback_transcoding_profile();
    let chosen = if !options.enable_transcoding {
        None
    } else if has_profile {
        decider.transcoding_profile(audio)
    } else {
        Some((&fallback, false))
    };
    let Some((tp, video_copyable)) = chosen else {
        return Decision {
            method: None,
            reasons,
            supports_direct_play: false,
            supports_direct_stream: false,
            supports_transcoding: false,
            audio_stream_index: audio.map(|a| a.index),
            subtitle_stream_index: subtitle.map(|s| s.index),
            transcode: None,
            subtitles: subtitles_for(PlayMethod::Transcode, None, None),
        };
    };

    // `BuildStreamVideoItem`.
    let protocol = if tp
        .protocol
        .as_deref()
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("http"))
    {
        "http"
    } else {
        "hls"
    };
    let container = tp
        .container
        .as_deref()
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "ts".to_owned());
    let mut video_codecs = split_list(tp.video_codec.as_deref());
    if video_codecs.is_empty()
        && let Some(codec) = video.and_then(|v| v.codec.clone())
    {
        video_codecs.push(codec);
    }
    let mut audio_codecs = split_list(tp.audio_codec.as_deref());
    if audio_codecs.is_empty()
        && let Some(codec) = audio.and_then(|a| a.codec.clone())
    {
        audio_codecs.push(codec);
    }
    if protocol == "hls" {
        video_codecs.retain(|c| HLS_VIDEO_CODECS.contains(&c.as_str()));
        let allowed: &[&str] = if container == "mp4" {
            &HLS_AUDIO_CODECS_MP4
        } else {
            &HLS_AUDIO_CODECS_TS
        };
        audio_codecs.retain(|c| allowed.contains(&c.as_str()));
        if video_codecs.is_empty() {
            video_codecs.push("h264".to_owned());
        }
        if audio_codecs.is_empty() {
            audio_codecs.push("aac".to_owned());
        }
    }
    if let Some(codec) = video.and_then(|v| v.codec.as_deref())
        && !video_codecs.iter().any(|c| c.eq_ignore_ascii_case(codec))
    {
        reasons |= Reasons::VideoCodecNotSupported;
    }
    // The first codec is the one encoded to. Like Jellyfin with its defaults (HEVC and AV1
    // encoding off), encode H.264 whenever the client accepts it; the order does not matter
    // for copying, which only asks whether the source codec is listed.
    if let Some(pos) = video_codecs.iter().position(|c| c == "h264") {
        let h264 = video_codecs.remove(pos);
        video_codecs.insert(0, h264);
    }
    let max_channels = [tp.max_audio_channels, options.max_audio_channels]
        .into_iter()
        .flatten()
        .filter(|c| *c > 0)
        .min();
    let copy_audio_stream = audio_candidates
        .iter()
        .chain(audio.iter())
        .find(|a| {
            a.codec
                .as_deref()
                .is_some_and(|c| audio_codecs.iter().any(|t| t.eq_ignore_ascii_case(c)))
        })
        .copied();
    let mut copy_audio = false;
    let mut played_audio = audio;
    match copy_audio_stream {
        Some(a) => {
            let failures = decider.audio_codec_reasons(a, &container, None);
            reasons |= failures;
            let channels_exceeded = max_channels.is_some_and(|m| a.channels.unwrap_or(0) > m);
            if channels_exceeded {
                reasons |= Reasons::AudioChannelsNotSupported;
            }
            copy_audio = options.allow_audio_copy
                && failures.is_empty()
                && !channels_exceeded
                && !bitrate_exceeded;
            if copy_audio {
                played_audio = Some(a);
            }
        }
        None if audio.is_some() => reasons |= Reasons::AudioCodecNotSupported,
        None => {}
    }
    if copy_audio && let Some(a) = played_audio {
        audio_codecs = vec![a.codec.clone().unwrap_or_default().to_ascii_lowercase()];
    }

    // Limits from the codec profiles of the output video codec (`ApplyTranscodingConditions`).
    let mut max_width = video.and_then(|v| v.width);
    let mut max_height = video.and_then(|v| v.height);
    let mut max_framerate = video.and_then(|v| v.frame_rate);
    let mut limit_bitrate: Option<i64> = None;
    let target_video = video_codecs.first().cloned().unwrap_or_default();
    for p in profile.codecs() {
        if !is_kind(p.kind.as_deref(), "Video")
            || !p.applies_to(Some(target_video.as_str()), &container)
        {
            continue;
        }
        if let Some(v) = video
            && !decider.video_applies(v, p.apply_conditions())
        {
            continue;
        }
        for c in p.conditions() {
            let is_limit = c
                .condition
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case("LessThanEqual"));
            let value = c.value.as_deref().unwrap_or_default().trim();
            if !is_limit {
                continue;
            }
            let property = c
                .property
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase();
            match property.as_str() {
                "width" => {
                    if let Ok(v) = value.parse::<i64>() {
                        max_width = Some(max_width.map_or(v, |w| w.min(v)));
                    }
                }
                "height" => {
                    if let Ok(v) = value.parse::<i64>() {
                        max_height = Some(max_height.map_or(v, |h| h.min(v)));
                    }
                }
                "videoframerate" => {
                    if let Ok(v) = value.parse::<f64>() {
                        max_framerate = Some(max_framerate.map_or(v, |f| f.min(v)));
                    }
                }
                "videobitrate" => {
                    if let Ok(v) = value.parse::<i64>() {
                        limit_bitrate = Some(limit_bitrate.map_or(v, |b| b.min(v)));
                    }
                }
                _ => {}
            }
        }
    }

    // Bitrates (`GetAudioBitrate`, then the rest for video).
    let target_audio = audio_codecs.first().cloned();
    let mut audio_bitrate = match played_audio {
        None => 192_000,
        Some(a) => {
            let channels = a.channels;
            let same_codec = a
                .codec
                .as_deref()
                .is_some_and(|c| audio_codecs.iter().any(|t| t.eq_ignore_ascii_case(c)));
            let bitrate = match (channels, max_channels) {
                // Down-mixing: the target layout's default.
                (Some(c), Some(m)) if c > m => {
                    default_audio_bitrate(target_audio.as_deref(), Some(m))
                }
                // Another codec: its default for the source layout.
                (Some(c), _) if !same_codec => {
                    default_audio_bitrate(target_audio.as_deref(), Some(c))
                }
                _ => a.bit_rate.unwrap_or_else(|| {
                    default_audio_bitrate(target_audio.as_deref(), max_channels.or(channels))
                }),
            };
            // Encoders fail above 64 kb/s on thin mono sources (Jellyfin's observation).
            if channels == Some(1) && a.bit_rate.unwrap_or(0) < 64_000 {
                bitrate.min(64_000)
            } else {
                bitrate
            }
        }
    };
    if let Some(max) = options.max_bitrate.filter(|m| *m > 0) {
        audio_bitrate = audio_bitrate.min(max_audio_bitrate_for(max));
    }
    let source_video_bitrate = video
        .and_then(|v| v.bit_rate)
        .or_else(|| source.bitrate.map(|b| (b - audio_bitrate).max(0)))
        .filter(|b| *b > 0);
    let mut video_bitrate = limit_bitrate.or(source_video_bitrate);
    if let Some(max) = options.max_bitrate.filter(|m| *m > 0) {
        let available = max - audio_bitrate;
        let current = video_bitrate.unwrap_or(available);
        video_bitrate = Some(available.min(current).max(64_000));
    }
    // Neither a limit nor a known source bitrate: a generous default for the encoder.
    let video_bitrate = video_bitrate.unwrap_or(8_000_000);

    // The selected subtitle, delivered for this output.
    let subtitles = subtitles_for(
        PlayMethod::Transcode,
        Some(container.as_str()),
        Some(protocol),
    );
    let selected = subtitle.and_then(|s| subtitles.iter().find(|d| d.index == s.index));
    let transcoded_subtitle = selected.and_then(|d| {
        let method = if options.always_burn_in && d.method != SubtitleMethod::External {
            SubtitleMethod::Encode
        } else {
            d.method
        };
        matches!(method, SubtitleMethod::Encode | SubtitleMethod::Hls).then_some((d.index, method))
    });
    let burn_in = matches!(transcoded_subtitle, Some((_, SubtitleMethod::Encode)));
    let resized = video.is_some_and(|v| {
        v.width.zip(max_width).is_some_and(|(w, m)| w > m)
            || v.height.zip(max_height).is_some_and(|(h, m)| h > m)
    });
    let over_bitrate = bitrate_exceeded
        || source_video_bitrate.is_some_and(|b| b > video_bitrate)
        || limit_bitrate.is_some_and(|l| video.and_then(|v| v.bit_rate).is_some_and(|b| b > l));
    let copy_video =
        video_copyable && !reasons.any(Reasons::VIDEO) && !over_bitrate && !resized && !burn_in;
    let method = if copy_video {
        PlayMethod::DirectStream
    } else {
        PlayMethod::Transcode
    };

    Decision {
        method: Some(method),
        reasons,
        supports_direct_play: false,
        supports_direct_stream: false,
        supports_transcoding: true,
        audio_stream_index: played_audio.map(|a| a.index),
        subtitle_stream_index: subtitle.map(|s| s.index),
        transcode: Some(TranscodePlan {
            protocol,
            container,
            video_codecs,
            audio_codecs,
            audio_stream_index: played_audio.map(|a| a.index),
            video_bitrate,
            audio_bitrate,
            max_width,
            max_height,
            max_framerate,
            max_audio_channels: max_channels.unwrap_or(2),
            min_segments: tp.min_segments.filter(|m| *m > 0).unwrap_or(1),
            segment_length: tp.segment_length.filter(|s| *s > 0),
            copy_video,
            copy_audio,
            subtitle: transcoded_subtitle,
            enable_subtitles_in_manifest: tp.enable_subtitles_in_manifest.unwrap_or(false),
        }),
        subtitles,
    }
}

/// The ids and credentials a `TranscodingUrl` carries.
#[derive(Debug, Clone, Copy)]
pub struct UrlParts<'a> {
    /// The item (N form).
    pub item_id: &'a str,
    /// The media source (N form).
    pub media_source_id: &'a str,
    /// The client's device id.
    pub device_id: &'a str,
    /// This playback's session id.
    pub play_session_id: &'a str,
    /// The caller's token, for players that fetch without headers.
    pub token: Option<&'a str>,
    /// Where playback starts.
    pub start_time_ticks: Option<i64>,
}

impl TranscodePlan {
    /// The relative `TranscodingUrl`, as `/work/notes/interface-hls.md` pins it (Jellyfin's
    /// `StreamInfo.ToUrl`): `/videos/{id}/master.m3u8?…` for HLS, `/videos/{id}/stream.{c}?…`
    /// for progressive profiles.
    pub fn url(&self, parts: UrlParts<'_>, reasons: Reasons) -> String {
        let mut q: Vec<(&str, String)> = vec![
            ("DeviceId", parts.device_id.to_owned()),
            ("MediaSourceId", parts.media_source_id.to_owned()),
            ("VideoCodec", self.video_codecs.join(",")),
            ("AudioCodec", self.audio_codecs.join(",")),
        ];
        if let Some(index) = self.audio_stream_index {
            q.push(("AudioStreamIndex", index.to_string()));
        }
        q.push(("VideoBitrate", self.video_bitrate.to_string()));
        q.push(("AudioBitrate", self.audio_bitrate.to_string()));
        if let Some(w) = self.max_width {
            q.push(("MaxWidth", w.to_string()));
        }
        if let Some(h) = self.max_height {
            q.push(("MaxHeight", h.to_string()));
        }
        if let Some(f) = self.max_framerate {
            // Three decimals keep 23.976 readable; the HLS side parses a float.
            let text = format!("{f:.3}");
            let text = text.trim_end_matches('0').trim_end_matches('.');
            q.push(("MaxFramerate", text.to_owned()));
        }
        if self.protocol == "hls" {
            q.push(("SegmentContainer", self.container.clone()));
            if let Some(length) = self.segment_length {
                q.push(("SegmentLength", length.to_string()));
            }
            q.push(("MinSegments", self.min_segments.to_string()));
            q.push(("BreakOnNonKeyFrames", "True".to_owned()));
        }
        if let Some(ticks) = parts.start_time_ticks.filter(|t| *t > 0) {
            q.push(("StartTimeTicks", ticks.to_string()));
        }
        q.push(("PlaySessionId", parts.play_session_id.to_owned()));
        if let Some(token) = parts.token {
            q.push(("ApiKey", token.to_owned()));
        }
        q.push((
            "TranscodingMaxAudioChannels",
            self.max_audio_channels.to_string(),
        ));
        q.push(("AllowVideoStreamCopy", self.copy_video.to_string()));
        q.push(("AllowAudioStreamCopy", self.copy_audio.to_string()));
        q.push(("RequireAvc", "false".to_owned()));
        if self.enable_subtitles_in_manifest {
            q.push(("EnableSubtitlesInManifest", "true".to_owned()));
        }
        if let Some((index, method)) = self.subtitle {
            q.push(("SubtitleStreamIndex", index.to_string()));
            q.push(("SubtitleMethod", method.as_str().to_owned()));
        }
        if !reasons.is_empty() {
            q.push(("TranscodeReasons", reasons.names().join(",")));
        }
        let query = q
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let path = if self.protocol == "hls" {
            "master.m3u8".to_owned()
        } else {
            format!("stream.{}", self.container)
        };
        format!("/videos/{}/{path}?{query}", parts.item_id)
    }
}

/// Percent-encodes a query value, keeping the characters that are safe and readable there
/// (commas in codec lists, dots in numbers).
fn encode(value: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b',')
        .remove(b'.')
        .remove(b'-')
        .remove(b'_');
    percent_encoding::utf8_percent_encode(value, SET).to_string()
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;

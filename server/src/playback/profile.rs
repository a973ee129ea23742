//! The client's `DeviceProfile` as Jellyfin clients send it in `PlaybackInfo` (jellyfin-web's
//! `browserDeviceProfile.js`, the Android TV app's `deviceProfile.kt`), and the evaluation of
//! its `ProfileCondition`s against a stream.
//!
//! Parsing is lenient like ASP.NET's (numbers may be strings, unknown keys and unknown enum
//! names are kept as text and simply never match), so no profile a client sends is refused.
//! Pure: no I/O.

use serde::Deserialize;

/// `DeviceProfile`: what a client plays as it is and what it wants instead.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceProfile {
    /// Upper limit of the stream's total bitrate (bits/s).
    pub max_streaming_bitrate: Option<i64>,
    /// Containers and codecs played as they are.
    pub direct_play_profiles: Option<Vec<DirectPlayProfile>>,
    /// What to transcode or remux to, in the client's order of preference.
    pub transcoding_profiles: Option<Vec<TranscodingProfile>>,
    /// Conditions on a whole container.
    pub container_profiles: Option<Vec<ContainerProfile>>,
    /// Conditions on a codec (profile, level, size, channels...).
    pub codec_profiles: Option<Vec<CodecProfile>>,
    /// How the client shows subtitles of each format.
    pub subtitle_profiles: Option<Vec<SubtitleProfile>>,
}

impl DeviceProfile {
    /// The direct play profiles (none when the client sent none).
    pub fn direct_play(&self) -> &[DirectPlayProfile] {
        self.direct_play_profiles.as_deref().unwrap_or_default()
    }

    /// The transcoding profiles.
    pub fn transcoding(&self) -> &[TranscodingProfile] {
        self.transcoding_profiles.as_deref().unwrap_or_default()
    }

    /// The container profiles.
    pub fn containers(&self) -> &[ContainerProfile] {
        self.container_profiles.as_deref().unwrap_or_default()
    }

    /// The codec profiles.
    pub fn codecs(&self) -> &[CodecProfile] {
        self.codec_profiles.as_deref().unwrap_or_default()
    }

    /// The subtitle profiles.
    pub fn subtitles(&self) -> &[SubtitleProfile] {
        self.subtitle_profiles.as_deref().unwrap_or_default()
    }
}

/// `DirectPlayProfile`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DirectPlayProfile {
    /// Comma-separated containers; empty = any.
    pub container: Option<String>,
    /// Comma-separated video codecs; empty = any.
    pub video_codec: Option<String>,
    /// Comma-separated audio codecs; empty = any.
    pub audio_codec: Option<String>,
    /// `Video`, `Audio`, `Photo`.
    #[serde(rename = "Type")]
    pub kind: Option<String>,
}

/// `TranscodingProfile`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TranscodingProfile {
    /// Output container (`ts`, `mp4`).
    pub container: Option<String>,
    /// `Video` or `Audio`.
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// Codecs the client accepts in the output, the first being the one to encode to.
    pub video_codec: Option<String>,
    /// Likewise for audio.
    pub audio_codec: Option<String>,
    /// `hls` or `http`.
    pub protocol: Option<String>,
    /// `Streaming` (default) or `Static`.
    pub context: Option<String>,
    /// Most audio channels the output may carry.
    pub max_audio_channels: Option<i64>,
    /// Segments a player wants before it starts.
    pub min_segments: Option<i64>,
    /// Segment length the client asks for (seconds).
    pub segment_length: Option<i64>,
    /// Whether cuts may fall between keyframes.
    pub break_on_non_key_frames: Option<bool>,
    /// Keep source timestamps.
    pub copy_timestamps: Option<bool>,
    /// List text subtitles in the HLS manifest.
    pub enable_subtitles_in_manifest: Option<bool>,
    /// Limits applied to the output.
    pub conditions: Option<Vec<ProfileCondition>>,
}

/// `ContainerProfile`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerProfile {
    /// `Video`, `Audio`.
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// Comma-separated containers; empty = any.
    pub container: Option<String>,
    /// Conditions every stream in such a container must meet.
    pub conditions: Option<Vec<ProfileCondition>>,
}

/// `CodecProfile`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CodecProfile {
    /// `Video`, `VideoAudio` (audio inside a video) or `Audio`.
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    /// Comma-separated codecs; empty = any.
    pub codec: Option<String>,
    /// Comma-separated containers; empty = any.
    pub container: Option<String>,
    /// For `Container: hls`, the segment container it applies to.
    pub sub_container: Option<String>,
    /// Conditions the stream must meet.
    pub conditions: Option<Vec<ProfileCondition>>,
    /// The profile applies only to streams meeting all of these.
    pub apply_conditions: Option<Vec<ProfileCondition>>,
}

impl CodecProfile {
    /// Whether the profile is about `codec` in `container`.
    pub fn applies_to(&self, codec: Option<&str>, container: &str) -> bool {
        list_contains(self.container.as_deref(), container)
            && codec.is_none_or(|c| list_contains(self.codec.as_deref(), c))
    }

    /// The conditions (none when absent).
    pub fn conditions(&self) -> &[ProfileCondition] {
        self.conditions.as_deref().unwrap_or_default()
    }

    /// The apply-conditions (none when absent).
    pub fn apply_conditions(&self) -> &[ProfileCondition] {
        self.apply_conditions.as_deref().unwrap_or_default()
    }
}

/// `ProfileCondition`: `Property` compared with `Value` by `Condition`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ProfileCondition {
    /// `Equals`, `NotEquals`, `LessThanEqual`, `GreaterThanEqual`, `EqualsAny`.
    pub condition: Option<String>,
    /// `Width`, `VideoLevel`, `AudioChannels`, ...
    pub property: Option<String>,
    /// The value compared with (`|`-separated for `EqualsAny`).
    pub value: Option<String>,
    /// When the stream's value is unknown: fail (true) or pass (false).
    pub is_required: Option<bool>,
}

/// `SubtitleProfile`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SubtitleProfile {
    /// Subtitle format (`vtt`, `srt`, `subrip`, `ass`, `pgssub`).
    pub format: Option<String>,
    /// `External`, `Embed`, `Hls`, `Encode`, `Drop`.
    pub method: Option<String>,
    /// Containers it applies to (for `Embed`); empty = any.
    pub container: Option<String>,
    /// Languages it applies to; empty = any.
    pub language: Option<String>,
}

impl SubtitleProfile {
    /// Whether the profile accepts a stream of `language`.
    pub fn supports_language(&self, language: Option<&str>) -> bool {
        match self.language.as_deref().map(str::trim) {
            None | Some("") => true,
            Some(list) => language.is_some_and(|l| list_contains(Some(list), l)),
        }
    }
}

/// Jellyfin's `ContainerHelper.ContainsContainer`: true when the comma-separated `list` names
/// `value` (without regard to case); an empty list accepts anything; a list starting with `-`
/// accepts everything it does not name. `value` may itself be a comma-separated list (any
/// entry matching is enough).
pub fn list_contains(list: Option<&str>, value: &str) -> bool {
    let list = list.map(str::trim).unwrap_or_default();
    if list.is_empty() {
        return true;
    }
    let (negative, list) = match list.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, list),
    };
    let named = value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .any(|v| {
            list.split(',')
                .map(str::trim)
                .any(|entry| entry.eq_ignore_ascii_case(v))
        });
    named != negative
}

/// The first entry of a comma-separated list, lowercased.
pub fn first_of(list: Option<&str>) -> Option<String> {
    list?
        .split(',')
        .map(str::trim)
        .find(|c| !c.is_empty())
        .map(str::to_ascii_lowercase)
}

/// The entries of a comma-separated list, lowercased, empty ones dropped.
pub fn split_list(list: Option<&str>) -> Vec<String> {
    list.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// A value of a stream property, as conditions compare it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Width, height, bit depth, channels, sample rate, bitrate, ...
    Int(i64),
    /// Level, frame rate.
    Float(f64),
    /// Profile, codec tag, range type.
    Text(String),
    /// Interlaced, anamorphic, secondary audio.
    Bool(bool),
}

/// Whether a stream whose property has `value` (`None` = unknown) meets `condition`.
/// Unknown values pass unless the condition is required, as in Jellyfin's
/// `ConditionProcessor`; a value that does not parse fails.
pub fn satisfied(condition: &ProfileCondition, value: Option<&Value>) -> bool {
    let Some(value) = value else {
        return !condition.is_required.unwrap_or(false);
    };
    let kind = condition.condition.as_deref().unwrap_or("Equals");
    let expected = condition.value.as_deref().unwrap_or_default().trim();
    let is = |name: &str| kind.eq_ignore_ascii_case(name);
    match value {
        Value::Text(actual) => {
            if is("EqualsAny") {
                expected
                    .split('|')
                    .any(|e| e.trim().eq_ignore_ascii_case(actual))
            } else if is("Equals") {
                expected.eq_ignore_ascii_case(actual)
            } else if is("NotEquals") {
                !expected.eq_ignore_ascii_case(actual)
            } else {
                false
            }
        }
        Value::Bool(actual) => match expected.to_ascii_lowercase().parse::<bool>() {
            Ok(e) if is("Equals") => *actual == e,
            Ok(e) if is("NotEquals") => *actual != e,
            _ => false,
        },
        Value::Int(actual) => compare(kind, expected, |e: i64| (*actual).cmp(&e)),
        Value::Float(actual) => compare(kind, expected, |e: f64| {
            actual.partial_cmp(&e).unwrap_or(std::cmp::Ordering::Less)
        }),
    }
}

fn compare<T: std::str::FromStr>(
    kind: &str,
    expected: &str,
    cmp: impl Fn(T) -> std::cmp::Ordering,
) -> bool {
    use std::cmp::Ordering::{Equal, Greater, Less};
    if kind.eq_ignore_ascii_case("EqualsAny") {
        return expected
            .split('|')
            .filter_map(|e| e.trim().parse::<T>().ok())
            .any(|e| cmp(e) == Equal);
    }
    let Ok(e) = expected.parse::<T>() else {
        return false;
    };
    let ordering = cmp(e);
    match kind.to_ascii_lowercase().as_str() {
        "equals" => ordering == Equal,
        "notequals" => ordering != Equal,
        "lessthanequal" => matches!(ordering, Less | Equal),
        "greaterthanequal" => matches!(ordering, Greater | Equal),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(kind: &str, property: &str, value: &str, required: bool) -> ProfileCondition {
        ProfileCondition {
            condition: Some(kind.to_owned()),
            property: Some(property.to_owned()),
            value: Some(value.to_owned()),
            is_required: Some(required),
        }
    }

    #[test]
    fn lists_match_without_regard_to_case_and_empty_lists_accept_all() {
        assert!(list_contains(Some("mp4,M4V"), "m4v"));
        assert!(list_contains(None, "mkv"));
        assert!(list_contains(Some(" "), "mkv"));
        assert!(!list_contains(Some("mp4"), "mkv"));
        assert!(list_contains(Some("mkv"), "mov,mkv"));
        assert!(list_contains(Some("-mkv,avi"), "mp4"));
        assert!(!list_contains(Some("-mkv,avi"), "mkv"));
    }

    #[test]
    fn numeric_conditions_compare_as_jellyfin_does() {
        let le = cond("LessThanEqual", "VideoLevel", "51", false);
        assert!(satisfied(&le, Some(&Value::Float(41.0))));
        assert!(satisfied(&le, Some(&Value::Float(51.0))));
        assert!(!satisfied(&le, Some(&Value::Float(52.0))));
        let ge = cond("GreaterThanEqual", "Width", "1200", false);
        assert!(satisfied(&ge, Some(&Value::Int(1920))));
        assert!(!satisfied(&ge, Some(&Value::Int(640))));
        let any = cond("EqualsAny", "AudioChannels", "1|2", false);
        assert!(satisfied(&any, Some(&Value::Int(2))));
        assert!(!satisfied(&any, Some(&Value::Int(6))));
        let ne = cond("NotEquals", "VideoBitDepth", "10", false);
        assert!(!satisfied(&ne, Some(&Value::Int(10))));
        assert!(satisfied(&ne, Some(&Value::Int(8))));
        let bad = cond("LessThanEqual", "Width", "wide", false);
        assert!(!satisfied(&bad, Some(&Value::Int(1))));
    }

    #[test]
    fn text_and_bool_conditions_ignore_case() {
        let profiles = cond("EqualsAny", "VideoProfile", "high|main|main 10", false);
        assert!(satisfied(&profiles, Some(&Value::Text("Main 10".into()))));
        assert!(!satisfied(
            &profiles,
            Some(&Value::Text("High 4:4:4".into()))
        ));
        let range = cond("Equals", "VideoRangeType", "SDR", false);
        assert!(satisfied(&range, Some(&Value::Text("sdr".into()))));
        let interlaced = cond("NotEquals", "IsInterlaced", "true", false);
        assert!(satisfied(&interlaced, Some(&Value::Bool(false))));
        assert!(!satisfied(&interlaced, Some(&Value::Bool(true))));
        let unknown_kind = cond("Matches", "VideoProfile", "high", false);
        assert!(!satisfied(&unknown_kind, Some(&Value::Text("high".into()))));
    }

    #[test]
    fn unknown_values_pass_unless_required() {
        let optional = cond("LessThanEqual", "RefFrames", "4", false);
        assert!(satisfied(&optional, None));
        let required = cond("EqualsAny", "VideoCodecTag", "hvc1|dvh1", true);
        assert!(!satisfied(&required, None));
    }

    #[test]
    fn a_profile_with_strings_for_numbers_and_nulls_parses() {
        let json = serde_json::json!({
            "MaxStreamingBitrate": "8000000",
            "DirectPlayProfiles": null,
            "TranscodingProfiles": [{"Container": "ts", "Type": "Video", "MaxAudioChannels": "6",
                                     "MinSegments": 2, "BreakOnNonKeyFrames": "True"}],
            "SubtitleProfiles": [{"Format": "vtt", "Method": "External"}],
            "Unknown": {"x": 1}
        });
        let profile: DeviceProfile = crate::jf::from_value(json).expect("lenient parse");
        assert_eq!(profile.max_streaming_bitrate, Some(8_000_000));
        assert!(profile.direct_play().is_empty());
        let t = &profile.transcoding()[0];
        assert_eq!(t.max_audio_channels, Some(6));
        assert_eq!(t.min_segments, Some(2));
        assert_eq!(t.break_on_non_key_frames, Some(true));
        assert_eq!(profile.subtitles().len(), 1);
    }
}

//! The decision against the profiles real clients send (fixtures in `fixtures/`, written from
//! what jellyfin-web on Chrome, Firefox and Safari and the Android TV app send).

use super::*;

fn profile(name: &str) -> DeviceProfile {
    let json = match name {
        "chrome" => include_str!("fixtures/chrome.json"),
        "firefox" => include_str!("fixtures/firefox.json"),
        "safari" => include_str!("fixtures/safari.json"),
        "androidtv" => include_str!("fixtures/androidtv.json"),
        other => panic!("no fixture {other}"),
    };
    let value: serde_json::Value = serde_json::from_str(json).expect("fixture is JSON");
    crate::jf::from_value(value).expect("fixture is a DeviceProfile")
}

fn video(index: i64, codec: &str, profile: &str, level: i64) -> StreamInfo {
    StreamInfo {
        index,
        kind: StreamKind::Video,
        codec: Some(codec.to_owned()),
        profile: Some(profile.to_owned()),
        level: Some(level),
        width: Some(1920),
        height: Some(1080),
        frame_rate: Some(23.976),
        pixel_format: Some("yuv420p".to_owned()),
        bit_rate: Some(4_000_000),
        is_default: true,
        ..StreamInfo::default()
    }
}

fn audio(index: i64, codec: &str, channels: i64) -> StreamInfo {
    StreamInfo {
        index,
        kind: StreamKind::Audio,
        codec: Some(codec.to_owned()),
        channels: Some(channels),
        sample_rate: Some(48_000),
        bit_rate: Some(if channels > 2 { 448_000 } else { 128_000 }),
        language: Some("eng".to_owned()),
        is_default: index == 1,
        ..StreamInfo::default()
    }
}

fn subtitle(index: i64, codec: &str, external: bool) -> StreamInfo {
    StreamInfo {
        index,
        kind: StreamKind::Subtitle,
        codec: Some(codec.to_owned()),
        language: Some("eng".to_owned()),
        is_external: external,
        ..StreamInfo::default()
    }
}

fn h264_aac() -> Vec<StreamInfo> {
    vec![video(0, "h264", "High", 40), audio(1, "aac", 2)]
}

fn hevc_ac3() -> Vec<StreamInfo> {
    vec![video(0, "hevc", "Main", 120), audio(1, "ac3", 6)]
}

fn source<'a>(container: &'a str, streams: &'a [StreamInfo]) -> Source<'a> {
    Source {
        container,
        bitrate: Some(4_500_000),
        streams,
        default_audio_index: streams
            .iter()
            .find(|s| s.kind == StreamKind::Audio)
            .map(|s| s.index),
        default_subtitle_index: None,
    }
}

fn with(profile: &DeviceProfile) -> Options<'_> {
    Options {
        profile: Some(profile),
        max_bitrate: profile.max_streaming_bitrate,
        ..Options::default()
    }
}

fn url(decision: &Decision) -> String {
    let plan = decision.transcode.as_ref().expect("a transcode plan");
    plan.url(
        UrlParts {
            item_id: "0123456789abcdef0123456789abcdef",
            media_source_id: "0123456789abcdef0123456789abcdef",
            device_id: "dev 1",
            play_session_id: "5e55",
            token: Some("tok"),
            start_time_ticks: None,
        },
        decision.reasons,
    )
}

fn query(url: &str, key: &str) -> Option<String> {
    let (_, q) = url.split_once('?')?;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
}

#[test]
fn chrome_plays_an_h264_aac_mp4_directly_without_a_transcoding_plan() {
    let chrome = profile("chrome");
    let streams = h264_aac();
    let d = decide(source("mp4", &streams), with(&chrome));
    assert_eq!(d.method, Some(PlayMethod::DirectPlay));
    assert!(d.supports_direct_play && d.supports_direct_stream && d.supports_transcoding);
    assert!(d.reasons.is_empty());
    assert_eq!(d.transcode, None);
    assert_eq!(d.audio_stream_index, Some(1));
}

#[test]
fn chrome_remuxes_hevc_ac3_in_matroska_copying_the_video_into_fmp4() {
    let chrome = profile("chrome");
    let streams = hevc_ac3();
    let d = decide(source("mkv", &streams), with(&chrome));
    assert_eq!(d.method, Some(PlayMethod::DirectStream));
    assert!(!d.supports_direct_play && !d.supports_direct_stream && d.supports_transcoding);
    assert_eq!(
        d.reasons.names(),
        ["ContainerNotSupported", "AudioCodecNotSupported"]
    );
    let plan = d.transcode.as_ref().unwrap();
    assert_eq!((plan.protocol, plan.container.as_str()), ("hls", "mp4"));
    assert!(plan.copy_video && !plan.copy_audio);
    assert_eq!(plan.video_codecs, ["h264", "av1", "hevc", "vp9"]);
    assert_eq!(plan.audio_codecs[0], "aac");
    assert_eq!(plan.max_audio_channels, 2);
    let url = url(&d);
    assert_eq!(query(&url, "AllowVideoStreamCopy").as_deref(), Some("true"));
    assert_eq!(
        query(&url, "AllowAudioStreamCopy").as_deref(),
        Some("false")
    );
    assert_eq!(query(&url, "SegmentContainer").as_deref(), Some("mp4"));
}

#[test]
fn chrome_remuxes_an_h264_matroska_with_both_streams_copied() {
    let chrome = profile("chrome");
    let streams = h264_aac();
    let d = decide(source("mkv", &streams), with(&chrome));
    assert_eq!(d.method, Some(PlayMethod::DirectStream));
    assert_eq!(d.reasons.names(), ["ContainerNotSupported"]);
    let plan = d.transcode.as_ref().unwrap();
    assert!(plan.copy_video && plan.copy_audio);
    assert_eq!(plan.audio_codecs, ["aac"]);
}

#[test]
fn firefox_transcodes_hevc_to_h264() {
    let firefox = profile("firefox");
    let streams = hevc_ac3();
    let d = decide(source("mkv", &streams), with(&firefox));
    assert_eq!(d.method, Some(PlayMethod::Transcode));
    assert!(d.reasons.any(Reasons::VideoCodecNotSupported), "{d:?}");
    let plan = d.transcode.as_ref().unwrap();
    assert!(!plan.copy_video);
    assert_eq!(plan.video_codecs[0], "h264", "H.264 is what gets encoded");
    assert_eq!(plan.container, "mp4");
    let url = url(&d);
    assert!(
        query(&url, "TranscodeReasons")
            .unwrap()
            .contains("VideoCodecNotSupported")
    );
    assert_eq!(
        query(&url, "AllowVideoStreamCopy").as_deref(),
        Some("false")
    );
}

#[test]
fn firefox_downmixes_six_channel_aac_but_copies_the_video() {
    let firefox = profile("firefox");
    let streams = vec![video(0, "h264", "High", 40), audio(1, "aac", 6)];
    let d = decide(source("mp4", &streams), with(&firefox));
    assert_eq!(d.method, Some(PlayMethod::DirectStream));
    assert_eq!(d.reasons.names(), ["AudioChannelsNotSupported"]);
    let plan = d.transcode.as_ref().unwrap();
    assert!(plan.copy_video && !plan.copy_audio);
}

#[test]
fn a_ten_bit_h264_profile_the_client_lacks_is_transcoded() {
    let firefox = profile("firefox");
    let mut streams = h264_aac();
    streams[0].profile = Some("High 10".to_owned());
    streams[0].pixel_format = Some("yuv420p10le".to_owned());
    let d = decide(source("mp4", &streams), with(&firefox));
    assert_eq!(d.method, Some(PlayMethod::Transcode));
    assert_eq!(d.reasons.names(), ["VideoProfileNotSupported"]);
    // Chrome lists "high 10".
    let chrome = profile("chrome");
    let d = decide(source("mp4", &streams), with(&chrome));
    assert_eq!(d.method, Some(PlayMethod::DirectPlay));
}

#[test]
fn safari_needs_the_hvc1_tag_it_cannot_be_told_so_hevc_is_transcoded() {
    let safari = profile("safari");
    let streams = vec![video(0, "hevc", "Main", 120), audio(1, "aac", 2)];
    let d = decide(source("mp4", &streams), with(&safari));
    assert_eq!(d.reasons.names(), ["VideoCodecTagNotSupported"]);
    assert_eq!(d.method, Some(PlayMethod::Transcode));
    let d = decide(source("mp4", &h264_aac()), with(&safari));
    assert_eq!(d.method, Some(PlayMethod::DirectPlay));
}

#[test]
fn android_tv_plays_hevc_ac3_matroska_directly() {
    let tv = profile("androidtv");
    let streams = hevc_ac3();
    let d = decide(source("mkv", &streams), with(&tv));
    assert_eq!(d.method, Some(PlayMethod::DirectPlay));
    assert_eq!(d.transcode, None);
}

#[test]
fn android_tv_transcodes_an_h264_level_above_its_limit_to_ts() {
    let tv = profile("androidtv");
    let mut streams = h264_aac();
    streams[0].level = Some(52);
    let d = decide(source("mkv", &streams), with(&tv));
    assert_eq!(d.reasons.names(), ["VideoLevelNotSupported"]);
    assert_eq!(d.method, Some(PlayMethod::Transcode));
    let plan = d.transcode.as_ref().unwrap();
    assert_eq!(plan.container, "ts", "the TV app lists TS first");
    assert!(plan.enable_subtitles_in_manifest);
    assert!(!plan.copy_video && plan.copy_audio);
}

#[test]
fn apply_conditions_limit_a_codec_profile_to_the_streams_they_match() {
    let mut tv = profile("androidtv");
    // Only wide videos must be at most 1280 wide: a contradiction that must hit 1920 wide.
    tv.codec_profiles.as_mut().unwrap().push(CodecProfile {
        kind: Some("Video".into()),
        codec: Some("h264".into()),
        apply_conditions: Some(vec![ProfileCondition {
            condition: Some("GreaterThanEqual".into()),
            property: Some("Width".into()),
            value: Some("1900".into()),
            is_required: Some(false),
        }]),
        conditions: Some(vec![ProfileCondition {
            condition: Some("LessThanEqual".into()),
            property: Some("Width".into()),
            value: Some("1280".into()),
            is_required: Some(false),
        }]),
        ..CodecProfile::default()
    });
    let streams = h264_aac();
    let d = decide(source("mkv", &streams), with(&tv));
    assert_eq!(d.reasons.names(), ["VideoResolutionNotSupported"]);
    let plan = d.transcode.as_ref().unwrap();
    assert_eq!(
        plan.max_width,
        Some(1280),
        "the limit reaches the transcoder"
    );
    assert!(!plan.copy_video);
    let mut small = h264_aac();
    small[0].width = Some(1280);
    small[0].height = Some(720);
    let d = decide(source("mkv", &small), with(&tv));
    assert_eq!(d.method, Some(PlayMethod::DirectPlay), "{d:?}");
}

#[test]
fn container_profiles_and_interlacing_give_their_reasons() {
    let mut chrome = profile("chrome");
    chrome.container_profiles = Some(vec![super::super::profile::ContainerProfile {
        kind: Some("Video".into()),
        container: Some("mp4".into()),
        conditions: Some(vec![ProfileCondition {
            condition: Some("LessThanEqual".into()),
            property: Some("NumStreams".into()),
            value: Some("1".into()),
            is_required: Some(false),
        }]),
    }]);
    let mut streams = h264_aac();
    streams[0].is_interlaced = true;
    let d = decide(source("mp4", &streams), with(&chrome));
    assert_eq!(
        d.reasons.names(),
        ["InterlacedVideoNotSupported", "StreamCountExceedsLimit"]
    );
    assert_eq!(d.method, Some(PlayMethod::Transcode));
}

#[test]
fn a_secondary_audio_track_is_not_played_directly_by_chrome() {
    let chrome = profile("chrome");
    let streams = vec![
        video(0, "h264", "High", 40),
        audio(1, "aac", 2),
        audio(2, "aac", 2),
    ];
    let options = Options {
        audio_stream_index: Some(2),
        ..with(&chrome)
    };
    let d = decide(source("mp4", &streams), options);
    assert_eq!(d.reasons.names(), ["SecondaryAudioNotSupported"]);
    assert_eq!(d.method, Some(PlayMethod::DirectStream));
    assert_eq!(d.audio_stream_index, Some(2));
    assert_eq!(
        query(&url(&d), "AudioStreamIndex").as_deref(),
        Some("2"),
        "the chosen track reaches the transcoder"
    );
}

#[test]
fn a_source_above_the_bitrate_limit_is_transcoded_to_fit() {
    let chrome = profile("chrome");
    let streams = h264_aac();
    let mut src = source("mp4", &streams);
    src.bitrate = Some(9_000_000);
    let options = Options {
        max_bitrate: Some(1_000_000),
        ..with(&chrome)
    };
    let d = decide(src, options);
    assert_eq!(d.reasons.names(), ["ContainerBitrateExceedsLimit"]);
    assert_eq!(d.method, Some(PlayMethod::Transcode));
    let plan = d.transcode.as_ref().unwrap();
    assert!(!plan.copy_video && !plan.copy_audio);
    assert_eq!(plan.audio_bitrate, 128_000);
    assert_eq!(plan.video_bitrate, 1_000_000 - 128_000);
    // An unknown bitrate counts as 40 Mb/s, as in Jellyfin.
    src.bitrate = None;
    let options = Options {
        max_bitrate: Some(20_000_000),
        ..with(&chrome)
    };
    assert_eq!(
        decide(src, options).reasons.names(),
        ["ContainerBitrateExceedsLimit"]
    );
}

#[test]
fn the_request_flags_turn_methods_off() {
    let chrome = profile("chrome");
    let streams = h264_aac();
    let src = source("mp4", &streams);
    let no_direct = Options {
        enable_direct_play: false,
        ..with(&chrome)
    };
    let d = decide(src, no_direct);
    assert_eq!(d.method, Some(PlayMethod::DirectStream));
    assert!(!d.supports_direct_play && d.transcode.is_some());

    let no_copy = Options {
        enable_direct_play: false,
        allow_video_copy: false,
        allow_audio_copy: false,
        ..with(&chrome)
    };
    let d = decide(src, no_copy);
    assert_eq!(d.method, Some(PlayMethod::Transcode));
    let plan = d.transcode.as_ref().unwrap();
    assert!(!plan.copy_video && !plan.copy_audio);

    let no_transcode = Options {
        enable_transcoding: false,
        ..with(&chrome)
    };
    let hevc = hevc_ac3();
    let d = decide(source("mkv", &hevc), no_transcode);
    assert_eq!(d.method, None);
    assert!(!d.supports_direct_play && !d.supports_transcoding && d.transcode.is_none());

    let no_direct_stream = Options {
        enable_direct_stream: false,
        ..with(&chrome)
    };
    let d = decide(src, no_direct_stream);
    assert!(d.supports_direct_play && !d.supports_direct_stream);
}

#[test]
fn a_profile_without_transcoding_profiles_cannot_transcode() {
    let mut chrome = profile("chrome");
    chrome.transcoding_profiles = None;
    let streams = hevc_ac3();
    let d = decide(source("mkv", &streams), with(&chrome));
    assert_eq!(d.method, None);
    assert!(!d.supports_transcoding);
    assert!(d.reasons.any(Reasons::ContainerNotSupported));
}

#[test]
fn no_profile_plays_directly_unless_over_the_limit() {
    let streams = hevc_ac3();
    let d = decide(source("mkv", &streams), Options::default());
    assert_eq!(d.method, Some(PlayMethod::DirectPlay));
    let options = Options {
        max_bitrate: Some(1_000_000),
        ..Options::default()
    };
    let d = decide(source("mkv", &streams), options);
    assert_eq!(d.method, Some(PlayMethod::Transcode));
    let plan = d.transcode.as_ref().unwrap();
    assert_eq!((plan.container.as_str(), plan.protocol), ("ts", "hls"));
}

#[test]
fn a_profile_with_no_video_direct_play_entry_says_direct_play_error() {
    let mut chrome = profile("chrome");
    chrome.direct_play_profiles = Some(Vec::new());
    let streams = h264_aac();
    let d = decide(source("mp4", &streams), with(&chrome));
    assert_eq!(d.reasons.names(), ["DirectPlayError"]);
}

#[test]
fn the_best_failing_profile_names_the_reasons() {
    // mp4 matches the container but not the codec: the webm profile's container failure is
    // not reported.
    let chrome = profile("chrome");
    let streams = vec![video(0, "mpeg4", "Simple", 3), audio(1, "aac", 2)];
    let d = decide(source("mp4", &streams), with(&chrome));
    assert_eq!(d.reasons.names(), ["VideoCodecNotSupported"]);
}

#[test]
fn text_subtitles_are_external_for_browsers_converted_to_vtt_unless_ass() {
    let chrome = profile("chrome");
    let streams = vec![
        video(0, "h264", "High", 40),
        audio(1, "aac", 2),
        subtitle(2, "subrip", false),
        subtitle(3, "hdmv_pgs_subtitle", false),
        subtitle(4, "subrip", true),
        subtitle(5, "ass", true),
        subtitle(6, "webvtt", true),
    ];
    let d = decide(source("mp4", &streams), with(&chrome));
    assert_eq!(d.method, Some(PlayMethod::DirectPlay));
    let by_index = |i: i64| d.subtitles.iter().find(|s| s.index == i).unwrap().clone();
    assert_eq!(
        (by_index(2).method, by_index(2).format.as_str()),
        (SubtitleMethod::External, "vtt")
    );
    assert_eq!(by_index(3).method, SubtitleMethod::Encode);
    assert_eq!(by_index(4).format, "vtt");
    assert_eq!(
        (by_index(5).method, by_index(5).format.as_str()),
        (SubtitleMethod::External, "ass")
    );
    assert_eq!(by_index(6).method, SubtitleMethod::External);
}

#[test]
fn an_image_subtitle_a_profile_names_as_jellyfin_does_is_embedded_not_burned_in() {
    // Android players show PGS themselves and say so as Jellyfin names it (`pgssub`), where
    // ffprobe says `hdmv_pgs_subtitle`: the names must meet, or every film with Blu-ray
    // subtitles would be transcoded for nothing.
    let mut tv = profile("androidtv");
    tv.subtitle_profiles = Some(
        crate::jf::from_value(serde_json::json!([
            { "Format": "pgssub", "Method": "Embed" },
            { "Format": "dvdsub", "Method": "Embed" },
        ]))
        .expect("subtitle profiles"),
    );
    let streams = vec![
        video(0, "h264", "High", 40),
        audio(1, "aac", 2),
        subtitle(2, "hdmv_pgs_subtitle", false),
        subtitle(3, "dvd_subtitle", false),
    ];
    for index in [2, 3] {
        let options = Options {
            subtitle_stream_index: Some(index),
            ..with(&tv)
        };
        let d = decide(source("mkv", &streams), options);
        assert_eq!(d.method, Some(PlayMethod::DirectPlay), "stream {index}");
        let chosen = d.subtitles.iter().find(|s| s.index == index).unwrap();
        assert_eq!(chosen.method, SubtitleMethod::Embed, "stream {index}");
    }
}

#[test]
fn choosing_an_image_subtitle_the_client_cannot_show_burns_it_in() {
    let chrome = profile("chrome");
    let streams = vec![
        video(0, "h264", "High", 40),
        audio(1, "aac", 2),
        subtitle(2, "hdmv_pgs_subtitle", false),
    ];
    let options = Options {
        subtitle_stream_index: Some(2),
        ..with(&chrome)
    };
    let d = decide(source("mp4", &streams), options);
    assert_eq!(d.reasons.names(), ["SubtitleCodecNotSupported"]);
    assert_eq!(d.method, Some(PlayMethod::Transcode));
    let plan = d.transcode.as_ref().unwrap();
    assert_eq!(plan.subtitle, Some((2, SubtitleMethod::Encode)));
    assert!(!plan.copy_video, "burning in re-encodes the video");
    let url = url(&d);
    assert_eq!(query(&url, "SubtitleStreamIndex").as_deref(), Some("2"));
    assert_eq!(query(&url, "SubtitleMethod").as_deref(), Some("Encode"));
    assert_eq!(d.subtitle_stream_index, Some(2));
    // Subtitles off: plays directly.
    let options = Options {
        subtitle_stream_index: Some(-1),
        ..with(&chrome)
    };
    let d = decide(source("mp4", &streams), options);
    assert_eq!(d.method, Some(PlayMethod::DirectPlay));
    assert_eq!(d.subtitle_stream_index, None);
}

#[test]
fn a_client_with_an_hls_subtitle_profile_gets_them_in_the_manifest_when_transcoding() {
    let mut firefox = profile("firefox");
    firefox.subtitle_profiles = Some(vec![SubtitleProfile {
        format: Some("vtt".into()),
        method: Some("Hls".into()),
        ..SubtitleProfile::default()
    }]);
    let streams = vec![
        video(0, "hevc", "Main", 120),
        audio(1, "aac", 2),
        subtitle(2, "subrip", true),
    ];
    let options = Options {
        subtitle_stream_index: Some(2),
        ..with(&firefox)
    };
    let d = decide(source("mkv", &streams), options);
    assert_eq!(d.method, Some(PlayMethod::Transcode));
    assert_eq!(d.subtitles[0].method, SubtitleMethod::Hls);
    let plan = d.transcode.as_ref().unwrap();
    assert_eq!(plan.subtitle, Some((2, SubtitleMethod::Hls)));
    let url = url(&d);
    assert_eq!(query(&url, "SubtitleMethod").as_deref(), Some("Hls"));
    // Burn-in asked for: Encode instead.
    let options = Options {
        subtitle_stream_index: Some(2),
        always_burn_in: true,
        ..with(&firefox)
    };
    let d = decide(source("mkv", &streams), options);
    assert_eq!(
        d.transcode.as_ref().unwrap().subtitle,
        Some((2, SubtitleMethod::Encode))
    );
}

#[test]
fn android_tv_gets_embedded_subrip_in_matroska_and_burns_in_ass() {
    let tv = profile("androidtv");
    let streams = vec![
        video(0, "h264", "High", 40),
        audio(1, "aac", 2),
        subtitle(2, "subrip", false),
        subtitle(3, "ass", false),
        subtitle(4, "subrip", true),
    ];
    let d = decide(source("mkv", &streams), with(&tv));
    assert_eq!(d.method, Some(PlayMethod::DirectPlay));
    assert_eq!(d.subtitles[0].method, SubtitleMethod::Embed);
    assert_eq!(d.subtitles[1].method, SubtitleMethod::Encode);
    assert_eq!(
        (d.subtitles[2].method, d.subtitles[2].format.as_str()),
        (SubtitleMethod::External, "subrip")
    );
    // Choosing the ASS track forces a transcode that burns it in.
    let options = Options {
        subtitle_stream_index: Some(3),
        ..with(&tv)
    };
    let d = decide(source("mkv", &streams), options);
    assert_eq!(d.reasons.names(), ["SubtitleCodecNotSupported"]);
    assert_eq!(
        d.transcode.as_ref().unwrap().subtitle,
        Some((3, SubtitleMethod::Encode))
    );
}

#[test]
fn the_transcoding_url_has_every_key_the_hls_side_reads() {
    let chrome = profile("chrome");
    let streams = hevc_ac3();
    let d = decide(source("mkv", &streams), with(&chrome));
    let url = url(&d);
    assert!(
        url.starts_with("/videos/0123456789abcdef0123456789abcdef/master.m3u8?DeviceId=dev%201&"),
        "{url}"
    );
    for (key, value) in [
        ("MediaSourceId", "0123456789abcdef0123456789abcdef"),
        ("VideoCodec", "h264,av1,hevc,vp9"),
        // mp2 is not an fMP4 HLS audio codec (Jellyfin drops it too).
        ("AudioCodec", "aac,opus,flac"),
        ("AudioStreamIndex", "1"),
        ("MaxWidth", "1920"),
        ("MaxHeight", "1080"),
        ("MaxFramerate", "23.976"),
        ("SegmentContainer", "mp4"),
        ("MinSegments", "1"),
        ("BreakOnNonKeyFrames", "True"),
        ("PlaySessionId", "5e55"),
        ("ApiKey", "tok"),
        ("TranscodingMaxAudioChannels", "2"),
        ("RequireAvc", "false"),
        (
            "TranscodeReasons",
            "ContainerNotSupported,AudioCodecNotSupported",
        ),
    ] {
        assert_eq!(query(&url, key).as_deref(), Some(value), "{key} in {url}");
    }
    assert!(query(&url, "VideoBitrate").is_some() && query(&url, "AudioBitrate").is_some());
    assert_eq!(query(&url, "SubtitleStreamIndex"), None);
}

#[test]
fn a_progressive_profile_gets_a_stream_url() {
    let mut chrome = profile("chrome");
    chrome.transcoding_profiles = Some(vec![TranscodingProfile {
        container: Some("mkv".into()),
        kind: Some("Video".into()),
        video_codec: Some("h264".into()),
        audio_codec: Some("aac".into()),
        protocol: Some("http".into()),
        ..TranscodingProfile::default()
    }]);
    let streams = hevc_ac3();
    let d = decide(source("mkv", &streams), with(&chrome));
    let url = url(&d);
    assert!(
        url.starts_with("/videos/0123456789abcdef0123456789abcdef/stream.mkv?"),
        "{url}"
    );
    assert_eq!(query(&url, "SegmentContainer"), None);
}

#[test]
fn reason_names_come_in_bit_order() {
    let r = Reasons::AudioChannelsNotSupported
        | Reasons::ContainerNotSupported
        | Reasons::VideoRotationNotSupported;
    assert_eq!(
        r.names(),
        [
            "ContainerNotSupported",
            "AudioChannelsNotSupported",
            "VideoRotationNotSupported"
        ]
    );
    assert!(Reasons::VIDEO.any(Reasons::VideoLevelNotSupported));
    assert!(!Reasons::VIDEO.any(Reasons::AudioCodecNotSupported));
}

#[test]
fn text_and_image_subtitle_codecs_are_told_apart() {
    for text in ["subrip", "ass", "ssa", "webvtt", "mov_text", "srt", "vtt"] {
        assert!(is_text_subtitle_codec(Some(text)), "{text}");
    }
    for image in [
        "hdmv_pgs_subtitle",
        "dvd_subtitle",
        "dvb_subtitle",
        "pgssub",
    ] {
        assert!(!is_text_subtitle_codec(Some(image)), "{image}");
    }
    assert!(!is_text_subtitle_codec(None));
    assert_eq!(bit_depth(Some("yuv420p10le")), Some(10));
    assert_eq!(bit_depth(Some("yuv420p")), Some(8));
}

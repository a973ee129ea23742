//! Subtitles over real files: external `.srt`/`.ass` beside a film and a subrip stream inside
//! an HEVC + AC3 5.1 Matroska made with ffmpeg; listed in `MediaStreams` and `PlaybackInfo`,
//! converted by the subtitle routes (cues parsed back), shifted by start ticks, cut into the
//! HLS subtitle playlist, kept in step with the folder by rescans; and bad input.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, Result, ensure};
use http::StatusCode;
use serde_json::{Value, json};

use crate::library::Scanned;
use crate::support::Provider;

/// Three cues: 1-2 s, 5-6.5 s, 9-10 s.
pub const EN_SRT: &str = "1\n00:00:01,000 --> 00:00:02,000\nOne\n\n2\n00:00:05,000 --> 00:00:06,500\nTwo\n\n3\n00:00:09,000 --> 00:00:10,000\nThree\n";

const FR_ASS: &str = "[Script Info]\nScriptType: v4.00+\nPlayResX: 320\nPlayResY: 180\n\n\
[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n\
[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
Dialogue: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,Panneau\n\
Dialogue: 0,0:00:07.00,0:00:08.00,Default,,0,0,0,,Sortie\n";

/// The HEVC film's title.
pub const HEVC_FILM: &str = "Hevc Film";

/// Whether this ffmpeg can encode HEVC (else the "HEVC" film is MPEG-4 Part 2, which no
/// browser plays either).
fn has_libx265() -> bool {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("libx265"))
}

/// Adds to the sample library: subtitles beside Big Buck Test, and `Hevc Film.mkv`
/// (HEVC or MPEG-4 video, AC3 5.1, an embedded English subrip stream).
pub fn add_subtitle_media(media: &Path) -> Result<()> {
    let films = media.join("films");
    std::fs::write(films.join("Big Buck Test (2019).en.srt"), EN_SRT)?;
    std::fs::write(films.join("Big Buck Test (2019).fr.forced.ass"), FR_ASS)?;
    let srt = media.join("embedded.txt");
    std::fs::write(&srt, EN_SRT)?;
    let video = if has_libx265() {
        vec![
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-x265-params",
            "log-level=none",
        ]
    } else {
        vec!["-c:v", "mpeg4"]
    };
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=24",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-f", "srt", "-i"])
        .arg(&srt)
        .args(["-map", "0:v", "-map", "1:a", "-map", "2:s", "-t", "12"])
        .args(video)
        .args([
            "-c:a",
            "ac3",
            "-ac",
            "6",
            "-c:s",
            "srt",
            "-metadata:s:s:0",
            "language=eng",
        ])
        .arg(films.join("Hevc Film.mkv"))
        .status()
        .context("run ffmpeg")?;
    ensure!(status.success(), "ffmpeg could not make the HEVC film");
    std::fs::remove_file(srt)?;
    Ok(())
}

/// The sample library with [`add_subtitle_media`], scanned.
pub async fn with_subtitle_media(provider: Provider) -> Result<Scanned> {
    Scanned::prepared(provider, add_subtitle_media).await
}

/// Chrome's profile as jellyfin-web sends it (trimmed to what decides subtitles and video).
pub fn chrome_profile() -> Value {
    json!({
        "MaxStreamingBitrate": 120000000,
        "DirectPlayProfiles": [
            {"Container": "webm", "Type": "Video", "VideoCodec": "vp8,vp9,av1", "AudioCodec": "vorbis,opus"},
            {"Container": "mp4,m4v", "Type": "Video", "VideoCodec": "h264,hevc,vp9,av1", "AudioCodec": "aac,mp3,mp2,opus,flac,vorbis"}
        ],
        "TranscodingProfiles": [
            {"Container": "mp4", "Type": "Video", "AudioCodec": "aac,mp2,opus,flac", "VideoCodec": "av1,hevc,h264,vp9", "Context": "Streaming", "Protocol": "hls", "MaxAudioChannels": "2", "MinSegments": "1", "BreakOnNonKeyFrames": true},
            {"Container": "ts", "Type": "Video", "AudioCodec": "aac,mp3,mp2", "VideoCodec": "h264", "Context": "Streaming", "Protocol": "hls", "MaxAudioChannels": "2", "MinSegments": "1", "BreakOnNonKeyFrames": true}
        ],
        "CodecProfiles": [
            {"Type": "Video", "Codec": "h264", "Conditions": [
                {"Condition": "EqualsAny", "Property": "VideoProfile", "Value": "high|main|baseline|constrained baseline|high 10", "IsRequired": false},
                {"Condition": "LessThanEqual", "Property": "VideoLevel", "Value": "52", "IsRequired": false}]},
            {"Type": "Video", "Codec": "hevc", "Conditions": [
                {"Condition": "EqualsAny", "Property": "VideoProfile", "Value": "main|main 10", "IsRequired": false},
                {"Condition": "LessThanEqual", "Property": "VideoLevel", "Value": "183", "IsRequired": false}]}
        ],
        "SubtitleProfiles": [
            {"Format": "vtt", "Method": "External"},
            {"Format": "ass", "Method": "External"},
            {"Format": "ssa", "Method": "External"}
        ]
    })
}

/// `PlaybackInfo` with Chrome's profile.
pub async fn playback_info(lib: &Scanned, id: &str, extra: Value) -> Result<Value> {
    let mut body = json!({"UserId": lib.user_id(), "DeviceProfile": chrome_profile()});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let reply = lib
        .server
        .post(
            &format!("/Items/{id}/PlaybackInfo"),
            Some(&lib.auth),
            Some(body),
        )
        .await?;
    ensure!(reply.status == StatusCode::OK, "{reply:?}");
    reply.json()
}

fn subtitle_streams(source: &Value) -> Vec<Value> {
    source["MediaStreams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["Type"] == "Subtitle")
        .cloned()
        .collect()
}

/// (start, end) in seconds of every cue of a WebVTT or SRT text.
fn cues(text: &str) -> Vec<(f64, f64)> {
    let seconds = |t: &str| -> Option<f64> {
        let t = t.trim().replace(',', ".");
        let parts: Vec<&str> = t.split(':').collect();
        let mut total = 0.0;
        for p in &parts {
            total = total * 60.0 + p.parse::<f64>().ok()?;
        }
        Some(total)
    };
    text.lines()
        .filter_map(|l| l.split_once("-->"))
        .filter_map(|(a, b)| Some((seconds(a)?, seconds(b.split_whitespace().next()?)?)))
        .collect()
}

/// Cue times equal within 20 ms: muxing the subrip stream next to AC3 shifts the whole
/// Matroska timeline by a few milliseconds, and extraction keeps the file's own times.
fn assert_cues_near(actual: &[(f64, f64)], expected: &[(f64, f64)]) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a.0 - e.0).abs() < 0.02 && (a.1 - e.1).abs() < 0.02,
            "{actual:?} vs {expected:?}"
        );
    }
}

async fn text(lib: &Scanned, uri: &str) -> Result<(String, String)> {
    let reply = lib.get(uri).await?;
    ensure!(reply.status == StatusCode::OK, "GET {uri}: {reply:?}");
    let content_type = reply
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((String::from_utf8(reply.body.to_vec())?, content_type))
}

crate::with_library_on_both_providers! {
    fixture = with_subtitle_media;
    async fn external_subtitles_are_listed_after_the_files_streams_with_their_flags(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let item = lib.json(&format!("/Users/{}/Items/{id}", lib.user_id())).await?;
        let subs = subtitle_streams(&item);
        ensure!(subs.len() == 2, "{subs:?}");
        let embedded = item["MediaStreams"].as_array().unwrap().iter()
            .filter(|s| s["IsExternal"] == false).count() as i64;
        let en = &subs[0];
        assert_eq!(en["Index"], embedded, "externals come after the embedded streams");
        assert_eq!(en["Codec"], "subrip");
        assert_eq!(en["Language"], "eng");
        assert_eq!(en["IsExternal"], true);
        assert_eq!(en["IsTextSubtitleStream"], true);
        assert_eq!(en["SupportsExternalStream"], true);
        assert_eq!(en["IsForced"], false);
        assert_eq!(en["DisplayTitle"], "English - SUBRIP - External");
        assert!(en.get("Path").is_none(), "paths stay on the server");
        let fr = &subs[1];
        assert_eq!(fr["Index"], embedded + 1);
        assert_eq!(fr["Codec"], "ass");
        assert_eq!(fr["Language"], "fre");
        assert_eq!(fr["IsForced"], true);
        assert_eq!(fr["DisplayTitle"], "French - Forced - ASS - External");
        assert_eq!(item["HasSubtitles"], true);
        let source = &item["MediaSources"][0];
        assert_eq!(source["DefaultSubtitleStreamIndex"], embedded + 1, "the forced one");

        // PlaybackInfo: how a browser gets them.
        let info = playback_info(&lib, &id, json!({})).await?;
        let source = &info["MediaSources"][0];
        let subs = subtitle_streams(source);
        assert_eq!(subs[0]["DeliveryMethod"], "External");
        assert_eq!(
            subs[0]["DeliveryUrl"],
            format!("/Videos/{id}/{id}/Subtitles/{embedded}/0/Stream.vtt?ApiKey={}", lib.token)
        );
        assert_eq!(subs[1]["DeliveryMethod"], "External");
        assert!(subs[1]["DeliveryUrl"].as_str().unwrap().contains(&format!("/Subtitles/{}/0/Stream.ass?", embedded + 1)));
        Ok(())
    }

    async fn an_external_srt_is_converted_to_vtt_and_srt_and_shifted_by_start_ticks(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let info = playback_info(&lib, &id, json!({})).await?;
        let subs = subtitle_streams(&info["MediaSources"][0]);
        let url = subs[0]["DeliveryUrl"].as_str().unwrap().to_owned();
        let index = subs[0]["Index"].as_i64().unwrap();
        let (vtt, content_type) = text(&lib, &url).await?;
        assert!(vtt.starts_with("WEBVTT"), "{vtt}");
        assert!(content_type.starts_with("text/vtt"), "{content_type}");
        assert_eq!(cues(&vtt), [(1.0, 2.0), (5.0, 6.5), (9.0, 10.0)]);

        let (srt, content_type) = text(&lib, &format!("/Videos/{id}/{id}/Subtitles/{index}/Stream.srt")).await?;
        assert!(content_type.starts_with("application/x-subrip"));
        assert_eq!(cues(&srt), [(1.0, 2.0), (5.0, 6.5), (9.0, 10.0)]);
        assert!(srt.starts_with("1\n"), "{srt}");

        // From 4 s: the first cue is dropped and the rest move 4 s earlier.
        let (vtt, _) = text(&lib, &format!("/Videos/{id}/{id}/Subtitles/{index}/40000000/Stream.vtt")).await?;
        assert_eq!(cues(&vtt), [(1.0, 2.5), (5.0, 6.0)]);
        let (vtt, _) = text(&lib, &format!(
            "/videos/{id}/{id}/subtitles/{index}/stream.vtt?StartPositionTicks=40000000&EndPositionTicks=80000000&CopyTimestamps=true&AddVttTimeMap=true"
        )).await?;
        assert_eq!(cues(&vtt), [(5.0, 6.5)], "{vtt}");
        assert!(vtt.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n"), "{vtt}");

        // The ASS file, as it is and as WebVTT.
        let fr = subs[1]["Index"].as_i64().unwrap();
        let (ass, content_type) = text(&lib, &format!("/Videos/{id}/{id}/Subtitles/{fr}/0/Stream.ass")).await?;
        assert!(content_type.starts_with("text/x-ssa"));
        assert!(ass.contains("Panneau") && ass.contains("[Events]"), "{ass}");
        let (vtt, _) = text(&lib, &format!("/Videos/{id}/{id}/Subtitles/{fr}/0/Stream.vtt")).await?;
        assert_eq!(cues(&vtt), [(2.0, 3.0), (7.0, 8.0)]);

        // `Stream.js`: what jellyfin-web's own renderer fetches (Jellyfin's JsonWriter shape).
        let (js, content_type) = text(&lib, &format!("/Videos/{id}/{id}/Subtitles/{index}/0/Stream.js")).await?;
        assert!(content_type.starts_with("application/json"), "{content_type}");
        let events: Value = serde_json::from_str(&js)?;
        let times: Vec<(i64, i64)> = events["TrackEvents"].as_array().unwrap().iter()
            .map(|e| (e["StartPositionTicks"].as_i64().unwrap(), e["EndPositionTicks"].as_i64().unwrap()))
            .collect();
        assert_eq!(times, [(10_000_000, 20_000_000), (50_000_000, 65_000_000), (90_000_000, 100_000_000)]);
        assert!(events["TrackEvents"][0]["Text"].as_str().is_some_and(|t| !t.is_empty()), "{js}");
        assert_eq!(events["TrackEvents"][0]["Id"], "1");
        Ok(())
    }

    async fn an_embedded_subrip_stream_is_extracted_once_and_converted(lib) {
        let id = lib.id_of(HEVC_FILM).await?;
        let item = lib.json(&format!("/Items/{id}")).await?;
        let subs = subtitle_streams(&item);
        ensure!(subs.len() == 1, "{subs:?}");
        assert_eq!(subs[0]["IsExternal"], false);
        assert_eq!(subs[0]["Codec"], "subrip");
        let index = subs[0]["Index"].as_i64().unwrap();
        let uri = format!("/Videos/{id}/{id}/Subtitles/{index}/0/Stream.vtt");
        let (vtt, _) = text(&lib, &uri).await?;
        assert_cues_near(&cues(&vtt), &[(1.0, 2.0), (5.0, 6.5), (9.0, 10.0)]);
        let cache = lib.server.state.config.transcode_dir().join("subtitles");
        let cached: Vec<_> = std::fs::read_dir(&cache)?.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&id)).collect();
        assert_eq!(cached.len(), 1, "one extraction cached");
        let (again, _) = text(&lib, &uri).await?;
        assert_eq!(again, vtt);

        // The HLS subtitle playlist over the 12 s film, in 5 s segments.
        let (m3u8, content_type) = text(&lib, &format!(
            "/Videos/{id}/{id}/Subtitles/{index}/subtitles.m3u8?SegmentLength=5&ApiKey={}", lib.token
        )).await?;
        assert!(content_type.starts_with("application/x-mpegURL"));
        let segments: Vec<&str> = m3u8.lines().filter(|l| l.starts_with("stream.vtt?")).collect();
        assert_eq!(segments.len(), 3, "{m3u8}");
        assert!(m3u8.ends_with("#EXT-X-ENDLIST\n"));
        // Each segment resolves against the playlist's folder and keeps source times.
        let second = format!("/Videos/{id}/{id}/Subtitles/{index}/{}", segments[1]);
        let (vtt, _) = text(&lib, &second).await?;
        assert!(vtt.contains("X-TIMESTAMP-MAP=MPEGTS:900000"));
        assert_cues_near(&cues(&vtt), &[(5.0, 6.5), (9.0, 10.0)]);
        Ok(())
    }

    async fn rescans_see_subtitle_files_added_and_removed_beside_an_unchanged_video(lib) {
        let id = lib.id_of("Tiny Planet").await?;
        let count = |item: &Value| subtitle_streams(item).len();
        assert_eq!(count(&lib.json(&format!("/Items/{id}")).await?), 0);
        let added = lib.films_dir.join("Tiny Planet (2021).de.sdh.srt");
        std::fs::write(&added, EN_SRT)?;
        let report = lib.rescan().await?;
        assert_eq!(report.probed, 0, "the video itself is unchanged");
        let item = lib.json(&format!("/Items/{id}")).await?;
        let subs = subtitle_streams(&item);
        assert_eq!(subs.len(), 1);
        assert_eq!(subs[0]["Language"], "ger");
        assert_eq!(subs[0]["IsHearingImpaired"], true);
        assert_eq!(subs[0]["DisplayTitle"], "German - Hearing Impaired - SUBRIP - External");
        std::fs::remove_file(&added)?;
        lib.rescan().await?;
        assert_eq!(count(&lib.json(&format!("/Items/{id}")).await?), 0);
        Ok(())
    }

    async fn bad_subtitle_requests_get_clear_errors(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let item = lib.json(&format!("/Items/{id}")).await?;
        let index = subtitle_streams(&item)[0]["Index"].as_i64().unwrap();
        lib.get(&format!("/Videos/{id}/{id}/Subtitles/99/0/Stream.vtt")).await?.assert_error(StatusCode::NOT_FOUND)?;
        lib.get(&format!("/Videos/{id}/{id}/Subtitles/0/0/Stream.vtt")).await?.assert_error(StatusCode::NOT_FOUND)?;
        let other = "0123456789abcdef0123456789abcdef";
        lib.get(&format!("/Videos/{id}/{other}/Subtitles/{index}/0/Stream.vtt")).await?.assert_error(StatusCode::NOT_FOUND)?;
        let reply = lib.get(&format!("/Videos/{id}/{id}/Subtitles/{index}/0/Stream.xyz")).await?;
        reply.assert_error(StatusCode::BAD_REQUEST)?;
        assert!(reply.json()?["Message"].as_str().unwrap().contains("xyz"));
        lib.get(&format!("/Videos/{id}/{id}/Subtitles/{index}/subtitles.m3u8?SegmentLength=0")).await?.assert_error(StatusCode::BAD_REQUEST)?;
        lib.server.get(&format!("/Videos/{id}/{id}/Subtitles/{index}/0/Stream.vtt"), None).await?.assert_error(StatusCode::UNAUTHORIZED)?;

        // A Latin-1 file is read, not refused.
        let srt = lib.films_dir.join("Big Buck Test (2019).en.srt");
        std::fs::write(&srt, b"1\n00:00:01,000 --> 00:00:02,000\nCaf\xE9\n")?;
        let (vtt, _) = text(&lib, &format!("/Videos/{id}/{id}/Subtitles/{index}/0/Stream.vtt")).await?;
        assert!(vtt.contains("Café"), "{vtt}");

        // Garbage: no cues, or a clear 400; never a 500.
        std::fs::write(&srt, [0u8, 159, 146, 150, 255, 0, 10, 45, 45, 62, 10].repeat(100))?;
        let reply = lib.get(&format!("/Videos/{id}/{id}/Subtitles/{index}/0/Stream.vtt")).await?;
        if reply.status == StatusCode::OK {
            assert!(cues(&String::from_utf8_lossy(&reply.body)).is_empty());
        } else {
            reply.assert_error(StatusCode::BAD_REQUEST)?;
        }

        // Too large: refused before it is read whole.
        let file = std::fs::File::create(&srt)?;
        file.set_len(17 * 1024 * 1024)?;
        let reply = lib.get(&format!("/Videos/{id}/{id}/Subtitles/{index}/0/Stream.vtt")).await?;
        reply.assert_error(StatusCode::BAD_REQUEST)?;
        assert!(reply.json()?["Message"].as_str().unwrap().contains("MiB"));

        // Gone since the scan: 404.
        std::fs::remove_file(&srt)?;
        lib.get(&format!("/Videos/{id}/{id}/Subtitles/{index}/0/Stream.vtt")).await?.assert_error(StatusCode::NOT_FOUND)?;
        Ok(())
    }
}

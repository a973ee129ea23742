//! On-demand HLS over real ffmpeg: playlists that match the runtime, segments that decode,
//! TS and fMP4, a remux cut at source keyframes, the same segment produced cold and by an
//! unbroken run, audio continuity across a run boundary, the idle kill, the transcode limit,
//! the progressive transcode, and bad input answered without leaving an ffmpeg behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result};
use ephyra_config::{LibraryConfig, LibraryKind};
use ephyra_server::scan;
use ephyra_testsupport::media::{Codecs, generate_coded_video};
use ephyra_testsupport::pgs::{PgsRect, mux_pgs, write_sup};
use http::StatusCode;
use tokio::sync::OnceCell;

use crate::support::{Provider, Reply, TestServer, test_config, with_token};

/// 30 s of H.264 + AAC at 24000/1001 fps.
// Not "Ntsc ...": like Jellyfin, the scanner reads `ntsc` in a name as a release tag and cuts
// the title there.
const NTSC: &str = "Grid Film";
/// 8 s of HEVC + AC-3 5.1.
const SURROUND: &str = "Surround Film";
/// 6 s of 10-bit HEVC + AAC.
const DEEP: &str = "Deep Film";
/// The cue of the `.en.srt` beside [`SURROUND`].
const SUBTITLE_CUE: &str = "A cue beside the surround film";
/// Segment length the tests configure.
const SEGMENT: u32 = 3;
/// The source frame rate of [`NTSC`].
const NTSC_FPS: f64 = 24_000.0 / 1001.0;

/// The media folder, generated once per test process.
async fn media() -> Result<&'static Path> {
    static MEDIA: OnceCell<tempfile::TempDir> = OnceCell::const_new();
    let dir = MEDIA
        .get_or_try_init(|| async {
            let dir = tempfile::tempdir()?;
            let (ntsc, surround, deep) = (
                dir.path().join(format!("{NTSC} (2020).mkv")),
                dir.path().join(format!("{SURROUND} (2021).mkv")),
                dir.path().join(format!("{DEEP} (2022).mkv")),
            );
            tokio::try_join!(
                generate_coded_video(&ntsc, 30, Codecs::H264AacNtsc),
                generate_coded_video(&surround, 8, Codecs::HevcAc3Surround),
                generate_coded_video(&deep, 6, Codecs::Hevc10BitAac),
            )?;
            std::fs::write(
                dir.path().join(format!("{SURROUND} (2021).en.srt")),
                format!("1\n00:00:01,000 --> 00:00:03,000\n{SUBTITLE_CUE}\n"),
            )?;
            anyhow::Ok(dir)
        })
        .await?;
    Ok(dir.path())
}

/// A scanned server over the media folder.
struct Hls {
    server: TestServer,
    auth: String,
    token: String,
    transcode_dir: PathBuf,
}

impl Hls {
    async fn new(
        provider: Provider,
        configure: impl FnOnce(&mut ephyra_config::ServerConfig),
    ) -> Result<Hls> {
        Hls::over(media().await?.to_path_buf(), provider, configure).await
    }

    /// A server over `folder`.
    async fn over(
        folder: PathBuf,
        provider: Provider,
        configure: impl FnOnce(&mut ephyra_config::ServerConfig),
    ) -> Result<Hls> {
        let data = tempfile::tempdir()?;
        let mut config = test_config(provider, data.path()).await?;
        config.libraries = vec![LibraryConfig {
            name: "Hls Films".to_owned(),
            kind: LibraryKind::Movies,
            folders: vec![folder],
        }];
        config.scan.concurrency = 2;
        config.transcode.segment_seconds = SEGMENT;
        configure(&mut config);
        let transcode_dir = config.transcode_dir();
        let server = TestServer::from_config(config, data).await?;
        scan::scan_all(&server.state).await?;
        let (_, token) = server.viewer().await?;
        Ok(Hls {
            auth: with_token(&token),
            token,
            server,
            transcode_dir,
        })
    }

    async fn item(&self, name: &str) -> Result<String> {
        let reply = self
            .server
            .get(
                "/Items?Recursive=true&IncludeItemTypes=Movie",
                Some(&self.auth),
            )
            .await?;
        let items = reply.json()?;
        items["Items"]
            .as_array()
            .context("Items")?
            .iter()
            .find(|i| i["Name"] == name)
            .and_then(|i| i["Id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("{name} not scanned: {items}"))
    }

    async fn get(&self, uri: &str) -> Result<Reply> {
        // Players send no header: the token rides in the query.
        self.server.get(uri, None).await
    }

    /// The query of a transcode as PlaybackInfo hands it out.
    fn query(&self, item: &str, extra: &str) -> String {
        format!(
            "DeviceId=dev-hls&MediaSourceId={item}&VideoCodec=h264&AudioCodec=aac&VideoBitrate=800000\
             &AudioBitrate=128000&SegmentContainer=ts&PlaySessionId=ps1&ApiKey={}\
             &TranscodingMaxAudioChannels=2&AllowVideoStreamCopy=false{extra}",
            self.token
        )
    }

    /// Segment URIs of `main.m3u8` with their EXTINF durations.
    async fn playlist(&self, item: &str, query: &str) -> Result<(String, Vec<(f64, String)>)> {
        let reply = self
            .get(&format!("/videos/{item}/main.m3u8?{query}"))
            .await?;
        anyhow::ensure!(reply.status == StatusCode::OK, "{reply:?}");
        let text = String::from_utf8(reply.body.to_vec())?;
        let mut segments = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if let Some(d) = line.strip_prefix("#EXTINF:") {
                let duration: f64 = d.split(',').next().unwrap_or("").parse()?;
                let uri = lines.next().context("uri after EXTINF")?.to_owned();
                segments.push((duration, uri));
            }
        }
        Ok((text, segments))
    }

    async fn segment(&self, item: &str, uri: &str) -> Result<Reply> {
        self.get(&format!("/videos/{item}/{uri}")).await
    }
}

/// ffmpeg processes whose command line names `dir`.
fn ffmpeg_processes_in(dir: &Path) -> usize {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .filter(|c| c.contains("ffmpeg") && c.contains(&needle))
                .count()
        })
        .unwrap_or(0)
}

async fn eventually(within: Duration, what: &str, mut check: impl FnMut() -> bool) -> Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One packet as ffprobe sees it.
#[derive(Debug, Clone, Copy)]
struct Packet {
    video: bool,
    pts: f64,
    duration: f64,
    key: bool,
}

/// The packets of `bytes` (a segment, or an init segment followed by segments).
async fn packets(bytes: &[u8], ext: &str) -> Result<Vec<Packet>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join(format!("probe.{ext}"));
    std::fs::write(&file, bytes)?;
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts_time,duration_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let mut result = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 {
            continue;
        }
        result.push(Packet {
            video: f[0] == "video",
            pts: f[1].parse().with_context(|| format!("pts in {line}"))?,
            duration: f[2].parse().unwrap_or(0.0),
            key: f[3].starts_with('K'),
        });
    }
    Ok(result)
}

/// Decodes `bytes` fully with ffmpeg; errors fail.
async fn decodes(bytes: &[u8], ext: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join(format!("decode.{ext}"));
    std::fs::write(&file, bytes)?;
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success() && out.stderr.is_empty(),
        "decoding failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn span(p: &[Packet], video: bool) -> Option<(f64, f64)> {
    let times: Vec<&Packet> = p.iter().filter(|x| x.video == video).collect();
    let first = times.iter().map(|x| x.pts).fold(f64::INFINITY, f64::min);
    let last = times
        .iter()
        .map(|x| x.pts + x.duration)
        .fold(f64::NEG_INFINITY, f64::max);
    (!times.is_empty()).then_some((first, last))
}

const OFFSET: f64 = ephyra_server::transcode::HLS_MPEGTS_OFFSET_90K as f64 / 90_000.0;

#[tokio::test]
async fn a_transcode_playlist_matches_the_runtime_and_its_ts_segments_decode_on_the_grid()
-> Result<()> {
    let hls = Hls::new(Provider::Sqlite, |_| {}).await?;
    let item = hls.item(NTSC).await?;
    let query = hls.query(&item, "");

    let master = hls
        .get(&format!("/videos/{item}/master.m3u8?{query}"))
        .await?;
    assert_eq!(master.status, StatusCode::OK, "{master:?}");
    assert_eq!(master.headers["content-type"], "application/x-mpegURL");
    let text = String::from_utf8(master.body.to_vec())?;
    assert!(
        text.starts_with("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH="),
        "{text}"
    );
    assert!(text.contains("CODECS=\"avc1.640028,mp4a.40.2\""), "{text}");
    assert!(
        text.contains(&format!("\nmain.m3u8?{query}\n")),
        "relative, query kept: {text}"
    );

    let (main, segments) = hls.playlist(&item, &query).await?;
    assert!(
        main.contains("#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-VERSION:3\n"),
        "{main}"
    );
    assert!(
        main.ends_with("#EXT-X-ENDLIST\n") && !main.contains("DISCONTINUITY"),
        "{main}"
    );
    // 30 s at 23.976 fps in whole-frame segments of 72 frames (3.003 s): 10 segments.
    let frames = 72.0;
    assert_eq!(segments.len(), 10, "{main}");
    let total: f64 = segments.iter().map(|s| s.0).sum();
    assert!((total - 30.0).abs() < 0.1, "durations sum to {total}");
    assert!((segments[1].0 - frames / NTSC_FPS).abs() < 1e-5);
    assert!(
        segments[3]
            .1
            .starts_with(&format!("hls1/main/3.ts?{query}&runtimeTicks=")),
        "{}",
        segments[3].1
    );

    for k in [0usize, 1, 9] {
        let reply = hls.segment(&item, &segments[k].1).await?;
        assert_eq!(reply.status, StatusCode::OK, "segment {k}: {reply:?}");
        assert_eq!(reply.headers["content-type"], "video/mp2t");
        decodes(&reply.body, "ts").await?;
        let p = packets(&reply.body, "ts").await?;
        let (v0, _) = span(&p, true).context("video")?;
        // Absolute timestamps: source time + the constant MPEG-TS offset.
        let expected = OFFSET + k as f64 * frames / NTSC_FPS;
        // The source's first frame sits at 21 ms, half a frame: it lands on frame 1, so
        // segment 0 may start one frame late (in every run alike).
        let slack = if k == 0 {
            1.5 / NTSC_FPS
        } else {
            0.5 / NTSC_FPS
        };
        assert!(
            v0 >= expected - 0.5 / NTSC_FPS && v0 - expected < slack,
            "segment {k} starts at {v0}, grid says {expected}"
        );
        assert!(
            p.iter().find(|x| x.video).is_some_and(|x| x.key),
            "segment {k} starts on a keyframe"
        );
        assert!(span(&p, false).is_some(), "segment {k} has audio");
    }
    Ok(())
}

// Copied audio (the source is AAC) and encoded audio (stream copy forbidden) both: a cold run
// seeks to the keyframe before the boundary, and ffmpeg 5.1 kept the copied audio packets
// from there (~2 s before the segment's video) until the run trimmed copied audio too.
#[tokio::test]
async fn a_segment_made_cold_matches_the_unbroken_run_and_audio_splices_without_a_gap() -> Result<()>
{
    for (container, audio_copy) in [("ts", true), ("mp4", true), ("ts", false)] {
        let hls = Hls::new(Provider::Sqlite, |_| {}).await?;
        let item = hls.item(NTSC).await?;
        let query = hls
            .query(&item, &format!("&AllowAudioStreamCopy={audio_copy}"))
            .replace(
                "SegmentContainer=ts",
                &format!("SegmentContainer={container}"),
            );
        let (main, segments) = hls.playlist(&item, &query).await?;
        let init = if container == "mp4" {
            assert!(
                main.contains("#EXT-X-MAP:URI=\"hls1/main/-1.mp4?"),
                "{main}"
            );
            let init = hls
                .get(&format!("/videos/{item}/hls1/main/-1.mp4?{query}"))
                .await?;
            assert_eq!(init.status, StatusCode::OK, "{init:?}");
            init.body.to_vec()
        } else {
            Vec::new()
        };
        let with_init = |b: &[u8]| [init.as_slice(), b].concat();

        // The unbroken run: segments 0..=5 in order from one ffmpeg.
        let mut unbroken = Vec::new();
        for (_, uri) in segments.iter().take(6) {
            let r = hls.segment(&item, uri).await?;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
            unbroken.push(r.body.to_vec());
        }
        // Everything is dropped (as a replica's death would); segment 4 is made cold.
        let stop = hls
            .server
            .send(crate::support::request(
                http::Method::DELETE,
                &format!(
                    "/Videos/ActiveEncodings?DeviceId=dev-hls&PlaySessionId=ps1&ApiKey={}",
                    hls.token
                ),
                None,
                None,
            )?)
            .await?;
        assert_eq!(stop.status, StatusCode::NO_CONTENT);
        assert_eq!(hls.server.state.transcodes.stream_count(), 0);
        let cold = hls.segment(&item, &segments[4].1).await?;
        assert_eq!(cold.status, StatusCode::OK, "{cold:?}");

        let a = packets(&with_init(&unbroken[4]), container).await?;
        let b = packets(&with_init(&cold.body), container).await?;
        let frame = 1.0 / NTSC_FPS;
        for video in [true, false] {
            let (sa, ea) = span(&a, video).context("unbroken span")?;
            let (sb, eb) = span(&b, video).context("cold span")?;
            println!(
                "{container} audio copy={audio_copy} video={video}: unbroken {sa:.6}..{ea:.6}, cold {sb:.6}..{eb:.6}"
            );
            assert!(
                (sa - sb).abs() < frame && (ea - eb).abs() < frame,
                "{container}: spans differ"
            );
        }
        // Audio continuity at the splice of unbroken segment 3 and cold segment 4.
        let before = packets(&with_init(&unbroken[3]), container).await?;
        let (_, end3) = span(&before, false).context("audio of 3")?;
        let (start4, _) = span(&b, false).context("audio of 4")?;
        let gap = start4 - end3;
        println!(
            "{container}: audio gap at the cold splice {:.3} ms",
            gap * 1000.0
        );
        assert!(
            gap.abs() < 0.001,
            "{container}: audio gap {gap} s at the splice"
        );
        // Each decodes on its own (a player resets the TS continuity counters per segment).
        decodes(&with_init(&unbroken[3]), container).await?;
        decodes(&with_init(&cold.body), container).await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_remux_cuts_at_source_keyframes_and_the_index_is_stored_on_both_providers() -> Result<()>
{
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let hls = Hls::new(provider, |_| {}).await?;
        let item = hls.item(NTSC).await?;
        let query = hls
            .query(&item, "")
            .replace("AllowVideoStreamCopy=false", "AllowVideoStreamCopy=true")
            .replace("VideoBitrate=800000", "VideoBitrate=90000000");
        let (_, segments) = hls.playlist(&item, &query).await?;
        // Source keyframes every 48 frames (2.002 s): boundaries at the first keyframe at or
        // after each multiple of 3 s, i.e. 0, 4.004, 6.006, 10.01, ...
        let starts: Vec<f64> = segments
            .iter()
            .scan(0.0, |t, s| {
                let start = *t;
                *t += s.0;
                Some(start)
            })
            .collect();
        for s in &starts {
            let frames = s * NTSC_FPS;
            assert!(
                (frames / 48.0 - (frames / 48.0).round()).abs() < 0.01,
                "boundary {s} is not a keyframe"
            );
        }
        assert!((starts[1] - 4.004).abs() < 0.01, "{starts:?}");
        let stored = hls.server.state.store.media_index(item.parse()?).await?;
        assert!(
            stored.is_some_and(|s| s.data.contains("keyframes")),
            "index stored"
        );
        let r = hls.segment(&item, &segments[2].1).await?;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        decodes(&r.body, "ts").await?;
        let p = packets(&r.body, "ts").await?;
        let (v0, _) = span(&p, true).context("video")?;
        assert!(
            // Playlist times count from the first keyframe, at the source's 21 ms start.
            (v0 - OFFSET - starts[2] - 0.021).abs() < 0.002,
            "copied segment starts at {v0}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn hevc_ac3_surround_and_10_bit_hevc_become_h264_with_stereo_aac() -> Result<()> {
    let hls = Hls::new(Provider::Sqlite, |_| {}).await?;
    for name in [SURROUND, DEEP] {
        let item = hls.item(name).await?;
        let query = hls
            .query(&item, "")
            .replace("AllowVideoStreamCopy=false", "AllowVideoStreamCopy=true");
        let (_, segments) = hls.playlist(&item, &query).await?;
        let r = hls.segment(&item, &segments[1].1).await?;
        assert_eq!(r.status, StatusCode::OK, "{name}: {r:?}");
        decodes(&r.body, "ts").await?;
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("s.ts");
        std::fs::write(&file, &r.body)?;
        let probe = ephyra_testsupport::media::probe(&file).await?;
        let codecs: Vec<&str> = probe.streams.iter().map(|s| s.codec.as_str()).collect();
        assert_eq!(codecs, vec!["h264", "aac"], "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn subtitles_asked_for_in_the_manifest_are_listed_in_the_master_playlist_as_webvtt()
-> Result<()> {
    let hls = Hls::new(Provider::Sqlite, |_| {}).await?;
    let item = hls.item(SURROUND).await?;
    let detail = hls
        .server
        .get(&format!("/Items/{item}"), Some(&hls.auth))
        .await?
        .json()?;
    let index = detail["MediaStreams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["Type"] == "Subtitle"))
        .and_then(|s| s["Index"].as_i64())
        .with_context(|| format!("the .en.srt is listed: {detail}"))?;

    // Without the ask, no subtitle in the manifest (jellyfin-web fetches it as External).
    let plain = hls
        .get(&format!(
            "/videos/{item}/master.m3u8?{}",
            hls.query(&item, "")
        ))
        .await?;
    assert!(!String::from_utf8(plain.body.to_vec())?.contains("EXT-X-MEDIA"));

    let query = hls.query(
        &item,
        &format!("&SubtitleStreamIndex={index}&SubtitleMethod=Hls"),
    );
    let master = hls
        .get(&format!("/videos/{item}/master.m3u8?{query}"))
        .await?;
    assert_eq!(master.status, StatusCode::OK, "{master:?}");
    let text = String::from_utf8(master.body.to_vec())?;
    let media = text
        .lines()
        .find(|l| l.starts_with("#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\","))
        .with_context(|| format!("no subtitle rendition: {text}"))?;
    assert!(
        media.contains("DEFAULT=YES") && media.contains("LANGUAGE=\"eng\""),
        "{media}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("#EXT-X-STREAM-INF:") && l.ends_with(",SUBTITLES=\"subs\"")),
        "{text}"
    );
    // The URI, relative to the master playlist, lists WebVTT segments on the TS time map.
    let uri = media
        .split("URI=\"")
        .nth(1)
        .and_then(|u| u.split('"').next())
        .context("URI")?;
    assert!(uri.contains(&format!("ApiKey={}", hls.token)), "{uri}");
    let playlist = hls.get(&format!("/videos/{item}/{uri}")).await?;
    assert_eq!(playlist.status, StatusCode::OK, "{playlist:?}");
    let playlist = String::from_utf8(playlist.body.to_vec())?;
    let segment = playlist
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .with_context(|| format!("no segment: {playlist}"))?;
    let base = uri.rsplit_once('/').map_or("", |(d, _)| d);
    let vtt = hls.get(&format!("/videos/{item}/{base}/{segment}")).await?;
    assert_eq!(vtt.status, StatusCode::OK, "{vtt:?}");
    let vtt = String::from_utf8(vtt.body.to_vec())?;
    assert!(
        vtt.starts_with("WEBVTT")
            && vtt.contains(&format!(
                "X-TIMESTAMP-MAP=MPEGTS:{},LOCAL:00:00:00.000",
                ephyra_server::transcode::HLS_MPEGTS_OFFSET_90K
            ))
            && vtt.contains(SUBTITLE_CUE),
        "{vtt}"
    );
    // fMP4 segments carry source times: their WebVTT maps source 0 to MPEG-TS time 0.
    let fmp4 = hls
        .get(&format!(
            "/videos/{item}/master.m3u8?{}",
            query.replace("SegmentContainer=ts", "SegmentContainer=mp4")
        ))
        .await?;
    let fmp4 = String::from_utf8(fmp4.body.to_vec())?;
    let uri = fmp4
        .split("URI=\"")
        .nth(1)
        .and_then(|u| u.split('"').next())
        .with_context(|| format!("no subtitle rendition: {fmp4}"))?;
    assert!(uri.contains("SegmentContainer=mp4"), "{uri}");
    let playlist = String::from_utf8(
        hls.get(&format!("/videos/{item}/{uri}"))
            .await?
            .body
            .to_vec(),
    )?;
    let segment = playlist
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .with_context(|| format!("no segment: {playlist}"))?;
    let vtt = hls.get(&format!("/videos/{item}/{base}/{segment}")).await?;
    let vtt = String::from_utf8(vtt.body.to_vec())?;
    assert!(
        vtt.contains("X-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000") && vtt.contains(SUBTITLE_CUE),
        "{vtt}"
    );
    assert_eq!(
        ffmpeg_processes_in(&hls.transcode_dir),
        0,
        "playlists start no ffmpeg"
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_is_refused_clearly_and_starts_no_ffmpeg() -> Result<()> {
    let hls = Hls::new(Provider::Sqlite, |_| {}).await?;
    let item = hls.item(NTSC).await?;
    let q = hls.query(&item, "");
    let unknown = "0123456789abcdef0123456789abcdef";
    let cases: Vec<(String, StatusCode, &str)> = vec![
        (
            format!("/videos/{unknown}/master.m3u8?{q}"),
            StatusCode::NOT_FOUND,
            "Item",
        ),
        (
            format!("/videos/{unknown}/hls1/main/0.ts?{q}"),
            StatusCode::NOT_FOUND,
            "Item",
        ),
        (
            format!(
                "/videos/{item}/main.m3u8?{}",
                q.replace(
                    &format!("MediaSourceId={item}"),
                    &format!("MediaSourceId={unknown}")
                )
            ),
            StatusCode::NOT_FOUND,
            "Media source",
        ),
        (
            format!("/videos/{item}/hls1/main/-2.ts?{q}"),
            StatusCode::BAD_REQUEST,
            "-2",
        ),
        (
            format!("/videos/{item}/hls1/main/-1.ts?{q}"),
            StatusCode::BAD_REQUEST,
            "-1",
        ),
        (
            format!("/videos/{item}/hls1/main/10.ts?{q}"),
            StatusCode::NOT_FOUND,
            "past the end",
        ),
        (
            format!("/videos/{item}/hls1/main/1.avi?{q}"),
            StatusCode::BAD_REQUEST,
            "avi",
        ),
        (
            format!(
                "/videos/{item}/main.m3u8?{}",
                q.replace("SegmentContainer=ts", "SegmentContainer=flv")
            ),
            StatusCode::BAD_REQUEST,
            "flv",
        ),
        (
            format!(
                "/videos/{item}/main.m3u8?{}",
                q.replace("VideoCodec=h264", "VideoCodec=vp8")
            ),
            StatusCode::BAD_REQUEST,
            "vp8",
        ),
        (
            format!(
                "/videos/{item}/main.m3u8?{}",
                q.replace("AudioCodec=aac", "AudioCodec=wma")
            ),
            StatusCode::BAD_REQUEST,
            "wma",
        ),
        (
            format!("/videos/{item}/stream.avi?{q}"),
            StatusCode::BAD_REQUEST,
            "avi",
        ),
        (
            format!("/videos/{item}/master.m3u8?DeviceId=x"),
            StatusCode::UNAUTHORIZED,
            "",
        ),
    ];
    for (uri, status, names) in cases {
        let reply = hls.get(&uri).await?;
        reply.assert_error(status).with_context(|| uri.clone())?;
        let message = reply.json()?["Message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.contains(names),
            "{uri}: `{message}` should name {names}"
        );
    }
    assert_eq!(hls.server.state.transcodes.active(), 0);
    assert_eq!(
        ffmpeg_processes_in(&hls.transcode_dir),
        0,
        "no ffmpeg left running"
    );
    Ok(())
}

#[tokio::test]
async fn over_the_limit_is_503_with_retry_after_and_idle_transcodes_are_killed_and_removed()
-> Result<()> {
    let hls = Hls::new(Provider::Sqlite, |c| {
        c.transcode.max_concurrent = 1;
        c.transcode.idle_timeout_seconds = 2;
    })
    .await?;
    let item = hls.item(NTSC).await?;
    let query = hls.query(&item, "");
    let (_, segments) = hls.playlist(&item, &query).await?;
    let first = hls.segment(&item, &segments[0].1).await?;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    assert_eq!(
        hls.server.state.transcodes.active(),
        1,
        "the run goes on ahead"
    );

    // Another output (another bitrate) needs a second ffmpeg: refused.
    let other = query.replace("VideoBitrate=800000", "VideoBitrate=700000");
    let (_, other_segments) = hls.playlist(&item, &other).await?;
    let busy = hls.segment(&item, &other_segments[0].1).await?;
    busy.assert_error(StatusCode::SERVICE_UNAVAILABLE)?;
    assert_eq!(busy.headers["retry-after"], "10");

    // Nobody asks for anything: the stream is killed and its files removed.
    let stream_dir = std::fs::read_dir(&hls.transcode_dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("0.ts").exists())
        .context("the stream's folder")?;
    let transcodes = hls.server.state.transcodes.clone();
    eventually(Duration::from_secs(30), "idle stream stopped", || {
        transcodes.active() == 0 && transcodes.stream_count() == 0 && !stream_dir.exists()
    })
    .await?;
    assert_eq!(
        ffmpeg_processes_in(&hls.transcode_dir),
        0,
        "no ffmpeg left running"
    );
    // The slot is free again.
    let again = hls.segment(&item, &other_segments[0].1).await?;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    hls.server.state.transcodes.stop_all().await;
    Ok(())
}

#[tokio::test]
async fn a_progressive_transcode_streams_fragmented_mp4_and_stops_with_the_client() -> Result<()> {
    let hls = Hls::new(Provider::Sqlite, |_| {}).await?;
    let item = hls.item(SURROUND).await?;
    let reply = hls
        .get(&format!(
            "/videos/{item}/stream.mp4?VideoCodec=h264&AudioCodec=aac&VideoBitrate=500000&TranscodingMaxAudioChannels=2&ApiKey={}",
            hls.token
        ))
        .await?;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.headers["content-type"], "video/mp4");
    assert_eq!(&reply.body[4..8], b"ftyp");
    decodes(&reply.body, "mp4").await?;
    let transcodes = hls.server.state.transcodes.clone();
    eventually(Duration::from_secs(10), "progressive slot released", || {
        transcodes.active() == 0
    })
    .await?;
    // `static=true` keeps the plain file.
    let file = hls
        .get(&format!(
            "/videos/{item}/stream.mkv?static=true&VideoCodec=h264&ApiKey={}",
            hls.token
        ))
        .await?;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.headers["content-type"], "video/x-matroska");
    Ok(())
}

/// A film with a PGS subtitle: [`NTSC`]'s codecs, 12 s, and one white rectangle shown from
/// 4 s to 7 s, across the boundary of segments 1 and 2 (6.006 s).
const PGS_FILM: &str = "Pgs Film";
/// The rectangle of [`PGS_FILM`]'s subtitle on the 320x180 picture.
const PGS_RECT: PgsRect = PgsRect {
    start: Duration::from_secs(4),
    end: Duration::from_secs(7),
    x: 40,
    y: 40,
    width: 96,
    height: 48,
    ycrcb: (235, 128, 128),
};

/// The folder holding [`PGS_FILM`] (its own, so the other tests scan no more files).
async fn pgs_media() -> Result<&'static Path> {
    static MEDIA: OnceCell<tempfile::TempDir> = OnceCell::const_new();
    let dir = MEDIA
        .get_or_try_init(|| async {
            let dir = tempfile::tempdir()?;
            let work = tempfile::tempdir()?;
            let (video, sup) = (work.path().join("v.mkv"), work.path().join("s.sup"));
            generate_coded_video(&video, 12, Codecs::H264AacNtsc).await?;
            write_sup(&sup, 320, 180, &[PGS_RECT])?;
            let film = dir.path().join(format!("{PGS_FILM} (2023).mkv"));
            mux_pgs(&video, &sup, "eng", &film).await?;
            anyhow::Ok(dir)
        })
        .await?;
    Ok(dir.path())
}

/// Each video frame's presentation time and the average luma of the subtitle rectangle's
/// inner area (a white rectangle reads about 235; the test picture there, much less).
async fn rectangle_luma(bytes: &[u8], ext: &str) -> Result<Vec<(f64, f64)>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join(format!("frames.{ext}"));
    std::fs::write(&file, bytes)?;
    let inner = format!(
        "crop={}:{}:{}:{}",
        PGS_RECT.width - 16,
        PGS_RECT.height - 16,
        PGS_RECT.x + 8,
        PGS_RECT.y + 8
    );
    let out = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!(
            "movie={},{inner},signalstats",
            file.to_string_lossy()
        ))
        .args([
            "-show_entries",
            "frame=pts_time:frame_tags=lavfi.signalstats.YAVG",
            "-of",
            "csv=p=0",
        ])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (t, y) = line.split_once(',').context("pts,YAVG")?;
            Ok((t.parse()?, y.trim_end_matches(',').parse()?))
        })
        .collect()
}

// The web client cannot show PGS: PlaybackInfo chooses to burn it in, the segments show the
// rectangle exactly while the subtitle is displayed, and a segment made cold by a new
// ffmpeg (as a surviving replica makes it) has the same timestamps and the same picture,
// although its subtitle event began in the previous segment.
#[tokio::test]
async fn an_image_subtitle_the_web_client_cannot_show_is_burned_in_on_the_grid() -> Result<()> {
    let hls = Hls::over(pgs_media().await?.to_path_buf(), Provider::Sqlite, |_| {}).await?;
    let item = hls.item(PGS_FILM).await?;
    let body = serde_json::json!({
        "DeviceProfile": crate::subtitles::chrome_profile(),
        "SubtitleStreamIndex": 2,
        "AudioStreamIndex": 1,
    });
    let info = hls
        .server
        .post(
            &format!("/Items/{item}/PlaybackInfo"),
            Some(&hls.auth),
            Some(body),
        )
        .await?
        .json()?;
    let source = &info["MediaSources"][0];
    let pgs = source["MediaStreams"]
        .as_array()
        .context("MediaStreams")?
        .iter()
        .find(|s| s["Index"] == 2)
        .context("stream 2")?;
    assert_eq!(pgs["Codec"], "PGSSUB", "{pgs}");
    assert_eq!(pgs["DeliveryMethod"], "Encode", "{pgs}");
    assert_eq!(source["SupportsDirectPlay"], false, "{source}");
    let url = source["TranscodingUrl"]
        .as_str()
        .context("TranscodingUrl")?;
    for part in [
        "SubtitleStreamIndex=2",
        "SubtitleMethod=Encode",
        "SubtitleCodecNotSupported",
        "AllowVideoStreamCopy=false",
    ] {
        assert!(url.contains(part), "{part} missing from {url}");
    }
    let query = url
        .split_once('?')
        .map(|(_, q)| format!("{q}&ApiKey={}", hls.token))
        .context("query")?;
    let ext = if query.contains("SegmentContainer=mp4") {
        "mp4"
    } else {
        "ts"
    };
    let master = hls
        .get(&format!("/videos/{item}/master.m3u8?{query}"))
        .await?;
    assert_eq!(master.status, StatusCode::OK, "{master:?}");
    let (main, segments) = hls.playlist(&item, &query).await?;
    assert!(segments.len() >= 4, "{main}");
    let init = if ext == "mp4" {
        let init = hls
            .get(&format!("/videos/{item}/hls1/main/-1.mp4?{query}"))
            .await?;
        assert_eq!(init.status, StatusCode::OK, "{init:?}");
        init.body.to_vec()
    } else {
        Vec::new()
    };
    let with_init = |b: &[u8]| [init.as_slice(), b].concat();
    let boundaries: Vec<f64> = segments
        .iter()
        .scan(0.0, |t, s| {
            let start = *t;
            *t += s.0;
            Some(start)
        })
        .collect();

    // The unbroken run: segments 0..=3 from one ffmpeg.
    let mut unbroken = Vec::new();
    for (_, uri) in segments.iter().take(4) {
        let r = hls.segment(&item, uri).await?;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        unbroken.push(with_init(&r.body));
    }
    // Timestamps count from the grid: segment 1 starts on its boundary.
    let first_of_1 = span(&packets(&unbroken[1], ext).await?, true)
        .context("video")?
        .0;
    let origin = first_of_1 - boundaries[1];
    let frame = 1.0 / NTSC_FPS;
    let (shown, cleared) = (PGS_RECT.start.as_secs_f64(), PGS_RECT.end.as_secs_f64());
    let mut lumas = Vec::new();
    for (k, bytes) in unbroken.iter().enumerate() {
        decodes(bytes, ext).await?;
        let frames = rectangle_luma(bytes, ext).await?;
        assert!(frames.len() > 60, "segment {k}: {} frames", frames.len());
        for (pts, luma) in &frames {
            let t = pts - origin;
            if t > shown + frame && t < cleared - frame {
                assert!(
                    *luma > 225.0,
                    "segment {k}: no subtitle at {t:.3} s (luma {luma})"
                );
            } else if t < shown - frame || t > cleared + frame {
                assert!(
                    *luma < 200.0,
                    "segment {k}: subtitle at {t:.3} s (luma {luma})"
                );
            }
        }
        lumas.push(frames);
    }
    let on = |frames: &[(f64, f64)]| frames.iter().filter(|f| f.1 > 225.0).count();
    println!(
        "frames with the subtitle per segment: {:?}",
        lumas.iter().map(|f| on(f)).collect::<Vec<_>>()
    );
    // 4 s to 7 s: 24 frames of segment 1 (to 6.006 s) and 24 of segment 2.
    assert!(
        on(&lumas[1]) >= 22 && on(&lumas[2]) >= 22,
        "shown too briefly"
    );

    // Everything dropped, files too (as a replica's death leaves nothing to the survivor);
    // segment 2 made cold by a new ffmpeg.
    hls.server.state.transcodes.stop_all().await;
    assert_eq!(hls.server.state.transcodes.stream_count(), 0);
    let cold = hls.segment(&item, &segments[2].1).await?;
    assert_eq!(cold.status, StatusCode::OK, "{cold:?}");
    let cold = with_init(&cold.body);
    decodes(&cold, ext).await?;
    let (a, b) = (
        packets(&unbroken[2], ext).await?,
        packets(&cold, ext).await?,
    );
    for video in [true, false] {
        let (sa, ea) = span(&a, video).context("unbroken span")?;
        let (sb, eb) = span(&b, video).context("cold span")?;
        println!("video={video}: unbroken {sa:.6}..{ea:.6}, cold {sb:.6}..{eb:.6}");
        // Video is frame-exact; copied audio in fMP4 may start 1 ms apart (the source's
        // millisecond timestamps, as in the cold-segment test without a subtitle).
        let tolerance = if video { 1e-6 } else { 0.0015 };
        assert!(
            (sa - sb).abs() < tolerance && (ea - eb).abs() < tolerance,
            "video={video}: spans differ"
        );
    }
    let cold_frames = rectangle_luma(&cold, ext).await?;
    assert_eq!(cold_frames.len(), lumas[2].len());
    for ((ta, la), (tb, lb)) in lumas[2].iter().zip(&cold_frames) {
        assert!((ta - tb).abs() < 1e-6, "frame at {ta} vs {tb}");
        assert_eq!(
            *la > 225.0,
            *lb > 225.0,
            "at {:.3} s the unbroken run shows {la}, the cold one {lb}",
            ta - origin
        );
    }

    // A subtitle index naming another kind of stream is refused, naming it.
    let bad = query.replace("SubtitleStreamIndex=2", "SubtitleStreamIndex=1");
    let reply = hls.get(&format!("/videos/{item}/main.m3u8?{bad}")).await?;
    reply.assert_error(StatusCode::BAD_REQUEST)?;
    let message = reply.json()?["Message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("SubtitleStreamIndex 1"), "{message}");
    Ok(())
}

//! Playback in a real browser and failover of a running transcode.
//!
//! - Three films (an H.264 mp4, an HEVC + AC-3 5.1 mkv with an `.en.srt` beside it, a 10-bit
//!   HEVC mkv) play in headless Chromium as jellyfin-web plays them: `PlaybackInfo` with the
//!   browser's DeviceProfile, then hls.js on the `TranscodingUrl`, the subtitle as a track.
//! - Failover: a player reads an HLS transcode through HAProxy, stuck to replica A by the
//!   cookie; A is SIGKILLed between two segment requests; the next requests reach B, which
//!   produces the segments cold. The joined segments decode without an error, video and audio
//!   timestamps run on across the splice (the largest gap is printed), and the player saw no
//!   failed request. The same with hls.js in Chromium, which must keep playing.

use std::time::{Duration, Instant};

use ephyra_e2e::cluster::LONG_FILM;
use ephyra_e2e::{Haproxy, LocalCluster};
use reqwest::{Method, StatusCode};

/// Segments read from A before the kill, and after it from B.
const BEFORE: usize = 4;
const AFTER: usize = 4;

/// One packet: (is video, pts seconds, duration seconds).
type Packet = (bool, f64, f64);

async fn packets(file: &std::path::Path) -> anyhow::Result<Vec<Packet>> {
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=codec_type,pts_time,duration_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .await?;
    anyhow::ensure!(out.status.success(), "ffprobe failed");
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((
                f.first()? == &"video",
                f.get(1)?.parse().ok()?,
                f.get(2)?.parse().unwrap_or(0.0),
            ))
        })
        .collect())
}

/// The largest hole between consecutive packets of one kind (negative: overlap).
fn largest_gap(packets: &[Packet], video: bool) -> f64 {
    let mut times: Vec<(f64, f64)> = packets
        .iter()
        .filter(|p| p.0 == video)
        .map(|p| (p.1, p.2))
        .collect();
    times.sort_by(|a, b| a.0.total_cmp(&b.0));
    times
        .windows(2)
        .map(|w| w[1].0 - (w[0].0 + w[0].1))
        .fold(0.0, |acc: f64, g| if g.abs() > acc.abs() { g } else { acc })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transcode_survives_the_death_of_its_replica() -> anyhow::Result<()> {
    let mut cluster = LocalCluster::start(2).await?;
    let haproxy = Haproxy::start(&cluster.backends()).await?;
    let mut player = ephyra_e2e::JellyfinClient::new(&haproxy.url, "hls-failover-player");
    player
        .login(
            ephyra_e2e::cluster::ADMIN_USER,
            ephyra_e2e::cluster::ADMIN_PASSWORD,
        )
        .await?;
    let film = cluster.wait_for_film(&player, LONG_FILM).await?;
    let token = player.token.clone().unwrap_or_default();
    let query = format!(
        "DeviceId=hls-failover-player&MediaSourceId={film}&VideoCodec=h264&AudioCodec=aac\
         &VideoBitrate=200000&AudioBitrate=96000&SegmentContainer=ts&PlaySessionId=failover1\
         &TranscodingMaxAudioChannels=2&AllowVideoStreamCopy=false&ApiKey={token}"
    );
    let get = |path: String| {
        let player = player.clone();
        async move {
            let started = Instant::now();
            let response = player.send(Method::GET, &path, None, None).await?;
            let status = response.status();
            let body = response.bytes().await?.to_vec();
            anyhow::ensure!(status == StatusCode::OK, "GET {path}: {status}");
            anyhow::Ok((body, started.elapsed()))
        }
    };
    let (master, _) = get(format!("/videos/{film}/master.m3u8?{query}")).await?;
    let master = String::from_utf8(master)?;
    let main_uri = master
        .lines()
        .find(|l| l.starts_with("main.m3u8"))
        .map(str::to_owned);
    let main_uri = main_uri.ok_or_else(|| anyhow::anyhow!("no variant in {master}"))?;
    let (main, _) = get(format!("/videos/{film}/{main_uri}")).await?;
    let segments: Vec<String> = String::from_utf8(main)?
        .lines()
        .filter(|l| l.starts_with("hls1/"))
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(
        segments.len() > BEFORE + AFTER,
        "{} segments",
        segments.len()
    );

    let mut joined = Vec::new();
    let mut parts = Vec::new();
    for uri in segments.iter().take(BEFORE) {
        let (body, _) = get(format!("/videos/{film}/{uri}")).await?;
        joined.extend(&body);
        parts.push(body);
    }
    let a_name = player
        .sticky_replica()
        .ok_or_else(|| anyhow::anyhow!("HAProxy set no cookie"))?;
    let a = cluster
        .index_of(&a_name)
        .ok_or_else(|| anyhow::anyhow!("unknown {a_name}"))?;
    let b = 1 - a;
    cluster.kill(a);
    let killed_at = Instant::now();

    let mut stall = Duration::ZERO;
    for (n, uri) in segments.iter().skip(BEFORE).take(AFTER).enumerate() {
        // Every request must succeed: HAProxy redispatches to the survivor.
        let (body, took) = get(format!("/videos/{film}/{uri}")).await?;
        if n == 0 {
            stall = killed_at.elapsed();
            println!(
                "first segment after the kill took {:.2} s (cold start on the survivor)",
                took.as_secs_f64()
            );
        }
        joined.extend(&body);
        parts.push(body);
    }
    let b_name = cluster.name(b).to_owned();
    assert_eq!(
        player.sticky_replica().as_deref(),
        Some(b_name.as_str()),
        "now stuck to the survivor"
    );
    assert!(
        cluster.log(b).contains("starting ffmpeg"),
        "the survivor produced the segments itself"
    );

    let dir = tempfile::tempdir()?;
    // Every segment decodes without an error (a player starts each TS segment afresh: the
    // continuity counters of two runs do not follow on).
    for (n, part) in parts.iter().enumerate() {
        let file = dir.path().join(format!("{n}.ts"));
        std::fs::write(&file, part)?;
        let decode = tokio::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&file)
            .args(["-f", "null", "-"])
            .output()
            .await?;
        let errors = String::from_utf8_lossy(&decode.stderr).into_owned();
        assert!(
            decode.status.success() && errors.trim().is_empty(),
            "segment {n}: {errors}"
        );
    }
    let file = dir.path().join("joined.ts");
    std::fs::write(&file, &joined)?;
    let p = packets(&file).await?;
    let video_gap = largest_gap(&p, true);
    let audio_gap = largest_gap(&p, false);
    // At the splice itself: the last segment from A against the first from B.
    let (last_a, first_b) = (
        packets(&dir.path().join(format!("{}.ts", BEFORE - 1))).await?,
        packets(&dir.path().join(format!("{BEFORE}.ts"))).await?,
    );
    let splice = |video: bool| {
        let end = last_a
            .iter()
            .filter(|x| x.0 == video)
            .map(|x| x.1 + x.2)
            .fold(f64::NEG_INFINITY, f64::max);
        let start = first_b
            .iter()
            .filter(|x| x.0 == video)
            .map(|x| x.1)
            .fold(f64::INFINITY, f64::min);
        start - end
    };
    println!(
        "HLS failover: stall {:.2} s from the kill to the next segment; largest gap anywhere in the joined segments: video {:.1} ms, audio {:.1} ms; at the splice (negative = overlap): video {:+.1} ms, audio {:+.1} ms",
        stall.as_secs_f64(),
        video_gap * 1000.0,
        audio_gap * 1000.0,
        splice(true) * 1000.0,
        splice(false) * 1000.0
    );
    // One frame of the 4 fps film is 250 ms; audio frames are 21.3 ms.
    assert!(
        video_gap.abs() < 0.001,
        "video timestamps jump by {video_gap} s"
    );
    // Audio may overlap by at most one AAC frame (the fresh encoder's priming frame), which
    // players drop (hls.js restamps or drops frames that overlap); never a hole.
    assert!(
        (-0.0215..0.001).contains(&audio_gap),
        "audio timestamps jump by {audio_gap} s"
    );
    Ok(())
}

/// The folder of the browser player (`e2e/web`, with `npm ci` done by `scripts/ensure-deps.sh`).
fn web_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_in_chromium_keeps_playing_across_the_death_of_the_transcoding_replica()
-> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;

    let web = web_dir();
    if !std::path::Path::new("/usr/bin/chromium").exists()
        || !web.join("node_modules/hls.js").is_dir()
        || !web.join("node_modules/playwright-core").is_dir()
    {
        println!(
            "skipped: needs /usr/bin/chromium and `npm ci` in {} (scripts/ensure-deps.sh does both)",
            web.display()
        );
        return Ok(());
    }
    let mut cluster = LocalCluster::start(2).await?;
    let haproxy = Haproxy::start(&cluster.backends()).await?;
    let mut admin = ephyra_e2e::JellyfinClient::new(&haproxy.url, "hls-browser");
    admin
        .login(
            ephyra_e2e::cluster::ADMIN_USER,
            ephyra_e2e::cluster::ADMIN_PASSWORD,
        )
        .await?;
    let film = cluster.wait_for_film(&admin, LONG_FILM).await?;
    let token = admin.token.clone().unwrap_or_default();
    let master = format!(
        "/videos/{film}/master.m3u8?DeviceId=hls-browser&MediaSourceId={film}&VideoCodec=h264\
         &AudioCodec=aac&VideoBitrate=200000&AudioBitrate=96000&SegmentContainer=mp4\
         &PlaySessionId=browser1&TranscodingMaxAudioChannels=2&AllowVideoStreamCopy=false\
         &ApiKey={token}"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(web.join("play.mjs"))
        .args([haproxy.url.as_str(), master.as_str(), "6", "30", "120"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut done = None;
    while let Some(line) = lines.next_line().await? {
        let event: serde_json::Value = serde_json::from_str(&line)?;
        match event["event"].as_str() {
            Some("ready") => {
                // The replica that served the player so far (it is stuck to it) dies.
                let served: Vec<usize> = (0..cluster.len())
                    .filter(|&i| cluster.log(i).contains("starting ffmpeg"))
                    .collect();
                let victim = *served
                    .first()
                    .ok_or_else(|| anyhow::anyhow!("no replica transcoded"))?;
                println!(
                    "killing {} at currentTime {}",
                    cluster.name(victim),
                    event["currentTime"]
                );
                cluster.kill(victim);
            }
            Some("done") => {
                done = Some(event);
                break;
            }
            _ => {}
        }
    }
    let _ = child.wait().await;
    let done = done.ok_or_else(|| anyhow::anyhow!("the player ended without a result"))?;
    println!("hls.js across the kill: {done}");
    assert_eq!(done["fatal"], false, "hls.js fatal error: {done}");
    assert!(
        done["currentTime"].as_f64().unwrap_or(0.0) >= 30.0,
        "playback did not reach 30 s: {done}"
    );
    println!(
        "hls.js stall after the kill: {:.2} s",
        done["stall"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(())
}

/// The subtitle written beside the surround film; its first cue must reach the browser.
const SUBTITLE_TEXT: &str = "Ephyra subtitle cue";

/// Codec and pixel format of the first video stream of `file`.
async fn video_format(file: &std::path::Path) -> anyhow::Result<String> {
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,pix_fmt",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .await?;
    anyhow::ensure!(out.status.success(), "ffprobe failed");
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h264_mp4_hevc_surround_with_subtitle_and_10_bit_hevc_play_in_chromium_with_hls_js()
-> anyhow::Result<()> {
    use ephyra_testsupport::media::{
        Codecs, Container, VideoSpec, generate_coded_video, generate_video_with,
    };

    let web = web_dir();
    if !std::path::Path::new("/usr/bin/chromium").exists()
        || !web.join("node_modules/hls.js").is_dir()
        || !web.join("node_modules/playwright-core").is_dir()
    {
        println!(
            "skipped: needs /usr/bin/chromium and `npm ci` in {} (scripts/ensure-deps.sh does both)",
            web.display()
        );
        return Ok(());
    }
    let media = ephyra_e2e::wait::scratch_dir("browser-films")?;
    let films = media.path().join("films");
    let (mp4, surround, deep) = (
        films.join("Planet Walk (2021).mp4"),
        films.join("Surround Film (2021).mkv"),
        films.join("Deep Film (2022).mkv"),
    );
    let spec = VideoSpec {
        seconds: 10,
        ..VideoSpec::default()
    };
    tokio::try_join!(
        generate_video_with(&mp4, spec, Container::Mp4),
        generate_coded_video(&surround, 10, Codecs::HevcAc3Surround),
        generate_coded_video(&deep, 10, Codecs::Hevc10BitAac),
    )?;
    std::fs::write(
        films.join("Surround Film (2021).en.srt"),
        format!(
            "1\n00:00:00,500 --> 00:00:04,000\n{SUBTITLE_TEXT}\n\n2\n00:00:05,000 --> 00:00:08,000\nA second cue\n"
        ),
    )?;

    // One replica over this folder alone (the last `EPHYRA_LIBRARIES` wins).
    let cluster = LocalCluster::builder(1)
        .env(
            "EPHYRA_LIBRARIES",
            format!("movies:Browser Films={}", films.display()),
        )
        .start()
        .await?;
    let base = cluster.url(0);
    let mut admin = ephyra_e2e::JellyfinClient::new(&base, "e2e-chromium");
    let login = admin
        .login(
            ephyra_e2e::cluster::ADMIN_USER,
            ephyra_e2e::cluster::ADMIN_PASSWORD,
        )
        .await?;
    let mut ids = Vec::new();
    for name in ["Planet Walk", "Surround Film", "Deep Film"] {
        ids.push(cluster.wait_for_film(&admin, name).await?);
    }
    // The subtitle's index as PlaybackInfo lists it (after the embedded streams); the scan
    // may list the film a moment before its subtitle.
    let subtitle_index = ephyra_e2e::wait::eventually(
        "the .en.srt to be listed",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || async {
            let info = admin
                .send(
                    Method::POST,
                    &format!("/Items/{}/PlaybackInfo?UserId={}", ids[1], login.user_id),
                    Some(serde_json::json!({})),
                    None,
                )
                .await
                .map_err(|e| format!("{e:#}"))?
                .json::<serde_json::Value>()
                .await
                .map_err(|e| e.to_string())?;
            info["MediaSources"][0]["MediaStreams"]
                .as_array()
                .and_then(|streams| {
                    streams
                        .iter()
                        .find(|s| s["Type"] == "Subtitle" && s["IsExternal"] == true)
                })
                .and_then(|s| s["Index"].as_i64())
                .ok_or_else(|| format!("not listed yet: {info}"))
        },
    )
    .await?;

    // jellyfin-web's Chrome profile (the server's decision fixture); the page drops HEVC from
    // it when this Chromium cannot decode HEVC, as jellyfin-web does.
    let profile: serde_json::Value = serde_json::from_str(include_str!(
        "../../../server/src/playback/fixtures/chrome.json"
    ))?;
    let config = serde_json::json!({
        "base": base,
        "token": login.token,
        "userId": login.user_id,
        "profile": profile,
        "playFor": 4,
        "timeout": 120,
        "films": [
            // Chrome plays this mp4 directly; a client retrying without direct play (as
            // jellyfin-web does after a direct-play error) gets HLS with the video copied.
            { "name": "Planet Walk", "id": ids[0], "enableDirectPlay": false },
            { "name": "Surround Film", "id": ids[1], "subtitleStreamIndex": subtitle_index },
            { "name": "Deep Film", "id": ids[2] },
            // A client asking for the subtitle in the manifest, with TS segments (Android TV's
            // shape), played by hls.js: the WebVTT rendition of the master playlist.
            { "name": "Surround Film, TS, subtitle in the manifest", "id": ids[1],
              "subtitleStreamIndex": subtitle_index, "manifestSubtitles": true, "container": "ts" },
            { "name": "Surround Film, fMP4, subtitle in the manifest", "id": ids[1],
              "subtitleStreamIndex": subtitle_index, "manifestSubtitles": true, "container": "mp4" },
        ],
    });
    let config_file = media.path().join("play.json");
    std::fs::write(&config_file, serde_json::to_vec(&config)?)?;
    let output = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new("node")
            .arg(web.join("play-films.mjs"))
            .arg(&config_file)
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "player failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let film = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == "film" && e["name"] == name)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{name} was not played: {stdout}"))
    };
    for e in events.iter().filter(|e| e["event"] == "film") {
        println!("chromium: {e}");
    }
    for name in ["Planet Walk", "Surround Film", "Deep Film"] {
        let e = film(name)?;
        assert_eq!(e["status"], 200, "{e}");
        assert_eq!(e["subProtocol"], "hls", "{e}");
        assert_eq!(e["fatal"], false, "hls.js fatal error: {e}");
        assert!(
            e["currentTime"].as_f64().unwrap_or(0.0) >= 4.0,
            "playback did not advance to 4 s: {e}"
        );
        assert!(
            e["frames"].as_u64().unwrap_or(0) > 0 && e["videoWidth"].as_u64().unwrap_or(0) > 0,
            "no video frame decoded: {e}"
        );
    }
    let surround_played = film("Surround Film")?;
    let subtitle = surround_played["subtitles"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["index"] == subtitle_index))
        .cloned()
        .unwrap_or_default();
    assert_eq!(subtitle["isExternal"], true, "{surround_played}");
    assert_eq!(subtitle["language"], "eng", "{surround_played}");
    assert_eq!(subtitle["deliveryMethod"], "External", "{surround_played}");
    assert_eq!(
        surround_played["cue"]["text"], SUBTITLE_TEXT,
        "the subtitle track delivered its first cue: {surround_played}"
    );

    // Subtitles in the master playlist: hls.js lists the rendition, and its first cue sits at
    // 0.5 s of the film with TS and with fMP4 segments (each has its own time map).
    for container in ["TS", "fMP4"] {
        let e = film(&format!(
            "Surround Film, {container}, subtitle in the manifest"
        ))?;
        assert_eq!(e["fatal"], false, "hls.js fatal error: {e}");
        assert!(
            e["currentTime"].as_f64().unwrap_or(0.0) >= 4.0,
            "playback did not advance to 4 s: {e}"
        );
        assert!(
            e["transcodingUrl"]
                .as_str()
                .is_some_and(|u| u.contains("SubtitleMethod=Hls")),
            "{e}"
        );
        assert_eq!(e["hlsSubtitleTracks"], 1, "{e}");
        assert_eq!(e["cue"]["text"], SUBTITLE_TEXT, "{e}");
        let start = e["cue"]["start"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (start - 0.5).abs() < 0.1,
            "{container}: the cue shows at {start} s, not 0.5 s"
        );
    }

    // What Chromium got for the 10-bit film: 8-bit 4:2:0 H.264.
    let deep_played = film("Deep Film")?;
    let url = deep_played["transcodingUrl"].as_str().unwrap_or_default();
    let dir = url.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
    let get = |path: String| {
        let admin = admin.clone();
        async move {
            let r = admin.send(Method::GET, &path, None, None).await?;
            anyhow::ensure!(r.status() == StatusCode::OK, "GET {path}: {}", r.status());
            anyhow::Ok(r.bytes().await?.to_vec())
        }
    };
    let master = String::from_utf8(get(url.to_owned()).await?)?;
    let main_uri = master
        .lines()
        .find(|l| l.starts_with("main.m3u8"))
        .ok_or_else(|| anyhow::anyhow!("no variant in {master}"))?;
    let main = String::from_utf8(get(format!("{dir}/{main_uri}")).await?)?;
    let mut bytes = Vec::new();
    if let Some(init) = main
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.strip_suffix('"'))
    {
        bytes.extend(get(format!("{dir}/{init}")).await?);
    }
    let first = main
        .lines()
        .find(|l| l.starts_with("hls1/"))
        .ok_or_else(|| anyhow::anyhow!("no segment in {main}"))?;
    bytes.extend(get(format!("{dir}/{first}")).await?);
    let file = media.path().join("deep-segment");
    std::fs::write(&file, &bytes)?;
    assert_eq!(
        video_format(&file).await?,
        "h264,yuv420p",
        "10-bit HEVC reaches Chromium as 8-bit H.264"
    );
    Ok(())
}

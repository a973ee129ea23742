//! NOT YET WIRED INTO main.rs: written at the deadline and never compiled or run (the
//! machine was too loaded to build the e2e crate in time). To enable: add `mod hls;` to
//! e2e/tests/e2e/main.rs, then `cargo test -p ephyra-e2e --test e2e -- hls --nocapture`.
//!
//! Failover of a running transcode: a player reads an HLS transcode through HAProxy, stuck to
//! replica A by the cookie; A is SIGKILLed between two segment requests; the next requests
//! reach B, which produces the segments cold. The joined segments decode without an error,
//! video and audio timestamps run on across the splice (the largest gap is printed), and the
//! player saw no failed request.

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
    println!(
        "HLS failover: stall {:.2} s from the kill to the next segment; largest gap across the splice: video {:.1} ms, audio {:.1} ms",
        stall.as_secs_f64(),
        video_gap * 1000.0,
        audio_gap * 1000.0
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

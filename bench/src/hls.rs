//! The transcoding figures, each against a baseline measured in the same run:
//!
//! - **first segment**: `master.m3u8` → `main.m3u8` → segment 0 fully received, for a 720p
//!   HEVC + AC-3 film transcoded to H.264/AAC, against ffmpeg alone run with the very
//!   arguments the server used (read from its debug log) until its first segment is complete;
//! - **failover stall**: a player reads a 1080p → 720p transcode through HAProxy in real time
//!   (segment k requested at k segment-lengths after the start); the replica serving it is
//!   SIGKILLed; the longest gap between two segments against the normal cadence;
//! - **real-time transcodes**: how many 1080p → 720p software transcodes (the server's
//!   arguments again) run at once with each at least 1.0× real time.
//!
//! It measures and returns figures; the report judges them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ephyra_e2e::cluster::{ADMIN_PASSWORD, ADMIN_USER};
use ephyra_e2e::{Haproxy, JellyfinClient, LocalCluster};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::library::{FULL_HD_FILM, HEVC_FILM};

/// How long a segment request may take (the server's own limit is 120 s).
const SEGMENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Measurements of the first segment (the first one also indexes the file).
const FIRST_SEGMENT_REPEATS: usize = 4;
/// Segments the player reads before the kill, and after it.
pub const BEFORE_KILL: usize = 4;
const AFTER_KILL: usize = 3;
/// Media seconds each real-time transcode runs for.
pub const REAL_TIME_SECONDS: u32 = 20;
/// Never more concurrent transcodes than this in the search.
const REAL_TIME_MAX: usize = 6;

/// The first-segment figure.
#[derive(Debug, Clone)]
pub struct FirstSegment {
    /// Output size, e.g. `1280x720`.
    pub output: String,
    /// Segment length, seconds.
    pub segment_seconds: f64,
    /// The very first request for the file (the server indexes its keyframes then), seconds.
    pub cold: f64,
    /// Each later request (a new transcode of the same file), seconds.
    pub server: Vec<f64>,
    /// Of those, the share spent on the two playlists.
    pub playlists: Vec<f64>,
    /// ffmpeg alone: until segment 0's file is complete.
    pub ffmpeg_first: Vec<f64>,
    /// ffmpeg alone: until segment 1's file is complete.
    pub ffmpeg_second: Vec<f64>,
}

/// The failover figure.
#[derive(Debug, Clone)]
pub struct Failover {
    /// Segment length, seconds.
    pub segment_seconds: f64,
    /// The normal gap between two segments before the kill (median), seconds.
    pub cadence: f64,
    /// The longest gap between two segments across the kill, seconds.
    pub longest_gap: f64,
    /// How long the first request after the kill took, seconds.
    pub first_after_kill: f64,
    /// Requests that failed (the player retried them).
    pub failed_requests: usize,
    /// Whether the survivor produced the segments itself.
    pub survivor_transcoded: bool,
    /// Every gap, in order, seconds.
    pub gaps: Vec<f64>,
}

impl Failover {
    /// How much longer than the cadence the longest gap was.
    pub fn stall(&self) -> f64 {
        (self.longest_gap - self.cadence).max(0.0)
    }
}

/// One step of the real-time search.
#[derive(Debug, Clone)]
pub struct RealTimeStep {
    /// Transcodes at once.
    pub concurrent: usize,
    /// The slowest one's speed (media seconds per wall second).
    pub slowest: f64,
    /// Their mean speed.
    pub mean: f64,
}

/// The real-time figure.
#[derive(Debug, Clone)]
pub struct RealTime {
    /// Source and output, e.g. `1920x1080 H.264 → 1280x720 H.264 (libx264 veryfast)`.
    pub what: String,
    /// Each step, from one transcode up.
    pub steps: Vec<RealTimeStep>,
}

impl RealTime {
    /// The most transcodes at once that all kept real time.
    pub fn sustained(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| s.slowest >= 1.0)
            .map(|s| s.concurrent)
            .max()
            .unwrap_or(0)
    }
}

/// hls.js's default buffer goal (`maxBufferLength`), seconds.
pub const BUFFER_GOAL_SECONDS: f64 = 30.0;

/// The failover figure of a player that buffers ahead as hls.js does by default.
#[derive(Debug, Clone)]
pub struct BufferedFailover {
    /// The buffer goal, seconds of media.
    pub buffer_goal: f64,
    /// Media buffered ahead of the playhead when the replica was killed, seconds.
    pub buffer_at_kill: f64,
    /// Time the playhead could not advance before the kill (the baseline), seconds.
    pub stall_before_kill: f64,
    /// Time the playhead could not advance from the kill on, seconds.
    pub stall_after_kill: f64,
    /// How long the first request after the kill took, seconds.
    pub first_after_kill: f64,
    /// Requests that failed (the player retried them).
    pub failed_requests: usize,
    /// Whether the survivor produced the segments itself.
    pub survivor_transcoded: bool,
}

/// A playhead that advances in real time over what has arrived: the time it cannot
/// advance is the stall a viewer sees.
#[derive(Debug, Clone, Copy)]
pub struct Playhead {
    /// Media time played, seconds.
    position: f64,
    /// Media time received, seconds.
    buffered: f64,
    /// When `position` was last brought up to date; `None` before playback starts.
    at: Option<Instant>,
    /// Accumulated stall, seconds.
    stalled: f64,
}

impl Playhead {
    /// Nothing received, not playing.
    pub fn new() -> Playhead {
        Playhead {
            position: 0.0,
            buffered: 0.0,
            at: None,
            stalled: 0.0,
        }
    }

    /// Brings the playhead to `now`: it advances as far as the buffer allows, and the rest
    /// of the elapsed time is stall.
    pub fn advance(&mut self, now: Instant) {
        let Some(at) = self.at else { return };
        let elapsed = now.saturating_duration_since(at).as_secs_f64();
        let room = self.buffered - self.position;
        if elapsed <= room {
            self.position += elapsed;
        } else {
            self.position = self.buffered;
            self.stalled += elapsed - room;
        }
        self.at = Some(now);
    }

    /// A segment of `seconds` arrived at `now`; playback starts with the first one.
    pub fn received(&mut self, seconds: f64, now: Instant) {
        self.advance(now);
        self.buffered += seconds;
        self.at.get_or_insert(now);
    }

    /// Media buffered ahead of the playhead, seconds (as of the last update).
    pub fn ahead(&self) -> f64 {
        self.buffered - self.position
    }

    /// The stall so far, seconds.
    pub fn stalled(&self) -> f64 {
        self.stalled
    }
}

impl Default for Playhead {
    fn default() -> Playhead {
        Playhead::new()
    }
}

/// Everything this module measures.
#[derive(Debug, Clone)]
pub struct HlsResults {
    /// First segment.
    pub first_segment: FirstSegment,
    /// Failover.
    pub failover: Failover,
    /// Failover under a player that buffers ahead.
    pub buffered_failover: BufferedFailover,
    /// Real time.
    pub real_time: RealTime,
}

/// Runs the three measurements over a two-replica cluster (dropped before the real-time
/// search, which must have the CPUs to itself).
pub async fn run(scratch: &Path) -> anyhow::Result<HlsResults> {
    // The debug log carries each ffmpeg's arguments, parsed here as JSON.
    let cluster = start_cluster().await?;
    let mut admin =
        JellyfinClient::new(&cluster.url(0), "bench-first-segment").with_timeout(SEGMENT_TIMEOUT);
    admin.login(ADMIN_USER, ADMIN_PASSWORD).await?;

    eprintln!("bench: HLS: first segment of {HEVC_FILM} against ffmpeg alone");
    let first_segment = first_segment(&cluster, &admin, scratch).await?;
    eprintln!("bench: HLS: failover stall of a real-time player");
    let (failover, args) = failover(cluster).await?;
    eprintln!("bench: HLS: failover stall of a player buffering ahead (hls.js defaults)");
    let buffered_failover = buffered_failover(start_cluster().await?).await?;
    eprintln!("bench: HLS: concurrent real-time transcodes");
    let real_time = real_time(&args, scratch).await?;
    Ok(HlsResults {
        first_segment,
        failover,
        buffered_failover,
        real_time,
    })
}

/// A two-replica cluster whose debug log carries each ffmpeg's arguments, its library scanned.
async fn start_cluster() -> anyhow::Result<LocalCluster> {
    let cluster = LocalCluster::builder(2)
        .env("EPHYRA_LOG", "info,ephyra_server::transcode=debug")
        .env("EPHYRA_LOG_FORMAT", "json")
        .start()
        .await?;
    crate::api::wait_scanned(|| cluster.logs()).await?;
    Ok(cluster)
}

/// The query of an H.264/AAC transcode in MPEG-TS segments, 720p at most.
fn transcode_query(film: &str, device: &str, session: &str, bitrate: u64, token: &str) -> String {
    format!(
        "DeviceId={device}&MediaSourceId={film}&VideoCodec=h264&AudioCodec=aac\
         &VideoBitrate={bitrate}&AudioBitrate=128000&MaxWidth=1280&MaxHeight=720\
         &SegmentContainer=ts&PlaySessionId={session}&TranscodingMaxAudioChannels=2\
         &AllowVideoStreamCopy=false&ApiKey={token}"
    )
}

/// GET that must answer 200; the whole body.
async fn get_body(client: &JellyfinClient, path: &str) -> anyhow::Result<Vec<u8>> {
    let response = client.send(Method::GET, path, None, None).await?;
    let status = response.status();
    let body = response.bytes().await?.to_vec();
    if status != StatusCode::OK {
        // Without the query: it carries the access token.
        bail!(
            "GET {}: {status} {}",
            path.split('?').next().unwrap_or_default(),
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
    }
    Ok(body)
}

/// The segments of a media playlist: (URI, duration in seconds).
fn segments_of(main: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut duration = None;
    for line in main.lines() {
        if let Some(rest) = line.strip_prefix("#EXTINF:") {
            duration = rest.split(',').next().and_then(|d| d.trim().parse().ok());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push((line.to_owned(), duration.take().unwrap_or(0.0)));
        }
    }
    out
}

/// The master playlist's variant (`main.m3u8?…`), then the media playlist's segments.
async fn playlists(
    client: &JellyfinClient,
    film: &str,
    query: &str,
) -> anyhow::Result<Vec<(String, f64)>> {
    let master = get_body(client, &format!("/videos/{film}/master.m3u8?{query}")).await?;
    let master = String::from_utf8(master)?;
    let variant = master
        .lines()
        .find(|l| l.starts_with("main.m3u8"))
        .with_context(|| format!("no variant in {master}"))?;
    let main = get_body(client, &format!("/videos/{film}/{variant}")).await?;
    let segments = segments_of(&String::from_utf8(main)?);
    anyhow::ensure!(!segments.is_empty(), "an empty media playlist");
    Ok(segments)
}

/// Stops a session's transcodes on whichever replica `client` reaches.
async fn stop_session(client: &JellyfinClient, device: &str, session: &str) {
    let path = format!("/Videos/ActiveEncodings?DeviceId={device}&PlaySessionId={session}");
    let _ = client.send(Method::DELETE, &path, None, None).await;
}

async fn first_segment(
    cluster: &LocalCluster,
    admin: &JellyfinClient,
    scratch: &Path,
) -> anyhow::Result<FirstSegment> {
    let film = cluster.wait_for_film(admin, HEVC_FILM).await?;
    let token = admin.token.clone().context("not logged in")?;
    let mut result = FirstSegment {
        output: String::new(),
        segment_seconds: 0.0,
        cold: 0.0,
        server: Vec::new(),
        playlists: Vec::new(),
        ffmpeg_first: Vec::new(),
        ffmpeg_second: Vec::new(),
    };
    for repeat in 0..FIRST_SEGMENT_REPEATS {
        // A new bitrate is a new transcode: nothing is reused from the previous repeat.
        let bitrate = 3_000_000 + 1000 * repeat as u64;
        let session = format!("bench-first-{repeat}");
        let query = transcode_query(&film, &admin.device_id, &session, bitrate, &token);
        let log_before = cluster.log(0).len();
        let started = Instant::now();
        let segments = playlists(admin, &film, &query).await?;
        let playlists_done = started.elapsed().as_secs_f64();
        let (uri, duration) = &segments[0];
        get_body(admin, &format!("/videos/{film}/{uri}")).await?;
        let took = started.elapsed().as_secs_f64();
        stop_session(admin, &admin.device_id, &session).await;
        result.segment_seconds = *duration;
        if repeat == 0 {
            result.cold = took;
        } else {
            result.server.push(took);
            result.playlists.push(playlists_done);
        }
        let log = cluster.log(0);
        let args = ffmpeg_args_after(&log, log_before)
            .context("no `ffmpeg arguments` line in the replica's debug log")?;
        result.output = output_size(&args).unwrap_or_default();
        // The server's ffmpeg is stopped; give the CPUs a moment before the baseline.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if repeat > 0 {
            let dir = tempfile::Builder::new()
                .prefix("ephyra-bench-ffmpeg-")
                .tempdir_in(scratch)?;
            let (first, second) = ffmpeg_alone(&args, dir.path()).await?;
            result.ffmpeg_first.push(first);
            result.ffmpeg_second.push(second);
            eprintln!(
                "bench: first segment: server {took:.3} s (playlists {playlists_done:.3} s); ffmpeg alone {first:.3} s (segment 1 complete at {second:.3} s)"
            );
        } else {
            eprintln!("bench: first segment, first request for the file: {took:.3} s");
        }
    }
    Ok(result)
}

/// The first `ffmpeg arguments` line of a segment-0 run (no input seek) in `log` after byte
/// `from`, parsed.
fn ffmpeg_args_after(log: &str, from: usize) -> Option<Vec<String>> {
    log.get(from..)?
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["message"] == "ffmpeg arguments")
        .filter_map(|v| v["args"].as_str().and_then(parse_debug_list))
        .find(|args| !args.iter().any(|a| a == "-ss"))
}

/// Parses a Rust `Debug` list of strings (`["a", "b\"c"]`), as the server logs arguments.
pub fn parse_debug_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some('"') => {}
            Some(_) => return None,
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => item.push('\n'),
                    't' => item.push('\t'),
                    'r' => item.push('\r'),
                    '0' => item.push('\0'),
                    'u' => {
                        if chars.next()? != '{' {
                            return None;
                        }
                        let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                        item.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    other => item.push(other),
                },
                c => item.push(c),
            }
        }
        out.push(item);
    }
}

/// The output size of a run, from its `scale=W:H` filter.
fn output_size(args: &[String]) -> Option<String> {
    let filter = args.iter().skip_while(|a| *a != "-vf").nth(1)?;
    let scale = filter.split("scale=").nth(1)?;
    let mut parts = scale.split([':', ',']);
    let (w, h) = (parts.next()?, parts.next()?);
    Some(format!("{w}x{h}"))
}

/// The server's arguments writing into `dir` instead of its run folder (the last two
/// arguments: the segment pattern and the playlist).
fn retarget(args: &[String], dir: &Path) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(args.len() > 2, "too few arguments: {args:?}");
    let mut out = args[..args.len() - 2].to_vec();
    let pattern = Path::new(&args[args.len() - 2])
        .file_name()
        .context("no segment pattern")?
        .to_owned();
    out.push(dir.join(pattern).display().to_string());
    out.push(dir.join("run.m3u8").display().to_string());
    Ok(out)
}

/// The segment files' extension (`ts`, `mp4`) from the pattern argument.
fn segment_ext(args: &[String]) -> String {
    args.iter()
        .rev()
        .nth(1)
        .and_then(|p| p.rsplit('.').next())
        .unwrap_or("ts")
        .to_owned()
}

/// Runs ffmpeg with `args` into `dir`; seconds until `0.<ext>` and `1.<ext>` exist (the hls
/// muxer writes `N.ext.tmp` and renames it when the segment is complete).
async fn ffmpeg_alone(args: &[String], dir: &Path) -> anyhow::Result<(f64, f64)> {
    let args = retarget(args, dir)?;
    let ext = segment_ext(&args);
    let (first, second) = (dir.join(format!("0.{ext}")), dir.join(format!("1.{ext}")));
    let started = Instant::now();
    let mut child = tokio::process::Command::new("ffmpeg")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting ffmpeg")?;
    let mut first_at = None;
    let deadline = started + Duration::from_secs(120);
    loop {
        if first_at.is_none() && first.is_file() {
            first_at = Some(started.elapsed().as_secs_f64());
        }
        if second.is_file() {
            let second_at = started.elapsed().as_secs_f64();
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Ok((first_at.unwrap_or(second_at), second_at));
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("ffmpeg ended ({status}) before its second segment");
        }
        if Instant::now() > deadline {
            bail!("ffmpeg wrote no second segment in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A player logged in through HAProxy in front of `cluster`, with the 1080p film's transcode
/// segments listed: what both failover runs start from.
struct FailoverPlayer {
    haproxy: Haproxy,
    player: JellyfinClient,
    film: String,
    segments: Vec<(String, f64)>,
    /// Each replica's log length before the run: what follows is this run's.
    offsets: Vec<usize>,
}

impl FailoverPlayer {
    async fn start(
        cluster: &LocalCluster,
        device: &str,
        session: &str,
        bitrate: u64,
    ) -> anyhow::Result<FailoverPlayer> {
        let haproxy = Haproxy::start(&cluster.backends()).await?;
        let mut player = JellyfinClient::new(&haproxy.url, device).with_timeout(SEGMENT_TIMEOUT);
        player.login(ADMIN_USER, ADMIN_PASSWORD).await?;
        let film = cluster.wait_for_film(&player, FULL_HD_FILM).await?;
        let token = player.token.clone().context("not logged in")?;
        let query = transcode_query(&film, device, session, bitrate, &token);
        let offsets: Vec<usize> = (0..cluster.len()).map(|i| cluster.log(i).len()).collect();
        let segments = playlists(&player, &film, &query).await?;
        anyhow::ensure!(
            segments.len() >= BEFORE_KILL + AFTER_KILL,
            "{} segments",
            segments.len()
        );
        Ok(FailoverPlayer {
            haproxy,
            player,
            film,
            segments,
            offsets,
        })
    }
}

/// Segment `k` (`uri`) of `film`, asked again every 500 ms while it fails, as a player
/// would; each failure counts in `failed`, and more than 30 in the run end it.
async fn fetch_segment(
    player: &JellyfinClient,
    film: &str,
    uri: &str,
    k: usize,
    run: &str,
    failed: &mut usize,
) -> anyhow::Result<()> {
    loop {
        match get_body(player, &format!("/videos/{film}/{uri}")).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                *failed += 1;
                eprintln!("bench: {run}: segment {k} failed ({e:#}); retrying");
                if *failed > 30 {
                    bail!("segment {k} kept failing: {e:#}");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// SIGKILLs the replica HAProxy's cookie sticks `player` to; its index and name.
fn kill_sticky_replica(
    cluster: &mut LocalCluster,
    player: &JellyfinClient,
) -> anyhow::Result<(usize, String)> {
    let name = player.sticky_replica().context("HAProxy set no cookie")?;
    let index = cluster
        .index_of(&name)
        .with_context(|| format!("unknown replica {name}"))?;
    cluster.kill(index);
    Ok((index, name))
}

/// Whether the replica that was not killed started ffmpeg during this run.
fn survivor_transcoded(cluster: &LocalCluster, victim: usize, offsets: &[usize]) -> bool {
    let survivor = 1 - victim;
    cluster
        .log(survivor)
        .get(offsets[survivor]..)
        .is_some_and(|l| l.contains("starting ffmpeg"))
}

async fn failover(mut cluster: LocalCluster) -> anyhow::Result<(Failover, Vec<String>)> {
    let (device, session) = ("bench-player", "bench-failover");
    let FailoverPlayer {
        haproxy,
        player,
        film,
        segments,
        offsets,
    } = FailoverPlayer::start(&cluster, device, session, 3_000_000).await?;
    // Playback starts when segment 0 has arrived; each next segment is asked for when the
    // one before it has played out (a player with nothing buffered ahead).
    let mut playback_start: Option<Instant> = None;
    let mut due = Duration::ZERO;
    let mut arrivals = Vec::new();
    let mut failed_requests = 0;
    let mut first_after_kill = 0.0;
    let mut victim = None;
    for (k, (uri, duration)) in segments.iter().take(BEFORE_KILL + AFTER_KILL).enumerate() {
        if let Some(wait) =
            playback_start.and_then(|start| (start + due).checked_duration_since(Instant::now()))
        {
            tokio::time::sleep(wait).await;
        }
        let asked = Instant::now();
        fetch_segment(&player, &film, uri, k, "failover", &mut failed_requests).await?;
        arrivals.push(Instant::now());
        playback_start.get_or_insert_with(Instant::now);
        due += Duration::from_secs_f64(*duration);
        if k == BEFORE_KILL {
            first_after_kill = asked.elapsed().as_secs_f64();
        }
        if k + 1 == BEFORE_KILL {
            let (index, name) = kill_sticky_replica(&mut cluster, &player)?;
            eprintln!("bench: failover: killed {name}, which served the player");
            victim = Some(index);
        }
    }
    stop_session(&player, device, session).await;
    let victim = victim.context("no replica was killed")?;
    let survivor_transcoded = survivor_transcoded(&cluster, victim, &offsets);
    let args = ffmpeg_args_after(&cluster.log(victim), offsets[victim])
        .context("no `ffmpeg arguments` line in the killed replica's log")?;
    let gaps: Vec<f64> = arrivals
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    let mut before: Vec<f64> = gaps[..BEFORE_KILL - 1].to_vec();
    before.sort_by(f64::total_cmp);
    let cadence = before[before.len() / 2];
    let longest_gap = gaps.iter().copied().fold(0.0, f64::max);
    let result = Failover {
        segment_seconds: segments[0].1,
        cadence,
        longest_gap,
        first_after_kill,
        failed_requests,
        survivor_transcoded,
        gaps,
    };
    eprintln!(
        "bench: failover: cadence {:.2} s, longest gap {:.2} s (stall {:.2} s), first request after the kill {:.2} s, {} failed",
        result.cadence,
        result.longest_gap,
        result.stall(),
        result.first_after_kill,
        result.failed_requests
    );
    drop(haproxy);
    drop(cluster);
    Ok((result, args))
}

/// The arguments of a run limited to its first `seconds` of output.
fn limited(args: &[String], seconds: u32) -> Vec<String> {
    let at = args
        .windows(2)
        .position(|w| w[0] == "-f" && w[1] == "hls")
        .unwrap_or(args.len().saturating_sub(2));
    let mut out = args[..at].to_vec();
    out.extend(["-t".to_owned(), seconds.to_string()]);
    out.extend_from_slice(&args[at..]);
    out
}

/// The failover run again with a player that buffers as hls.js does by default: it asks for
/// the next segment as soon as the one before has arrived while less than
/// [`BUFFER_GOAL_SECONDS`] are buffered ahead, and its playhead advances in real time over
/// what has arrived. The replica serving it is killed at the same point as for the
/// bufferless player (once segment 3 has arrived).
async fn buffered_failover(mut cluster: LocalCluster) -> anyhow::Result<BufferedFailover> {
    let (device, session) = ("bench-buffering-player", "bench-buffered-failover");
    // Another bitrate than the bufferless run's: a transcode of its own.
    // HAProxy must outlive the run: bound to a name, not `_`.
    let FailoverPlayer {
        haproxy: _haproxy,
        player,
        film,
        segments,
        offsets,
    } = FailoverPlayer::start(&cluster, device, session, 2_900_000).await?;
    let mut playhead = Playhead::new();
    let mut failed_requests = 0;
    let mut first_after_kill = 0.0;
    let mut at_kill: Option<(f64, f64)> = None;
    let mut victim = None;
    for (k, (uri, duration)) in segments.iter().take(BEFORE_KILL + AFTER_KILL).enumerate() {
        // Wait while the buffer is at its goal.
        playhead.advance(Instant::now());
        let over = playhead.ahead() - BUFFER_GOAL_SECONDS;
        if over > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(over)).await;
        }
        let asked = Instant::now();
        fetch_segment(
            &player,
            &film,
            uri,
            k,
            "buffered failover",
            &mut failed_requests,
        )
        .await?;
        playhead.received(*duration, Instant::now());
        if k == BEFORE_KILL {
            first_after_kill = asked.elapsed().as_secs_f64();
        }
        if k + 1 == BEFORE_KILL {
            at_kill = Some((playhead.ahead(), playhead.stalled()));
            let (index, name) = kill_sticky_replica(&mut cluster, &player)?;
            eprintln!(
                "bench: buffered failover: killed {name} with {:.1} s buffered",
                playhead.ahead()
            );
            victim = Some(index);
        }
    }
    // Play out what has arrived: no stall can follow.
    stop_session(&player, device, session).await;
    let victim = victim.context("no replica was killed")?;
    let (buffer_at_kill, stall_before_kill) = at_kill.context("no kill")?;
    let survivor_transcoded = survivor_transcoded(&cluster, victim, &offsets);
    let result = BufferedFailover {
        buffer_goal: BUFFER_GOAL_SECONDS,
        buffer_at_kill,
        stall_before_kill,
        stall_after_kill: playhead.stalled() - stall_before_kill,
        first_after_kill,
        failed_requests,
        survivor_transcoded,
    };
    eprintln!("bench: buffered failover: {result:?}");
    Ok(result)
}

async fn real_time(server_args: &[String], scratch: &Path) -> anyhow::Result<RealTime> {
    let args = limited(server_args, REAL_TIME_SECONDS);
    let output = output_size(&args).unwrap_or_default();
    let encoder = args
        .iter()
        .skip_while(|a| *a != "-c:v")
        .nth(1)
        .cloned()
        .unwrap_or_default();
    let preset = args
        .iter()
        .skip_while(|a| *a != "-preset")
        .nth(1)
        .cloned()
        .unwrap_or_default();
    let mut steps = Vec::new();
    for concurrent in 1..=REAL_TIME_MAX {
        let dirs: Vec<tempfile::TempDir> = (0..concurrent)
            .map(|_| {
                tempfile::Builder::new()
                    .prefix("ephyra-bench-realtime-")
                    .tempdir_in(scratch)
            })
            .collect::<Result<_, _>>()?;
        let runs = dirs.iter().map(|dir| {
            let args = retarget(&args, dir.path());
            async move {
                let args = args?;
                let started = Instant::now();
                let status = tokio::process::Command::new("ffmpeg")
                    .args(&args)
                    .stdin(std::process::Stdio::null())
                    .kill_on_drop(true)
                    .status()
                    .await?;
                anyhow::ensure!(status.success(), "ffmpeg failed: {status}");
                anyhow::Ok(f64::from(REAL_TIME_SECONDS) / started.elapsed().as_secs_f64())
            }
        });
        let speeds = futures::future::try_join_all(runs).await?;
        let slowest = speeds.iter().copied().fold(f64::INFINITY, f64::min);
        let mean = speeds.iter().sum::<f64>() / speeds.len() as f64;
        eprintln!("bench: real time: {concurrent} at once, slowest {slowest:.2}×, mean {mean:.2}×");
        steps.push(RealTimeStep {
            concurrent,
            slowest,
            mean,
        });
        if slowest < 1.0 {
            break;
        }
    }
    Ok(RealTime {
        what: format!("1920x1080 H.264 → {output} H.264 ({encoder} {preset}) + AAC"),
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_playhead_stalls_only_when_it_catches_up_with_what_arrived() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let mut p = Playhead::new();
        // Nothing plays before the first segment.
        p.advance(at(5.0));
        assert_eq!(p.stalled(), 0.0);
        p.received(6.0, at(5.0));
        p.received(6.0, at(7.0));
        assert!((p.ahead() - 10.0).abs() < 1e-9);
        // 12 s of media by 17 s: played out at 17 s; the next arrives 2.5 s later.
        p.received(6.0, at(19.5));
        assert!((p.stalled() - 2.5).abs() < 1e-9, "{p:?}");
        assert!((p.ahead() - 6.0).abs() < 1e-9);
        p.advance(at(22.0));
        assert!((p.stalled() - 2.5).abs() < 1e-9 && (p.ahead() - 3.5).abs() < 1e-9);
    }

    #[test]
    fn debug_lists_of_arguments_parse_back_with_their_escapes() {
        let args = vec![
            "-i".to_owned(),
            "/m/A \"quoted\" film.mkv".to_owned(),
            "noise=drop=lt(pts*tb\\,5.999999)".to_owned(),
            "é\n".to_owned(),
        ];
        let logged = format!("{args:?}");
        assert_eq!(parse_debug_list(&logged), Some(args));
        assert_eq!(parse_debug_list("[]"), Some(vec![]));
        assert_eq!(parse_debug_list("not a list"), None);
    }

    #[test]
    fn a_run_is_retargeted_and_limited_without_touching_its_encoding() {
        let args: Vec<String> = [
            "-i",
            "in.mkv",
            "-vf",
            "fps=24/1,trim=start_pts=0,scale=1280:720",
            "-c:v",
            "libx264",
            "-f",
            "hls",
            "-hls_segment_filename",
            "/t/run-0/%d.ts",
            "/t/run-0/run.m3u8",
        ]
        .map(str::to_owned)
        .to_vec();
        let moved = retarget(&args, Path::new("/x")).unwrap();
        assert_eq!(moved[moved.len() - 2], "/x/%d.ts");
        assert_eq!(moved[moved.len() - 1], "/x/run.m3u8");
        assert_eq!(segment_ext(&moved), "ts");
        let short = limited(&args, 20);
        let f = short.iter().position(|a| a == "-f").unwrap();
        assert_eq!(&short[f - 2..f], ["-t", "20"]);
        assert_eq!(output_size(&args).as_deref(), Some("1280x720"));
    }

    #[test]
    fn media_playlists_give_uris_with_their_durations() {
        let main = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.000000, nodesc\nhls1/main/0.ts?a=1\n\
                    #EXTINF:2.5, nodesc\nhls1/main/1.ts?a=1\n#EXT-X-ENDLIST\n";
        assert_eq!(
            segments_of(main),
            vec![
                ("hls1/main/0.ts?a=1".to_owned(), 6.0),
                ("hls1/main/1.ts?a=1".to_owned(), 2.5)
            ]
        );
    }
}

//! Memory of a replica under anonymous floods (the audit's attacks): waves of 100 concurrent
//! wrong logins (argon2 per attempt), 3,000 QuickConnect initiations followed by wrk on
//! unauthenticated endpoints, and a poster asked for at 300 sizes at once (image routes are
//! anonymous, as Jellyfin's are; each size is a decode of the whole original). Each runs against a fresh server on SQLite (QuickConnect state
//! then lives in the replica's memory, the worst case) that trusts 127.0.0.1 as its proxy,
//! so requests can speak for many client addresses through `X-Forwarded-For`, as a botnet
//! behind the ingress would.
//!
//! It measures `VmRSS` (sampled every 10 ms) and `VmHWM`; it asserts nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ephyra_e2e::cluster::{ADMIN_PASSWORD, ADMIN_USER};
use ephyra_e2e::{JellyfinClient, ServerProcess};
use futures::StreamExt as _;
use serde_json::json;

use crate::library::BenchLibrary;
use crate::machine::{RssSampler, memory_kib};
use crate::wrk::{Figures, Load, Wrk};

/// Concurrent wrong logins in a wave.
pub const LOGINS_PER_WAVE: usize = 100;
/// Waves.
pub const WAVES: usize = 3;
/// QuickConnect initiations.
pub const QUICK_CONNECTS: usize = 3000;
/// Sizes of one poster asked for, [`IMAGE_CONCURRENCY`] at a time.
pub const IMAGE_SIZES: usize = 300;
/// Image requests in flight at once.
pub const IMAGE_CONCURRENCY: usize = 64;
/// The flooded poster's size: a large scan of a print (real posters are 1000x1500 to 2000x3000).
pub const POSTER_SIZE: (u32, u32) = (4000, 6000);

/// One wave of wrong logins.
#[derive(Debug, Clone)]
pub struct Wave {
    /// How many answers of each status.
    pub statuses: BTreeMap<u16, usize>,
    /// Requests without an answer.
    pub failed: usize,
    /// Seconds from the first request to the last answer.
    pub seconds: f64,
    /// The largest `VmRSS` sampled during the wave.
    pub peak_kib: u64,
}

/// The login flood.
#[derive(Debug, Clone)]
pub struct LoginFlood {
    /// `VmRSS` before (after one right login).
    pub before_kib: u64,
    /// Each wave.
    pub waves: Vec<Wave>,
    /// `VmHWM` after the waves.
    pub hwm_kib: u64,
    /// `VmRSS` a second after the last wave.
    pub after_kib: u64,
    /// Whether the right password still worked after.
    pub right_password_after: bool,
}

/// The other anonymous floods.
#[derive(Debug, Clone)]
pub struct OtherFlood {
    /// `VmRSS` before.
    pub before_kib: u64,
    /// QuickConnect initiations: statuses.
    pub quick_connect: BTreeMap<u16, usize>,
    /// The largest `VmRSS` during them.
    pub quick_connect_peak_kib: u64,
    /// `VmRSS` after them.
    pub quick_connect_after_kib: u64,
    /// wrk at 64 connections on `/System/Info/Public` and `/Users/Public`.
    pub gets: Vec<(String, Figures)>,
    /// The largest `VmRSS` during those.
    pub gets_peak_kib: u64,
    /// `VmHWM` at the end.
    pub hwm_kib: u64,
}

/// The poster asked for at many sizes.
#[derive(Debug, Clone)]
pub struct ImageFlood {
    /// `VmRSS` before.
    pub before_kib: u64,
    /// How many answers of each status (0: no answer).
    pub statuses: BTreeMap<u16, usize>,
    /// Seconds from the first request to the last answer.
    pub seconds: f64,
    /// The largest `VmRSS` sampled during the flood.
    pub peak_kib: u64,
    /// `VmRSS` a second after it.
    pub after_kib: u64,
    /// Bytes in the replica's resized-image cache after it.
    pub cache_bytes: u64,
    /// The cache's limit (`EPHYRA_IMAGE_CACHE_MAX_MIB`), in bytes.
    pub cache_limit_bytes: u64,
}

/// Every flood.
#[derive(Debug, Clone)]
pub struct FloodResults {
    /// Wrong logins.
    pub logins: LoginFlood,
    /// QuickConnect and unauthenticated GETs.
    pub other: OtherFlood,
    /// One poster at many sizes.
    pub images: ImageFlood,
}

/// Runs the floods, each on a fresh server.
pub async fn run(
    wrk: &Wrk,
    library: &BenchLibrary,
    scratch: &Path,
) -> anyhow::Result<FloodResults> {
    let trusting = [("EPHYRA_TRUSTED_PROXIES", "127.0.0.1/32".to_owned())];
    eprintln!("bench: floods: {WAVES} waves of {LOGINS_PER_WAVE} concurrent wrong logins");
    let (server, _) = crate::api::single_server(library, scratch, "login-flood", &trusting).await?;
    let logins = login_flood(&server).await?;
    drop(server);
    eprintln!("bench: floods: QuickConnect initiations and unauthenticated GETs");
    let (server, _) =
        crate::api::single_server(library, scratch, "anonymous-flood", &trusting).await?;
    let other = other_flood(wrk, &server).await?;
    drop(server);
    eprintln!("bench: floods: one poster asked for at {IMAGE_SIZES} sizes");
    let images = image_flood(library, scratch).await?;
    Ok(FloodResults {
        logins,
        other,
        images,
    })
}

/// The cache limit the image flood runs with, in MiB: small, so the flood also shows pruning.
const IMAGE_CACHE_MIB: u64 = 8;

async fn image_flood(library: &BenchLibrary, scratch: &Path) -> anyhow::Result<ImageFlood> {
    let films = scratch.join("image-flood-library");
    let folder = films.join("Poster Flood (2020)");
    std::fs::create_dir_all(&folder)?;
    std::fs::copy(&library.static_film, folder.join("Poster Flood (2020).mp4"))?;
    let (width, height) = POSTER_SIZE;
    ephyra_testsupport::media::generate_poster_sized(&folder.join("poster.jpg"), width, height)
        .await?;
    let env = [
        (
            "EPHYRA_LIBRARIES",
            format!("movies:Films={}", films.display()),
        ),
        ("EPHYRA_IMAGE_CACHE_MAX_MIB", IMAGE_CACHE_MIB.to_string()),
    ];
    let (server, client) = crate::api::single_server(library, scratch, "image-flood", &env).await?;
    let (_, items) = client
        .get_json("/Items?Recursive=true&IncludeItemTypes=Movie")
        .await?;
    let id = items["Items"][0]["Id"]
        .as_str()
        .context("the poster's film")?
        .to_owned();
    let pid = server.pid().context("the server exited")?;
    let (before_kib, _) = memory_kib(pid)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let sampler = RssSampler::start(pid);
    let started = Instant::now();
    let answers: Vec<u16> = futures::stream::iter(0..IMAGE_SIZES)
        .map(|i| {
            let http = http.clone();
            let url = format!(
                "{}/Items/{id}/Images/Primary?maxWidth={}&quality=90",
                server.url,
                200 + i
            );
            async move {
                match http.get(url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        // Read the body, as a client would.
                        r.bytes().await.map_or(0, |_| status)
                    }
                    Err(_) => 0,
                }
            }
        })
        .buffer_unordered(IMAGE_CONCURRENCY)
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    let peak_kib = sampler.finish();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after_kib, _) = memory_kib(pid)?;
    let mut statuses = BTreeMap::new();
    for status in answers {
        *statuses.entry(status).or_insert(0) += 1;
    }
    let cache = scratch.join("image-flood").join("data").join("image-cache");
    let cache_bytes = std::fs::read_dir(&cache)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    eprintln!(
        "bench: {IMAGE_SIZES} sizes of a {width}x{height} poster: {statuses:?}, {seconds:.1} s, peak RSS {:.1} MiB",
        crate::machine::mib(peak_kib)
    );
    Ok(ImageFlood {
        before_kib,
        statuses,
        seconds,
        peak_kib,
        after_kib,
        cache_bytes,
        cache_limit_bytes: IMAGE_CACHE_MIB << 20,
    })
}

async fn login_flood(server: &ServerProcess) -> anyhow::Result<LoginFlood> {
    let pid = server.pid().context("the server exited")?;
    let (before_kib, _) = memory_kib(pid)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let url = format!("{}/Users/AuthenticateByName", server.url);
    let mut waves = Vec::new();
    for wave in 0..WAVES {
        let sampler = RssSampler::start(pid);
        let started = Instant::now();
        let logins = (0..LOGINS_PER_WAVE).map(|i| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.post(url)
                    .header(
                        "Authorization",
                        format!(
                            r#"MediaBrowser Client="flood", Device="d", DeviceId="flood-{wave}-{i}", Version="1""#
                        ),
                    )
                    .header(
                        "X-Forwarded-For",
                        format!("10.{}.{}.{}", 77 + wave, i / 250, i % 250 + 1),
                    )
                    .json(&json!({"Username": format!("nobody-{wave}-{i}"), "Pw": "wrong"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        });
        let answers = futures::future::join_all(logins).await;
        let seconds = started.elapsed().as_secs_f64();
        let peak_kib = sampler.finish();
        let mut statuses = BTreeMap::new();
        let mut failed = 0;
        for answer in answers {
            match answer {
                Ok(status) => *statuses.entry(status).or_insert(0) += 1,
                Err(_) => failed += 1,
            }
        }
        eprintln!(
            "bench: wrong logins, wave {}: {statuses:?}, {failed} unanswered, {seconds:.1} s, peak RSS {:.1} MiB",
            wave + 1,
            crate::machine::mib(peak_kib)
        );
        waves.push(Wave {
            statuses,
            failed,
            seconds,
            peak_kib,
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (after_kib, hwm_kib) = memory_kib(pid)?;
    let mut again = JellyfinClient::new(&server.url, "after-flood");
    let right_password_after = again.login(ADMIN_USER, ADMIN_PASSWORD).await.is_ok();
    Ok(LoginFlood {
        before_kib,
        waves,
        hwm_kib,
        after_kib,
        right_password_after,
    })
}

async fn other_flood(wrk: &Wrk, server: &ServerProcess) -> anyhow::Result<OtherFlood> {
    let pid = server.pid().context("the server exited")?;
    let (before_kib, _) = memory_kib(pid)?;
    let http = reqwest::Client::new();
    let url = format!("{}/QuickConnect/Initiate", server.url);
    // The longest header fields the server accepts in full, from as many addresses.
    let field = "y".repeat(500);
    let sampler = RssSampler::start(pid);
    let answers: Vec<_> = futures::stream::iter(0..QUICK_CONNECTS)
        .map(|i| {
            let (http, url, field) = (http.clone(), url.clone(), field.clone());
            async move {
                http.post(url)
                    .header(
                        "Authorization",
                        format!(
                            r#"MediaBrowser Client="{field}", Device="{field}", DeviceId="{i}{field}", Version="{field}""#
                        ),
                    )
                    .header("X-Forwarded-For", format!("10.{}.{}.1", i / 250, i % 250))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let quick_connect_peak_kib = sampler.finish();
    let (quick_connect_after_kib, _) = memory_kib(pid)?;
    let mut quick_connect = BTreeMap::new();
    for answer in answers {
        *quick_connect.entry(answer.unwrap_or(0)).or_insert(0) += 1;
    }
    eprintln!(
        "bench: {QUICK_CONNECTS} QuickConnect initiations: {quick_connect:?}, peak RSS {:.1} MiB",
        crate::machine::mib(quick_connect_peak_kib)
    );
    let sampler = RssSampler::start(pid);
    let mut gets = Vec::new();
    for path in ["/System/Info/Public", "/Users/Public"] {
        let url = format!("{}{path}", server.url);
        let load = Load {
            url: &url,
            connections: 64,
            auth: None,
            range: None,
        };
        let key = format!("flood{}", path.replace('/', "."));
        gets.push((path.to_owned(), wrk.run(&key, load).await?));
    }
    let gets_peak_kib = sampler.finish();
    let (_, hwm_kib) = memory_kib(pid)?;
    Ok(OtherFlood {
        before_kib,
        quick_connect,
        quick_connect_peak_kib,
        quick_connect_after_kib,
        gets,
        gets_peak_kib,
        hwm_kib,
    })
}

//! The official Jellyfin clients for browsers:
//!
//! - the TypeScript SDK (`@jellyfin/sdk` 1.0.0 with axios, `e2e/clients/node`) over the calls
//!   the web client's journeys make (settings after sign-in, home, a library page, an item page,
//!   the player's checks, the dashboard, user management), against one server on SQLite;
//! - the web client itself (a built jellyfin-web, taken from `EPHYRA_TEST_WEB_DIR`, never kept
//!   in this repository) in Debian's Chromium through playwright-core, against two replicas on
//!   PostgreSQL and Redis behind HAProxy: the first-run wizard, sign in, browse, search, play a
//!   film directly, play an HEVC + AC-3 episode transcoded over HLS with its `.srt` shown, kill
//!   the replica the browser is stuck to while the episode plays, play on, stop, and find both
//!   in Continue Watching, resume the film where it stopped, sign a second browser in by
//!   QuickConnect, open the dashboard's users and libraries, sign out; with screenshots in `EPHYRA_TEST_WEB_OUT` (default
//!   `target/web-client`). Without `EPHYRA_TEST_WEB_DIR` that test says it was skipped and
//!   passes.
//!
//! The node packages come from `e2e/clients/node/package-lock.json` (`scripts/ensure-deps.sh`
//! installs them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ephyra_e2e::wait::eventually;
use ephyra_e2e::{Haproxy, JellyfinClient, LocalCluster, ServerProcess};
use ephyra_testsupport::media::{
    Codecs, Container, VideoSpec, generate_coded_video, generate_library, generate_video_with,
};
use serde_json::Value;

const ADMIN: &str = "alice";
const PASSWORD: &str = "correct horse";
/// A film longer than five minutes: shorter ones count as played at once and never show in
/// Continue Watching (Jellyfin's rule).
const LONG_FILM: &str = "Long Voyage";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn node_clients() -> PathBuf {
    let dir = workspace().join("e2e/clients/node");
    assert!(
        dir.join("node_modules/@jellyfin/sdk").exists()
            && dir.join("node_modules/playwright-core").exists(),
        "{}/node_modules is missing: run scripts/ensure-deps.sh",
        dir.display()
    );
    dir
}

/// A server over the sample library plus a long H.264/AAC mp4, with an administrator; returns
/// once the long film is scanned.
async fn server_with_library(dir: &Path, name: &str) -> anyhow::Result<ServerProcess> {
    let library = generate_library(&dir.join("media")).await?;
    let long_film = library.films_dir.join(format!("{LONG_FILM} (2020).mp4"));
    let small = VideoSpec {
        seconds: 320,
        width: 320,
        height: 180,
        fps: 8,
        keyframe_interval: 16,
    };
    generate_video_with(&long_film, small, Container::Mp4).await?;
    let libraries = format!(
        "movies:Films={};tvshows:Series={}",
        library.films_dir.display(),
        library.series_dir.display()
    );
    let env = [
        ("EPHYRA_DATA_DIR", dir.join("data").display().to_string()),
        ("EPHYRA_LIBRARIES", libraries),
        ("EPHYRA_ADMIN_USER", ADMIN.to_owned()),
        ("EPHYRA_ADMIN_PASSWORD", PASSWORD.to_owned()),
    ];
    let server = ServerProcess::start(name, &env, dir).await?;
    let mut client = JellyfinClient::new(&server.url, "web-client-setup");
    client.login(ADMIN, PASSWORD).await?;
    eventually(
        "the startup scan to find the long film",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            match client.film_id(LONG_FILM).await {
                Ok(Some(id)) => Ok(id),
                Ok(None) => Err("not scanned yet".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await?;
    Ok(server)
}

/// Runs `node <script> <args>` in `e2e/clients/node`; its stdout parsed as JSON.
fn run_node(script: &str, args: &[&str], server: &ServerProcess) -> Value {
    let out = Command::new("node")
        .current_dir(node_clients())
        .arg(script)
        .args(args)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed:\nstdout: {stdout}\nstderr: {stderr}\nserver log:\n{}",
        server.log()
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{script} printed {stdout}: {e}"))
}

#[tokio::test]
async fn the_typescript_sdk_walks_the_web_clients_calls_and_manages_users() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_library(dir.path(), "sdk-check").await.unwrap();
    let seen = run_node("sdk_check.mjs", &[&server.url, ADMIN, PASSWORD], &server);

    assert_eq!(seen["signedInAs"], ADMIN);
    assert_eq!(seen["savedHomeSection"], "resume");
    assert_eq!(
        seen["views"],
        serde_json::json!([["Films", "movies"], ["Series", "tvshows"]])
    );
    assert_eq!(
        seen["films"],
        serde_json::json!(["Big Buck Test", "Long Voyage", "Tiny Planet"])
    );
    assert_eq!(
        seen["filmsStartingWithT"],
        serde_json::json!(["Tiny Planet"])
    );
    assert_eq!(seen["years"], serde_json::json!([2021, 2020, 2019]));
    assert_eq!(seen["latestCount"], 3);
    assert_eq!(
        seen["similar"].as_array().map(Vec::len),
        Some(2),
        "the other films: {seen}"
    );
    assert_eq!(seen["isInNetwork"], true, "the test runs on 127.0.0.1");
    assert_eq!(seen["bitrateTestBytes"], 200_000);
    assert_eq!(seen["scanTaskStarted"], true);
    assert_eq!(
        seen["virtualFolders"],
        serde_json::json!([["Films", "movies"], ["Series", "tvshows"]])
    );
    assert!(seen["cultures"].as_u64().unwrap_or(0) > 5);
    assert!(seen["devices"].as_u64().unwrap_or(0) >= 2);
    assert_eq!(seen["guestSubtitleLanguage"], "fra");
    assert_eq!(seen["disabledGuestStatus"], 401);
    assert_eq!(seen["deletedGuestStatus"], 404);
}

/// The series the transcoding journey plays: HEVC with AC-3 5.1, which Chromium cannot play as
/// it is, with an English `.srt` beside it.
const TRANSCODED_SHOW: &str = "Harbour Lights";
/// Its episode's length: past Jellyfin's 300 s below which a stopped item counts as played
/// (and so never shows in Continue Watching).
const TRANSCODED_SECONDS: u32 = 310;
/// The user the wizard creates.
const WIZARD_ADMIN: &str = "household";
const WIZARD_PASSWORD: &str = "kitchen table 42";

/// An `.srt` with one cue every three seconds for `seconds`, so any moment shows a line.
fn srt(seconds: u32) -> String {
    let stamp = |s: u32| format!("00:{:02}:{:02},000", s / 60, s % 60);
    (0..seconds / 3)
        .map(|n| {
            let from = n * 3;
            format!(
                "{}\n{} --> {}\nHarbour line {}\n\n",
                n + 1,
                stamp(from),
                stamp(from + 3),
                n + 1
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_web_client_from_the_wizard_to_continue_watching_across_a_replica_kill() {
    let Some(web_dir) = std::env::var_os("EPHYRA_TEST_WEB_DIR").map(PathBuf::from) else {
        println!(
            "skipped: set EPHYRA_TEST_WEB_DIR to a built jellyfin-web (its dist/ folder) to \
             run the web client in Chromium"
        );
        return;
    };
    assert!(
        web_dir.join("index.html").exists(),
        "EPHYRA_TEST_WEB_DIR={} has no index.html",
        web_dir.display()
    );
    assert!(
        Path::new("/usr/bin/chromium").exists() || std::env::var_os("EPHYRA_CHROMIUM").is_some(),
        "/usr/bin/chromium is missing: run scripts/ensure-deps.sh"
    );
    let out = std::env::var_os("EPHYRA_TEST_WEB_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/web-client"));

    // The cluster's library plus a show the browser must have transcoded, with subtitles.
    let extra = tempfile::tempdir().unwrap();
    let season = extra.path().join(TRANSCODED_SHOW).join("Season 01");
    let episode = season.join(format!("{TRANSCODED_SHOW} S01E01.mkv"));
    generate_coded_video(&episode, TRANSCODED_SECONDS, Codecs::HevcAc3Surround)
        .await
        .unwrap();
    std::fs::write(
        season.join(format!("{TRANSCODED_SHOW} S01E01.en.srt")),
        srt(TRANSCODED_SECONDS),
    )
    .unwrap();
    let library = ephyra_e2e::cluster::ha_library().await.unwrap();
    let libraries = format!(
        "movies:Films={};tvshows:Series={},{}",
        library.films_dir.display(),
        library.series_dir.display(),
        extra.path().display()
    );
    let mut cluster = LocalCluster::builder(2)
        .without_admin()
        .env("EPHYRA_LIBRARIES", libraries)
        .env("EPHYRA_WEB_DIR", web_dir.display().to_string())
        .start()
        .await
        .unwrap();
    let haproxy = Haproxy::start(&cluster.backends()).await.unwrap();
    let replicas: serde_json::Map<String, Value> = (0..cluster.len())
        .map(|i| {
            (
                cluster.name(i).to_owned(),
                Value::from(cluster.pid(i).unwrap_or_default()),
            )
        })
        .collect();

    let script = node_clients().join("webclient.mjs");
    let out_text = out.display().to_string();
    let output = Command::new("node")
        .current_dir(node_clients())
        .arg(&script)
        .args([&haproxy.url, WIZARD_ADMIN, WIZARD_PASSWORD, &out_text])
        .env("EPHYRA_WEB_REPLICAS", Value::Object(replicas).to_string())
        .env("EPHYRA_WEB_EPISODE_SERIES", TRANSCODED_SHOW)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("web client report: {stdout}");
    println!("screenshots in {}", out.display());
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "webclient.mjs printed no report ({e}):\nstdout: {stdout}\nstderr: {stderr}\nlogs:\n{}",
            cluster.logs()
        )
    });
    let passed: Vec<&str> = report["journeys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["ok"] == true)
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(
        passed,
        [
            "wizard",
            "sign-in",
            "library",
            "search",
            "film-details",
            "play-direct",
            "episode-transcoded",
            "subtitles",
            "replica-killed",
            "continue-watching",
            "resume",
            "quick-connect",
            "dashboard",
            "sign-out"
        ],
        "journeys: {}\nstderr: {stderr}\nlogs:\n{}",
        report["journeys"],
        cluster.logs()
    );
    // The killed replica is really gone, and it was the one the browser was stuck to.
    let killed = report["killedReplica"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let killed = cluster.index_of(&killed).expect("a replica name");
    assert!(!cluster.is_running(killed));
    // No page of these journeys met a missing endpoint or a server error. (Requests in
    // flight to the killed replica are redispatched by the load balancer, not failed.)
    let failures: Vec<&Value> = report["httpErrors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["status"] == 404 || e["status"].as_u64().unwrap_or(0) >= 500)
        .collect();
    assert!(
        failures.is_empty(),
        "requests that failed: {failures:?}\nlogs:\n{}",
        cluster.logs()
    );
    assert!(
        report["screenshots"]
            .as_array()
            .is_some_and(|s| s.len() >= 15)
    );
}

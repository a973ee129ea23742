//! The official Jellyfin clients for browsers against a running server on SQLite:
//!
//! - the TypeScript SDK (`@jellyfin/sdk` 1.0.0 with axios, `e2e/clients/node`) over the calls
//!   the web client's journeys make (settings after sign-in, home, a library page, an item page,
//!   the player's checks, the dashboard, user management);
//! - the web client itself (a built jellyfin-web, taken from `EPHYRA_TEST_WEB_DIR`, never kept
//!   in this repository) in Debian's Chromium through playwright-core: sign in, browse, search,
//!   open a film, play it directly, stop, find it in Continue Watching, sign out, with
//!   screenshots in `EPHYRA_TEST_WEB_OUT` (default `target/web-client`). Without
//!   `EPHYRA_TEST_WEB_DIR` that test says it was skipped and passes.
//!
//! The node packages come from `e2e/clients/node/package-lock.json` (`scripts/ensure-deps.sh`
//! installs them).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ephyra_e2e::wait::eventually;
use ephyra_e2e::{JellyfinClient, ServerProcess};
use ephyra_testsupport::media::{Container, VideoSpec, generate_library, generate_video_with};
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

/// A server over the sample library plus a long H.264/AAC mp4, with an administrator, and
/// `web_dir` served at `/web/`; returns once the long film is scanned.
async fn server_with_library(
    dir: &Path,
    name: &str,
    web_dir: Option<&Path>,
) -> anyhow::Result<ServerProcess> {
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
    let mut env = vec![
        ("EPHYRA_DATA_DIR", dir.join("data").display().to_string()),
        ("EPHYRA_LIBRARIES", libraries),
        ("EPHYRA_ADMIN_USER", ADMIN.to_owned()),
        ("EPHYRA_ADMIN_PASSWORD", PASSWORD.to_owned()),
    ];
    if let Some(web) = web_dir {
        env.push(("EPHYRA_WEB_DIR", web.display().to_string()));
    }
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
    let server = server_with_library(dir.path(), "sdk-check", None)
        .await
        .unwrap();
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

#[tokio::test]
async fn the_official_web_client_signs_in_browses_plays_and_resumes_in_chromium() {
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
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_library(dir.path(), "web-client", Some(&web_dir))
        .await
        .unwrap();
    let out_text = out.display().to_string();
    let report = run_node(
        "webclient.mjs",
        &[&server.url, ADMIN, PASSWORD, &out_text],
        &server,
    );
    println!("web client report: {report}");
    println!("screenshots in {}", out.display());

    let journeys: Vec<&str> = report["journeys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|j| j["ok"] == true)
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(
        journeys,
        [
            "sign-in",
            "library",
            "search",
            "film-details",
            "play-direct",
            "continue-watching",
            "sign-out"
        ]
    );
    // No page of these journeys may meet a missing endpoint or a server error.
    let failures: Vec<&Value> = report["httpErrors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["status"] == 404 || e["status"].as_u64().unwrap_or(0) >= 500)
        .collect();
    assert!(
        failures.is_empty(),
        "requests that failed: {failures:?}\nserver log:\n{}",
        server.log()
    );
    assert!(
        report["screenshots"]
            .as_array()
            .is_some_and(|s| s.len() >= 7)
    );
}

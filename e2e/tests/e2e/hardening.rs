//! Memory of a real server process under the anonymous and low-privilege floods an outside
//! audit used, each with a stated ceiling on the resident set (`VmHWM`, the peak,
//! from `/proc/<pid>/status`): concurrent failed logins (argon2 is bounded), QuickConnect
//! initiations (field sizes and counts are bounded), and WebSockets with huge messages from
//! one token (message size and sockets per token are bounded). The figures are printed for
//! docs/benchmarks.md.

use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use ephyra_e2e::{JellyfinClient, ServerProcess};
use futures::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// The audit measured RSS going from about 200 MB to 1.94 GB with 100 concurrent wrong
/// logins; with at most 2 × cores argon2 computations (19 MiB each) the growth stays small.
const LOGIN_FLOOD_GROWTH_CEILING_MIB: u64 = 192;

/// 3,000 initiations added 700 MB before; now each request keeps at most about 2.5 KiB.
const QUICK_CONNECT_GROWTH_CEILING_MIB: u64 = 64;

/// 24 sockets of one token with 10 MiB messages took 1.5 GB before; now 8 sockets are
/// accepted and any message over 64 KiB closes its socket.
const SOCKET_GROWTH_CEILING_MIB: u64 = 64;

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// A server on SQLite with an administrator `boss`, trusting 127.0.0.1 as its proxy so the
/// tests can speak for many client addresses through `X-Forwarded-For`.
async fn server(dir: &std::path::Path, name: &str) -> Result<ServerProcess> {
    Ok(ServerProcess::start(
        name,
        &[
            ("EPHYRA_DATA_DIR", dir.join("data").display().to_string()),
            ("EPHYRA_ADMIN_USER", "boss".to_owned()),
            ("EPHYRA_ADMIN_PASSWORD", "boss-password".to_owned()),
            ("EPHYRA_TRUSTED_PROXIES", "127.0.0.1/32".to_owned()),
            ("EPHYRA_LOG", "warn".to_owned()),
        ],
        dir,
    )
    .await?)
}

fn report(what: &str, before_kib: u64, peak_kib: u64, ceiling_mib: u64) {
    eprintln!(
        "memory under {what}: RSS {:.1} MiB before, peak {:.1} MiB (growth {:.1} MiB, ceiling {ceiling_mib} MiB)",
        before_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0,
        peak_kib.saturating_sub(before_kib) as f64 / 1024.0
    );
}

#[tokio::test]
async fn a_hundred_concurrent_wrong_logins_keep_memory_bounded() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server(dir.path(), "login-flood").await?;
    let pid = server.pid().context("pid")?;
    let mut admin = JellyfinClient::new(&server.url, "warm-up");
    admin.login("boss", "boss-password").await?;
    let (before, _) = memory_kib(pid)?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let logins = (0..100u32).map(|i| {
        let http = http.clone();
        let url = format!("{}/Users/AuthenticateByName", server.url);
        async move {
            http.post(url)
                .header(
                    "Authorization",
                    format!(
                        r#"MediaBrowser Client="flood", Device="d", DeviceId="flood-{i}", Version="1""#
                    ),
                )
                // A hundred clients, as a proxy in front would name them.
                .header("X-Forwarded-For", format!("10.77.{}.{}", i / 250, i % 250 + 1))
                .json(&json!({"Username": format!("nobody-{i}"), "Pw": "wrong"}))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    let statuses = futures::future::join_all(logins).await;
    let (_, peak) = memory_kib(pid)?;
    let mut refused = 0;
    let mut busy = 0;
    for status in statuses {
        match status? {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::SERVICE_UNAVAILABLE => busy += 1,
            other => anyhow::bail!("unexpected {other}"),
        }
    }
    eprintln!("100 wrong logins: {refused} refused (401), {busy} told to retry (503)");
    report(
        "100 concurrent wrong logins",
        before,
        peak,
        LOGIN_FLOOD_GROWTH_CEILING_MIB,
    );
    ensure!(
        peak.saturating_sub(before) < LOGIN_FLOOD_GROWTH_CEILING_MIB * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    // The server still answers the right password.
    let mut again = JellyfinClient::new(&server.url, "after");
    again.login("boss", "boss-password").await?;
    Ok(())
}

#[tokio::test]
async fn three_thousand_quick_connect_initiations_keep_memory_bounded() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server(dir.path(), "quick-connect-flood").await?;
    let pid = server.pid().context("pid")?;
    let http = reqwest::Client::new();
    let url = format!("{}/QuickConnect/Initiate", server.url);
    let (before, _) = memory_kib(pid)?;

    // The audit's 60 KB fields are refused outright.
    let huge = "x".repeat(60 * 1024);
    let status = http
        .post(&url)
        .header(
            "Authorization",
            format!(r#"MediaBrowser Client="{huge}", Device="{huge}", DeviceId="{huge}", Version="{huge}""#),
        )
        .send()
        .await?
        .status();
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 3,000 initiations with the longest fields allowed, from 3,000 addresses.
    let field = "y".repeat(500);
    let initiations = futures::stream::iter(0..3000u32)
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
                    .map(|r| r.status())
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let accepted = initiations
        .into_iter()
        .filter(|s| matches!(s, Ok(StatusCode::OK)))
        .count();
    assert_eq!(accepted, 3000);
    // One address gets its ten.
    let mut from_one = Vec::new();
    for _ in 0..11 {
        from_one.push(
            http.post(&url)
                .header(
                    "Authorization",
                    r#"MediaBrowser Client="c", Device="d", DeviceId="one", Version="1""#,
                )
                .header("X-Forwarded-For", "192.0.2.1")
                .send()
                .await?
                .status(),
        );
    }
    assert_eq!(
        from_one.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{from_one:?}"
    );

    let (_, peak) = memory_kib(pid)?;
    report(
        "3,000 QuickConnect initiations",
        before,
        peak,
        QUICK_CONNECT_GROWTH_CEILING_MIB,
    );
    ensure!(
        peak.saturating_sub(before) < QUICK_CONNECT_GROWTH_CEILING_MIB * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    Ok(())
}

#[tokio::test]
async fn two_dozen_sockets_with_huge_messages_from_one_token_keep_memory_bounded() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let server = server(dir.path(), "socket-flood").await?;
    let pid = server.pid().context("pid")?;
    let mut admin = JellyfinClient::new(&server.url, "admin-device");
    admin.login("boss", "boss-password").await?;
    let created = admin
        .post(
            "/Users/New",
            json!({"Name": "viewer", "Password": "viewer-pw"}),
        )
        .await?;
    assert_eq!(created, StatusCode::OK);
    let mut viewer = JellyfinClient::new(&server.url, "viewer-device");
    let token = viewer.login("viewer", "viewer-pw").await?.token;
    let (before, _) = memory_kib(pid)?;

    let ws_url = format!(
        "{}/socket?api_key={token}",
        server.url.replacen("http://", "ws://", 1)
    );
    let mut sockets = Vec::new();
    let mut refused = 0;
    for _ in 0..24 {
        match tokio_tungstenite::connect_async(&ws_url).await {
            Ok((socket, _)) => sockets.push(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 429 => {
                refused += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    eprintln!(
        "24 sockets of one token: {} accepted, {refused} refused (429)",
        sockets.len()
    );
    assert!(sockets.len() <= 8, "{} sockets accepted", sockets.len());

    let huge = "z".repeat(10 * 1024 * 1024);
    for socket in &mut sockets {
        // The server may close before the whole message is sent.
        let _ = socket.send(Message::Text(huge.clone().into())).await;
    }
    for socket in &mut sockets {
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match socket.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "a socket with a 10 MiB message stayed open");
    }
    let (_, peak) = memory_kib(pid)?;
    report(
        "24 sockets with 10 MiB messages",
        before,
        peak,
        SOCKET_GROWTH_CEILING_MIB,
    );
    ensure!(
        peak.saturating_sub(before) < SOCKET_GROWTH_CEILING_MIB * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    Ok(())
}

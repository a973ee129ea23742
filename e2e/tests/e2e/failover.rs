//! Failover through HAProxy: clients stream a film by byte ranges and report progress, each
//! stuck to a replica by HAProxy's cookie. The replica most of them are stuck to is SIGKILLed.
//! Every displaced client's next requests succeed on the survivor with the same token (no new
//! login), and the last position the server acknowledged to it is there. The gap each client
//! saw (first failed request to next success) is measured and printed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ephyra_e2e::client::TICKS_PER_SECOND;
use ephyra_e2e::cluster::{LONG_FILM, LONG_FILM_SECONDS};
use ephyra_e2e::{Haproxy, JellyfinClient, LocalCluster};
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::Mutex;

/// Clients playing at once.
const CLIENTS: usize = 4;
/// Bytes per range request.
const CHUNK: u64 = 16 * 1024;
/// A displaced client may retry for this long before the test fails.
const RETRY_WINDOW: Duration = Duration::from_secs(10);
/// Rounds every client must complete after the kill.
const ROUNDS_AFTER: u32 = 5;

/// What one playing client saw.
#[derive(Debug, Default)]
struct Playback {
    /// The last position the server acknowledged (204 to a progress report).
    acked: i64,
    /// Rounds completed (range read, compared, progress acknowledged).
    rounds: u32,
    /// The position the server held when the client first read it after the kill, with the
    /// last acknowledged one and the one in flight (sent, unanswered) at that moment.
    after_kill: Option<(i64, i64, i64)>,
    /// Rounds completed after the kill.
    rounds_after_kill: u32,
    /// Longest run from a failed request to the next successful one.
    gap: Duration,
    /// How long the first round begun after the kill took (its requests, retries included).
    first_round_after_kill: Option<Duration>,
    /// Failed requests in total.
    failures: u32,
    /// Whether it ever had to log in again (it must not).
    logged_in_again: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_replica_keep_their_token_and_place_on_the_survivor()
-> anyhow::Result<()> {
    let mut cluster = LocalCluster::start(2).await?;
    let haproxy = Haproxy::start(&cluster.backends()).await?;
    let admin = cluster.admin(0, "failover-admin").await?;
    let film = cluster.wait_for_film(&admin, LONG_FILM).await?;
    let film_bytes = std::fs::read(
        cluster
            .library
            .films_dir
            .join(format!("{LONG_FILM} (2020).mkv")),
    )?;
    let size = film_bytes.len() as u64;
    let film_bytes = Arc::new(film_bytes);

    // Each client is its own user (positions are per user) with its own device and token.
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let name = format!("viewer{n}");
        let created = admin
            .post("/Users/New", json!({"Name": name, "Password": "pw"}))
            .await?;
        assert_eq!(created, StatusCode::OK, "creating {name}");
        let mut client = JellyfinClient::new(&haproxy.url, &format!("failover-device-{n}"));
        client.login(&name, "pw").await?;
        client.report_start(&film).await?;
        clients.push(client);
    }

    let killed = Arc::new(AtomicBool::new(false));
    let states: Vec<Arc<Mutex<Playback>>> = (0..CLIENTS)
        .map(|_| Arc::new(Mutex::new(Playback::default())))
        .collect();
    let mut players = Vec::new();
    for (n, client) in clients.iter().enumerate() {
        let (client, state, killed) = (client.clone(), states[n].clone(), killed.clone());
        let (film, film_bytes) = (film.clone(), film_bytes.clone());
        players.push(tokio::spawn(async move {
            play(client, state, killed, film, film_bytes, size, n).await
        }));
    }

    // Let everyone play a little and get stuck to a replica.
    let everyone_playing = ephyra_e2e::wait::eventually(
        "every client to play a few rounds",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async {
            for state in &states {
                if state.lock().await.rounds < 3 {
                    return Err("not yet".to_owned());
                }
            }
            Ok(())
        },
    )
    .await;
    everyone_playing?;
    let stuck: Vec<Option<String>> = clients.iter().map(JellyfinClient::sticky_replica).collect();
    let victim_name = ["r0", "r1"]
        .into_iter()
        .max_by_key(|name| stuck.iter().filter(|s| s.as_deref() == Some(*name)).count())
        .unwrap_or("r0");
    let victim = cluster.index_of(victim_name).unwrap_or(0);
    let displaced: Vec<usize> = (0..CLIENTS)
        .filter(|&n| stuck[n].as_deref() == Some(victim_name))
        .collect();
    assert!(
        !displaced.is_empty(),
        "no client stuck to {victim_name}: {stuck:?}"
    );

    let kill_at = Instant::now();
    cluster.kill(victim);
    killed.store(true, Ordering::SeqCst);
    println!("SIGKILLed {victim_name}; displaced clients: {displaced:?} (stickiness {stuck:?})");
    haproxy
        .wait_state(victim_name, false, Duration::from_secs(5))
        .await?;
    println!(
        "HAProxy marked {victim_name} down after {:?}",
        kill_at.elapsed()
    );

    let mut results = Vec::new();
    for player in players {
        results.push(player.await?);
    }
    let total = kill_at.elapsed();
    for result in &results {
        if let Err(e) = result {
            panic!("a client failed: {e:#}\nhaproxy:\n{}", haproxy.log());
        }
    }

    let survivor_name = cluster.name(1 - victim).to_owned();
    let mut report = Vec::new();
    for (n, client) in clients.iter().enumerate() {
        let state = states[n].lock().await;
        assert!(!state.logged_in_again, "client {n} had to log in again");
        assert!(state.rounds_after_kill >= ROUNDS_AFTER);
        // The same token, through the load balancer, now on the survivor.
        assert_eq!(client.me_status().await?, StatusCode::OK, "client {n}");
        assert_eq!(
            client.sticky_replica().as_deref(),
            Some(survivor_name.as_str()),
            "client {n} is not stuck to the survivor"
        );
        // Right after the failover the survivor held the last acknowledged position (or the
        // one in flight, if its write committed and only the answer was lost) ...
        let (found, acked, in_flight) = state.after_kill.expect("read after the kill");
        assert!(
            found == acked || found == in_flight,
            "client {n}: the survivor held {found}, the last acknowledged was {acked}"
        );
        // ... and at the end, the last acknowledged one.
        assert_eq!(client.position(&film).await?, state.acked, "client {n}");
        if displaced.contains(&n) {
            report.push(format!(
                "client {n} (was on {victim_name}): gap {:?}, {} failed requests, first round after the kill {:?}",
                state.gap, state.failures, state.first_round_after_kill
            ));
        } else {
            report.push(format!(
                "client {n} (on {survivor_name}): gap {:?}, {} failed requests, first round after the kill {:?}",
                state.gap, state.failures, state.first_round_after_kill
            ));
        }
        assert!(
            state.gap < RETRY_WINDOW,
            "client {n} waited {:?}",
            state.gap
        );
    }
    println!("failover gaps after SIGKILL ({total:?} to finish):");
    for line in report {
        println!("  {line}");
    }
    Ok(())
}

/// One client's playback: read the next range of the film, compare it with the file, report
/// the position; on an error, retry the same step until it succeeds (within
/// [`RETRY_WINDOW`]). Stops [`ROUNDS_AFTER`] rounds after the kill.
async fn play(
    client: JellyfinClient,
    state: Arc<Mutex<Playback>>,
    killed: Arc<AtomicBool>,
    film: String,
    film_bytes: Arc<Vec<u8>>,
    size: u64,
    n: usize,
) -> anyhow::Result<()> {
    let token = client.token.clone();
    let runtime = i64::from(LONG_FILM_SECONDS) * TICKS_PER_SECOND;
    // Start at 10 % so every position is a resume point (between 5 % and 90 %).
    let mut position = runtime / 10 + i64::try_from(n).unwrap_or(0) * TICKS_PER_SECOND;
    let mut offset = 0u64;
    let mut failing_since: Option<Instant> = None;
    let mut first_after_kill: Option<Instant> = None;
    loop {
        let after_kill = killed.load(Ordering::SeqCst);
        if after_kill && first_after_kill.is_none() {
            first_after_kill = Some(Instant::now());
        }
        let last = (offset + CHUNK - 1).min(size - 1);
        let check_position = after_kill && state.lock().await.after_kill.is_none();
        let step = async {
            if check_position {
                let found = client.position(&film).await?;
                let mut s = state.lock().await;
                s.after_kill = Some((found, s.acked, position));
            }
            let bytes = client.stream_range(&film, offset, last).await?;
            let first = usize::try_from(offset)?;
            anyhow::ensure!(
                bytes[..] == film_bytes[first..first + bytes.len()],
                "range {offset}-{last} differs from the file"
            );
            client.report_progress(&film, position).await
        };
        match step.await {
            Ok(()) => {
                let mut s = state.lock().await;
                s.acked = position;
                s.rounds += 1;
                if let Some(since) = failing_since.take() {
                    s.gap = s.gap.max(since.elapsed());
                }
                if after_kill {
                    if s.first_round_after_kill.is_none() {
                        s.first_round_after_kill = first_after_kill.map(|at| at.elapsed());
                    }
                    s.rounds_after_kill += 1;
                    if s.rounds_after_kill >= ROUNDS_AFTER {
                        return Ok(());
                    }
                }
                drop(s);
                offset = if last + 1 >= size { 0 } else { last + 1 };
                position = (position + 5 * TICKS_PER_SECOND).min(runtime * 8 / 10);
            }
            Err(error) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                let mut s = state.lock().await;
                s.failures += 1;
                anyhow::ensure!(
                    since.elapsed() < RETRY_WINDOW,
                    "client {n} failed for {:?}: {error:#}",
                    since.elapsed()
                );
                // A refused token would show up here as 401; the client never logs in again.
                s.logged_in_again = client.token != token;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

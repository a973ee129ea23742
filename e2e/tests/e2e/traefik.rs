//! Failover through the real Traefik v3, configured with what the operator renders (the sticky
//! cookie, the middlewares, the passive health check), and an endpoints controller that drops a
//! replica from the servers list once its readiness fails, as Kubernetes' EndpointSlices do.
//!
//! Clients poll the API every 100 ms, each stuck to a replica by Traefik's cookie; the replica
//! most of them are on is SIGKILLed. Two runs: the route as the operator rendered it before
//! (sticky cookie only: the displaced clients' requests get `502` until the endpoints drop the
//! dead pod), and the route it renders now, with which no request fails (not even one in flight
//! at the kill: see `traefik_resends_a_cut_get_to_a_live_replica_but_never_a_cut_post`). Both
//! figures are printed (docs/ha.md quotes them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ephyra_crd::MediaServerCluster;
use ephyra_e2e::client::STICKY_COOKIE;
use ephyra_e2e::traefik::Traefik;
use ephyra_e2e::{JellyfinClient, LocalCluster};
use ephyra_operator::build::ingress_route::{
    ingress_route_value, middleware_value, retry_middleware_value,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// Clients polling at once.
const CLIENTS: usize = 4;
/// Time between one client's requests.
const POLL: Duration = Duration::from_millis(100);
/// How long clients keep polling after the kill.
const AFTER_KILL: Duration = Duration::from_secs(4);

/// What the clients saw in one run.
#[derive(Debug, Default)]
struct Outcome {
    /// Requests that got no answer or a `5xx`, by status (0: no answer).
    failures: Vec<u16>,
    /// Requests answered with success.
    ok: u32,
    /// Clients that were stuck to the killed replica.
    displaced: usize,
}

/// The route and middlewares the operator renders for a cluster whose cookie is the one the
/// test client keeps; `legacy` strips what removes the `502`s (the rendering before it).
fn rendered(legacy: bool) -> anyhow::Result<(Value, Vec<Value>)> {
    let msc: MediaServerCluster = serde_json::from_value(json!({
        "apiVersion": "ephyra.io/v1alpha1",
        "kind": "MediaServerCluster",
        "metadata": {"name": "traefik-e2e", "namespace": "media", "uid": "e2e-uid", "generation": 1},
        "spec": {
            "media": {"nfs": {"server": "nas.test", "path": "/export/media"}},
            "ingress": {"host": "media.test", "stickyCookie": {"name": STICKY_COOKIE}},
        },
    }))?;
    let v = ephyra_operator::validate::validate(&msc).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut route = ingress_route_value(&v).ok_or_else(|| anyhow::anyhow!("no route"))?;
    let headers = middleware_value(&v).ok_or_else(|| anyhow::anyhow!("no middleware"))?;
    let retry = retry_middleware_value(&v).ok_or_else(|| anyhow::anyhow!("no retry"))?;
    if legacy {
        let rule = &mut route["spec"]["routes"][0];
        rule["middlewares"] = json!([{"name": headers["metadata"]["name"]}]);
        if let Some(service) = rule["services"][0].as_object_mut() {
            service.remove("passiveHealthCheck");
        }
    }
    Ok((route, vec![headers, retry]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_with_the_rendered_route_gives_displaced_clients_no_failed_request()
-> anyhow::Result<()> {
    let mut cluster = LocalCluster::start(2).await?;
    let admin = cluster.admin(0, "traefik-admin").await?;
    for n in 0..CLIENTS {
        let created = admin
            .post(
                "/Users/New",
                json!({"Name": format!("traefik{n}"), "Password": "pw"}),
            )
            .await?;
        assert_eq!(created, StatusCode::OK);
    }

    let (legacy_route, legacy_mws) = rendered(true)?;
    let before = run(
        &mut cluster,
        &legacy_route,
        &legacy_mws,
        "sticky cookie only",
    )
    .await?;

    let (route, mws) = rendered(false)?;
    let after = run(&mut cluster, &route, &mws, "as rendered now").await?;

    println!(
        "Traefik failover, {CLIENTS} clients polling every {POLL:?}: sticky cookie only: {} failed \
         requests {:?} ({} displaced clients); as rendered now (retry + passive health check): {} \
         failed requests {:?} ({} displaced clients)",
        before.failures.len(),
        before.failures,
        before.displaced,
        after.failures.len(),
        after.failures,
        after.displaced
    );
    assert!(after.displaced > 0, "no client was on the killed replica");
    // What the rendered route removes: the run of 502s until the endpoints drop the dead pod,
    // and the request already written to the replica when it died (Traefik answers it 502
    // itself and the retry on that status sends it to a live replica; a POST would not be
    // resent). Measured before the status retry: 0-2 failed per run.
    assert!(
        after.failures.is_empty(),
        "clients saw failed requests through the rendered route: {:?}",
        after.failures
    );
    assert!(after.ok > 0 && before.ok > 0);
    Ok(())
}

/// One run: Traefik over both replicas, clients polling, the busiest replica killed, its
/// clients measured, then the replica started again for the next run.
async fn run(
    cluster: &mut LocalCluster,
    route: &Value,
    middlewares: &[Value],
    label: &str,
) -> anyhow::Result<Outcome> {
    let backends = cluster.backends();
    let traefik = Traefik::start(route, middlewares, &backends).await?;
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let mut client = JellyfinClient::new(&traefik.url, &format!("traefik-device-{n}"));
        client.login(&format!("traefik{n}"), "pw").await?;
        clients.push(client);
    }
    // Which replica each client is stuck to: readiness names the replica that answers.
    let mut stuck = Vec::new();
    for client in &clients {
        let (_, body) = client.get_json("/health/ready").await?;
        stuck.push(body["Replica"].as_str().unwrap_or_default().to_owned());
    }
    let mut names = Vec::new();
    for i in 0..cluster.len() {
        names.push(replica_id(cluster, i).await);
    }
    let victim = (0..cluster.len())
        .max_by_key(|&i| stuck.iter().filter(|s| **s == names[i]).count())
        .unwrap_or(0);
    let displaced = stuck.iter().filter(|s| **s == names[victim]).count();

    let outcome = Arc::new(Mutex::new(Outcome {
        displaced,
        ..Outcome::default()
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for client in &clients {
        let (client, outcome, stop) = (client.clone(), outcome.clone(), stop.clone());
        pollers.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let status = client.me_status().await.map(|s| s.as_u16()).unwrap_or(0);
                let mut o = outcome.lock().await;
                if status == 0 || status >= 500 {
                    o.failures.push(status);
                } else {
                    assert_eq!(status, 200, "a client lost its login");
                    o.ok += 1;
                }
                drop(o);
                tokio::time::sleep(POLL).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = Instant::now();
    cluster.kill(victim);
    let port = backends[victim].1;
    traefik
        .wait_listed(port, false, Duration::from_secs(10))
        .await?;
    println!(
        "{label}: killed {} ({displaced} of {CLIENTS} clients on it); endpoints dropped it after {:?}",
        names[victim],
        killed_at.elapsed()
    );
    tokio::time::sleep(AFTER_KILL).await;
    stop.store(true, Ordering::SeqCst);
    for poller in pollers {
        poller.await?;
    }
    cluster.restart(victim).await?;
    traefik
        .wait_listed(port, true, Duration::from_secs(30))
        .await?;
    let outcome = std::mem::take(&mut *outcome.lock().await);
    if !outcome.failures.is_empty() {
        let log = traefik.log();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        println!("{label}: last lines of Traefik's log:\n{}", tail.join("\n"));
    }
    Ok(outcome)
}

/// The replica id replica `i` reports in its readiness answer.
async fn replica_id(cluster: &LocalCluster, i: usize) -> String {
    let url = format!("{}/health/ready", cluster.url(i));
    let body: Value = match reqwest::get(&url).await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(_) => Value::Null,
    };
    body["Replica"].as_str().unwrap_or_default().to_owned()
}

/// A replica that dies with a request already written to it: a backend that answers its
/// readiness probe but cuts every other request after reading it (what a SIGKILL between
/// request and answer does). Through the rendered route a `GET` cut that way is sent again to
/// the live replica (the retry on the `502` Traefik answers itself); a `POST` is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_resends_a_cut_get_to_a_live_replica_but_never_a_cut_post() -> anyhow::Result<()> {
    let cluster = LocalCluster::start(1).await?;
    let cutter = Cutter::start().await?;
    let (route, mws) = rendered(false)?;
    let backends = vec![
        ("live".to_owned(), cluster.backends()[0].1),
        ("cutter".to_owned(), cutter.port),
    ];

    // GETs from cookie-less clients until the cutter has cut some: every one is answered.
    let traefik = Traefik::start(&route, &mws, &backends).await?;
    let mut gets = 0;
    while cutter.cut(&cutter.gets) == 0 && gets < 40 {
        let status = reqwest::get(format!("{}/System/Info/Public", traefik.url))
            .await?
            .status();
        gets += 1;
        assert_eq!(status, StatusCode::OK, "GET {gets} failed through Traefik");
    }
    let cut_gets = cutter.cut(&cutter.gets);
    assert!(cut_gets > 0, "no GET reached the cutting replica in {gets}");
    drop(traefik);

    // POSTs (a fresh Traefik: the passive health check forgets the cutter) until one is cut:
    // that one fails and reached the cutter exactly once.
    let traefik = Traefik::start(&route, &mws, &backends).await?;
    let http = reqwest::Client::new();
    let mut failed_posts = 0;
    let mut posts = 0;
    while cutter.cut(&cutter.posts) == 0 && posts < 40 {
        let status = http
            .post(format!("{}/Sessions/Playing/Progress", traefik.url))
            .json(&json!({"ItemId": "0", "PositionTicks": 1}))
            .send()
            .await?
            .status();
        posts += 1;
        if status.is_server_error() {
            failed_posts += 1;
        }
    }
    let cut_posts = cutter.cut(&cutter.posts);
    println!(
        "Traefik with the rendered route: {gets} GETs, {cut_gets} cut by a dying replica and \
         all answered 200 by the live one; {posts} POSTs, {cut_posts} cut and {failed_posts} \
         answered 5xx (a POST is never sent twice)"
    );
    assert_eq!(cut_posts, 1, "a cut POST was sent again");
    assert_eq!(failed_posts, 1);
    Ok(())
}

/// A backend that answers `/health/ready` and cuts every other request after reading its head.
struct Cutter {
    port: u16,
    gets: Arc<std::sync::atomic::AtomicUsize>,
    posts: Arc<std::sync::atomic::AtomicUsize>,
}

impl Cutter {
    async fn start() -> anyhow::Result<Cutter> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let gets = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let posts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (g, p) = (gets.clone(), posts.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (g, p) = (g.clone(), p.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).to_lowercase();
                    if text.starts_with("get /health/") {
                        let _ = socket
                            .write_all(
                                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                            )
                            .await;
                        return;
                    }
                    let counter = if text.starts_with("post ") { &p } else { &g };
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Dropped without an answer: the request was written, the replica is gone.
                });
            }
        });
        Ok(Cutter { port, gets, posts })
    }

    fn cut(&self, counter: &std::sync::atomic::AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

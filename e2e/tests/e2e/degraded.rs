//! Degraded modes, over real restarts of Redis and PostgreSQL:
//!
//! - Redis unreachable: replicas keep serving what needs only the database (logins, tokens,
//!   play positions, browsing), no replica acts as leader, readiness says Redis is
//!   unreachable; when Redis returns (empty) a leader is elected again with a higher epoch
//!   and QuickConnect works again.
//! - PostgreSQL unreachable: requests fail fast with 503 and a clear body (never 401: a client
//!   is not logged out by an outage), readiness goes false; everything recovers by itself
//!   when it returns, with the same tokens.

use std::time::{Duration, Instant};

use ephyra_e2e::LocalCluster;
use ephyra_e2e::client::TICKS_PER_SECOND;
use ephyra_e2e::cluster::{LONG_FILM, LONG_FILM_SECONDS, field};
use ephyra_e2e::wait::eventually;
use reqwest::StatusCode;

const LEASE_MILLIS: u64 = 1500;
const RENEW_MILLIS: u64 = 300;
/// How long a replica may take to notice that Redis or PostgreSQL is back.
const RECOVERY: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_replicas_serve_from_the_database_and_nobody_leads_until_it_returns()
-> anyhow::Result<()> {
    let mut cluster = LocalCluster::builder(2)
        .env("EPHYRA_LEASE_MILLIS", LEASE_MILLIS.to_string())
        .env("EPHYRA_RENEW_MILLIS", RENEW_MILLIS.to_string())
        .start()
        .await?;
    let admin = cluster.admin(0, "redis-admin").await?;
    let film = cluster.wait_for_film(&admin, LONG_FILM).await?;
    let (_, epoch_before, _) = cluster.wait_leader(Duration::from_secs(10)).await?;

    cluster.redis.stop().await?;
    let stopped = Instant::now();

    // The leader stops acting as one before its lease could have expired.
    let leaderless_after = eventually(
        "no replica to say it leads",
        Duration::from_millis(LEASE_MILLIS),
        Duration::from_millis(20),
        || async {
            let leaders = cluster.leaders().await;
            if leaders.is_empty() {
                Ok(stopped.elapsed())
            } else {
                Err(format!("leaders: {leaders:?}"))
            }
        },
    )
    .await?;
    println!("Redis stopped: no leader after {leaderless_after:?}");

    // Readiness says so, and the replicas stay in the pool: they still serve.
    for i in 0..2 {
        let readiness = eventually(
            "readiness to report Redis unreachable",
            Duration::from_secs(5),
            Duration::from_millis(50),
            || async {
                let r = cluster.readiness(i).await.ok_or("no answer")?;
                match field(&r.body, "redis").and_then(|v| v.as_str()) {
                    Some("ok") | None => Err(format!("{} {}", r.status, r.body)),
                    Some(_) => Ok(r),
                }
            },
        )
        .await?;
        assert_eq!(readiness.status, 200, "{}", readiness.body);
        assert!(!readiness.is_leader(), "{}", readiness.body);
    }

    // What needs only the database keeps working, on either replica.
    let on_b = admin.on(&cluster.url(1));
    assert_eq!(on_b.me_status().await?, StatusCode::OK);
    let mut fresh = cluster.client(1, "redis-down-device");
    fresh
        .login(
            ephyra_e2e::cluster::ADMIN_USER,
            ephyra_e2e::cluster::ADMIN_PASSWORD,
        )
        .await?;
    let position = i64::from(LONG_FILM_SECONDS / 3) * TICKS_PER_SECOND;
    admin.report_progress(&film, position).await?;
    assert_eq!(on_b.position(&film).await?, position);
    assert!(fresh.film_id(LONG_FILM).await?.is_some());

    cluster.redis.restart().await?;
    let restarted = Instant::now();
    let (leader, epoch_after, _) = cluster.wait_leader(RECOVERY).await?;
    println!(
        "Redis back (empty): {} leads with epoch {epoch_after} after {:?}",
        cluster.name(leader),
        restarted.elapsed()
    );
    assert!(
        epoch_after > epoch_before,
        "the fencing number went back from {epoch_before} to {epoch_after} after Redis lost its keys"
    );
    for i in 0..2 {
        eventually(
            "readiness to report Redis ok",
            RECOVERY,
            Duration::from_millis(50),
            || async {
                let r = cluster.readiness(i).await.ok_or("no answer")?;
                match field(&r.body, "redis").and_then(|v| v.as_str()) {
                    Some("ok") if r.status == 200 => Ok(()),
                    _ => Err(format!("{} {}", r.status, r.body)),
                }
            },
        )
        .await?;
    }
    // QuickConnect lives in Redis: it works across replicas again.
    let tv = cluster.client(0, "redis-tv");
    let request = tv.quick_connect_initiate().await?;
    assert_eq!(
        on_b.quick_connect_authorize(&request.code).await?,
        StatusCode::OK
    );
    assert!(tv.quick_connect_state(&request.secret).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgres_down_requests_fail_fast_with_503_and_everything_recovers_when_it_returns()
-> anyhow::Result<()> {
    let mut cluster = LocalCluster::builder(2).own_postgres().start().await?;
    let admin = cluster.admin(0, "pg-admin").await?;
    let film = cluster.wait_for_film(&admin, LONG_FILM).await?;
    let position = i64::from(LONG_FILM_SECONDS / 2) * TICKS_PER_SECOND;
    admin.report_progress(&film, position).await?;

    cluster
        .postgres()
        .ok_or_else(|| anyhow::anyhow!("no own PostgreSQL"))?
        .stop()
        .await?;

    for i in 0..2 {
        let client = admin.on(&cluster.url(i));
        for path in ["/Users/Me", "/Items?Recursive=true&IncludeItemTypes=Movie"] {
            let asked = Instant::now();
            let (status, body) = client.get_json(path).await?;
            let took = asked.elapsed();
            println!(
                "PostgreSQL down: {} {path} -> {status} in {took:?}",
                cluster.name(i)
            );
            // Never 401: an outage must not log anyone out.
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
            let message = field(&body, "message")
                .and_then(|m| m.as_str())
                .unwrap_or_default();
            assert!(
                message.to_lowercase().contains("database"),
                "{path}: unclear body {body}"
            );
            assert!(took < Duration::from_secs(5), "{path} took {took:?}");
        }
        let asked = Instant::now();
        eventually(
            "readiness to go false",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async {
                match cluster.readiness_within(i, Duration::from_secs(5)).await {
                    Some(r) if r.status == 503 => Ok(()),
                    Some(r) => Err(format!("{} {}", r.status, r.body)),
                    None => Err("no answer".to_owned()),
                }
            },
        )
        .await?;
        println!(
            "PostgreSQL down: {} readiness 503 after {:?}",
            cluster.name(i),
            asked.elapsed()
        );
    }

    cluster
        .postgres()
        .ok_or_else(|| anyhow::anyhow!("no own PostgreSQL"))?
        .restart()
        .await?;
    let restarted = Instant::now();
    for i in 0..2 {
        cluster.wait_ready(i, RECOVERY).await?;
    }
    println!(
        "PostgreSQL back: both replicas ready after {:?}",
        restarted.elapsed()
    );
    for i in 0..2 {
        let client = admin.on(&cluster.url(i));
        assert_eq!(client.me_status().await?, StatusCode::OK);
        assert_eq!(client.position(&film).await?, position);
    }
    let later = position + 10 * TICKS_PER_SECOND;
    admin.report_progress(&film, later).await?;
    assert_eq!(admin.on(&cluster.url(1)).position(&film).await?, later);
    Ok(())
}

//! The API figures: one server on SQLite and one on PostgreSQL (+ Redis), each measured idle
//! and under wrk on `/Users/Me`, `/Items` and an unauthenticated endpoint; nginx's fixed body
//! as the floor; static file serving through HAProxy against nginx; three replicas sharing one
//! PostgreSQL behind HAProxy, with the peak of `pg_stat_activity`.
//!
//! Measures and returns figures; judging them against targets is the report's job.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use ephyra_e2e::cluster::{ADMIN_PASSWORD, ADMIN_USER};
use ephyra_e2e::wait::eventually;
use ephyra_e2e::{Haproxy, JellyfinClient, LocalCluster, ServerProcess};
use ephyra_testsupport::PostgresGuard;
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use crate::library::{BenchLibrary, STATIC_FILM};
use crate::machine::memory_kib;
use crate::nginx::Nginx;
use crate::wrk::{Figures, Load, Wrk};

/// Connection counts of the latency tables.
pub const CONNECTIONS: [u32; 3] = [1, 16, 64];
/// Replicas in the shared-database run.
pub const REPLICAS: usize = 3;
/// Each replica's pool there (3 × 8 = 24, far under `max_connections`).
pub const POOL_PER_REPLICA: u32 = 8;
/// The range request of the static-file run: the first MiB.
pub const RANGE_1M: &str = "bytes=0-1048575";

/// One server's figures.
#[derive(Debug, Clone)]
pub struct ServerRun {
    /// `VmRSS` after start and the first scan, before any load.
    pub idle_rss_kib: u64,
    /// `VmHWM` after the runs.
    pub peak_kib: u64,
    /// `/Users/Me` at 1, 16, 64 connections.
    pub me: Vec<Figures>,
    /// `/Items?recursive=true` at 1, 16, 64 connections.
    pub items: Vec<Figures>,
    /// `/System/Info/Public` at 1 and 64 connections.
    pub public: Vec<Figures>,
    /// PostgreSQL transactions per request at 1 connection (`/Users/Me`, `/Items`).
    pub xacts_per_request: Option<(f64, f64)>,
}

/// The static-file run.
#[derive(Debug, Clone)]
pub struct StaticRun {
    /// Size of the file.
    pub bytes: u64,
    /// Whole file from ephyra, through HAProxy.
    pub ephyra_full: Figures,
    /// Whole file from nginx, through HAProxy.
    pub nginx_full: Figures,
    /// The first MiB from ephyra.
    pub ephyra_range: Figures,
    /// The first MiB from nginx.
    pub nginx_range: Figures,
}

/// The replicas run.
#[derive(Debug, Clone)]
pub struct ReplicasRun {
    /// `/Users/Me` at 64 connections through HAProxy.
    pub me: Figures,
    /// `/Items` at 64 connections through HAProxy.
    pub items: Figures,
    /// Peak of `pg_stat_activity` during each (all connections, the replicas' database).
    pub pg_peak_me: (i64, i64),
    /// The same during `/Items`.
    pub pg_peak_items: (i64, i64),
    /// Requests each replica was sent (HAProxy's stats).
    pub spread: Vec<(String, u64)>,
    /// Replicas ready after the runs.
    pub ready_after: usize,
}

/// PostgreSQL's settings that matter to the figures.
#[derive(Debug, Clone)]
pub struct PgFacts {
    /// `server_version`.
    pub version: String,
    /// `max_connections`.
    pub max_connections: i64,
    /// `fsync`.
    pub fsync: String,
}

/// Everything this module measures.
#[derive(Debug, Clone)]
pub struct ApiResults {
    /// Files in the library.
    pub library_files: usize,
    /// One server on SQLite.
    pub sqlite: ServerRun,
    /// One server on PostgreSQL + Redis.
    pub pg: ServerRun,
    /// nginx's fixed body at 1, 16, 64 connections.
    pub floor: Vec<Figures>,
    /// Static files.
    pub statics: StaticRun,
    /// Three replicas.
    pub replicas: ReplicasRun,
    /// The PostgreSQL of the run.
    pub pg_facts: PgFacts,
}

/// Runs every API measurement.
pub async fn run(wrk: &Wrk, library: &BenchLibrary, scratch: &Path) -> anyhow::Result<ApiResults> {
    let postgres = PostgresGuard::shared().await?;
    let mut admin_sql = PgConnection::connect(&postgres.url_for("postgres")).await?;
    let pg_facts = pg_facts(&mut admin_sql).await?;

    eprintln!("bench: phase 1: SQLite, one server");
    let (sqlite_server, client) = single_server(library, scratch, "sqlite", &[]).await?;
    let sqlite = server_runs(wrk, &sqlite_server, &client, None).await?;
    drop(sqlite_server);

    eprintln!("bench: the floor: nginx's fixed body");
    let nginx = Nginx::start(&library.static_film).await?;
    let mut floor = Vec::new();
    for c in CONNECTIONS {
        let url = format!("{}/floor.json", nginx.url);
        floor.push(
            wrk.run(&format!("nginx.floor.c{c}"), load(&url, c, None))
                .await?,
        );
    }

    eprintln!("bench: phase 2: PostgreSQL + Redis, one server");
    let database_url = postgres.fresh_database().await?;
    let redis = ephyra_testsupport::RedisGuard::start().await?;
    let (pg_server, client) = single_server(
        library,
        scratch,
        "pg",
        &[
            ("EPHYRA_DATABASE_URL", database_url.clone()),
            ("EPHYRA_REDIS_URL", redis.url()),
        ],
    )
    .await?;
    let counter = XactCounter {
        sql: &mut admin_sql,
        database: database_name(&database_url),
    };
    let pg = server_runs(wrk, &pg_server, &client, Some(counter)).await?;

    eprintln!("bench: phase 2: static file serving through HAProxy");
    let statics = static_runs(wrk, &pg_server, &client, &nginx).await?;
    drop(pg_server);
    drop(nginx);

    eprintln!(
        "bench: phase 3: {REPLICAS} replicas sharing one PostgreSQL (pool {POOL_PER_REPLICA} each)"
    );
    let replicas = replicas_run(wrk, postgres).await?;
    Ok(ApiResults {
        library_files: library.files(),
        sqlite,
        pg,
        floor,
        statics,
        replicas,
        pg_facts,
    })
}

fn load<'a>(url: &'a str, connections: u32, auth: Option<&'a str>) -> Load<'a> {
    Load {
        url,
        connections,
        auth,
        range: None,
    }
}

async fn pg_facts(sql: &mut PgConnection) -> anyhow::Result<PgFacts> {
    let version: String = sqlx::query_scalar("SELECT current_setting('server_version')")
        .fetch_one(&mut *sql)
        .await?;
    let max_connections: String = sqlx::query_scalar("SELECT current_setting('max_connections')")
        .fetch_one(&mut *sql)
        .await?;
    let fsync: String = sqlx::query_scalar("SELECT current_setting('fsync')")
        .fetch_one(&mut *sql)
        .await?;
    Ok(PgFacts {
        version,
        max_connections: max_connections.parse().unwrap_or(0),
        fsync,
    })
}

/// The database a URL names (`postgres://…/name?…`).
fn database_name(url: &str) -> String {
    url.rsplit('/')
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A server over the bench library on SQLite (or what `env` adds), scanned and settled, and
/// an administrator's client of it.
pub async fn single_server(
    library: &BenchLibrary,
    scratch: &Path,
    name: &str,
    env: &[(&str, String)],
) -> anyhow::Result<(ServerProcess, JellyfinClient)> {
    let dir = scratch.join(name);
    std::fs::create_dir_all(&dir)?;
    let mut all = vec![
        ("EPHYRA_DATA_DIR", dir.join("data").display().to_string()),
        ("EPHYRA_LIBRARIES", library.env()),
        ("EPHYRA_SCAN_INTERVAL_SECONDS", "0".to_owned()),
        ("EPHYRA_ADMIN_USER", ADMIN_USER.to_owned()),
        ("EPHYRA_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        (
            "EPHYRA_TRANSCODE_DIR",
            dir.join("transcode").display().to_string(),
        ),
    ];
    all.extend(env.iter().cloned());
    let server = ServerProcess::start(name, &all, &dir).await?;
    wait_scanned(|| server.log()).await?;
    let mut client = JellyfinClient::new(&server.url, "bench-device");
    client.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    Ok((server, client))
}

/// Waits until a log says the first library scan finished, then lets the server settle.
pub async fn wait_scanned(log: impl Fn() -> String) -> anyhow::Result<()> {
    eventually(
        "the library scan to finish",
        Duration::from_secs(180),
        Duration::from_millis(100),
        || {
            let text = log();
            async move {
                if text.contains("library scan finished") {
                    Ok(())
                } else {
                    Err("no 'library scan finished' in the log yet".to_owned())
                }
            }
        },
    )
    .await?;
    // The scan's last writes and the first caches: idle means after them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// Counts a database's transactions in `pg_stat_database`.
struct XactCounter<'a> {
    sql: &'a mut PgConnection,
    database: String,
}

impl XactCounter<'_> {
    async fn now(&mut self) -> anyhow::Result<i64> {
        // PostgreSQL publishes a backend's counters within a second of its transactions.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        Ok(sqlx::query_scalar(
            "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1",
        )
        .bind(&self.database)
        .fetch_one(&mut *self.sql)
        .await?)
    }
}

/// The latency runs of one server.
async fn server_runs(
    wrk: &Wrk,
    server: &ServerProcess,
    client: &JellyfinClient,
    mut counter: Option<XactCounter<'_>>,
) -> anyhow::Result<ServerRun> {
    let pid = server.pid().context("the server exited")?;
    let (idle_rss_kib, _) = memory_kib(pid)?;
    let auth = client.authorization();
    let user = client.user_id.clone().context("not logged in")?;
    let me_url = format!("{}/Users/Me", server.url);
    let items_url = format!("{}/Items?userId={user}&recursive=true", server.url);
    let public_url = format!("{}/System/Info/Public", server.url);
    let (mut me, mut items, mut public) = (Vec::new(), Vec::new(), Vec::new());
    let mut xacts = None;
    for c in CONNECTIONS {
        let key = |what: &str| format!("{}.{what}.c{c}", server.name);
        match (&mut counter, c) {
            (Some(counter), 1) => {
                let before = counter.now().await?;
                let m = wrk.run(&key("me"), load(&me_url, c, Some(&auth))).await?;
                let middle = counter.now().await?;
                let i = wrk
                    .run(&key("items"), load(&items_url, c, Some(&auth)))
                    .await?;
                let after = counter.now().await?;
                let per = |from: i64, to: i64, f: &Figures| (to - from) as f64 / f.requests as f64;
                xacts = Some((per(before, middle, &m), per(middle, after, &i)));
                me.push(m);
                items.push(i);
            }
            _ => {
                me.push(wrk.run(&key("me"), load(&me_url, c, Some(&auth))).await?);
                items.push(
                    wrk.run(&key("items"), load(&items_url, c, Some(&auth)))
                        .await?,
                );
            }
        }
    }
    for c in [1, 64] {
        let key = format!("{}.public.c{c}", server.name);
        public.push(wrk.run(&key, load(&public_url, c, None)).await?);
    }
    let (_, peak_kib) = memory_kib(pid)?;
    eprintln!(
        "bench: {}: idle RSS {:.1} MiB, peak after load {:.1} MiB",
        server.name,
        crate::machine::mib(idle_rss_kib),
        crate::machine::mib(peak_kib)
    );
    Ok(ServerRun {
        idle_rss_kib,
        peak_kib,
        me,
        items,
        public,
        xacts_per_request: xacts,
    })
}

/// The port of `http://127.0.0.1:PORT`.
fn port_of(url: &str) -> anyhow::Result<u16> {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in {url}"))
}

async fn static_runs(
    wrk: &Wrk,
    server: &ServerProcess,
    client: &JellyfinClient,
    nginx: &Nginx,
) -> anyhow::Result<StaticRun> {
    let film = client
        .film_id(STATIC_FILM)
        .await?
        .with_context(|| format!("{STATIC_FILM} is not in the library"))?;
    let ephyra_proxy =
        Haproxy::start_without_request_log(&[("ephyra".to_owned(), port_of(&server.url)?)]).await?;
    let nginx_proxy =
        Haproxy::start_without_request_log(&[("nginx".to_owned(), nginx.port)]).await?;
    let ephyra_url = format!("{}/Videos/{film}/stream?static=true", ephyra_proxy.url);
    let nginx_url = format!("{}/static.mkv", nginx_proxy.url);
    let auth = client.authorization();
    // Both must send the same bytes, or the comparison means nothing.
    let http = reqwest::Client::new();
    let from_ephyra = http
        .get(&ephyra_url)
        .header("Authorization", &auth)
        .send()
        .await?
        .bytes()
        .await?;
    let from_nginx = http.get(&nginx_url).send().await?.bytes().await?;
    anyhow::ensure!(
        from_ephyra == from_nginx,
        "ephyra and nginx do not serve the same file ({} and {} bytes)",
        from_ephyra.len(),
        from_nginx.len()
    );
    let ranged = |url, auth| Load {
        url,
        connections: 16,
        auth,
        range: Some(RANGE_1M),
    };
    Ok(StaticRun {
        bytes: from_nginx.len() as u64,
        ephyra_full: wrk
            .run("static.ephyra.full.c16", load(&ephyra_url, 16, Some(&auth)))
            .await?,
        nginx_full: wrk
            .run("static.nginx.full.c16", load(&nginx_url, 16, None))
            .await?,
        ephyra_range: wrk
            .run("static.ephyra.range.c16", ranged(&ephyra_url, Some(&auth)))
            .await?,
        nginx_range: wrk
            .run("static.nginx.range.c16", ranged(&nginx_url, None))
            .await?,
    })
}

/// Samples `pg_stat_activity` every 0.2 s until stopped; the peaks (all, `database`).
struct ActivitySampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<anyhow::Result<(i64, i64)>>,
}

impl ActivitySampler {
    async fn start(url: String, database: String) -> anyhow::Result<ActivitySampler> {
        let mut sql = PgConnection::connect(&url).await?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let (mut all, mut ours) = (0i64, 0i64);
            while !flag.load(Ordering::Acquire) {
                let (a, o): (i64, i64) = sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE datname = $1) FROM pg_stat_activity",
                )
                .bind(&database)
                .fetch_one(&mut sql)
                .await?;
                all = all.max(a);
                ours = ours.max(o);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok((all, ours))
        });
        Ok(ActivitySampler { stop, task })
    }

    async fn finish(self) -> anyhow::Result<(i64, i64)> {
        self.stop.store(true, Ordering::Release);
        self.task.await?
    }
}

async fn replicas_run(wrk: &Wrk, postgres: &PostgresGuard) -> anyhow::Result<ReplicasRun> {
    let cluster = LocalCluster::builder(REPLICAS)
        .env(
            "EPHYRA_DATABASE_MAX_CONNECTIONS",
            POOL_PER_REPLICA.to_string(),
        )
        // Debug logging (the cluster's default) would be measured too.
        .env("EPHYRA_LOG", "info")
        .start()
        .await?;
    wait_scanned(|| cluster.logs()).await?;
    let haproxy = Haproxy::start_without_request_log(&cluster.backends()).await?;
    let mut client = JellyfinClient::new(&haproxy.url, "bench-device");
    client.login(ADMIN_USER, ADMIN_PASSWORD).await?;
    let auth = client.authorization();
    let user = client.user_id.clone().context("not logged in")?;
    let database = database_name(&cluster.database_url);
    let admin_url = postgres.url_for("postgres");

    let sampled = |key: &'static str, url: String| {
        let (auth, database, admin_url) = (auth.clone(), database.clone(), admin_url.clone());
        async move {
            let sampler = ActivitySampler::start(admin_url, database).await?;
            let figures = wrk.run(key, load(&url, 64, Some(&auth))).await;
            let peak = sampler.finish().await?;
            eprintln!(
                "bench: {key}: pg_stat_activity peak {} (replicas' database: {})",
                peak.0, peak.1
            );
            anyhow::Ok((figures?, peak))
        }
    };
    let (me, pg_peak_me) = sampled("ha.me.c64", format!("{}/Users/Me", haproxy.url)).await?;
    let (items, pg_peak_items) = sampled(
        "ha.items.c64",
        format!("{}/Items?userId={user}&recursive=true", haproxy.url),
    )
    .await?;
    let spread = haproxy.requests().await?;
    let mut ready_after = 0;
    for i in 0..cluster.len() {
        if cluster.readiness(i).await.is_some_and(|r| r.status == 200) {
            ready_after += 1;
        }
    }
    Ok(ReplicasRun {
        me,
        items,
        pg_peak_me,
        pg_peak_items,
        spread,
        ready_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_and_port_are_read_from_urls() {
        assert_eq!(
            database_name("postgres://u:p@127.0.0.1:5432/ephyra_7?sslmode=disable"),
            "ephyra_7"
        );
        assert_eq!(port_of("http://127.0.0.1:8096").unwrap(), 8096);
    }
}

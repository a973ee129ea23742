//! The local HA stack: one PostgreSQL, one Redis and N `ephyra-server` replicas sharing them,
//! each with its own data and transcode folders, all serving the same generated library.
//! [`Haproxy`](crate::Haproxy) goes in front when a test wants a load balancer.
//!
//! Replicas are numbered from 0 and named `r0`, `r1`, ...; a replica keeps its ports across
//! [`LocalCluster::restart`], so a load balancer finds it again.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ephyra_testsupport::media::{Container, SampleLibrary, VideoSpec, generate_video_with};
use ephyra_testsupport::net::free_port;
use ephyra_testsupport::{PostgresGuard, RedisGuard};
use serde_json::Value;
use tempfile::TempDir;
use tokio::sync::OnceCell;

use crate::client::JellyfinClient;
use crate::server::{Ports, ServerProcess};
use crate::wait::eventually;

/// The first administrator every cluster creates; unlike any real default.
pub const ADMIN_USER: &str = "e2e-admin";
/// Its password.
pub const ADMIN_PASSWORD: &str = "e2e-admin-pass";

/// The film tests play: longer than Jellyfin's 300 s minimum, so a position in its middle is
/// kept as a resume point (shorter items count as played when stopped).
pub const LONG_FILM: &str = "Long Voyage";
/// Its length in seconds.
pub const LONG_FILM_SECONDS: u32 = 400;

/// How long a replica may take from exec to answering `/health/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The library every cluster of this process serves: the sample library of
/// `ephyra-testsupport` plus [`LONG_FILM`] (tiny and at 4 frames a second, so it is quick to
/// make and small to stream).
pub async fn ha_library() -> anyhow::Result<&'static SampleLibrary> {
    static LIBRARY: OnceCell<(TempDir, SampleLibrary)> = OnceCell::const_new();
    let (_, library) = LIBRARY
        .get_or_try_init(|| async {
            let dir = crate::wait::scratch_dir("media")?;
            let library = ephyra_testsupport::generate_library(dir.path()).await?;
            let long = VideoSpec {
                seconds: LONG_FILM_SECONDS,
                width: 96,
                height: 54,
                fps: 4,
                keyframe_interval: 8,
            };
            let path = library.films_dir.join(format!("{LONG_FILM} (2020).mkv"));
            generate_video_with(&path, long, Container::Mkv).await?;
            Ok::<_, anyhow::Error>((dir, library))
        })
        .await?;
    Ok(library)
}

/// Where the cluster's PostgreSQL comes from.
#[derive(Debug)]
enum Database {
    /// A fresh database on the process's shared server.
    Shared,
    /// A server of the cluster's own, which a test may stop, kill and restart.
    Own(PostgresGuard),
    /// A URL the test provides (and whose servers it runs), e.g. a proxy in front of a
    /// primary and its standby.
    Given,
}

/// How to build a [`LocalCluster`].
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    replicas: usize,
    own_postgres: bool,
    database_url: Option<String>,
    with_admin: bool,
    env: Vec<(String, String)>,
}

impl ClusterBuilder {
    /// The cluster gets a PostgreSQL server of its own (needed to stop or kill it).
    pub fn own_postgres(mut self) -> Self {
        self.own_postgres = true;
        self
    }

    /// The replicas use this database URL; the test runs its servers.
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// No administrator is configured: the database starts empty and the first-run wizard is
    /// the way in (as after `kubectl apply` without `initialAdmin`).
    pub fn without_admin(mut self) -> Self {
        self.with_admin = false;
        self
    }

    /// An extra environment variable for every replica (wins over the defaults).
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Starts PostgreSQL, Redis and the replicas, and waits until every replica is ready.
    pub async fn start(self) -> anyhow::Result<LocalCluster> {
        let dir = crate::wait::scratch_dir("cluster")?;
        let library = ha_library().await?;
        let (database, database_url) = if let Some(url) = self.database_url.clone() {
            (Database::Given, url)
        } else if self.own_postgres {
            let guard = PostgresGuard::start().await?;
            let url = guard.fresh_database().await?;
            (Database::Own(guard), url)
        } else {
            (
                Database::Shared,
                ephyra_testsupport::postgres::fresh_database().await?,
            )
        };
        let redis = RedisGuard::start().await?;
        let mut cluster = LocalCluster {
            replicas: Vec::new(),
            redis,
            database,
            database_url,
            library,
            dir,
        };
        for index in 0..self.replicas {
            let name = format!("r{index}");
            let data = cluster.dir.path().join(&name);
            let mut env = vec![
                (
                    "EPHYRA_DATABASE_URL".to_owned(),
                    cluster.database_url.clone(),
                ),
                ("EPHYRA_DATABASE_MAX_CONNECTIONS".to_owned(), "6".to_owned()),
                ("EPHYRA_REDIS_URL".to_owned(), cluster.redis.url()),
                (
                    "EPHYRA_DATA_DIR".to_owned(),
                    data.join("data").display().to_string(),
                ),
                (
                    "EPHYRA_TRANSCODE_DIR".to_owned(),
                    data.join("transcode").display().to_string(),
                ),
                ("EPHYRA_LIBRARIES".to_owned(), libraries_env(library)),
                (
                    "EPHYRA_LOG".to_owned(),
                    "info,ephyra_server=debug".to_owned(),
                ),
            ];
            if self.with_admin {
                env.push(("EPHYRA_ADMIN_USER".to_owned(), ADMIN_USER.to_owned()));
                env.push((
                    "EPHYRA_ADMIN_PASSWORD".to_owned(),
                    ADMIN_PASSWORD.to_owned(),
                ));
            }
            env.extend(self.env.iter().cloned());
            cluster.replicas.push(Replica {
                name,
                ports: Ports {
                    api: free_port()?,
                    admin: free_port()?,
                },
                env,
                process: None,
                starts: 0,
            });
        }
        // The first replica migrates the empty database and creates the administrator alone;
        // the others then start together.
        if self.replicas > 0 {
            cluster.start_replica(0).await?;
        }
        let rest: Vec<usize> = (1..self.replicas).collect();
        cluster.start_replicas(&rest).await?;
        Ok(cluster)
    }
}

/// `EPHYRA_LIBRARIES` for the sample library.
pub fn libraries_env(library: &SampleLibrary) -> String {
    format!(
        "movies:Films={};tvshows:Series={}",
        library.films_dir.display(),
        library.series_dir.display()
    )
}

/// One replica: its fixed ports and environment, and its process while it runs.
#[derive(Debug)]
struct Replica {
    name: String,
    ports: Ports,
    env: Vec<(String, String)>,
    process: Option<ServerProcess>,
    /// How many times it was started: each start logs to its own file.
    starts: u32,
}

/// PostgreSQL + Redis + N replicas. Everything stops when it is dropped: fields drop in
/// order, so the replicas stop before Redis and PostgreSQL, and their folder goes last.
#[derive(Debug)]
pub struct LocalCluster {
    replicas: Vec<Replica>,
    /// The replicas' Redis; tests may stop and restart it.
    pub redis: RedisGuard,
    database: Database,
    /// The replicas' database, for tests that read the server's tables.
    pub database_url: String,
    /// The library every replica serves.
    pub library: &'static SampleLibrary,
    /// Replicas' data, transcode folders and logs.
    dir: TempDir,
}

/// What one replica's `/health/ready` said.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// The HTTP status (200 ready, 503 not).
    pub status: u16,
    /// The JSON body.
    pub body: Value,
}

impl Readiness {
    /// Whether the body says this replica leads.
    pub fn is_leader(&self) -> bool {
        field(&self.body, "role")
            .and_then(Value::as_str)
            .is_some_and(|role| role.eq_ignore_ascii_case("leader"))
    }

    /// The leadership epoch the body reports, if any.
    pub fn epoch(&self) -> Option<i64> {
        field(&self.body, "epoch").and_then(Value::as_i64)
    }
}

/// A field of `body`, whatever its case (`Role`, `role`), at the top or in a nested object
/// (`{"Coordination": {"role": ...}}`), whichever comes first.
pub fn field<'a>(body: &'a Value, name: &str) -> Option<&'a Value> {
    let object = body.as_object()?;
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
        .or_else(|| object.values().find_map(|nested| field(nested, name)))
}

impl LocalCluster {
    /// PostgreSQL + Redis + `replicas` replicas with default settings.
    pub async fn start(replicas: usize) -> anyhow::Result<LocalCluster> {
        Self::builder(replicas).start().await
    }

    /// A builder for a cluster of `replicas` replicas.
    pub fn builder(replicas: usize) -> ClusterBuilder {
        ClusterBuilder {
            replicas,
            own_postgres: false,
            database_url: None,
            with_admin: true,
            env: Vec::new(),
        }
    }

    /// How many replicas the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// Whether the cluster has no replica.
    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    /// Replica `i`'s name (`r0`, ...), as HAProxy and the cookie call it.
    pub fn name(&self, i: usize) -> &str {
        &self.replicas[i].name
    }

    /// The index of the replica called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.replicas.iter().position(|r| r.name == name)
    }

    /// Replica `i`'s API URL (valid whether or not it runs).
    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.replicas[i].ports.api)
    }

    /// (name, API port) of every replica, for [`crate::Haproxy::start`].
    pub fn backends(&self) -> Vec<(String, u16)> {
        self.replicas
            .iter()
            .map(|r| (r.name.clone(), r.ports.api))
            .collect()
    }

    /// Whether replica `i` runs.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.replicas[i]
            .process
            .as_mut()
            .is_some_and(ServerProcess::is_running)
    }

    /// The indexes of the replicas that run.
    pub fn running(&mut self) -> Vec<usize> {
        (0..self.replicas.len())
            .filter(|&i| self.is_running(i))
            .collect()
    }

    /// A client of replica `i`, not logged in.
    pub fn client(&self, i: usize, device_id: &str) -> JellyfinClient {
        JellyfinClient::new(&self.url(i), device_id)
    }

    /// A client of replica `i` logged in as the administrator.
    pub async fn admin(&self, i: usize, device_id: &str) -> anyhow::Result<JellyfinClient> {
        let mut client = self.client(i, device_id);
        client.login(ADMIN_USER, ADMIN_PASSWORD).await?;
        Ok(client)
    }

    /// Everything replica `i` printed, over all its starts.
    pub fn log(&self, i: usize) -> String {
        let replica = &self.replicas[i];
        (1..=replica.starts)
            .map(|n| {
                let path = self.log_path(i, n);
                format!(
                    "----- {} start {n} -----\n{}",
                    replica.name,
                    std::fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The logs of every replica, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.replicas.len())
            .map(|i| self.log(i))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn log_path(&self, i: usize, start: u32) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}-{start}.log", self.replicas[i].name))
    }

    /// A connection to the replicas' database, to read what they recorded.
    pub async fn sql(&self) -> anyhow::Result<sqlx::PgConnection> {
        use sqlx::Connection as _;
        Ok(sqlx::PgConnection::connect(&self.database_url).await?)
    }

    /// The cluster's own PostgreSQL (see [`ClusterBuilder::own_postgres`]).
    pub fn postgres(&mut self) -> Option<&mut PostgresGuard> {
        match &mut self.database {
            Database::Own(guard) => Some(guard),
            Database::Shared | Database::Given => None,
        }
    }

    /// Starts replica `i` (again) on its ports and waits until it is ready.
    pub async fn start_replica(&mut self, i: usize) -> anyhow::Result<()> {
        self.start_replicas(&[i]).await
    }

    /// Starts several replicas at once and waits until all are ready.
    pub async fn start_replicas(&mut self, indexes: &[usize]) -> anyhow::Result<()> {
        let mut launches = Vec::new();
        for &i in indexes {
            self.replicas[i].starts += 1;
            let log = self.log_path(i, self.replicas[i].starts);
            let replica = &self.replicas[i];
            let (name, ports, env) = (replica.name.clone(), replica.ports, replica.env.clone());
            launches.push(async move {
                let env: Vec<(&str, String)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                ServerProcess::start_on(&name, ports, &env, &log).await
            });
        }
        let started = futures::future::join_all(launches).await;
        for (&i, process) in indexes.iter().zip(started) {
            let process = process.with_context(|| format!("starting {}", self.replicas[i].name))?;
            self.replicas[i].process = Some(process);
        }
        for &i in indexes {
            self.wait_ready(i, READY_TIMEOUT).await?;
        }
        Ok(())
    }

    /// Replica `i`'s process id while it runs. Outside Kubernetes a replica calls itself
    /// `<hostname>-<pid>` (leader terms, job workers), so this names it in the tables too.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.replicas[i]
            .process
            .as_ref()
            .and_then(ServerProcess::pid)
    }

    /// SIGKILL replica `i`: gone without a goodbye, as when its node dies. Returns, once the
    /// process is reaped, the pid it had.
    pub fn kill(&mut self, i: usize) -> Option<u32> {
        let mut process = self.replicas[i].process.take()?;
        let pid = process.pid();
        process.kill();
        pid
    }

    /// SIGTERM replica `i` and wait up to `grace` for it to exit; returns whether it did.
    pub async fn terminate(&mut self, i: usize, grace: Duration) -> anyhow::Result<bool> {
        let Some(process) = self.replicas[i].process.as_mut() else {
            return Ok(true);
        };
        let exited = process.terminate(grace).await?;
        if exited {
            self.replicas[i].process = None;
        }
        Ok(exited)
    }

    /// SIGTERM replica `i` without waiting; [`LocalCluster::reap`] collects it later.
    pub fn signal_term(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(process) = self.replicas[i].process.as_mut() {
            process.signal_term()?;
        }
        Ok(())
    }

    /// Forgets replica `i`'s process if it has exited.
    pub fn reap(&mut self, i: usize) -> bool {
        let exited = self.replicas[i]
            .process
            .as_mut()
            .is_none_or(|p| !p.is_running());
        if exited {
            self.replicas[i].process = None;
        }
        exited
    }

    /// Kills replica `i` if it runs, then starts it again on the same ports.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        self.start_replica(i).await
    }

    /// Replica `i`'s `/health/ready`, or `None` when it does not answer within 800 ms.
    pub async fn readiness(&self, i: usize) -> Option<Readiness> {
        self.readiness_within(i, Duration::from_millis(800)).await
    }

    /// Replica `i`'s `/health/ready`, or `None` when it does not answer within `timeout`.
    pub async fn readiness_within(&self, i: usize, timeout: Duration) -> Option<Readiness> {
        let response = reqwest::Client::new()
            .get(format!("{}/health/ready", self.url(i)))
            .timeout(timeout)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Some(Readiness { status, body })
    }

    /// Waits until replica `i` answers `/health/ready` with 200.
    pub async fn wait_ready(&self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let name = self.replicas[i].name.clone();
        eventually(
            &format!("{name} to be ready"),
            timeout,
            Duration::from_millis(50),
            || async {
                match self.readiness(i).await {
                    Some(r) if r.status == 200 => Ok(()),
                    Some(r) => Err(format!("{} {}", r.status, r.body)),
                    None => Err("no answer".to_owned()),
                }
            },
        )
        .await
        .with_context(|| format!("log of {name}:\n{}", self.log(i)))
    }

    /// The replicas that say they lead, with the epoch each reports. All are asked at once;
    /// a stopped one refuses the connection at once.
    pub async fn leaders(&self) -> Vec<(usize, Option<i64>)> {
        let all = 0..self.replicas.len();
        let answers = futures::future::join_all(all.clone().map(|i| self.readiness(i))).await;
        all.zip(answers)
            .filter_map(|(i, r)| r.filter(Readiness::is_leader).map(|r| (i, r.epoch())))
            .collect()
    }

    /// Waits until exactly one running replica says it leads; returns it, its epoch and when
    /// it was first seen leading.
    pub async fn wait_leader(&self, timeout: Duration) -> anyhow::Result<(usize, i64, Instant)> {
        let started = Instant::now();
        loop {
            let leaders = self.leaders().await;
            if let [(i, Some(epoch))] = leaders.as_slice() {
                return Ok((*i, *epoch, Instant::now()));
            }
            if started.elapsed() >= timeout {
                anyhow::bail!(
                    "no single leader after {timeout:?} (saw {leaders:?}); logs:\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the library is scanned and returns the id of the film called `name`.
    pub async fn wait_for_film(
        &self,
        client: &JellyfinClient,
        name: &str,
    ) -> anyhow::Result<String> {
        eventually(
            &format!("the film {name:?} to be scanned"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || async {
                match client.film_id(name).await {
                    Ok(Some(id)) => Ok(id),
                    Ok(None) => Err("not in the library yet".to_owned()),
                    Err(e) => Err(format!("{e:#}")),
                }
            },
        )
        .await
        .with_context(|| format!("logs:\n{}", self.logs()))
    }
}

//! HAProxy in front of the replicas, standing in for Traefik: cookie stickiness, health checks
//! on `/health/ready`, and redispatch of a request whose replica is gone.
//!
//! The configuration is written to a temporary folder and HAProxy runs in the foreground
//! (`-db`), tied to the test process. A stats listener on a second port lets tests wait until
//! HAProxy sees a replica up or down.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use ephyra_testsupport::ChildGuard;
use ephyra_testsupport::net::free_port;
use ephyra_testsupport::process::{spawn_tied, tied_command};
use tempfile::TempDir;

use crate::wait::eventually;

/// How often HAProxy checks each replica; `fall 2` makes a dead one leave in about twice this.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// A running HAProxy. Killed when dropped.
#[derive(Debug)]
pub struct Haproxy {
    /// `http://127.0.0.1:PORT`: the address clients use.
    pub url: String,
    /// The stats page, as CSV.
    stats_url: String,
    /// Holds `haproxy.cfg` and `haproxy.log`.
    dir: TempDir,
    /// The process.
    _child: ChildGuard<std::process::Child>,
}

/// The HAProxy binary: on PATH, or in /usr/sbin where Debian puts it.
fn haproxy_binary() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("haproxy"))
            .find(|candidate| candidate.is_file())
    });
    let sbin = PathBuf::from("/usr/sbin/haproxy");
    on_path
        .or_else(|| sbin.is_file().then_some(sbin))
        .context("haproxy is not installed: install the Debian package haproxy (make test does)")
}

/// The configuration for `backends` (name, port): what `scripts/demo.sh` writes too.
pub fn config(frontend_port: u16, stats_port: u16, backends: &[(String, u16)]) -> String {
    config_with(frontend_port, stats_port, backends, true)
}

/// [`config`], with or without a log line per request (a benchmark at thousands of requests
/// a second would measure HAProxy writing its log).
pub fn config_with(
    frontend_port: u16,
    stats_port: u16,
    backends: &[(String, u16)],
    log_requests: bool,
) -> String {
    let logging = if log_requests {
        "    log global\n    option httplog\n"
    } else {
        ""
    };
    let mut cfg = format!(
        "global
    log stdout format raw local0 info
    maxconn 2000

defaults
    mode http
{logging}    # A request whose replica refuses the connection goes to another replica at once.
    option redispatch 1
    retries 3
    retry-on conn-failure empty-response
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout check 1s

frontend ephyra
    bind 127.0.0.1:{frontend_port}
    default_backend replicas

backend replicas
    balance roundrobin
    cookie EPHYRA insert indirect nocache
    option httpchk GET /health/ready
    http-check expect status 200
"
    );
    for (name, port) in backends {
        cfg.push_str(&format!(
            "    server {name} 127.0.0.1:{port} cookie {name} check inter {}ms fall 2 rise 1\n",
            CHECK_INTERVAL.as_millis()
        ));
    }
    cfg.push_str(&format!(
        "
listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"
    ));
    cfg
}

impl Haproxy {
    /// Starts HAProxy over `backends` (name, port on 127.0.0.1) and waits until every backend
    /// is up.
    pub async fn start(backends: &[(String, u16)]) -> anyhow::Result<Haproxy> {
        Self::start_with(backends, true).await
    }

    /// [`Haproxy::start`] without a log line per request (for benchmarks).
    pub async fn start_without_request_log(backends: &[(String, u16)]) -> anyhow::Result<Haproxy> {
        Self::start_with(backends, false).await
    }

    async fn start_with(backends: &[(String, u16)], log_requests: bool) -> anyhow::Result<Haproxy> {
        let binary = haproxy_binary()?;
        let dir = crate::wait::scratch_dir("haproxy")?;
        let port = free_port()?;
        let stats_port = free_port()?;
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg_path,
            config_with(port, stats_port, backends, log_requests),
        )?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let mut command = tied_command(&binary);
        command
            .arg("-f")
            .arg(&cfg_path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let child = spawn_tied(command)?;
        let haproxy = Haproxy {
            url: format!("http://127.0.0.1:{port}"),
            stats_url: format!("http://127.0.0.1:{stats_port}/stats;csv"),
            dir,
            _child: child,
        };
        for (name, _) in backends {
            haproxy
                .wait_state(name, true, Duration::from_secs(20))
                .await
                .with_context(|| format!("haproxy log:\n{}", haproxy.log()))?;
        }
        Ok(haproxy)
    }

    /// What HAProxy printed (one line per request, and health changes).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// Each backend server's status as HAProxy sees it (`UP`, `DOWN`, `UP 1/2`, ...).
    pub async fn states(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.stats_column("status").await
    }

    /// How many requests each backend server was sent so far (`req_tot`, or the session
    /// count `stot` where this HAProxy version has no request counter).
    pub async fn requests(&self) -> anyhow::Result<Vec<(String, u64)>> {
        let counts = match self.stats_column("req_tot").await {
            Ok(counts) if counts.iter().all(|(_, n)| !n.is_empty()) => counts,
            _ => self.stats_column("stot").await?,
        };
        Ok(counts
            .into_iter()
            .map(|(name, n)| (name, n.parse().unwrap_or(0)))
            .collect())
    }

    /// One column of the stats CSV for each backend server: (server name, value).
    async fn stats_column(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        let csv = reqwest::Client::new()
            .get(&self.stats_url)
            .timeout(Duration::from_secs(2))
            .send()
            .await?
            .text()
            .await?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (px, sv, st) = (
            column("pxname").context("no pxname")?,
            column("svname").context("no svname")?,
            column(name).with_context(|| format!("no {name}"))?,
        );
        Ok(lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|f| f.get(px) == Some(&"replicas"))
            .filter(|f| !matches!(f.get(sv), Some(&"FRONTEND" | &"BACKEND")))
            .map(|f| {
                (
                    f.get(sv).copied().unwrap_or_default().to_owned(),
                    f.get(st).copied().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }

    /// Waits until HAProxy sees `server` up (`true`) or down (`false`).
    pub async fn wait_state(
        &self,
        server: &str,
        up: bool,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let what = format!("haproxy to see {server} {}", if up { "up" } else { "down" });
        eventually(&what, timeout, Duration::from_millis(50), || async {
            let states = self.states().await.map_err(|e| e.to_string())?;
            let status = states
                .iter()
                .find(|(name, _)| name == server)
                .map(|(_, status)| status.clone())
                .unwrap_or_default();
            // "UP 1/2" is going down, "DOWN 1/2" is coming up: only settled states count.
            let settled = if up {
                status == "UP"
            } else {
                status.starts_with("DOWN") && !status.contains('/')
            };
            if settled {
                Ok(())
            } else {
                Err(format!("{server} is {status:?}"))
            }
        })
        .await
    }
}

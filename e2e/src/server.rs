//! One `ephyra-server` process.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ephyra_testsupport::net::free_port;
use ephyra_testsupport::process::{ChildGuard, spawn_tied, tied_command};
use rustix::process::{Pid, Signal, kill_process};

use crate::HarnessError;

/// Path of a workspace binary built next to the running test executable
/// (`target/<profile>/deps/e2e-…` → `target/<profile>/<name>`).
pub fn binary(name: &str) -> Result<PathBuf, HarnessError> {
    let exe = std::env::current_exe().map_err(|source| HarnessError::Process {
        what: "locating the test executable".to_owned(),
        source,
    })?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from);
    let path = profile_dir.unwrap_or_default().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::MissingBinary(path))
    }
}

/// The two ports a server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The Jellyfin API (`EPHYRA_LISTEN`).
    pub api: u16,
    /// The admin endpoints (`EPHYRA_ADMIN_LISTEN`).
    pub admin: u16,
}

/// A running server. Killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// A label for messages (`replica-a`).
    pub name: String,
    /// `http://127.0.0.1:PORT`, the Jellyfin API.
    pub url: String,
    /// `http://127.0.0.1:PORT`, the admin endpoints.
    pub admin_url: String,
    /// Where its stdout and stderr go, read back when it fails.
    log_path: PathBuf,
    /// The process; `None` once it was stopped.
    child: Option<ChildGuard<std::process::Child>>,
}

impl ServerProcess {
    /// Starts `ephyra-server` with `env` (on top of ports picked here, and discovery off) and
    /// waits until `/health/live` answers.
    pub async fn start(
        name: &str,
        env: &[(&str, String)],
        log_dir: &std::path::Path,
    ) -> Result<ServerProcess, HarnessError> {
        let ports = Ports {
            api: free_port()?,
            admin: free_port()?,
        };
        Self::start_on(name, ports, env, &log_dir.join(format!("{name}.log"))).await
    }

    /// [`ServerProcess::start`] on given ports (a restarted replica keeps its address, so a
    /// load balancer in front finds it again), logging to `log_path`.
    pub async fn start_on(
        name: &str,
        ports: Ports,
        env: &[(&str, String)],
        log_path: &std::path::Path,
    ) -> Result<ServerProcess, HarnessError> {
        let mut all = vec![
            (
                "EPHYRA_LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports.api),
            ),
            (
                "EPHYRA_ADMIN_LISTEN".to_owned(),
                format!("127.0.0.1:{}", ports.admin),
            ),
            ("EPHYRA_DISCOVERY".to_owned(), "false".to_owned()),
            ("EPHYRA_LOG".to_owned(), "info".to_owned()),
        ];
        // Later entries win: the caller's environment over these defaults.
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        ServerProcess::start_exactly(name, ports, &[], &all, log_path).await
    }

    /// Starts `ephyra-server` with exactly `args` and `env` (plus `PATH`, to find ffmpeg), on
    /// the ports it is told in `env`, as a pod would run it; waits until `/health/live`
    /// answers on `ports.api`.
    pub async fn start_exactly(
        name: &str,
        ports: Ports,
        args: &[String],
        env: &[(String, String)],
        log_path: &std::path::Path,
    ) -> Result<ServerProcess, HarnessError> {
        let bin = binary("ephyra-server")?;
        let log_path = log_path.to_path_buf();
        let log = std::fs::File::create(&log_path).map_err(|source| HarnessError::Process {
            what: format!("creating {}", log_path.display()),
            source,
        })?;
        let log_err = log.try_clone().map_err(|source| HarnessError::Process {
            what: "duplicating the log handle".to_owned(),
            source,
        })?;
        let mut command = tied_command(&bin);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        let child = spawn_tied(command)?;
        let mut server = ServerProcess {
            name: name.to_owned(),
            url: format!("http://127.0.0.1:{}", ports.api),
            admin_url: format!("http://127.0.0.1:{}", ports.admin),
            log_path,
            child: Some(child),
        };
        server.wait_live(Duration::from_secs(60)).await?;
        Ok(server)
    }

    /// Polls `/health/live` until it answers 200.
    async fn wait_live(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let client = reqwest::Client::new();
        let started = Instant::now();
        let url = format!("{}/health/live", self.url);
        loop {
            if let Ok(resp) = client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                && resp.status().is_success()
            {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || started.elapsed() >= timeout {
                return Err(HarnessError::NotHealthy {
                    what: self.name.clone(),
                    seconds: started.elapsed().as_secs(),
                    log: self.log(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILL: the replica vanishes without a goodbye, as when its node dies.
    pub fn kill(&mut self) {
        // Dropping the guard sends SIGKILL and reaps the process.
        self.child = None;
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then waits up to `grace` for a clean exit; returns whether it exited in time.
    pub async fn terminate(&mut self, grace: Duration) -> Result<bool, HarnessError> {
        self.signal_term()?;
        let Some(child) = self.child.as_mut() else {
            return Ok(true);
        };
        let started = Instant::now();
        while started.elapsed() < grace {
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(false)
    }

    /// Sends SIGTERM and returns at once (the process drains and exits on its own).
    pub fn signal_term(&mut self) -> Result<(), HarnessError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        let pid = Pid::from_raw(child.id() as i32).ok_or_else(|| HarnessError::Process {
            what: "reading the pid".to_owned(),
            source: std::io::Error::other("pid 0"),
        })?;
        kill_process(pid, Signal::TERM).map_err(|e| HarnessError::Process {
            what: format!("sending SIGTERM to {}", self.name),
            source: e.into(),
        })
    }
}

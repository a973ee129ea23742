//! A server process with a log file: start, watch, stop, kill.
//!
//! Shared by the PostgreSQL and Redis guards. This module knows nothing about either service:
//! readiness and the meaning of log lines stay with them.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::SupportError;
use crate::net::POLL_INTERVAL;
use crate::process::spawn_on_keeper;

/// How much of a log an error message carries.
const LOG_TAIL_BYTES: u64 = 2_000;

/// A running server process whose stdout and stderr go to a log file.
#[derive(Debug)]
pub(crate) struct Server {
    /// "PostgreSQL" or "Redis", for error messages.
    service: &'static str,
    /// The server itself (not a wrapper: `setpriv` execs it), so signals reach it.
    child: Child,
    /// Shared by every start of the same guard, so a restart keeps the earlier history.
    log: PathBuf,
    /// Where this start's lines begin in `log`, so errors quote this start only.
    log_start: u64,
}

impl Server {
    /// Starts `command` tied to the test process, appending its output to `log`.
    pub(crate) fn spawn(
        service: &'static str,
        mut command: Command,
        log: &Path,
    ) -> Result<Self, SupportError> {
        let file_error = |source| SupportError::File {
            action: "opening the server log",
            path: log.to_path_buf(),
            source,
        };
        let stdout = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(file_error)?;
        let log_start = stdout.metadata().map_err(file_error)?.len();
        let stderr = stdout.try_clone().map_err(file_error)?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = spawn_on_keeper(command)?;
        Ok(Self {
            service,
            child,
            log: log.to_path_buf(),
            log_start,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the server ended, if it has.
    pub(crate) fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(describe(status)),
            Ok(None) => None,
            Err(error) => Some(format!("unknown: {error}")),
        }
    }

    /// The end of what this start wrote to the log.
    pub(crate) fn log_tail(&self) -> String {
        let Ok(mut file) = std::fs::File::open(&self.log) else {
            return String::from("(no log)");
        };
        let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        let from = self.log_start.max(len.saturating_sub(LOG_TAIL_BYTES));
        let mut tail = Vec::new();
        if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut tail).is_err() {
            return String::from("(unreadable log)");
        }
        String::from_utf8_lossy(&tail).trim().to_owned()
    }

    /// The error for a server that exited while starting.
    pub(crate) fn exited_error(&self, status: String) -> SupportError {
        SupportError::ServiceExited {
            service: self.service,
            status,
            log: self.log_tail(),
        }
    }

    /// SIGKILL, as a crash would; returns once the process is gone.
    pub(crate) fn kill(mut self) -> Result<(), SupportError> {
        if self.exit_status().is_none() {
            self.child.kill().map_err(|source| SupportError::Signal {
                service: self.service,
                pid: self.pid(),
                source,
            })?;
        }
        self.reap();
        Ok(())
    }

    /// Sends `signal` and waits up to `timeout` for the server to exit, then kills it.
    pub(crate) async fn stop(
        mut self,
        signal: Signal,
        timeout: Duration,
    ) -> Result<(), SupportError> {
        self.signal(signal)?;
        let started = Instant::now();
        while self.exit_status().is_none() && started.elapsed() < timeout {
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        self.kill()
    }

    /// [`Server::stop`] for destructors, which cannot await; errors are ignored.
    pub(crate) fn stop_blocking(mut self, signal: Signal, timeout: Duration) {
        if self.signal(signal).is_ok() {
            let started = Instant::now();
            while self.exit_status().is_none() && started.elapsed() < timeout {
                std::thread::sleep(POLL_INTERVAL);
            }
        }
        let _ = self.kill();
    }

    fn signal(&mut self, signal: Signal) -> Result<(), SupportError> {
        if self.exit_status().is_some() {
            return Ok(());
        }
        let pid = Pid::from_child(&self.child);
        rustix::process::kill_process(pid, signal).map_err(|errno| SupportError::Signal {
            service: self.service,
            pid: self.pid(),
            source: errno.into(),
        })
    }

    fn reap(&mut self) {
        // Only called once the process has exited or got SIGKILL, so this returns promptly.
        let _ = self.child.wait();
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;

    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

//! A real Redis server in a temporary folder.
//!
//! [`RedisGuard::start`] runs `redis-server` on a free port of 127.0.0.1, without persistence
//! (`--save '' --appendonly no`): a [`RedisGuard::kill`] loses every key, as losing the
//! coordination store does in production, and [`RedisGuard::restart`] brings back an empty
//! server on the same port, for tests of how the server copes with that.
//! [`RedisGuard::start_with_password`] starts one that requires a password (`requirepass`), as
//! the operator's managed Redis does.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::POLL_INTERVAL;
use crate::process;
use crate::scratch::scratch_dir;
use crate::service::Server;
use crate::{SupportError, net};

/// Redis starts in milliseconds; this only guards against a wedged machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many free ports to try before giving up.
const PORT_ATTEMPTS: u32 = 5;
const SERVICE: &str = "Redis";

/// A Redis server that lives as long as this guard.
///
/// Dropping the guard stops the server and removes its folder.
#[derive(Debug)]
pub struct RedisGuard {
    /// The server's working folder (`--dir`) and its log; removed on drop.
    scratch: TempDir,
    /// The TCP port on 127.0.0.1; kept across restarts, so URLs handed out stay valid.
    port: u16,
    /// `redis-server`, found once at start.
    binary: PathBuf,
    /// The server; `None` after [`RedisGuard::stop`] or [`RedisGuard::kill`].
    server: Option<Server>,
    /// The password clients must give (`AUTH`), if any; kept across restarts.
    password: Option<String>,
}

impl RedisGuard {
    /// Starts `redis-server` in a new temporary folder on a free port.
    pub async fn start() -> Result<Self, SupportError> {
        Self::start_inner(None).await
    }

    /// Like [`RedisGuard::start`], but clients must authenticate with `password`; [`url`]
    /// carries it (`redis://:password@…`). Use letters and digits only (it goes into a URL).
    ///
    /// [`url`]: RedisGuard::url
    pub async fn start_with_password(password: &str) -> Result<Self, SupportError> {
        Self::start_inner(Some(password.to_owned())).await
    }

    async fn start_inner(password: Option<String>) -> Result<Self, SupportError> {
        let binary = process::find_on_path("redis-server").ok_or(SupportError::MissingBinary {
            what: "redis-server",
            searched: "on PATH",
            package: "redis-server",
        })?;
        let mut guard = Self {
            scratch: scratch_dir("redis", false)?,
            port: 0,
            binary,
            server: None,
            password,
        };
        for _ in 0..PORT_ATTEMPTS {
            guard.port = net::free_port()?;
            match guard.launch().await {
                Launch::Ready(server) => {
                    guard.server = Some(server);
                    return Ok(guard);
                }
                Launch::PortTaken => continue,
                Launch::Failed(error) => return Err(error),
            }
        }
        Err(SupportError::NoFreePort {
            service: SERVICE,
            attempts: PORT_ATTEMPTS,
        })
    }

    /// `redis://127.0.0.1:port`, with `:password@` when the server requires one.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => self.url_without_password(),
        }
    }

    /// `redis://127.0.0.1:port` even when the server requires a password (for tests of what a
    /// client without it sees).
    pub fn url_without_password(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working folder, holding `redis.log`.
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Server::pid)
    }

    /// Stops the server with SIGTERM. Does nothing if it is not running.
    pub async fn stop(&mut self) -> Result<(), SupportError> {
        match self.server.take() {
            Some(server) => server.stop(Signal::TERM, STOP_TIMEOUT).await,
            None => Ok(()),
        }
    }

    /// Kills the server with SIGKILL, as a crash would; every key is lost.
    pub fn kill(&mut self) -> Result<(), SupportError> {
        match self.server.take() {
            Some(server) => server.kill(),
            None => Ok(()),
        }
    }

    /// Starts an empty server again on the same port (stopping it first if it runs) and waits
    /// until it answers PING.
    pub async fn restart(&mut self) -> Result<(), SupportError> {
        self.stop().await?;
        match self.launch().await {
            Launch::Ready(server) => {
                self.server = Some(server);
                Ok(())
            }
            Launch::PortTaken => Err(SupportError::PortLost {
                service: SERVICE,
                port: self.port,
            }),
            Launch::Failed(error) => Err(error),
        }
    }

    /// Starts the server once and waits until it answers on this guard's port.
    async fn launch(&self) -> Launch {
        let mut command = process::tied_command_as(self.binary.as_os_str(), None, "TERM");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.scratch.path())
            .args(["--daemonize", "no"])
            // An empty log file name means stdout, which goes to redis.log.
            .args(["--logfile", ""])
            .current_dir(self.scratch.path());
        if let Some(password) = &self.password {
            // A test password: visible in `ps`, which the operator's Redis avoids.
            command.args(["--requirepass", password]);
        }
        let log = self.scratch.path().join("redis.log");
        let mut server = match Server::spawn(SERVICE, command, &log) {
            Ok(server) => server,
            Err(error) => return Launch::Failed(error),
        };

        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let started = Instant::now();
        loop {
            if let Some(status) = server.exit_status() {
                if server.log_tail().contains("Address already in use") {
                    return Launch::PortTaken;
                }
                return Launch::Failed(server.exited_error(status));
            }
            match answering_pid(addr, self.password.as_deref()).await {
                Some(pid) if pid == server.pid() => return Launch::Ready(server),
                // Someone else's server took the port before ours could bind it.
                Some(_) => {
                    let _ = server.kill();
                    return Launch::PortTaken;
                }
                None => {}
            }
            if started.elapsed() >= START_TIMEOUT {
                let error = SupportError::StartTimeout {
                    service: SERVICE,
                    addr,
                    waited: START_TIMEOUT,
                    log: server.log_tail(),
                };
                let _ = server.kill();
                return Launch::Failed(error);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for RedisGuard {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop_blocking(Signal::TERM, STOP_TIMEOUT);
        }
    }
}

/// The outcome of one start of the server.
enum Launch {
    Ready(Server),
    /// Another process bound the port first: try another one.
    PortTaken,
    Failed(SupportError),
}

/// The process id of the Redis answering PING at `addr` (authenticating with `password` when
/// given); `None` while none answers.
async fn answering_pid(addr: SocketAddr, password: Option<&str>) -> Option<u32> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        if let Some(password) = password {
            let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len());
            stream.write_all(auth.as_bytes()).await.ok()?;
            let mut ok = [0_u8; 5];
            stream.read_exact(&mut ok).await.ok()?;
            if &ok != b"+OK\r\n" {
                return None;
            }
        }
        stream.write_all(b"PING\r\nINFO server\r\n").await.ok()?;
        let mut reply = Vec::new();
        let mut chunk = [0_u8; 4096];
        loop {
            let read = stream.read(&mut chunk).await.ok()?;
            if read == 0 {
                return None;
            }
            reply.extend_from_slice(&chunk[..read]);
            if let Some(pid) = parse_ping_and_pid(&reply) {
                return Some(pid);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), exchange)
        .await
        .ok()
        .flatten()
}

/// The `process_id` of an `INFO server` reply that follows `+PONG`, once fully read.
fn parse_ping_and_pid(reply: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(reply).ok()?;
    let info = text.strip_prefix("+PONG\r\n")?;
    let (_, after) = info.split_once("process_id:")?;
    let (pid, _) = after.split_once("\r\n")?;
    pid.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pid_is_read_from_a_pong_followed_by_info() {
        let reply = b"+PONG\r\n$40\r\n# Server\r\nredis_version:7.0.15\r\nprocess_id:4321\r\n";
        assert_eq!(parse_ping_and_pid(reply), Some(4321));
    }

    #[test]
    fn a_loading_server_or_a_partial_reply_is_not_ready() {
        assert_eq!(parse_ping_and_pid(b"-LOADING Redis is loading\r\n"), None);
        assert_eq!(
            parse_ping_and_pid(b"+PONG\r\n$40\r\n# Server\r\nprocess_id:43"),
            None
        );
    }
}

//! Ports and readiness.
//!
//! A port from [`free_port`] is only free at the moment it is returned: another process may
//! bind it before you do. Servers started by this crate therefore retry with a new port when
//! they find theirs taken; do the same when you start a binary on one.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::SupportError;

/// How long to wait between two connection attempts while polling.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A TCP port on 127.0.0.1 that the OS considered free just now.
pub fn free_port() -> Result<u16, SupportError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|source| SupportError::FreePort { source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SupportError::FreePort { source })?;
    Ok(addr.port())
}

/// Waits until something accepts TCP connections on `addr`, polling, for at most `timeout`.
pub async fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> Result<(), SupportError> {
    let started = Instant::now();
    loop {
        let attempt =
            tokio::time::timeout(POLL_INTERVAL * 20, tokio::net::TcpStream::connect(addr));
        let last_error = match attempt.await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "connect timed out".to_owned(),
        };
        if started.elapsed() >= timeout {
            return Err(SupportError::WaitForTcp {
                addr,
                waited: timeout,
                last_error,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

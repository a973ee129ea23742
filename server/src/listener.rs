//! The public listener's connection handling, with the bounds `axum::serve` does not offer:
//!
//! - **header read** ([`ConnectionLimits::header_read`]): a request head must arrive within
//!   it; the same clock closes a keep-alive connection idle for that long (hyper starts it
//!   whenever it waits for a head). Trusted proxies get [`ConnectionLimits::proxy_idle`]
//!   instead, longer than their own idle timeout, so they never reuse a connection the server
//!   is closing;
//! - **request body**: a body that sends nothing for [`ConnectionLimits::body_stall`] fails
//!   (the handler sees an error, the connection closes);
//! - **slow readers**: a write that makes no progress for [`ConnectionLimits::write_stall`]
//!   closes the connection (WebSockets included). A client that reads slowly but steadily
//!   (a film streamed over a poor link) is never cut: every accepted write restarts the clock;
//! - **connections per address** ([`ConnectionLimits::per_address`]): beyond it, new
//!   connections from that address are closed at once, so one client cannot take every file
//!   descriptor. Trusted proxies (`trustedProxies`) are exempt: every client behind them
//!   shares their address.
//!
//! Shutdown is graceful as before: once `stop` is cancelled no connection is accepted, idle
//! ones close, and in-flight requests finish (the caller bounds how long it waits).
//! It must not buffer or inspect request or response bodies.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tower_http::timeout::TimeoutBody;

use crate::auth::TrustedProxies;

/// The bounds applied to each connection of the public listener.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time for a request head to arrive, and idle time of a keep-alive connection.
    pub header_read: Duration,
    /// The same for connections from trusted proxies (longer than Traefik's 90 s idle
    /// timeout towards backends).
    pub proxy_idle: Duration,
    /// Longest silence inside a request body.
    pub body_stall: Duration,
    /// Longest time a write may make no progress (the client stopped reading).
    pub write_stall: Duration,
    /// Open connections allowed from one address (trusted proxies exempt).
    pub per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read: Duration::from_secs(30),
            proxy_idle: Duration::from_secs(120),
            body_stall: Duration::from_secs(30),
            write_stall: Duration::from_secs(120),
            per_address: 128,
        }
    }
}

/// Open connections per address.
#[derive(Debug, Default)]
struct Counts(Mutex<HashMap<IpAddr, usize>>);

/// Holds one connection's place in [`Counts`] until the connection (or its upgrade) ends.
#[derive(Debug)]
struct Place {
    counts: Arc<Counts>,
    ip: Option<IpAddr>,
}

impl Counts {
    fn admit(self: &Arc<Self>, ip: IpAddr, limit: Option<usize>) -> Option<Place> {
        let Some(limit) = limit else {
            return Some(Place {
                counts: Arc::clone(self),
                ip: None,
            });
        };
        let mut counts = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Place {
            counts: Arc::clone(self),
            ip: Some(ip),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut counts = match self.counts.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// A TCP stream that fails a write stuck for longer than the stall limit, and keeps the
/// connection's place in the per-address count for as long as it lives (an upgraded
/// WebSocket keeps it too).
struct Guarded {
    inner: TcpStream,
    write_stall: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    _place: Place,
}

impl Guarded {
    /// Called when a write could not proceed: arms the stall timer, or fails once it fired.
    fn stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let limit = self.write_stall;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accept errors that concern one connection only (the next accept may succeed at once).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `listener` with `limits` until `stop` is cancelled, then waits for open
/// connections to finish (idle ones close at once, in-flight requests complete).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    trusted: Arc<TrustedProxies>,
    limits: ConnectionLimits,
    stop: CancellationToken,
) {
    let counts = Arc::new(Counts::default());
    let connections = TaskTracker::new();
    let builder_for = |idle: Duration| {
        let mut builder = Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(idle);
        builder
    };
    let direct = builder_for(limits.header_read);
    let proxied = builder_for(limits.proxy_idle);
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors or similar: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip();
        let is_proxy = trusted.contains(ip);
        let Some(place) = counts.admit(ip, (!is_proxy).then_some(limits.per_address)) else {
            tracing::debug!(%ip, "connection refused: too many from this address");
            drop(stream);
            continue;
        };
        let io = TokioIo::new(Guarded {
            inner: stream,
            write_stall: limits.write_stall,
            stalled: None,
            _place: place,
        });
        let builder = if is_proxy {
            proxied.clone()
        } else {
            direct.clone()
        };
        let app = app.clone();
        let body_stall = limits.body_stall;
        let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
            let mut req = req.map(|body| axum::body::Body::new(TimeoutBody::new(body_stall, body)));
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(req)
        });
        let stop = stop.clone();
        connections.spawn(async move {
            let conn = builder.serve_connection_with_upgrades(io, service);
            tokio::pin!(conn);
            let mut draining = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = stop.cancelled(), if !draining => {
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

//! Jellyfin's UDP server discovery: a client broadcasts `who is JellyfinServer?` to port 7359
//! and every server answers the sender with its address, id and name as JSON (under 1 KiB).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Serialize;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Jellyfin's discovery port.
pub const DISCOVERY_PORT: u16 = 7359;

/// The text a probe contains (matched as a substring without regard to case).
const PROBE: &str = "who is jellyfinserver?";

/// The reply.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiscoveryReply {
    /// The HTTP base URL clients should use.
    pub address: String,
    /// The server id (N format).
    pub id: String,
    /// The server name.
    pub name: String,
    /// Always null, as Jellyfin sends it.
    pub endpoint_address: Option<String>,
}

/// Binds the default port on all interfaces and answers until shutdown; a bind failure (port
/// taken by another server on this host) is logged, not fatal.
pub fn spawn_default(state: AppState) {
    tokio::spawn(async move {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, DISCOVERY_PORT));
        match UdpSocket::bind(addr).await {
            Ok(socket) => {
                if let Err(e) = socket.set_broadcast(true) {
                    tracing::debug!(error = %e, "discovery: cannot enable broadcast");
                }
                tracing::info!(%addr, "answering UDP discovery");
                let stop = state.shutdown.clone();
                serve(socket, state, stop).await;
            }
            Err(e) => tracing::warn!(%addr, error = %e, "UDP discovery is off: cannot bind"),
        }
    });
}

/// Answers probes on `socket` until `stop` is cancelled.
pub async fn serve(socket: UdpSocket, state: AppState, stop: CancellationToken) {
    let mut buf = [0u8; 1024];
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (len, peer) = match received {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "discovery: receive failed");
                continue;
            }
        };
        let text = String::from_utf8_lossy(&buf[..len]).to_ascii_lowercase();
        if !text.contains(PROBE) {
            continue;
        }
        let local_ip = local_ip_towards(peer).await;
        let reply = DiscoveryReply {
            address: format!("http://{}", http_address(&state, local_ip)),
            id: state.server_id.to_n(),
            name: state.server_name().chars().take(200).collect(),
            endpoint_address: None,
        };
        if let Ok(json) = serde_json::to_vec(&reply)
            && let Err(e) = socket.send_to(&json, peer).await
        {
            tracing::debug!(error = %e, %peer, "discovery: reply failed");
        }
    }
}

/// The HTTP address to advertise: the configured listen port on the interface that reaches
/// the client.
fn http_address(state: &AppState, local_ip: IpAddr) -> SocketAddr {
    let listen = state.config.listen;
    let ip = if listen.ip().is_unspecified() {
        local_ip
    } else {
        listen.ip()
    };
    SocketAddr::new(ip, listen.port())
}

/// The local address the OS would use to reach `peer` (a connected UDP socket sends nothing).
async fn local_ip_towards(peer: SocketAddr) -> IpAddr {
    let bind: SocketAddr = if peer.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    if let Ok(probe) = UdpSocket::bind(bind).await
        && probe.connect(peer).await.is_ok()
        && let Ok(local) = probe.local_addr()
    {
        return local.ip();
    }
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

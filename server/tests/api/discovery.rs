//! UDP discovery over a real socket on loopback.

use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_json::Value;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::support::{Provider, TestServer};

#[tokio::test]
async fn a_discovery_probe_gets_the_server_id_name_and_address() -> Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let responder = UdpSocket::bind("127.0.0.1:0").await?;
    let target = responder.local_addr()?;
    let stop = CancellationToken::new();
    let serving = tokio::spawn(ephyra_server::discovery::serve(
        responder,
        server.state.clone(),
        stop.clone(),
    ));

    let client = UdpSocket::bind("127.0.0.1:0").await?;
    // Noise first: it must be ignored, so the first reply answers the probe.
    client.send_to(b"hello there", target).await?;
    client.send_to(b"Who is JellyfinServer?", target).await?;
    let mut buf = [0u8; 2048];
    let (len, from) = tokio::time::timeout(Duration::from_secs(10), client.recv_from(&mut buf))
        .await
        .context("no discovery reply")??;
    assert_eq!(from, target);
    assert!(len < 1024, "reply of {len} bytes");
    let reply: Value = serde_json::from_slice(&buf[..len])?;
    assert_eq!(reply["Id"], server.state.server_id.to_n());
    assert_eq!(reply["Name"], "Test Den");
    assert_eq!(reply["EndpointAddress"], Value::Null);
    assert!(
        reply["Address"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{reply}"
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), serving).await??;
    Ok(())
}

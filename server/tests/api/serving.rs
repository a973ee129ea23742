//! `run` over real listeners: it serves, and it stops cleanly when told to.

use std::time::Duration;

use anyhow::Result;
use tokio::net::TcpListener;

use crate::support::{Provider, test_config};

#[tokio::test]
async fn run_serves_both_listeners_and_stops_when_shutdown_completes() -> Result<()> {
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let dir = tempfile::tempdir()?;
        let config = test_config(provider, dir.path()).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let admin = TcpListener::bind("127.0.0.1:0").await?;
        let (api_addr, admin_addr) = (listener.local_addr()?, admin.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(ephyra_server::run(config, listener, admin, async move {
            let _ = stopped.await;
        }));

        let client = reqwest::Client::new();
        let live = client
            .get(format!("http://{api_addr}/health/live"))
            .send()
            .await?;
        assert_eq!(live.status(), 200);
        let info: serde_json::Value = client
            .get(format!("http://{api_addr}/system/info/public"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(info["ProductName"], "Jellyfin Server");
        let metrics = client
            .get(format!("http://{admin_addr}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        assert!(metrics.contains("ephyra_http_requests_total"), "{metrics}");

        let _ = stop.send(());
        let outcome = tokio::time::timeout(Duration::from_secs(20), server).await??;
        outcome?;
        assert!(
            client
                .get(format!("http://{api_addr}/health/live"))
                .send()
                .await
                .is_err()
        );
    }
    Ok(())
}

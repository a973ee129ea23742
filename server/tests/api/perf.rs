//! Latency figures, not assertions: run with
//! `cargo test -p ephyra-server --release --test api perf -- --ignored --nocapture`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::net::TcpListener;

use crate::support::{Provider, TestServer, with_token};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run on demand"]
async fn measure_an_authenticated_call_over_loopback() -> Result<()> {
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let server = TestServer::new(provider).await?;
        let (_, token) = server.viewer().await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = ephyra_server::app(server.state.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let auth = with_token(&token);
        let url = format!("http://{addr}/Users/Me");
        for _ in 0..100 {
            client
                .get(&url)
                .header("Authorization", &auth)
                .send()
                .await?;
        }
        let mut http = Vec::new();
        for _ in 0..1000 {
            let t = Instant::now();
            let r = client
                .get(&url)
                .header("Authorization", &auth)
                .send()
                .await?;
            anyhow::ensure!(r.status() == 200);
            r.bytes().await?;
            http.push(t.elapsed());
        }
        let hash = ephyra_server::auth::hash_token(&token);
        let mut lookup = Vec::new();
        for _ in 0..1000 {
            let t = Instant::now();
            server.state.store.token_owner(&hash).await?;
            lookup.push(t.elapsed());
        }
        http.sort();
        lookup.sort();
        println!(
            "{provider:?}: GET /Users/Me p50 {:?} p99 {:?}; token lookup p50 {:?} p99 {:?}",
            percentile(&http, 0.5),
            percentile(&http, 0.99),
            percentile(&lookup, 0.5),
            percentile(&lookup, 0.99),
        );
    }
    Ok(())
}

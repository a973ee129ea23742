//! One server on its embedded default (SQLite), as `make run` starts it.

use std::time::Duration;

use ephyra_e2e::ServerProcess;

#[tokio::test]
async fn a_server_on_sqlite_answers_health_and_public_info_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = ServerProcess::start(
        "single",
        &[("EPHYRA_DATA_DIR", data.display().to_string())],
        dir.path(),
    )
    .await
    .unwrap();

    let client = reqwest::Client::new();
    let live = client
        .get(format!("{}/health/live", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    let info: serde_json::Value = client
        .get(format!("{}/System/Info/Public", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["ProductName"], "Jellyfin Server");
    assert!(
        info["Id"].as_str().is_some_and(|id| id.len() == 32),
        "{info}"
    );

    // The database file lives under the data folder it was given.
    assert!(
        data.join("ephyra.db").exists(),
        "no SQLite file under {}",
        data.display()
    );

    let exited = server.terminate(Duration::from_secs(10)).await.unwrap();
    assert!(
        exited,
        "server did not stop within 10 s of SIGTERM; log:\n{}",
        server.log()
    );
}

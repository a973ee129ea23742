//! The real Jellyfin Python client (jellyfin-apiclient-python, pinned in
//! scripts/requirements-test.txt) against a running server on SQLite over generated media:
//! connect, log in, list views and items, open an item, read a byte range of its stream and
//! compare it with the file, report progress, find it in Resume, log in by QuickConnect.

use std::path::Path;
use std::process::Command;

use ephyra_e2e::ServerProcess;

#[tokio::test]
async fn the_jellyfin_python_client_logs_in_browses_streams_resumes_and_uses_quick_connect() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let python = workspace.join("build/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (scripts/ensure-deps.sh)",
        python.display()
    );

    let dir = tempfile::tempdir().unwrap();
    let library = ephyra_testsupport::media::generate_library(&dir.path().join("media"))
        .await
        .unwrap();
    // Items shorter than 300 s count as played at once (Jellyfin's rule): one long, tiny film
    // gives the client something to resume.
    let long_film = library.films_dir.join("Long Voyage (2020).mkv");
    let tiny = ephyra_testsupport::media::VideoSpec {
        seconds: 320,
        width: 64,
        height: 36,
        fps: 4,
        keyframe_interval: 8,
    };
    ephyra_testsupport::media::generate_video_with(
        &long_film,
        tiny,
        ephyra_testsupport::media::Container::Mkv,
    )
    .await
    .unwrap();
    let libraries = format!(
        "movies:Films={};tvshows:Series={}",
        library.films_dir.display(),
        library.series_dir.display()
    );
    let server = ServerProcess::start(
        "python-client",
        &[
            (
                "EPHYRA_DATA_DIR",
                dir.path().join("data").display().to_string(),
            ),
            ("EPHYRA_LIBRARIES", libraries),
            ("EPHYRA_ADMIN_USER", "alice".to_owned()),
            ("EPHYRA_ADMIN_PASSWORD", "correct horse".to_owned()),
        ],
        dir.path(),
    )
    .await
    .unwrap();

    // The startup scan runs in the background: wait until the films are visible.
    let script = workspace.join("e2e/clients/python_client.py");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let seen = loop {
        let out = Command::new(&python)
            .arg(&script)
            .args([&server.url, "alice", "correct horse"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if out.status.success() {
            break serde_json::from_str::<serde_json::Value>(&stdout).unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "python client failed:\n{stderr}\nserver log:\n{}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };

    let client = reqwest::Client::new();
    let public: serde_json::Value = client
        .get(format!("{}/System/Info/Public", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["server_id"], public["Id"]);
    assert_eq!(seen["user_name"], "alice");
    assert_eq!(seen["views"], serde_json::json!(["Films", "Series"]));
    assert_eq!(
        seen["films"],
        serde_json::json!([
            "Big Buck Test (2019)",
            "Long Voyage (2020)",
            "Tiny Planet (2021)"
        ])
    );
    assert_eq!(seen["film_container"], "mkv");
    assert_eq!(seen["direct_play"], true);

    let film = library
        .films
        .iter()
        .find(|f| f.title == "Big Buck Test")
        .unwrap();
    let bytes = std::fs::read(&film.path).unwrap();
    assert_eq!(seen["range_status"], 206);
    assert_eq!(
        seen["range_content_range"],
        format!("bytes 1000-4999/{}", bytes.len()).as_str()
    );
    assert_eq!(
        seen["range_hex"].as_str().unwrap(),
        to_hex(&bytes[1000..5000])
    );

    let expected = seen["resume_expected_ticks"].as_i64().unwrap();
    let resume = seen["resume"].as_array().unwrap();
    assert!(
        resume
            .iter()
            .any(|r| r[0] == "Long Voyage" && r[1].as_i64() == Some(expected)),
        "film not in Resume at {expected} ticks: {resume:?}"
    );
    assert_eq!(seen["quick_connect_user"], "alice");
    assert_eq!(seen["quick_connect_token_differs"], true);
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

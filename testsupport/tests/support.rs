//! The test support crate against the real binaries it drives: PostgreSQL, Redis, ffmpeg.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ephyra_testsupport::media::{self, Container, VideoSpec};
use ephyra_testsupport::process::{spawn_tied, tied_command};
use ephyra_testsupport::{
    ChildGuard, PostgresGuard, RedisGuard, SupportError, free_port, postgres, wait_for_tcp,
};
use redis::AsyncCommands;
use sqlx::{Connection, PgConnection};

/// Whether `pid` has exited (a zombie counts: it runs no code and holds no port).
fn process_is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// `sleep seconds`, tied to the test process.
fn tied_sleep(seconds: u32) -> Command {
    let mut command = tied_command("sleep");
    // Not the test's stdout: a reader of that would wait for the sleep to end.
    command
        .arg(seconds.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Polls until `pid` has exited or `timeout` passes.
async fn wait_until_gone(pid: u32, timeout: Duration) -> bool {
    let started = Instant::now();
    while !process_is_gone(pid) {
        if started.elapsed() > timeout {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

// ---- PostgreSQL ----

#[tokio::test]
async fn postgres_answers_a_real_query() -> Result<()> {
    let url = postgres::fresh_database().await?;
    let mut connection = PgConnection::connect(&url).await?;

    let one: i32 = sqlx::query_scalar("select 1")
        .fetch_one(&mut connection)
        .await?;

    assert_eq!(one, 1);
    Ok(())
}

#[tokio::test]
async fn fresh_databases_are_independent() -> Result<()> {
    let first_url = postgres::fresh_database().await?;
    let second_url = postgres::fresh_database().await?;
    assert_ne!(first_url, second_url);

    let mut first = PgConnection::connect(&first_url).await?;
    sqlx::raw_sql("create table films (title text); insert into films values ('Tiny Planet')")
        .execute(&mut first)
        .await?;
    let mut second = PgConnection::connect(&second_url).await?;
    let table: Option<String> = sqlx::query_scalar("select to_regclass('films')::text")
        .fetch_one(&mut second)
        .await?;

    assert_eq!(table, None);
    Ok(())
}

#[tokio::test]
async fn postgres_urls_carry_a_password_that_is_checked() -> Result<()> {
    let server = PostgresGuard::shared().await?;
    let wrong = server.url().replace(":testsupport-pass@", ":wrong@");
    ensure!(
        wrong != server.url(),
        "the URL carries the expected password"
    );

    let refused = PgConnection::connect(&wrong).await;

    assert!(refused.is_err(), "a wrong password is refused");
    PgConnection::connect(&server.url()).await?.close().await?;
    Ok(())
}

#[tokio::test]
async fn create_database_refuses_names_that_would_need_quoting() -> Result<()> {
    let server = PostgresGuard::shared().await?;

    let refused = server
        .create_database("films\"; drop database postgres; --")
        .await;

    assert!(matches!(
        refused,
        Err(SupportError::InvalidDatabaseName { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn postgres_restart_keeps_committed_rows() -> Result<()> {
    let mut server = PostgresGuard::start().await?;
    let url = server.create_database("recovery").await?;
    let port = server.port();
    let mut connection = PgConnection::connect(&url).await?;
    sqlx::raw_sql("create table tokens (id int); insert into tokens values (1), (2)")
        .execute(&mut connection)
        .await?;
    let postmaster = server.pid().context("the server runs")?;

    server.kill()?;
    assert!(wait_until_gone(postmaster, Duration::from_secs(5)).await);
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "nothing serves while killed"
    );
    server.restart().await?;

    assert_eq!(server.port(), port);
    let mut connection = PgConnection::connect(&url).await?;
    let rows: i64 = sqlx::query_scalar("select count(*) from tokens")
        .fetch_one(&mut connection)
        .await?;
    assert_eq!(rows, 2);
    Ok(())
}

#[tokio::test]
async fn postgres_stop_then_restart_serves_the_same_url() -> Result<()> {
    let mut server = PostgresGuard::start().await?;
    let url = server.url();

    server.stop().await?;
    assert_eq!(server.pid(), None);
    server.restart().await?;

    PgConnection::connect(&url).await?.close().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_guard_stops_the_server_and_removes_its_folder_on_drop() -> Result<()> {
    let server = PostgresGuard::start().await?;
    let folder = server.scratch_dir().to_path_buf();
    let postmaster = server.pid().context("the server runs")?;
    assert!(folder.join("data").join("PG_VERSION").is_file());

    drop(server);

    assert!(process_is_gone(postmaster));
    assert!(!folder.exists());
    Ok(())
}

// The shared server is checked through fresh_database() above; this shows it is one server.
#[tokio::test]
async fn the_shared_postgres_is_one_server_per_process() -> Result<()> {
    let first = PostgresGuard::shared().await?;
    let second = PostgresGuard::shared().await?;

    assert!(std::ptr::eq(first, second));
    assert_eq!(first.port(), second.port());
    Ok(())
}

// ---- Redis ----

#[tokio::test]
async fn redis_answers_ping_set_and_get() -> Result<()> {
    let server = RedisGuard::start().await?;
    let client = redis::Client::open(server.url())?;
    let mut connection = client.get_multiplexed_async_connection().await?;

    let pong: String = redis::cmd("PING").query_async(&mut connection).await?;
    let () = connection.set("session", "token-1").await?;
    let value: String = connection.get("session").await?;

    assert_eq!(pong, "PONG");
    assert_eq!(value, "token-1");
    Ok(())
}

#[tokio::test]
async fn redis_restart_after_kill_serves_an_empty_store_on_the_same_url() -> Result<()> {
    let mut server = RedisGuard::start().await?;
    let url = server.url();
    let client = redis::Client::open(url.clone())?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let () = connection.set("session", "token-1").await?;
    let pid = server.pid().context("the server runs")?;

    server.kill()?;
    assert!(wait_until_gone(pid, Duration::from_secs(5)).await);
    server.restart().await?;

    assert_eq!(server.url(), url);
    let mut connection = client.get_multiplexed_async_connection().await?;
    let value: Option<String> = connection.get("session").await?;
    assert_eq!(value, None, "nothing is persisted across a crash");
    Ok(())
}

#[tokio::test]
async fn redis_guard_stops_the_server_and_removes_its_folder_on_drop() -> Result<()> {
    let server = RedisGuard::start().await?;
    let folder = server.scratch_dir().to_path_buf();
    let pid = server.pid().context("the server runs")?;
    assert!(folder.join("redis.log").is_file());

    drop(server);

    assert!(process_is_gone(pid));
    assert!(!folder.exists());
    Ok(())
}

// ---- Media ----

/// Asserts that `path` is a video of the given container holding one H.264 stream of the
/// default size and one AAC stream, `expected` long.
async fn assert_is_sample_video(
    path: &Path,
    container: Container,
    expected: Duration,
) -> Result<()> {
    let probe = media::probe(path).await?;
    let format = match container {
        Container::Mkv => "matroska",
        Container::Mp4 => "mp4",
    };
    assert!(probe.format_name.contains(format), "{path:?}: {probe:?}");
    assert_eq!(probe.count("video"), 1, "{path:?}: {probe:?}");
    assert_eq!(probe.count("audio"), 1, "{path:?}: {probe:?}");
    let video = probe.streams.iter().find(|stream| stream.kind == "video");
    let video = video.context("a video stream")?;
    assert_eq!(
        (video.codec.as_str(), video.width, video.height),
        ("h264", Some(320), Some(180))
    );
    let audio = probe.streams.iter().find(|stream| stream.kind == "audio");
    assert_eq!(audio.context("an audio stream")?.codec, "aac");
    // AAC priming and container rounding add a few milliseconds.
    let off_by = probe.duration.abs_diff(expected);
    assert!(
        off_by < Duration::from_millis(250),
        "{path:?} lasts {:?}",
        probe.duration
    );
    Ok(())
}

#[tokio::test]
async fn the_sample_library_holds_what_it_describes() -> Result<()> {
    let library = media::cached_sample_library().await?;
    let relative = |path: &Path| path.strip_prefix(&library.root).map(Path::to_path_buf);

    let films: Vec<_> = library
        .films
        .iter()
        .map(|film| (film.title.as_str(), film.year))
        .collect();
    assert_eq!(films, [("Big Buck Test", 2019), ("Tiny Planet", 2021)]);
    assert_eq!(
        relative(&library.films[0].path)?,
        Path::new("films/Big Buck Test (2019).mkv")
    );
    assert_eq!(
        relative(&library.films[1].path)?,
        Path::new("films/Tiny Planet (2021).mp4")
    );
    let show = &library.series[0];
    assert_eq!(show.name, "Test Show");
    let episodes: Vec<_> = show
        .episodes
        .iter()
        .map(|episode| (episode.season, episode.episode, relative(&episode.path)))
        .map(|(season, episode, path)| path.map(|path| (season, episode, path)))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        episodes,
        [
            (
                1,
                1,
                "series/Test Show/Season 01/Test Show S01E01.mkv".into()
            ),
            (
                1,
                2,
                "series/Test Show/Season 01/Test Show S01E02.mkv".into()
            ),
        ]
    );

    for film in &library.films {
        assert_is_sample_video(&film.path, film.container, Duration::from_secs(12)).await?;
    }
    for episode in &show.episodes {
        assert_is_sample_video(&episode.path, episode.container, Duration::from_secs(12)).await?;
    }
    assert_eq!(library.videos().len(), 4);
    Ok(())
}

#[tokio::test]
async fn the_sample_library_has_a_jpeg_poster_for_one_film() -> Result<()> {
    let library = media::cached_sample_library().await?;
    let posters: Vec<_> = library
        .films
        .iter()
        .filter_map(|film| film.poster.as_ref())
        .collect();
    assert_eq!(posters.len(), 1);

    let probe = media::probe(posters[0]).await?;

    assert_eq!(probe.count("video"), 1);
    assert_eq!(probe.streams[0].codec, "mjpeg");
    assert_eq!(
        (probe.streams[0].width, probe.streams[0].height),
        (Some(300), Some(450))
    );
    Ok(())
}

#[tokio::test]
async fn generated_videos_have_a_keyframe_exactly_every_interval() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let path = folder.path().join("gop.mp4");
    let spec = VideoSpec::default().seconds(7).keyframe_interval(24);

    media::generate_video_with(&path, spec, Container::Mp4).await?;
    let keyframes = media::keyframe_times(&path).await?;

    let expected: Vec<_> = (0..7).map(Duration::from_secs).collect();
    assert_eq!(keyframes, expected);
    Ok(())
}

#[tokio::test]
async fn generate_video_writes_the_requested_length_and_container() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let path = folder.path().join("nested").join("short.mkv");

    ephyra_testsupport::generate_video(&path, 3, Container::Mkv).await?;

    assert_is_sample_video(&path, Container::Mkv, Duration::from_secs(3)).await
}

#[tokio::test]
async fn a_corrupt_video_is_unreadable_to_ffprobe() -> Result<()> {
    let folder = tempfile::tempdir()?;
    let path = folder.path().join("Broken (2020).mkv");

    media::write_corrupt_video(&path)?;
    let probed = media::probe(&path).await;

    assert_eq!(std::fs::metadata(&path)?.len(), 64 * 1024);
    assert!(
        matches!(probed, Err(SupportError::CommandFailed { .. })),
        "{probed:?}"
    );
    Ok(())
}

// ---- Ports and processes ----

#[tokio::test]
async fn wait_for_tcp_returns_once_a_listener_is_up() -> Result<()> {
    let port = free_port()?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let _listener = tokio::net::TcpListener::bind(addr).await?;

    wait_for_tcp(addr, Duration::from_secs(5)).await?;
    Ok(())
}

#[tokio::test]
async fn wait_for_tcp_gives_up_on_a_closed_port() -> Result<()> {
    let port = free_port()?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    let waited = wait_for_tcp(addr, Duration::from_millis(200)).await;

    assert!(matches!(waited, Err(SupportError::WaitForTcp { .. })));
    Ok(())
}

#[test]
fn child_guard_kills_a_std_child_on_drop() -> Result<()> {
    let child = Command::new("sleep").arg("30").spawn()?;
    let guard = ChildGuard::new(child);
    let pid = guard.id();

    drop(guard);

    assert!(process_is_gone(pid));
    Ok(())
}

#[tokio::test]
async fn child_guard_kills_a_tokio_child_on_drop() -> Result<()> {
    let child = tokio::process::Command::new("sleep").arg("30").spawn()?;
    let guard = ChildGuard::new(child);
    let pid = guard.id().context("a running child has a pid")?;

    drop(guard);

    assert!(wait_until_gone(pid, Duration::from_secs(5)).await);
    Ok(())
}

#[test]
fn a_tied_child_outlives_the_thread_that_started_it() -> Result<()> {
    let guard = std::thread::spawn(|| spawn_tied(tied_sleep(30)))
        .join()
        .map_err(|_| anyhow::anyhow!("the spawning thread panicked"))??;

    // Give a parent-death signal, were one sent for the thread, time to arrive.
    std::thread::sleep(Duration::from_millis(200));

    assert!(!process_is_gone(guard.id()));
    Ok(())
}

/// Run by `tied_children_die_with_the_test_process` in a child test process.
#[test]
#[ignore = "a helper for tied_children_die_with_the_test_process"]
fn helper_leaks_a_tied_child() -> Result<()> {
    let guard = spawn_tied(tied_sleep(60))?;
    println!("TIED_PID={}", guard.id());
    // Never dropped: only the process's exit can end the child.
    std::mem::forget(guard);
    Ok(())
}

#[tokio::test]
async fn tied_children_die_with_the_test_process() -> Result<()> {
    let output = Command::new(std::env::current_exe()?)
        .args([
            "--ignored",
            "--exact",
            "helper_leaks_a_tied_child",
            "--nocapture",
        ])
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        output.status.success(),
        "the helper test failed: {output:?}"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("TIED_PID="))
        .context("the helper printed its child's pid")?
        .parse()?;

    assert!(wait_until_gone(pid, Duration::from_secs(5)).await);
    Ok(())
}

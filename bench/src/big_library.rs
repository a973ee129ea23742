//! The 20,000-item figures: a generated library of 10,000 films and 500 series of 20 episodes
//! on PostgreSQL, one server. Measures the first scan, a rescan with nothing changed, the
//! server's memory during and after them, and the lists a home screen and a library page ask
//! for, one request at a time, with PostgreSQL's transactions per request.
//!
//! The library is ONE tiny clip made by ffmpeg (through `ephyra-testsupport`) and hard-linked
//! under every name, so generating 20,000 files takes seconds and no disk space; names follow
//! the conventions people use (`Title (Year)/Title (Year).mkv`,
//! `Show (Year)/Season 01/Show - S01E02 - Title.mkv`).
//!
//! Measures and returns figures; judging them against targets is the report's job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ephyra_e2e::cluster::{ADMIN_PASSWORD, ADMIN_USER};
use ephyra_e2e::wait::eventually;
use ephyra_e2e::{JellyfinClient, ServerProcess};
use ephyra_testsupport::PostgresGuard;
use ephyra_testsupport::media::{Container, VideoSpec, generate_video_with};
use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use crate::machine::memory_kib;
use crate::wrk::{Figures, Load, Wrk};

/// Films in the full-size library.
pub const FILMS: usize = 10_000;
/// Series in the full-size library.
pub const SERIES: usize = 500;
/// Seasons of each series.
pub const SEASONS: usize = 2;
/// Episodes of each season.
pub const EPISODES_PER_SEASON: usize = 10;

/// How long a scan of the whole library may take before the run gives up.
const SCAN_TIMEOUT: Duration = Duration::from_secs(90 * 60);

/// One measured list.
#[derive(Debug, Clone)]
pub struct ListRun {
    /// What it is, as the report's table names it.
    pub what: &'static str,
    /// The request (path and query, the user id shortened).
    pub request: String,
    /// wrk at one connection.
    pub figures: Figures,
    /// PostgreSQL transactions (autocommitted queries) per request.
    pub queries_per_request: f64,
}

/// The first scan and a rescan of the generated files.
#[derive(Debug, Clone)]
pub struct ScanRun {
    /// The first scan, as the server logged it.
    pub first_scan: Duration,
    /// A second scan with nothing changed, started as soon as the first one finished: beside
    /// the frame job the first scan enqueued (one ffmpeg at a time) unless that had finished.
    pub rescan: Duration,
    /// Whether the frame job was still running when the rescan finished (the rescan then
    /// shared the cores with it).
    pub rescan_beside_frames: bool,
    /// Peak resident set up to the end of the first scan (`VmHWM`).
    pub scan_peak_kib: u64,
    /// Resident set after the rescan (`VmRSS`).
    pub after_rescan_kib: u64,
    /// Peak resident set up to the end of the rescan.
    pub rescan_peak_kib: u64,
    /// From the end of the first scan until the frame job (which any replica runs after the
    /// scan, off its critical path) had extracted every frame; `None` when it did not log, or
    /// was not waited for (`BENCH_LIBRARY_FRAMES=skip`).
    pub frames_after_scan: Option<Duration>,
    /// Peak resident set up to the end of the frame job (`VmHWM`), when it was waited for.
    pub frames_peak_kib: Option<u64>,
    /// The same first scan by a second server on a fresh database with one ffprobe per file
    /// (`EPHYRA_SCAN_FORK_SERVER=false`), as scans probed before the fork servers: the
    /// baseline of the same run. `None` with `BENCH_LIBRARY_BASELINE=skip`.
    pub per_file_first_scan: Option<Duration>,
}

/// Everything this module measures.
#[derive(Debug, Clone)]
pub struct BigLibraryResults {
    /// Video files generated.
    pub files: usize,
    /// Films and series in the library.
    pub films: usize,
    /// Series.
    pub series: usize,
    /// The scans; `None` when the items were written with SQL instead (`BENCH_LIBRARY_SEEDED`).
    pub scans: Option<ScanRun>,
    /// The lists.
    pub lists: Vec<ListRun>,
}

/// How much of the full library to generate, in percent (`BENCH_LIBRARY_PERCENT`, default
/// 100): a quick run at 2 % checks the runner and the query counts in a minute; 500 makes the
/// 100,000-item library the read targets also hold for (meant with `BENCH_LIBRARY_SEEDED`).
pub fn percent_from_env() -> anyhow::Result<usize> {
    match std::env::var("BENCH_LIBRARY_PERCENT") {
        Ok(text) => text
            .parse()
            .ok()
            .filter(|p| (1..=MAX_PERCENT).contains(p))
            .with_context(|| format!("BENCH_LIBRARY_PERCENT={text:?} is not 1..=500")),
        Err(_) => Ok(100),
    }
}

/// The largest library, in percent of the full one: 100,000 items.
const MAX_PERCENT: usize = 500;

/// Whether to write the library's rows with SQL instead of scanning files
/// (`BENCH_LIBRARY_SEEDED=1`): the list figures then take a minute where a first scan of
/// 20,000 files takes as long as ffprobe and ffmpeg need for each (hours on a loaded machine).
pub fn seeded_from_env() -> bool {
    std::env::var("BENCH_LIBRARY_SEEDED").is_ok_and(|v| v == "1" || v == "true")
}

/// Whether to wait for the frame job before the lists (default) or not
/// (`BENCH_LIBRARY_FRAMES=skip`: a 20,000-file run then takes 12 minutes instead of 40, and
/// the lists share the cores with the frame job's ffmpeg).
pub fn wait_for_frames_from_env() -> bool {
    std::env::var("BENCH_LIBRARY_FRAMES").map_or(true, |v| v != "skip")
}

/// Whether to run the per-file first scan as a baseline (default) or not
/// (`BENCH_LIBRARY_BASELINE=skip`, which saves its 12 minutes at 20,000 files).
pub fn per_file_baseline_from_env() -> bool {
    std::env::var("BENCH_LIBRARY_BASELINE").map_or(true, |v| v != "skip")
}

/// Runs the measurements in `scratch`.
pub async fn run(
    wrk: &Wrk,
    scratch: &Path,
    percent: usize,
    seeded: bool,
) -> anyhow::Result<BigLibraryResults> {
    let films = (FILMS * percent / 100).max(1);
    let series = (SERIES * percent / 100).max(1);
    let root = scratch.join("big-library");
    let layout = if seeded {
        // Empty roots: the server's first scan finds nothing, stops and keeps what is stored.
        let layout = Layout {
            films_dir: root.join("Films"),
            series_dir: root.join("Series"),
            files: 0,
        };
        std::fs::create_dir_all(&layout.films_dir)?;
        std::fs::create_dir_all(&layout.series_dir)?;
        layout
    } else {
        eprintln!("bench: big library: generating {films} films and {series} series (hard links)");
        generate(&root, films, series).await?
    };

    let postgres = PostgresGuard::shared().await?;
    let database_url = postgres.fresh_database().await?;
    let mut admin_sql = PgConnection::connect(&postgres.url_for("postgres")).await?;
    let dir = scratch.join("big-library-server");
    std::fs::create_dir_all(&dir)?;
    let mut env = vec![
        ("EPHYRA_DATA_DIR", dir.join("data").display().to_string()),
        (
            "EPHYRA_LIBRARIES",
            format!(
                "movies:Films={};tvshows:Series={}",
                layout.films_dir.display(),
                layout.series_dir.display()
            ),
        ),
        ("EPHYRA_SCAN_INTERVAL_SECONDS", "0".to_owned()),
        // The scan logs its resident set after each phase at debug level.
        ("EPHYRA_LOG", "info,ephyra_server::scan=debug".to_owned()),
        ("EPHYRA_ADMIN_USER", ADMIN_USER.to_owned()),
        ("EPHYRA_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("EPHYRA_DATABASE_URL", database_url.clone()),
        (
            "EPHYRA_TRANSCODE_DIR",
            dir.join("transcode").display().to_string(),
        ),
    ];
    eprintln!("bench: big library: starting the server");
    let server = ServerProcess::start("big-library", &env, &dir).await?;
    let pid = server.pid().context("the server exited")?;
    let mut client = JellyfinClient::new(&server.url, "bench-big-library");
    let scans = if seeded {
        client.login(ADMIN_USER, ADMIN_PASSWORD).await?;
        // The startup scan of the empty roots settles first (it writes nothing).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut sql = PgConnection::connect(&database_url).await?;
        seed(&mut sql, films, series).await?;
        eprintln!("bench: big library: {films} films and {series} series written with SQL");
        None
    } else {
        let first_scan = scan_finished(&server, 1).await?;
        let scanned_at = std::time::Instant::now();
        let (_, scan_peak_kib) = memory_kib(pid)?;
        eprintln!("bench: big library: first scan {first_scan:?}");
        // The rescan right away, beside the frame job the first scan enqueued (which takes
        // half an hour at 20,000 files): what a household sees when it rescans after adding
        // its library, and the rescan's figure does not wait for the frames.
        client.login(ADMIN_USER, ADMIN_PASSWORD).await?;
        client.refresh_library().await?;
        let rescan = scan_finished(&server, 2).await?;
        let rescan_beside_frames = !frames_done(&server.log());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (after_rescan_kib, rescan_peak_kib) = memory_kib(pid)?;
        eprintln!(
            "bench: big library: rescan {rescan:?} (frame job running: {rescan_beside_frames})"
        );
        // Then the frames, so that the list rows do not share the cores with ffmpeg.
        let (frames_after_scan, frames_peak_kib) = if wait_for_frames_from_env() {
            let done = frames_extracted(&server)
                .await
                .ok()
                .map(|()| scanned_at.elapsed());
            (done, Some(memory_kib(pid)?.1))
        } else {
            (None, None)
        };
        eprintln!("bench: big library: frames done {frames_after_scan:?} after the scan");
        Some(ScanRun {
            first_scan,
            rescan,
            rescan_beside_frames,
            scan_peak_kib,
            after_rescan_kib,
            rescan_peak_kib,
            frames_after_scan,
            frames_peak_kib,
            per_file_first_scan: None,
        })
    };

    let lists = list_runs(wrk, &server, &client, &mut admin_sql, &database_url).await?;
    drop(server);
    let mut scans = scans;
    if let Some(scans) = scans.as_mut().filter(|_| per_file_baseline_from_env()) {
        // After the lists, so they never share the cores with it.
        let baseline_dir = scratch.join("big-library-per-file");
        std::fs::create_dir_all(&baseline_dir)?;
        let baseline_url = postgres.fresh_database().await?;
        for (key, value) in &mut env {
            match *key {
                "EPHYRA_DATA_DIR" => *value = baseline_dir.join("data").display().to_string(),
                "EPHYRA_DATABASE_URL" => value.clone_from(&baseline_url),
                "EPHYRA_TRANSCODE_DIR" => {
                    *value = baseline_dir.join("transcode").display().to_string();
                }
                _ => {}
            }
        }
        env.push(("EPHYRA_SCAN_FORK_SERVER", "false".to_owned()));
        eprintln!("bench: big library: the same first scan with one ffprobe per file");
        let baseline = ServerProcess::start("big-library-per-file", &env, &baseline_dir).await?;
        let per_file = scan_finished(&baseline, 1).await?;
        eprintln!("bench: big library: first scan with one ffprobe per file {per_file:?}");
        scans.per_file_first_scan = Some(per_file);
    }
    Ok(BigLibraryResults {
        files: if seeded {
            films + series * SEASONS * EPISODES_PER_SEASON
        } else {
            layout.files
        },
        films,
        series,
        scans,
        lists,
    })
}

/// Writes the rows a first scan of the generated library writes (films; series, seasons and
/// episodes; one video and one audio stream and a primary image for each file), then vacuums
/// and updates PostgreSQL's statistics as autovacuum would after a scan.
async fn seed(sql: &mut PgConnection, films: usize, series: usize) -> anyhow::Result<()> {
    let library = |name: &'static str| {
        sqlx::query_scalar::<_, String>("SELECT id FROM libraries WHERE name = $1").bind(name)
    };
    let films_id = library("Films").fetch_one(&mut *sql).await?;
    let shows_id = library("Series").fetch_one(&mut *sql).await?;
    let (titles, years): (Vec<String>, Vec<i64>) = (0..films)
        .map(|n| {
            let (title, year) = film(n);
            (title, year as i64)
        })
        .unzip();
    let now = chrono::Utc::now().timestamp_millis();
    // Ids as the scanner's: 32 hex digits; only their uniqueness matters here.
    sqlx::query(
        "INSERT INTO items (id, library_id, kind, name, sort_name, path, production_year, \
         run_time_ticks, container, size_bytes, bitrate, file_mtime, date_created, \
         date_modified, placement) \
         SELECT md5('film' || t.n), $1, 'Movie', t.title, lower(regexp_replace(t.title, \
         '^The ', '')), '/library/Films/' || t.title || '.mkv', t.year, 10000000, 'mkv', \
         20000, 160000, $4, $4 + t.n, $4 + t.n, 'seeded' \
         FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS t(title, year, n)",
    )
    .bind(&films_id)
    .bind(&titles)
    .bind(&years)
    .bind(now)
    .execute(&mut *sql)
    .await?;
    let (names, first_years): (Vec<String>, Vec<i64>) = (0..series)
        .map(|n| {
            let (name, year) = show(n);
            (name, year as i64)
        })
        .unzip();
    sqlx::query(
        "INSERT INTO items (id, library_id, kind, name, sort_name, path, production_year, \
         date_created, date_modified) \
         SELECT md5('series' || t.n), $1, 'Series', t.name, lower(t.name), \
         '/library/Series/' || t.name, t.year, $4, $4 \
         FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS t(name, year, n)",
    )
    .bind(&shows_id)
    .bind(&names)
    .bind(&first_years)
    .bind(now)
    .execute(&mut *sql)
    .await?;
    sqlx::query(
        "INSERT INTO items (id, library_id, parent_id, kind, name, sort_name, series_id, \
         index_number, date_created, date_modified) \
         SELECT md5('season' || s.id || k), $1, s.id, 'Season', 'Season ' || k, \
         'season ' || lpad(k::text, 2, '0'), s.id, k, $2, $2 \
         FROM items s CROSS JOIN generate_series(1, $3::bigint) AS k WHERE s.kind = 'Series'",
    )
    .bind(&shows_id)
    .bind(now)
    .bind(SEASONS as i64)
    .execute(&mut *sql)
    .await?;
    sqlx::query(
        "INSERT INTO items (id, library_id, parent_id, kind, name, sort_name, path, series_id, \
         season_id, index_number, parent_index_number, run_time_ticks, container, size_bytes, \
         bitrate, file_mtime, date_created, date_modified, placement) \
         SELECT md5('episode' || se.id || e), $1, se.id, 'Episode', 'Episode ' || e, \
         'episode ' || lpad(e::text, 3, '0'), se.series_path || '/S' || se.index_number || 'E' || e || '.mkv', \
         se.series_id, se.id, e, se.index_number, 10000000, 'mkv', 20000, 160000, $2, $2 + e, \
         $2 + e, 'seeded' FROM (SELECT c.id, c.series_id, c.index_number, \
         p.path AS series_path FROM items c JOIN items p ON p.id = c.series_id \
         WHERE c.kind = 'Season') se CROSS JOIN generate_series(1, $3::bigint) AS e",
    )
    .bind(&shows_id)
    .bind(now)
    .bind(EPISODES_PER_SEASON as i64)
    .execute(&mut *sql)
    .await?;
    sqlx::query(
        "INSERT INTO media_streams (item_id, stream_index, kind, codec, profile, width, height, \
         bit_rate, average_frame_rate, pixel_format, is_default) \
         SELECT id, 0, 'Video', 'h264', 'High', 160, 90, 150000, 10, 'yuv420p', 1 \
         FROM items WHERE kind IN ('Movie', 'Episode')",
    )
    .execute(&mut *sql)
    .await?;
    sqlx::query(
        "INSERT INTO media_streams (item_id, stream_index, kind, codec, channels, \
         channel_layout, sample_rate, bit_rate, is_default) \
         SELECT id, 1, 'Audio', 'aac', 2, 'stereo', 48000, 10000, 1 \
         FROM items WHERE kind IN ('Movie', 'Episode')",
    )
    .execute(&mut *sql)
    .await?;
    sqlx::query(
        "INSERT INTO images (item_id, image_type, image_index, path, tag, file_mtime) \
         SELECT id, 'Primary', 0, '/data/images/' || id || '.jpg', substr(md5(id), 1, 16), $1 \
         FROM items WHERE kind IN ('Movie', 'Episode', 'Series')",
    )
    .bind(now)
    .execute(&mut *sql)
    .await?;
    // The read keys the store derives when it writes an item (the generated names are
    // plain ASCII, so lower-casing is the store's folding).
    sqlx::query("UPDATE items SET sort_key = sort_name, search_name = lower(name)")
        .execute(&mut *sql)
        .await?;
    // What autovacuum does after a bulk insert: statistics, and the visibility map that lets
    // a count read an index alone.
    sqlx::query("VACUUM ANALYZE").execute(&mut *sql).await?;
    Ok(())
}

/// Where the generated library is.
struct Layout {
    films_dir: PathBuf,
    series_dir: PathBuf,
    files: usize,
}

const ADJECTIVES: [&str; 50] = [
    "Silent",
    "Crimson",
    "Hidden",
    "Broken",
    "Golden",
    "Distant",
    "Frozen",
    "Burning",
    "Quiet",
    "Hollow",
    "Electric",
    "Wild",
    "Lost",
    "Iron",
    "Velvet",
    "Bitter",
    "Bright",
    "Northern",
    "Savage",
    "Gentle",
    "Midnight",
    "Scarlet",
    "Restless",
    "Secret",
    "Endless",
    "Fallen",
    "Painted",
    "Sunken",
    "Wandering",
    "Pale",
    "Shattered",
    "Emerald",
    "Last",
    "First",
    "Little",
    "Final",
    "Lonely",
    "Glass",
    "Paper",
    "Stone",
    "Silver",
    "Winter",
    "Summer",
    "Autumn",
    "Spring",
    "Dark",
    "Ancient",
    "Forgotten",
    "Sleeping",
    "Rising",
];

const NOUNS: [&str; 50] = [
    "Harbor",
    "River",
    "Garden",
    "Kingdom",
    "Station",
    "Mountain",
    "Letter",
    "Empire",
    "Horizon",
    "Forest",
    "Promise",
    "Shadow",
    "Island",
    "Mirror",
    "Voyage",
    "Tower",
    "Desert",
    "Orchard",
    "Lantern",
    "Bridge",
    "Circus",
    "Engine",
    "Frontier",
    "Meadow",
    "Signal",
    "Canyon",
    "Chapel",
    "Compass",
    "Valley",
    "Harvest",
    "Lighthouse",
    "Machine",
    "Ocean",
    "Passage",
    "Prairie",
    "Quarry",
    "Refuge",
    "Saint",
    "Theory",
    "Thunder",
    "Tide",
    "Village",
    "Witness",
    "Year",
    "Crown",
    "Dream",
    "Falcon",
    "Highway",
    "Memory",
    "Road",
];

const SEQUELS: [&str; 4] = ["", " 2", " - Reckoning", " Returns"];

/// The `n`th film title (distinct for every n; the first 10,000 without a volume) and its
/// year.
fn film(n: usize) -> (String, usize) {
    let adjective = ADJECTIVES[n % ADJECTIVES.len()];
    let noun = NOUNS[(n / ADJECTIVES.len()) % NOUNS.len()];
    let sequel = SEQUELS[(n / (ADJECTIVES.len() * NOUNS.len())) % SEQUELS.len()];
    let article = if n.is_multiple_of(3) { "The " } else { "" };
    let distinct = ADJECTIVES.len() * NOUNS.len() * SEQUELS.len();
    let volume = match n / distinct {
        0 => String::new(),
        v => format!(" Vol. {}", v + 1),
    };
    (
        format!("{article}{adjective} {noun}{sequel}{volume}"),
        1950 + (n * 7) % 75,
    )
}

/// The `n`th series name (distinct for n < 2,500) and its first year.
fn show(n: usize) -> (String, usize) {
    let first = NOUNS[n % NOUNS.len()];
    let second = NOUNS[(n / NOUNS.len() + 1 + n % NOUNS.len()) % NOUNS.len()];
    let adjective = ADJECTIVES[(n / NOUNS.len()) % ADJECTIVES.len()];
    (
        format!("{adjective} {first} and the {second}"),
        1990 + (n * 3) % 35,
    )
}

/// One clip, hard-linked under every film and episode name.
async fn generate(root: &Path, films: usize, series: usize) -> anyhow::Result<Layout> {
    let clip = root.join("clip.mkv");
    let tiny = VideoSpec {
        seconds: 1,
        width: 160,
        height: 90,
        fps: 10,
        keyframe_interval: 10,
    };
    generate_video_with(&clip, tiny, Container::Mkv).await?;
    let films_dir = root.join("Films");
    let series_dir = root.join("Series");
    let link = |to: &Path| -> anyhow::Result<()> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::hard_link(&clip, to).with_context(|| format!("linking {}", to.display()))
    };
    let mut files = 0;
    for n in 0..films {
        let (title, year) = film(n);
        let name = format!("{title} ({year})");
        link(&films_dir.join(&name).join(format!("{name}.mkv")))?;
        files += 1;
    }
    for n in 0..series {
        let (name, year) = show(n);
        let folder = series_dir.join(format!("{name} ({year})"));
        for season in 1..=SEASONS {
            for episode in 1..=EPISODES_PER_SEASON {
                let (title, _) = film(n * 31 + season * 7 + episode);
                link(
                    &folder
                        .join(format!("Season {season:02}"))
                        .join(format!("{name} - S{season:02}E{episode:02} - {title}.mkv")),
                )?;
                files += 1;
            }
        }
    }
    Ok(Layout {
        films_dir,
        series_dir,
        files,
    })
}

/// Waits for the server's `count`th "library scan finished" and returns the time it logged.
async fn scan_finished(server: &ServerProcess, count: usize) -> anyhow::Result<Duration> {
    eventually(
        "the library scan to finish",
        SCAN_TIMEOUT,
        Duration::from_millis(500),
        || {
            let log = server.log();
            async move {
                let found = finished_scans(&log);
                match found.get(count - 1) {
                    Some(elapsed) => Ok(*elapsed),
                    None => Err(format!("{} scan(s) finished so far", found.len())),
                }
            }
        },
    )
    .await
}

/// Waits for the frame job's "frames extracted" line (the job the first scan enqueues).
async fn frames_extracted(server: &ServerProcess) -> anyhow::Result<()> {
    eventually(
        "the frame job to finish",
        SCAN_TIMEOUT,
        Duration::from_millis(500),
        || {
            let log = server.log();
            async move {
                if frames_done(&log) {
                    Ok(())
                } else {
                    Err("no frame job finished yet".to_owned())
                }
            }
        },
    )
    .await
}

/// Whether the frame job logged that it finished.
fn frames_done(log: &str) -> bool {
    without_colours(log).contains("frames extracted")
}

/// `elapsed_ms` of every "library scan finished" line of a log, in order.
fn finished_scans(log: &str) -> Vec<Duration> {
    without_colours(log)
        .lines()
        .filter(|l| l.contains("library scan finished"))
        .filter_map(|l| {
            let rest = &l[l.find("elapsed_ms=")? + "elapsed_ms=".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok().map(Duration::from_millis)
        })
        .collect()
}

/// `text` without terminal colour codes (`ESC [ ... m`), which the server's log carries.
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The transactions of one database so far (published within a second of them).
async fn xacts(sql: &mut PgConnection, database: &str) -> anyhow::Result<i64> {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Ok(sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1",
    )
    .bind(database)
    .fetch_one(&mut *sql)
    .await?)
}

/// The lists, each at one connection, as jellyfin-web asks for them.
async fn list_runs(
    wrk: &Wrk,
    server: &ServerProcess,
    client: &JellyfinClient,
    sql: &mut PgConnection,
    database_url: &str,
) -> anyhow::Result<Vec<ListRun>> {
    let database = database_url
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let user = client.user_id.clone().context("not logged in")?;
    let views = client.get_ok(&format!("/UserViews?userId={user}")).await?;
    let view = |name: &str| -> anyhow::Result<String> {
        views["Items"]
            .as_array()
            .and_then(|items| items.iter().find(|v| v["Name"] == name))
            .and_then(|v| v["Id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no library {name} in /UserViews"))
    };
    let (films, shows) = (view("Films")?, view("Series")?);
    let page = client
        .get_ok(&format!(
            "/Items?userId={user}&parentId={films}&recursive=true&includeItemTypes=Movie&limit=1"
        ))
        .await?;
    let film_id = page["Items"][0]["Id"]
        .as_str()
        .context("no film in the library")?
        .to_owned();
    let images = "imageTypeLimit=1&enableImageTypes=Primary,Backdrop,Banner,Thumb";
    let requests: Vec<(&'static str, String)> = vec![
        (
            "library page (100 items, sorted, fields)",
            format!(
                "/Items?userId={user}&parentId={films}&sortBy=SortName,ProductionYear\
                 &sortOrder=Ascending&includeItemTypes=Movie&recursive=true\
                 &fields=PrimaryImageAspectRatio,MediaSourceCount&{images}\
                 &startIndex=0&limit=100"
            ),
        ),
        (
            "latest per library (16), films",
            format!(
                "/Items/Latest?userId={user}&parentId={films}&limit=16\
                 &fields=PrimaryImageAspectRatio&{images}"
            ),
        ),
        (
            "latest per library (16), series",
            format!(
                "/Items/Latest?userId={user}&parentId={shows}&limit=16\
                 &fields=PrimaryImageAspectRatio&{images}"
            ),
        ),
        (
            "resume (12), with nothing to resume",
            format!(
                "/UserItems/Resume?userId={user}&limit=12&fields=PrimaryImageAspectRatio\
                 &{images}&enableTotalRecordCount=false&mediaTypes=Video"
            ),
        ),
        (
            "next up (24), with nothing to show",
            format!(
                "/Shows/NextUp?userId={user}&limit=24\
                 &fields=PrimaryImageAspectRatio,DateCreated,MediaSourceCount&{images}\
                 &enableTotalRecordCount=false&disableFirstEpisode=false"
            ),
        ),
        (
            "search (24)",
            format!(
                "/Items?userId={user}&limit=24&recursive=true&searchTerm=harbor\
                 &fields=PrimaryImageAspectRatio,CanDelete,MediaSourceCount\
                 &includeItemTypes=Movie&{images}&enableTotalRecordCount=false"
            ),
        ),
        (
            "one item's details",
            format!("/Items/{film_id}?userId={user}"),
        ),
    ];
    let auth = client.authorization();
    let mut out = Vec::new();
    for (what, path) in requests {
        let url = format!("{}{path}", server.url);
        let key = format!("big-library.{}", what.split(' ').next().unwrap_or("list"));
        let before = xacts(sql, &database).await?;
        let figures = wrk
            .run(
                &key,
                Load {
                    url: &url,
                    connections: 1,
                    auth: Some(&auth),
                    range: None,
                },
            )
            .await?;
        let after = xacts(sql, &database).await?;
        // wrk's check request before the run is one more request.
        let queries_per_request = (after - before) as f64 / (figures.requests + 1) as f64;
        eprintln!(
            "bench: big library: {what}: p50 {:.2} ms, {queries_per_request:.2} queries/request",
            figures.p50_ms
        );
        out.push(ListRun {
            what,
            request: path.replace(&user, "…"),
            figures,
            queries_per_request,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_name_is_distinct() {
        let most = FILMS * MAX_PERCENT / 100;
        let films: std::collections::HashSet<String> = (0..most).map(|n| film(n).0).collect();
        assert_eq!(films.len(), most);
        let most = SERIES * MAX_PERCENT / 100;
        let shows: std::collections::HashSet<String> = (0..most).map(|n| show(n).0).collect();
        assert_eq!(shows.len(), most);
    }

    #[test]
    fn scan_times_are_read_from_the_log() {
        let log = "x INFO library scan finished libraries=2 files=3 elapsed_ms=1234\n\
                   y\nz INFO library scan finished libraries=2 \u{1b}[3melapsed_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m56 other=1\n";
        assert_eq!(
            finished_scans(log),
            vec![Duration::from_millis(1234), Duration::from_millis(56)]
        );
    }
}

//! Item ids keyed with the installation's secret: a database written before the key existed
//! (ids a public function of the paths) is rewritten when the first replica starts on it, with
//! every play position, setting and link kept, and a rescan then finds the same items.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use ephyra_server::jf::JfId;
use ephyra_server::scan;
use ephyra_server::store::{PoolSettings, Store};
use http::StatusCode;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use crate::library::{FILMS, SHOWS, copy_tree, test_libraries};
use crate::support::{Provider, TestServer, test_config};

/// The id the unkeyed derivation of earlier versions gave (`ephyra-item-v1`).
fn v1(parts: &[&[u8]]) -> JfId {
    let mut hash = Sha256::new();
    hash.update(b"ephyra-item-v1");
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    JfId::from_bytes(digest[..16].try_into().expect("16 bytes"))
}

fn v1_library(name: &str) -> JfId {
    v1(&[b"library", name.to_lowercase().as_bytes()])
}

fn v1_file(library: &str, path: &Path) -> JfId {
    v1(&[
        b"file",
        library.to_lowercase().as_bytes(),
        path.as_os_str().as_encoded_bytes(),
    ])
}

/// The schema as it was before the key: every migration before 0011.
async fn migrate_before_keys(url: &str) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(url).await?;
    let mut migrator = if url.starts_with("sqlite:") {
        sqlx::migrate!("migrations/sqlite")
    } else {
        sqlx::migrate!("migrations/postgres")
    };
    let before: Vec<_> = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 11)
        .cloned()
        .collect();
    migrator.migrations = before.into();
    migrator.run(&pool).await?;
    Ok(pool)
}

async fn exec(pool: &AnyPool, sql: &'static str, binds: &[&str]) -> Result<()> {
    let mut query = sqlx::query(sql);
    for value in binds {
        query = query.bind(*value);
    }
    query.execute(pool).await?;
    Ok(())
}

struct OldLibrary {
    film: PathBuf,
    series_name: String,
    series_dir: PathBuf,
    episode: PathBuf,
    season: u32,
    user: JfId,
}

/// Writes what an earlier version's scan and a user's watching left: both libraries, one film,
/// one series with a season and an episode, play state and settings naming them.
async fn write_old_library(
    pool: &AnyPool,
    films_dir: &Path,
    series_dir: &Path,
) -> Result<OldLibrary> {
    let sample = ephyra_testsupport::media::cached_sample_library().await?;
    let film = films_dir.join(sample.films[0].path.strip_prefix(&sample.films_dir)?);
    let series = &sample.series[0];
    let episode = &series.episodes[0];
    let old = OldLibrary {
        film,
        series_name: series.name.clone(),
        series_dir: series_dir.join(series.path.strip_prefix(&sample.series_dir)?),
        episode: series_dir.join(episode.path.strip_prefix(&sample.series_dir)?),
        season: episode.season,
        user: JfId::random(),
    };
    let (films_lib, shows_lib) = (v1_library(FILMS), v1_library(SHOWS));
    let film_id = v1_file(FILMS, &old.film);
    let series_id = v1(&[
        b"series",
        SHOWS.to_lowercase().as_bytes(),
        old.series_name.to_lowercase().as_bytes(),
    ]);
    let season_id = v1(&[b"season", series_id.as_bytes(), &old.season.to_le_bytes()]);
    let episode_id = v1_file(SHOWS, &old.episode);

    for (id, name, kind, folder) in [
        (films_lib, FILMS, "movies", films_dir),
        (shows_lib, SHOWS, "tvshows", series_dir),
    ] {
        let folders = serde_json::json!([folder]).to_string();
        exec(
            pool,
            "INSERT INTO libraries (id, name, kind, folders, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, 0)",
            &[&id.to_n(), name, kind, &folders],
        )
        .await?;
    }
    let insert_item = "INSERT INTO items (id, library_id, parent_id, kind, name, sort_name, path, \
                       series_id, season_id, index_number, date_created, date_modified) \
                       VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, CAST($9 AS BIGINT), 0, 0)";
    let text = |p: &Path| p.to_string_lossy().into_owned();
    let season = old.season.to_string();
    let rows: [[&str; 9]; 4] = [
        [
            &film_id.to_n(),
            &films_lib.to_n(),
            "",
            "Movie",
            "Film",
            &text(&old.film),
            "",
            "",
            "",
        ],
        [
            &series_id.to_n(),
            &shows_lib.to_n(),
            "",
            "Series",
            &old.series_name,
            &text(&old.series_dir),
            "",
            "",
            "",
        ],
        [
            &season_id.to_n(),
            &shows_lib.to_n(),
            &series_id.to_n(),
            "Season",
            "Season",
            "",
            &series_id.to_n(),
            "",
            &season,
        ],
        [
            &episode_id.to_n(),
            &shows_lib.to_n(),
            &season_id.to_n(),
            "Episode",
            "Episode",
            &text(&old.episode),
            &series_id.to_n(),
            &season_id.to_n(),
            "1",
        ],
    ];
    for row in rows {
        let mut query = sqlx::query(insert_item);
        for value in row {
            // Empty stands for NULL in the table above.
            query = query.bind((!value.is_empty()).then(|| value.to_owned()));
        }
        query.execute(pool).await?;
    }
    let user = old.user.to_n();
    exec(
        pool,
        "INSERT INTO users (id, name, name_key, created_at) VALUES ($1, 'alice', 'alice', 0)",
        &[&user],
    )
    .await?;
    exec(
        pool,
        "INSERT INTO user_item_data (user_id, item_id, playback_position_ticks, play_count, \
         played, updated_at) VALUES ($1, $2, 0, 1, 1, 0), ($1, $3, 4200000000, 0, 0, 0)",
        &[&user, &film_id.to_n(), &episode_id.to_n()],
    )
    .await?;
    let config = serde_json::json!({
        "OrderedViews": [shows_lib.to_n(), films_lib.to_n()],
        "MyMediaExcludes": [],
        "LatestItemsExcludes": [films_lib.to_dashed()],
    })
    .to_string();
    exec(
        pool,
        "INSERT INTO user_configuration (user_id, body, updated_at) VALUES ($1, $2, 0)",
        &[&user, &config],
    )
    .await?;
    let prefs = serde_json::json!({"Id": films_lib.to_n(), "SortBy": "SortName"}).to_string();
    exec(
        pool,
        "INSERT INTO display_preferences (user_id, pref_id, client, body, updated_at) \
         VALUES ($1, $2, 'emby', $3, 0)",
        &[&user, &films_lib.to_n(), &prefs],
    )
    .await?;
    Ok(old)
}

async fn id_of_path(store: &Store, path: &Path) -> Result<String> {
    let row = sqlx::query("SELECT id FROM items WHERE path = $1")
        .bind(path.to_string_lossy().into_owned())
        .fetch_one(store.pool())
        .await?;
    Ok(row.try_get("id")?)
}

#[tokio::test]
async fn ids_stored_before_the_key_are_rewritten_with_everything_that_names_them() -> Result<()> {
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let sample = ephyra_testsupport::media::cached_sample_library().await?;
        let media = tempfile::tempdir()?;
        copy_tree(&sample.root, media.path())?;
        let films_dir = media.path().join("films");
        let series_dir = media.path().join("series");
        let data = tempfile::tempdir()?;
        let mut config = test_config(provider, data.path()).await?;
        config.libraries = test_libraries(&films_dir, &series_dir);
        let url = config.database.url().context("a URL")?.expose().to_owned();
        let pool = migrate_before_keys(&url).await?;
        let old = write_old_library(&pool, &films_dir, &series_dir).await?;
        pool.close().await;

        // The first replica on this database creates the key and rewrites the ids.
        let server = TestServer::from_config(config, data).await?;
        let store = &server.state.store;
        let ids = store.ids();
        let film = ids.file_item(FILMS, &old.film);
        assert_ne!(film, v1_file(FILMS, &old.film), "{provider:?}: keyed");
        assert_eq!(
            id_of_path(store, &old.film).await?,
            film.to_n(),
            "{provider:?}"
        );
        let episode = ids.file_item(SHOWS, &old.episode);
        assert_eq!(id_of_path(store, &old.episode).await?, episode.to_n());
        let series = ids.series(SHOWS, &old.series_name);
        let season = ids.season(series, old.season);
        let links = sqlx::query(
            "SELECT parent_id, series_id, season_id, library_id FROM items WHERE id = $1",
        )
        .bind(episode.to_n())
        .fetch_one(store.pool())
        .await?;
        assert_eq!(links.try_get::<String, _>("parent_id")?, season.to_n());
        assert_eq!(links.try_get::<String, _>("series_id")?, series.to_n());
        assert_eq!(links.try_get::<String, _>("season_id")?, season.to_n());
        assert_eq!(
            links.try_get::<String, _>("library_id")?,
            ids.library(SHOWS).to_n()
        );

        // Play state follows the items.
        let played = sqlx::query(
            "SELECT item_id, played, playback_position_ticks FROM user_item_data \
             WHERE user_id = $1 ORDER BY played DESC",
        )
        .bind(old.user.to_n())
        .fetch_all(store.pool())
        .await?;
        let rows: Vec<(String, i64, i64)> = played
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("item_id")?,
                    r.try_get("played")?,
                    r.try_get("playback_position_ticks")?,
                ))
            })
            .collect::<Result<_>>()?;
        assert_eq!(
            rows,
            vec![(film.to_n(), 1, 0), (episode.to_n(), 0, 4_200_000_000)],
            "{provider:?}"
        );

        // Settings that name libraries name the new ids, in the form the client posted.
        let body: String = sqlx::query("SELECT body FROM user_configuration WHERE user_id = $1")
            .bind(old.user.to_n())
            .fetch_one(store.pool())
            .await?
            .try_get("body")?;
        let body: serde_json::Value = serde_json::from_str(&body)?;
        assert_eq!(
            body["OrderedViews"],
            serde_json::json!([ids.library(SHOWS).to_n(), ids.library(FILMS).to_n()])
        );
        assert_eq!(
            body["LatestItemsExcludes"],
            serde_json::json!([ids.library(FILMS).to_dashed()])
        );
        let pref: String =
            sqlx::query("SELECT pref_id FROM display_preferences WHERE user_id = $1")
                .bind(old.user.to_n())
                .fetch_one(store.pool())
                .await?
                .try_get("pref_id")?;
        assert_eq!(pref, ids.library(FILMS).to_n());

        // Every reference still points at a row.
        if provider == Provider::Sqlite {
            let broken = sqlx::query("PRAGMA foreign_key_check")
                .fetch_all(store.pool())
                .await?;
            assert!(broken.is_empty(), "dangling references after the rewrite");
        }

        // A scan derives the same ids: nothing is added or removed, play state stays.
        let report = scan::scan_all(&server.state).await?;
        assert_eq!(report.removed, 0, "{provider:?}: {report:?}");
        for path in [&old.film, &old.episode] {
            let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM items WHERE path = $1")
                .bind(path.to_string_lossy().into_owned())
                .fetch_one(store.pool())
                .await?
                .try_get("n")?;
            assert_eq!(count, 1);
        }
        assert_eq!(id_of_path(store, &old.film).await?, film.to_n());
        let seasons: i64 = sqlx::query("SELECT COUNT(*) AS n FROM items WHERE series_id = $1 AND kind = 'Season' AND index_number = $2")
            .bind(series.to_n())
            .bind(i64::from(old.season))
            .fetch_one(store.pool())
            .await?
            .try_get("n")?;
        assert_eq!(
            seasons, 1,
            "{provider:?}: the rescan found the rewritten season"
        );

        // The id anyone could compute from the path finds nothing; the keyed one does.
        let old_image = format!("/Items/{}/Images/Primary", v1_file(FILMS, &old.film).to_n());
        assert_eq!(
            server.get(&old_image, None).await?.status,
            StatusCode::NOT_FOUND
        );

        // A replica starting later reads the same key and rewrites nothing.
        let again = Store::open(&url, &PoolSettings::default()).await?;
        assert_eq!(again.ids().file_item(FILMS, &old.film), film);
        assert_eq!(id_of_path(&again, &old.film).await?, film.to_n());
        again.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn two_installations_give_the_same_file_different_ids() -> Result<()> {
    let (a, b) = (
        TestServer::new(Provider::Sqlite).await?,
        TestServer::new(Provider::Sqlite).await?,
    );
    let path = Path::new("/media/films/Some Film (2019)/Some Film (2019).mkv");
    assert_ne!(
        a.state.store.ids().file_item("Films", path),
        b.state.store.ids().file_item("Films", path)
    );
    Ok(())
}

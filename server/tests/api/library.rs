//! A server over a scanned private copy of the sample library (two films, a series with two
//! episodes, generated once per test process by ffmpeg), for the browsing, image, playback and
//! playstate tests. Each test gets its own copy, so it may add, break or delete files.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use ephyra_config::{LibraryConfig, LibraryKind};
use ephyra_server::scan::{self, ScanReport};
use ephyra_server::store::users::User;
use http::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::{Provider, Reply, TestServer, test_config, with_token};

/// The films library's name in tests (unlike any real default, so a swapped value shows).
pub const FILMS: &str = "Test Films";
/// The series library's name in tests.
pub const SHOWS: &str = "Test Shows";

/// The films library [`FILMS`] over `films_dir` and the series library [`SHOWS`] over
/// `series_dir`.
pub fn test_libraries(films_dir: &Path, series_dir: &Path) -> Vec<LibraryConfig> {
    vec![
        LibraryConfig {
            name: FILMS.to_owned(),
            kind: LibraryKind::Movies,
            folders: vec![films_dir.to_path_buf()],
        },
        LibraryConfig {
            name: SHOWS.to_owned(),
            kind: LibraryKind::Tvshows,
            folders: vec![series_dir.to_path_buf()],
        },
    ]
}

/// A started server whose libraries were scanned once.
pub struct Scanned {
    /// The server.
    pub server: TestServer,
    /// The private copy of the sample library (removed on drop).
    pub media: TempDir,
    /// `media/films`, the films library's folder.
    pub films_dir: PathBuf,
    /// `media/series`, the series library's folder.
    pub series_dir: PathBuf,
    /// A plain user, logged in.
    pub user: User,
    /// Its `Authorization` header value.
    pub auth: String,
    /// Its token.
    pub token: String,
    /// What the first scan reported.
    pub report: ScanReport,
}

impl Scanned {
    /// A server on `provider` over a fresh copy of the sample library, scanned.
    pub async fn new(provider: Provider) -> Result<Scanned> {
        Scanned::prepared(provider, |_| Ok(())).await
    }

    /// Like [`Scanned::new`], with `prepare` run on the media folder before the first scan.
    pub async fn prepared(
        provider: Provider,
        prepare: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Scanned> {
        let sample = ephyra_testsupport::media::cached_sample_library().await?;
        let media = tempfile::tempdir()?;
        copy_tree(&sample.root, media.path())?;
        prepare(media.path())?;
        let films_dir = media.path().join("films");
        let series_dir = media.path().join("series");
        let data = tempfile::tempdir()?;
        let mut config = test_config(provider, data.path()).await?;
        config.libraries = test_libraries(&films_dir, &series_dir);
        config.scan.concurrency = 2;
        let server = TestServer::from_config(config, data).await?;
        let report = scan::scan_all(&server.state).await?;
        let (user, token) = server.viewer().await?;
        Ok(Scanned {
            auth: with_token(&token),
            server,
            media,
            films_dir,
            series_dir,
            user,
            token,
            report,
        })
    }

    /// Scans again (as `POST /Library/Refresh` does, but waiting for the end).
    pub async fn rescan(&self) -> Result<ScanReport> {
        Ok(scan::scan_all(&self.server.state).await?)
    }

    /// `GET uri` as the logged-in user.
    pub async fn get(&self, uri: &str) -> Result<Reply> {
        self.server.get(uri, Some(&self.auth)).await
    }

    /// `GET uri` as the user, expecting 200 and JSON.
    pub async fn json(&self, uri: &str) -> Result<Value> {
        let reply = self.get(uri).await?;
        anyhow::ensure!(reply.status == StatusCode::OK, "GET {uri}: {reply:?}");
        reply.json()
    }

    /// The user's id in N form.
    pub fn user_id(&self) -> String {
        self.user.id.to_n()
    }

    /// An item's id, found by name among every item of both libraries.
    pub async fn id_of(&self, name: &str) -> Result<String> {
        let all = self.json("/Items?Recursive=true").await?;
        all["Items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["Name"] == name)
            .and_then(|i| i["Id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no item named {name} in {all}"))
    }

    /// A library's id, by name.
    pub async fn library_id(&self, name: &str) -> Result<String> {
        let views = self.json("/UserViews").await?;
        views["Items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["Name"] == name)
            .and_then(|v| v["Id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no view named {name} in {views}"))
    }
}

/// Copies a folder tree (files and folders only).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Names of the items of a `QueryResult` (or bare array), in order.
pub fn names(result: &Value) -> Vec<String> {
    let items = result.get("Items").unwrap_or(result);
    items
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["Name"].as_str().map(str::to_owned))
        .collect()
}

/// Runs each test body on SQLite and on PostgreSQL with a freshly scanned library, as two
/// tests named `<body>::sqlite` and `<body>::postgres`. With `fixture = f;` first, the library
/// is `f(provider)` (an `async fn(Provider) -> Result<Scanned>`, say a sample library with
/// files added before its scan) instead of the plain sample library.
#[macro_export]
macro_rules! with_library_on_both_providers {
    (fixture = $fixture:expr; $(async fn $name:ident($lib:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($lib: $crate::library::Scanned) -> anyhow::Result<()> $body

            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                body(($fixture)($crate::support::Provider::Sqlite).await?).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                body(($fixture)($crate::support::Provider::Postgres).await?).await
            }
        }
    )*};
    ($(async fn $name:ident($lib:ident) $body:block)*) => {
        $crate::with_library_on_both_providers! {
            fixture = $crate::library::Scanned::new;
            $(async fn $name($lib) $body)*
        }
    };
}

//! Rescans: deleted, added and unreadable files, unreadable folders, removed libraries, and the
//! scan's progress metrics.

use ephyra_server::scan::{self, ScanError};

use crate::library::{FILMS, Scanned, names};
use crate::support::Provider;
use crate::with_library_on_both_providers;

with_library_on_both_providers! {
    async fn a_rescan_after_deleting_a_file_removes_its_item_and_empty_folders(lib) {
        let series = lib.id_of("Test Show").await?;
        let season_dir = lib.series_dir.join("Test Show/Season 01");
        std::fs::remove_file(season_dir.join("Test Show S01E02.mkv"))?;
        let report = lib.rescan().await?;
        assert_eq!(report.removed, 1);
        let episodes = lib.json(&format!("/Shows/{series}/Episodes")).await?;
        assert_eq!(names(&episodes), ["Episode 1"]);

        // Another show keeps the library root from reading empty (an empty root is taken for
        // an unmounted share, and its items are kept).
        let other = lib.series_dir.join("Other Show/Season 01");
        std::fs::create_dir_all(&other)?;
        std::fs::copy(season_dir.join("Test Show S01E01.mkv"), other.join("Other Show S01E01.mkv"))?;
        std::fs::remove_file(season_dir.join("Test Show S01E01.mkv"))?;
        lib.rescan().await?;
        let shows = lib.json("/Items?Recursive=true&IncludeItemTypes=Series,Season,Episode").await?;
        assert_eq!(shows["TotalRecordCount"], 3, "no empty series or season is left: {shows}");
        assert!(
            shows["Items"].as_array().into_iter().flatten().all(|i| i["SeriesName"] != "Test Show" && i["Name"] != "Test Show"),
            "no empty series or season is left: {shows}"
        );
        lib.get(&format!("/Items/{series}")).await?.assert_error(http::StatusCode::NOT_FOUND)?;
        Ok(())
    }

    async fn a_new_file_appears_after_a_rescan_and_only_it_is_probed(lib) {
        std::fs::copy(
            lib.films_dir.join("Tiny Planet (2021).mp4"),
            lib.films_dir.join("Another.Planet.2022.1080p.WEB-DL.mp4"),
        )?;
        let report = lib.rescan().await?;
        assert_eq!(report.probed, 1);
        let films = lib.json("/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName").await?;
        assert_eq!(names(&films), ["Another Planet", "Big Buck Test", "Tiny Planet"]);
        assert_eq!(films["Items"][0]["ProductionYear"], 2022);
        Ok(())
    }

    async fn an_unreadable_library_folder_keeps_its_items(lib) {
        let moved = lib.media.path().join("films-away");
        std::fs::rename(&lib.films_dir, &moved)?;
        let report = lib.rescan().await?;
        assert_eq!(report.unreadable_folders.len(), 1);
        assert_eq!(report.removed, 0);
        let films = lib.json("/Items?Recursive=true&IncludeItemTypes=Movie").await?;
        assert_eq!(films["TotalRecordCount"], 2);
        std::fs::rename(&moved, &lib.films_dir)?;
        Ok(())
    }

    async fn scan_progress_is_reported_in_the_metrics(lib) {
        let metrics = &lib.server.state.metrics;
        assert_eq!(metrics.scan_running.get(), 0);
        assert_eq!(metrics.scan_files_total.get(), 4);
        assert_eq!(metrics.scan_files_done.get(), 4);
        // While one scan runs, another is refused at once.
        metrics.scan_running.set(1);
        let second = scan::scan_all(&lib.server.state).await;
        assert!(matches!(second, Err(ScanError::AlreadyRunning)), "{second:?}");
        metrics.scan_running.set(0);
        Ok(())
    }

    async fn a_library_removed_from_the_configuration_disappears_with_its_items(lib) {
        let mut config = (*lib.server.state.config).clone();
        config.libraries.retain(|l| l.name == FILMS);
        scan::scan_with(&lib.server.state.store, &config, &lib.server.state.metrics).await?;
        let views = lib.json("/UserViews").await?;
        assert_eq!(names(&views), [FILMS]);
        let everything = lib.json("/Items?Recursive=true").await?;
        assert_eq!(names(&everything).len(), 2, "only the films are left: {everything}");
        Ok(())
    }
}

#[tokio::test]
async fn an_unreadable_file_is_reported_and_the_scan_goes_on() -> anyhow::Result<()> {
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let lib = Scanned::prepared(provider, |media| {
            ephyra_testsupport::media::write_corrupt_video(&media.join("films/Broken (2001).mkv"))?;
            ephyra_testsupport::media::write_corrupt_video(
                &media.join("series/Test Show/Season 01/Test Show S01E03.mkv"),
            )?;
            Ok(())
        })
        .await?;
        let mut failed: Vec<String> = lib
            .report
            .errors
            .iter()
            .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        failed.sort();
        assert_eq!(
            failed,
            ["Broken (2001).mkv", "Test Show S01E03.mkv"],
            "{provider:?}"
        );
        assert_eq!(lib.server.state.metrics.scan_errors.get(), 2);
        let films = lib
            .json("/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName")
            .await?;
        assert_eq!(
            names(&films),
            ["Big Buck Test", "Tiny Planet"],
            "{provider:?}"
        );
        let episodes = lib
            .json("/Items?Recursive=true&IncludeItemTypes=Episode")
            .await?;
        assert_eq!(episodes["TotalRecordCount"], 2, "{provider:?}");
        // Recorded: an unchanged unreadable file is not probed again.
        assert_eq!(lib.rescan().await?.probed, 0, "{provider:?}");
    }
    Ok(())
}

mod watched {
    //! File system events: a new or removed film folder is scanned alone, through the job
    //! queue, and a library folder that vanishes keeps its items.

    use std::time::Duration;

    use anyhow::Result;
    use ephyra_server::jobs::{FOLDER_SCAN, WorkerSettings, default_handlers, spawn_workers};
    use ephyra_server::store::jobs::{JobState, Progress};
    use tokio_util::sync::CancellationToken;

    use crate::library::{FILMS, Scanned, names};
    use crate::support::Provider;

    /// The films, sorted, as a client lists them.
    async fn films(lib: &Scanned) -> Result<Vec<String>> {
        let films = lib
            .json("/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName")
            .await?;
        Ok(names(&films))
    }

    async fn body(provider: Provider) -> Result<()> {
        let lib = Scanned::new(provider).await?;
        let state = lib.server.state.clone();
        assert!(state.config.scan.watch, "watching is on by default");
        let shutdown = CancellationToken::new();
        let watcher = tokio::spawn(ephyra_server::scan::watch::run(
            state.clone(),
            shutdown.clone(),
        ));
        let mut settings = WorkerSettings::for_dialect(state.store.dialect());
        settings.idle_poll = Duration::from_millis(100);
        let workers = spawn_workers(
            &state.store,
            &default_handlers(&state),
            &settings,
            "replica-w",
            &shutdown,
        );
        // The watch is set up on its own task: wait until a probe file's event is seen.
        let added = lib.films_dir.join("Another Planet (2022)");
        let last_touch = std::sync::Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
        ephyra_testsupport::wait::until("the watcher to start", Duration::from_secs(60), || {
            let state = state.clone();
            let added = added.clone();
            let films_dir = lib.films_dir.clone();
            let last_touch = last_touch.clone();
            async move {
                // Touched again only after a quiet spell, so the watcher's debounce can end.
                let due = {
                    let mut last = last_touch.lock().expect("lock");
                    let due = last.is_none_or(|t| t.elapsed() > Duration::from_secs(8));
                    if due {
                        *last = Some(std::time::Instant::now());
                    }
                    due
                };
                if due && !added.exists() {
                    std::fs::create_dir_all(&added)?;
                    std::fs::copy(
                        films_dir.join("Tiny Planet (2021).mp4"),
                        added.join("Another Planet (2022).mp4"),
                    )?;
                } else if due {
                    // Touch it again until the watcher (maybe not watching yet) sees a change.
                    let file = added.join("Another Planet (2022).mp4");
                    let bytes = std::fs::read(&file)?;
                    std::fs::write(&file, bytes)?;
                }
                Ok((!state.store.jobs_of_kind(FOLDER_SCAN).await?.is_empty()).then_some(()))
            }
        })
        .await?;
        let done = ephyra_testsupport::wait::until(
            "the folder scan to finish",
            Duration::from_secs(60),
            || async {
                let scans = state.store.jobs_of_kind(FOLDER_SCAN).await?;
                Ok(scans.into_iter().find(|j| j.state == JobState::Done))
            },
        )
        .await?;
        assert_eq!(
            films(&lib).await?,
            ["Another Planet", "Big Buck Test", "Tiny Planet"]
        );
        // Only its folder was walked: the folder scan found one file, not the library's three.
        let scans = state.store.jobs_of_kind(FOLDER_SCAN).await?;
        assert_eq!(
            done.progress,
            Some(Progress { done: 1, total: 1 }),
            "{scans:?}"
        );
        assert_eq!(done.payload["folders"][0]["library"], FILMS);
        assert!(
            state
                .store
                .jobs_of_kind(ephyra_server::jobs::LIBRARY_SCAN)
                .await?
                .is_empty(),
            "no full scan"
        );

        // Removed: the folder's film goes, the others stay.
        std::fs::remove_dir_all(&added)?;
        ephyra_testsupport::wait::until(
            "the removed film to go",
            Duration::from_secs(60),
            || async { Ok((films(&lib).await? == ["Big Buck Test", "Tiny Planet"]).then_some(())) },
        )
        .await?;
        shutdown.cancel();
        watcher.await?;
        for w in workers {
            w.await?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_film_folder_added_or_removed_is_scanned_alone_sqlite() -> Result<()> {
        body(Provider::Sqlite).await
    }

    #[tokio::test]
    async fn a_film_folder_added_or_removed_is_scanned_alone_postgres() -> Result<()> {
        body(Provider::Postgres).await
    }

    /// A library folder that vanishes (an unmounted share sends removal events for everything
    /// under it) or reads as empty keeps its items when its folders are scanned.
    async fn vanished(provider: Provider) -> Result<()> {
        let lib = Scanned::new(provider).await?;
        let state = &lib.server.state;
        let show = lib.series_dir.join("Test Show");
        let moved = lib.media.path().join("series-away");
        std::fs::rename(&lib.series_dir, &moved)?;
        let report = ephyra_server::scan::scan_folders(
            state,
            &[(crate::library::SHOWS.to_owned(), show.clone())],
        )
        .await?;
        assert_eq!(report.removed, 0);
        assert_eq!(report.unreadable_folders.len(), 1, "{report:?}");
        // Mounted again but empty (the mount point left behind): still kept.
        std::fs::create_dir_all(&lib.series_dir)?;
        let report = ephyra_server::scan::scan_folders(
            state,
            &[(crate::library::SHOWS.to_owned(), show.clone())],
        )
        .await?;
        assert_eq!(report.removed, 0, "{report:?}");
        let episodes = lib
            .json("/Items?Recursive=true&IncludeItemTypes=Episode")
            .await?;
        assert_eq!(episodes["TotalRecordCount"], 2, "{episodes}");
        // Back: a scan of the show's folder walks only it and changes nothing.
        std::fs::remove_dir(&lib.series_dir)?;
        std::fs::rename(&moved, &lib.series_dir)?;
        let report = ephyra_server::scan::scan_folders(
            state,
            &[(crate::library::SHOWS.to_owned(), show.clone())],
        )
        .await?;
        assert_eq!((report.files, report.probed, report.removed), (2, 0, 0));
        assert_eq!(report.walked_folders, [show.canonicalize()?]);
        Ok(())
    }

    #[tokio::test]
    async fn a_vanished_library_folder_keeps_its_items_when_its_folders_are_scanned_sqlite()
    -> Result<()> {
        vanished(Provider::Sqlite).await
    }

    #[tokio::test]
    async fn a_vanished_library_folder_keeps_its_items_when_its_folders_are_scanned_postgres()
    -> Result<()> {
        vanished(Provider::Postgres).await
    }
}

mod paged {
    //! The passes over every item of a library (subtitles, `.nfo`, artwork, frames) read it a
    //! page at a time; a library bigger than a page scans to what one page gives.

    use anyhow::Result;
    use ephyra_server::scan;
    use ephyra_server::store::Store;
    use ephyra_server::store::items::ItemQuery;

    use crate::library::{Scanned, test_libraries};
    use crate::support::{Provider, TestServer, test_config};

    /// What a scan wrote, without what differs between two servers: dates, the data folder,
    /// and ids (keyed per server): an id is written as its item's kind and name, and a frame
    /// (named and tagged after its item's id) as the item it comes from.
    async fn written(store: &Store) -> Result<Vec<String>> {
        let items = store
            .query_items(&ItemQuery {
                recursive: true,
                ..ItemQuery::default()
            })
            .await?
            .items;
        let ids: Vec<_> = items.iter().map(|i| i.id).collect();
        let names: Vec<(String, String)> = items
            .iter()
            .map(|i| (i.id.to_n(), format!("<{:?} {}>", i.kind, i.name)))
            .collect();
        let named = |text: String| {
            names
                .iter()
                .fold(text, |text, (id, name)| text.replace(id.as_str(), name))
        };
        let images = store.images(&ids).await?;
        let streams = store.media_streams(&ids).await?;
        let mut out = Vec::new();
        for item in &items {
            out.push(named(format!(
                "{} {:?} {:?} {:?} {:?} {:?} {:?}",
                item.id,
                item.parent_id,
                item.path,
                item.run_time_ticks,
                item.overview,
                item.local,
                item.naming,
            )));
            for image in images.get(&item.id).into_iter().flatten() {
                let file = image
                    .path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let frame = names.iter().any(|(id, _)| file.starts_with(id.as_str()));
                let what = if frame {
                    let of = file.split('-').next().unwrap_or_default().to_owned();
                    format!("frame of {of}")
                } else {
                    format!("{file} {}", image.tag)
                };
                out.push(named(format!(
                    "{} image {} {} {what}",
                    item.id, image.image_type, image.image_index
                )));
            }
            for stream in streams.get(&item.id).into_iter().flatten() {
                out.push(named(format!("{} stream {stream:?}", item.id)));
            }
        }
        out.sort();
        Ok(out)
    }

    async fn body(provider: Provider) -> Result<()> {
        let lib = Scanned::new(provider).await?;
        let whole = written(&lib.server.state.store).await?;
        assert!(whole.len() > 10, "{whole:?}");

        // The same folders on a store of its own, read one and two items at a time.
        for page in [1, 2] {
            let data = tempfile::tempdir()?;
            let mut config = test_config(provider, data.path()).await?;
            config.libraries = test_libraries(&lib.films_dir, &lib.series_dir);
            config.scan.concurrency = 2;
            let paged = TestServer::from_config(config, data).await?;
            let report = scan::scan_all_paged(&paged.state, page).await?;
            assert_eq!(
                report.frames_planned, lib.report.frames_planned,
                "page {page}"
            );
            assert_eq!(written(&paged.state.store).await?, whole, "page {page}");
            // An episode's frame is held by its season and series too: split over pages,
            // it is still made once.
            let frames =
                scan::extract_planned_frames_paged(&paged.config, &paged.state.store, page).await?;
            assert_eq!(
                (frames.extracted, frames.present, frames.failed),
                (3, 0, 0),
                "page {page}"
            );
            let rescan = scan::scan_all_paged(&paged.state, page).await?;
            assert_eq!(
                (rescan.probed, rescan.frames_planned),
                (0, 0),
                "page {page}"
            );
            assert_eq!(written(&paged.state.store).await?, whole, "page {page}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_library_bigger_than_a_page_scans_as_in_one_page_sqlite() -> Result<()> {
        body(Provider::Sqlite).await
    }

    #[tokio::test]
    async fn a_library_bigger_than_a_page_scans_as_in_one_page_postgres() -> Result<()> {
        body(Provider::Postgres).await
    }
}

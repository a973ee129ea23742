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

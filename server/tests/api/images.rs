//! Item images: anonymous, cacheable by tag, posters beside the media or extracted frames.

use axum::body::Body;
use http::{Request, StatusCode, header};

use ephyra_server::jobs::FRAME_EXTRACTION;
use ephyra_server::scan;

use crate::with_library_on_both_providers;

with_library_on_both_providers! {
    async fn a_poster_beside_a_film_is_served_anonymously_and_cached_for_a_year_by_tag(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let item = lib.json(&format!("/Items/{id}")).await?;
        let tag = item["ImageTags"]["Primary"].as_str().unwrap().to_owned();
        let poster = std::fs::read(lib.films_dir.join("Big Buck Test (2019)-poster.jpg"))?;

        let reply = lib.server.get(&format!("/Items/{id}/Images/Primary?tag={tag}&maxWidth=300&quality=90"), None).await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.headers[header::CONTENT_TYPE], "image/jpeg");
        assert_eq!(reply.headers[header::CACHE_CONTROL], "public, max-age=31536000");
        assert_eq!(reply.body.as_ref(), poster.as_slice());

        let untagged = lib.server.get(&format!("/items/{id}/images/primary/0"), None).await?;
        assert_eq!(untagged.status, StatusCode::OK);
        assert!(untagged.headers.get(header::CACHE_CONTROL).is_none(), "no tag, no year-long cache");
        assert_eq!(untagged.body.as_ref(), poster.as_slice());

        let head = lib.server.send(Request::head(format!("/Items/{id}/Images/Primary?tag={tag}")).body(Body::empty())?).await?;
        assert_eq!(head.status, StatusCode::OK);
        assert_eq!(head.headers[header::CONTENT_LENGTH], poster.len().to_string());
        assert!(head.body.is_empty());
        Ok(())
    }

    async fn films_and_episodes_without_artwork_get_a_frame_extracted_from_the_video(lib) {
        // The scan records the frames without waiting for ffmpeg, and leaves the job that makes
        // them in the queue.
        assert_eq!(lib.report.frames_planned, 3, "Tiny Planet and two episodes");
        let frames = lib.server.state.store.jobs_of_kind(FRAME_EXTRACTION).await?;
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert!(!lib.server.config.data_dir.join("images").exists(), "no frame made during the scan");
        // Asked for before the job ran: made on request.
        for name in ["Tiny Planet", "Episode 1", "Episode 2"] {
            let id = lib.id_of(name).await?;
            let item = lib.json(&format!("/Items/{id}")).await?;
            let tag = item["ImageTags"]["Primary"].as_str().unwrap().to_owned();
            let reply = lib.server.get(&format!("/Items/{id}/Images/Primary?tag={tag}"), None).await?;
            assert_eq!(reply.status, StatusCode::OK, "{name}");
            assert_eq!(&reply.body[..2], &[0xff, 0xd8], "{name}: a JPEG");
        }
        // A series and a season without posters show their first episode's frame.
        let first = lib.json(&format!("/Items/{}", lib.id_of("Episode 1").await?)).await?;
        let episode_tag = first["ImageTags"]["Primary"].clone();
        assert_eq!(first["SeriesPrimaryImageTag"], episode_tag);
        for name in ["Test Show", "Season 1"] {
            let id = lib.id_of(name).await?;
            let item = lib.json(&format!("/Items/{id}")).await?;
            assert_eq!(item["ImageTags"]["Primary"], episode_tag, "{name}");
            let reply = lib.server.get(&format!("/Items/{id}/Images/Primary"), None).await?;
            assert_eq!(reply.status, StatusCode::OK, "{name}");
        }
        // The job finds them made; a rescan records nothing new and keeps every tag.
        let done = scan::extract_planned_frames(&lib.server.config, &lib.server.state.store).await?;
        assert_eq!((done.extracted, done.present, done.failed), (0, 3, 0));
        assert_eq!(lib.rescan().await?.frames_planned, 0);
        let again = lib.json(&format!("/Items/{}", lib.id_of("Episode 1").await?)).await?;
        assert_eq!(again["ImageTags"]["Primary"], episode_tag);
        Ok(())
    }

    async fn the_frame_job_makes_every_recorded_frame_once(lib) {
        let done = scan::extract_planned_frames(&lib.server.config, &lib.server.state.store).await?;
        assert_eq!((done.extracted, done.present, done.failed), (3, 0, 0));
        let made = std::fs::read_dir(lib.server.config.data_dir.join("images"))?.count();
        assert_eq!(made, 3);
        let done = scan::extract_planned_frames(&lib.server.config, &lib.server.state.store).await?;
        assert_eq!((done.extracted, done.present), (0, 3));
        Ok(())
    }

    async fn a_video_that_gives_no_frame_loses_its_image_instead_of_serving_a_broken_one(lib) {
        // Sound only, in a video container: ffprobe reads it, ffmpeg has no frame to give.
        let film = lib.films_dir.join("Radio Play (1950).mkv");
        let status = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", "-y"])
            .arg(&film)
            .status()?;
        assert!(status.success());
        assert_eq!(lib.rescan().await?.frames_planned, 1);
        let id = lib.id_of("Radio Play").await?;
        let item = lib.json(&format!("/Items/{id}")).await?;
        assert!(item["ImageTags"]["Primary"].is_string(), "{item}");
        // Before the job: a request tries, fails, and answers 404 (never a broken body).
        lib.server.get(&format!("/Items/{id}/Images/Primary"), None).await?.assert_error(StatusCode::NOT_FOUND)?;
        let done = scan::extract_planned_frames(&lib.server.config, &lib.server.state.store).await?;
        assert_eq!(done.failed, 1);
        let item = lib.json(&format!("/Items/{id}")).await?;
        assert!(item["ImageTags"].get("Primary").is_none(), "{item}");
        Ok(())
    }

    async fn a_replica_that_did_not_scan_serves_extracted_frames_by_extracting_them_again(lib) {
        // A second replica on the same database with a data folder of its own, as each pod
        // has: the frames the first one extracted are not on its disk.
        let dir = tempfile::tempdir()?;
        let mut config = lib.server.config.clone();
        config.data_dir = dir.path().to_path_buf();
        let other = crate::support::TestServer::from_config(config, dir).await?;
        for name in ["Tiny Planet", "Episode 2", "Test Show"] {
            let id = lib.id_of(name).await?;
            let first = lib.server.get(&format!("/Items/{id}/Images/Primary"), None).await?;
            let reply = other.get(&format!("/Items/{id}/Images/Primary"), None).await?;
            assert_eq!(reply.status, StatusCode::OK, "{name}");
            assert_eq!(&reply.body[..2], &[0xff, 0xd8], "{name}: a JPEG");
            assert_eq!(first.status, StatusCode::OK, "{name}");
            assert!(reply.body == first.body, "{name}: the same frame");
        }
        // One frame per video asked for: Tiny Planet, Episode 2, and Episode 1 (whose frame
        // the show borrows).
        let made = std::fs::read_dir(other.config.data_dir.join("images"))?.count();
        assert_eq!(made, 3);
        Ok(())
    }

    async fn missing_images_are_404_and_bad_requests_are_400(lib) {
        let series = lib.id_of("Test Show").await?;
        lib.server.get(&format!("/Items/{series}/Images/Backdrop"), None).await?.assert_error(StatusCode::NOT_FOUND)?;
        let film = lib.id_of("Big Buck Test").await?;
        lib.server.get(&format!("/Items/{film}/Images/Backdrop"), None).await?.assert_error(StatusCode::NOT_FOUND)?;
        lib.server.get(&format!("/Items/{film}/Images/Primary/1"), None).await?.assert_error(StatusCode::NOT_FOUND)?;
        lib.server.get(&format!("/Items/{film}/Images/Poster"), None).await?.assert_error(StatusCode::BAD_REQUEST)?;
        lib.server.get(&format!("/Items/{film}/Images/Primary/first"), None).await?.assert_error(StatusCode::BAD_REQUEST)?;
        lib.server.get("/Items/..%2Fposter/Images/Primary", None).await?.assert_error(StatusCode::BAD_REQUEST)?;
        Ok(())
    }

    async fn a_changed_poster_gets_a_new_tag_at_the_next_scan(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let before = lib.json(&format!("/Items/{id}")).await?["ImageTags"]["Primary"].clone();
        let poster = lib.films_dir.join("Big Buck Test (2019)-poster.jpg");
        let mut bytes = std::fs::read(&poster)?;
        bytes.extend_from_slice(&[0; 16]);
        std::fs::write(&poster, &bytes)?;
        lib.rescan().await?;
        let after = lib.json(&format!("/Items/{id}")).await?["ImageTags"]["Primary"].clone();
        assert_ne!(before, after);
        let reply = lib.server.get(&format!("/Items/{id}/Images/Primary"), None).await?;
        assert_eq!(reply.body.len(), bytes.len());
        Ok(())
    }
}

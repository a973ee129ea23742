//! Artwork served resized on request (`fillWidth`/`fillHeight`/`maxWidth`/`quality`/`format`),
//! cached per replica, and bad requests or files that are not images answered clearly.

use std::path::Path;

use anyhow::Result;
use http::{StatusCode, header};

use crate::library::Scanned;
use crate::support::Provider;

/// The sample library, with a "poster" beside Tiny Planet that is not an image, and
/// backdrops, logos, thumbs and banners beside the film, the series and the season.
async fn with_artwork(provider: Provider) -> Result<Scanned> {
    Scanned::prepared(provider, |root: &Path| {
        std::fs::write(
            root.join("films/Tiny Planet (2021)-poster.jpg"),
            b"this is not a JPEG at all",
        )?;
        let poster = root.join("films/Big Buck Test (2019)-poster.jpg");
        let mut png = Vec::new();
        image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            80,
            30,
            image::Rgba([0, 0, 0, 0]),
        ))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        for name in [
            "Big Buck Test (2019)-fanart.jpg",
            "Big Buck Test (2019)-landscape.jpg",
            "Big Buck Test (2019)-banner.jpg",
        ] {
            std::fs::copy(&poster, root.join("films").join(name))?;
        }
        std::fs::write(root.join("films/Big Buck Test (2019)-clearlogo.png"), &png)?;
        let show = root.join("series/Test Show");
        std::fs::copy(&poster, show.join("fanart.jpg"))?;
        let mut second = std::fs::read(&poster)?;
        second.extend_from_slice(&[0; 8]);
        std::fs::write(show.join("backdrop1.jpg"), second)?;
        std::fs::write(show.join("logo.png"), &png)?;
        std::fs::copy(&poster, show.join("season01-banner.jpg"))?;
        Ok(())
    })
    .await
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let image = image::load_from_memory(bytes).expect("a decodable image");
    (image.width(), image.height())
}

crate::with_library_on_both_providers! {
    fixture = with_artwork;
    async fn posters_are_resized_as_asked_cached_and_the_same_on_every_replica(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let item = lib.json(&format!("/Items/{id}")).await?;
        let tag = item["ImageTags"]["Primary"].as_str().unwrap().to_owned();
        // jellyfin-web's poster card.
        let card = format!("/Items/{id}/Images/Primary?fillHeight=297&fillWidth=198&quality=96&tag={tag}");
        let first = lib.server.get(&card, None).await?;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.headers[header::CONTENT_TYPE], "image/jpeg");
        assert_eq!(first.headers[header::CACHE_CONTROL], "public, max-age=31536000");
        assert_eq!(dimensions(&first.body), (198, 297));
        let etag = first.headers[header::ETAG].to_str()?.to_owned();
        assert_ne!(etag, format!("\"{tag}\""), "a resized copy has an ETag of its own");

        let cache = lib.server.config.data_dir.join("image-cache");
        assert_eq!(std::fs::read_dir(&cache)?.count(), 1);
        let again = lib.server.get(&card, None).await?;
        assert!(again.body == first.body, "the cached copy");
        assert_eq!(again.headers[header::ETAG].to_str()?, etag);
        assert_eq!(std::fs::read_dir(&cache)?.count(), 1, "a cache hit writes nothing");

        // Another replica (its own data folder) answers the same bytes.
        let dir = tempfile::tempdir()?;
        let mut config = lib.server.config.clone();
        config.data_dir = dir.path().to_path_buf();
        let other = crate::support::TestServer::from_config(config, dir).await?;
        let there = other.get(&card, None).await?;
        assert_eq!(there.status, StatusCode::OK);
        assert!(there.body == first.body, "the same bytes on every replica");

        let small = lib.server.get(&format!("/Items/{id}/Images/Primary?maxWidth=100&tag={tag}"), None).await?;
        assert_eq!(dimensions(&small.body), (100, 150));
        let webp = lib.server.get(&format!("/Items/{id}/Images/Primary?maxHeight=90&format=webp"), None).await?;
        assert_eq!(webp.status, StatusCode::OK);
        assert_eq!(webp.headers[header::CONTENT_TYPE], "image/webp");
        assert_eq!(dimensions(&webp.body), (60, 90));
        // Never upscaled: a larger box gets the original's size.
        let big = lib.server.get(&format!("/Items/{id}/Images/Primary?fillWidth=2000&fillHeight=3000&format=png"), None).await?;
        assert_eq!(big.headers[header::CONTENT_TYPE], "image/png");
        assert_eq!(dimensions(&big.body), (300, 450));
        Ok(())
    }

    async fn a_client_walking_every_size_cannot_grow_the_cache_past_its_limit(lib) {
        // A replica whose cache keeps 1 MiB, asked for 80 sizes of the poster as PNG (about
        // 50 KiB each): every answer is right, and the folder stays bounded.
        let dir = tempfile::tempdir()?;
        let mut config = lib.server.config.clone();
        config.data_dir = dir.path().to_path_buf();
        config.images.cache_max_mib = 1;
        let replica = crate::support::TestServer::from_config(config, dir).await?;
        let id = lib.id_of("Big Buck Test").await?;
        let mut written = 0;
        for width in (221..=300).rev() {
            let reply = replica.get(&format!("/Items/{id}/Images/Primary?maxWidth={width}&format=png"), None).await?;
            assert_eq!(reply.status, StatusCode::OK, "maxWidth={width}");
            assert_eq!(dimensions(&reply.body).0, width);
            written += reply.body.len();
        }
        assert!(written > 2 << 20, "the sizes asked for add up to more than the limit ({written} bytes)");
        let cache = replica.config.data_dir.join("image-cache");
        let size = |dir: &Path| -> u64 {
            std::fs::read_dir(dir).map(|entries| {
                entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum()
            }).unwrap_or(0)
        };
        ephyra_testsupport::wait::until("the cache to be pruned", std::time::Duration::from_secs(30), || async {
            Ok((size(&cache) <= 1 << 20).then_some(()))
        }).await?;
        // The least recently used went first: the last size asked is still there.
        let last = std::fs::read_dir(&cache)?.flatten()
            .any(|e| e.file_name().to_string_lossy().contains("-mw221-"));
        assert!(last, "the most recent copy was kept");
        Ok(())
    }

    async fn absurd_sizes_unknown_formats_and_files_that_are_not_images_are_refused(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        for query in ["maxWidth=5000", "fillHeight=0", "maxWidth=wide", "format=gif"] {
            lib.server.get(&format!("/Items/{id}/Images/Primary?{query}"), None).await?
                .assert_error(StatusCode::BAD_REQUEST)?;
        }
        let tiny = lib.id_of("Tiny Planet").await?;
        lib.server.get(&format!("/Items/{tiny}/Images/Primary?maxWidth=100"), None).await?
            .assert_error(StatusCode::NOT_FOUND)?;
        // Nothing half-written was left in the cache.
        let cache = lib.server.config.data_dir.join("image-cache");
        let left = std::fs::read_dir(&cache).map(Iterator::count).unwrap_or(0);
        assert_eq!(left, 0);
        Ok(())
    }

    async fn backdrops_logos_thumbs_and_banners_are_read_and_served(lib) {
        let film = lib.id_of("Big Buck Test").await?;
        let item = lib.json(&format!("/Items/{film}")).await?;
        for kind in ["Primary", "Logo", "Thumb", "Banner"] {
            assert!(item["ImageTags"][kind].is_string(), "{kind}: {}", item["ImageTags"]);
        }
        assert_eq!(item["BackdropImageTags"].as_array().map(Vec::len), Some(1));
        let logo = lib.server.get(&format!("/Items/{film}/Images/Logo"), None).await?;
        assert_eq!(logo.headers[header::CONTENT_TYPE], "image/png");
        assert_eq!(dimensions(&logo.body), (80, 30));

        let show = lib.id_of("Test Show").await?;
        let series = lib.json(&format!("/Items/{show}")).await?;
        let backdrops = series["BackdropImageTags"].as_array().unwrap().clone();
        assert_eq!(backdrops.len(), 2, "{series}");
        assert!(series["ImageTags"]["Logo"].is_string());
        let second = lib.server.get(&format!("/Items/{show}/Images/Backdrop/1?tag={}", backdrops[1].as_str().unwrap()), None).await?;
        assert_eq!(second.status, StatusCode::OK);
        assert!(second.body == std::fs::read(lib.series_dir.join("Test Show/backdrop1.jpg"))?);
        let small = lib.server.get(&format!("/Items/{show}/Images/Backdrop/0?maxWidth=50"), None).await?;
        assert_eq!(dimensions(&small.body), (50, 75));
        let season = lib.json(&format!("/Items/{}", lib.id_of("Season 1").await?)).await?;
        assert!(season["ImageTags"]["Banner"].is_string(), "{season}");

        // A removed file is forgotten at the next scan.
        std::fs::remove_file(lib.series_dir.join("Test Show/backdrop1.jpg"))?;
        std::fs::remove_file(lib.films_dir.join("Big Buck Test (2019)-clearlogo.png"))?;
        lib.rescan().await?;
        let series = lib.json(&format!("/Items/{show}")).await?;
        assert_eq!(series["BackdropImageTags"].as_array().map(Vec::len), Some(1));
        let item = lib.json(&format!("/Items/{film}")).await?;
        assert!(item["ImageTags"].get("Logo").is_none(), "{}", item["ImageTags"]);
        lib.server.get(&format!("/Items/{film}/Images/Logo"), None).await?.assert_error(StatusCode::NOT_FOUND)?;
        Ok(())
    }
}

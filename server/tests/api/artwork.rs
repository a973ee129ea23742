//! Artwork served resized on request (`fillWidth`/`fillHeight`/`maxWidth`/`quality`/`format`),
//! cached per replica, and bad requests or files that are not images answered clearly.

use std::path::Path;

use anyhow::Result;
use http::{StatusCode, header};

use crate::library::Scanned;
use crate::support::Provider;

/// The sample library, with a "poster" beside Tiny Planet that is not an image.
async fn with_artwork(provider: Provider) -> Result<Scanned> {
    Scanned::prepared(provider, |root: &Path| {
        std::fs::write(
            root.join("films/Tiny Planet (2021)-poster.jpg"),
            b"this is not a JPEG at all",
        )?;
        Ok(())
    })
    .await
}

macro_rules! with_artwork_on_both_providers {
    ($(async fn $name:ident($lib:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($lib: Scanned) -> anyhow::Result<()> $body

            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                body(with_artwork(Provider::Sqlite).await?).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                body(with_artwork(Provider::Postgres).await?).await
            }
        }
    )*};
}

fn dimensions(bytes: &[u8]) -> (u32, u32) {
    let image = image::load_from_memory(bytes).expect("a decodable image");
    (image.width(), image.height())
}

with_artwork_on_both_providers! {
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
}

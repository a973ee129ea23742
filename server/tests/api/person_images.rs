//! People's local images: an actor's `<thumb>` naming an image file inside the library is the
//! person's Primary image, as Jellyfin takes `PersonInfo.ImageUrl` (`PrimaryImageTag` on the
//! item's `People`, `ImageTags` on the person, `/Items/{personId}/Images/Primary?tag=`, served
//! only with its tag). URLs, files outside the library, missing files and non-images give no
//! image.

use std::path::Path;

use anyhow::{Context as _, Result};
use http::StatusCode;
use serde_json::Value;

use crate::library::Scanned;
use crate::support::Provider;

/// The sample library with a film crediting five actors, each `<thumb>` of another kind.
async fn with_actor_thumbs(provider: Provider) -> Result<Scanned> {
    Scanned::prepared(provider, |root: &Path| {
        let films = root.join("films");
        let actors = films.join(".actors");
        std::fs::create_dir_all(&actors)?;
        std::fs::copy(
            films.join("Big Buck Test (2019)-poster.jpg"),
            actors.join("Ann_Squirrel.jpg"),
        )?;
        std::fs::write(actors.join("Not_An_Image.txt"), "text")?;
        let outside = root.join("outside.jpg");
        std::fs::copy(films.join("Big Buck Test (2019)-poster.jpg"), &outside)?;
        std::fs::write(
            films.join("Big Buck Test (2019).nfo"),
            format!(
                "<movie><title>Big Buck Test</title>\
                 <actor><name>Ann Squirrel</name><thumb>.actors/Ann_Squirrel.jpg</thumb></actor>\
                 <actor><name>Remote Rabbit</name><thumb>https://example.invalid/r.jpg</thumb></actor>\
                 <actor><name>Outside Owl</name><thumb>{}</thumb></actor>\
                 <actor><name>Climbing Cat</name><thumb>../../../../../../etc/passwd</thumb></actor>\
                 <actor><name>Texty Toad</name><thumb>.actors/Not_An_Image.txt</thumb></actor>\
                 <actor><name>Missing Mole</name><thumb>.actors/Missing.jpg</thumb></actor>\
                 </movie>",
                outside.display()
            ),
        )?;
        Ok(())
    })
    .await
}

fn person<'a>(item: &'a Value, name: &str) -> Result<&'a Value> {
    item["People"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["Name"] == name)
        .with_context(|| format!("no {name} in {item}"))
}

crate::with_library_on_both_providers! {
    fixture = with_actor_thumbs;
    async fn an_actor_thumb_naming_a_library_image_is_the_persons_primary_image(lib) {
        let film = lib.json(&format!("/Items/{}", lib.id_of("Big Buck Test").await?)).await?;
        let ann = person(&film, "Ann Squirrel")?;
        let tag = ann["PrimaryImageTag"].as_str().context("Ann has an image")?.to_owned();
        for name in ["Remote Rabbit", "Outside Owl", "Climbing Cat", "Texty Toad", "Missing Mole"] {
            assert!(person(&film, name)?.get("PrimaryImageTag").is_none(), "{name} has no image");
        }
        let ann_id = ann["Id"].as_str().unwrap().to_owned();
        let portrait = std::fs::read(lib.films_dir.join(".actors/Ann_Squirrel.jpg"))?;
        let image = lib.server.get(&format!("/Items/{ann_id}/Images/Primary?tag={tag}"), None).await?;
        assert_eq!(image.status, StatusCode::OK);
        assert_eq!(image.body.as_ref(), portrait.as_slice());
        // Without its tag (which only a logged-in client learns) it is not served: a
        // person's id follows from the name, and would tell anyone who is credited.
        for uri in [format!("/Items/{ann_id}/Images/Primary"), format!("/Items/{ann_id}/Images/Primary?tag=0123")] {
            assert_eq!(lib.server.get(&uri, None).await?.status, StatusCode::NOT_FOUND, "{uri}");
        }
        // The person's page and the people list carry it too.
        assert_eq!(lib.json(&format!("/Items/{ann_id}")).await?["ImageTags"]["Primary"], tag.as_str());
        let listed = lib.json("/Persons?SearchTerm=squirrel").await?;
        assert_eq!(listed["Items"][0]["ImageTags"]["Primary"], tag.as_str());
        // No other image of a person, and none for the others.
        assert_eq!(lib.server.get(&format!("/Items/{ann_id}/Images/Backdrop"), None).await?.status, StatusCode::NOT_FOUND);
        let outside = person(&film, "Outside Owl")?["Id"].as_str().unwrap().to_owned();
        assert_eq!(lib.server.get(&format!("/Items/{outside}/Images/Primary"), None).await?.status, StatusCode::NOT_FOUND);
        Ok(())
    }
}

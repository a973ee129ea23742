//! Collections (BoxSets) from the films' `.nfo` `<set>`: listed as Jellyfin lists them (the
//! "Collections" view, `IncludeItemTypes=BoxSet` with and without a library, the set as an
//! item, its films as its children, `BoxSetCount`, a poster borrowed from a film), kept in step
//! with rescans (a film leaving its set, a removed film, an empty set disappearing), with ids
//! that do not change, and bad `<set>` values (empty, huge) handled.

use std::path::Path;

use anyhow::{Context as _, Result};
use http::StatusCode;
use serde_json::Value;

use crate::library::{FILMS, SHOWS, Scanned, names};
use crate::support::Provider;

/// The sample library with two films in one set (spelled two ways), a third film whose
/// `<set>` is empty, and a fourth in a set whose name is far too long.
async fn with_sets(provider: Provider) -> Result<Scanned> {
    Scanned::prepared(provider, |root: &Path| {
        let films = root.join("films");
        std::fs::write(
            films.join("Big Buck Test (2019).nfo"),
            "<movie><title>Big Buck Test</title><year>2019</year>\
             <set><name>Test Saga</name><overview>Two films.</overview></set></movie>",
        )?;
        std::fs::write(
            films.join("Tiny Planet (2021).nfo"),
            "<movie><year>2021</year><set>  Test \n Saga </set></movie>",
        )?;
        std::fs::copy(
            films.join("Tiny Planet (2021).mp4"),
            films.join("Small World (2020).mp4"),
        )?;
        std::fs::write(
            films.join("Small World (2020).nfo"),
            "<movie><set><name>   </name></set></movie>",
        )?;
        std::fs::copy(
            films.join("Tiny Planet (2021).mp4"),
            films.join("Long Name (2018).mp4"),
        )?;
        let huge = format!("Ω{}", " Ω\tlong".repeat(20_000));
        std::fs::write(
            films.join("Long Name (2018).nfo"),
            format!("<movie><set>{huge}</set></movie>"),
        )?;
        Ok(())
    })
    .await
}

/// The sets `/Items?IncludeItemTypes=BoxSet` lists, with more parameters.
async fn sets(lib: &Scanned, more: &str) -> Result<Value> {
    lib.json(&format!(
        "/Items?IncludeItemTypes=BoxSet&Recursive=true{more}"
    ))
    .await
}

/// The set named `name` in a listing.
fn named<'a>(list: &'a Value, name: &str) -> Result<&'a Value> {
    list["Items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["Name"] == name)
        .with_context(|| format!("no {name} in {list}"))
}

fn id(item: &Value) -> String {
    item["Id"].as_str().unwrap_or_default().to_owned()
}

/// The Collections view's id, when `/UserViews` lists it.
async fn collections_view(lib: &Scanned) -> Result<Option<Value>> {
    let views = lib.json("/UserViews").await?;
    Ok(views["Items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["CollectionType"] == "boxsets")
        .cloned())
}

crate::with_library_on_both_providers! {
    fixture = with_sets;
    async fn films_naming_a_set_become_one_boxset_served_where_clients_ask(lib) {
        let all = sets(&lib, "").await?;
        assert_eq!(all["TotalRecordCount"], 2, "{all}");
        let saga = named(&all, "Test Saga")?;
        assert_eq!(saga["Type"], "BoxSet");
        assert_eq!(saga["IsFolder"], true);
        assert_eq!(saga["ChildCount"], 2);
        assert_eq!(saga["UserData"]["UnplayedItemCount"], 2);
        assert_eq!(saga["ProductionYear"], 2019);
        let saga_id = id(saga);
        assert_eq!(
            saga_id,
            lib.server.state.store.ids().boxset(" test SAGA").to_n(),
            "the id follows from the name, ignoring case, under the installation's key"
        );
        // The empty `<set>` made no set; the huge one is cut to a title's length.
        let long = all["Items"].as_array().unwrap().iter().find(|s| s["Name"] != "Test Saga").unwrap();
        let long_chars = long["Name"].as_str().unwrap().chars().count();
        assert!((250..=256).contains(&long_chars), "cut to at most 256 characters: {long_chars}");
        assert!(long["Name"].as_str().unwrap().starts_with("Ω Ω long Ω long"));

        // The movies "Collections" tab sends its library; a TV library has none.
        let films = lib.library_id(FILMS).await?;
        let shows = lib.library_id(SHOWS).await?;
        let in_films = lib.json(&format!("/Items?ParentId={films}&IncludeItemTypes=BoxSet&Recursive=true&SortBy=SortName&SortOrder=Ascending&Fields=PrimaryImageAspectRatio,SortName&StartIndex=0&Limit=1")).await?;
        assert_eq!(in_films["TotalRecordCount"], 2);
        assert_eq!(names(&in_films).len(), 1, "paged");
        let in_shows = lib.json(&format!("/Users/{}/Items?parentId={shows}&includeItemTypes=BoxSet&recursive=true", lib.user_id())).await?;
        assert_eq!(in_shows["TotalRecordCount"], 0);
        assert_eq!(sets(&lib, "&SearchTerm=saga").await?["TotalRecordCount"], 1);

        // The Collections view, among the views and as the root's child, holds the sets.
        let view = collections_view(&lib).await?.context("a Collections view")?;
        assert_eq!(view["Name"], "Collections");
        assert_eq!(view["Type"], "CollectionFolder");
        let view_id = id(&view);
        let root = lib.json("/Items").await?;
        assert!(names(&root).contains(&"Collections".to_owned()), "{root}");
        let in_view = lib.json(&format!("/Items?ParentId={view_id}&SortBy=SortName")).await?;
        assert_eq!(in_view["TotalRecordCount"], 2);
        assert_eq!(lib.json(&format!("/Items/{view_id}")).await?["CollectionType"], "boxsets");
        assert_eq!(lib.json(&format!("/Items?ParentId={view_id}&IncludeItemTypes=Movie")).await?["TotalRecordCount"], 0);

        // The set as an item, both route styles.
        for uri in [format!("/Items/{saga_id}"), format!("/Users/{}/Items/{saga_id}", lib.user_id())] {
            let one = lib.json(&uri).await?;
            assert_eq!(one["Type"], "BoxSet");
            assert_eq!(one["Name"], "Test Saga");
            assert_eq!(one["ParentId"], view_id.as_str());
        }

        // Its films: by year unless asked otherwise, with user data; the others are not in it.
        let children = lib.json(&format!("/Items?ParentId={saga_id}&Fields=PrimaryImageAspectRatio")).await?;
        assert_eq!(names(&children), ["Big Buck Test", "Tiny Planet"]);
        assert_eq!(children["Items"][0]["UserData"]["Played"], false);
        let reversed = lib.json(&format!("/Users/{}/Items?ParentId={saga_id}&SortBy=SortName&SortOrder=Descending", lib.user_id())).await?;
        assert_eq!(names(&reversed), ["Tiny Planet", "Big Buck Test"]);
        // What the web client's Play button asks for.
        let playable = lib.json(&format!("/Items?ParentId={saga_id}&Recursive=true&Filters=IsNotFolder&MediaTypes=Video")).await?;
        assert_eq!(playable["TotalRecordCount"], 2);

        // A played film shows in the set's counts.
        let big_buck = lib.id_of("Big Buck Test").await?;
        let marked = lib.server.post(&format!("/UserPlayedItems/{big_buck}"), Some(&lib.auth), None).await?;
        assert_eq!(marked.status, StatusCode::OK, "{marked:?}");
        let saga = lib.json(&format!("/Items/{saga_id}")).await?;
        assert_eq!(saga["UserData"]["UnplayedItemCount"], 1);
        assert_eq!(lib.json(&format!("/Items?ParentId={saga_id}&Filters=IsPlayed")).await?["TotalRecordCount"], 1);

        // Counts; the films library and the home screen lists still show films only.
        let counts = lib.json("/Items/Counts").await?;
        assert_eq!(counts["BoxSetCount"], 2);
        assert_eq!(counts["MovieCount"], 4);
        let films_page = lib.json(&format!("/Items?ParentId={films}&IncludeItemTypes=Movie&Recursive=true")).await?;
        assert_eq!(films_page["TotalRecordCount"], 4);
        let latest = lib.json(&format!("/Items/Latest?ParentId={films}")).await?;
        assert_eq!(latest.as_array().map(Vec::len), Some(4), "{latest}");
        assert_eq!(lib.json("/Items?Recursive=true&SearchTerm=saga").await?["TotalRecordCount"], 0);

        // The poster is its first film's, served anonymously under that film's tag.
        let tag = saga["ImageTags"]["Primary"].as_str().context("a Primary tag")?;
        let film = lib.json(&format!("/Items/{big_buck}")).await?;
        assert_eq!(film["ImageTags"]["Primary"], tag);
        let poster = std::fs::read(lib.films_dir.join("Big Buck Test (2019)-poster.jpg"))?;
        let image = lib.server.get(&format!("/Items/{saga_id}/Images/Primary?tag={tag}"), None).await?;
        assert_eq!(image.status, StatusCode::OK);
        assert_eq!(image.body.as_ref(), poster.as_slice());
        let missing = lib.server.get(&format!("/Items/{saga_id}/Images/Logo"), None).await?;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        let not_first = lib.server.get(&format!("/Items/{saga_id}/Images/Primary/1"), None).await?;
        assert_eq!(not_first.status, StatusCode::NOT_FOUND);
        Ok(())
    }

    async fn sets_follow_rescans_and_an_empty_set_disappears(lib) {
        let saga_id = id(named(&sets(&lib, "").await?, "Test Saga")?);

        // Tiny Planet moves to another set.
        std::fs::write(
            lib.films_dir.join("Tiny Planet (2021).nfo"),
            "<movie><year>2021</year><set><name>Other Set</name></set><plot>moved</plot></movie>",
        )?;
        lib.rescan().await?;
        let after_move = sets(&lib, "").await?;
        assert_eq!(names(&after_move).len(), 3, "{after_move}");
        let saga = named(&after_move, "Test Saga")?;
        assert_eq!(id(saga), saga_id, "a set keeps its id across rescans");
        assert_eq!(saga["ChildCount"], 1);
        let other_id = id(named(&after_move, "Other Set")?);
        assert_eq!(names(&lib.json(&format!("/Items?ParentId={other_id}")).await?), ["Tiny Planet"]);
        assert_eq!(names(&lib.json(&format!("/Items?ParentId={saga_id}")).await?), ["Big Buck Test"]);

        // Big Buck Test is removed: its set has no film left and is gone.
        for file in ["Big Buck Test (2019).mkv", "Big Buck Test (2019).nfo", "Big Buck Test (2019)-poster.jpg"] {
            std::fs::remove_file(lib.films_dir.join(file))?;
        }
        lib.rescan().await?;
        let after_removal = sets(&lib, "").await?;
        assert!(!names(&after_removal).contains(&"Test Saga".to_owned()), "{after_removal}");
        assert_eq!(lib.get(&format!("/Items/{saga_id}")).await?.status, StatusCode::NOT_FOUND);
        assert_eq!(lib.json(&format!("/Items?ParentId={saga_id}")).await?["TotalRecordCount"], 0);
        assert_eq!(lib.server.get(&format!("/Items/{saga_id}/Images/Primary"), None).await?.status, StatusCode::NOT_FOUND);

        // No `<set>` left anywhere: no sets, no Collections view.
        std::fs::write(lib.films_dir.join("Tiny Planet (2021).nfo"), "<movie><year>2021</year></movie>")?;
        std::fs::remove_file(lib.films_dir.join("Long Name (2018).nfo"))?;
        lib.rescan().await?;
        assert_eq!(sets(&lib, "").await?["TotalRecordCount"], 0);
        assert_eq!(lib.json("/Items/Counts").await?["BoxSetCount"], 0);
        assert!(collections_view(&lib).await?.is_none());
        Ok(())
    }

    async fn sets_read_before_their_ids_existed_get_them_when_the_store_opens(lib) {
        // As a database from before migration 0017 holds them: names, no ids.
        let store = &lib.server.state.store;
        sqlx::query("UPDATE item_metadata SET collection_id = NULL")
            .execute(store.pool())
            .await?;
        assert_eq!(sets(&lib, "").await?["TotalRecordCount"], 0);
        // What `Store::migrate` runs at start: Big Buck Test, Tiny Planet and the long name
        // (the empty `<set>` was never stored), then nothing more.
        store.migrate().await?;
        assert_eq!(store.fill_collection_ids().await?, 0);
        let all = sets(&lib, "").await?;
        assert_eq!(all["TotalRecordCount"], 2, "{all}");
        assert_eq!(named(&all, "Test Saga")?["ChildCount"], 2);
        assert_eq!(id(named(&all, "Test Saga")?), store.ids().boxset("test saga").to_n());
        Ok(())
    }
}

crate::with_library_on_both_providers! {
    async fn without_sets_there_is_no_collections_view_and_bad_ids_are_refused(lib) {
        assert!(collections_view(&lib).await?.is_none());
        assert_eq!(sets(&lib, "").await?["TotalRecordCount"], 0);
        let unknown = "0123456789abcdef0123456789abcdef";
        assert_eq!(lib.get(&format!("/Items/{unknown}")).await?.status, StatusCode::NOT_FOUND);
        assert_eq!(lib.get("/Items?ParentId=not-an-id&IncludeItemTypes=BoxSet").await?.status, StatusCode::BAD_REQUEST);
        assert_eq!(lib.server.get(&format!("/Items/{unknown}/Images/Primary"), None).await?.status, StatusCode::NOT_FOUND);
        Ok(())
    }
}

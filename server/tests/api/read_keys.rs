//! The sort and search keys stored on each item (migration 0012): a library sorted by
//! `SortName` comes out in the order of the `.nfo` sort title, else the sort name, as it did
//! when the key was computed per read; a search matches part of a name or original title
//! without regard to case or accents; both follow `.nfo` changes, and rows without keys get
//! them when the store opens. Every test runs on SQLite and PostgreSQL with the same
//! expectations, so the two stores answer alike.

use std::path::Path;

use anyhow::Result;

use crate::library::{FILMS, Scanned, names};
use crate::support::Provider;

/// The sample library's films plus three more: one whose `.nfo` sorts it first and carries
/// an accented original title, and two with accented names. The sort keys differ in their
/// first two letters, so every collation orders them alike.
async fn with_more_films(provider: Provider) -> Result<Scanned> {
    Scanned::prepared(provider, |root: &Path| {
        let films = root.join("films");
        let clip = films.join("Big Buck Test (2019).mkv");
        for name in [
            "The Zebra Crossing (2001)",
            "Amélie (2001)",
            "Crème Brûlée (2005)",
        ] {
            std::fs::copy(&clip, films.join(format!("{name}.mkv")))?;
        }
        std::fs::write(
            films.join("The Zebra Crossing (2001).nfo"),
            "<movie><sorttitle>aardvark</sorttitle>\
             <originaltitle>Le Zèbre Passé</originaltitle></movie>",
        )?;
        Ok(())
    })
    .await
}

/// The films in sort-key order: the `.nfo` sort title `aardvark` first, then sort names.
const BY_SORT_KEY: [&str; 5] = [
    "The Zebra Crossing",
    "Amélie",
    "Big Buck Test",
    "Crème Brûlée",
    "Tiny Planet",
];

async fn search(lib: &Scanned, term: &str) -> Result<Vec<String>> {
    let found = lib
        .json(&format!(
            "/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName&SearchTerm={term}"
        ))
        .await?;
    Ok(names(&found))
}

crate::with_library_on_both_providers! {
    fixture = with_more_films;
    async fn a_library_sorted_by_sort_name_follows_nfo_sort_titles_then_sort_names(lib) {
        let films = lib.library_id(FILMS).await?;
        // Through the library (its id narrows by the library column) and across libraries.
        for uri in [
            format!("/Items?ParentId={films}&Recursive=true&IncludeItemTypes=Movie&SortBy=SortName"),
            "/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName".to_owned(),
        ] {
            let page = lib.json(&uri).await?;
            assert_eq!(names(&page), BY_SORT_KEY, "{uri}");
            assert_eq!(page["TotalRecordCount"], 5, "{uri}");
        }
        let descending = lib
            .json(&format!(
                "/Items?ParentId={films}&Recursive=true&SortBy=SortName&SortOrder=Descending"
            ))
            .await?;
        let mut reversed = BY_SORT_KEY.to_vec();
        reversed.reverse();
        assert_eq!(names(&descending), reversed);
        // A page in the middle carries the total of every match.
        let page = lib
            .json(&format!(
                "/Items?ParentId={films}&SortBy=SortName&StartIndex=1&Limit=2"
            ))
            .await?;
        assert_eq!(names(&page), ["Amélie", "Big Buck Test"]);
        assert_eq!(page["TotalRecordCount"], 5);
        // The A–Z picker reads the same key.
        let a = lib
            .json(&format!("/Items?ParentId={films}&SortBy=SortName&NameStartsWith=a"))
            .await?;
        assert_eq!(names(&a), ["The Zebra Crossing", "Amélie"]);
        Ok(())
    }

    async fn a_search_matches_part_of_a_name_without_regard_to_case_or_accents(lib) {
        assert_eq!(search(&lib, "AMELIE").await?, ["Amélie"]);
        assert_eq!(search(&lib, "am%C3%A9l").await?, ["Amélie"]);
        assert_eq!(search(&lib, "brulee").await?, ["Crème Brûlée"]);
        assert_eq!(search(&lib, "CR%C3%88ME").await?, ["Crème Brûlée"]);
        assert_eq!(search(&lib, "lanet").await?, ["Tiny Planet"]);
        assert_eq!(search(&lib, "%20%20zebra%20%20crossing").await?, ["The Zebra Crossing"]);
        // The `.nfo` original title is searched too.
        assert_eq!(search(&lib, "zebre%20passe").await?, ["The Zebra Crossing"]);
        // Two words that are not next to each other in one name match nothing.
        assert!(search(&lib, "zebra%20passe").await?.is_empty());
        assert!(search(&lib, "nothing%20like%20it").await?.is_empty());
        Ok(())
    }

    async fn the_keys_follow_a_changed_and_a_removed_nfo(lib) {
        let films = lib.library_id(FILMS).await?;
        let listing = format!("/Items?ParentId={films}&SortBy=SortName");
        let nfo = lib.films_dir.join("The Zebra Crossing (2001).nfo");
        // A different length, so the rescan sees the change whatever the clock's resolution.
        std::fs::write(&nfo, "<movie><sorttitle>zzz last of all</sorttitle></movie>")?;
        lib.rescan().await?;
        let page = lib.json(&listing).await?;
        assert_eq!(
            names(&page),
            ["Amélie", "Big Buck Test", "Crème Brûlée", "Tiny Planet", "The Zebra Crossing"]
        );
        assert!(search(&lib, "zebre").await?.is_empty(), "the old original title is gone");
        std::fs::remove_file(&nfo)?;
        lib.rescan().await?;
        let page = lib.json(&listing).await?;
        // Without the `.nfo`: the sort name, its article dropped.
        assert_eq!(
            names(&page),
            ["Amélie", "Big Buck Test", "Crème Brûlée", "Tiny Planet", "The Zebra Crossing"]
        );
        let zebra = lib.json(&format!("/Items/{}", lib.id_of("The Zebra Crossing").await?)).await?;
        assert_eq!(zebra["SortName"], "zebra crossing");
        Ok(())
    }

    async fn rows_without_keys_get_them_when_the_store_opens(lib) {
        let films = lib.library_id(FILMS).await?;
        let listing = format!("/Items?ParentId={films}&SortBy=SortName");
        let before = names(&lib.json(&listing).await?);
        let store = &lib.server.state.store;
        // As a database migrated from before the keys existed holds them.
        sqlx::query("UPDATE items SET search_name = NULL, sort_key = NULL")
            .execute(store.pool())
            .await?;
        let filled = store.fill_read_keys().await?;
        assert!(filled >= 5, "filled {filled}");
        assert_eq!(store.fill_read_keys().await?, 0, "a second run finds nothing to fill");
        assert_eq!(names(&lib.json(&listing).await?), before);
        assert_eq!(search(&lib, "AMELIE").await?, ["Amélie"]);
        Ok(())
    }
}

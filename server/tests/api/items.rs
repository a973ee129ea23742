//! Browsing the scanned sample library: views, listings, one item, TV, Resume, Latest, in both
//! route styles, on both storage providers.

use http::StatusCode;

use crate::library::{FILMS, SHOWS, names};
use crate::support::has_no_nulls;
use crate::with_library_on_both_providers;

with_library_on_both_providers! {
    async fn the_sample_library_scans_into_two_films_with_years_and_a_series_of_one_season_and_two_episodes(lib) {
        assert_eq!(lib.report.libraries, 2);
        assert_eq!(lib.report.files, 4);
        assert_eq!(lib.report.probed, 4);
        assert!(lib.report.errors.is_empty(), "{:?}", lib.report.errors);

        let films = lib.json("/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName").await?;
        assert_eq!(names(&films), ["Big Buck Test", "Tiny Planet"]);
        assert_eq!(films["Items"][0]["ProductionYear"], 2019);
        assert_eq!(films["Items"][1]["ProductionYear"], 2021);
        assert_eq!(films["Items"][0]["Container"], "mkv");
        assert_eq!(films["Items"][1]["Container"], "mp4");
        let runtime = films["Items"][0]["RunTimeTicks"].as_i64().unwrap();
        assert!((runtime - 120_000_000).abs() < 5_000_000, "12 s in ticks: {runtime}");

        let series = lib.json("/Items?Recursive=true&IncludeItemTypes=Series").await?;
        assert_eq!(names(&series), ["Test Show"]);
        let series_id = series["Items"][0]["Id"].as_str().unwrap().to_owned();
        assert_eq!(series["Items"][0]["ChildCount"], 1);
        assert_eq!(series["Items"][0]["RecursiveItemCount"], 2);

        let seasons = lib.json(&format!("/Shows/{series_id}/Seasons")).await?;
        assert_eq!(names(&seasons), ["Season 1"]);
        assert_eq!(seasons["Items"][0]["IndexNumber"], 1);
        assert_eq!(seasons["Items"][0]["SeriesId"], series_id.as_str());

        let episodes = lib.json(&format!("/Shows/{series_id}/Episodes")).await?;
        assert_eq!(episodes["TotalRecordCount"], 2);
        for (i, episode) in episodes["Items"].as_array().unwrap().iter().enumerate() {
            assert_eq!(episode["Type"], "Episode");
            assert_eq!(episode["IndexNumber"], i + 1);
            assert_eq!(episode["ParentIndexNumber"], 1);
            assert_eq!(episode["SeriesName"], "Test Show");
            assert_eq!(episode["SeriesId"], series_id.as_str());
            assert_eq!(episode["SeasonId"], seasons["Items"][0]["Id"]);
            assert_eq!(episode["ParentId"], seasons["Items"][0]["Id"]);
        }
        Ok(())
    }

    async fn item_ids_stay_the_same_across_rescans(lib) {
        let before = lib.json("/Items?Recursive=true&SortBy=SortName").await?;
        let report = lib.rescan().await?;
        assert_eq!(report.probed, 0, "unchanged files are not probed again");
        let after = lib.json("/Items?Recursive=true&SortBy=SortName").await?;
        let ids = |v: &serde_json::Value| {
            v["Items"].as_array().unwrap().iter().map(|i| i["Id"].clone()).collect::<Vec<_>>()
        };
        assert_eq!(ids(&before), ids(&after));
        assert_eq!(ids(&before).len(), 6, "2 films, 1 series, 1 season, 2 episodes");
        Ok(())
    }

    async fn user_views_list_the_libraries_as_collection_folders_in_both_route_styles(lib) {
        let new_style = lib.json(&format!("/UserViews?userId={}", lib.user_id())).await?;
        let legacy = lib.json(&format!("/Users/{}/Views", lib.user_id())).await?;
        assert_eq!(new_style, legacy);
        assert_eq!(new_style["TotalRecordCount"], 2);
        assert_eq!(new_style["StartIndex"], 0);
        let views = new_style["Items"].as_array().unwrap();
        let kinds: Vec<(&str, &str)> = views
            .iter()
            .map(|v| (v["Name"].as_str().unwrap(), v["CollectionType"].as_str().unwrap()))
            .collect();
        assert_eq!(kinds, [(FILMS, "movies"), (SHOWS, "tvshows")]);
        for view in views {
            assert_eq!(view["Type"], "CollectionFolder");
            assert_eq!(view["IsFolder"], true);
            assert_eq!(view["ServerId"], lib.server.state.server_id.to_n());
            assert_eq!(view["Id"].as_str().unwrap().len(), 32);
        }
        assert!(has_no_nulls(&new_style));
        // The user's root without a parent lists the same views, as Jellyfin does.
        let root = lib.json("/Items").await?;
        assert_eq!(names(&root), [FILMS, SHOWS]);
        Ok(())
    }

    async fn listings_by_parent_work_in_both_route_styles_and_add_media_sources_only_when_asked(lib) {
        let films = lib.library_id(FILMS).await?;
        let user = lib.user_id();
        // As the Python client asks (legacy route, PascalCase keys, `True`).
        let legacy = lib
            .json(&format!(
                "/Users/{user}/Items?ParentId={films}&IncludeItemTypes=Movie%2CEpisode&Recursive=True&Limit=50&Fields=MediaSources"
            ))
            .await?;
        // As the TypeScript SDK asks (new route, camelCase keys, repeated lists).
        let new_style = lib
            .json(&format!(
                "/Items?userId={user}&startIndex=0&limit=50&recursive=true&parentId={films}&fields=MediaSources&fields=Overview&includeItemTypes=Movie&includeItemTypes=Episode"
            ))
            .await?;
        assert_eq!(legacy["TotalRecordCount"], 2);
        assert_eq!(names(&legacy), names(&new_style));
        for item in legacy["Items"].as_array().unwrap() {
            let source = &item["MediaSources"][0];
            assert_eq!(source["Id"], item["Id"]);
            assert_eq!(source["Protocol"], "File");
            assert!(source["MediaStreams"].as_array().unwrap().len() >= 2);
            assert!(item.get("Chapters").is_none(), "only what fields= asks");
            assert_eq!(item["ParentId"], films.as_str());
            assert_eq!(item["UserData"]["Key"], item["Id"]);
        }
        assert!(has_no_nulls(&legacy));

        let plain = lib.json(&format!("/Items?ParentId={films}")).await?;
        assert_eq!(plain["TotalRecordCount"], 2);
        for item in plain["Items"].as_array().unwrap() {
            assert!(item.get("MediaSources").is_none());
            assert!(item.get("MediaStreams").is_none());
        }
        // Unknown Fields values (the Python client still sends some) are ignored.
        let odd = lib.get(&format!("/Items?ParentId={films}&Fields=Metascore,ShortOverview,VoteCount")).await?;
        assert_eq!(odd.status, StatusCode::OK);
        Ok(())
    }

    async fn listings_sort_page_search_and_filter_by_id(lib) {
        let by_year = lib.json("/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=ProductionYear&SortOrder=Descending").await?;
        assert_eq!(names(&by_year), ["Tiny Planet", "Big Buck Test"]);
        let by_name = lib.json("/Items?recursive=true&includeItemTypes=Movie&sortBy=SortName").await?;
        assert_eq!(names(&by_name), ["Big Buck Test", "Tiny Planet"]);
        for key in ["DateCreated", "DatePlayed", "PremiereDate", "Random", "Bogus"] {
            let reply = lib.get(&format!("/Items?Recursive=true&SortBy={key}")).await?;
            assert_eq!(reply.status, StatusCode::OK, "SortBy={key}");
            assert_eq!(reply.json()?["TotalRecordCount"], 6);
        }

        let second = lib.json("/Items?Recursive=true&IncludeItemTypes=Movie&SortBy=SortName&StartIndex=1&Limit=1").await?;
        assert_eq!(names(&second), ["Tiny Planet"]);
        assert_eq!(second["TotalRecordCount"], 2);
        assert_eq!(second["StartIndex"], 1);

        let search = lib.json("/Items?searchTerm=planet&recursive=true").await?;
        assert_eq!(names(&search), ["Tiny Planet"]);
        let wildcard = lib.json("/Items?searchTerm=%25&recursive=true").await?;
        assert_eq!(wildcard["TotalRecordCount"], 0, "a % in a search is a literal");

        let id = lib.id_of("Tiny Planet").await?;
        let by_ids = lib.json(&format!("/Items?Ids={id}")).await?;
        assert_eq!(names(&by_ids), ["Tiny Planet"]);

        let episodes = lib.json("/Items?Recursive=true&ExcludeItemTypes=Movie,Series,Season").await?;
        assert_eq!(episodes["TotalRecordCount"], 2);
        let none = lib.json("/Items?Recursive=true&IncludeItemTypes=BoxSet").await?;
        assert_eq!(none["TotalRecordCount"], 0, "types never stored match nothing");
        let folders = lib.json("/Items?Recursive=true&IsFolder=true").await?;
        assert_eq!(folders["TotalRecordCount"], 2, "a series and a season");
        Ok(())
    }

    async fn a_page_carries_its_total_even_past_the_end_or_empty_and_parents_of_any_kind_narrow(lib) {
        let all = "/Items?Recursive=true&SortBy=SortName";
        let middle = lib.json(&format!("{all}&StartIndex=2&Limit=3")).await?;
        assert_eq!(middle["Items"].as_array().unwrap().len(), 3);
        assert_eq!(middle["TotalRecordCount"], 6);
        let past = lib.json(&format!("{all}&StartIndex=10&Limit=3")).await?;
        assert_eq!(past["Items"].as_array().unwrap().len(), 0);
        assert_eq!(past["TotalRecordCount"], 6, "counted although no row carries it");
        let counted = lib.json(&format!("{all}&Limit=0")).await?;
        assert_eq!(counted["TotalRecordCount"], 6);
        let uncounted = lib.json(&format!("{all}&Limit=2&enableTotalRecordCount=false")).await?;
        assert_eq!(uncounted["Items"].as_array().unwrap().len(), 2);
        assert_eq!(uncounted["TotalRecordCount"], 2, "what was read, when no total is wanted");

        let views = lib.json("/UserViews").await?;
        let shows = views["Items"][1]["Id"].as_str().unwrap().to_owned();
        let series = lib.json(&format!("/Items?ParentId={shows}")).await?;
        assert_eq!(names(&series), ["Test Show"]);
        let series_id = series["Items"][0]["Id"].as_str().unwrap().to_owned();
        assert_eq!(series["Items"][0]["ChildCount"], 1, "folder counts come with the row");
        let seasons = lib.json(&format!("/Items?ParentId={series_id}")).await?;
        assert_eq!(names(&seasons), ["Season 1"]);
        let season_id = seasons["Items"][0]["Id"].as_str().unwrap().to_owned();
        let episodes = lib.json(&format!("/Items?ParentId={season_id}&SortBy=IndexNumber")).await?;
        assert_eq!(episodes["TotalRecordCount"], 2);
        let below_series = lib.json(&format!("/Items?ParentId={series_id}&Recursive=true&IncludeItemTypes=Episode")).await?;
        assert_eq!(below_series["TotalRecordCount"], 2);
        let below_library = lib.json(&format!("/Items?ParentId={shows}&Recursive=true")).await?;
        assert_eq!(below_library["TotalRecordCount"], 4, "series, season, two episodes");
        let unknown = lib.json("/Items?ParentId=0123456789abcdef0123456789abcdef&Recursive=true").await?;
        assert_eq!(unknown["TotalRecordCount"], 0);
        assert_eq!(unknown["Items"].as_array().unwrap().len(), 0);
        Ok(())
    }

    async fn one_item_has_every_field_in_both_route_styles(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let new_style = lib.json(&format!("/Items/{id}?userId={}", lib.user_id())).await?;
        let legacy = lib.json(&format!("/Users/{}/Items/{id}", lib.user_id())).await?;
        assert_eq!(new_style, legacy);
        let item = &new_style;
        assert_eq!(item["Id"], id.as_str());
        assert_eq!(item["Type"], "Movie");
        assert_eq!(item["MediaType"], "Video");
        assert_eq!(item["LocationType"], "FileSystem");
        assert!(item["DateCreated"].as_str().unwrap().ends_with('Z'));
        assert_eq!(item["Chapters"], serde_json::json!([]));
        let video = item["MediaStreams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Type"] == "Video")
            .unwrap();
        assert_eq!(video["Codec"], "h264");
        assert_eq!(video["Width"], 320);
        assert_eq!(video["Height"], 180);
        for key in ["IsInterlaced", "IsDefault", "IsForced", "IsHearingImpaired", "IsExternal",
                    "IsTextSubtitleStream", "SupportsExternalStream", "Index"] {
            assert!(!video[key].is_null(), "MediaStream lacks {key}");
        }
        let source = &item["MediaSources"][0];
        for key in ["Protocol", "Type", "IsRemote", "ReadAtNativeFramerate", "IgnoreDts",
                    "IgnoreIndex", "GenPtsInput", "SupportsTranscoding", "SupportsDirectStream",
                    "SupportsDirectPlay", "IsInfiniteStream", "RequiresOpening",
                    "RequiresClosing", "RequiresLooping", "SupportsProbing",
                    "TranscodingSubProtocol", "HasSegments", "Container", "Size", "ETag"] {
            assert!(!source[key].is_null(), "MediaSourceInfo lacks {key}");
        }
        assert!(item["ImageTags"]["Primary"].is_string(), "the poster beside the film");
        assert!(has_no_nulls(item));
        assert!(!item.to_string().contains(lib.media.path().to_str().unwrap()), "no paths");

        // Dashed ids are accepted; other text is a 400 in the common shape; unknown ids 404.
        let dashed = format!("{}-{}-{}-{}-{}", &id[0..8], &id[8..12], &id[12..16], &id[16..20], &id[20..]);
        assert_eq!(lib.get(&format!("/Items/{}", dashed.to_uppercase())).await?.status, StatusCode::OK);
        lib.get("/Items/not-an-id").await?.assert_error(StatusCode::BAD_REQUEST)?;
        lib.get(&format!("/Users/{}/Items/..%2F..%2Fetc", lib.user_id())).await?.assert_error(StatusCode::BAD_REQUEST)?;
        lib.get("/Items/00000000000000000000000000000000").await?.assert_error(StatusCode::NOT_FOUND)?;
        // A library id opens the library's view.
        let films = lib.library_id(FILMS).await?;
        let view = lib.json(&format!("/Items/{films}")).await?;
        assert_eq!(view["Type"], "CollectionFolder");
        assert_eq!(view["CollectionType"], "movies");
        Ok(())
    }

    async fn browsing_needs_a_token_and_another_users_data_needs_an_administrator(lib) {
        for uri in ["/Items", "/UserViews", "/Items/Latest", "/UserItems/Resume", "/Shows/NextUp"] {
            lib.server.get(uri, None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        }
        let (admin, _) = lib.server.admin().await?;
        lib.get(&format!("/Users/{}/Views", admin.id.to_n())).await?.assert_error(StatusCode::FORBIDDEN)?;
        lib.get(&format!("/Items?userId={}", admin.id.to_n())).await?.assert_error(StatusCode::FORBIDDEN)?;
        Ok(())
    }

    async fn latest_is_a_bare_array_with_new_episodes_grouped_under_their_series(lib) {
        let latest = lib.json("/Items/Latest").await?;
        assert!(latest.is_array(), "{latest}");
        let mut shown = names(&latest);
        shown.sort();
        assert_eq!(shown, ["Big Buck Test", "Test Show", "Tiny Planet"]);
        let series = latest.as_array().unwrap().iter().find(|i| i["Type"] == "Series").unwrap();
        assert_eq!(series["ChildCount"], 2, "two new episodes");

        let ungrouped = lib.json(&format!("/Users/{}/Items/Latest?GroupItems=False&Limit=10", lib.user_id())).await?;
        assert!(ungrouped.is_array());
        assert_eq!(ungrouped.as_array().unwrap().len(), 4);
        let films = lib.library_id(FILMS).await?;
        let in_films = lib.json(&format!("/Items/Latest?ParentId={films}&Limit=1")).await?;
        assert_eq!(in_films.as_array().unwrap().len(), 1);
        assert_eq!(in_films[0]["Type"], "Movie");
        Ok(())
    }

    async fn next_up_offers_the_episode_after_the_last_one_watched(lib) {
        let series = lib.id_of("Test Show").await?;
        let episodes = lib.json(&format!("/Shows/{series}/Episodes")).await?;
        let first = episodes["Items"][0]["Id"].as_str().unwrap().to_owned();
        let second = episodes["Items"][1]["Id"].as_str().unwrap().to_owned();

        let nothing = lib.json("/Shows/NextUp").await?;
        assert_eq!(nothing["TotalRecordCount"], 0, "nothing watched yet");
        let named = lib.json(&format!("/Shows/NextUp?SeriesId={series}")).await?;
        assert_eq!(named["Items"][0]["Id"], first.as_str(), "a named series starts at its first episode");

        let reply = lib.server.post(&format!("/UserPlayedItems/{first}"), Some(&lib.auth), None).await?;
        assert_eq!(reply.status, StatusCode::OK);
        let next = lib.json("/Shows/NextUp").await?;
        assert_eq!(next["TotalRecordCount"], 1);
        assert_eq!(next["Items"][0]["Id"], second.as_str());

        let by_season = lib.json(&format!("/Shows/{series}/Episodes?Season=1&StartItemId={second}")).await?;
        assert_eq!(by_season["TotalRecordCount"], 1);
        assert_eq!(by_season["Items"][0]["Id"], second.as_str());
        lib.get(&format!("/Shows/{first}/Seasons")).await?.assert_error(StatusCode::NOT_FOUND)?;
        lib.get("/Shows/bad-id/Episodes").await?.assert_error(StatusCode::BAD_REQUEST)?;
        Ok(())
    }

    async fn played_and_favourite_filters_select_what_the_user_marked(lib) {
        let tiny = lib.id_of("Tiny Planet").await?;
        let user = lib.user_id();
        let marked = lib.server.post(&format!("/Users/{user}/FavoriteItems/{tiny}"), Some(&lib.auth), None).await?;
        assert_eq!(marked.status, StatusCode::OK);
        assert_eq!(marked.json()?["IsFavorite"], true);
        let favourites = lib.json("/Items?Recursive=true&Filters=IsFavorite").await?;
        assert_eq!(names(&favourites), ["Tiny Planet"]);
        let favourites = lib.json("/Items?Recursive=true&isFavorite=true").await?;
        assert_eq!(names(&favourites), ["Tiny Planet"]);

        let played = lib.server.post(&format!("/Users/{user}/PlayedItems/{tiny}"), Some(&lib.auth), None).await?;
        assert_eq!(played.json()?["Played"], true);
        let watched = lib.json("/Items?Recursive=true&IncludeItemTypes=Movie&Filters=IsPlayed").await?;
        assert_eq!(names(&watched), ["Tiny Planet"]);
        let unwatched = lib.json("/Items?Recursive=true&IncludeItemTypes=Movie&IsPlayed=false").await?;
        assert_eq!(names(&unwatched), ["Big Buck Test"]);

        let removed = lib.server.send(crate::support::request(
            http::Method::DELETE, &format!("/UserFavoriteItems/{tiny}"), Some(&lib.auth), None)?).await?;
        assert_eq!(removed.json()?["IsFavorite"], false);
        let favourites = lib.json("/Items?Recursive=true&Filters=IsFavorite").await?;
        assert_eq!(favourites["TotalRecordCount"], 0);

        // Marking a series played marks its episodes.
        let series = lib.id_of("Test Show").await?;
        let reply = lib.server.post(&format!("/UserPlayedItems/{series}"), Some(&lib.auth), None).await?;
        assert_eq!(reply.json()?["Played"], true);
        assert_eq!(reply.json()?["UnplayedItemCount"], 0);
        let episodes = lib.json("/Items?Recursive=true&IncludeItemTypes=Episode&Filters=IsUnplayed").await?;
        assert_eq!(episodes["TotalRecordCount"], 0);
        Ok(())
    }

    async fn a_library_refresh_is_for_administrators_and_answers_at_once(lib) {
        let reply = lib.server.post("/Library/Refresh", Some(&lib.auth), None).await?;
        reply.assert_error(StatusCode::FORBIDDEN)?;
        let (_, admin) = lib.server.admin().await?;
        let reply = lib.server.post("/Library/Refresh", Some(&crate::support::with_token(&admin)), None).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        Ok(())
    }
}

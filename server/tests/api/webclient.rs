//! The official web client (jellyfin-web 10.11) against Ephyra: each call its journeys make,
//! replayed with the query strings it sends (read from its source: `homesections/sections/*`,
//! `itemDetails`, `moviesrecommended`, the library pages, the dashboard), asserting the fields
//! the page reads. Plus serving the client's files from `web.dir`.

use std::path::Path;

use anyhow::{Context as _, Result};
use axum::body::Body;
use http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};

use crate::library::{FILMS, Scanned, names};
use crate::support::{Provider, TestServer, client_on, request, test_config, with_token};
use crate::with_library_on_both_providers;

/// The `client` jellyfin-web names its display preferences with.
const WEB_CLIENT: &str = "emby";

fn ids(result: &Value) -> Vec<String> {
    result["Items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["Id"].as_str().map(str::to_owned))
        .collect()
}

async fn admin_json(lib: &Scanned, auth: &str, uri: &str) -> Result<Value> {
    let reply = lib.server.get(uri, Some(auth)).await?;
    anyhow::ensure!(reply.status == StatusCode::OK, "GET {uri}: {reply:?}");
    reply.json()
}

async fn admin_auth(lib: &Scanned) -> Result<String> {
    let (_, token) = lib.server.admin().await?;
    Ok(with_token(&token))
}

with_library_on_both_providers! {
    async fn usersettings_answer_defaults_after_sign_in_and_keep_what_each_user_saves_per_client(lib) {
        let uid = lib.user_id();
        // What the web client reads right after signing in: without it the spinner turns forever.
        let url = format!("/DisplayPreferences/usersettings?userId={uid}&client={WEB_CLIENT}");
        let prefs = lib.json(&url).await?;
        assert_eq!(prefs["SortBy"], "SortName");
        assert_eq!(prefs["SortOrder"], "Ascending");
        assert_eq!(prefs["ScrollDirection"], "Horizontal");
        assert_eq!(prefs["ShowBackdrop"], true);
        assert_eq!(prefs["Client"], WEB_CLIENT);
        assert_eq!(prefs["CustomPrefs"]["skipForwardLength"], "30000");
        assert_eq!(prefs["CustomPrefs"]["skipBackLength"], "10000");
        assert!(prefs["CustomPrefs"].get("homesection0").is_none(), "no home layout saved yet");

        // The home-screen settings page posts the whole DTO back.
        let mut saved = prefs.clone();
        saved["CustomPrefs"]["homesection0"] = json!("resume");
        saved["CustomPrefs"]["homesection1"] = json!("latestmedia");
        saved["CustomPrefs"]["enableBackdrops"] = json!(false);
        saved["SortBy"] = json!("DateCreated");
        let reply = lib.server.post(&url, Some(&lib.auth), Some(saved)).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{reply:?}");

        let again = lib.json(&url).await?;
        assert_eq!(again["CustomPrefs"]["homesection0"], "resume");
        assert_eq!(again["CustomPrefs"]["homesection1"], "latestmedia");
        assert_eq!(again["CustomPrefs"]["enableBackdrops"], "false", "kept as text, as Jellyfin does");
        assert_eq!(again["SortBy"], "DateCreated");
        // Without userId the token's user is meant; the id in the path is matched in any case.
        let same = lib.json(&format!("/DisplayPreferences/UserSettings?client={WEB_CLIENT}")).await?;
        assert_eq!(same["CustomPrefs"]["homesection0"], "resume");

        // Another client and another user start from the defaults.
        let other_client = lib.json("/DisplayPreferences/usersettings?client=AndroidTV").await?;
        assert!(other_client["CustomPrefs"].get("homesection0").is_none());
        let (admin, admin_token) = lib.server.admin().await?;
        let theirs = lib.server.get(
            &format!("/DisplayPreferences/usersettings?userId={}&client={WEB_CLIENT}", admin.id.to_n()),
            Some(&with_token(&admin_token)),
        ).await?.json()?;
        assert!(theirs["CustomPrefs"].get("homesection0").is_none());

        // Bad input: no client, someone else's preferences, an oversized map.
        lib.get("/DisplayPreferences/usersettings").await?.assert_error(StatusCode::BAD_REQUEST)?;
        lib.get(&format!("/DisplayPreferences/usersettings?userId={}&client=emby", admin.id.to_n()))
            .await?.assert_error(StatusCode::FORBIDDEN)?;
        let huge: serde_json::Map<String, Value> =
            (0..600).map(|i| (format!("k{i}"), json!("v"))).collect();
        lib.server.post(&url, Some(&lib.auth), Some(json!({ "CustomPrefs": huge }))).await?
            .assert_error(StatusCode::BAD_REQUEST)?;
        lib.server.get(&url, None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        Ok(())
    }

    async fn the_home_screen_sections_answer_with_what_their_cards_read(lib) {
        let uid = lib.user_id();
        let views = lib.json(&format!("/UserViews?userId={uid}")).await?;
        assert_eq!(views["TotalRecordCount"], 2);
        let films = lib.library_id(FILMS).await?;

        // Continue watching, with the query the section sends. The sample films are 12 s
        // long: under 5 minutes a stop counts as watched (Jellyfin's rule), so the film is
        // marked played rather than listed (playstate tests cover resumable positions).
        let tiny = lib.id_of("Tiny Planet").await?;
        let resume_url = format!(
            "/Users/{uid}/Items/Resume?Limit=12&Recursive=true&Fields=PrimaryImageAspectRatio\
             &ImageTypeLimit=1&EnableImageTypes=Primary%2CBackdrop%2CThumb\
             &EnableTotalRecordCount=false&MediaTypes=Video"
        );
        let resume = lib.json(&resume_url).await?;
        assert_eq!(resume["Items"], json!([]));
        assert_eq!(resume["StartIndex"], 0);
        let reply = lib.server.post(
            "/Sessions/Playing/Stopped",
            Some(&lib.auth),
            Some(json!({"ItemId": tiny, "PositionTicks": 60_000_000, "PlayMethod": "DirectPlay"})),
        ).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(lib.json(&resume_url).await?["Items"], json!([]));
        let film = lib.json(&format!("/Users/{uid}/Items/{tiny}")).await?;
        assert_eq!(film["UserData"]["Played"], true);

        // Next up, with every parameter the section sends.
        let series = lib.id_of("Test Show").await?;
        let episodes = lib.json(&format!("/Shows/{series}/Episodes?userId={uid}")).await?;
        let first = episodes["Items"][0]["Id"].as_str().context("an episode")?.to_owned();
        let second = episodes["Items"][1]["Id"].as_str().context("an episode")?.to_owned();
        lib.server.post(&format!("/Users/{uid}/PlayedItems/{first}"), Some(&lib.auth), None).await?;
        let next_up = lib.json(&format!(
            "/Shows/NextUp?Limit=24&Fields=PrimaryImageAspectRatio%2CDateCreated%2CPath%2CMediaSourceCount\
             &UserId={uid}&ImageTypeLimit=1&EnableImageTypes=Primary%2CBackdrop%2CBanner%2CThumb\
             &EnableTotalRecordCount=false&DisableFirstEpisode=false\
             &NextUpDateCutoff=2026-01-01T00%3A00%3A00.000Z&EnableResumable=false&EnableRewatching=false"
        )).await?;
        assert_eq!(ids(&next_up), [second.as_str()]);
        assert_eq!(next_up["Items"][0]["SeriesName"], "Test Show");
        assert_eq!(next_up["Items"][0]["Type"], "Episode");

        // Latest per library: a bare array of cards.
        let latest = lib.json(&format!(
            "/Users/{uid}/Items/Latest?Limit=16&Fields=PrimaryImageAspectRatio%2CPath&ImageTypeLimit=1\
             &EnableImageTypes=Primary%2CBackdrop%2CThumb&ParentId={films}"
        )).await?;
        let latest_names: Vec<&str> = latest.as_array().context("a bare array")?
            .iter().filter_map(|i| i["Name"].as_str()).collect();
        assert_eq!(latest_names.len(), 2);
        assert!(latest_names.contains(&"Tiny Planet") && latest_names.contains(&"Big Buck Test"));
        Ok(())
    }

    async fn a_library_page_sorts_filters_pages_and_picks_letters_like_the_web_client(lib) {
        let uid = lib.user_id();
        let films = lib.library_id(FILMS).await?;
        let base = format!(
            "/Users/{uid}/Items?SortBy=SortName%2CProductionYear&SortOrder=Ascending&IncludeItemTypes=Movie\
             &Recursive=true&Fields=PrimaryImageAspectRatio%2CMediaSourceCount&ImageTypeLimit=1\
             &EnableImageTypes=Primary%2CBackdrop%2CBanner%2CThumb&ParentId={films}"
        );
        let all = lib.json(&format!("{base}&StartIndex=0&Limit=100")).await?;
        assert_eq!(names(&all), ["Big Buck Test", "Tiny Planet"]);
        assert_eq!(all["TotalRecordCount"], 2);

        let second_page = lib.json(&format!("{base}&StartIndex=1&Limit=1")).await?;
        assert_eq!(names(&second_page), ["Tiny Planet"]);
        assert_eq!(second_page["TotalRecordCount"], 2);
        assert_eq!(second_page["StartIndex"], 1);

        let newest_first = lib.json(&format!(
            "/Users/{uid}/Items?SortBy=ProductionYear%2CSortName&SortOrder=Descending&IncludeItemTypes=Movie&Recursive=true&ParentId={films}"
        )).await?;
        assert_eq!(names(&newest_first), ["Tiny Planet", "Big Buck Test"]);

        // The A–Z picker: a letter, and `#` for names before A.
        let t = lib.json(&format!("{base}&StartIndex=0&Limit=100&NameStartsWith=T")).await?;
        assert_eq!(names(&t), ["Tiny Planet"]);
        let lowercase = lib.json(&format!("{base}&NameStartsWith=b")).await?;
        assert_eq!(names(&lowercase), ["Big Buck Test"]);
        let hash = lib.json(&format!("{base}&NameLessThan=A")).await?;
        assert_eq!(hash["TotalRecordCount"], 0);

        // Filters: years, favourites, genres (none stored, so nothing matches).
        let y2019 = lib.json(&format!("{base}&Years=2019")).await?;
        assert_eq!(names(&y2019), ["Big Buck Test"]);
        let tiny = lib.id_of("Tiny Planet").await?;
        let reply = lib.server.post(&format!("/Users/{uid}/FavoriteItems/{tiny}"), Some(&lib.auth), None).await?;
        assert_eq!(reply.status, StatusCode::OK);
        let favourites = lib.json(&format!("{base}&Filters=IsFavorite")).await?;
        assert_eq!(names(&favourites), ["Tiny Planet"]);
        let by_genre = lib.json(&format!("{base}&Genres=Drama")).await?;
        assert_eq!(by_genre["TotalRecordCount"], 0);

        // The filter dialog's choices and the genres tab.
        let choices = lib.json(&format!("/Items/Filters?UserId={uid}&ParentId={films}&IncludeItemTypes=Movie")).await?;
        assert_eq!(choices["Years"], json!([2021, 2019]));
        assert_eq!(choices["Genres"], json!([]));
        let genres = lib.json(&format!(
            "/Genres?SortBy=SortName&SortOrder=Ascending&IncludeItemTypes=Movie&Recursive=true\
             &EnableTotalRecordCount=false&ParentId={films}&userId={uid}"
        )).await?;
        assert_eq!(genres["Items"], json!([]));
        assert_eq!(genres["TotalRecordCount"], 0);
        let studios = lib.json(&format!("/Studios?ParentId={films}&userId={uid}")).await?;
        assert_eq!(studios["Items"], json!([]));
        let suggestions = lib.json(&format!(
            "/Movies/Recommendations?userId={uid}&categoryLimit=6&ItemLimit=8&Fields=PrimaryImageAspectRatio&ParentId={films}"
        )).await?;
        assert_eq!(suggestions, json!([]));
        Ok(())
    }

    async fn an_item_page_gets_similar_items_and_empty_extras_instead_of_404s(lib) {
        let uid = lib.user_id();
        let tiny = lib.id_of("Tiny Planet").await?;
        let big = lib.id_of("Big Buck Test").await?;
        let item = lib.json(&format!("/Users/{uid}/Items/{tiny}")).await?;
        assert_eq!(item["Name"], "Tiny Planet");
        assert!(item["MediaSources"].is_array());

        let similar = lib.json(&format!(
            "/Items/{tiny}/Similar?userId={uid}&limit=12&fields=PrimaryImageAspectRatio%2CCanDelete"
        )).await?;
        assert_eq!(ids(&similar), [big.as_str()], "the other film, never the film itself");
        let series = lib.id_of("Test Show").await?;
        let show_similar = lib.json(&format!("/Items/{series}/Similar?userId={uid}&limit=12")).await?;
        assert_eq!(show_similar["TotalRecordCount"], 0, "the only series has nothing similar");

        let theme = lib.json(&format!("/Items/{tiny}/ThemeMedia?userId={uid}&InheritFromParent=true")).await?;
        for key in ["ThemeVideosResult", "ThemeSongsResult", "SoundtrackSongsResult"] {
            assert_eq!(theme[key]["Items"], json!([]), "{key}");
            assert_eq!(theme[key]["OwnerId"], tiny.as_str());
        }
        let intros = lib.json(&format!("/Users/{uid}/Items/{tiny}/Intros")).await?;
        assert_eq!(intros["Items"], json!([]));
        assert_eq!(lib.json(&format!("/Items/{tiny}/Intros?userId={uid}")).await?["TotalRecordCount"], 0);
        assert_eq!(lib.json(&format!("/Items/{tiny}/SpecialFeatures?userId={uid}")).await?, json!([]));
        assert_eq!(lib.json(&format!("/Users/{uid}/Items/{tiny}/SpecialFeatures")).await?, json!([]));
        assert_eq!(lib.json(&format!("/Items/{tiny}/LocalTrailers?userId={uid}")).await?, json!([]));

        let missing = "0123456789abcdef0123456789abcdef";
        lib.get(&format!("/Items/{missing}/Similar")).await?.assert_error(StatusCode::NOT_FOUND)?;
        lib.get(&format!("/Items/{missing}/ThemeMedia")).await?.assert_error(StatusCode::NOT_FOUND)?;
        lib.get("/Items/not-an-id/Similar").await?.assert_error(StatusCode::BAD_REQUEST)?;

        // Search: items match; the people and artists rows come back empty.
        let search = lib.json(&format!(
            "/Items?userId={uid}&searchTerm=tiny&limit=100&fields=PrimaryImageAspectRatio%2CCanDelete\
             &recursive=true&enableTotalRecordCount=false&imageTypeLimit=1&includeItemTypes=Movie"
        )).await?;
        assert_eq!(names(&search), ["Tiny Planet"]);
        let people = lib.json(&format!("/Persons?userId={uid}&searchTerm=tiny&limit=100")).await?;
        assert_eq!(people["Items"], json!([]));
        let artists = lib.json(&format!("/Artists?userId={uid}&searchTerm=tiny&limit=100")).await?;
        assert_eq!(artists["Items"], json!([]));
        Ok(())
    }

    async fn the_player_learns_it_is_on_the_local_network_and_can_time_a_download(lib) {
        let endpoint = lib.json("/System/Endpoint").await?;
        assert!(endpoint["IsLocal"].is_boolean() && endpoint["IsInNetwork"].is_boolean());
        let reply = lib.get("/Playback/BitrateTest?size=500000").await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body.len(), 500_000);
        assert_eq!(reply.headers[header::CONTENT_TYPE], "application/octet-stream");
        assert!(reply.body.iter().any(|b| *b != 0), "random bytes, not zeros");
        lib.get("/Playback/BitrateTest?size=0").await?.assert_error(StatusCode::BAD_REQUEST)?;
        lib.get("/Playback/BitrateTest?size=100000001").await?.assert_error(StatusCode::BAD_REQUEST)?;
        lib.server.get("/Playback/BitrateTest?size=10", None).await?.assert_error(StatusCode::UNAUTHORIZED)?;

        let branding = lib.server.get("/Branding/Configuration", None).await?;
        assert_eq!(branding.status, StatusCode::OK);
        let branding = branding.json()?;
        assert_eq!(branding["SplashscreenEnabled"], false);
        assert!(branding["LoginDisclaimer"].is_string() && branding["CustomCss"].is_string());
        assert_eq!(lib.server.get("/Branding/Css", None).await?.status, StatusCode::NO_CONTENT);
        Ok(())
    }

    async fn a_user_saves_their_configuration_and_home_views_follow_it(lib) {
        let uid = lib.user_id();
        let films = lib.library_id(FILMS).await?;
        let user = lib.json(&format!("/Users/{uid}")).await?;
        let mut config = user["Configuration"].clone();
        assert_eq!(config["SubtitleMode"], "Default");
        let shows = lib.library_id(crate::library::SHOWS).await?;
        config["OrderedViews"] = json!([shows, films]);
        config["SubtitleLanguagePreference"] = json!("fra");
        let reply = lib.server.post(&format!("/Users/{uid}/Configuration"), Some(&lib.auth), Some(config)).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{reply:?}");
        let user = lib.json("/Users/Me").await?;
        assert_eq!(user["Configuration"]["SubtitleLanguagePreference"], "fra");
        let views = lib.json(&format!("/UserViews?userId={uid}")).await?;
        assert_eq!(ids(&views), [shows.clone(), films.clone()]);

        let mut config = user["Configuration"].clone();
        config["MyMediaExcludes"] = json!([shows]);
        lib.server.post(&format!("/Users/{uid}/Configuration"), Some(&lib.auth), Some(config)).await?;
        assert_eq!(ids(&lib.json(&format!("/Users/{uid}/Views")).await?), [films]);
        Ok(())
    }

    async fn the_dashboard_pages_read_tasks_libraries_and_settings_and_run_a_scan(lib) {
        let admin = admin_auth(&lib).await?;
        let get = |uri: &'static str| admin_json(&lib, &admin, uri);
        let config = get("/System/Configuration").await?;
        assert_eq!(config["ServerName"], "Test Den");
        assert_eq!(config["QuickConnectAvailable"], true);
        let mut changed = config.clone();
        changed["UICulture"] = json!("de");
        let reply = lib.server.post("/System/Configuration", Some(&admin), Some(changed)).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(get("/System/Configuration").await?["UICulture"], "de");
        lib.server.post("/System/Configuration", Some(&lib.auth), Some(json!({}))).await?
            .assert_error(StatusCode::FORBIDDEN)?;

        let tasks = get("/ScheduledTasks?isHidden=false").await?;
        let scan = tasks.as_array().context("a list")?.iter()
            .find(|t| t["Key"] == "RefreshLibrary").context("the library scan task")?.clone();
        assert_eq!(scan["State"], "Idle");
        assert_eq!(scan["Category"], "Library");
        let task_id = scan["Id"].as_str().context("an id")?;
        let reply = lib.server.post(&format!("/ScheduledTasks/Running/{task_id}"), Some(&admin), None).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        let jobs = lib.server.state.store.jobs_of_kind(ephyra_server::jobs::LIBRARY_SCAN).await?;
        assert_eq!(jobs.len(), 1, "Scan all libraries enqueued the scan job");
        lib.server.post(&format!("/ScheduledTasks/Running/{task_id}"), Some(&lib.auth), None).await?
            .assert_error(StatusCode::FORBIDDEN)?;
        lib.server.post("/ScheduledTasks/Running/00000000000000000000000000000000", Some(&admin), None).await?
            .assert_error(StatusCode::NOT_FOUND)?;

        let folders = get("/Library/VirtualFolders").await?;
        let folders = folders.as_array().context("a list")?;
        assert_eq!(folders.len(), 2);
        assert_eq!(folders[0]["Name"], FILMS);
        assert_eq!(folders[0]["CollectionType"], "movies");
        assert_eq!(folders[0]["Locations"][0], lib.films_dir.to_string_lossy().as_ref());
        assert_eq!(folders[0]["RefreshStatus"], "Idle");

        let devices = get("/Devices").await?;
        assert!(devices["TotalRecordCount"].as_u64().unwrap_or(0) >= 2, "{devices}");
        assert!(devices["Items"].as_array().unwrap().iter().any(|d| d["Id"] == "dev-viewer"));
        assert_eq!(get("/Plugins").await?, json!([]));
        assert_eq!(get("/Packages").await?, json!([]));
        assert_eq!(get("/Auth/Keys").await?["Items"], json!([]));
        assert_eq!(get("/System/ActivityLog/Entries?startIndex=0&limit=7&hasUserId=false").await?["TotalRecordCount"], 0);
        let cultures = get("/Localization/Cultures").await?;
        assert!(cultures.as_array().unwrap().iter().any(|c| c["ThreeLetterISOLanguageName"] == "eng"));
        let countries = get("/Localization/Countries").await?;
        assert!(countries.as_array().unwrap().iter().any(|c| c["TwoLetterISORegionName"] == "US"));
        assert!(get("/Localization/Options").await?.as_array().is_some_and(|o| !o.is_empty()));
        assert!(get("/Localization/ParentalRatings").await?.as_array().is_some_and(|o| !o.is_empty()));
        lib.get("/ScheduledTasks").await?.assert_error(StatusCode::FORBIDDEN)?;
        lib.get("/Devices").await?.assert_error(StatusCode::FORBIDDEN)?;
        Ok(())
    }

    async fn an_administrator_creates_disables_resets_and_deletes_users_and_their_tokens_stop_working(lib) {
        let admin = admin_auth(&lib).await?;
        let created = lib.server.post("/Users/New", Some(&admin), Some(json!({"Name": "guest", "Password": "guest-pass"}))).await?;
        assert_eq!(created.status, StatusCode::OK);
        let guest_id = created.json()?["Id"].as_str().context("an id")?.to_owned();
        let guest_token = lib.server.login_from("guest", "guest-pass", &client_on("dev-guest")).await?;
        let guest = with_token(&guest_token);
        assert_eq!(lib.server.get("/Users/Me", Some(&guest)).await?.status, StatusCode::OK);

        // Disable: the token stops working at once and the login is refused.
        let user = lib.server.get(&format!("/Users/{guest_id}"), Some(&admin)).await?.json()?;
        let mut policy = user["Policy"].clone();
        policy["IsDisabled"] = json!(true);
        let reply = lib.server.post(&format!("/Users/{guest_id}/Policy"), Some(&admin), Some(policy.clone())).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{reply:?}");
        lib.server.get("/Users/Me", Some(&guest)).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        assert!(lib.server.login_from("guest", "guest-pass", &client_on("dev-guest")).await.is_err());
        let listed = lib.server.get(&format!("/Users/{guest_id}"), Some(&admin)).await?.json()?;
        assert_eq!(listed["Policy"]["IsDisabled"], true);
        policy["IsDisabled"] = json!(false);
        lib.server.post(&format!("/Users/{guest_id}/Policy"), Some(&admin), Some(policy)).await?;

        // A user changes their own password: the current one is required; their token stays.
        let guest_token = lib.server.login_from("guest", "guest-pass", &client_on("dev-guest")).await?;
        let guest = with_token(&guest_token);
        let wrong = lib.server.post(&format!("/Users/{guest_id}/Password"), Some(&guest),
            Some(json!({"CurrentPw": "nope", "NewPw": "new-pass"}))).await?;
        wrong.assert_error(StatusCode::FORBIDDEN)?;
        let right = lib.server.post(&format!("/Users/{guest_id}/Password"), Some(&guest),
            Some(json!({"CurrentPw": "guest-pass", "NewPw": "new-pass"}))).await?;
        assert_eq!(right.status, StatusCode::NO_CONTENT, "{right:?}");
        assert_eq!(lib.server.get("/Users/Me", Some(&guest)).await?.status, StatusCode::OK);
        lib.server.login_from("guest", "new-pass", &client_on("dev-guest-2")).await?;

        // The administrator resets it: every token of the user is revoked; no password now.
        let reset = lib.server.post(&format!("/Users/{guest_id}/Password"), Some(&admin),
            Some(json!({"ResetPassword": true}))).await?;
        assert_eq!(reset.status, StatusCode::NO_CONTENT);
        lib.server.get("/Users/Me", Some(&guest)).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        let guest_token = lib.server.login_from("guest", "", &client_on("dev-guest")).await?;
        let guest = with_token(&guest_token);

        // Only administrators manage users; nobody removes the last administrator or themself.
        lib.server.post(&format!("/Users/{}/Policy", lib.user_id()), Some(&guest), Some(json!({"IsDisabled": true}))).await?
            .assert_error(StatusCode::FORBIDDEN)?;
        let me = lib.server.get("/Users/Me", Some(&admin)).await?.json()?;
        let admin_id = me["Id"].as_str().context("an id")?;
        lib.server.post(&format!("/Users/{admin_id}/Policy"), Some(&admin), Some(json!({"IsAdministrator": false}))).await?
            .assert_error(StatusCode::BAD_REQUEST)?;
        let delete_self = lib.server.send(request(Method::DELETE, &format!("/Users/{admin_id}"), Some(&admin), None)?).await?;
        delete_self.assert_error(StatusCode::BAD_REQUEST)?;

        // Delete: gone, and so is its token.
        let deleted = lib.server.send(request(Method::DELETE, &format!("/Users/{guest_id}"), Some(&admin), None)?).await?;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        lib.server.get("/Users/Me", Some(&guest)).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        lib.server.get(&format!("/Users/{guest_id}"), Some(&admin)).await?.assert_error(StatusCode::NOT_FOUND)?;
        let again = lib.server.send(request(Method::DELETE, &format!("/Users/{guest_id}"), Some(&admin), None)?).await?;
        again.assert_error(StatusCode::NOT_FOUND)?;
        Ok(())
    }
}

// ----- the web client's files ------------------------------------------------------------

/// A stand-in for a built jellyfin-web `dist/`: the file names and shapes that matter to
/// serving (mixed case, hashed chunks, a main bundle referenced with `?hash`).
fn fake_dist(root: &Path) -> Result<()> {
    let dist = root.join("dist");
    std::fs::create_dir_all(dist.join("themes/appleTv"))?;
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html><title>Jellyfin</title>",
    )?;
    std::fs::write(dist.join("config.json"), r#"{"multiserver":false}"#)?;
    std::fs::write(
        dist.join("main.jellyfin.bundle.js"),
        "console.log('jellyfin');\n".repeat(200),
    )?;
    std::fs::write(
        dist.join("node_modules.0123456789abcdef0123.chunk.js"),
        "export{};",
    )?;
    std::fs::write(dist.join("themes/appleTv/theme.css"), "body{color:#000}")?;
    std::fs::write(root.join("secret.txt"), "not for clients")?;
    Ok(())
}

async fn web_server(provider: Provider, with_dir: bool) -> Result<(TestServer, tempfile::TempDir)> {
    let media = tempfile::tempdir()?;
    fake_dist(media.path())?;
    let data = tempfile::tempdir()?;
    let mut config = test_config(provider, data.path()).await?;
    if with_dir {
        config.web.dir = Some(media.path().join("dist"));
    }
    Ok((TestServer::from_config(config, data).await?, media))
}

fn get_with(uri: &str, headers: &[(&str, &str)]) -> Result<Request<Body>> {
    let mut builder = Request::builder().method(Method::GET).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    Ok(builder.body(Body::empty())?)
}

#[tokio::test]
async fn the_web_client_is_served_at_web_with_its_file_names_in_their_case_and_caching_by_kind()
-> Result<()> {
    let (server, _media) = web_server(Provider::Sqlite, true).await?;
    let root = server.get("/", None).await?;
    assert!(root.status.is_redirection());
    assert_eq!(root.headers[header::LOCATION], "/web/");

    let index = server.get("/web/", None).await?;
    assert_eq!(index.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&index.body).contains("<title>Jellyfin</title>"));
    assert_eq!(index.headers[header::CACHE_CONTROL], "no-cache");
    let index_html = server.get("/web/index.html", None).await?;
    assert_eq!(index_html.headers[header::CACHE_CONTROL], "no-cache");
    let config = server.get("/web/config.json", None).await?;
    assert_eq!(config.status, StatusCode::OK);
    assert_eq!(config.headers[header::CACHE_CONTROL], "no-cache");

    // Mixed-case names are found as asked: the API's lowercasing does not touch /web/.
    let theme = server.get("/web/themes/appleTv/theme.css", None).await?;
    assert_eq!(theme.status, StatusCode::OK);
    assert_eq!(theme.headers[header::CONTENT_TYPE], "text/css");
    let hashed = server
        .get("/web/node_modules.0123456789abcdef0123.chunk.js", None)
        .await?;
    assert_eq!(
        hashed.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let bundle = server
        .get("/web/main.jellyfin.bundle.js?0a1b2c3d4e5f", None)
        .await?;
    assert_eq!(
        bundle.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );

    // Compressed for browsers that accept it.
    let gz = server
        .send(get_with(
            "/web/main.jellyfin.bundle.js?0a1b",
            &[("accept-encoding", "gzip")],
        )?)
        .await?;
    assert_eq!(gz.status, StatusCode::OK);
    assert_eq!(gz.headers[header::CONTENT_ENCODING], "gzip");
    assert!(
        gz.body.len() < 200 * 25,
        "compressed: {} bytes",
        gz.body.len()
    );

    assert_eq!(
        server.get("/web/nothing-here.js", None).await?.status,
        StatusCode::NOT_FOUND
    );
    // The API still answers beside it, in any case.
    assert_eq!(
        server.get("/System/Info/Public", None).await?.status,
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn paths_that_climb_out_of_the_web_folder_are_refused() -> Result<()> {
    let (server, _media) = web_server(Provider::Sqlite, true).await?;
    for uri in [
        "/web/../secret.txt",
        "/web/%2e%2e/secret.txt",
        "/web/..%2fsecret.txt",
        "/web/themes/../../secret.txt",
        "/web/%2fetc%2fpasswd",
    ] {
        let reply = server.send(get_with(uri, &[])?).await?;
        assert!(
            reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::BAD_REQUEST,
            "{uri}: {reply:?}"
        );
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("not for clients"),
            "{uri} leaked the file"
        );
    }
    Ok(())
}

#[tokio::test]
async fn without_a_web_folder_web_says_how_to_add_one() -> Result<()> {
    let (server, _media) = web_server(Provider::Sqlite, false).await?;
    let reply = server.get("/web/", None).await?;
    assert_eq!(reply.status, StatusCode::OK);
    let page = String::from_utf8_lossy(&reply.body);
    assert!(page.contains("EPHYRA_WEB_DIR"), "{page}");
    assert!(server.get("/web/index.html", None).await?.status == StatusCode::OK);
    Ok(())
}

//! Playback reports and Jellyfin's resume rules at each threshold, in both route styles, with
//! partial bodies and bad input.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::library::{FILMS, Scanned, names};
use crate::support::request;
use crate::with_library_on_both_providers;

const SECOND: i64 = 10_000_000;
/// A 100-minute film, long enough for resume points (the sample videos are 12 s).
const LONG: i64 = 100 * 60 * SECOND;

/// Adds a 100-minute film to the films library straight in the store (the sample videos are
/// too short for resume points); returns its id. It is never streamed.
async fn long_film(lib: &Scanned) -> anyhow::Result<String> {
    use ephyra_server::store::items::{ItemKind, NewItem};
    let ids = lib.server.state.store.ids();
    let path = lib.films_dir.join("Long Film (1999).mkv");
    let id = ids.file_item(FILMS, &path);
    let item = NewItem {
        id,
        library_id: ids.library(FILMS),
        parent_id: None,
        kind: ItemKind::Movie,
        name: "Long Film".to_owned(),
        sort_name: "long film".to_owned(),
        path: Some(path),
        series_id: None,
        season_id: None,
        index_number: None,
        parent_index_number: None,
        production_year: Some(1999),
        run_time_ticks: Some(LONG),
        container: Some("mkv".to_owned()),
        size_bytes: Some(1),
        bitrate: Some(1),
        file_mtime: Some(1),
        probe_error: None,
    };
    lib.server
        .state
        .store
        .upsert_items(&[(item, Some(Vec::new()))])
        .await?;
    Ok(id.to_n())
}

async fn report(lib: &Scanned, what: &str, body: Value) -> anyhow::Result<crate::support::Reply> {
    lib.server
        .post(
            &format!("/Sessions/Playing{what}"),
            Some(&lib.auth),
            Some(body),
        )
        .await
}

async fn user_data(lib: &Scanned, id: &str) -> anyhow::Result<Value> {
    Ok(lib.json(&format!("/Items/{id}")).await?["UserData"].clone())
}

with_library_on_both_providers! {
    async fn a_start_counts_a_play_and_records_when(lib) {
        let id = lib.id_of("Big Buck Test").await?;
        let reply = report(&lib, "", json!({"ItemId": id, "PositionTicks": 0, "PlayMethod": "DirectPlay",
                                             "PlaySessionId": "abc", "CanSeek": true})).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        let data = user_data(&lib, &id).await?;
        assert_eq!(data["PlayCount"], 1);
        assert!(data["LastPlayedDate"].as_str().unwrap().ends_with('Z'));
        assert_eq!(data["Played"], false);
        // The legacy and path-style starts count too.
        let user = lib.user_id();
        let reply = lib.server.post(&format!("/Users/{user}/PlayingItems/{id}"), Some(&lib.auth), None).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        let reply = lib.server.post(&format!("/PlayingItems/{id}"), Some(&lib.auth), None).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(user_data(&lib, &id).await?["PlayCount"], 3);
        Ok(())
    }

    async fn progress_follows_the_resume_thresholds(lib) {
        let id = long_film(&lib).await?;
        let at = |ticks: i64| json!({"ItemId": id, "PositionTicks": ticks, "IsPaused": false, "EventName": "timeupdate"});

        // Under 5 %: no resume point.
        assert_eq!(report(&lib, "/Progress", at(LONG * 4 / 100)).await?.status, StatusCode::NO_CONTENT);
        let data = user_data(&lib, &id).await?;
        assert_eq!(data["PlaybackPositionTicks"], 0);
        assert_eq!(data["Played"], false);

        // In between: the position is kept and the film is in Continue watching.
        let middle = LONG / 2;
        report(&lib, "/Progress", at(middle)).await?;
        let data = user_data(&lib, &id).await?;
        assert_eq!(data["PlaybackPositionTicks"], middle);
        assert_eq!(data["PlayedPercentage"], 50.0);
        let resume = lib.json(&format!("/UserItems/Resume?userId={}", lib.user_id())).await?;
        assert_eq!(names(&resume), ["Long Film"]);
        let legacy = lib.json(&format!("/Users/{}/Items/Resume", lib.user_id())).await?;
        assert_eq!(names(&legacy), ["Long Film"]);
        let python_style = lib.json(&format!(
            "/Users/{}/Items?Filters=IsResumable&SortBy=DatePlayed&SortOrder=Descending&Recursive=True",
            lib.user_id()
        )).await?;
        assert_eq!(names(&python_style), ["Long Film"]);

        // Exactly 5 % is already a resume point.
        report(&lib, "/Progress", at(LONG * 5 / 100)).await?;
        assert_eq!(user_data(&lib, &id).await?["PlaybackPositionTicks"], LONG * 5 / 100);

        // Over 90 %: played, no resume point, gone from Continue watching.
        report(&lib, "/Stopped", at(LONG * 91 / 100)).await?;
        let data = user_data(&lib, &id).await?;
        assert_eq!(data["Played"], true);
        assert_eq!(data["PlaybackPositionTicks"], 0);
        let resume = lib.json("/UserItems/Resume").await?;
        assert_eq!(resume["TotalRecordCount"], 0);
        Ok(())
    }

    async fn within_a_second_of_the_end_counts_as_played(lib) {
        let id = long_film(&lib).await?;
        // A start un-marks played (Jellyfin does, for items that can resume).
        report(&lib, "", json!({"ItemId": id})).await?;
        report(&lib, "/Progress", json!({"ItemId": id, "PositionTicks": LONG - SECOND / 2})).await?;
        let data = user_data(&lib, &id).await?;
        assert_eq!(data["Played"], true);
        assert_eq!(data["PlaybackPositionTicks"], 0);
        report(&lib, "", json!({"ItemId": id})).await?;
        assert_eq!(user_data(&lib, &id).await?["Played"], false);
        Ok(())
    }

    async fn an_item_shorter_than_five_minutes_stopped_midway_counts_as_played(lib) {
        let id = lib.id_of("Tiny Planet").await?;
        report(&lib, "", json!({"ItemId": id})).await?;
        report(&lib, "/Stopped", json!({"ItemId": id, "PositionTicks": 6 * SECOND})).await?;
        let data = user_data(&lib, &id).await?;
        assert_eq!(data["Played"], true);
        assert_eq!(data["PlaybackPositionTicks"], 0);
        Ok(())
    }

    async fn a_stop_without_a_position_counts_as_played_and_a_failed_one_changes_nothing(lib) {
        let id = long_film(&lib).await?;
        report(&lib, "/Progress", json!({"ItemId": id, "PositionTicks": LONG / 3})).await?;
        let reply = report(&lib, "/Stopped", json!({"ItemId": id, "Failed": true, "PositionTicks": LONG / 2})).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(user_data(&lib, &id).await?["PlaybackPositionTicks"], LONG / 3);

        report(&lib, "/Stopped", json!({"ItemId": id, "PlaySessionId": "x"})).await?;
        let data = user_data(&lib, &id).await?;
        assert_eq!(data["Played"], true);
        assert_eq!(data["PlaybackPositionTicks"], 0);
        assert_eq!(data["PlayCount"], 1);
        Ok(())
    }

    async fn legacy_progress_and_stop_take_the_position_from_the_query(lib) {
        let id = long_film(&lib).await?;
        let user = lib.user_id();
        let reply = lib.server.post(
            &format!("/Users/{user}/PlayingItems/{id}/Progress?PositionTicks={}", LONG / 4),
            Some(&lib.auth), None).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(user_data(&lib, &id).await?["PlaybackPositionTicks"], LONG / 4);
        let reply = lib.server.send(request(
            Method::DELETE, &format!("/Users/{user}/PlayingItems/{id}?positionTicks={}", LONG / 3),
            Some(&lib.auth), None)?).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(user_data(&lib, &id).await?["PlaybackPositionTicks"], LONG / 3);
        let reply = lib.server.post(
            &format!("/PlayingItems/{id}/Progress?positionTicks={}", LONG / 5),
            Some(&lib.auth), None).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(user_data(&lib, &id).await?["PlaybackPositionTicks"], LONG / 5);
        Ok(())
    }

    async fn bad_reports_are_refused_and_write_nothing(lib) {
        let id = long_film(&lib).await?;
        report(&lib, "/Progress", json!({"ItemId": id, "PositionTicks": LONG / 2})).await?;
        let before = user_data(&lib, &id).await?;

        report(&lib, "/Progress", json!({"PositionTicks": 5})).await?.assert_error(StatusCode::BAD_REQUEST)?;
        report(&lib, "/Progress", json!({"ItemId": "../../etc", "PositionTicks": 5})).await?.assert_error(StatusCode::BAD_REQUEST)?;
        report(&lib, "/Progress", json!({"ItemId": id, "PositionTicks": "many"})).await?.assert_error(StatusCode::BAD_REQUEST)?;
        report(&lib, "/Stopped", json!({"ItemId": "0123456789abcdef0123456789abcdef"})).await?.assert_error(StatusCode::NOT_FOUND)?;
        let series = lib.id_of("Test Show").await?;
        report(&lib, "", json!({"ItemId": series})).await?.assert_error(StatusCode::NOT_FOUND)?;
        let raw = lib.server.send(
            http::Request::post("/Sessions/Playing/Progress")
                .header("Authorization", &lib.auth)
                .body(axum::body::Body::from("{not json"))?,
        ).await?;
        raw.assert_error(StatusCode::BAD_REQUEST)?;
        let anonymous = lib.server.post("/Sessions/Playing/Progress", None,
            Some(json!({"ItemId": id, "PositionTicks": 1}))).await?;
        anonymous.assert_error(StatusCode::UNAUTHORIZED)?;
        assert_eq!(user_data(&lib, &id).await?, before);

        // A partial body with keys Ephyra does not know is fine; a position as a string too.
        let reply = report(&lib, "/Progress", json!({"itemId": id, "positionTicks": (LONG / 4).to_string(),
                                                     "EventName": "pause", "NowPlayingQueue": [], "Shiny": 1})).await?;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(user_data(&lib, &id).await?["PlaybackPositionTicks"], LONG / 4);
        let ping = lib.server.post("/Sessions/Playing/Ping?playSessionId=abc", Some(&lib.auth), None).await?;
        assert_eq!(ping.status, StatusCode::NO_CONTENT);
        Ok(())
    }

    async fn played_marks_accept_a_date_and_can_be_undone(lib) {
        let id = long_film(&lib).await?;
        report(&lib, "/Progress", json!({"ItemId": id, "PositionTicks": LONG / 2})).await?;
        let user = lib.user_id();
        let reply = lib.server.post(
            &format!("/Users/{user}/PlayedItems/{id}?DatePlayed=2024-01-01T00:00:00.0000000Z"),
            Some(&lib.auth), None).await?;
        assert_eq!(reply.status, StatusCode::OK);
        let data = reply.json()?;
        assert_eq!(data["Played"], true);
        assert_eq!(data["PlaybackPositionTicks"], 0);
        assert_eq!(data["LastPlayedDate"], "2024-01-01T00:00:00.0000000Z");
        assert_eq!(data["ItemId"], id.as_str());

        let undone = lib.server.send(request(Method::DELETE, &format!("/UserPlayedItems/{id}"), Some(&lib.auth), None)?).await?;
        assert_eq!(undone.json()?["Played"], false);
        let current = lib.json(&format!("/UserItems/{id}/UserData")).await?;
        assert_eq!(current["Played"], false);
        lib.server.post(&format!("/UserPlayedItems/{id}?DatePlayed=yesterday"), Some(&lib.auth), None)
            .await?.assert_error(StatusCode::BAD_REQUEST)?;
        Ok(())
    }
}

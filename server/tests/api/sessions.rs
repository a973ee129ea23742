//! `/Sessions/Capabilities[/Full]`, `/Sessions`, `/Sessions/Logout`.

use http::StatusCode;
use serde_json::json;

use crate::on_both_providers;
use crate::support::{has_no_nulls, with_token};

on_both_providers! {
    async fn capabilities_are_recorded_from_a_partial_body_or_the_query(server) {
        let (viewer, token) = server.viewer().await?;
        let auth = with_token(&token);
        // WEB posts the full form with keys Ephyra does not use; they are ignored.
        let full = server
            .post("/Sessions/Capabilities/Full", Some(&auth), Some(json!({
                "playableMediaTypes": ["Video", "Audio"],
                "SupportedCommands": ["Play", "DisplayMessage"],
                "SupportsMediaControl": true,
                "DeviceProfile": {"MaxStreamingBitrate": 120000000},
                "AppStoreUrl": "x",
            })))
            .await?;
        assert_eq!(full.status, StatusCode::NO_CONTENT, "{full:?}");
        let sessions = server.get("/Sessions", Some(&auth)).await?.json()?;
        let mine = &sessions.as_array().unwrap()[0];
        assert_eq!(mine["UserId"], viewer.id.to_n());
        assert_eq!(mine["PlayableMediaTypes"], json!(["Video", "Audio"]));
        assert_eq!(mine["SupportsMediaControl"], true);
        assert!(has_no_nulls(&sessions));
        let device = server.state.store.device(viewer.id, "dev-viewer").await?.unwrap();
        assert!(device.capabilities.unwrap().contains("DisplayMessage"));

        let short = server
            .post("/Sessions/Capabilities?playableMediaTypes=Audio&supportedCommands=Play,Pause&SupportsMediaControl=False", Some(&auth), None)
            .await?;
        assert_eq!(short.status, StatusCode::NO_CONTENT);
        let sessions = server.get("/sessions", Some(&auth)).await?.json()?;
        assert_eq!(sessions[0]["PlayableMediaTypes"], json!(["Audio"]));
        assert_eq!(sessions[0]["SupportedCommands"], json!(["Play", "Pause"]));
        // An empty body is a partial body too.
        let empty = server.post("/Sessions/Capabilities/Full", Some(&auth), None).await?;
        assert_eq!(empty.status, StatusCode::NO_CONTENT);
        Ok(())
    }

    async fn a_user_sees_only_its_own_sessions_and_an_administrator_sees_all(server) {
        let (_, admin_token) = server.admin().await?;
        let (viewer, viewer_token) = server.viewer().await?;
        let mine = server.get("/Sessions", Some(&with_token(&viewer_token))).await?.json()?;
        assert!(mine.as_array().unwrap().iter().all(|s| s["UserId"] == viewer.id.to_n()));
        let all = server.get("/Sessions", Some(&with_token(&admin_token))).await?.json()?;
        assert_eq!(all.as_array().unwrap().len(), 2);
        server.get("/Sessions", None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        Ok(())
    }

    async fn logout_revokes_the_token_and_only_that_token(server) {
        server.user("alice", "pw", false).await?;
        let tv = server.login_from("alice", "pw", &crate::support::client_on("tv")).await?;
        let phone = server.login_from("alice", "pw", &crate::support::client_on("phone")).await?;
        let out = server.post("/Sessions/Logout", Some(&with_token(&tv)), None).await?;
        assert_eq!(out.status, StatusCode::NO_CONTENT);
        server.get("/Users/Me", Some(&with_token(&tv))).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        server.post("/Sessions/Logout", Some(&with_token(&tv)), None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        assert_eq!(server.get("/Users/Me", Some(&with_token(&phone))).await?.status, StatusCode::OK);
        Ok(())
    }

    async fn capability_endpoints_need_a_token(server) {
        server.post("/Sessions/Capabilities/Full", None, Some(json!({}))).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        server.post("/Sessions/Capabilities", None, None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        server.post("/Sessions/Logout", None, None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        Ok(())
    }
}

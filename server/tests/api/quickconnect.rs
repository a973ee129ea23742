//! QuickConnect: enabled, initiate, connect (poll), authorize, authenticate.

use http::StatusCode;
use serde_json::json;

use crate::on_both_providers;
use crate::support::{Provider, TestServer, client_on, has_no_nulls, with_token};

on_both_providers! {
    async fn a_device_signs_in_with_a_code_typed_on_a_signed_in_device(server) {
        let (viewer, viewer_token) = server.viewer().await?;
        assert_eq!(server.get("/QuickConnect/Enabled", None).await?.json()?, json!(true));

        let tv = client_on("living-room-tv");
        let started = server.post("/QuickConnect/Initiate", Some(&tv), None).await?;
        assert_eq!(started.status, StatusCode::OK, "{started:?}");
        let started = started.json()?;
        for key in ["Authenticated", "Secret", "Code", "DeviceId", "DeviceName", "AppName", "AppVersion", "DateAdded"] {
            assert!(!started[key].is_null(), "QuickConnectResult lacks {key}");
        }
        assert!(has_no_nulls(&started));
        assert_eq!(started["Authenticated"], false);
        assert_eq!(started["DeviceId"], "living-room-tv");
        let secret = started["Secret"].as_str().unwrap().to_owned();
        let code = started["Code"].as_str().unwrap().to_owned();
        assert_eq!(secret.len(), 64);
        assert!(secret.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
        assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()));

        // The web client polls with a capital S.
        let polled = server.get(&format!("/QuickConnect/Connect?Secret={secret}"), None).await?.json()?;
        assert_eq!(polled["Authenticated"], false);
        server.post("/Users/AuthenticateWithQuickConnect", None, Some(json!({"Secret": secret})))
            .await?.assert_error(StatusCode::UNAUTHORIZED)?;

        let approved = server
            .post(&format!("/QuickConnect/Authorize?code={code}"), Some(&with_token(&viewer_token)), None)
            .await?;
        assert_eq!(approved.status, StatusCode::OK);
        assert_eq!(approved.json()?, json!(true));
        let polled = server.get(&format!("/quickconnect/connect?secret={secret}"), None).await?.json()?;
        assert_eq!(polled["Authenticated"], true);

        let login = server
            .post("/Users/AuthenticateWithQuickConnect", None, Some(json!({"secret": secret})))
            .await?;
        assert_eq!(login.status, StatusCode::OK, "{login:?}");
        let login = login.json()?;
        assert_eq!(login["User"]["Id"], viewer.id.to_n());
        assert_eq!(login["ServerId"], server.state.server_id.to_n());
        assert_eq!(login["SessionInfo"]["DeviceId"], "living-room-tv", "token issued to the initiating device");
        let token = login["AccessToken"].as_str().unwrap();
        let me = server.get("/Users/Me", Some(&with_token(token))).await?;
        assert_eq!(me.json()?["Name"], "viewer");
        // The viewer's own token is untouched, and the secret works once.
        assert_eq!(server.get("/Users/Me", Some(&with_token(&viewer_token))).await?.status, StatusCode::OK);
        server.post("/Users/AuthenticateWithQuickConnect", None, Some(json!({"Secret": secret})))
            .await?.assert_error(StatusCode::NOT_FOUND)?;
        Ok(())
    }

    async fn quick_connect_rejects_bad_input(server) {
        let (_, token) = server.viewer().await?;
        server.post("/QuickConnect/Initiate", Some(r#"MediaBrowser Client="x""#), None).await?.assert_error(StatusCode::BAD_REQUEST)?;
        server.get("/QuickConnect/Connect", None).await?.assert_error(StatusCode::BAD_REQUEST)?;
        server.get("/QuickConnect/Connect?secret=ABCDEF", None).await?.assert_error(StatusCode::NOT_FOUND)?;
        server.post("/QuickConnect/Authorize?code=123456", None, None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        server.post("/QuickConnect/Authorize?code=123456", Some(&with_token(&token)), None).await?.assert_error(StatusCode::NOT_FOUND)?;
        server.post("/QuickConnect/Authorize", Some(&with_token(&token)), None).await?.assert_error(StatusCode::BAD_REQUEST)?;
        server.post("/QuickConnect/Authorize?code=1&userId=nothex", Some(&with_token(&token)), None).await?.assert_error(StatusCode::BAD_REQUEST)?;
        server.post("/Users/AuthenticateWithQuickConnect", None, Some(json!({}))).await?.assert_error(StatusCode::BAD_REQUEST)?;
        Ok(())
    }

    async fn a_user_cannot_authorize_quick_connect_for_another_user(server) {
        let (admin, _) = server.admin().await?;
        let (_, token) = server.viewer().await?;
        let started = server.get("/QuickConnect/Initiate", Some(&client_on("tv"))).await?.json()?;
        let code = started["Code"].as_str().unwrap();
        server
            .post(&format!("/QuickConnect/Authorize?code={code}&userId={}", admin.id), Some(&with_token(&token)), None)
            .await?
            .assert_error(StatusCode::FORBIDDEN)?;
        Ok(())
    }
}

#[tokio::test]
async fn disabled_quick_connect_says_so_and_refuses_to_start() -> anyhow::Result<()> {
    let mut server = TestServer::new(Provider::Sqlite).await?;
    server.state = server.state.clone().with_quick_connect(false);
    assert_eq!(
        server.get("/QuickConnect/Enabled", None).await?.json()?,
        json!(false)
    );
    let refused = server
        .post("/QuickConnect/Initiate", Some(&client_on("tv")), None)
        .await?;
    refused.assert_error(StatusCode::UNAUTHORIZED)?;
    assert_eq!(refused.json()?["Message"], "Quick connect is disabled");
    Ok(())
}

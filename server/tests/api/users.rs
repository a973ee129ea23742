//! Login and users: `AuthenticateByName`, `/Users/Me`, `/Users/{id}`, `/Users/Public`,
//! `/Users`, `/Users/New`, the token sources, the failed-login limiter.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use ephyra_server::auth::{LoginPolicy, TrustedProxies};
use http::{Method, Request, StatusCode};
use serde_json::json;
use sqlx::Row as _;

use crate::on_both_providers;
use crate::support::{CLIENT, TestServer, client_on, has_no_nulls, request, with_token};

on_both_providers! {
    async fn login_with_the_right_password_returns_a_token_the_user_a_session_and_the_server_id(server) {
        let user = server.user("Alice", "s3cret", false).await?;
        // The Python client sends `username` in lowercase; unknown keys are ignored.
        let reply = server
            .post(
                "/Users/AuthenticateByName",
                Some(CLIENT),
                Some(json!({"username": "alice", "Pw": "s3cret", "RememberMe": true})),
            )
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        let body = reply.json()?;
        let token = body["AccessToken"].as_str().unwrap();
        assert_eq!(token.len(), 32);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(body["ServerId"], server.state.server_id.to_n());
        assert_eq!(body["User"]["Id"], user.id.to_n());
        assert_eq!(body["User"]["Name"], "Alice");
        assert_eq!(body["User"]["ServerId"], server.state.server_id.to_n());
        assert_eq!(body["User"]["HasPassword"], true);
        assert!(body["User"]["LastLoginDate"].as_str().unwrap().ends_with('Z'));
        let session = &body["SessionInfo"];
        for key in [
            "PlayableMediaTypes", "UserId", "LastActivityDate", "LastPlaybackCheckIn",
            "IsActive", "SupportsMediaControl", "SupportsRemoteControl",
            "HasCustomDeviceName", "SupportedCommands", "Id", "Client", "DeviceId",
            "DeviceName", "ApplicationVersion", "UserName", "ServerId",
        ] {
            assert!(!session[key].is_null(), "SessionInfo lacks {key}");
        }
        assert_eq!(session["Client"], "Ephyra Tests", "header values are URL-decoded");
        assert_eq!(session["DeviceId"], "dev-0001");
        assert!(has_no_nulls(&body));
        let me = server.get("/Users/Me", Some(&with_token(token))).await?;
        assert_eq!(me.status, StatusCode::OK);
        assert_eq!(me.json()?["Id"], user.id.to_n());
        Ok(())
    }

    async fn login_without_the_four_client_fields_is_refused_and_writes_nothing(server) {
        let user = server.user("alice", "pw", false).await?;
        for header in [
            None,
            Some(r#"MediaBrowser Client="x", Device="y", DeviceId="z""#),
            Some(r#"MediaBrowser Client="x", Device="y", Version="1", Token="""#),
            Some("Bearer abc"),
        ] {
            let reply = server
                .post("/Users/AuthenticateByName", header, Some(json!({"Username": "alice", "Pw": "pw"})))
                .await?;
            reply.assert_error(StatusCode::BAD_REQUEST)?;
        }
        let missing = server
            .post("/Users/AuthenticateByName", Some(r#"MediaBrowser Client="x", Device="y", DeviceId="z""#), Some(json!({"Username": "alice", "Pw": "pw"})))
            .await?;
        assert!(missing.json()?["Message"].as_str().unwrap().contains("Version"));
        assert_eq!(server.state.store.count_tokens(user.id).await?, 0);
        Ok(())
    }

    async fn a_wrong_password_or_unknown_user_is_401_and_writes_nothing(server) {
        let user = server.user("alice", "right", false).await?;
        for body in [
            json!({"Username": "alice", "Pw": "wrong"}),
            json!({"Username": "alice"}),
            json!({"Username": "nobody", "Pw": "right"}),
        ] {
            server
                .post("/Users/AuthenticateByName", Some(CLIENT), Some(body))
                .await?
                .assert_error(StatusCode::UNAUTHORIZED)?;
        }
        assert_eq!(server.state.store.count_tokens(user.id).await?, 0);
        let stored = server.state.store.user_by_id(user.id).await?.unwrap();
        assert_eq!(stored.last_login_at, None);
        Ok(())
    }

    async fn a_login_body_that_is_not_json_is_400(server) {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/Users/AuthenticateByName")
            .header("Authorization", CLIENT)
            .body(Body::from("{\"Username\": "))?;
        server.send(req).await?.assert_error(StatusCode::BAD_REQUEST)?;
        let no_name = server.post("/Users/AuthenticateByName", Some(CLIENT), Some(json!({"Pw": "x"}))).await?;
        no_name.assert_error(StatusCode::BAD_REQUEST)?;
        Ok(())
    }

    async fn a_new_login_from_the_same_device_revokes_the_older_token(server) {
        let user = server.user("alice", "pw", false).await?;
        let first = server.login("alice", "pw").await?;
        let second = server.login("alice", "pw").await?;
        assert_ne!(first, second);
        server.get("/Users/Me", Some(&with_token(&first))).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        assert_eq!(server.get("/Users/Me", Some(&with_token(&second))).await?.status, StatusCode::OK);
        let other_device = server.login_from("alice", "pw", &client_on("dev-0002")).await?;
        assert_eq!(server.get("/Users/Me", Some(&with_token(&second))).await?.status, StatusCode::OK);
        assert_eq!(server.get("/Users/Me", Some(&with_token(&other_device))).await?.status, StatusCode::OK);
        assert_eq!(server.state.store.count_tokens(user.id).await?, 2);
        Ok(())
    }

    async fn tokens_are_stored_only_as_hashes(server) {
        server.user("alice", "pw", false).await?;
        let token = server.login("alice", "pw").await?;
        let rows = sqlx::query("SELECT id, token_hash FROM access_tokens")
            .fetch_all(server.state.store.pool())
            .await?;
        assert_eq!(rows.len(), 1);
        let hash: String = rows[0].try_get("token_hash")?;
        let id: String = rows[0].try_get("id")?;
        assert_ne!(hash, token);
        assert_ne!(id, token);
        assert!(!hash.contains(&token));
        assert_eq!(hash, ephyra_server::auth::hash_token(&token));
        Ok(())
    }

    async fn the_token_is_accepted_from_each_of_the_seven_sources(server) {
        server.user("alice", "pw", false).await?;
        let token = server.login("alice", "pw").await?;
        let sources: Vec<(String, Option<(&str, String)>)> = vec![
            ("/Users/Me".into(), Some(("Authorization", format!(r#"MediaBrowser Token="{token}""#)))),
            ("/Users/Me".into(), Some(("Authorization", format!("Emby Token={token}")))),
            ("/Users/Me".into(), Some(("X-Emby-Authorization", format!(r#"MediaBrowser Client="c", Token="{token}""#)))),
            ("/Users/Me".into(), Some(("X-Emby-Token", token.clone()))),
            ("/Users/Me".into(), Some(("X-MediaBrowser-Token", token.clone()))),
            (format!("/Users/Me?ApiKey={token}"), None),
            (format!("/Users/Me?api_key={token}"), None),
            (format!("/users/me?apikey={}", token.to_uppercase()), None),
        ];
        for (uri, header) in sources {
            let mut b = Request::builder().uri(&uri);
            if let Some((name, value)) = &header {
                b = b.header(*name, value);
            }
            let reply = server.send(b.body(Body::empty())?).await?;
            assert_eq!(reply.status, StatusCode::OK, "{uri} {header:?}");
        }
        Ok(())
    }

    async fn malformed_or_unknown_tokens_are_401_never_500(server) {
        server.user("alice", "pw", false).await?;
        let headers = [
            "MediaBrowser",
            "MediaBrowser Token",
            "MediaBrowser Token=\"",
            "MediaBrowser Token=\"\"",
            "MediaBrowser Token=\"%ZZ%\"",
            "MediaBrowser ,,,,=,=,\"\"\",Token=\"x\"\"\"",
            "MediaBrowser Token=\"0123456789abcdef0123456789abcdef\"",
            "Basic dXNlcjpwYXNz",
            "\u{7f}garbage",
        ];
        for h in headers {
            let Ok(req) = Request::builder().uri("/Users/Me").header("Authorization", h).body(Body::empty()) else {
                continue;
            };
            server.send(req).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        }
        let long = "a".repeat(10_000);
        server.get(&format!("/Users/Me?api_key={long}"), None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        Ok(())
    }

    async fn users_me_carries_complete_policy_and_configuration(server) {
        let (admin, token) = server.admin().await?;
        let me = server.get("/Users/Me", Some(&with_token(&token))).await?.json()?;
        assert_eq!(me["Id"], admin.id.to_n());
        let policy = &me["Policy"];
        for key in [
            "IsAdministrator", "IsHidden", "IsDisabled", "EnableMediaPlayback",
            "EnableAudioPlaybackTranscoding", "EnableVideoPlaybackTranscoding",
            "EnablePlaybackRemuxing", "EnableContentDownloading", "EnableRemoteAccess",
            "EnableAllFolders", "MaxActiveSessions", "AuthenticationProviderId",
            "PasswordResetProviderId", "SyncPlayAccess", "EnableAllDevices", "EnableAllChannels",
            "InvalidLoginAttemptCount", "LoginAttemptsBeforeLockout", "RemoteClientBitrateLimit",
            "EnablePublicSharing", "BlockedTags", "EnabledFolders",
        ] {
            assert!(!policy[key].is_null(), "Policy lacks {key}");
        }
        assert_eq!(policy["IsAdministrator"], true);
        let configuration = &me["Configuration"];
        for key in [
            "PlayDefaultAudioTrack", "SubtitleMode", "OrderedViews", "GroupedFolders",
            "MyMediaExcludes", "LatestItemsExcludes", "HidePlayedInLatest",
            "RememberAudioSelections", "RememberSubtitleSelections", "EnableNextEpisodeAutoPlay",
            "DisplayMissingEpisodes", "DisplayCollectionsView", "EnableLocalPassword",
        ] {
            assert!(!configuration[key].is_null(), "Configuration lacks {key}");
        }
        assert!(has_no_nulls(&me));
        Ok(())
    }

    async fn a_user_reads_itself_by_id_in_either_id_form_but_not_another_user(server) {
        let (admin, _) = server.admin().await?;
        let (viewer, viewer_token) = server.viewer().await?;
        let auth = with_token(&viewer_token);
        assert_eq!(server.get(&format!("/Users/{}", viewer.id), Some(&auth)).await?.status, StatusCode::OK);
        let dashed = viewer.id.to_dashed().to_uppercase();
        let reply = server.get(&format!("/Users/{dashed}"), Some(&auth)).await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()?["Id"], viewer.id.to_n());
        server.get(&format!("/Users/{}", admin.id), Some(&auth)).await?.assert_error(StatusCode::FORBIDDEN)?;
        Ok(())
    }

    async fn an_administrator_reads_any_user_and_unknown_ids_are_404(server) {
        let (_, token) = server.admin().await?;
        let viewer = server.user("viewer", "pw", false).await?;
        let auth = with_token(&token);
        let reply = server.get(&format!("/users/{}", viewer.id), Some(&auth)).await?;
        assert_eq!(reply.json()?["Name"], "viewer");
        server.get("/Users/00000000000000000000000000000001", Some(&auth)).await?.assert_error(StatusCode::NOT_FOUND)?;
        Ok(())
    }

    async fn malformed_user_ids_are_400(server) {
        let (_, token) = server.admin().await?;
        let auth = with_token(&token);
        for bad in ["xyz", "0123456789abcdef0123456789abcdeg", "0123456789abcdef", "..%2F..%2Fetc", "%00"] {
            server.get(&format!("/Users/{bad}"), Some(&auth)).await?.assert_error(StatusCode::BAD_REQUEST)?;
        }
        Ok(())
    }

    async fn user_endpoints_need_a_token(server) {
        let someone = server.user("alice", "pw", false).await?;
        for uri in ["/Users/Me".to_owned(), format!("/Users/{}", someone.id), "/Users".to_owned()] {
            server.get(&uri, None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        }
        Ok(())
    }

    async fn the_public_user_list_shows_only_visible_users(server) {
        server.user("alice", "pw", true).await?;
        let reply = server.get("/Users/Public", None).await?;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json()?, json!([]), "new users are hidden, as in Jellyfin");
        Ok(())
    }

    async fn only_administrators_list_and_create_users(server) {
        let (_, admin_token) = server.admin().await?;
        let (_, viewer_token) = server.viewer().await?;
        let admin = with_token(&admin_token);
        let viewer = with_token(&viewer_token);
        server.get("/Users", Some(&viewer)).await?.assert_error(StatusCode::FORBIDDEN)?;
        server.post("/Users/New", Some(&viewer), Some(json!({"Name": "mallory"}))).await?.assert_error(StatusCode::FORBIDDEN)?;
        let created = server.post("/Users/New", Some(&admin), Some(json!({"name": "Bob", "password": "bob-pw"}))).await?;
        assert_eq!(created.status, StatusCode::OK, "{created:?}");
        assert_eq!(created.json()?["Policy"]["IsAdministrator"], false);
        server.post("/Users/New", Some(&admin), Some(json!({"Name": "BOB"}))).await?.assert_error(StatusCode::CONFLICT)?;
        server.post("/Users/New", Some(&admin), Some(json!({"Name": "  "}))).await?.assert_error(StatusCode::BAD_REQUEST)?;
        let names: Vec<String> = server.get("/Users", Some(&admin)).await?.json()?
            .as_array().unwrap().iter().map(|u| u["Name"].as_str().unwrap().to_owned()).collect();
        assert_eq!(names, vec!["Bob", "root-user", "viewer"]);
        assert_eq!(server.login("bob", "bob-pw").await?.len(), 32);
        Ok(())
    }

    async fn many_logins_at_once_all_succeed(server) {
        server.user("alice", "pw", false).await?;
        let logins = (0..12).map(|i| {
            let client = client_on(&format!("dev-{i}"));
            let server = &server;
            async move { server.login_from("alice", "pw", &client).await }
        });
        for result in futures::future::join_all(logins).await {
            assert_eq!(result?.len(), 32);
        }
        Ok(())
    }
}

/// A server with a small failed-login budget: `free_failures` per (user, address), then a
/// ten-minute wait; `per_address` failures per address.
async fn limited(
    provider: crate::support::Provider,
    free_failures: u32,
    per_address: usize,
) -> anyhow::Result<TestServer> {
    let mut server = TestServer::new(provider).await?;
    server.state = server.state.clone().with_login_policy(LoginPolicy {
        free_failures,
        first_backoff: Duration::from_secs(600),
        max_backoff: Duration::from_secs(600),
        per_address,
        window: Duration::from_secs(600),
    });
    Ok(server)
}

/// A login attempt arriving from `peer` (the TCP peer), with an optional `X-Forwarded-For`.
async fn login_attempt_via(
    server: &TestServer,
    user: &str,
    pw: &str,
    peer: &str,
    forwarded_for: Option<&str>,
) -> anyhow::Result<crate::support::Reply> {
    let mut req = request(
        Method::POST,
        "/Users/AuthenticateByName",
        Some(CLIENT),
        Some(json!({"Username": user, "Pw": pw})),
    )?;
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(peer.parse()?, 40_000)));
    if let Some(hops) = forwarded_for {
        req.headers_mut().insert("X-Forwarded-For", hops.parse()?);
    }
    server.send(req).await
}

async fn login_attempt(
    server: &TestServer,
    user: &str,
    pw: &str,
    from: &str,
) -> anyhow::Result<crate::support::Reply> {
    login_attempt_via(server, user, pw, from, None).await
}

#[tokio::test]
async fn failed_logins_make_one_address_wait_but_the_right_password_elsewhere_gets_in()
-> anyhow::Result<()> {
    for provider in [
        crate::support::Provider::Sqlite,
        crate::support::Provider::Postgres,
    ] {
        let server = limited(provider, 3, 100).await?;
        let user = server.user("alice", "right", false).await?;
        for _ in 0..3 {
            login_attempt(&server, "alice", "wrong", "10.0.0.1")
                .await?
                .assert_error(StatusCode::UNAUTHORIZED)?;
        }
        let refused = login_attempt(&server, "ALICE", "right", "10.0.0.1").await?;
        refused.assert_error(StatusCode::TOO_MANY_REQUESTS)?;
        let retry: u64 = refused.headers["retry-after"].to_str()?.parse()?;
        assert!((1..=600).contains(&retry));
        assert_eq!(
            server.state.store.count_tokens(user.id).await?,
            0,
            "nothing written"
        );
        // No lock-out of the account: the owner, elsewhere, logs in.
        assert_eq!(
            login_attempt(&server, "alice", "right", "10.0.0.99")
                .await?
                .status,
            StatusCode::OK
        );
    }
    Ok(())
}

#[tokio::test]
async fn failed_logins_from_one_address_are_throttled_whatever_the_user() -> anyhow::Result<()> {
    let mut server = limited(crate::support::Provider::Sqlite, 100, 4).await?;
    server.user("alice", "right", false).await?;
    for name in ["a", "b", "c", "d"] {
        login_attempt(&server, name, "x", "192.0.2.7")
            .await?
            .assert_error(StatusCode::UNAUTHORIZED)?;
    }
    login_attempt(&server, "alice", "right", "192.0.2.7")
        .await?
        .assert_error(StatusCode::TOO_MANY_REQUESTS)?;
    assert_eq!(
        login_attempt(&server, "alice", "right", "192.0.2.8")
            .await?
            .status,
        StatusCode::OK
    );
    // A client that is not a trusted proxy cannot claim another address.
    login_attempt_via(&server, "alice", "right", "192.0.2.7", Some("192.0.2.8"))
        .await?
        .assert_error(StatusCode::TOO_MANY_REQUESTS)?;

    // Behind a trusted proxy, the client is the nearest hop the proxy did not add itself;
    // what the client put in front of it does not count.
    server.state.trusted_proxies = std::sync::Arc::new(TrustedProxies::new(&["10.9.0.0/16"]));
    login_attempt_via(
        &server,
        "alice",
        "right",
        "10.9.0.1",
        Some("192.0.2.8, 192.0.2.7"),
    )
    .await?
    .assert_error(StatusCode::TOO_MANY_REQUESTS)?;
    assert_eq!(
        login_attempt_via(
            &server,
            "alice",
            "right",
            "10.9.0.1",
            Some("192.0.2.7, 192.0.2.8")
        )
        .await?
        .status,
        StatusCode::OK
    );
    Ok(())
}

#[tokio::test]
async fn concurrent_guesses_for_one_user_evaluate_at_most_the_budget() -> anyhow::Result<()> {
    let server = limited(crate::support::Provider::Sqlite, 5, 1000).await?;
    server.user("root", "the-right-one", true).await?;
    let attempts = (0..64).map(|i| {
        let server = &server;
        async move { login_attempt(server, "root", &format!("guess-{i}"), "198.51.100.4").await }
    });
    let replies = futures::future::join_all(attempts).await;
    let mut checked = 0;
    for reply in replies {
        let reply = reply?;
        match reply.status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => anyhow::bail!("unexpected {other}: {reply:?}"),
        }
    }
    assert_eq!(
        checked, 5,
        "passwords evaluated out of 64 concurrent guesses"
    );
    Ok(())
}

#[tokio::test]
async fn the_first_administrator_comes_from_the_configuration_once() -> anyhow::Result<()> {
    for provider in [
        crate::support::Provider::Sqlite,
        crate::support::Provider::Postgres,
    ] {
        let dir = tempfile::tempdir()?;
        let mut config = crate::support::test_config(provider, dir.path()).await?;
        TestServer::admin_bootstrap(&mut config, "boss", "first-pass");
        let server = TestServer::from_config(config.clone(), dir).await?;
        let token = server.login("boss", "first-pass").await?;
        let me = server
            .get("/Users/Me", Some(&with_token(&token)))
            .await?
            .json()?;
        assert_eq!(me["Policy"]["IsAdministrator"], true);
        // A restart with another password changes nothing: the user exists already.
        TestServer::admin_bootstrap(&mut config, "boss", "second-pass");
        let again = TestServer::from_config(config, tempfile::tempdir()?).await?;
        assert_eq!(again.state.store.count_users().await?, 1);
        assert!(again.login("boss", "first-pass").await.is_ok());
        assert!(again.login("boss", "second-pass").await.is_err());
    }
    Ok(())
}

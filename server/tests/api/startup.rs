//! The first-run wizard (`/Startup/*`) as jellyfin-web drives it, the lists its pages load,
//! who may call it before and after completion, bad input, the `EPHYRA_ADMIN_*` bootstrap,
//! and replicas racing to create the first administrator.

use anyhow::{Context as _, Result};
use ephyra_config::ServerConfig;
use http::StatusCode;
use serde_json::json;

use crate::on_both_providers;
use crate::support::{CLIENT, Provider, TestServer, client_on, test_config, with_token};

/// What jellyfin-web's user page posts.
fn first_user(name: &str, password: &str) -> serde_json::Value {
    json!({ "Name": name, "Password": password })
}

async fn wizard_completed(server: &TestServer) -> Result<bool> {
    let info = server.get("/System/Info/Public", None).await?.json()?;
    info["StartupWizardCompleted"]
        .as_bool()
        .context("StartupWizardCompleted is a boolean")
}

async fn admins(server: &TestServer) -> Result<Vec<String>> {
    Ok(server
        .state
        .store
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.is_admin)
        .map(|u| u.name)
        .collect())
}

on_both_providers! {
    async fn jellyfin_webs_wizard_creates_one_administrator_and_then_closes(server) {
        assert!(!wizard_completed(&server).await?, "a server with no user offers the wizard");

        // Page 1: language. The configuration and the interface languages, anonymously.
        let config = server.get("/Startup/Configuration", None).await?;
        assert_eq!(config.status, StatusCode::OK);
        let mut config = config.json()?;
        assert_eq!(config["UICulture"], "en-US");
        assert_eq!(config["ServerName"], "Test Den");
        let options = server.get("/Localization/Options", None).await?.json()?;
        assert!(options.as_array().is_some_and(|o| o.iter().any(|l| l["Value"] == "de")));
        config["UICulture"] = json!("de");
        let saved = server.post("/Startup/Configuration", None, Some(config)).await?;
        assert_eq!(saved.status, StatusCode::NO_CONTENT);

        // Completing before there is an administrator is out of order.
        server.post("/Startup/Complete", None, None).await?.assert_error(StatusCode::CONFLICT)?;

        // Page 2: the administrator. Nobody yet, so the name starts empty.
        let user = server.get("/Startup/User", None).await?.json()?;
        assert_eq!(user["Name"], "");
        assert!(user.get("Password").is_none());
        for weak in ["", "short", "Rosalinde"] {
            let refused = server
                .post("/Startup/User", None, Some(first_user("Rosalinde", weak)))
                .await?;
            refused.assert_error(StatusCode::BAD_REQUEST)?;
            let message = refused.json()?["Message"].as_str().unwrap_or_default().to_owned();
            assert!(message.contains("at least 8 characters"), "the rule is stated: {message}");
        }
        server
            .post("/Startup/User", None, Some(first_user("  ", "long enough pass")))
            .await?
            .assert_error(StatusCode::BAD_REQUEST)?;
        assert!(admins(&server).await?.is_empty(), "refused attempts create nobody");
        let created = server
            .post("/Startup/User", None, Some(first_user("Rosalinde", "tulips in april")))
            .await?;
        assert_eq!(created.status, StatusCode::NO_CONTENT, "{created:?}");
        let first = server.get("/Startup/FirstUser", None).await?.json()?;
        assert_eq!(first["Name"], "Rosalinde");
        // A repeated or different submission never makes a second administrator.
        for again in [first_user("Rosalinde", "other password"), first_user("mallory", "takeover pass")] {
            server
                .post("/Startup/User", None, Some(again))
                .await?
                .assert_error(StatusCode::CONFLICT)?;
        }
        assert_eq!(admins(&server).await?, vec!["Rosalinde".to_owned()]);
        assert!(!wizard_completed(&server).await?, "still open until Complete");

        // Page 3: libraries (none configured here), page 4: metadata language and country.
        let folders = server.get("/Library/VirtualFolders", None).await?;
        assert_eq!(folders.status, StatusCode::OK);
        assert_eq!(folders.json()?, json!([]));
        let cultures = server.get("/Localization/Cultures", None).await?.json()?;
        let english = cultures
            .as_array()
            .and_then(|c| c.iter().find(|c| c["TwoLetterISOLanguageName"] == "en"))
            .context("English is a culture")?;
        assert_eq!(english["ThreeLetterISOLanguageName"], "eng");
        let countries = server.get("/Localization/Countries", None).await?.json()?;
        let germany = countries
            .as_array()
            .and_then(|c| c.iter().find(|c| c["TwoLetterISORegionName"] == "DE"))
            .context("Germany is a country")?;
        assert_eq!(germany["ThreeLetterISORegionName"], "DEU");
        let mut config = server.get("/Startup/Configuration", None).await?.json()?;
        assert_eq!(config["UICulture"], "de", "the first page's choice was kept");
        config["PreferredMetadataLanguage"] = json!("de");
        config["MetadataCountryCode"] = json!("DE");
        let saved = server.post("/Startup/Configuration", None, Some(config)).await?;
        assert_eq!(saved.status, StatusCode::NO_CONTENT);
        let unknown = server
            .post("/Startup/Configuration", None, Some(json!({"MetadataCountryCode": "XX"})))
            .await?;
        unknown.assert_error(StatusCode::BAD_REQUEST)?;

        // Page 5: remote access, then finish.
        let remote = server
            .post(
                "/Startup/RemoteAccess",
                None,
                Some(json!({"EnableRemoteAccess": false, "EnableAutomaticPortMapping": false})),
            )
            .await?;
        assert_eq!(remote.status, StatusCode::NO_CONTENT);
        let done = server.post("/Startup/Complete", None, None).await?;
        assert_eq!(done.status, StatusCode::NO_CONTENT);
        assert!(wizard_completed(&server).await?);
        let wizard = server.state.store.wizard_state().await?;
        assert_eq!(wizard.settings.metadata_country_code, "DE");
        assert_eq!(wizard.settings.preferred_metadata_language, "de");
        assert!(!wizard.settings.enable_remote_access);

        // Closed: anonymous callers get 401, other users 403, the administrator may look.
        for path in ["/Startup/Configuration", "/Startup/User", "/Localization/Cultures", "/Library/VirtualFolders"] {
            server.get(path, None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        }
        server
            .post("/Startup/User", None, Some(first_user("mallory", "takeover pass")))
            .await?
            .assert_error(StatusCode::UNAUTHORIZED)?;
        server.post("/Startup/Complete", None, None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        let admin = server.login("Rosalinde", "tulips in april").await?;
        let me = server.get("/Users/Me", Some(&with_token(&admin))).await?.json()?;
        assert_eq!(me["Policy"]["IsAdministrator"], true);
        let (_, viewer) = server.viewer().await?;
        let viewer_auth = format!(r#"{}, Token="{viewer}""#, client_on("dev-viewer"));
        server
            .get("/Startup/Configuration", Some(&viewer_auth))
            .await?
            .assert_error(StatusCode::FORBIDDEN)?;
        let cultures = server.get("/Localization/Cultures", Some(&viewer_auth)).await?;
        assert_eq!(cultures.status, StatusCode::OK, "any user may read the lists");
        let config = server.get("/Startup/Configuration", Some(&with_token(&admin))).await?;
        assert_eq!(config.status, StatusCode::OK);
        server
            .post("/Startup/User", Some(&with_token(&admin)), Some(first_user("second", "another admin")))
            .await?
            .assert_error(StatusCode::CONFLICT)?;
        assert_eq!(admins(&server).await?, vec!["Rosalinde".to_owned()]);
        Ok(())
    }

    async fn concurrent_first_user_submissions_create_exactly_one_administrator(server) {
        let names = ["ada", "grace", "edsger", "barbara"];
        let replies = futures::future::join_all(names.iter().map(|name| {
            server.post("/Startup/User", None, Some(first_user(name, "a good long password")))
        }))
        .await;
        let mut created = 0;
        for reply in replies {
            let reply = reply?;
            if reply.status == StatusCode::NO_CONTENT {
                created += 1;
            } else {
                reply.assert_error(StatusCode::CONFLICT)?;
            }
        }
        assert_eq!(created, 1);
        assert_eq!(admins(&server).await?.len(), 1);
        Ok(())
    }

    async fn bad_wizard_bodies_are_refused_in_the_common_error_shape(server) {
        let garbage = server
            .send(
                http::Request::post("/Startup/User")
                    .header("Content-Type", "application/json")
                    .body(axum::body::Body::from("{not json"))?,
            )
            .await?;
        garbage.assert_error(StatusCode::BAD_REQUEST)?;
        server
            .post("/Startup/RemoteAccess", None, Some(json!({})))
            .await?
            .assert_error(StatusCode::BAD_REQUEST)?;
        server
            .post("/Startup/Configuration", None, Some(json!({"UICulture": "x".repeat(5000)})))
            .await?
            .assert_error(StatusCode::BAD_REQUEST)?;
        server
            .post("/Startup/User", None, Some(first_user(&"n".repeat(101), "a good long password")))
            .await?
            .assert_error(StatusCode::BAD_REQUEST)?;
        assert!(admins(&server).await?.is_empty());
        Ok(())
    }

    async fn a_database_whose_users_predate_the_wizard_is_already_set_up(server) {
        server.user("root-user", "root-pass", true).await?;
        assert!(wizard_completed(&server).await?);
        server
            .post("/Startup/User", None, Some(first_user("mallory", "takeover pass")))
            .await?
            .assert_error(StatusCode::UNAUTHORIZED)?;
        Ok(())
    }
}

/// A configuration with the `EPHYRA_ADMIN_*` bootstrap on `provider`.
async fn bootstrapped(provider: Provider, dir: &std::path::Path) -> Result<ServerConfig> {
    let mut config = test_config(provider, dir).await?;
    TestServer::admin_bootstrap(&mut config, "household", "first password");
    Ok(config)
}

async fn the_bootstrap_admin_closes_the_wizard_and_is_never_overwritten(
    provider: Provider,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = bootstrapped(provider, dir.path()).await?;
    let first = ephyra_server::start(config.clone()).await?;
    let server = TestServer::from_state(first, config.clone())?;
    assert!(wizard_completed(&server).await?);
    server
        .get("/Startup/User", None)
        .await?
        .assert_error(StatusCode::UNAUTHORIZED)?;
    server.login("household", "first password").await?;

    // The person changes the password; a restart with the same environment keeps it.
    let user = server
        .state
        .store
        .user_by_name("household")
        .await?
        .context("the bootstrap administrator exists")?;
    let hash = ephyra_server::auth::password::hash("changed by the person").await?;
    server.state.store.set_password_hash(user.id, &hash).await?;
    let restarted = TestServer::from_state(ephyra_server::start(config).await?, server.config)?;
    restarted
        .login("household", "changed by the person")
        .await?;
    let old = restarted
        .post(
            "/Users/AuthenticateByName",
            Some(CLIENT),
            Some(json!({"Username": "household", "Pw": "first password"})),
        )
        .await?;
    old.assert_error(StatusCode::UNAUTHORIZED)?;
    assert_eq!(admins(&restarted).await?, vec!["household".to_owned()]);
    Ok(())
}

#[tokio::test]
async fn the_bootstrap_admin_closes_the_wizard_and_is_never_overwritten_on_sqlite() -> Result<()> {
    the_bootstrap_admin_closes_the_wizard_and_is_never_overwritten(Provider::Sqlite).await
}

#[tokio::test]
async fn the_bootstrap_admin_closes_the_wizard_and_is_never_overwritten_on_postgres() -> Result<()>
{
    the_bootstrap_admin_closes_the_wizard_and_is_never_overwritten(Provider::Postgres).await
}

/// jellyfin-web's last two calls with a fresh name: (user status, completion status).
async fn user_then_complete(server: &TestServer, name: &str) -> Result<(StatusCode, StatusCode)> {
    let user = server
        .post(
            "/Startup/User",
            None,
            Some(first_user(name, "a good long password")),
        )
        .await?;
    let complete = server.post("/Startup/Complete", None, None).await?;
    Ok((user.status, complete.status))
}

/// Two replicas (two states over one PostgreSQL database) each run the wizard's last steps at
/// once: one administrator results, and the wizard is closed on both.
#[tokio::test]
async fn two_replicas_racing_the_wizard_make_one_administrator_and_both_close() -> Result<()> {
    let dir_a = tempfile::tempdir()?;
    let dir_b = tempfile::tempdir()?;
    let config_a = test_config(Provider::Postgres, dir_a.path()).await?;
    let config_b = ServerConfig {
        data_dir: dir_b.path().to_owned(),
        ..config_a.clone()
    };
    let a = TestServer::from_config(config_a, dir_a).await?;
    let b = TestServer::from_config(config_b, dir_b).await?;
    assert!(!wizard_completed(&a).await? && !wizard_completed(&b).await?);

    let (ra, rb) = tokio::join!(
        user_then_complete(&a, "replica-a-admin"),
        user_then_complete(&b, "replica-b-admin")
    );
    let (ra, rb) = (ra?, rb?);
    let created = [ra.0, rb.0]
        .iter()
        .filter(|s| **s == StatusCode::NO_CONTENT)
        .count();
    assert_eq!(
        created, 1,
        "exactly one POST /Startup/User succeeds: {ra:?} {rb:?}"
    );
    for status in [ra.0, rb.0] {
        assert!(
            status == StatusCode::NO_CONTENT
                || status == StatusCode::CONFLICT
                || status == StatusCode::UNAUTHORIZED,
            "a losing submission is a clear 4xx: {status}"
        );
    }
    // Whoever completed first closed it; the other completion is 204 (raced in) or 401 (closed).
    assert!(
        [ra.1, rb.1].contains(&StatusCode::NO_CONTENT),
        "{ra:?} {rb:?}"
    );
    assert_eq!(admins(&a).await?.len(), 1);
    assert!(wizard_completed(&a).await? && wizard_completed(&b).await?);
    for server in [&a, &b] {
        server
            .post(
                "/Startup/User",
                None,
                Some(first_user("late", "a good long password")),
            )
            .await?
            .assert_error(StatusCode::UNAUTHORIZED)?;
    }
    Ok(())
}

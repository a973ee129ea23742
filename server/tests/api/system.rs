//! `/System/Info/Public`, `/System/Info`, `/System/Ping`.

use http::StatusCode;

use crate::on_both_providers;
use crate::support::{TestServer, has_no_nulls, with_token};

on_both_providers! {
    async fn public_info_is_anonymous_and_presents_a_jellyfin_server(server) {
        let reply = server.get("/System/Info/Public", None).await?;
        assert_eq!(reply.status, StatusCode::OK);
        let info = reply.json()?;
        assert_eq!(info["ProductName"], "Jellyfin Server");
        assert_eq!(info["Version"], "10.11.11");
        assert_eq!(info["ServerName"], "Test Den");
        assert_eq!(info["OperatingSystem"], "");
        // No user yet: the first-run wizard is offered (see `startup`).
        assert_eq!(info["StartupWizardCompleted"], false);
        let id = info["Id"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(id, server.state.server_id.to_n());
        assert!(has_no_nulls(&info));
        Ok(())
    }

    async fn the_python_clients_lowercase_path_reaches_public_info(server) {
        for path in [
            "/system/info/public",
            "/SYSTEM/INFO/PUBLIC",
            "/System/Info/Public/",
            "//system/info/public",
            "/System//Info/Public?x=1",
        ] {
            let reply = server.get(path, None).await?;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
        }
        Ok(())
    }

    async fn system_info_needs_a_token_and_then_matches_public_info(server) {
        server.get("/System/Info", None).await?.assert_error(StatusCode::UNAUTHORIZED)?;
        let (_, token) = server.admin().await?;
        let reply = server.get("/System/Info", Some(&with_token(&token))).await?;
        assert_eq!(reply.status, StatusCode::OK);
        let info = reply.json()?;
        let public = server.get("/System/Info/Public", None).await?.json()?;
        for key in ["Id", "ServerName", "Version", "ProductName"] {
            assert_eq!(info[key], public[key], "{key}");
        }
        assert_eq!(info["IsShuttingDown"], false);
        assert!(has_no_nulls(&info));
        Ok(())
    }

    async fn ping_answers_get_and_post_with_the_server_name(server) {
        assert_eq!(server.get("/System/Ping", None).await?.json()?, "Test Den");
        assert_eq!(server.post("/system/ping", None, None).await?.json()?, "Test Den");
        Ok(())
    }

    async fn the_server_id_survives_a_restart_on_the_same_database(server) {
        let before = server.state.server_id;
        let again = TestServer::from_config(server.config.clone(), tempfile::tempdir()?).await?;
        assert_eq!(again.state.server_id, before);
        Ok(())
    }
}

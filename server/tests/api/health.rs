//! `/health/live`, `/health/ready`, and `/metrics` on the admin router.

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::on_both_providers;
use crate::support::with_token;

on_both_providers! {
    async fn liveness_and_readiness_answer_without_a_token(server) {
        assert_eq!(server.get("/health/live", None).await?.status, StatusCode::OK);
        let ready = server.get("/health/ready", None).await?;
        assert_eq!(ready.status, StatusCode::OK);
        assert_eq!(ready.json()?["Database"], "ok");
        Ok(())
    }

    async fn readiness_turns_false_once_shutdown_begins(server) {
        server.state.begin_shutdown();
        let ready = server.get("/health/ready", None).await?;
        assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ready.json()?["Draining"], true);
        assert_eq!(server.get("/health/live", None).await?.status, StatusCode::OK);
        Ok(())
    }

    async fn metrics_count_requests_by_route_template_never_by_raw_path(server) {
        let (viewer, token) = server.viewer().await?;
        server.get(&format!("/Users/{}", viewer.id), Some(&with_token(&token))).await?;
        server.get("/no/such/thing", None).await?;
        let reply = ephyra_server::admin_app(server.state.clone())
            .oneshot(Request::builder().uri("/metrics").body(Body::empty())?)
            .await?;
        assert_eq!(reply.status(), StatusCode::OK);
        let text = String::from_utf8(reply.into_body().collect().await?.to_bytes().to_vec())?;
        assert!(text.contains(r#"ephyra_http_requests_total{method="GET",route="/users/{userid}",status="200"} 1"#), "{text}");
        assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
        assert!(text.contains(r#"route="/users/authenticatebyname""#), "{text}");
        assert!(!text.contains(&viewer.id.to_n()), "a raw id leaked into metrics");
        assert!(text.contains("ephyra_http_request_duration_seconds_bucket"));
        assert!(text.contains("ephyra_active_streams"));
        assert!(text.contains("ephyra_scan_files_total"));
        Ok(())
    }
}

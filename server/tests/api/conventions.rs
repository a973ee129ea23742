//! Conventions that hold for every endpoint: case-insensitive paths, CORS, one error shape,
//! body limits, 404 for unknown routes.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::json;

use crate::support::{CLIENT, Provider, TestServer, with_token};

#[tokio::test]
async fn cors_preflights_are_answered_for_any_origin() -> anyhow::Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let req = Request::builder()
        .method(Method::OPTIONS)
        .uri("/Users/AuthenticateByName")
        .header("Origin", "http://elsewhere.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .body(Body::empty())?;
    let reply = server.send(req).await?;
    assert!(reply.status.is_success(), "{reply:?}");
    assert_eq!(reply.headers["access-control-allow-origin"], "*");
    let plain = Request::builder()
        .uri("/System/Info/Public")
        .header("Origin", "http://elsewhere.example")
        .body(Body::empty())?;
    assert_eq!(
        server.send(plain).await?.headers["access-control-allow-origin"],
        "*"
    );
    Ok(())
}

#[tokio::test]
async fn an_oversized_body_is_413_in_the_common_error_shape_and_writes_nothing()
-> anyhow::Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let user = server.user("alice", "pw", false).await?;
    let huge = "x".repeat(ephyra_server::app::MAX_BODY_BYTES + 1);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/Users/AuthenticateByName")
        .header("Authorization", CLIENT)
        .header("Content-Type", "application/json")
        .body(Body::from(format!(
            r#"{{"Username":"alice","Pw":"pw","Pad":"{huge}"}}"#
        )))?;
    server
        .send(req)
        .await?
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE)?;
    // Without a Content-Length (a streamed body) too.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(huge.clone().into_bytes())]);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/Users/AuthenticateByName")
        .header("Authorization", CLIENT)
        .body(Body::from_stream(stream))?;
    server
        .send(req)
        .await?
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE)?;
    assert_eq!(server.state.store.count_tokens(user.id).await?, 0);
    Ok(())
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_common_error_shape() -> anyhow::Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    server
        .get("/Nope", None)
        .await?
        .assert_error(StatusCode::NOT_FOUND)?;
    server
        .get("/Users/Me/../../etc/passwd", None)
        .await?
        .assert_error(StatusCode::NOT_FOUND)?;
    Ok(())
}

#[tokio::test]
async fn json_property_names_and_query_keys_ignore_case() -> anyhow::Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    server.user("alice", "pw", false).await?;
    for body in [
        json!({"USERNAME": "alice", "pw": "pw"}),
        json!({"userName": "Alice", "PW": "pw", "Unknown": {"Nested": [1, 2]}}),
    ] {
        let reply = server
            .post("/users/authenticatebyname", Some(CLIENT), Some(body))
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let token = server.login("alice", "pw").await?;
    let reply = server
        .post(
            "/SESSIONS/CAPABILITIES?PLAYABLEMEDIATYPES=Video&supportsmediacontrol=TRUE",
            Some(&with_token(&token)),
            None,
        )
        .await?;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    Ok(())
}

#[tokio::test]
async fn a_wrong_type_in_a_json_body_is_400_not_500() -> anyhow::Result<()> {
    let server = TestServer::new(Provider::Sqlite).await?;
    let reply = server
        .post(
            "/Users/AuthenticateByName",
            Some(CLIENT),
            Some(json!({"Username": {"a": 1}, "Pw": "x"})),
        )
        .await?;
    reply.assert_error(StatusCode::BAD_REQUEST)?;
    let reply = server
        .post(
            "/Users/AuthenticateByName",
            Some(CLIENT),
            Some(json!([1, 2, 3])),
        )
        .await?;
    reply.assert_error(StatusCode::BAD_REQUEST)?;
    Ok(())
}

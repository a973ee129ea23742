//! Shared test fixtures: a server state on either storage provider, requests through
//! `app(state).oneshot(...)`, and logins.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use axum::body::{Body, Bytes};
use ephyra_config::{AdminBootstrap, Secret, ServerConfig};
use ephyra_server::AppState;
use ephyra_server::store::users::User;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt as _;

/// The client header of the test client, before login. Values differ from real clients' so a
/// swapped value shows.
pub const CLIENT: &str = r#"MediaBrowser Client="Ephyra%20Tests", Device="test-rig", DeviceId="dev-0001", Version="0.1.0""#;

/// The same header for another device.
pub fn client_on(device_id: &str) -> String {
    format!(
        r#"MediaBrowser Client="Ephyra%20Tests", Device="test-rig", DeviceId="{device_id}", Version="0.1.0""#
    )
}

/// The client header carrying a token.
pub fn with_token(token: &str) -> String {
    format!(r#"{CLIENT}, Token="{token}""#)
}

/// Which storage provider a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A fresh database on the test process's PostgreSQL.
    Postgres,
}

/// A started server state and the folder holding its data.
pub struct TestServer {
    /// The state handlers see.
    pub state: AppState,
    /// The configuration it was started with.
    pub config: ServerConfig,
    /// Keeps the data folder alive.
    _dir: TempDir,
}

/// A configuration for tests on `provider`: data in `dir`, no discovery, no libraries.
pub async fn test_config(provider: Provider, dir: &std::path::Path) -> Result<ServerConfig> {
    let url = match provider {
        Provider::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("ephyra.db").display()),
        Provider::Postgres => ephyra_testsupport::postgres::fresh_database()
            .await
            .context("start PostgreSQL")?,
    };
    let mut config = ServerConfig {
        server_name: "Test Den".to_owned(),
        data_dir: PathBuf::from(dir),
        discovery: false,
        listen: "127.0.0.1:0".parse()?,
        admin_listen: "127.0.0.1:0".parse()?,
        ..ServerConfig::default()
    };
    config.database.url = Some(Secret::new(url));
    config.database.max_connections = 4;
    config.scan.interval_seconds = 0;
    Ok(config)
}

impl TestServer {
    /// A server on `provider` with no user.
    pub async fn new(provider: Provider) -> Result<TestServer> {
        let dir = tempfile::tempdir()?;
        let config = test_config(provider, dir.path()).await?;
        TestServer::from_config(config, dir).await
    }

    /// A server started with `config` (see [`test_config`]).
    pub async fn from_config(config: ServerConfig, dir: TempDir) -> Result<TestServer> {
        let state = ephyra_server::start(config.clone()).await?;
        Ok(TestServer {
            state,
            config,
            _dir: dir,
        })
    }

    /// A handle on a state started elsewhere (a restart over the same database); its data
    /// folder is the caller's to keep.
    pub fn from_state(state: AppState, config: ServerConfig) -> Result<TestServer> {
        Ok(TestServer {
            state,
            config,
            _dir: tempfile::tempdir()?,
        })
    }

    /// The same configuration with a first administrator.
    pub fn admin_bootstrap(config: &mut ServerConfig, user: &str, password: &str) {
        config.admin = Some(AdminBootstrap {
            user: user.to_owned(),
            password: Some(Secret::new(password)),
        });
    }

    /// Sends one request through the router, without a socket.
    pub async fn send(&self, request: Request<Body>) -> Result<Reply> {
        let response = ephyra_server::app(self.state.clone())
            .oneshot(request)
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// `GET uri` with an optional `Authorization` header value.
    pub async fn get(&self, uri: &str, authorization: Option<&str>) -> Result<Reply> {
        self.send(request(Method::GET, uri, authorization, None)?)
            .await
    }

    /// `POST uri` with a JSON body (or none).
    pub async fn post(
        &self,
        uri: &str,
        authorization: Option<&str>,
        body: Option<Value>,
    ) -> Result<Reply> {
        self.send(request(Method::POST, uri, authorization, body)?)
            .await
    }

    /// Creates a user straight in the store.
    pub async fn user(&self, name: &str, password: &str, admin: bool) -> Result<User> {
        let hash = ephyra_server::auth::password::hash(password).await?;
        Ok(self
            .state
            .store
            .create_user(name, Some(&hash), admin)
            .await?)
    }

    /// Logs in through the API from device `dev-0001`; returns the token.
    pub async fn login(&self, name: &str, password: &str) -> Result<String> {
        self.login_from(name, password, CLIENT).await
    }

    /// Logs in through the API with the given client header; returns the token.
    pub async fn login_from(&self, name: &str, password: &str, client: &str) -> Result<String> {
        let reply = self
            .post(
                "/Users/AuthenticateByName",
                Some(client),
                Some(serde_json::json!({"Username": name, "Pw": password})),
            )
            .await?;
        anyhow::ensure!(reply.status == StatusCode::OK, "login failed: {reply:?}");
        Ok(reply.json()?["AccessToken"]
            .as_str()
            .context("no AccessToken")?
            .to_owned())
    }

    /// An administrator `root-user` logged in: (user, token).
    pub async fn admin(&self) -> Result<(User, String)> {
        let user = self.user("root-user", "root-pass", true).await?;
        let token = self.login("root-user", "root-pass").await?;
        Ok((user, token))
    }

    /// A plain user `viewer` logged in from device `dev-viewer`: (user, token).
    pub async fn viewer(&self) -> Result<(User, String)> {
        let user = self.user("viewer", "viewer-pass", false).await?;
        let token = self
            .login_from("viewer", "viewer-pass", &client_on("dev-viewer"))
            .await?;
        Ok((user, token))
    }
}

/// Builds a request.
pub fn request(
    method: Method,
    uri: &str,
    authorization: Option<&str>,
    body: Option<Value>,
) -> Result<Request<Body>> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(a) = authorization {
        builder = builder.header("Authorization", a);
    }
    let body = match body {
        Some(v) => {
            builder = builder.header("Content-Type", "application/json");
            Body::from(serde_json::to_vec(&v)?)
        }
        None => Body::empty(),
    };
    Ok(builder.body(body)?)
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the status and the common error shape.
    pub fn assert_error(&self, status: StatusCode) -> Result<()> {
        anyhow::ensure!(self.status == status, "expected {status}, got {self:?}");
        let body = self.json()?;
        anyhow::ensure!(
            body["StatusCode"] == status.as_u16() && body["Message"].is_string(),
            "not the error shape: {body}"
        );
        Ok(())
    }
}

/// True when no value anywhere in `v` is JSON null (Jellyfin leaves nulls out).
pub fn has_no_nulls(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => a.iter().all(has_no_nulls),
        Value::Object(m) => m.values().all(has_no_nulls),
        _ => true,
    }
}

/// Runs each test body once on SQLite and once on PostgreSQL, as two tests named
/// `<body>::sqlite` and `<body>::postgres`.
#[macro_export]
macro_rules! on_both_providers {
    ($(async fn $name:ident($server:ident) $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($server: $crate::support::TestServer) -> anyhow::Result<()> $body

            #[tokio::test]
            async fn sqlite() -> anyhow::Result<()> {
                body($crate::support::TestServer::new($crate::support::Provider::Sqlite).await?).await
            }

            #[tokio::test]
            async fn postgres() -> anyhow::Result<()> {
                body($crate::support::TestServer::new($crate::support::Provider::Postgres).await?).await
            }
        }
    )*};
}

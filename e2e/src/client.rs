//! A typed Jellyfin client for the tests: what an app does (log in, report playback, read its
//! place back, stream a film by byte ranges, QuickConnect), over plain HTTP.
//!
//! It keeps the load balancer's stickiness cookie itself rather than through a generic cookie
//! jar, so a test can read which replica the client is stuck to (the cookie's value is the
//! replica's name in HAProxy's configuration).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Jellyfin counts time in ticks of 100 ns.
pub const TICKS_PER_SECOND: i64 = 10_000_000;

/// Name of the stickiness cookie HAProxy inserts (see [`crate::Haproxy`]).
pub const STICKY_COOKIE: &str = "EPHYRA";

/// One app installation talking to one base URL (a replica, or the load balancer).
#[derive(Debug, Clone)]
pub struct JellyfinClient {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    /// This installation's `DeviceId`: the server keys sessions by it.
    pub device_id: String,
    /// The access token after a login.
    pub token: Option<String>,
    /// The logged-in user's id.
    pub user_id: Option<String>,
    http: reqwest::Client,
    /// `EPHYRA=<replica>` as last set by the load balancer. Clones share it (they are the
    /// same app); [`JellyfinClient::on`] starts without one.
    cookie: Arc<Mutex<Option<String>>>,
}

/// What a login returned.
#[derive(Debug, Clone)]
pub struct Login {
    /// The access token.
    pub token: String,
    /// The user's id.
    pub user_id: String,
}

/// A QuickConnect request as the initiating device sees it.
#[derive(Debug, Clone)]
pub struct QuickConnectRequest {
    /// The code a signed-in user types.
    pub code: String,
    /// What the initiating device polls with.
    pub secret: String,
}

impl JellyfinClient {
    /// A client without a login.
    pub fn new(base: &str, device_id: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(2))
            // Keep-alive, as apps do: a killed replica's connections break mid-pool, which is
            // part of what failover must survive.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            device_id: device_id.to_owned(),
            token: None,
            user_id: None,
            http,
            cookie: Arc::new(Mutex::new(None)),
        }
    }

    /// The same client with another per-request timeout (10 s by default): a transcode's
    /// first segment can take longer on a loaded machine.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        self
    }

    /// The same login (token, device) talking to another base URL, with no cookie.
    pub fn on(&self, base: &str) -> Self {
        let mut other = Self::new(base, &self.device_id);
        other.token.clone_from(&self.token);
        other.user_id.clone_from(&self.user_id);
        other
    }

    /// The `Authorization` header Jellyfin apps send.
    pub fn authorization(&self) -> String {
        let mut header = format!(
            "MediaBrowser Client=\"e2e\", Device=\"d\", DeviceId=\"{}\", Version=\"1\"",
            self.device_id
        );
        if let Some(token) = &self.token {
            header.push_str(&format!(", Token=\"{token}\""));
        }
        header
    }

    /// The replica the load balancer has stuck this client to, from its cookie.
    pub fn sticky_replica(&self) -> Option<String> {
        let cookie = self.cookie.lock().ok()?.clone()?;
        cookie
            .strip_prefix(STICKY_COOKIE)
            .and_then(|rest| rest.strip_prefix('='))
            .map(str::to_owned)
    }

    /// Sends one request with the auth header and the cookie; remembers a new cookie.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Value>,
        range: Option<(u64, u64)>,
    ) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}{path_and_query}", self.base);
        let mut request = self
            .http
            .request(method.clone(), &url)
            .header("Authorization", self.authorization());
        let cookie = self.cookie.lock().ok().and_then(|c| c.clone());
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some((first, last)) = range {
            request = request.header("Range", format!("bytes={first}-{last}"));
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path_and_query}"))?;
        for value in response.headers().get_all("set-cookie") {
            let Ok(text) = value.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default().trim();
            if pair.starts_with(&format!("{STICKY_COOKIE}="))
                && let Ok(mut cookie) = self.cookie.lock()
            {
                *cookie = Some(pair.to_owned());
            }
        }
        Ok(response)
    }

    /// GET returning the status and the JSON body (`Null` when there is none).
    pub async fn get_json(&self, path_and_query: &str) -> anyhow::Result<(StatusCode, Value)> {
        let response = self.send(Method::GET, path_and_query, None, None).await?;
        let status = response.status();
        let text = response.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_ok(&self, path_and_query: &str) -> anyhow::Result<Value> {
        let (status, value) = self.get_json(path_and_query).await?;
        if status != StatusCode::OK {
            bail!("GET {path_and_query}: {status} {value}");
        }
        Ok(value)
    }

    /// POST of a JSON body, returning the status.
    pub async fn post(&self, path_and_query: &str, body: Value) -> anyhow::Result<StatusCode> {
        let response = self
            .send(Method::POST, path_and_query, Some(body), None)
            .await?;
        Ok(response.status())
    }

    /// `POST /Users/AuthenticateByName`; keeps the token.
    pub async fn login(&mut self, user: &str, password: &str) -> anyhow::Result<Login> {
        let response = self
            .send(
                Method::POST,
                "/Users/AuthenticateByName",
                Some(json!({"Username": user, "Pw": password})),
                None,
            )
            .await?;
        self.keep_login(response).await
    }

    async fn keep_login(&mut self, response: reqwest::Response) -> anyhow::Result<Login> {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK {
            bail!("login refused: {status} {body}");
        }
        let token = body["AccessToken"]
            .as_str()
            .context("no AccessToken")?
            .to_owned();
        let user_id = body["User"]["Id"]
            .as_str()
            .context("no User.Id")?
            .to_owned();
        self.token = Some(token.clone());
        self.user_id = Some(user_id.clone());
        Ok(Login { token, user_id })
    }

    /// `GET /Users/Me`'s status: 200 while the token is valid, 401 once it is not.
    pub async fn me_status(&self) -> anyhow::Result<StatusCode> {
        Ok(self.get_json("/Users/Me").await?.0)
    }

    /// `POST /Sessions/Logout`: revokes this client's token.
    pub async fn logout(&self) -> anyhow::Result<StatusCode> {
        self.post("/Sessions/Logout", json!({})).await
    }

    /// `POST /Library/Refresh` (administrators): a library scan, queued.
    pub async fn refresh_library(&self) -> anyhow::Result<StatusCode> {
        self.post("/Library/Refresh", json!({})).await
    }

    /// The id of the film called `name`, if the library has it yet.
    pub async fn film_id(&self, name: &str) -> anyhow::Result<Option<String>> {
        let items = self
            .get_ok("/Items?Recursive=true&IncludeItemTypes=Movie")
            .await?;
        Ok(items["Items"].as_array().and_then(|items| {
            items
                .iter()
                .find(|item| item["Name"] == name)
                .and_then(|item| item["Id"].as_str().map(str::to_owned))
        }))
    }

    /// `POST /Sessions/Playing`: playback started.
    pub async fn report_start(&self, item: &str) -> anyhow::Result<()> {
        let status = self
            .post(
                "/Sessions/Playing",
                json!({"ItemId": item, "PositionTicks": 0}),
            )
            .await?;
        expect_no_content("playback start", status)
    }

    /// `POST /Sessions/Playing/Progress`; `Ok` means the server acknowledged the position.
    pub async fn report_progress(&self, item: &str, ticks: i64) -> anyhow::Result<()> {
        let status = self
            .post(
                "/Sessions/Playing/Progress",
                json!({"ItemId": item, "PositionTicks": ticks}),
            )
            .await?;
        expect_no_content("progress report", status)
    }

    /// The resume position the server holds for `item` (`/Items/{id}?userId=`).
    pub async fn position(&self, item: &str) -> anyhow::Result<i64> {
        let user = self.user_id.as_deref().context("not logged in")?;
        let detail = self.get_ok(&format!("/Items/{item}?userId={user}")).await?;
        detail["UserData"]["PlaybackPositionTicks"]
            .as_i64()
            .with_context(|| format!("no UserData.PlaybackPositionTicks in {detail}"))
    }

    /// The ids in "Continue watching" (`/UserItems/Resume`).
    pub async fn resume_ids(&self) -> anyhow::Result<Vec<String>> {
        let resume = self.get_ok("/UserItems/Resume").await?;
        Ok(resume["Items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item["Id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Bytes `first..=last` of `item`'s direct stream; must answer 206 with exactly them.
    pub async fn stream_range(&self, item: &str, first: u64, last: u64) -> anyhow::Result<Vec<u8>> {
        let response = self
            .send(
                Method::GET,
                &format!("/Videos/{item}/stream?static=true"),
                None,
                Some((first, last)),
            )
            .await?;
        let status = response.status();
        if status != StatusCode::PARTIAL_CONTENT {
            bail!("range {first}-{last}: {status}");
        }
        let bytes = response.bytes().await.context("reading the range")?;
        let wanted = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        if bytes.len() != wanted {
            bail!(
                "range {first}-{last}: {} bytes instead of {wanted}",
                bytes.len()
            );
        }
        Ok(bytes.to_vec())
    }

    /// `POST /QuickConnect/Initiate` from this (signed-out) device.
    pub async fn quick_connect_initiate(&self) -> anyhow::Result<QuickConnectRequest> {
        let response = self
            .send(Method::POST, "/QuickConnect/Initiate", None, None)
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK {
            bail!("QuickConnect initiate: {status} {body}");
        }
        Ok(QuickConnectRequest {
            code: body["Code"].as_str().context("no Code")?.to_owned(),
            secret: body["Secret"].as_str().context("no Secret")?.to_owned(),
        })
    }

    /// `POST /QuickConnect/Authorize?code=` as the signed-in user.
    pub async fn quick_connect_authorize(&self, code: &str) -> anyhow::Result<StatusCode> {
        self.post(&format!("/QuickConnect/Authorize?code={code}"), json!({}))
            .await
    }

    /// `GET /QuickConnect/Connect?secret=`: whether the request was authorized.
    pub async fn quick_connect_state(&self, secret: &str) -> anyhow::Result<bool> {
        let state = self
            .get_ok(&format!("/QuickConnect/Connect?secret={secret}"))
            .await?;
        state["Authenticated"]
            .as_bool()
            .with_context(|| format!("no Authenticated in {state}"))
    }

    /// `POST /Users/AuthenticateWithQuickConnect`; keeps the token.
    pub async fn login_with_quick_connect(&mut self, secret: &str) -> anyhow::Result<Login> {
        let response = self
            .send(
                Method::POST,
                "/Users/AuthenticateWithQuickConnect",
                Some(json!({"Secret": secret})),
                None,
            )
            .await?;
        self.keep_login(response).await
    }
}

fn expect_no_content(what: &str, status: StatusCode) -> anyhow::Result<()> {
    if status == StatusCode::NO_CONTENT {
        Ok(())
    } else {
        bail!("{what}: {status}")
    }
}

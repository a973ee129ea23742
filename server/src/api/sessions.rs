//! Sessions: `POST /Sessions/Capabilities[/Full]`, `POST /Sessions/Logout`, `GET /Sessions`,
//! and the `/socket` WebSocket.
//!
//! The WebSocket follows Jellyfin: the token is checked before the upgrade (header, `ApiKey`
//! or `api_key`); on connect the server sends `ForceKeepAlive` with the timeout in seconds;
//! each `KeepAlive` is answered; every fifth of the timeout, a socket silent for three quarters
//! of it gets another `ForceKeepAlive`, and a socket silent for the whole timeout is closed.
//! Messages for the user (`Sessions::notify`) are forwarded as they come.
//!
//! Bounds: a message (and a frame) is at most [`MAX_SOCKET_MESSAGE_BYTES`] (a larger one
//! closes the socket); only complete messages count as activity, so pings alone do not keep
//! a silent socket open; a token holds at most `SOCKETS_PER_TOKEN` sockets and a user
//! `SOCKETS_PER_USER` (429 beyond); a socket closes as soon as its token is revoked, on
//! whichever replica that happened.

use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use crate::api::dto::SessionInfoDto;
use crate::auth::{AuthUser, MaybeAuthUser, hash_token, request_token};
use crate::coord::Revocation;
use crate::error::ApiError;
use crate::jf::{JfId, Json, List, Query};
use crate::sessions::{Capabilities, Outbound, SocketHandle, SocketRefusal};
use crate::state::AppState;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", get(list))
        .route("/sessions/capabilities", post(capabilities))
        .route("/sessions/capabilities/full", post(capabilities_full))
        .route("/sessions/logout", post(logout))
        .route("/socket", get(socket))
        // Jellyfin accepts the upgrade on any path; older Emby-era clients use this one.
        .route("/embywebsocket", get(socket))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CapabilitiesQuery {
    #[serde(default)]
    playable_media_types: List<String>,
    #[serde(default)]
    supported_commands: List<String>,
    supports_media_control: Option<bool>,
}

/// Jellyfin's `ClientCapabilitiesDto` (the parts Ephyra keeps; the device profile is stored
/// as posted).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CapabilitiesBody {
    #[serde(default)]
    playable_media_types: List<String>,
    #[serde(default)]
    supported_commands: List<String>,
    supports_media_control: Option<bool>,
}

async fn record_capabilities(
    state: &AppState,
    caller: &AuthUser,
    capabilities: Capabilities,
) -> Result<StatusCode, ApiError> {
    let json = json!({
        "PlayableMediaTypes": capabilities.playable_media_types,
        "SupportedCommands": capabilities.supported_commands,
        "SupportsMediaControl": capabilities.supports_media_control,
    })
    .to_string();
    state
        .store
        .set_device_capabilities(caller.user_id, &caller.device, &json)
        .await?;
    state.sessions.set_capabilities(caller, capabilities);
    Ok(StatusCode::NO_CONTENT)
}

async fn capabilities(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(q): Query<CapabilitiesQuery>,
) -> Result<StatusCode, ApiError> {
    let caps = Capabilities {
        playable_media_types: q.playable_media_types.0,
        supported_commands: q.supported_commands.0,
        supports_media_control: q.supports_media_control.unwrap_or(false),
    };
    record_capabilities(&state, &caller, caps).await
}

async fn capabilities_full(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(body): Json<CapabilitiesBody>,
) -> Result<StatusCode, ApiError> {
    let caps = Capabilities {
        playable_media_types: body.playable_media_types.0,
        supported_commands: body.supported_commands.0,
        supports_media_control: body.supports_media_control.unwrap_or(false),
    };
    record_capabilities(&state, &caller, caps).await
}

async fn logout(State(state): State<AppState>, caller: AuthUser) -> Result<StatusCode, ApiError> {
    state.store.revoke_token(caller.token_id).await?;
    state
        .coordinator
        .revoke_tokens(Revocation::Token(caller.token_id))
        .await;
    state.sessions.remove(&caller);
    tracing::info!(user_id = %caller.user_id, "logout");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionsQuery {
    controllable_by_user_id: Option<JfId>,
    device_id: Option<String>,
}

/// Live sessions on this replica: all of them for administrators, the caller's own otherwise.
async fn list(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(q): Query<SessionsQuery>,
) -> Result<Json<Vec<SessionInfoDto>>, ApiError> {
    state.sessions.touch(&caller);
    let visible_to = match q.controllable_by_user_id {
        Some(id) => caller.acting_for(Some(id))?,
        None => caller.user_id,
    };
    let sessions = state
        .sessions
        .list()
        .into_iter()
        .filter(|s| {
            caller.is_admin && q.controllable_by_user_id.is_none() || s.user_id == visible_to
        })
        .filter(|s| {
            q.device_id
                .as_ref()
                .is_none_or(|d| &s.device.device_id == d)
        })
        .map(|s| SessionInfoDto::new(&s, state.server_id))
        .collect();
    Ok(Json(sessions))
}

/// Largest WebSocket message (and frame) a client may send: Jellyfin's messages are a few
/// hundred bytes; anything larger closes the socket instead of being buffered.
pub const MAX_SOCKET_MESSAGE_BYTES: usize = 64 * 1024;

/// The stored form of the request's token, kept with the socket to check it on revocation.
struct TokenHash(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for TokenHash {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        Ok(TokenHash(request_token(parts).map(|t| hash_token(&t))))
    }
}

async fn socket(
    State(state): State<AppState>,
    MaybeAuthUser(caller): MaybeAuthUser,
    TokenHash(token_hash): TokenHash,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (Some(caller), Some(token_hash)) = (caller, token_hash) else {
        return ApiError::unauthorized("Authentication is required.").into_response();
    };
    let Ok(upgrade) = upgrade else {
        return ApiError::bad_request("Expected a WebSocket upgrade.").into_response();
    };
    let handle = match state.sessions.open_socket(&caller, token_hash) {
        Ok(handle) => handle,
        Err(refusal) => {
            let which = match refusal {
                SocketRefusal::PerToken => "token",
                SocketRefusal::PerUser => "user",
            };
            tracing::info!(user_id = %caller.user_id, which, "session socket refused: too many open");
            return ApiError::TooManyRequests {
                retry_after_secs: state.socket_timeout.as_secs().max(1),
            }
            .into_response();
        }
    };
    upgrade
        .max_message_size(MAX_SOCKET_MESSAGE_BYTES)
        .max_frame_size(MAX_SOCKET_MESSAGE_BYTES)
        .on_upgrade(move |ws| run_socket(ws, state, caller, handle))
        .into_response()
}

fn message(message_type: &str, data: Option<Value>) -> Message {
    let mut body = json!({
        "MessageType": message_type,
        "MessageId": JfId::random().to_n(),
    });
    if let (Some(data), Some(obj)) = (data, body.as_object_mut()) {
        obj.insert("Data".to_owned(), data);
    }
    Message::Text(body.to_string().into())
}

async fn run_socket(mut ws: WebSocket, state: AppState, caller: AuthUser, handle: SocketHandle) {
    let timeout = state.socket_timeout;
    let timeout_secs = timeout.as_secs().max(1);
    state.metrics.websocket_connections.inc();
    let mut outbound = state.sessions.subscribe();
    let check_every = (timeout / 5).max(Duration::from_millis(100));
    let mut checks = tokio::time::interval_at(Instant::now() + check_every, check_every);
    let mut last_heard = Instant::now();
    // Set while an administrator's client subscribes to `ScheduledTasksInfo`.
    let mut tasks_every: Option<tokio::time::Interval> = None;
    tracing::debug!(user_id = %caller.user_id, "session socket opened");

    if ws
        .send(message("ForceKeepAlive", Some(json!(timeout_secs))))
        .await
        .is_ok()
    {
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => {
                    let _ = ws.send(message("ServerShuttingDown", None)).await;
                    let _ = ws.send(Message::Close(None)).await;
                    break;
                }
                () = handle.closed() => {
                    tracing::info!(user_id = %caller.user_id, "session socket closed: its token was revoked");
                    let _ = ws.send(Message::Close(None)).await;
                    break;
                }
                _ = checks.tick() => {
                    let silent = last_heard.elapsed();
                    if silent >= timeout {
                        tracing::debug!(user_id = %caller.user_id, "session socket silent too long; closing");
                        let _ = ws.send(Message::Close(None)).await;
                        break;
                    }
                    if silent >= timeout * 3 / 4
                        && ws.send(message("ForceKeepAlive", Some(json!(timeout_secs)))).await.is_err()
                    {
                        break;
                    }
                }
                () = next_tick(&mut tasks_every) => {
                    // The dashboard's task list, live (jellyfin-web subscribes while it shows
                    // the scheduled tasks or the dashboard). Read from the job rows, so the
                    // progress is the same whichever replica runs the scan.
                    if let Ok(tasks) = crate::api::dashboard::scheduled_tasks_info(&state).await
                        && ws.send(message("ScheduledTasksInfo", Some(tasks))).await.is_err()
                    {
                        break;
                    }
                }
                received = ws.recv() => {
                    // An error here includes a message over the size limit.
                    let Some(Ok(frame)) = received else { break };
                    if let Message::Text(text) = &frame {
                        match tasks_subscription(text) {
                            Some(Some(every)) if caller.is_admin => {
                                tasks_every = Some(tokio::time::interval(every));
                            }
                            Some(None) => tasks_every = None,
                            _ => {}
                        }
                    }
                    // Only complete messages are activity: pings alone (answered by the
                    // library) do not keep a socket that says nothing open forever.
                    if matches!(frame, Message::Text(_) | Message::Binary(_)) {
                        last_heard = Instant::now();
                    }
                    if !answer(&mut ws, frame).await {
                        break;
                    }
                }
                pushed = outbound.recv() => match pushed {
                    Ok(Outbound { user, message_type, data }) => {
                        if user.is_none_or(|u| u == caller.user_id)
                            && ws.send(message(&message_type, Some(data))).await.is_err()
                        {
                            break;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "session socket fell behind on pushed messages");
                    }
                    Err(RecvError::Closed) => break,
                },
            }
        }
    }
    drop(handle);
    state.metrics.websocket_connections.dec();
    tracing::debug!(user_id = %caller.user_id, "session socket closed");
}

/// The next tick of an optional interval; never, without one.
async fn next_tick(every: &mut Option<tokio::time::Interval>) {
    match every {
        Some(every) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// `ScheduledTasksInfoStart` (`Data`: "initial delay ms,interval ms") → `Some(Some(interval))`,
/// at least half a second; `ScheduledTasksInfoStop` → `Some(None)`; anything else `None`.
fn tasks_subscription(text: &str) -> Option<Option<Duration>> {
    let value: Value = serde_json::from_str(text).ok()?;
    match value.get("MessageType")?.as_str()? {
        "ScheduledTasksInfoStart" => {
            let every = value
                .get("Data")
                .and_then(Value::as_str)
                .and_then(|d| d.split(',').nth(1))
                .and_then(|ms| ms.trim().parse::<u64>().ok())
                .unwrap_or(1000)
                .max(500);
            Some(Some(Duration::from_millis(every)))
        }
        "ScheduledTasksInfoStop" => Some(None),
        _ => None,
    }
}

/// Answers one inbound frame; false when the socket is done.
async fn answer(ws: &mut WebSocket, frame: Message) -> bool {
    match frame {
        Message::Text(text) if is_keep_alive(&text) => {
            ws.send(message("KeepAlive", None)).await.is_ok()
        }
        Message::Close(_) => false,
        // Other messages (SessionsStart, ...) are admin extras; pings are answered by the
        // library; binary frames mean nothing here.
        _ => true,
    }
}

/// True for `{"MessageType":"KeepAlive", ...}` (the message type matched exactly, as Jellyfin).
fn is_keep_alive(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.get("MessageType")
                .and_then(Value::as_str)
                .map(|t| t == "KeepAlive")
        })
        .unwrap_or(false)
}

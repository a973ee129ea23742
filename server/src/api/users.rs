//! Users and login: `POST /Users/AuthenticateByName`, `/Users/Me`, `/Users/{userId}`,
//! `/Users/Public`, `/Users` (administrators), `POST /Users/New` (administrators).
//!
//! Login follows Jellyfin: the authorization header must name Client, Device, DeviceId and
//! Version (400 otherwise); a wrong user or password is 401 with nothing written; a login
//! replaces the tokens that user held on the same device. Failed logins are rate-limited per
//! (user name, client address) with backoff and per client address (429 with `Retry-After`);
//! when every password slot is busy the answer is 503 with `Retry-After`.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::routing::{get, post};
use http::request::Parts;
use serde::Deserialize;

use crate::api::dto::{AuthenticationResult, SessionInfoDto, UserDto};
use crate::auth::{AuthUser, ClientHeader, new_token, password};
use crate::error::ApiError;
use crate::jf::{JfId, Json, Path};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::users::{DeviceInfo, User};

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/authenticatebyname", post(authenticate_by_name))
        .route("/users/public", get(public_users))
        .route("/users/me", get(me))
        .route("/users/new", post(create_user))
        .route("/users", get(list_users))
        .route("/users/{userid}", get(user_by_id))
}

/// Body of `AuthenticateByName` (property names in any case; unknown keys ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthenticateByName {
    username: Option<String>,
    pw: Option<String>,
}

/// The caller's address for rate limiting: the peer, or the client a trusted proxy names
/// (see [`crate::auth::address`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr(
            state.trusted_proxies.client_address(peer, &parts.headers),
        ))
    }
}

/// Issues a token for `user` on `device` and builds Jellyfin's login answer.
pub async fn issue_login(
    state: &AppState,
    user: &User,
    device: DeviceInfo,
) -> Result<AuthenticationResult, ApiError> {
    let (token, hash) = new_token();
    let token_id = state.store.create_token(user.id, &device, &hash).await?;
    // The login replaced the user's earlier token on this device: no replica may keep
    // accepting it from its cache.
    state
        .coordinator
        .revoke_tokens(crate::coord::Revocation::User(user.id))
        .await;
    // Re-read for the login time just written.
    let user = state
        .store
        .user_by_id(user.id)
        .await?
        .unwrap_or_else(|| user.clone());
    let auth = AuthUser {
        user_id: user.id,
        user_name: user.name.clone(),
        is_admin: user.is_admin,
        token_id,
        device,
    };
    let session = state.sessions.touch(&auth);
    tracing::info!(user_id = %user.id, client = %auth.device.client, "login");
    Ok(AuthenticationResult {
        user: UserDto::new(&user, state.server_id, state.server_name()),
        session_info: SessionInfoDto::new(&session, state.server_id),
        access_token: token,
        server_id: state.server_id.to_n(),
    })
}

async fn authenticate_by_name(
    State(state): State<AppState>,
    client: ClientHeader,
    ClientAddr(addr): ClientAddr,
    Json(body): Json<AuthenticateByName>,
) -> Result<Json<AuthenticationResult>, ApiError> {
    let device = client.device_info()?;
    let name = body
        .username
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("Username is required."))?;
    let pw = body.pw.unwrap_or_default();

    // Reserved before the password is checked: concurrent guesses cannot exceed the budget.
    let attempt = match state.login_limiter.begin(name, addr) {
        Ok(attempt) => attempt,
        Err(retry_after_secs) => {
            state.metrics.login_throttled.inc();
            return Err(ApiError::TooManyRequests { retry_after_secs });
        }
    };
    let user = state.store.user_by_name(name).await?;
    let ok = match &user {
        // No password set: Jellyfin accepts an empty one.
        Some(u) if u.password_hash.is_none() => pw.is_empty(),
        other => {
            match password::verify(&pw, other.as_ref().and_then(|u| u.password_hash.as_deref()))
                .await
            {
                Ok(ok) => ok,
                // Not checked: the attempt is given back (dropped) and the client told to retry.
                Err(e) => {
                    if matches!(e, password::PasswordError::Busy) {
                        state.metrics.login_throttled.inc();
                    }
                    return Err(e.into());
                }
            }
        }
    };
    let user = match user {
        Some(u) if ok && !u.is_disabled => u,
        _ => {
            attempt.failed();
            state.metrics.login_failures.inc();
            tracing::info!("login refused: wrong user name or password");
            return Err(ApiError::unauthorized("Invalid user name or password."));
        }
    };
    attempt.succeeded();
    Ok(Json(issue_login(&state, &user, device).await?))
}

async fn public_users(State(state): State<AppState>) -> Result<Json<Vec<UserDto>>, ApiError> {
    let users = state.store.list_users().await?;
    Ok(Json(
        users
            .iter()
            .filter(|u| !u.is_hidden && !u.is_disabled)
            .map(|u| UserDto::new(u, state.server_id, state.server_name()))
            .collect(),
    ))
}

async fn me(State(state): State<AppState>, caller: AuthUser) -> Result<Json<UserDto>, ApiError> {
    let user = state
        .store
        .user_by_id(caller.user_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("The user no longer exists."))?;
    Ok(Json(UserDto::new(
        &user,
        state.server_id,
        state.server_name(),
    )))
}

async fn user_by_id(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(requested): Path<JfId>,
) -> Result<Json<UserDto>, ApiError> {
    let user_id = caller.acting_for(Some(requested))?;
    let user = state
        .store
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("User not found."))?;
    Ok(Json(UserDto::new(
        &user,
        state.server_id,
        state.server_name(),
    )))
}

async fn list_users(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Vec<UserDto>>, ApiError> {
    caller.require_admin()?;
    let users = state.store.list_users().await?;
    Ok(Json(
        users
            .iter()
            .map(|u| UserDto::new(u, state.server_id, state.server_name()))
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateUser {
    name: Option<String>,
    password: Option<String>,
}

async fn create_user(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(body): Json<CreateUser>,
) -> Result<Json<UserDto>, ApiError> {
    caller.require_admin()?;
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 100)
        .ok_or_else(|| ApiError::bad_request("Name is required (1 to 100 characters)."))?;
    let hash = match body.password.as_deref().filter(|p| !p.is_empty()) {
        Some(pw) => Some(password::hash(pw).await?),
        None => None,
    };
    let user = match state.store.create_user(name, hash.as_deref(), false).await {
        Ok(u) => u,
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::Conflict(format!(
                "A user named {name} already exists."
            )));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Json(UserDto::new(
        &user,
        state.server_id,
        state.server_name(),
    )))
}

//! Users and login: `POST /Users/AuthenticateByName`, `/Users/Me`, `/Users/{userId}`,
//! `/Users/Public`, `/Users` (administrators), `POST /Users/New` (administrators); a user's
//! configuration and password; the administrator's policy changes and deletion.
//!
//! Every change that must end a user's sessions (password, disabling, deletion) revokes their
//! tokens in the database and then on every replica through the coordinator, so no cached
//! token keeps working anywhere.
//!
//! Login follows Jellyfin: the authorization header must name Client, Device, DeviceId and
//! Version (400 otherwise); a wrong user or password is 401 with nothing written; a login
//! replaces the tokens that user held on the same device. Failed logins are rate-limited per
//! (user name, client address) with backoff and per client address (429 with `Retry-After`);
//! when every password slot is busy the answer is 503 with `Retry-After`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::routing::{get, post};
use http::StatusCode;
use http::request::Parts;
use serde::Deserialize;

use crate::api::dto::{AuthenticationResult, SessionInfoDto, UserConfiguration, UserDto};
use crate::auth::{AuthUser, ClientHeader, new_token, password};
use crate::coord::Revocation;
use crate::error::ApiError;
use crate::jf::{JfId, Json, Path, Query};
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::users::{DeviceInfo, User};

/// How long a login waits for other attempts of the same user from the same address that are
/// still being checked, before it is refused (their success would clear the way).
const LOGIN_PATIENCE: Duration = Duration::from_secs(10);

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/authenticatebyname", post(authenticate_by_name))
        .route("/users/public", get(public_users))
        .route("/users/me", get(me))
        .route("/users/new", post(create_user))
        .route("/users", get(list_users))
        .route(
            "/users/{userid}",
            get(user_by_id).post(update_user).delete(delete_user),
        )
        .route("/users/{userid}/configuration", post(save_configuration))
        .route("/users/{userid}/policy", post(save_policy))
        .route("/users/{userid}/password", post(change_password))
        .route("/users/configuration", post(save_configuration_query))
        .route("/users/password", post(change_password_query))
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
    let attempt = match state
        .login_limiter
        .begin_patiently(name, addr, LOGIN_PATIENCE)
        .await
    {
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
    Ok(Json(user_dto(&state, &user).await?))
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
    Ok(Json(user_dto(&state, &user).await?))
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

/// A user's DTO with their saved configuration.
pub async fn user_dto(state: &AppState, user: &User) -> Result<UserDto, ApiError> {
    let configuration = match state.store.user_configuration(user.id).await? {
        // A row this server wrote; should it not parse, the defaults are the safe answer.
        Some(body) => serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| crate::jf::from_value(v).ok())
            .unwrap_or_default(),
        None => UserConfiguration::default(),
    };
    Ok(UserDto::new(user, state.server_id, state.server_name()).with_configuration(configuration))
}

/// The user named in the path, or 404.
async fn existing_user(state: &AppState, id: JfId) -> Result<User, ApiError> {
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found("User not found."))
}

/// `?userId=` of the routes that take the user from the query.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UserParam {
    user_id: Option<JfId>,
}

async fn save_configuration(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(requested): Path<JfId>,
    Json(configuration): Json<UserConfiguration>,
) -> Result<StatusCode, ApiError> {
    store_configuration(&state, &caller, Some(requested), &configuration).await
}

async fn save_configuration_query(
    State(state): State<AppState>,
    caller: AuthUser,
    Query(params): Query<UserParam>,
    Json(configuration): Json<UserConfiguration>,
) -> Result<StatusCode, ApiError> {
    store_configuration(&state, &caller, params.user_id, &configuration).await
}

async fn store_configuration(
    state: &AppState,
    caller: &AuthUser,
    requested: Option<JfId>,
    configuration: &UserConfiguration,
) -> Result<StatusCode, ApiError> {
    let user = caller.acting_for(requested)?;
    existing_user(state, user).await?;
    let body = serde_json::to_string(configuration).map_err(ApiError::internal)?;
    state.store.save_user_configuration(user, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The part of `UserPolicy` Ephyra stores; the rest of a posted policy is accepted and left
/// at Jellyfin's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PolicyUpdate {
    is_administrator: Option<bool>,
    is_hidden: Option<bool>,
    is_disabled: Option<bool>,
}

/// `POST /Users/{id}/Policy` (administrators). Disabling revokes the user's tokens; the last
/// administrator who can sign in cannot be demoted or disabled, and nobody disables themself.
async fn save_policy(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(user_id): Path<JfId>,
    Json(policy): Json<PolicyUpdate>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let user = existing_user(&state, user_id).await?;
    let is_admin = policy.is_administrator.unwrap_or(user.is_admin);
    let is_hidden = policy.is_hidden.unwrap_or(user.is_hidden);
    let is_disabled = policy.is_disabled.unwrap_or(user.is_disabled);
    if is_disabled && user_id == caller.user_id {
        return Err(ApiError::bad_request(
            "You cannot disable your own account.",
        ));
    }
    let was_active_admin = user.is_admin && !user.is_disabled;
    if was_active_admin
        && (!is_admin || is_disabled)
        && state.store.count_active_admins().await? <= 1
    {
        return Err(ApiError::bad_request(
            "There must be at least one administrator who can sign in.",
        ));
    }
    state
        .store
        .set_user_flags(user_id, is_admin, is_hidden, is_disabled)
        .await?;
    // A changed role or a disabled account must reach every replica's token cache now.
    if is_disabled != user.is_disabled || is_admin != user.is_admin {
        state
            .coordinator
            .revoke_tokens(Revocation::User(user_id))
            .await;
    }
    tracing::info!(user_id = %user_id, is_admin, is_disabled, "user policy changed");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /Users/{id}` (administrators): the user, their tokens, devices and data.
async fn delete_user(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(user_id): Path<JfId>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let user = existing_user(&state, user_id).await?;
    if user_id == caller.user_id {
        return Err(ApiError::bad_request("You cannot delete your own account."));
    }
    if user.is_admin && !user.is_disabled && state.store.count_active_admins().await? <= 1 {
        return Err(ApiError::bad_request(
            "There must be at least one administrator who can sign in.",
        ));
    }
    state.store.delete_user(user_id).await?;
    state
        .coordinator
        .revoke_tokens(Revocation::User(user_id))
        .await;
    tracing::info!(user_id = %user_id, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Jellyfin's `UpdateUserPassword`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PasswordChange {
    current_pw: Option<String>,
    new_pw: Option<String>,
    reset_password: bool,
}

async fn change_password(
    State(state): State<AppState>,
    caller: AuthUser,
    ClientAddr(addr): ClientAddr,
    Path(user_id): Path<JfId>,
    Json(change): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    set_password(&state, &caller, addr, Some(user_id), change).await
}

async fn change_password_query(
    State(state): State<AppState>,
    caller: AuthUser,
    ClientAddr(addr): ClientAddr,
    Query(params): Query<UserParam>,
    Json(change): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    set_password(&state, &caller, addr, params.user_id, change).await
}

/// Changes or (administrators, `ResetPassword`) clears a password, as Jellyfin does: a user
/// changing their own password gives the current one; an administrator changing someone
/// else's does not. Every other token of the user is revoked on every replica; the caller's
/// own token stays valid.
async fn set_password(
    state: &AppState,
    caller: &AuthUser,
    addr: Option<IpAddr>,
    requested: Option<JfId>,
    change: PasswordChange,
) -> Result<StatusCode, ApiError> {
    let user_id = caller.acting_for(requested)?;
    let user = existing_user(state, user_id).await?;
    let keep = (user_id == caller.user_id).then_some(caller.token_id);
    if change.reset_password {
        caller.require_admin()?;
        state.store.set_password(user_id, None, keep).await?;
    } else {
        if !caller.is_admin || user_id == caller.user_id {
            let current = change.current_pw.unwrap_or_default();
            // Reserved before the current password is checked, as for a login.
            let attempt = state
                .login_limiter
                .begin(&user.name, addr)
                .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
            let ok = match user.password_hash.as_deref() {
                None => current.is_empty(),
                Some(hash) => password::verify(&current, Some(hash)).await?,
            };
            if !ok {
                attempt.failed();
                return Err(ApiError::forbidden("Invalid user or password entered."));
            }
            attempt.succeeded();
        }
        let new = change.new_pw.unwrap_or_default();
        let hash = if new.is_empty() {
            None
        } else {
            Some(password::hash(&new).await?)
        };
        state
            .store
            .set_password(user_id, hash.as_deref(), keep)
            .await?;
    }
    state
        .coordinator
        .revoke_tokens(Revocation::User(user_id))
        .await;
    tracing::info!(user_id = %user_id, "password changed");
    Ok(StatusCode::NO_CONTENT)
}

/// The part of a posted `UserDto` Ephyra applies: the name.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UserUpdate {
    name: Option<String>,
}

/// `POST /Users/{id}` (the profile page's Save): renames the user (themself or, for an
/// administrator, anyone); 409 when the name is taken.
async fn update_user(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(requested): Path<JfId>,
    Json(update): Json<UserUpdate>,
) -> Result<StatusCode, ApiError> {
    let user_id = caller.acting_for(Some(requested))?;
    let user = existing_user(&state, user_id).await?;
    if let Some(name) = update.name.as_deref().map(str::trim)
        && name != user.name
    {
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::bad_request(
                "Name is required (1 to 100 characters).",
            ));
        }
        match state.store.rename_user(user_id, name).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ApiError::Conflict(format!(
                    "A user named {name} already exists."
                )));
            }
            Err(e) => return Err(e.into()),
        }
        // Cached token owners carry the name.
        state
            .coordinator
            .revoke_tokens(Revocation::User(user_id))
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

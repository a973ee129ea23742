//! QuickConnect: sign a device in by typing a six-digit code on a device that is already
//! signed in. `GET /QuickConnect/Enabled`, `POST|GET /QuickConnect/Initiate`,
//! `GET /QuickConnect/Connect?secret=`, `POST /QuickConnect/Authorize?code=` (authenticated),
//! `POST /Users/AuthenticateWithQuickConnect {"Secret"}`.
//!
//! Initiation is anonymous, so it is bounded (see `coord::quickconnect`): per client address
//! (429 with `Retry-After`), overall (503 with `Retry-After`), and in the size of what a
//! request keeps. Authorization attempts are limited per user and per address (429), and the
//! first authorization of a code is final (409 for any later one).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::api::dto::AuthenticationResult;
use crate::api::users::{ClientAddr, issue_login};
use crate::auth::limiter::AddressKey;
use crate::auth::{AuthUser, ClientHeader};
use crate::coord::quickconnect::{
    AUTHORIZE_PER_ADDRESS, AUTHORIZE_PER_USER, INITIATE_PER_ADDRESS, REQUEST_TTL, is_code,
};
use crate::coord::{Authorization, CoordError, Pending};
use crate::error::ApiError;
use crate::jf::{JfId, Json, Query, date};
use crate::state::AppState;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/quickconnect/enabled", get(enabled))
        .route("/quickconnect/initiate", get(initiate).post(initiate))
        .route("/quickconnect/connect", get(connect))
        .route("/quickconnect/authorize", post(authorize))
        .route(
            "/users/authenticatewithquickconnect",
            post(authenticate_with_quick_connect),
        )
}

/// Jellyfin's `QuickConnectResult`: every field, as the Kotlin SDK requires.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QuickConnectResult {
    /// A user has authorized the request.
    pub authenticated: bool,
    /// The secret the initiating device polls with.
    pub secret: String,
    /// The code a user types.
    pub code: String,
    /// The initiating device's id.
    pub device_id: String,
    /// Its name.
    pub device_name: String,
    /// Its app.
    pub app_name: String,
    /// Its app version.
    pub app_version: String,
    /// When initiated.
    pub date_added: String,
}

impl From<Pending> for QuickConnectResult {
    fn from(p: Pending) -> Self {
        QuickConnectResult {
            authenticated: p.authorized_user.is_some(),
            secret: p.secret,
            code: p.code,
            device_id: p.device.device_id,
            device_name: p.device.device_name,
            app_name: p.device.client,
            app_version: p.device.app_version,
            date_added: date(p.created_at),
        }
    }
}

fn require_enabled(state: &AppState) -> Result<(), ApiError> {
    if state.quick_connect_enabled {
        Ok(())
    } else {
        Err(ApiError::unauthorized("Quick connect is disabled"))
    }
}

async fn enabled(State(state): State<AppState>) -> Json<bool> {
    Json(state.quick_connect_enabled)
}

/// The rate-limit key part for a client address (`unknown` without one: tests without a
/// socket).
fn address_key(addr: Option<std::net::IpAddr>) -> String {
    addr.map_or_else(|| "unknown".to_owned(), |a| AddressKey::from(a).to_string())
}

/// Takes a slot of a QuickConnect rate limit, or answers 429.
async fn take_slot(state: &AppState, key: &str, limit: u32) -> Result<(), ApiError> {
    match state
        .coordinator
        .take_slot(key, limit, REQUEST_TTL)
        .await
        .map_err(unavailable)?
    {
        Ok(()) => Ok(()),
        Err(retry_after_secs) => {
            tracing::info!(
                limit = key.split(':').next().unwrap_or(""),
                "quick connect rate limit reached"
            );
            Err(ApiError::TooManyRequests { retry_after_secs })
        }
    }
}

async fn initiate(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    client: ClientHeader,
) -> Result<Json<QuickConnectResult>, ApiError> {
    require_enabled(&state)?;
    let device = client.device_info()?;
    take_slot(
        &state,
        &format!("qc-initiate:{}", address_key(addr)),
        INITIATE_PER_ADDRESS,
    )
    .await?;
    match state
        .coordinator
        .quick_connect_initiate(device)
        .await
        .map_err(unavailable)?
    {
        Ok(pending) => Ok(Json(pending.into())),
        Err(refusal) => {
            tracing::warn!(?refusal, "quick connect request refused: too many pending");
            Err(ApiError::Busy {
                retry_after_secs: 60,
            })
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SecretQuery {
    secret: Option<String>,
}

async fn connect(
    State(state): State<AppState>,
    Query(q): Query<SecretQuery>,
) -> Result<Json<QuickConnectResult>, ApiError> {
    require_enabled(&state)?;
    let secret = q
        .secret
        .ok_or_else(|| ApiError::bad_request("The secret parameter is required."))?;
    state
        .coordinator
        .quick_connect_get(&secret)
        .await
        .map_err(unavailable)?
        .map(|p| Json(p.into()))
        .ok_or_else(|| ApiError::not_found("Unknown or expired quick connect secret."))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AuthorizeQuery {
    code: Option<String>,
    user_id: Option<JfId>,
}

async fn authorize(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    caller: AuthUser,
    Query(q): Query<AuthorizeQuery>,
) -> Result<Json<bool>, ApiError> {
    require_enabled(&state)?;
    let code = q
        .code
        .ok_or_else(|| ApiError::bad_request("The code parameter is required."))?;
    let user_id = caller.acting_for(q.user_id)?;
    // Every attempt counts, before the code is looked up: guessing is bounded whether the
    // guesses hit or not, and whichever replicas they reach.
    take_slot(
        &state,
        &format!("qc-authorize-user:{}", caller.user_id.to_n()),
        AUTHORIZE_PER_USER,
    )
    .await?;
    take_slot(
        &state,
        &format!("qc-authorize-address:{}", address_key(addr)),
        AUTHORIZE_PER_ADDRESS,
    )
    .await?;
    let code = code.trim();
    if !is_code(code) {
        return Err(ApiError::not_found(
            "Unknown or expired quick connect code.",
        ));
    }
    match state
        .coordinator
        .quick_connect_authorize(code, user_id)
        .await
        .map_err(unavailable)?
    {
        Authorization::Authorized => {
            tracing::info!(%user_id, "quick connect request authorized");
            Ok(Json(true))
        }
        Authorization::AlreadyAuthorized => Err(ApiError::Conflict(
            "This quick connect code was already authorized.".to_owned(),
        )),
        Authorization::Unknown => Err(ApiError::not_found(
            "Unknown or expired quick connect code.",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SecretBody {
    secret: Option<String>,
}

async fn authenticate_with_quick_connect(
    State(state): State<AppState>,
    Json(body): Json<SecretBody>,
) -> Result<Json<AuthenticationResult>, ApiError> {
    require_enabled(&state)?;
    let secret = body
        .secret
        .ok_or_else(|| ApiError::bad_request("Secret is required."))?;
    if state
        .coordinator
        .quick_connect_get(&secret)
        .await
        .map_err(unavailable)?
        .is_none()
    {
        return Err(ApiError::not_found(
            "Unknown or expired quick connect secret.",
        ));
    }
    let (user_id, device) = state
        .coordinator
        .quick_connect_redeem(&secret)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::unauthorized("Quick connect request is not authorized yet."))?;
    let user = state
        .store
        .user_by_id(user_id)
        .await?
        .filter(|u| !u.is_disabled)
        .ok_or_else(|| ApiError::unauthorized("The authorizing user can no longer log in."))?;
    Ok(Json(issue_login(&state, &user, device).await?))
}

/// Pending requests live in Redis with replicas: without it QuickConnect cannot work, and the
/// client is told so with a 503 (the cause goes to the log).
fn unavailable(e: CoordError) -> ApiError {
    match e {
        CoordError::Store(e) => e.into(),
        other => {
            tracing::warn!(error = %crate::error::DisplayChain(&other), "quick connect unavailable");
            ApiError::Unavailable("Quick connect is unavailable right now, try again.")
        }
    }
}

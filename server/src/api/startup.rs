//! Jellyfin's first-run wizard, as jellyfin-web drives it: `GET/POST /Startup/Configuration`,
//! `GET /Startup/User` (and `/Startup/FirstUser`), `POST /Startup/User`,
//! `POST /Startup/RemoteAccess`, `POST /Startup/Complete`, plus the lists its pages load
//! (`/Localization/Options`, `/Localization/Cultures`, `/Localization/Countries`) and the
//! library page's `GET /Library/VirtualFolders`.
//!
//! Access follows Jellyfin's `FirstTimeSetupOrElevated` policy: anyone while the wizard is
//! open, administrators only once it is closed (401 without a token, 403 for other users). The
//! localization lists follow `FirstTimeSetupOrDefault`: anyone while open, any signed-in user
//! afterwards.
//!
//! The wizard's state lives in the database (`store::wizard`), so any replica may serve any
//! step. Unlike Jellyfin, which renames a user it created at start-up, Ephyra creates the first
//! administrator at `POST /Startup/User`, exactly once: a repeated or concurrent submission is
//! 409 and never a second administrator. Completing before an administrator exists is 409 too.
//! This module must not create users any other way, nor reopen a closed wizard.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::{MaybeAuthUser, password};
use crate::error::ApiError;
use crate::jf::Json;
use crate::localization;
use crate::state::AppState;
use crate::store::wizard::FirstAdminError;

/// The wizard's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/startup/configuration",
            get(get_configuration).post(set_configuration),
        )
        .route("/startup/user", get(get_user).post(create_user))
        .route("/startup/firstuser", get(get_user))
        .route("/startup/remoteaccess", post(set_remote_access))
        .route("/startup/complete", post(complete))
}

/// The lists and library view the wizard's pages load. Kept apart from [`router`] so that a
/// dashboard module serving the same paths can take them over.
pub fn wizard_support_router() -> Router<AppState> {
    Router::new()
        .route("/localization/options", get(localization_options))
        .route("/localization/cultures", get(localization_cultures))
        .route("/localization/countries", get(localization_countries))
}

/// True while the wizard is open. Once seen closed it is remembered in this replica (it never
/// reopens), so `/System/Info/Public`, which every client polls, stops querying for it.
pub async fn is_open(state: &AppState) -> Result<bool, ApiError> {
    if state.wizard_closed.load(Ordering::Relaxed) {
        return Ok(false);
    }
    let open = state.store.wizard_state().await?.is_open();
    if !open {
        state.wizard_closed.store(true, Ordering::Relaxed);
    }
    Ok(open)
}

/// Jellyfin's `FirstTimeSetupOrElevated`: anyone while the wizard is open, else an
/// administrator.
pub(crate) async fn setup_or_admin(
    state: &AppState,
    caller: &MaybeAuthUser,
) -> Result<bool, ApiError> {
    if is_open(state).await? {
        return Ok(true);
    }
    match &caller.0 {
        None => Err(ApiError::unauthorized("Authentication is required.")),
        Some(user) => user.require_admin().map(|()| false),
    }
}

/// Jellyfin's `FirstTimeSetupOrDefault`: anyone while the wizard is open, else any user.
async fn setup_or_user(state: &AppState, caller: &MaybeAuthUser) -> Result<(), ApiError> {
    if caller.0.is_some() || is_open(state).await? {
        Ok(())
    } else {
        Err(ApiError::unauthorized("Authentication is required."))
    }
}

/// Jellyfin's `StartupConfigurationDto`.
#[derive(Debug, Serialize)]
struct StartupConfigurationDto {
    #[serde(rename = "ServerName")]
    server_name: String,
    #[serde(rename = "UICulture")]
    ui_culture: String,
    #[serde(rename = "MetadataCountryCode")]
    metadata_country_code: String,
    #[serde(rename = "PreferredMetadataLanguage")]
    preferred_metadata_language: String,
}

/// The posted configuration; absent fields keep their value. `ServerName` is accepted and
/// ignored: the name comes from the configuration (`EPHYRA_SERVER_NAME`), the same on every
/// replica.
#[derive(Debug, Deserialize)]
struct StartupConfigurationBody {
    #[serde(rename = "UICulture")]
    ui_culture: Option<String>,
    #[serde(rename = "MetadataCountryCode")]
    metadata_country_code: Option<String>,
    #[serde(rename = "PreferredMetadataLanguage")]
    preferred_metadata_language: Option<String>,
}

async fn get_configuration(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
) -> Result<Json<StartupConfigurationDto>, ApiError> {
    setup_or_admin(&state, &caller).await?;
    let settings = state.store.wizard_state().await?.settings;
    Ok(Json(StartupConfigurationDto {
        server_name: state.server_name().to_owned(),
        ui_culture: settings.ui_culture,
        metadata_country_code: settings.metadata_country_code,
        preferred_metadata_language: settings.preferred_metadata_language,
    }))
}

/// A posted code, checked against its list (`None` keeps the saved value).
fn checked(
    value: Option<String>,
    field: &str,
    known: fn(&str) -> bool,
) -> Result<Option<String>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) => {
            let v = v.trim().to_owned();
            if v.len() <= 16 && known(&v) {
                Ok(Some(v))
            } else {
                Err(ApiError::bad_request(format!(
                    "{field} is not a known code (see /Localization/Options, /Localization/Cultures, /Localization/Countries)."
                )))
            }
        }
    }
}

async fn set_configuration(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    Json(body): Json<StartupConfigurationBody>,
) -> Result<StatusCode, ApiError> {
    setup_or_admin(&state, &caller).await?;
    let ui = checked(body.ui_culture, "UICulture", localization::is_ui_culture)?;
    let country = checked(
        body.metadata_country_code,
        "MetadataCountryCode",
        localization::is_country,
    )?;
    let language = checked(
        body.preferred_metadata_language,
        "PreferredMetadataLanguage",
        localization::is_language,
    )?;
    let saved = state.store.wizard_state().await?.settings;
    state
        .store
        .set_wizard_culture(
            ui.as_deref().unwrap_or(&saved.ui_culture),
            country.as_deref().unwrap_or(&saved.metadata_country_code),
            language
                .as_deref()
                .unwrap_or(&saved.preferred_metadata_language),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Jellyfin's `StartupUserDto`. The password is never returned (Ephyra keeps only a hash).
#[derive(Debug, Serialize)]
struct StartupUserDto {
    #[serde(rename = "Name")]
    name: String,
}

async fn get_user(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
) -> Result<Json<StartupUserDto>, ApiError> {
    setup_or_admin(&state, &caller).await?;
    let wizard = state.store.wizard_state().await?;
    let name = match wizard.first_admin_id {
        Some(id) => state
            .store
            .user_by_id(id)
            .await?
            .map(|u| u.name)
            .unwrap_or_default(),
        // Nobody yet: the page starts with an empty name field.
        None => String::new(),
    };
    Ok(Json(StartupUserDto { name }))
}

#[derive(Debug, Deserialize)]
struct StartupUserBody {
    #[serde(rename = "Name")]
    name: Option<String>,
    #[serde(rename = "Password")]
    password: Option<String>,
}

async fn create_user(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    Json(body): Json<StartupUserBody>,
) -> Result<StatusCode, ApiError> {
    let open = setup_or_admin(&state, &caller).await?;
    let already = || {
        ApiError::Conflict(
            "The first administrator already exists: sign in with it instead.".to_owned(),
        )
    };
    if !open || state.store.wizard_state().await?.first_admin_id.is_some() {
        return Err(already());
    }
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 100)
        .ok_or_else(|| ApiError::bad_request("Name is required (1 to 100 characters)."))?;
    let pw = body.password.unwrap_or_default();
    password::check_strength(name, &pw).map_err(ApiError::bad_request)?;
    let hash = password::hash(&pw).await?;
    match state.store.create_first_admin(name, &hash, false).await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "the first-run wizard created the first administrator");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(FirstAdminError::AlreadyExists) => Err(already()),
        Err(FirstAdminError::Store(e)) => Err(e.into()),
    }
}

/// Jellyfin's `StartupRemoteAccessDto`. Recorded only: how Ephyra is reached from outside is
/// the Ingress's business, not the server's.
#[derive(Debug, Deserialize)]
struct StartupRemoteAccessBody {
    #[serde(rename = "EnableRemoteAccess")]
    enable_remote_access: Option<bool>,
}

async fn set_remote_access(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
    Json(body): Json<StartupRemoteAccessBody>,
) -> Result<StatusCode, ApiError> {
    setup_or_admin(&state, &caller).await?;
    let enable = body
        .enable_remote_access
        .ok_or_else(|| ApiError::bad_request("EnableRemoteAccess is required (true or false)."))?;
    state.store.set_wizard_remote_access(enable).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn complete(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
) -> Result<StatusCode, ApiError> {
    let open = setup_or_admin(&state, &caller).await?;
    if open {
        if state.store.wizard_state().await?.first_admin_id.is_none() {
            return Err(ApiError::Conflict(
                "Create the first administrator (POST /Startup/User) before completing the wizard."
                    .to_owned(),
            ));
        }
        if state.store.complete_wizard().await? {
            tracing::info!("the first-run wizard is complete");
        }
        state.wizard_closed.store(true, Ordering::Relaxed);
    }
    // An administrator completing a closed wizard: nothing to do, as Jellyfin.
    Ok(StatusCode::NO_CONTENT)
}

async fn localization_options(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
) -> Result<Json<Vec<localization::LocalizationOption>>, ApiError> {
    setup_or_user(&state, &caller).await?;
    Ok(Json(localization::options()))
}

async fn localization_cultures(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
) -> Result<Json<Vec<localization::CultureDto>>, ApiError> {
    setup_or_user(&state, &caller).await?;
    Ok(Json(localization::cultures()))
}

async fn localization_countries(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
) -> Result<Json<Vec<localization::CountryInfo>>, ApiError> {
    setup_or_user(&state, &caller).await?;
    Ok(Json(localization::countries()))
}

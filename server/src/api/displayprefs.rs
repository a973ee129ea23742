//! `GET`/`POST /DisplayPreferences/{id}?userId=&client=`: the settings clients keep on the
//! server per user, per preference set and per client. jellyfin-web reads `usersettings`
//! right after signing in (its home sections, theme, skip lengths live in `CustomPrefs`) and
//! one set per library view (sort and view type); without an answer its Sign In spinner turns
//! forever.
//!
//! What a client posts is returned as posted (shaped as Jellyfin's `DisplayPreferencesDto`);
//! before anything was posted the answer is Jellyfin's defaults. Stored in the database, so
//! every replica answers the same.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::jf::{JfId, Json, Path, Query};
use crate::state::AppState;

/// Most `CustomPrefs` entries kept for one set (jellyfin-web writes a few dozen).
const MAX_CUSTOM_PREFS: usize = 512;

/// Longest preference-set id or client name accepted.
const MAX_KEY_CHARS: usize = 128;

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/displaypreferences/{displaypreferencesid}",
        get(get_preferences).post(save_preferences),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PrefsParams {
    user_id: Option<JfId>,
    client: Option<String>,
}

/// Jellyfin's `DisplayPreferencesDto`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
struct DisplayPreferences {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    view_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sort_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index_by: Option<String>,
    remember_indexing: bool,
    primary_image_height: i64,
    primary_image_width: i64,
    custom_prefs: BTreeMap<String, Option<String>>,
    scroll_direction: String,
    show_backdrop: bool,
    remember_sorting: bool,
    sort_order: String,
    show_sidebar: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    client: Option<String>,
}

impl Default for DisplayPreferences {
    /// Jellyfin's defaults for a set nobody saved yet, with the custom preferences Jellyfin
    /// always fills in.
    fn default() -> Self {
        let custom_prefs = [
            ("chromecastVersion", Some("stable")),
            ("skipForwardLength", Some("30000")),
            ("skipBackLength", Some("10000")),
            ("enableNextVideoInfoOverlay", Some("False")),
            ("tvhome", None),
            ("dashboardTheme", None),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.map(str::to_owned)))
        .collect();
        DisplayPreferences {
            id: None,
            view_type: None,
            sort_by: Some("SortName".to_owned()),
            index_by: None,
            remember_indexing: false,
            primary_image_height: 250,
            primary_image_width: 250,
            custom_prefs,
            scroll_direction: "Horizontal".to_owned(),
            show_backdrop: true,
            remember_sorting: false,
            sort_order: "Ascending".to_owned(),
            show_sidebar: false,
            client: None,
        }
    }
}

/// What a client posts: like [`DisplayPreferences`], with custom values of any JSON type
/// (some clients send numbers and booleans; Jellyfin keeps their text).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct PostedPreferences {
    view_type: Option<String>,
    sort_by: Option<String>,
    index_by: Option<String>,
    remember_indexing: Option<bool>,
    primary_image_height: Option<i64>,
    primary_image_width: Option<i64>,
    custom_prefs: BTreeMap<String, Value>,
    scroll_direction: Option<String>,
    show_backdrop: Option<bool>,
    remember_sorting: Option<bool>,
    sort_order: Option<String>,
    show_sidebar: Option<bool>,
}

impl PostedPreferences {
    fn into_saved(self) -> Result<DisplayPreferences, ApiError> {
        if self.custom_prefs.len() > MAX_CUSTOM_PREFS {
            return Err(ApiError::bad_request(format!(
                "CustomPrefs holds more than {MAX_CUSTOM_PREFS} entries."
            )));
        }
        let d = DisplayPreferences::default();
        let custom_prefs = self
            .custom_prefs
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::Null => None,
                    Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                };
                (k, text)
            })
            .collect();
        Ok(DisplayPreferences {
            id: None,
            view_type: self.view_type,
            sort_by: self.sort_by.or(d.sort_by),
            index_by: self.index_by,
            remember_indexing: self.remember_indexing.unwrap_or(d.remember_indexing),
            primary_image_height: self.primary_image_height.unwrap_or(d.primary_image_height),
            primary_image_width: self.primary_image_width.unwrap_or(d.primary_image_width),
            custom_prefs,
            scroll_direction: self.scroll_direction.unwrap_or(d.scroll_direction),
            show_backdrop: self.show_backdrop.unwrap_or(d.show_backdrop),
            remember_sorting: self.remember_sorting.unwrap_or(d.remember_sorting),
            sort_order: self.sort_order.unwrap_or(d.sort_order),
            show_sidebar: self.show_sidebar.unwrap_or(d.show_sidebar),
            client: None,
        })
    }
}

/// The stored key of a preference set: its id and client, lowercased and bounded.
fn keys(pref_id: &str, client: Option<&str>) -> Result<(String, String), ApiError> {
    let client = client.map(str::trim).unwrap_or_default();
    if client.is_empty() {
        return Err(ApiError::bad_request("The client parameter is required."));
    }
    let pref_id = pref_id.trim();
    if pref_id.is_empty()
        || pref_id.chars().count() > MAX_KEY_CHARS
        || client.chars().count() > MAX_KEY_CHARS
    {
        return Err(ApiError::bad_request(format!(
            "Preference ids and client names are 1 to {MAX_KEY_CHARS} characters."
        )));
    }
    Ok((pref_id.to_lowercase(), client.to_owned()))
}

async fn get_preferences(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(pref_id): Path<String>,
    Query(params): Query<PrefsParams>,
) -> Result<Json<DisplayPreferences>, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    let (pref_id, client) = keys(&pref_id, params.client.as_deref())?;
    let saved = state
        .store
        .display_preferences(user, &pref_id, &client)
        .await?;
    let mut prefs = match saved {
        // A row this server wrote; should it not parse, the defaults are the safe answer.
        Some(body) => serde_json::from_str(&body).unwrap_or_default(),
        None => DisplayPreferences::default(),
    };
    prefs.id = Some(pref_id);
    prefs.client = Some(client);
    Ok(Json(prefs))
}

async fn save_preferences(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(pref_id): Path<String>,
    Query(params): Query<PrefsParams>,
    Json(posted): Json<PostedPreferences>,
) -> Result<StatusCode, ApiError> {
    let user = caller.acting_for(params.user_id)?;
    let (pref_id, client) = keys(&pref_id, params.client.as_deref())?;
    let saved = posted.into_saved()?;
    let body = serde_json::to_string(&saved).map_err(ApiError::internal)?;
    state
        .store
        .save_display_preferences(user, &pref_id, &client, &body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

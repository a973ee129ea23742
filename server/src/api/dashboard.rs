//! What jellyfin-web's settings pages and admin dashboard read beyond browsing: the server
//! configuration, localization lists, scheduled tasks (with "Scan all libraries" runnable),
//! libraries as virtual folders with their scan state, devices, and the lists of features
//! Ephyra does not have (plugins, packages, API keys, activity log), which answer as Jellyfin
//! does when they are empty, so no page breaks on a 404.
//!
//! Nothing here changes media or users; the only write is the system configuration, kept in
//! the database as posted so every replica returns the same.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::dto::QueryResult;
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::error::ApiError;
use crate::jf::{Json, Path, date, date_opt};
use crate::jobs::kinds::LIBRARY_SCAN;
use crate::state::AppState;
use crate::store::jobs::{Job, JobState};

/// Key of the posted system configuration in `server_meta`.
const SYSTEM_CONFIGURATION_KEY: &str = "system_configuration";

/// Id of the one scheduled task Ephyra runs on request ("Scan all libraries").
const SCAN_TASK_ID: &str = "7738148ffcd07979c7ceb148e06b3aed";

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/system/configuration",
            get(system_configuration).post(save_system_configuration),
        )
        .route("/system/configuration/{key}", get(named_configuration))
        .route("/localization/parentalratings", get(parental_ratings))
        .route("/scheduledtasks", get(scheduled_tasks))
        .route("/scheduledtasks/{taskid}", get(scheduled_task))
        .route(
            "/scheduledtasks/running/{taskid}",
            post(run_task).delete(stop_task),
        )
        .route("/library/virtualfolders", get(virtual_folders))
        .route("/library/mediafolders", get(media_folders))
        .route("/devices", get(devices))
        .route("/plugins", get(empty_array))
        .route("/packages", get(empty_array))
        .route("/repositories", get(empty_array))
        .route("/auth/keys", get(empty_page))
        .route("/system/activitylog/entries", get(empty_page))
        .route("/system/logs", get(empty_array))
        .route("/auth/providers", get(auth_providers))
        .route(
            "/auth/passwordresetproviders",
            get(password_reset_providers),
        )
}

async fn empty_array(_caller: AuthUser) -> Json<Vec<Value>> {
    Json(Vec::new())
}

async fn empty_page(_caller: AuthUser) -> Json<QueryResult<Value>> {
    Json(QueryResult {
        items: Vec::new(),
        total_record_count: 0,
        start_index: 0,
    })
}

// ----- system configuration ---------------------------------------------------------------

/// Jellyfin's `ServerConfiguration` defaults for the keys its dashboard pages read; a posted
/// configuration is laid over them.
fn default_configuration(state: &AppState) -> Value {
    let mut config = json!({
        "ServerName": state.server_name(),
        "UICulture": "en-US",
        "PreferredMetadataLanguage": "en",
        "MetadataCountryCode": "US",
        "IsStartupWizardCompleted": true,
        "QuickConnectAvailable": true,
        "EnableMetrics": false,
        "EnableNormalizedItemByNameIds": true,
    });
    let more = json!({
        "IsPortAuthorized": true,
        "EnableCaseSensitiveItemIds": true,
        "DisableLiveTvChannelUserDataName": true,
        "MetadataPath": "",
        "CachePath": "",
        "PreviousVersion": null,
        "PreviousVersionStr": null,
        "LogFileRetentionDays": 3,
        "EnableFolderView": false,
        "EnableGroupingIntoCollections": false,
        "DisplaySpecialsWithinSeasons": true,
        "CodecsUsed": [],
        "PluginRepositories": [],
        "EnableExternalContentInSuggestions": true,
        "ImageSavingConvention": "Legacy",
        "MetadataOptions": [],
        "SkipDeserializationForBasicTypes": true,
    });
    let rest = json!({
        "SortReplaceCharacters": [".", "+", "%"],
        "SortRemoveCharacters": [",", "&", "-", "{", "}", "'"],
        "SortRemoveWords": ["the", "a", "an"],
        "MinResumePct": 5,
        "MaxResumePct": 90,
        "MinResumeDurationSeconds": 300,
        "MinAudiobookResume": 5,
        "MaxAudiobookResume": 5,
        "InactiveSessionThreshold": 0,
        "LibraryMonitorDelay": 60,
        "LibraryUpdateDuration": 30,
        "ImageExtractionTimeoutMs": 0,
        "PathSubstitutions": [],
        "EnableSlowResponseWarning": true,
        "SlowResponseThresholdMs": 500,
        "CorsHosts": ["*"],
        "ActivityLogRetentionDays": 30,
        "LibraryScanFanoutConcurrency": 0,
        "LibraryMetadataRefreshConcurrency": 0,
        "AllowClientLogUpload": true,
        "DummyChapterDuration": 0,
        "ChapterImageResolution": "MatchSource",
        "ParallelImageEncodingLimit": 0,
        "CastReceiverApplications": [],
    });
    let trickplay = json!({
        "TrickplayOptions": {
            "EnableHwAcceleration": false,
            "EnableHwEncoding": false,
            "EnableKeyFrameOnlyExtraction": false,
            "ScanBehavior": "NonBlocking",
            "ProcessPriority": "BelowNormal",
            "Interval": 10000,
            "WidthResolutions": [320],
            "TileWidth": 10,
            "TileHeight": 10,
            "Qscale": 4,
            "JpegQuality": 90,
            "ProcessThreads": 1
        },
        "EnableLegacyAuthorization": true,
        "RemoteClientBitrateLimit": 0,
    });
    // Several literals: one would exceed the json! macro's recursion limit.
    if let Some(base) = config.as_object_mut() {
        for part in [more, rest, trickplay] {
            if let Value::Object(part) = part {
                base.extend(part);
            }
        }
    }
    config
}

async fn stored_configuration(state: &AppState) -> Result<Value, ApiError> {
    let mut config = default_configuration(state);
    if let Some(saved) = state.store.meta(SYSTEM_CONFIGURATION_KEY).await?
        && let (Some(base), Ok(Value::Object(saved))) = (
            config.as_object_mut(),
            serde_json::from_str::<Value>(&saved),
        )
    {
        for (k, v) in saved {
            base.insert(k, v);
        }
    }
    // The name comes from the server's configuration, not from the dashboard.
    if let Some(base) = config.as_object_mut() {
        base.insert("ServerName".to_owned(), json!(state.server_name()));
    }
    Ok(config)
}

async fn system_configuration(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(stored_configuration(&state).await?))
}

async fn save_system_configuration(
    State(state): State<AppState>,
    caller: AuthUser,
    Json(posted): Json<Value>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    let Value::Object(posted) = posted else {
        return Err(ApiError::bad_request(
            "The configuration must be a JSON object.",
        ));
    };
    let text = serde_json::to_string(&posted).map_err(ApiError::internal)?;
    state
        .store
        .set_meta(SYSTEM_CONFIGURATION_KEY, &text)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Named configuration sections (`encoding`, `network`, `metadata`, ...): an empty object, the
/// shape of a section left at its defaults.
async fn named_configuration(
    _caller: AuthUser,
    Path(_key): Path<String>,
) -> Json<serde_json::Map<String, Value>> {
    Json(serde_json::Map::new())
}

// ----- localization ---------------------------------------------------------------------

// Cultures, countries and the localization options are served by `startup` (from
// `crate::localization`), which the first-run wizard reads before anyone can sign in.

async fn parental_ratings(_caller: AuthUser) -> Json<Vec<Value>> {
    Json(
        [
            ("G", 0),
            ("PG", 10),
            ("PG-13", 13),
            ("R", 17),
            ("NC-17", 18),
        ]
        .iter()
        .map(|(name, value)| json!({ "Name": name, "Value": value }))
        .collect(),
    )
}

// ----- scheduled tasks --------------------------------------------------------------------

/// Jellyfin's `TaskInfo`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaskInfo {
    name: &'static str,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_progress_percentage: Option<f64>,
    id: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_execution_result: Option<TaskResult>,
    triggers: Vec<Value>,
    description: &'static str,
    category: &'static str,
    is_hidden: bool,
    key: &'static str,
}

/// Jellyfin's `TaskResult`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TaskResult {
    start_time_utc: String,
    end_time_utc: String,
    status: &'static str,
    name: &'static str,
    key: &'static str,
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

/// The library scan task as the jobs table shows it.
async fn scan_task(state: &AppState) -> Result<TaskInfo, ApiError> {
    let jobs = state.store.jobs_of_kind(LIBRARY_SCAN).await?;
    let running = jobs.iter().find(|j| j.state == JobState::Running);
    let last = jobs
        .iter()
        .filter(|j| matches!(j.state, JobState::Done | JobState::Failed))
        .max_by_key(|j| j.finished_at.unwrap_or(0));
    let interval_ms = state.config.scan.interval_seconds.saturating_mul(1000);
    let triggers = if interval_ms > 0 {
        vec![
            json!({ "Type": "IntervalTrigger", "IntervalTicks": interval_ms.saturating_mul(10_000) }),
        ]
    } else {
        vec![json!({ "Type": "StartupTrigger" })]
    };
    Ok(TaskInfo {
        name: "Scan Media Library",
        state: if running.is_some() { "Running" } else { "Idle" },
        current_progress_percentage: running.map(scan_percent),
        id: SCAN_TASK_ID,
        last_execution_result: last.map(task_result),
        triggers,
        description: "Scans your media library for new files and refreshes metadata.",
        category: "Library",
        is_hidden: false,
        key: "RefreshLibrary",
    })
}

/// A running scan's progress in percent, as its worker last wrote it on the job row (0 until
/// the first report), so every replica answers the same.
fn scan_percent(job: &Job) -> f64 {
    job.progress.map_or(0.0, |p| p.percent())
}

fn task_result(job: &Job) -> TaskResult {
    TaskResult {
        start_time_utc: date(job.created_at),
        end_time_utc: date_opt(job.finished_at).unwrap_or_else(|| date(job.created_at)),
        status: if job.state == JobState::Done {
            "Completed"
        } else {
            "Failed"
        },
        name: "Scan Media Library",
        key: "RefreshLibrary",
        id: SCAN_TASK_ID.to_owned(),
        error_message: job.last_error.clone(),
    }
}

/// The task list as the `ScheduledTasksInfo` socket message carries it.
pub(crate) async fn scheduled_tasks_info(state: &AppState) -> Result<Value, ApiError> {
    serde_json::to_value(vec![scan_task(state).await?]).map_err(ApiError::internal)
}

async fn scheduled_tasks(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Vec<TaskInfo>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(vec![scan_task(&state).await?]))
}

async fn scheduled_task(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(task_id): Path<String>,
) -> Result<Json<TaskInfo>, ApiError> {
    caller.require_admin()?;
    if task_id != SCAN_TASK_ID {
        return Err(ApiError::not_found("Task not found."));
    }
    Ok(Json(scan_task(&state).await?))
}

/// `POST /ScheduledTasks/Running/{id}`: "Scan all libraries" enqueues the library scan job,
/// which any replica's worker runs once.
async fn run_task(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(task_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if task_id != SCAN_TASK_ID {
        return Err(ApiError::not_found("Task not found."));
    }
    state
        .store
        .enqueue(&crate::jobs::kinds::library_scan())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A running scan cannot be cancelled: it is bounded and resumable, so it is left to finish.
async fn stop_task(caller: AuthUser, Path(task_id): Path<String>) -> Result<StatusCode, ApiError> {
    caller.require_admin()?;
    if task_id != SCAN_TASK_ID {
        return Err(ApiError::not_found("Task not found."));
    }
    Ok(StatusCode::NO_CONTENT)
}

// ----- libraries ------------------------------------------------------------------------

/// Open to anyone while the first-run wizard is (its library page lists them), else admins.
async fn virtual_folders(
    State(state): State<AppState>,
    caller: MaybeAuthUser,
) -> Result<Json<Vec<Value>>, ApiError> {
    crate::api::startup::setup_or_admin(&state, &caller).await?;
    let scanning = state
        .store
        .jobs_of_kind(LIBRARY_SCAN)
        .await?
        .iter()
        .find(|j| j.state == JobState::Running)
        .map(scan_percent);
    let libraries = state.store.libraries().await?;
    Ok(Json(
        libraries
            .iter()
            .map(|l| {
                let mut folder = json!({
                    "Name": l.name,
                    "Locations": l.folders.iter().map(|f| f.to_string_lossy()).collect::<Vec<_>>(),
                    "CollectionType": l.kind.as_str(),
                    "LibraryOptions": {
                        "Enabled": true,
                        "EnableRealtimeMonitor": false,
                        "PathInfos": l.folders.iter().map(|f| json!({ "Path": f.to_string_lossy() })).collect::<Vec<_>>(),
                        "TypeOptions": [],
                        "MetadataSavers": [],
                        "DisabledLocalMetadataReaders": [],
                        "LocalMetadataReaderOrder": [],
                        "DisabledSubtitleFetchers": [],
                        "SubtitleFetcherOrder": [],
                        "SubtitleDownloadLanguages": [],
                        "DisabledMediaSegmentProviders": [],
                        "MediaSegmentProviderOrder": [],
                        "DisabledLyricFetchers": [],
                        "LyricFetcherOrder": [],
                        "CustomTagDelimiters": [],
                        "DelimiterWhitelist": []
                    },
                    "ItemId": l.id,
                    "RefreshStatus": if scanning.is_some() { "Active" } else { "Idle" },
                });
                // Jellyfin leaves it out while no scan runs.
                if let (Some(percent), Some(folder)) = (scanning, folder.as_object_mut()) {
                    folder.insert("RefreshProgress".to_owned(), json!(percent));
                }
                folder
            })
            .collect(),
    ))
}

async fn media_folders(
    State(state): State<AppState>,
    _caller: AuthUser,
) -> Result<Json<QueryResult<Value>>, ApiError> {
    let libraries = state.store.libraries().await?;
    let items: Vec<Value> = libraries
        .iter()
        .map(|l| {
            json!({
                "Name": l.name,
                "ServerId": state.server_id,
                "Id": l.id,
                "Type": "CollectionFolder",
                "CollectionType": l.kind.as_str(),
                "IsFolder": true,
            })
        })
        .collect();
    let total = u64::try_from(items.len()).unwrap_or(0);
    Ok(Json(QueryResult {
        items,
        total_record_count: total,
        start_index: 0,
    }))
}

// ----- devices --------------------------------------------------------------------------

async fn devices(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<QueryResult<Value>>, ApiError> {
    caller.require_admin()?;
    let users = state.store.list_users().await?;
    let devices = state.store.list_devices().await?;
    let items: Vec<Value> = devices
        .iter()
        .map(|d| {
            let user_name = users
                .iter()
                .find(|u| u.id == d.user_id)
                .map(|u| u.name.clone());
            json!({
                "Name": d.info.device_name,
                "Id": d.info.device_id,
                "LastUserName": user_name,
                "AppName": d.info.client,
                "AppVersion": d.info.app_version,
                "LastUserId": d.user_id,
                "DateLastActivity": date(d.last_seen_at),
                "Capabilities": {
                    "PlayableMediaTypes": [],
                    "SupportedCommands": [],
                    "SupportsMediaControl": false,
                    "SupportsPersistentIdentifier": true
                },
            })
        })
        .collect();
    let total = u64::try_from(items.len()).unwrap_or(0);
    Ok(Json(QueryResult {
        items,
        total_record_count: total,
        start_index: 0,
    }))
}

// ----- authentication providers -----------------------------------------------------------

async fn auth_providers(caller: AuthUser) -> Result<Json<Vec<Value>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(vec![json!({
        "Name": "Default",
        "Id": "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider",
    })]))
}

async fn password_reset_providers(caller: AuthUser) -> Result<Json<Vec<Value>>, ApiError> {
    caller.require_admin()?;
    Ok(Json(vec![json!({
        "Name": "Default",
        "Id": "Jellyfin.Server.Implementations.Users.DefaultPasswordResetProvider",
    })]))
}

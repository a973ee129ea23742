//! Server identity: `/System/Info/Public` (anonymous; what discovery and every client check
//! first), `/System/Info` (authenticated), `/System/Ping`.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use http::HeaderMap;
use http::header::HOST;
use serde::Serialize;

use crate::auth::AuthUser;
use crate::state::AppState;

/// The Jellyfin version Ephyra speaks. Clients refuse servers older than 10.10.0.
pub const JELLYFIN_VERSION: &str = "10.11.11";

/// The product name clients require to rate a server as good.
pub const PRODUCT_NAME: &str = "Jellyfin Server";

/// The routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/system/info/public", get(public_info))
        .route("/system/info", get(info))
        .route("/system/ping", get(ping).post(ping))
}

/// Jellyfin's `PublicSystemInfo`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PublicSystemInfo {
    /// The address the client reached us on.
    pub local_address: String,
    /// The server name.
    pub server_name: String,
    /// Three-part Jellyfin version.
    pub version: &'static str,
    /// Always `Jellyfin Server`.
    pub product_name: &'static str,
    /// Obsolete; empty.
    pub operating_system: &'static str,
    /// The server id, equal to every `ServerId`.
    pub id: String,
    /// False while the first-run wizard is open (no administrator yet): jellyfin-web then
    /// shows the wizard instead of the login page.
    pub startup_wizard_completed: bool,
}

/// Jellyfin's `SystemInfo`: the public info plus server details.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(clippy::struct_excessive_bools)] // mirrors Jellyfin's DTO field for field
pub struct SystemInfo {
    #[serde(flatten)]
    public: PublicSystemInfo,
    operating_system_display_name: &'static str,
    package_name: &'static str,
    has_pending_restart: bool,
    is_shutting_down: bool,
    supports_library_monitor: bool,
    web_socket_port_number: u16,
    completed_installations: Vec<serde_json::Value>,
    can_self_restart: bool,
    can_launch_web_browser: bool,
    has_update_available: bool,
    transcoding_temp_path: String,
    cast_receiver_applications: Vec<serde_json::Value>,
    system_architecture: &'static str,
    /// Ephyra: the transcoding path in use (`software`, `vaapi`, `qsv`, `nvenc`).
    transcoding_hardware_path: &'static str,
}

async fn public(state: &AppState, headers: &HeaderMap) -> PublicSystemInfo {
    // The address the client used is the one most likely to work for it again.
    let local_address = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map_or_else(
            || format!("http://{}", state.config.listen),
            |host| format!("http://{host}"),
        );
    PublicSystemInfo {
        local_address,
        server_name: state.server_name().to_owned(),
        version: JELLYFIN_VERSION,
        product_name: PRODUCT_NAME,
        operating_system: "",
        id: state.server_id.to_n(),
        startup_wizard_completed: wizard_completed(state).await,
    }
}

async fn public_info(State(state): State<AppState>, headers: HeaderMap) -> Json<PublicSystemInfo> {
    Json(public(&state, &headers).await)
}

/// Whether the first-run wizard is done. A database error reads as done: discovery keeps
/// answering, and nobody is sent into a wizard that cannot save.
async fn wizard_completed(state: &AppState) -> bool {
    match crate::api::startup::is_open(state).await {
        Ok(open) => !open,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the first-run wizard's state");
            true
        }
    }
}

async fn info(
    State(state): State<AppState>,
    _user: AuthUser,
    headers: HeaderMap,
) -> Json<SystemInfo> {
    Json(SystemInfo {
        public: public(&state, &headers).await,
        operating_system_display_name: std::env::consts::OS,
        package_name: "ephyra",
        has_pending_restart: false,
        is_shutting_down: !state.is_accepting(),
        supports_library_monitor: false,
        web_socket_port_number: state.config.listen.port(),
        completed_installations: Vec::new(),
        can_self_restart: false,
        can_launch_web_browser: false,
        has_update_available: false,
        transcoding_temp_path: state.transcodes.dir().to_string_lossy().into_owned(),
        cast_receiver_applications: Vec::new(),
        system_architecture: architecture(),
        transcoding_hardware_path: state.transcodes.hw().name(),
    })
}

async fn ping(State(state): State<AppState>) -> Json<String> {
    Json(state.server_name().to_owned())
}

/// .NET's `Architecture` names, which the Kotlin SDK decodes as an enum.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86" => "X86",
        "aarch64" => "Arm64",
        "arm" => "Arm",
        "s390x" => "S390x",
        "powerpc64" => "Ppc64le",
        "loongarch64" => "LoongArch64",
        _ => "X64",
    }
}

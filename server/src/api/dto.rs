//! Response shapes shared by several features (PascalCase, nulls left out).

use serde::Serialize;

use crate::jf::{JfId, date, date_opt};
use crate::sessions::Session;
use crate::store::users::User;

/// Jellyfin's `QueryResult<T>`: all three fields are required by the Kotlin SDK.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryResult<T> {
    /// The page of results.
    pub items: Vec<T>,
    /// How many results exist in total.
    pub total_record_count: u64,
    /// Offset of the first result.
    pub start_index: u64,
}

/// Jellyfin's `UserDto`. `Policy` and `Configuration` are always complete: the Kotlin SDK
/// refuses a partial one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserDto {
    /// User name.
    pub name: String,
    /// The server id (same as `PublicSystemInfo.Id`).
    pub server_id: String,
    /// The server name.
    pub server_name: String,
    /// User id (N format).
    pub id: JfId,
    /// The user has a password.
    pub has_password: bool,
    /// Same as `HasPassword`.
    pub has_configured_password: bool,
    /// Easy passwords (PINs) are not supported.
    pub has_configured_easy_password: bool,
    /// Auto-login is not supported.
    pub enable_auto_login: bool,
    /// Last login.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_login_date: Option<String>,
    /// Last activity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_activity_date: Option<String>,
    /// Display preferences.
    pub configuration: UserConfiguration,
    /// Permissions.
    pub policy: UserPolicy,
}

impl UserDto {
    /// The DTO of a stored user.
    pub fn new(user: &User, server_id: JfId, server_name: &str) -> Self {
        let has_password = user.password_hash.is_some();
        UserDto {
            name: user.name.clone(),
            server_id: server_id.to_n(),
            server_name: server_name.to_owned(),
            id: user.id,
            has_password,
            has_configured_password: has_password,
            has_configured_easy_password: false,
            enable_auto_login: false,
            last_login_date: date_opt(user.last_login_at),
            last_activity_date: date_opt(user.last_activity_at),
            configuration: UserConfiguration::default(),
            policy: UserPolicy::of(user),
        }
    }

    /// The same DTO carrying the user's saved configuration.
    pub fn with_configuration(mut self, configuration: UserConfiguration) -> Self {
        self.configuration = configuration;
        self
    }
}

/// Jellyfin's `UserConfiguration`, with its defaults; a user saves theirs with
/// `POST /Users/{id}/Configuration` (read leniently: keys in any case, missing ones default).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
#[allow(clippy::struct_excessive_bools)] // mirrors Jellyfin's DTO field for field
pub struct UserConfiguration {
    /// Preferred audio language ("" = any).
    pub audio_language_preference: String,
    /// Play the default audio track.
    pub play_default_audio_track: bool,
    /// Preferred subtitle language.
    pub subtitle_language_preference: String,
    /// Show missing episodes.
    pub display_missing_episodes: bool,
    /// Views grouped into one.
    pub grouped_folders: Vec<String>,
    /// `Default`, `Always`, `OnlyForced`, `None`, `Smart`.
    pub subtitle_mode: String,
    /// Show the collections view.
    pub display_collections_view: bool,
    /// Allow a local-network password.
    pub enable_local_password: bool,
    /// Order of the home views.
    pub ordered_views: Vec<String>,
    /// Libraries left out of "Latest".
    pub latest_items_excludes: Vec<String>,
    /// Libraries left out of "My media".
    pub my_media_excludes: Vec<String>,
    /// Hide played items in "Latest".
    pub hide_played_in_latest: bool,
    /// Remember the audio track per series.
    pub remember_audio_selections: bool,
    /// Remember the subtitle track per series.
    pub remember_subtitle_selections: bool,
    /// Play the next episode automatically.
    pub enable_next_episode_auto_play: bool,
}

impl Default for UserConfiguration {
    fn default() -> Self {
        UserConfiguration {
            audio_language_preference: String::new(),
            play_default_audio_track: true,
            subtitle_language_preference: String::new(),
            display_missing_episodes: false,
            grouped_folders: Vec::new(),
            subtitle_mode: "Default".to_owned(),
            display_collections_view: false,
            enable_local_password: false,
            ordered_views: Vec::new(),
            latest_items_excludes: Vec::new(),
            my_media_excludes: Vec::new(),
            hide_played_in_latest: true,
            remember_audio_selections: true,
            remember_subtitle_selections: true,
            enable_next_episode_auto_play: true,
        }
    }
}

/// Jellyfin's `UserPolicy`: every field the Kotlin SDK requires, with Jellyfin's defaults
/// except the three Ephyra stores (administrator, hidden, disabled).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(clippy::struct_excessive_bools)] // mirrors Jellyfin's DTO field for field
pub struct UserPolicy {
    /// May administer the server.
    pub is_administrator: bool,
    /// Left out of the public user list.
    pub is_hidden: bool,
    /// May manage collections.
    pub enable_collection_management: bool,
    /// May manage subtitles.
    pub enable_subtitle_management: bool,
    /// May manage lyrics.
    pub enable_lyric_management: bool,
    /// May not log in.
    pub is_disabled: bool,
    /// Blocked tags.
    pub blocked_tags: Vec<String>,
    /// Allowed tags.
    pub allowed_tags: Vec<String>,
    /// May edit own preferences.
    pub enable_user_preference_access: bool,
    /// Access schedules.
    pub access_schedules: Vec<serde_json::Value>,
    /// Unrated item kinds blocked.
    pub block_unrated_items: Vec<String>,
    /// May control other users' sessions.
    pub enable_remote_control_of_other_users: bool,
    /// May control shared devices.
    pub enable_shared_device_control: bool,
    /// May connect from outside the local network.
    pub enable_remote_access: bool,
    /// May manage live TV.
    pub enable_live_tv_management: bool,
    /// May watch live TV.
    pub enable_live_tv_access: bool,
    /// May play media.
    pub enable_media_playback: bool,
    /// May transcode audio.
    pub enable_audio_playback_transcoding: bool,
    /// May transcode video.
    pub enable_video_playback_transcoding: bool,
    /// May remux.
    pub enable_playback_remuxing: bool,
    /// Remote sources always transcoded.
    pub force_remote_source_transcoding: bool,
    /// May delete content.
    pub enable_content_deletion: bool,
    /// Folders the user may delete from.
    pub enable_content_deletion_from_folders: Vec<String>,
    /// May download.
    pub enable_content_downloading: bool,
    /// May sync-transcode.
    pub enable_sync_transcoding: bool,
    /// May convert media.
    pub enable_media_conversion: bool,
    /// Devices allowed (when not all).
    pub enabled_devices: Vec<String>,
    /// All devices allowed.
    pub enable_all_devices: bool,
    /// Channels allowed (when not all).
    pub enabled_channels: Vec<String>,
    /// All channels allowed.
    pub enable_all_channels: bool,
    /// Libraries allowed (when not all).
    pub enabled_folders: Vec<String>,
    /// All libraries allowed.
    pub enable_all_folders: bool,
    /// Failed logins counted against lockout.
    pub invalid_login_attempt_count: i32,
    /// Lockout threshold (-1: none; Ephyra rate-limits instead).
    pub login_attempts_before_lockout: i32,
    /// Concurrent sessions allowed (0: unlimited).
    pub max_active_sessions: i32,
    /// May share publicly.
    pub enable_public_sharing: bool,
    /// Blocked libraries.
    pub blocked_media_folders: Vec<String>,
    /// Blocked channels.
    pub blocked_channels: Vec<String>,
    /// Remote bitrate limit (0: none).
    pub remote_client_bitrate_limit: i32,
    /// Authentication provider.
    pub authentication_provider_id: &'static str,
    /// Password reset provider.
    pub password_reset_provider_id: &'static str,
    /// `CreateAndJoinGroups`, `JoinGroups` or `None`.
    pub sync_play_access: &'static str,
}

impl UserPolicy {
    /// The policy of a stored user.
    pub fn of(user: &User) -> Self {
        UserPolicy {
            is_administrator: user.is_admin,
            is_hidden: user.is_hidden,
            enable_collection_management: user.is_admin,
            enable_subtitle_management: user.is_admin,
            enable_lyric_management: user.is_admin,
            is_disabled: user.is_disabled,
            blocked_tags: Vec::new(),
            allowed_tags: Vec::new(),
            enable_user_preference_access: true,
            access_schedules: Vec::new(),
            block_unrated_items: Vec::new(),
            enable_remote_control_of_other_users: user.is_admin,
            enable_shared_device_control: true,
            enable_remote_access: true,
            enable_live_tv_management: false,
            enable_live_tv_access: false,
            enable_media_playback: true,
            enable_audio_playback_transcoding: true,
            enable_video_playback_transcoding: true,
            enable_playback_remuxing: true,
            force_remote_source_transcoding: false,
            enable_content_deletion: false,
            enable_content_deletion_from_folders: Vec::new(),
            enable_content_downloading: true,
            enable_sync_transcoding: true,
            enable_media_conversion: true,
            enabled_devices: Vec::new(),
            enable_all_devices: true,
            enabled_channels: Vec::new(),
            enable_all_channels: true,
            enabled_folders: Vec::new(),
            enable_all_folders: true,
            invalid_login_attempt_count: 0,
            login_attempts_before_lockout: -1,
            max_active_sessions: 0,
            enable_public_sharing: true,
            blocked_media_folders: Vec::new(),
            blocked_channels: Vec::new(),
            remote_client_bitrate_limit: 0,
            authentication_provider_id: "Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider",
            password_reset_provider_id: "Jellyfin.Server.Implementations.Users.DefaultPasswordResetProvider",
            sync_play_access: "CreateAndJoinGroups",
        }
    }
}

/// Jellyfin's `SessionInfoDto`, with the fields the Kotlin SDK requires.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
#[allow(clippy::struct_excessive_bools)] // mirrors Jellyfin's DTO field for field
pub struct SessionInfoDto {
    /// Session id (stable per Client + DeviceId).
    pub id: String,
    /// The user.
    pub user_id: JfId,
    /// The user's name.
    pub user_name: String,
    /// App name.
    pub client: String,
    /// Device id.
    pub device_id: String,
    /// Device name.
    pub device_name: String,
    /// App version.
    pub application_version: String,
    /// The server id.
    pub server_id: String,
    /// Last request.
    pub last_activity_date: String,
    /// Last playback report.
    pub last_playback_check_in: String,
    /// Active.
    pub is_active: bool,
    /// Media types the client plays.
    pub playable_media_types: Vec<String>,
    /// Commands the client accepts.
    pub supported_commands: Vec<String>,
    /// Can be remote-controlled.
    pub supports_media_control: bool,
    /// Same as `SupportsMediaControl`.
    pub supports_remote_control: bool,
    /// The device has a custom name.
    pub has_custom_device_name: bool,
    /// Additional users.
    pub additional_users: Vec<serde_json::Value>,
    /// Queue.
    pub now_playing_queue: Vec<serde_json::Value>,
    /// Queue items.
    pub now_playing_queue_full_items: Vec<serde_json::Value>,
}

impl SessionInfoDto {
    /// The DTO of a live session.
    pub fn new(session: &Session, server_id: JfId) -> Self {
        let caps = &session.capabilities;
        SessionInfoDto {
            id: session.id.clone(),
            user_id: session.user_id,
            user_name: session.user_name.clone(),
            client: session.device.client.clone(),
            device_id: session.device.device_id.clone(),
            device_name: session.device.device_name.clone(),
            application_version: session.device.app_version.clone(),
            server_id: server_id.to_n(),
            last_activity_date: date(session.last_activity),
            last_playback_check_in: date(0),
            is_active: true,
            playable_media_types: caps.playable_media_types.clone(),
            supported_commands: caps.supported_commands.clone(),
            supports_media_control: caps.supports_media_control,
            supports_remote_control: caps.supports_media_control,
            has_custom_device_name: false,
            additional_users: Vec::new(),
            now_playing_queue: Vec::new(),
            now_playing_queue_full_items: Vec::new(),
        }
    }
}

/// Jellyfin's `AuthenticationResult`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AuthenticationResult {
    /// The user.
    pub user: UserDto,
    /// The new session.
    pub session_info: SessionInfoDto,
    /// The token (32 hex), shown this once.
    pub access_token: String,
    /// Equal to `PublicSystemInfo.Id`.
    pub server_id: String,
}

//! Live client sessions of this replica: one per Client + DeviceId (Jellyfin's session key),
//! with the capabilities the client posted and its open WebSockets, plus a channel to push
//! messages (`UserDataChanged`, `LibraryChanged`, ...) to a user's sockets.
//!
//! Presence is per replica for now; issue 5 shares it through Redis. Nothing durable lives
//! here: tokens and positions are in the database.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::auth::AuthUser;
use crate::jf::{JfId, now_millis};
use crate::store::users::DeviceInfo;

/// What a client said it can do (`/Sessions/Capabilities[/Full]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capabilities {
    /// `Video`, `Audio`, ...
    pub playable_media_types: Vec<String>,
    /// General commands the client accepts.
    pub supported_commands: Vec<String>,
    /// The client can be remote-controlled.
    pub supports_media_control: bool,
}

/// One live session.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Stable id derived from the session key, the same on every replica.
    pub id: String,
    /// The user.
    pub user_id: JfId,
    /// The user's name.
    pub user_name: String,
    /// The client's device fields.
    pub device: DeviceInfo,
    /// Last request seen (unix ms).
    pub last_activity: i64,
    /// Posted capabilities.
    pub capabilities: Capabilities,
    /// WebSockets open for this session on this replica.
    pub sockets: usize,
}

/// A message for WebSocket clients: `MessageType` and `Data`, delivered to one user's sockets
/// or, with `user: None`, to every socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// Recipient user, or everyone.
    pub user: Option<JfId>,
    /// Jellyfin message type, e.g. `UserDataChanged`.
    pub message_type: String,
    /// The `Data` payload.
    pub data: Value,
}

/// The registry.
#[derive(Debug)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    outbound: broadcast::Sender<Outbound>,
}

impl Default for Sessions {
    fn default() -> Self {
        let (outbound, _) = broadcast::channel(256);
        Sessions {
            live: Mutex::default(),
            outbound,
        }
    }
}

/// The session id for a client and device: 32 hex digits, stable across replicas.
pub fn session_id(client: &str, device_id: &str) -> String {
    let digest = Sha256::digest(format!("{client}\u{1f}{device_id}").as_bytes());
    hex::encode(&digest[..16])
}

impl Sessions {
    fn with_live<R>(&self, f: impl FnOnce(&mut HashMap<String, Session>) -> R) -> R {
        let mut guard = match self.live.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// The caller's session, created if new, marked active now.
    pub fn touch(&self, user: &AuthUser) -> Session {
        self.with_live(|live| entry_for(live, user).clone())
    }

    /// Records the capabilities a client posted.
    pub fn set_capabilities(&self, user: &AuthUser, capabilities: Capabilities) -> Session {
        self.with_live(|live| {
            let session = entry_for(live, user);
            session.capabilities = capabilities;
            session.clone()
        })
    }

    /// Ends the caller's session (logout).
    pub fn remove(&self, user: &AuthUser) {
        self.with_live(|live| live.remove(&user.session_key()));
    }

    /// Counts a WebSocket opened for the caller's session.
    pub fn socket_opened(&self, user: &AuthUser) {
        self.with_live(|live| entry_for(live, user).sockets += 1);
    }

    /// Counts a WebSocket closed.
    pub fn socket_closed(&self, user: &AuthUser) {
        self.with_live(|live| {
            if let Some(s) = live.get_mut(&user.session_key()) {
                s.sockets = s.sockets.saturating_sub(1);
            }
        });
    }

    /// Every live session.
    pub fn list(&self) -> Vec<Session> {
        let mut all: Vec<Session> = self.with_live(|live| live.values().cloned().collect());
        all.sort_by_key(|s| std::cmp::Reverse(s.last_activity));
        all
    }

    /// Sends a message to a user's WebSockets (or everyone's with `user: None`). Messages sent
    /// while nobody listens are dropped.
    pub fn notify(&self, message: Outbound) {
        let _ = self.outbound.send(message);
    }

    /// A receiver of outbound messages, for one WebSocket.
    pub fn subscribe(&self) -> broadcast::Receiver<Outbound> {
        self.outbound.subscribe()
    }
}

/// The caller's session in `live`, created if new, marked active now.
fn entry_for<'a>(live: &'a mut HashMap<String, Session>, user: &AuthUser) -> &'a mut Session {
    let entry = live.entry(user.session_key()).or_insert_with(|| Session {
        id: session_id(&user.device.client, &user.device.device_id),
        user_id: user.user_id,
        user_name: user.user_name.clone(),
        device: user.device.clone(),
        last_activity: now_millis(),
        capabilities: Capabilities::default(),
        sockets: 0,
    });
    // The device may have been handed to another user since.
    entry.user_id = user.user_id;
    entry.user_name.clone_from(&user.user_name);
    entry.last_activity = now_millis();
    entry
}

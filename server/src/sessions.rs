//! Live client sessions of this replica: one per Client + DeviceId (Jellyfin's session key),
//! with the capabilities the client posted and its open WebSockets, plus a channel to push
//! messages (`UserDataChanged`, `LibraryChanged`, ...) to a user's sockets.
//!
//! Presence is per replica: `GET /Sessions` lists the clients this replica has seen (requests
//! and sockets); a client moved to another replica, by the load balancer or a replica's death,
//! appears there with its next request. Nothing durable lives here: tokens and positions are
//! in the database.
//!
//! Open WebSockets are registered with the token that opened them: at most
//! [`SOCKETS_PER_TOKEN`] per token and [`SOCKETS_PER_USER`] per user on this replica, and when
//! a revocation is announced (on any replica, through the coordinator's events) every socket
//! whose token no longer resolves is closed ([`Sessions::close_revoked`]).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use crate::auth::AuthUser;
use crate::coord::Revocation;
use crate::jf::{JfId, now_millis};
use crate::store::Store;
use crate::store::users::DeviceInfo;

/// WebSockets one token may hold open on a replica (a client opens one; a few more cover
/// reconnections the server has not noticed yet).
pub const SOCKETS_PER_TOKEN: usize = 8;

/// WebSockets one user may hold open on a replica, over all their tokens.
pub const SOCKETS_PER_USER: usize = 32;

/// One open WebSocket, as the registry knows it.
#[derive(Debug)]
struct OpenSocket {
    token_id: JfId,
    user_id: JfId,
    /// The stored form of the token, to check it again on a revocation.
    token_hash: String,
    close: CancellationToken,
}

/// Why a WebSocket may not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketRefusal {
    /// The token holds [`SOCKETS_PER_TOKEN`] sockets already.
    PerToken,
    /// The user holds [`SOCKETS_PER_USER`] sockets already.
    PerUser,
}

/// A registered WebSocket: [`SocketHandle::closed`] fires when its token is revoked; dropping
/// the handle unregisters it.
#[derive(Debug)]
pub struct SocketHandle {
    sessions: Arc<Sessions>,
    id: u64,
    user: AuthUser,
    close: CancellationToken,
}

impl SocketHandle {
    /// Completes when the socket must close because its token was revoked.
    pub async fn closed(&self) {
        self.close.cancelled().await;
    }
}

impl Drop for SocketHandle {
    fn drop(&mut self) {
        self.sessions
            .with_sockets(|sockets| sockets.remove(&self.id));
        self.sessions.socket_closed(&self.user);
    }
}

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
    live: Mutex<HashMap<SessionKey, Session>>,
    outbound: broadcast::Sender<Outbound>,
    sockets: Mutex<HashMap<u64, OpenSocket>>,
    next_socket: AtomicU64,
}

impl Default for Sessions {
    fn default() -> Self {
        let (outbound, _) = broadcast::channel(256);
        Sessions {
            live: Mutex::default(),
            outbound,
            sockets: Mutex::default(),
            next_socket: AtomicU64::new(1),
        }
    }
}

/// Jellyfin's session key: one session per Client + DeviceId, whichever token or replica the
/// requests come with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    client: String,
    device_id: String,
}

impl SessionKey {
    /// The key of the device a token was issued to.
    pub fn of(device: &DeviceInfo) -> SessionKey {
        SessionKey {
            client: device.client.clone(),
            device_id: device.device_id.clone(),
        }
    }

    /// The session's id as clients see it: 32 hex digits of the key, the same on every
    /// replica.
    pub fn id(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.client.as_bytes());
        hash.update(b"\x1f");
        hash.update(self.device_id.as_bytes());
        hex::encode(&hash.finalize()[..16])
    }
}

impl Sessions {
    fn with_live<R>(&self, f: impl FnOnce(&mut HashMap<SessionKey, Session>) -> R) -> R {
        let mut guard = match self.live.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    fn with_sockets<R>(&self, f: impl FnOnce(&mut HashMap<u64, OpenSocket>) -> R) -> R {
        let mut guard = match self.sockets.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Registers a WebSocket opened by `user` with the token whose stored form is
    /// `token_hash`, unless the token or the user holds too many already.
    pub fn open_socket(
        self: &Arc<Self>,
        user: &AuthUser,
        token_hash: String,
    ) -> Result<SocketHandle, SocketRefusal> {
        let close = CancellationToken::new();
        let id = self.next_socket.fetch_add(1, Ordering::Relaxed);
        self.with_sockets(|sockets| {
            let of_token = sockets
                .values()
                .filter(|s| s.token_id == user.token_id)
                .count();
            if of_token >= SOCKETS_PER_TOKEN {
                return Err(SocketRefusal::PerToken);
            }
            let of_user = sockets
                .values()
                .filter(|s| s.user_id == user.user_id)
                .count();
            if of_user >= SOCKETS_PER_USER {
                return Err(SocketRefusal::PerUser);
            }
            sockets.insert(
                id,
                OpenSocket {
                    token_id: user.token_id,
                    user_id: user.user_id,
                    token_hash,
                    close: close.clone(),
                },
            );
            Ok(())
        })?;
        self.socket_opened(user);
        Ok(SocketHandle {
            sessions: Arc::clone(self),
            id,
            user: user.clone(),
            close,
        })
    }

    /// WebSockets open on this replica.
    pub fn open_sockets(&self) -> usize {
        self.with_sockets(|sockets| sockets.len())
    }

    /// Closes every socket the revocation may concern whose token no longer resolves (revoked,
    /// user deleted or disabled). The database decides, so a revocation that only drops cache
    /// entries (a new login on another device) closes nothing. Returns how many were closed.
    pub async fn close_revoked(&self, revocation: Revocation, store: &Store) -> usize {
        let candidates: Vec<(String, CancellationToken)> = self.with_sockets(|sockets| {
            sockets
                .values()
                .filter(|s| match revocation {
                    Revocation::Token(id) => s.token_id == id,
                    Revocation::User(id) => s.user_id == id,
                    Revocation::All => true,
                })
                .map(|s| (s.token_hash.clone(), s.close.clone()))
                .collect()
        });
        let mut closed = 0;
        for (hash, close) in candidates {
            match store.token_owner(&hash).await {
                Ok(Some(owner)) if !owner.is_disabled => {}
                Ok(_) => {
                    close.cancel();
                    closed += 1;
                }
                // Unknown: keep the socket; its next check (the next revocation) decides.
                Err(e) => {
                    tracing::warn!(error = %crate::error::DisplayChain(&e), "cannot check a socket's token after a revocation");
                }
            }
        }
        closed
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
        self.with_live(|live| live.remove(&SessionKey::of(&user.device)));
    }

    /// Counts a WebSocket opened for the caller's session (done by [`Sessions::open_socket`]).
    pub fn socket_opened(&self, user: &AuthUser) {
        self.with_live(|live| entry_for(live, user).sockets += 1);
    }

    /// Counts a WebSocket closed.
    pub fn socket_closed(&self, user: &AuthUser) {
        self.with_live(|live| {
            if let Some(s) = live.get_mut(&SessionKey::of(&user.device)) {
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
fn entry_for<'a>(live: &'a mut HashMap<SessionKey, Session>, user: &AuthUser) -> &'a mut Session {
    let entry = match live.entry(SessionKey::of(&user.device)) {
        Entry::Occupied(found) => found.into_mut(),
        Entry::Vacant(new) => {
            let id = new.key().id();
            new.insert(Session {
                id,
                user_id: user.user_id,
                user_name: user.user_name.clone(),
                device: user.device.clone(),
                last_activity: now_millis(),
                capabilities: Capabilities::default(),
                sockets: 0,
            })
        }
    };
    // The device may have been handed to another user since.
    entry.user_id = user.user_id;
    entry.user_name.clone_from(&user.user_name);
    entry.last_activity = now_millis();
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(client: &str, device_id: &str) -> DeviceInfo {
        DeviceInfo {
            client: client.to_owned(),
            device_id: device_id.to_owned(),
            device_name: "Chromium".to_owned(),
            app_version: "10.11.11".to_owned(),
        }
    }

    #[test]
    fn one_client_and_device_is_one_session_whatever_else_differs() {
        let mut other_version = device("Jellyfin Web", "abc");
        other_version.app_version = "10.11.0".to_owned();
        other_version.device_name = "Firefox".to_owned();
        assert_eq!(
            SessionKey::of(&device("Jellyfin Web", "abc")),
            SessionKey::of(&other_version)
        );
        assert_ne!(
            SessionKey::of(&device("Jellyfin Web", "abc")),
            SessionKey::of(&device("Jellyfin Android", "abc"))
        );
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            SessionKey::of(&device("ab", "c")).id(),
            SessionKey::of(&device("a", "bc")).id()
        );
    }

    #[test]
    fn the_session_id_is_stable_across_replicas_and_releases() {
        // Clients keep session ids (remote control targets): the derivation must not change.
        let id = SessionKey::of(&device("Jellyfin Web", "abc")).id();
        let expected = Sha256::digest("Jellyfin Web\u{1f}abc".as_bytes());
        assert_eq!(id, hex::encode(&expected[..16]));
        assert_eq!(id.len(), 32);
    }
}

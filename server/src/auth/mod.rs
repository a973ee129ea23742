//! Who is calling: the authorization header, tokens, passwords and the [`AuthUser`] extractor.
//!
//! A token is 16 random bytes shown to the client once as 32 hex digits (Jellyfin's "N"
//! format) and stored only as its SHA-256. An authenticated request resolves its token through
//! a short in-process cache (`coord::TokenCache`, a few seconds, invalidated on every replica
//! on logout, password change or user deletion), else with one indexed query
//! (`Store::token_owner`).

pub mod address;
mod header;
pub mod limiter;
pub mod password;

pub use address::TrustedProxies;
pub use header::{AuthHeader, request_token};
pub use limiter::{LoginAttempt, LoginLimiter, LoginPolicy};

use axum::extract::FromRequestParts;
use http::request::Parts;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::jf::JfId;
use crate::state::AppState;
use crate::store::users::DeviceInfo;

/// How stale `last_used_at` may get before a request refreshes it (one write per token per
/// interval instead of one per request).
const TOUCH_INTERVAL_MILLIS: i64 = 5 * 60 * 1000;

/// A new token: (the text given to the client, the hash to store).
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

/// The stored form of a token. Tokens are hex, so case does not matter.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().to_ascii_lowercase().as_bytes()))
}

/// An authenticated caller: extract it in any handler that needs a token. Missing, unknown or
/// revoked tokens, and disabled users, are answered with 401 before the handler runs.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthUser {
    /// The user.
    pub user_id: JfId,
    /// The user's name.
    pub user_name: String,
    /// The user is an administrator.
    pub is_admin: bool,
    /// The token's row id (logout revokes it).
    pub token_id: JfId,
    /// The device the token was issued to (header fields recorded at login).
    pub device: DeviceInfo,
}

impl AuthUser {
    /// The user a request acts for: the token's user when `requested` is absent or the same;
    /// another user only for administrators (403 otherwise), as Jellyfin's `GetUserId`.
    pub fn acting_for(&self, requested: Option<JfId>) -> Result<JfId, ApiError> {
        match requested {
            None => Ok(self.user_id),
            Some(id) if id == self.user_id => Ok(id),
            Some(id) if self.is_admin => Ok(id),
            Some(_) => Err(ApiError::forbidden(
                "User is not allowed to access another user's data.",
            )),
        }
    }

    /// 403 unless the caller is an administrator.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "This action requires an administrator.",
            ))
        }
    }

    /// Resolves a request's token against the store; `Ok(None)` when there is no valid one.
    pub async fn resolve(parts: &Parts, state: &AppState) -> Result<Option<AuthUser>, ApiError> {
        let Some(token) = request_token(parts) else {
            return Ok(None);
        };
        let hash = hash_token(&token);
        let cache = state.coordinator.tokens();
        let owner = match cache.get(&hash) {
            Some(owner) => {
                state.metrics.token_cache_hits.inc();
                owner
            }
            None => {
                let generation = cache.generation();
                let Some(owner) = state.store.token_owner(&hash).await? else {
                    return Ok(None);
                };
                cache.insert(&hash, owner.clone(), generation);
                owner
            }
        };
        if owner.is_disabled {
            return Ok(None);
        }
        let now = crate::jf::now_millis();
        if now - owner.last_used_at > TOUCH_INTERVAL_MILLIS {
            cache.mark_used(&hash, now);
            // Off the request path: the request already released its connection.
            let store = state.store.clone();
            let (token_id, user_id) = (owner.token_id, owner.user_id);
            tokio::spawn(async move {
                if let Err(e) = store.touch_token(token_id, user_id).await {
                    tracing::debug!(error = %e, "could not record token activity");
                }
            });
        }
        Ok(Some(AuthUser {
            user_id: owner.user_id,
            user_name: owner.user_name,
            is_admin: owner.is_admin,
            token_id: owner.token_id,
            device: owner.device,
        }))
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        match AuthUser::resolve(parts, state).await? {
            Some(user) => {
                tracing::Span::current().record("user_id", tracing::field::display(user.user_id));
                state.sessions.touch(&user);
                parts.extensions.insert(user.clone());
                Ok(user)
            }
            None => Err(ApiError::unauthorized("Authentication is required.")),
        }
    }
}

/// An optional caller: `Some` with a valid token, `None` without one (never a rejection for a
/// missing token; a database failure is still an error).
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(MaybeAuthUser(Some(user.clone())));
        }
        let user = AuthUser::resolve(parts, state).await?;
        if let Some(u) = &user {
            parts.extensions.insert(u.clone());
        }
        Ok(MaybeAuthUser(user))
    }
}

/// Longest Client, Device, DeviceId or Version accepted (a web client's DeviceId, base64 of
/// its user agent and a time, is about 200).
pub const MAX_DEVICE_FIELD_BYTES: usize = crate::coord::quickconnect::MAX_FIELD_BYTES;

/// The client fields of the authorization header, whether or not it carries a token.
#[derive(Debug, Clone, Default)]
pub struct ClientHeader(pub AuthHeader);

impl ClientHeader {
    /// The four fields login and QuickConnect require; 400 naming the missing ones otherwise.
    pub fn device_info(&self) -> Result<DeviceInfo, ApiError> {
        let h = &self.0;
        let mut missing = Vec::new();
        for (name, value) in [
            ("Client", &h.client),
            ("Device", &h.device),
            ("DeviceId", &h.device_id),
            ("Version", &h.version),
        ] {
            if value.is_none() {
                missing.push(name);
            }
        }
        if !missing.is_empty() {
            return Err(ApiError::bad_request(format!(
                "The authorization header must name {}: \
                 Authorization: MediaBrowser Client=\"…\", Device=\"…\", DeviceId=\"…\", Version=\"…\"",
                missing.join(", ")
            )));
        }
        // The fields are kept (with the token, or with a pending QuickConnect request): a
        // client cannot make the server hold more than this per field.
        for (name, value) in [
            ("Client", &h.client),
            ("Device", &h.device),
            ("DeviceId", &h.device_id),
            ("Version", &h.version),
        ] {
            if value
                .as_ref()
                .is_some_and(|v| v.len() > MAX_DEVICE_FIELD_BYTES)
            {
                return Err(ApiError::bad_request(format!(
                    "The authorization header field {name} is longer than \
                     {MAX_DEVICE_FIELD_BYTES} bytes."
                )));
            }
        }
        Ok(DeviceInfo {
            client: h.client.clone().unwrap_or_default(),
            device_name: h.device.clone().unwrap_or_default(),
            device_id: h.device_id.clone().unwrap_or_default(),
            app_version: h.version.clone().unwrap_or_default(),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(ClientHeader(
            AuthHeader::from_headers(&parts.headers).unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_32_lowercase_hex_digits_and_hash_without_regard_to_case() {
        let (token, hash) = new_token();
        assert_eq!(token.len(), 32);
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(hash_token(&token.to_ascii_uppercase()), hash);
        assert_ne!(hash, token);
    }
}

//! Who a request acts for, read the same way from both of Jellyfin's route styles: the legacy
//! `/Users/{userId}/Items/...` names the user in the path, the new `/Items?userId=...` in the
//! query, and most calls name nobody (the token's user). One handler serves both routes.
//!
//! Acting for another user needs an administrator (403 otherwise), as Jellyfin's `GetUserId`.
//! This module only resolves ids; it reads nothing from storage but the caller's token (and,
//! asked whether the acting user is an administrator, that user's record).

use axum::extract::{FromRequestParts, RawPathParams};
use http::request::Parts;
use serde::Deserialize;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::jf::{JfId, from_value, parse_query};
use crate::state::AppState;

/// The user a request acts for: `{userid}` in the path, else `?userId=`, else the caller.
#[derive(Debug, Clone)]
pub struct ActingUser {
    /// The user whose data the request reads or writes.
    pub id: JfId,
    /// Who is calling.
    pub caller: AuthUser,
}

impl FromRequestParts<AppState> for ActingUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = AuthUser::from_request_parts(parts, state).await?;
        let requested = match path_id(parts, "userid").await? {
            Some(id) => Some(id),
            None => query_user_id(parts)?,
        };
        let id = caller.acting_for(requested)?;
        Ok(ActingUser { id, caller })
    }
}

impl ActingUser {
    /// Whether the acting user is an administrator: the caller's own flag (from its token, no
    /// query) when acting for themselves, else the user's record.
    pub async fn is_admin(&self, state: &AppState) -> Result<bool, ApiError> {
        if self.id == self.caller.user_id {
            return Ok(self.caller.is_admin);
        }
        crate::api::extras::is_admin(state, self.id).await
    }
}

/// The item a route names as `{itemid}`, in either route style; 400 for a malformed id.
#[derive(Debug, Clone, Copy)]
pub struct ItemId(pub JfId);

impl<S: Send + Sync> FromRequestParts<S> for ItemId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        path_id(parts, "itemid")
            .await?
            .map(ItemId)
            .ok_or_else(|| ApiError::bad_request("The route names no item."))
    }
}

/// A path parameter parsed as an id; `None` when the route has no such parameter.
async fn path_id(parts: &mut Parts, name: &str) -> Result<Option<JfId>, ApiError> {
    let Ok(params) = RawPathParams::from_request_parts(parts, &()).await else {
        return Ok(None);
    };
    params
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| {
            value
                .parse::<JfId>()
                .map_err(|_| ApiError::bad_request(format!("`{value}` is not an id.")))
        })
        .transpose()
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UserIdParam {
    user_id: Option<JfId>,
}

fn query_user_id(parts: &Parts) -> Result<Option<JfId>, ApiError> {
    let value = parse_query(parts.uri.query().unwrap_or(""));
    from_value::<UserIdParam>(value)
        .map(|p| p.user_id)
        .map_err(|e| ApiError::bad_request(format!("Invalid query parameter: {e}")))
}

//! Placeholder until the feature lands (owned by the scan/stream engineer).

use axum::Router;

use crate::state::AppState;

/// This feature's routes.
pub fn router() -> Router<AppState> {
    Router::new()
}

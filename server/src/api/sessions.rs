//! Placeholder.

use axum::Router;

use crate::state::AppState;

/// This feature's routes.
pub fn router() -> Router<AppState> {
    Router::new()
}

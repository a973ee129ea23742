//! Liveness and readiness for Kubernetes probes and load balancers.
//!
//! `/health/live` answers while the process can serve HTTP at all. `/health/ready` answers 200
//! only when the database answers and the server is not shutting down, so a draining replica
//! leaves the load balancer's pool. Neither needs a token; neither reveals more than a status.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde::Serialize;

use crate::state::AppState;

/// The health routes (on the public listener, so probes and proxies can reach them).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> &'static str {
    "ok"
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Readiness {
    status: &'static str,
    database: &'static str,
    draining: bool,
}

async fn ready(State(state): State<AppState>) -> Response {
    let draining = !state.is_accepting();
    let database = match state.store.ping().await {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(error = %crate::error::DisplayChain(&e), "readiness: database check failed");
            "unreachable"
        }
    };
    let ok = !draining && database == "ok";
    let body = Readiness {
        status: if ok { "ready" } else { "not ready" },
        database,
        draining,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

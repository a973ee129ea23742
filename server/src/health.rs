//! Liveness and readiness for Kubernetes probes and load balancers.
//!
//! `/health/live` answers while the process can serve HTTP at all. `/health/ready` answers 200
//! only when the database answers and the server is not shutting down, so a draining replica
//! leaves the load balancer's pool. Neither needs a token; neither reveals more than a status.
//!
//! The readiness body also reports coordination: `Redis` (`ok`, `unreachable`, `not used`),
//! `Role` (`leader`, `follower`, `none`) and `Epoch`. An unreachable Redis does *not* make a
//! replica unready: it still serves everything that needs only the database (logins, browsing,
//! streaming, play positions), so taking every replica out of the load balancer during a Redis
//! outage would turn a degraded cluster into a dead one. It only leads nobody (no replica can
//! hold the lease) and QuickConnect answers 503 until Redis is back.

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
    redis: &'static str,
    role: crate::coord::Role,
    epoch: Option<i64>,
    replica: String,
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
    let coordination = state.coordinator.status();
    let body = Readiness {
        status: if ok { "ready" } else { "not ready" },
        database,
        draining,
        redis: coordination.redis,
        role: coordination.role,
        epoch: coordination.epoch,
        replica: state.replica_id.clone(),
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

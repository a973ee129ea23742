//! The Ephyra media server: a Jellyfin-compatible HTTP API whose durable state lives in a
//! database (SQLite alone, PostgreSQL for replicas), so that any replica can serve any request.
//!
//! Layout, by feature: `api/` (one router per resource), `store/` (storage behind one type,
//! SQLite and PostgreSQL), `auth` (headers, tokens, passwords), `jf` (Jellyfin's wire
//! conventions), `scan/` (library scanning), `stream/` (direct streaming with byte ranges),
//! `jobs/` (work that runs once across replicas: queue workers and the leader's scheduler),
//! `k8s` (status reporting into the MediaServerCluster), `app` (assembly, serving, shutdown). The binary in `main.rs` only reads configuration and
//! calls [`run`].

pub mod api;
pub mod app;
pub mod auth;
pub mod coord;
pub mod discovery;
pub mod error;
pub mod health;
pub mod jf;
pub mod jobs;
pub mod k8s;
pub mod listener;
pub mod localization;
pub mod metrics;
pub mod playback;
pub mod sample;
pub mod scan;
pub mod sessions;
pub mod state;
pub mod store;
pub mod stream;
pub mod transcode;
pub mod web;

pub use app::{RunError, admin_app, app, run, serve, start};
pub use error::ApiError;
pub use state::AppState;
pub use store::Store;

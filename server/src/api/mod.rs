//! The Jellyfin-compatible HTTP API, one module per feature, each with its own `router()`.
//!
//! Route templates are written in lowercase: `app` rewrites every request path to lowercase
//! before routing, because Jellyfin matches paths without regard to case. Path parameters
//! therefore arrive lowercased too (ids are hex, image types and containers are matched without
//! regard to case). Query strings keep their case; read them with [`crate::jf::Query`].
//!
//! Parameter names must agree between routes that share a prefix (the router requires it):
//! `{userid}` under `/users/`, `{itemid}` under `/items/` and `/videos/`. Read ids with
//! `crate::jf::Path<JfId>`, bodies with `crate::jf::Json`, so bad input is a 400 in the common
//! error shape.

pub mod acting;
pub mod client;
pub mod dashboard;
pub mod displayprefs;
pub mod dto;
pub mod extras;
pub mod hls;
pub mod images;
pub mod items;
pub mod playback;
pub mod playstate;
pub mod quickconnect;
pub mod sessions;
pub mod startup;
pub mod subtitles;
pub mod system;
pub mod users;

use axum::Router;

use crate::state::AppState;

/// Every API route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(system::router())
        .merge(users::router())
        .merge(quickconnect::router())
        .merge(sessions::router())
        .merge(items::router())
        .merge(extras::router())
        .merge(images::router())
        .merge(playback::router())
        .merge(subtitles::router())
        .merge(playstate::router())
        .merge(startup::router())
        .merge(startup::wizard_support_router())
        .merge(client::router())
        .merge(dashboard::router())
        .merge(displayprefs::router())
        .merge(hls::router())
}

//! Tests across modules: reconcile against the in-memory API, and every rendered object
//! against the official schemas.

mod reconcile;
mod schemas;

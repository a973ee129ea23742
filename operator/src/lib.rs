//! The Ephyra operator: turns one `MediaServerCluster` into the whole stack (PostgreSQL,
//! Redis, shared storage, the server replicas with GPU access, a sticky Traefik route) and
//! reports what is and is not ready.
//!
//! Reconcile is a pipeline with a pure middle:
//!
//! - [`validate`]: the spec → a [`validate::ValidatedCluster`] (defaults resolved, names as
//!   newtypes, every problem reported with its field);
//! - [`build`]: the validated cluster → every desired object, one file per object, no client;
//! - [`apply`]: server-side apply with one field manager, and no write when nothing changed;
//! - [`status`]: observed children → conditions, counts, URL, events.
//!
//! [`controller`] ties them to a kube-runtime `Controller` with leader election; [`render`]
//! prints what `build` makes for a file, without a cluster. Only `apply`, `status` and
//! `controller` talk to the API.

pub mod apply;
pub mod build;
pub mod controller;
pub mod error;
pub mod metrics;
pub mod names;
pub mod patch;
pub mod render;
pub mod status;
pub mod validate;

#[cfg(test)]
mod testing;

#[cfg(test)]
mod tests;

pub use error::Error;

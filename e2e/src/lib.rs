//! Harness for black-box tests over the built binaries: start `ephyra-server` processes with a
//! given environment, wait until they answer, stop them gently (SIGTERM) or brutally (SIGKILL);
//! a [`LocalCluster`] of replicas over one PostgreSQL and one Redis, [`Haproxy`] or the real
//! Traefik ([`traefik::Traefik`]) in front of it,
//! and a [`JellyfinClient`] that does what an app does.
//!
//! The binaries are the ones `cargo test --workspace` (or `cargo build -p ephyra-server`) put
//! next to the test executable; the harness never builds anything itself.
//! Databases, Redis and media come from `ephyra-testsupport`.

pub mod client;
pub mod cluster;
pub mod haproxy;
mod server;
pub mod traefik;
pub mod wait;

pub use client::JellyfinClient;
pub use cluster::LocalCluster;
pub use haproxy::Haproxy;
pub use server::{Ports, ServerProcess, binary};

/// Why the harness could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The binary is not built.
    #[error("{0} is not built: run `cargo build -p ephyra-server` (make test does)")]
    MissingBinary(std::path::PathBuf),
    /// A test service (PostgreSQL, Redis, ports, media) could not be provided.
    #[error(transparent)]
    Support(#[from] ephyra_testsupport::SupportError),
    /// The process could not be started or signalled.
    #[error("{what}: {source}")]
    Process {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The server did not become healthy in time; its log is attached.
    #[error("{what} did not answer /health/live within {seconds} s; its output:\n{log}")]
    NotHealthy {
        /// Which server.
        what: String,
        /// How long we waited.
        seconds: u64,
        /// What it printed.
        log: String,
    },
}

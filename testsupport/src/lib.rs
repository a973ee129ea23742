//! Real services and real media for Ephyra's tests.
//!
//! The server's storage tests need a real PostgreSQL, its coordination tests a real Redis, and
//! its scanner and HLS tests real video files; the e2e suite runs the built binaries and must
//! not leave them behind. This crate starts those services from the system's binaries in
//! temporary folders on free ports, generates short videos with ffmpeg, and cleans up after
//! itself, so a test says what it needs in one line:
//!
//! ```no_run
//! # async fn demo() -> Result<(), ephyra_testsupport::SupportError> {
//! let database_url = ephyra_testsupport::postgres::fresh_database().await?;
//! let redis = ephyra_testsupport::RedisGuard::start().await?;
//! let library = ephyra_testsupport::media::cached_sample_library().await?;
//! # let _ = (database_url, redis.url(), &library.root);
//! # Ok(()) }
//! ```
//!
//! [`kube_fake`] is the exception that proves the rule: no Kubernetes API server runs on the
//! development machines, so the operator's and the server's Kubernetes code is tested against
//! a small in-memory one.
//!
//! Nothing else here mocks anything, and nothing downloads anything: a missing binary is reported as
//! a [`SupportError::MissingBinary`] naming the Debian package that provides it
//! (`scripts/ensure-deps.sh`, run by `make test`, installs them all).
//!
//! Every process this crate starts is tied to the test process (see [`process`]): when a test
//! binary exits or is killed, its servers go with it, even those held in statics.

mod error;
pub mod kube_fake;
pub mod media;
pub mod net;
pub mod pgs;
pub mod postgres;
pub mod process;
pub mod redis;
mod scratch;
mod service;
pub mod wait;

pub use error::SupportError;
pub use media::{SampleLibrary, cached_sample_library, generate_library, generate_video};
pub use net::{free_port, wait_for_tcp};
pub use postgres::PostgresGuard;
pub use process::ChildGuard;
pub use redis::RedisGuard;

//! The one error type of this crate.
//!
//! Each variant names the operation that failed and, where the cure is known (a package to
//! install, a name to change), says it: these messages end up in failed CI runs, read by
//! someone who did not write the test.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Why a test service or test file could not be provided.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupportError {
    /// A program this crate runs is not installed.
    #[error("{what} not found {searched}: install the `{package}` package (make test does this)")]
    MissingBinary {
        /// The program or programs, e.g. "PostgreSQL binaries (initdb, postgres)".
        what: &'static str,
        /// Where they were looked for, e.g. "on PATH or under /usr/lib/postgresql/*/bin".
        searched: &'static str,
        /// The Debian package that provides them.
        package: &'static str,
    },

    /// A temporary folder could not be created.
    #[error("creating a temporary folder under {base}: {source}")]
    CreateScratchDir {
        /// The folder it was to be created in.
        base: PathBuf,
        /// What the filesystem said.
        source: io::Error,
    },

    /// A file or folder could not be written, read or handed over.
    #[error("{action} {path}: {source}")]
    File {
        /// What was being done, e.g. "writing the password file".
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// What the filesystem said.
        source: io::Error,
    },

    /// A program could not be started at all.
    #[error("starting `{program}`: {source}")]
    Spawn {
        /// The program, as it was named to the OS.
        program: String,
        /// What the OS said.
        source: io::Error,
    },

    /// A one-shot program (initdb, ffmpeg, ffprobe, ...) ran and failed.
    #[error("`{program}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The program.
        program: String,
        /// How it ended.
        status: String,
        /// The end of what it wrote to stderr.
        stderr: String,
    },

    /// A server exited while it was starting.
    #[error("{service} exited while starting ({status}); its log ends with: {log}")]
    ServiceExited {
        /// "PostgreSQL" or "Redis".
        service: &'static str,
        /// How it ended.
        status: String,
        /// The end of its log.
        log: String,
    },

    /// A server kept running but never accepted connections.
    #[error(
        "{service} did not accept connections on {addr} within {waited:?}; its log ends with: {log}"
    )]
    StartTimeout {
        /// "PostgreSQL" or "Redis".
        service: &'static str,
        /// Where it was expected to listen.
        addr: SocketAddr,
        /// How long it was given.
        waited: Duration,
        /// The end of its log.
        log: String,
    },

    /// Every port tried was taken by someone else before the server could bind it.
    #[error("{service} found each of {attempts} free ports taken by the time it bound them")]
    NoFreePort {
        /// "PostgreSQL" or "Redis".
        service: &'static str,
        /// How many ports were tried.
        attempts: u32,
    },

    /// The port a server had before `restart()` is now used by another process.
    #[error("{service} cannot restart: its port {port} is now used by another process")]
    PortLost {
        /// "PostgreSQL" or "Redis".
        service: &'static str,
        /// The port it had.
        port: u16,
    },

    /// A signal could not be sent to a server.
    #[error("signalling {service} (pid {pid}): {source}")]
    Signal {
        /// "PostgreSQL" or "Redis".
        service: &'static str,
        /// The server's process id.
        pid: u32,
        /// What the OS said.
        source: io::Error,
    },

    /// No free port could be obtained from the OS.
    #[error("asking the OS for a free port: {source}")]
    FreePort {
        /// What the OS said.
        source: io::Error,
    },

    /// Nothing accepted TCP connections at an address in time.
    #[error("nothing accepted TCP connections on {addr} within {waited:?}: {last_error}")]
    WaitForTcp {
        /// The address waited on.
        addr: SocketAddr,
        /// How long it was given.
        waited: Duration,
        /// The last connect error.
        last_error: String,
    },

    /// A database name that would need quoting tricks was asked for.
    #[error(
        "database name {name:?} is not a plain identifier: use 1 to 63 characters from a-z, 0-9 \
         and _, starting with a letter or _"
    )]
    InvalidDatabaseName {
        /// The name asked for.
        name: String,
    },

    /// A statement on the test PostgreSQL failed.
    #[error("{action} on the test PostgreSQL: {source}")]
    Database {
        /// What was being done, e.g. "creating database test_1".
        action: String,
        /// What sqlx said.
        source: sqlx::Error,
    },

    /// ffprobe's output could not be understood.
    #[error("reading ffprobe's description of {path}: {message}")]
    Probe {
        /// The probed file.
        path: PathBuf,
        /// What was wrong with the output.
        message: String,
    },
}

//! A real PostgreSQL server in a temporary folder.
//!
//! [`PostgresGuard::start`] runs `initdb` and `postgres` from the system's binaries on a free
//! port of 127.0.0.1, tuned for speed over surviving a power cut (`fsync=off`). Most tests want
//! [`fresh_database`]: one server per test process, shared by its tests, and a new empty
//! database for each. Tests of crash recovery start their own guard and use
//! [`PostgresGuard::kill`] and [`PostgresGuard::restart`]. Failover tests start a streaming
//! standby of a guard with [`PostgresGuard::start_standby`] (`pg_basebackup -R`) and promote
//! it with [`PostgresGuard::promote`].
//!
//! PostgreSQL refuses to run as root, and CI runs tests as root; then the server runs as the
//! `nobody` user (see [`crate::process`]), in a folder handed over to it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::process::Signal;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection};
use tempfile::TempDir;
use tokio::sync::OnceCell;

use crate::net::POLL_INTERVAL;
use crate::process::{self, RunAs};
use crate::scratch::scratch_dir;
use crate::service::Server;
use crate::{SupportError, net};

/// The superuser initdb creates; unlike any real deployment's, so a swapped value shows.
const SUPERUSER: &str = "ephyra_su";
/// Its password; checked for real (scram-sha-256 over TCP).
const PASSWORD: &str = "testsupport-pass";
/// The database [`PostgresGuard::url`] points at, owned by [`SUPERUSER`].
const DEFAULT_DATABASE: &str = "ephyra_test";
/// Generous: two cores running several test processes can make a start slow.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// A fast shutdown takes well under a second; past this the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How many free ports to try before giving up.
const PORT_ATTEMPTS: u32 = 5;
const SERVICE: &str = "PostgreSQL";

/// A PostgreSQL server that lives as long as this guard.
///
/// Dropping the guard stops the server (fast shutdown) and removes its folder.
#[derive(Debug)]
pub struct PostgresGuard {
    /// Holds the cluster, the Unix socket and the log; removed on drop, after the server stops.
    scratch: TempDir,
    /// The cluster inside `scratch`; kept across restarts, so committed rows survive them.
    data_dir: PathBuf,
    /// The TCP port on 127.0.0.1; kept across restarts, so URLs handed out stay valid.
    port: u16,
    /// The binaries of one PostgreSQL version, so the server can read initdb's cluster.
    binaries: Binaries,
    /// Who the server runs as when tests run as root (PostgreSQL refuses root).
    run_as: Option<RunAs>,
    /// The postmaster; `None` after [`PostgresGuard::stop`] or [`PostgresGuard::kill`].
    server: Option<Server>,
}

/// The process-wide server behind [`PostgresGuard::shared`].
static SHARED: OnceCell<PostgresGuard> = OnceCell::const_new();

/// Numbers the databases [`PostgresGuard::fresh_database`] creates in this process.
static NEXT_DATABASE: AtomicU64 = AtomicU64::new(1);

/// A URL of a new, empty database on this process's shared server (see
/// [`PostgresGuard::shared`]).
pub async fn fresh_database() -> Result<String, SupportError> {
    PostgresGuard::shared().await?.fresh_database().await
}

impl PostgresGuard {
    /// Creates a cluster in a new temporary folder and starts a server on a free port.
    pub async fn start() -> Result<Self, SupportError> {
        let binaries = Binaries::locate()?;
        let run_as = process::unprivileged_user_if_root();
        if run_as.is_some() && process::setpriv().is_none() {
            return Err(process::missing_setpriv());
        }
        let scratch = scratch_dir("pg", run_as.is_some())?;
        process::give_to(scratch.path(), run_as)?;
        let data_dir = scratch.path().join("data");
        init_cluster(&binaries, run_as, scratch.path(), &data_dir).await?;

        let mut guard = Self {
            scratch,
            data_dir,
            port: 0,
            binaries,
            run_as,
            server: None,
        };
        guard.start_on_a_free_port().await?;
        guard.create_database(DEFAULT_DATABASE).await?;
        Ok(guard)
    }

    /// The server shared by every test in this process, started by the first caller.
    ///
    /// It is never dropped: it stops when the process exits, and its folder is removed by
    /// the next test process that starts a PostgreSQL. Do not stop or crash it; start your
    /// own guard for that.
    pub async fn shared() -> Result<&'static Self, SupportError> {
        SHARED.get_or_try_init(Self::start).await
    }

    /// `postgres://user:password@127.0.0.1:port/ephyra_test`, a database owned by the
    /// superuser.
    pub fn url(&self) -> String {
        self.url_for(DEFAULT_DATABASE)
    }

    /// The URL of `database` on this server, as the superuser.
    pub fn url_for(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{PASSWORD}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary folder holding the cluster, its socket and `postgres.log`.
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// The postmaster's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(Server::pid)
    }

    /// Creates an empty database called `name` and returns its URL.
    ///
    /// `name` must be a plain identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes), so it never
    /// needs quoting and is never silently truncated.
    pub async fn create_database(&self, name: &str) -> Result<String, SupportError> {
        if !is_plain_identifier(name) {
            return Err(SupportError::InvalidDatabaseName {
                name: name.to_owned(),
            });
        }
        let action = || format!("creating database {name}");
        let mut connection =
            self.connect("postgres")
                .await
                .map_err(|source| SupportError::Database {
                    action: action(),
                    source,
                })?;
        // The name is checked above; identifiers cannot be bound as parameters.
        let statement = format!("CREATE DATABASE {name}");
        let created = sqlx::raw_sql(AssertSqlSafe(statement))
            .execute(&mut connection)
            .await;
        let _ = connection.close().await;
        created.map_err(|source| SupportError::Database {
            action: action(),
            source,
        })?;
        Ok(self.url_for(name))
    }

    /// Creates a database with a name unique in this process and returns its URL.
    pub async fn fresh_database(&self) -> Result<String, SupportError> {
        let number = NEXT_DATABASE.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("test_{number}")).await
    }

    /// Stops the server with a fast shutdown: clients are disconnected, and committed data
    /// is kept. Does nothing if it is not running.
    pub async fn stop(&mut self) -> Result<(), SupportError> {
        match self.server.take() {
            Some(server) => server.stop(Signal::INT, STOP_TIMEOUT).await,
            None => Ok(()),
        }
    }

    /// Kills the postmaster with SIGKILL, as a crash would. Every committed row survives it
    /// (a process crash, not a power cut, so `fsync=off` loses nothing).
    pub fn kill(&mut self) -> Result<(), SupportError> {
        match self.server.take() {
            Some(server) => server.kill(),
            None => Ok(()),
        }
    }

    /// Starts the server again on the same folder and port (stopping it first if it runs)
    /// and waits until it accepts connections, crash recovery included.
    pub async fn restart(&mut self) -> Result<(), SupportError> {
        self.stop().await?;
        let started = Instant::now();
        loop {
            match self.launch().await {
                Launch::Ready(server) => {
                    self.server = Some(server);
                    return Ok(());
                }
                Launch::PortTaken => {
                    return Err(SupportError::PortLost {
                        service: SERVICE,
                        port: self.port,
                    });
                }
                // Backends of a killed postmaster take a moment to notice and exit.
                Launch::Transient(_) if started.elapsed() < START_TIMEOUT => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                Launch::Transient(error) | Launch::Failed(error) => return Err(error),
            }
        }
    }

    /// Starts a streaming standby of this server in a new temporary folder, on a free port:
    /// `pg_basebackup -R` (asynchronous replication, as CloudNativePG's default), then the
    /// standby's own postmaster, read-only until [`PostgresGuard::promote`].
    pub async fn start_standby(&self) -> Result<PostgresGuard, SupportError> {
        let scratch = scratch_dir("pg-standby", self.run_as.is_some())?;
        process::give_to(scratch.path(), self.run_as)?;
        let data_dir = scratch.path().join("data");
        let basebackup = self.binaries.beside("pg_basebackup");
        let mut command = process::tied_command_as(basebackup.as_os_str(), self.run_as, "KILL");
        command
            .arg("--pgdata")
            .arg(&data_dir)
            .arg("--dbname")
            .arg(format!(
                "host=127.0.0.1 port={} user={SUPERUSER} password={PASSWORD}",
                self.port
            ))
            // -R: standby.signal and primary_conninfo, so the copy follows this server.
            .args(["--write-recovery-conf", "--wal-method=stream"])
            .args(["--checkpoint=fast", "--no-sync"])
            .env("LC_ALL", "C")
            .current_dir(scratch.path());
        let output = tokio::process::Command::from(command)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|source| SupportError::Spawn {
                program: basebackup.display().to_string(),
                source,
            })?;
        if !output.status.success() {
            return Err(SupportError::CommandFailed {
                program: basebackup.display().to_string(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        let mut standby = Self {
            scratch,
            data_dir,
            port: 0,
            binaries: self.binaries.clone(),
            run_as: self.run_as,
            server: None,
        };
        standby.start_on_a_free_port().await?;
        Ok(standby)
    }

    /// Promotes a standby to primary (`pg_promote`, what `pg_ctl promote` asks for) and
    /// returns once it accepts writes.
    pub async fn promote(&self) -> Result<(), SupportError> {
        self.run("promoting the standby", "SELECT pg_promote(true, 60)")
            .await
    }

    /// Forces a checkpoint, as a switchover does before stopping the primary, so its fast
    /// shutdown has little left to write.
    pub async fn checkpoint(&self) -> Result<(), SupportError> {
        self.run("checkpointing", "CHECKPOINT").await
    }

    /// Whether this server is a standby (in recovery).
    pub async fn is_standby(&self) -> Result<bool, SupportError> {
        let action = || "asking whether the server is in recovery".to_owned();
        let mut connection =
            self.connect("postgres")
                .await
                .map_err(|source| SupportError::Database {
                    action: action(),
                    source,
                })?;
        let standby: Result<bool, _> = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut connection)
            .await;
        let _ = connection.close().await;
        standby.map_err(|source| SupportError::Database {
            action: action(),
            source,
        })
    }

    /// Runs one constant statement as the superuser on the `postgres` database.
    async fn run(&self, action: &str, statement: &'static str) -> Result<(), SupportError> {
        let mut connection =
            self.connect("postgres")
                .await
                .map_err(|source| SupportError::Database {
                    action: action.to_owned(),
                    source,
                })?;
        let done = sqlx::raw_sql(statement).execute(&mut connection).await;
        let _ = connection.close().await;
        done.map(|_| ()).map_err(|source| SupportError::Database {
            action: action.to_owned(),
            source,
        })
    }

    async fn start_on_a_free_port(&mut self) -> Result<(), SupportError> {
        for _ in 0..PORT_ATTEMPTS {
            self.port = net::free_port()?;
            match self.launch().await {
                Launch::Ready(server) => {
                    self.server = Some(server);
                    return Ok(());
                }
                Launch::PortTaken => continue,
                Launch::Transient(error) | Launch::Failed(error) => return Err(error),
            }
        }
        Err(SupportError::NoFreePort {
            service: SERVICE,
            attempts: PORT_ATTEMPTS,
        })
    }

    /// Starts the postmaster once and waits until it serves this guard's cluster.
    async fn launch(&self) -> Launch {
        let mut command =
            process::tied_command_as(self.binaries.postgres.as_os_str(), self.run_as, "INT");
        command
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.scratch.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=200"])
            // Surviving a power cut costs time and tests do not need it. Commits stay
            // synchronous: with fsync off that costs one write(), and it keeps kill() from
            // losing rows committed just before it, which crash tests rely on.
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off"])
            // English messages, which `launch` reads.
            .env("LC_ALL", "C")
            .current_dir(self.scratch.path());
        let log = self.scratch.path().join("postgres.log");
        let mut server = match Server::spawn(SERVICE, command, &log) {
            Ok(server) => server,
            Err(error) => return Launch::Failed(error),
        };

        let started = Instant::now();
        loop {
            if let Some(status) = server.exit_status() {
                let log = server.log_tail();
                let error = server.exited_error(status);
                if log.contains("Address already in use") {
                    return Launch::PortTaken;
                }
                if log.contains("pre-existing shared memory block")
                    || log.contains("lock file \"postmaster.pid\" already exists")
                {
                    return Launch::Transient(error);
                }
                return Launch::Failed(error);
            }
            match self.serves_this_cluster().await {
                Some(true) => return Launch::Ready(server),
                // Someone else's server took the port before ours could bind it.
                Some(false) => {
                    let _ = server.kill();
                    return Launch::PortTaken;
                }
                None => {}
            }
            if started.elapsed() >= START_TIMEOUT {
                let error = SupportError::StartTimeout {
                    service: SERVICE,
                    addr: ([127, 0, 0, 1], self.port).into(),
                    waited: START_TIMEOUT,
                    log: server.log_tail(),
                };
                let _ = server.kill();
                return Launch::Failed(error);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Whether the server on our port is ours; `None` while nothing answers there yet.
    ///
    /// Every test server has the same superuser and password, so a successful login alone
    /// could be another test process's server that grabbed the port first.
    async fn serves_this_cluster(&self) -> Option<bool> {
        let attempt = tokio::time::timeout(Duration::from_secs(5), self.connect("postgres"));
        let mut connection = attempt.await.ok()?.ok()?;
        let data_dir: Option<String> =
            sqlx::query_scalar("SELECT current_setting('data_directory')")
                .fetch_one(&mut connection)
                .await
                .ok();
        let _ = connection.close().await;
        Some(data_dir.is_some_and(|dir| Path::new(&dir) == self.data_dir))
    }

    async fn connect(&self, database: &str) -> Result<PgConnection, sqlx::Error> {
        let options = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username(SUPERUSER)
            .password(PASSWORD)
            .database(database);
        PgConnection::connect_with(&options).await
    }
}

impl Drop for PostgresGuard {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop_blocking(Signal::INT, STOP_TIMEOUT);
        }
        // `scratch` is removed after this, with the server gone.
    }
}

/// The outcome of one start of the postmaster.
enum Launch {
    Ready(Server),
    /// Another process bound the port first: try another one.
    PortTaken,
    /// Leftovers of a killed server are still going away: try again shortly.
    Transient(SupportError),
    Failed(SupportError),
}

/// `initdb` and `postgres` of one PostgreSQL version.
#[derive(Debug, Clone)]
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
}

impl Binaries {
    /// Prefers `initdb` on `PATH` (with the `postgres` beside it), then the newest version
    /// under `/usr/lib/postgresql/*/bin`, where Debian installs them off `PATH`.
    fn locate() -> Result<Self, SupportError> {
        Self::on_path()
            .or_else(Self::newest_debian)
            .ok_or(SupportError::MissingBinary {
                what: "PostgreSQL binaries (initdb, postgres)",
                searched: "on PATH or under /usr/lib/postgresql/*/bin",
                package: "postgresql",
            })
    }

    fn on_path() -> Option<Self> {
        let initdb = process::find_on_path("initdb")?;
        // A symlink such as /usr/local/bin/initdb points into the version's own folder.
        let beside = std::fs::canonicalize(&initdb)
            .ok()
            .and_then(|real| Self::in_folder(real.parent()?));
        beside.or_else(|| {
            Some(Self {
                initdb,
                postgres: process::find_on_path("postgres")?,
            })
        })
    }

    fn newest_debian() -> Option<Self> {
        let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
        versions
            .flatten()
            .filter_map(|entry| {
                let version = version_key(entry.file_name().to_str()?)?;
                Some((version, Self::in_folder(&entry.path().join("bin"))?))
            })
            .max_by_key(|(version, _)| *version)
            .map(|(_, binaries)| binaries)
    }

    /// Another program of the same version (`pg_basebackup`): beside `initdb`, else on `PATH`.
    fn beside(&self, name: &str) -> PathBuf {
        let sibling = std::fs::canonicalize(&self.initdb)
            .ok()
            .and_then(|real| Some(real.parent()?.join(name)))
            .filter(|path| path.is_file());
        sibling
            .or_else(|| process::find_on_path(name))
            .unwrap_or_else(|| PathBuf::from(name))
    }

    fn in_folder(folder: &Path) -> Option<Self> {
        let initdb = folder.join("initdb");
        let postgres = folder.join("postgres");
        (initdb.is_file() && postgres.is_file()).then_some(Self { initdb, postgres })
    }
}

/// "15" → (15, 0), "9.6" → (9, 6); anything else is not a version folder.
fn version_key(name: &str) -> Option<(u32, u32)> {
    let mut parts = name.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |minor| minor.parse().ok())?;
    Some((major, minor))
}

/// Runs `initdb` for a fast, password-protected cluster in `data_dir`.
async fn init_cluster(
    binaries: &Binaries,
    run_as: Option<RunAs>,
    scratch: &Path,
    data_dir: &Path,
) -> Result<(), SupportError> {
    let password_file = scratch.join("superuser-password");
    std::fs::write(&password_file, PASSWORD).map_err(|source| SupportError::File {
        action: "writing the PostgreSQL password file",
        path: password_file.clone(),
        source,
    })?;
    process::give_to(&password_file, run_as)?;

    let mut command = process::tied_command_as(binaries.initdb.as_os_str(), run_as, "KILL");
    command
        .arg("--pgdata")
        .arg(data_dir)
        .arg(format!("--username={SUPERUSER}"))
        .arg("--pwfile")
        .arg(&password_file)
        .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
        .args(["--encoding=UTF8", "--no-locale"])
        // initdb's own fsyncs are most of its run time.
        .arg("--no-sync")
        .env("LC_ALL", "C")
        .current_dir(scratch);
    let output = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| SupportError::Spawn {
            program: binaries.initdb.display().to_string(),
            source,
        })?;
    let _ = std::fs::remove_file(&password_file);
    if output.status.success() {
        return Ok(());
    }
    Err(SupportError::CommandFailed {
        program: binaries.initdb.display().to_string(),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
    })
}

/// Whether `name` is a lower-case identifier PostgreSQL keeps as it is.
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first == '_');
    starts_well
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_lower_case_identifiers_are_database_names() {
        for good in ["test_1", "_x", "ephyra"] {
            assert!(is_plain_identifier(good), "{good}");
        }
        let too_long = "a".repeat(64);
        for bad in [
            "",
            "1abc",
            "Test",
            "a-b",
            "a b",
            "a\"b",
            "é",
            too_long.as_str(),
        ] {
            assert!(!is_plain_identifier(bad), "{bad}");
        }
    }

    #[test]
    fn version_folders_sort_numerically() {
        assert!(version_key("15") > version_key("9.6"));
        assert_eq!(version_key("9.6"), Some((9, 6)));
        assert_eq!(version_key("17"), Some((17, 0)));
        assert_eq!(version_key("main"), None);
    }
}

//! Durable state behind one type, [`Store`], with two providers: SQLite (the embedded default,
//! one replica) and PostgreSQL (several replicas).
//!
//! There is one query set for both. Queries go through `sqlx`'s `Any` driver with `$1`-style
//! placeholders (SQLite accepts them), columns are TEXT, BIGINT and DOUBLE only (ids are 32 hex
//! digits, times unix milliseconds, booleans 0/1), and the few statements that differ ask
//! [`Store::dialect`]. Upserts use `ON CONFLICT ... DO UPDATE`, which both accept.
//!
//! Rules every query module follows (`users`, `items`, `userdata`):
//! - a handler holds at most one pooled connection at a time (run queries on the pool, or
//!   inside one transaction, never a second acquire while holding the first), so the pool
//!   cannot deadlock under load; an exhausted pool fails after `acquire_timeout` with
//!   [`StoreError::PoolExhausted`], which the API answers with 503;
//! - transactions that write start with [`Store::begin_write`], which on SQLite takes the
//!   write lock up front (`BEGIN IMMEDIATE`), so two writers wait for each other instead of
//!   failing with "database is locked";
//! - SQL text is constant: request values are always bound, never formatted in.
//!
//! Migrations live in `server/migrations/{sqlite,postgres}/` and are applied at start; on
//! PostgreSQL the migrator holds an advisory lock, so replicas starting together are safe.
//!
//! PostgreSQL failover ([`failover`]): a connection never lands on a standby (refused in
//! `after_connect`), errors that mean the primary is gone or demoted are
//! [`StoreError::Unreachable`] (503), and [`Store::recycle_connections`] drops every connection
//! opened before such an error.

pub mod boxsets;
pub mod chapters;
pub mod failover;
pub mod ids;
pub mod items;
pub mod jobs;
pub mod leader;
pub mod media_index;
pub mod metadata;
pub mod prefs;
pub mod streams;
pub mod userdata;
pub mod users;
pub mod wizard;

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crate::jf::{JfId, now_millis};

/// The SQL dialect behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite: one replica, one writer at a time.
    Sqlite,
    /// PostgreSQL: any number of replicas.
    Postgres,
}

impl Dialect {
    /// The dialect of a database URL.
    pub fn of_url(url: &str) -> Option<Dialect> {
        if url.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    /// The provider's name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// What can go wrong in storage. Messages never contain the database URL or row data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL: expected sqlite:, postgres:// or postgresql://")]
    UnsupportedUrl,
    /// The first connection could not be opened.
    #[error("cannot connect to the {dialect} database")]
    Connect {
        /// Which provider.
        dialect: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Migrations failed to apply.
    #[error("cannot apply database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Every pooled connection stayed busy for the whole acquire timeout.
    #[error("no database connection became free in time")]
    PoolExhausted,
    /// The database cannot be reached (network, closed pool), or the connection's server is
    /// shutting down, starting, or no longer the primary ([`failover::is_failover_error`]).
    #[error("the database is unreachable")]
    Unreachable(#[source] sqlx::Error),
    /// The database answers but cannot be written to (a standby: recovery is in progress).
    #[error("the database is read-only (a standby, not the primary)")]
    ReadOnly,
    /// A unique constraint refused the write.
    #[error("a unique constraint refused the write")]
    Conflict(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database query failed")]
    Query(#[source] sqlx::Error),
    /// A leader-only write carried an epoch older than the fence: a newer leader exists.
    #[error("leadership epoch {epoch} is stale: a newer leader has written")]
    StaleLeader {
        /// The refused epoch.
        epoch: i64,
    },
    /// A stored value is not what the schema promises (a bad id, unknown enum text).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => StoreError::PoolExhausted,
            sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                StoreError::Unreachable(e)
            }
            sqlx::Error::Database(ref db) if db.is_unique_violation() => StoreError::Conflict(e),
            other if failover::is_failover_error(&other) => StoreError::Unreachable(other),
            other => StoreError::Query(other),
        }
    }
}

/// Result of a storage operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// How the pool is sized and how long a request waits for a connection.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Upper bound of open connections (`config.database.max_connections`).
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing with 503.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// The database: a connection pool and its dialect. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// Set by [`Store::migrate`]: the key lives in a table the migrations create.
    ids: Arc<OnceLock<ids::ItemIds>>,
    /// Connections opened before the last failover error are closed instead of reused.
    epoch: Arc<failover::ConnectionEpoch>,
    /// Ids seen to be libraries, so a listing's `parentId` narrows by the library column
    /// (which an index serves) without asking the database what the id names. Only grows:
    /// a library id is derived from the library's name and can never name an item, so an id
    /// once seen stays right (a removed library simply has no items left).
    library_ids: Arc<std::sync::RwLock<std::collections::HashSet<JfId>>>,
}

impl Store {
    /// Opens a pool on `url` (not yet migrated; see [`Store::migrate`]).
    pub async fn connect(url: &str, settings: &PoolSettings) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::of_url(url).ok_or(StoreError::UnsupportedUrl)?;
        let epoch = Arc::new(failover::ConnectionEpoch::new());
        let current = Arc::clone(&epoch);
        let options = AnyPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(300)))
            // After the pool's own ping (which a session on a demoted server could pass).
            .before_acquire(move |_conn, meta| {
                let keep = current.is_current(meta.age);
                Box::pin(async move { Ok(keep) })
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    match dialect {
                        Dialect::Sqlite => {
                            // WAL lets readers proceed while one writer writes; busy_timeout
                            // makes a second writer wait instead of failing; foreign keys are
                            // off by default.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            // FULL: every commit is on disk before its answer goes out (a play
                            // report's 204 means stored), power loss included. NORMAL would
                            // lose the last commits on power loss; FULL costs about 4 ms per
                            // commit here (docs/operations.md), far below what one replica's
                            // clients write.
                            conn.execute("PRAGMA synchronous = FULL").await?;
                        }
                        Dialect::Postgres => {
                            // During a failover the address may still lead to a standby (a
                            // demoted primary restarted as a replica). Refusing it here makes
                            // the pool retry the connect until the primary answers or the
                            // acquire timeout ends, instead of failing writes with 25006.
                            if in_recovery(conn).await? {
                                return Err(sqlx::Error::Protocol(
                                    "connected to a standby, not the primary".to_owned(),
                                ));
                            }
                        }
                    }
                    Ok(())
                })
            });
        let pool = options
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                dialect: dialect.name(),
                source,
            })?;
        Ok(Store {
            pool,
            dialect,
            ids: Arc::default(),
            epoch,
            library_ids: Arc::default(),
        })
    }

    /// Connects and applies pending migrations: what the server does at start.
    pub async fn open(url: &str, settings: &PoolSettings) -> StoreResult<Store> {
        let store = Store::connect(url, settings).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations for this dialect, then loads (or creates) the item id key.
    /// On PostgreSQL the migrator takes an advisory lock, so concurrent callers apply each
    /// migration once.
    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(StoreError::Migrate)?;
        let ids = self.load_item_ids().await?;
        // A second `migrate` on the same store reads the same key: keep the first.
        let _ = self.ids.set(ids);
        // Rows written before the read keys existed get them now, before anything lists them.
        self.fill_read_keys().await?;
        // Sets read before migration 0017 get their ids, so they are listed before a rescan.
        self.fill_collection_ids().await?;
        Ok(())
    }

    /// The installation's keyed item id derivation.
    ///
    /// # Panics
    /// On a store whose [`Store::migrate`] has not run; [`Store::open`] runs it.
    pub fn ids(&self) -> &ids::ItemIds {
        self.ids
            .get()
            .expect("Store::migrate loads the item id key before the store is used")
    }

    /// The pool, for query modules.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which provider this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so concurrent writers queue on `busy_timeout` instead of failing
    /// when a read lock cannot be upgraded.
    pub async fn begin_write(&self) -> StoreResult<Transaction<'static, Any>> {
        let tx = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.pool.begin().await?,
        };
        Ok(tx)
    }

    /// Remembers `ids` as library ids (see [`Store::library_ids`]).
    pub(crate) fn note_library_ids(&self, ids: impl IntoIterator<Item = JfId>) {
        if let Ok(mut known) = self.library_ids.write() {
            known.extend(ids);
        }
    }

    /// Whether `id` was seen to be a library's id.
    pub(crate) fn is_known_library(&self, id: JfId) -> bool {
        self.library_ids
            .read()
            .is_ok_and(|known| known.contains(&id))
    }

    /// Whether any library id is known yet.
    pub(crate) fn any_library_known(&self) -> bool {
        self.library_ids.read().is_ok_and(|known| !known.is_empty())
    }

    /// A round trip for readiness: the database answers and accepts writes (on PostgreSQL,
    /// the server is a primary, not a standby in recovery).
    pub async fn ping(&self) -> StoreResult<()> {
        match self.dialect {
            Dialect::Sqlite => {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
            }
            Dialect::Postgres => {
                let mut conn = self.pool.acquire().await?;
                if in_recovery(&mut conn).await? {
                    return Err(StoreError::ReadOnly);
                }
            }
        }
        Ok(())
    }

    /// Closes every pooled connection opened until now, on its next acquire, so the next
    /// queries open fresh ones: called after a [`failover::is_failover_error`], when every
    /// connection in the pool leads to the server that failed.
    pub fn recycle_connections(&self) {
        self.epoch.renew();
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The server's id: created once, then the same for every replica and every restart.
    /// It is `PublicSystemInfo.Id`, `ServerId` everywhere, and the UDP discovery `Id`.
    pub async fn server_id(&self) -> StoreResult<JfId> {
        let fresh = JfId::random().to_n();
        // Insert-if-absent then read: two replicas starting together agree on one id.
        sqlx::query(
            "INSERT INTO server_meta (key, value) VALUES ('server_id', $1) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(&fresh)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT value FROM server_meta WHERE key = 'server_id'")
            .fetch_one(&self.pool)
            .await?;
        let text: String = row.try_get("value")?;
        parse_id(&text)
    }

    /// Records a server-wide value.
    pub async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO server_meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reads a server-wide value.
    pub async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM server_meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("value")?),
            None => None,
        })
    }

    /// Milliseconds since the epoch, the unit of every time column.
    pub fn now() -> i64 {
        now_millis()
    }
}

/// Whether a PostgreSQL connection's server is a standby (in recovery, read-only).
async fn in_recovery(conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
    // BIGINT, not bool: the one column type set every query here reads through `Any`.
    let row = sqlx::query(
        "SELECT CAST(CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END AS BIGINT) AS standby",
    )
    .fetch_one(&mut *conn)
    .await?;
    let standby: i64 = row.try_get("standby")?;
    Ok(standby != 0)
}

/// Parses an id read from the database.
pub fn parse_id(text: &str) -> StoreResult<JfId> {
    JfId::from_str(text).map_err(|_| StoreError::Corrupt(format!("bad id `{text}`")))
}

/// Reads a 0/1 column as a boolean.
pub fn get_bool(row: &AnyRow, column: &str) -> StoreResult<bool> {
    let v: i64 = row.try_get(column)?;
    Ok(v != 0)
}

/// Reads an id column.
pub fn get_id(row: &AnyRow, column: &str) -> StoreResult<JfId> {
    let text: String = row.try_get(column)?;
    parse_id(&text)
}

/// Reads an optional id column.
pub fn get_opt_id(row: &AnyRow, column: &str) -> StoreResult<Option<JfId>> {
    let text: Option<String> = row.try_get(column)?;
    text.as_deref().map(parse_id).transpose()
}

/// A boolean as the 0/1 stored in BIGINT columns.
pub fn flag(value: bool) -> i64 {
    i64::from(value)
}

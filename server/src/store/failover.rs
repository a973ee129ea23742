//! Riding through a PostgreSQL switchover or failover: which driver errors mean "this
//! connection leads to a primary that is gone or demoted", and how the pool drops every
//! connection opened before such an error so the next query opens a fresh one.
//!
//! A failover (CloudNativePG promoting a standby behind its `-rw` Service) shows up as one of:
//! the server terminating our sessions (`57P01` admin shutdown, `57P02` crash shutdown), a
//! server still starting or stopping (`57P03`), a connection exception (class `08`), a write
//! refused by a standby (`25006` read-only transaction), or a socket that is closed or reset
//! under us (I/O, TLS). All of them are answered 503 (`StoreError::Unreachable`), never 500,
//! and never 401 for a token lookup.
//!
//! What this module must not do: decide to run anything again. A write whose connection broke
//! may or may not have committed; only the HTTP layer may repeat a request, and only an
//! idempotent one (`GET`, `HEAD`; see `app::retry_idempotent`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether a driver error means the connection's server is gone, stopping, starting or no
/// longer the primary: the request may succeed on a fresh connection a moment later.
pub fn is_failover_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_failover_sqlstate(&code)),
        _ => false,
    }
}

/// Whether a SQLSTATE says the server went away under the session (or is not the primary).
pub fn is_failover_sqlstate(code: &str) -> bool {
    matches!(
        code,
        // admin_shutdown (fast shutdown, pg_terminate_backend), crash_shutdown,
        // cannot_connect_now (starting up or shutting down).
        "57P01" | "57P02" | "57P03"
        // read_only_sql_transaction: a write reached a standby.
        | "25006"
    ) || code.starts_with("08") // connection_exception and its subclasses
}

/// Marks connections opened before an instant as stale: the pool closes them instead of
/// handing them out (see `Store::connect`'s `before_acquire`).
///
/// After a failover every connection in the pool leads to the old primary; a connection that
/// still answers the pool's ping (a session on a standby, say) must not be reused either.
#[derive(Debug)]
pub struct ConnectionEpoch {
    /// The reference point of `cutoff_micros`.
    origin: Instant,
    /// Connections opened earlier than this many microseconds after `origin` are stale.
    cutoff_micros: AtomicU64,
}

impl ConnectionEpoch {
    /// An epoch in which every connection is current.
    pub fn new() -> Self {
        ConnectionEpoch {
            origin: Instant::now(),
            cutoff_micros: AtomicU64::new(0),
        }
    }

    /// Makes every connection opened until now stale.
    pub fn renew(&self) {
        let now = micros(self.origin.elapsed());
        self.cutoff_micros.fetch_max(now, Ordering::Relaxed);
    }

    /// Whether a connection opened `age` ago may be used.
    pub fn is_current(&self, age: Duration) -> bool {
        let opened = self.origin.elapsed().saturating_sub(age);
        micros(opened) >= self.cutoff_micros.load(Ordering::Relaxed)
    }
}

impl Default for ConnectionEpoch {
    fn default() -> Self {
        Self::new()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_startup_read_only_and_connection_states_are_failovers() {
        for code in [
            "57P01", "57P02", "57P03", "25006", "08000", "08006", "08003", "08P01",
        ] {
            assert!(is_failover_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn constraint_syntax_and_serialization_errors_are_not_failovers() {
        // unique_violation, syntax_error, serialization_failure, query_canceled,
        // too_many_connections, undefined_table.
        for code in ["23505", "42601", "40001", "57014", "53300", "42P01", ""] {
            assert!(!is_failover_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn io_errors_are_failovers_but_pool_and_decode_errors_are_not() {
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_failover_error(&reset));
        let eof = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(is_failover_error(&eof));
        // An exhausted pool is saturation, not a failover: retrying would double the load.
        assert!(!is_failover_error(&sqlx::Error::PoolTimedOut));
        assert!(!is_failover_error(&sqlx::Error::RowNotFound));
        assert!(!is_failover_error(&sqlx::Error::ColumnNotFound("x".into())));
    }

    #[test]
    fn renewing_the_epoch_makes_older_connections_stale_and_keeps_newer_ones() {
        let epoch = ConnectionEpoch::new();
        std::thread::sleep(Duration::from_millis(5));
        // Opened 1 ms ago: current before and after a renewal that happens before it.
        assert!(epoch.is_current(Duration::from_millis(1)));
        epoch.renew();
        // Opened before the renewal (the epoch began about 5 ms ago).
        assert!(!epoch.is_current(Duration::from_millis(4)));
        std::thread::sleep(Duration::from_millis(5));
        // Opened after it.
        assert!(epoch.is_current(Duration::from_millis(1)));
    }
}

//! Storage behaviour that the HTTP tests do not show: concurrent migrations, the shared
//! server id, a saturated pool answering 503 quickly, and PostgreSQL failover errors (a
//! terminated session, a read-only server, a standby the pool must refuse).

use std::time::{Duration, Instant};

use anyhow::Result;
use ephyra_server::store::{PoolSettings, Store};
use http::StatusCode;
use sqlx::Row;

use crate::support::{Provider, TestServer, test_config};

#[tokio::test]
async fn two_replicas_migrating_one_postgresql_at_once_both_succeed_and_agree_on_the_server_id()
-> Result<()> {
    let url = ephyra_testsupport::postgres::fresh_database().await?;
    let settings = PoolSettings::default();
    let (a, b) = tokio::join!(
        Store::connect(&url, &settings),
        Store::connect(&url, &settings)
    );
    let (a, b) = (a?, b?);
    let (ma, mb) = tokio::join!(a.migrate(), b.migrate());
    ma?;
    mb?;
    let (ia, ib) = tokio::join!(a.server_id(), b.server_id());
    assert_eq!(ia?, ib?);
    // One item id key for both: the same file has the same id on every replica.
    let film = std::path::Path::new("/media/films/Film (2020).mkv");
    assert_eq!(
        a.ids().file_item("Films", film),
        b.ids().file_item("Films", film)
    );
    // Applying again is a no-op.
    a.migrate().await?;
    Ok(())
}

#[tokio::test]
async fn both_providers_migrate_to_the_same_tables() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sqlite = Store::open(
        &format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()),
        &PoolSettings::default(),
    )
    .await?;
    let pg = Store::open(
        &ephyra_testsupport::postgres::fresh_database().await?,
        &PoolSettings::default(),
    )
    .await?;
    // The migrations of the two dialects claim to match column for column: the same tables,
    // each with the same columns of the same type.
    let mut sqlite_schema = std::collections::BTreeMap::new();
    let tables = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(sqlite.pool())
    .await?;
    for table in tables {
        let table: String = table.try_get("name")?;
        let sql = format!("SELECT name, type FROM pragma_table_info('{table}')");
        let columns = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(sqlite.pool())
            .await?;
        let mut set = std::collections::BTreeSet::new();
        for column in columns {
            let name: String = column.try_get("name")?;
            let kind: String = column.try_get("type")?;
            set.insert((name, portable_type(&kind)));
        }
        sqlite_schema.insert(table, set);
    }
    let mut pg_schema = std::collections::BTreeMap::new();
    let columns = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, data_type::text AS k \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(pg.pool())
    .await?;
    for column in columns {
        let table: String = column.try_get("t")?;
        let name: String = column.try_get("c")?;
        let kind: String = column.try_get("k")?;
        pg_schema
            .entry(table)
            .or_insert_with(std::collections::BTreeSet::new)
            .insert((name, portable_type(&kind)));
    }
    assert!(sqlite_schema.contains_key("items") && sqlite_schema.len() >= 20);
    assert_eq!(sqlite_schema, pg_schema);
    Ok(())
}

/// A column type as both dialects spell it: SQLite keeps the declared text (`BIGINT`,
/// `DOUBLE`), PostgreSQL reports its own names (`bigint`, `double precision`).
fn portable_type(declared: &str) -> &'static str {
    match declared.to_ascii_lowercase().as_str() {
        "text" => "text",
        "bigint" | "integer" => "integer",
        "double" | "double precision" | "real" => "float",
        "blob" | "bytea" => "bytes",
        other => panic!("a column type the migrations should not use: {other}"),
    }
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_quickly_instead_of_hanging() -> Result<()> {
    for provider in [Provider::Sqlite, Provider::Postgres] {
        let dir = tempfile::tempdir()?;
        let config = test_config(provider, dir.path()).await?;
        let url = config.database.url().unwrap().expose().to_owned();
        let store = Store::open(
            &url,
            &PoolSettings {
                max_connections: 1,
                acquire_timeout: Duration::from_millis(300),
            },
        )
        .await?;
        let mut server = TestServer::from_config(config, dir).await?;
        server.state.store = store.clone();
        let held = store.pool().acquire().await?;
        let started = Instant::now();
        let reply = server.get("/health/ready", None).await?;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        let login = server
            .post(
                "/Users/AuthenticateByName",
                Some(crate::support::CLIENT),
                Some(serde_json::json!({"Username": "x", "Pw": "y"})),
            )
            .await?;
        login.assert_error(StatusCode::SERVICE_UNAVAILABLE)?;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        drop(held);
        assert_eq!(
            server.get("/health/ready", None).await?.status,
            StatusCode::OK
        );
    }
    Ok(())
}

crate::on_both_providers! {
    async fn many_concurrent_clients_share_a_small_pool_without_failing(server) {
        server.user("alice", "pw", false).await?;
        let token = server.login("alice", "pw").await?;
        // Shrink the pool under the same database: 40 clients on 2 connections.
        let url = server.config.database.url().unwrap().expose().to_owned();
        let small = Store::connect(&url, &PoolSettings { max_connections: 2, acquire_timeout: Duration::from_secs(5) }).await?;
        let mut narrow = TestServer::from_config(server.config.clone(), tempfile::tempdir()?).await?;
        narrow.state.store = small;
        let auth = crate::support::with_token(&token);
        let calls = (0..40).map(|i| {
            let (narrow, auth) = (&narrow, &auth);
            async move {
                let uri = if i % 2 == 0 { "/Users/Me" } else { "/System/Info" };
                narrow.get(uri, Some(auth)).await
            }
        });
        for reply in futures::future::join_all(calls).await {
            assert_eq!(reply?.status, StatusCode::OK);
        }
        Ok(())
    }
}

/// A session the server terminates (what a fast shutdown or a failover does to every session
/// on the old primary) is a failover error: 503, and the next query runs on a fresh connection.
#[tokio::test]
async fn a_terminated_session_is_a_failover_error_and_the_next_query_gets_a_fresh_connection()
-> Result<()> {
    use ephyra_server::store::StoreError;
    use ephyra_server::store::failover::is_failover_error;

    let url = ephyra_testsupport::postgres::fresh_database().await?;
    let settings = PoolSettings {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
    };
    let store = Store::open(&url, &settings).await?;
    let pid_before: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(store.pool())
        .await?;
    let error = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
        .execute(store.pool())
        .await
        .expect_err("terminating our own session must fail the statement");
    assert!(
        is_failover_error(&error),
        "57P01 or a closed connection: {error:?}"
    );
    assert!(matches!(
        StoreError::from(error),
        StoreError::Unreachable(_)
    ));
    store.recycle_connections();
    let pid_after: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(store.pool())
        .await?;
    assert_ne!(pid_before, pid_after, "the dead session was reused");
    store.ping().await?;
    Ok(())
}

/// A write that reaches a read-only server (`25006`, what a standby answers) is a failover
/// error, and nothing is written.
#[tokio::test]
async fn a_write_refused_as_read_only_is_a_failover_error() -> Result<()> {
    use ephyra_server::store::StoreError;
    use ephyra_server::store::failover::is_failover_error;

    let url = ephyra_testsupport::postgres::fresh_database().await?;
    let store = Store::open(&url, &PoolSettings::default()).await?;
    let mut tx = store.pool().begin().await?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await?;
    let error = sqlx::query("INSERT INTO server_meta (key, value) VALUES ('ro', 'x')")
        .execute(&mut *tx)
        .await
        .expect_err("a read-only transaction must refuse the insert");
    let code = error
        .as_database_error()
        .and_then(|db| db.code())
        .map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some("25006"));
    assert!(is_failover_error(&error));
    assert!(matches!(
        StoreError::from(error),
        StoreError::Unreachable(_)
    ));
    drop(tx);
    assert_eq!(store.meta("ro").await?, None);
    Ok(())
}

/// The pool never hands out a connection to a standby: a replica pointed at one (a `-rw`
/// Service not yet re-pointed) waits for the primary and fails with 503 after the acquire
/// timeout, rather than with `25006` on each write; once promoted, the same server is used.
#[tokio::test]
async fn a_standby_is_refused_by_the_pool_until_it_is_promoted() -> Result<()> {
    use ephyra_server::store::StoreError;

    let primary = ephyra_testsupport::PostgresGuard::start().await?;
    let url = primary.fresh_database().await?;
    Store::open(&url, &PoolSettings::default()).await?;
    let standby = primary.start_standby().await?;
    assert!(standby.is_standby().await?);
    let standby_url = url.replace(
        &format!(":{}/", primary.port()),
        &format!(":{}/", standby.port()),
    );
    let settings = PoolSettings {
        max_connections: 2,
        acquire_timeout: Duration::from_secs(1),
    };
    match Store::connect(&standby_url, &settings).await {
        Err(StoreError::Connect { .. }) => {}
        other => panic!("a pool on a standby must not connect: {other:?}"),
    }
    // Promoted, the same server is accepted and ready.
    standby.promote().await?;
    let store = Store::connect(&standby_url, &settings).await?;
    store.ping().await?;
    assert_eq!(store.server_id().await?, store.server_id().await?);
    Ok(())
}

//! Per-test PostgreSQL databases on the machine's server, so tests run in parallel without
//! seeing each other's rows. Databases older than an hour (left by a crashed run) are dropped.

use sqlx::Connection;
use sqlx::postgres::PgConnection;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server to create test databases on: `TIAOJIE_TEST_POSTGRES_URL`, or this machine's
/// PostgreSQL (`postgres://postgres@127.0.0.1:5432/test`).
pub fn base_url() -> String {
    std::env::var("TIAOJIE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

const PREFIX: &str = "tiaojie_t_";

async fn admin_connection() -> PgConnection {
    let url = base_url();
    PgConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed for this test: {e}"))
}

/// Creates a fresh database; returns its name and URL.
pub async fn create_database() -> (String, String) {
    static N: AtomicU64 = AtomicU64::new(0);
    let now = tiaojie_domain::clock::now_millis();
    let name = format!(
        "{PREFIX}{now}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = admin_connection().await;
    drop_stale(&mut conn, now).await;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
    let _ = conn.close().await;
    let base = base_url();
    let url = match base.rfind('/') {
        Some(slash) => format!("{}/{name}", &base[..slash]),
        None => panic!("TIAOJIE_TEST_POSTGRES_URL must end in /DATABASE"),
    };
    (name, url)
}

/// Drops a database made by [`create_database`].
pub async fn drop_database(name: &str) {
    assert!(name.starts_with(PREFIX), "only test databases are dropped");
    let mut conn = admin_connection().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
    let _ = conn.close().await;
}

async fn drop_stale(conn: &mut PgConnection, now: i64) {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'tiaojie_t_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for (name,) in rows {
        let created: i64 = name[PREFIX.len()..]
            .split('_')
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(now);
        if now - created > 3_600_000 {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut *conn)
            .await;
        }
    }
}

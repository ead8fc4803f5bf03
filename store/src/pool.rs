//! The storage handle: connecting to SQLite or PostgreSQL, migrations, the pool's settings, and
//! the writers' turn on SQLite.

use crate::error::StoreError;
use crate::group_commit::Writer;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

/// Which database is behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The storage handle; cheap to clone (a pool inside).
///
/// SQLite writers share the pool with readers: measured, a separate one-connection writer pool
/// halved join throughput (sqlx's pool queue under contention costs more than SQLite's own
/// locking with WAL and a busy timeout).
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// Audit appends read the chain's head and write the next entry as one step.
    pub(crate) audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Presence writes (joins, leaves, first-join room creation), group-committed.
    pub(crate) writer: Writer,
    pub(crate) backend: Backend,
    /// See [`Store::write_turn`].
    pub(crate) write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Store {
    /// On SQLite, this process's case and outbox writers take turns here, first come first
    /// served, holding the turn until they commit. Left to SQLite's busy handler, a writer
    /// that finds the lock taken sleeps up to 100 ms between tries: concurrent court updates
    /// and the bridge link's writes waited hundreds of ms. PostgreSQL locks rows itself.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_turn.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Connects, creating the SQLite file and its directory if needed, and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            let file = path.split('?').next().unwrap_or(path);
            if let Some(dir) = std::path::Path::new(file)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = if path.contains("mode=") {
                format!("sqlite://{path}")
            } else {
                format!("sqlite://{path}{sep}mode=rwc")
            };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = open_pool(&options, backend, max_connections).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        let writer = Writer::spawn(pool.clone());
        Ok(Store {
            pool,
            audit_lock: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            write_turn: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            writer,
            backend,
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool, waiting for queries in flight; SQLite checkpoints its WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn open_pool(
    options: &AnyConnectOptions,
    backend: Backend,
    max_connections: u32,
) -> Result<AnyPool, StoreError> {
    Ok(AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    // WAL lets readers run beside the writer; NORMAL sync is durable at every
                    // checkpoint and safe against corruption; the busy timeout covers the
                    // moments a checkpoint holds the lock.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 5000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                }
                Ok(())
            })
        })
        .connect_with(options.clone())
        .await?)
}

//! Storage on SQLite or PostgreSQL through sqlx's `Any` driver.
//!
//! One code path serves both backends: SQL is written in the common dialect (`$n` parameters,
//! `ON CONFLICT`, `RETURNING`, integers for times), and only the migrations differ per backend
//! (`migrations/sqlite`, `migrations/postgres`), kept semantically identical.

mod cases;
mod confirmation;

pub use cases::{CaseSummary, MediatorRating, Minutes};
pub use confirmation::{Leased, MAX_ATTEMPTS, OutboxEntry, OutboxStats, Taken};

use crate::group_commit::{Done, Op, Writer};
use crate::participation::{LeaveReason, Participation};
use crate::recording::{
    AUDIT_GENESIS, AuditEntry, AuditProblem, AuditVerification, RecordingMode, verify_audit,
};
use crate::room::{self, NewRoom, Room};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row};
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

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported database.
    #[error("unsupported database url (use sqlite: or postgres://)")]
    UnsupportedUrl,
    /// Creating the SQLite file's directory failed.
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A room with this name exists already.
    #[error("room {0:?} already exists")]
    RoomExists(String),
    /// No room has this name.
    #[error("room {0:?} not found")]
    RoomNotFound(String),
    /// The room was closed.
    #[error("room {0:?} is closed")]
    RoomClosed(String),
    /// The store was closed (the server is stopping).
    #[error("storage is closed")]
    Closed,
    /// The input breaks a rule (e.g. a bad room name).
    #[error("{0}")]
    Invalid(String),
    /// A case with this number exists already.
    #[error("case {0:?} already exists")]
    CaseExists(String),
    /// No case has this id.
    #[error("case {0:?} not found")]
    CaseNotFound(String),
    /// The workflow's rules refuse the command.
    #[error(transparent)]
    Rule(#[from] crate::mediation::RuleError),
    /// Other commands kept changing the case first (retried, then given up).
    #[error("the case changed concurrently; try again")]
    Conflict,
    /// A message id already in the inbox (a redelivery taken by another connection).
    #[error("message already taken")]
    Duplicate,
}

/// The storage handle; cheap to clone (a pool inside).
///
/// SQLite writers share the pool with readers: measured, a separate one-connection writer pool
/// halved join throughput (sqlx's pool queue under contention costs more than SQLite's own
/// locking with WAL and a busy timeout).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Audit appends read the chain's head and write the next entry as one step.
    audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Presence writes (joins, leaves, first-join room creation), group-committed.
    writer: Writer,
    backend: Backend,
    /// See [`Store::write_turn`].
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

// Column lists as macros: sqlx 0.9 accepts only static SQL, and `concat!` builds it at compile time.
macro_rules! room_columns {
    () => {
        "name, created_at, closed_at, close_reason, max_participants, metadata, lobby, recording"
    };
}
macro_rules! participation_columns {
    () => {
        "id, room, identity, display_name, role, joined_at, left_at, leave_reason"
    };
}

impl Store {
    /// On SQLite, this process's case and outbox writers take turns here, first come first
    /// served, holding the turn until they commit. Left to SQLite's busy handler, a writer
    /// that finds the lock taken sleeps up to 100 ms between tries: concurrent court updates
    /// and the bridge link's writes waited hundreds of ms. PostgreSQL locks rows itself.
    pub(super) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
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

    /// Creates a room; fails if the name is taken.
    pub async fn create_room(&self, new: &NewRoom, now: i64) -> Result<Room, StoreError> {
        room::validate_name(&new.name).map_err(StoreError::Invalid)?;
        if matches!(new.max_participants, Some(n) if n < 1) {
            return Err(StoreError::Invalid(
                "max_participants must be at least 1".into(),
            ));
        }
        let inserted = sqlx::query(
            "INSERT INTO rooms (name, created_at, max_participants, metadata, lobby, recording) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&new.name)
        .bind(now)
        .bind(new.max_participants)
        .bind(&new.metadata)
        .bind(i64::from(new.lobby))
        .bind(new.recording.map(RecordingMode::as_str))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::RoomExists(new.name.clone()));
        }
        self.room(&new.name).await
    }

    /// The room, creating it with defaults if absent (auto-created rooms); fails if it is closed.
    pub async fn open_room(&self, name: &str, now: i64) -> Result<Room, StoreError> {
        room::validate_name(name).map_err(StoreError::Invalid)?;
        match self
            .writer
            .write(Op::OpenRoom {
                name: name.to_string(),
                now,
            })
            .await?
        {
            Done::Room(room) => Ok(room),
            other => Err(unexpected(other)),
        }
    }

    /// One room.
    pub async fn room(&self, name: &str) -> Result<Room, StoreError> {
        select_room(&self.pool, name)
            .await?
            .ok_or_else(|| StoreError::RoomNotFound(name.to_string()))
    }

    /// Rooms by creation time, newest first; closed ones only when asked.
    pub async fn rooms(&self, include_closed: bool) -> Result<Vec<Room>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            room_columns!(),
            " FROM rooms WHERE $1 OR closed_at IS NULL ORDER BY created_at DESC, name"
        ))
        .bind(include_closed)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(room_from_row)
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// Closes a room. Closing a closed room is an error so that the caller's reason is not lost.
    pub async fn close_room(&self, name: &str, reason: &str, now: i64) -> Result<Room, StoreError> {
        let closed = sqlx::query("UPDATE rooms SET closed_at = $1, close_reason = $2 WHERE name = $3 AND closed_at IS NULL")
            .bind(now)
            .bind(reason)
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let room = self.room(name).await?;
        if closed == 0 {
            return Err(StoreError::RoomClosed(name.to_string()));
        }
        Ok(room)
    }

    /// Records a presence starting; returns its row id. Fails with [`StoreError::RoomClosed`]
    /// if the room is not open at that instant, so no join slips past a concurrent close.
    pub async fn record_join(
        &self,
        room: &str,
        identity: &str,
        display_name: &str,
        role: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let op = Op::Join {
            room: room.to_string(),
            identity: identity.to_string(),
            display_name: display_name.to_string(),
            role: role.to_string(),
            now,
        };
        match self.writer.write(op).await? {
            Done::Id(id) => Ok(id),
            other => Err(unexpected(other)),
        }
    }

    /// Records a presence ending. `detail` (e.g. an admin's reason) is kept after the reason name.
    pub async fn record_leave(
        &self,
        id: i64,
        reason: LeaveReason,
        detail: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let reason = if detail.is_empty() {
            reason.as_str().to_string()
        } else {
            format!("{}: {detail}", reason.as_str())
        };
        self.writer.write(Op::Leave { id, reason, now }).await?;
        Ok(())
    }

    /// Ends every open presence (at start: those a crash left open; at shutdown: everyone).
    pub async fn end_open_participations(
        &self,
        reason: LeaveReason,
        now: i64,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE participations SET left_at = $1, leave_reason = $2 WHERE left_at IS NULL",
        )
        .bind(now)
        .bind(reason.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// A room's participation records, oldest first.
    pub async fn participations(&self, room: &str) -> Result<Vec<Participation>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            participation_columns!(),
            " FROM participations WHERE room = $1 ORDER BY joined_at, id"
        ))
        .bind(room)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Participation {
                    id: row.try_get("id")?,
                    room: row.try_get("room")?,
                    identity: row.try_get("identity")?,
                    display_name: row.try_get("display_name")?,
                    role: row.try_get("role")?,
                    joined_at: row.try_get("joined_at")?,
                    left_at: row.try_get("left_at")?,
                    leave_reason: row.try_get("leave_reason")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Revokes a token id (a removed participant's link) until it would have expired anyway.
    pub async fn revoke_token(
        &self,
        jti: &str,
        room: &str,
        identity: &str,
        reason: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, room, identity, reason, revoked_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(jti)
        .bind(room)
        .bind(identity)
        .bind(reason)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps `identity` out of `room` (every link of theirs for it) until
    /// [`Store::lift_removal`].
    pub async fn record_removal(
        &self,
        room: &str,
        identity: &str,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO removals (room, identity, reason, removed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (room, identity) DO NOTHING",
        )
        .bind(room)
        .bind(identity)
        .bind(reason)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Lets `identity` back into `room`, with the links their removal revoked: the ids of
    /// those links, or `None` if they were not removed from it.
    pub async fn lift_removal(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM removals WHERE room = $1 AND identity = $2")
            .bind(room)
            .bind(identity)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let rows = sqlx::query(
            "DELETE FROM revoked_tokens WHERE room = $1 AND identity = $2 RETURNING jti",
        )
        .bind(room)
        .bind(identity)
        .fetch_all(&mut *tx)
        .await?;
        let jtis = rows
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().await?;
        Ok(Some(jtis))
    }

    /// Everyone removed from a room, as (room, identity), for an in-memory check.
    pub async fn removals(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT room, identity FROM removals")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Ids of all revoked tokens (that have not expired anyway), for an in-memory check.
    pub async fn revoked_token_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT jti FROM revoked_tokens")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(Into::into)
    }

    /// Sets a room's recording policy (`None`: the server's).
    pub async fn set_room_recording(
        &self,
        name: &str,
        mode: Option<RecordingMode>,
    ) -> Result<Room, StoreError> {
        sqlx::query("UPDATE rooms SET recording = $1 WHERE name = $2")
            .bind(mode.map(RecordingMode::as_str))
            .bind(name)
            .execute(&self.pool)
            .await?;
        self.room(name).await
    }

    /// Appends to the audit log, chained to the entry before it. (One server appends; several
    /// servers on one PostgreSQL would need the head read under a row lock.) An action that
    /// changes a case writes its entry inside its own transaction instead
    /// ([`Store::case_command`]): the action and its entry commit together or not at all.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let _turn = self.audit_lock.lock().await;
        let _write = self.write_turn().await;
        // Two autocommit statements on one connection, not a transaction: a deferred SQLite
        // transaction that reads and then writes fails (SQLITE_BUSY_SNAPSHOT) when a presence
        // write commits in between. The audit lock keeps the head from moving meanwhile.
        let mut conn = self.pool.acquire().await?;
        append_audit(&mut conn, entry).await?;
        Ok(())
    }

    /// One page of the audit log, oldest first: up to `limit` entries after the entry `after`
    /// (0: from the start), only those on `target` when given. A log grows for years; a read
    /// must not fold all of it into one answer.
    pub async fn audit_page(
        &self,
        target: Option<&str>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, role, action, target, detail, prev_hash, hash FROM audit_log \
             WHERE id > $1 AND ($2 IS NULL OR target = $2) ORDER BY id LIMIT $3",
        )
        .bind(after)
        .bind(target)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(audit_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The audit log, oldest first; only entries on `target` when given.
    pub async fn audit_log(&self, target: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        macro_rules! columns {
            () => {
                "SELECT id, at, actor, role, action, target, detail, prev_hash, hash FROM audit_log"
            };
        }
        let rows = match target {
            Some(target) => {
                sqlx::query(concat!(columns!(), " WHERE target = $1 ORDER BY id"))
                    .bind(target)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(concat!(columns!(), " ORDER BY id"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(audit_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Recomputes the whole audit chain and says where it breaks.
    pub async fn verify_audit_log(&self) -> Result<AuditVerification, StoreError> {
        let entries = self.audit_log(None).await?;
        let mut out = verify_audit(&entries);
        out.problems
            .extend(self.unaudited_case_events(&entries).await?);
        Ok(out)
    }

    /// Case events recorded by an action without that action's audit entry. Every event of a
    /// case comes from an API action, which writes its entry with it (naming the events), or
    /// from the court (the confirmation inbox records those).
    async fn unaudited_case_events(
        &self,
        entries: &[AuditEntry],
    ) -> Result<Vec<AuditProblem>, StoreError> {
        let mut covered: std::collections::HashMap<&str, Vec<(i64, i64)>> = Default::default();
        for e in entries {
            if let (Some(case), Some(range)) = (
                e.target.strip_prefix("case:"),
                cases::audited_events(&e.detail),
            ) {
                covered.entry(case).or_default().push(range);
            }
        }
        let rows = sqlx::query(
            "SELECT case_id, seq, actor FROM case_events WHERE actor <> 'court' \
             ORDER BY case_id, seq",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut problems = Vec::new();
        for row in rows {
            let case: String = row.try_get("case_id")?;
            let seq: i64 = row.try_get("seq")?;
            let audited = covered
                .get(case.as_str())
                .is_some_and(|ranges| ranges.iter().any(|(a, b)| (*a..=*b).contains(&seq)));
            if !audited {
                problems.push(AuditProblem {
                    id: 0,
                    what: format!("case {case}: event {seq} has no audit entry"),
                });
            }
        }
        Ok(problems)
    }

    /// Forgets revocations of tokens that have expired anyway.
    pub async fn prune_revocations(&self, now: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

fn audit_row(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        role: row.try_get("role")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Appends `entry` to the audit chain on `tx` (a transaction's connection, or a plain one). The
/// caller holds the audit lock (the chain's head must not move between the read and the insert).
pub(super) async fn append_audit(
    tx: &mut sqlx::AnyConnection,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    let prev: Option<String> = sqlx::query("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get::<String, _>(0))
        .transpose()?;
    let mut entry = entry.clone();
    entry.prev_hash = prev.unwrap_or_else(|| AUDIT_GENESIS.to_string());
    entry.hash = entry.compute_hash();
    sqlx::query(
        "INSERT INTO audit_log (at, actor, role, action, target, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.at)
    .bind(&entry.actor)
    .bind(&entry.role)
    .bind(&entry.action)
    .bind(&entry.target)
    .bind(&entry.detail)
    .bind(&entry.prev_hash)
    .bind(&entry.hash)
    .execute(&mut *tx)
    .await?;
    Ok(())
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

fn unexpected(done: Done) -> StoreError {
    StoreError::Invalid(format!("internal: unexpected write result {done:?}"))
}

/// Inserts a room with defaults unless one with this name exists.
pub(crate) async fn insert_room_if_absent<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    name: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rooms (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// The room with this name, if any.
pub(crate) async fn select_room<'c, E: Executor<'c, Database = Any>>(
    executor: E,
    name: &str,
) -> Result<Option<Room>, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        room_columns!(),
        " FROM rooms WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(room_from_row).transpose()
}

fn room_from_row(row: &AnyRow) -> Result<Room, sqlx::Error> {
    Ok(Room {
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        closed_at: row.try_get("closed_at")?,
        close_reason: row.try_get("close_reason")?,
        max_participants: row.try_get("max_participants")?,
        metadata: row.try_get("metadata")?,
        lobby: row.try_get::<i64, _>("lobby")? != 0,
        recording: row
            .try_get::<Option<String>, _>("recording")?
            .and_then(|m| m.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn temp_store(tag: &str) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("tiaojie-store-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let url = format!("sqlite://{}", dir.join("sub/t.db").display());
        (Store::connect(&url, 2).await.expect("connect"), dir)
    }

    #[tokio::test]
    async fn rooms_lifecycle_on_sqlite() {
        let (store, dir) = temp_store("rooms").await;
        let new = NewRoom {
            name: "case-1".into(),
            max_participants: Some(6),
            metadata: "（2026）豫0502民调123号".into(),
            lobby: true,
            recording: Some(RecordingMode::Audio),
        };
        let room = store.create_room(&new, 1000).await.expect("create");
        assert_eq!(room.max_participants, Some(6));
        assert!(room.lobby, "the lobby setting is stored");
        assert_eq!(room.recording, Some(RecordingMode::Audio));
        let room = store
            .set_room_recording("case-1", None)
            .await
            .expect("policy");
        assert_eq!(room.recording, None);
        let entry = AuditEntry::new(5, "admin", "admin", "recording.read", "recording:x", "");
        store.audit(&entry).await.expect("audit");
        store
            .audit(&AuditEntry {
                target: "recording:y".into(),
                ..entry.clone()
            })
            .await
            .expect("audit");
        let log = store.audit_log(Some("recording:x")).await.expect("log");
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].action, "recording.read");
        assert_eq!(store.audit_log(None).await.expect("log").len(), 2);
        let intact = store.verify_audit_log().await.expect("verify");
        assert!(
            intact.problems.is_empty() && intact.entries == 2,
            "{intact:?}"
        );
        // Someone with database access edits the first entry: the chain says which.
        sqlx::query("UPDATE audit_log SET detail = 'nothing to see' WHERE id = 1")
            .execute(&store.pool)
            .await
            .expect("tamper");
        let broken = store.verify_audit_log().await.expect("verify");
        assert_eq!(
            broken.problems.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![1],
            "{broken:?}"
        );
        assert!(matches!(
            store.create_room(&new, 1001).await,
            Err(StoreError::RoomExists(_))
        ));
        assert!(matches!(
            store.room("nope").await,
            Err(StoreError::RoomNotFound(_))
        ));
        store.open_room("auto-1", 1002).await.expect("auto create");
        assert_eq!(store.rooms(false).await.expect("list").len(), 2);
        let closed = store
            .close_room("case-1", "done", 2000)
            .await
            .expect("close");
        assert_eq!(closed.closed_at, Some(2000));
        assert!(matches!(
            store.close_room("case-1", "again", 2001).await,
            Err(StoreError::RoomClosed(_))
        ));
        assert!(matches!(
            store.open_room("case-1", 2002).await,
            Err(StoreError::RoomClosed(_))
        ));
        assert_eq!(store.rooms(false).await.expect("list").len(), 1);
        assert_eq!(store.rooms(true).await.expect("list").len(), 2);
        assert!(matches!(
            store
                .create_room(
                    &NewRoom {
                        name: "a/b".into(),
                        ..Default::default()
                    },
                    1
                )
                .await,
            Err(StoreError::Invalid(_))
        ));
        store.close().await;
        std::fs::remove_dir_all(dir).ok();
    }

    #[tokio::test]
    async fn participations_and_revocations_on_sqlite() {
        let (store, dir) = temp_store("parts").await;
        store.open_room("r", 1).await.expect("room");
        store
            .create_room(
                &NewRoom {
                    name: "shut".into(),
                    ..Default::default()
                },
                1,
            )
            .await
            .expect("room");
        store.close_room("shut", "done", 2).await.expect("close");
        assert!(matches!(
            store.record_join("shut", "x", "X", "party", 3).await,
            Err(StoreError::RoomClosed(_))
        ));
        let a = store
            .record_join("r", "alice", "Alice", "party", 10)
            .await
            .expect("join");
        let b = store
            .record_join("r", "bob", "Bob", "mediator", 11)
            .await
            .expect("join");
        store
            .record_leave(a, LeaveReason::Removed, "disruptive", 20)
            .await
            .expect("leave");
        assert_eq!(
            store
                .end_open_participations(LeaveReason::ServerShutdown, 30)
                .await
                .expect("end"),
            1
        );
        let rows = store.participations("r").await.expect("list");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].id, a);
        assert_eq!(rows[0].leave_reason.as_deref(), Some("removed: disruptive"));
        assert_eq!(rows[1].id, b);
        assert_eq!(rows[1].left_at, Some(30));
        assert_eq!(rows[1].leave_reason.as_deref(), Some("server_shutdown"));

        assert!(store.revoked_token_ids().await.expect("ids").is_empty());
        store
            .revoke_token("j1", "r", "alice", "removed", 100, 50)
            .await
            .expect("revoke");
        store
            .revoke_token("j1", "r", "alice", "removed", 100, 51)
            .await
            .expect("idempotent");
        assert_eq!(
            store.revoked_token_ids().await.expect("ids"),
            vec!["j1".to_string()]
        );
        assert_eq!(store.prune_revocations(101).await.expect("prune"), 1);
        assert!(store.revoked_token_ids().await.expect("ids").is_empty());
        store.close().await;
        std::fs::remove_dir_all(dir).ok();
    }
}

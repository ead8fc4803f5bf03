//! The bridge's SQLite database. Every change that must reach the internet side is written with
//! its outbox row in the same transaction; every delivered envelope is taken with its inbox row
//! in one transaction, so a crash at any point leaves either both or neither.
//!
//! Writing transactions take turns in this process (see `CourtStore::write_turn`) and begin
//! IMMEDIATE: one that read first and wrote later could not take the write lock after another
//! connection committed (SQLite's snapshot rule, which waiting does not cure) and a judge's
//! action would fail at random while the link writes.

use serde::Serialize;
use sqlx::Row as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use tiaojie_confirmation::application::Application;
use tiaojie_confirmation::court::{
    CourtAction, CourtDocument, CourtRuleError, CourtStatus, CourtUpdate, Docket,
};
use tiaojie_confirmation::envelope::{Body, Envelope, Message, Signer, random_id};
use tokio::sync::{Mutex, MutexGuard};

// A column list as a macro: sqlx takes only static SQL, and `concat!` builds it at compile time.
macro_rules! docket_select {
    () => {
        "SELECT id, case_id, case_number, agreement_sha256, status, received_at, accepted_at, \
         extended FROM dockets"
    };
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS inbox (message_id TEXT PRIMARY KEY, case_id TEXT NOT NULL, \
     seq INTEGER NOT NULL, payload TEXT NOT NULL, signature TEXT NOT NULL, \
     received_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dockets (id TEXT PRIMARY KEY, case_id TEXT NOT NULL, \
     case_number TEXT NOT NULL, agreement_sha256 TEXT NOT NULL, status TEXT NOT NULL, \
     received_at INTEGER NOT NULL, accepted_at INTEGER, extended INTEGER NOT NULL, \
     updated_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS actions (n INTEGER PRIMARY KEY AUTOINCREMENT, \
     docket TEXT NOT NULL, action TEXT NOT NULL, judge TEXT NOT NULL, at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS outbox (n INTEGER PRIMARY KEY AUTOINCREMENT, \
     message_id TEXT NOT NULL UNIQUE, case_id TEXT NOT NULL, seq INTEGER NOT NULL, \
     payload TEXT NOT NULL, signature TEXT NOT NULL, created_at INTEGER NOT NULL, \
     acked_at INTEGER, outcome TEXT, reason TEXT)",
    "CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (acked_at, n)",
    "CREATE TABLE IF NOT EXISTS refused (n INTEGER PRIMARY KEY AUTOINCREMENT, \
     at INTEGER NOT NULL, error TEXT NOT NULL, payload TEXT NOT NULL)",
    // A ruling's document (民事裁定书) as it went to the parties.
    "CREATE TABLE IF NOT EXISTS documents (docket TEXT PRIMARY KEY, sha256 TEXT NOT NULL, \
     pdf BLOB NOT NULL, at INTEGER NOT NULL)",
];

/// Why a bridge operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CourtStoreError {
    /// The database.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// No such application.
    #[error("no application {0}")]
    NotFound(String),
    /// A court rule.
    #[error(transparent)]
    Rule(#[from] CourtRuleError),
    /// Stored data that does not parse (should not happen).
    #[error("stored data: {0}")]
    Corrupt(String),
}

/// What happened to a delivered envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Stored now.
    New,
    /// Stored before (a redelivery).
    Duplicate,
}

/// One application as the court sees it.
#[derive(Debug, Clone, Serialize)]
pub struct DocketView {
    /// The application's message id.
    pub id: String,
    /// Case id on the internet side.
    pub case_id: String,
    /// Case number.
    pub case_number: String,
    /// The agreement hash applied for.
    pub agreement_sha256: String,
    /// Status.
    pub status: CourtStatus,
    /// Received, Unix ms.
    pub received_at: i64,
    /// Accepted, Unix ms.
    pub accepted_at: Option<i64>,
    /// Decision limit extended.
    pub extended: bool,
    /// The limit that applies now, Unix ms.
    pub due_at: Option<i64>,
    /// That limit has passed.
    pub overdue: bool,
}

/// A court-side outbox message not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Position in the outbox.
    pub n: i64,
    /// Message id.
    pub message_id: String,
    /// The signed message.
    pub envelope: Envelope,
}

/// The bridge database.
#[derive(Clone)]
pub struct CourtStore {
    pool: SqlitePool,
    /// This process's writers take turns here, first come first served. Left to SQLite's busy
    /// handler, a writer that finds the lock taken sleeps up to 100 ms between tries: a judge's
    /// ruling and the link's writes then waited hundreds of ms for each other.
    write_turn: Arc<Mutex<()>>,
}

impl CourtStore {
    /// Opens (creating) the database file.
    pub async fn open(path: &Path) -> Result<CourtStore, CourtStoreError> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a committed inbox row survives power loss before the ack goes out.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = sqlx::pool::PoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        Ok(CourtStore {
            pool,
            write_turn: Arc::new(Mutex::new(())),
        })
    }

    /// A writing transaction, begun IMMEDIATE once it is this writer's turn; the turn ends
    /// when the guard is dropped (after the commit).
    async fn begin_write(
        &self,
    ) -> Result<(MutexGuard<'_, ()>, sqlx::Transaction<'static, sqlx::Sqlite>), CourtStoreError>
    {
        let turn = self.write_turn.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok((turn, tx))
    }

    /// Takes a verified message: inbox row and its effect in one transaction. A message id
    /// seen before changes nothing.
    pub async fn take(
        &self,
        envelope: &Envelope,
        message: &Message,
        key: &Signer,
        now: i64,
    ) -> Result<Taken, CourtStoreError> {
        let mut taken = self.take_batch(&[(envelope, message)], key, now).await?;
        Ok(taken.pop().unwrap_or(Taken::Duplicate))
    }

    /// Takes verified messages in one transaction (one fsync for the batch: the acknowledgements
    /// go out after it commits).
    pub async fn take_batch(
        &self,
        batch: &[(&Envelope, &Message)],
        key: &Signer,
        now: i64,
    ) -> Result<Vec<Taken>, CourtStoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let mut taken = Vec::with_capacity(batch.len());
        for (envelope, message) in batch {
            taken.push(take_in(&mut tx, envelope, message, key, now).await?);
        }
        tx.commit().await?;
        Ok(taken)
    }
}

/// One message's inbox row and effect, inside the caller's transaction.
async fn take_in(
    tx: &mut sqlx::SqliteConnection,
    envelope: &Envelope,
    message: &Message,
    key: &Signer,
    now: i64,
) -> Result<Taken, CourtStoreError> {
    let inserted = sqlx::query(
        "INSERT INTO inbox (message_id, case_id, seq, payload, signature, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(&message.message_id)
    .bind(&message.case_id)
    .bind(message.seq)
    .bind(&envelope.payload)
    .bind(&envelope.signature)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(Taken::Duplicate);
    }
    match &message.body {
        Body::Application(application) => {
            sqlx::query(
                "INSERT INTO dockets (id, case_id, case_number, agreement_sha256, status, \
                     received_at, accepted_at, extended, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&message.message_id)
            .bind(&message.case_id)
            .bind(&application.case_number)
            .bind(&application.agreement.sha256)
            .bind(CourtStatus::Received.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            // No update goes back for "received": the acknowledgement says it.
        }
        Body::Withdrawal { application, by } => {
            // Withdrawn before a ruling; after one it stays as ruled (and the update
            // that goes back says so by its absence: the server sees no change).
            let current = load_docket(&mut *tx, application).await?;
            if let Some((docket, case_id, sha)) = current
                && let Ok(next) = docket.act(&CourtAction::Withdraw, now)
            {
                // The record and the parties' pages name the applicant, not their account.
                let name = applicant_name(&mut *tx, application, by).await?;
                record_action(
                    &mut *tx,
                    application,
                    &case_id,
                    &sha,
                    &next,
                    &CourtAction::Withdraw,
                    (by, &name),
                    None,
                    key,
                    now,
                )
                .await?;
            }
        }
        Body::CourtUpdate(_) => {}
    }
    Ok(Taken::New)
}

impl CourtStore {
    /// Notes an envelope that failed verification, for the operator.
    pub async fn refused(
        &self,
        payload: &str,
        error: &str,
        now: i64,
    ) -> Result<(), CourtStoreError> {
        let _turn = self.write_turn.lock().await;
        sqlx::query("INSERT INTO refused (at, error, payload) VALUES ($1, $2, $3)")
            .bind(now)
            .bind(error)
            .bind(payload)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Envelopes refused so far, newest first: (at, error, payload).
    pub async fn refusals(&self) -> Result<Vec<(i64, String, String)>, CourtStoreError> {
        let rows = sqlx::query("SELECT at, error, payload FROM refused ORDER BY n DESC LIMIT 200")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// A judge's action: the docket, the action log and the outbox message in one transaction.
    /// A judge's action (with the ruling's document, for a ruling), its update for the
    /// internet side in the outbox, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn act(
        &self,
        id: &str,
        action: &CourtAction,
        judge: (&str, &str),
        document: Option<&[u8]>,
        key: &Signer,
        now: i64,
    ) -> Result<DocketView, CourtStoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let (docket, case_id, sha) = load_docket(&mut tx, id)
            .await?
            .ok_or_else(|| CourtStoreError::NotFound(id.to_string()))?;
        let next = docket.act(action, now)?;
        let document = match document {
            Some(pdf) => {
                let sha256 =
                    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pdf).as_ref());
                sqlx::query(
                    "INSERT OR REPLACE INTO documents (docket, sha256, pdf, at) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(&sha256)
                .bind(pdf)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                use base64::Engine;
                Some(CourtDocument {
                    sha256,
                    pdf: base64::engine::general_purpose::STANDARD.encode(pdf),
                })
            }
            None => None,
        };
        record_action(
            &mut tx, id, &case_id, &sha, &next, action, judge, document, key, now,
        )
        .await?;
        tx.commit().await?;
        self.docket(id, now).await
    }

    /// The ruling's document of application `id`, if it has one.
    pub async fn document(&self, id: &str) -> Result<Option<Vec<u8>>, CourtStoreError> {
        Ok(
            sqlx::query_scalar("SELECT pdf FROM documents WHERE docket = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// All dockets, those with the nearest limit first, then the newest.
    pub async fn dockets(&self, now: i64) -> Result<Vec<DocketView>, CourtStoreError> {
        let rows = sqlx::query(concat!(docket_select!(), " ORDER BY received_at DESC"))
            .fetch_all(&self.pool)
            .await?;
        let mut all = rows
            .iter()
            .map(|r| docket_view(r, now))
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by_key(|d| (d.due_at.is_none(), d.due_at));
        Ok(all)
    }

    /// One docket.
    pub async fn docket(&self, id: &str, now: i64) -> Result<DocketView, CourtStoreError> {
        let row = sqlx::query(concat!(docket_select!(), " WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CourtStoreError::NotFound(id.to_string()))?;
        docket_view(&row, now)
    }

    /// The application as received (payload and signature exactly as they came).
    pub async fn received(&self, id: &str) -> Result<(Envelope, Application), CourtStoreError> {
        let row = sqlx::query("SELECT payload, signature FROM inbox WHERE message_id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CourtStoreError::NotFound(id.to_string()))?;
        let envelope = Envelope {
            payload: row.try_get(0)?,
            signature: row.try_get(1)?,
        };
        let message: Message = serde_json::from_str(&envelope.payload)
            .map_err(|e| CourtStoreError::Corrupt(e.to_string()))?;
        match message.body {
            Body::Application(a) => Ok((envelope, *a)),
            _ => Err(CourtStoreError::NotFound(id.to_string())),
        }
    }

    /// A docket's actions, oldest first: (action, judge, at).
    pub async fn actions(
        &self,
        id: &str,
    ) -> Result<Vec<(serde_json::Value, String, i64)>, CourtStoreError> {
        let rows =
            sqlx::query("SELECT action, judge, at FROM actions WHERE docket = $1 ORDER BY n")
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let action: String = r.try_get(0)?;
                Ok((
                    serde_json::from_str(&action).unwrap_or(serde_json::Value::Null),
                    r.try_get(1)?,
                    r.try_get(2)?,
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Outbox messages not yet acknowledged, after position `after`, in order.
    pub async fn pending(&self, after: i64, limit: i64) -> Result<Vec<Pending>, CourtStoreError> {
        let rows = sqlx::query(
            "SELECT n, message_id, payload, signature FROM outbox \
             WHERE acked_at IS NULL AND n > $1 ORDER BY n LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Pending {
                    n: r.try_get(0)?,
                    message_id: r.try_get(1)?,
                    envelope: Envelope {
                        payload: r.try_get(2)?,
                        signature: r.try_get(3)?,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The server took these outbox messages: (message id, outcome, reason), one transaction.
    pub async fn acked_batch(
        &self,
        acks: &[(String, &str, Option<String>)],
        now: i64,
    ) -> Result<(), CourtStoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        for (message_id, outcome, reason) in acks {
            sqlx::query(
                "UPDATE outbox SET acked_at = $1, outcome = $2, reason = $3 \
                 WHERE message_id = $4 AND acked_at IS NULL",
            )
            .bind(now)
            .bind(*outcome)
            .bind(reason.as_deref())
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Updates the server refused, for the page: (message id, reason).
    pub async fn refused_updates(&self) -> Result<Vec<(String, String)>, CourtStoreError> {
        let rows = sqlx::query(
            "SELECT message_id, COALESCE(reason, '') FROM outbox WHERE outcome = 'refused' \
             ORDER BY n DESC LIMIT 200",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Counts for the health page: (inbox, outbox pending).
    pub async fn counts(&self) -> Result<(i64, i64), CourtStoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM inbox), \
             (SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
}

fn docket_view(row: &sqlx::sqlite::SqliteRow, now: i64) -> Result<DocketView, CourtStoreError> {
    let status: String = row.try_get("status")?;
    let status = CourtStatus::parse(&status)
        .ok_or_else(|| CourtStoreError::Corrupt(format!("status {status}")))?;
    let docket = Docket {
        status,
        received_at: row.try_get("received_at")?,
        accepted_at: row.try_get("accepted_at")?,
        extended: row.try_get::<i64, _>("extended")? != 0,
    };
    let due = docket.due(now);
    Ok(DocketView {
        id: row.try_get("id")?,
        case_id: row.try_get("case_id")?,
        case_number: row.try_get("case_number")?,
        agreement_sha256: row.try_get("agreement_sha256")?,
        status,
        received_at: docket.received_at,
        accepted_at: docket.accepted_at,
        extended: docket.extended,
        due_at: due.map(|(d, _)| d),
        overdue: due.is_some_and(|(_, late)| late),
    })
}

/// The name of `person` as the application `id` lists its parties (the id if it does not).
async fn applicant_name(
    tx: &mut sqlx::SqliteConnection,
    id: &str,
    person: &str,
) -> Result<String, CourtStoreError> {
    let payload: Option<String> =
        sqlx::query_scalar("SELECT payload FROM inbox WHERE message_id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    let name = payload
        .and_then(|p| serde_json::from_str::<Message>(&p).ok())
        .and_then(|m| match m.body {
            Body::Application(a) => a
                .members
                .iter()
                .find(|m| m.id == person)
                .map(|m| m.name.clone()),
            _ => None,
        });
    Ok(name.unwrap_or_else(|| person.to_string()))
}

async fn load_docket(
    tx: &mut sqlx::SqliteConnection,
    id: &str,
) -> Result<Option<(Docket, String, String)>, CourtStoreError> {
    let Some(row) = sqlx::query(
        "SELECT status, received_at, accepted_at, extended, case_id, agreement_sha256 \
         FROM dockets WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    let status: String = row.try_get(0)?;
    let docket = Docket {
        status: CourtStatus::parse(&status)
            .ok_or_else(|| CourtStoreError::Corrupt(format!("status {status}")))?,
        received_at: row.try_get(1)?,
        accepted_at: row.try_get(2)?,
        extended: row.try_get::<i64, _>(3)? != 0,
    };
    Ok(Some((docket, row.try_get(4)?, row.try_get(5)?)))
}

/// Writes the docket's new state, the action and the signed update for the internet side.
#[allow(clippy::too_many_arguments)]
async fn record_action(
    tx: &mut sqlx::SqliteConnection,
    id: &str,
    case_id: &str,
    sha: &str,
    next: &Docket,
    action: &CourtAction,
    (judge, judge_name): (&str, &str),
    document: Option<CourtDocument>,
    key: &Signer,
    now: i64,
) -> Result<(), CourtStoreError> {
    sqlx::query(
        "UPDATE dockets SET status = $1, accepted_at = $2, extended = $3, updated_at = $4 \
         WHERE id = $5",
    )
    .bind(next.status.as_str())
    .bind(next.accepted_at)
    .bind(i64::from(next.extended))
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let action_json =
        serde_json::to_string(action).map_err(|e| CourtStoreError::Corrupt(e.to_string()))?;
    sqlx::query("INSERT INTO actions (docket, action, judge, at) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(&action_json)
        .bind(judge)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    let seq: i64 = sqlx::query_scalar("SELECT COUNT(*) + 1 FROM outbox WHERE case_id = $1")
        .bind(case_id)
        .fetch_one(&mut *tx)
        .await?;
    let message = Message {
        message_id: random_id(),
        case_id: case_id.to_string(),
        seq,
        created_at: now,
        body: Body::CourtUpdate(CourtUpdate {
            application: id.to_string(),
            agreement_sha256: sha.to_string(),
            action: action.clone(),
            status: next.status,
            extended: next.extended,
            due_at: next.due(now).map(|(d, _)| d),
            judge: judge.to_string(),
            judge_name: judge_name.to_string(),
            at: now,
            document,
        }),
    };
    let envelope = key.seal(&message);
    sqlx::query(
        "INSERT INTO outbox (message_id, case_id, seq, payload, signature, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&message.message_id)
    .bind(case_id)
    .bind(seq)
    .bind(&envelope.payload)
    .bind(&envelope.signature)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! The internet side of judicial confirmation: the outbox of signed envelopes (leased to the
//! court bridge, acknowledged, redelivered when a lease runs out, dead-lettered when a message
//! keeps failing) and the inbox of court updates (each taken once, with its effect, in one
//! transaction).
//!
//! Per-case order: only the oldest pending message of a case can be leased, so a case's second
//! message never overtakes its first; a dead message no longer holds its case back.

use crate::append::{APPEND_ATTEMPTS, Alongside};
use crate::error::StoreError;
use crate::ids::text_id;
use crate::pool::{Backend, Store};
use serde::Serialize;
use sqlx::Row as _;
use tiaojie_confirmation::{CourtUpdate, Envelope, Message, Signer};
use tiaojie_domain::audit::AuditEntry;
use tiaojie_domain::mediation::{CaseEvent, CaseState, Recorded, RuleError};
use tiaojie_domain::{CaseId, PersonId};

// The lease statement in parts (static SQL: sqlx 0.9 takes no strings built at run time):
// what a lease sets, which messages it picks, and the guard on the rows it updates. $1 owner,
// $2 lease end, $3 now, $4 limit, $5 attempts at which a message is dead-lettered instead.
macro_rules! lease_set {
    () => {
        "UPDATE confirmation_outbox SET lease_owner = $1, lease_until = $2, \
         attempts = attempts + 1 WHERE message_id"
    };
}
macro_rules! lease_pick {
    () => {
        "(SELECT o.message_id FROM confirmation_outbox o WHERE o.state = 'pending' \
         AND (o.lease_until IS NULL OR o.lease_until < $3) AND o.attempts < $5 \
         AND NOT EXISTS (SELECT 1 FROM confirmation_outbox p WHERE p.case_id = o.case_id \
         AND p.state = 'pending' AND p.seq < o.seq) ORDER BY o.created_at, o.seq LIMIT $4"
    };
}
macro_rules! lease_guard {
    () => {
        " AND state = 'pending' AND (lease_until IS NULL OR lease_until < $3) \
         RETURNING message_id, case_id, seq, created_at, payload, signature, attempts"
    };
}

/// Leases after which a message that was never acknowledged is dead-lettered.
pub const MAX_ATTEMPTS: i64 = 8;

/// A leased outbox message.
#[derive(Debug, Clone)]
pub struct Leased {
    /// Message id.
    pub message_id: String,
    /// Its case.
    pub case_id: String,
    /// The signed message.
    pub envelope: Envelope,
    /// Times leased so far, this one included.
    pub attempts: i64,
}

/// An outbox row, for the admin API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OutboxEntry {
    /// Message id.
    pub message_id: String,
    /// Case id.
    pub case_id: String,
    /// Per-case sequence.
    pub seq: i64,
    /// `pending`, `acked` or `dead`.
    pub state: String,
    /// Times leased.
    pub attempts: i64,
    /// The last failure the bridge reported.
    pub last_error: Option<String>,
    /// Written, Unix ms.
    pub created_at: i64,
    /// Acknowledged, Unix ms.
    pub acked_at: Option<i64>,
}

/// Outbox figures for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Not yet acknowledged.
    pub pending: i64,
    /// Dead-lettered.
    pub dead: i64,
    /// Age of the oldest pending message, ms (0 when none).
    pub oldest_pending_ms: i64,
}

/// What became of a court update.
#[derive(Debug, Clone, PartialEq)]
pub enum Taken {
    /// Applied now; the case after it.
    Applied(Box<CaseState>),
    /// Taken before (a redelivery): nothing changed.
    Duplicate,
    /// Refused for good (recorded, so a redelivery is refused again without re-deciding).
    Refused(String),
}

impl Store {
    /// Like [`Store::case_command`], and writes the outbox messages `outbox` makes from the
    /// state after the events, sealed with `signer`, in the same transaction.
    /// The actor is the audit entry's.
    pub async fn case_command_with_outbox(
        &self,
        id: &CaseId,
        now: i64,
        decide: impl Fn(&CaseState) -> Result<Vec<CaseEvent>, RuleError>,
        outbox: impl Fn(&CaseState, &[Recorded]) -> Vec<Message>,
        signer: &Signer,
        audit: &AuditEntry,
    ) -> Result<(CaseState, Vec<Recorded>), StoreError> {
        self.command_loop(
            id,
            &PersonId::from(audit.actor.as_str()),
            now,
            decide,
            Some(audit),
            |after, recorded| Alongside {
                outbox: outbox(after, recorded)
                    .into_iter()
                    .map(|m| {
                        let envelope = signer.seal(&m);
                        (m, envelope)
                    })
                    .collect(),
                inbox: None,
                document: None,
            },
        )
        .await
    }

    /// Leases up to `limit` outbox messages to `owner` for `lease_ms`: per case only the
    /// oldest pending one, oldest cases first; none leased [`MAX_ATTEMPTS`] times already
    /// (see [`Store::dead_letter_outbox`]).
    pub async fn lease_outbox(
        &self,
        owner: &str,
        limit: i64,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<Leased>, StoreError> {
        // The same statement on both backends but for PostgreSQL's row locks: several server
        // processes leasing at once skip each other's rows instead of waiting or doubling.
        // There the picked ids go in as an array, so the update finds its rows by key; as
        // `IN (…)` PostgreSQL joined them against a scan of the whole table, and a backlog of
        // 20,000 made every lease cost milliseconds.
        let sql = match self.backend {
            Backend::Sqlite => concat!(lease_set!(), " IN ", lease_pick!(), ")", lease_guard!()),
            Backend::Postgres => concat!(
                lease_set!(),
                " = ANY(ARRAY",
                lease_pick!(),
                " FOR UPDATE SKIP LOCKED))",
                lease_guard!()
            ),
        };
        let _turn = self.write_turn().await;
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(now + lease_ms)
            .bind(now)
            .bind(limit)
            .bind(MAX_ATTEMPTS)
            .fetch_all(&self.pool)
            .await?;
        let mut leased = rows
            .iter()
            .map(|r| {
                Ok((
                    (
                        r.try_get::<i64, _>("created_at")?,
                        r.try_get::<i64, _>("seq")?,
                    ),
                    Leased {
                        message_id: r.try_get("message_id")?,
                        case_id: r.try_get("case_id")?,
                        envelope: Envelope {
                            payload: r.try_get("payload")?,
                            signature: r.try_get("signature")?,
                        },
                        attempts: r.try_get("attempts")?,
                    },
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        leased.sort_by_key(|(order, _)| *order);
        Ok(leased.into_iter().map(|(_, l)| l).collect())
    }

    /// Dead-letters the messages leased [`MAX_ATTEMPTS`] times without an acknowledgement
    /// whose last lease has run out, so they no longer hold their cases back. A scan of the
    /// pending messages: run now and then, not with every lease. The count.
    pub async fn dead_letter_outbox(&self, now: i64) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        let dead = sqlx::query(
            "UPDATE confirmation_outbox SET state = 'dead', lease_owner = NULL, \
             last_error = COALESCE(last_error, 'never acknowledged') \
             WHERE state = 'pending' AND attempts >= $1 \
             AND (lease_until IS NULL OR lease_until < $2)",
        )
        .bind(MAX_ATTEMPTS)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if dead > 0 {
            tracing::error!(count = dead, "judicial confirmation messages dead-lettered");
        }
        Ok(dead)
    }

    /// The bridge has these messages: one statement for the lot. Idempotent. Returns the cases
    /// whose messages were acknowledged now (not before), so their pages can be told.
    pub async fn ack_outbox_batch(
        &self,
        message_ids: &[String],
        now: i64,
    ) -> Result<Vec<CaseId>, StoreError> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip however many: on PostgreSQL a statement per id cost more than the
        // rest of the handoff. The statement holds only numbered placeholders, never data.
        let placeholders: Vec<String> = (2..message_ids.len() + 2)
            .map(|n| format!("${n}"))
            .collect();
        let sql = format!(
            "UPDATE confirmation_outbox SET state = 'acked', lease_owner = NULL, \
             lease_until = NULL, acked_at = $1 WHERE state = 'pending' AND message_id IN ({}) \
             RETURNING case_id",
            placeholders.join(", ")
        );
        let _turn = self.write_turn().await;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for id in message_ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut cases = rows
            .iter()
            .map(|r| text_id::<CaseId, _>(r, "case_id"))
            .collect::<Result<Vec<_>, _>>()?;
        cases.sort();
        cases.dedup();
        Ok(cases)
    }

    /// The bridge could not take the message: note why and offer it again after `retry_ms`
    /// (it is dead-lettered once leased [`MAX_ATTEMPTS`] times).
    pub async fn refuse_outbox(
        &self,
        message_id: &str,
        error: &str,
        retry_ms: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "UPDATE confirmation_outbox SET last_error = $1, lease_owner = NULL, \
             lease_until = $2 WHERE message_id = $3 AND state = 'pending'",
        )
        .bind(error)
        .bind(now + retry_ms)
        .bind(message_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives back what `owner` leased and the bridge did not acknowledge (its connection
    /// ended), so the next connection gets it at once rather than when the lease runs out.
    /// The lease is not counted against the message: it had no verdict (the connection or
    /// this server failed, not the message), and a message must not be dead-lettered for a
    /// link that keeps dropping.
    pub async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let _turn = self.write_turn().await;
        Ok(sqlx::query(
            "UPDATE confirmation_outbox SET lease_owner = NULL, lease_until = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END \
             WHERE lease_owner = $1 AND state = 'pending'",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// An admin sends a dead-lettered message again (after fixing what made it fail).
    pub async fn retry_dead(&self, message_id: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "UPDATE confirmation_outbox SET state = 'pending', attempts = 0, lease_owner = NULL, \
             lease_until = NULL WHERE message_id = $1 AND state = 'dead'",
        )
        .bind(message_id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Outbox rows in `state` (all when `None`), oldest first, at most 500.
    pub async fn outbox_entries(
        &self,
        state: Option<&str>,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id, case_id, seq, state, attempts, last_error, created_at, acked_at \
             FROM confirmation_outbox WHERE ($1 = '' OR state = $1) \
             ORDER BY created_at, seq LIMIT 500",
        )
        .bind(state.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxEntry {
                    message_id: r.try_get("message_id")?,
                    case_id: r.try_get("case_id")?,
                    seq: r.try_get("seq")?,
                    state: r.try_get("state")?,
                    attempts: r.try_get("attempts")?,
                    last_error: r.try_get("last_error")?,
                    created_at: r.try_get("created_at")?,
                    acked_at: r.try_get("acked_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Whether the court bridge has acknowledged a message (`None`: no such message).
    pub async fn outbox_state(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT state FROM confirmation_outbox WHERE message_id = $1")
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Figures for the metrics.
    pub async fn outbox_stats(&self, now: i64) -> Result<OutboxStats, StoreError> {
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM confirmation_outbox WHERE state = 'pending') AS pending, \
             (SELECT COUNT(*) FROM confirmation_outbox WHERE state = 'dead') AS dead, \
             (SELECT COALESCE(MIN(created_at), 0) FROM confirmation_outbox \
              WHERE state = 'pending') AS oldest",
        )
        .fetch_one(&self.pool)
        .await?;
        let oldest: i64 = row.try_get("oldest")?;
        Ok(OutboxStats {
            pending: row.try_get("pending")?,
            dead: row.try_get("dead")?,
            oldest_pending_ms: if oldest == 0 {
                0
            } else {
                (now - oldest).max(0)
            },
        })
    }

    /// Takes a court update, verified by the caller: its inbox row, its effect on the case and
    /// its `audit` entry in one transaction. A message id seen before changes nothing; one the
    /// case's rules refuse is recorded as refused (the inbox row is its record).
    pub async fn take_court_update(
        &self,
        message: &Message,
        update: &CourtUpdate,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<Taken, StoreError> {
        for attempt in 0..APPEND_ATTEMPTS {
            if let Some((outcome, reason)) = self.inbox_outcome(&message.message_id).await? {
                return Ok(if outcome == "refused" {
                    Taken::Refused(reason.unwrap_or_default())
                } else {
                    Taken::Duplicate
                });
            }
            let before = match self.case(&CaseId::from(message.case_id.as_str())).await {
                Ok(c) => c,
                Err(StoreError::CaseNotFound(_)) => {
                    let reason = format!("no case {}", message.case_id);
                    self.refuse_inbox(message, &reason, now).await?;
                    return Ok(Taken::Refused(reason));
                }
                Err(e) => return Err(e),
            };
            // The record keeps the document's hash; its bytes go beside the inbox row, and
            // must be what the hash says.
            let (kept, document) = update.without_document_bytes();
            if let (Some(d), Some(bytes)) = (&kept.document, &document)
                && tiaojie_domain::mediation::agreement::sha256_hex(bytes) != d.sha256
            {
                let reason = "the ruling's document does not match its SHA-256".to_string();
                self.refuse_inbox(message, &reason, now).await?;
                return Ok(Taken::Refused(reason));
            }
            let events = match before.take_court_update(&message.message_id, &kept) {
                Ok(events) => events,
                Err(rule) => {
                    let reason = rule.to_string();
                    self.refuse_inbox(message, &reason, now).await?;
                    return Ok(Taken::Refused(reason));
                }
            };
            let alongside = Alongside {
                outbox: Vec::new(),
                inbox: Some(message.message_id.clone()),
                document,
            };
            match self
                .append(
                    &before,
                    &PersonId::from("court"),
                    now,
                    events,
                    Some(audit),
                    |_, _| alongside,
                )
                .await
            {
                Ok((after, _)) => return Ok(Taken::Applied(Box::new(after))),
                Err(StoreError::Conflict) => {
                    tokio::time::sleep(std::time::Duration::from_millis(2 * attempt as u64)).await;
                }
                // The inbox row exists: another connection took it meanwhile.
                Err(StoreError::Duplicate) => return Ok(Taken::Duplicate),
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    /// The latest document the court sent for `case` (its ruling's 民事裁定书), if any.
    pub async fn court_document(&self, case: &CaseId) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(
            "SELECT document FROM confirmation_inbox WHERE case_id = $1 AND document IS NOT NULL \
             ORDER BY received_at DESC LIMIT 1",
        )
        .bind(case.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<Vec<u8>, _>(0)).transpose()?)
    }

    async fn inbox_outcome(
        &self,
        message_id: &str,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        let row =
            sqlx::query("SELECT outcome, reason FROM confirmation_inbox WHERE message_id = $1")
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("outcome")?, r.try_get("reason")?)),
            None => None,
        })
    }

    async fn refuse_inbox(
        &self,
        message: &Message,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO confirmation_inbox (message_id, case_id, received_at, outcome, reason) \
             VALUES ($1, $2, $3, 'refused', $4) ON CONFLICT DO NOTHING",
        )
        .bind(&message.message_id)
        .bind(&message.case_id)
        .bind(now)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        tracing::warn!(message_id = %message.message_id, case = %message.case_id, %reason, "court update refused");
        Ok(())
    }
}

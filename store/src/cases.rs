//! Storage of cases: their event records, the summary row, rooms, minutes and ratings.

use crate::append::{APPEND_ATTEMPTS, Alongside, write_alongside};
use crate::audit::{append_audit, case_audit_detail};
use crate::error::StoreError;
use crate::ids::text_id;
use crate::pool::Store;
use serde::Serialize;
use sqlx::Row;
use tiaojie_domain::audit::AuditEntry;
use tiaojie_domain::mediation::agreement::text_hash;
use tiaojie_domain::mediation::case::{NewCase, validate_new_case};
use tiaojie_domain::mediation::{CaseEvent, CaseState, Recorded, RuleError};
use tiaojie_domain::{CaseId, PersonId, RoomName};

/// The stored minutes of one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Minutes {
    /// Revision, from 1 (0: nothing written yet).
    pub revision: i64,
    /// Current text.
    pub text: String,
    /// SHA-256 of its canonical form.
    pub sha256: String,
    /// Last saved, Unix ms.
    pub updated_at: i64,
    /// Last saved by.
    pub updated_by: String,
}

/// A case in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CaseSummary {
    /// Case id.
    pub id: String,
    /// Case number.
    pub number: String,
    /// The mediator's person id.
    pub mediator: String,
    /// The mediator's name.
    pub mediator_name: String,
    /// Opened, Unix ms.
    pub opened_at: i64,
    /// Outcome recorded at, Unix ms.
    pub closed_at: Option<i64>,
    /// Time limit, Unix ms (as of the last change; see `paused`).
    pub due_at: i64,
    /// The time limit is paused.
    pub paused: bool,
}

/// Ratings of one mediator's sessions.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MediatorRating {
    /// The mediator's person id.
    pub mediator: String,
    /// Number of ratings.
    pub count: i64,
    /// Mean score.
    pub average: f64,
    /// Count per score, 1 to 5.
    pub by_score: [i64; 5],
}

impl Store {
    /// Opens a case: its summary row, its first event and `audit` (its entry; the detail gets
    /// the event), in one transaction.
    pub async fn open_case(
        &self,
        id: &CaseId,
        new: &NewCase,
        actor: &PersonId,
        now: i64,
        audit: &AuditEntry,
    ) -> Result<CaseState, StoreError> {
        let members = validate_new_case(new)?;
        let first = Recorded {
            seq: 1,
            at: now,
            actor: actor.clone(),
            event: CaseEvent::Opened {
                number: new.number.trim().to_string(),
                case_type: new.case_type.trim().to_string(),
                claim_amount: new.claim_amount,
                stage: new.stage,
                members,
            },
        };
        let case = CaseState::fold(id, std::slice::from_ref(&first))
            .ok_or_else(|| StoreError::Invalid("cannot open the case".into()))?;
        let (mediator, mediator_name) = case
            .mediator()
            .map(|m| (m.id.clone(), m.name.clone()))
            .unwrap_or_default();
        let mut entry = audit.clone();
        entry.detail = case_audit_detail(std::slice::from_ref(&first), &audit.detail);
        let _audit = self.audit_lock.lock().await;
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO cases (id, number, mediator, mediator_name, opened_at, due_at, seq) \
             VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT DO NOTHING",
        )
        .bind(id.as_str())
        .bind(&case.number)
        .bind(mediator.as_str())
        .bind(&mediator_name)
        .bind(now)
        .bind(case.time_limit(now).due_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::CaseExists(case.number));
        }
        insert_event(&mut tx, id.as_str(), &first).await?;
        append_audit(&mut tx, &entry).await?;
        tx.commit().await?;
        tiaojie_confirmation::failpoint::hit("server.case_committed");
        Ok(case)
    }

    /// A case's events, oldest first.
    pub async fn case_events(&self, id: &CaseId) -> Result<Vec<Recorded>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, body FROM case_events WHERE case_id = $1 ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let body: String = row.try_get("body")?;
                let event = serde_json::from_str(&body).map_err(|e| {
                    sqlx::Error::Decode(format!("case {id}: stored event: {e}").into())
                })?;
                Ok(Recorded {
                    seq: row.try_get("seq")?,
                    at: row.try_get("at")?,
                    actor: text_id(row, "actor")?,
                    event,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// A case's current state.
    pub async fn case(&self, id: &CaseId) -> Result<CaseState, StoreError> {
        let events = self.case_events(id).await?;
        CaseState::fold(id, &events).ok_or_else(|| StoreError::CaseNotFound(id.to_string()))
    }

    /// Runs `decide` on the case's current state and appends the events it returns; if another
    /// command appended first, decides again on the new state. Returns the state after.
    /// `audit` is the action's entry: it is written in the same transaction as the events (its
    /// detail gets the events' range and kinds), so no action is ever without its entry.
    pub async fn case_command(
        &self,
        id: &CaseId,
        actor: &PersonId,
        now: i64,
        decide: impl Fn(&CaseState) -> Result<Vec<CaseEvent>, RuleError>,
        audit: &AuditEntry,
    ) -> Result<(CaseState, Vec<Recorded>), StoreError> {
        self.command_loop(id, actor, now, decide, Some(audit), |_, _| {
            Alongside::default()
        })
        .await
    }

    /// The command loop: decide on the current state, append with what goes alongside (built
    /// from the state after), and decide again if another command appended first.
    pub(crate) async fn command_loop(
        &self,
        id: &CaseId,
        actor: &PersonId,
        now: i64,
        decide: impl Fn(&CaseState) -> Result<Vec<CaseEvent>, RuleError>,
        audit: Option<&AuditEntry>,
        alongside: impl Fn(&CaseState, &[Recorded]) -> Alongside,
    ) -> Result<(CaseState, Vec<Recorded>), StoreError> {
        for attempt in 0..APPEND_ATTEMPTS {
            let before = self.case(id).await?;
            let events = decide(&before).map_err(StoreError::Rule)?;
            if events.is_empty() {
                // Nothing changes (an answer given again): nothing is written, not even an
                // audit entry — a repeated request costs a read, never a growing record.
                return Ok((before, Vec::new()));
            }
            match self
                .append(&before, actor, now, events, audit, &alongside)
                .await
            {
                Err(StoreError::Conflict) => {
                    // Back off a little more each time so a burst on one case drains.
                    tokio::time::sleep(std::time::Duration::from_millis(2 * attempt as u64)).await;
                }
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }

    pub(crate) async fn append(
        &self,
        before: &CaseState,
        actor: &PersonId,
        now: i64,
        events: Vec<CaseEvent>,
        audit: Option<&AuditEntry>,
        alongside: impl FnOnce(&CaseState, &[Recorded]) -> Alongside,
    ) -> Result<(CaseState, Vec<Recorded>), StoreError> {
        let mut after = before.clone();
        let mut recorded = Vec::with_capacity(events.len());
        for event in events {
            let r = Recorded {
                seq: after.seq + 1,
                at: now,
                actor: actor.clone(),
                event,
            };
            after.apply(&r);
            recorded.push(r);
        }
        let limit = after.time_limit(now);
        let alongside = alongside(&after, &recorded);
        let entry = audit.map(|a| {
            let mut entry = a.clone();
            entry.detail = case_audit_detail(&recorded, &a.detail);
            entry
        });
        // The audit chain's lock first, as `Store::audit` takes it: one order, no deadlock.
        let _audit = match entry {
            Some(_) => Some(self.audit_lock.lock().await),
            None => None,
        };
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let claimed = sqlx::query(
            "UPDATE cases SET seq = $1, closed_at = $2, due_at = $3, paused = $4 \
             WHERE id = $5 AND seq = $6",
        )
        .bind(after.seq)
        .bind(after.closed_at)
        .bind(limit.due_at)
        .bind(i64::from(limit.paused))
        .bind(after.id.as_str())
        .bind(before.seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Err(StoreError::Conflict);
        }
        for r in &recorded {
            insert_event(&mut tx, after.id.as_str(), r).await?;
            match &r.event {
                CaseEvent::SessionScheduled { session, room, .. } => {
                    sqlx::query(
                        "INSERT INTO case_rooms (room, case_id, session) VALUES ($1, $2, $3)",
                    )
                    .bind(room.as_str())
                    .bind(after.id.as_str())
                    .bind(i64::from(*session))
                    .execute(&mut *tx)
                    .await?;
                }
                CaseEvent::Rated {
                    session,
                    person,
                    score,
                    comment,
                } => {
                    sqlx::query(
                        "INSERT INTO ratings (case_id, session, person, mediator, score, \
                         comment, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(after.id.as_str())
                    .bind(i64::from(*session))
                    .bind(person.as_str())
                    .bind(after.mediator().map(|m| m.id.as_str()).unwrap_or_default())
                    .bind(i32::from(*score))
                    .bind(comment)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                _ => {}
            }
        }
        write_alongside(&mut tx, after.id.as_str(), now, &alongside).await?;
        if let Some(entry) = &entry {
            append_audit(&mut tx, entry).await?;
        }
        tx.commit().await?;
        tiaojie_confirmation::failpoint::hit("server.case_committed");
        Ok((after, recorded))
    }

    /// The case and session a room belongs to, if any.
    pub async fn case_of_room(&self, room: &RoomName) -> Result<Option<(CaseId, u32)>, StoreError> {
        let row = sqlx::query("SELECT case_id, session FROM case_rooms WHERE room = $1")
            .bind(room.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            let session: i64 = row.try_get("session")?;
            Ok((text_id(&row, "case_id")?, session as u32))
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Cases, newest first: all, or one mediator's; only overdue ones at `overdue_at`; the
    /// page of `limit` after skipping `offset`.
    pub async fn cases(
        &self,
        mediator: Option<&PersonId>,
        overdue_at: Option<i64>,
        (offset, limit): (i64, i64),
    ) -> Result<Vec<CaseSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, number, mediator, mediator_name, opened_at, closed_at, due_at, paused \
             FROM cases \
             WHERE ($1 IS NULL OR mediator = $1) \
             AND ($2 IS NULL OR (closed_at IS NULL AND paused = 0 AND due_at < $2)) \
             ORDER BY opened_at DESC, id LIMIT $3 OFFSET $4",
        )
        .bind(mediator.map(|x| x.as_str()))
        .bind(overdue_at)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let paused: i64 = row.try_get("paused")?;
                Ok(CaseSummary {
                    id: row.try_get("id")?,
                    number: row.try_get("number")?,
                    mediator: row.try_get("mediator")?,
                    mediator_name: row.try_get("mediator_name")?,
                    opened_at: row.try_get("opened_at")?,
                    closed_at: row.try_get("closed_at")?,
                    due_at: row.try_get("due_at")?,
                    paused: paused != 0,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// How many open, unpaused cases are past their time limit at `now` (the metric).
    pub async fn overdue_count(&self, now: i64) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM cases \
             WHERE closed_at IS NULL AND paused = 0 AND due_at < $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// A session's minutes (revision 0 and empty text if nothing was written).
    pub async fn minutes(&self, case: &CaseId, session: u32) -> Result<Minutes, StoreError> {
        let row = sqlx::query(
            "SELECT revision, text, sha256, updated_at, updated_by FROM minutes \
             WHERE case_id = $1 AND session = $2",
        )
        .bind(case.as_str())
        .bind(i64::from(session))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Minutes {
                revision: row.try_get("revision")?,
                text: row.try_get("text")?,
                sha256: row.try_get("sha256")?,
                updated_at: row.try_get("updated_at")?,
                updated_by: row.try_get("updated_by")?,
            }),
            None => Ok(Minutes {
                revision: 0,
                text: String::new(),
                sha256: text_hash(""),
                updated_at: 0,
                updated_by: String::new(),
            }),
        }
    }

    /// Saves the minutes over revision `base` (the one the editor saw); a save over a newer
    /// revision is refused as stale, so two editors never overwrite each other silently.
    pub async fn save_minutes(
        &self,
        case: &CaseId,
        session: u32,
        base: i64,
        text: &str,
        by: &PersonId,
        now: i64,
    ) -> Result<Minutes, StoreError> {
        let sha256 = text_hash(text);
        let revision = base + 1;
        let written = if base == 0 {
            sqlx::query(
                "INSERT INTO minutes (case_id, session, revision, text, sha256, updated_at, \
                 updated_by) VALUES ($1, $2, 1, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(case.as_str())
            .bind(i64::from(session))
            .bind(text)
            .bind(&sha256)
            .bind(now)
            .bind(by.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected()
        } else {
            sqlx::query(
                "UPDATE minutes SET revision = $1, text = $2, sha256 = $3, updated_at = $4, \
                 updated_by = $5 WHERE case_id = $6 AND session = $7 AND revision = $8",
            )
            .bind(revision)
            .bind(text)
            .bind(&sha256)
            .bind(now)
            .bind(by.as_str())
            .bind(case.as_str())
            .bind(i64::from(session))
            .bind(base)
            .execute(&self.pool)
            .await?
            .rows_affected()
        };
        if written == 0 {
            return Err(StoreError::Rule(RuleError::MinutesChanged { since: base }));
        }
        Ok(Minutes {
            revision,
            text: text.to_string(),
            sha256,
            updated_at: now,
            updated_by: by.to_string(),
        })
    }

    /// Ratings aggregated per mediator.
    pub async fn mediator_ratings(&self) -> Result<Vec<MediatorRating>, StoreError> {
        let rows = sqlx::query(
            "SELECT mediator, CAST(score AS BIGINT) AS score, CAST(COUNT(*) AS BIGINT) AS n \
             FROM ratings GROUP BY mediator, score ORDER BY mediator, score",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<MediatorRating> = Vec::new();
        for row in &rows {
            let mediator: String = row.try_get("mediator")?;
            let score: i64 = row.try_get("score")?;
            let n: i64 = row.try_get("n")?;
            if out.last().is_none_or(|m| m.mediator != mediator) {
                out.push(MediatorRating {
                    mediator,
                    count: 0,
                    average: 0.0,
                    by_score: [0; 5],
                });
            }
            if let (Some(m), Ok(i @ 0..=4)) = (out.last_mut(), usize::try_from(score - 1)) {
                m.by_score[i] += n;
            }
        }
        for m in &mut out {
            m.count = m.by_score.iter().sum();
            let total: i64 = (1..=5).zip(m.by_score).map(|(s, n)| s * n).sum();
            m.average = if m.count == 0 {
                0.0
            } else {
                total as f64 / m.count as f64
            };
        }
        Ok(out)
    }
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    case: &str,
    r: &Recorded,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(&r.event)
        .map_err(|e| StoreError::Invalid(format!("cannot encode event: {e}")))?;
    sqlx::query(
        "INSERT INTO case_events (case_id, seq, at, actor, kind, body) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(case)
    .bind(r.seq)
    .bind(r.at)
    .bind(r.actor.as_str())
    .bind(r.event.kind())
    .bind(body)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

//! Who is kept out: revoked links (by token id, until they would have expired anyway) and
//! people removed from a room (every link of theirs, until a moderator lets them back).

use crate::audit::append_audit;
use crate::error::StoreError;
use crate::ids::text_id;
use crate::pool::Store;
use sqlx::Row;
use tiaojie_domain::{AuditEntry, PersonId, RoomName};

/// A person put out of a room, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct Removal<'a> {
    /// The room.
    pub room: &'a RoomName,
    /// Who.
    pub identity: &'a PersonId,
    /// The id of the link they came in with.
    pub jti: &'a str,
    /// When that link would have expired (Unix ms): its revocation is kept until then.
    pub token_expires_at: i64,
    /// Shown to them and recorded.
    pub reason: &'a str,
    /// When (Unix ms).
    pub at: i64,
}

impl Store {
    /// Puts `removal.identity` out of `removal.room`: revokes the link they came in with
    /// (until it would have expired anyway) and keeps every link of theirs for the room out
    /// until [`Store::lift_removal`]. The audit entry commits with it, or nothing does.
    pub async fn record_removal(
        &self,
        removal: &Removal<'_>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let _audit = self.audit_lock.lock().await;
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, room, identity, reason, revoked_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(removal.jti)
        .bind(removal.room.as_str())
        .bind(removal.identity.as_str())
        .bind(removal.reason)
        .bind(removal.at)
        .bind(removal.token_expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO removals (room, identity, reason, removed_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (room, identity) DO NOTHING",
        )
        .bind(removal.room.as_str())
        .bind(removal.identity.as_str())
        .bind(removal.reason)
        .bind(removal.at)
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lets `identity` back into `room`, with the links their removal revoked: the ids of
    /// those links, or `None` if they were not removed from it (and nothing is audited). The
    /// audit entry commits with the readmission.
    pub async fn lift_removal(
        &self,
        room: &RoomName,
        identity: &PersonId,
        audit: &AuditEntry,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let _audit = self.audit_lock.lock().await;
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM removals WHERE room = $1 AND identity = $2")
            .bind(room.as_str())
            .bind(identity.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let rows = sqlx::query(
            "DELETE FROM revoked_tokens WHERE room = $1 AND identity = $2 RETURNING jti",
        )
        .bind(room.as_str())
        .bind(identity.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let jtis = rows
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<Vec<_>, _>>()?;
        append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(jtis))
    }

    /// Everyone removed from a room, as (room, identity), for an in-memory check.
    pub async fn removals(&self) -> Result<Vec<(RoomName, PersonId)>, StoreError> {
        let rows = sqlx::query("SELECT room, identity FROM removals")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((text_id(row, 0)?, text_id(row, 1)?)))
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

//! Who is kept out: revoked links (by token id, until they would have expired anyway) and
//! people removed from a room (every link of theirs, until a moderator lets them back).

use crate::error::StoreError;
use crate::pool::Store;
use sqlx::Row;

impl Store {
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

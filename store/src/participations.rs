//! Presence records: who was in a room, with which role, from when to when and why they left.
//! Joins and leaves go through the group-commit writer.

use crate::error::StoreError;
use crate::group_commit::{Done, Op};
use crate::ids::text_id;
use crate::pool::Store;
use sqlx::Row;
use tiaojie_domain::participation::{LeaveReason, Participation};
use tiaojie_domain::{PersonId, RoomName};

impl Store {
    /// Records a presence starting; returns its row id. Fails with [`StoreError::RoomClosed`]
    /// if the room is not open at that instant, so no join slips past a concurrent close.
    pub async fn record_join(
        &self,
        room: &RoomName,
        identity: &PersonId,
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
            other => Err(other.unexpected()),
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
    pub async fn participations(&self, room: &RoomName) -> Result<Vec<Participation>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            participation_columns!(),
            " FROM participations WHERE room = $1 ORDER BY joined_at, id"
        ))
        .bind(room.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Participation {
                    id: row.try_get("id")?,
                    room: text_id(row, "room")?,
                    identity: text_id(row, "identity")?,
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
}

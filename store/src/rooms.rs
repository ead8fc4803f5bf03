//! Rooms: create, open (creating on first join), list, close, and their recording policy.

use crate::error::StoreError;
use crate::group_commit::{Done, Op};
use crate::pool::Store;
use crate::room_rows::{room_from_row, select_room};
use tiaojie_domain::RoomName;
use tiaojie_domain::recording::RecordingMode;
use tiaojie_domain::room::{NewRoom, Room};

impl Store {
    /// Creates a room; fails if the name is taken.
    pub async fn create_room(&self, new: &NewRoom, now: i64) -> Result<Room, StoreError> {
        new.name.check().map_err(StoreError::Invalid)?;
        if matches!(new.max_participants, Some(n) if n < 1) {
            return Err(StoreError::Invalid(
                "max_participants must be at least 1".into(),
            ));
        }
        let inserted = sqlx::query(
            "INSERT INTO rooms (name, created_at, max_participants, metadata, lobby, recording) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING",
        )
        .bind(new.name.as_str())
        .bind(now)
        .bind(new.max_participants)
        .bind(&new.metadata)
        .bind(i64::from(new.lobby))
        .bind(new.recording.map(RecordingMode::as_str))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::RoomExists(new.name.clone().into_string()));
        }
        self.room(&new.name).await
    }

    /// The room, creating it with defaults if absent (auto-created rooms); fails if it is closed.
    pub async fn open_room(&self, name: &RoomName, now: i64) -> Result<Room, StoreError> {
        name.check().map_err(StoreError::Invalid)?;
        match self
            .writer
            .write(Op::OpenRoom {
                name: name.to_string(),
                now,
            })
            .await?
        {
            Done::Room(room) => Ok(room),
            other => Err(other.unexpected()),
        }
    }

    /// One room.
    pub async fn room(&self, name: &RoomName) -> Result<Room, StoreError> {
        select_room(&self.pool, name.as_str())
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
    pub async fn close_room(
        &self,
        name: &RoomName,
        reason: &str,
        now: i64,
    ) -> Result<Room, StoreError> {
        let closed = sqlx::query("UPDATE rooms SET closed_at = $1, close_reason = $2 WHERE name = $3 AND closed_at IS NULL")
            .bind(now)
            .bind(reason)
            .bind(name.as_str())
            .execute(&self.pool)
            .await?
            .rows_affected();
        let room = self.room(name).await?;
        if closed == 0 {
            return Err(StoreError::RoomClosed(name.to_string()));
        }
        Ok(room)
    }

    /// Sets a room's recording policy (`None`: the server's).
    pub async fn set_room_recording(
        &self,
        name: &RoomName,
        mode: Option<RecordingMode>,
    ) -> Result<Room, StoreError> {
        sqlx::query("UPDATE rooms SET recording = $1 WHERE name = $2")
            .bind(mode.map(RecordingMode::as_str))
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        self.room(name).await
    }
}

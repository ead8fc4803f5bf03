//! A room's row: reading it and inserting a default one. Shared by the room methods and the
//! presence writer (which opens rooms on first join inside its batch).

use crate::ids::text_id;
use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};
use tiaojie_domain::room::Room;

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

pub(crate) fn room_from_row(row: &AnyRow) -> Result<Room, sqlx::Error> {
    Ok(Room {
        name: text_id(row, "name")?,
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

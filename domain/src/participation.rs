//! Participation records: the durable trace of who was in a room (全程留痕). One row per
//! continuous presence: a resume within the grace period continues the same row.

use crate::ids::{PersonId, RoomName};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a presence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The participant said `leave`.
    Left,
    /// The connection dropped and no resume came within the grace period.
    ConnectionLost,
    /// An admin or moderator removed them.
    Removed,
    /// The room was closed.
    RoomClosed,
    /// The server shut down while they were present.
    ServerShutdown,
    /// The server stopped without a clean shutdown; found open at the next start.
    ServerRestart,
}

impl LeaveReason {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::ConnectionLost => "connection_lost",
            LeaveReason::Removed => "removed",
            LeaveReason::RoomClosed => "room_closed",
            LeaveReason::ServerShutdown => "server_shutdown",
            LeaveReason::ServerRestart => "server_restart",
        }
    }
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored participation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Participation {
    /// Row id.
    pub id: i64,
    /// Room name.
    pub room: RoomName,
    /// The person's identity (the token's subject).
    pub identity: PersonId,
    /// Name shown to others.
    pub display_name: String,
    /// Role held.
    pub role: String,
    /// Join time, Unix milliseconds.
    pub joined_at: i64,
    /// Leave time, Unix milliseconds; `None` while present.
    pub left_at: Option<i64>,
    /// Why they left (a [`LeaveReason`] name), with an operator's text for removals.
    pub leave_reason: Option<String>,
}

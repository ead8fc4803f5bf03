//! A room: where one mediation session's people meet. Created by an admin (or by the first valid
//! join when `signaling.auto_create_rooms` is on), closed once; a closed room admits nobody.

use serde::{Deserialize, Serialize};

use crate::ids::RoomName;
use crate::recording::RecordingMode;

/// A stored room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Room {
    /// Unique name, chosen by its creator (e.g. a case's session id); the join token names it.
    pub name: RoomName,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Close time, Unix milliseconds; `None` while open.
    pub closed_at: Option<i64>,
    /// Why it was closed.
    pub close_reason: Option<String>,
    /// Room-specific participant cap; `None` uses the server's.
    pub max_participants: Option<i64>,
    /// Free text for the operator (e.g. the case number).
    pub metadata: String,
    /// Participants without the `moderate` grant wait in a lobby until admitted.
    pub lobby: bool,
    /// The most this room may record; `None` follows the server's `recording.allowed`.
    pub recording: Option<RecordingMode>,
}

impl Room {
    /// Whether it still admits people.
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

/// What creating a room needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    /// Unique name: 1–128 characters of letters, digits, `-`, `_`, `.`, `:` (CJK letters allowed).
    pub name: RoomName,
    /// Room-specific participant cap.
    #[serde(default)]
    pub max_participants: Option<i64>,
    /// Free text for the operator.
    #[serde(default)]
    pub metadata: String,
    /// Participants without the `moderate` grant wait in a lobby until a moderator admits them.
    #[serde(default)]
    pub lobby: bool,
    /// The most this room may record (`off`, `audio`, `audio_video`); absent follows the
    /// server's `recording.allowed`, and a room never allows more than that.
    #[serde(default)]
    pub recording: Option<RecordingMode>,
}

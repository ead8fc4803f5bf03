//! The phases of one session: scheduled → lobby open (check-in) → in session → ended.

use serde::Serialize;

/// Phase of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Planned.
    Scheduled,
    /// People may come in and wait; checks happen here.
    LobbyOpen,
    /// Mediating.
    InSession,
    /// Over.
    Ended,
}

impl Phase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Scheduled => "scheduled",
            Phase::LobbyOpen => "lobby_open",
            Phase::InSession => "in_session",
            Phase::Ended => "ended",
        }
    }
}

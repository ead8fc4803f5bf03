//! The start-of-session checks a person may lack (ODR-Lit 7, ODR-Med 4 and 17): named by type,
//! so a refusal says exactly which, for whom, and a page can say it in the person's language.

use crate::ids::PersonId;
use crate::role::Role;
use serde::Serialize;
use std::fmt;

/// One check a person lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// The mediator has not verified their identity in this session.
    IdentityNotVerified,
    /// Their identity was checked in this session and did not match.
    IdentityFailed,
    /// They have not acknowledged the warning on false mediation (虚假调解).
    WarningNotAcknowledged,
    /// A party has not answered whether they consent to mediating online.
    OnlineMediationNotAnswered,
    /// A party refused to mediate online.
    OnlineMediationRefused,
    /// A party has not been asked about recording.
    RecordingNotAnswered,
    /// A party has not consented to recording, and the room is being recorded.
    RecordingNotConsented,
    /// A party has not consented to the recording replacing the minutes.
    RecordingReplacesMinutesNotConsented,
}

impl Check {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::IdentityNotVerified => "identity_not_verified",
            Check::IdentityFailed => "identity_failed",
            Check::WarningNotAcknowledged => "warning_not_acknowledged",
            Check::OnlineMediationNotAnswered => "online_mediation_not_answered",
            Check::OnlineMediationRefused => "online_mediation_refused",
            Check::RecordingNotAnswered => "recording_not_answered",
            Check::RecordingNotConsented => "recording_not_consented",
            Check::RecordingReplacesMinutesNotConsented => {
                "recording_replaces_minutes_not_consented"
            }
        }
    }
}

/// A check someone lacks: who (id and name, so a page names them), in what role, and which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MissingCheck {
    /// The person's id in the case.
    pub person: PersonId,
    /// Their name, as the case records it.
    pub name: String,
    /// Their role in the case.
    pub role: Role,
    /// The check.
    pub check: Check,
}

impl fmt::Display for MissingCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.person, self.check.as_str())
    }
}

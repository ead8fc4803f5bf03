//! Where a case stands on judicial confirmation, as its events tell: who applied, what was
//! submitted, the court's updates. The commands that make those events are in
//! [`super::confirmation`]; this is the record they and [`super::state::CaseState`] fold into.

use super::event::CaseEvent;
use crate::ids::PersonId;
use serde::Serialize;
use tiaojie_confirmation::court::{CourtStatus, CourtUpdate, Docket};

/// The application sent to the court.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Submitted {
    /// The outbox message id (the court calls the application by it).
    pub message_id: String,
    /// Agreement version applied for.
    pub version: u32,
    /// Its hash.
    pub sha256: String,
    /// When, Unix ms.
    pub at: i64,
}

/// Where the case stands on judicial confirmation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConfirmationState {
    /// Parties who applied, with when (Unix ms).
    pub applicants: Vec<(PersonId, i64)>,
    /// The joint application, once every party applied.
    pub submitted: Option<Submitted>,
    /// A party withdrew (message id of the withdrawal, who, when).
    pub withdrawal: Option<(String, PersonId, i64)>,
    /// The court's record as far as its updates tell.
    #[schema(value_type = Option<Object>)]
    pub docket: Option<Docket>,
    /// The court's updates, oldest first.
    #[schema(value_type = Vec<Object>)]
    pub updates: Vec<CourtUpdate>,
    /// Messages this case put in the outbox (their per-case sequence).
    pub messages_sent: i64,
}

impl ConfirmationState {
    /// The court status, if the court has said anything (received is implied by submission).
    pub fn status(&self) -> Option<CourtStatus> {
        self.docket.map(|d| d.status)
    }

    pub(super) fn apply(&mut self, event: &CaseEvent, at: i64) {
        match event {
            CaseEvent::ConfirmationApplied { person } => self.applicants.push((person.clone(), at)),
            CaseEvent::ConfirmationSubmitted {
                message_id,
                version,
                sha256,
            } => {
                self.submitted = Some(Submitted {
                    message_id: message_id.clone(),
                    version: *version,
                    sha256: sha256.clone(),
                    at,
                });
                self.docket = Some(Docket::received(at));
                self.messages_sent += 1;
            }
            CaseEvent::ConfirmationWithdrawn { message_id, person } => {
                self.withdrawal = Some((message_id.clone(), person.clone(), at));
                self.messages_sent += 1;
            }
            CaseEvent::CourtUpdated { update, .. } => {
                if let Some(d) = &mut self.docket
                    && let Ok(next) = d.act(&update.action, update.at)
                {
                    *d = next;
                }
                self.updates.push(update.clone());
            }
            _ => {}
        }
    }
}

//! Case changes told to a case's live session: the hub's one announcement of `case.updated`,
//! for every change however it came (an API command, the court's update, a delivery).

use crate::hub::Hub;
use crate::live_room::Audience;
use crate::protocol::Event;
use tiaojie_domain::mediation::CaseState;

impl Hub {
    /// Tells everyone in the case's live session rooms that the case changed, after sending back
    /// to the lobby whoever may no longer stand where they are (the admission rule, asked again).
    pub async fn announce_case_change(self: &std::sync::Arc<Self>, case: &CaseState, change: &str) {
        // Pages outside the rooms (a follow-up link after the session) hear of it too.
        if let Some(last) = case.sessions.last() {
            self.tell_followers(
                &case.id,
                &Event::CaseUpdated {
                    seq: 0,
                    case: case.id.clone(),
                    session: last.number,
                    change: change.to_string(),
                    case_seq: case.seq,
                },
            );
        }
        for session in &case.sessions {
            if !self.is_live(&session.room) {
                continue;
            }
            if let Err(e) = self.recheck_room(&session.room).await {
                tracing::error!(room = %session.room, error = %e.message, "could not re-check the room");
            }
            self.announce(&session.room, Audience::All, |seq| Event::CaseUpdated {
                seq,
                case: case.id.clone(),
                session: session.number,
                change: change.to_string(),
                case_seq: case.seq,
            })
            .await;
        }
    }
}

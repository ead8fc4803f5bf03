//! The court side's states and time limits (JC-2011 arts 4–5, CPL 205–206), shared by the
//! bridge, which decides, and the internet side, which only accepts updates that follow them.
//!
//! received ─accept→ accepted ─confirm→ confirmed
//!    │                 │ ↑ ╲─reject→ rejected
//!    │                 ↓ │ request supplement / supplement received
//!    │           supplement_requested ─confirm/reject→ …
//!    └─not accept→ not_accepted          (withdrawn from any state before a ruling)

use crate::period::end_of_day_after;
use serde::{Deserialize, Serialize};

pub use crate::period::DAY_MS;
/// Days to decide whether to accept an application (JC-2011 art 4: 3 days).
pub const ACCEPT_DAYS: i64 = 3;
/// Days to rule after acceptance (JC-2011 art 5: 15 days)...
pub const DECIDE_DAYS: i64 = 15;
/// ...plus this many with the court president's approval...
pub const EXTENSION_DAYS: i64 = 10;
/// ...and never more than this after acceptance.
pub const CAP_DAYS: i64 = 30;

/// Where an application stands at the court.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CourtStatus {
    /// In the court's inbox, not yet accepted.
    Received,
    /// Accepted (受理): under review.
    Accepted,
    /// The judge asked for supplementary material; still under review.
    SupplementRequested,
    /// Not accepted (不予受理), with grounds. Final.
    NotAccepted,
    /// Ruled valid (裁定调解协议有效). Final.
    Confirmed,
    /// Ruled rejected (裁定驳回申请). Final.
    Rejected,
    /// Withdrawn by the applicants before a ruling. Final.
    Withdrawn,
}

impl CourtStatus {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            CourtStatus::Received => "received",
            CourtStatus::Accepted => "accepted",
            CourtStatus::SupplementRequested => "supplement_requested",
            CourtStatus::NotAccepted => "not_accepted",
            CourtStatus::Confirmed => "confirmed",
            CourtStatus::Rejected => "rejected",
            CourtStatus::Withdrawn => "withdrawn",
        }
    }

    /// Every status.
    pub const ALL: [CourtStatus; 7] = [
        CourtStatus::Received,
        CourtStatus::Accepted,
        CourtStatus::SupplementRequested,
        CourtStatus::NotAccepted,
        CourtStatus::Confirmed,
        CourtStatus::Rejected,
        CourtStatus::Withdrawn,
    ];

    /// Parses [`as_str`](Self::as_str).
    pub fn parse(s: &str) -> Option<CourtStatus> {
        CourtStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// No further change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CourtStatus::NotAccepted
                | CourtStatus::Confirmed
                | CourtStatus::Rejected
                | CourtStatus::Withdrawn
        )
    }

    /// Under review (accepted, possibly waiting for a supplement).
    pub fn under_review(self) -> bool {
        matches!(
            self,
            CourtStatus::Accepted | CourtStatus::SupplementRequested
        )
    }
}

/// What a judge (or the applicants) does to an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum CourtAction {
    /// Accept (受理).
    Accept,
    /// Do not accept, with grounds.
    NotAccept {
        /// Grounds (e.g. JC-2011 art 4's list).
        grounds: String,
    },
    /// Ask the applicants for supplementary material.
    RequestSupplement {
        /// What is needed.
        what: String,
    },
    /// The supplement arrived; review goes on.
    SupplementReceived,
    /// Extend the decision limit by 10 days with the president's approval (once).
    Extend {
        /// The approval's reference (who approved, document number).
        approval: String,
    },
    /// Rule the agreement valid.
    Confirm {
        /// Ruling number (裁定书文号).
        ruling_number: String,
        /// Ruling text.
        ruling_text: String,
    },
    /// Rule the application rejected.
    Reject {
        /// Ruling number.
        ruling_number: String,
        /// Ruling text with reasons.
        ruling_text: String,
    },
    /// The applicants withdrew.
    Withdraw,
}

impl CourtAction {
    /// Stable name.
    pub fn name(&self) -> &'static str {
        match self {
            CourtAction::Accept => "accept",
            CourtAction::NotAccept { .. } => "not_accept",
            CourtAction::RequestSupplement { .. } => "request_supplement",
            CourtAction::SupplementReceived => "supplement_received",
            CourtAction::Extend { .. } => "extend",
            CourtAction::Confirm { .. } => "confirm",
            CourtAction::Reject { .. } => "reject",
            CourtAction::Withdraw => "withdraw",
        }
    }

    /// A ruling's number and text (confirm or reject), if this is one.
    pub fn ruling(&self) -> Option<(&str, &str)> {
        match self {
            CourtAction::Confirm {
                ruling_number,
                ruling_text,
            }
            | CourtAction::Reject {
                ruling_number,
                ruling_text,
            } => Some((ruling_number, ruling_text)),
            _ => None,
        }
    }

    /// The free text that must not be empty, if any.
    fn required_text(&self) -> Vec<(&'static str, &str)> {
        if let Some((number, text)) = self.ruling() {
            return vec![("ruling_number", number), ("ruling_text", text)];
        }
        match self {
            CourtAction::NotAccept { grounds } => vec![("grounds", grounds)],
            CourtAction::RequestSupplement { what } => vec![("what", what)],
            CourtAction::Extend { approval } => vec![("approval", approval)],
            _ => vec![],
        }
    }
}

/// An application's court-side record, as far as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Docket {
    /// Current status.
    pub status: CourtStatus,
    /// Received in the court's inbox, Unix ms.
    pub received_at: i64,
    /// Accepted, Unix ms.
    pub accepted_at: Option<i64>,
    /// The decision limit was extended.
    pub extended: bool,
}

/// Why a court action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CourtRuleError {
    /// Not from this status.
    #[error("cannot {action} an application that is {status}")]
    Transition {
        /// The action.
        action: &'static str,
        /// Current status.
        status: &'static str,
    },
    /// A required text is empty.
    #[error("{0} must not be empty")]
    Missing(&'static str),
    /// The limit was already extended once.
    #[error("the decision limit was already extended")]
    AlreadyExtended,
}

impl Docket {
    /// A newly received application.
    pub fn received(at: i64) -> Docket {
        Docket {
            status: CourtStatus::Received,
            received_at: at,
            accepted_at: None,
            extended: false,
        }
    }

    /// The docket after `action` at `now`, or the rule it breaks.
    pub fn act(&self, action: &CourtAction, now: i64) -> Result<Docket, CourtRuleError> {
        for (field, text) in action.required_text() {
            if text.trim().is_empty() {
                return Err(CourtRuleError::Missing(field));
            }
        }
        let refuse = || CourtRuleError::Transition {
            action: action.name(),
            status: self.status.as_str(),
        };
        let mut next = *self;
        match (self.status, action) {
            (s, _) if s.is_final() => return Err(refuse()),
            (CourtStatus::Received, CourtAction::Accept) => {
                next.status = CourtStatus::Accepted;
                next.accepted_at = Some(now);
            }
            (CourtStatus::Received, CourtAction::NotAccept { .. }) => {
                next.status = CourtStatus::NotAccepted;
            }
            (CourtStatus::Accepted, CourtAction::RequestSupplement { .. }) => {
                next.status = CourtStatus::SupplementRequested;
            }
            (CourtStatus::SupplementRequested, CourtAction::SupplementReceived) => {
                next.status = CourtStatus::Accepted;
            }
            (s, CourtAction::Extend { .. }) if s.under_review() => {
                if self.extended {
                    return Err(CourtRuleError::AlreadyExtended);
                }
                next.extended = true;
            }
            (s, CourtAction::Confirm { .. }) if s.under_review() => {
                next.status = CourtStatus::Confirmed;
            }
            (s, CourtAction::Reject { .. }) if s.under_review() => {
                next.status = CourtStatus::Rejected;
            }
            (_, CourtAction::Withdraw) => next.status = CourtStatus::Withdrawn,
            _ => return Err(refuse()),
        }
        Ok(next)
    }

    /// What a judge may do with the application now (its status, its one extension), by the
    /// actions' names: the judges' page offers only these. Withdrawal is the applicants'.
    pub fn judge_actions(&self, now: i64) -> Vec<&'static str> {
        let text = || "-".to_string();
        [
            CourtAction::Accept,
            CourtAction::NotAccept { grounds: text() },
            CourtAction::RequestSupplement { what: text() },
            CourtAction::SupplementReceived,
            CourtAction::Extend { approval: text() },
            CourtAction::Confirm {
                ruling_number: text(),
                ruling_text: text(),
            },
            CourtAction::Reject {
                ruling_number: text(),
                ruling_text: text(),
            },
        ]
        .into_iter()
        .filter(|action| self.act(action, now).is_ok())
        .map(|action| action.name())
        .collect()
    }

    /// When the court must decide whether to accept (while received): the end of the third
    /// day after the day it arrived (CPL 85).
    pub fn accept_due_at(&self) -> Option<i64> {
        (self.status == CourtStatus::Received)
            .then(|| end_of_day_after(self.received_at, ACCEPT_DAYS))
    }

    /// When the court must rule (while under review): the end of the 15th day after the day
    /// of acceptance, the 25th when extended, never past the 30-day cap (CPL 85).
    pub fn decision_due_at(&self) -> Option<i64> {
        let accepted = self.accepted_at?;
        if !self.status.under_review() {
            return None;
        }
        let days = DECIDE_DAYS + if self.extended { EXTENSION_DAYS } else { 0 };
        Some(end_of_day_after(accepted, days.min(CAP_DAYS)))
    }

    /// The limit that applies now, if any, and whether it has passed at `now`.
    pub fn due(&self, now: i64) -> Option<(i64, bool)> {
        self.accept_due_at()
            .or(self.decision_due_at())
            .map(|due| (due, now > due))
    }
}

/// Court → internet side: an application's state changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourtUpdate {
    /// The application's message id.
    pub application: String,
    /// The agreement hash the application (and so this decision) is about.
    pub agreement_sha256: String,
    /// What was done (with its grounds, ruling number and text).
    pub action: CourtAction,
    /// The status after it.
    pub status: CourtStatus,
    /// The decision limit was extended.
    pub extended: bool,
    /// The limit that applies now (accept or decide), Unix ms.
    pub due_at: Option<i64>,
    /// The judge's person id.
    pub judge: String,
    /// The judge's name.
    pub judge_name: String,
    /// When, Unix ms.
    pub at: i64,
    /// The ruling's document (民事裁定书) as the court made it, with a ruling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<CourtDocument>,
}

/// A document the court made, carried back as it is: the parties download these bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourtDocument {
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// The PDF file, base64 (empty once the internet side has stored it apart from the
    /// case's record).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pdf: String,
}

impl CourtUpdate {
    /// The update as the case's record keeps it (the document's bytes taken out, its hash
    /// kept), and the document's bytes.
    pub fn without_document_bytes(&self) -> (CourtUpdate, Option<Vec<u8>>) {
        use base64::Engine;
        let mut kept = self.clone();
        let bytes = kept.document.as_mut().and_then(|d| {
            let pdf = std::mem::take(&mut d.pdf);
            base64::engine::general_purpose::STANDARD.decode(pdf).ok()
        });
        (kept, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2027-01-15 16:00 China time: a period from it ends at 24:00, eight hours after a
    /// multiple of days.
    const T0: i64 = 1_800_000_000_000;
    const EIGHT_HOURS: i64 = 8 * 3_600_000;

    fn confirm() -> CourtAction {
        CourtAction::Confirm {
            ruling_number: "(2026)京0105民特1号".into(),
            ruling_text: "调解协议有效".into(),
        }
    }

    #[test]
    fn the_normal_path_and_its_limits() {
        let d = Docket::received(T0);
        assert_eq!(d.accept_due_at(), Some(T0 + 3 * DAY_MS + EIGHT_HOURS));
        // At the last moment of the third day it is not late; a millisecond later it is.
        let due = T0 + 3 * DAY_MS + EIGHT_HOURS;
        assert_eq!(d.due(due), Some((due, false)));
        assert_eq!(d.due(due + 1), Some((due, true)));
        let d = d.act(&CourtAction::Accept, T0 + DAY_MS).expect("accept");
        assert_eq!(d.accept_due_at(), None);
        assert_eq!(d.decision_due_at(), Some(T0 + 16 * DAY_MS + EIGHT_HOURS));
        let d = d
            .act(
                &CourtAction::Extend {
                    approval: "院长批准 2026-12".into(),
                },
                T0 + 2 * DAY_MS,
            )
            .expect("extend");
        assert_eq!(d.decision_due_at(), Some(T0 + 26 * DAY_MS + EIGHT_HOURS));
        assert_eq!(
            d.act(
                &CourtAction::Extend {
                    approval: "again".into()
                },
                T0
            ),
            Err(CourtRuleError::AlreadyExtended)
        );
        assert_eq!(
            d.due(T0 + 27 * DAY_MS),
            Some((T0 + 26 * DAY_MS + EIGHT_HOURS, true))
        );
        let d = d.act(&confirm(), T0 + 3 * DAY_MS).expect("confirm");
        assert_eq!(d.status, CourtStatus::Confirmed);
        assert_eq!(d.due(T0), None);
        // Nothing moves a final state.
        assert!(d.act(&CourtAction::Withdraw, T0).is_err());
        assert!(d.act(&CourtAction::Accept, T0).is_err());
    }

    #[test]
    fn rulings_need_acceptance_and_texts() {
        let d = Docket::received(T0);
        assert!(matches!(
            d.act(&confirm(), T0),
            Err(CourtRuleError::Transition { .. })
        ));
        assert_eq!(
            d.act(
                &CourtAction::NotAccept {
                    grounds: "  ".into()
                },
                T0
            ),
            Err(CourtRuleError::Missing("grounds"))
        );
        let d = d.act(&CourtAction::Accept, T0).expect("accept");
        assert!(d.act(&CourtAction::Accept, T0).is_err());
        let waiting = d
            .act(
                &CourtAction::RequestSupplement {
                    what: "借条原件".into(),
                },
                T0,
            )
            .expect("supplement");
        assert_eq!(waiting.status, CourtStatus::SupplementRequested);
        // A ruling may come while waiting; so may the supplement.
        assert!(waiting.act(&confirm(), T0).is_ok());
        let back = waiting
            .act(&CourtAction::SupplementReceived, T0)
            .expect("received");
        assert_eq!(back.status, CourtStatus::Accepted);
        let rejected = back
            .act(
                &CourtAction::Reject {
                    ruling_number: "(2026)京0105民特2号".into(),
                    ruling_text: "违反法律强制性规定".into(),
                },
                T0,
            )
            .expect("reject");
        assert_eq!(rejected.status, CourtStatus::Rejected);
    }

    #[test]
    fn a_judge_is_offered_only_what_the_state_allows() {
        let d = Docket::received(T0);
        assert_eq!(d.judge_actions(T0), ["accept", "not_accept"]);
        let d = d.act(&CourtAction::Accept, T0).expect("accept");
        assert_eq!(
            d.judge_actions(T0),
            ["request_supplement", "extend", "confirm", "reject"]
        );
        let waiting = d
            .act(
                &CourtAction::RequestSupplement {
                    what: "借条原件".into(),
                },
                T0,
            )
            .expect("supplement");
        assert_eq!(
            waiting.judge_actions(T0),
            ["supplement_received", "extend", "confirm", "reject"]
        );
        let extended = d
            .act(
                &CourtAction::Extend {
                    approval: "院长批准".into(),
                },
                T0,
            )
            .expect("extend");
        assert!(!extended.judge_actions(T0).contains(&"extend"));
        let ruled = d.act(&confirm(), T0).expect("ruled");
        assert!(ruled.judge_actions(T0).is_empty());
    }

    #[test]
    fn withdrawal_before_a_ruling_only() {
        let d = Docket::received(T0);
        assert_eq!(
            d.act(&CourtAction::Withdraw, T0).map(|d| d.status),
            Ok(CourtStatus::Withdrawn)
        );
        let ruled = d
            .act(&CourtAction::Accept, T0)
            .and_then(|d| d.act(&confirm(), T0))
            .expect("ruled");
        assert!(ruled.act(&CourtAction::Withdraw, T0).is_err());
    }

    #[test]
    fn an_update_survives_the_wire() {
        let update = CourtUpdate {
            application: "a1".into(),
            agreement_sha256: "ab".repeat(32),
            action: confirm(),
            status: CourtStatus::Confirmed,
            extended: true,
            due_at: Some(T0),
            judge: "judge-sun".into(),
            judge_name: "孙法官".into(),
            at: T0,
            document: None,
        };
        let text = serde_json::to_string(&update).expect("json");
        assert_eq!(
            serde_json::from_str::<CourtUpdate>(&text).expect("parses"),
            update
        );
        assert!(
            serde_json::from_str::<CourtUpdate>(&text.replace("\"at\"", "\"at\":1,\"x\"")).is_err()
        );
    }

    #[test]
    fn statuses_round_trip_their_names() {
        for s in CourtStatus::ALL {
            assert_eq!(CourtStatus::parse(s.as_str()), Some(s));
        }
    }
}

//! Judicial confirmation (司法确认) on the internet side: the parties' joint application, the
//! package that goes to the court, and the court's updates, accepted only for the agreement
//! version they were made on and only along the court's own transitions
//! ([`tiaojie_confirmation::court`]).

use super::error::{Act, RuleError};
use super::event::CaseEvent;
pub use super::record::{ConfirmationState, Submitted};
use super::state::CaseState;
use crate::ids::PersonId;
use crate::role::Role;
use tiaojie_confirmation::application::{self as pkg, Application, RecordingHead};
use tiaojie_confirmation::court::{CourtStatus, CourtUpdate};
use tiaojie_confirmation::period::end_of_day_after;

/// Days after the agreement takes effect within which the parties may apply (CPL 205),
/// counted as CPL 85 counts a period: the day it took effect does not count, and the last
/// day ends at 24:00 China time.
pub const APPLY_DAYS: i64 = 30;

/// The end of the window to apply for judicial confirmation of an agreement that took effect
/// at `effective_at`.
pub fn apply_by(effective_at: i64) -> i64 {
    end_of_day_after(effective_at, APPLY_DAYS)
}

/// A session's minutes as stored (their text lives outside the case's events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionText {
    /// Revision (0: nothing written).
    pub revision: i64,
    /// The text.
    pub text: String,
    /// SHA-256 of its canonical text.
    pub sha256: String,
}

impl CaseState {
    /// A party applies for judicial confirmation of the agreement in effect. When every party
    /// has, the application is submitted as `message_id` (its outbox message).
    pub fn apply_for_confirmation(
        &self,
        person: &PersonId,
        now: i64,
        message_id: &str,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        let (Some(effective_at), Some(current)) =
            (self.agreement.effective_at, self.agreement.current())
        else {
            return Err(RuleError::NoAgreementInEffect);
        };
        if matches!(&self.outcome, Some(o) if *o != super::Outcome::Success) {
            return Err(RuleError::MediationNotSucceeded);
        }
        if now > apply_by(effective_at) {
            return Err(RuleError::ApplyWindowPassed {
                apply_by: apply_by(effective_at),
            });
        }
        let m = self.member(person).ok_or_else(|| RuleError::NotAMember {
            person: person.clone(),
        })?;
        if m.role != Role::Party {
            return Err(party_only(m));
        }
        let c = &self.confirmation;
        if c.submitted.is_some() {
            return Err(RuleError::AlreadySubmitted);
        }
        if c.applicants.iter().any(|(p, _)| p == person) {
            return Err(RuleError::AlreadyApplied {
                person: m.id.clone(),
                name: m.name.clone(),
            });
        }
        let mut events = vec![CaseEvent::ConfirmationApplied {
            person: person.clone(),
        }];
        let all = self
            .parties()
            .all(|m| m.id == *person || c.applicants.iter().any(|(p, _)| *p == m.id));
        if all {
            events.push(CaseEvent::ConfirmationSubmitted {
                message_id: message_id.to_string(),
                version: current.version,
                sha256: current.sha256.clone(),
            });
        }
        Ok(events)
    }

    /// A party withdraws the application before the court rules; the withdrawal goes to the
    /// court as `message_id`.
    pub fn withdraw_confirmation(
        &self,
        person: &PersonId,
        message_id: &str,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        let c = &self.confirmation;
        if c.submitted.is_none() {
            return Err(RuleError::NothingSubmitted);
        }
        if c.withdrawal.is_some() {
            return Err(RuleError::AlreadyWithdrawn);
        }
        if c.status().is_some_and(CourtStatus::is_final) {
            return Err(RuleError::CourtDecided);
        }
        let m = self.member(person).ok_or_else(|| RuleError::NotAMember {
            person: person.clone(),
        })?;
        if m.role != Role::Party {
            return Err(party_only(m));
        }
        Ok(vec![CaseEvent::ConfirmationWithdrawn {
            message_id: message_id.to_string(),
            person: person.clone(),
        }])
    }

    /// Takes a court update (message `message_id`): only for the application submitted, only
    /// on the agreement hash it was made on, and only along the court's transitions.
    pub fn take_court_update(
        &self,
        message_id: &str,
        update: &CourtUpdate,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        let c = &self.confirmation;
        let (Some(submitted), Some(docket)) = (&c.submitted, c.docket) else {
            return Err(RuleError::NothingSubmitted);
        };
        let refused = |detail: String| Err(RuleError::CourtUpdateRefused { detail });
        if update.application != submitted.message_id {
            return refused(format!(
                "not this case's application ({})",
                update.application
            ));
        }
        let current = self.agreement.current().map(|v| v.sha256.as_str());
        if update.agreement_sha256 != submitted.sha256 || current != Some(&submitted.sha256) {
            return refused(format!(
                "made on agreement hash {}, the application is for {}",
                update.agreement_sha256, submitted.sha256
            ));
        }
        let next = match docket.act(&update.action, update.at) {
            Ok(next) => next,
            Err(e) => return refused(format!("court transition: {e}")),
        };
        if next.status != update.status || next.extended != update.extended {
            return refused(format!(
                "the update says {} but {} from {} gives {}",
                update.status.as_str(),
                update.action.name(),
                docket.status.as_str(),
                next.status.as_str()
            ));
        }
        Ok(vec![CaseEvent::CourtUpdated {
            message_id: message_id.to_string(),
            update: update.clone(),
        }])
    }

    /// The package the court receives: the case, the agreement in effect, its signatures, the
    /// identity checks (each session's latest per person), the consents and warnings, each
    /// session's minutes (`minutes`: the stored minutes by session) and the recordings'
    /// manifest heads.
    pub fn application_package(
        &self,
        recordings: Vec<RecordingHead>,
        minutes: &[(u32, SessionText)],
    ) -> Application {
        let person = |m: &super::Member| pkg::Person {
            id: m.id.to_string(),
            name: m.name.clone(),
        };
        let current = self.agreement.current();
        Application {
            case_number: self.number.clone(),
            case_type: self.case_type.clone(),
            claim_amount: self.claim_amount,
            mediator: self.mediator().map(person).unwrap_or(pkg::Person {
                id: String::new(),
                name: String::new(),
            }),
            members: self
                .members
                .iter()
                .filter(|m| matches!(m.role, Role::Party | Role::Agent))
                .map(|m| pkg::Member {
                    id: m.id.to_string(),
                    name: m.name.clone(),
                    role: m.role.as_str().to_string(),
                    side: m.side.map(|s| s.as_str().to_string()).unwrap_or_default(),
                    represents: m.represents.as_ref().map(ToString::to_string),
                })
                .collect(),
            agreement: pkg::Agreement {
                version: current.map_or(0, |v| v.version),
                text: current
                    .map_or_else(String::new, |v| super::agreement::canonical_text(&v.text)),
                sha256: current.map_or_else(String::new, |v| v.sha256.clone()),
                effective_at: self.agreement.effective_at.unwrap_or(0),
            },
            signatures: self
                .agreement
                .valid_signatures()
                .map(|s| pkg::Signature {
                    person: s.person.to_string(),
                    name: s.name.clone(),
                    role: s.role.as_str().to_string(),
                    at: s.at,
                    sha256: s.sha256.clone(),
                    identity: s.identity.clone(),
                })
                .collect(),
            identity_checks: self
                .sessions
                .iter()
                .flat_map(|s| {
                    s.checks.iter().filter_map(move |(p, c)| {
                        c.identity.as_ref().map(|i| pkg::IdentityCheck {
                            session: s.number,
                            person: p.to_string(),
                            method: i.method.as_str().to_string(),
                            passed: i.passed,
                            by: i.by.to_string(),
                            at: i.at,
                            note: i.note.clone(),
                        })
                    })
                })
                .collect(),
            recordings,
            minutes: self
                .sessions
                .iter()
                .map(|s| {
                    let text = minutes.iter().find(|(n, _)| *n == s.number).map(|(_, m)| m);
                    pkg::SessionMinutes {
                        session: s.number,
                        revision: text.map_or(0, |m| m.revision),
                        text: text.map_or_else(String::new, |m| m.text.clone()),
                        sha256: text.map_or_else(String::new, |m| m.sha256.clone()),
                        replaced_by_recording: s.minutes_replaced_by_recording,
                        confirmations: s
                            .minutes_confirmations
                            .iter()
                            .map(|c| pkg::MinutesConfirmation {
                                person: c.person.to_string(),
                                revision: c.revision,
                                at: c.at,
                            })
                            .collect(),
                    }
                })
                .collect(),
            consents: self
                .sessions
                .iter()
                .flat_map(|s| {
                    s.checks.iter().flat_map(move |(person, c)| {
                        let answer = |subject: &str, a: Option<super::state::Answer>| {
                            a.map(|a| pkg::ConsentRecord {
                                session: s.number,
                                person: person.to_string(),
                                subject: subject.to_string(),
                                given: a.given,
                                at: a.at,
                            })
                        };
                        [
                            answer("online_mediation", c.online_mediation),
                            answer("recording", c.recording),
                            answer("recording_replaces_minutes", c.recording_replaces_minutes),
                            c.warning_acknowledged_at.map(|at| pkg::ConsentRecord {
                                session: s.number,
                                person: person.to_string(),
                                subject: "warning_acknowledged".into(),
                                given: true,
                                at,
                            }),
                        ]
                        .into_iter()
                        .flatten()
                    })
                })
                .collect(),
            applicants: self
                .confirmation
                .applicants
                .iter()
                .map(|(p, at)| pkg::Applicant {
                    person: p.to_string(),
                    at: *at,
                })
                .collect(),
        }
    }
}

/// Judicial confirmation is the parties' to apply for (and withdraw).
fn party_only(m: &super::Member) -> RuleError {
    RuleError::RoleMayNot {
        person: m.id.clone(),
        name: m.name.clone(),
        role: m.role,
        act: Act::ApplyForConfirmation,
    }
}

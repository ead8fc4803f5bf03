//! The mediation workflow (DOMAIN.md, "A mediation, step by step").
//!
//! A case is an append-only record of [`event::CaseEvent`]s; its state ([`state::CaseState`]) is
//! folded from them, and every command is a pure decision on that state that returns the events
//! to append or the rule it breaks. Storage appends them with an expected sequence number, so two
//! concurrent commands cannot both act on the same state.
//!
//! - [`place`]: where a person stands (lobby, joint room, a side's private room) and the sides.
//! - [`phase`]: a session's phases.
//! - [`checks`]: the start-of-session checks a person may lack, by type.
//! - [`error`]: why a rule refuses, one typed reason each (the `details` pages render).
//! - [`case`]: the case, its members, validation.
//! - [`event`]: what can happen (and the identity methods and consent subjects).
//! - [`state`]: the fold and the rules (session phases, checks before "in session", signatures
//!   bound to a version's hash, outcome, extensions, pauses, ratings).
//! - [`admission`]: the one rule for where a person may stand, asked on every move, start,
//!   join and resume, and after every change to the case.
//! - [`agreement`]: canonical text, SHA-256, templates.
//! - [`outcome`]: success / failure (转立案) / termination on ODR-Med 25's grounds.
//! - [`deadline`]: the time limit (ODR-Med 24), computed at a given moment.
//! - [`record`]: where a case stands on judicial confirmation (applicants, the submission,
//!   the court's docket and updates), folded from the events.
//! - [`confirmation`]: the joint application for judicial confirmation, the package sent to
//!   the court, and the court's updates (only on the hash applied for, only along the court's
//!   transitions).
//!
//! Who may issue which command is [`crate::permission`]'s business, not this module's.

pub mod admission;
pub mod agreement;
pub mod case;
pub mod checks;
pub mod confirmation;
pub mod deadline;
pub mod error;
pub mod event;
pub mod outcome;
pub mod phase;
pub mod place;
pub mod record;
pub mod state;

pub use admission::Refusal;
pub use case::{Member, NewCase, Stage};
pub use checks::{Check, MissingCheck};
pub use error::{Act, Field, RuleError, RuleKind};
pub use event::{CaseEvent, ConsentSubject, IdentityMethod, Recorded};
pub use outcome::Outcome;
pub use phase::Phase;
pub use place::{Place, Side};
pub use state::CaseState;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::Role;
    use crate::{CaseId, PersonId, RoomName};

    struct Log {
        events: Vec<Recorded>,
        now: i64,
    }

    impl Log {
        fn state(&self) -> CaseState {
            CaseState::fold(&CaseId::from("c1"), &self.events).expect("folds")
        }
        fn push(&mut self, actor: &str, events: Result<Vec<CaseEvent>, RuleError>) {
            for event in events.expect("allowed") {
                self.now += 1000;
                let seq = self.events.len() as i64 + 1;
                self.events.push(Recorded {
                    seq,
                    at: self.now,
                    actor: actor.into(),
                    event,
                });
            }
        }
    }

    fn member(id: &str, role: Role, side: Option<Side>) -> Member {
        Member {
            id: id.into(),
            name: id.to_uppercase(),
            role,
            side,
            represents: (role == Role::Agent)
                .then(|| "a".to_string())
                .map(PersonId::from),
        }
    }

    fn opened() -> Log {
        let members = vec![
            member("m", Role::Mediator, None),
            member("a", Role::Party, Some(Side::Applicant)),
            member("b", Role::Party, Some(Side::Respondent)),
            member("l", Role::Agent, Some(Side::Applicant)),
        ];
        Log {
            events: vec![Recorded {
                seq: 1,
                at: 1_000,
                actor: "m".into(),
                event: CaseEvent::Opened {
                    number: "N1".into(),
                    case_type: "T".into(),
                    claim_amount: 100,
                    stage: Stage::Simple,
                    members,
                },
            }],
            now: 1_000,
        }
    }

    fn present() -> Vec<PersonId> {
        ["m", "a", "b", "l"].map(PersonId::from).to_vec()
    }

    fn checked_in_session() -> Log {
        let mut log = opened();
        log.push("m", log.state().schedule(&RoomName::from("r1"), 5_000));
        log.push("m", log.state().open_lobby(1));
        for p in ["a", "b", "l"] {
            log.push(
                "m",
                log.state().verify_identity(
                    1,
                    &PersonId::from(p),
                    IdentityMethod::IdDocumentVideo,
                    true,
                    "",
                ),
            );
            log.push(p, log.state().acknowledge_warning(1, &PersonId::from(p)));
        }
        for p in ["a", "b"] {
            log.push(
                p,
                log.state()
                    .consent(1, &PersonId::from(p), ConsentSubject::OnlineMediation, true),
            );
            log.push(
                p,
                log.state()
                    .consent(1, &PersonId::from(p), ConsentSubject::Recording, true),
            );
        }
        log.push("m", log.state().start(1, &present()));
        log
    }

    #[test]
    fn a_session_starts_only_when_everyone_present_is_checked() {
        let mut log = opened();
        log.push("m", log.state().schedule(&RoomName::from("r1"), 5_000));
        assert!(matches!(
            log.state().start(1, &present()),
            Err(RuleError::WrongPhase { .. })
        ));
        log.push("m", log.state().open_lobby(1));
        let Err(RuleError::ChecksMissing { missing }) = log.state().start(1, &present()) else {
            panic!("must refuse")
        };
        let has = |p: &str, c: Check| missing.iter().any(|m| m.person == p && m.check == c);
        assert!(has("a", Check::IdentityNotVerified));
        assert!(has("l", Check::WarningNotAcknowledged));
        assert!(!missing.iter().any(|m| m.person == "m"), "{missing:?}");
        // Offline verification counts, and is recorded as such.
        log.push(
            "m",
            log.state().verify_identity(
                1,
                &PersonId::from("a"),
                IdentityMethod::Offline,
                true,
                "窗口核验",
            ),
        );
        log.push(
            "a",
            log.state().acknowledge_warning(1, &PersonId::from("a")),
        );
        log.push(
            "a",
            log.state().consent(
                1,
                &PersonId::from("a"),
                ConsentSubject::OnlineMediation,
                true,
            ),
        );
        log.push(
            "a",
            log.state()
                .consent(1, &PersonId::from("a"), ConsentSubject::Recording, false),
        );
        // Only a and the mediator present: a refusal of recording does not block mediation.
        let two = ["m", "a"].map(PersonId::from).to_vec();
        log.push("m", log.state().start(1, &two));
        let s = log.state();
        assert_eq!(s.session(1).map(|s| s.phase), Ok(Phase::InSession));
        let check = s
            .session(1)
            .ok()
            .and_then(|s| s.checks.get(&PersonId::from("a")).cloned());
        assert_eq!(
            check.and_then(|c| c.identity).map(|i| (i.method, i.by)),
            Some((IdentityMethod::Offline, PersonId::from("m")))
        );
        // The recording cannot replace the minutes: a refused recording; and never without a
        // recording of the session.
        assert!(matches!(
            s.replace_minutes_by_recording(1, true),
            Err(RuleError::ChecksMissing { .. })
        ));
        assert!(matches!(
            s.replace_minutes_by_recording(1, false),
            Err(RuleError::NoRecording { .. })
        ));
    }

    #[test]
    fn signatures_bind_to_a_version_and_an_edit_voids_them() {
        let mut log = checked_in_session();
        log.push("m", log.state().draft("第一条 甲付乙一万元。"));
        let v1 = log.state().agreement.current().cloned().expect("v1");
        log.push("a", log.state().sign(&PersonId::from("a"), 1, &v1.sha256));
        assert_eq!(log.state().unsigned().len(), 2);
        // An edit after a signature: new version, a's signature void.
        log.push("m", log.state().draft("第一条 甲付乙八千元。"));
        let s = log.state();
        let v2 = s.agreement.current().cloned().expect("v2");
        assert_eq!(v2.version, 2);
        assert_eq!(s.agreement.valid_signatures().count(), 0);
        // Replaying the old signature onto the new version is refused.
        assert!(matches!(
            s.sign(&PersonId::from("a"), 1, &v1.sha256),
            Err(RuleError::AgreementStale { version: 2, .. })
        ));
        assert!(matches!(
            s.sign(&PersonId::from("a"), 2, &v1.sha256),
            Err(RuleError::AgreementStale { .. })
        ));
        assert!(matches!(
            s.sign(&PersonId::from("l"), 2, &v2.sha256),
            Err(RuleError::RoleMayNot { act: Act::Sign, .. })
        ));
        assert!(matches!(
            s.record_outcome(&Outcome::Success),
            Err(RuleError::SuccessNeedsAgreement)
        ));
        for p in ["a", "b", "m"] {
            log.push(p, log.state().sign(&PersonId::from(p), 2, &v2.sha256));
        }
        let s = log.state();
        assert!(s.agreement.effective_at.is_some());
        let sig = s.agreement.valid_signatures().next().cloned().expect("sig");
        assert!(
            sig.identity.starts_with("id_document_video by m"),
            "{}",
            sig.identity
        );
        assert!(matches!(s.draft("改"), Err(RuleError::AgreementInEffect)));
        log.push("m", log.state().record_outcome(&Outcome::Success));
        let s = log.state();
        assert_eq!(s.outcome, Some(Outcome::Success));
        assert_eq!(s.session(1).map(|s| s.phase), Ok(Phase::Ended));
        log.push("a", log.state().rate(1, &PersonId::from("a"), 5, "很好"));
        assert!(matches!(
            log.state().rate(1, &PersonId::from("a"), 4, ""),
            Err(RuleError::AlreadyRated)
        ));
        assert!(matches!(
            log.state().rate(1, &PersonId::from("b"), 6, ""),
            Err(RuleError::OutOfRange { .. })
        ));
    }

    #[test]
    fn a_refusal_to_sign_ends_the_mediation_on_ground_seven() {
        let mut log = checked_in_session();
        log.push("m", log.state().draft("协议"));
        log.push(
            "b",
            log.state().refuse(&PersonId::from("b"), 1, "不同意金额"),
        );
        let s = log.state();
        assert!(matches!(
            s.outcome,
            Some(Outcome::Termination { ground: 7, .. })
        ));
        assert!(matches!(
            s.draft("新协议"),
            Err(RuleError::MediationEnded { .. })
        ));
        assert!(
            s.time_limit(1_000_000_000).remaining_ms > 0,
            "clock stopped"
        );
    }

    #[test]
    fn extensions_need_every_party_and_pauses_stop_the_clock() {
        let mut log = opened();
        assert!(
            log.state()
                .answer_extension(&PersonId::from("a"), true)
                .is_err(),
            "nothing proposed"
        );
        log.push("m", log.state().propose_extension(5));
        log.push(
            "a",
            log.state().answer_extension(&PersonId::from("a"), true),
        );
        assert_eq!(log.state().extension_days, 0, "b has not agreed");
        assert!(
            log.state()
                .answer_extension(&PersonId::from("l"), true)
                .is_err(),
            "agents do not consent"
        );
        // A refusal withdraws the proposal; a new one starts over.
        log.push(
            "b",
            log.state().answer_extension(&PersonId::from("b"), false),
        );
        assert!(log.state().pending_extension.is_none());
        log.push("m", log.state().propose_extension(5));
        log.push(
            "b",
            log.state().answer_extension(&PersonId::from("b"), true),
        );
        log.push(
            "a",
            log.state().answer_extension(&PersonId::from("a"), true),
        );
        let day = super::deadline::DAY_MS;
        let s = log.state();
        assert_eq!(s.extension_days, 5);
        assert!(s.pending_extension.is_none());
        let due = super::deadline::end_of_day_after(s.opened_at, 12);
        assert_eq!(s.time_limit(0).due_at, due);
        assert!(due > s.opened_at + 12 * day && due <= s.opened_at + 13 * day);
        assert!(!s.time_limit(due).overdue);
        assert!(s.time_limit(due + 1).overdue);
        log.push("m", s.pause(true, "司法鉴定"));
        let s = log.state();
        assert!(!s.time_limit(s.opened_at + 20 * day).overdue);
        assert!(s.pause(true, "again").is_err());
    }

    fn agreed() -> Log {
        let mut log = checked_in_session();
        log.push("m", log.state().draft("一、A 付 B 一百元。"));
        let v = log.state().agreement.current().cloned().expect("drafted");
        for p in ["a", "b", "m"] {
            log.push(
                p,
                log.state().sign(&PersonId::from(p), v.version, &v.sha256),
            );
        }
        log
    }

    #[test]
    fn confirmation_is_applied_for_jointly_within_thirty_days_of_effect() {
        use super::confirmation::apply_by;
        use tiaojie_confirmation::period::{DAY_MS, end_of_day_after};
        let s = checked_in_session().state();
        assert!(
            s.apply_for_confirmation(&PersonId::from("a"), s.opened_at, "m1")
                .is_err()
        );
        let mut log = agreed();
        let effective = log.state().agreement.effective_at.expect("in effect");
        // CPL 85: the day it took effect does not count; the 30th day ends at 24:00.
        let last = apply_by(effective);
        assert_eq!(last, end_of_day_after(effective, 30));
        assert!(last > effective + 30 * DAY_MS && last <= effective + 31 * DAY_MS);
        assert!(
            log.state()
                .apply_for_confirmation(&PersonId::from("a"), last, "m1")
                .is_ok()
        );
        let late = log
            .state()
            .apply_for_confirmation(&PersonId::from("a"), last + 1, "m1");
        assert_eq!(late, Err(RuleError::ApplyWindowPassed { apply_by: last }));
        assert!(
            log.state()
                .apply_for_confirmation(&PersonId::from("l"), effective, "m1")
                .is_err()
        );
        assert!(
            log.state()
                .apply_for_confirmation(&PersonId::from("m"), effective, "m1")
                .is_err()
        );
        log.push(
            "a",
            log.state()
                .apply_for_confirmation(&PersonId::from("a"), effective, "m1"),
        );
        assert!(log.state().confirmation.submitted.is_none());
        assert!(
            log.state()
                .apply_for_confirmation(&PersonId::from("a"), effective, "m1")
                .is_err()
        );
        log.push(
            "b",
            log.state()
                .apply_for_confirmation(&PersonId::from("b"), effective, "m1"),
        );
        let s = log.state();
        let submitted = s.confirmation.submitted.clone().expect("submitted");
        assert_eq!(submitted.message_id, "m1");
        assert_eq!(
            Some(&submitted.sha256),
            s.agreement.current().map(|v| &v.sha256)
        );
        assert_eq!(s.confirmation.messages_sent, 1);
        let package = s.application_package(Vec::new(), &[]);
        assert_eq!(package.signatures.len(), 3);
        assert_eq!(package.applicants.len(), 2);
        assert_eq!(
            super::agreement::text_hash(&package.agreement.text),
            package.agreement.sha256
        );
    }

    #[test]
    fn court_updates_apply_only_to_the_hash_and_along_the_courts_transitions() {
        use tiaojie_confirmation::court::{CourtAction, CourtStatus, CourtUpdate};
        let mut log = agreed();
        let effective = log.state().agreement.effective_at.expect("in effect");
        for p in ["a", "b"] {
            log.push(
                p,
                log.state()
                    .apply_for_confirmation(&PersonId::from(p), effective, "m1"),
            );
        }
        let sha = log
            .state()
            .confirmation
            .submitted
            .clone()
            .expect("submitted")
            .sha256;
        let update = |action, status, sha: &str| CourtUpdate {
            application: "m1".into(),
            agreement_sha256: sha.into(),
            action,
            status,
            extended: false,
            due_at: None,
            judge: "j".into(),
            judge_name: "J".into(),
            at: effective + 1,
            document: None,
        };
        let confirm = || CourtAction::Confirm {
            ruling_number: "R1".into(),
            ruling_text: "有效".into(),
        };
        let s = log.state();
        // Another hash, a ruling before acceptance, a status that does not follow: refused.
        assert!(
            s.take_court_update(
                "u0",
                &update(CourtAction::Accept, CourtStatus::Accepted, &"0".repeat(64))
            )
            .is_err()
        );
        assert!(
            s.take_court_update("u0", &update(confirm(), CourtStatus::Confirmed, &sha))
                .is_err()
        );
        assert!(
            s.take_court_update(
                "u0",
                &update(CourtAction::Accept, CourtStatus::Confirmed, &sha)
            )
            .is_err()
        );
        let mut other = update(CourtAction::Accept, CourtStatus::Accepted, &sha);
        other.application = "another".into();
        assert!(s.take_court_update("u0", &other).is_err());
        log.push(
            "court",
            s.take_court_update(
                "u1",
                &update(CourtAction::Accept, CourtStatus::Accepted, &sha),
            ),
        );
        log.push(
            "court",
            log.state()
                .take_court_update("u2", &update(confirm(), CourtStatus::Confirmed, &sha)),
        );
        let s = log.state();
        assert_eq!(s.confirmation.status(), Some(CourtStatus::Confirmed));
        assert_eq!(s.confirmation.updates.len(), 2);
        assert!(s.withdraw_confirmation(&PersonId::from("a"), "w1").is_err());
    }
}

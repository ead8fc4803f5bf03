//! The one admission rule: where a person may stand in a case's session room, and why not.
//!
//! Every path that puts someone somewhere asks [`CaseState::admission`]: the mediator's admit
//! and move (over signaling or the API), a side's move, the start of the session, a join that
//! takes over a session, a resume. After any change to the case (a failed identity check, a
//! consent withdrawn) the live room asks [`CaseState::must_leave`] who may no longer stay where
//! they are, and sends them back to the lobby. So a party, agent or observer of a case session
//! is never outside the lobby without their checks (ODR-Lit 7, ODR-Med 4 and 17).
//!
//! The rule, in one place:
//! - anyone let into the room may wait in the **lobby**;
//! - nobody stands anywhere in an ended session;
//! - a **private room** opens once the session is in session; the mediator and an assisting
//!   judge may enter either side's, a party or agent only its own side's, nobody else any;
//! - outside the lobby, a person has every check their role needs in **this** session: a
//!   party its identity verified, the warning acknowledged, online mediation consented to and
//!   recording answered (and consented to while the room is being recorded); an agent its
//!   identity and the warning; an observer its identity. The mediator and a judge are court
//!   staff, signed in as such; an admin is the court's operator and not a member.

use super::checks::MissingCheck;
use super::phase::Phase;
use super::place::Place;
use super::state::CaseState;
use crate::ids::PersonId;
use crate::role::Role;
use serde::Serialize;

/// Why a person may not stand in a place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Refusal {
    /// Not a member of the case (and not an admin).
    #[error("{person} is not a member of this case")]
    NotAMember {
        /// Who.
        person: PersonId,
    },
    /// Not their place: a party or agent in the other side's private room, or anyone but the
    /// mediator, a judge, or that side's people in a private room.
    #[error("{person} ({role}) may not enter {place}")]
    NotTheirRoom {
        /// Who.
        person: PersonId,
        /// Their name.
        name: String,
        /// Their role.
        role: Role,
        /// The place refused.
        place: Place,
    },
    /// Private rooms open once the session is in session.
    #[error("private rooms open once session {session} is in session (it is {})", phase.as_str())]
    PrivateRoomsClosed {
        /// The session.
        session: u32,
        /// Its phase now.
        phase: Phase,
    },
    /// The session has ended: nobody stands in its room.
    #[error("session {session} has ended")]
    SessionEnded {
        /// The session.
        session: u32,
    },
    /// Checks are missing.
    #[error("checks missing: {}", missing.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    ChecksMissing {
        /// Each missing check.
        missing: Vec<MissingCheck>,
    },
}

impl CaseState {
    /// Whether `person`, holding `role` in the room, may stand in `place` in session `n` now;
    /// `recording`: the room is being recorded (not paused).
    pub fn admission(
        &self,
        n: u32,
        person: &PersonId,
        role: Role,
        place: Place,
        recording: bool,
    ) -> Result<(), Refusal> {
        if place == Place::Lobby {
            return Ok(());
        }
        let Ok(session) = self.session(n) else {
            return Err(Refusal::SessionEnded { session: n });
        };
        if session.phase == Phase::Ended {
            return Err(Refusal::SessionEnded { session: n });
        }
        let Some(member) = self.member(person) else {
            // An admin watches the joint room; private rooms are for the case's people.
            return match (role, place) {
                (Role::Admin, Place::Joint) => Ok(()),
                (Role::Admin, _) => Err(Refusal::NotTheirRoom {
                    person: person.clone(),
                    name: person.to_string(),
                    role,
                    place,
                }),
                _ => Err(Refusal::NotAMember {
                    person: person.clone(),
                }),
            };
        };
        if let Place::Private(side) = place {
            let theirs = match member.role {
                Role::Mediator | Role::Judge => true,
                Role::Party | Role::Agent => member.side == Some(side),
                Role::Observer | Role::Admin => false,
            };
            if !theirs {
                return Err(Refusal::NotTheirRoom {
                    person: person.clone(),
                    name: member.name.clone(),
                    role: member.role,
                    place,
                });
            }
            if session.phase != Phase::InSession {
                return Err(Refusal::PrivateRoomsClosed {
                    session: n,
                    phase: session.phase,
                });
            }
        }
        let missing: Vec<MissingCheck> = session
            .checks
            .get(person)
            .cloned()
            .unwrap_or_default()
            .missing(member.role, recording)
            .into_iter()
            .map(|check| MissingCheck {
                person: person.clone(),
                name: member.name.clone(),
                role: member.role,
                check,
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Refusal::ChecksMissing { missing })
        }
    }

    /// Who among those standing somewhere (`standing`: person, role in the room, place) may
    /// no longer stand there, and why: they go back to the lobby.
    pub fn must_leave<'a>(
        &self,
        n: u32,
        standing: impl IntoIterator<Item = (&'a PersonId, Role, Place)>,
        recording: bool,
    ) -> Vec<(PersonId, Refusal)> {
        standing
            .into_iter()
            .filter_map(|(person, role, place)| {
                self.admission(n, person, role, place, recording)
                    .err()
                    .map(|why| (person.clone(), why))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mediation::case::{Member, Side, Stage};
    use crate::mediation::checks::Check;
    use crate::mediation::event::{CaseEvent, ConsentSubject, IdentityMethod, Recorded};
    use crate::mediation::state::RuleError;
    use crate::{CaseId, RoomName};
    use std::collections::BTreeMap;

    const A: Place = Place::Private(Side::Applicant);
    const R: Place = Place::Private(Side::Respondent);

    fn member(id: &str, role: Role, side: Option<Side>) -> Member {
        Member {
            id: id.into(),
            name: format!("{id}-name"),
            role,
            side,
            represents: (role == Role::Agent)
                .then(|| "a".to_string())
                .map(PersonId::from),
        }
    }

    /// The cast: mediator m, parties a (applicant) and b (respondent), a's agent l, an
    /// observer o, an assisting judge j.
    fn cast() -> Vec<(&'static str, Role)> {
        vec![
            ("m", Role::Mediator),
            ("a", Role::Party),
            ("b", Role::Party),
            ("l", Role::Agent),
            ("o", Role::Observer),
            ("j", Role::Judge),
        ]
    }

    struct Case {
        events: Vec<Recorded>,
    }

    impl Case {
        fn new() -> Case {
            let members = vec![
                member("m", Role::Mediator, None),
                member("a", Role::Party, Some(Side::Applicant)),
                member("b", Role::Party, Some(Side::Respondent)),
                member("l", Role::Agent, Some(Side::Applicant)),
                member("o", Role::Observer, None),
                member("j", Role::Judge, None),
            ];
            let mut case = Case {
                events: vec![Recorded {
                    seq: 1,
                    at: 1_000,
                    actor: "m".into(),
                    event: CaseEvent::Opened {
                        number: "N".into(),
                        case_type: "T".into(),
                        claim_amount: 1,
                        stage: Stage::Simple,
                        members,
                    },
                }],
            };
            case.try_push(|c| c.schedule(&RoomName::from("r"), 2_000));
            case
        }
        fn state(&self) -> CaseState {
            CaseState::fold(&CaseId::from("c"), &self.events).expect("folds")
        }
        /// Appends what the rules allow; a refusal changes nothing.
        fn try_push(
            &mut self,
            decide: impl Fn(&CaseState) -> Result<Vec<CaseEvent>, RuleError>,
        ) -> bool {
            match decide(&self.state()) {
                Ok(events) => {
                    for event in events {
                        let seq = self.events.len() as i64 + 1;
                        self.events.push(Recorded {
                            seq,
                            at: seq * 1_000,
                            actor: "m".into(),
                            event,
                        });
                    }
                    true
                }
                Err(_) => false,
            }
        }
        fn check_everything(&mut self, people: &[&str]) {
            for p in people {
                self.try_push(|c| {
                    c.verify_identity(
                        1,
                        &PersonId::from(*p),
                        IdentityMethod::IdDocumentVideo,
                        true,
                        "",
                    )
                });
                self.try_push(|c| c.acknowledge_warning(1, &PersonId::from(*p)));
                for subject in [ConsentSubject::OnlineMediation, ConsentSubject::Recording] {
                    self.try_push(|c| c.consent(1, &PersonId::from(*p), subject, true));
                }
            }
        }
    }

    fn role(person: &str) -> Role {
        cast()
            .into_iter()
            .find(|(p, _)| *p == person)
            .map_or(Role::Admin, |(_, r)| r)
    }

    fn missing_of(r: Result<(), Refusal>) -> Vec<Check> {
        match r {
            Err(Refusal::ChecksMissing { missing }) => {
                missing.into_iter().map(|m| m.check).collect()
            }
            other => panic!("expected checks missing, got {other:?}"),
        }
    }

    #[test]
    fn a_party_leaves_the_lobby_only_with_every_check_of_this_session() {
        let mut case = Case::new();
        // Before check-in nobody can have been checked: the lobby only.
        let s = case.state();
        assert_eq!(
            s.admission(1, &PersonId::from("a"), Role::Party, Place::Lobby, false),
            Ok(())
        );
        assert_eq!(
            missing_of(s.admission(1, &PersonId::from("a"), Role::Party, Place::Joint, false)),
            vec![
                Check::IdentityNotVerified,
                Check::WarningNotAcknowledged,
                Check::OnlineMediationNotAnswered,
                Check::RecordingNotAnswered
            ]
        );
        // The mediator and a judge are staff; an admin watches the joint room only.
        for staff in ["m", "j"] {
            assert_eq!(
                s.admission(1, &PersonId::from(staff), role(staff), Place::Joint, true),
                Ok(())
            );
        }
        assert_eq!(
            s.admission(1, &PersonId::from("ops"), Role::Admin, Place::Joint, true),
            Ok(())
        );
        assert!(matches!(
            s.admission(1, &PersonId::from("ops"), Role::Admin, A, false),
            Err(Refusal::NotTheirRoom { .. })
        ));
        assert!(matches!(
            s.admission(
                1,
                &PersonId::from("stranger"),
                Role::Party,
                Place::Joint,
                false
            ),
            Err(Refusal::NotAMember { .. })
        ));
        // Check-in: each check counts; a failed identity check is named as such.
        case.try_push(|c| c.open_lobby(1));
        case.try_push(|c| {
            c.verify_identity(
                1,
                &PersonId::from("a"),
                IdentityMethod::FaceRecognition,
                false,
                "",
            )
        });
        case.try_push(|c| c.acknowledge_warning(1, &PersonId::from("a")));
        case.try_push(|c| {
            c.consent(
                1,
                &PersonId::from("a"),
                ConsentSubject::OnlineMediation,
                false,
            )
        });
        assert_eq!(
            missing_of(case.state().admission(
                1,
                &PersonId::from("a"),
                Role::Party,
                Place::Joint,
                false
            )),
            vec![
                Check::IdentityFailed,
                Check::OnlineMediationRefused,
                Check::RecordingNotAnswered
            ]
        );
        case.check_everything(&["a", "l", "o"]);
        let s = case.state();
        assert_eq!(
            s.admission(1, &PersonId::from("a"), Role::Party, Place::Joint, false),
            Ok(())
        );
        assert_eq!(
            s.admission(1, &PersonId::from("l"), Role::Agent, Place::Joint, false),
            Ok(())
        );
        assert_eq!(
            s.admission(1, &PersonId::from("o"), Role::Observer, Place::Joint, false),
            Ok(())
        );
        // A refusal of recording keeps a party out only while the room is being recorded.
        case.try_push(|c| c.consent(1, &PersonId::from("a"), ConsentSubject::Recording, false));
        let s = case.state();
        assert_eq!(
            s.admission(1, &PersonId::from("a"), Role::Party, Place::Joint, false),
            Ok(())
        );
        assert_eq!(
            missing_of(s.admission(1, &PersonId::from("a"), Role::Party, Place::Joint, true)),
            vec![Check::RecordingNotConsented]
        );
        // b was never checked: the missing checks name b, with b's name.
        let Err(Refusal::ChecksMissing { missing }) =
            s.admission(1, &PersonId::from("b"), Role::Party, Place::Joint, false)
        else {
            panic!("b is unchecked")
        };
        assert!(
            missing
                .iter()
                .all(|m| m.person == "b" && m.name == "b-name")
        );
    }

    #[test]
    fn private_rooms_open_in_session_and_only_to_their_side_and_the_staff() {
        let mut case = Case::new();
        case.try_push(|c| c.open_lobby(1));
        case.check_everything(&["a", "b", "l", "o"]);
        let s = case.state();
        assert!(matches!(
            s.admission(1, &PersonId::from("a"), Role::Party, A, false),
            Err(Refusal::PrivateRoomsClosed {
                phase: Phase::LobbyOpen,
                ..
            })
        ));
        let present: Vec<PersonId> = ["m", "a", "b", "l"].map(PersonId::from).to_vec();
        assert!(case.try_push(|c| c.start(1, &present)));
        let s = case.state();
        for (person, place, ok) in [
            ("a", A, true),
            ("a", R, false),
            ("l", A, true),
            ("l", R, false),
            ("b", R, true),
            ("b", A, false),
            ("o", A, false),
            ("m", R, true),
            ("j", A, true),
        ] {
            let r = s.admission(1, &PersonId::from(person), role(person), place, false);
            assert_eq!(r.is_ok(), ok, "{person} in {place}: {r:?}");
            if !ok {
                assert!(matches!(r, Err(Refusal::NotTheirRoom { .. })), "{r:?}");
            }
        }
        // An ended session's room holds nobody.
        case.try_push(|c| c.end(1));
        assert_eq!(
            case.state()
                .admission(1, &PersonId::from("m"), Role::Mediator, Place::Joint, false),
            Err(Refusal::SessionEnded { session: 1 })
        );
    }

    #[test]
    fn a_check_withdrawn_sends_its_person_back_to_the_lobby() {
        let mut case = Case::new();
        case.try_push(|c| c.open_lobby(1));
        case.check_everything(&["a", "b"]);
        let [m, a, b] = ["m", "a", "b"].map(PersonId::from);
        let standing = [
            (&m, Role::Mediator, Place::Joint),
            (&a, Role::Party, Place::Joint),
            (&b, Role::Party, Place::Joint),
        ];
        assert!(case.state().must_leave(1, standing, false).is_empty());
        case.try_push(|c| {
            c.verify_identity(
                1,
                &PersonId::from("b"),
                IdentityMethod::Offline,
                false,
                "证件不符",
            )
        });
        let leaving = case.state().must_leave(1, standing, false);
        assert_eq!(leaving.len(), 1);
        assert_eq!(leaving[0].0, "b");
    }

    /// A small deterministic generator: the same seed gives the same sequence.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    /// The invariant, written apart from the rule it checks: nobody other than staff stands
    /// outside the lobby without this session's checks, nor in another side's private room.
    fn invariant(
        case: &CaseState,
        places: &BTreeMap<&str, Place>,
        recording: bool,
    ) -> Result<(), String> {
        let s = case.session(1).map_err(|e| e.to_string())?;
        for (person, place) in places {
            if *place == Place::Lobby {
                continue;
            }
            if s.phase == Phase::Ended {
                return Err(format!("{person} in {place} of an ended session"));
            }
            let m = case.member(&PersonId::from(*person)).ok_or("a stranger")?;
            let c = s
                .checks
                .get(&PersonId::from(*person))
                .cloned()
                .unwrap_or_default();
            let identity = c.identity.as_ref().is_some_and(|i| i.passed);
            let warned = c.warning_acknowledged_at.is_some();
            let online = c.online_mediation.is_some_and(|a| a.given);
            let asked = c.recording.is_some();
            let recorded_ok = !recording || c.recording.is_some_and(|a| a.given);
            let ok = match m.role {
                Role::Party => identity && warned && online && asked && recorded_ok,
                Role::Agent => identity && warned,
                Role::Observer => identity,
                _ => true,
            };
            if !ok {
                return Err(format!("{person} ({}) in {place} unchecked: {c:?}", m.role));
            }
            if let Place::Private(side) = place {
                let allowed = match m.role {
                    Role::Party | Role::Agent => m.side == Some(*side),
                    Role::Mediator | Role::Judge => true,
                    _ => false,
                };
                if !allowed || s.phase != Phase::InSession {
                    return Err(format!("{person} in {place} during {:?}", s.phase));
                }
            }
        }
        Ok(())
    }

    /// Random sequences of checks, consents, moves, starts and recording, driven through the
    /// same rule calls the live room makes (admission on every move and resume, must_leave
    /// after every case change, the consent check before recording): the invariant holds
    /// after every step.
    #[test]
    fn no_sequence_of_checks_and_moves_leaves_an_unchecked_person_outside_the_lobby() {
        let people = ["a", "b", "l", "o", "j", "m"];
        let places = Place::ALL;
        for seed in 1..=400u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut case = Case::new();
            let mut where_: BTreeMap<&str, Place> = BTreeMap::new();
            let mut recording = false;
            for step in 0..60 {
                let person = rng.pick(&people);
                let changed_case = match rng.below(11) {
                    0 => case.try_push(|c| c.open_lobby(1)),
                    1 => {
                        let passed = rng.below(4) != 0;
                        let method =
                            rng.pick(&[IdentityMethod::IdDocumentVideo, IdentityMethod::Offline]);
                        case.try_push(|c| {
                            c.verify_identity(1, &PersonId::from(person), method, passed, "")
                        })
                    }
                    2 => case.try_push(|c| c.acknowledge_warning(1, &PersonId::from(person))),
                    3 => {
                        let subject = rng.pick(&[
                            ConsentSubject::OnlineMediation,
                            ConsentSubject::Recording,
                            ConsentSubject::RecordingReplacesMinutes,
                        ]);
                        let given = rng.below(3) != 0;
                        let done = case
                            .try_push(|c| c.consent(1, &PersonId::from(person), subject, given));
                        // The live room pauses a recording when a consent to it is withdrawn.
                        if done && subject == ConsentSubject::Recording && !given {
                            recording = false;
                        }
                        done
                    }
                    4 | 5 => {
                        // A move (admit, private room, back): only where the rule allows.
                        let to = rng.pick(&places);
                        if where_.contains_key(person)
                            && case
                                .state()
                                .admission(1, &PersonId::from(person), role(person), to, recording)
                                .is_ok()
                        {
                            where_.insert(person, to);
                        }
                        false
                    }
                    6 => {
                        // Someone joins (new, or taking over their session) or resumes: they
                        // keep their place only if the rule still allows it.
                        let staff = matches!(role(person), Role::Mediator | Role::Judge);
                        let kept = where_.get(person).copied().unwrap_or(if staff {
                            Place::Joint
                        } else {
                            Place::Lobby
                        });
                        let ok = case
                            .state()
                            .admission(1, &PersonId::from(person), role(person), kept, recording)
                            .is_ok();
                        where_.insert(person, if ok { kept } else { Place::Lobby });
                        false
                    }
                    7 => {
                        // The start: the lobby empties into the joint room, person by person.
                        let present: Vec<PersonId> =
                            where_.keys().map(|p| PersonId::from(*p)).collect();
                        let started = case.try_push(|c| c.start(1, &present));
                        if started {
                            let state = case.state();
                            for (p, place) in where_.iter_mut() {
                                if *place == Place::Lobby
                                    && state
                                        .admission(
                                            1,
                                            &PersonId::from(*p),
                                            role(p),
                                            Place::Joint,
                                            recording,
                                        )
                                        .is_ok()
                                {
                                    *place = Place::Joint;
                                }
                            }
                        }
                        started
                    }
                    8 => {
                        // Recording starts (or resumes) only with every party present consenting.
                        let present: Vec<PersonId> =
                            where_.keys().map(|p| PersonId::from(*p)).collect();
                        let present: Vec<&PersonId> = present.iter().collect();
                        if case
                            .state()
                            .recording_consent_missing(1, &present)
                            .is_empty()
                        {
                            recording = true;
                        } else if rng.below(2) == 0 {
                            recording = false;
                        }
                        false
                    }
                    9 => {
                        let side = rng.pick(&[Side::Applicant, Side::Respondent]);
                        let private = rng.below(2) == 0;
                        case.try_push(|c| c.move_side(1, side, private))
                    }
                    _ => {
                        where_.remove(person);
                        false
                    }
                };
                if changed_case {
                    // The live room re-asks the rule for everyone after any case change.
                    let state = case.state();
                    let ids: Vec<PersonId> = where_.keys().map(|p| PersonId::from(*p)).collect();
                    let standing: Vec<(&PersonId, Role, Place)> = ids
                        .iter()
                        .zip(where_.iter())
                        .map(|(id, (p, place))| (id, role(p), *place))
                        .collect();
                    for (p, _) in state.must_leave(1, standing, recording) {
                        if let Some(place) = where_.get_mut(p.as_str()) {
                            *place = Place::Lobby;
                        }
                    }
                }
                if let Err(e) = invariant(&case.state(), &where_, recording) {
                    panic!("seed {seed}, step {step}: {e}");
                }
            }
        }
    }
}

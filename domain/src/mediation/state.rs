//! A case's state, folded from its events, and the rules that decide which new events may be
//! appended. Pure: no storage, no clock (callers pass `now`), so every rule is unit-tested.

use super::agreement::{MAX_AGREEMENT_CHARS, text_hash};
use super::case::{Member, Side, Stage, validate_addition};
use super::checks::{Check, MissingCheck};
use super::deadline::{TimeLimit, time_limit};
use super::event::{CaseEvent, ConsentSubject, IdentityMethod, Recorded};
use super::outcome::{Outcome, REFUSED_TO_SIGN};
use super::place::Place;
use crate::ids::{CaseId, PersonId, RoomName};
use crate::role::Role;
use serde::Serialize;
use std::collections::BTreeMap;

pub use super::error::{Act, Field, RuleError, RuleKind};
pub use super::phase::Phase;

/// An identity check as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IdentityCheck {
    /// How.
    pub method: IdentityMethod,
    /// Whether it matched.
    pub passed: bool,
    /// Who verified.
    pub by: PersonId,
    /// When, Unix ms.
    pub at: i64,
    /// Free text.
    pub note: String,
}

/// A yes or no, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Answer {
    /// Yes or no.
    pub given: bool,
    /// When, Unix ms.
    pub at: i64,
}

/// One person's start-of-session checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PersonChecks {
    /// The latest identity check.
    pub identity: Option<IdentityCheck>,
    /// Consent to online mediation.
    pub online_mediation: Option<Answer>,
    /// Consent to recording.
    pub recording: Option<Answer>,
    /// Consent to the recording replacing the minutes.
    pub recording_replaces_minutes: Option<Answer>,
    /// When the false-mediation warning was acknowledged.
    pub warning_acknowledged_at: Option<i64>,
}

impl PersonChecks {
    /// The checks someone in `role` still lacks to take part; `recording`: the room is being
    /// recorded, so a party must have consented to it. The mediator and a judge are court
    /// staff (their sign-in is their identity); an admin is not a member.
    pub fn missing(&self, role: Role, recording: bool) -> Vec<Check> {
        let mut missing = Vec::new();
        if matches!(role, Role::Mediator | Role::Judge | Role::Admin) {
            return missing;
        }
        match &self.identity {
            Some(i) if i.passed => {}
            Some(_) => missing.push(Check::IdentityFailed),
            None => missing.push(Check::IdentityNotVerified),
        }
        if matches!(role, Role::Party | Role::Agent) && self.warning_acknowledged_at.is_none() {
            missing.push(Check::WarningNotAcknowledged);
        }
        if role == Role::Party {
            match self.online_mediation {
                Some(a) if a.given => {}
                Some(_) => missing.push(Check::OnlineMediationRefused),
                None => missing.push(Check::OnlineMediationNotAnswered),
            }
            match self.recording {
                None => missing.push(Check::RecordingNotAnswered),
                Some(a) if recording && !a.given => missing.push(Check::RecordingNotConsented),
                Some(_) => {}
            }
        }
        missing
    }
}

/// A personal join link as recorded (the token itself is not kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    /// For whom.
    pub person: PersonId,
    /// Token id.
    pub token_id: String,
    /// Issued, Unix ms.
    pub issued_at: i64,
    /// Expires, Unix ms.
    pub expires_at: i64,
    /// Issued by.
    pub by: PersonId,
}

/// A party's confirmation of the minutes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MinutesConfirmation {
    /// Who.
    pub person: PersonId,
    /// Revision confirmed.
    pub revision: i64,
    /// Its hash.
    pub sha256: String,
    /// When.
    pub at: i64,
}

/// A rating of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Rating {
    /// Who.
    pub person: PersonId,
    /// 1–5.
    pub score: u8,
    /// Free text.
    pub comment: String,
    /// When.
    pub at: i64,
}

/// One session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SessionState {
    /// Number within the case, from 1.
    pub number: u32,
    /// The room it meets in.
    pub room: RoomName,
    /// Planned start.
    pub scheduled_at: i64,
    /// Phase.
    pub phase: Phase,
    /// When it went into session.
    pub started_at: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// Who was present at the start.
    pub present_at_start: Vec<PersonId>,
    /// Where each side is now: the joint room or its private room.
    #[schema(value_type = std::collections::BTreeMap<String, Place>)]
    pub sides: BTreeMap<Side, Place>,
    /// Join links issued.
    pub invitations: Vec<Invitation>,
    /// Start-of-session checks per person.
    pub checks: BTreeMap<PersonId, PersonChecks>,
    /// Confirmations of the minutes.
    pub minutes_confirmations: Vec<MinutesConfirmation>,
    /// Whether the recording stands for the minutes.
    pub minutes_replaced_by_recording: bool,
    /// Ratings.
    pub ratings: Vec<Rating>,
}

/// One version of the agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgreementVersion {
    /// From 1.
    pub version: u32,
    /// Text as drafted.
    pub text: String,
    /// SHA-256 of the canonical text.
    pub sha256: String,
    /// When.
    pub at: i64,
    /// Who drafted it.
    pub by: PersonId,
}

/// A signature, bound to one version's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Signature {
    /// Version signed.
    pub version: u32,
    /// Hash signed.
    pub sha256: String,
    /// Signer.
    pub person: PersonId,
    /// Signer's name.
    pub name: String,
    /// Signer's role.
    pub role: Role,
    /// When.
    pub at: i64,
    /// How identity was confirmed.
    pub identity: String,
}

/// A refusal to sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Refusal {
    /// Version refused.
    pub version: u32,
    /// Who.
    pub person: PersonId,
    /// Why.
    pub reason: String,
    /// When.
    pub at: i64,
}

/// The agreement: its versions and signatures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgreementState {
    /// Every version, oldest first.
    pub versions: Vec<AgreementVersion>,
    /// Every signature ever given (those on older versions are void).
    pub signatures: Vec<Signature>,
    /// A refusal, if any.
    pub refusal: Option<Refusal>,
    /// When the current version took effect (its last required signature).
    pub effective_at: Option<i64>,
}

impl AgreementState {
    /// The current version.
    pub fn current(&self) -> Option<&AgreementVersion> {
        self.versions.last()
    }

    /// Valid signatures: those on the current version.
    pub fn valid_signatures(&self) -> impl Iterator<Item = &Signature> {
        let current = self.current().map(|v| v.version);
        self.signatures
            .iter()
            .filter(move |s| Some(s.version) == current)
    }
}

/// A proposed extension awaiting the parties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PendingExtension {
    /// Days proposed.
    pub days: i64,
    /// When, Unix ms.
    pub proposed_at: i64,
    /// Parties who agreed so far.
    pub agreed: Vec<PersonId>,
}

/// A whole case.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CaseState {
    /// Case id (server-assigned).
    pub id: CaseId,
    /// Case number.
    pub number: String,
    /// Cause of action.
    pub case_type: String,
    /// Claim, fen.
    pub claim_amount: i64,
    /// Stage.
    pub stage: Stage,
    /// Opened, Unix ms.
    pub opened_at: i64,
    /// Members, the mediator first.
    pub members: Vec<Member>,
    /// Sessions.
    pub sessions: Vec<SessionState>,
    /// The agreement.
    pub agreement: AgreementState,
    /// The result, once recorded.
    pub outcome: Option<Outcome>,
    /// When the result was recorded.
    pub closed_at: Option<i64>,
    /// Days of extension granted.
    pub extension_days: i64,
    /// An extension the mediator proposed that not every party has answered yet.
    pub pending_extension: Option<PendingExtension>,
    /// Pauses of the time limit.
    pub pauses: Vec<(i64, Option<i64>)>,
    /// Judicial confirmation.
    pub confirmation: super::record::ConfirmationState,
    /// Events folded so far.
    pub seq: i64,
}

impl CaseState {
    /// Folds a case's events, oldest first; `None` if the first is not `opened`.
    pub fn fold(id: &CaseId, events: &[Recorded]) -> Option<CaseState> {
        let (first, rest) = events.split_first()?;
        let CaseEvent::Opened {
            number,
            case_type,
            claim_amount,
            stage,
            members,
        } = &first.event
        else {
            return None;
        };
        let mut case = CaseState {
            id: id.clone(),
            number: number.clone(),
            case_type: case_type.clone(),
            claim_amount: *claim_amount,
            stage: *stage,
            opened_at: first.at,
            members: members.clone(),
            sessions: Vec::new(),
            agreement: AgreementState::default(),
            outcome: None,
            closed_at: None,
            extension_days: 0,
            pending_extension: None,
            pauses: Vec::new(),
            confirmation: Default::default(),
            seq: first.seq,
        };
        for e in rest {
            case.apply(e);
        }
        Some(case)
    }

    /// Applies one recorded event (already checked when it was decided).
    pub fn apply(&mut self, r: &Recorded) {
        self.seq = r.seq;
        let at = r.at;
        match &r.event {
            CaseEvent::Opened { .. } => {}
            CaseEvent::MemberAdded { member } => self.members.push(member.clone()),
            CaseEvent::SessionScheduled {
                session,
                room,
                scheduled_at,
            } => self.sessions.push(SessionState {
                number: *session,
                room: room.clone(),
                scheduled_at: *scheduled_at,
                phase: Phase::Scheduled,
                started_at: None,
                ended_at: None,
                present_at_start: Vec::new(),
                sides: [Side::Applicant, Side::Respondent]
                    .into_iter()
                    .map(|s| (s, Place::Joint))
                    .collect(),
                invitations: Vec::new(),
                checks: BTreeMap::new(),
                minutes_confirmations: Vec::new(),
                minutes_replaced_by_recording: false,
                ratings: Vec::new(),
            }),
            CaseEvent::InvitationIssued {
                session,
                person,
                token_id,
                expires_at,
                ..
            } => {
                if let Some(s) = self.session_mut(*session) {
                    s.invitations.push(Invitation {
                        person: person.clone(),
                        token_id: token_id.clone(),
                        issued_at: at,
                        expires_at: *expires_at,
                        by: r.actor.clone(),
                    });
                }
            }
            CaseEvent::LobbyOpened { session } => {
                if let Some(s) = self.session_mut(*session) {
                    s.phase = Phase::LobbyOpen;
                }
            }
            CaseEvent::IdentityVerified {
                session,
                person,
                method,
                passed,
                note,
            } => {
                if let Some(s) = self.session_mut(*session) {
                    s.checks.entry(person.clone()).or_default().identity = Some(IdentityCheck {
                        method: *method,
                        passed: *passed,
                        by: r.actor.clone(),
                        at,
                        note: note.clone(),
                    });
                }
            }
            CaseEvent::ConsentRecorded {
                session,
                person,
                subject,
                given,
            } => {
                if let Some(s) = self.session_mut(*session) {
                    let checks = s.checks.entry(person.clone()).or_default();
                    let answer = Some(Answer { given: *given, at });
                    match subject {
                        ConsentSubject::OnlineMediation => checks.online_mediation = answer,
                        ConsentSubject::Recording => checks.recording = answer,
                        ConsentSubject::RecordingReplacesMinutes => {
                            checks.recording_replaces_minutes = answer
                        }
                    }
                }
            }
            CaseEvent::WarningAcknowledged { session, person } => {
                if let Some(s) = self.session_mut(*session) {
                    s.checks
                        .entry(person.clone())
                        .or_default()
                        .warning_acknowledged_at = Some(at);
                }
            }
            CaseEvent::SessionStarted { session, present } => {
                if let Some(s) = self.session_mut(*session) {
                    s.phase = Phase::InSession;
                    s.started_at = Some(at);
                    s.present_at_start = present.clone();
                }
            }
            CaseEvent::SideMoved { session, side, to } => {
                if let Some(s) = self.session_mut(*session) {
                    s.sides.insert(*side, *to);
                }
            }
            CaseEvent::SessionEnded { session } => {
                if let Some(s) = self.session_mut(*session) {
                    s.phase = Phase::Ended;
                    s.ended_at = Some(at);
                }
            }
            CaseEvent::MinutesConfirmed {
                session,
                person,
                revision,
                sha256,
            } => {
                if let Some(s) = self.session_mut(*session) {
                    s.minutes_confirmations.push(MinutesConfirmation {
                        person: person.clone(),
                        revision: *revision,
                        sha256: sha256.clone(),
                        at,
                    });
                }
            }
            CaseEvent::MinutesReplacedByRecording { session } => {
                if let Some(s) = self.session_mut(*session) {
                    s.minutes_replaced_by_recording = true;
                }
            }
            CaseEvent::AgreementDrafted {
                version,
                text,
                sha256,
            } => {
                self.agreement.versions.push(AgreementVersion {
                    version: *version,
                    text: text.clone(),
                    sha256: sha256.clone(),
                    at,
                    by: r.actor.clone(),
                });
                self.agreement.effective_at = None;
            }
            CaseEvent::AgreementSigned {
                version,
                sha256,
                person,
                role,
                identity,
            } => {
                let name = self
                    .member(person)
                    .map_or_else(|| person.to_string(), |m| m.name.clone());
                self.agreement.signatures.push(Signature {
                    version: *version,
                    sha256: sha256.clone(),
                    person: person.clone(),
                    name,
                    role: *role,
                    at,
                    identity: identity.clone(),
                });
                if self.unsigned().is_empty() {
                    self.agreement.effective_at = Some(at);
                }
            }
            CaseEvent::SigningRefused {
                version,
                person,
                reason,
            } => {
                self.agreement.refusal = Some(Refusal {
                    version: *version,
                    person: person.clone(),
                    reason: reason.clone(),
                    at,
                });
            }
            CaseEvent::OutcomeRecorded { outcome } => {
                self.outcome = Some(outcome.clone());
                self.closed_at = Some(at);
                for (_, end) in self.pauses.iter_mut().filter(|(_, e)| e.is_none()) {
                    *end = Some(at);
                }
            }
            CaseEvent::ExtensionProposed { days } => {
                self.pending_extension = Some(PendingExtension {
                    days: *days,
                    proposed_at: at,
                    agreed: Vec::new(),
                });
            }
            CaseEvent::ExtensionAnswered { person, agreed } => {
                if *agreed {
                    if let Some(p) = self.pending_extension.as_mut() {
                        p.agreed.push(person.clone());
                    }
                } else {
                    self.pending_extension = None;
                }
            }
            CaseEvent::DeadlineExtended { days, .. } => {
                self.extension_days += days;
                self.pending_extension = None;
            }
            CaseEvent::DeadlinePaused { .. } => self.pauses.push((at, None)),
            CaseEvent::DeadlineResumed => {
                if let Some((_, end)) = self.pauses.iter_mut().find(|(_, e)| e.is_none()) {
                    *end = Some(at);
                }
            }
            CaseEvent::Rated {
                session,
                person,
                score,
                comment,
            } => {
                if let Some(s) = self.session_mut(*session) {
                    s.ratings.push(Rating {
                        person: person.clone(),
                        score: *score,
                        comment: comment.clone(),
                        at,
                    });
                }
            }
            e @ (CaseEvent::ConfirmationApplied { .. }
            | CaseEvent::ConfirmationSubmitted { .. }
            | CaseEvent::ConfirmationWithdrawn { .. }
            | CaseEvent::CourtUpdated { .. }) => self.confirmation.apply(e, at),
        }
    }

    fn session_mut(&mut self, n: u32) -> Option<&mut SessionState> {
        self.sessions.iter_mut().find(|s| s.number == n)
    }

    /// One session.
    pub fn session(&self, n: u32) -> Result<&SessionState, RuleError> {
        self.sessions
            .iter()
            .find(|s| s.number == n)
            .ok_or(RuleError::NoSuchSession { session: n })
    }

    /// The session meeting in `room`.
    pub fn session_in_room(&self, room: &RoomName) -> Option<&SessionState> {
        self.sessions.iter().find(|s| s.room == *room)
    }

    /// A member.
    pub fn member(&self, id: &PersonId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == *id)
    }

    /// A member's name, or the id itself for someone not in the case.
    pub fn name_of(&self, id: &PersonId) -> String {
        self.member(id)
            .map_or_else(|| id.to_string(), |m| m.name.clone())
    }

    fn known_member(&self, id: &PersonId) -> Result<&Member, RuleError> {
        self.member(id)
            .ok_or_else(|| RuleError::NotAMember { person: id.clone() })
    }

    /// `m` may not do `act` in its role.
    fn role_may_not(m: &Member, act: Act) -> RuleError {
        RuleError::RoleMayNot {
            person: m.id.clone(),
            name: m.name.clone(),
            role: m.role,
            act,
        }
    }

    /// The mediator.
    pub fn mediator(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.role == Role::Mediator)
    }

    /// The parties.
    pub fn parties(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.role == Role::Party)
    }

    /// Who must sign for the agreement to take effect: every party and the mediator.
    pub fn required_signers(&self) -> Vec<&Member> {
        self.members
            .iter()
            .filter(|m| matches!(m.role, Role::Party | Role::Mediator))
            .collect()
    }

    /// Required signers who have not signed the current version.
    pub fn unsigned(&self) -> Vec<&Member> {
        let signed: Vec<&str> = self
            .agreement
            .valid_signatures()
            .map(|s| s.person.as_str())
            .collect();
        self.required_signers()
            .into_iter()
            .filter(|m| !signed.contains(&m.id.as_str()))
            .collect()
    }

    /// The time limit at `now`.
    pub fn time_limit(&self, now: i64) -> TimeLimit {
        time_limit(
            self.stage,
            self.opened_at,
            self.extension_days,
            &self.pauses,
            self.closed_at,
            now,
        )
    }

    fn require_open(&self) -> Result<(), RuleError> {
        match &self.outcome {
            None => Ok(()),
            Some(o) => Err(RuleError::MediationEnded { outcome: o.clone() }),
        }
    }

    fn live_session(&self, n: u32) -> Result<&SessionState, RuleError> {
        self.require_open()?;
        let s = self.session(n)?;
        if s.phase == Phase::Ended {
            return Err(RuleError::SessionEnded { session: n });
        }
        Ok(s)
    }

    /// Session `n`, live and at least in check-in (its lobby open).
    fn checked_in_session(&self, n: u32) -> Result<&SessionState, RuleError> {
        let s = self.live_session(n)?;
        if s.phase == Phase::Scheduled {
            return Err(RuleError::WrongPhase {
                session: n,
                phase: s.phase,
                needed: Phase::LobbyOpen,
            });
        }
        Ok(s)
    }

    // ---- decisions: each returns the events to append, or why not ----

    /// Adds a member (e.g. an assisting judge).
    pub fn add_member(&self, member: &Member) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        // A new party would be a required signer of a text others already signed.
        if member.role == Role::Party
            && (self.agreement.effective_at.is_some()
                || self.agreement.valid_signatures().next().is_some())
        {
            return Err(RuleError::AgreementBeingSigned);
        }
        validate_addition(&self.members, member)?;
        Ok(vec![CaseEvent::MemberAdded {
            member: member.clone(),
        }])
    }

    /// The number the next session gets.
    pub fn next_session_number(&self) -> u32 {
        self.sessions.iter().map(|s| s.number).max().unwrap_or(0) + 1
    }

    /// Schedules a session meeting in `room`.
    pub fn schedule(
        &self,
        room: &RoomName,
        scheduled_at: i64,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        if let Some(running) = self
            .sessions
            .iter()
            .find(|s| s.phase != Phase::Ended && s.phase != Phase::Scheduled)
        {
            return Err(RuleError::SessionRunning {
                session: running.number,
            });
        }
        Ok(vec![CaseEvent::SessionScheduled {
            session: self.next_session_number(),
            room: room.clone(),
            scheduled_at,
        }])
    }

    /// Records an issued join link.
    pub fn invite(
        &self,
        n: u32,
        person: &PersonId,
        token_id: &str,
        expires_at: i64,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        // An ended session's link is a follow-up link: its room is closed, and it opens the
        // case (the outcome, the signed agreement, a rating, judicial confirmation within 30
        // days), so it may be issued after the mediation ended too.
        self.session(n)?;
        let m = self.known_member(person)?;
        Ok(vec![CaseEvent::InvitationIssued {
            session: n,
            person: person.clone(),
            role: m.role,
            token_id: token_id.to_string(),
            expires_at,
        }])
    }

    /// Opens the lobby.
    pub fn open_lobby(&self, n: u32) -> Result<Vec<CaseEvent>, RuleError> {
        let s = self.live_session(n)?;
        if s.phase != Phase::Scheduled {
            return Err(RuleError::WrongPhase {
                session: n,
                phase: s.phase,
                needed: Phase::Scheduled,
            });
        }
        Ok(vec![CaseEvent::LobbyOpened { session: n }])
    }

    /// Records an identity check of `person` by the mediator.
    pub fn verify_identity(
        &self,
        n: u32,
        person: &PersonId,
        method: IdentityMethod,
        passed: bool,
        note: &str,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        self.checked_in_session(n)?;
        let m = self.known_member(person)?;
        if m.role == Role::Mediator {
            return Err(Self::role_may_not(m, Act::BeIdentityChecked));
        }
        if note.chars().count() > 500 {
            return Err(RuleError::TextLength {
                field: Field::Note,
                max: 500,
            });
        }
        Ok(vec![CaseEvent::IdentityVerified {
            session: n,
            person: person.clone(),
            method,
            passed,
            note: note.to_string(),
        }])
    }

    /// Records a party's consent or refusal.
    pub fn consent(
        &self,
        n: u32,
        person: &PersonId,
        subject: ConsentSubject,
        given: bool,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        self.checked_in_session(n)?;
        let m = self.known_member(person)?;
        if m.role != Role::Party {
            return Err(Self::role_may_not(m, Act::GiveConsent));
        }
        // The same answer again changes nothing and records nothing: a page that resends it
        // (or a client that repeats it 3,000 times) must not grow the case's record.
        let current = self
            .session(n)?
            .checks
            .get(person)
            .and_then(|c| match subject {
                ConsentSubject::OnlineMediation => c.online_mediation.as_ref(),
                ConsentSubject::Recording => c.recording.as_ref(),
                ConsentSubject::RecordingReplacesMinutes => c.recording_replaces_minutes.as_ref(),
            })
            .map(|a| a.given);
        if current == Some(given) {
            return Ok(Vec::new());
        }
        Ok(vec![CaseEvent::ConsentRecorded {
            session: n,
            person: person.clone(),
            subject,
            given,
        }])
    }

    /// Records that `person` read the false-mediation warning.
    pub fn acknowledge_warning(
        &self,
        n: u32,
        person: &PersonId,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        self.checked_in_session(n)?;
        let m = self.known_member(person)?;
        if !matches!(m.role, Role::Party | Role::Agent) {
            return Err(Self::role_may_not(m, Act::AcknowledgeWarning));
        }
        let read = self
            .session(n)?
            .checks
            .get(person)
            .is_some_and(|c| c.warning_acknowledged_at.is_some());
        if read {
            return Ok(Vec::new()); // read once is read: nothing new to record
        }
        Ok(vec![CaseEvent::WarningAcknowledged {
            session: n,
            person: person.clone(),
        }])
    }

    /// What the members among `present` still lack before session `n` can start with them
    /// there (the same checks the admission rule asks). Others present (an admin) are not
    /// the case's people and need none.
    pub fn missing_checks(
        &self,
        n: u32,
        present: &[PersonId],
    ) -> Result<Vec<MissingCheck>, RuleError> {
        let s = self.session(n)?;
        let mut missing = Vec::new();
        for id in present {
            let Some(m) = self.member(id) else {
                continue;
            };
            let checks = s.checks.get(id).cloned().unwrap_or_default();
            missing.extend(
                checks
                    .missing(m.role, false)
                    .into_iter()
                    .map(|check| MissingCheck {
                        person: m.id.clone(),
                        name: m.name.clone(),
                        role: m.role,
                        check,
                    }),
            );
        }
        Ok(missing)
    }

    /// Parties among `present` who have not consented to recording in session `n` (refused or
    /// not asked): the session must not be recorded while they are there.
    pub fn recording_consent_missing(&self, n: u32, present: &[&PersonId]) -> Vec<MissingCheck> {
        let checks = self.session(n).ok().map(|s| &s.checks);
        self.parties()
            .filter(|p| present.contains(&&p.id))
            .filter(|p| {
                !checks
                    .and_then(|c| c.get(&p.id))
                    .and_then(|c| c.recording)
                    .is_some_and(|a| a.given)
            })
            .map(|p| MissingCheck {
                person: p.id.clone(),
                name: p.name.clone(),
                role: p.role,
                check: Check::RecordingNotConsented,
            })
            .collect()
    }

    /// Starts session `n` if everyone present has passed the checks.
    pub fn start(&self, n: u32, present: &[PersonId]) -> Result<Vec<CaseEvent>, RuleError> {
        let s = self.live_session(n)?;
        if s.phase != Phase::LobbyOpen {
            return Err(RuleError::WrongPhase {
                session: n,
                phase: s.phase,
                needed: Phase::LobbyOpen,
            });
        }
        let missing = self.missing_checks(n, present)?;
        if !missing.is_empty() {
            return Err(RuleError::ChecksMissing { missing });
        }
        if !self.parties().any(|p| present.contains(&p.id)) {
            return Err(RuleError::NoPartyPresent);
        }
        let mut present = present.to_vec();
        present.sort();
        Ok(vec![CaseEvent::SessionStarted {
            session: n,
            present,
        }])
    }

    /// Records a side's move (into its private room or back).
    pub fn move_side(
        &self,
        n: u32,
        side: Side,
        to_private: bool,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        let s = self.live_session(n)?;
        if s.phase != Phase::InSession {
            return Err(RuleError::WrongPhase {
                session: n,
                phase: s.phase,
                needed: Phase::InSession,
            });
        }
        let to = if to_private {
            Place::Private(side)
        } else {
            Place::Joint
        };
        Ok(vec![CaseEvent::SideMoved {
            session: n,
            side,
            to,
        }])
    }

    /// Ends session `n`.
    pub fn end(&self, n: u32) -> Result<Vec<CaseEvent>, RuleError> {
        let s = self.session(n)?;
        if s.phase == Phase::Ended {
            return Err(RuleError::SessionEnded { session: n });
        }
        Ok(vec![CaseEvent::SessionEnded { session: n }])
    }

    /// A party confirms the minutes at `revision` (whose hash is `sha256`); `current` is the
    /// stored minutes' (revision, hash).
    pub fn confirm_minutes(
        &self,
        n: u32,
        person: &PersonId,
        revision: i64,
        current: (i64, &str),
    ) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        self.session(n)?;
        let m = self.known_member(person)?;
        if m.role != Role::Party {
            return Err(Self::role_may_not(m, Act::ConfirmMinutes));
        }
        if current.0 == 0 {
            return Err(RuleError::NoMinutes);
        }
        if revision != current.0 {
            return Err(RuleError::MinutesStale {
                revision: current.0,
            });
        }
        Ok(vec![CaseEvent::MinutesConfirmed {
            session: n,
            person: person.clone(),
            revision,
            sha256: current.1.to_string(),
        }])
    }

    /// Lets the recording stand for the minutes: needs every party's express consent to that,
    /// and to recording, in this session, and a recording of it (`recorded`: the session's
    /// room has one).
    pub fn replace_minutes_by_recording(
        &self,
        n: u32,
        recorded: bool,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        let s = self.live_session(n)?;
        if !recorded {
            return Err(RuleError::NoRecording { session: n });
        }
        let mut missing = Vec::new();
        for p in self.parties() {
            let c = s.checks.get(&p.id);
            let lacking = |check| MissingCheck {
                person: p.id.clone(),
                name: p.name.clone(),
                role: p.role,
                check,
            };
            if !c.and_then(|c| c.recording).is_some_and(|a| a.given) {
                missing.push(lacking(Check::RecordingNotConsented));
            }
            if !c
                .and_then(|c| c.recording_replaces_minutes)
                .is_some_and(|a| a.given)
            {
                missing.push(lacking(Check::RecordingReplacesMinutesNotConsented));
            }
        }
        if !missing.is_empty() {
            return Err(RuleError::ChecksMissing { missing });
        }
        Ok(vec![CaseEvent::MinutesReplacedByRecording { session: n }])
    }

    /// A new version of the agreement. Frozen once it took effect.
    pub fn draft(&self, text: &str) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        if self.agreement.effective_at.is_some() {
            return Err(RuleError::AgreementInEffect);
        }
        if text.trim().is_empty() || text.chars().count() > MAX_AGREEMENT_CHARS {
            return Err(RuleError::TextLength {
                field: Field::Agreement,
                max: MAX_AGREEMENT_CHARS,
            });
        }
        let sha256 = text_hash(text);
        if self.agreement.current().is_some_and(|v| v.sha256 == sha256) {
            return Err(RuleError::SameText);
        }
        let version = self.agreement.current().map_or(1, |v| v.version + 1);
        Ok(vec![CaseEvent::AgreementDrafted {
            version,
            text: text.to_string(),
            sha256,
        }])
    }

    /// How `person`'s identity was confirmed, for a signature record.
    pub fn identity_basis(&self, person: &PersonId) -> String {
        let latest = self
            .sessions
            .iter()
            .filter_map(|s| s.checks.get(person).and_then(|c| c.identity.clone()))
            .filter(|i| i.passed)
            .max_by_key(|i| i.at);
        match (self.member(person).map(|m| m.role), latest) {
            (_, Some(i)) => format!("{} by {} at {}", i.method.as_str(), i.by, i.at),
            (Some(Role::Mediator), None) => "court staff login".into(),
            (_, None) => String::new(),
        }
    }

    /// `person` signs `version` whose hash they were shown as `sha256`.
    pub fn sign(
        &self,
        person: &PersonId,
        version: u32,
        sha256: &str,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        let m = self.known_member(person)?;
        if !matches!(m.role, Role::Party | Role::Mediator) {
            return Err(Self::role_may_not(m, Act::Sign));
        }
        let current = self.agreement.current().ok_or(RuleError::NoAgreement)?;
        if current.version != version || current.sha256 != sha256 {
            return Err(RuleError::AgreementStale {
                version: current.version,
                sha256: current.sha256.clone(),
            });
        }
        if self
            .agreement
            .valid_signatures()
            .any(|s| s.person == *person)
        {
            return Err(RuleError::AlreadySigned {
                person: m.id.clone(),
                name: m.name.clone(),
            });
        }
        let identity = self.identity_basis(person);
        if identity.is_empty() {
            return Err(RuleError::IdentityNeverVerified {
                person: m.id.clone(),
                name: m.name.clone(),
            });
        }
        Ok(vec![CaseEvent::AgreementSigned {
            version,
            sha256: sha256.to_string(),
            person: person.clone(),
            role: m.role,
            identity,
        }])
    }

    /// A party refuses to sign: recorded, and the mediation ends (ODR-Med 25(7)).
    pub fn refuse(
        &self,
        person: &PersonId,
        version: u32,
        reason: &str,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        let m = self.known_member(person)?;
        if m.role != Role::Party {
            return Err(Self::role_may_not(m, Act::RefuseToSign));
        }
        let current = self.agreement.current().ok_or(RuleError::NoAgreement)?;
        if current.version != version {
            return Err(RuleError::AgreementStale {
                version: current.version,
                sha256: current.sha256.clone(),
            });
        }
        if self.agreement.effective_at.is_some() {
            return Err(RuleError::AgreementInEffect);
        }
        if reason.chars().count() > 2000 {
            return Err(RuleError::TextLength {
                field: Field::Reason,
                max: 2000,
            });
        }
        // The mediation ends here (ODR-Med 25(7)): its sessions end with it.
        let mut events = vec![CaseEvent::SigningRefused {
            version,
            person: person.clone(),
            reason: reason.to_string(),
        }];
        events.extend(self.end_open_sessions());
        events.push(CaseEvent::OutcomeRecorded {
            outcome: Outcome::Termination {
                ground: REFUSED_TO_SIGN,
                note: format!("{} refused to sign version {version}", m.name),
            },
        });
        Ok(events)
    }

    /// Ends every session not ended yet (an outcome ends the mediation).
    fn end_open_sessions(&self) -> Vec<CaseEvent> {
        self.sessions
            .iter()
            .filter(|s| s.phase != Phase::Ended)
            .map(|s| CaseEvent::SessionEnded { session: s.number })
            .collect()
    }

    /// Records the outcome. Success needs an agreement in effect.
    pub fn record_outcome(&self, outcome: &Outcome) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        validate_outcome(outcome)?;
        match outcome {
            Outcome::Termination { ground: 1, .. } => return Err(RuleError::GroundOneIsSuccess),
            Outcome::Termination {
                ground: REFUSED_TO_SIGN,
                ..
            } => return Err(RuleError::GroundSevenBySelf),
            _ => {}
        }
        if *outcome == Outcome::Success && self.agreement.effective_at.is_none() {
            return Err(RuleError::SuccessNeedsAgreement);
        }
        let mut events = self.end_open_sessions();
        events.push(CaseEvent::OutcomeRecorded {
            outcome: outcome.clone(),
        });
        Ok(events)
    }

    /// The mediator proposes extending the time limit (ODR-Med 24: by the parties' consent);
    /// a new proposal replaces a pending one.
    pub fn propose_extension(&self, days: i64) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        if !(1..=30).contains(&days) {
            return Err(RuleError::OutOfRange {
                field: Field::Days,
                min: 1,
                max: 30,
            });
        }
        Ok(vec![CaseEvent::ExtensionProposed { days }])
    }

    /// A party answers the pending proposal; the last agreement extends the limit, a refusal
    /// withdraws the proposal.
    pub fn answer_extension(
        &self,
        person: &PersonId,
        agreed: bool,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        let m = self.known_member(person)?;
        if m.role != Role::Party {
            return Err(Self::role_may_not(m, Act::AnswerExtension));
        }
        let pending = self
            .pending_extension
            .as_ref()
            .ok_or(RuleError::NoExtensionProposed)?;
        if pending.agreed.iter().any(|p| p == person) {
            return Err(RuleError::AlreadyAgreedToExtension);
        }
        let mut events = vec![CaseEvent::ExtensionAnswered {
            person: person.clone(),
            agreed,
        }];
        let all_agreed = agreed
            && self
                .parties()
                .all(|p| p.id == *person || pending.agreed.contains(&p.id));
        if all_agreed {
            events.push(CaseEvent::DeadlineExtended {
                days: pending.days,
                consented_by: self.parties().map(|p| p.id.clone()).collect(),
            });
        }
        Ok(events)
    }

    /// Pauses (an appraisal starts) or resumes the time limit.
    pub fn pause(&self, pause: bool, reason: &str) -> Result<Vec<CaseEvent>, RuleError> {
        self.require_open()?;
        let paused = self.pauses.iter().any(|(_, e)| e.is_none());
        match (pause, paused) {
            (true, true) => Err(RuleError::AlreadyPaused),
            (false, false) => Err(RuleError::NotPaused),
            (true, false) if reason.trim().is_empty() || reason.chars().count() > 500 => {
                Err(RuleError::TextLength {
                    field: Field::Reason,
                    max: 500,
                })
            }
            (true, false) => Ok(vec![CaseEvent::DeadlinePaused {
                reason: reason.to_string(),
            }]),
            (false, true) => Ok(vec![CaseEvent::DeadlineResumed]),
        }
    }

    /// A party rates an ended session.
    pub fn rate(
        &self,
        n: u32,
        person: &PersonId,
        score: u8,
        comment: &str,
    ) -> Result<Vec<CaseEvent>, RuleError> {
        let s = self.session(n)?;
        let m = self.known_member(person)?;
        if m.role != Role::Party {
            return Err(Self::role_may_not(m, Act::Rate));
        }
        if s.phase != Phase::Ended {
            return Err(RuleError::WrongPhase {
                session: n,
                phase: s.phase,
                needed: Phase::Ended,
            });
        }
        if !(1..=5).contains(&score) {
            return Err(RuleError::OutOfRange {
                field: Field::Score,
                min: 1,
                max: 5,
            });
        }
        if comment.chars().count() > 2000 {
            return Err(RuleError::TextLength {
                field: Field::Comment,
                max: 2000,
            });
        }
        if s.ratings.iter().any(|r| r.person == *person) {
            return Err(RuleError::AlreadyRated);
        }
        Ok(vec![CaseEvent::Rated {
            session: n,
            person: person.clone(),
            score,
            comment: comment.to_string(),
        }])
    }
}

/// Checks an outcome's fields: a ground of ODR-Med 25, reasons present and not huge.
fn validate_outcome(outcome: &Outcome) -> Result<(), RuleError> {
    let length = |field, text: &str, may_be_empty: bool| {
        if (!may_be_empty && text.trim().is_empty()) || text.chars().count() > 4000 {
            Err(RuleError::TextLength { field, max: 4000 })
        } else {
            Ok(())
        }
    };
    match outcome {
        Outcome::Success => Ok(()),
        Outcome::Failure { reason } => length(Field::Reason, reason, false),
        Outcome::Termination { ground, .. }
            if !super::outcome::TERMINATION_GROUNDS
                .iter()
                .any(|(g, _)| g == ground) =>
        {
            Err(RuleError::OutOfRange {
                field: Field::Ground,
                min: 1,
                max: 8,
            })
        }
        Outcome::Termination { note, .. } => length(Field::Note, note, true),
    }
}

//! Why the workflow's rules refuse a command: one typed reason per rule, with the people,
//! versions and states it is about. The wire form is an object tagged by `reason` (the
//! error's `details`), so a page says it in the person's language with their names; the
//! English `Display` is for logs and programs.

use super::checks::MissingCheck;
use super::outcome::Outcome;
use super::phase::Phase;
use crate::ids::PersonId;
use crate::role::Role;
use serde::Serialize;

/// What someone in the wrong role tried to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    /// Consent (or refuse) to online mediation or recording: parties only.
    GiveConsent,
    /// Acknowledge the false-mediation warning: parties and agents.
    AcknowledgeWarning,
    /// Have their identity checked: not the mediator (a staff login).
    BeIdentityChecked,
    /// Confirm the minutes: parties.
    ConfirmMinutes,
    /// Sign the agreement: parties and the mediator.
    Sign,
    /// Refuse to sign: parties.
    RefuseToSign,
    /// Answer a proposed extension: parties.
    AnswerExtension,
    /// Rate a session: parties.
    Rate,
    /// Apply for judicial confirmation, or withdraw: parties.
    ApplyForConfirmation,
}

impl Act {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Act::GiveConsent => "give_consent",
            Act::AcknowledgeWarning => "acknowledge_warning",
            Act::BeIdentityChecked => "be_identity_checked",
            Act::ConfirmMinutes => "confirm_minutes",
            Act::Sign => "sign",
            Act::RefuseToSign => "refuse_to_sign",
            Act::AnswerExtension => "answer_extension",
            Act::Rate => "rate",
            Act::ApplyForConfirmation => "apply_for_confirmation",
        }
    }
}

/// A field of a request that a rule checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// A case number.
    Number,
    /// A cause of action.
    CaseType,
    /// A claim amount.
    ClaimAmount,
    /// A person's name.
    Name,
    /// An identity check's note.
    Note,
    /// The agreement's text.
    Agreement,
    /// The agreed terms.
    Terms,
    /// A reason given.
    Reason,
    /// A comment.
    Comment,
    /// A number of days.
    Days,
    /// A rating's score.
    Score,
    /// A termination ground.
    Ground,
    /// The minutes' text.
    Minutes,
    /// The members of a case.
    Members,
}

impl Field {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Number => "number",
            Field::CaseType => "case_type",
            Field::ClaimAmount => "claim_amount",
            Field::Name => "name",
            Field::Note => "note",
            Field::Agreement => "agreement",
            Field::Terms => "terms",
            Field::Reason => "reason",
            Field::Comment => "comment",
            Field::Days => "days",
            Field::Score => "score",
            Field::Ground => "ground",
            Field::Minutes => "minutes",
            Field::Members => "members",
        }
    }
}

/// Which kind of refusal a rule is: what the API answers it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// The input is malformed or out of range.
    Invalid,
    /// No such session or person.
    NotFound,
    /// Not now: the case or session is in another state.
    State,
    /// A version or revision that is no longer current.
    Stale,
    /// Start-of-session checks are missing.
    ChecksMissing,
}

/// Why a command was refused by the workflow's rules (not by permissions).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum RuleError {
    // ---- not found ----
    /// No such session.
    #[error("no session {session} in this case")]
    NoSuchSession {
        /// The session number asked for.
        session: u32,
    },
    /// The person is not in the case.
    #[error("{person} is not a member of this case")]
    NotAMember {
        /// The id given.
        person: PersonId,
    },

    // ---- not now ----
    /// The mediation has an outcome; nothing more changes.
    #[error("the mediation has ended")]
    MediationEnded {
        /// How it ended.
        outcome: Outcome,
    },
    /// The session has ended.
    #[error("session {session} has ended")]
    SessionEnded {
        /// The session.
        session: u32,
    },
    /// The session is in another phase than this needs.
    #[error("session {session} is {}; this needs it {}", phase.as_str(), needed.as_str())]
    WrongPhase {
        /// The session.
        session: u32,
        /// Its phase now.
        phase: Phase,
        /// The phase this needs.
        needed: Phase,
    },
    /// Another session is running.
    #[error("session {session} is running; end it before scheduling another")]
    SessionRunning {
        /// The running session.
        session: u32,
    },
    /// A new party while the agreement is being signed would be an unsigned required signer.
    #[error("the agreement is being signed; a new party needs a new version first")]
    AgreementBeingSigned,
    /// The agreement took effect and is frozen.
    #[error("the agreement has taken effect and can no longer change")]
    AgreementInEffect,
    /// There is no agreement yet.
    #[error("there is no agreement yet")]
    NoAgreement,
    /// Signed already.
    #[error("{person} already signed this version")]
    AlreadySigned {
        /// Who.
        person: PersonId,
        /// Their name.
        name: String,
    },
    /// A signature needs an identity check in some session.
    #[error("{person}'s identity has not been verified in any session")]
    IdentityNeverVerified {
        /// Who.
        person: PersonId,
        /// Their name.
        name: String,
    },
    /// Success needs the agreement in effect.
    #[error("success needs an agreement signed by every party and the mediator")]
    SuccessNeedsAgreement,
    /// The recording may replace the minutes only of a recorded session.
    #[error("session {session} has no recording to stand for the minutes: record it first")]
    NoRecording {
        /// The session.
        session: u32,
    },
    /// No minutes were saved yet.
    #[error("there are no minutes yet")]
    NoMinutes,
    /// The minutes of an ended session are closed.
    #[error("the minutes of an ended session are closed")]
    MinutesClosed,
    /// No extension is proposed.
    #[error("no extension is proposed")]
    NoExtensionProposed,
    /// Agreed already.
    #[error("already agreed to this extension")]
    AlreadyAgreedToExtension,
    /// The time limit is paused already.
    #[error("the time limit is paused already")]
    AlreadyPaused,
    /// The time limit is not paused.
    #[error("the time limit is not paused")]
    NotPaused,
    /// Rated already.
    #[error("already rated this session")]
    AlreadyRated,
    /// Confirmation needs an agreement in effect.
    #[error("judicial confirmation needs an agreement in effect")]
    NoAgreementInEffect,
    /// The mediation did not succeed.
    #[error("the mediation did not succeed")]
    MediationNotSucceeded,
    /// The 30 days to apply for judicial confirmation have passed.
    #[error(
        "the days to apply for judicial confirmation ended (24:00 China time of the day ending at {apply_by})"
    )]
    ApplyWindowPassed {
        /// The end of the window, Unix ms.
        apply_by: i64,
    },
    /// The application was submitted already.
    #[error("the application was already submitted")]
    AlreadySubmitted,
    /// Applied already.
    #[error("{person} has already applied")]
    AlreadyApplied {
        /// Who.
        person: PersonId,
        /// Their name.
        name: String,
    },
    /// Nothing was submitted.
    #[error("no application was submitted")]
    NothingSubmitted,
    /// Withdrawn already.
    #[error("the application was already withdrawn")]
    AlreadyWithdrawn,
    /// The court ruled; nothing to withdraw.
    #[error("the court has already decided")]
    CourtDecided,
    /// A court update that does not fit the application (from the bridge, never a page).
    #[error("court update refused: {detail}")]
    CourtUpdateRefused {
        /// What did not fit.
        detail: String,
    },

    // ---- stale ----
    /// The minutes moved on.
    #[error("the minutes are at revision {revision}; read them again")]
    MinutesStale {
        /// The current revision.
        revision: i64,
    },
    /// Someone saved the minutes after the revision this edit started from.
    #[error("the minutes changed since revision {since}; reload them")]
    MinutesChanged {
        /// The revision the edit started from.
        since: i64,
    },
    /// The agreement moved on: a signature binds to the exact current text.
    #[error("the current agreement is version {version} with SHA-256 {sha256}")]
    AgreementStale {
        /// The current version.
        version: u32,
        /// Its hash.
        sha256: String,
    },

    // ---- checks ----
    /// Start-of-session checks are missing (or consents to the recording replacing minutes).
    #[error("checks missing: {}", list(missing))]
    ChecksMissing {
        /// Each missing check, with whom it is missing for.
        missing: Vec<MissingCheck>,
    },
    /// Nobody of the parties is present to start with.
    #[error("no party is present")]
    NoPartyPresent,

    // ---- invalid ----
    /// Someone in a role that may not do this (by the rules, beyond the permission matrix).
    #[error("{person} ({role}) may not {}", act.as_str())]
    RoleMayNot {
        /// Who.
        person: PersonId,
        /// Their name.
        name: String,
        /// Their role.
        role: Role,
        /// What they tried.
        act: Act,
    },
    /// A text is empty or too long.
    #[error("{}: 1 to {max} characters", field.as_str())]
    TextLength {
        /// Which field.
        field: Field,
        /// The most allowed.
        max: usize,
    },
    /// A number out of range.
    #[error("{}: {min} to {max}", field.as_str())]
    OutOfRange {
        /// Which field.
        field: Field,
        /// Lowest allowed.
        min: i64,
        /// Highest allowed.
        max: i64,
    },
    /// A new version with the same text.
    #[error("the text is the same as the current version")]
    SameText,
    /// Ground 1 is recorded as success.
    #[error("an agreement reached is recorded as success, not termination on ground 1")]
    GroundOneIsSuccess,
    /// Ground 7 is recorded by the party's own refusal.
    #[error("ground 7 is recorded by the party's own refusal to sign")]
    GroundSevenBySelf,
    /// A draft gives either the whole text or terms for the template.
    #[error("give either text or terms")]
    TextOrTerms,
    /// A template placeholder without its closing braces.
    #[error("template: '{{{{' without '}}}}'")]
    TemplateUnclosed,
    /// A template placeholder nobody knows.
    #[error("template: unknown placeholder {placeholder}")]
    TemplateUnknown {
        /// The placeholder's name.
        placeholder: String,
    },
    /// A person id that is not 1–64 letters, digits, `_ - . @`.
    #[error("person id {person:?}: 1-64 letters, digits, _ - . @")]
    BadPersonId {
        /// The id given.
        person: PersonId,
    },
    /// A party without a side.
    #[error("party {person} needs a side")]
    PartyNeedsSide {
        /// Who.
        person: PersonId,
        /// Their name.
        name: String,
    },
    /// An agent without a side or without the party represented.
    #[error("agent {person} needs a side and the party it represents")]
    AgentNeedsParty {
        /// Who.
        person: PersonId,
        /// Their name.
        name: String,
    },
    /// An admin is not a member of a case.
    #[error("an admin is not a member of a case")]
    AdminNotAMember,
    /// Someone is in the case already.
    #[error("{person} is already a member of this case")]
    AlreadyAMember {
        /// Who.
        person: PersonId,
        /// Their name.
        name: String,
    },
    /// A case has one mediator.
    #[error("a case has one mediator")]
    OneMediator,
    /// An agent on another side than its party.
    #[error("agent {person} must be on {party}'s side")]
    AgentOtherSide {
        /// The agent.
        person: PersonId,
        /// The agent's name.
        name: String,
        /// The party named.
        party: PersonId,
    },
    /// An agent naming someone who is not a party.
    #[error("agent {person}: {party} is not a party")]
    RepresentsNoParty {
        /// The agent.
        person: PersonId,
        /// The agent's name.
        name: String,
        /// The id named.
        party: PersonId,
    },
    /// A case needs a party on each side.
    #[error("a case needs at least one {} party", side.as_str())]
    CaseNeedsSide {
        /// The side without a party.
        side: super::place::Side,
    },
}

fn list(missing: &[MissingCheck]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl RuleError {
    /// What kind of refusal this is.
    pub fn kind(&self) -> RuleKind {
        use RuleError as R;
        match self {
            R::NoSuchSession { .. } | R::NotAMember { .. } => RuleKind::NotFound,
            R::MinutesStale { .. } | R::MinutesChanged { .. } | R::AgreementStale { .. } => {
                RuleKind::Stale
            }
            R::ChecksMissing { .. } | R::NoPartyPresent => RuleKind::ChecksMissing,
            R::RoleMayNot { .. }
            | R::TextLength { .. }
            | R::OutOfRange { .. }
            | R::SameText
            | R::GroundOneIsSuccess
            | R::GroundSevenBySelf
            | R::TextOrTerms
            | R::TemplateUnclosed
            | R::TemplateUnknown { .. }
            | R::BadPersonId { .. }
            | R::PartyNeedsSide { .. }
            | R::AgentNeedsParty { .. }
            | R::AdminNotAMember
            | R::AlreadyAMember { .. }
            | R::OneMediator
            | R::AgentOtherSide { .. }
            | R::RepresentsNoParty { .. }
            | R::CaseNeedsSide { .. } => RuleKind::Invalid,
            _ => RuleKind::State,
        }
    }

    /// The stable name of the reason (the `reason` of its wire form).
    pub fn reason(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("reason").and_then(|r| r.as_str().map(str::to_string)))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mediation::checks::Check;

    #[test]
    fn the_wire_form_is_tagged_by_reason_with_the_facts() {
        let e = RuleError::ChecksMissing {
            missing: vec![MissingCheck {
                person: "p-li".into(),
                name: "李四".into(),
                role: Role::Party,
                check: Check::IdentityNotVerified,
            }],
        };
        let v = serde_json::to_value(&e).expect("json");
        assert_eq!(v["reason"], "checks_missing");
        assert_eq!(v["missing"][0]["name"], "李四");
        assert_eq!(v["missing"][0]["check"], "identity_not_verified");
        assert_eq!(e.kind(), RuleKind::ChecksMissing);
        assert_eq!(e.to_string(), "checks missing: p-li: identity_not_verified");
        let e = RuleError::WrongPhase {
            session: 1,
            phase: Phase::Scheduled,
            needed: Phase::LobbyOpen,
        };
        assert_eq!(e.reason(), "wrong_phase");
        assert_eq!(
            serde_json::to_value(&e).expect("json")["phase"],
            "scheduled"
        );
    }
}

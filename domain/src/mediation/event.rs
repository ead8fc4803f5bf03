//! What happened in a case: the append-only record its state is folded from.

use super::case::{Member, Side, Stage};
use super::outcome::Outcome;
use super::place::Place;
use crate::ids::{PersonId, RoomName};
use crate::role::Role;
use serde::{Deserialize, Serialize};

/// How a person's identity was checked (ODR-Lit 7, ODR-Med 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityMethod {
    /// ID document shown on camera and compared with the face (证件比对).
    IdDocumentVideo,
    /// Face recognition against the national identity service (人脸识别).
    FaceRecognition,
    /// A court real-name account (e.g. 移动微法院) vouched for the person.
    CourtAccount,
    /// Checked in person, outside the platform (线下核验).
    Offline,
}

impl IdentityMethod {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityMethod::IdDocumentVideo => "id_document_video",
            IdentityMethod::FaceRecognition => "face_recognition",
            IdentityMethod::CourtAccount => "court_account",
            IdentityMethod::Offline => "offline",
        }
    }
}

/// What a party consents to (or refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSubject {
    /// Mediating online at all (ODR-Med 4).
    OnlineMediation,
    /// Being recorded.
    Recording,
    /// The recording replacing written minutes (ODR-Med 22).
    RecordingReplacesMinutes,
}

/// One thing that happened in a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CaseEvent {
    /// The case was opened.
    Opened {
        /// Case number.
        number: String,
        /// Cause of action.
        case_type: String,
        /// Claim, fen.
        claim_amount: i64,
        /// Procedure stage.
        stage: Stage,
        /// Members at opening (the mediator first).
        members: Vec<Member>,
    },
    /// A person joined the case (an assisting judge, an interpreter, ...).
    MemberAdded {
        /// Who.
        member: Member,
    },
    /// A session was scheduled; it meets in `room`.
    SessionScheduled {
        /// Session number within the case, from 1.
        session: u32,
        /// The room's name.
        room: RoomName,
        /// Planned start, Unix ms.
        scheduled_at: i64,
    },
    /// A personal join link was issued.
    InvitationIssued {
        /// Session.
        session: u32,
        /// For whom.
        person: PersonId,
        /// With which role.
        role: Role,
        /// Token id (for revocation).
        token_id: String,
        /// Expiry, Unix ms.
        expires_at: i64,
    },
    /// The lobby opened: people may come in and wait.
    LobbyOpened {
        /// Session.
        session: u32,
    },
    /// The mediator verified someone's identity.
    IdentityVerified {
        /// Session.
        session: u32,
        /// Whose identity.
        person: PersonId,
        /// How.
        method: IdentityMethod,
        /// Whether it matched.
        passed: bool,
        /// Free text (document number's last digits, where checked offline, ...).
        #[serde(default)]
        note: String,
    },
    /// A party consented or refused.
    ConsentRecorded {
        /// Session.
        session: u32,
        /// Who.
        person: PersonId,
        /// To what.
        subject: ConsentSubject,
        /// Yes or no.
        given: bool,
    },
    /// A party (or agent) read and acknowledged the warning on false mediation.
    WarningAcknowledged {
        /// Session.
        session: u32,
        /// Who.
        person: PersonId,
    },
    /// Checks done for everyone present: the session is in session.
    SessionStarted {
        /// Session.
        session: u32,
        /// Who was present.
        present: Vec<PersonId>,
    },
    /// One side was moved (into its private room or back to the joint room).
    SideMoved {
        /// Session.
        session: u32,
        /// Which side.
        side: Side,
        /// The joint room or the side's private room.
        to: Place,
    },
    /// The session ended.
    SessionEnded {
        /// Session.
        session: u32,
    },
    /// A party confirmed the minutes at one revision.
    MinutesConfirmed {
        /// Session.
        session: u32,
        /// Who.
        person: PersonId,
        /// The revision confirmed.
        revision: i64,
        /// SHA-256 of its canonical text.
        sha256: String,
    },
    /// With both parties' consent, the recording stands for the minutes.
    MinutesReplacedByRecording {
        /// Session.
        session: u32,
    },
    /// A new version of the agreement.
    AgreementDrafted {
        /// Version number, from 1.
        version: u32,
        /// Its text.
        text: String,
        /// SHA-256 of its canonical text.
        sha256: String,
    },
    /// Someone signed one version.
    AgreementSigned {
        /// Version signed.
        version: u32,
        /// Hash signed.
        sha256: String,
        /// Signer.
        person: PersonId,
        /// Signer's role.
        role: Role,
        /// How the signer's identity was confirmed.
        identity: String,
    },
    /// A party refused to sign.
    SigningRefused {
        /// Version refused.
        version: u32,
        /// Who.
        person: PersonId,
        /// Why (optional).
        #[serde(default)]
        reason: String,
    },
    /// The mediation's result.
    OutcomeRecorded {
        /// Success, failure or termination.
        outcome: Outcome,
    },
    /// The mediator proposed extending the time limit; each party answers.
    ExtensionProposed {
        /// Days proposed.
        days: i64,
    },
    /// A party answered the pending proposal (a refusal withdraws it).
    ExtensionAnswered {
        /// Who.
        person: PersonId,
        /// Agreed or not.
        agreed: bool,
    },
    /// The time limit was extended with every party's consent.
    DeadlineExtended {
        /// Days added.
        days: i64,
        /// The parties who consented (all of them).
        consented_by: Vec<PersonId>,
    },
    /// The time limit stopped (an appraisal started).
    DeadlinePaused {
        /// Why.
        reason: String,
    },
    /// The time limit runs again.
    DeadlineResumed,
    /// A party rated a session.
    Rated {
        /// Session.
        session: u32,
        /// Who.
        person: PersonId,
        /// 1–5.
        score: u8,
        /// Free text.
        #[serde(default)]
        comment: String,
    },
    /// A party applied for judicial confirmation (司法确认) of the agreement in effect.
    ConfirmationApplied {
        /// Who.
        person: PersonId,
    },
    /// Every party applied: the application went into the outbox for the court.
    ConfirmationSubmitted {
        /// The outbox message id.
        message_id: String,
        /// Agreement version applied for.
        version: u32,
        /// Its hash.
        sha256: String,
    },
    /// A party withdrew the application; the withdrawal went into the outbox.
    ConfirmationWithdrawn {
        /// The withdrawal's outbox message id.
        message_id: String,
        /// Who.
        person: PersonId,
    },
    /// The court's update on the application, taken from the court bridge.
    CourtUpdated {
        /// The update's message id (the inbox key).
        message_id: String,
        /// What the court did.
        #[schema(value_type = Object)]
        update: tiaojie_confirmation::CourtUpdate,
    },
}

impl CaseEvent {
    /// The stored kind (the serde tag).
    pub fn kind(&self) -> &'static str {
        match self {
            CaseEvent::Opened { .. } => "opened",
            CaseEvent::MemberAdded { .. } => "member_added",
            CaseEvent::SessionScheduled { .. } => "session_scheduled",
            CaseEvent::InvitationIssued { .. } => "invitation_issued",
            CaseEvent::LobbyOpened { .. } => "lobby_opened",
            CaseEvent::IdentityVerified { .. } => "identity_verified",
            CaseEvent::ConsentRecorded { .. } => "consent_recorded",
            CaseEvent::WarningAcknowledged { .. } => "warning_acknowledged",
            CaseEvent::SessionStarted { .. } => "session_started",
            CaseEvent::SideMoved { .. } => "side_moved",
            CaseEvent::SessionEnded { .. } => "session_ended",
            CaseEvent::MinutesConfirmed { .. } => "minutes_confirmed",
            CaseEvent::MinutesReplacedByRecording { .. } => "minutes_replaced_by_recording",
            CaseEvent::AgreementDrafted { .. } => "agreement_drafted",
            CaseEvent::AgreementSigned { .. } => "agreement_signed",
            CaseEvent::SigningRefused { .. } => "signing_refused",
            CaseEvent::OutcomeRecorded { .. } => "outcome_recorded",
            CaseEvent::ExtensionProposed { .. } => "extension_proposed",
            CaseEvent::ExtensionAnswered { .. } => "extension_answered",
            CaseEvent::DeadlineExtended { .. } => "deadline_extended",
            CaseEvent::DeadlinePaused { .. } => "deadline_paused",
            CaseEvent::DeadlineResumed => "deadline_resumed",
            CaseEvent::Rated { .. } => "rated",
            CaseEvent::ConfirmationApplied { .. } => "confirmation_applied",
            CaseEvent::ConfirmationSubmitted { .. } => "confirmation_submitted",
            CaseEvent::ConfirmationWithdrawn { .. } => "confirmation_withdrawn",
            CaseEvent::CourtUpdated { .. } => "court_updated",
        }
    }
}

/// An event as stored: its place in the case, when, and by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recorded {
    /// Position in the case's record, from 1.
    pub seq: i64,
    /// When, Unix ms.
    pub at: i64,
    /// Who did it (person id; `system` for the server).
    pub actor: PersonId,
    /// What.
    pub event: CaseEvent,
}

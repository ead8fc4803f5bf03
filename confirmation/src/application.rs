//! The application package (申请材料): everything the court needs to review a joint application
//! for judicial confirmation, as the internet side knew it when the last party applied.

use serde::{Deserialize, Serialize};

/// The joint application of the parties.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    /// Case number (案号).
    pub case_number: String,
    /// Cause of action (案由).
    pub case_type: String,
    /// Claim amount in fen.
    pub claim_amount: i64,
    /// The mediator.
    pub mediator: Person,
    /// The parties and their agents.
    pub members: Vec<Member>,
    /// The agreement in effect.
    pub agreement: Agreement,
    /// Every signature on that version.
    pub signatures: Vec<Signature>,
    /// Every identity check recorded in the case's sessions.
    pub identity_checks: Vec<IdentityCheck>,
    /// Head hashes of the signed manifests of the case's recordings.
    pub recordings: Vec<RecordingHead>,
    /// Each party's application, in order.
    pub applicants: Vec<Applicant>,
    /// Each session's minutes as they stood, with the parties' confirmations (absent from
    /// packages made before minutes crossed).
    #[serde(default)]
    pub minutes: Vec<SessionMinutes>,
    /// Each consent given or refused, and each acknowledgement of the false-mediation
    /// warning, in each session (ODR-Med 4; absent from older packages).
    #[serde(default)]
    pub consents: Vec<ConsentRecord>,
}

/// One session's minutes (调解笔录) as the application carried them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionMinutes {
    /// The session.
    pub session: u32,
    /// The revision carried (0: nothing was written).
    pub revision: i64,
    /// Its text.
    pub text: String,
    /// SHA-256 of its canonical text.
    pub sha256: String,
    /// With every party's consent, the recording stands for these minutes.
    pub replaced_by_recording: bool,
    /// Parties' confirmations of a revision.
    pub confirmations: Vec<MinutesConfirmation>,
}

/// A party confirmed the minutes at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinutesConfirmation {
    /// Who.
    pub person: String,
    /// The revision confirmed.
    pub revision: i64,
    /// When, Unix ms.
    pub at: i64,
}

/// A consent, a refusal, or the warning acknowledged, in one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRecord {
    /// The session.
    pub session: u32,
    /// Who.
    pub person: String,
    /// `online_mediation`, `recording`, `recording_replaces_minutes`, or
    /// `warning_acknowledged`.
    pub subject: String,
    /// Given (always true for the warning).
    pub given: bool,
    /// When, Unix ms.
    pub at: i64,
}

/// A person: id and display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Person id.
    pub id: String,
    /// Name.
    pub name: String,
}

/// A party or an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Person id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `party` or `agent`.
    pub role: String,
    /// `applicant` or `respondent`.
    pub side: String,
    /// For an agent: the party represented.
    pub represents: Option<String>,
}

/// The agreement text as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    /// Version number.
    pub version: u32,
    /// The canonical text.
    pub text: String,
    /// SHA-256 of the canonical text, hex: results come back bound to it.
    pub sha256: String,
    /// Took effect (last signature), Unix ms.
    pub effective_at: i64,
}

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Signer's person id.
    pub person: String,
    /// Signer's name.
    pub name: String,
    /// Signer's role.
    pub role: String,
    /// Signed at, Unix ms.
    pub at: i64,
    /// The hash the signer was shown and signed.
    pub sha256: String,
    /// How the signer's identity was confirmed.
    pub identity: String,
}

/// One identity check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityCheck {
    /// The session it was made in.
    pub session: u32,
    /// Whose identity.
    pub person: String,
    /// Method.
    pub method: String,
    /// Passed or not.
    pub passed: bool,
    /// Who checked.
    pub by: String,
    /// When, Unix ms.
    pub at: i64,
    /// Note (offline checks).
    pub note: String,
}

/// A recording's signed manifest head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingHead {
    /// Recording id.
    pub recording: String,
    /// The room (session) recorded.
    pub room: String,
    /// Head of the manifest's hash chain.
    pub chain_head: String,
}

/// One party's application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applicant {
    /// The party.
    pub person: String,
    /// Applied at, Unix ms.
    pub at: i64,
}

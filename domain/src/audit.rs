//! The audit log: what is recorded of who did what ([`AuditAction`], one name per act), its
//! entries, and their hash chain's verification.

use crate::permission::{Action, rule_for};
use serde::{Deserialize, Serialize};

/// What an audit entry records. Acts the permission matrix names (case commands and reads,
/// `docs/permissions.md`) carry the matrix's own name; the others are acts on live rooms,
/// people, recordings, links and the court link that the matrix does not list separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// An act the permission matrix names (its rule's name, e.g. `session.schedule`).
    Act(Action),
    /// A request the permission matrix or a case's membership refused.
    PermissionDenied,
    /// A room closed by an admin.
    RoomClose,
    /// A room's recording policy changed.
    RoomRecordingPolicy,
    /// A person's microphone or camera turned off (or allowed again) by a moderator.
    PersonMute,
    /// A person removed from a room.
    PersonRemove,
    /// A removed person let back in.
    PersonReadmit,
    /// A person moved between the lobby, the joint room and a private room.
    PersonMove,
    /// A person's grants changed.
    PersonGrants,
    /// A join link or API token issued.
    TokenIssue,
    /// Recordings listed.
    RecordingList,
    /// A recording's file downloaded.
    RecordingDownload,
    /// A recording refused to someone.
    RecordingDenied,
    /// A recording deleted (by an admin, or by retention).
    RecordingDelete,
    /// Recording started.
    RecordingStart,
    /// Recording paused.
    RecordingPause,
    /// Recording resumed.
    RecordingResume,
    /// Recording stopped.
    RecordingStop,
    /// The minutes' PDF downloaded.
    MinutesDownload,
    /// The agreement's PDF downloaded.
    AgreementDownload,
    /// The court's ruling document downloaded.
    RulingDownload,
    /// The court's update on a case applied.
    CourtUpdate,
    /// A dead-lettered confirmation message sent again.
    ConfirmationRetry,
}

impl AuditAction {
    /// The name stored in the log (stable: verification and readers depend on it).
    pub fn as_str(self) -> &'static str {
        use AuditAction::*;
        match self {
            Act(action) => rule_for(action).name,
            PermissionDenied => "permission.denied",
            RoomClose => "room.close",
            RoomRecordingPolicy => "room.recording_policy",
            PersonMute => "person.mute",
            PersonRemove => "person.remove",
            PersonReadmit => "person.readmit",
            PersonMove => "person.move",
            PersonGrants => "person.grants",
            TokenIssue => "token.issue",
            RecordingList => "recording.list",
            RecordingDownload => "recording.download",
            RecordingDenied => "recording.denied",
            RecordingDelete => "recording.delete",
            RecordingStart => "recording.start",
            RecordingPause => "recording.pause",
            RecordingResume => "recording.resume",
            RecordingStop => "recording.stop",
            MinutesDownload => "minutes.download",
            AgreementDownload => "agreement.download",
            RulingDownload => "ruling.download",
            CourtUpdate => "confirmation.court_update",
            ConfirmationRetry => "confirmation.retry",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `prev_hash` of the first audit entry.
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One line of the audit log: who did what to what, when. The log is a hash chain: `hash`
/// commits to this entry's fields and to `prev_hash`, the entry before it, so an edited,
/// removed or inserted row breaks the chain where it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// When, Unix milliseconds.
    pub at: i64,
    /// Who: a token's identity, or `system` (e.g. retention).
    pub actor: String,
    /// Their role.
    pub role: String,
    /// What: an [`AuditAction`]'s name (stored as text: the log outlives any one version).
    pub action: String,
    /// On what: e.g. `recording:<id>`, `room:<name>`.
    pub target: String,
    /// Details (a file name, a reason).
    pub detail: String,
    /// The previous entry's hash ([`AUDIT_GENESIS`] for the first); set when stored.
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 (hex) of this entry's fields and `prev_hash`; set when stored.
    #[serde(default)]
    pub hash: String,
}

impl AuditEntry {
    /// An entry to append (its id and hashes are set when stored).
    pub fn new(
        at: i64,
        actor: &str,
        role: &str,
        action: AuditAction,
        target: &str,
        detail: &str,
    ) -> Self {
        AuditEntry {
            id: 0,
            at,
            actor: actor.into(),
            role: role.into(),
            action: action.as_str().into(),
            target: target.into(),
            detail: detail.into(),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    /// The hash this entry should carry: SHA-256 over every field but `id` and `hash`, each
    /// length-prefixed so no two different entries serialise alike.
    pub fn compute_hash(&self) -> String {
        use std::fmt::Write;
        let mut text = String::from("tiaojie audit v1\n");
        for field in [
            self.at.to_string().as_str(),
            &self.actor,
            &self.role,
            &self.action,
            &self.target,
            &self.detail,
            &self.prev_hash,
        ] {
            let _ = writeln!(text, "{}:{field}", field.len());
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
        digest
            .as_ref()
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

/// What verifying the audit chain found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditVerification {
    /// Entries read.
    pub entries: u64,
    /// The last entry's hash.
    pub head: String,
    /// Every break, oldest first; empty: the log is intact.
    pub problems: Vec<AuditProblem>,
}

/// One break in the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditProblem {
    /// The row.
    pub id: i64,
    /// What is wrong: its content no longer gives its hash (edited), or it does not follow
    /// the row before it (a row was removed or inserted before it).
    pub what: String,
}

/// Checks a chain of entries (in id order).
pub fn verify_audit(entries: &[AuditEntry]) -> AuditVerification {
    let mut out = AuditVerification {
        entries: entries.len() as u64,
        head: entries.last().map(|e| e.hash.clone()).unwrap_or_default(),
        problems: Vec::new(),
    };
    let mut prev = AUDIT_GENESIS.to_string();
    for e in entries {
        if e.compute_hash() != e.hash {
            out.problems.push(AuditProblem {
                id: e.id,
                what: "edited: its content does not give its hash".into(),
            });
        }
        if e.prev_hash != prev {
            out.problems.push(AuditProblem {
                id: e.id,
                what: "does not follow the entry before it: an entry was removed or inserted"
                    .into(),
            });
        }
        prev = e.hash.clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_chain_names_an_edited_or_removed_entry() {
        let mut chain = Vec::new();
        let mut prev = AUDIT_GENESIS.to_string();
        for (i, action) in [
            AuditAction::Act(Action::RecordingRead),
            AuditAction::RecordingDownload,
            AuditAction::RecordingDelete,
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = AuditEntry::new(i as i64, "m", "mediator", action, "recording:x", "");
            e.id = i as i64 + 1;
            e.prev_hash = prev;
            e.hash = e.compute_hash();
            prev = e.hash.clone();
            chain.push(e);
        }
        assert!(verify_audit(&chain).problems.is_empty());
        let mut edited = chain.clone();
        edited[1].detail = "x".into();
        let found = verify_audit(&edited).problems;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, 2);
        let mut removed = chain.clone();
        removed.remove(1);
        let found = verify_audit(&removed).problems;
        assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn every_action_has_its_own_name() {
        use AuditAction::*;
        let mut all: Vec<AuditAction> = crate::permission::MATRIX
            .iter()
            .map(|r| Act(r.action))
            .collect();
        all.extend([
            PermissionDenied,
            RoomClose,
            RoomRecordingPolicy,
            PersonMute,
            PersonRemove,
            PersonReadmit,
            PersonMove,
            PersonGrants,
            TokenIssue,
            RecordingList,
            RecordingDownload,
            RecordingDenied,
            RecordingDelete,
            RecordingStart,
            RecordingPause,
            RecordingResume,
            RecordingStop,
            MinutesDownload,
            AgreementDownload,
            RulingDownload,
            CourtUpdate,
            ConfirmationRetry,
        ]);
        let mut names: Vec<&str> = all.iter().map(|a| a.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "two actions share a name");
        assert_eq!(AuditAction::Act(Action::CaseCreate).as_str(), "case.create");
    }
}

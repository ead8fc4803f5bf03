//! What a session's recording may capture (录音录像), and the audit log's entries.
//!
//! A room's recording policy is data: `off`, `audio` or `audio_video`. The server's
//! configuration sets the most any room may allow; a room may allow less; the mediator starts
//! recording in any mode the room allows.

use serde::{Deserialize, Serialize};

/// What is recorded.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMode {
    /// Nothing.
    Off,
    /// Sound only (录音).
    Audio,
    /// Sound and pictures (录音录像).
    AudioVideo,
}

impl RecordingMode {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingMode::Off => "off",
            RecordingMode::Audio => "audio",
            RecordingMode::AudioVideo => "audio_video",
        }
    }
}

impl std::str::FromStr for RecordingMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(RecordingMode::Off),
            "audio" => Ok(RecordingMode::Audio),
            "audio_video" => Ok(RecordingMode::AudioVideo),
            other => Err(format!(
                "recording mode {other:?}: use off, audio or audio_video"
            )),
        }
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
    /// What: e.g. `recording.list`, `recording.read`, `recording.download`, `recording.delete`.
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
    pub fn new(at: i64, actor: &str, role: &str, action: &str, target: &str, detail: &str) -> Self {
        AuditEntry {
            id: 0,
            at,
            actor: actor.into(),
            role: role.into(),
            action: action.into(),
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
        for (i, action) in ["recording.read", "recording.download", "recording.delete"]
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
    fn modes_order_and_parse() {
        assert!(RecordingMode::Off < RecordingMode::Audio);
        assert!(RecordingMode::Audio < RecordingMode::AudioVideo);
        for m in [
            RecordingMode::Off,
            RecordingMode::Audio,
            RecordingMode::AudioVideo,
        ] {
            assert_eq!(m.as_str().parse::<RecordingMode>(), Ok(m));
        }
        assert!("video".parse::<RecordingMode>().is_err());
    }
}

//! Unguessable identifiers (token ids, resume tokens, message ids, new case ids and session
//! room names) from the system's CSPRNG.

use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tiaojie_domain::{CaseId, RoomName};

/// `bytes` random bytes as URL-safe base64.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The system RNG failing is an unrecoverable platform fault; there is no safe fallback.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("system random number generator failed");
    URL_SAFE_NO_PAD.encode(buf)
}

/// A 128-bit random id.
pub fn random_id() -> String {
    random_token(16)
}

/// A new case id: `c` and 22 characters, every one the same length.
pub fn case_id() -> CaseId {
    CaseId::from(format!("c{}", random_id().to_lowercase()))
}

/// A new session room of `case`: `<case id>-<random>`, so that a case's live rooms are found
/// by their names (see [`RoomName::is_session_room_of`]).
pub fn session_room(case: &CaseId) -> RoomName {
    RoomName::from(format!("{case}-{}", random_id().to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_room_names_its_case_and_no_other() {
        let (a, b) = (case_id(), case_id());
        assert_eq!(a.as_str().len(), b.as_str().len());
        let room = session_room(&a);
        assert!(room.is_session_room_of(&a));
        assert!(!room.is_session_room_of(&b));
        assert!(
            !RoomName::from(a.as_str()).is_session_room_of(&a),
            "the case id itself is no room"
        );
        assert!(!RoomName::from("s1").is_session_room_of(&a));
    }
}

//! Unguessable identifiers (token ids, resume tokens, message ids) from the system's CSPRNG.

use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
pub fn case_id() -> String {
    format!("c{}", random_id().to_lowercase())
}

/// A new session room of `case`: `<case id>-<random>`, so that a case's live rooms are found
/// by their names (see [`is_session_room_of`]).
pub fn session_room(case: &str) -> String {
    format!("{case}-{}", random_id().to_lowercase())
}

/// Whether `room` is one of `case`'s session rooms. Unambiguous: case ids have one length.
pub fn is_session_room_of(room: &str, case: &str) -> bool {
    room.strip_prefix(case)
        .is_some_and(|rest| rest.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_room_names_its_case_and_no_other() {
        let (a, b) = (case_id(), case_id());
        assert_eq!(a.len(), b.len());
        let room = session_room(&a);
        assert!(is_session_room_of(&room, &a));
        assert!(!is_session_room_of(&room, &b));
        assert!(!is_session_room_of(&a, &a), "the case id itself is no room");
        assert!(!is_session_room_of("s1", &a));
    }
}

//! Typed ids: a room's name, a person's id, a case's id.
//!
//! Each is the same text on the wire, in tokens and in the database (`serde(transparent)`); the
//! type is for the code, so that a function taking a room cannot be handed a person. A value
//! is taken as it comes (`From`, `Deserialize`) and checked where people type it (`check`: a
//! room's creator, a case's opener, a token's issuer); a signed token or a stored row carries
//! one that was checked when it was made.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
            utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[schema(value_type = String)]
        pub struct $name(String);

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        // Debug is the text's, quoted: messages that quote an id read as they did with strings.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

text_id! {
    /// A room's name: unique, chosen by its creator (a case's session rooms are
    /// `<case id>-<random>`), named by join tokens; 1–128 letters, digits, `-`, `_`, `.`, `:`.
    RoomName
}

text_id! {
    /// A person's id: the subject of their tokens, a case member's stable id, the author of an
    /// act; 1–64 characters of letters, digits, `_`, `-`, `.`, `@`.
    PersonId
}

text_id! {
    /// A case's id (`c` and 22 characters when the server makes it).
    CaseId
}

impl RoomName {
    /// Longest room name accepted.
    pub const MAX_LEN: usize = 128;

    /// Whether it is a name a room may have: 1–128 letters (CJK too), digits, `-`, `_`, `.`,
    /// `:`, not starting with `.` — names appear in URLs, logs and file paths, so they stay
    /// plain. The error says why, in English, for the operator who typed it.
    pub fn check(&self) -> Result<(), String> {
        let name = self.as_str();
        if name.is_empty() || name.chars().count() > Self::MAX_LEN {
            return Err(format!(
                "room name must be 1 to {} characters",
                Self::MAX_LEN
            ));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(format!("room name may not contain {c:?}"));
        }
        if name.starts_with('.') {
            return Err("room name may not start with '.'".into());
        }
        Ok(())
    }

    /// Whether this is one of `case`'s session rooms (`<case id>-…`). Unambiguous while case
    /// ids have one length.
    pub fn is_session_room_of(&self, case: &CaseId) -> bool {
        self.0
            .strip_prefix(case.as_str())
            .is_some_and(|rest| rest.starts_with('-'))
    }
}

impl PersonId {
    /// Whether it is an id a person may have: 1–64 characters of ASCII letters, digits, `_`,
    /// `-`, `.`, `@`.
    pub fn is_well_formed(&self) -> bool {
        let id = self.as_str();
        !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_their_text_on_the_wire() {
        let room = RoomName::from("case-1.s1");
        assert_eq!(serde_json::to_string(&room).unwrap(), "\"case-1.s1\"");
        let back: PersonId = serde_json::from_str("\"alice\"").unwrap();
        assert_eq!(back, "alice");
    }

    #[test]
    fn typed_text_is_checked_where_people_type_it() {
        for good in ["case-2026-0012.s1", "调解室1"] {
            assert!(RoomName::from(good).check().is_ok(), "{good}");
        }
        for bad in ["", "../etc", "a b", ".hidden", &"x".repeat(129)] {
            assert!(RoomName::from(bad).check().is_err(), "{bad}");
        }
        assert!(PersonId::from("alice@court").is_well_formed());
        assert!(!PersonId::from("a b").is_well_formed());
        assert!(!PersonId::from("").is_well_formed());
        assert!(!PersonId::from("x".repeat(65)).is_well_formed());
    }

    #[test]
    fn a_session_room_names_its_case_and_no_other() {
        let case = CaseId::from("cabc");
        assert!(RoomName::from("cabc-x1").is_session_room_of(&case));
        assert!(!RoomName::from("cabcd-x1").is_session_room_of(&case));
        assert!(!RoomName::from("cabc").is_session_room_of(&case));
    }
}

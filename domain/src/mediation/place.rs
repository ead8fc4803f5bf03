//! Where a person stands in a session's room: the lobby, the joint room, or one side's private
//! room (背对背). One type for the rules, the live rooms, the media policy's mapping and the
//! wire, whose text is `lobby`, `joint`, `private:applicant` or `private:respondent`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Which side of the dispute a party (and its agent) is on.
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
pub enum Side {
    /// 申请人 / 原告.
    Applicant,
    /// 被申请人 / 被告.
    Respondent,
}

impl Side {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Applicant => "applicant",
            Side::Respondent => "respondent",
        }
    }

    /// The Chinese label used in documents.
    pub fn label(self) -> &'static str {
        match self {
            Side::Applicant => "申请人",
            Side::Respondent => "被申请人",
        }
    }
}

/// A place in a session's room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    /// Waiting to be let in: sees and hears nobody, and nobody sees or hears them.
    Lobby,
    /// The joint session: everyone in it sees and hears everyone in it.
    Joint,
    /// A side's private room: that side's party and agents, with the mediator (and an
    /// assisting judge) when they go there.
    Private(Side),
}

impl Place {
    /// Every place.
    pub const ALL: [Place; 4] = [
        Place::Lobby,
        Place::Joint,
        Place::Private(Side::Applicant),
        Place::Private(Side::Respondent),
    ];

    /// The wire text.
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Lobby => "lobby",
            Place::Joint => "joint",
            Place::Private(Side::Applicant) => "private:applicant",
            Place::Private(Side::Respondent) => "private:respondent",
        }
    }

    /// Reads the wire text.
    pub fn parse(text: &str) -> Option<Place> {
        Place::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// A side's private room.
    pub fn is_private(self) -> bool {
        matches!(self, Place::Private(_))
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Place {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Place {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Place, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Place::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "place {text:?}: lobby, joint, private:applicant or private:respondent"
            ))
        })
    }
}

impl utoipa::PartialSchema for Place {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Place::ALL.map(Place::as_str)))
            .description(Some(
                "Where a person stands: the lobby, the joint room, or a side's private room.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Place {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_round_trip_their_wire_text_and_nothing_else_parses() {
        for place in Place::ALL {
            let json = serde_json::to_string(&place).expect("serialises");
            assert_eq!(json, format!("\"{}\"", place.as_str()));
            assert_eq!(serde_json::from_str::<Place>(&json).expect("parses"), place);
        }
        for bad in ["", "hall", "private:", "private:side-b", "Joint", "private"] {
            assert_eq!(Place::parse(bad), None, "{bad}");
            assert!(serde_json::from_str::<Place>(&format!("\"{bad}\"")).is_err());
        }
    }
}

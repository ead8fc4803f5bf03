//! Roles and grants.
//!
//! A person holds a role per room; the role decides the default grants. Grants are what the
//! server checks: a token may carry fewer (an observer-like party) or, by an admin's choice,
//! different grants than the role's defaults, and an admin may change grants live.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A person's role in one room (DOMAIN.md, "Who uses it").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// 调解员: runs the session.
    Mediator,
    /// 当事人: a side of the dispute.
    Party,
    /// 代理人: a party's lawyer.
    Agent,
    /// 法官: assists, or verifies for judicial confirmation.
    Judge,
    /// 旁听: watches and listens, publishes nothing.
    Observer,
    /// 管理员: the court's operator.
    Admin,
}

impl Role {
    /// Every role, in the order the documentation lists them.
    pub const ALL: [Role; 6] = [
        Role::Mediator,
        Role::Party,
        Role::Agent,
        Role::Judge,
        Role::Observer,
        Role::Admin,
    ];

    /// The lowercase name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Mediator => "mediator",
            Role::Party => "party",
            Role::Agent => "agent",
            Role::Judge => "judge",
            Role::Observer => "observer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown role {s:?} (one of mediator, party, agent, judge, observer, admin)"
                )
            })
    }
}

/// A permission a token carries.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Grant {
    /// Send audio/video into the room.
    Publish,
    /// Receive others' audio/video.
    Subscribe,
    /// Mute or remove others, admit from the lobby.
    Moderate,
    /// Start and stop recording.
    Record,
    /// Use the control API.
    Admin,
}

impl Grant {
    /// Every grant.
    pub const ALL: [Grant; 5] = [
        Grant::Publish,
        Grant::Subscribe,
        Grant::Moderate,
        Grant::Record,
        Grant::Admin,
    ];

    /// The lowercase name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Publish => "publish",
            Grant::Subscribe => "subscribe",
            Grant::Moderate => "moderate",
            Grant::Record => "record",
            Grant::Admin => "admin",
        }
    }
}

impl FromStr for Grant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Grant::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                format!("unknown grant {s:?} (one of publish, subscribe, moderate, record, admin)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
            assert_eq!(
                serde_json::to_string(&r).ok(),
                Some(format!("\"{}\"", r.as_str()))
            );
        }
        for g in Grant::ALL {
            assert_eq!(g.as_str().parse::<Grant>(), Ok(g));
        }
        assert!("judge ".parse::<Role>().is_err());
    }
}

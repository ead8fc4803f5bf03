//! A case: what the dispute is and who takes part in it.

use crate::role::Role;
use serde::{Deserialize, Serialize};

/// Where the case stands in the court's procedure; it decides the mediation time limit
/// (ODR-Med 24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// 诉前调解: before filing (30 days).
    PreFiling,
    /// 诉中调解, ordinary procedure (15 days).
    Ordinary,
    /// 诉中调解, simple procedure (7 days).
    Simple,
}

/// Which side of the dispute a party (and its agent) is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

    /// The private room (media space) of this side.
    pub fn private_room(self) -> String {
        format!("private:{}", self.as_str())
    }

    /// The Chinese label used in documents.
    pub fn label(self) -> &'static str {
        match self {
            Side::Applicant => "申请人",
            Side::Respondent => "被申请人",
        }
    }
}

/// A person in a case. `id` is the identity their join tokens carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    /// Stable id within the case (the token subject).
    pub id: String,
    /// Full name as shown in documents.
    pub name: String,
    /// Role in this case.
    pub role: Role,
    /// The side of a party or agent; none for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// For an agent: the party represented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub represents: Option<String>,
}

/// What opening a case needs.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCase {
    /// The court's case number, e.g. `(2026)京0105民诉前调1234号`; unique.
    pub number: String,
    /// Cause of action, e.g. `买卖合同纠纷`.
    pub case_type: String,
    /// Amount claimed in fen (1/100 yuan).
    pub claim_amount: i64,
    /// Procedure stage (time limit).
    pub stage: Stage,
    /// The mediator's person id and name (the mediator is a member too).
    pub mediator: Member,
    /// Parties and agents (and others known at opening).
    pub members: Vec<Member>,
}

/// Longest free-text field accepted in a case.
pub const MAX_TEXT: usize = 200;

/// Checks a person id: 1–64 characters of letters, digits, `_ - . @`.
pub fn validate_person_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "person id {id:?} must be 1-64 letters, digits, _ - . @"
        ))
    }
}

/// Checks a member on its own (not against the case).
pub fn validate_member(m: &Member) -> Result<(), String> {
    validate_person_id(&m.id)?;
    if m.name.trim().is_empty() || m.name.chars().count() > MAX_TEXT {
        return Err(format!("{}: a name of 1-{MAX_TEXT} characters", m.id));
    }
    match m.role {
        Role::Party if m.side.is_none() => Err(format!("party {} needs a side", m.id)),
        Role::Agent if m.side.is_none() || m.represents.is_none() => Err(format!(
            "agent {} needs a side and the party it represents",
            m.id
        )),
        Role::Admin => Err("an admin is not a member of a case".into()),
        _ => Ok(()),
    }
}

/// Checks a new member against the members a case already has.
pub fn validate_addition(existing: &[Member], m: &Member) -> Result<(), String> {
    validate_member(m)?;
    if existing.iter().any(|e| e.id == m.id) {
        return Err(format!("{} is already a member of this case", m.id));
    }
    if m.role == Role::Mediator {
        return Err("a case has one mediator".into());
    }
    if let Some(party) = &m.represents {
        let represented = existing
            .iter()
            .find(|e| &e.id == party && e.role == Role::Party);
        match represented {
            Some(p) if p.side == m.side => {}
            Some(_) => return Err(format!("agent {} must be on {party}'s side", m.id)),
            None => return Err(format!("agent {}: {party} is not a party", m.id)),
        }
    }
    Ok(())
}

/// Checks a whole new case: fields, members, one party per side at least.
pub fn validate_new_case(new: &NewCase) -> Result<Vec<Member>, String> {
    if new.number.trim().is_empty() || new.number.chars().count() > MAX_TEXT {
        return Err(format!("number: 1-{MAX_TEXT} characters"));
    }
    if new.case_type.trim().is_empty() || new.case_type.chars().count() > MAX_TEXT {
        return Err(format!("case_type: 1-{MAX_TEXT} characters"));
    }
    if new.claim_amount < 0 {
        return Err("claim_amount (fen) must not be negative".into());
    }
    if new.members.len() > 50 {
        return Err("at most 50 members".into());
    }
    let mut mediator = new.mediator.clone();
    mediator.role = Role::Mediator;
    mediator.side = None;
    mediator.represents = None;
    validate_member(&mediator)?;
    let mut members = vec![mediator];
    // Parties first, so agents can name them in any order.
    let (parties, others): (Vec<&Member>, Vec<&Member>) =
        new.members.iter().partition(|m| m.role == Role::Party);
    for m in parties.into_iter().chain(others) {
        validate_addition(&members, m)?;
        members.push(m.clone());
    }
    for side in [Side::Applicant, Side::Respondent] {
        if !members
            .iter()
            .any(|m| m.role == Role::Party && m.side == Some(side))
        {
            return Err(format!("a case needs at least one {} party", side.as_str()));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, role: Role, side: Option<Side>, represents: Option<&str>) -> Member {
        Member {
            id: id.into(),
            name: format!("{id} 名"),
            role,
            side,
            represents: represents.map(str::to_string),
        }
    }

    #[test]
    fn a_case_needs_both_sides_and_agents_need_their_party() {
        let mut new = NewCase {
            number: "(2026)京0105民诉前调1号".into(),
            case_type: "买卖合同纠纷".into(),
            claim_amount: 1_000_000,
            stage: Stage::PreFiling,
            mediator: member("med", Role::Mediator, None, None),
            members: vec![
                member("lawyer", Role::Agent, Some(Side::Applicant), Some("p1")),
                member("p1", Role::Party, Some(Side::Applicant), None),
            ],
        };
        assert!(validate_new_case(&new).unwrap_err().contains("respondent"));
        new.members
            .push(member("p2", Role::Party, Some(Side::Respondent), None));
        assert_eq!(validate_new_case(&new).map(|m| m.len()), Ok(4));
        new.members[0].side = Some(Side::Respondent);
        assert!(validate_new_case(&new).unwrap_err().contains("side"));
        new.members[0].side = Some(Side::Applicant);
        new.members.push(member("p2", Role::Judge, None, None));
        assert!(validate_new_case(&new).unwrap_err().contains("already"));
    }
}

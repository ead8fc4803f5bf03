//! A case: what the dispute is and who takes part in it.

use super::error::{Field, RuleError};
pub use super::place::Side;
use crate::ids::PersonId;
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

/// A person in a case. `id` is the identity their join tokens carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Member {
    /// Stable id within the case (the token subject).
    pub id: PersonId,
    /// Full name as shown in documents.
    pub name: String,
    /// Role in this case.
    pub role: Role,
    /// The side of a party or agent; none for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// For an agent: the party represented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub represents: Option<PersonId>,
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

/// Checks a person id ([`PersonId::is_well_formed`]).
pub fn validate_person_id(id: &PersonId) -> Result<(), RuleError> {
    if id.is_well_formed() {
        Ok(())
    } else {
        Err(RuleError::BadPersonId { person: id.clone() })
    }
}

/// Checks a member on its own (not against the case).
pub fn validate_member(m: &Member) -> Result<(), RuleError> {
    validate_person_id(&m.id)?;
    if m.name.trim().is_empty() || m.name.chars().count() > MAX_TEXT {
        return Err(RuleError::TextLength {
            field: Field::Name,
            max: MAX_TEXT,
        });
    }
    let who = || (m.id.clone(), m.name.clone());
    match m.role {
        Role::Party if m.side.is_none() => {
            let (person, name) = who();
            Err(RuleError::PartyNeedsSide { person, name })
        }
        Role::Agent if m.side.is_none() || m.represents.is_none() => {
            let (person, name) = who();
            Err(RuleError::AgentNeedsParty { person, name })
        }
        Role::Admin => Err(RuleError::AdminNotAMember),
        _ => Ok(()),
    }
}

/// Checks a new member against the members a case already has.
pub fn validate_addition(existing: &[Member], m: &Member) -> Result<(), RuleError> {
    validate_member(m)?;
    if existing.iter().any(|e| e.id == m.id) {
        return Err(RuleError::AlreadyAMember {
            person: m.id.clone(),
            name: m.name.clone(),
        });
    }
    if m.role == Role::Mediator {
        return Err(RuleError::OneMediator);
    }
    if let Some(party) = &m.represents {
        let represented = existing
            .iter()
            .find(|e| &e.id == party && e.role == Role::Party);
        match represented {
            Some(p) if p.side == m.side => {}
            Some(_) => {
                return Err(RuleError::AgentOtherSide {
                    person: m.id.clone(),
                    name: m.name.clone(),
                    party: party.clone(),
                });
            }
            None => {
                return Err(RuleError::RepresentsNoParty {
                    person: m.id.clone(),
                    name: m.name.clone(),
                    party: party.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The most members a case takes at opening.
pub const MAX_MEMBERS: usize = 50;

/// Checks a whole new case: fields, members, one party per side at least.
pub fn validate_new_case(new: &NewCase) -> Result<Vec<Member>, RuleError> {
    for (field, text) in [
        (Field::Number, &new.number),
        (Field::CaseType, &new.case_type),
    ] {
        if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
            return Err(RuleError::TextLength {
                field,
                max: MAX_TEXT,
            });
        }
    }
    if new.claim_amount < 0 {
        return Err(RuleError::OutOfRange {
            field: Field::ClaimAmount,
            min: 0,
            max: i64::MAX,
        });
    }
    if new.members.len() > MAX_MEMBERS {
        return Err(RuleError::OutOfRange {
            field: Field::Members,
            min: 2,
            max: MAX_MEMBERS as i64,
        });
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
            return Err(RuleError::CaseNeedsSide { side });
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
            represents: represents.map(str::to_string).map(PersonId::from),
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
        assert_eq!(
            validate_new_case(&new).unwrap_err(),
            RuleError::CaseNeedsSide {
                side: Side::Respondent
            }
        );
        new.members
            .push(member("p2", Role::Party, Some(Side::Respondent), None));
        assert_eq!(validate_new_case(&new).map(|m| m.len()), Ok(4));
        new.members[0].side = Some(Side::Respondent);
        assert!(matches!(
            validate_new_case(&new),
            Err(RuleError::AgentOtherSide { .. })
        ));
        new.members[0].side = Some(Side::Applicant);
        new.members.push(member("p2", Role::Judge, None, None));
        assert!(matches!(
            validate_new_case(&new),
            Err(RuleError::AlreadyAMember { .. })
        ));
    }
}

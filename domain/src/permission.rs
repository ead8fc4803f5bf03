//! The permission matrix: which role may do what, in one table.
//!
//! Every API handler and signaling message names its [`Action`] and asks [`check`]; nothing else
//! decides by role. A rule has a role list and a [`Scope`]: the role is necessary, the scope says
//! what else must hold (the caller is a member of the case; the caller acts for themself only).
//! Signaling grants' defaults ([`default_grants`]) come from the same table, and
//! `docs/permissions.md` is generated from it (a test keeps the two equal).

use crate::ids::PersonId;
use crate::role::{Grant, Role};
use serde::Serialize;

/// Something a person asks the server to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send audio/video into a room, or share a screen there (the `publish` grant).
    MediaPublish,
    /// Receive others' audio/video (the `subscribe` grant).
    MediaSubscribe,
    /// Admit, mute, remove and move people in a live room (the `moderate` grant).
    RoomModerate,
    /// Start, pause and stop a room's recording (the `record` grant).
    RecordingControl,
    /// Read and download a room's recordings.
    RecordingRead,
    /// The control API: rooms, tokens, keys, retention (the `admin` grant).
    ControlApi,
    /// Read the audit log and verify its chain.
    AuditRead,
    /// Open a case.
    CaseCreate,
    /// List cases (an admin sees all, a mediator their own).
    CaseList,
    /// Read a case: its members, sessions, checks, outcome and time limit.
    CaseRead,
    /// Read a case's whole event record (every note, link and rating).
    CaseEventsRead,
    /// Add a person to a case (an assisting judge, an interpreter, an observer).
    MemberAdd,
    /// Schedule a mediation session.
    SessionSchedule,
    /// Issue personal join links for a session.
    InvitationIssue,
    /// Open a session's lobby, start it (after the checks) and end it.
    SessionRun,
    /// Record how a person's identity was verified.
    IdentityVerify,
    /// Consent (or refuse) to online mediation, to recording, to recording replacing the minutes.
    ConsentGive,
    /// Acknowledge the warning on false mediation (虚假调解).
    WarningAcknowledge,
    /// Move one side into a private room and back (背对背调解).
    SideMove,
    /// Edit the minutes (调解笔录), and let the recording replace them.
    MinutesEdit,
    /// Read the minutes.
    MinutesRead,
    /// Confirm the minutes.
    MinutesConfirm,
    /// Draft or edit the agreement (调解协议).
    AgreementDraft,
    /// Read the agreement and download it as a document.
    AgreementRead,
    /// Sign the agreement.
    AgreementSign,
    /// Refuse to sign the agreement (ends the mediation, ODR-Med 25(7)).
    AgreementRefuse,
    /// Record the outcome: success, failure (转立案) or termination.
    OutcomeRecord,
    /// Extend the time limit (with the parties' consent) or pause it (appraisal).
    DeadlineChange,
    /// Rate a session.
    RatingSubmit,
    /// Read ratings aggregated per mediator.
    RatingRead,
    /// Apply (jointly, each party for themself) for judicial confirmation, or withdraw.
    ConfirmationApply,
    /// See the judicial-confirmation outbox and send a dead-lettered message again.
    ConfirmationQueue,
}

/// What must hold besides the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The role is enough.
    Any,
    /// The caller is a member of the case (admins are members of every case).
    OwnCase,
    /// The caller is a member of the case and acts for themself only (a signature, a consent).
    OwnSelf,
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The action.
    pub action: Action,
    /// Its stable name (`docs/permissions.md`, audit log, error messages).
    pub name: &'static str,
    /// Roles that may do it.
    pub roles: &'static [Role],
    /// What else must hold.
    pub scope: Scope,
}

use Role::{Admin as A, Agent as G, Judge as J, Mediator as M, Observer as O, Party as P};

/// The matrix. Order is the documentation's order.
#[rustfmt::skip]
pub const MATRIX: &[Rule] = &[
    rule(Action::MediaPublish,       "media.publish",       &[M, P, G, J],       Scope::OwnCase),
    rule(Action::MediaSubscribe,     "media.subscribe",     &[M, P, G, J, O, A], Scope::OwnCase),
    rule(Action::RoomModerate,       "room.moderate",       &[M, J, A],          Scope::OwnCase),
    rule(Action::RecordingControl,   "recording.control",   &[M],                Scope::OwnCase),
    rule(Action::RecordingRead,      "recording.read",      &[M, J, A],          Scope::OwnCase),
    rule(Action::ControlApi,         "control_api",         &[A],                Scope::Any),
    rule(Action::AuditRead,          "audit.read",          &[A],                Scope::Any),
    rule(Action::CaseCreate,         "case.create",         &[M, A],             Scope::Any),
    rule(Action::CaseList,           "case.list",           &[M, A],             Scope::Any),
    rule(Action::CaseRead,           "case.read",           &[M, P, G, J, A],    Scope::OwnCase),
    rule(Action::CaseEventsRead,     "case.events.read",    &[A],                Scope::Any),
    rule(Action::MemberAdd,          "member.add",          &[M, A],             Scope::OwnCase),
    rule(Action::SessionSchedule,    "session.schedule",    &[M, A],             Scope::OwnCase),
    rule(Action::InvitationIssue,    "invitation.issue",    &[M, A],             Scope::OwnCase),
    rule(Action::SessionRun,         "session.run",         &[M, A],             Scope::OwnCase),
    rule(Action::IdentityVerify,     "identity.verify",     &[M],                Scope::OwnCase),
    rule(Action::ConsentGive,        "consent.give",        &[P],                Scope::OwnSelf),
    rule(Action::WarningAcknowledge, "warning.acknowledge", &[P, G],             Scope::OwnSelf),
    rule(Action::SideMove,           "side.move",           &[M],                Scope::OwnCase),
    rule(Action::MinutesEdit,        "minutes.edit",        &[M],                Scope::OwnCase),
    rule(Action::MinutesRead,        "minutes.read",        &[M, P, G, J, A],    Scope::OwnCase),
    rule(Action::MinutesConfirm,     "minutes.confirm",     &[P],                Scope::OwnSelf),
    rule(Action::AgreementDraft,     "agreement.draft",     &[M],                Scope::OwnCase),
    rule(Action::AgreementRead,      "agreement.read",      &[M, P, G, J, A],    Scope::OwnCase),
    rule(Action::AgreementSign,      "agreement.sign",      &[M, P],             Scope::OwnSelf),
    rule(Action::AgreementRefuse,    "agreement.refuse",    &[P],                Scope::OwnSelf),
    rule(Action::OutcomeRecord,      "outcome.record",      &[M],                Scope::OwnCase),
    rule(Action::DeadlineChange,     "deadline.change",     &[M],                Scope::OwnCase),
    rule(Action::RatingSubmit,       "rating.submit",       &[P],                Scope::OwnSelf),
    rule(Action::RatingRead,         "rating.read",         &[A],                Scope::Any),
    rule(Action::ConfirmationApply,  "confirmation.apply",  &[P],                Scope::OwnSelf),
    rule(Action::ConfirmationQueue,  "confirmation.queue",  &[A],                Scope::Any),
];

const fn rule(action: Action, name: &'static str, roles: &'static [Role], scope: Scope) -> Rule {
    Rule {
        action,
        name,
        roles,
        scope,
    }
}

/// The rule for `action`.
pub fn rule_for(action: Action) -> &'static Rule {
    // Every action has a row (a unit test enumerates them); the fallback denies everything.
    const DENY: Rule = rule(Action::ControlApi, "unknown", &[], Scope::Any);
    MATRIX.iter().find(|r| r.action == action).unwrap_or(&DENY)
}

/// Who is asking, as far as the matrix cares.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// Their role (in the case, or `admin`).
    pub role: Role,
    /// Whether they are a member of the case the action is on (always true for admins).
    pub member: bool,
    /// The person the action is for, when it is for someone (`None`: not person-specific).
    pub acting_for: Option<&'a PersonId>,
    /// The asker's own person id.
    pub person: &'a PersonId,
}

/// Why the matrix said no. Its wire form (an error's `details`) is tagged by `reason`, with
/// the action's stable name, so a page says which action in the person's language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Denied {
    /// The role may not do this at all.
    #[error("{role} may not {action}")]
    #[serde(rename = "role_not_permitted")]
    Role {
        /// The asker's role.
        role: Role,
        /// The action's name.
        action: &'static str,
    },
    /// The asker is not part of this case.
    #[error("{action}: not a member of this case")]
    #[serde(rename = "not_in_this_case")]
    NotMember {
        /// The action's name.
        action: &'static str,
    },
    /// The asker tried to act for another person.
    #[error("{action}: a person may do this only for themself")]
    #[serde(rename = "only_for_themself")]
    NotSelf {
        /// The action's name.
        action: &'static str,
    },
}

/// Checks `asker` against the matrix.
pub fn check(action: Action, asker: Asker<'_>) -> Result<(), Denied> {
    let rule = rule_for(action);
    if !rule.roles.contains(&asker.role) {
        return Err(Denied::Role {
            role: asker.role,
            action: rule.name,
        });
    }
    let admin = asker.role == Role::Admin;
    match rule.scope {
        Scope::Any => Ok(()),
        Scope::OwnCase if admin || asker.member => Ok(()),
        Scope::OwnCase => Err(Denied::NotMember { action: rule.name }),
        Scope::OwnSelf if !asker.member => Err(Denied::NotMember { action: rule.name }),
        Scope::OwnSelf => match asker.acting_for {
            Some(person) if person != asker.person => Err(Denied::NotSelf { action: rule.name }),
            _ => Ok(()),
        },
    }
}

/// Whether `role` may do `action` at all (ignoring scope).
pub fn role_may(role: Role, action: Action) -> bool {
    rule_for(action).roles.contains(&role)
}

/// The signaling grants a role gets by default, from the matrix.
pub fn default_grants(role: Role) -> Vec<Grant> {
    [
        (Action::MediaPublish, Grant::Publish),
        (Action::MediaSubscribe, Grant::Subscribe),
        (Action::RoomModerate, Grant::Moderate),
        (Action::RecordingControl, Grant::Record),
        (Action::ControlApi, Grant::Admin),
    ]
    .into_iter()
    .filter(|(action, _)| role_may(role, *action))
    .map(|(_, grant)| grant)
    .collect()
}

/// The matrix as a Markdown table (the body of `docs/permissions.md`).
pub fn markdown_table() -> String {
    let mut out = String::from("| action | scope |");
    for role in Role::ALL {
        out.push_str(&format!(" {role} |"));
    }
    out.push_str("\n|---|---|");
    for _ in Role::ALL {
        out.push_str("---|");
    }
    out.push('\n');
    for rule in MATRIX {
        let scope = match rule.scope {
            Scope::Any => "any",
            Scope::OwnCase => "own case",
            Scope::OwnSelf => "self",
        };
        out.push_str(&format!("| `{}` | {scope} |", rule.name));
        for role in Role::ALL {
            out.push_str(if rule.roles.contains(&role) {
                " ✓ |"
            } else {
                " |"
            });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admins_get_the_admin_grant_by_default() {
        for r in Role::ALL {
            assert_eq!(
                default_grants(r).contains(&Grant::Admin),
                r == Role::Admin,
                "{r}"
            );
        }
        assert!(!default_grants(Role::Observer).contains(&Grant::Publish));
        assert!(default_grants(Role::Mediator).contains(&Grant::Record));
    }

    /// Every action; the match makes adding one without a row here a compile error.
    fn all_actions() -> Vec<Action> {
        use Action::*;
        let all = vec![
            MediaPublish,
            MediaSubscribe,
            RoomModerate,
            RecordingControl,
            RecordingRead,
            ControlApi,
            AuditRead,
            CaseCreate,
            CaseList,
            CaseRead,
            CaseEventsRead,
            MemberAdd,
            SessionSchedule,
            InvitationIssue,
            SessionRun,
            IdentityVerify,
            ConsentGive,
            WarningAcknowledge,
            SideMove,
            MinutesEdit,
            MinutesRead,
            MinutesConfirm,
            AgreementDraft,
            AgreementRead,
            AgreementSign,
            AgreementRefuse,
            OutcomeRecord,
            DeadlineChange,
            RatingSubmit,
            RatingRead,
            ConfirmationApply,
            ConfirmationQueue,
        ];
        for a in &all {
            match a {
                MediaPublish | MediaSubscribe | RoomModerate | RecordingControl | RecordingRead
                | ControlApi | AuditRead | CaseCreate | CaseList | CaseRead | CaseEventsRead
                | MemberAdd | SessionSchedule | InvitationIssue | SessionRun | IdentityVerify
                | ConsentGive | WarningAcknowledge | SideMove | MinutesEdit | MinutesRead
                | MinutesConfirm | AgreementDraft | AgreementRead | AgreementSign
                | AgreementRefuse | OutcomeRecord | DeadlineChange | RatingSubmit | RatingRead
                | ConfirmationApply | ConfirmationQueue => {}
            }
        }
        all
    }

    #[test]
    fn every_action_is_in_the_matrix() {
        let all = all_actions();
        assert_eq!(all.len(), MATRIX.len());
        for a in all {
            assert!(MATRIX.iter().any(|r| r.action == a), "{a:?} has no row");
        }
    }

    #[test]
    fn every_action_has_exactly_one_row_with_a_unique_name() {
        let mut names: Vec<&str> = MATRIX.iter().map(|r| r.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MATRIX.len());
        for rule in MATRIX {
            assert_eq!(
                MATRIX.iter().filter(|r| r.action == rule.action).count(),
                1,
                "{}",
                rule.name
            );
            assert_eq!(rule_for(rule.action).name, rule.name);
        }
    }

    #[test]
    fn scope_rules() {
        let [p1, p2, ops] = ["p1", "p2", "ops"].map(PersonId::from);
        let party = |member, acting_for| Asker {
            role: Role::Party,
            member,
            acting_for,
            person: &p1,
        };
        assert!(check(Action::AgreementSign, party(true, Some(&p1))).is_ok());
        assert_eq!(
            check(Action::AgreementSign, party(true, Some(&p2))),
            Err(Denied::NotSelf {
                action: "agreement.sign"
            })
        );
        assert!(matches!(
            check(Action::AgreementSign, party(false, Some(&p1))),
            Err(Denied::NotMember { .. })
        ));
        assert!(matches!(
            check(Action::AgreementDraft, party(true, None)),
            Err(Denied::Role { .. })
        ));
        let admin = Asker {
            role: Role::Admin,
            member: false,
            acting_for: None,
            person: &ops,
        };
        assert!(check(Action::CaseRead, admin).is_ok());
        assert!(check(Action::AgreementSign, admin).is_err());
    }

    #[test]
    fn the_documentation_shows_this_matrix() {
        let doc = include_str!("../../docs/permissions.md");
        assert!(
            doc.contains(&markdown_table()),
            "docs/permissions.md is out of date; its table must be:\n{}",
            markdown_table()
        );
    }
}

//! tiaojie's domain: who takes part in a mediation and what is kept about it.
//!
//! Map of the crate:
//! - [`ids`]: typed ids — [`RoomName`], [`PersonId`], [`CaseId`] — the same text on the wire
//!   and in storage, distinct types in the code.
//! - [`role`]: the roles a person holds in a room (mediator, party, agent, judge, observer, admin)
//!   and the grants (publish, subscribe, moderate, record, admin) each role gets by default.
//! - [`room`]: a room record (the place a session happens) and its lifecycle (open → closed).
//! - [`participation`]: who was in a room, with which role, when they joined and left, and why.
//! - [`recording`]: a room's recording policy (off / audio / audio+video).
//! - [`audit`]: the audit log's actions (one typed name per act) and entries, hash-chained,
//!   with their verification.
//! - [`mediation`]: the workflow: cases, sessions, start-of-session checks, minutes, the
//!   agreement and its signatures, outcome, time limits, ratings — events and pure rules.
//! - [`permission`]: the permission matrix (role × action), checked on every request.
//! - [`clock`]: wall-clock milliseconds, the one time unit stored.
//!
//! Nothing here does IO or knows about sockets, tokens' wire format, storage or media: the
//! store (`tiaojie-store`) keeps what these rules decide, the server runs them.

pub mod audit;
pub mod clock;
pub mod ids;
pub mod mediation;
pub mod participation;
pub mod permission;
pub mod recording;
pub mod role;
pub mod room;

pub use audit::{
    AUDIT_GENESIS, AuditAction, AuditEntry, AuditProblem, AuditVerification, verify_audit,
};
pub use ids::{CaseId, PersonId, RoomName};
pub use participation::{LeaveReason, Participation};
pub use permission::{Action, Asker, Denied};
pub use recording::RecordingMode;
pub use role::{Grant, Role};
pub use room::{NewRoom, Room};

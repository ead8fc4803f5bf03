//! Audit entries for what the API reads and does outside a case command (a case command writes
//! its entry in its own transaction).

use super::error::ApiError;
use crate::state::AppState;
use tiaojie_domain::clock::now_millis;
use tiaojie_domain::{AuditAction, AuditEntry, RoomName};
use tiaojie_signaling::token::Claims;

/// Writes an audit entry; the read it records does not happen if this fails.
pub(crate) async fn audit(
    state: &AppState,
    claims: &Claims,
    action: AuditAction,
    target: &str,
    detail: &str,
) -> Result<(), ApiError> {
    let entry = AuditEntry::new(
        now_millis(),
        claims.sub.as_str(),
        claims.role.as_str(),
        action,
        target,
        detail,
    );
    state.hub.store().audit(&entry).await?;
    Ok(())
}

/// Writes an audit entry for an admin's act in `room` (on its case in a case's room).
pub(crate) async fn audit_room(
    state: &AppState,
    admin: &Claims,
    room: &RoomName,
    action: AuditAction,
    detail: &str,
) -> Result<(), ApiError> {
    state
        .hub
        .audit_in_room(
            room,
            admin.sub.as_str(),
            admin.role.as_str(),
            action,
            detail,
        )
        .await?;
    Ok(())
}

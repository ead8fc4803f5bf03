//! Moderation: a mediator (or anyone holding the `moderate` grant) mutes, removes, moves or lets
//! back in another participant; the control API does the same as an admin.
//!
//! Whether a `moderate` request may act is decided by [`decide`], a pure function of the room's
//! state, and the act follows under the same hold of the room's lock: a grant withdrawn or a
//! session taken over either comes before the check (and refuses the act) or after the act —
//! never between them. Every act is audited before anyone is answered.

use std::sync::Arc;

use tiaojie_domain::mediation::Place;
use tiaojie_domain::{AuditAction, Grant, LeaveReason, PersonId, RoomName};
use tiaojie_media::StandingChange;
use tiaojie_store::Removal;

use crate::hub::{Hub, LiveRoom, Session, SignalError, lock, reply_to, set_muted, truncate_reason};
use crate::live_room::{Audience, Outbound, RoomState, close_code};
use crate::protocol::{
    ErrorCode, Event, MediaKind, ParticipantInfo, Reply, RequestId, SignalReason,
};

/// A moderator's action on another participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moderation {
    /// Mute or unmute their audio or video for everyone.
    Mute {
        /// Which media.
        kind: MediaKind,
        /// Muted or not.
        muted: bool,
    },
    /// Remove them; their link is revoked.
    Remove {
        /// Shown to them and recorded.
        reason: String,
    },
    /// Move them to the lobby, the joint room or a private room.
    Move {
        /// Where to.
        place: Place,
    },
    /// Let someone removed from this room back in, with their links for it.
    Readmit,
}

impl Moderation {
    /// The act names someone present (readmitting names someone who is not).
    fn needs_target_present(&self) -> bool {
        !matches!(self, Moderation::Readmit)
    }
}

/// Whether `session` may do `action` to `target` in this room, as it stands: the session must
/// still hold its member, the member must hold `moderate` now, muting or removing oneself is
/// not moderation (a mediator does move themself, into a side's private room), and the target
/// must be present. Returns the moderator's role, as the audit log names it.
pub fn decide(
    state: &RoomState,
    session: &Session,
    target: &PersonId,
    action: &Moderation,
) -> Result<String, SignalError> {
    let moderator = state
        .members
        .get(&session.identity)
        .filter(|m| m.is_owned_by(session.generation))
        .ok_or_else(|| {
            SignalError::new(
                ErrorCode::NotJoined,
                "this connection no longer holds the session",
            )
        })?;
    if !moderator.info.grants.contains(&Grant::Moderate) {
        return Err(SignalError::because(
            ErrorCode::Forbidden,
            SignalReason::NeedsGrant {
                grant: Grant::Moderate,
            },
        ));
    }
    if *target == session.identity && !matches!(action, Moderation::Move { .. }) {
        return Err(SignalError::because(
            ErrorCode::InvalidMessage,
            SignalReason::ModerateSelf,
        ));
    }
    if action.needs_target_present() && !state.members.contains_key(target) {
        return Err(not_present(&session.room.name, target));
    }
    Ok(moderator.info.role.as_str().to_string())
}

fn not_present(room: &RoomName, identity: &PersonId) -> SignalError {
    SignalError::new(
        ErrorCode::ParticipantNotFound,
        format!("{identity:?} is not in room {room:?}"),
    )
}

/// An audit detail for a moderator's mute: whose, what, on or off.
pub fn mute_detail(target: &PersonId, kind: MediaKind, muted: bool) -> String {
    let state = if muted { "muted" } else { "unmuted" };
    format!("{target} {} {state}", kind.media().as_str())
}

/// Who moderates, as the audit log names them: a mediator in the room, or an admin through
/// the control API.
#[derive(Debug, Clone, Copy)]
pub struct Moderator<'a> {
    /// Their identity.
    pub id: &'a PersonId,
    /// Their role.
    pub role: &'a str,
}

impl Hub {
    /// `moderate`: a participant with the `moderate` grant mutes, removes, moves or readmits
    /// another one. One hold of the room's lock covers the check, the act, its audit entry and
    /// the reply.
    pub async fn moderate(
        self: &Arc<Self>,
        session: &Session,
        id: Option<RequestId>,
        target: &PersonId,
        action: Moderation,
    ) -> Result<(), SignalError> {
        let live = session.room.clone();
        let mut state = live.state.clone().lock_owned().await;
        let role = decide(&state, session, target, &action)?;
        let by = Moderator {
            id: &session.identity,
            role: &role,
        };
        self.act(&live, &mut state, by, target, &action).await?;
        tracing::info!(room = %live.name, participant = %session.identity, %target, ?action, "moderated");
        reply_to(&state, &session.identity, &Reply::Ok { id });
        Ok(())
    }

    /// The control API's moderation: `by` (an admin) acts on `target` in `room`. Returns the
    /// target as everyone now sees them (none when removed or readmitted).
    pub async fn moderate_room(
        self: &Arc<Self>,
        by: Moderator<'_>,
        room: &RoomName,
        target: &PersonId,
        action: Moderation,
    ) -> Result<Option<ParticipantInfo>, SignalError> {
        if action == Moderation::Readmit {
            // Nobody to find in the room: they are out.
            self.readmit(by, room, target).await?;
            return Ok(None);
        }
        let (live, mut state) = self.locked_member_room(room, target).await?;
        self.act(&live, &mut state, by, target, &action).await
    }

    /// Does one moderation, the room locked, and audits it: with the act's own writes in one
    /// transaction where it has any (removal, readmission), else once it took effect.
    async fn act(
        self: &Arc<Self>,
        live: &Arc<LiveRoom>,
        state: &mut RoomState,
        by: Moderator<'_>,
        target: &PersonId,
        action: &Moderation,
    ) -> Result<Option<ParticipantInfo>, SignalError> {
        let room = &live.name;
        match action {
            Moderation::Mute { kind, muted } => {
                let info = self.mute_member(live, state, target, *kind, *muted).await?;
                let detail = mute_detail(target, *kind, *muted);
                self.audit_in_room(
                    room,
                    by.id.as_str(),
                    by.role,
                    AuditAction::PersonMute,
                    &detail,
                )
                .await?;
                Ok(Some(info))
            }
            Moderation::Move { place } => {
                let info = self.move_member(live, state, target, *place).await?;
                let detail = format!("{target} to {place}");
                self.audit_in_room(
                    room,
                    by.id.as_str(),
                    by.role,
                    AuditAction::PersonMove,
                    &detail,
                )
                .await?;
                Ok(Some(info))
            }
            Moderation::Remove { reason } => {
                self.remove_member(live, state, by, target, reason).await?;
                Ok(None)
            }
            Moderation::Readmit => {
                self.readmit(by, room, target).await?;
                Ok(None)
            }
        }
    }

    /// Lifts `identity`'s removal from `room`: their links for it work again (the one they
    /// were removed with too: a page that still has it needs nothing new).
    /// `participant_not_found` if they were not removed.
    async fn readmit(
        &self,
        by: Moderator<'_>,
        room: &RoomName,
        identity: &PersonId,
    ) -> Result<(), SignalError> {
        let entry = self
            .audit_entry(
                room,
                by.id.as_str(),
                by.role,
                AuditAction::PersonReadmit,
                identity.as_str(),
            )
            .await?;
        let Some(jtis) = self.store().lift_removal(room, identity, &entry).await? else {
            return Err(SignalError::new(
                ErrorCode::ParticipantNotFound,
                "nobody of that id was removed from this room",
            ));
        };
        {
            let mut revoked = lock(&self.revoked);
            for jti in &jtis {
                revoked.remove(jti);
            }
        }
        lock(&self.removed).remove(&(room.clone(), identity.clone()));
        tracing::info!(%room, participant = %identity, "let back in");
        Ok(())
    }

    /// Removes a present member, the room locked: revokes its token and records the removal
    /// with its audit entry (every link of theirs for the room fails until readmitted), sends
    /// it `removed`, closes its socket with code 4001 and ends its presence with the reason.
    async fn remove_member(
        self: &Arc<Self>,
        live: &Arc<LiveRoom>,
        state: &mut RoomState,
        by: Moderator<'_>,
        identity: &PersonId,
        reason: &str,
    ) -> Result<(), SignalError> {
        let room = &live.name;
        let Some(member) = state.members.get(identity) else {
            return Err(not_present(room, identity));
        };
        let (jti, exp) = (member.jti.clone(), member.token_exp);
        let detail = format!("{identity}: {reason}");
        let entry = self
            .audit_entry(
                room,
                by.id.as_str(),
                by.role,
                AuditAction::PersonRemove,
                &detail,
            )
            .await?;
        let removal = Removal {
            room,
            identity,
            jti: &jti,
            token_expires_at: exp.saturating_mul(1000),
            reason,
            at: entry.at,
        };
        self.store().record_removal(&removal, &entry).await?;
        lock(&self.revoked).insert(jti);
        lock(&self.removed).insert((room.clone(), identity.clone()));
        let seq = state.next_seq();
        let _ = state.broadcast(
            &Event::Removed {
                seq,
                reason: reason.to_string(),
            },
            Audience::Only(identity),
        );
        if let Some(link) = state.members.get(identity).and_then(|m| m.link.as_ref()) {
            let _ = link.tx.try_send(Outbound::Close {
                code: close_code::REMOVED,
                reason: truncate_reason(reason),
            });
        }
        tracing::info!(%room, participant = %identity, reason, "removed");
        self.end_presence(live, state, identity, LeaveReason::Removed, reason)
            .await;
        Ok(())
    }

    /// A moderator's mute of a present member, the room locked: enforced by the media plane
    /// first (not left to the muted client), then everyone sees it.
    async fn mute_member(
        self: &Arc<Self>,
        live: &Arc<LiveRoom>,
        state: &mut RoomState,
        identity: &PersonId,
        kind: MediaKind,
        muted: bool,
    ) -> Result<ParticipantInfo, SignalError> {
        self.media_update(
            &live.name,
            identity,
            StandingChange::Block(kind.media(), muted),
        )
        .await;
        self.update_member(live, state, identity, |info| set_muted(info, kind, muted))
            .ok_or_else(|| not_present(&live.name, identity))
    }
}

#[cfg(test)]
mod tests {
    //! Moderation driven in memory: a hub over a temporary store and a fake media plane that
    //! records what it was told.

    use super::*;
    use crate::testing::{Call, FakeMedia, hub, join};
    use tiaojie_domain::Role;
    use tiaojie_media::Kind;

    fn events_of<'a>(
        received: &'a [serde_json::Value],
        kind: &'a str,
    ) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
        received.iter().filter(move |e| e["type"] == kind)
    }

    #[tokio::test]
    async fn a_moderators_mute_reaches_the_media_plane_before_anyone_hears_of_it() {
        let media = Arc::new(FakeMedia::default());
        let hub = hub("mute", |_| {}, Some(media.clone())).await;
        let mut mediator = join(&hub, "r1", "m", Role::Mediator, None).await;
        let mut party = join(&hub, "r1", "p", Role::Party, None).await;
        mediator.received();
        party.received();
        let mute = Moderation::Mute {
            kind: MediaKind::Audio,
            muted: true,
        };
        hub.moderate(&mediator.session, None, &PersonId::from("p"), mute)
            .await
            .expect("muted");
        let blocks: Vec<_> = media
            .calls()
            .into_iter()
            .filter(|(_, c)| matches!(c, Call::Update(_)))
            .collect();
        assert_eq!(
            blocks,
            vec![(
                "p".to_string(),
                Call::Update(StandingChange::Block(Kind::Audio, true))
            )]
        );
        let heard = party.received();
        let update = events_of(&heard, "participant.updated")
            .next()
            .expect("the party hears of it");
        assert_eq!(update["participant"]["audio_muted"], true);
        let answered = mediator.received();
        assert!(answered.iter().any(|e| e["type"] == "ok"), "{answered:?}");
        let log = hub.store().audit_page(None, 0, 10).await.expect("log");
        let entries: Vec<_> = log
            .iter()
            .map(|e| {
                (
                    e.actor.as_str(),
                    e.role.as_str(),
                    e.action.as_str(),
                    e.target.as_str(),
                )
            })
            .collect();
        assert_eq!(entries, vec![("m", "mediator", "person.mute", "room:r1")]);
        // A party holds no `moderate` grant.
        let refused = hub
            .moderate(
                &party.session,
                None,
                &PersonId::from("m"),
                Moderation::Mute {
                    kind: MediaKind::Audio,
                    muted: true,
                },
            )
            .await
            .expect_err("a party cannot moderate");
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert_eq!(
            media.calls().len(),
            blocks.len() + 2,
            "nothing more was applied"
        );
    }

    #[tokio::test]
    async fn a_grant_withdrawn_while_a_moderation_waits_cannot_come_between_check_and_act() {
        let media = Arc::new(FakeMedia::default());
        let hub = hub("atomic", |_| {}, Some(media.clone())).await;
        let mediator = join(&hub, "r1", "m", Role::Mediator, None).await;
        let _party = join(&hub, "r1", "p", Role::Party, None).await;
        // Hold the room while a moderation and then a withdrawal of the moderator's grant
        // queue for it (tokio's mutex serves waiters in order).
        let held = mediator.session.room.state.lock().await;
        let moderating = tokio::spawn({
            let (hub, session) = (hub.clone(), mediator.session.clone());
            async move {
                let mute = Moderation::Mute {
                    kind: MediaKind::Video,
                    muted: true,
                };
                hub.moderate(&session, None, &PersonId::from("p"), mute)
                    .await
            }
        });
        tokio::task::yield_now().await;
        let withdrawing = tokio::spawn({
            let hub = hub.clone();
            async move {
                hub.update_grants(
                    &RoomName::from("r1"),
                    &PersonId::from("m"),
                    vec![Grant::Publish, Grant::Subscribe],
                )
                .await
            }
        });
        tokio::task::yield_now().await;
        drop(held);
        moderating
            .await
            .expect("no panic")
            .expect("checked before the withdrawal");
        withdrawing.await.expect("no panic").expect("withdrawn");
        // The act took effect while the grant was held: the media plane saw the mute first.
        let order: Vec<_> = media
            .calls()
            .into_iter()
            .filter_map(|(who, c)| match c {
                Call::Update(change) => Some((who, change)),
                _ => None,
            })
            .collect();
        assert_eq!(
            order,
            vec![
                ("p".into(), StandingChange::Block(Kind::Video, true)),
                (
                    "m".into(),
                    StandingChange::Grants {
                        publish: true,
                        subscribe: true
                    }
                ),
            ]
        );
        // And now the grant is gone, so is the power.
        let refused = hub
            .moderate(
                &mediator.session,
                None,
                &PersonId::from("p"),
                Moderation::Mute {
                    kind: MediaKind::Video,
                    muted: false,
                },
            )
            .await
            .expect_err("no longer a moderator");
        assert_eq!(refused.code, ErrorCode::Forbidden);
    }

    #[tokio::test]
    async fn a_removed_party_is_out_of_the_media_plane_and_their_link_is_dead() {
        let media = Arc::new(FakeMedia::default());
        let hub = hub("remove", |_| {}, Some(media.clone())).await;
        let mediator = join(&hub, "r1", "m", Role::Mediator, None).await;
        let mut party = join(&hub, "r1", "p", Role::Party, None).await;
        party.received();
        let remove = Moderation::Remove {
            reason: "disorderly".into(),
        };
        hub.moderate(&mediator.session, None, &PersonId::from("p"), remove)
            .await
            .expect("removed");
        assert!(
            media.calls().contains(&("p".to_string(), Call::Leave)),
            "{:?}",
            media.calls()
        );
        let told = party.received();
        assert!(events_of(&told, "removed").next().is_some(), "{told:?}");
        let token_of_p = hub.store().revoked_token_ids().await.expect("revoked");
        assert_eq!(token_of_p.len(), 1, "the link they came in with");
        let p = PersonId::from("p");
        let again = hub.moderate(
            &mediator.session,
            None,
            &p,
            Moderation::Remove {
                reason: "twice".into(),
            },
        );
        assert_eq!(
            again.await.expect_err("gone").code,
            ErrorCode::ParticipantNotFound
        );
        // Removing oneself is not moderation; moving oneself is.
        let own = hub
            .moderate(
                &mediator.session,
                None,
                &PersonId::from("m"),
                Moderation::Remove { reason: "x".into() },
            )
            .await
            .expect_err("not oneself");
        assert_eq!(own.code, ErrorCode::InvalidMessage);
        hub.moderate(
            &mediator.session,
            None,
            &PersonId::from("p"),
            Moderation::Readmit,
        )
        .await
        .expect("let back in");
        assert!(
            hub.store()
                .revoked_token_ids()
                .await
                .expect("ids")
                .is_empty()
        );
        let log = hub.store().audit_page(None, 0, 10).await.expect("log");
        let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, vec!["person.remove", "person.readmit"]);
        assert!(
            hub.room_participants(&RoomName::from("r1"))
                .await
                .expect("room")
                .iter()
                .all(|p| p.identity != "p"),
            "readmitting lets them join again; it does not bring them in"
        );
    }
}

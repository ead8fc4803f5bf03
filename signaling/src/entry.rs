//! Coming into a room: `join` (with a link) and `resume` (with the resume token of a dropped
//! connection).
//!
//! What the room allows is decided by pure functions of its state ([`entry`],
//! [`room_for_newcomer`], [`resumable`]) and the facts the hub looked up
//! for them; [`Hub::join`] and [`Hub::resume`] ask the case's admission rule about the place
//! decided here, then act — record the presence, answer, tell the others, hand the standing to
//! the media plane — under one hold of the room.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tiaojie_domain::clock::now_millis;
use tiaojie_domain::mediation::Place;
use tiaojie_domain::{Grant, PersonId, Role, RoomName};

use crate::hub::{Hub, Session, SignalError, lock, tell_recording_present};
use crate::ids;
use crate::live_room::{Audience, Link, Member, RoomState};
use crate::protocol::{
    ConnectionState, ErrorCode, Event, MediaState, PROTOCOL_VERSION, ParticipantInfo, Reply,
    RequestId, SignalReason, to_text,
};
use crate::token::TokenError;

/// How a join enters the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// The person is present already (another tab, a reload): this connection takes the
    /// session over where it stands; the others see an update, not a leave and a join.
    Takeover {
        /// Where they stand now.
        place: Place,
    },
    /// Someone new: they stand here if the admission rule agrees (a lobby room's lobby for
    /// those without `moderate`, the joint room for the others).
    Newcomer {
        /// Where they ask to stand.
        wanted: Place,
    },
}

impl Entry {
    /// The place the admission rule is asked about.
    pub fn wanted(self) -> Place {
        match self {
            Entry::Takeover { place } => place,
            Entry::Newcomer { wanted } => wanted,
        }
    }
}

/// How `person`, holding `grants`, enters this room.
pub fn entry(state: &RoomState, person: &PersonId, grants: &[Grant]) -> Entry {
    match state.members.get(person) {
        Some(member) => Entry::Takeover {
            place: member.info.space,
        },
        None if state.lobby && !grants.contains(&Grant::Moderate) => Entry::Newcomer {
            wanted: Place::Lobby,
        },
        None => Entry::Newcomer {
            wanted: Place::Joint,
        },
    }
}

/// Whether a newcomer fits: a room holds at most its capacity (a takeover always fits).
pub fn room_for_newcomer(state: &RoomState) -> Result<(), SignalError> {
    if state.members.len() >= state.capacity {
        return Err(SignalError::because(
            ErrorCode::RoomFull,
            SignalReason::RoomFull {
                capacity: state.capacity,
            },
        ));
    }
    Ok(())
}

/// What the hub knows of the link a member joined with, for [`resumable`].
#[derive(Debug, Clone, Copy)]
pub struct LinkFacts {
    /// Its expiry has not passed (with the configured leeway).
    pub still_valid: bool,
    /// It was revoked (its holder removed, say).
    pub revoked: bool,
}

/// Whether `identity` may resume with `resume_token`: they are still a member, the token is
/// their current one (a spent one fails), and the link they joined with is still good — an
/// expired or revoked link may carry a session to its end, but not back into it. `facts`
/// reads that link. Returns their role and place, for the admission rule.
pub fn resumable(
    state: &RoomState,
    identity: &PersonId,
    resume_token: &str,
    facts: impl FnOnce(&str, i64) -> LinkFacts,
) -> Result<(Role, Place), SignalError> {
    let member = state
        .members
        .get(identity)
        .filter(|m| m.resume_token == resume_token)
        .ok_or_else(resume_failed)?;
    let link = facts(&member.jti, member.token_exp);
    if !link.still_valid {
        return Err(TokenError::Expired.into());
    }
    if link.revoked {
        return Err(TokenError::Revoked.into());
    }
    Ok((member.info.role, member.info.space))
}

/// A resume that cannot be honoured: the client joins again.
pub fn resume_failed() -> SignalError {
    SignalError::new(
        ErrorCode::ResumeFailed,
        "this session can no longer be resumed; join again",
    )
}

impl Hub {
    /// Enters a room with a join token. The `joined` reply is queued on `link` in order with
    /// the room's events. A member already present under this identity is taken over: its old
    /// connection is closed and the others see an update, not a leave and a join.
    pub async fn join(
        self: &Arc<Self>,
        id: Option<RequestId>,
        room_name: &RoomName,
        token: &str,
        link: Link,
    ) -> Result<Session, SignalError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(SignalError::because(
                ErrorCode::Internal,
                SignalReason::ShuttingDown,
            ));
        }
        // Room-less admin tokens fail the room check too: they are for the API, not for rooms.
        let claims = self.authenticate(token, Some(room_name)).await?;
        let case = self.case_membership(room_name, &claims).await?;
        loop {
            let room = self.live_room(room_name, case.clone()).await?;
            let mut state = room.state.lock().await;
            if state.retired {
                continue;
            }
            let generation = link.generation;
            let resume_token = ids::random_token(32);
            let now = now_millis();
            // Where they stand: decided from the room, then asked of the admission rule.
            let entry = entry(&state, &claims.sub, &claims.grants);
            let place = self
                .admitted(&state, &claims.sub, claims.role, entry.wanted())
                .await?;
            let (event, old_resume) = if let Some(member) = state.members.get_mut(&claims.sub) {
                member.attach(link);
                member.info.name = claims.name.clone();
                member.info.role = claims.role;
                member.info.grants = claims.grants.clone();
                member.info.space = place;
                member.jti = claims.jti.clone();
                member.token_exp = claims.exp;
                let old = std::mem::replace(&mut member.resume_token, resume_token.clone());
                (None, Some(old))
            } else {
                room_for_newcomer(&state)?;
                let participation_id = match self
                    .store()
                    .record_join(
                        room_name,
                        &claims.sub,
                        &claims.name,
                        claims.role.as_str(),
                        now,
                    )
                    .await
                {
                    Ok(pid) => pid,
                    Err(e) => {
                        self.retire_if_empty(&room, &mut state);
                        return Err(e.into());
                    }
                };
                let info = ParticipantInfo {
                    identity: claims.sub.clone(),
                    name: claims.name.clone(),
                    role: claims.role,
                    grants: claims.grants.clone(),
                    audio_muted: false,
                    video_muted: false,
                    joined_at: now,
                    connection: ConnectionState::Connected,
                    space: place,
                    media: MediaState::None,
                    screen: false,
                };
                let member = Member::new(
                    info,
                    participation_id,
                    claims.jti.clone(),
                    claims.exp,
                    resume_token.clone(),
                    link,
                );
                state.members.insert(claims.sub.clone(), member);
                self.metrics.participants.fetch_add(1, Ordering::Relaxed);
                (Some(()), None)
            };
            let others = state.participants(Some(&claims.sub), true);
            let seq_now = state.seq;
            let Some(me) = state.members.get(&claims.sub) else {
                return Err(SignalError::new(ErrorCode::Internal, "member vanished"));
            };
            let info = me.info.clone();
            me.reply(
                to_text(&Reply::Joined {
                    id,
                    v: PROTOCOL_VERSION,
                    room: room_name.clone(),
                    you: info.clone(),
                    participants: others,
                    seq: seq_now,
                    resume_token: resume_token.clone(),
                    resume_grace_ms: self.config().resume_grace.as_millis() as u64,
                    recording: state.recording_status(),
                    chat: state.chat_history(&claims.sub),
                })
                .into(),
            );
            let entered = info.clone();
            let stalled = match event {
                Some(()) => {
                    let seq = state.next_seq();
                    let event = Event::ParticipantJoined {
                        seq,
                        participant: info,
                    };
                    state.broadcast(&event, Audience::AllBut(&claims.sub))
                }
                // A takeover: the same person, perhaps in a private room.
                None => state.broadcast_presence(None, &info, Some(&claims.sub)),
            };
            tell_recording_present(&state, &entered);
            self.media_enter(room_name, &entered).await;
            {
                let mut index = lock(&self.resume_index);
                if let Some(old) = old_resume {
                    index.remove(&old);
                }
                index.insert(resume_token, (room_name.clone(), claims.sub.clone()));
            }
            self.handle_stalled(&room, &mut state, stalled);
            self.metrics.joins.fetch_add(1, Ordering::Relaxed);
            tracing::info!(room = %room_name, participant = %claims.sub, role = %claims.role, "joined");
            return Ok(Session {
                room: room.clone(),
                identity: claims.sub,
                generation,
            });
        }
    }

    /// Continues a dropped session: re-attaches the member, replies `resumed`, then replays
    /// the events after `last_seq`.
    pub async fn resume(
        self: &Arc<Self>,
        id: Option<RequestId>,
        resume_token: &str,
        last_seq: u64,
        link: Link,
    ) -> Result<Session, SignalError> {
        let (room_name, identity) = lock(&self.resume_index)
            .get(resume_token)
            .cloned()
            .ok_or_else(resume_failed)?;
        let room = self.existing_room(&room_name).ok_or_else(resume_failed)?;
        let mut state = room.state.lock().await;
        let generation = link.generation;
        let new_token = ids::random_token(32);
        let seq_now = state.seq;
        let now = crate::token::now_secs();
        let (role, place) = resumable(&state, &identity, resume_token, |jti, exp| LinkFacts {
            still_valid: self.keys().still_valid(exp, now),
            revoked: lock(&self.revoked).contains(jti),
        })?;
        // The case may have changed while they were away: they come back where the admission
        // rule lets them stand (the move is among the events they get next).
        if self.admitted(&state, &identity, role, place).await? != place {
            self.place_member(&room, &mut state, &identity, Place::Lobby)
                .await?;
        }
        let Some(member) = state.members.get_mut(&identity) else {
            return Err(resume_failed());
        };
        let was_reconnecting = member.link.is_none();
        member.attach(link);
        member.resume_token = new_token.clone();
        let (events, missed) = member.events_after(last_seq);
        let info = member.info.clone();
        {
            let mut index = lock(&self.resume_index);
            index.remove(resume_token);
            index.insert(new_token.clone(), (room_name.clone(), identity.clone()));
        }
        let participants = state.participants(Some(&identity), true);
        if let Some(member) = state.members.get(&identity) {
            member.reply(
                to_text(&Reply::Resumed {
                    id,
                    v: PROTOCOL_VERSION,
                    room: room_name.clone(),
                    you: info.clone(),
                    participants,
                    seq: seq_now,
                    missed_events: missed,
                    resume_token: new_token,
                    recording: state.recording_status(),
                })
                .into(),
            );
            for event in events {
                member.reply(event);
            }
        }
        if was_reconnecting {
            let stalled = state.broadcast_presence(None, &info, Some(&identity));
            self.handle_stalled(&room, &mut state, stalled);
        }
        self.metrics.resumes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(room = %room_name, participant = %identity, last_seq, missed, "resumed");
        Ok(Session {
            room: room.clone(),
            identity,
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    //! Coming in, driven in memory: a hub over a temporary store and a fake media plane.

    use super::*;
    use crate::testing::{Call, FakeMedia, hub, join, try_join};
    use tiaojie_domain::NewRoom;
    use tiaojie_media::Space;

    fn entered(media: &FakeMedia, who: &str) -> Vec<Space> {
        media
            .calls()
            .into_iter()
            .filter_map(|(p, call)| match call {
                Call::Enter(standing) if p == who => Some(standing.space),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_newcomer_waits_in_a_lobby_rooms_lobby_and_a_takeover_keeps_its_place() {
        let media = Arc::new(FakeMedia::default());
        let hub = hub("entry-lobby", |_| {}, Some(media.clone())).await;
        let new = NewRoom {
            name: "r1".into(),
            lobby: true,
            ..Default::default()
        };
        hub.store()
            .create_room(&new, now_millis())
            .await
            .expect("room");
        let mediator = join(&hub, "r1", "m", Role::Mediator, None).await;
        let party = join(&hub, "r1", "p", Role::Party, None).await;
        let p = PersonId::from("p");
        {
            let state = mediator.session.room.state.lock().await;
            assert_eq!(
                entry(&state, &PersonId::from("m"), &[Grant::Moderate]),
                Entry::Takeover {
                    place: Place::Joint
                }
            );
            assert_eq!(
                entry(&state, &p, &[]),
                Entry::Takeover {
                    place: Place::Lobby
                }
            );
            assert_eq!(
                entry(&state, &PersonId::from("q"), &[Grant::Publish]),
                Entry::Newcomer {
                    wanted: Place::Lobby
                }
            );
            assert_eq!(
                entry(&state, &PersonId::from("q"), &[Grant::Moderate]),
                Entry::Newcomer {
                    wanted: Place::Joint
                }
            );
        }
        assert_eq!(entered(&media, "m"), vec![Space::Joint]);
        assert_eq!(
            entered(&media, "p"),
            vec![Space::Lobby],
            "the media plane keeps them apart"
        );
        let room = RoomName::from("r1");
        hub.move_participant(&room, &p, Place::Joint)
            .await
            .expect("admitted");
        // Another tab of the same person takes the session over where it stands.
        let again = join(&hub, "r1", "p", Role::Party, None).await;
        assert_eq!(entered(&media, "p"), vec![Space::Lobby, Space::Joint]);
        let rows = hub.store().participations(&room).await.expect("rows");
        assert_eq!(rows.len(), 2, "a takeover is no second presence: {rows:?}");
        drop((party, again));
    }

    #[tokio::test]
    async fn a_full_room_refuses_a_newcomer_before_anything_is_recorded() {
        let media = Arc::new(FakeMedia::default());
        let hub = hub(
            "entry-full",
            |c| c.signaling.max_participants_per_room = 1,
            Some(media.clone()),
        )
        .await;
        let _mediator = join(&hub, "r1", "m", Role::Mediator, None).await;
        let refused = try_join(&hub, "r1", "p", Role::Party, None).await;
        assert_eq!(refused.err().map(|e| e.code), Some(ErrorCode::RoomFull));
        let room = RoomName::from("r1");
        let rows = hub.store().participations(&room).await.expect("rows");
        assert_eq!(
            rows.len(),
            1,
            "no presence recorded for the refused: {rows:?}"
        );
        assert!(
            entered(&media, "p").is_empty(),
            "nor handed to the media plane"
        );
        // The one inside may still come back on another tab.
        assert!(
            try_join(&hub, "r1", "m", Role::Mediator, None)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn only_the_current_token_of_a_good_link_resumes() {
        let hub = hub("entry-resume", |_| {}, None).await;
        let mut party = join(&hub, "r1", "p", Role::Party, None).await;
        let joined = party.received();
        let token = joined[0]["resume_token"]
            .as_str()
            .expect("token")
            .to_string();
        let p = PersonId::from("p");
        let state = party.session.room.state.lock().await;
        let good = |_: &str, _: i64| LinkFacts {
            still_valid: true,
            revoked: false,
        };
        assert_eq!(
            resumable(&state, &p, &token, good).expect("resumable"),
            (Role::Party, Place::Joint)
        );
        let code = |r: Result<(Role, Place), SignalError>| r.err().map(|e| e.code);
        assert_eq!(
            code(resumable(&state, &p, "spent", good)),
            Some(ErrorCode::ResumeFailed)
        );
        assert_eq!(
            code(resumable(&state, &PersonId::from("q"), &token, good)),
            Some(ErrorCode::ResumeFailed)
        );
        let expired = |_: &str, _: i64| LinkFacts {
            still_valid: false,
            revoked: false,
        };
        assert_eq!(
            code(resumable(&state, &p, &token, expired)),
            Some(SignalError::from(TokenError::Expired).code)
        );
        let revoked = |_: &str, _: i64| LinkFacts {
            still_valid: true,
            revoked: true,
        };
        assert_eq!(
            code(resumable(&state, &p, &token, revoked)),
            Some(SignalError::from(TokenError::Revoked).code)
        );
    }
}

//! The hub's bridge to the media plane: who stands where, SDP and candidates in, media events
//! out.
//!
//! The session layer owns each participant's standing (space, grants, moderator blocks, audio
//! only) and hands every change to the SFU, which applies it to forwarding without touching
//! anyone's connection. The SFU's events (server offers, the active speaker, a lost media
//! connection) come back here and go out as signaling events.
//!
//! Room locks are held across SFU round trips (a standing change is applied before the room's
//! next event is sent, so nobody hears of a move before its media follows). That cannot
//! deadlock: the SFU's task never waits on the hub — its events go out on an unbounded
//! channel, read by [`Hub::relay_media_events`] which takes room locks on its own task — so a
//! round trip waits only for the media task's queue. The cost is that the room's next operation
//! waits for that round trip; other rooms do not.

use std::sync::Arc;

use tiaojie_domain::mediation::Place;
use tiaojie_domain::{Grant, PersonId, RoomName};
use tiaojie_media::{MediaError, MediaEvent, ParticipantId, Space, Standing, StandingChange};
use tokio::sync::mpsc;

use crate::hub::{Hub, Session, SignalError};
use crate::live_room::Audience;
use crate::media_plane::MediaPlane;
use crate::protocol::{
    ErrorCode, Event, MediaState, ParticipantInfo, Reply, RequestId, SignalReason, to_text,
};

/// The media plane's space for a place: the media plane knows no cases or sides, only opaque
/// keys, and forwards only between people in the same space.
pub fn media_space(place: Place) -> Space {
    match place {
        Place::Lobby => Space::Lobby,
        Place::Joint => Space::Joint,
        Place::Private(side) => Space::Private(side.as_str().into()),
    }
}

/// A person as the media plane knows them: the same text, opaque to it.
pub(crate) fn participant_of(person: &PersonId) -> ParticipantId {
    ParticipantId(person.as_str().to_string())
}

/// The person behind a media plane's participant.
pub(crate) fn person_of(participant: ParticipantId) -> PersonId {
    PersonId::from(participant.0)
}

fn standing_of(info: &ParticipantInfo) -> Standing {
    Standing {
        space: media_space(info.space),
        publish: info.grants.contains(&Grant::Publish),
        subscribe: info.grants.contains(&Grant::Subscribe),
        // A fresh join starts unblocked unless a moderator's mute is still on record.
        audio_blocked: false,
        video_blocked: false,
        audio_only: false,
        // A share starts only with an offer that declares it.
        screen: false,
    }
}

fn media_error(e: MediaError) -> SignalError {
    let code = match e {
        MediaError::Stopped | MediaError::Config(_) | MediaError::Bind { .. } => {
            ErrorCode::MediaUnavailable
        }
        MediaError::NotEntered => ErrorCode::NotJoined,
        MediaError::InvalidSdp(_)
        | MediaError::InvalidCandidate(_)
        | MediaError::NoPendingOffer
        | MediaError::NotNegotiated => ErrorCode::InvalidMessage,
    };
    SignalError::new(code, e.to_string())
}

fn unavailable() -> SignalError {
    SignalError::new(
        ErrorCode::MediaUnavailable,
        "media is disabled on this server (media.enabled = false)",
    )
}

impl Hub {
    /// The media plane, if media is enabled.
    pub fn sfu_handle(&self) -> Option<&dyn MediaPlane> {
        self.media.as_deref()
    }

    fn sfu(&self) -> Result<&dyn MediaPlane, SignalError> {
        self.media.as_deref().ok_or_else(unavailable)
    }

    /// Puts a (re)joined participant into the media plane with their standing.
    pub(crate) async fn media_enter(&self, room: &RoomName, info: &ParticipantInfo) {
        if let Some(sfu) = &self.media
            && let Err(e) = sfu
                .enter(room, participant_of(&info.identity), standing_of(info))
                .await
        {
            tracing::error!(%room, participant = %info.identity, error = %e, "media plane refused a participant");
        }
    }

    /// Takes a participant out of the media plane.
    pub(crate) async fn media_leave(&self, room: &RoomName, identity: &PersonId) {
        if let Some(sfu) = &self.media {
            let _ = sfu.leave(room, participant_of(identity)).await;
        }
    }

    /// Hands a standing change to the media plane.
    pub(crate) async fn media_update(
        &self,
        room: &RoomName,
        identity: &PersonId,
        change: StandingChange,
    ) {
        if let Some(sfu) = &self.media
            && let Err(e) = sfu.update(room, participant_of(identity), change).await
        {
            tracing::warn!(%room, participant = %identity, error = %e, "media standing not applied");
        }
    }

    /// `offer`: the participant's SDP offer; replies `answer`, then sends a server offer if
    /// there are tracks for them to receive. `screen` declares the line it shares its screen
    /// on: a new share needs the `publish` grant and rooms that are not split, checked and
    /// handed to the SFU under the room lock, so a move that splits the rooms comes before
    /// (and refuses it) or after (and stops it).
    pub async fn media_offer(
        self: &Arc<Self>,
        session: &Session,
        id: Option<RequestId>,
        sdp: String,
        screen: Option<String>,
    ) -> Result<(), SignalError> {
        let sfu = self.sfu()?;
        // Browsers number their media lines; the SFU keeps mids of up to 16 letters and digits.
        if let Some(mid) = &screen
            && (mid.is_empty() || mid.len() > 16 || !mid.bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(SignalError::new(
                ErrorCode::InvalidMessage,
                "screen: the mid of a media line in this offer (1-16 letters or digits)",
            ));
        }
        let mut state = self.owned_state(session).await?;
        let (sharing, may_publish) = state
            .members
            .get(&session.identity)
            .map_or((false, false), |m| {
                (m.info.screen, m.info.grants.contains(&Grant::Publish))
            });
        if screen.is_some() && !sharing {
            if !may_publish {
                return Err(SignalError::because(
                    ErrorCode::Forbidden,
                    SignalReason::NeedsGrant {
                        grant: Grant::Publish,
                    },
                ));
            }
            if state.rooms_split() {
                return Err(SignalError::new(
                    ErrorCode::RoomsSplit,
                    "screen sharing is stopped while anyone is in a private room",
                ));
            }
        }
        let outcome = sfu
            .offer(
                &session.room.name,
                participant_of(&session.identity),
                sdp,
                screen.clone(),
            )
            .await
            .map_err(media_error)?;
        if sharing != screen.is_some() {
            self.update_member(&session.room, &mut state, &session.identity, |info| {
                info.screen = screen.is_some()
            });
        }
        drop(state);
        let reply = Reply::Answer {
            id,
            sdp: outcome.answer,
        };
        self.reply_then_offer(session, &reply, outcome.next_offer)
            .await
    }

    /// `answer`: the participant's answer to a server offer; replies `ok`, then sends the next
    /// server offer if changes queued up meanwhile.
    pub async fn media_answer(
        self: &Arc<Self>,
        session: &Session,
        id: Option<RequestId>,
        sdp: String,
    ) -> Result<(), SignalError> {
        let sfu = self.sfu()?;
        let next = sfu
            .answer(&session.room.name, participant_of(&session.identity), sdp)
            .await
            .map_err(media_error)?;
        self.reply_then_offer(session, &Reply::Ok { id }, next)
            .await
    }

    /// Sends the reply, then (in that order, under the room lock) a server offer if one is due.
    async fn reply_then_offer(
        self: &Arc<Self>,
        session: &Session,
        reply: &Reply,
        offer: Option<String>,
    ) -> Result<(), SignalError> {
        let mut state = self.owned_state(session).await?;
        if let Some(m) = state.members.get(&session.identity) {
            m.reply(to_text(reply).into());
        }
        if let Some(sdp) = offer {
            let seq = state.next_seq();
            let stalled = state.broadcast(
                &Event::MediaOffer { seq, sdp },
                Audience::Only(&session.identity),
            );
            self.handle_stalled(&session.room, &mut state, stalled);
        }
        Ok(())
    }

    /// `candidate`: a trickled ICE candidate (`None` ends the trickle).
    pub async fn media_candidate(
        &self,
        session: &Session,
        id: Option<RequestId>,
        candidate: Option<String>,
    ) -> Result<(), SignalError> {
        let sfu = self.sfu()?;
        if let Some(c) = candidate {
            sfu.candidate(&session.room.name, participant_of(&session.identity), c)
                .await
                .map_err(media_error)?;
        }
        let state = self.owned_state(session).await?;
        if let Some(m) = state.members.get(&session.identity) {
            m.reply(to_text(&Reply::Ok { id }).into());
        }
        Ok(())
    }

    /// `preferences`: audio only, largest video height.
    pub async fn media_preferences(
        &self,
        session: &Session,
        id: Option<RequestId>,
        audio_only: Option<bool>,
        max_height: Option<u32>,
    ) -> Result<(), SignalError> {
        let sfu = self.sfu()?;
        let who = participant_of(&session.identity);
        if let Some(a) = audio_only {
            sfu.update(
                &session.room.name,
                who.clone(),
                StandingChange::AudioOnly(a),
            )
            .await
            .map_err(media_error)?;
        }
        if let Some(h) = max_height {
            sfu.set_max_height(&session.room.name, who, (h > 0).then_some(h))
                .await
                .map_err(media_error)?;
        }
        let state = self.owned_state(session).await?;
        if let Some(m) = state.members.get(&session.identity) {
            m.reply(to_text(&Reply::Ok { id }).into());
        }
        Ok(())
    }

    /// Moves a participant to a place (admit, private room, back); everyone sees where they
    /// are now, and forwarding follows without reconnecting anyone. In a case's session room
    /// the case's admission rule decides, whoever asks (the mediator over signaling, the case
    /// API, an admin): it is asked with the room locked and the case read under that lock, so
    /// a change to the case either comes first (and refuses this) or after (and its own check
    /// of everyone sends them back).
    pub async fn move_participant(
        self: &Arc<Self>,
        room: &RoomName,
        identity: &PersonId,
        place: Place,
    ) -> Result<ParticipantInfo, SignalError> {
        let (live, mut state) = self.locked_member_room(room, identity).await?;
        self.move_member(&live, &mut state, identity, place).await
    }

    /// Moves a present member, the room locked: the case's admission rule first (in a case's
    /// session room), then [`Hub::place_member`].
    pub(crate) async fn move_member(
        self: &Arc<Self>,
        live: &Arc<crate::hub::LiveRoom>,
        state: &mut crate::live_room::RoomState,
        identity: &PersonId,
        place: Place,
    ) -> Result<ParticipantInfo, SignalError> {
        if let Some((case, n)) = state.case.clone() {
            let role = state
                .members
                .get(identity)
                .map_or(tiaojie_domain::Role::Observer, |m| m.info.role);
            self.store().case(&case).await?.admission(
                n,
                identity,
                role,
                place,
                state.recording_now(),
            )?;
        }
        self.place_member(live, state, identity, place).await
    }

    /// Puts a member in a place, already decided: the media plane first, then everyone is
    /// told. A split of the rooms ends every screen share.
    pub(crate) async fn place_member(
        self: &Arc<Self>,
        live: &Arc<crate::hub::LiveRoom>,
        state: &mut crate::live_room::RoomState,
        identity: &PersonId,
        place: Place,
    ) -> Result<ParticipantInfo, SignalError> {
        let room = &live.name;
        self.media_update(room, identity, StandingChange::Move(media_space(place)))
            .await;
        let info = self
            .update_member(live, state, identity, |info| info.space = place)
            .ok_or_else(|| SignalError::new(ErrorCode::ParticipantNotFound, "gone"))?;
        // The rooms split: every screen share stops (the SFU already forwards none while split;
        // this ends the shares, so a return to the joint room does not bring them back).
        if state.rooms_split() {
            let sharers: Vec<PersonId> = state
                .members
                .values()
                .filter(|m| m.info.screen)
                .map(|m| m.info.identity.clone())
                .collect();
            for sharer in sharers {
                self.media_update(room, &sharer, StandingChange::StopScreen)
                    .await;
                self.update_member(live, state, &sharer, |info| info.screen = false);
            }
        }
        Ok(info)
    }

    /// Relays the media plane's events until it stops.
    pub async fn relay_media_events(
        self: Arc<Self>,
        mut events: mpsc::UnboundedReceiver<MediaEvent>,
    ) {
        while let Some(event) = events.recv().await {
            match event {
                MediaEvent::Offer {
                    room,
                    participant,
                    sdp,
                } => {
                    let room = RoomName::from(room);
                    let Some(live) = self.existing_room(&room) else {
                        continue;
                    };
                    let participant = person_of(participant);
                    let mut state = live.state.lock().await;
                    if !state.members.contains_key(&participant) {
                        continue;
                    }
                    let seq = state.next_seq();
                    let stalled = state.broadcast(
                        &Event::MediaOffer { seq, sdp },
                        Audience::Only(&participant),
                    );
                    self.handle_stalled(&live, &mut state, stalled);
                }
                MediaEvent::ActiveSpeaker { room, participant } => {
                    let room = RoomName::from(room);
                    let Some(live) = self.existing_room(&room) else {
                        continue;
                    };
                    let mut state = live.state.lock().await;
                    // Who speaks in a private room is not shown outside it, nor when they stop.
                    let participant = participant.map(person_of);
                    let space = match participant
                        .as_ref()
                        .and_then(|p| state.members.get(p))
                        .map(|m| m.info.space)
                    {
                        Some(space) => {
                            state.speaker_space = Some(space);
                            Some(space)
                        }
                        None => state.speaker_space.take(),
                    };
                    let seq = state.next_seq();
                    let event = Event::SpeakerActive {
                        seq,
                        identity: participant,
                    };
                    let audience = match space {
                        Some(space) => Audience::Space {
                            space,
                            except: None,
                        },
                        None => Audience::All,
                    };
                    let stalled = state.broadcast(&event, audience);
                    self.handle_stalled(&live, &mut state, stalled);
                }
                MediaEvent::Connected { room, participant } => {
                    self.set_media_state(
                        &room.into(),
                        &person_of(participant),
                        MediaState::Connected,
                    )
                    .await;
                }
                MediaEvent::Lost {
                    room,
                    participant,
                    reason,
                } => {
                    tracing::info!(%room, participant = %participant, reason, "media lost");
                    self.set_media_state(&room.into(), &person_of(participant), MediaState::Lost)
                        .await;
                }
            }
        }
    }

    async fn set_media_state(
        self: &Arc<Self>,
        room: &RoomName,
        identity: &PersonId,
        media: MediaState,
    ) {
        let Some(live) = self.existing_room(room) else {
            return;
        };
        let mut state = live.state.lock().await;
        if state
            .members
            .get(identity)
            .is_some_and(|m| m.info.media != media)
        {
            self.update_member(&live, &mut state, identity, |info| info.media = media);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_place_has_its_own_media_space() {
        let spaces: std::collections::BTreeSet<Space> =
            Place::ALL.into_iter().map(media_space).collect();
        assert_eq!(spaces.len(), Place::ALL.len());
        assert_eq!(media_space(Place::Lobby), Space::Lobby);
        assert_eq!(media_space(Place::Joint), Space::Joint);
    }
}

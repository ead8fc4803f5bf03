//! The hub: every live room, and the operations people and admins perform on them.
//!
//! Each live room's state sits behind its own async mutex, held across the database write that
//! records a change, so every member of a room sees the same changes in the same order and the
//! record matches what people saw. Rooms are independent: a slow room never delays another.
//! The hub map itself is a short-held std mutex, never held across an await.
//!
//! A dropped connection only detaches a member; a grace timer ends the presence later unless
//! the member resumes ([`Hub::resume`]) or joins again with its token (taking over its session).

use crate::ids;
use crate::live_room::{Audience, KillSwitch, Link, Member, Outbound, RoomState, close_code};
use crate::metrics::Metrics;
use crate::protocol::{
    ConnectionState, ErrorCode, Event, MAX_CHAT_CHARS, MediaKind, MediaState, PROTOCOL_VERSION,
    ParticipantInfo, Reply, RequestId, to_text,
};
use crate::recording::{Control, Recorders};
use crate::token::{Claims, TokenError, TokenKeys};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tiaojie_config::SignalingConfig;
use tiaojie_domain::clock::{Clock, now_millis};
use tiaojie_domain::{Grant, LeaveReason, Store, StoreError};
use tiaojie_media::{Sfu, StandingChange};
use tokio::sync::mpsc;

/// A failed operation: a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct SignalError {
    /// The code clients act on.
    pub code: ErrorCode,
    /// Detail.
    pub message: String,
}

impl SignalError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> SignalError {
        SignalError {
            code,
            message: message.into(),
        }
    }
}

impl From<TokenError> for SignalError {
    fn from(e: TokenError) -> Self {
        let code = match e {
            TokenError::Malformed => ErrorCode::TokenMalformed,
            TokenError::Algorithm => ErrorCode::TokenAlgorithm,
            TokenError::BadSignature => ErrorCode::TokenBadSignature,
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::NotYetValid => ErrorCode::TokenNotYetValid,
            TokenError::WrongIssuer => ErrorCode::TokenWrongIssuer,
            TokenError::WrongRoom => ErrorCode::TokenWrongRoom,
            TokenError::Revoked => ErrorCode::TokenRevoked,
        };
        SignalError::new(code, e.to_string())
    }
}

impl From<StoreError> for SignalError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RoomNotFound(_) => SignalError::new(ErrorCode::RoomNotFound, e.to_string()),
            StoreError::RoomClosed(_) => SignalError::new(ErrorCode::RoomClosed, e.to_string()),
            StoreError::RoomExists(_) => SignalError::new(ErrorCode::RoomExists, e.to_string()),
            StoreError::Invalid(_) => SignalError::new(ErrorCode::InvalidRequest, e.to_string()),
            StoreError::CaseExists(_) => SignalError::new(ErrorCode::CaseExists, e.to_string()),
            StoreError::CaseNotFound(_) => SignalError::new(ErrorCode::NotFound, e.to_string()),
            StoreError::Conflict => SignalError::new(ErrorCode::CaseState, e.to_string()),
            StoreError::Rule(rule) => {
                use tiaojie_domain::mediation::RuleError as R;
                let code = match &rule {
                    R::Invalid(_) => ErrorCode::InvalidRequest,
                    R::NotFound(_) => ErrorCode::NotFound,
                    R::State(_) => ErrorCode::CaseState,
                    R::Stale(_) => ErrorCode::StaleVersion,
                    R::ChecksMissing(_) => ErrorCode::ChecksMissing,
                };
                SignalError::new(code, rule.to_string())
            }
            other => {
                tracing::error!(error = %other, "storage failed");
                SignalError::new(ErrorCode::Internal, "storage is unavailable; try again")
            }
        }
    }
}

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
        space: tiaojie_media::Space,
    },
}

/// One live room: its name and its locked state.
#[derive(Debug)]
pub struct LiveRoom {
    /// Room name.
    pub name: String,
    pub(crate) state: Arc<tokio::sync::Mutex<RoomState>>,
}

/// A connection's hold on a member, after a successful join or resume.
#[derive(Debug, Clone)]
pub struct Session {
    /// The room.
    pub room: Arc<LiveRoom>,
    /// The member's identity.
    pub identity: String,
    /// The connection's generation.
    pub generation: u64,
}

/// Every live room and the server-wide signaling state.
pub struct Hub {
    store: Store,
    keys: Arc<TokenKeys>,
    config: SignalingConfig,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    rooms: Mutex<HashMap<String, Arc<LiveRoom>>>,
    /// Resume token → (room, identity).
    resume_index: Mutex<HashMap<String, (String, String)>>,
    /// Revoked token ids: the database's, kept in memory so a join costs no query for them.
    /// Only this server revokes, so the copy cannot go stale (multi-node will share it).
    revoked: Mutex<HashSet<String>>,
    next_generation: AtomicU64,
    shutting_down: AtomicBool,
    /// The SFU, when media is enabled.
    pub(crate) media: Option<Sfu>,
    /// The recorder.
    pub(crate) recorders: Arc<Recorders>,
    /// The time the workflow's rules see (time limits, invitations); tests move it.
    pub clock: Clock,
    /// Judicial confirmation: the server key that seals envelopes, the bridge connections.
    pub court: crate::court_link::CourtLink,
}

/// A new connection's outbound side: what the connection task reads, and the link the hub keeps.
pub struct Connection {
    /// The link to give [`Hub::join`] or [`Hub::resume`].
    pub link: Link,
    /// The queue the connection task writes out.
    pub rx: mpsc::Receiver<Outbound>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these maps leaves them consistent (single inserts/removes), so a
    // poisoned lock is taken over rather than taking the server down.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// A hub over this store and these keys; `revoked` are the stored revoked token ids.
    pub fn new(
        store: Store,
        keys: Arc<TokenKeys>,
        config: SignalingConfig,
        metrics: Arc<Metrics>,
        revoked: Vec<String>,
        media: Option<Sfu>,
        recorders: Arc<Recorders>,
    ) -> Hub {
        Hub {
            media,
            court: crate::court_link::CourtLink::new(recorders.key_der()),
            recorders,
            revoked: Mutex::new(revoked.into_iter().collect()),
            store,
            keys,
            config,
            metrics,
            rooms: Mutex::new(HashMap::new()),
            resume_index: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            clock: Clock::default(),
        }
    }

    /// The token keys.
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The signaling configuration.
    pub fn config(&self) -> &SignalingConfig {
        &self.config
    }

    /// Opens an outbound queue for a new connection.
    pub fn connect(&self) -> Connection {
        let (tx, rx) = mpsc::channel(self.config.outbound_queue);
        Connection {
            link: Link {
                tx,
                kill: Arc::new(KillSwitch::default()),
                generation: self.next_generation.fetch_add(1, Ordering::Relaxed),
            },
            rx,
        }
    }

    /// Verifies a token for `room`: signature, validity, room binding, revocation.
    pub async fn authenticate(
        &self,
        token: &str,
        room: Option<&str>,
    ) -> Result<Claims, SignalError> {
        let claims = self.keys.verify(token)?;
        if let Some(room) = room
            && claims.room.as_deref() != Some(room)
        {
            return Err(TokenError::WrongRoom.into());
        }
        if lock(&self.revoked).contains(&claims.jti) {
            return Err(TokenError::Revoked.into());
        }
        Ok(claims)
    }

    /// The live room, loading (or, if configured, creating) it from the store.
    async fn live_room(&self, name: &str) -> Result<Arc<LiveRoom>, SignalError> {
        if let Some(room) = lock(&self.rooms).get(name) {
            return Ok(room.clone());
        }
        let now = now_millis();
        let record = if self.config.auto_create_rooms {
            self.store.open_room(name, now).await?
        } else {
            let record = self.store.room(name).await?;
            if !record.is_open() {
                return Err(StoreError::RoomClosed(name.to_string()).into());
            }
            record
        };
        let capacity = record
            .max_participants
            .map_or(self.config.max_participants_per_room, |n| n.max(1) as usize);
        let lobby = record.lobby;
        let mut rooms = lock(&self.rooms);
        let room = rooms.entry(name.to_string()).or_insert_with(|| {
            self.metrics.rooms_live.fetch_add(1, Ordering::Relaxed);
            let mut state = RoomState::new(name.to_string(), capacity, self.config.resume_buffer);
            state.lobby = lobby;
            Arc::new(LiveRoom {
                name: name.to_string(),
                state: Arc::new(tokio::sync::Mutex::new(state)),
            })
        });
        Ok(room.clone())
    }

    /// The live room if anyone is in it.
    pub(crate) fn existing_room(&self, name: &str) -> Option<Arc<LiveRoom>> {
        lock(&self.rooms).get(name).cloned()
    }

    /// Takes an emptied room out of the hub.
    fn retire_if_empty(&self, room: &Arc<LiveRoom>, state: &mut RoomState) {
        if state.members.is_empty() && !state.retired {
            self.retire(room, state);
        }
    }

    fn retire(&self, room: &Arc<LiveRoom>, state: &mut RoomState) {
        state.retired = true;
        self.stop_recording(&room.name, state, "system", "everyone left the room");
        let mut rooms = lock(&self.rooms);
        if rooms.get(&room.name).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(&room.name);
            self.metrics.rooms_live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Enters a room with a join token. The `joined` reply is queued on `link` in order with
    /// the room's events. A member already present under this identity is taken over: its old
    /// connection is closed and the others see an update, not a leave and a join.
    pub async fn join(
        self: &Arc<Self>,
        id: Option<RequestId>,
        room_name: &str,
        token: &str,
        link: Link,
    ) -> Result<Session, SignalError> {
        if self.shutting_down.load(Ordering::Relaxed) {
            return Err(SignalError::new(
                ErrorCode::Internal,
                "the server is shutting down",
            ));
        }
        // Room-less admin tokens fail the room check too: they are for the API, not for rooms.
        let claims = self.authenticate(token, Some(room_name)).await?;
        self.case_membership(room_name, &claims).await?;
        loop {
            let room = self.live_room(room_name).await?;
            let mut state = room.state.lock().await;
            if state.retired {
                continue;
            }
            let generation = link.generation;
            let resume_token = ids::random_token(32);
            let now = now_millis();
            let (event, old_resume) = if let Some(member) = state.members.get_mut(&claims.sub) {
                member.attach(link);
                member.info.name = claims.name.clone();
                member.info.role = claims.role;
                member.info.grants = claims.grants.clone();
                member.jti = claims.jti.clone();
                member.token_exp = claims.exp;
                let old = std::mem::replace(&mut member.resume_token, resume_token.clone());
                (None, Some(old))
            } else {
                if state.members.len() >= state.capacity {
                    return Err(SignalError::new(
                        ErrorCode::RoomFull,
                        format!("room holds at most {} participants", state.capacity),
                    ));
                }
                let participation_id = match self
                    .store
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
                    space: if state.lobby && !claims.grants.contains(&Grant::Moderate) {
                        "lobby".into()
                    } else {
                        "joint".into()
                    },
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
            let others: Vec<ParticipantInfo> = state
                .members
                .values()
                .filter(|m| m.info.identity != claims.sub)
                .map(|m| m.info.clone())
                .collect();
            let seq_now = state.seq;
            let Some(me) = state.members.get(&claims.sub) else {
                return Err(SignalError::new(ErrorCode::Internal, "member vanished"));
            };
            let info = me.info.clone();
            me.reply(
                to_text(&Reply::Joined {
                    id,
                    v: PROTOCOL_VERSION,
                    room: room_name.to_string(),
                    you: info.clone(),
                    participants: others,
                    seq: seq_now,
                    resume_token: resume_token.clone(),
                    resume_grace_ms: self.config.resume_grace.as_millis() as u64,
                    recording: state.recording_status(),
                })
                .into(),
            );
            let seq = state.next_seq();
            let entered = info.clone();
            let event = match event {
                Some(()) => Event::ParticipantJoined {
                    seq,
                    participant: info,
                },
                None => Event::ParticipantUpdated {
                    seq,
                    participant: info,
                },
            };
            let stalled = state.broadcast(&event, Audience::AllBut(&claims.sub));
            tell_recording_present(&state, &entered);
            self.media_enter(room_name, &entered).await;
            {
                let mut index = lock(&self.resume_index);
                if let Some(old) = old_resume {
                    index.remove(&old);
                }
                index.insert(resume_token, (room_name.to_string(), claims.sub.clone()));
            }
            self.handle_stalled(&room, &mut state, stalled);
            self.metrics.joins.fetch_add(1, Ordering::Relaxed);
            tracing::info!(room = room_name, participant = %claims.sub, role = %claims.role, "joined");
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
        let failed = || {
            SignalError::new(
                ErrorCode::ResumeFailed,
                "this session can no longer be resumed; join again",
            )
        };
        let (room_name, identity) = lock(&self.resume_index)
            .get(resume_token)
            .cloned()
            .ok_or_else(failed)?;
        let room = self.existing_room(&room_name).ok_or_else(failed)?;
        let mut state = room.state.lock().await;
        let generation = link.generation;
        let new_token = ids::random_token(32);
        let seq_now = state.seq;
        let Some(member) = state
            .members
            .get_mut(&identity)
            .filter(|m| m.resume_token == resume_token)
        else {
            return Err(failed());
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
        let participants = state
            .members
            .values()
            .filter(|m| m.info.identity != identity)
            .map(|m| m.info.clone())
            .collect();
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
            let seq = state.next_seq();
            let stalled = state.broadcast(
                &Event::ParticipantUpdated {
                    seq,
                    participant: info,
                },
                Audience::AllBut(&identity),
            );
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

    /// The connection behind `session` ended without `leave`: keep the member for the grace
    /// period, tell the others it is reconnecting.
    pub async fn connection_lost(self: &Arc<Self>, session: &Session) {
        let mut state = session.room.state.lock().await;
        let Some(member) = state.members.get_mut(&session.identity) else {
            return;
        };
        if !member.is_owned_by(session.generation) {
            return; // another connection took over, or it was already cut off
        }
        member.detach();
        let epoch = member.disconnect_epoch;
        let info = member.info.clone();
        tracing::info!(room = %session.room.name, participant = %session.identity, "connection lost; holding for resume");
        self.start_grace_timer(&session.room, &session.identity, epoch);
        let seq = state.next_seq();
        let stalled = state.broadcast(
            &Event::ParticipantUpdated {
                seq,
                participant: info,
            },
            Audience::AllBut(&session.identity),
        );
        self.handle_stalled(&session.room, &mut state, stalled);
    }

    fn start_grace_timer(self: &Arc<Self>, room: &Arc<LiveRoom>, identity: &str, epoch: u64) {
        let hub = self.clone();
        let room = room.clone();
        let identity = identity.to_string();
        let grace = self.config.resume_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            hub.grace_expired(&room, &identity, epoch).await;
        });
    }

    /// Members cut off because their queue overflowed: they are now reconnecting.
    pub(crate) fn handle_stalled(
        self: &Arc<Self>,
        room: &Arc<LiveRoom>,
        state: &mut RoomState,
        mut stalled: Vec<String>,
    ) {
        while let Some(identity) = stalled.pop() {
            let Some(member) = state.members.get(&identity) else {
                continue;
            };
            let (epoch, info) = (member.disconnect_epoch, member.info.clone());
            tracing::warn!(room = %room.name, participant = %identity, "outbound queue full; cut off, may resume");
            self.start_grace_timer(room, &identity, epoch);
            let seq = state.next_seq();
            stalled.extend(state.broadcast(
                &Event::ParticipantUpdated {
                    seq,
                    participant: info,
                },
                Audience::AllBut(&identity),
            ));
        }
    }

    async fn grace_expired(self: &Arc<Self>, room: &Arc<LiveRoom>, identity: &str, epoch: u64) {
        let mut state = room.state.lock().await;
        let expired = state
            .members
            .get(identity)
            .is_some_and(|m| m.link.is_none() && m.disconnect_epoch == epoch);
        if expired {
            tracing::info!(room = %room.name, participant = %identity, "resume grace period over");
            self.end_presence(room, &mut state, identity, LeaveReason::ConnectionLost, "")
                .await;
        }
    }

    /// Removes a member for good: records why, tells the others, retires an emptied room.
    async fn end_presence(
        self: &Arc<Self>,
        room: &Arc<LiveRoom>,
        state: &mut RoomState,
        identity: &str,
        reason: LeaveReason,
        detail: &str,
    ) {
        let Some(member) = state.members.remove(identity) else {
            return;
        };
        self.metrics.participants.fetch_sub(1, Ordering::Relaxed);
        lock(&self.resume_index).remove(&member.resume_token);
        if let Some(r) = &state.recording {
            r.tell(Control::Left {
                identity: identity.to_string(),
            });
        }
        self.media_leave(&room.name, identity).await;
        if let Err(e) = self
            .store
            .record_leave(member.participation_id, reason, detail, now_millis())
            .await
        {
            tracing::error!(room = %room.name, participant = %identity, error = %e, "could not record leave");
        }
        let seq = state.next_seq();
        let stalled = state.broadcast(
            &Event::ParticipantLeft {
                seq,
                identity: identity.to_string(),
                reason: reason.as_str().to_string(),
            },
            Audience::All,
        );
        self.handle_stalled(room, state, stalled);
        self.retire_if_empty(room, state);
    }

    /// The room's state, locked, if `session`'s connection still owns its member.
    pub(crate) async fn owned_state<'a>(
        &self,
        session: &'a Session,
    ) -> Result<tokio::sync::MutexGuard<'a, RoomState>, SignalError> {
        let state = session.room.state.lock().await;
        if state
            .members
            .get(&session.identity)
            .is_some_and(|m| m.is_owned_by(session.generation))
        {
            Ok(state)
        } else {
            Err(SignalError::new(
                ErrorCode::NotJoined,
                "this connection no longer holds the session",
            ))
        }
    }

    /// `leave`: ends the presence; queues `left` and a normal close.
    pub async fn leave(
        self: &Arc<Self>,
        session: &Session,
        id: Option<RequestId>,
    ) -> Result<(), SignalError> {
        let mut state = self.owned_state(session).await?;
        if let Some(link) = state
            .members
            .get(&session.identity)
            .and_then(|m| m.link.as_ref())
        {
            let _ = link
                .tx
                .try_send(Outbound::Text(to_text(&Reply::Left { id }).into()));
            let _ = link.tx.try_send(Outbound::Close {
                code: close_code::NORMAL,
                reason: "left".into(),
            });
        }
        tracing::info!(room = %session.room.name, participant = %session.identity, "left");
        self.end_presence(
            &session.room,
            &mut state,
            &session.identity,
            LeaveReason::Left,
            "",
        )
        .await;
        Ok(())
    }

    /// `participants`: everyone present and the current seq.
    pub async fn participants(
        &self,
        session: &Session,
        id: Option<RequestId>,
    ) -> Result<(), SignalError> {
        let state = self.owned_state(session).await?;
        let reply = Reply::Participants {
            id,
            participants: state.participants(),
            seq: state.seq,
        };
        reply_to(&state, &session.identity, &reply);
        Ok(())
    }

    /// `chat`: to the room, or to one participant present.
    pub async fn chat(
        self: &Arc<Self>,
        session: &Session,
        id: Option<RequestId>,
        text: String,
        to: Option<String>,
    ) -> Result<(), SignalError> {
        if text.trim().is_empty() || text.chars().count() > MAX_CHAT_CHARS {
            return Err(SignalError::new(
                ErrorCode::InvalidMessage,
                format!("chat text must be 1 to {MAX_CHAT_CHARS} characters"),
            ));
        }
        let mut state = self.owned_state(session).await?;
        // Chat stays in the sender's space: a private room's chat reaches nobody outside it,
        // and a direct message only someone in the same space (the server decides, not the
        // client).
        let space = state
            .members
            .get(&session.identity)
            .map(|m| m.info.space.clone())
            .unwrap_or_default();
        if let Some(target) = &to
            && (target == &session.identity
                || state
                    .members
                    .get(target)
                    .is_none_or(|m| m.info.space != space))
        {
            return Err(SignalError::new(
                ErrorCode::ParticipantNotFound,
                format!("{target:?} is not another participant in your part of the room"),
            ));
        }
        let seq = state.next_seq();
        let at = now_millis();
        let message_id = ids::random_id();
        let event = Event::Chat {
            seq,
            message_id: message_id.clone(),
            from: session.identity.clone(),
            to: to.clone(),
            text,
            at,
        };
        let stalled = match &to {
            Some(target) => state.broadcast(&event, Audience::Only(target)),
            None => state.broadcast(
                &event,
                Audience::Space {
                    space: &space,
                    except: Some(&session.identity),
                },
            ),
        };
        reply_to(
            &state,
            &session.identity,
            &Reply::ChatSent {
                id,
                message_id,
                seq,
                at,
            },
        );
        self.handle_stalled(&session.room, &mut state, stalled);
        Ok(())
    }

    /// `mute` from the participant itself.
    pub async fn self_mute(
        self: &Arc<Self>,
        session: &Session,
        id: Option<RequestId>,
        kind: MediaKind,
        muted: bool,
    ) -> Result<(), SignalError> {
        let mut state = self.owned_state(session).await?;
        reply_to(&state, &session.identity, &Reply::Ok { id });
        self.update_member(&session.room, &mut state, &session.identity, |info| {
            set_muted(info, kind, muted)
        });
        Ok(())
    }

    /// A case's session room admits the case's people only, each in their role in the case
    /// (an admin anywhere): a token issued around the case API cannot bring in someone else.
    /// An ended session's room admits nobody (its links are follow-up links to the case).
    async fn case_membership(&self, room: &str, claims: &Claims) -> Result<(), SignalError> {
        let Some((case, n)) = self.store.case_of_room(room).await? else {
            return Ok(());
        };
        let case = self.store.case(&case).await?;
        if case
            .session(n)
            .is_ok_and(|s| s.phase == tiaojie_domain::mediation::Phase::Ended)
        {
            return Err(SignalError::new(
                ErrorCode::RoomClosed,
                "this mediation session has ended",
            ));
        }
        if claims.role == tiaojie_domain::Role::Admin {
            return Ok(());
        }
        match case.member(&claims.sub) {
            Some(m) if m.role == claims.role => Ok(()),
            Some(m) => Err(SignalError::new(
                ErrorCode::Forbidden,
                format!(
                    "{} is the case's {}, not its {}",
                    claims.sub, m.role, claims.role
                ),
            )),
            None => Err(SignalError::new(
                ErrorCode::Forbidden,
                format!("{} is not a member of this room's case", claims.sub),
            )),
        }
    }

    /// The session member's role, as the audit log names it.
    pub(crate) async fn role_of(&self, session: &Session) -> Result<String, SignalError> {
        Ok(self
            .owned_state(session)
            .await?
            .members
            .get(&session.identity)
            .map(|m| m.info.role.as_str().to_string())
            .unwrap_or_default())
    }

    /// Appends an audit entry for something done in `room`: on `case:<id>` in a case's session
    /// room (beside the case API's entries), else on `room:<name>`.
    pub(crate) async fn audit_in_room(
        &self,
        room: &str,
        by: &str,
        role: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), SignalError> {
        let target = match self.store.case_of_room(room).await? {
            Some((case, _)) => format!("case:{case}"),
            None => format!("room:{room}"),
        };
        let entry =
            tiaojie_domain::AuditEntry::new(now_millis(), by, role, action, &target, detail);
        self.store.audit(&entry).await?;
        Ok(())
    }

    pub(crate) fn update_member(
        self: &Arc<Self>,
        room: &Arc<LiveRoom>,
        state: &mut RoomState,
        identity: &str,
        change: impl FnOnce(&mut ParticipantInfo),
    ) -> Option<ParticipantInfo> {
        let member = state.members.get_mut(identity)?;
        let space_before = member.info.space.clone();
        change(&mut member.info);
        let info = member.info.clone();
        if info.space != space_before {
            tell_recording_present(state, &info);
        }
        let seq = state.next_seq();
        let stalled = state.broadcast(
            &Event::ParticipantUpdated {
                seq,
                participant: info.clone(),
            },
            Audience::All,
        );
        self.handle_stalled(room, state, stalled);
        Some(info)
    }

    /// Fails with `forbidden` (and `refusal`) unless the session's member holds `grant` now
    /// (grants can change while connected).
    pub(crate) async fn require_grant(
        &self,
        session: &Session,
        grant: Grant,
        refusal: &str,
    ) -> Result<(), SignalError> {
        let state = self.owned_state(session).await?;
        let allowed = state
            .members
            .get(&session.identity)
            .is_some_and(|m| m.info.grants.contains(&grant));
        if allowed {
            Ok(())
        } else {
            Err(SignalError::new(ErrorCode::Forbidden, refusal))
        }
    }

    /// `moderate`: a participant with the `moderate` grant mutes or removes another one.
    pub async fn moderate(
        self: &Arc<Self>,
        session: &Session,
        id: Option<RequestId>,
        target: &str,
        action: Moderation,
    ) -> Result<(), SignalError> {
        self.require_grant(
            session,
            Grant::Moderate,
            "moderating needs the moderate grant",
        )
        .await?;
        // A mediator moves themself too (into a private room with one side); muting or
        // removing oneself is not moderation.
        if target == session.identity && !matches!(action, Moderation::Move { .. }) {
            return Err(SignalError::new(
                ErrorCode::InvalidMessage,
                "moderate acts on another participant",
            ));
        }
        let room = session.room.name.as_str();
        let role = self.role_of(session).await?;
        // Each act is audited once done (who was where, who was silenced or put out).
        let (what, detail) = match &action {
            Moderation::Mute { kind, muted } => {
                self.moderate_mute(room, target, *kind, *muted).await?;
                ("person.mute", mute_detail(target, *kind, *muted))
            }
            Moderation::Remove { reason } => {
                self.remove(room, target, reason).await?;
                ("person.remove", format!("{target}: {reason}"))
            }
            Moderation::Move { space } => {
                self.move_participant(room, target, space).await?;
                let to = crate::media::space_text(space);
                ("person.move", format!("{target} to {to}"))
            }
        };
        self.audit_in_room(room, &session.identity, &role, what, &detail)
            .await?;
        tracing::info!(room, participant = %session.identity, target, ?action, "moderated");
        let state = self.owned_state(session).await?;
        reply_to(&state, &session.identity, &Reply::Ok { id });
        Ok(())
    }

    // ---- control API operations ----

    /// Participants present in a room (empty if nobody is; `RoomNotFound` if no such room).
    pub async fn room_participants(&self, room: &str) -> Result<Vec<ParticipantInfo>, SignalError> {
        match self.existing_room(room) {
            Some(live) => Ok(live.state.lock().await.participants()),
            None => {
                self.store.room(room).await?;
                Ok(Vec::new())
            }
        }
    }

    /// How many participants each live room has.
    pub async fn live_counts(&self) -> HashMap<String, usize> {
        let rooms: Vec<Arc<LiveRoom>> = lock(&self.rooms).values().cloned().collect();
        let mut counts = HashMap::new();
        for room in rooms {
            let n = room.state.lock().await.members.len();
            counts.insert(room.name.clone(), n);
        }
        counts
    }

    pub(crate) async fn locked_member_room(
        &self,
        room: &str,
        identity: &str,
    ) -> Result<(Arc<LiveRoom>, tokio::sync::OwnedMutexGuard<RoomState>), SignalError> {
        let not_found = || {
            SignalError::new(
                ErrorCode::ParticipantNotFound,
                format!("{identity:?} is not in room {room:?}"),
            )
        };
        let live = match self.existing_room(room) {
            Some(live) => live,
            None => {
                self.store.room(room).await?;
                return Err(not_found());
            }
        };
        // An owned guard lets the caller keep the room locked across its database writes.
        let guard = live.state.clone().lock_owned().await;
        if !guard.members.contains_key(identity) {
            return Err(not_found());
        }
        Ok((live, guard))
    }

    /// Removes a participant: revokes its token, ends its presence with the reason, sends it
    /// `removed` and closes its socket with code 4001.
    pub async fn remove(
        self: &Arc<Self>,
        room: &str,
        identity: &str,
        reason: &str,
    ) -> Result<(), SignalError> {
        let (live, mut state) = self.locked_member_room(room, identity).await?;
        let Some(member) = state.members.get(identity) else {
            return Err(SignalError::new(ErrorCode::ParticipantNotFound, "gone"));
        };
        let (jti, exp) = (member.jti.clone(), member.token_exp);
        self.store
            .revoke_token(
                &jti,
                room,
                identity,
                reason,
                exp.saturating_mul(1000),
                now_millis(),
            )
            .await?;
        lock(&self.revoked).insert(jti);
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
        tracing::info!(room, participant = identity, reason, "removed");
        self.end_presence(&live, &mut state, identity, LeaveReason::Removed, reason)
            .await;
        Ok(())
    }

    /// Mutes or unmutes a participant's audio or video (a moderator's action).
    pub async fn moderate_mute(
        self: &Arc<Self>,
        room: &str,
        identity: &str,
        kind: MediaKind,
        muted: bool,
    ) -> Result<ParticipantInfo, SignalError> {
        let (live, mut state) = self.locked_member_room(room, identity).await?;
        // A moderator's mute is enforced by the media plane, not left to the muted client.
        self.media_update(room, identity, StandingChange::Block(kind.media(), muted))
            .await;
        self.update_member(&live, &mut state, identity, |info| {
            set_muted(info, kind, muted)
        })
        .ok_or_else(|| SignalError::new(ErrorCode::ParticipantNotFound, "gone"))
    }

    /// Replaces a participant's grants, effective at once.
    pub async fn update_grants(
        self: &Arc<Self>,
        room: &str,
        identity: &str,
        mut grants: Vec<Grant>,
    ) -> Result<ParticipantInfo, SignalError> {
        grants.sort();
        grants.dedup();
        let (live, mut state) = self.locked_member_room(room, identity).await?;
        let change = StandingChange::Grants {
            publish: grants.contains(&Grant::Publish),
            subscribe: grants.contains(&Grant::Subscribe),
        };
        self.media_update(room, identity, change).await;
        self.update_member(&live, &mut state, identity, |info| info.grants = grants)
            .ok_or_else(|| SignalError::new(ErrorCode::ParticipantNotFound, "gone"))
    }

    /// Closes a room: recorded first (no join gets in after), then everyone is told and
    /// disconnected with code 4003.
    pub async fn close_room(
        self: &Arc<Self>,
        room: &str,
        reason: &str,
    ) -> Result<tiaojie_domain::Room, SignalError> {
        let record = self.store.close_room(room, reason, now_millis()).await?;
        if let Some(live) = self.existing_room(room) {
            let mut state = live.state.lock().await;
            self.evict_all(
                &live,
                &mut state,
                LeaveReason::RoomClosed,
                reason,
                close_code::ROOM_CLOSED,
            )
            .await;
        }
        tracing::info!(room, reason, "room closed");
        Ok(record)
    }

    async fn evict_all(
        self: &Arc<Self>,
        live: &Arc<LiveRoom>,
        state: &mut RoomState,
        why: LeaveReason,
        reason: &str,
        code: u16,
    ) {
        let seq = state.next_seq();
        let event = match why {
            LeaveReason::ServerShutdown => Event::ServerShutdown {
                seq,
                reason: reason.to_string(),
            },
            _ => Event::RoomClosed {
                seq,
                reason: reason.to_string(),
            },
        };
        let _ = state.broadcast(&event, Audience::All);
        self.stop_recording(&live.name, state, "system", reason);
        let now = now_millis();
        let members = std::mem::take(&mut state.members);
        for (identity, member) in members {
            if let Some(link) = &member.link {
                let _ = link.tx.try_send(Outbound::Close {
                    code,
                    reason: truncate_reason(reason),
                });
            }
            lock(&self.resume_index).remove(&member.resume_token);
            self.metrics.participants.fetch_sub(1, Ordering::Relaxed);
            self.media_leave(&live.name, &identity).await;
            if let Err(e) = self
                .store
                .record_leave(member.participation_id, why, reason, now)
                .await
            {
                tracing::error!(room = %live.name, participant = %identity, error = %e, "could not record leave");
            }
        }
        self.retire(live, state);
    }

    /// Graceful shutdown: refuses new joins, tells every participant, records every presence
    /// as ended, and closes every socket with code 1001.
    pub async fn shutdown(self: &Arc<Self>, reason: &str) {
        self.shutting_down.store(true, Ordering::Relaxed);
        let rooms: Vec<Arc<LiveRoom>> = lock(&self.rooms).values().cloned().collect();
        for live in rooms {
            let mut state = live.state.lock().await;
            self.evict_all(
                &live,
                &mut state,
                LeaveReason::ServerShutdown,
                reason,
                close_code::GOING_AWAY,
            )
            .await;
        }
    }
}

fn reply_to(state: &RoomState, identity: &str, reply: &Reply) {
    if let Some(member) = state.members.get(identity) {
        member.reply(to_text(reply).into());
    }
}

/// Tells the room's capture (if any) where someone now is.
fn tell_recording_present(state: &RoomState, info: &ParticipantInfo) {
    if let Some(r) = &state.recording {
        r.tell(Control::Present {
            identity: info.identity.clone(),
            name: info.name.clone(),
            role: info.role.as_str().to_string(),
            space: info.space.clone(),
        });
    }
}

/// An audit detail for a moderator's mute: whose, what, on or off.
pub(crate) fn mute_detail(target: &str, kind: MediaKind, muted: bool) -> String {
    let state = if muted { "muted" } else { "unmuted" };
    format!("{target} {} {state}", kind.media().as_str())
}

fn set_muted(info: &mut ParticipantInfo, kind: MediaKind, muted: bool) {
    match kind {
        MediaKind::Audio => info.audio_muted = muted,
        MediaKind::Video => info.video_muted = muted,
    }
}

/// Close-frame reasons are limited to 123 bytes by the WebSocket protocol.
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

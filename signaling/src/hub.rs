//! The hub: every live room, and the operations people and admins perform on them.
//!
//! Each live room's state sits behind its own async mutex, held across the database write that
//! records a change, so every member of a room sees the same changes in the same order and the
//! record matches what people saw. Rooms are independent: a slow room never delays another.
//! The hub map itself is a short-held std mutex, never held across an await.
//!
//! A dropped connection only detaches a member; a grace timer ends the presence later unless
//! the member resumes ([`Hub::resume`]) or joins again with its token (taking over its session).

use crate::live_room::{Audience, KillSwitch, Link, Outbound, RoomState, close_code};
use crate::media_plane::MediaPlane;
use crate::metrics::Metrics;
use crate::protocol::{
    ErrorCode, ErrorDetails, Event, MediaKind, ParticipantInfo, Reply, RequestId, SignalReason,
    to_text,
};
use crate::recording::{Control, Presence, Recorders};
use crate::token::{Claims, TokenError, TokenKeys};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tiaojie_config::SignalingConfig;
use tiaojie_domain::clock::{Clock, now_millis};
use tiaojie_domain::mediation::{Place, Refusal, RuleError, RuleKind};
use tiaojie_domain::permission::Denied;
use tiaojie_domain::{AuditAction, CaseId, Grant, LeaveReason, PersonId, RoomName};
use tiaojie_store::{Store, StoreError};
use tokio::sync::mpsc;

/// A failed operation: a stable code, an English message for logs and programs, and the
/// facts a page needs to say it in the person's language.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct SignalError {
    /// The code clients act on.
    pub code: ErrorCode,
    /// Detail, in English.
    pub message: String,
    /// Who, which check, which state: tagged by `reason`.
    pub details: Option<ErrorDetails>,
}

impl SignalError {
    /// An error with this code and message; the code says it all.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> SignalError {
        SignalError {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// An error with this code for this reason of signaling's own.
    pub fn because(code: ErrorCode, reason: SignalReason) -> SignalError {
        SignalError {
            code,
            message: reason.to_string(),
            details: Some(ErrorDetails::Signal(reason)),
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

impl From<RuleError> for SignalError {
    fn from(rule: RuleError) -> Self {
        let code = match rule.kind() {
            RuleKind::Invalid => ErrorCode::InvalidRequest,
            RuleKind::NotFound => ErrorCode::NotFound,
            RuleKind::State => ErrorCode::CaseState,
            RuleKind::Stale => ErrorCode::StaleVersion,
            RuleKind::ChecksMissing => ErrorCode::ChecksMissing,
        };
        SignalError {
            code,
            message: rule.to_string(),
            details: Some(ErrorDetails::Rule(rule)),
        }
    }
}

impl From<Refusal> for SignalError {
    fn from(refusal: Refusal) -> Self {
        let code = match &refusal {
            Refusal::NotAMember { .. } | Refusal::NotTheirRoom { .. } => ErrorCode::Forbidden,
            Refusal::PrivateRoomsClosed { .. } => ErrorCode::CaseState,
            Refusal::SessionEnded { .. } => ErrorCode::RoomClosed,
            Refusal::ChecksMissing { .. } => ErrorCode::ChecksMissing,
        };
        SignalError {
            code,
            message: refusal.to_string(),
            details: Some(ErrorDetails::Admission(refusal)),
        }
    }
}

impl From<Denied> for SignalError {
    fn from(denied: Denied) -> Self {
        SignalError {
            code: ErrorCode::Forbidden,
            message: denied.to_string(),
            details: Some(ErrorDetails::Permission(denied)),
        }
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
            StoreError::Rule(rule) => rule.into(),
            other => {
                tracing::error!(error = %other, "storage failed");
                SignalError::new(ErrorCode::Internal, "storage is unavailable; try again")
            }
        }
    }
}

/// Who is kept out, as stored: read at start, kept in memory for every token check.
#[derive(Debug, Default)]
pub struct ShutOut {
    /// Revoked token ids.
    pub revoked_tokens: Vec<String>,
    /// (room, person) removed and not let back.
    pub removed: Vec<(RoomName, PersonId)>,
}

/// One live room: its name and its locked state.
#[derive(Debug)]
pub struct LiveRoom {
    /// Room name.
    pub name: RoomName,
    pub(crate) state: Arc<tokio::sync::Mutex<RoomState>>,
}

/// A connection's hold on a member, after a successful join or resume.
#[derive(Debug, Clone)]
pub struct Session {
    /// The room.
    pub room: Arc<LiveRoom>,
    /// The member's identity.
    pub identity: PersonId,
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
    rooms: Mutex<HashMap<RoomName, Arc<LiveRoom>>>,
    /// Resume token → (room, identity).
    pub(crate) resume_index: Mutex<HashMap<String, (RoomName, PersonId)>>,
    /// Connections following a case from outside its rooms (`follow`), by case id.
    followers: Mutex<HashMap<CaseId, Vec<Follower>>>,
    /// Revoked token ids: the database's, kept in memory so a join costs no query for them.
    /// Only this server revokes, so the copy cannot go stale (multi-node will share it).
    pub(crate) revoked: Mutex<HashSet<String>>,
    /// (room, person) removed and not yet let back: every link of theirs for the room fails.
    pub(crate) removed: Mutex<HashSet<(RoomName, PersonId)>>,
    next_generation: AtomicU64,
    pub(crate) shutting_down: AtomicBool,
    /// The media plane (the SFU; a fake in unit tests), when media is enabled.
    pub(crate) media: Option<Arc<dyn MediaPlane>>,
    /// The recorder.
    pub(crate) recorders: Arc<Recorders>,
    /// The time the workflow's rules see (time limits, invitations); tests move it.
    pub clock: Clock,
}

/// A connection following a case: its generation (to forget it when it ends) and its queue.
type Follower = (u64, mpsc::Sender<Outbound>);

/// A new connection's outbound side: what the connection task reads, and the link the hub keeps.
pub struct Connection {
    /// The link to give [`Hub::join`] or [`Hub::resume`].
    pub link: Link,
    /// The queue the connection task writes out.
    pub rx: mpsc::Receiver<Outbound>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
        shut_out: ShutOut,
        media: Option<Arc<dyn MediaPlane>>,
        recorders: Arc<Recorders>,
    ) -> Hub {
        Hub {
            media,
            recorders,
            revoked: Mutex::new(shut_out.revoked_tokens.into_iter().collect()),
            removed: Mutex::new(shut_out.removed.into_iter().collect()),
            store,
            keys,
            config,
            metrics,
            rooms: Mutex::new(HashMap::new()),
            followers: Mutex::new(HashMap::new()),
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
        room: Option<&RoomName>,
    ) -> Result<Claims, SignalError> {
        let claims = self.keys.verify(token)?;
        if let Some(room) = room
            && claims.room.as_ref() != Some(room)
        {
            return Err(TokenError::WrongRoom.into());
        }
        if lock(&self.revoked).contains(&claims.jti) {
            return Err(TokenError::Revoked.into());
        }
        // Not just the link they were removed with: a new invitation or a follow-up link for
        // the same room is theirs too (on signaling and on the case API alike).
        if let Some(room) = &claims.room
            && lock(&self.removed).contains(&(room.clone(), claims.sub.clone()))
        {
            return Err(TokenError::Revoked.into());
        }
        Ok(claims)
    }

    /// The live room, loading (or, if configured, creating) it from the store; `case` is the
    /// case and session it is, if any (found by the join's membership check).
    pub(crate) async fn live_room(
        &self,
        name: &RoomName,
        case: Option<(CaseId, u32)>,
    ) -> Result<Arc<LiveRoom>, SignalError> {
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
        let room = rooms.entry(name.clone()).or_insert_with(|| {
            self.metrics.rooms_live.fetch_add(1, Ordering::Relaxed);
            let mut state = RoomState::new(name.clone(), capacity, self.config.resume_buffer);
            state.lobby = lobby;
            state.case = case;
            Arc::new(LiveRoom {
                name: name.clone(),
                state: Arc::new(tokio::sync::Mutex::new(state)),
            })
        });
        Ok(room.clone())
    }

    /// The live room if anyone is in it.
    pub(crate) fn existing_room(&self, name: &RoomName) -> Option<Arc<LiveRoom>> {
        lock(&self.rooms).get(name).cloned()
    }

    /// Whether anyone is in `name` now (connected or within the resume grace period).
    pub fn is_live(&self, name: &RoomName) -> bool {
        lock(&self.rooms).contains_key(name)
    }

    /// Takes an emptied room out of the hub.
    pub(crate) fn retire_if_empty(&self, room: &Arc<LiveRoom>, state: &mut RoomState) {
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

    /// `follow`: the connection on `link` hears of the case's changes from now on. A session
    /// token follows its room's case (an ended session's too: a follow-up link), as a member
    /// in the token's role; a staff token follows `case` if the permission matrix lets it
    /// read that case. Returns the case id.
    pub async fn follow(
        &self,
        id: Option<RequestId>,
        token: &str,
        case: Option<&CaseId>,
        link: &Link,
    ) -> Result<CaseId, SignalError> {
        let claims = self.authenticate(token, None).await?;
        let case_id = match (&claims.room, case) {
            (Some(room), _) => self
                .store
                .case_of_room(room)
                .await?
                .map(|(case, _)| case)
                .ok_or_else(|| SignalError::new(ErrorCode::NotFound, "this room is no case's"))?,
            (None, Some(case)) => case.clone(),
            (None, None) => {
                return Err(SignalError::new(
                    ErrorCode::InvalidMessage,
                    "follow with a staff token names the case",
                ));
            }
        };
        let state = self.store.case(&case_id).await?;
        let role = if claims.has(Grant::Admin) {
            tiaojie_domain::Role::Admin
        } else {
            claims.role
        };
        let member = match &claims.room {
            Some(_) => state
                .member(&claims.sub)
                .is_some_and(|m| m.role == claims.role),
            None => state.mediator().is_some_and(|m| m.id == claims.sub),
        };
        tiaojie_domain::permission::check(
            tiaojie_domain::Action::CaseRead,
            tiaojie_domain::Asker {
                role,
                member,
                acting_for: None,
                person: &claims.sub,
            },
        )?;
        lock(&self.followers)
            .entry(case_id.clone())
            .or_default()
            .push((link.generation, link.tx.clone()));
        let reply = Reply::Following {
            id,
            case: case_id.clone(),
        };
        let _ = link.tx.try_send(Outbound::Text(to_text(&reply).into()));
        Ok(case_id)
    }

    /// The connection `generation` no longer follows `case`.
    pub fn unfollow(&self, case: &CaseId, generation: u64) {
        let mut followers = lock(&self.followers);
        if let Some(list) = followers.get_mut(case) {
            list.retain(|(g, _)| *g != generation);
            if list.is_empty() {
                followers.remove(case);
            }
        }
    }

    /// Whether anyone would hear of a change to `case` now: a connection following it, or a
    /// live session room of it. Lets a change nobody sees (a delivery acknowledged while no
    /// page is open) skip reading the case to announce it.
    pub fn anyone_hears(&self, case: &CaseId) -> bool {
        lock(&self.followers).contains_key(case)
            || lock(&self.rooms)
                .keys()
                .any(|room| room.is_session_room_of(case))
    }

    /// Tells the connections following `case` about `event`; one that stopped reading is
    /// dropped from the list (its page may follow again).
    pub(crate) fn tell_followers(&self, case: &CaseId, event: &Event) {
        let text: Arc<str> = to_text(event).into();
        let mut followers = lock(&self.followers);
        if let Some(list) = followers.get_mut(case) {
            list.retain(|(_, tx)| tx.try_send(Outbound::Text(text.clone())).is_ok());
        }
    }

    /// `wanted` if the admission rule lets `identity` (in `role`) stand there now, else the
    /// lobby. Outside a case's session room, anywhere. The caller holds the room's lock, so
    /// the case read here is no older than any change whose re-check is still to come.
    pub(crate) async fn admitted(
        &self,
        state: &RoomState,
        identity: &PersonId,
        role: tiaojie_domain::Role,
        wanted: Place,
    ) -> Result<Place, SignalError> {
        let Some((case, n)) = &state.case else {
            return Ok(wanted);
        };
        if wanted == Place::Lobby {
            return Ok(wanted);
        }
        let case = self.store.case(case).await?;
        let allowed = case
            .admission(*n, identity, role, wanted, state.recording_now())
            .is_ok();
        Ok(if allowed { wanted } else { Place::Lobby })
    }

    /// After a change to a case: everyone in its session room `room` who may no longer stand
    /// where they are (a failed identity check, a consent withdrawn) goes back to the lobby,
    /// and the move is audited.
    pub async fn recheck_room(self: &Arc<Self>, room: &RoomName) -> Result<(), SignalError> {
        let Some(live) = self.existing_room(room) else {
            return Ok(());
        };
        let Some((case_id, n)) = live.state.lock().await.case.clone() else {
            return Ok(());
        };
        // Nothing is recorded without every present party's consent: a consent withdrawn
        // pauses the recording (it resumes once they consent again) rather than putting them
        // out of the mediation.
        let case = self.store.case(&case_id).await?;
        // An ended session's room is closed next, everyone with it: nobody is moved first.
        if case
            .session(n)
            .is_ok_and(|s| s.phase == tiaojie_domain::mediation::Phase::Ended)
        {
            return Ok(());
        }
        let withdrawn = {
            let state = live.state.lock().await;
            let present: Vec<&PersonId> = state.members.keys().collect();
            if state.recording_now() {
                case.recording_consent_missing(n, &present)
            } else {
                Vec::new()
            }
        };
        if !withdrawn.is_empty() {
            let who: Vec<&str> = withdrawn.iter().map(|m| m.person.as_str()).collect();
            let by = format!("consent withdrawn by {}", who.join(", "));
            if let Err(e) = self
                .recording_action(room, &by, crate::protocol::RecordAction::Pause, None)
                .await
            {
                tracing::warn!(%room, error = %e.message, "could not pause the recording");
            }
        }
        let mut state = live.state.lock().await;
        let case = self.store.case(&case_id).await?;
        let standing: Vec<(PersonId, tiaojie_domain::Role, Place)> = state
            .members
            .values()
            .map(|m| (m.info.identity.clone(), m.info.role, m.info.space))
            .collect();
        let leaving = case.must_leave(
            n,
            standing.iter().map(|(p, r, place)| (p, *r, *place)),
            state.recording_now(),
        );
        for (person, why) in leaving {
            tracing::info!(%room, participant = %person, %why, "back to the lobby");
            self.place_member(&live, &mut state, &person, Place::Lobby)
                .await?;
            self.audit_in_room(
                room,
                "system",
                "system",
                AuditAction::PersonMove,
                &format!("{person} to lobby: {why}"),
            )
            .await?;
        }
        Ok(())
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
        let stalled = state.broadcast_presence(None, &info, Some(&session.identity));
        self.handle_stalled(&session.room, &mut state, stalled);
    }

    fn start_grace_timer(self: &Arc<Self>, room: &Arc<LiveRoom>, identity: &PersonId, epoch: u64) {
        let hub = self.clone();
        let room = room.clone();
        let identity = identity.clone();
        let grace = self.config.resume_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            hub.grace_expired(&room, &identity, epoch).await;
        });
    }

    /// Tells those of `room` whom `audience` names: the event is made with the room's next
    /// sequence number, and a member whose queue is full is cut off (and may resume) rather
    /// than waited for. `false` if the room is not live (nobody to tell).
    pub async fn announce(
        self: &Arc<Self>,
        room: &RoomName,
        audience: Audience<'_>,
        event: impl FnOnce(u64) -> Event,
    ) -> bool {
        let Some(live) = self.existing_room(room) else {
            return false;
        };
        let mut state = live.state.lock().await;
        let seq = state.next_seq();
        let stalled = state.broadcast(&event(seq), audience);
        self.handle_stalled(&live, &mut state, stalled);
        true
    }

    /// Members cut off because their queue overflowed: they are now reconnecting.
    pub(crate) fn handle_stalled(
        self: &Arc<Self>,
        room: &Arc<LiveRoom>,
        state: &mut RoomState,
        mut stalled: Vec<PersonId>,
    ) {
        while let Some(identity) = stalled.pop() {
            let Some(member) = state.members.get(&identity) else {
                continue;
            };
            let (epoch, info) = (member.disconnect_epoch, member.info.clone());
            tracing::warn!(room = %room.name, participant = %identity, "outbound queue full; cut off, may resume");
            self.start_grace_timer(room, &identity, epoch);
            stalled.extend(state.broadcast_presence(None, &info, Some(&identity)));
        }
    }

    async fn grace_expired(
        self: &Arc<Self>,
        room: &Arc<LiveRoom>,
        identity: &PersonId,
        epoch: u64,
    ) {
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
    pub(crate) async fn end_presence(
        self: &Arc<Self>,
        room: &Arc<LiveRoom>,
        state: &mut RoomState,
        identity: &PersonId,
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
                identity: identity.clone(),
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
                identity: identity.clone(),
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
            participants: state.participants(Some(&session.identity), false),
            seq: state.seq,
        };
        reply_to(&state, &session.identity, &reply);
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
    /// Returns the case and session the room is, if it is one.
    pub(crate) async fn case_membership(
        &self,
        room: &RoomName,
        claims: &Claims,
    ) -> Result<Option<(CaseId, u32)>, SignalError> {
        let Some((case_id, n)) = self.store.case_of_room(room).await? else {
            return Ok(None);
        };
        let case = self.store.case(&case_id).await?;
        if case
            .session(n)
            .is_ok_and(|s| s.phase == tiaojie_domain::mediation::Phase::Ended)
        {
            return Err(Refusal::SessionEnded { session: n }.into());
        }
        if claims.role == tiaojie_domain::Role::Admin {
            return Ok(Some((case_id, n)));
        }
        match case.member(&claims.sub) {
            Some(m) if m.role == claims.role => Ok(Some((case_id, n))),
            Some(m) => Err(SignalError::because(
                ErrorCode::Forbidden,
                SignalReason::WrongRole {
                    person: claims.sub.clone(),
                    case_role: m.role,
                    role: claims.role,
                },
            )),
            None => Err(SignalError::because(
                ErrorCode::Forbidden,
                SignalReason::NotInCase {
                    person: claims.sub.clone(),
                },
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

    /// Appends an audit entry for something done in `room` (see [`Hub::audit_entry`]).
    pub async fn audit_in_room(
        &self,
        room: &RoomName,
        by: &str,
        role: &str,
        action: AuditAction,
        detail: &str,
    ) -> Result<(), SignalError> {
        let entry = self.audit_entry(room, by, role, action, detail).await?;
        self.store.audit(&entry).await?;
        Ok(())
    }

    /// An audit entry for something done in `room`, now: on `case:<id>` in a case's session
    /// room (beside the case API's entries), else on `room:<name>`.
    pub(crate) async fn audit_entry(
        &self,
        room: &RoomName,
        by: &str,
        role: &str,
        action: AuditAction,
        detail: &str,
    ) -> Result<tiaojie_domain::AuditEntry, SignalError> {
        let target = match self.store.case_of_room(room).await? {
            Some((case, _)) => format!("case:{case}"),
            None => format!("room:{room}"),
        };
        Ok(tiaojie_domain::AuditEntry::new(
            now_millis(),
            by,
            role,
            action,
            &target,
            detail,
        ))
    }

    pub(crate) fn update_member(
        self: &Arc<Self>,
        room: &Arc<LiveRoom>,
        state: &mut RoomState,
        identity: &PersonId,
        change: impl FnOnce(&mut ParticipantInfo),
    ) -> Option<ParticipantInfo> {
        let member = state.members.get_mut(identity)?;
        let before = member.info.clone();
        change(&mut member.info);
        let info = member.info.clone();
        if info.space != before.space {
            tell_recording_present(state, &info);
        }
        let mut stalled = state.broadcast_presence(Some(&before), &info, None);
        // Someone who enters a private room now sees those in it as they are (outside, they
        // were shown muted and not sharing).
        if info.space != before.space && info.space.is_private() {
            let inside: Vec<ParticipantInfo> = state
                .members
                .values()
                .filter(|m| m.info.space == info.space && m.info.identity != *identity)
                .map(|m| m.info.clone())
                .collect();
            for participant in inside {
                let seq = state.next_seq();
                let event = Event::ParticipantUpdated { seq, participant };
                stalled.extend(state.broadcast(&event, Audience::Only(identity)));
            }
        }
        self.handle_stalled(room, state, stalled);
        Some(info)
    }

    /// Fails with `forbidden` unless the session's member holds `grant` now (grants can
    /// change while connected).
    pub(crate) async fn require_grant(
        &self,
        session: &Session,
        grant: Grant,
    ) -> Result<(), SignalError> {
        let state = self.owned_state(session).await?;
        let allowed = state
            .members
            .get(&session.identity)
            .is_some_and(|m| m.info.grants.contains(&grant));
        if allowed {
            Ok(())
        } else {
            Err(SignalError::because(
                ErrorCode::Forbidden,
                SignalReason::NeedsGrant { grant },
            ))
        }
    }

    // ---- control API operations ----

    /// Participants present in a room (empty if nobody is; `RoomNotFound` if no such room).
    pub async fn room_participants(
        &self,
        room: &RoomName,
    ) -> Result<Vec<ParticipantInfo>, SignalError> {
        match self.existing_room(room) {
            Some(live) => Ok(live.state.lock().await.participants(None, false)),
            None => {
                self.store.room(room).await?;
                Ok(Vec::new())
            }
        }
    }

    /// How many participants each live room has.
    pub async fn live_counts(&self) -> HashMap<RoomName, usize> {
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
        room: &RoomName,
        identity: &PersonId,
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

    /// Closes a room: recorded first (no join gets in after), then everyone is told and
    /// disconnected with code 4003.
    pub async fn close_room(
        self: &Arc<Self>,
        room: &RoomName,
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
        tracing::info!(%room, reason, "room closed");
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

pub(crate) fn reply_to(state: &RoomState, identity: &PersonId, reply: &Reply) {
    if let Some(member) = state.members.get(identity) {
        member.reply(to_text(reply).into());
    }
}

/// Tells the room's capture (if any) where someone now is.
pub(crate) fn tell_recording_present(state: &RoomState, info: &ParticipantInfo) {
    if let Some(r) = &state.recording {
        r.tell(Control::Present(Presence {
            identity: info.identity.clone(),
            name: info.name.clone(),
            role: info.role,
            place: info.space,
        }));
    }
}

pub(crate) fn set_muted(info: &mut ParticipantInfo, kind: MediaKind, muted: bool) {
    match kind {
        MediaKind::Audio => info.audio_muted = muted,
        MediaKind::Video => info.video_muted = muted,
    }
}

/// Close-frame reasons are limited to 123 bytes by the WebSocket protocol.
pub(crate) fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}

//! The signaling protocol, version 1: JSON text messages over WebSocket, tagged by `type`.
//! `docs/protocol.md` documents every message with an example; this file is its code.
//!
//! - Client → server messages are requests ([`ClientMessage`]); each may carry an `id`, echoed
//!   in its reply, and every one gets exactly one reply: a typed success or an `error`.
//! - Server → client events ([`Event`]) carry the room's sequence number `seq`, so a client that
//!   resumes can say what it last saw and get what it missed.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tiaojie_domain::mediation::{Place, Refusal, RuleError};
use tiaojie_domain::permission::Denied;
use tiaojie_domain::{CaseId, Grant, PersonId, RecordingMode, Role, RoomName};

/// The protocol version this server speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The reasons the server itself gives in `removed`, `room.closed` and `server.shutdown`
/// (an operator's own words are passed on as they are): pages say these in the person's
/// language.
pub mod reason {
    /// An admin closed the room without a reason.
    pub const CLOSED_BY_ADMIN: &str = "closed_by_admin";
    /// An admin removed the person without a reason.
    pub const REMOVED_BY_ADMIN: &str = "removed_by_admin";
    /// A moderator removed the person without a reason.
    pub const REMOVED_BY_MODERATOR: &str = "removed_by_moderator";
    /// The mediator did not admit the person from the lobby.
    pub const DECLINED: &str = "declined";
    /// The session ended (the case goes on).
    pub const SESSION_ENDED: &str = "session_ended";
    /// The mediation ended (an outcome was recorded).
    pub const MEDIATION_ENDED: &str = "mediation_ended";
    /// A session could not be scheduled; its new room is closed unused.
    pub const NOT_SCHEDULED: &str = "not_scheduled";
    /// The server is shutting down.
    pub const SERVER_SHUTDOWN: &str = "server_shutdown";
}

/// Longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 4000;

/// Longest SDP accepted, in bytes. A browser's SDP takes about 1.6 KB per media line (two per
/// other participant): 60 KiB holds a room of about 18, and stays under the default 64 KiB
/// message limit with JSON's escaping (32 KiB, the old limit, broke at about 11).
pub const MAX_SDP_BYTES: usize = 60 * 1024;

/// A client-chosen request id (a string or a number), echoed in the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id.
    Number(u64),
    /// A string id.
    Text(String),
}

/// Every `type` a client may send, for telling an unknown type from a malformed known one.
pub const CLIENT_TYPES: [&str; 14] = [
    "join",
    "resume",
    "follow",
    "leave",
    "ping",
    "participants",
    "chat",
    "mute",
    "moderate",
    "offer",
    "answer",
    "candidate",
    "preferences",
    "record",
];

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Enter a room with a join token.
    Join {
        /// Request id.
        id: Option<RequestId>,
        /// Protocol version the client speaks (default 1).
        v: Option<u32>,
        /// The room to enter; must match the token's.
        room: RoomName,
        /// The join token.
        token: String,
    },
    /// Continue a dropped session within the grace period.
    Resume {
        /// Request id.
        id: Option<RequestId>,
        /// Protocol version the client speaks (default 1).
        v: Option<u32>,
        /// The resume token from `joined` or the last `resumed`.
        resume_token: String,
        /// The highest event `seq` the client received.
        #[serde(default)]
        last_seq: u64,
    },
    /// Hear of a case's changes without being in a room (`case.updated`, with `seq` 0): a
    /// page whose session has ended follows its case to see the court's ruling arrive. With a
    /// session token, its room's case; with a staff token, `case`.
    Follow {
        /// Request id.
        id: Option<RequestId>,
        /// Protocol version the client speaks (default 1).
        v: Option<u32>,
        /// A session token (a personal link, also one of an ended session) or a staff token.
        token: String,
        /// The case, for a staff token.
        #[serde(default)]
        case: Option<CaseId>,
    },
    /// Leave the room for good.
    Leave {
        /// Request id.
        id: Option<RequestId>,
    },
    /// Liveness check.
    Ping {
        /// Request id.
        id: Option<RequestId>,
    },
    /// Ask for the current participant list.
    Participants {
        /// Request id.
        id: Option<RequestId>,
    },
    /// Send a chat message to the room, or to one participant.
    Chat {
        /// Request id.
        id: Option<RequestId>,
        /// The text, at most [`MAX_CHAT_CHARS`] characters.
        text: String,
        /// Recipient identity; the whole room if absent.
        #[serde(default)]
        to: Option<PersonId>,
    },
    /// Mute or unmute one's own audio or video.
    Mute {
        /// Request id.
        id: Option<RequestId>,
        /// Which media.
        kind: MediaKind,
        /// Muted or not.
        muted: bool,
    },
    /// An SDP offer (media plane).
    Offer {
        /// Request id.
        id: Option<RequestId>,
        /// The SDP.
        sdp: String,
        /// The `mid` of the media line that shares the sender's screen; absent when it shares
        /// none (an offer without it ends a share).
        #[serde(default)]
        screen: Option<String>,
    },
    /// An SDP answer to a server offer (media plane).
    Answer {
        /// Request id.
        id: Option<RequestId>,
        /// The SDP.
        sdp: String,
    },
    /// A moderator's action on another participant (needs the `moderate` grant).
    Moderate {
        /// Request id.
        id: Option<RequestId>,
        /// What to do.
        action: ModerateAction,
        /// The participant's identity.
        target: PersonId,
        /// `mute`: which media.
        #[serde(default)]
        kind: Option<MediaKind>,
        /// `mute`: muted or not (default true).
        #[serde(default)]
        muted: Option<bool>,
        /// `remove`: the reason shown to the removed person.
        #[serde(default)]
        reason: Option<String>,
        /// `move`: where to: `lobby`, `joint`, `private:applicant` or `private:respondent`.
        #[serde(default)]
        space: Option<Place>,
    },
    /// What this participant wants to receive: audio only (a weak connection), and the largest
    /// video height worth sending it (simulcast layer choice).
    Preferences {
        /// Request id.
        id: Option<RequestId>,
        /// Receive audio only; absent leaves it as it was.
        #[serde(default)]
        audio_only: Option<bool>,
        /// Largest video height wanted; 0 clears the limit; absent leaves it as it was.
        #[serde(default)]
        max_height: Option<u32>,
    },
    /// A trickled ICE candidate; `candidate: null` ends the trickle (media plane).
    Candidate {
        /// Request id.
        id: Option<RequestId>,
        /// The candidate.
        candidate: Option<IceCandidate>,
    },
    /// Start, pause, resume or stop recording the room (needs the `record` grant).
    Record {
        /// Request id.
        id: Option<RequestId>,
        /// What to do.
        action: RecordAction,
        /// `start`: `audio` or `audio_video` (default: the most the room allows).
        #[serde(default)]
        mode: Option<RecordingMode>,
    },
}

/// What a `record` request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordAction {
    /// Start recording (everyone present is told at once).
    Start,
    /// Stop capturing for a while; the recording stays open.
    Pause,
    /// Capture again after a pause.
    Resume,
    /// End the recording; its playable files and signed manifest are made next.
    Stop,
}

impl RecordAction {
    /// What the audit log records for it.
    pub fn audit_action(self) -> tiaojie_domain::AuditAction {
        use tiaojie_domain::AuditAction;
        match self {
            RecordAction::Start => AuditAction::RecordingStart,
            RecordAction::Pause => AuditAction::RecordingPause,
            RecordAction::Resume => AuditAction::RecordingResume,
            RecordAction::Stop => AuditAction::RecordingStop,
        }
    }
}

/// Whether the room is being recorded, as every participant is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordingStatus {
    /// `off`, `recording` or `paused`.
    pub state: RecordingState,
    /// What is recorded (`audio` or `audio_video`), while not off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RecordingMode>,
    /// The recording's id, while not off (and, when just stopped, the one that ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When it started, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// Who started, paused, resumed or stopped it last (an identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Whether people in private rooms are recorded too.
    pub private_rooms: bool,
}

impl RecordingStatus {
    /// The recording and its mode, for the audit log.
    pub fn audit_detail(&self) -> String {
        let id = self.id.as_deref().unwrap_or("");
        match self.mode {
            Some(mode) => format!("{id} ({})", mode.as_str()),
            None => id.to_string(),
        }
    }

    /// Not recording.
    pub fn off() -> RecordingStatus {
        RecordingStatus {
            state: RecordingState::Off,
            mode: None,
            id: None,
            started_at: None,
            by: None,
            private_rooms: false,
        }
    }
}

/// A recording's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RecordingState {
    /// Not recording.
    Off,
    /// Recording now.
    Recording,
    /// Started but paused: nothing is captured.
    Paused,
}

impl ClientMessage {
    /// The request id, if any.
    pub fn id(&self) -> Option<&RequestId> {
        match self {
            ClientMessage::Join { id, .. }
            | ClientMessage::Resume { id, .. }
            | ClientMessage::Follow { id, .. }
            | ClientMessage::Leave { id }
            | ClientMessage::Ping { id }
            | ClientMessage::Participants { id }
            | ClientMessage::Chat { id, .. }
            | ClientMessage::Mute { id, .. }
            | ClientMessage::Offer { id, .. }
            | ClientMessage::Answer { id, .. }
            | ClientMessage::Moderate { id, .. }
            | ClientMessage::Preferences { id, .. }
            | ClientMessage::Candidate { id, .. }
            | ClientMessage::Record { id, .. } => id.as_ref(),
        }
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// Microphone audio.
    Audio,
    /// Camera video.
    Video,
}

impl MediaKind {
    /// The media plane's kind.
    pub fn media(self) -> tiaojie_media::Kind {
        match self {
            MediaKind::Audio => tiaojie_media::Kind::Audio,
            MediaKind::Video => tiaojie_media::Kind::Video,
        }
    }
}

/// What a moderator does to another participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModerateAction {
    /// Mute or unmute their audio or video for everyone.
    Mute,
    /// Remove them from the room (their link is revoked).
    Remove,
    /// Admit them from the lobby into the joint room.
    Admit,
    /// Move them to another space: the lobby, the joint room or a private room (背对背).
    Move,
    /// Let someone removed from this room back in (their links for it work again).
    Readmit,
}

/// An ICE candidate as browsers give it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// The `candidate:` line.
    pub candidate: String,
    /// Media section id.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// Media section index.
    #[serde(default)]
    pub sdp_m_line_index: Option<u32>,
}

/// Whether a participant's connection is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    /// Connected now.
    Connected,
    /// Dropped, within the resume grace period.
    Reconnecting,
}

/// What others know about a participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParticipantInfo {
    /// Identity (the token's subject), unique in the room.
    pub identity: PersonId,
    /// Display name.
    pub name: String,
    /// Role in this room.
    pub role: Role,
    /// Current grants.
    pub grants: Vec<Grant>,
    /// Audio muted (by themselves or a moderator).
    pub audio_muted: bool,
    /// Video muted.
    pub video_muted: bool,
    /// When this presence began, Unix milliseconds.
    pub joined_at: i64,
    /// Connection state.
    pub connection: ConnectionState,
    /// Where they are: `lobby`, `joint`, `private:applicant` or `private:respondent`; they see
    /// and hear only people in the same place.
    pub space: Place,
    /// Their audio/video connection.
    pub media: MediaState,
    /// Sharing a screen now. Shares stop when anyone enters a private room and cannot start
    /// while anyone is in one.
    #[serde(default)]
    pub screen: bool,
}

impl ParticipantInfo {
    /// This person as someone standing in `viewer` sees them. Inside a private room they are
    /// neither seen nor heard from outside it, so outside it they show as muted and not
    /// sharing: their own muting and unmuting there is private-room activity.
    pub fn seen_from(&self, viewer: Place) -> ParticipantInfo {
        let mut info = self.clone();
        if info.space.is_private() && info.space != viewer {
            info.audio_muted = true;
            info.video_muted = true;
            info.screen = false;
        }
        info
    }
}

/// A participant's audio/video connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaState {
    /// Not negotiated yet.
    None,
    /// Up.
    Connected,
    /// Was up and is gone (their network vanished); they may offer again.
    Lost,
}

/// A server → client event; `seq` orders events within a room.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// Someone entered.
    #[serde(rename = "participant.joined")]
    ParticipantJoined {
        /// Room sequence number.
        seq: u64,
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone left for good.
    #[serde(rename = "participant.left")]
    ParticipantLeft {
        /// Room sequence number.
        seq: u64,
        /// Who.
        identity: PersonId,
        /// Why: `left`, `connection_lost`, `removed`, ...
        reason: String,
    },
    /// Someone's state changed (mute, grants, connection).
    #[serde(rename = "participant.updated")]
    ParticipantUpdated {
        /// Room sequence number.
        seq: u64,
        /// The new state.
        participant: ParticipantInfo,
    },
    /// A chat message.
    #[serde(rename = "chat")]
    Chat {
        /// Room sequence number.
        seq: u64,
        /// Unique message id.
        message_id: String,
        /// Sender identity.
        from: PersonId,
        /// Recipient identity for a direct message.
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<PersonId>,
        /// The text.
        text: String,
        /// Server time, Unix milliseconds.
        at: i64,
    },
    /// A server SDP offer (tracks to receive were added or removed): answer with `answer`.
    #[serde(rename = "media.offer")]
    MediaOffer {
        /// Room sequence number.
        seq: u64,
        /// The SDP.
        sdp: String,
    },
    /// The active speaker changed (`null`: nobody).
    #[serde(rename = "speaker.active")]
    SpeakerActive {
        /// Room sequence number.
        seq: u64,
        /// Who is speaking.
        identity: Option<PersonId>,
    },
    /// Recording started, paused, resumed or stopped: show it to everyone at once.
    #[serde(rename = "recording.updated")]
    RecordingUpdated {
        /// Room sequence number.
        seq: u64,
        /// The new state.
        recording: RecordingStatus,
    },
    /// A stopped recording's files and signed manifest are ready: `chain_head` is the hash
    /// that commits to everything captured — what the agreement cites and what participants
    /// may be shown to confirm the record.
    #[serde(rename = "recording.finished")]
    RecordingFinished {
        /// Room sequence number.
        seq: u64,
        /// The recording's id (not `id`: that names a request's reply).
        recording: String,
        /// The hash chain's head.
        chain_head: String,
        /// False when it was finished after an interruption.
        complete: bool,
    },
    /// Something changed in the case this room's session belongs to (a check, a consent, a
    /// signature, the session's phase, a side's move, the court's decision): read it again
    /// with `GET /api/cases/{case}`. To a connection that follows the case, `seq` is 0.
    #[serde(rename = "case.updated")]
    CaseUpdated {
        /// Room sequence number.
        seq: u64,
        /// The case id.
        case: CaseId,
        /// The session this room is.
        session: u32,
        /// What changed: the kind of the last event appended (e.g. `agreement_signed`).
        change: String,
        /// The case's own sequence number after the change.
        case_seq: i64,
    },
    /// The mediator saved the minutes: read them with the API (each read is audited, and
    /// observers may not read them).
    #[serde(rename = "minutes.updated")]
    MinutesUpdated {
        /// Room sequence number.
        seq: u64,
        /// The case id.
        case: CaseId,
        /// The session.
        session: u32,
        /// Revision.
        revision: i64,
        /// SHA-256 of the canonical text (what a confirmation refers to).
        sha256: String,
    },
    /// You were removed; the connection closes next (code 4001).
    #[serde(rename = "removed")]
    Removed {
        /// Room sequence number.
        seq: u64,
        /// The operator's reason, to show.
        reason: String,
    },
    /// The room was closed; the connection closes next (code 4003).
    #[serde(rename = "room.closed")]
    RoomClosed {
        /// Room sequence number.
        seq: u64,
        /// The operator's reason.
        reason: String,
    },
    /// The server is shutting down; the connection closes next (code 1001).
    #[serde(rename = "server.shutdown")]
    ServerShutdown {
        /// Room sequence number.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// A reply to one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Reply {
    /// `join` succeeded.
    #[serde(rename = "joined")]
    Joined {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Protocol version in use.
        v: u32,
        /// The room.
        room: RoomName,
        /// You.
        you: ParticipantInfo,
        /// Everyone else present.
        participants: Vec<ParticipantInfo>,
        /// The room's current event sequence number.
        seq: u64,
        /// Present this to `resume` after a dropped connection.
        resume_token: String,
        /// How long a dropped session may be resumed, in milliseconds.
        resume_grace_ms: u64,
        /// Whether the room is being recorded (show it before anything else).
        recording: RecordingStatus,
        /// The chat messages this person sent and received in this room so far (a reloaded
        /// page shows the conversation again), oldest first, as `chat` events.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        chat: Vec<Event>,
    },
    /// `resume` succeeded.
    #[serde(rename = "resumed")]
    Resumed {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Protocol version in use.
        v: u32,
        /// The room.
        room: RoomName,
        /// You.
        you: ParticipantInfo,
        /// Everyone else present, now.
        participants: Vec<ParticipantInfo>,
        /// The room's current event sequence number; missed events follow this reply.
        seq: u64,
        /// Some events after `last_seq` are no longer kept: rely on `participants`.
        missed_events: bool,
        /// The new resume token (the old one is spent).
        resume_token: String,
        /// Whether the room is being recorded.
        recording: RecordingStatus,
    },
    /// `follow` succeeded: `case.updated` events of this case follow (with `seq` 0).
    #[serde(rename = "following")]
    Following {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The case followed.
        case: CaseId,
    },
    /// `leave` done; the server closes the connection (code 1000).
    #[serde(rename = "left")]
    Left {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// Answer to `ping`.
    #[serde(rename = "pong")]
    Pong {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Server time, Unix milliseconds.
        at: i64,
    },
    /// Answer to `participants`.
    #[serde(rename = "participants")]
    Participants {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Everyone present, including you.
        participants: Vec<ParticipantInfo>,
        /// The room's current event sequence number.
        seq: u64,
    },
    /// A chat message was delivered.
    #[serde(rename = "chat.sent")]
    ChatSent {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Its id.
        message_id: String,
        /// Its `seq`.
        seq: u64,
        /// Server time, Unix milliseconds.
        at: i64,
    },
    /// A request without other data succeeded.
    #[serde(rename = "answer")]
    Answer {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// The SDP answer.
        sdp: String,
    },
    /// Answer to a request that returns nothing else.
    #[serde(rename = "ok")]
    Ok {
        /// Request id.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
    },
    /// A request failed; the connection stays up unless said otherwise.
    #[serde(rename = "error")]
    Error {
        /// Request id, when the request had a readable one.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        /// Stable error code (see [`ErrorCode`]).
        code: ErrorCode,
        /// Detail in English, for logs and programs; pages say `code` and `details` in the
        /// person's language instead.
        message: String,
        /// The facts of the error (who, which check, which state), tagged by `reason`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<ErrorDetails>,
    },
}

/// The facts of an error, for a page to say it in the person's language with people's names:
/// an object tagged by `reason`. The reasons of the workflow's rules, of the admission rule, of
/// the permission matrix, and of signaling and the control API themselves.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ErrorDetails {
    /// A rule of the mediation workflow.
    Rule(#[schema(inline)] RuleError),
    /// Where a person may stand.
    Admission(#[schema(inline)] Refusal),
    /// The permission matrix.
    Permission(#[schema(inline)] Denied),
    /// Signaling's and the control API's own.
    Signal(#[schema(inline)] SignalReason),
}

/// Why signaling or the control API refused, beyond the error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SignalReason {
    /// The room holds its most participants.
    #[error("the room holds at most {capacity} participants")]
    RoomFull {
        /// How many it holds.
        capacity: usize,
    },
    /// A chat message is empty or too long.
    #[error("chat text must be 1 to {max} characters")]
    ChatLength {
        /// The most characters.
        max: usize,
    },
    /// A direct message to someone who is not in the sender's part of the room.
    #[error("{person:?} is not another participant in your part of the room")]
    NotWithYou {
        /// Who it was for.
        person: PersonId,
    },
    /// The request needs a grant the asker does not hold now.
    #[error("this needs the {} grant", grant.as_str())]
    NeedsGrant {
        /// The grant.
        grant: Grant,
    },
    /// Muting or removing oneself is not moderation.
    #[error("moderation acts on another participant")]
    ModerateSelf,
    /// A case's room admits the case's people in their roles: this token's holder is not one.
    #[error("{person} is not a member of this room's case")]
    NotInCase {
        /// Who.
        person: PersonId,
    },
    /// A case's room: the token's role is not the person's role in the case.
    #[error("{person} is the case's {case_role}, not its {role}")]
    WrongRole {
        /// Who.
        person: PersonId,
        /// Their role in the case.
        case_role: Role,
        /// The role the token claims.
        role: Role,
    },
    /// Recording is not allowed in this room.
    #[error("recording is not allowed in this room")]
    RecordingNotAllowed,
    /// The room may be recorded as this at most.
    #[error("this room may be recorded as {} at most", limit.as_str())]
    RecordingLimit {
        /// The most allowed.
        limit: RecordingMode,
    },
    /// The room is being recorded already.
    #[error("the room is being recorded already")]
    RecordingOn,
    /// The room is not being recorded.
    #[error("the room is not being recorded")]
    RecordingOff,
    /// The recording is paused already.
    #[error("the recording is paused already")]
    RecordingPaused,
    /// The recording is not paused.
    #[error("the recording is not paused")]
    RecordingNotPaused,
    /// Nobody is in the room to record.
    #[error("nobody is in the room; recording needs a session")]
    RecordingEmptyRoom,
    /// The recording is still running.
    #[error("the recording is still running; stop it first")]
    RecordingRunning,
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// Opening a case needs a staff token (a mediator's or an admin's, not a join link's).
    #[error("opening a case needs a staff token")]
    StaffTokenNeeded,
    /// A mediator opens the cases they mediate themself.
    #[error("a mediator opens cases for themself")]
    OwnCasesOnly,
    /// Recordings are read by the room's mediator or judge, or an admin.
    #[error("recordings are read by the room's mediator or judge, or an admin")]
    RecordingReaders,
    /// A request body that is not the JSON this request takes.
    #[error("the request body is not the JSON this request takes")]
    InvalidBody,
    /// A recording or file that does not exist (or is not finished).
    #[error("no such recording or file (or it is not finished yet)")]
    NoSuchRecording,
    /// The court has sent no ruling document for the case.
    #[error("the court has sent no ruling document")]
    NoRulingDocument,
    /// An agreement version that does not exist.
    #[error("no agreement version {version}")]
    NoSuchVersion {
        /// The version asked for.
        version: u32,
    },
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal ),* $(,)?) => {
        /// Stable error codes, shared by the WebSocket protocol and the control API.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum ErrorCode {
            $( $(#[$doc])* #[serde(rename = $name)] $variant, )*
        }

        impl ErrorCode {
            /// Every code, for metrics.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code's wire name.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $name, )* }
            }
        }
    };
}

error_codes! {
    /// Not JSON, or not a JSON object with a string `type`.
    MalformedMessage = "malformed_message",
    /// A `type` this server does not know.
    UnknownType = "unknown_type",
    /// A known `type` with missing, extra or mistyped fields, or values out of range.
    InvalidMessage = "invalid_message",
    /// A protocol version this server does not speak.
    UnsupportedVersion = "unsupported_version",
    /// Larger than `signaling.max_message_bytes`.
    MessageTooLarge = "message_too_large",
    /// Over the per-connection rate limit; the message was dropped.
    RateLimited = "rate_limited",
    /// A binary frame; the protocol is text.
    UnsupportedFrame = "unsupported_frame",
    /// This request needs a joined session first.
    NotJoined = "not_joined",
    /// This connection already joined.
    AlreadyJoined = "already_joined",
    /// The token is not a well-formed tiaojie JWT.
    TokenMalformed = "token_malformed",
    /// `alg: none` or another algorithm than the server's.
    TokenAlgorithm = "token_algorithm",
    /// The token's signature does not verify.
    TokenBadSignature = "token_bad_signature",
    /// The token has expired.
    TokenExpired = "token_expired",
    /// The token is not valid yet.
    TokenNotYetValid = "token_not_yet_valid",
    /// Another issuer's token.
    TokenWrongIssuer = "token_wrong_issuer",
    /// A token for another room.
    TokenWrongRoom = "token_wrong_room",
    /// A revoked token (its holder was removed).
    TokenRevoked = "token_revoked",
    /// No credentials were presented (control API).
    Unauthorized = "unauthorized",
    /// The credentials lack the grant this needs.
    Forbidden = "forbidden",
    /// The resume token is unknown, spent, or its grace period is over.
    ResumeFailed = "resume_failed",
    /// No such room.
    RoomNotFound = "room_not_found",
    /// The room was closed.
    RoomClosed = "room_closed",
    /// The room holds its maximum of participants.
    RoomFull = "room_full",
    /// A room with this name exists.
    RoomExists = "room_exists",
    /// No such participant in the room.
    ParticipantNotFound = "participant_not_found",
    /// The control API request is not valid.
    InvalidRequest = "invalid_request",
    /// No such resource (control API).
    NotFound = "not_found",
    /// The request body is over `api.max_body_bytes`.
    PayloadTooLarge = "payload_too_large",
    /// Media requests before this server has a media plane.
    MediaUnavailable = "media_unavailable",
    /// A recording request that does not fit the room's recording state (e.g. stop when
    /// nothing is recorded), or a recording that is still being captured.
    RecordingState = "recording_state",
    /// A case command that does not fit the case's state (e.g. signing after the mediation
    /// ended, starting a session twice).
    CaseState = "case_state",
    /// Start-of-session checks are missing: the session cannot start, or the person cannot
    /// leave the lobby (`details.missing` names each check and whom it is missing for).
    ChecksMissing = "checks_missing",
    /// A signature or confirmation names a version or revision that is no longer current.
    StaleVersion = "stale_version",
    /// A case with this number exists.
    CaseExists = "case_exists",
    /// A screen share asked for while someone is in a private room (rooms are split).
    RoomsSplit = "rooms_split",
    /// Documents (PDF) cannot be made: the server has no Chinese font (install
    /// fonts-noto-cjk, or set `documents.font`).
    DocumentsUnavailable = "documents_unavailable",
    /// The server failed; the request may be retried.
    Internal = "internal",
}

/// Serialises a value that cannot fail to serialise (plain data, string keys).
pub fn to_text<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","code":"internal","message":"serialisation failed: {e}"}}"#)
    })
}

/// Why a text frame could not be read as a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// The request id, if one could be read.
    pub id: Option<RequestId>,
    /// The code to answer with.
    pub code: ErrorCode,
    /// Detail.
    pub message: String,
}

/// Reads a client message, telling malformed JSON from an unknown type from bad fields.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError {
        id: None,
        code: ErrorCode::MalformedMessage,
        message: format!("not JSON: {e}"),
    })?;
    let id = value
        .get("id")
        .and_then(|id| serde_json::from_value::<RequestId>(id.clone()).ok());
    let Some(kind) = value.get("type").and_then(Value::as_str) else {
        return Err(ParseError {
            id,
            code: ErrorCode::MalformedMessage,
            message: "a message is a JSON object with a string \"type\"".into(),
        });
    };
    if !CLIENT_TYPES.contains(&kind) {
        return Err(ParseError {
            id,
            code: ErrorCode::UnknownType,
            message: format!("unknown message type {kind:?}"),
        });
    }
    let kind = kind.to_string();
    serde_json::from_value(value).map_err(|e| ParseError {
        id,
        code: ErrorCode::InvalidMessage,
        message: format!("{kind}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_and_classifies_bad_ones() {
        let m =
            parse_client_message(r#"{"type":"join","id":1,"room":"r","token":"t"}"#).expect("join");
        assert_eq!(m.id(), Some(&RequestId::Number(1)));
        let m = parse_client_message(r#"{"type":"chat","id":"a","text":"你好","to":"bob"}"#)
            .expect("chat");
        assert!(matches!(m, ClientMessage::Chat { to: Some(ref t), .. } if t == "bob"));
        let m = parse_client_message(r#"{"type":"candidate","candidate":null}"#)
            .expect("end of candidates");
        assert!(matches!(
            m,
            ClientMessage::Candidate {
                candidate: None,
                ..
            }
        ));

        let e = parse_client_message("{nope").unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedMessage);
        let e = parse_client_message(r#"[1,2]"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedMessage);
        let e = parse_client_message(r#"{"type":"dance","id":7}"#).unwrap_err();
        assert_eq!(
            (e.code, e.id),
            (ErrorCode::UnknownType, Some(RequestId::Number(7)))
        );
        let e = parse_client_message(r#"{"type":"chat","id":"x"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.id),
            (ErrorCode::InvalidMessage, Some(RequestId::Text("x".into())))
        );
        let e = parse_client_message(r#"{"type":"ping","id":1,"extra":true}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidMessage);
    }

    #[test]
    fn wire_names() {
        let e = Event::ParticipantLeft {
            seq: 3,
            identity: "a".into(),
            reason: "left".into(),
        };
        assert_eq!(
            to_text(&e),
            r#"{"type":"participant.left","seq":3,"identity":"a","reason":"left"}"#
        );
        let r = Reply::Error {
            id: Some(RequestId::Text("q".into())),
            code: ErrorCode::TokenExpired,
            message: "m".into(),
            details: None,
        };
        assert_eq!(
            to_text(&r),
            r#"{"type":"error","id":"q","code":"token_expired","message":"m"}"#
        );
        assert_eq!(ErrorCode::TokenWrongRoom.as_str(), "token_wrong_room");
    }
}

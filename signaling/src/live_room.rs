//! One live room's in-memory state: its members, their links to their connections, the room's
//! event sequence, and each member's recent events for resuming.
//!
//! This is plain state with no I/O of its own: the [`crate::hub`] locks it, applies a change,
//! writes the database, and acts on what it returns (e.g. members whose queue overflowed).
//! Delivery never blocks: a member whose outbound queue is full is cut off and may resume.

use crate::protocol::{ConnectionState, Event, ParticipantInfo, RecordingStatus, to_text};
use crate::recording::LiveRecording;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use tiaojie_domain::mediation::Place;
use tiaojie_domain::{CaseId, PersonId, RoomName};
use tokio::sync::{Notify, mpsc};

/// Something for a connection to write.
#[derive(Debug)]
pub enum Outbound {
    /// A text frame (a serialised event or reply), shared by all its recipients.
    Text(Arc<str>),
    /// A close frame, after which the connection ends.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Reason shown to the user.
        reason: String,
    },
}

/// WebSocket close codes this server sends.
pub mod close_code {
    /// Normal closure after `leave`.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Removed by a moderator or admin.
    pub const REMOVED: u16 = 4001;
    /// Another connection took over this participant (a resume or a new join elsewhere).
    pub const REPLACED: u16 = 4002;
    /// The room was closed.
    pub const ROOM_CLOSED: u16 = 4003;
    /// The client did not read its messages fast enough; it may resume.
    pub const STALLED: u16 = 4008;
}

/// Tells a connection to close now, even when its queue is full.
#[derive(Debug, Default)]
pub struct KillSwitch {
    notify: Notify,
    frame: Mutex<Option<(u16, String)>>,
}

impl KillSwitch {
    /// Asks the connection to close with this frame (the first request wins).
    pub fn kill(&self, code: u16, reason: &str) {
        if let Ok(mut frame) = self.frame.lock() {
            frame.get_or_insert_with(|| (code, reason.to_string()));
        }
        self.notify.notify_one();
    }

    /// Waits until killed; returns the close frame.
    pub async fn killed(&self) -> (u16, String) {
        loop {
            if let Some(frame) = self.frame.lock().ok().and_then(|f| f.clone()) {
                return frame;
            }
            self.notify.notified().await;
        }
    }
}

/// A member's way to its connection.
#[derive(Debug, Clone)]
pub struct Link {
    /// The connection's outbound queue.
    pub tx: mpsc::Sender<Outbound>,
    /// Its kill switch.
    pub kill: Arc<KillSwitch>,
    /// Which connection this is (a process-wide counter), so a stale connection's
    /// requests and disconnects are recognised after another took over.
    pub generation: u64,
}

/// A participant present in the room (connected, or within the grace period).
#[derive(Debug)]
pub struct Member {
    /// What others see.
    pub info: ParticipantInfo,
    /// The participation row this presence writes its end to.
    pub participation_id: i64,
    /// The join token's id, revoked if the member is removed.
    pub jti: String,
    /// The join token's expiry (Unix seconds), kept with a revocation.
    pub token_exp: i64,
    /// The current resume token.
    pub resume_token: String,
    /// The connection, while there is one.
    pub link: Option<Link>,
    /// The generation that owned the member last (kept while reconnecting).
    pub generation: u64,
    /// Counts disconnects, so a grace timer acts only on the disconnect that started it.
    pub disconnect_epoch: u64,
    /// Recent events delivered to this member, for replay on resume.
    recent: VecDeque<(u64, Arc<str>)>,
    /// The highest seq dropped from `recent`: a resume from before it has missed events.
    evicted_through: u64,
}

impl Member {
    /// A newly joined member on `link`.
    pub fn new(
        info: ParticipantInfo,
        participation_id: i64,
        jti: String,
        token_exp: i64,
        resume_token: String,
        link: Link,
    ) -> Member {
        Member {
            info,
            participation_id,
            jti,
            token_exp,
            resume_token,
            generation: link.generation,
            link: Some(link),
            disconnect_epoch: 0,
            recent: VecDeque::new(),
            evicted_through: 0,
        }
    }

    /// Whether `generation` is the connection that owns this member now.
    pub fn is_owned_by(&self, generation: u64) -> bool {
        self.link
            .as_ref()
            .is_some_and(|l| l.generation == generation)
    }

    /// Sends a reply (not sequenced, not kept for replay). False if the queue is full.
    pub fn reply(&self, text: Arc<str>) -> bool {
        self.link
            .as_ref()
            .is_none_or(|l| l.tx.try_send(Outbound::Text(text)).is_ok())
    }

    /// Events kept after `last_seq`, and whether some were already dropped.
    pub fn events_after(&self, last_seq: u64) -> (Vec<Arc<str>>, bool) {
        let missed = self.evicted_through > last_seq;
        let events = self
            .recent
            .iter()
            .filter(|(seq, _)| *seq > last_seq)
            .map(|(_, text)| text.clone())
            .collect();
        (events, missed)
    }

    /// Detaches the connection (kept for grace); returns the old link.
    pub fn detach(&mut self) -> Option<Link> {
        self.disconnect_epoch += 1;
        self.info.connection = ConnectionState::Reconnecting;
        self.link.take()
    }

    /// Attaches a new connection, closing any older one with `REPLACED`.
    pub fn attach(&mut self, link: Link) {
        if let Some(old) = self.link.replace(link) {
            old.kill.kill(
                close_code::REPLACED,
                "another connection took over this session",
            );
        }
        self.generation = self.link.as_ref().map_or(0, |l| l.generation);
        self.info.connection = ConnectionState::Connected;
    }

    /// Queues a sequenced event and keeps it for replay. False if the queue was full.
    fn deliver(&mut self, seq: u64, text: &Arc<str>, keep: usize) -> bool {
        self.recent.push_back((seq, text.clone()));
        while self.recent.len() > keep {
            if let Some((evicted, _)) = self.recent.pop_front() {
                self.evicted_through = evicted;
            }
        }
        self.reply(text.clone())
    }
}

/// Which members an event goes to.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// Everyone.
    All,
    /// Everyone but this identity.
    AllBut(&'a PersonId),
    /// Only this identity.
    Only(&'a PersonId),
    /// Those in one place (lobby, joint room, a private room), but `except`: what is said or
    /// typed in a private room reaches nobody outside it.
    Space {
        /// The place (`ParticipantInfo::space`).
        space: Place,
        /// Left out (the sender).
        except: Option<&'a PersonId>,
    },
    /// Everyone not in `space` (and not `except`).
    Outside {
        /// The place left out.
        space: Place,
        /// Left out too.
        except: Option<&'a PersonId>,
    },
}

/// Chat messages kept per person for a page that reloads.
pub const CHAT_HISTORY: usize = 500;

/// The state of one live room.
#[derive(Debug)]
pub struct RoomState {
    /// Room name.
    pub name: RoomName,
    /// Most members this room holds.
    pub capacity: usize,
    /// Members by identity.
    pub members: BTreeMap<PersonId, Member>,
    /// The last event sequence number used.
    pub seq: u64,
    /// Set when the room left the hub (closed, emptied, shut down): joins must look it up again.
    pub retired: bool,
    /// Newcomers without the moderate grant wait in the lobby.
    pub lobby: bool,
    /// The case and session this room is, if it is a case's session room: the admission
    /// rule decides where its people may stand.
    pub case: Option<(CaseId, u32)>,
    /// The recording, while the room is recorded.
    pub recording: Option<LiveRecording>,
    /// The place of the last active speaker: "nobody speaks" goes only there too.
    pub speaker_space: Option<Place>,
    /// Per person, the chat messages they sent or received here, oldest first (at most
    /// [`CHAT_HISTORY`]): a page that reloads shows its conversation again, and nobody else's.
    chats: BTreeMap<PersonId, VecDeque<Event>>,
    /// Events each member keeps for resuming.
    resume_buffer: usize,
}

impl RoomState {
    /// An empty room.
    pub fn new(name: RoomName, capacity: usize, resume_buffer: usize) -> RoomState {
        RoomState {
            name,
            capacity,
            members: BTreeMap::new(),
            seq: 0,
            retired: false,
            lobby: false,
            case: None,
            chats: BTreeMap::new(),
            recording: None,
            speaker_space: None,
            resume_buffer,
        }
    }

    /// The participant list, in identity order, as `viewer` may see it (everything, for the
    /// control API: `None`); `others_only` leaves the viewer out.
    pub fn participants(
        &self,
        viewer: Option<&PersonId>,
        others_only: bool,
    ) -> Vec<ParticipantInfo> {
        let from = viewer
            .and_then(|v| self.members.get(v))
            .map(|m| m.info.space);
        self.members
            .values()
            .filter(|m| !(others_only && viewer == Some(&m.info.identity)))
            .map(|m| match from {
                Some(place) => m.info.seen_from(place),
                None => m.info.clone(),
            })
            .collect()
    }

    /// `participant.updated` about `info` (who was `before`, if this is a change of their
    /// details) to everyone but `except`. What a person in a private room does there (muting,
    /// unmuting, sharing) is for that room: the same rule as its chat and its speaker events.
    /// Everyone else hears only of what they can see from outside ([`ParticipantInfo::seen_from`]:
    /// where the person is, their connection) — and nothing at all when that did not change.
    #[must_use = "members whose queue overflowed must be handled as dropped"]
    pub fn broadcast_presence(
        &mut self,
        before: Option<&ParticipantInfo>,
        info: &ParticipantInfo,
        except: Option<&PersonId>,
    ) -> Vec<PersonId> {
        let seq = self.next_seq();
        let full = Event::ParticipantUpdated {
            seq,
            participant: info.clone(),
        };
        if !info.space.is_private() {
            let audience = except.map_or(Audience::All, Audience::AllBut);
            return self.broadcast(&full, audience);
        }
        let space = info.space;
        let mut stalled = self.broadcast(&full, Audience::Space { space, except });
        let seen = info.seen_from(Place::Lobby);
        if before.is_none_or(|b| b.seen_from(Place::Lobby) != seen) {
            let outside = Event::ParticipantUpdated {
                seq,
                participant: seen,
            };
            stalled.extend(self.broadcast(&outside, Audience::Outside { space, except }));
        }
        stalled
    }

    /// Keeps a chat message in the history of each of `people` (its sender and recipients).
    pub fn keep_chat<'a>(&mut self, event: &Event, people: impl IntoIterator<Item = &'a PersonId>) {
        for person in people {
            let log = self.chats.entry(person.clone()).or_default();
            if log.len() == CHAT_HISTORY {
                log.pop_front();
            }
            log.push_back(event.clone());
        }
    }

    /// The chat messages `person` sent or received here, oldest first.
    pub fn chat_history(&self, person: &PersonId) -> Vec<Event> {
        self.chats
            .get(person)
            .map(|log| log.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Being recorded now (not paused): what the admission rule's consent to recording asks.
    pub fn recording_now(&self) -> bool {
        self.recording.as_ref().is_some_and(|r| !r.paused)
    }

    /// Whether anyone stands in a private room: screens are not shared while the rooms are split.
    pub fn rooms_split(&self) -> bool {
        self.members.values().any(|m| m.info.space.is_private())
    }

    /// What participants are told about recording.
    pub fn recording_status(&self) -> RecordingStatus {
        self.recording
            .as_ref()
            .map_or_else(RecordingStatus::off, LiveRecording::status)
    }

    /// The next sequence number, for an event about to be built.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Serialises an event once and delivers it. Returns the identities whose queues overflowed:
    /// they have been cut off (killed, detached) and the caller must treat them as dropped.
    #[must_use = "members whose queue overflowed must be handled as dropped"]
    pub fn broadcast(&mut self, event: &Event, audience: Audience<'_>) -> Vec<PersonId> {
        let seq = event_seq(event);
        let text: Arc<str> = Arc::from(to_text(event));
        let keep = self.resume_buffer;
        let mut stalled = Vec::new();
        for (identity, member) in self.members.iter_mut() {
            let wanted = match audience {
                Audience::All => true,
                Audience::AllBut(skip) => identity != skip,
                Audience::Only(target) => identity == target,
                Audience::Space { space, except } => {
                    member.info.space == space && except != Some(identity)
                }
                Audience::Outside { space, except } => {
                    member.info.space != space && except != Some(identity)
                }
            };
            if wanted && !member.deliver(seq, &text, keep) {
                if let Some(link) = member.detach() {
                    link.kill.kill(
                        close_code::STALLED,
                        "too many unread messages; reconnect to resume",
                    );
                }
                stalled.push(identity.clone());
            }
        }
        stalled
    }
}

fn event_seq(event: &Event) -> u64 {
    match event {
        Event::ParticipantJoined { seq, .. }
        | Event::ParticipantLeft { seq, .. }
        | Event::ParticipantUpdated { seq, .. }
        | Event::Chat { seq, .. }
        | Event::Removed { seq, .. }
        | Event::RoomClosed { seq, .. }
        | Event::MediaOffer { seq, .. }
        | Event::SpeakerActive { seq, .. }
        | Event::RecordingUpdated { seq, .. }
        | Event::RecordingFinished { seq, .. }
        | Event::CaseUpdated { seq, .. }
        | Event::MinutesUpdated { seq, .. }
        | Event::ServerShutdown { seq, .. } => *seq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiaojie_domain::Role;

    fn info(identity: &str) -> ParticipantInfo {
        ParticipantInfo {
            identity: identity.into(),
            name: identity.into(),
            role: Role::Party,
            grants: vec![],
            audio_muted: false,
            video_muted: false,
            joined_at: 0,
            connection: ConnectionState::Connected,
            space: Place::Joint,
            media: crate::protocol::MediaState::None,
            screen: false,
        }
    }

    fn link(generation: u64, queue: usize) -> (Link, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(queue);
        (
            Link {
                tx,
                kill: Arc::new(KillSwitch::default()),
                generation,
            },
            rx,
        )
    }

    fn chat(seq: u64) -> Event {
        Event::Chat {
            seq,
            message_id: format!("m{seq}"),
            from: "a".into(),
            to: None,
            text: "hi".into(),
            at: 0,
        }
    }

    #[test]
    fn broadcast_respects_audience_and_keeps_events_for_resume() {
        let mut room = RoomState::new("r".into(), 10, 3);
        let (la, mut ra) = link(1, 16);
        let (lb, mut rb) = link(2, 16);
        room.members.insert(
            "a".into(),
            Member::new(info("a"), 1, "j".into(), 0, "ra".into(), la),
        );
        room.members.insert(
            "b".into(),
            Member::new(info("b"), 2, "j".into(), 0, "rb".into(), lb),
        );
        for _ in 0..5 {
            let seq = room.next_seq();
            assert!(
                room.broadcast(&chat(seq), Audience::AllBut(&PersonId::from("a")))
                    .is_empty()
            );
        }
        assert!(ra.try_recv().is_err(), "a excluded");
        assert!(matches!(rb.try_recv(), Ok(Outbound::Text(t)) if t.contains("\"seq\":1")));
        let b = &room.members[&PersonId::from("b")];
        let (events, missed) = b.events_after(3);
        assert_eq!((events.len(), missed), (2, false));
        let (events, missed) = b.events_after(1);
        assert_eq!(events.len(), 3, "only three kept");
        assert!(missed, "seq 2 was dropped from the buffer");
    }

    #[test]
    fn a_full_queue_cuts_the_member_off_without_blocking_others() {
        let mut room = RoomState::new("r".into(), 10, 100);
        let (slow, _slow_rx) = link(1, 2);
        let kill = slow.kill.clone();
        let (fast, mut fast_rx) = link(2, 64);
        room.members.insert(
            "slow".into(),
            Member::new(info("slow"), 1, "j".into(), 0, "r1".into(), slow),
        );
        room.members.insert(
            "fast".into(),
            Member::new(info("fast"), 2, "j".into(), 0, "r2".into(), fast),
        );
        let mut cut = Vec::new();
        for _ in 0..10 {
            let seq = room.next_seq();
            cut.extend(room.broadcast(&chat(seq), Audience::All));
        }
        assert_eq!(cut, vec![PersonId::from("slow")]);
        assert!(room.members[&PersonId::from("slow")].link.is_none());
        assert_eq!(
            room.members[&PersonId::from("slow")].info.connection,
            ConnectionState::Reconnecting
        );
        assert_eq!(
            kill.frame.lock().expect("lock").clone().map(|f| f.0),
            Some(close_code::STALLED)
        );
        let mut got = 0;
        while fast_rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, 10);
        // Everything is still kept for the slow member to replay on resume.
        assert_eq!(
            room.members[&PersonId::from("slow")]
                .events_after(0)
                .0
                .len(),
            10
        );
    }

    #[test]
    fn attach_replaces_and_kills_the_old_connection() {
        let (l1, _r1) = link(1, 4);
        let old_kill = l1.kill.clone();
        let mut m = Member::new(info("a"), 1, "j".into(), 0, "r".into(), l1);
        assert!(m.is_owned_by(1));
        let (l2, _r2) = link(2, 4);
        m.attach(l2);
        assert!(m.is_owned_by(2) && !m.is_owned_by(1));
        assert_eq!(
            old_kill.frame.lock().expect("lock").clone().map(|f| f.0),
            Some(close_code::REPLACED)
        );
        assert!(m.detach().is_some());
        assert_eq!(m.disconnect_epoch, 1);
        assert!(!m.is_owned_by(2));
    }
}

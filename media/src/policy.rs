//! The forwarding policy: who receives whose audio and video.
//!
//! The session layer decides where each participant stands (lobby, joint room, a private room),
//! what they may do (publish, subscribe), what a moderator blocked, and whether they asked for
//! audio only. The media plane asks [`ForwardingPolicy::allows`] per packet path and applies the
//! [`Edge`] changes every update returns — starting a forward (and asking the publisher for a
//! keyframe) or stopping one — so moving a party into a private room changes what is forwarded,
//! never a connection.
//!
//! The rule, in one place: `subscriber` receives `kind` from `publisher` when they are different
//! participants in the **same space** (neither in the lobby), the publisher may publish and is not
//! blocked for `kind`, the subscriber may subscribe, and for video the subscriber has not chosen
//! audio only. A shared screen is video with two more conditions: its publisher is sharing now,
//! and the room is not split — while anyone stands in a private room no screen is forwarded to
//! anyone (DOMAIN: screen sharing stops while rooms are split), whatever a client does.

use std::collections::BTreeMap;
use std::fmt;

/// An opaque participant id; the media plane never learns names or roles.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ParticipantId(pub String);

impl fmt::Display for ParticipantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ParticipantId {
    fn from(s: &str) -> Self {
        ParticipantId(s.to_string())
    }
}

/// Where a participant is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// Waiting to be admitted: receives nothing, and nobody receives them.
    Lobby,
    /// The joint session room.
    Joint,
    /// A private room (背对背), by an opaque key chosen by the session layer.
    Private(String),
}

/// Audio, camera video or a shared screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Audio.
    Audio,
    /// Camera video.
    Video,
    /// A shared screen (video the publisher declared as its screen share).
    Screen,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Audio, Kind::Video, Kind::Screen];

    /// `audio`, `video` or `screen`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
            Kind::Screen => "screen",
        }
    }

    /// Video of either source: needs keyframes, layers and retransmissions.
    pub fn is_video(self) -> bool {
        self != Kind::Audio
    }
}

/// Everything the policy knows about one participant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// Where they are.
    pub space: Space,
    /// May send media (observers may not).
    pub publish: bool,
    /// May receive media.
    pub subscribe: bool,
    /// Audio blocked by a moderator: nobody receives it.
    pub audio_blocked: bool,
    /// Video blocked by a moderator: nobody receives it.
    pub video_blocked: bool,
    /// Asked to receive audio only (a weak connection).
    pub audio_only: bool,
    /// Sharing a screen now (their screen track is forwarded while the room is not split).
    pub screen: bool,
}

impl Standing {
    /// A participant waiting in the lobby with the usual grants.
    pub fn in_lobby() -> Standing {
        Standing {
            space: Space::Lobby,
            publish: true,
            subscribe: true,
            audio_blocked: false,
            video_blocked: false,
            audio_only: false,
            screen: false,
        }
    }

    /// A participant in the joint room with the usual grants.
    pub fn joint() -> Standing {
        Standing {
            space: Space::Joint,
            ..Standing::in_lobby()
        }
    }

    fn blocked(&self, kind: Kind) -> bool {
        match kind {
            Kind::Audio => self.audio_blocked,
            // A moderator who stops someone's video stops their shared screen too.
            Kind::Video | Kind::Screen => self.video_blocked,
        }
    }
}

/// One forwarding path that started or stopped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    /// Who receives.
    pub subscriber: ParticipantId,
    /// Whose media.
    pub publisher: ParticipantId,
    /// Which media.
    pub kind: Kind,
    /// True: start forwarding (for video, ask the publisher for a keyframe); false: stop.
    pub on: bool,
}

/// The policy for one room's participants.
#[derive(Debug, Clone, Default)]
pub struct ForwardingPolicy {
    standings: BTreeMap<ParticipantId, Standing>,
}

impl ForwardingPolicy {
    /// An empty policy.
    pub fn new() -> ForwardingPolicy {
        ForwardingPolicy::default()
    }

    /// Whether `subscriber` receives `kind` from `publisher` now.
    pub fn allows(
        &self,
        subscriber: &ParticipantId,
        publisher: &ParticipantId,
        kind: Kind,
    ) -> bool {
        if subscriber == publisher {
            return false;
        }
        let (Some(sub), Some(publ)) = (
            self.standings.get(subscriber),
            self.standings.get(publisher),
        ) else {
            return false;
        };
        sub.space != Space::Lobby
            && sub.space == publ.space
            && publ.publish
            && !publ.blocked(kind)
            && sub.subscribe
            && !(kind.is_video() && sub.audio_only)
            && (kind != Kind::Screen || (publ.screen && !self.split()))
    }

    /// Whether anyone stands in a private room (the rooms are split).
    pub fn split(&self) -> bool {
        self.standings
            .values()
            .any(|s| matches!(s.space, Space::Private(_)))
    }

    /// Whether `publisher`'s shared screen may flow now (to anyone, the recorder included).
    pub fn screen_flows(&self, publisher: &ParticipantId) -> bool {
        self.standings
            .get(publisher)
            .is_some_and(|s| s.screen && s.publish && !s.video_blocked)
            && !self.split()
    }

    /// Everyone who receives `kind` from `publisher` now.
    pub fn receivers(&self, publisher: &ParticipantId, kind: Kind) -> Vec<ParticipantId> {
        self.standings
            .keys()
            .filter(|sub| self.allows(sub, publisher, kind))
            .cloned()
            .collect()
    }

    /// The participant's standing, if present.
    pub fn standing(&self, id: &ParticipantId) -> Option<&Standing> {
        self.standings.get(id)
    }

    /// Adds or replaces a participant's standing; returns the paths that changed — anyone's,
    /// since one person entering a private room stops every shared screen.
    pub fn set(&mut self, id: ParticipantId, standing: Standing) -> Vec<Edge> {
        let before = self.all_edges();
        self.standings.insert(id, standing);
        diff(before, self.all_edges())
    }

    /// Changes one participant's standing in place; returns the paths that changed.
    /// Unknown participants are left alone (no change).
    pub fn update(&mut self, id: &ParticipantId, change: impl FnOnce(&mut Standing)) -> Vec<Edge> {
        let Some(mut standing) = self.standings.get(id).cloned() else {
            return Vec::new();
        };
        change(&mut standing);
        self.set(id.clone(), standing)
    }

    /// Moves a participant to another space (admit from the lobby, into or out of a private room).
    pub fn move_to(&mut self, id: &ParticipantId, space: Space) -> Vec<Edge> {
        self.update(id, |s| s.space = space)
    }

    /// Brings everyone in a private room (or everyone anywhere, with `None`) back to the joint
    /// room in one step; lobby participants stay where they are.
    pub fn rejoin(&mut self, from: Option<&str>) -> Vec<Edge> {
        let movers: Vec<ParticipantId> = self
            .standings
            .iter()
            .filter(|(_, s)| match (&s.space, from) {
                (Space::Private(key), Some(f)) => key == f,
                (Space::Private(_), None) => true,
                _ => false,
            })
            .map(|(id, _)| id.clone())
            .collect();
        let before = self.all_edges();
        for id in movers {
            if let Some(s) = self.standings.get_mut(&id) {
                s.space = Space::Joint;
            }
        }
        diff(before, self.all_edges())
    }

    /// Removes a participant; returns the paths that changed (a leaver from a private room
    /// may end the split).
    pub fn remove(&mut self, id: &ParticipantId) -> Vec<Edge> {
        let before = self.all_edges();
        self.standings.remove(id);
        diff(before, self.all_edges())
    }

    /// Every active path, sorted (keys iterate in order, kinds in `Ord` order).
    fn all_edges(&self) -> Vec<(ParticipantId, ParticipantId, Kind)> {
        let mut edges = Vec::new();
        for sub in self.standings.keys() {
            for publ in self.standings.keys() {
                for kind in Kind::ALL {
                    if self.allows(sub, publ, kind) {
                        edges.push((sub.clone(), publ.clone(), kind));
                    }
                }
            }
        }
        edges
    }
}

/// The edges that turned off (in `before`, not `after`) and on (in `after`, not `before`).
/// Both inputs are sorted.
fn diff(
    before: Vec<(ParticipantId, ParticipantId, Kind)>,
    after: Vec<(ParticipantId, ParticipantId, Kind)>,
) -> Vec<Edge> {
    let edge = |(subscriber, publisher, kind): (ParticipantId, ParticipantId, Kind), on| Edge {
        subscriber,
        publisher,
        kind,
        on,
    };
    let mut changes: Vec<Edge> = before
        .iter()
        .filter(|e| after.binary_search(e).is_err())
        .cloned()
        .map(|e| edge(e, false))
        .collect();
    changes.extend(
        after
            .iter()
            .filter(|e| before.binary_search(e).is_err())
            .cloned()
            .map(|e| edge(e, true)),
    );
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ParticipantId {
        s.into()
    }

    /// A mediator and parties A and B (B with an agent) in the joint room.
    fn joint_session() -> ForwardingPolicy {
        let mut p = ForwardingPolicy::new();
        for who in ["mediator", "a", "b", "b-agent"] {
            p.set(id(who), Standing::joint());
        }
        p
    }

    fn hears(p: &ForwardingPolicy, sub: &str, publ: &str) -> bool {
        p.allows(&id(sub), &id(publ), Kind::Audio)
    }

    fn sees(p: &ForwardingPolicy, sub: &str, publ: &str) -> bool {
        p.allows(&id(sub), &id(publ), Kind::Video)
    }

    #[test]
    fn the_joint_room_forwards_everyone_to_everyone_else() {
        let p = joint_session();
        for sub in ["mediator", "a", "b", "b-agent"] {
            for publ in ["mediator", "a", "b", "b-agent"] {
                assert_eq!(hears(&p, sub, publ), sub != publ, "{sub} <- {publ}");
                assert_eq!(sees(&p, sub, publ), sub != publ, "{sub} <- {publ}");
            }
        }
        assert_eq!(
            p.receivers(&id("a"), Kind::Audio),
            vec![id("b"), id("b-agent"), id("mediator")]
        );
    }

    #[test]
    fn the_lobby_sends_and_receives_nothing_until_admitted() {
        let mut p = joint_session();
        let changes = p.set(id("late"), Standing::in_lobby());
        assert!(
            changes.is_empty(),
            "a lobby arrival starts nothing: {changes:?}"
        );
        for other in ["mediator", "a", "b"] {
            assert!(!hears(&p, "late", other) && !hears(&p, other, "late"));
            assert!(!sees(&p, "late", other) && !sees(&p, other, "late"));
        }
        let admitted = p.move_to(&id("late"), Space::Joint);
        // Four others, both directions, two kinds: sixteen paths start, none stop.
        assert_eq!(admitted.len(), 16);
        assert!(admitted.iter().all(|e| e.on));
        assert!(hears(&p, "late", "mediator") && sees(&p, "mediator", "late"));
    }

    #[test]
    fn a_private_room_isolates_one_side_with_the_mediator() {
        let mut p = joint_session();
        let mut changes = p.move_to(&id("a"), Space::Private("side-a".into()));
        changes.extend(p.move_to(&id("mediator"), Space::Private("side-a".into())));
        assert!(hears(&p, "a", "mediator") && hears(&p, "mediator", "a"));
        assert!(sees(&p, "a", "mediator") && sees(&p, "mediator", "a"));
        for other in ["b", "b-agent"] {
            assert!(
                !hears(&p, other, "a") && !sees(&p, other, "a"),
                "{other} must not receive A"
            );
            assert!(
                !hears(&p, "a", other) && !sees(&p, "a", other),
                "A must not receive {other}"
            );
            assert!(
                !hears(&p, other, "mediator"),
                "{other} must not hear the caucus"
            );
        }
        // B and the agent still hear each other in the joint room.
        assert!(hears(&p, "b", "b-agent") && hears(&p, "b-agent", "b"));
        assert!(
            changes
                .iter()
                .any(|e| !e.on && e.subscriber == id("b") && e.publisher == id("a"))
        );

        // The mediator walks over to B's side: leaves A alone, reaches B.
        p.move_to(&id("b"), Space::Private("side-b".into()));
        p.move_to(&id("b-agent"), Space::Private("side-b".into()));
        let walk = p.move_to(&id("mediator"), Space::Private("side-b".into()));
        assert!(
            !hears(&p, "a", "mediator")
                && hears(&p, "b", "mediator")
                && hears(&p, "mediator", "b-agent")
        );
        assert!(walk.iter().any(|e| e.on
            && e.subscriber == id("b")
            && e.publisher == id("mediator")
            && e.kind == Kind::Video));

        // One action brings everyone back.
        let back = p.rejoin(None);
        assert!(back.iter().all(|e| e.on), "{back:?}");
        let p2 = joint_session();
        for sub in ["mediator", "a", "b", "b-agent"] {
            for publ in ["mediator", "a", "b", "b-agent"] {
                assert_eq!(hears(&p, sub, publ), hears(&p2, sub, publ));
            }
        }
    }

    #[test]
    fn rejoin_of_one_private_room_leaves_the_other() {
        let mut p = joint_session();
        p.move_to(&id("a"), Space::Private("side-a".into()));
        p.move_to(&id("b"), Space::Private("side-b".into()));
        p.rejoin(Some("side-a"));
        assert_eq!(
            p.standing(&id("a")).map(|s| s.space.clone()),
            Some(Space::Joint)
        );
        assert_eq!(
            p.standing(&id("b")).map(|s| s.space.clone()),
            Some(Space::Private("side-b".into()))
        );
    }

    #[test]
    fn a_moderator_block_stops_that_kind_for_everyone() {
        let mut p = joint_session();
        let changes = p.update(&id("a"), |s| s.audio_blocked = true);
        assert_eq!(
            changes.len(),
            3,
            "three listeners stop hearing A: {changes:?}"
        );
        assert!(
            changes
                .iter()
                .all(|e| !e.on && e.kind == Kind::Audio && e.publisher == id("a"))
        );
        assert!(sees(&p, "b", "a"), "video continues");
        assert!(hears(&p, "a", "b"), "A still hears the others");
        let unblocked = p.update(&id("a"), |s| s.audio_blocked = false);
        assert_eq!(unblocked.len(), 3);
        assert!(unblocked.iter().all(|e| e.on));
    }

    #[test]
    fn audio_only_drops_video_to_that_subscriber_only() {
        let mut p = joint_session();
        let changes = p.update(&id("b"), |s| s.audio_only = true);
        assert_eq!(changes.len(), 3);
        assert!(
            changes
                .iter()
                .all(|e| !e.on && e.kind == Kind::Video && e.subscriber == id("b"))
        );
        assert!(hears(&p, "b", "a") && !sees(&p, "b", "a"));
        assert!(sees(&p, "a", "b"), "others still see B");
    }

    #[test]
    fn observers_publish_nothing_and_leavers_stop_everything() {
        let mut p = joint_session();
        p.set(
            id("observer"),
            Standing {
                publish: false,
                ..Standing::joint()
            },
        );
        assert!(hears(&p, "observer", "a") && sees(&p, "observer", "mediator"));
        assert!(p.receivers(&id("observer"), Kind::Audio).is_empty());
        let gone = p.remove(&id("a"));
        assert_eq!(
            gone.len(),
            2 * 2 * 3 + 2,
            "A's paths to and from three, plus the observer receiving A"
        );
        assert!(gone.iter().all(|e| !e.on));
        assert!(!hears(&p, "b", "a"));
        assert!(p.update(&id("ghost"), |s| s.publish = false).is_empty());
    }

    #[test]
    fn a_shared_screen_stops_for_everyone_while_rooms_are_split() {
        let mut p = joint_session();
        let shows = |p: &ForwardingPolicy, sub: &str| p.allows(&id(sub), &id("b"), Kind::Screen);
        assert!(!shows(&p, "a"), "a camera-only publisher shows no screen");
        let started = p.update(&id("b"), |s| s.screen = true);
        assert_eq!(started.len(), 3, "three viewers: {started:?}");
        assert!(started.iter().all(|e| e.on && e.kind == Kind::Screen));
        assert!(shows(&p, "a") && shows(&p, "mediator") && p.screen_flows(&id("b")));

        // A's side goes into a private room: B's screen stops for everyone, B's side included,
        // although B itself did not move.
        let split = p.move_to(&id("a"), Space::Private("side-a".into()));
        assert!(p.split() && !p.screen_flows(&id("b")));
        assert!(["mediator", "b-agent", "a"].iter().all(|v| !shows(&p, v)));
        assert!(
            split
                .iter()
                .any(|e| !e.on && e.kind == Kind::Screen && e.subscriber == id("b-agent")),
            "{split:?}"
        );
        assert!(
            sees(&p, "b-agent", "b"),
            "the camera goes on in the joint room"
        );

        // A moderator's video block stops the screen too; audio-only viewers get no screen.
        p.rejoin(None);
        assert!(shows(&p, "a"));
        p.update(&id("b"), |s| s.video_blocked = true);
        assert!(!shows(&p, "a") && !p.screen_flows(&id("b")));
        p.update(&id("b"), |s| s.video_blocked = false);
        p.update(&id("a"), |s| s.audio_only = true);
        assert!(!shows(&p, "a") && shows(&p, "mediator"));
    }
}

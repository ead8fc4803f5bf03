//! The media plane as the live-session layer sees it: the port the hub drives (who enters, who
//! stands where, SDP and candidates in, taps for the recorder), implemented by the SFU
//! (`tiaojie-media`) and, in unit tests, by a fake that records what it was told.
//!
//! The hub's rules (who may be heard where, when a mute takes effect) are then testable without
//! sockets: a test reads the calls the fake received, in order, beside the events people got.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use tiaojie_domain::RoomName;

use tiaojie_media::{
    MediaError, OfferOutcome, ParticipantId, ParticipantMediaStats, Sfu, SfuCounters, Standing,
    StandingChange, TapReceiver,
};

/// A media plane's answer, later.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, MediaError>> + Send + 'a>>;

/// What the live-session layer asks of the media plane. Every call names the room and the
/// participant by the session layer's names; the plane knows no cases or sides.
pub trait MediaPlane: Send + Sync {
    /// A (re)joined participant enters with this standing (any old media connection of
    /// theirs is dropped).
    fn enter<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        standing: Standing,
    ) -> Pending<'a, ()>;
    /// The participant's SDP offer; `screen` is the line it shares its screen on.
    fn offer<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        sdp: String,
        screen: Option<String>,
    ) -> Pending<'a, OfferOutcome>;
    /// The participant's answer to a server offer; the next server offer, if any.
    fn answer<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        sdp: String,
    ) -> Pending<'a, Option<String>>;
    /// A trickled ICE candidate.
    fn candidate<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        candidate: String,
    ) -> Pending<'a, ()>;
    /// A change of standing: forwarding follows, connections stay.
    fn update<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        change: StandingChange,
    ) -> Pending<'a, ()>;
    /// The largest video height this participant wants (`None`: no limit).
    fn set_max_height<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        max_height: Option<u32>,
    ) -> Pending<'a, ()>;
    /// The participant left: their media stops.
    fn leave<'a>(&'a self, room: &'a RoomName, who: ParticipantId) -> Pending<'a, ()>;
    /// Everyone's media in the room stops.
    fn close_room<'a>(&'a self, room: &'a RoomName) -> Pending<'a, ()>;
    /// Per-participant statistics of a room.
    fn stats<'a>(&'a self, room: &'a RoomName) -> Pending<'a, Vec<ParticipantMediaStats>>;
    /// Copies the room's media into a tap of `capacity` packets (for the recorder).
    fn tap<'a>(&'a self, room: &'a RoomName, capacity: usize) -> Pending<'a, TapReceiver>;
    /// Stops the room's tap.
    fn untap<'a>(&'a self, room: &'a RoomName) -> Pending<'a, ()>;
    /// Asks every camera in the room for a keyframe.
    fn request_keyframes<'a>(&'a self, room: &'a RoomName) -> Pending<'a, ()>;
    /// Stops the plane (connections close).
    fn shutdown(&self) -> Pending<'_, ()>;
    /// Packet counters, for `/metrics`.
    fn counters(&self) -> &SfuCounters;
    /// The address media arrives on.
    fn local_addr(&self) -> SocketAddr;
}

impl MediaPlane for Sfu {
    fn enter<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        standing: Standing,
    ) -> Pending<'a, ()> {
        Box::pin(Sfu::enter(self, room.as_str(), who, standing))
    }

    fn offer<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        sdp: String,
        screen: Option<String>,
    ) -> Pending<'a, OfferOutcome> {
        Box::pin(Sfu::offer(self, room.as_str(), who, sdp, screen))
    }

    fn answer<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        sdp: String,
    ) -> Pending<'a, Option<String>> {
        Box::pin(Sfu::answer(self, room.as_str(), who, sdp))
    }

    fn candidate<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        candidate: String,
    ) -> Pending<'a, ()> {
        Box::pin(Sfu::candidate(self, room.as_str(), who, candidate))
    }

    fn update<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        change: StandingChange,
    ) -> Pending<'a, ()> {
        Box::pin(Sfu::update(self, room.as_str(), who, change))
    }

    fn set_max_height<'a>(
        &'a self,
        room: &'a RoomName,
        who: ParticipantId,
        max_height: Option<u32>,
    ) -> Pending<'a, ()> {
        Box::pin(Sfu::set_max_height(self, room.as_str(), who, max_height))
    }

    fn leave<'a>(&'a self, room: &'a RoomName, who: ParticipantId) -> Pending<'a, ()> {
        Box::pin(Sfu::leave(self, room.as_str(), who))
    }

    fn close_room<'a>(&'a self, room: &'a RoomName) -> Pending<'a, ()> {
        Box::pin(Sfu::close_room(self, room.as_str()))
    }

    fn stats<'a>(&'a self, room: &'a RoomName) -> Pending<'a, Vec<ParticipantMediaStats>> {
        Box::pin(Sfu::stats(self, room.as_str()))
    }

    fn tap<'a>(&'a self, room: &'a RoomName, capacity: usize) -> Pending<'a, TapReceiver> {
        Box::pin(Sfu::tap(self, room.as_str(), capacity))
    }

    fn untap<'a>(&'a self, room: &'a RoomName) -> Pending<'a, ()> {
        Box::pin(Sfu::untap(self, room.as_str()))
    }

    fn request_keyframes<'a>(&'a self, room: &'a RoomName) -> Pending<'a, ()> {
        Box::pin(Sfu::request_keyframes(self, room.as_str()))
    }

    fn shutdown(&self) -> Pending<'_, ()> {
        Box::pin(async move {
            Sfu::shutdown(self).await;
            Ok(())
        })
    }

    fn counters(&self) -> &SfuCounters {
        Sfu::counters(self)
    }

    fn local_addr(&self) -> SocketAddr {
        Sfu::local_addr(self)
    }
}

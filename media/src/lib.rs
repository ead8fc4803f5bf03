//! tiaojie's media plane: an SFU on str0m over one UDP port.
//!
//! Map of the crate (arrows point one way: `sfu` → `shard_io` → `shard` → the leaf modules, `messages` and
//! `stats` at the bottom):
//! - [`sfu`]: the public handle — [`Sfu::start`], commands with replies (enter, offer, answer,
//!   candidate, standing changes, leave, stats, tap) and the [`MediaEvent`] stream signaling relays.
//! - `messages`: what passes between the handle and the task (config, errors, events, standing
//!   changes, an offer's outcome); `stats`: per-participant statistics and `/metrics` counters.
//! - `shard_io`: the media task's I/O shell — the UDP socket, the clock, batched sends — around
//!   the shard.
//! - `shard`: the media task's state machine, with no I/O and no clock of its own: every
//!   participant's `Rtc`, the demux maps, each room's policy and forwarding table; keyframes,
//!   simulcast layers, bandwidth, speaker. Driven in memory by `sim` (tests only): str0m
//!   peers on in-process queues and a simulated clock — forwarding, keyframe requests, layer
//!   switches, policy changes.
//! - [`policy`]: who receives whom — lobby, joint room, private rooms (背对背), moderator blocks,
//!   observers, audio-only subscribers — as a plain state machine.
//! - `demux`: which participant a datagram belongs to (source address, then STUN ufrag), O(1).
//! - `layers`: simulcast layer choice from bandwidth and requested size.
//! - `offer`: a client's offer narrowed to publishing on the lines it opened (no phantom
//!   tracks echoed back).
//! - `outbox`: outgoing datagrams, sent in batches with `sendmmsg`.
//! - `payload`: what the SFU reads inside RTP payloads — where a VP8/H.264 keyframe starts.
//! - `speaker`: active-speaker detection from RFC 6464 audio levels.
//! - [`tap`]: the recorder tap, a bounded channel that drops and counts rather than stalls.
//!
//! The crate is given opaque participant ids and policies, never case data, names or roles.

pub mod policy;
pub mod sfu;
pub mod tap;

mod demux;
mod layers;
mod messages;
mod offer;
mod outbox;
mod payload;
mod shard;
mod shard_io;
#[cfg(test)]
mod sim;
mod speaker;
mod stats;

pub use policy::{Edge, ForwardingPolicy, Kind, ParticipantId, Space, Standing};
pub use sfu::{
    MediaError, MediaEvent, OfferOutcome, ParticipantMediaStats, Sfu, SfuConfig, SfuCounters,
    StandingChange,
};
pub use tap::{TapCounters, TapPacket, TapReceiver};

//! What passes between the SFU's handle and its media task: the configuration, errors, the
//! events signaling relays, standing changes and an offer's outcome.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::policy::{Kind, ParticipantId, Space};

/// How the SFU is set up.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// The UDP address every participant's media uses.
    pub bind: SocketAddr,
    /// Addresses put in ICE candidates (a public address behind NAT); empty: the bound address.
    pub advertise: Vec<IpAddr>,
    /// Minimum time between keyframe requests to one publisher's layer while one is outstanding.
    pub keyframe_throttle: Duration,
    /// How often the active speaker is re-evaluated.
    pub speaker_interval: Duration,
    /// The bandwidth estimate a new subscriber starts from, bits per second.
    pub initial_bitrate_bps: u64,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: Vec::new(),
            keyframe_throttle: Duration::from_secs(1),
            speaker_interval: Duration::from_millis(300),
            initial_bitrate_bps: 1_000_000,
        }
    }
}

/// What went wrong with a media request.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The media task has stopped.
    #[error("the media plane is not running")]
    Stopped,
    /// The participant has not entered the media plane (join first).
    #[error("not in a room's media plane")]
    NotEntered,
    /// The SDP did not parse or was refused.
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    /// An answer came with no offer waiting for it (or for an offer that a newer one replaced).
    #[error("no server offer is waiting for an answer")]
    NoPendingOffer,
    /// The first offer must come from the client.
    #[error("send an offer first")]
    NotNegotiated,
    /// A trickled candidate did not parse.
    #[error("invalid ICE candidate: {0}")]
    InvalidCandidate(String),
    /// The configuration cannot work.
    #[error("media configuration: {0}")]
    Config(String),
    /// The UDP port could not be opened.
    #[error("cannot open the media port {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Something the signaling layer must relay or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A server offer (tracks to add or remove) for this participant; they answer with `answer`.
    Offer {
        /// Room.
        room: String,
        /// Who must answer.
        participant: ParticipantId,
        /// The SDP.
        sdp: String,
    },
    /// The active speaker changed (`None`: nobody yet or they left).
    ActiveSpeaker {
        /// Room.
        room: String,
        /// The loudest participant.
        participant: Option<ParticipantId>,
    },
    /// A participant's media connection came up.
    Connected {
        /// Room.
        room: String,
        /// Who.
        participant: ParticipantId,
    },
    /// A participant's media connection is gone (network vanished past the ICE timeout, or their
    /// state failed); the others no longer receive them. They may send a new offer.
    Lost {
        /// Room.
        room: String,
        /// Who.
        participant: ParticipantId,
        /// Why, for logs.
        reason: String,
    },
}

/// A change to one participant's standing in the forwarding policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StandingChange {
    /// Move to a space (admit from the lobby, into or out of a private room).
    Move(Space),
    /// A moderator blocks or unblocks their audio or video for everyone.
    Block(Kind, bool),
    /// They receive audio only (or video again).
    AudioOnly(bool),
    /// Their screen share is stopped (the rooms split, or a moderator stopped it): the line
    /// forwards nothing until an offer declares a screen again.
    StopScreen,
    /// Their grants changed.
    Grants {
        /// May publish.
        publish: bool,
        /// May subscribe.
        subscribe: bool,
    },
}

/// The outcome of a client's offer.
#[derive(Debug, Clone)]
pub struct OfferOutcome {
    /// The SDP answer.
    pub answer: String,
    /// A server offer to send right after the answer (tracks the participant should receive).
    pub next_offer: Option<String>,
}

//! The SFU's public handle: start it, and talk to it by message passing.
//!
//! Every participant's WebRTC state lives inside the shard task ([`crate::shard`]); this handle
//! only sends it commands (with oneshot replies) and hands out the event stream the signaling
//! layer relays to clients (server offers, active speaker, lost media connections).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::policy::{Kind, ParticipantId, Space, Standing};
use crate::shard::{Command, Shard};
use crate::tap::TapReceiver;

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

/// Media statistics of one participant, for the control API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ParticipantMediaStats {
    /// Identity.
    pub participant: String,
    /// Where the forwarding policy has them: `lobby`, `joint` or `private:<key>`.
    pub space: String,
    /// ICE and DTLS are up.
    pub connected: bool,
    /// Received from them, bits per second.
    pub ingress_bps: u64,
    /// Sent to them, bits per second.
    pub egress_bps: u64,
    /// The bandwidth estimate towards them, bits per second.
    pub estimate_bps: Option<u64>,
    /// Round-trip time, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Fraction of their packets lost on the way in (0..1).
    pub ingress_loss: Option<f32>,
    /// Fraction of our packets to them lost (0..1), as they report.
    pub egress_loss: Option<f32>,
    /// Tracks they publish.
    pub published: Vec<PublishedTrackStats>,
    /// Tracks forwarded to them.
    pub received: Vec<ReceivedTrackStats>,
}

/// One published track.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PublishedTrackStats {
    /// Media line id.
    pub mid: String,
    /// `audio` or `video`.
    pub kind: String,
    /// Simulcast layers (one unnamed layer without simulcast).
    pub layers: Vec<LayerStats>,
}

/// One incoming layer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LayerStats {
    /// Simulcast rid.
    pub rid: Option<String>,
    /// Measured bitrate.
    pub bitrate_bps: u64,
    /// Frame height from the last keyframe.
    pub height: Option<u32>,
}

/// One forwarded track.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReceivedTrackStats {
    /// Whose.
    pub publisher: String,
    /// `audio` or `video`.
    pub kind: String,
    /// The simulcast layer forwarded now.
    pub layer: Option<String>,
}

/// Packet counters of the media plane, for `/metrics`.
#[derive(Debug, Default)]
pub struct SfuCounters {
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_unknown: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) send_failures: AtomicU64,
    pub(crate) packets_forwarded: AtomicU64,
    pub(crate) peers_lost: AtomicU64,
    pub(crate) peer_panics: AtomicU64,
    pub(crate) peers: AtomicU64,
    /// Packets by forwarding delay, one counter per [`FORWARD_DELAY_BUCKETS_US`] bound plus
    /// one for longer.
    pub(crate) forward_delay: [AtomicU64; FORWARD_DELAY_BUCKETS_US.len() + 1],
    pub(crate) forward_delay_sum_us: AtomicU64,
}

/// Upper bounds (µs) of the forwarding-delay histogram: from the arrival of an RTP packet to
/// its being queued for every subscriber.
pub const FORWARD_DELAY_BUCKETS_US: [u64; 10] = [
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000,
];

impl SfuCounters {
    pub(crate) fn observe_forward_delay(&self, delay: Duration) {
        let us = delay.as_micros().min(u128::from(u64::MAX)) as u64;
        let bucket = FORWARD_DELAY_BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(FORWARD_DELAY_BUCKETS_US.len());
        self.forward_delay[bucket].fetch_add(1, Ordering::Relaxed);
        self.forward_delay_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The forwarding-delay histogram: (upper bound in µs or `None` for +Inf, packets at or
    /// below it — cumulative, as Prometheus wants), and the sum of all delays in µs.
    pub fn forward_delay(&self) -> (Vec<(Option<u64>, u64)>, u64) {
        let mut total = 0;
        let buckets = self
            .forward_delay
            .iter()
            .enumerate()
            .map(|(i, c)| {
                total += c.load(Ordering::Relaxed);
                (FORWARD_DELAY_BUCKETS_US.get(i).copied(), total)
            })
            .collect();
        (buckets, self.forward_delay_sum_us.load(Ordering::Relaxed))
    }
}

macro_rules! getters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        impl SfuCounters {
            $(#[doc = $doc] pub fn $name(&self) -> u64 { self.$name.load(Ordering::Relaxed) })*
        }
    };
}

getters! {
    datagrams_in: "UDP datagrams received.",
    datagrams_unknown: "Datagrams dropped because no participant owns their source (garbage, floods, stale peers).",
    datagrams_out: "UDP datagrams sent.",
    send_failures: "Datagrams the socket refused (buffer full).",
    packets_forwarded: "RTP packets written to subscribers.",
    peers_lost: "Media connections lost (ICE timeout, failed state).",
    peer_panics: "Participant states that panicked and were isolated.",
    peers: "Participants with a media connection now.",
}

/// The running SFU.
#[derive(Debug, Clone)]
pub struct Sfu {
    tx: mpsc::Sender<Command>,
    local_addr: SocketAddr,
    counters: Arc<SfuCounters>,
}

impl Sfu {
    /// Binds the UDP port and starts the media task on its own thread.
    pub fn start(
        config: SfuConfig,
    ) -> Result<(Sfu, mpsc::UnboundedReceiver<MediaEvent>), MediaError> {
        let socket = std::net::UdpSocket::bind(config.bind).map_err(|source| MediaError::Bind {
            addr: config.bind,
            source,
        })?;
        let local_addr = socket.local_addr().map_err(|source| MediaError::Bind {
            addr: config.bind,
            source,
        })?;
        let advertise = if config.advertise.is_empty() {
            if local_addr.ip().is_unspecified() {
                return Err(MediaError::Config(
                    "binding to all interfaces needs media.advertise (the address clients reach)"
                        .into(),
                ));
            }
            vec![local_addr.ip()]
        } else {
            config.advertise.clone()
        };
        socket
            .set_nonblocking(true)
            .map_err(|source| MediaError::Bind {
                addr: config.bind,
                source,
            })?;
        let (tx, rx) = mpsc::channel(1024);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let counters = Arc::new(SfuCounters::default());
        let shard_counters = counters.clone();
        let shard_config = config.clone();
        std::thread::Builder::new()
            .name("tiaojie-media".into())
            .spawn(move || {
                // The media task gets a runtime of its own: the packet path never queues
                // behind HTTP work, and its CPU time is one thread's.
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the media runtime");
                        return;
                    }
                };
                runtime.block_on(async move {
                    match tokio::net::UdpSocket::from_std(socket) {
                        Ok(socket) => {
                            let shard = Shard::new(
                                socket,
                                local_addr,
                                advertise,
                                shard_config,
                                events_tx,
                                shard_counters,
                            );
                            shard.run(rx).await;
                        }
                        Err(e) => tracing::error!(error = %e, "cannot register the media socket"),
                    }
                });
            })
            .map_err(|source| MediaError::Bind {
                addr: config.bind,
                source,
            })?;
        tracing::info!(%local_addr, "media plane listening (UDP)");
        Ok((
            Sfu {
                tx,
                local_addr,
                counters,
            },
            events_rx,
        ))
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Packet counters.
    pub fn counters(&self) -> &SfuCounters {
        &self.counters
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, MediaError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| MediaError::Stopped)?;
        rx.await.map_err(|_| MediaError::Stopped)
    }

    /// A participant enters a room's media plane (a fresh join: any old media connection of
    /// theirs is dropped, as a reloaded page makes a new one).
    pub async fn enter(
        &self,
        room: &str,
        participant: ParticipantId,
        standing: Standing,
    ) -> Result<(), MediaError> {
        self.ask(|reply| Command::Enter {
            room: room.into(),
            participant,
            standing,
            reply,
        })
        .await
    }

    /// The participant's SDP offer; returns the answer (and a server offer to follow it).
    /// `screen` is the mid of the media line it shares its screen on, if it shares one (the
    /// session layer has checked that it may).
    pub async fn offer(
        &self,
        room: &str,
        participant: ParticipantId,
        sdp: String,
        screen: Option<String>,
    ) -> Result<OfferOutcome, MediaError> {
        self.ask(|reply| Command::Offer {
            room: room.into(),
            participant,
            sdp,
            screen,
            reply,
        })
        .await?
    }

    /// The participant's answer to a server offer; returns the next server offer, if any.
    pub async fn answer(
        &self,
        room: &str,
        participant: ParticipantId,
        sdp: String,
    ) -> Result<Option<String>, MediaError> {
        self.ask(|reply| Command::Answer {
            room: room.into(),
            participant,
            sdp,
            reply,
        })
        .await?
    }

    /// A trickled ICE candidate (`a=candidate` value, with or without the `candidate:` prefix).
    pub async fn candidate(
        &self,
        room: &str,
        participant: ParticipantId,
        candidate: String,
    ) -> Result<(), MediaError> {
        self.ask(|reply| Command::Candidate {
            room: room.into(),
            participant,
            candidate,
            reply,
        })
        .await?
    }

    /// Changes a participant's standing; forwarding follows at once, connections stay.
    pub async fn update(
        &self,
        room: &str,
        participant: ParticipantId,
        change: StandingChange,
    ) -> Result<(), MediaError> {
        self.ask(|reply| Command::Update {
            room: room.into(),
            participant,
            change,
            reply,
        })
        .await?
    }

    /// The largest video height this participant wants (`None`: no limit).
    pub async fn set_max_height(
        &self,
        room: &str,
        participant: ParticipantId,
        max_height: Option<u32>,
    ) -> Result<(), MediaError> {
        self.ask(|reply| Command::MaxHeight {
            room: room.into(),
            participant,
            max_height,
            reply,
        })
        .await?
    }

    /// The participant left: their media stops and their connection closes.
    pub async fn leave(&self, room: &str, participant: ParticipantId) -> Result<(), MediaError> {
        self.ask(|reply| Command::Leave {
            room: room.into(),
            participant,
            reply,
        })
        .await
    }

    /// Everyone's media in the room stops.
    pub async fn close_room(&self, room: &str) -> Result<(), MediaError> {
        self.ask(|reply| Command::CloseRoom {
            room: room.into(),
            reply,
        })
        .await
    }

    /// Per-participant statistics of a room.
    pub async fn stats(&self, room: &str) -> Result<Vec<ParticipantMediaStats>, MediaError> {
        self.ask(|reply| Command::Stats {
            room: room.into(),
            reply,
        })
        .await
    }

    /// Starts copying the room's media into a tap of `capacity` packets (replacing any tap).
    pub async fn tap(&self, room: &str, capacity: usize) -> Result<TapReceiver, MediaError> {
        self.ask(|reply| Command::Tap {
            room: room.into(),
            capacity,
            reply,
        })
        .await
    }

    /// Asks every camera in the room for a keyframe (a recording resumes decodable).
    pub async fn request_keyframes(&self, room: &str) -> Result<(), MediaError> {
        self.ask(|reply| Command::Keyframes {
            room: room.into(),
            reply,
        })
        .await
    }

    /// Stops the room's tap.
    pub async fn untap(&self, room: &str) -> Result<(), MediaError> {
        self.ask(|reply| Command::Untap {
            room: room.into(),
            reply,
        })
        .await
    }

    /// Stops the media task (connections close).
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }
}

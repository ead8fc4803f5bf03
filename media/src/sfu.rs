//! The SFU's public handle: start it, and talk to it by message passing.
//!
//! Every participant's WebRTC state lives inside the shard task ([`crate::shard`]); this handle
//! only sends it commands (with oneshot replies) and hands out the event stream the signaling
//! layer relays to clients (server offers, active speaker, lost media connections).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use crate::messages::{MediaError, MediaEvent, OfferOutcome, SfuConfig, StandingChange};
use crate::policy::{ParticipantId, Standing};
use crate::shard::{Command, Shard};
use crate::shard_io;
pub use crate::stats::{
    FORWARD_DELAY_BUCKETS_US, LayerStats, ParticipantMediaStats, PublishedTrackStats,
    ReceivedTrackStats, SfuCounters,
};
use crate::tap::TapReceiver;

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
                                local_addr,
                                advertise,
                                shard_config,
                                events_tx,
                                shard_counters.clone(),
                                shard_io::clock(),
                                std::time::Instant::now,
                            );
                            shard_io::run(shard, socket, shard_counters, rx).await;
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

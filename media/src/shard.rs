//! One media shard's state machine: every participant's str0m `Rtc`, the demux maps, and per
//! room the forwarding policy and the forwarding table. It does no I/O and has no clock of its
//! own, in str0m's style: the caller feeds it inputs with the time they happened
//! ([`Shard::handle_command`], [`Shard::handle_datagram`], [`Shard::handle_timeout`]) and takes
//! its outputs (datagrams from [`Shard::transmits`], the next wake-up from
//! [`Shard::poll_timeout`]; replies and [`MediaEvent`]s go out on their channels), and gives it
//! the clock it reads while draining (see [`drain`]). The socket, batching and the real clock
//! are [`crate::shard_io`]'s; `sim.rs` drives it in memory with a simulated clock. One task
//! owns it, so the packet path takes no lock.
//!
//! str0m's rule is kept in one place, [`Shard::mutate`]: every mutation of an `Rtc` (input, a
//! write, an SDP change) is followed by draining its output until it yields a timeout, and that
//! timeout goes into the timer index. Events found while draining are queued as work and
//! handled after the `Rtc` is released, so forwarding to subscribers never nests borrows.
//! Each mutation runs under `catch_unwind`: a panic in one participant's state loses that
//! participant's media, not the room.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{DatagramSend, Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Ssrc};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc, RtcError};
use tokio::sync::{mpsc, oneshot};

use crate::demux::{Demux, PeerKey};
use crate::layers::{self, LayerInfo};
use crate::messages::{MediaError, MediaEvent, OfferOutcome, SfuConfig, StandingChange};
use crate::payload;
use crate::policy::{ForwardingPolicy, Kind, ParticipantId, Space, Standing};
use crate::speaker::SpeakerDetector;
use crate::stats::{
    LayerStats, ParticipantMediaStats, PublishedTrackStats, ReceivedTrackStats, SfuCounters,
};
use crate::tap::{Tap, TapPacket, TapReceiver};

/// Due timeouts one drain feeds before yielding to the timer index (and so to other peers).
const IMMEDIATE_TIMEOUTS: usize = 64;
/// How far back a subscriber's NACKs are answered. A NACK comes about one round trip after the
/// loss; a second covers round trips far beyond any usable call, where str0m's default keeps
/// three seconds — two of them memory per subscriber and stream for nothing.
const RTX_HISTORY: Duration = Duration::from_secs(1);
/// At most this many packets of history (a second of 8 Mbit/s video).
const RTX_HISTORY_PACKETS: usize = 1000;
/// Queued retransmissions are dropped when they exceed this share of the stream (str0m's
/// default): a subscriber losing more needs a lower layer, not more resends.
const RTX_RATIO_CAP: f32 = 0.15;
/// Housekeeping period: active speaker, layer choice, bitrates.
const TICK: Duration = Duration::from_millis(100);
/// Share of the estimate kept back for audio, RTCP and retransmissions.
const ESTIMATE_HEADROOM: f64 = 0.85;
/// The bitrate the estimator assumes at first and probes from; what a subscriber receiving
/// nothing but audio is left at (no padding above it).
const PROBE_FLOOR_BPS: u64 = 100_000;

/// A request from the signaling layer.
pub(crate) enum Command {
    Enter {
        room: String,
        participant: ParticipantId,
        standing: Standing,
        reply: oneshot::Sender<()>,
    },
    Offer {
        room: String,
        participant: ParticipantId,
        sdp: String,
        screen: Option<String>,
        reply: oneshot::Sender<Result<OfferOutcome, MediaError>>,
    },
    Answer {
        room: String,
        participant: ParticipantId,
        sdp: String,
        reply: oneshot::Sender<Result<Option<String>, MediaError>>,
    },
    Candidate {
        room: String,
        participant: ParticipantId,
        candidate: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Update {
        room: String,
        participant: ParticipantId,
        change: StandingChange,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    MaxHeight {
        room: String,
        participant: ParticipantId,
        max_height: Option<u32>,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Leave {
        room: String,
        participant: ParticipantId,
        reply: oneshot::Sender<()>,
    },
    CloseRoom {
        room: String,
        reply: oneshot::Sender<()>,
    },
    Stats {
        room: String,
        reply: oneshot::Sender<Vec<ParticipantMediaStats>>,
    },
    Tap {
        room: String,
        capacity: usize,
        reply: oneshot::Sender<TapReceiver>,
    },
    Untap {
        room: String,
        reply: oneshot::Sender<()>,
    },
    Keyframes {
        room: String,
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// One incoming simulcast layer (or the only layer).
#[derive(Debug)]
struct LayerIn {
    rid: Option<Rid>,
    window_bytes: u64,
    bitrate_bps: u64,
    height: Option<u32>,
    /// When we last asked the publisher for a keyframe, and whether one came since.
    keyframe_asked: Option<Instant>,
}

/// A track a participant publishes.
#[derive(Debug)]
struct TrackIn {
    mid: Mid,
    kind: Kind,
    layers: Vec<LayerIn>,
}

impl TrackIn {
    fn layer_mut(&mut self, rid: Option<Rid>) -> &mut LayerIn {
        let at = match self.layers.iter().position(|l| l.rid == rid) {
            Some(at) => at,
            None => {
                self.layers.push(LayerIn {
                    rid,
                    window_bytes: 0,
                    bitrate_bps: 0,
                    height: None,
                    keyframe_asked: None,
                });
                self.layers.len() - 1
            }
        };
        &mut self.layers[at]
    }
}

/// Where a forwarded track is in negotiation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// Wanted; goes into the next server offer.
    ToOpen,
    /// In an offer waiting for its answer; `then_stop`: no longer wanted (the policy changed
    /// mid-negotiation), so it stops once the answer opens it.
    Negotiating { mid: Mid, then_stop: bool },
    /// Forwarding.
    Open(Mid),
    /// No longer wanted; goes into the next offer as stopped.
    ToStop(Mid),
    /// Stopped in an offer waiting for its answer.
    Stopping(Mid),
}

impl OutState {
    /// The line's mid, once it has one.
    fn mid(self) -> Option<Mid> {
        match self {
            OutState::ToOpen => None,
            OutState::Negotiating { mid, .. }
            | OutState::Open(mid)
            | OutState::ToStop(mid)
            | OutState::Stopping(mid) => Some(mid),
        }
    }
}

/// Whether an open track's packets go out to its subscriber now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// (Re)starts at the next packet that can begin a stream: any audio packet, the first
    /// packet of a video keyframe (a decoder cannot start on a delta). The subscriber's
    /// sequence numbers and RTP time continue where they stopped.
    Starting,
    /// Forwarding.
    Flowing,
    /// Not forwarded now (the policy says no: another space, a moderator's block, audio only)
    /// although the publisher still publishes it: the media line stays, so coming back needs
    /// no renegotiation and a moving person's SDP does not grow with every move.
    Paused,
}

/// A track forwarded to a subscriber.
#[derive(Debug)]
struct TrackOut {
    publisher: PeerKey,
    source: Mid,
    kind: Kind,
    state: OutState,
    flow: Flow,
    /// The layer forwarded now and the one we want.
    layer: Option<Rid>,
    target: Option<Rid>,
    /// Added to the source's RTP time so a layer switch keeps the subscriber's timeline going.
    time_offset: i64,
    /// Added to the source's sequence numbers, for the same reason.
    seq_offset: i64,
    /// The source sequence number this subscriber's stream (or its current layer) began at.
    first_seq: u64,
    /// The highest sequence number sent to this subscriber.
    last_seq_out: Option<u64>,
    /// The RTP time last sent, when, and at what clock rate.
    last_out: Option<(u64, Instant, u32)>,
    /// Anything was written to this subscriber's stream yet (its retransmission history is
    /// sized at the first write).
    written: bool,
}

impl TrackOut {
    /// A track newly wanted by a subscriber: it goes into the next server offer.
    fn wanted(publisher: PeerKey, source: Mid, kind: Kind) -> TrackOut {
        TrackOut {
            publisher,
            source,
            kind,
            state: OutState::ToOpen,
            flow: Flow::Starting,
            layer: None,
            target: None,
            time_offset: 0,
            seq_offset: 0,
            first_seq: 0,
            last_seq_out: None,
            last_out: None,
            written: false,
        }
    }

    /// The subscriber's connection is gone: the line goes into the offer of their next one,
    /// whose new stream has its retransmission history sized again at its first write (it was
    /// left at str0m's default, three times ours, after every reconnection).
    fn offer_again(&mut self) {
        self.state = OutState::ToOpen;
        self.layer = None;
        self.last_out = None;
        self.written = false;
        self.restart_video();
    }

    /// Video starts again at a keyframe (writes before a connection were dropped, a new line
    /// opened); a paused track starts so when it is unpaused anyway.
    fn restart_video(&mut self) {
        if self.kind.is_video() && self.flow != Flow::Paused {
            self.flow = Flow::Starting;
        }
    }

    /// Starts (or switches layers) at source packet `seq` with RTP time `rtp_time`: the
    /// subscriber's sequence numbers and RTP time continue where they were, or start at the
    /// source's (within the first 2^16, so no rollover needs signalling) for a new stream.
    fn begin(&mut self, seq: u64, rtp_time: u64, rate: u32, now: Instant) {
        let next_seq = self.last_seq_out.map_or(seq & 0xffff, |s| s + 1);
        self.seq_offset = next_seq as i64 - seq as i64;
        self.first_seq = seq;
        self.time_offset = match self.last_out {
            Some((last, at, last_rate)) if last_rate == rate => {
                let elapsed = now.saturating_duration_since(at).as_secs_f64();
                let continue_at = last as i64 + (elapsed * f64::from(rate)) as i64 + 1;
                continue_at - rtp_time as i64
            }
            _ => 0,
        };
    }

    /// The subscriber's sequence number and RTP time for a source packet.
    fn map(&mut self, seq: u64, rtp_time: u64) -> (u64, u32) {
        let out_seq = (seq as i64 + self.seq_offset).max(0) as u64;
        self.last_seq_out = Some(self.last_seq_out.map_or(out_seq, |s| s.max(out_seq)));
        let out_time = (rtp_time as i64 + self.time_offset) as u64;
        (out_seq, out_time as u32)
    }
}

/// One subscriber's copy of a packet being forwarded.
struct Target {
    sub_key: PeerKey,
    mid: Mid,
    seq: u64,
    time: u32,
    /// The first packet on this stream: size its retransmission history first.
    first_write: bool,
}

/// Where an incoming SSRC's packets belong.
#[derive(Debug, Clone, Copy)]
struct Source {
    mid: Mid,
    rid: Option<Rid>,
    pt: Pt,
    params: PayloadParams,
}

/// A participant.
struct Peer {
    room: String,
    who: ParticipantId,
    /// Boxed: str0m's `Rtc` is about 10 KiB inline, which every participant would carry in
    /// the peer map before (or without) ever offering media.
    rtc: Option<Box<Rtc>>,
    ufrag: Option<String>,
    deadline: Option<Instant>,
    connected: bool,
    tracks_in: Vec<TrackIn>,
    tracks_out: Vec<TrackOut>,
    /// The media line the participant's last offer declared as its shared screen.
    screen_mid: Option<Mid>,
    /// Incoming SSRCs seen so far.
    sources: HashMap<Ssrc, Source>,
    pending: Option<SdpPendingOffer>,
    estimate: Option<Bitrate>,
    /// What the bandwidth estimator was last told to aim for.
    desired_bps: u64,
    max_height: Option<u32>,
    stats: PeerStatsView,
}

impl Peer {
    /// The changes of an offer that will not be answered go back into the queue for the next.
    /// A line no longer wanted while it was in that offer is dropped, as an unwanted
    /// [`OutState::ToOpen`] is.
    fn requeue_negotiation(&mut self) {
        self.tracks_out.retain_mut(|t| {
            t.state = match t.state {
                OutState::Negotiating {
                    then_stop: true, ..
                } => return false,
                OutState::Negotiating { .. } => OutState::ToOpen,
                OutState::Stopping(mid) => OutState::ToStop(mid),
                s => s,
            };
            true
        });
    }
}

#[derive(Debug, Default, Clone)]
struct PeerStatsView {
    last_bytes: Option<(u64, u64, Instant)>,
    ingress_bps: u64,
    egress_bps: u64,
    rtt: Option<Duration>,
    ingress_loss: Option<f32>,
    egress_loss: Option<f32>,
}

/// A room's media state.
#[derive(Default)]
struct Room {
    policy: ForwardingPolicy,
    members: Vec<PeerKey>,
    speaker: SpeakerDetector,
    tap: Option<Tap>,
}

/// The shard.
pub(crate) struct Shard {
    /// The address datagrams arrive on, as ICE knows it (the first advertised address).
    local: SocketAddr,
    candidates: Vec<SocketAddr>,
    config: SfuConfig,
    peers: HashMap<PeerKey, Peer>,
    names: HashMap<(String, ParticipantId), PeerKey>,
    demux: Demux,
    rooms: HashMap<String, Room>,
    timers: BTreeSet<(Instant, PeerKey)>,
    work: VecDeque<(PeerKey, Event)>,
    /// Datagrams to send, in order, for the IO loop to take ([`Shard::transmits`]).
    transmits: Vec<(SocketAddr, DatagramSend)>,
    /// The time of the input being handled, as the caller read it.
    now: Now,
    clock: Clock,
    /// A packet of the current input went to at least one subscriber.
    forwarded: bool,
    /// A new source whose binding request is being handled: str0m answers it only if it
    /// passed its integrity check (a forged one is dropped unanswered).
    stun_watch: Option<SocketAddr>,
    /// str0m answered `stun_watch` during the current input.
    stun_answered: bool,
    events: mpsc::UnboundedSender<MediaEvent>,
    counters: Arc<SfuCounters>,
    next_key: PeerKey,
    /// Makes every offered track id unique: a track stopped and offered again must not repeat
    /// an `a=msid` still present on its stopped media line (browsers reject the offer).
    next_track_serial: u64,
    last_tick: Instant,
    last_speaker_tick: Instant,
}

/// The time of an input, read once by the IO loop (a test's simulated clock in memory): the
/// monotonic instant str0m runs on, and the wall-clock time recordings are stamped with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) at: Instant,
    pub(crate) wall: SystemTime,
}

/// The monotonic clock, as the caller keeps it: [`Instant::now`] in the IO loop, the simulated
/// time in memory. Read only while draining an `Rtc` (see [`drain`]).
pub(crate) type Clock = fn() -> Instant;

/// Whether the shard goes on after a command.
#[derive(Debug)]
pub(crate) enum Step {
    Go,
    /// Stopped: send the last datagrams, then answer the shutdown (if one was asked for).
    Stop(Option<oneshot::Sender<()>>),
}

/// What a mutation did to the `Rtc`.
enum Mutated<T> {
    Done(T),
    /// The participant has no `Rtc` (not negotiated yet, or lost).
    Absent,
    /// The `Rtc` failed or panicked; the participant's media was dropped.
    Lost,
}

impl Shard {
    /// A shard answering on `bound` (its advertised addresses on the same port), its clock
    /// starting at `now`.
    pub(crate) fn new(
        bound: SocketAddr,
        advertise: Vec<IpAddr>,
        config: SfuConfig,
        events: mpsc::UnboundedSender<MediaEvent>,
        counters: Arc<SfuCounters>,
        now: Now,
        clock: Clock,
    ) -> Shard {
        let candidates: Vec<SocketAddr> = advertise
            .iter()
            .map(|ip| SocketAddr::new(*ip, bound.port()))
            .collect();
        Shard {
            local: candidates.first().copied().unwrap_or(bound),
            candidates,
            config,
            peers: HashMap::new(),
            names: HashMap::new(),
            demux: Demux::default(),
            rooms: HashMap::new(),
            timers: BTreeSet::new(),
            work: VecDeque::new(),
            transmits: Vec::new(),
            now,
            clock,
            forwarded: false,
            stun_watch: None,
            stun_answered: false,
            events,
            counters,
            next_key: 1,
            next_track_serial: 0,
            last_tick: now.at,
            last_speaker_tick: now.at,
        }
    }

    // ---- the inputs: a command, a datagram, the time -----------------------------------------

    /// A command from the signaling layer. [`Step::Stop`] after `Shutdown` (or when the
    /// handle is gone): every connection is closed, its last datagrams queued.
    pub(crate) fn handle_command(&mut self, cmd: Option<Command>, now: Now) -> Step {
        self.now = now;
        match cmd {
            Some(Command::Shutdown { reply }) => {
                self.close_all();
                Step::Stop(Some(reply))
            }
            Some(cmd) => {
                self.command(cmd);
                Step::Go
            }
            None => {
                self.close_all();
                Step::Stop(None)
            }
        }
    }

    /// A datagram from `source`. True if a packet in it was forwarded to anyone.
    pub(crate) fn handle_datagram(&mut self, source: SocketAddr, buf: &[u8], now: Now) -> bool {
        self.now = now;
        self.forwarded = false;
        self.datagram(source, buf);
        self.forwarded
    }

    /// The time passed: due timers fire, and housekeeping runs every [`TICK`].
    pub(crate) fn handle_timeout(&mut self, now: Now) {
        self.now = now;
        self.fire_timers();
    }

    /// When the shard next needs [`Shard::handle_timeout`].
    pub(crate) fn poll_timeout(&self) -> Instant {
        let next_tick = self.last_tick + TICK;
        self.timers
            .first()
            .map_or(next_tick, |(t, _)| (*t).min(next_tick))
    }

    /// The datagrams queued since they were last taken, in order; the caller sends them
    /// (and clears the queue).
    pub(crate) fn transmits(&mut self) -> &mut Vec<(SocketAddr, DatagramSend)> {
        &mut self.transmits
    }

    // ---- datagrams ------------------------------------------------------------------------

    fn datagram(&mut self, source: SocketAddr, buf: &[u8]) {
        let Some((key, new_source)) = self.demux.lookup(source, buf) else {
            self.counters
                .datagrams_unknown
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, buf) else {
            self.counters
                .datagrams_unknown
                .fetch_add(1, Ordering::Relaxed);
            return;
        };
        let now = self.now.at;
        self.stun_watch = new_source.then_some(source);
        self.stun_answered = false;
        // A new address is learnt only once str0m has answered its binding request, i.e. the
        // request carried the participant's ICE password (MESSAGE-INTEGRITY). Anyone can copy
        // a ufrag off the wire; learning from the ufrag alone let eight forged requests evict
        // a participant's real address and stop their media.
        if let Mutated::Done(Some(())) =
            self.mutate(key, |rtc| rtc.handle_input(Input::Receive(now, receive)))
            && self.stun_answered
        {
            self.demux.add_addr(source, key);
        }
        self.stun_watch = None;
        self.run_work();
    }

    /// Feeds every timeout due by now, each participant once: one that asks again for a time
    /// not after this input's (str0m may, with work still queued) waits for the next input,
    /// which comes at once, with the clock read again. Firing it again at the same instant
    /// would never end.
    fn fire_timers(&mut self) {
        let now = self.now.at;
        let later = self.timers.split_off(&(now, PeerKey::MAX));
        let due = std::mem::replace(&mut self.timers, later);
        for (at, key) in due {
            // Skipped if an earlier one's work (a write to this participant) moved its
            // deadline meanwhile: the new one is in the index already.
            match self.peers.get_mut(&key) {
                Some(p) if p.deadline == Some(at) => p.deadline = None,
                _ => continue,
            }
            self.mutate(key, |rtc| rtc.handle_input(Input::Timeout(now)));
            self.run_work();
        }
        if now >= self.last_tick + TICK {
            self.last_tick = now;
            self.housekeeping(now);
        }
    }

    // ---- the one place an Rtc is touched -----------------------------------------------------

    /// Applies one mutation to `key`'s `Rtc`, drains its output, and queues its events.
    /// Errors of the mutation itself (a malformed datagram, a write str0m refuses) drop that one
    /// input; a failing drain or a panic loses the participant's media.
    fn mutate<T>(
        &mut self,
        key: PeerKey,
        f: impl FnOnce(&mut Rtc) -> Result<T, RtcError>,
    ) -> Mutated<Option<T>>
    where
        T: Sized,
    {
        let Some(peer) = self.peers.get_mut(&key) else {
            return Mutated::Absent;
        };
        let Some(rtc) = peer.rtc.as_mut() else {
            return Mutated::Absent;
        };
        let sink = Sink {
            now: self.now.at,
            clock: self.clock,
            transmits: &mut self.transmits,
            work: &mut self.work,
            stun_watch: self.stun_watch,
            stun_answered: &mut self.stun_answered,
            key,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let result = f(rtc);
            let deadline = drain(rtc, sink);
            (result, deadline)
        }));
        let lost = match outcome {
            Ok((result, Ok(deadline))) => {
                if peer.deadline != Some(deadline) {
                    if let Some(old) = peer.deadline.take() {
                        self.timers.remove(&(old, key));
                    }
                    peer.deadline = Some(deadline);
                    self.timers.insert((deadline, key));
                }
                if !rtc.is_alive() {
                    Some("closed".to_string())
                } else {
                    return Mutated::Done(match result {
                        Ok(v) => Some(v),
                        Err(e) => {
                            tracing::debug!(participant = %peer.who, error = %e, "media input refused");
                            None
                        }
                    });
                }
            }
            Ok((_, Err(e))) => Some(format!("media state failed: {e}")),
            Err(_) => {
                self.counters.peer_panics.fetch_add(1, Ordering::Relaxed);
                Some("media state panicked".to_string())
            }
        };
        if let Some(reason) = lost {
            self.lose(key, &reason);
        }
        Mutated::Lost
    }

    // ---- events -----------------------------------------------------------------------------

    fn run_work(&mut self) {
        while let Some((key, event)) = self.work.pop_front() {
            self.event(key, event);
        }
    }

    fn event(&mut self, key: PeerKey, event: Event) {
        match event {
            Event::Connected => self.connected(key),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.lose(key, "ICE timeout: no packets from the participant");
            }
            Event::MediaAdded(added)
                if matches!(added.direction, Direction::RecvOnly | Direction::SendRecv) =>
            {
                self.track_published(key, added.mid, added.kind);
            }
            Event::MediaChanged(changed)
                if !matches!(changed.direction, Direction::RecvOnly | Direction::SendRecv) =>
            {
                self.track_unpublished(key, changed.mid);
            }
            Event::RtpPacket(packet) => self.forward(key, packet),
            Event::KeyframeRequest(req) => {
                let target = self.peers.get(&key).and_then(|p| {
                    p.tracks_out
                        .iter()
                        .find(|t| t.state == OutState::Open(req.mid))
                        .map(|t| (t.publisher, t.source, t.layer.or(t.target)))
                });
                if let Some((publisher, source, rid)) = target {
                    self.request_keyframe(publisher, source, rid, req.kind);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.estimate = Some(estimate);
                }
            }
            Event::PeerStats(s) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    let v = &mut p.stats;
                    if let Some((rx, tx, at)) = v.last_bytes {
                        let secs = s.timestamp.saturating_duration_since(at).as_secs_f64();
                        if secs > 0.0 {
                            v.ingress_bps =
                                (s.peer_bytes_rx.saturating_sub(rx) as f64 * 8.0 / secs) as u64;
                            v.egress_bps =
                                (s.peer_bytes_tx.saturating_sub(tx) as f64 * 8.0 / secs) as u64;
                        }
                    }
                    v.last_bytes = Some((s.peer_bytes_rx, s.peer_bytes_tx, s.timestamp));
                    v.rtt = s.rtt.or(v.rtt);
                    v.ingress_loss = s.ingress_loss_fraction.or(v.ingress_loss);
                    v.egress_loss = s.egress_loss_fraction.or(v.egress_loss);
                }
            }
            _ => {}
        }
    }

    fn connected(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        p.connected = true;
        let _ = self.events.send(MediaEvent::Connected {
            room: p.room.clone(),
            participant: p.who.clone(),
        });
        // Writes before this point were dropped by str0m: every open video track starts again
        // from a keyframe.
        let wanted: Vec<(PeerKey, Mid, Option<Rid>)> = p
            .tracks_out
            .iter_mut()
            .filter(|t| t.kind.is_video() && matches!(t.state, OutState::Open(_)))
            .map(|t| {
                t.restart_video();
                (t.publisher, t.source, t.target)
            })
            .collect();
        for (publisher, source, rid) in wanted {
            self.request_keyframe(publisher, source, rid, KeyframeRequestKind::Pli);
        }
    }

    fn track_published(&mut self, key: PeerKey, mid: Mid, kind: MediaKind) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        let kind = if kind == MediaKind::Audio {
            Kind::Audio
        } else if p.screen_mid == Some(mid) {
            Kind::Screen
        } else {
            Kind::Video
        };
        p.tracks_in.push(TrackIn {
            mid,
            kind,
            layers: Vec::new(),
        });
        let room = p.room.clone();
        self.sync_room(&room);
    }

    fn track_unpublished(&mut self, key: PeerKey, mid: Mid) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let before = p.tracks_in.len();
        p.tracks_in.retain(|t| t.mid != mid);
        if p.tracks_in.len() != before {
            let room = p.room.clone();
            self.sync_room(&room);
        }
    }

    /// Applies an offer's screen declaration: the declared line is the screen (a line once a
    /// screen stays one, so a stopped share is never forwarded as a camera), and the
    /// publisher's standing says whether it is sharing.
    fn set_screen(&mut self, key: PeerKey, screen: Option<Mid>) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        for t in &mut p.tracks_in {
            if Some(t.mid) == screen && t.kind.is_video() {
                t.kind = Kind::Screen;
            }
        }
        let (room, who) = (p.room.clone(), p.who.clone());
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        let sharing = screen.is_some();
        let edges = r.policy.update(&who, |s| s.screen = sharing);
        if !edges.is_empty() {
            self.sync_room(&room);
        }
    }

    // ---- forwarding -----------------------------------------------------------------------

    /// Which track, layer and codec an incoming packet belongs to (cached per SSRC; str0m
    /// knows it from the SDP or the mid/rid header extensions).
    fn source_of(&mut self, key: PeerKey, packet: &RtpPacket) -> Option<Source> {
        let peer = self.peers.get_mut(&key)?;
        let ssrc = packet.header.ssrc;
        let pt = packet.header.payload_type;
        if let Some(known) = peer.sources.get(&ssrc)
            && known.pt == pt
        {
            return Some(*known);
        }
        let rtc = peer.rtc.as_mut()?;
        let params = *rtc.codec_config().find(|p| p.pt() == pt)?;
        let mut api = rtc.direct_api();
        let stream = api.stream_rx(&ssrc)?;
        let source = Source {
            mid: stream.mid(),
            rid: stream.rid(),
            pt,
            params,
        };
        peer.sources.insert(ssrc, source);
        Some(source)
    }

    /// Forwards one incoming RTP packet to every subscriber that should have it. Packets are
    /// forwarded as they come (no frame assembly): each subscriber's stream gets its own
    /// sequence numbers and RTP times, continuous across layer switches, and starts or switches
    /// only at the first packet of a keyframe.
    fn forward(&mut self, key: PeerKey, packet: RtpPacket) {
        let Some(source) = self.source_of(key, &packet) else {
            return;
        };
        let now = self.now.at;
        let Some(publisher) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(track) = publisher.tracks_in.iter_mut().find(|t| t.mid == source.mid) else {
            return;
        };
        let kind = track.kind;
        let codec = source.params.spec().codec;
        let start = match kind {
            Kind::Video | Kind::Screen => payload::keyframe_start(codec, &packet.payload),
            Kind::Audio => None,
        };
        let keyframe = start.is_some_and(|s| s.keyframe);
        let layer = track.layer_mut(source.rid);
        layer.window_bytes += packet.payload.len() as u64;
        if keyframe {
            layer.keyframe_asked = None;
            if let Some((_, h)) = start.and_then(|s| s.size) {
                layer.height = Some(h);
            }
        }
        let room_name = publisher.room.clone();
        let who = publisher.who.clone();
        let level = packet.header.ext_vals.audio_level;
        let vad = packet.header.ext_vals.voice_activity.unwrap_or(false);
        let seq = *packet.seq_no;
        let rtp_time = packet.time.numer();
        let rate = packet.time.denom();

        let Some(room) = self.rooms.get_mut(&room_name) else {
            return;
        };
        if let (Kind::Audio, Some(level)) = (kind, level) {
            room.speaker.observe(&who, level);
        }
        // A screen that may not flow (stopped, or the rooms split) goes nowhere, the recorder
        // included.
        if kind == Kind::Screen && !room.policy.screen_flows(&who) {
            return;
        }
        if let Some(tap) = &room.tap {
            let copy = TapPacket {
                participant: who.clone(),
                mid: source.mid.to_string(),
                kind,
                rid: source.rid.map(|r| r.to_string()),
                codec: codec.to_string(),
                seq,
                marker: packet.header.marker,
                rtp_time,
                clock_rate: rate,
                arrival: packet.timestamp,
                arrival_wall: self.now.wall,
                keyframe,
                audio_level: level,
                data: packet.payload.clone(),
            };
            if !tap.offer(copy) {
                room.tap = None;
            }
        }

        // Decide per subscriber, then write: the writes are mutations of other Rtcs.
        let mut targets: Vec<Target> = Vec::new();
        let mut want_switch_keyframe = false;
        for &sub_key in &room.members {
            if sub_key == key {
                continue;
            }
            let Some(sub) = self.peers.get_mut(&sub_key) else {
                continue;
            };
            if !sub.connected {
                continue;
            }
            let Some(out) = sub
                .tracks_out
                .iter_mut()
                .find(|t| t.publisher == key && t.source == source.mid)
            else {
                continue;
            };
            let OutState::Open(mid) = out.state else {
                continue;
            };
            if out.flow == Flow::Paused {
                continue;
            }
            let starting =
                out.flow == Flow::Starting || out.last_seq_out.is_none() || out.layer != source.rid;
            if starting {
                // Another simulcast layer, or a video not started yet: begin only at the
                // first packet of a keyframe of the layer we want. Audio starts anywhere.
                let wanted = out.target == source.rid || out.layer == source.rid;
                if !wanted {
                    continue;
                }
                if kind.is_video() && !keyframe {
                    want_switch_keyframe = true;
                    continue;
                }
                out.begin(seq, rtp_time, rate, now);
                out.layer = source.rid;
                out.flow = Flow::Flowing;
            } else if seq < out.first_seq {
                // Late (a repair) from before the point where this subscriber's stream began.
                continue;
            }
            let (out_seq, out_time) = out.map(seq, rtp_time);
            out.last_out = Some((u64::from(out_time), now, rate));
            targets.push(Target {
                sub_key,
                mid,
                seq: out_seq,
                time: out_time,
                first_write: !std::mem::replace(&mut out.written, true),
            });
        }

        let forwarded_to_anyone = !targets.is_empty();
        let mut ext = ExtensionValues::default();
        if let Some(l) = level {
            ext.audio_level = Some(l);
            ext.voice_activity = Some(vad);
        }
        for t in targets {
            let payload = packet.payload.clone();
            let written = self.mutate(t.sub_key, |rtc| {
                // A subscriber that cannot decode this codec gets nothing rather than garbage.
                let Some(pt) = rtc
                    .codec_config()
                    .match_params(source.params)
                    .map(|p| p.pt())
                else {
                    return Ok(false);
                };
                let mut api = rtc.direct_api();
                let Some(stream) = api.stream_tx_by_mid(t.mid, None) else {
                    return Ok(false);
                };
                if t.first_write {
                    stream.set_rtx_cache(RTX_HISTORY_PACKETS, RTX_HISTORY, Some(RTX_RATIO_CAP));
                }
                stream.write_rtp(
                    RtpWrite::new(pt, t.seq.into(), t.time, packet.timestamp, payload)
                        .marker(packet.header.marker)
                        .ext_vals(ext.clone())
                        .nackable(kind.is_video()),
                );
                Ok(true)
            });
            if let Mutated::Done(Some(true)) = written {
                self.counters
                    .packets_forwarded
                    .fetch_add(1, Ordering::Relaxed);
            }
        }

        // The IO loop times the input that forwarded (packet in → queued for everyone).
        self.forwarded |= forwarded_to_anyone;
        if want_switch_keyframe {
            self.request_keyframe(key, source.mid, source.rid, KeyframeRequestKind::Pli);
        }
    }

    /// Asks every video publisher of a room for a keyframe on every layer.
    fn request_room_keyframes(&mut self, room: &str) {
        let Some(members) = self.rooms.get(room).map(|r| r.members.clone()) else {
            return;
        };
        let mut wanted = Vec::new();
        for key in members {
            let Some(p) = self.peers.get(&key) else {
                continue;
            };
            for t in p.tracks_in.iter().filter(|t| t.kind.is_video()) {
                if t.layers.is_empty() {
                    wanted.push((key, t.mid, None));
                }
                wanted.extend(t.layers.iter().map(|l| (key, t.mid, l.rid)));
            }
        }
        for (key, mid, rid) in wanted {
            self.request_keyframe(key, mid, rid, KeyframeRequestKind::Pli);
        }
    }

    /// Asks a publisher for a keyframe on one layer, at most once per throttle period while a
    /// request is outstanding (a keyframe arriving clears it, so the next new subscriber is
    /// served at once).
    fn request_keyframe(
        &mut self,
        publisher: PeerKey,
        mid: Mid,
        rid: Option<Rid>,
        kind: KeyframeRequestKind,
    ) {
        let now = self.now.at;
        let throttle = self.config.keyframe_throttle;
        let Some(p) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some(track) = p.tracks_in.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        if !track.kind.is_video() {
            return;
        }
        let layer = track.layer_mut(rid);
        if let Some(asked) = layer.keyframe_asked
            && now.saturating_duration_since(asked) < throttle
        {
            return;
        }
        layer.keyframe_asked = Some(now);
        tracing::debug!(publisher = %p.who, %mid, ?rid, "keyframe requested");
        self.mutate(publisher, |rtc| {
            if let Some(stream) = rtc.direct_api().stream_rx_by_mid(mid, rid) {
                stream.request_keyframe(kind);
            }
            Ok(())
        });
    }

    // ---- negotiation ----------------------------------------------------------------------

    fn new_rtc(&self) -> (Rtc, String) {
        let creds = IceCreds::new();
        let ufrag = creds.ufrag.clone();
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            // Packets are forwarded as they arrive, not reassembled into frames and cut again.
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .enable_bwe(Some(Bitrate::bps(self.config.initial_bitrate_bps)))
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(self.now.at);
        for addr in &self.candidates {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::warn!(%addr, error = %e, "unusable media address"),
            }
        }
        (rtc, ufrag)
    }

    /// A client's offer. `screen` names the media line it shares its screen on (none: it
    /// shares nothing): that track is forwarded as [`Kind::Screen`] from its first packet.
    fn offer(
        &mut self,
        key: PeerKey,
        sdp: &str,
        screen: Option<&str>,
    ) -> Result<OfferOutcome, MediaError> {
        // The lines the SFU opened for this participant; the client's own are for publishing.
        let ours: HashSet<String> = self
            .peers
            .get(&key)
            .map(|p| p.tracks_out.iter().filter_map(|t| t.state.mid()))
            .into_iter()
            .flatten()
            .map(|mid| mid.to_string())
            .collect();
        let narrowed = crate::offer::publishing_only(sdp, &ours).ok_or_else(|| {
            MediaError::InvalidSdp(format!(
                "more than {} media lines of the client's own",
                crate::offer::MAX_OWN_LINES
            ))
        })?;
        let offer = SdpOffer::from_sdp_string(&narrowed)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let screen = screen.map(Mid::from);
        if let Some(mid) = screen
            && let line = format!("a=mid:{mid}")
            && !sdp.lines().any(|l| l.trim_end() == line)
        {
            return Err(MediaError::InvalidSdp(format!(
                "the screen's media line {mid} is not in the offer"
            )));
        }
        // Known before the offer is applied: its tracks are published while it is.
        let declared_before = self
            .peers
            .get_mut(&key)
            .and_then(|p| std::mem::replace(&mut p.screen_mid, screen));
        let fresh = self.peers.get(&key).is_some_and(|p| p.rtc.is_none());
        if fresh {
            let (rtc, ufrag) = self.new_rtc();
            if let Some(p) = self.peers.get_mut(&key) {
                p.rtc = Some(Box::new(rtc));
                p.ufrag = Some(ufrag.clone());
                self.demux.add_ufrag(ufrag, key);
                self.counters.peers.fetch_add(1, Ordering::Relaxed);
            }
        }
        let answer = match self.mutate(key, |rtc| rtc.sdp_api().accept_offer(offer)) {
            Mutated::Done(Some(answer)) => answer,
            Mutated::Done(None) => {
                if fresh {
                    self.drop_rtc(key);
                }
                if let Some(p) = self.peers.get_mut(&key) {
                    p.screen_mid = declared_before;
                }
                return Err(MediaError::InvalidSdp("the offer was refused".into()));
            }
            Mutated::Absent | Mutated::Lost => return Err(MediaError::NotEntered),
        };
        if let Some(p) = self.peers.get_mut(&key) {
            // Accepting an offer voids our own pending offer (glare): its changes go into the next.
            if p.pending.take().is_some() {
                p.requeue_negotiation();
            }
        }
        self.run_work();
        self.set_screen(key, screen);
        let next_offer = self.negotiate(key);
        Ok(OfferOutcome {
            answer: answer.to_sdp_string(),
            next_offer,
        })
    }

    fn answer(&mut self, key: PeerKey, sdp: &str) -> Result<Option<String>, MediaError> {
        let answer =
            SdpAnswer::from_sdp_string(sdp).map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let Some(p) = self.peers.get_mut(&key) else {
            return Err(MediaError::NotEntered);
        };
        let Some(pending) = p.pending.take() else {
            return Err(MediaError::NoPendingOffer);
        };
        match self.mutate(key, |rtc| rtc.sdp_api().accept_answer(pending, answer)) {
            Mutated::Done(Some(())) => {}
            Mutated::Done(None) => {
                // The answer did not fit; what was in the offer goes into a new one at once,
                // so the participant is not left without media until the next change.
                if let Some(p) = self.peers.get_mut(&key) {
                    p.requeue_negotiation();
                }
                self.offer_now(key);
                return Err(MediaError::InvalidSdp(
                    "the answer does not match the offer".into(),
                ));
            }
            Mutated::Absent | Mutated::Lost => return Err(MediaError::NotEntered),
        }
        let mut keyframes = Vec::new();
        let mut stopped_any = None;
        if let Some(p) = self.peers.get_mut(&key) {
            let connected = p.connected;
            let before = p.tracks_out.len();
            p.tracks_out
                .retain(|t| !matches!(t.state, OutState::Stopping(_)));
            if p.tracks_out.len() != before {
                stopped_any = Some(p.room.clone());
            }
            for t in &mut p.tracks_out {
                if let OutState::Negotiating { mid, then_stop } = t.state {
                    if then_stop {
                        t.state = OutState::ToStop(mid);
                        continue;
                    }
                    t.state = OutState::Open(mid);
                    if t.kind.is_video() {
                        t.restart_video();
                        if connected {
                            keyframes.push((t.publisher, t.source, t.target));
                        }
                    }
                }
            }
        }
        for (publisher, source, rid) in keyframes {
            self.request_keyframe(publisher, source, rid, KeyframeRequestKind::Pli);
        }
        self.run_work();
        // A track wanted again while its stop was in flight (moved out of a space and straight
        // back) was just dropped: the policy brings it back as a new media line.
        if let Some(room) = stopped_any {
            self.sync_room(&room);
        }
        Ok(self.negotiate(key))
    }

    /// Sends the participant a server offer (the `media.offer` event) if it has pending
    /// changes and can take one now.
    fn offer_now(&mut self, key: PeerKey) {
        if let Some(sdp) = self.negotiate(key)
            && let Some(p) = self.peers.get(&key)
        {
            let _ = self.events.send(MediaEvent::Offer {
                room: p.room.clone(),
                participant: p.who.clone(),
                sdp,
            });
        }
    }

    /// Puts pending track changes into a server offer, if the participant can take one now.
    fn negotiate(&mut self, key: PeerKey) -> Option<String> {
        let p = self.peers.get(&key)?;
        if p.pending.is_some() || p.rtc.is_none() {
            return None;
        }
        let changes: Vec<(usize, OutState, Kind, String, String)> = p
            .tracks_out
            .iter()
            .enumerate()
            .filter(|(_, t)| matches!(t.state, OutState::ToOpen | OutState::ToStop(_)))
            .map(|(i, t)| {
                let publisher = self.peers.get(&t.publisher);
                let who = publisher.map(|p| p.who.to_string()).unwrap_or_default();
                // The stream id names the publisher; a shared screen is its own stream, so a
                // client shows it apart from the camera (`!`: msid allows it, RFC 8830, and
                // person ids never hold it).
                let stream = if t.kind == Kind::Screen {
                    format!("screen!{who}")
                } else {
                    who
                };
                // Track ids must be unique per receiver: browsers and webrtc-rs key tracks by them
                // (a serial is added below).
                let track = format!("{stream}-{}-{}", t.kind.as_str(), t.source);
                (i, t.state, t.kind, stream, track)
            })
            .collect();
        if changes.is_empty() {
            return None;
        }
        let mut changes = changes;
        for change in changes.iter_mut().filter(|c| c.1 == OutState::ToOpen) {
            self.next_track_serial += 1;
            change.4 = format!("{}-{}", change.4, self.next_track_serial);
        }
        let outcome = self.mutate(key, |rtc| {
            let mut api = rtc.sdp_api();
            let mut states = Vec::new();
            for (i, state, kind, stream, track) in &changes {
                match state {
                    OutState::ToOpen => {
                        let media_kind = if *kind == Kind::Audio {
                            MediaKind::Audio
                        } else {
                            MediaKind::Video
                        };
                        let mid = api.add_media(
                            media_kind,
                            Direction::SendOnly,
                            Some(stream.clone()),
                            Some(track.clone()),
                            None,
                        );
                        states.push((
                            *i,
                            OutState::Negotiating {
                                mid,
                                then_stop: false,
                            },
                        ));
                    }
                    OutState::ToStop(mid) => {
                        api.stop_media(*mid);
                        states.push((*i, OutState::Stopping(*mid)));
                    }
                    _ => {}
                }
            }
            Ok(api.apply().map(|(offer, pending)| (offer, pending, states)))
        });
        let Mutated::Done(Some(Some((offer, pending, states)))) = outcome else {
            return None;
        };
        let p = self.peers.get_mut(&key)?;
        for (i, state) in states {
            if let Some(t) = p.tracks_out.get_mut(i) {
                t.state = state;
            }
        }
        p.pending = Some(pending);
        self.run_work();
        Some(offer.to_sdp_string())
    }

    /// Brings every subscriber's forwarded tracks in line with the policy and the published
    /// tracks; sends server offers where something changed.
    fn sync_room(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let members = r.members.clone();
        let mut changed = Vec::new();
        let mut keyframes = Vec::new();
        // What is published in the room now: a track not forwarded but still published is
        // paused, not stopped.
        let published: HashSet<(PeerKey, Mid)> = members
            .iter()
            .filter_map(|k| self.peers.get(k).map(|p| (k, p)))
            .flat_map(|(k, p)| p.tracks_in.iter().map(move |t| (*k, t.mid)))
            .collect();
        for &sub_key in &members {
            let Some(sub) = self.peers.get(&sub_key) else {
                continue;
            };
            let mut desired: Vec<(PeerKey, Mid, Kind)> = Vec::new();
            for &pub_key in &members {
                let Some(publ) = self.peers.get(&pub_key) else {
                    continue;
                };
                for t in &publ.tracks_in {
                    if r.policy.allows(&sub.who, &publ.who, t.kind) {
                        desired.push((pub_key, t.mid, t.kind));
                    }
                }
            }
            let Some(sub) = self.peers.get_mut(&sub_key) else {
                continue;
            };
            let mut dirty = false;
            sub.tracks_out.retain_mut(|t| {
                let wanted = desired
                    .iter()
                    .any(|(k, m, _)| *k == t.publisher && *m == t.source);
                if wanted {
                    if let OutState::Negotiating { then_stop, .. } = &mut t.state {
                        *then_stop = false;
                    }
                    if t.flow == Flow::Paused {
                        t.flow = Flow::Starting;
                        if t.kind.is_video() {
                            keyframes.push((t.publisher, t.source, t.target));
                        }
                    }
                    return true;
                }
                match t.state {
                    OutState::ToOpen => {
                        dirty = true;
                        false
                    }
                    OutState::Open(_) if published.contains(&(t.publisher, t.source)) => {
                        t.flow = Flow::Paused;
                        true
                    }
                    OutState::Open(mid) => {
                        t.state = OutState::ToStop(mid);
                        dirty = true;
                        true
                    }
                    OutState::Negotiating { mid, .. } => {
                        t.state = OutState::Negotiating {
                            mid,
                            then_stop: true,
                        };
                        true
                    }
                    OutState::ToStop(_) | OutState::Stopping(_) => true,
                }
            });
            for (pub_key, mid, kind) in desired {
                if let Some(t) = sub
                    .tracks_out
                    .iter_mut()
                    .find(|t| t.publisher == pub_key && t.source == mid)
                {
                    // Wanted again while being stopped: reopen as a new media line.
                    if let OutState::ToStop(_) = t.state {
                        t.state = OutState::ToOpen;
                        dirty = true;
                    }
                    continue;
                }
                sub.tracks_out.push(TrackOut::wanted(pub_key, mid, kind));
                dirty = true;
            }
            if dirty {
                changed.push(sub_key);
            }
        }
        self.choose_layers(room);
        for (publisher, source, rid) in keyframes {
            self.request_keyframe(publisher, source, rid, KeyframeRequestKind::Pli);
        }
        for key in changed {
            self.offer_now(key);
        }
    }

    // ---- simulcast and housekeeping -------------------------------------------------------

    fn housekeeping(&mut self, now: Instant) {
        let elapsed = TICK.as_secs_f64();
        for p in self.peers.values_mut() {
            for t in &mut p.tracks_in {
                for l in &mut t.layers {
                    let bps = (l.window_bytes as f64 * 8.0 / elapsed) as u64;
                    // Smooth over ~1 s; a layer that stops (paused) decays to 0 quickly.
                    l.bitrate_bps = if bps == 0 && l.bitrate_bps < 20_000 {
                        0
                    } else {
                        (l.bitrate_bps * 7 + bps * 3) / 10
                    };
                    l.window_bytes = 0;
                }
            }
        }
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in &rooms {
            self.choose_layers(room);
        }
        if now.saturating_duration_since(self.last_speaker_tick) >= self.config.speaker_interval {
            self.last_speaker_tick = now;
            for room in rooms {
                if let Some(r) = self.rooms.get_mut(&room)
                    && let Some(speaker) = r.speaker.tick()
                {
                    let _ = self.events.send(MediaEvent::ActiveSpeaker {
                        room,
                        participant: speaker,
                    });
                }
            }
        }
    }

    /// Picks each subscriber's simulcast layer from its bandwidth estimate and size wish; asks
    /// for a keyframe of a new target layer (the switch happens on it).
    fn choose_layers(&mut self, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let mut keyframes = Vec::new();
        let mut bitrates = Vec::new();
        for &sub_key in &r.members {
            let Some(sub) = self.peers.get(&sub_key) else {
                continue;
            };
            let video_tracks = sub
                .tracks_out
                .iter()
                .filter(|t| t.kind.is_video())
                .count()
                .max(1);
            let audio_tracks = sub.tracks_out.len().saturating_sub(video_tracks);
            let budget = sub.estimate.map(|e| {
                let usable = (e.as_f64() * ESTIMATE_HEADROOM) as u64;
                usable.saturating_sub(audio_tracks as u64 * 40_000) / video_tracks as u64
            });
            let max_height = sub.max_height;
            let mut choices = Vec::new();
            for (i, t) in sub.tracks_out.iter().enumerate() {
                if !t.kind.is_video() {
                    continue;
                }
                let Some(publ) = self.peers.get(&t.publisher) else {
                    continue;
                };
                let Some(track) = publ.tracks_in.iter().find(|x| x.mid == t.source) else {
                    continue;
                };
                let infos: Vec<LayerInfo> = track
                    .layers
                    .iter()
                    .map(|l| LayerInfo {
                        bitrate_bps: l.bitrate_bps,
                        height: l.height,
                    })
                    .collect();
                if let Some(at) = layers::choose(&infos, budget, max_height) {
                    choices.push((i, track.layers[at].rid));
                }
            }
            // Probe only for what is forwarded: a paused track (audio only, a moderator's
            // block, another room) needs no headroom, and the estimator's padding for it would
            // crowd the very link that asked for audio only.
            let desired_bps: u64 = sub
                .tracks_out
                .iter()
                .filter(|t| t.flow != Flow::Paused)
                .filter_map(|t| {
                    let publ = self.peers.get(&t.publisher)?;
                    let track = publ.tracks_in.iter().find(|x| x.mid == t.source)?;
                    track.layers.iter().map(|l| l.bitrate_bps).max()
                })
                .sum();
            let Some(sub) = self.peers.get_mut(&sub_key) else {
                continue;
            };
            for (i, rid) in choices {
                let t = &mut sub.tracks_out[i];
                if t.target != rid {
                    t.target = rid;
                    if t.layer.is_none() && t.last_out.is_none() {
                        // Nothing forwarded yet: start on the target directly.
                        t.layer = rid;
                    }
                    if t.layer != rid {
                        keyframes.push((t.publisher, t.source, rid));
                    }
                }
            }
            // Let the estimator probe up to what the best layers would need (told only when
            // that moves by a fifth: each change is a mutation and a drain).
            let desired_bps = match desired_bps + desired_bps / 5 {
                // Everything paused: back down to the floor, so probing stops.
                0 if sub.desired_bps > 0 => PROBE_FLOOR_BPS,
                d => d,
            };
            if desired_bps > 0 && desired_bps.abs_diff(sub.desired_bps) > sub.desired_bps / 5 {
                sub.desired_bps = desired_bps;
                bitrates.push((sub_key, desired_bps));
            }
        }
        for (key, desired) in bitrates {
            self.mutate(key, |rtc| {
                rtc.bwe()
                    .set_bitrate(Bitrate::bps(PROBE_FLOOR_BPS), Bitrate::bps(desired));
                Ok(())
            });
        }
        for (publisher, source, rid) in keyframes {
            self.request_keyframe(publisher, source, rid, KeyframeRequestKind::Pli);
        }
        self.run_work();
    }

    // ---- membership -----------------------------------------------------------------------

    fn key_of(&self, room: &str, who: &ParticipantId) -> Option<PeerKey> {
        self.names.get(&(room.to_string(), who.clone())).copied()
    }

    fn enter(&mut self, room: String, who: ParticipantId, standing: Standing) {
        if let Some(key) = self.key_of(&room, &who) {
            // A fresh join of someone already here (page reload): new connection, same standing.
            self.drop_rtc(key);
            if let Some(r) = self.rooms.get_mut(&room) {
                r.policy.set(who, standing);
            }
            self.sync_room(&room);
            return;
        }
        let key = self.next_key;
        self.next_key += 1;
        self.peers.insert(
            key,
            Peer {
                room: room.clone(),
                who: who.clone(),
                rtc: None,
                ufrag: None,
                deadline: None,
                connected: false,
                tracks_in: Vec::new(),
                tracks_out: Vec::new(),
                screen_mid: None,
                sources: HashMap::new(),
                pending: None,
                estimate: None,
                desired_bps: 0,
                max_height: None,
                stats: PeerStatsView::default(),
            },
        );
        self.names.insert((room.clone(), who.clone()), key);
        let r = self.rooms.entry(room.clone()).or_default();
        r.members.push(key);
        r.policy.set(who, standing);
        self.sync_room(&room);
    }

    /// Drops a participant's WebRTC connection but keeps their place (they may offer again).
    fn drop_rtc(&mut self, key: PeerKey) -> bool {
        let Some(p) = self.peers.get_mut(&key) else {
            return false;
        };
        let Some(mut rtc) = p.rtc.take() else {
            return false;
        };
        let _ = catch_unwind(AssertUnwindSafe(|| rtc.disconnect()));
        self.counters.peers.fetch_sub(1, Ordering::Relaxed);
        self.demux.remove(key, p.ufrag.as_deref());
        p.ufrag = None;
        if let Some(d) = p.deadline.take() {
            self.timers.remove(&(d, key));
        }
        p.connected = false;
        p.pending = None;
        p.tracks_in.clear();
        p.estimate = None;
        p.desired_bps = 0;
        // Everything they received must be offered again on their next connection.
        p.tracks_out.retain_mut(|t| match t.state {
            OutState::ToStop(_) | OutState::Stopping(_) => false,
            _ => {
                t.offer_again();
                true
            }
        });
        let room = p.room.clone();
        let who = p.who.clone();
        if let Some(r) = self.rooms.get_mut(&room)
            && let Some(change) = r.speaker.forget(&who)
        {
            let _ = self.events.send(MediaEvent::ActiveSpeaker {
                room: room.clone(),
                participant: change,
            });
        }
        // Their published tracks are gone: subscribers renegotiate them away.
        self.sync_room(&room);
        true
    }

    /// The participant's media failed or timed out: drop it and tell signaling.
    fn lose(&mut self, key: PeerKey, reason: &str) {
        let Some(p) = self.peers.get(&key) else {
            return;
        };
        let (room, who) = (p.room.clone(), p.who.clone());
        if self.drop_rtc(key) {
            self.counters.peers_lost.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%room, participant = %who, reason, "media connection lost");
            let _ = self.events.send(MediaEvent::Lost {
                room,
                participant: who,
                reason: reason.into(),
            });
        }
    }

    fn leave(&mut self, room: &str, who: &ParticipantId) {
        let Some(key) = self.key_of(room, who) else {
            return;
        };
        self.drop_rtc(key);
        self.peers.remove(&key);
        self.names.remove(&(room.to_string(), who.clone()));
        let mut empty = false;
        if let Some(r) = self.rooms.get_mut(room) {
            r.members.retain(|k| *k != key);
            r.policy.remove(who);
            empty = r.members.is_empty();
        }
        // Subscribers drop what they received from the leaver.
        for p in self.peers.values_mut() {
            for t in &mut p.tracks_out {
                if t.publisher == key {
                    t.publisher = 0;
                }
            }
        }
        if empty {
            self.rooms.remove(room);
        } else {
            self.sync_room(room);
        }
    }

    fn close_all(&mut self) {
        let names: Vec<(String, ParticipantId)> = self.names.keys().cloned().collect();
        for (room, who) in names {
            self.leave(&room, &who);
        }
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Enter {
                room,
                participant,
                standing,
                reply,
            } => {
                self.enter(room, participant, standing);
                let _ = reply.send(());
            }
            Command::Offer {
                room,
                participant,
                sdp,
                screen,
                reply,
            } => {
                let key = self
                    .key_of(&room, &participant)
                    .ok_or(MediaError::NotEntered);
                let _ = reply.send(key.and_then(|k| self.offer(k, &sdp, screen.as_deref())));
            }
            Command::Answer {
                room,
                participant,
                sdp,
                reply,
            } => {
                let key = self
                    .key_of(&room, &participant)
                    .ok_or(MediaError::NotEntered);
                let _ = reply.send(key.and_then(|k| self.answer(k, &sdp)));
            }
            Command::Candidate {
                room,
                participant,
                candidate,
                reply,
            } => {
                let r = self.candidate(&room, &participant, &candidate);
                let _ = reply.send(r);
            }
            Command::Update {
                room,
                participant,
                change,
                reply,
            } => {
                let r = self.update(&room, &participant, change);
                let _ = reply.send(r);
            }
            Command::MaxHeight {
                room,
                participant,
                max_height,
                reply,
            } => {
                let r = match self
                    .key_of(&room, &participant)
                    .and_then(|k| self.peers.get_mut(&k))
                {
                    Some(p) => {
                        p.max_height = max_height;
                        self.choose_layers(&room);
                        Ok(())
                    }
                    None => Err(MediaError::NotEntered),
                };
                let _ = reply.send(r);
            }
            Command::Leave {
                room,
                participant,
                reply,
            } => {
                self.leave(&room, &participant);
                let _ = reply.send(());
            }
            Command::CloseRoom { room, reply } => {
                let members: Vec<ParticipantId> = self
                    .rooms
                    .get(&room)
                    .map(|r| {
                        r.members
                            .iter()
                            .filter_map(|k| self.peers.get(k))
                            .map(|p| p.who.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                for who in members {
                    self.leave(&room, &who);
                }
                let _ = reply.send(());
            }
            Command::Stats { room, reply } => {
                let _ = reply.send(self.stats(&room));
            }
            Command::Tap {
                room,
                capacity,
                reply,
            } => {
                let (tap, rx) = Tap::new(capacity);
                self.rooms.entry(room.clone()).or_default().tap = Some(tap);
                // A recording starts decodable: every camera sends a keyframe now rather than
                // at its next periodic one (browsers send them only when asked).
                self.request_room_keyframes(&room);
                let _ = reply.send(rx);
            }
            Command::Keyframes { room, reply } => {
                self.request_room_keyframes(&room);
                let _ = reply.send(());
            }
            Command::Untap { room, reply } => {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.tap = None;
                }
                let _ = reply.send(());
            }
            Command::Shutdown { reply } => {
                self.close_all();
                let _ = reply.send(());
            }
        }
        self.run_work();
    }

    fn candidate(
        &mut self,
        room: &str,
        who: &ParticipantId,
        candidate: &str,
    ) -> Result<(), MediaError> {
        let key = self.key_of(room, who).ok_or(MediaError::NotEntered)?;
        let line = candidate.trim();
        let line = line.strip_prefix("a=").unwrap_or(line);
        if line.is_empty() {
            return Ok(()); // end of candidates
        }
        let c = Candidate::from_sdp_string(line)
            .map_err(|e| MediaError::InvalidCandidate(e.to_string()))?;
        // Only loopback-safe or routable addresses matter; str0m validates the rest.
        match self.mutate(key, |rtc| {
            rtc.add_remote_candidate(c);
            Ok(())
        }) {
            Mutated::Absent => Err(MediaError::NotNegotiated),
            _ => Ok(()),
        }
    }

    fn update(
        &mut self,
        room: &str,
        who: &ParticipantId,
        change: StandingChange,
    ) -> Result<(), MediaError> {
        self.key_of(room, who).ok_or(MediaError::NotEntered)?;
        let r = self.rooms.get_mut(room).ok_or(MediaError::NotEntered)?;
        let edges = r.policy.update(who, |s| match change {
            StandingChange::Move(space) => s.space = space,
            StandingChange::Block(Kind::Audio, b) => s.audio_blocked = b,
            StandingChange::Block(Kind::Video | Kind::Screen, b) => s.video_blocked = b,
            StandingChange::StopScreen => s.screen = false,
            StandingChange::AudioOnly(a) => s.audio_only = a,
            StandingChange::Grants { publish, subscribe } => {
                s.publish = publish;
                s.subscribe = subscribe;
            }
        });
        if !edges.is_empty() {
            self.sync_room(room);
        }
        Ok(())
    }

    fn stats(&self, room: &str) -> Vec<ParticipantMediaStats> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        r.members
            .iter()
            .filter_map(|k| self.peers.get(k))
            .map(|p| ParticipantMediaStats {
                participant: p.who.to_string(),
                space: match r.policy.standing(&p.who).map(|s| &s.space) {
                    Some(Space::Lobby) => "lobby".into(),
                    Some(Space::Joint) | None => "joint".into(),
                    Some(Space::Private(k)) => format!("private:{k}"),
                },
                connected: p.connected,
                ingress_bps: p.stats.ingress_bps,
                egress_bps: p.stats.egress_bps,
                estimate_bps: p.estimate.map(|e| e.as_u64()),
                rtt_ms: p.stats.rtt.map(|d| d.as_secs_f64() * 1000.0),
                ingress_loss: p.stats.ingress_loss,
                egress_loss: p.stats.egress_loss,
                published: p
                    .tracks_in
                    .iter()
                    .map(|t| PublishedTrackStats {
                        mid: t.mid.to_string(),
                        kind: t.kind.as_str().into(),
                        layers: t
                            .layers
                            .iter()
                            .map(|l| LayerStats {
                                rid: l.rid.map(|r| r.to_string()),
                                bitrate_bps: l.bitrate_bps,
                                height: l.height,
                            })
                            .collect(),
                    })
                    .collect(),
                received: p
                    .tracks_out
                    .iter()
                    .filter(|t| matches!(t.state, OutState::Open(_)))
                    .map(|t| ReceivedTrackStats {
                        publisher: self
                            .peers
                            .get(&t.publisher)
                            .map(|x| x.who.to_string())
                            .unwrap_or_default(),
                        kind: t.kind.as_str().into(),
                        layer: t.layer.map(|r| r.to_string()),
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Where a drained `Rtc`'s output goes.
struct Sink<'a> {
    /// The time of the input.
    now: Instant,
    clock: Clock,
    transmits: &'a mut Vec<(SocketAddr, DatagramSend)>,
    work: &'a mut VecDeque<(PeerKey, Event)>,
    stun_watch: Option<SocketAddr>,
    stun_answered: &'a mut bool,
    key: PeerKey,
}

/// Drains an `Rtc` until it asks for a timeout: datagrams are queued for the next batched
/// send, events are queued as work.
///
/// A timeout already due is fed at once, up to [`IMMEDIATE_TIMEOUTS`] times: str0m's pacer asks
/// for one after every paced packet, and a round trip through the timer index for each would
/// cost more than the packet. "Due" is by the clock read again here, not by the input's time:
/// the pacer asks for its next send microseconds ahead, and a timeout a few microseconds past
/// the input's time would otherwise wait for the next turn of the timer index (a millisecond
/// at least). Judged by the input's time alone, a fan-out to 30 showed video p99 of 50–63 ms in
/// 2 of 6 `media-bench` runs (4–8 ms otherwise, as before).
fn drain(rtc: &mut Rtc, sink: Sink<'_>) -> Result<Instant, RtcError> {
    let mut immediate = 0;
    loop {
        match rtc.poll_output()? {
            Output::Timeout(at) => {
                let now = (sink.clock)().max(sink.now);
                if at > now || immediate == IMMEDIATE_TIMEOUTS {
                    return Ok(at);
                }
                immediate += 1;
                if rtc.handle_input(Input::Timeout(now)).is_err() {
                    // Leave it to the timer index, which reports a failing input.
                    return Ok(at);
                }
            }
            Output::Transmit(t) => {
                // Only while a new source waits to be learnt: other transmits pay one compare.
                if sink.stun_watch == Some(t.destination)
                    && crate::demux::is_stun_success(&t.contents)
                {
                    *sink.stun_answered = true;
                }
                sink.transmits.push((t.destination, t.contents))
            }
            Output::Event(e) => sink.work.push_back((sink.key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscribers_sequence_stays_continuous_across_layer_switches() {
        let now = Instant::now();
        let mut out = TrackOut::wanted(1, Mid::from("0"), Kind::Video);
        // A source long past its first rollover: the subscriber's stream starts below 2^16.
        out.begin(3 * 65_536 + 100, 90_000, 90_000, now);
        assert_eq!(out.map(3 * 65_536 + 100, 90_000), (100, 90_000));
        assert_eq!(out.map(3 * 65_536 + 101, 93_000), (101, 93_000));
        // A repair of 101 arriving late maps to the same number and does not move the head.
        assert_eq!(out.map(3 * 65_536 + 101, 93_000).0, 101);
        // Another layer with unrelated numbering and clock: continues at 102, time moves on.
        let later = now + Duration::from_millis(33);
        out.last_out = Some((93_000, now, 90_000));
        out.begin(7, 5_000_000, 90_000, later);
        let (seq, time) = out.map(7, 5_000_000);
        assert_eq!(seq, 102);
        assert!((95_900..=96_100).contains(&time), "{time}");
        assert_eq!(out.map(8, 5_003_000).0, 103);
    }

    #[test]
    fn a_line_offered_again_after_a_lost_connection_starts_afresh_but_stays_paused() {
        let mut video = TrackOut::wanted(1, Mid::from("0"), Kind::Video);
        video.state = OutState::Open(Mid::from("3"));
        video.flow = Flow::Flowing;
        video.written = true;
        video.offer_again();
        assert_eq!(video.state, OutState::ToOpen);
        assert_eq!(
            video.flow,
            Flow::Starting,
            "a new stream starts at a keyframe"
        );
        assert!(
            !video.written,
            "its retransmission history is sized at the first write"
        );
        let mut paused = TrackOut::wanted(1, Mid::from("1"), Kind::Video);
        paused.flow = Flow::Paused;
        paused.offer_again();
        assert_eq!(paused.flow, Flow::Paused, "the policy still says no");
    }

    #[test]
    fn a_panic_in_one_participants_state_loses_only_that_participant() {
        let bound: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let (events, mut told) = mpsc::unbounded_channel();
        let counters = Arc::new(SfuCounters::default());
        let now = Now {
            at: Instant::now(),
            wall: SystemTime::now(),
        };
        let mut shard = Shard::new(
            bound,
            vec![bound.ip()],
            SfuConfig::default(),
            events,
            counters.clone(),
            now,
            Instant::now,
        );
        let mut keys = Vec::new();
        for who in ["a", "b"] {
            shard.enter("r".into(), ParticipantId::from(who), Standing::joint());
            let key = shard.key_of("r", &ParticipantId::from(who)).expect("key");
            let (rtc, _) = shard.new_rtc();
            if let Some(p) = shard.peers.get_mut(&key) {
                p.rtc = Some(Box::new(rtc));
            }
            keys.push(key);
        }
        let (a, b) = (keys[0], keys[1]);

        let outcome = shard.mutate(a, |_| -> Result<(), RtcError> { panic!("injected") });
        assert!(matches!(outcome, Mutated::Lost));
        assert_eq!(counters.peer_panics.load(Ordering::Relaxed), 1);
        assert!(shard.peers.get(&a).is_some_and(|p| p.rtc.is_none()));
        match told.try_recv() {
            Ok(MediaEvent::Lost { participant, .. }) => assert_eq!(participant.0, "a"),
            other => panic!("expected a's loss, got {other:?}"),
        }

        // b's state is untouched and keeps working; a keeps its place and may connect again.
        let alive = shard.mutate(b, |rtc| rtc.handle_input(Input::Timeout(now.at)));
        assert!(matches!(alive, Mutated::Done(Some(()))));
        assert!(shard.peers.get(&b).is_some_and(|p| p.rtc.is_some()));
        assert!(shard.key_of("r", &ParticipantId::from("a")).is_some());
    }
}

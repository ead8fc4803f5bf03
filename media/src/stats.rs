//! What the media plane counts: per-participant statistics for the control API, and the packet
//! counters and forwarding-delay histogram for `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

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

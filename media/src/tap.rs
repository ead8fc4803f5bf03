//! The recorder tap: the packets of a recorded room, copied into a bounded channel.
//!
//! Forwarding never waits for the recorder. When the channel is full the packet is dropped and
//! counted; the recorder reads the counters to log the gap as an interruption.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use crate::policy::{Kind, ParticipantId};

/// One RTP packet's payload as a publisher sent it (packets arrive in network order; a
/// retransmission may fill a gap late — the sequence number says where it belongs).
#[derive(Debug, Clone)]
pub struct TapPacket {
    /// Whose media.
    pub participant: ParticipantId,
    /// The publisher's media line (one per track).
    pub mid: String,
    /// Audio or video.
    pub kind: Kind,
    /// Simulcast layer, if any.
    pub rid: Option<String>,
    /// Codec MIME type, e.g. `audio/opus`.
    pub codec: String,
    /// Sequence number, extended to 64 bits: gaps are losses, to be concealed.
    pub seq: u64,
    /// The RTP marker bit (the last packet of a video frame).
    pub marker: bool,
    /// RTP time in `clock_rate` units, extended to 64 bits.
    pub rtp_time: u64,
    /// The codec clock rate.
    pub clock_rate: u32,
    /// When it arrived.
    pub arrival: Instant,
    /// The wall-clock arrival time.
    pub arrival_wall: SystemTime,
    /// The first packet of a video keyframe.
    pub keyframe: bool,
    /// RFC 6464 level (-dBov), for audio.
    pub audio_level: Option<i8>,
    /// The payload.
    pub data: Arc<[u8]>,
}

/// Delivered and dropped packet counts of one tap.
#[derive(Debug, Default)]
pub struct TapCounters {
    delivered: AtomicU64,
    dropped: AtomicU64,
}

impl TapCounters {
    /// Packets handed to the recorder.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Packets dropped because the recorder fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The recorder's end of a tap.
#[derive(Debug)]
pub struct TapReceiver {
    /// The packets.
    pub rx: mpsc::Receiver<TapPacket>,
    /// Shared with the media plane.
    pub counters: Arc<TapCounters>,
}

/// The media plane's end of a tap.
#[derive(Debug)]
pub(crate) struct Tap {
    tx: mpsc::Sender<TapPacket>,
    counters: Arc<TapCounters>,
}

impl Tap {
    /// A tap holding at most `capacity` packets in flight.
    pub(crate) fn new(capacity: usize) -> (Tap, TapReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let counters = Arc::new(TapCounters::default());
        (
            Tap {
                tx,
                counters: counters.clone(),
            },
            TapReceiver { rx, counters },
        )
    }

    /// Offers a packet; never waits. False when the recorder has gone away.
    pub(crate) fn offer(&self, packet: TapPacket) -> bool {
        match self.tx.try_send(packet) {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> TapPacket {
        TapPacket {
            participant: ParticipantId::from("a"),
            mid: "0".into(),
            kind: Kind::Audio,
            rid: None,
            codec: "audio/opus".into(),
            seq: 1,
            marker: false,
            rtp_time: 0,
            clock_rate: 48_000,
            arrival: Instant::now(),
            arrival_wall: SystemTime::now(),
            keyframe: false,
            audio_level: None,
            data: Arc::from(&[1u8, 2, 3][..]),
        }
    }

    #[test]
    fn a_full_tap_drops_and_counts_instead_of_waiting() {
        let (tap, mut rx) = Tap::new(2);
        for _ in 0..5 {
            assert!(tap.offer(packet()));
        }
        assert_eq!(rx.counters.delivered(), 2);
        assert_eq!(rx.counters.dropped(), 3);
        assert!(rx.rx.try_recv().is_ok());
        drop(rx);
        assert!(!tap.offer(packet()), "a closed tap says so");
    }
}

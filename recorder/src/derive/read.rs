//! Reading a track's captured packets back: its sealed segments in chain order, records
//! parsed, then put back into sequence order (a retransmission arrives late and is recorded
//! where it arrived) and de-duplicated.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::capture::{RECORD_HEADER, SEGMENT_MAGIC};

use super::DeriveError;

/// One captured RTP packet.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub arrival_us: u64,
    pub seq: u64,
    pub rtp_time: u64,
    pub marker: bool,
    /// RFC 6464 level (-dBov), if the sender gave one.
    pub audio_level: Option<u8>,
    pub payload: Vec<u8>,
}

/// How many packets a retransmission may trail its place by and still be put back in order.
const REORDER_WINDOW: usize = 256;

/// A track's packets in sequence order.
pub(crate) struct TrackReader {
    dir: PathBuf,
    files: VecDeque<String>,
    parsed: VecDeque<Record>,
    window: BTreeMap<u64, Record>,
    last_seq: Option<u64>,
}

impl TrackReader {
    /// Reads `files` (relative to `dir`, in chain order).
    pub(crate) fn new(dir: &Path, files: Vec<String>) -> TrackReader {
        TrackReader {
            dir: dir.to_path_buf(),
            files: files.into(),
            parsed: VecDeque::new(),
            window: BTreeMap::new(),
            last_seq: None,
        }
    }

    /// The next packet in sequence order; `None` at the end.
    pub(crate) fn next(&mut self) -> Result<Option<Record>, DeriveError> {
        while self.window.len() <= REORDER_WINDOW {
            if self.parsed.is_empty() {
                let Some(file) = self.files.pop_front() else {
                    break;
                };
                let bytes = std::fs::read(self.dir.join(&file))?;
                self.parsed = parse_segment(&bytes).map_err(|at| DeriveError::Corrupt {
                    file: file.clone(),
                    at,
                })?;
                continue;
            }
            if let Some(r) = self.parsed.pop_front() {
                // A copy of a packet already delivered (or too late to place) is dropped.
                if self.last_seq.is_none_or(|last| r.seq > last) {
                    self.window.entry(r.seq).or_insert(r);
                }
            }
        }
        let next = self.window.pop_first().map(|(_, r)| r);
        if let Some(r) = &next {
            self.last_seq = Some(r.seq);
        }
        Ok(next)
    }
}

/// A segment's records; on a malformed record, the byte offset where it starts.
pub(crate) fn parse_segment(bytes: &[u8]) -> Result<VecDeque<Record>, u64> {
    let mut out = VecDeque::new();
    if !bytes.starts_with(SEGMENT_MAGIC) {
        return Err(0);
    }
    let mut at = SEGMENT_MAGIC.len();
    while at < bytes.len() {
        let start = at as u64;
        let len = bytes
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or(start)?;
        let body = bytes.get(at + 4..at + 4 + len).ok_or(start)?;
        if len < RECORD_HEADER {
            return Err(start);
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&body[i..i + 8]);
            u64::from_be_bytes(b)
        };
        let flags = body[24];
        out.push_back(Record {
            arrival_us: u64_at(0),
            seq: u64_at(8),
            rtp_time: u64_at(16),
            marker: flags & 1 != 0,
            audio_level: (body[25] <= 127).then_some(body[25]),
            payload: body[RECORD_HEADER..].to_vec(),
        });
        at += 4 + len;
    }
    Ok(out)
}

/// Where a track's packets sit on the session's clock, in the track's clock units from the
/// recording's start. Anchored at the first packet's arrival; RTP time carries it forward (so
/// jitter does not move packets), and it re-anchors on arrival time when the two disagree by
/// more than a second (a publisher that restarted or was paused).
pub(crate) struct Timeline {
    start_us: u64,
    rate: u64,
    anchor: Option<(u64, i64)>,
}

impl Timeline {
    pub(crate) fn new(start_us: u64, clock_rate: u32) -> Timeline {
        Timeline {
            start_us,
            rate: u64::from(clock_rate.max(1)),
            anchor: None,
        }
    }

    /// The position of a packet (or frame) with this arrival and RTP time, in clock units
    /// since the start (never negative).
    pub(crate) fn place(&mut self, arrival_us: u64, rtp_time: u64) -> u64 {
        let by_arrival = (arrival_us.saturating_sub(self.start_us) as i128 * self.rate as i128
            / 1_000_000) as i64;
        let predicted = self
            .anchor
            .map(|(rtp, pos)| pos + (rtp_time as i64).wrapping_sub(rtp as i64));
        let position = match predicted {
            Some(p) if (p - by_arrival).unsigned_abs() <= self.rate => p,
            _ => {
                self.anchor = Some((rtp_time, by_arrival));
                by_arrival
            }
        };
        position.max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Timeline {
        fn place_ms(&mut self, arrival_ms: u64, rtp_time: u64) -> u64 {
            self.place(arrival_ms * 1000, rtp_time)
        }
    }

    #[test]
    fn the_timeline_follows_rtp_time_and_reanchors_after_a_jump() {
        let mut t = Timeline::new(1_000_000, 48_000);
        // First packet 500 ms after the start: 24000 samples in.
        assert_eq!(t.place_ms(1500, 10_000), 24_000);
        // 20 ms later by RTP, arriving with 30 ms of jitter: RTP wins.
        assert_eq!(t.place_ms(1550, 10_960), 24_960);
        // The publisher restarted its RTP clock: arrival time takes over.
        assert_eq!(t.place_ms(4000, 5), 144_000);
        assert_eq!(t.place_ms(4020, 965), 144_960);
    }

    #[test]
    fn a_truncated_record_is_located() {
        let mut seg = SEGMENT_MAGIC.to_vec();
        seg.extend_from_slice(&30u32.to_be_bytes());
        seg.extend_from_slice(&[0u8; 10]);
        assert_eq!(parse_segment(&seg).err(), Some(SEGMENT_MAGIC.len() as u64));
        assert_eq!(parse_segment(b"nope").err(), Some(0));
    }
}

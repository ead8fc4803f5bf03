//! VP8 frames from RTP packets (RFC 7741): payload descriptors stripped, partitions joined,
//! frames with a missing packet dropped — and every frame after them until the next
//! keyframe, because a decoder cannot use them either.

use super::read::Record;

/// One whole VP8 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    /// RTP time of the frame.
    pub rtp_time: u64,
    /// Arrival of its first packet.
    pub arrival_us: u64,
    pub keyframe: bool,
    pub data: Vec<u8>,
}

/// Where the VP8 bitstream starts in a payload, and whether the packet starts a frame.
fn descriptor(payload: &[u8]) -> Option<(usize, bool)> {
    let first = *payload.first()?;
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            at += if payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1;
        }
        if ext & 0x30 != 0 {
            at += 1;
        }
    }
    let start = first & 0x10 != 0 && first & 0x07 == 0;
    (at <= payload.len()).then_some((at, start))
}

/// Width and height of a keyframe (RFC 6386 §9.1).
pub(crate) fn keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 1 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    Some((
        u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff,
        u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff,
    ))
}

/// Assembles frames from packets in sequence order.
#[derive(Default)]
pub(crate) struct Assembler {
    current: Option<(Frame, u64)>,
    /// A packet was lost: drop frames until a keyframe.
    broken: bool,
    /// Frames dropped as undecodable.
    pub dropped: u64,
}

impl Assembler {
    /// An assembler that drops frames until the first keyframe.
    pub(crate) fn waiting_for_keyframe() -> Assembler {
        Assembler {
            broken: true,
            ..Assembler::default()
        }
    }

    /// Takes the next packet; returns a frame when one completes.
    pub(crate) fn push(&mut self, r: &Record) -> Option<Frame> {
        let Some((at, start)) = descriptor(&r.payload) else {
            self.lose();
            return None;
        };
        let body = &r.payload[at..];
        let mut done = None;
        if start {
            if self.current.take().is_some() {
                // The previous frame never saw its marker: it lost its tail.
                self.lose();
            }
            let keyframe = body.first().is_some_and(|b| b & 1 == 0);
            if keyframe {
                self.broken = false;
            }
            self.current = Some((
                Frame {
                    rtp_time: r.rtp_time,
                    arrival_us: r.arrival_us,
                    keyframe,
                    data: body.to_vec(),
                },
                r.seq,
            ));
        } else {
            match self.current.as_mut() {
                Some((frame, last)) if *last + 1 == r.seq && frame.rtp_time == r.rtp_time => {
                    frame.data.extend_from_slice(body);
                    *last = r.seq;
                }
                _ => {
                    self.current = None;
                    self.lose();
                }
            }
        }
        if r.marker
            && let Some((frame, _)) = self.current.take()
        {
            if self.broken {
                self.dropped += 1;
            } else {
                done = Some(frame);
            }
        }
        done
    }

    fn lose(&mut self) {
        if !self.broken {
            self.dropped += 1;
        }
        self.broken = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(seq: u64, ts: u64, start: bool, marker: bool, body: &[u8]) -> Record {
        // Extended descriptor with a 15-bit picture id.
        let mut payload = vec![0x80 | if start { 0x10 } else { 0 }, 0x80, 0x81, 0x02];
        payload.extend_from_slice(body);
        Record {
            arrival_us: seq,
            seq,
            rtp_time: ts,
            marker,
            audio_level: None,
            payload,
        }
    }

    #[test]
    fn frames_are_joined_and_a_loss_drops_until_the_next_keyframe() {
        let mut a = Assembler::default();
        let key = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        assert_eq!(a.push(&packet(1, 0, true, false, &key)), None);
        let f = a.push(&packet(2, 0, false, true, &[9, 9])).expect("frame");
        assert!(f.keyframe);
        assert_eq!(f.data.len(), 12);
        assert_eq!(keyframe_size(&f.data), Some((320, 240)));
        // A delta frame whose second packet (seq 4) is lost, then another delta: both dropped.
        assert_eq!(a.push(&packet(3, 3000, true, false, &[0x01, 1])), None);
        assert_eq!(a.push(&packet(5, 3000, false, true, &[2])), None);
        assert_eq!(a.push(&packet(6, 6000, true, true, &[0x01, 3])), None);
        // The next keyframe starts clean.
        let f = a
            .push(&packet(7, 9000, true, true, &key))
            .expect("keyframe");
        assert!(f.keyframe && f.rtp_time == 9000);
        assert_eq!(a.dropped, 2);
    }
}

//! Synthetic H.264 for the headless participant: well-formed Annex B access units (SPS, PPS and
//! an IDR slice for a keyframe, a non-IDR slice otherwise) whose slice carries the same trailer
//! as the VP8 frames (layer, send time, frame number), and the receive side that finds frame
//! starts, keyframes and the trailer in RTP payloads (RFC 6184: single NAL, STAP-A, FU-A).
//!
//! The trailer is written as ASCII hex so no byte pattern inside a NAL unit can look like a
//! start code to a packetizer.

use bytes::Bytes;

const SPS: [u8; 9] = [0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xe8];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];
const START: [u8; 4] = [0, 0, 0, 1];
const NAL_IDR: u8 = 5;
const NAL_SLICE: u8 = 1;
const NAL_SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;
/// "TJ", the layer digit, 16 hex digits of send time (µs), 8 of the frame number.
const TRAILER_LEN: usize = 2 + 1 + 16 + 8;

/// An access unit of about `size` bytes.
pub fn synthetic_frame(keyframe: bool, layer: u8, number: u32, sent_us: u64, size: usize) -> Bytes {
    let mut f = Vec::with_capacity(size.max(64));
    if keyframe {
        f.extend_from_slice(&START);
        f.extend_from_slice(&SPS);
        f.extend_from_slice(&START);
        f.extend_from_slice(&PPS);
    }
    f.extend_from_slice(&START);
    // nal_ref_idc 3 for the IDR, 2 for other slices.
    f.push(if keyframe {
        0x60 | NAL_IDR
    } else {
        0x40 | NAL_SLICE
    });
    f.extend_from_slice(b"TJ");
    f.push(b'0' + layer % 10);
    f.extend_from_slice(format!("{sent_us:016x}{number:08x}").as_bytes());
    // Filler that never forms 00 00 0x.
    let mut x = number.wrapping_mul(2_654_435_761) | 1;
    while f.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push((x as u8) | 0x01);
    }
    Bytes::from(f)
}

/// What the first packet of a slice says: (keyframe, the trailer's layer and send time).
pub fn slice_start(payload: &[u8]) -> Option<(bool, Option<(u8, u64)>)> {
    let header = *payload.first()?;
    match header & 0x1f {
        t @ (NAL_SLICE | NAL_IDR) => Some((t == NAL_IDR, trailer(payload.get(1..)?))),
        STAP_A => {
            // Aggregated NAL units, each behind a 16-bit size: report the slice if there is
            // one, else a keyframe start if the unit carries the SPS.
            let mut at = 1;
            let mut sps = false;
            while let Some(len) = payload.get(at..at + 2) {
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let nal = payload.get(at + 2..at + 2 + len)?;
                match nal.first().map(|b| b & 0x1f) {
                    Some(t @ (NAL_SLICE | NAL_IDR)) => {
                        return Some((t == NAL_IDR, trailer(nal.get(1..)?)));
                    }
                    Some(NAL_SPS) => sps = true,
                    _ => {}
                }
                at += 2 + len;
            }
            sps.then_some((true, None))
        }
        FU_A => {
            let fu = *payload.get(1)?;
            let start = fu & 0x80 != 0;
            let t = fu & 0x1f;
            (start && matches!(t, NAL_SLICE | NAL_IDR))
                .then(|| (t == NAL_IDR, payload.get(2..).and_then(trailer)))
        }
        _ => None,
    }
}

fn trailer(slice: &[u8]) -> Option<(u8, u64)> {
    let t = slice.get(..TRAILER_LEN)?;
    if &t[..2] != b"TJ" {
        return None;
    }
    let layer = t[2].checked_sub(b'0')?;
    let sent = u64::from_str_radix(std::str::from_utf8(&t[3..19]).ok()?, 16).ok()?;
    Some((layer, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits an Annex B access unit into its NAL units.
    fn nal_units(au: &[u8]) -> Vec<&[u8]> {
        let starts: Vec<usize> = (0..au.len().saturating_sub(3))
            .filter(|&i| au[i..i + 4] == START)
            .collect();
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| &au[s + 4..starts.get(k + 1).copied().unwrap_or(au.len())])
            .collect()
    }

    #[test]
    fn a_keyframe_is_sps_pps_idr_and_its_trailer_survives_each_packetization() {
        let au = synthetic_frame(true, 2, 9, 0x0000_0001_0000_0100, 1200);
        let units = nal_units(&au);
        assert_eq!(
            units.len(),
            3,
            "SPS, PPS, IDR and no start code in the filler"
        );
        assert_eq!(units[0][0] & 0x1f, NAL_SPS);
        assert_eq!(units[2][0] & 0x1f, NAL_IDR);
        // Single NAL unit packet.
        assert_eq!(
            slice_start(units[2]),
            Some((true, Some((2, 0x0000_0001_0000_0100))))
        );
        // STAP-A with SPS and PPS only: a keyframe start without a trailer.
        let mut stap = vec![STAP_A];
        for u in &units[..2] {
            stap.extend_from_slice(&(u.len() as u16).to_be_bytes());
            stap.extend_from_slice(u);
        }
        assert_eq!(slice_start(&stap), Some((true, None)));
        // FU-A start of the IDR.
        let mut fu = vec![(units[2][0] & 0xe0) | FU_A, 0x80 | NAL_IDR];
        fu.extend_from_slice(&units[2][1..100]);
        assert_eq!(slice_start(&fu).map(|s| s.0), Some(true));
        assert_eq!(slice_start(&fu).and_then(|s| s.1).map(|t| t.0), Some(2));
        // A middle fragment starts nothing.
        fu[1] = NAL_IDR;
        assert_eq!(slice_start(&fu), None);

        let delta = synthetic_frame(false, 0, 10, 5, 300);
        let units = nal_units(&delta);
        assert_eq!(units.len(), 1);
        assert_eq!(slice_start(units[0]), Some((false, Some((0, 5)))));
    }
}

//! What the SFU reads inside RTP payloads, without depacketizing: whether a packet starts a
//! keyframe (where a subscriber may start or switch layers) and, for VP8, the picture size.
//!
//! VP8: RFC 7741 payload descriptor, then the RFC 6386 frame header. H.264: RFC 6184 single
//! NAL unit, STAP-A and FU-A packets; a keyframe starts with its SPS or, without one, its IDR.

use str0m::format::Codec;

/// What a packet says about the frame it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct FrameStart {
    /// The packet starts a keyframe.
    pub keyframe: bool,
    /// Width and height, when the keyframe header carries them (VP8).
    pub size: Option<(u32, u32)>,
}

/// Reads the start of a frame from one RTP payload; `None` if the packet starts no keyframe.
pub(crate) fn keyframe_start(codec: Codec, payload: &[u8]) -> Option<FrameStart> {
    match codec {
        Codec::Vp8 => {
            let frame = vp8_frame_start(payload)?;
            (frame.first()? & 0x01 == 0).then(|| FrameStart {
                keyframe: true,
                size: vp8_keyframe_size(frame),
            })
        }
        Codec::H264 => h264_keyframe_start(payload).then_some(FrameStart {
            keyframe: true,
            size: None,
        }),
        _ => None,
    }
}

/// The VP8 bitstream of a packet that starts a frame (S = 1, partition 0), after the
/// payload descriptor.
fn vp8_frame_start(payload: &[u8]) -> Option<&[u8]> {
    let first = *payload.first()?;
    if first & 0x10 == 0 || first & 0x07 != 0 {
        return None;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            // PictureID: 7 or 15 bits.
            at += if payload.get(at)? & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            at += 1; // TID / KEYIDX
        }
    }
    payload.get(at..).filter(|f| !f.is_empty())
}

/// Width and height from a VP8 keyframe (RFC 6386 §9.1), if `frame` is one.
pub(crate) fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    Some((w, h))
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// Whether an H.264 packet starts a keyframe: an SPS, an IDR slice not fragmented or its first
/// fragment, or an aggregate holding either.
fn h264_keyframe_start(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1f {
        NAL_SPS | NAL_IDR => true,
        STAP_A => {
            let mut at = 1;
            while let Some(len) = payload.get(at..at + 2) {
                let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
                let Some(&nal) = payload.get(at + 2) else {
                    return false;
                };
                if len == 0 {
                    return false;
                }
                if matches!(nal & 0x1f, NAL_SPS | NAL_IDR) {
                    return true;
                }
                at += 2 + len;
            }
            false
        }
        FU_A => payload
            .get(1)
            .is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == NAL_IDR),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYFRAME: [u8; 12] = [
        0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01, 0, 0,
    ];

    #[test]
    fn reads_the_size_of_a_vp8_keyframe() {
        assert_eq!(vp8_keyframe_size(&KEYFRAME), Some((640, 360)));
        assert_eq!(vp8_keyframe_size(&KEYFRAME[..5]), None);
        let mut delta = KEYFRAME;
        delta[0] |= 1;
        assert_eq!(vp8_keyframe_size(&delta), None);
    }

    #[test]
    fn a_vp8_keyframe_starts_after_any_descriptor() {
        // Minimal descriptor: S = 1, partition 0.
        let mut p = vec![0x10];
        p.extend_from_slice(&KEYFRAME);
        let start = keyframe_start(Codec::Vp8, &p).expect("keyframe");
        assert_eq!(start.size, Some((640, 360)));
        // Extended: 15-bit picture id, TL0PICIDX, TID.
        let mut p = vec![0x90, 0xe0, 0x81, 0x23, 0x07, 0x40];
        p.extend_from_slice(&KEYFRAME);
        assert_eq!(
            keyframe_start(Codec::Vp8, &p).and_then(|s| s.size),
            Some((640, 360))
        );
        // A continuation packet (S = 0) and a delta frame start nothing.
        let mut cont = p.clone();
        cont[0] &= !0x10;
        assert_eq!(keyframe_start(Codec::Vp8, &cont), None);
        let mut delta = p.clone();
        delta[6] |= 1;
        assert_eq!(keyframe_start(Codec::Vp8, &delta), None);
        // Every truncation is refused or read without panicking.
        for n in 0..p.len() {
            let _ = keyframe_start(Codec::Vp8, &p[..n]);
        }
        assert_eq!(keyframe_start(Codec::Opus, &p), None);
    }

    #[test]
    fn h264_keyframes_start_at_the_sps_or_the_idr() {
        let sps = [0x67, 0x42, 0xc0, 0x1f];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        assert!(keyframe_start(Codec::H264, &sps).is_some());
        assert!(keyframe_start(Codec::H264, &[0x65, 0x88]).is_some(), "IDR");
        assert!(
            keyframe_start(Codec::H264, &[0x41, 0x9a]).is_none(),
            "slice"
        );
        let mut stap = vec![STAP_A];
        for nal in [&pps[..], &sps[..]] {
            stap.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            stap.extend_from_slice(nal);
        }
        assert!(keyframe_start(Codec::H264, &stap).is_some());
        assert!(
            keyframe_start(Codec::H264, &stap[..7]).is_none(),
            "PPS only"
        );
        assert!(keyframe_start(Codec::H264, &[0x7c, 0x85, 0x00]).is_some());
        assert!(
            keyframe_start(Codec::H264, &[0x7c, 0x05, 0x00]).is_none(),
            "a middle fragment"
        );
        assert!(keyframe_start(Codec::H264, &[0x7c, 0x81, 0x00]).is_none());
        for n in 0..stap.len() {
            let _ = keyframe_start(Codec::H264, &stap[..n]);
        }
        assert!(keyframe_start(Codec::H264, &[STAP_A, 0, 0, 0x67]).is_none());
    }

    /// A property run over what a publisher controls: 20,000 random and mutated payloads of
    /// every codec, from a fixed seed. None panics or reads past the buffer; a payload too
    /// short for a keyframe's header reports no size.
    #[test]
    fn random_and_mutated_payloads_never_panic() {
        let mut state = 0x9a71_0017u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        for i in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut payload: Vec<u8> = if i % 2 == 0 {
                KEYFRAME.to_vec()
            } else {
                (0..len).map(|_| next() as u8).collect()
            };
            if !payload.is_empty() {
                let at = (next() as usize) % payload.len();
                payload[at] ^= next() as u8;
                payload.truncate((next() as usize) % (payload.len() + 1));
            }
            for codec in [Codec::Vp8, Codec::H264, Codec::Opus, Codec::Vp9] {
                if let Some(start) = keyframe_start(codec, &payload) {
                    assert!(start.keyframe);
                }
            }
            let _ = vp8_keyframe_size(&payload);
        }
    }
}

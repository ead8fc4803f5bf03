//! Ogg Opus files (RFC 3533 pages, RFC 7845 mapping), written one packet per page.
//!
//! Granule positions are 48 kHz sample counts at the *end* of each page's packet, measured
//! from the recording's start, so a player puts every packet at its place on the session's
//! clock: a silent stretch (DTX, a muted microphone, a gap) is a jump in the granule, not
//! missing time. The last page carries the end-of-stream flag.

use std::io::Write;

/// Samples per second of every Opus granule position.
pub(crate) const OPUS_RATE: u64 = 48_000;

/// 48 kHz samples in an Opus packet, from its TOC byte (RFC 6716 §3.1); `None` if malformed.
pub(crate) fn opus_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let per_frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*packet.get(1)? & 0x3f),
    };
    let samples = per_frame * frames;
    // At most 120 ms per packet.
    (frames > 0 && samples <= 5760).then_some(samples)
}

/// The `OpusHead` identification header.
pub(crate) fn opus_head(channels: u8, pre_skip: u16, input_rate: u32) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&pre_skip.to_le_bytes());
    h.extend_from_slice(&input_rate.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // mapping family 0: mono or stereo
    h
}

fn opus_tags(comments: &[String]) -> Vec<u8> {
    let vendor = concat!("tiaojie ", env!("CARGO_PKG_VERSION"));
    let mut t = b"OpusTags".to_vec();
    t.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    t.extend_from_slice(vendor.as_bytes());
    t.extend_from_slice(&(comments.len() as u32).to_le_bytes());
    for c in comments {
        t.extend_from_slice(&(c.len() as u32).to_le_bytes());
        t.extend_from_slice(c.as_bytes());
    }
    t
}

/// An Ogg Opus stream being written.
pub(crate) struct OggOpusWriter<W: Write> {
    out: W,
    serial: u32,
    sequence: u32,
    /// The last data page, held back until we know whether it is the last one.
    pending: Option<(u64, Vec<u8>)>,
    granule: u64,
}

impl<W: Write> OggOpusWriter<W> {
    /// Writes the two header pages.
    pub(crate) fn new(
        out: W,
        serial: u32,
        channels: u8,
        pre_skip: u16,
        comments: &[String],
    ) -> std::io::Result<OggOpusWriter<W>> {
        let mut w = OggOpusWriter {
            out,
            serial,
            sequence: 0,
            pending: None,
            granule: 0,
        };
        w.page(0x02, 0, &opus_head(channels, pre_skip, OPUS_RATE as u32))?;
        w.page(0x00, 0, &opus_tags(comments))?;
        Ok(w)
    }

    /// Adds a packet ending at `granule_end` (samples since the start). A packet that would
    /// move the granule backwards is dropped (returns false): Ogg positions never decrease.
    pub(crate) fn packet(&mut self, data: &[u8], granule_end: u64) -> std::io::Result<bool> {
        if granule_end < self.granule || data.len() >= 255 * 255 {
            return Ok(false);
        }
        if let Some((g, d)) = self.pending.take() {
            self.page(0x00, g, &d)?;
        }
        self.granule = granule_end;
        self.pending = Some((granule_end, data.to_vec()));
        Ok(true)
    }

    /// Writes the last page with the end-of-stream flag; returns the writer.
    pub(crate) fn finish(mut self) -> std::io::Result<W> {
        let (g, d) = self.pending.take().unwrap_or((self.granule, Vec::new()));
        self.page(0x04, g, &d)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn page(&mut self, flags: u8, granule: u64, packet: &[u8]) -> std::io::Result<()> {
        let mut lacing = vec![255u8; packet.len() / 255];
        lacing.push((packet.len() % 255) as u8);
        let mut page = Vec::with_capacity(27 + lacing.len() + packet.len());
        page.extend_from_slice(b"OggS");
        page.push(0);
        page.push(flags);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&self.serial.to_le_bytes());
        page.extend_from_slice(&self.sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(lacing.len() as u8);
        page.extend_from_slice(&lacing);
        page.extend_from_slice(packet);
        let crc = crc32(&page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        self.sequence += 1;
        self.out.write_all(&page)
    }
}

/// Ogg's CRC-32: polynomial 0x04c11db7, no reflection, zero initial value and final XOR.
fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut r = (i as u32) << 24;
            for _ in 0..8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
            }
            *slot = r;
        }
        t
    });
    data.iter().fold(0u32, |crc, &b| {
        (crc << 8) ^ table[((crc >> 24) as u8 ^ b) as usize]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_packet_durations_come_from_the_toc() {
        // CELT fullband 20 ms, one frame.
        assert_eq!(opus_samples(&[0xf8, 0xff]), Some(960));
        // SILK 60 ms, two frames (code 1).
        assert_eq!(opus_samples(&[(3 << 3) | 1]), Some(5760));
        // Code 3 with 3 frames of 10 ms hybrid.
        assert_eq!(opus_samples(&[(12 << 3) | 3, 3]), Some(1440));
        assert_eq!(opus_samples(&[(12 << 3) | 3]), None);
        assert_eq!(opus_samples(&[]), None);
    }

    #[test]
    fn pages_carry_flags_granules_and_a_valid_crc() {
        let mut w = OggOpusWriter::new(Vec::new(), 7, 1, 312, &[]).expect("head");
        assert!(w.packet(&[0xf8; 300], 960).expect("write"));
        assert!(!w.packet(&[0xf8], 100).expect("write"), "backwards");
        assert!(w.packet(&[0xf8], 1920).expect("write"));
        let bytes = w.finish().expect("finish");
        let mut pages = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            assert_eq!(&bytes[at..at + 4], b"OggS");
            let n = bytes[at + 26] as usize;
            let body: usize = bytes[at + 27..at + 27 + n]
                .iter()
                .map(|&l| l as usize)
                .sum();
            let len = 27 + n + body;
            let mut page = bytes[at..at + len].to_vec();
            let crc = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
            page[22..26].copy_from_slice(&[0; 4]);
            assert_eq!(crc32(&page), crc);
            let granule = u64::from_le_bytes(page[6..14].try_into().expect("8 bytes"));
            pages.push((page[5], granule, body));
            at += len;
        }
        assert_eq!(
            pages,
            vec![
                (2, 0, 19),
                (
                    0,
                    0,
                    16 + "tiaojie ".len() + env!("CARGO_PKG_VERSION").len()
                ),
                (0, 960, 300),
                (4, 1920, 1)
            ]
        );
    }
}

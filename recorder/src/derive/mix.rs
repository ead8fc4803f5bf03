//! The mixed track: every speaker's Opus decoded onto the session's clock, summed, and encoded
//! as one Opus stream from the recording's start to its end.
//!
//! Per speaker: a packet its sender measured as silence (RFC 6464 level) is silence without
//! being decoded; a lost packet is concealed — its audio recovered from the next packet's
//! in-band FEC when there is any, Opus packet-loss concealment otherwise — for up to
//! [`MAX_CONCEALED`] samples; a longer gap, or a gap without lost packets (DTX, a muted or
//! absent speaker), is silence. The output's pre-skip is the encoder's look-ahead and its last
//! granule ends it exactly at the recording's end, so decoded it lines up sample for sample
//! with the session clock.

use std::collections::VecDeque;
use std::io::Write;

use super::DeriveError;
use super::ogg::OggOpusWriter;
use super::read::{Timeline, TrackReader};

/// 20 ms at 48 kHz: the output frame.
const FRAME: usize = 960;
/// Conceal at most 200 ms of lost packets; beyond that a gap is silence.
const MAX_CONCEALED: u64 = 9_600;
/// Packets the sender measured at this level or quieter (RFC 6464, -dBov) are silence in the
/// mix without being decoded: far below the room noise of any microphone, and most of a
/// session is most people listening.
const INAUDIBLE_DBOV: u8 = 80;
/// The largest Opus packet's samples (120 ms).
const MAX_PACKET_SAMPLES: usize = 5_760;

/// What mixing did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MixStats {
    /// Frames of 20 ms written.
    pub frames: u64,
    /// Samples of lost packets concealed (FEC or PLC).
    pub concealed_samples: u64,
    /// Packets that would not decode.
    pub undecodable: u64,
    /// Packets not decoded because their sender measured them as silence.
    pub skipped: u64,
}

/// One speaker's audio, decoded on demand.
pub(crate) struct Voice {
    reader: TrackReader,
    timeline: Timeline,
    decoder: opus::Decoder,
    /// The next packet and its position, read ahead.
    next: Option<(u64, super::read::Record)>,
    last_seq: Option<u64>,
    last_samples: usize,
    /// Decoded samples from the mixer's position on.
    buf: VecDeque<f32>,
    buf_start: u64,
    pcm: Vec<f32>,
    /// The last packet skipped as silence, decoded (and discarded) before the next one that
    /// is not, so the decoder's state is not stale.
    quiet: Option<Vec<u8>>,
}

impl Voice {
    pub(crate) fn new(reader: TrackReader, timeline: Timeline) -> Result<Voice, DeriveError> {
        Ok(Voice {
            reader,
            timeline,
            decoder: opus::Decoder::new(48_000, opus::Channels::Mono)
                .map_err(|e| DeriveError::Codec(e.to_string()))?,
            next: None,
            last_seq: None,
            last_samples: FRAME,
            buf: VecDeque::new(),
            buf_start: 0,
            pcm: vec![0.0; MAX_PACKET_SAMPLES],
            quiet: None,
        })
    }

    fn buf_end(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// Decodes until the buffer reaches `until` (or the speaker is silent there).
    fn fill(&mut self, until: u64, stats: &mut MixStats) -> Result<(), DeriveError> {
        while self.buf_end() < until {
            if self.next.is_none() {
                self.next = match self.reader.next()? {
                    Some(r) => Some((self.timeline.place(r.arrival_us, r.rtp_time), r)),
                    None => return Ok(()),
                };
            }
            let Some((pos, _)) = &self.next else {
                return Ok(());
            };
            let (pos, end) = (*pos, self.buf_end());
            if pos > end {
                self.bridge(pos, until, stats);
                if self.buf_end() >= until {
                    return Ok(());
                }
            }
            let Some((pos, record)) = self.next.take() else {
                return Ok(());
            };
            let inaudible = record.audio_level.is_some_and(|l| l >= INAUDIBLE_DBOV);
            let n = if inaudible {
                // The sender measured it as silence: no decoding, just its length of silence.
                // The last such packet is kept so the decoder can catch up before speech.
                let n = super::ogg::opus_samples(&record.payload).unwrap_or(FRAME as u32) as usize;
                self.pcm[..n].fill(0.0);
                stats.skipped += 1;
                self.quiet = Some(record.payload.clone());
                n
            } else {
                if let Some(quiet) = self.quiet.take() {
                    // Bring the decoder's state up to the packet before this one.
                    let _ = self.decoder.decode_float(&quiet, &mut self.pcm, false);
                }
                match self
                    .decoder
                    .decode_float(&record.payload, &mut self.pcm, false)
                {
                    Ok(n) => n,
                    Err(_) => {
                        stats.undecodable += 1;
                        continue;
                    }
                }
            };
            self.last_seq = Some(record.seq);
            self.last_samples = n.clamp(120, MAX_PACKET_SAMPLES);
            // A packet placed before what is already buffered keeps only its new part.
            let skip = (self.buf_end().saturating_sub(pos) as usize).min(n);
            self.buf.extend(&self.pcm[skip..n]);
        }
        Ok(())
    }

    /// Fills the gap before the next packet at `pos`: concealment for lost packets, then
    /// silence (only up to `until`: a long silence is not buffered ahead).
    fn bridge(&mut self, pos: u64, until: u64, stats: &mut MixStats) {
        let Some((_, next)) = &self.next else { return };
        let lost = self
            .last_seq
            .map_or(0, |last| next.seq.saturating_sub(last + 1));
        let mut gap = pos - self.buf_end();
        if lost > 0 && gap <= MAX_CONCEALED {
            // Concealment up to the last lost packet, which is then decoded from `next`'s
            // in-band FEC (libopus conceals it instead when `next` carries none).
            let fec = self.last_samples.min(gap as usize);
            let mut concealed = 0;
            while concealed + (fec as u64) < gap {
                let want = (gap - fec as u64 - concealed).min(self.last_samples as u64) as usize;
                let n = self
                    .decoder
                    .decode_float(&[], &mut self.pcm[..want], false)
                    .unwrap_or(0)
                    .min(want);
                if n == 0 {
                    break;
                }
                self.buf.extend(&self.pcm[..n]);
                concealed += n as u64;
            }
            if let Ok(n) = self
                .decoder
                .decode_float(&next.payload, &mut self.pcm[..fec], true)
            {
                self.buf.extend(&self.pcm[..n.min(fec)]);
                concealed += n.min(fec) as u64;
            }
            stats.concealed_samples += concealed;
            gap = pos.saturating_sub(self.buf_end());
        }
        let silence = gap.min(until.saturating_sub(self.buf_end()));
        self.buf.extend(std::iter::repeat_n(0.0, silence as usize));
    }

    /// Adds this speaker's next `out.len()` samples into `out` and moves on.
    fn take(&mut self, out: &mut [f32]) {
        for s in out.iter_mut() {
            *s += self.buf.pop_front().unwrap_or(0.0);
        }
        self.buf_start += out.len() as u64;
    }
}

/// Mixes `voices` from the start to `total` samples into an Ogg Opus stream on `out`.
pub(crate) fn mix<W: Write>(
    mut voices: Vec<Voice>,
    total: u64,
    out: W,
    comments: &[String],
) -> Result<(W, MixStats), DeriveError> {
    let codec = |e: opus::Error| DeriveError::Codec(e.to_string());
    let mut encoder = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::LowDelay)
        .map_err(codec)?;
    encoder
        .set_bitrate(opus::Bitrate::Bits(32_000))
        .map_err(codec)?;
    // CELT (the low-delay application) at complexity 3: SILK's analysis and delayed-decision
    // quantisation at the top settings cost more than decoding every speaker, and CELT's higher
    // complexities add little to speech at 32 kbit/s (measured: BENCHMARKS.md).
    encoder.set_complexity(3).map_err(codec)?;
    let lookahead = encoder.get_lookahead().map_err(codec)?.max(0) as u64;
    let mut writer = OggOpusWriter::new(out, 0x6d69_7864, 1, lookahead as u16, comments)?;
    let mut stats = MixStats::default();
    let end = total + lookahead;
    let mut sum = vec![0f32; FRAME];
    let mut packet = vec![0u8; 1500];
    let mut position = 0u64;
    while position < end {
        sum.fill(0.0);
        for v in voices.iter_mut() {
            v.fill(position + FRAME as u64, &mut stats)?;
            v.take(&mut sum);
        }
        for s in sum.iter_mut() {
            *s = s.clamp(-1.0, 1.0);
        }
        let n = encoder.encode_float(&sum, &mut packet).map_err(codec)?;
        position += FRAME as u64;
        writer.packet(&packet[..n], position.min(end))?;
        stats.frames += 1;
    }
    Ok((writer.finish()?, stats))
}

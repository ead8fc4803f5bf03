//! WebM (Matroska) files: one VP8 video track and, when the participant published audio, its
//! Opus track, interleaved in time order in clusters of at most a few seconds.
//!
//! Timestamps are milliseconds from the recording's start (`DateUTC` says when that was), so
//! every file of a recording shares the session's clock. The segment size and the duration are
//! written as placeholders and patched when the file is finished.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};

const EBML: u32 = 0x1A45_DFA3;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const CLUSTER: u32 = 0x1F43_B675;
const DURATION: u32 = 0x4489;

/// Start a new cluster at a video keyframe once this old, and always at this age.
const CLUSTER_AT_KEYFRAME_MS: u64 = 1_000;
const CLUSTER_MAX_MS: u64 = 5_000;

/// Nanoseconds between the Unix epoch and Matroska's epoch (2001-01-01).
const MATROSKA_EPOCH_NS: i64 = 978_307_200 * 1_000_000_000;

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count();
    b[skip..].to_vec()
}

/// An EBML variable-size integer of minimal length.
fn size_bytes(n: u64) -> Vec<u8> {
    let mut len = 1;
    while len < 8 && n >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    let mut out = vec![0u8; len];
    let marked = n | (1u64 << (7 * len));
    for (i, b) in out.iter_mut().enumerate() {
        *b = (marked >> (8 * (len - 1 - i))) as u8;
    }
    out
}

fn element(id: u32, body: &[u8]) -> Vec<u8> {
    let mut e = id_bytes(id);
    e.extend_from_slice(&size_bytes(body.len() as u64));
    e.extend_from_slice(body);
    e
}

fn uint(id: u32, v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count().min(7);
    element(id, &b[skip..])
}

fn float(id: u32, v: f64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

fn text(id: u32, v: &str) -> Vec<u8> {
    element(id, v.as_bytes())
}

/// The audio track to mux with the video, if any.
pub(crate) struct AudioTrack {
    /// The `OpusHead` header.
    pub opus_head: Vec<u8>,
    pub channels: u8,
}

/// A WebM file being written.
pub(crate) struct WebmWriter {
    out: BufWriter<File>,
    segment_size_at: u64,
    segment_start: u64,
    duration_at: u64,
    cluster: Vec<u8>,
    cluster_ms: Option<u64>,
    last_ms: u64,
}

impl WebmWriter {
    /// Writes the headers of a file with a VP8 track (number 1) of `width`×`height` and, if
    /// given, an Opus track (number 2).
    pub(crate) fn create(
        file: File,
        (width, height): (u16, u16),
        audio: Option<AudioTrack>,
        start_unix_us: u64,
        title: &str,
    ) -> std::io::Result<WebmWriter> {
        let mut out = BufWriter::new(file);
        let header = [
            uint(0x4286, 1),
            uint(0x42F7, 1),
            uint(0x42F2, 4),
            uint(0x42F3, 8),
            text(0x4282, "webm"),
            uint(0x4287, 4),
            uint(0x4285, 2),
        ]
        .concat();
        out.write_all(&element(EBML, &header))?;
        out.write_all(&id_bytes(SEGMENT))?;
        let segment_size_at = out.stream_position()?;
        // Eight-byte "unknown" size, patched in `finish`.
        out.write_all(&[0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])?;
        let segment_start = out.stream_position()?;

        let date_ns = (start_unix_us as i64).saturating_mul(1000) - MATROSKA_EPOCH_NS;
        let app = concat!("tiaojie ", env!("CARGO_PKG_VERSION"));
        let before_duration = [
            uint(0x2A_D7B1, 1_000_000), // TimestampScale: milliseconds
            text(0x4D80, app),
            text(0x5741, app),
            text(0x7BA9, title),
            element(0x4461, &date_ns.to_be_bytes()),
        ]
        .concat();
        let duration = float(DURATION, 0.0);
        let info_body_len = before_duration.len() + duration.len();
        let mut info = id_bytes(INFO);
        info.extend_from_slice(&size_bytes(info_body_len as u64));
        info.extend_from_slice(&before_duration);
        out.write_all(&info)?;
        let duration_at = out.stream_position()? + (duration.len() - 8) as u64;
        out.write_all(&duration)?;

        let video = [
            uint(0xD7, 1),
            uint(0x73C5, 1),
            uint(0x83, 1),
            uint(0x9C, 0),
            text(0x86, "V_VP8"),
            element(
                0xE0,
                &[uint(0xB0, width.into()), uint(0xBA, height.into())].concat(),
            ),
        ]
        .concat();
        let mut tracks = element(TRACK_ENTRY, &video);
        if let Some(a) = audio {
            let entry = [
                uint(0xD7, 2),
                uint(0x73C5, 2),
                uint(0x83, 2),
                uint(0x9C, 0),
                text(0x86, "A_OPUS"),
                element(0x63A2, &a.opus_head),
                uint(0x56BB, 80_000_000), // SeekPreRoll: 80 ms
                element(
                    0xE1,
                    &[float(0xB5, 48_000.0), uint(0x9F, a.channels.into())].concat(),
                ),
            ]
            .concat();
            tracks.extend_from_slice(&element(TRACK_ENTRY, &entry));
        }
        out.write_all(&element(TRACKS, &tracks))?;
        Ok(WebmWriter {
            out,
            segment_size_at,
            segment_start,
            duration_at,
            cluster: Vec::new(),
            cluster_ms: None,
            last_ms: 0,
        })
    }

    /// Adds a frame of `track` (1 video, 2 audio) at `ms` from the start. Frames must come in
    /// time order; an earlier one is moved to the last time written.
    pub(crate) fn frame(
        &mut self,
        track: u8,
        ms: u64,
        keyframe: bool,
        data: &[u8],
    ) -> std::io::Result<()> {
        let ms = ms.max(self.last_ms);
        let new_cluster = match self.cluster_ms {
            None => true,
            Some(c) => {
                let age = ms - c;
                age >= CLUSTER_MAX_MS || (track == 1 && keyframe && age >= CLUSTER_AT_KEYFRAME_MS)
            }
        };
        if new_cluster {
            self.flush_cluster()?;
            self.cluster_ms = Some(ms);
            self.cluster = uint(0xE7, ms);
        }
        let relative = (ms - self.cluster_ms.unwrap_or(ms)) as i16;
        let mut block = vec![0x80 | track];
        block.extend_from_slice(&relative.to_be_bytes());
        block.push(if keyframe || track == 2 { 0x80 } else { 0 });
        block.extend_from_slice(data);
        self.cluster.extend_from_slice(&element(0xA3, &block));
        self.last_ms = ms;
        Ok(())
    }

    fn flush_cluster(&mut self) -> std::io::Result<()> {
        if self.cluster_ms.is_some() {
            self.out.write_all(&element(CLUSTER, &self.cluster))?;
            self.cluster.clear();
        }
        Ok(())
    }

    /// Writes the last cluster, the duration (`end_ms`) and the segment size.
    pub(crate) fn finish(mut self, end_ms: u64) -> std::io::Result<()> {
        self.flush_cluster()?;
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(self.duration_at))?;
        self.out
            .write_all(&(end_ms.max(self.last_ms) as f64).to_be_bytes())?;
        self.out.seek(SeekFrom::Start(self.segment_size_at))?;
        let size = (end - self.segment_start) | (1u64 << 56);
        self.out.write_all(&size.to_be_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ebml_sizes_are_minimal_and_marked() {
        assert_eq!(size_bytes(0), vec![0x80]);
        assert_eq!(size_bytes(126), vec![0xfe]);
        // 127 with one byte would be all ones (reserved: unknown size).
        assert_eq!(size_bytes(127), vec![0x40, 0x7f]);
        assert_eq!(size_bytes(300), vec![0x41, 0x2c]);
        assert_eq!(id_bytes(0xA3), vec![0xA3]);
        assert_eq!(uint(0xD7, 1), vec![0xD7, 0x81, 0x01]);
        assert_eq!(uint(0xE7, 0), vec![0xE7, 0x81, 0x00]);
    }
}

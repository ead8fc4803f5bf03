//! Per-track, append-only capture in segments.
//!
//! Layout of a recording directory:
//! - `recording.json`: the recording's id, when it was created, the signer's public key;
//! - `<track>/NNNNNN.seg`: sealed segments; `<track>/NNNNNN.seg.open`: the one being written;
//! - `chain.jsonl`, `checkpoints.jsonl`: see [`crate::chain`].
//!
//! A segment is `TJSEG2\n` followed by records: a 4-byte big-endian length, then the arrival
//! time (µs since the Unix epoch, u64), the RTP sequence number (extended, u64), the RTP time
//! (extended, u64), a flags byte (1: marker, 2: keyframe start), the sender's RFC 6464 audio
//! level (-dBov, 0–127; 255: none) and the payload. Sealing —
//! flush, fsync, rename, fsync of the directory, then the chain entry, fsynced — happens when
//! a segment reaches its size or age, and for all tracks when capture stops.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};

use crate::chain::{self, CHAIN_FILE, CHECKPOINT_FILE, Checkpoint, Entry, GENESIS};
use crate::clock::now_us;
use crate::digest::{SigningKey, hex};
use crate::events::{EVENTS_FILE, EventKind, RecordingEvent};

pub(crate) const SEGMENT_MAGIC: &[u8] = b"TJSEG2\n";
pub(crate) const RECORDING_FILE: &str = "recording.json";
pub(crate) const RECORD_HEADER: usize = 8 + 8 + 8 + 1 + 1;

/// What went wrong while recording.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The disk refused a write, a sync or a rename.
    #[error("recording storage: {0}")]
    Io(#[from] std::io::Error),
    /// A track name that cannot be a directory name.
    #[error("invalid track name {0:?}: use letters, digits, '-' and '_'")]
    InvalidTrack(String),
    /// The directory already holds a recording.
    #[error("{0} already holds a recording")]
    Exists(PathBuf),
}

/// When segments are sealed and checkpoints signed.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Seal a segment at this size.
    pub segment_bytes: u64,
    /// Seal a segment when its packets span this long.
    pub segment_age: Duration,
    /// Sign a checkpoint after this many sealed segments (and always when capture stops).
    pub checkpoint_every: u64,
    /// Block size of the per-block hashes that locate a change.
    pub block_size: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            segment_bytes: 4 << 20,
            segment_age: Duration::from_secs(10),
            checkpoint_every: 6,
            block_size: 64 << 10,
        }
    }
}

/// One captured packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The track (directory name): letters, digits, '-' and '_'.
    pub track: &'a str,
    /// Wall-clock arrival, µs since the Unix epoch.
    pub arrival_us: u64,
    /// RTP sequence number, extended.
    pub seq: u64,
    /// RTP time, extended.
    pub rtp_time: u64,
    /// RTP marker bit.
    pub marker: bool,
    /// The first packet of a video keyframe.
    pub keyframe: bool,
    /// The sender's RFC 6464 audio level (-dBov, 0 loudest – 127 silence), if it sent one.
    pub audio_level: Option<u8>,
    /// The RTP payload.
    pub payload: &'a [u8],
}

/// `recording.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// The recording's id.
    pub id: String,
    /// Creation time, µs since the Unix epoch.
    pub created_us: u64,
    /// The Ed25519 public key its checkpoints are signed with (base64).
    pub public_key: String,
}

impl RecordingInfo {
    /// Reads a recording directory's `recording.json`.
    pub fn read(dir: &Path) -> std::io::Result<RecordingInfo> {
        serde_json::from_slice(&std::fs::read(dir.join(RECORDING_FILE))?)
            .map_err(std::io::Error::other)
    }
}

/// A recording being captured.
pub struct Recording {
    dir: PathBuf,
    id: String,
    config: CaptureConfig,
    key: SigningKey,
    tracks: HashMap<String, Track>,
    chain: File,
    checkpoints: File,
    events: File,
    head: String,
    next_index: u64,
    since_checkpoint: u64,
}

/// A track's state: its next segment number and the open segment, if any.
struct Track {
    next_number: u64,
    open: Option<OpenSegment>,
}

struct OpenSegment {
    name: String,
    path: PathBuf,
    out: BufWriter<File>,
    bytes: u64,
    whole: Context,
    block: Context,
    block_fill: u64,
    blocks: Vec<String>,
    packets: u64,
    first_arrival_us: u64,
    last_arrival_us: u64,
}

impl Recording {
    /// Starts a recording in `dir` (created if missing; it must not hold one already).
    pub fn create(
        dir: &Path,
        id: &str,
        config: CaptureConfig,
        key: SigningKey,
    ) -> Result<Recording, RecorderError> {
        std::fs::create_dir_all(dir)?;
        let info_path = dir.join(RECORDING_FILE);
        if info_path.exists() {
            return Err(RecorderError::Exists(dir.to_path_buf()));
        }
        let info = RecordingInfo {
            id: id.to_string(),
            created_us: now_us(),
            public_key: key.public_b64(),
        };
        let mut f = File::create(&info_path)?;
        f.write_all(&serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        sync_dir(dir)?;
        Ok(Recording {
            dir: dir.to_path_buf(),
            id: id.to_string(),
            config,
            key,
            tracks: HashMap::new(),
            chain: chain::open_append(&dir.join(CHAIN_FILE))?,
            checkpoints: chain::open_append(&dir.join(CHECKPOINT_FILE))?,
            events: chain::open_append(&dir.join(EVENTS_FILE))?,
            head: GENESIS.to_string(),
            next_index: 0,
            since_checkpoint: 0,
        })
    }

    /// The chain's head: the hash of the last sealed segment's entry.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The recording's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends an event to `events.jsonl` (fsynced), stamped now.
    pub fn event(&mut self, what: EventKind) -> Result<(), RecorderError> {
        let event = RecordingEvent {
            at_us: now_us(),
            what,
        };
        chain::append_line(&mut self.events, &event)?;
        Ok(())
    }

    /// Appends a packet to its track's open segment, sealing the segment first if it is full.
    pub fn write(&mut self, p: &Packet<'_>) -> Result<(), RecorderError> {
        if p.track.is_empty()
            || !p
                .track
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(RecorderError::InvalidTrack(p.track.to_string()));
        }
        let full = self
            .tracks
            .get(p.track)
            .and_then(|t| t.open.as_ref())
            .is_some_and(|s| {
                s.bytes >= self.config.segment_bytes
                    || p.arrival_us.saturating_sub(s.first_arrival_us)
                        >= self.config.segment_age.as_micros() as u64
            });
        if full {
            self.seal(p.track)?;
        }
        let track = self.tracks.entry(p.track.to_string()).or_insert(Track {
            next_number: 1,
            open: None,
        });
        if track.open.is_none() {
            let track_dir = self.dir.join(p.track);
            std::fs::create_dir_all(&track_dir)?;
            let name = format!("{}/{:06}.seg", p.track, track.next_number);
            track.next_number += 1;
            let path = self.dir.join(format!("{name}.open"));
            let mut segment = OpenSegment {
                out: BufWriter::new(File::create(&path)?),
                name,
                path,
                bytes: 0,
                whole: Context::new(&SHA256),
                block: Context::new(&SHA256),
                block_fill: 0,
                blocks: Vec::new(),
                packets: 0,
                first_arrival_us: p.arrival_us,
                last_arrival_us: p.arrival_us,
            };
            segment.append(SEGMENT_MAGIC, self.config.block_size)?;
            track.open = Some(segment);
        }
        if let Some(segment) = track.open.as_mut() {
            let len = (RECORD_HEADER + p.payload.len()) as u32;
            let mut header = Vec::with_capacity(4 + RECORD_HEADER);
            header.extend_from_slice(&len.to_be_bytes());
            header.extend_from_slice(&p.arrival_us.to_be_bytes());
            header.extend_from_slice(&p.seq.to_be_bytes());
            header.extend_from_slice(&p.rtp_time.to_be_bytes());
            header.push(u8::from(p.marker) | (u8::from(p.keyframe) << 1));
            header.push(p.audio_level.map_or(255, |l| l.min(127)));
            segment.append(&header, self.config.block_size)?;
            segment.append(p.payload, self.config.block_size)?;
            segment.packets += 1;
            segment.last_arrival_us = p.arrival_us;
        }
        Ok(())
    }

    /// Seals every open segment whose first packet is older than the segment age, so a track
    /// that went quiet (a muted or departed publisher) does not keep its last packets unsealed.
    pub fn seal_idle(&mut self, now_us: u64) -> Result<(), RecorderError> {
        let age = self.config.segment_age.as_micros() as u64;
        let mut idle: Vec<String> = self
            .tracks
            .iter()
            .filter(|(_, t)| {
                t.open
                    .as_ref()
                    .is_some_and(|s| now_us.saturating_sub(s.first_arrival_us) >= age)
            })
            .map(|(name, _)| name.clone())
            .collect();
        idle.sort();
        for name in idle {
            self.seal(&name)?;
        }
        Ok(())
    }

    /// Seals `track`'s open segment and enters it in the chain.
    fn seal(&mut self, track: &str) -> Result<(), RecorderError> {
        let Some(segment) = self.tracks.get_mut(track).and_then(|t| t.open.take()) else {
            return Ok(());
        };
        let OpenSegment {
            name,
            path,
            out,
            bytes,
            whole,
            block,
            block_fill,
            mut blocks,
            packets,
            first_arrival_us,
            last_arrival_us,
        } = segment;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        if block_fill > 0 {
            blocks.push(hex(block.finish().as_ref()));
        }
        let sealed = self.dir.join(&name);
        std::fs::rename(&path, &sealed)?;
        if let Some(parent) = sealed.parent() {
            sync_dir(parent)?;
        }
        let mut entry = Entry {
            index: self.next_index,
            track: track.to_string(),
            file: name,
            bytes,
            sha256: hex(whole.finish().as_ref()),
            block_size: self.config.block_size,
            blocks,
            packets,
            first_arrival_us,
            last_arrival_us,
            prev: self.head.clone(),
            hash: String::new(),
        };
        entry.hash = entry.compute_hash();
        chain::append_line(&mut self.chain, &entry)?;
        self.head = entry.hash;
        self.next_index += 1;
        self.since_checkpoint += 1;
        if self.since_checkpoint >= self.config.checkpoint_every {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Signs the chain's current head.
    fn checkpoint(&mut self) -> Result<Option<Checkpoint>, RecorderError> {
        let Some(index) = self.next_index.checked_sub(1) else {
            return Ok(None);
        };
        let c = Checkpoint::signed(&self.id, index, &self.head, now_us(), &self.key);
        chain::append_line(&mut self.checkpoints, &c)?;
        self.since_checkpoint = 0;
        Ok(Some(c))
    }

    /// Seals every open segment and signs the final checkpoint; returns it (`None` if nothing
    /// was recorded).
    pub fn finish(mut self) -> Result<Option<Checkpoint>, RecorderError> {
        let mut names: Vec<String> = self.tracks.keys().cloned().collect();
        names.sort();
        for name in names {
            self.seal(&name)?;
        }
        if self.since_checkpoint == 0 && self.next_index > 0 {
            // The last seal signed already.
            return Ok(
                chain::read_lines::<Checkpoint>(&self.dir.join(CHECKPOINT_FILE))?
                    .values
                    .pop(),
            );
        }
        self.checkpoint()
    }
}

impl OpenSegment {
    fn append(&mut self, data: &[u8], block_size: u64) -> std::io::Result<()> {
        self.out.write_all(data)?;
        self.whole.update(data);
        let mut rest = data;
        while !rest.is_empty() {
            let room = (block_size - self.block_fill) as usize;
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.block.update(now);
            self.block_fill += now.len() as u64;
            if self.block_fill == block_size {
                let done = std::mem::replace(&mut self.block, Context::new(&SHA256));
                self.blocks.push(hex(done.finish().as_ref()));
                self.block_fill = 0;
            }
            rest = later;
        }
        self.bytes += data.len() as u64;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::verify::verify;

    /// A fresh, empty path under the temporary directory.
    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tiaojie-recorder-{name}-{}-{}",
            std::process::id(),
            now_us()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A recording in `dir` signed with a fresh key.
    pub(crate) fn start(dir: &Path, config: CaptureConfig) -> Recording {
        let (key, _) = SigningKey::generate().expect("key");
        Recording::create(dir, "rec", config, key).expect("create")
    }

    /// The `i`th packet of a 20 ms track.
    pub(crate) fn packet<'a>(track: &'a str, i: u64, payload: &'a [u8]) -> Packet<'a> {
        Packet {
            track,
            arrival_us: 1_000_000 + i * 20_000,
            seq: i,
            rtp_time: i * 960,
            marker: false,
            keyframe: false,
            audio_level: None,
            payload,
        }
    }

    #[test]
    fn segments_seal_by_size_and_age_and_the_chain_links_them() {
        let dir = temp_dir("seal");
        let config = CaptureConfig {
            segment_bytes: 2_000,
            segment_age: Duration::from_secs(1),
            checkpoint_every: 2,
            block_size: 512,
        };
        let mut r = start(&dir, config);
        let payload = [7u8; 100];
        for i in 0..60u64 {
            for track in ["a-audio", "b-video"] {
                r.write(&packet(track, i, &payload)).expect("write");
            }
        }
        let last = r.finish().expect("finish").expect("a checkpoint");
        let entries: Vec<Entry> = chain::read_lines(&dir.join(CHAIN_FILE))
            .expect("chain")
            .values;
        assert!(entries.len() >= 6, "{} segments", entries.len());
        assert_eq!(last.index, entries.len() as u64 - 1);
        assert_eq!(
            last.head,
            entries.last().map(|e| e.hash.clone()).unwrap_or_default()
        );
        for w in entries.windows(2) {
            assert_eq!(w[1].prev, w[0].hash);
        }
        assert!(entries.iter().all(|e| e.bytes <= 2_000 + 4 + 25 + 100));
        let packets: u64 = entries.iter().map(|e| e.packets).sum();
        assert_eq!(packets, 120);
        assert!(
            std::fs::read_dir(dir.join("a-audio"))
                .expect("dir")
                .all(|f| {
                    f.map(|f| !f.file_name().to_string_lossy().ends_with(".open"))
                        .unwrap_or(false)
                })
        );
        let report = verify(&dir);
        assert!(report.problems.is_empty(), "{report}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_track_names_and_reused_directories_are_refused() {
        let dir = temp_dir("names");
        let mut r = start(&dir, CaptureConfig::default());
        for bad in ["", "../x", "a/b", "a b"] {
            assert!(
                matches!(
                    r.write(&packet(bad, 1, b"x")),
                    Err(RecorderError::InvalidTrack(_))
                ),
                "{bad:?}"
            );
        }
        drop(r);
        let (key, _) = SigningKey::generate().expect("key");
        assert!(matches!(
            Recording::create(&dir, "again", CaptureConfig::default(), key),
            Err(RecorderError::Exists(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

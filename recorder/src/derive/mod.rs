//! Derived files: what people play, made from the sealed segments when a recording stops (or
//! by `tiaojie recording recover` after an interruption), into `derived/`:
//! - `<track>.opus`: each audio track as captured, in Ogg ([`ogg`]), on the session's clock;
//! - `<track>.webm`: each VP8 video track with its publisher's audio ([`webm`], [`vp8`]);
//! - `mixed.opus`: every speaker decoded, concealed, summed and re-encoded ([`mix`]).
//!
//! Only sealed segments named by the chain are read ([`read`]), so what is derived is exactly
//! what the chain vouches for.

mod mix;
mod ogg;
mod read;
mod vp8;
mod webm;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::capture::{RECORDING_FILE, RecordingInfo};
use crate::chain::{self, CHAIN_FILE, Entry};
use crate::digest::hex;
use crate::events::{EventKind, read_events};

use read::{Timeline, TrackReader};

pub(crate) const DERIVED_DIR: &str = "derived";

/// Why derived files could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// Reading the segments or writing the files failed.
    #[error("recording storage: {0}")]
    Io(#[from] std::io::Error),
    /// A sealed segment that does not parse (run `verify`).
    #[error("segment {file} is malformed at byte {at}")]
    Corrupt {
        /// The segment.
        file: String,
        /// Where.
        at: u64,
    },
    /// `recording.json` is missing or unreadable.
    #[error("not a recording: {0}")]
    NotARecording(String),
    /// libopus refused.
    #[error("opus: {0}")]
    Codec(String),
}

/// One derived file, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedFile {
    /// Path relative to the recording directory.
    pub file: String,
    /// `audio` (one track), `video` (one track with its publisher's audio) or `mixed`.
    pub kind: String,
    /// Whose media (absent for the mix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The captured tracks it is made from.
    pub tracks: Vec<String>,
    /// Its length in bytes.
    pub bytes: u64,
    /// SHA-256 (hex).
    pub sha256: String,
    /// How it was made.
    pub how: String,
}

/// The result of deriving.
#[derive(Debug, Clone, Default)]
pub struct Derivation {
    /// The files made.
    pub files: Vec<DerivedFile>,
    /// What could not be derived, or was concealed, in words.
    pub notes: Vec<String>,
    /// The recording's start, µs since the Unix epoch.
    pub start_us: u64,
    /// Its end: the stop event, or the last sealed packet after an interruption.
    pub end_us: u64,
}

struct TrackMeta {
    identity: String,
    kind: String,
    codec: String,
    clock_rate: u32,
    files: Vec<String>,
}

/// Makes the derived files of the recording in `dir` (replacing earlier ones).
pub fn derive(dir: &Path) -> Result<Derivation, DeriveError> {
    let info: RecordingInfo = std::fs::read(dir.join(RECORDING_FILE))
        .map_err(|e| DeriveError::NotARecording(e.to_string()))
        .and_then(|b| {
            serde_json::from_slice(&b).map_err(|e| DeriveError::NotARecording(e.to_string()))
        })?;
    let entries: Vec<Entry> = chain::read_lines(&dir.join(CHAIN_FILE))?.values;
    let events = read_events(dir)?;
    let mut tracks: BTreeMap<String, TrackMeta> = BTreeMap::new();
    for e in &events {
        if let EventKind::Track {
            track,
            identity,
            kind,
            codec,
            clock_rate,
        } = &e.what
        {
            tracks.entry(track.clone()).or_insert(TrackMeta {
                identity: identity.clone(),
                kind: kind.clone(),
                codec: codec.to_ascii_lowercase(),
                clock_rate: *clock_rate,
                files: Vec::new(),
            });
        }
    }
    let mut out = Derivation {
        start_us: info.created_us,
        ..Derivation::default()
    };
    for e in &entries {
        match tracks.get_mut(&e.track) {
            Some(t) => t.files.push(e.file.clone()),
            None => out.notes.push(format!(
                "segment {} has no track event; not derived",
                e.file
            )),
        }
    }
    let last_packet = entries.iter().map(|e| e.last_arrival_us).max();
    let stopped = events.iter().rev().find_map(|e| match e.what {
        EventKind::Stopped { .. } => Some(e.at_us),
        _ => None,
    });
    // The stop, or after an interruption the last sealed packet; never before either.
    out.end_us = stopped
        .max(last_packet)
        .unwrap_or(info.created_us)
        .max(info.created_us);
    let total = (out.end_us - out.start_us) * 48 / 1000;

    let derived = dir.join(DERIVED_DIR);
    if derived.exists() {
        std::fs::remove_dir_all(&derived)?;
    }
    std::fs::create_dir_all(&derived)?;
    let comment = |t: &str| vec![format!("TITLE={t}"), format!("RECORDING={}", info.id)];

    for (name, t) in tracks.iter().filter(|(_, t)| !t.files.is_empty()) {
        if t.kind == "audio" && t.codec.ends_with("opus") {
            let file = format!("{DERIVED_DIR}/{name}.opus");
            let writer = ogg::OggOpusWriter::new(
                BufWriter::new(File::create(dir.join(&file))?),
                serial_of(name),
                1,
                0,
                &comment(name),
            )?;
            let (w, dropped) = ogg_track(dir, t, out.start_us, writer)?;
            finish_file(w)?;
            if dropped > 0 {
                out.notes.push(format!(
                    "{file}: {dropped} packets out of time order or unreadable left out"
                ));
            }
            out.files.push(describe(
                dir,
                file,
                "audio",
                Some(&t.identity),
                vec![name.clone()],
                "the captured Opus packets, unchanged, in Ogg pages; granule positions from RTP time on the session clock",
            )?);
        } else if t.kind == "video" && t.codec.ends_with("vp8") {
            let audio = tracks.iter().find(|(_, a)| {
                a.identity == t.identity
                    && a.kind == "audio"
                    && a.codec.ends_with("opus")
                    && !a.files.is_empty()
            });
            let file = format!("{DERIVED_DIR}/{name}.webm");
            match webm_track(dir, &file, t, audio.map(|(_, a)| a), &out, name)? {
                Some(dropped) => {
                    if dropped > 0 {
                        out.notes.push(format!(
                            "{file}: {dropped} video frames with lost packets left out (up to the next keyframe)"
                        ));
                    }
                    let mut sources = vec![name.clone()];
                    sources.extend(audio.map(|(n, _)| n.clone()));
                    out.files.push(describe(
                        dir,
                        file,
                        "video",
                        Some(&t.identity),
                        sources,
                        "VP8 frames reassembled from the captured packets (frames with lost packets dropped until the next keyframe), with the publisher's Opus audio, in WebM; times on the session clock",
                    )?);
                }
                None => out.notes.push(format!(
                    "{name}: no VP8 keyframe was captured; no video file"
                )),
            }
        } else {
            out.notes.push(format!(
                "{name}: {} {} is kept as captured; no playable file is derived for it",
                t.kind, t.codec
            ));
        }
    }

    let speakers: Vec<(&String, &TrackMeta)> = tracks
        .iter()
        .filter(|(_, t)| t.kind == "audio" && t.codec.ends_with("opus") && !t.files.is_empty())
        .collect();
    let mut voices = Vec::new();
    for (_, t) in &speakers {
        voices.push(mix::Voice::new(
            TrackReader::new(dir, t.files.clone()),
            Timeline::new(out.start_us, 48_000),
        )?);
    }
    let file = format!("{DERIVED_DIR}/mixed.opus");
    let (w, stats) = mix::mix(
        voices,
        total,
        BufWriter::new(File::create(dir.join(&file))?),
        &comment("mixed"),
    )?;
    finish_file(w)?;
    if stats.concealed_samples > 0 {
        out.notes.push(format!(
            "{file}: {:.2} s of lost audio concealed (Opus FEC/PLC)",
            stats.concealed_samples as f64 / 48_000.0
        ));
    }
    if stats.undecodable > 0 {
        out.notes.push(format!(
            "{file}: {} packets would not decode and were left out",
            stats.undecodable
        ));
    }
    out.files.push(describe(
        dir,
        file,
        "mixed",
        None,
        speakers.iter().map(|(n, _)| (*n).clone()).collect(),
        "every audio track decoded with libopus onto the session clock (lost packets concealed with FEC/PLC for up to 200 ms, silence otherwise), summed, re-encoded as mono Opus (CELT, 32 kbit/s) from the recording's start to its end",
    )?);
    Ok(out)
}

fn serial_of(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn finish_file(w: BufWriter<File>) -> std::io::Result<()> {
    w.into_inner().map_err(|e| e.into_error())?.sync_all()
}

/// Copies a track's packets into Ogg; returns the writer and how many packets were dropped.
fn ogg_track(
    dir: &Path,
    t: &TrackMeta,
    start_us: u64,
    mut writer: ogg::OggOpusWriter<BufWriter<File>>,
) -> Result<(BufWriter<File>, u64), DeriveError> {
    let mut reader = TrackReader::new(dir, t.files.clone());
    let mut timeline = Timeline::new(start_us, t.clock_rate);
    let mut dropped = 0;
    while let Some(r) = reader.next()? {
        let pos = timeline.place(r.arrival_us, r.rtp_time);
        let written = match ogg::opus_samples(&r.payload) {
            Some(n) => writer.packet(&r.payload, pos + u64::from(n))?,
            None => false,
        };
        dropped += u64::from(!written);
    }
    Ok((writer.finish()?, dropped))
}

/// Writes a video track (and its publisher's audio) as WebM; `None` if it has no keyframe.
fn webm_track(
    dir: &Path,
    file: &str,
    video: &TrackMeta,
    audio: Option<&TrackMeta>,
    d: &Derivation,
    title: &str,
) -> Result<Option<u64>, DeriveError> {
    // The picture size comes from the first keyframe, needed before any frame is written.
    let mut size = None;
    let mut scan = TrackReader::new(dir, video.files.clone());
    let mut assembler = vp8::Assembler::waiting_for_keyframe();
    while let Some(r) = scan.next()? {
        if let Some(f) = assembler.push(&r)
            && f.keyframe
        {
            size = vp8::keyframe_size(&f.data);
            break;
        }
    }
    let Some(size) = size else { return Ok(None) };
    let webm_audio = audio.map(|_| webm::AudioTrack {
        opus_head: ogg::opus_head(1, 0, 48_000),
        channels: 1,
    });
    let mut w = webm::WebmWriter::create(
        File::create(dir.join(file))?,
        size,
        webm_audio,
        d.start_us,
        title,
    )?;
    let mut frames = TrackReader::new(dir, video.files.clone());
    let mut assembler = vp8::Assembler::waiting_for_keyframe();
    let mut video_clock = Timeline::new(d.start_us, video.clock_rate);
    let mut sounds = audio.map(|a| {
        (
            TrackReader::new(dir, a.files.clone()),
            Timeline::new(d.start_us, a.clock_rate),
        )
    });
    let mut next_frame: Option<(u64, vp8::Frame)> = None;
    let mut next_sound: Option<(u64, Vec<u8>)> = None;
    let mut video_done = false;
    loop {
        while next_frame.is_none() && !video_done {
            match frames.next()? {
                Some(r) => {
                    if let Some(f) = assembler.push(&r) {
                        let ms = video_clock.place(f.arrival_us, f.rtp_time) * 1000
                            / u64::from(video.clock_rate.max(1));
                        next_frame = Some((ms, f));
                    }
                }
                None => video_done = true,
            }
        }
        if next_sound.is_none()
            && let Some((reader, clock)) = sounds.as_mut()
        {
            match reader.next()? {
                Some(r) => {
                    let ms = clock.place(r.arrival_us, r.rtp_time) * 1000 / 48_000;
                    next_sound = Some((ms, r.payload));
                }
                None => sounds = None,
            }
        }
        let video_first = match (&next_frame, &next_sound) {
            (Some((v, _)), Some((a, _))) => v <= a,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if video_first {
            if let Some((ms, f)) = next_frame.take() {
                w.frame(1, ms, f.keyframe, &f.data)?;
            }
        } else if let Some((ms, data)) = next_sound.take() {
            w.frame(2, ms, true, &data)?;
        }
    }
    w.finish((d.end_us - d.start_us) / 1000)?;
    Ok(Some(assembler.dropped))
}

fn describe(
    dir: &Path,
    file: String,
    kind: &str,
    identity: Option<&String>,
    tracks: Vec<String>,
    how: &str,
) -> Result<DerivedFile, DeriveError> {
    let (bytes, sha256) = hash_file(&dir.join(&file))?;
    Ok(DerivedFile {
        file,
        kind: kind.into(),
        identity: identity.cloned(),
        tracks,
        bytes,
        sha256,
        how: how.into(),
    })
}

/// Length and SHA-256 of a file, streamed.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut f = File::open(path)?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex(ctx.finish().as_ref())))
}

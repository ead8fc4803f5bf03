//! `verify`: recompute a recording's chain from its files and say exactly what does not match.
//!
//! Checked: every entry's hash and its link to the previous one; every sealed segment's size,
//! SHA-256 and — when they differ — which blocks, reported as byte ranges; that no sealed
//! segment is missing from the chain; every checkpoint's signature, signer (the key in
//! `recording.json`) and the head it signs; that the whole chain is covered by a signed
//! checkpoint or by the signed manifest; and, once the recording is finished, the manifest's
//! signature, the chain and events it names, and every derived file's hash. Unsealed `*.open`
//! segments (a crash mid-segment) are noted, not evidence.

use std::fmt;
use std::path::Path;

use crate::capture::{RECORDING_FILE, RecordingInfo};
use crate::chain::{self, CHAIN_FILE, CHECKPOINT_FILE, Checkpoint, Entry, GENESIS};
use crate::derive::{DERIVED_DIR, hash_file};
use crate::digest::sha256_hex;
use crate::events::read_events;
use crate::manifest::{MANIFEST_FILE, Manifest};

/// Something that does not match. Fields: `index` is a chain entry's index, `position` a
/// checkpoint's line (from 0), `file` a path relative to the recording directory.
#[allow(missing_docs)] // the fields are those three, and sizes and byte ranges named as such
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A file of the recording cannot be read or parsed.
    Unreadable { file: String, error: String },
    /// A line of the chain or checkpoints that is not a valid record.
    BadLine {
        file: String,
        line: usize,
        error: String,
    },
    /// An entry whose index is not its position.
    OutOfPlace { position: u64, index: u64 },
    /// An entry whose content does not give its hash (the entry was edited).
    EntryHash { index: u64 },
    /// An entry that does not commit to the entry before it (removed, reordered, inserted).
    BrokenLink { index: u64 },
    /// A sealed segment the chain names but the disk does not have.
    MissingSegment { index: u64, file: String },
    /// A sealed segment whose length changed.
    SizeChanged {
        index: u64,
        file: String,
        expected: u64,
        actual: u64,
    },
    /// A sealed segment whose bytes changed, with the byte ranges that differ.
    ContentChanged {
        index: u64,
        file: String,
        ranges: Vec<(u64, u64)>,
    },
    /// A sealed segment on disk that the chain does not contain.
    NotInChain { file: String },
    /// A checkpoint whose signature does not verify.
    CheckpointSignature { position: usize },
    /// A checkpoint signed by another key than the recording's, or for another recording.
    CheckpointForeign { position: usize },
    /// A checkpoint that signs a head the chain does not have at its index.
    CheckpointHead { position: usize, index: u64 },
    /// Entries no valid checkpoint covers.
    Unsigned { from: u64, to: u64 },
    /// The manifest's signature does not verify (it was edited).
    ManifestSignature,
    /// The manifest is signed by another key than `recording.json` names, or is another
    /// recording's.
    ManifestForeign,
    /// The manifest names a chain of `entries` entries ending in `head`; the chain differs.
    ManifestChain { entries: u64, head: String },
    /// `events.jsonl` differs from the events the manifest signed.
    EventsChanged,
    /// A derived file the manifest lists is missing.
    DerivedMissing { file: String },
    /// A derived file's bytes differ from the manifest's hash.
    DerivedChanged {
        file: String,
        expected_bytes: u64,
        actual_bytes: u64,
    },
    /// A file in `derived/` the manifest does not list.
    DerivedNotListed { file: String },
    /// A log of a recording finished complete ends in a partly written line: no crash tore it
    /// (the manifest is written after every log is sealed), so it was cut afterwards.
    TornAfterFinish { file: String },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable { file, error } => write!(f, "{file}: cannot be read: {error}"),
            Problem::BadLine { file, line, error } => write!(f, "{file} line {line}: {error}"),
            Problem::OutOfPlace { position, index } => {
                write!(f, "chain entry {position} says it is entry {index}")
            }
            Problem::EntryHash { index } => {
                write!(
                    f,
                    "chain entry {index} was edited: its hash does not match its content"
                )
            }
            Problem::BrokenLink { index } => write!(
                f,
                "chain entry {index} does not follow entry {}: an entry was removed, inserted or reordered",
                index.saturating_sub(1)
            ),
            Problem::MissingSegment { index, file } => {
                write!(f, "segment {file} (chain entry {index}) is missing")
            }
            Problem::SizeChanged {
                index,
                file,
                expected,
                actual,
            } => write!(
                f,
                "segment {file} (chain entry {index}) is {actual} bytes, the chain says {expected}"
            ),
            Problem::ContentChanged {
                index,
                file,
                ranges,
            } => {
                write!(
                    f,
                    "segment {file} (chain entry {index}) was modified in bytes "
                )?;
                for (i, (start, end)) in ranges.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{start}..{end}")?;
                }
                Ok(())
            }
            Problem::NotInChain { file } => {
                write!(f, "segment {file} is not in the chain (added afterwards?)")
            }
            Problem::CheckpointSignature { position } => {
                write!(f, "checkpoint {position}: the signature does not verify")
            }
            Problem::CheckpointForeign { position } => write!(
                f,
                "checkpoint {position}: signed for another recording or by another key than recording.json names"
            ),
            Problem::CheckpointHead { position, index } => write!(
                f,
                "checkpoint {position}: signs a chain head the chain does not have at entry {index}"
            ),
            Problem::Unsigned { from, to } => write!(
                f,
                "chain entries {from}..={to} are not covered by a signed checkpoint"
            ),
            Problem::ManifestSignature => {
                write!(f, "manifest.json: the signature does not verify (edited)")
            }
            Problem::ManifestForeign => write!(
                f,
                "manifest.json: signed by another key than recording.json names, or for another recording"
            ),
            Problem::ManifestChain { entries, head } => write!(
                f,
                "manifest.json names a chain of {entries} entries ending in {head}; the chain on disk differs"
            ),
            Problem::EventsChanged => write!(
                f,
                "events.jsonl differs from the events the manifest signed"
            ),
            Problem::DerivedMissing { file } => write!(f, "derived file {file} is missing"),
            Problem::DerivedChanged {
                file,
                expected_bytes,
                actual_bytes,
            } => write!(
                f,
                "derived file {file} was modified: SHA-256 differs ({actual_bytes} bytes, the manifest says {expected_bytes})"
            ),
            Problem::DerivedNotListed { file } => {
                write!(f, "{file} is not in the manifest (added afterwards?)")
            }
            Problem::TornAfterFinish { file } => write!(
                f,
                "{file} ends in a partly written line although the recording was finished complete (cut afterwards?)"
            ),
        }
    }
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Report {
    /// Chain entries read.
    pub entries: usize,
    /// Checkpoints read.
    pub checkpoints: usize,
    /// The chain's head, if it has entries.
    pub head: Option<String>,
    /// Everything that does not match; empty means the recording verifies.
    pub problems: Vec<Problem>,
    /// Observations that are not failures (e.g. an unsealed segment after a crash).
    pub notes: Vec<String>,
    /// A signed manifest was found (and checked).
    pub manifest: bool,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} segments in the chain, {} checkpoints, head {}",
            self.entries,
            self.checkpoints,
            self.head.as_deref().unwrap_or("(none)")
        )?;
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        for p in &self.problems {
            writeln!(f, "MISMATCH: {p}")?;
        }
        if self.problems.is_empty() {
            writeln!(f, "verified: every segment, link and signature matches")?;
        }
        Ok(())
    }
}

/// Verifies the recording in `dir`.
pub fn verify(dir: &Path) -> Report {
    let mut report = Report::default();
    let info: Option<RecordingInfo> = std::fs::read(dir.join(RECORDING_FILE))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|error| {
            report.problems.push(Problem::Unreadable {
                file: RECORDING_FILE.into(),
                error,
            })
        })
        .ok();

    let entries = lines::<Entry>(dir, CHAIN_FILE, &mut report);
    report.entries = entries.len();
    report.head = entries.last().map(|e| e.hash.clone());
    let mut prev = GENESIS.to_string();
    for (position, e) in entries.iter().enumerate() {
        if e.index != position as u64 {
            report.problems.push(Problem::OutOfPlace {
                position: position as u64,
                index: e.index,
            });
        }
        if e.compute_hash() != e.hash {
            report.problems.push(Problem::EntryHash { index: e.index });
        }
        if e.prev != prev {
            report.problems.push(Problem::BrokenLink { index: e.index });
        }
        prev = e.hash.clone();
        check_segment(dir, e, &mut report);
    }
    find_unchained(dir, &entries, &mut report);

    let checkpoints = lines::<Checkpoint>(dir, CHECKPOINT_FILE, &mut report);
    report.checkpoints = checkpoints.len();
    let mut covered: Option<u64> = None;
    for (position, c) in checkpoints.iter().enumerate() {
        if !c.signature_valid() {
            report
                .problems
                .push(Problem::CheckpointSignature { position });
            continue;
        }
        if info
            .as_ref()
            .is_some_and(|i| i.public_key != c.public_key || i.id != c.recording)
        {
            report
                .problems
                .push(Problem::CheckpointForeign { position });
            continue;
        }
        if entries.get(c.index as usize).map(|e| &e.hash) != Some(&c.head) {
            report.problems.push(Problem::CheckpointHead {
                position,
                index: c.index,
            });
            continue;
        }
        covered = Some(covered.map_or(c.index, |k| k.max(c.index)));
    }
    // A valid manifest signs the whole chain (it names the head), after a crash too.
    if check_manifest(dir, info.as_ref(), &entries, &mut report) {
        covered = entries.len().checked_sub(1).map(|k| k as u64);
    }
    // A torn last line is a crash's mark; a recording finished complete had no crash, so there
    // the tolerance would only hide a line cut off afterwards (a checkpoint, an event).
    if Manifest::read(dir)
        .ok()
        .flatten()
        .is_some_and(|m| m.complete)
    {
        for file in [CHAIN_FILE, CHECKPOINT_FILE, crate::events::EVENTS_FILE] {
            if chain::read_lines::<serde_json::Value>(&dir.join(file)).is_ok_and(|l| l.torn_tail) {
                report
                    .problems
                    .push(Problem::TornAfterFinish { file: file.into() });
            }
        }
    }
    if let Some(last) = entries.len().checked_sub(1) {
        let from = covered.map_or(0, |k| k + 1);
        if from <= last as u64 {
            report.problems.push(Problem::Unsigned {
                from,
                to: last as u64,
            });
        }
    }
    report
}

/// The manifest's signature, the chain and events it names, and the derived files' hashes.
/// True when a valid manifest signs exactly this chain.
fn check_manifest(
    dir: &Path,
    info: Option<&RecordingInfo>,
    entries: &[Entry],
    report: &mut Report,
) -> bool {
    let manifest = match Manifest::read(dir) {
        Ok(Some(m)) => m,
        Ok(None) => {
            report.notes.push(
                "no manifest.json: the recording is still running or was interrupted (run `tiaojie recording recover`)".into(),
            );
            return false;
        }
        Err(e) => {
            report.problems.push(Problem::Unreadable {
                file: MANIFEST_FILE.into(),
                error: e.to_string(),
            });
            return false;
        }
    };
    report.manifest = true;
    let signed = manifest.signature_valid();
    if !signed {
        report.problems.push(Problem::ManifestSignature);
    }
    let ours =
        !info.is_some_and(|i| i.public_key != manifest.public_key || i.id != manifest.recording);
    if !ours {
        report.problems.push(Problem::ManifestForeign);
    }
    let head = entries.last().map_or(GENESIS, |e| e.hash.as_str());
    let same_chain = manifest.chain_entries == entries.len() as u64 && manifest.chain_head == head;
    if !same_chain {
        report.problems.push(Problem::ManifestChain {
            entries: manifest.chain_entries,
            head: manifest.chain_head.clone(),
        });
    }
    match read_events(dir) {
        Ok(events) if events == manifest.events => {}
        _ => report.problems.push(Problem::EventsChanged),
    }
    for d in &manifest.derived {
        match hash_file(&dir.join(&d.file)) {
            Err(_) => report.problems.push(Problem::DerivedMissing {
                file: d.file.clone(),
            }),
            Ok((bytes, sha)) if sha != d.sha256 => report.problems.push(Problem::DerivedChanged {
                file: d.file.clone(),
                expected_bytes: d.bytes,
                actual_bytes: bytes,
            }),
            Ok(_) => {}
        }
    }
    if let Ok(files) = std::fs::read_dir(dir.join(DERIVED_DIR)) {
        let mut extra: Vec<String> = files
            .flatten()
            .map(|f| format!("{DERIVED_DIR}/{}", f.file_name().to_string_lossy()))
            .filter(|name| !manifest.derived.iter().any(|d| &d.file == name))
            .collect();
        extra.sort();
        for file in extra {
            report.problems.push(Problem::DerivedNotListed { file });
        }
    }
    signed && ours && same_chain
}

fn lines<T: for<'de> serde::Deserialize<'de>>(
    dir: &Path,
    name: &str,
    report: &mut Report,
) -> Vec<T> {
    match chain::read_lines::<T>(&dir.join(name)) {
        Ok(l) => {
            for (line, error) in l.bad {
                report.problems.push(Problem::BadLine {
                    file: name.into(),
                    line,
                    error,
                });
            }
            if l.torn_tail {
                report.notes.push(format!(
                    "{name} ends in a partly written line (a crash while writing it); ignored"
                ));
            }
            l.values
        }
        Err(e) => {
            report.problems.push(Problem::Unreadable {
                file: name.into(),
                error: e.to_string(),
            });
            Vec::new()
        }
    }
}

fn check_segment(dir: &Path, e: &Entry, report: &mut Report) {
    let data = match std::fs::read(dir.join(&e.file)) {
        Ok(d) => d,
        Err(_) => {
            report.problems.push(Problem::MissingSegment {
                index: e.index,
                file: e.file.clone(),
            });
            return;
        }
    };
    if data.len() as u64 != e.bytes {
        report.problems.push(Problem::SizeChanged {
            index: e.index,
            file: e.file.clone(),
            expected: e.bytes,
            actual: data.len() as u64,
        });
    }
    if sha256_hex(&data) == e.sha256 {
        return;
    }
    // Locate the change block by block, merging neighbours into ranges.
    let block = e.block_size.max(1) as usize;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let blocks = data.len().div_ceil(block).max(e.blocks.len());
    for i in 0..blocks {
        let start = i * block;
        let chunk = data
            .get(start..(start + block).min(data.len()))
            .unwrap_or(&[]);
        let differs = e.blocks.get(i) != Some(&sha256_hex(chunk)) || chunk.is_empty();
        if differs {
            // A range ends at the file's end, or at the end the chain recorded if it was cut.
            let end = (start + block).min(data.len().max(e.bytes as usize)) as u64;
            let s = start as u64;
            match ranges.last_mut() {
                Some(last) if last.1 == s => last.1 = end,
                _ => ranges.push((s, end)),
            }
        }
    }
    report.problems.push(Problem::ContentChanged {
        index: e.index,
        file: e.file.clone(),
        ranges,
    });
}

fn find_unchained(dir: &Path, entries: &[Entry], report: &mut Report) {
    let Ok(tracks) = std::fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<String> = Vec::new();
    for track in tracks
        .flatten()
        .filter(|t| t.path().is_dir() && t.file_name() != DERIVED_DIR)
    {
        let Ok(files) = std::fs::read_dir(track.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = format!(
                "{}/{}",
                track.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            if name.ends_with(".seg.open") {
                report.notes.push(format!(
                    "{name} was being written when capture stopped (never sealed, not part of the record)"
                ));
            } else if name.ends_with(".seg") {
                found.push(name);
            }
        }
    }
    found.sort();
    for name in found {
        if !entries.iter().any(|e| e.file == name) {
            report.problems.push(Problem::NotInChain { file: name });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureConfig;
    use crate::capture::tests::{packet, start, temp_dir};
    use crate::digest::SigningKey;
    use std::path::PathBuf;
    use std::time::Duration;

    fn recorded(name: &str) -> PathBuf {
        let dir = temp_dir(name);
        let config = CaptureConfig {
            segment_bytes: 3_000,
            segment_age: Duration::from_secs(60),
            checkpoint_every: 3,
            block_size: 1024,
        };
        let mut r = start(&dir, config);
        let payload: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
        for i in 0..80u64 {
            let track = if i % 2 == 0 { "a-audio" } else { "b-audio" };
            r.write(&packet(track, i, &payload)).expect("write");
        }
        r.finish().expect("finish");
        dir
    }

    #[test]
    fn an_untouched_recording_verifies() {
        let dir = recorded("clean");
        let report = verify(&dir);
        assert!(report.problems.is_empty(), "{report}");
        assert!(report.entries >= 4);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn any_one_byte_change_in_a_segment_is_caught_with_its_range() {
        let dir = recorded("byte");
        let file = dir.join("b-audio/000002.seg");
        let mut data = std::fs::read(&file).expect("segment");
        data[1500] ^= 0x01;
        std::fs::write(&file, &data).expect("tamper");
        let report = verify(&dir);
        assert_eq!(
            report.problems,
            vec![Problem::ContentChanged {
                index: report_index(&dir, "b-audio/000002.seg"),
                file: "b-audio/000002.seg".into(),
                ranges: vec![(1024, 2048)],
            }],
            "{report}"
        );
        assert!(report.to_string().contains("modified in bytes 1024..2048"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn report_index(dir: &Path, file: &str) -> u64 {
        lines::<Entry>(dir, CHAIN_FILE, &mut Report::default())
            .iter()
            .find(|e| e.file == file)
            .map(|e| e.index)
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn truncation_deletion_insertion_and_edits_are_each_named() {
        let dir = recorded("kinds");
        // A truncated segment.
        let seg = dir.join("a-audio/000001.seg");
        let data = std::fs::read(&seg).expect("segment");
        std::fs::write(&seg, &data[..data.len() - 10]).expect("truncate");
        // A deleted segment.
        std::fs::remove_file(dir.join("b-audio/000001.seg")).expect("delete");
        // A segment slipped in.
        std::fs::write(dir.join("a-audio/000099.seg"), b"TJSEG1\n").expect("insert");
        let problems = verify(&dir).problems;
        assert!(
            problems.iter().any(
                |p| matches!(p, Problem::SizeChanged { file, .. } if file == "a-audio/000001.seg")
            ),
            "{problems:?}"
        );
        assert!(problems.iter().any(
            |p| matches!(p, Problem::MissingSegment { file, .. } if file == "b-audio/000001.seg")
        ));
        assert!(problems.contains(&Problem::NotInChain {
            file: "a-audio/000099.seg".into()
        }));

        // An edited chain entry (a segment's hash replaced to match a forged file).
        let dir2 = recorded("edit");
        let chain_path = dir2.join(CHAIN_FILE);
        let text = std::fs::read_to_string(&chain_path).expect("chain");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let mut e: Entry = serde_json::from_str(&lines[1]).expect("entry");
        e.packets += 1;
        lines[1] = serde_json::to_string(&e).expect("json");
        std::fs::write(&chain_path, lines.join("\n") + "\n").expect("write");
        assert!(
            verify(&dir2)
                .problems
                .contains(&Problem::EntryHash { index: 1 })
        );
        // Re-hashing the edited entry does not help: the next link breaks.
        e.hash = e.compute_hash();
        lines[1] = serde_json::to_string(&e).expect("json");
        std::fs::write(&chain_path, lines.join("\n") + "\n").expect("write");
        let problems = verify(&dir2).problems;
        assert!(
            problems.contains(&Problem::BrokenLink { index: 2 }),
            "{problems:?}"
        );
        // Dropping the last entries leaves checkpoints pointing past the chain.
        std::fs::write(&chain_path, lines[..1].join("\n") + "\n").expect("write");
        let problems = verify(&dir2).problems;
        assert!(
            problems
                .iter()
                .any(|p| matches!(p, Problem::CheckpointHead { .. })),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| matches!(p, Problem::NotInChain { .. }))
        );
        for d in [dir, dir2] {
            let _ = std::fs::remove_dir_all(&d);
        }
    }

    #[test]
    fn a_forged_or_foreign_checkpoint_is_refused() {
        let dir = recorded("sig");
        let path = dir.join(CHECKPOINT_FILE);
        let text = std::fs::read_to_string(&path).expect("checkpoints");
        let mut c: Checkpoint =
            serde_json::from_str(text.lines().last().unwrap_or("")).expect("cp");
        // Signed by someone else's key: valid signature, wrong signer.
        let (other, _) = SigningKey::generate().expect("key");
        let foreign = Checkpoint::signed(&c.recording, c.index, &c.head, c.at_us, &other);
        c.signature = foreign.signature.clone();
        let mut out = text.clone();
        out.push_str(&serde_json::to_string(&c).expect("json"));
        out.push('\n');
        out.push_str(&serde_json::to_string(&foreign).expect("json"));
        out.push('\n');
        std::fs::write(&path, out).expect("write");
        let problems = verify(&dir).problems;
        let n = text.lines().count();
        assert!(
            problems.contains(&Problem::CheckpointSignature { position: n }),
            "{problems:?}"
        );
        assert!(problems.contains(&Problem::CheckpointForeign { position: n + 1 }));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn after_a_crash_sealed_segments_verify_up_to_the_last_checkpoint() {
        // A recording killed mid-way: no finish, an open segment left, the tail unsigned.
        let dir = temp_dir("crash");
        let config = CaptureConfig {
            segment_bytes: 1_000,
            segment_age: Duration::from_secs(60),
            checkpoint_every: 2,
            block_size: 256,
        };
        let mut r = start(&dir, config);
        for i in 0..35u64 {
            r.write(&packet("a-audio", i, &[1u8; 100])).expect("write");
        }
        drop(r); // killed: nothing sealed beyond what the size limit sealed
        let report = verify(&dir);
        assert!(
            report.notes.iter().any(|n| n.contains(".seg.open")),
            "{report}"
        );
        assert!(
            report
                .problems
                .iter()
                .all(|p| matches!(p, Problem::Unsigned { .. })),
            "only the unsigned tail may be reported: {report}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

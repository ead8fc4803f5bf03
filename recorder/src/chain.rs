//! The hash chain of sealed segments (`chain.jsonl`) and its signed checkpoints
//! (`checkpoints.jsonl`), one JSON object per line, each line fsynced when written.
//!
//! An entry's `hash` is the SHA-256 of the entry serialised with `hash` empty (field order is
//! the struct's, so the serialisation is canonical); `prev` is the previous entry's hash (64
//! zeros for the first). Changing, removing or reordering any entry breaks every later link.
//! A checkpoint signs (recording id, entry index, head hash, time) with the server's key.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::digest::{SigningKey, sha256_hex, signature_valid};

pub(crate) const CHAIN_FILE: &str = "chain.jsonl";
pub(crate) const CHECKPOINT_FILE: &str = "checkpoints.jsonl";
/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One sealed segment in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Position in the chain, from 0.
    pub index: u64,
    /// The track the segment belongs to (its directory).
    pub track: String,
    /// The segment file, relative to the recording directory.
    pub file: String,
    /// Its length.
    pub bytes: u64,
    /// SHA-256 of the whole file (hex).
    pub sha256: String,
    /// Size of the blocks hashed one by one, so a change can be located.
    pub block_size: u64,
    /// SHA-256 of each block, in order (hex).
    pub blocks: Vec<String>,
    /// Packets in the segment.
    pub packets: u64,
    /// Wall-clock arrival of its first and last packet, µs since the Unix epoch.
    pub first_arrival_us: u64,
    /// See `first_arrival_us`.
    pub last_arrival_us: u64,
    /// The previous entry's hash.
    pub prev: String,
    /// This entry's hash.
    pub hash: String,
}

impl Entry {
    /// The hash this entry should carry.
    pub fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        // Serialising a plain struct of strings and integers cannot fail.
        sha256_hex(&serde_json::to_vec(&unhashed).unwrap_or_default())
    }
}

/// A signed statement that the chain up to `index` has head `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The recording's id.
    pub recording: String,
    /// The last entry covered.
    pub index: u64,
    /// That entry's hash.
    pub head: String,
    /// When it was signed, µs since the Unix epoch.
    pub at_us: u64,
    /// The signer's Ed25519 public key (base64).
    pub public_key: String,
    /// Ed25519 signature of [`Checkpoint::message`] (base64).
    pub signature: String,
}

impl Checkpoint {
    /// What is signed.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "tiaojie recording checkpoint v1\n{}\n{}\n{}\n{}\n",
            self.recording, self.index, self.head, self.at_us
        )
        .into_bytes()
    }

    pub(crate) fn signed(
        recording: &str,
        index: u64,
        head: &str,
        at_us: u64,
        key: &SigningKey,
    ) -> Checkpoint {
        let mut c = Checkpoint {
            recording: recording.to_string(),
            index,
            head: head.to_string(),
            at_us,
            public_key: key.public_b64(),
            signature: String::new(),
        };
        c.signature = key.sign_b64(&c.message());
        c
    }

    /// Whether the signature is the public key's over this checkpoint.
    pub fn signature_valid(&self) -> bool {
        signature_valid(&self.public_key, &self.message(), &self.signature)
    }
}

/// Appends one JSON line and fsyncs it.
pub(crate) fn append_line<T: Serialize>(file: &mut File, value: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_data()
}

pub(crate) fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The lines of a JSON-lines file: parsed values, and for each line that does not parse, its
/// number and error. A last line without its newline (a crash while writing it) is reported
/// as torn, not as a value.
pub(crate) struct Lines<T> {
    pub values: Vec<T>,
    pub bad: Vec<(usize, String)>,
    pub torn_tail: bool,
}

pub(crate) fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Lines<T>> {
    let mut out = Lines {
        values: Vec::new(),
        bad: Vec::new(),
        torn_tail: false,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            out.torn_tail = true;
            break;
        }
        match serde_json::from_slice::<T>(&line) {
            Ok(v) => out.values.push(v),
            Err(e) => out.bad.push((number, e.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, prev: &str) -> Entry {
        let mut e = Entry {
            index,
            track: "a".into(),
            file: format!("a/{index:06}.seg"),
            bytes: 10,
            sha256: "00".into(),
            block_size: 65536,
            blocks: vec!["00".into()],
            packets: 1,
            first_arrival_us: 1,
            last_arrival_us: 2,
            prev: prev.into(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    #[test]
    fn an_entry_hash_covers_every_field() {
        let e = entry(0, GENESIS);
        let mut changed = e.clone();
        changed.packets = 2;
        assert_ne!(changed.compute_hash(), e.hash);
        let next = entry(1, &e.hash);
        assert_ne!(next.hash, e.hash);
        assert_eq!(next.compute_hash(), next.hash);
    }

    #[test]
    fn checkpoints_verify_and_refuse_changes() {
        let (key, _) = SigningKey::generate().expect("key");
        let c = Checkpoint::signed("rec-1", 4, "abcd", 99, &key);
        assert!(c.signature_valid());
        let mut moved = c.clone();
        moved.index = 5;
        assert!(!moved.signature_valid());
        let mut other = c.clone();
        other.head = "abce".into();
        assert!(!other.signature_valid());
    }

    #[test]
    fn a_torn_last_line_is_told_apart_from_a_bad_line() {
        let dir = std::env::temp_dir().join(format!("tiaojie-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("x.jsonl");
        std::fs::write(&path, b"{\"a\":1}\nnot json\n{\"a\":3}\n{\"a\":").expect("write");
        let lines: Lines<serde_json::Value> = read_lines(&path).expect("read");
        assert_eq!(lines.values.len(), 2);
        assert_eq!(lines.bad.len(), 1);
        assert_eq!(lines.bad[0].0, 2);
        assert!(lines.torn_tail);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

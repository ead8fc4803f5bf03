//! tiaojie's recorder: what turns the media tap's packets into evidence.
//!
//! Map of the crate (arrows point one way: `capture` and `verify` → `chain` → `digest`):
//! - [`capture`]: per-track, append-only capture in segments. A segment is written as
//!   `*.open`, and *sealed* when it reaches its size or age: flushed, fsynced, renamed, its
//!   directory fsynced, and only then entered in the chain — so a killed server loses at most
//!   the open segment, and everything in the chain is on disk.
//! - [`chain`]: the hash chain (`chain.jsonl`): each sealed segment's SHA-256 and per-block
//!   hashes, each entry committing to the previous entry's hash; signed checkpoints
//!   (`checkpoints.jsonl`, Ed25519 with the server's key) at intervals and when capture stops.
//! - [`verify`]: recomputes everything from the files and says exactly what does not match:
//!   which segment, which byte range, which link or signature.
//! - `digest`: SHA-256, hex, and the Ed25519 key the recorder signs with.
//!
//! Not here yet (issue 5 continues): the derived files (Ogg/Opus, WebM, the mixed track), the
//! final manifest with participants and consent events, and the wiring to the media tap.

pub mod capture;
pub mod chain;
pub mod verify;

mod digest;

pub use capture::{CaptureConfig, Packet, RecorderError, Recording};
pub use chain::{Checkpoint, Entry};
pub use digest::SigningKey;
pub use verify::{Problem, Report, verify};

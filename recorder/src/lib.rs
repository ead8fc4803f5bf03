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
//! - [`events`]: the event log (`events.jsonl`): start, pause, stop, presence, tracks,
//!   interruptions.
//! - [`derive`]: the playable files made from the sealed segments — Ogg/Opus per audio track,
//!   WebM per VP8 video track with its publisher's audio, and one mixed Opus track.
//! - [`manifest`]: the final signed manifest: events, chain head, derived files and hashes.
//! - [`verify`]: recomputes everything from the files and says exactly what does not match:
//!   which segment, which byte range, which link, signature or derived file.
//! - `digest`: SHA-256, hex, and the Ed25519 key the recorder signs with.
//! - `clock`: wall-clock microseconds.
//!
//! Arrows: `manifest` → `derive` → `events`, `chain`; `verify` → `manifest`, `chain`.
//! The crate knows nothing of the SFU or the server: the server turns tap packets into
//! [`Packet`]s and room changes into [`EventKind`]s.

pub mod capture;
pub mod chain;
pub mod derive;
pub mod events;
pub mod manifest;
pub mod verify;

mod clock;
mod digest;

pub use capture::{CaptureConfig, Packet, RecorderError, Recording, RecordingInfo};
pub use chain::{Checkpoint, Entry};
pub use derive::{Derivation, DeriveError, DerivedFile};
pub use digest::SigningKey;
pub use events::{EventKind, RecordingEvent, append_event, read_events};
pub use manifest::{Manifest, finalize, recover};
pub use verify::{Problem, Report, verify};

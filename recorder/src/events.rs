//! The recording's event log (`events.jsonl`): what happened to the recording and around it —
//! start, pause, resume, stop, who was present and whether they were recorded, each track as
//! it appeared, every interruption — one JSON line each, fsynced as it is written. The final
//! manifest carries the whole log under the server's signature.

use serde::{Deserialize, Serialize};

pub(crate) const EVENTS_FILE: &str = "events.jsonl";

/// One event, with its wall-clock time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingEvent {
    /// When, µs since the Unix epoch.
    pub at_us: u64,
    /// What.
    #[serde(flatten)]
    pub what: EventKind,
}

/// What happened.
#[allow(missing_docs)] // fields are named for what they hold
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// Recording started in `room`, in `mode` (`audio` or `audio_video`), by `by` (an identity).
    Started {
        room: String,
        mode: String,
        by: String,
        /// Whether private rooms (背对背) are recorded too.
        private_rooms: bool,
    },
    /// Capture paused: nothing is written until `resumed`.
    Paused { by: String },
    /// Capture resumed.
    Resumed { by: String },
    /// Recording stopped.
    Stopped { by: String, reason: String },
    /// Someone is present (on start, on joining, on moving between spaces); `recorded` says
    /// whether their media is captured where they now are.
    Present {
        identity: String,
        name: String,
        role: String,
        space: String,
        recorded: bool,
    },
    /// Someone left the room.
    Left { identity: String },
    /// A track appeared: `track` is its directory.
    Track {
        track: String,
        identity: String,
        kind: String,
        codec: String,
        clock_rate: u32,
    },
    /// Media that should have been captured was not: `cause` is `tap_overflow` (the recorder
    /// fell behind and the tap dropped `packets`), `publisher_gap` (`packets` never arrived
    /// on `track`), or `server_restart` (capture ended without a stop; sealed segments kept).
    Interruption {
        cause: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track: Option<String>,
        packets: u64,
        detail: String,
    },
}

/// The events of a recording directory, oldest first (a torn last line is ignored).
pub fn read_events(dir: &std::path::Path) -> std::io::Result<Vec<RecordingEvent>> {
    Ok(crate::chain::read_lines::<RecordingEvent>(&dir.join(EVENTS_FILE))?.values)
}

/// Appends one event to a recording directory's log (fsynced): for recovery, when no
/// [`crate::Recording`] is open on it any more.
pub fn append_event(dir: &std::path::Path, what: EventKind) -> std::io::Result<()> {
    let mut file = crate::chain::open_append(&dir.join(EVENTS_FILE))?;
    crate::chain::append_line(
        &mut file,
        &RecordingEvent {
            at_us: crate::clock::now_us(),
            what,
        },
    )
}

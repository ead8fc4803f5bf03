//! tiaojie's live-session layer and its WebSocket edge: the signaling protocol, one connection's
//! task, live rooms (presence, resume, moderation, chat, private rooms) and their bridges to the
//! SFU and the recorder, tokens, and the counters behind `/metrics`. The HTTP server, the
//! control API and the `tiaojie` binary are `tiaojie-server`, which drives this crate.
//!
//! Map of the crate (every module imports only modules listed after it):
//! - [`ws`]: one WebSocket connection's task: rate limit, size limit, parse, dispatch, write.
//! - The hub's parts, each adding operations to [`hub::Hub`] — where a rule decides, a pure
//!   function of the room's state decides it, and the act follows under the same hold of the
//!   room: [`entry`] (join and resume: where someone comes in, a full room, a resumable
//!   session), [`chat`] (who may be written to, who reads it), [`grants`] (an admin replaces
//!   someone's grants), [`moderation`] (mute, remove, move, readmit, each with its audit entry),
//!   [`media`] (the bridge to the media plane: standings, SDP and candidates in, server offers /
//!   speaker / lost media out), [`recorder_bridge`] (`record` requests, the room's recording
//!   policy, `recording.updated`), [`case_news`] (a case's changes announced to its live rooms
//!   and followers).
//! - [`hub`]: every live room and the operations on them (authenticate, leave, self-mute,
//!   close, shutdown, and the helpers its parts share); keeps rooms' order of events and the
//!   database in step.
//! - [`live_room`]: one room's in-memory state; delivery that never blocks; resume buffers.
//! - [`media_plane`]: the port the hub drives the media plane through, implemented by the SFU
//!   (`tiaojie-media`) and, in unit tests, by a fake that records what it was told (`testing`,
//!   with a hub over a temporary store).
//! - [`recording`]: the server's recorder (`tiaojie-recorder`): the signing key, each recorded
//!   room's capture thread fed by the media tap, listing/deleting recordings, crash recovery.
//! - [`metrics`]: the counters behind `/metrics`.
//! - [`token`]: JWT join/admin tokens (HS256 or EdDSA), with a distinct error per failure.
//! - [`protocol`]: the signaling protocol's messages and error codes (`docs/protocol.md`).
//! - [`rate_limit`], [`ids`]: small helpers.

pub mod case_news;
pub mod chat;
pub mod entry;
pub mod grants;
pub mod hub;
pub mod ids;
pub mod live_room;
pub mod media;
pub mod media_plane;
pub mod metrics;
pub mod moderation;
pub mod protocol;
pub mod rate_limit;
pub mod recorder_bridge;
pub mod recording;
#[cfg(test)]
mod testing;
pub mod token;
pub mod ws;

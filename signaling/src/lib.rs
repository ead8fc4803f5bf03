//! tiaojie's edge: HTTP, WebSocket signaling, the control API, and the server's lifecycle.
//!
//! Map of the crate (dependencies point down the list, never up):
//! - [`app`]: the axum router (`/ws`, `/api/*`, `/healthz`, `/metrics`, the web client) and
//!   [`app::Server`], which starts everything on embedded defaults and shuts it down gracefully.
//! - [`listener`]: accepting connections: header timeout, per-address limits, the descriptor
//!   limit, graceful shutdown of HTTP connections.
//! - [`web`]: the browser client from `web-client/`, embedded in the binary.
//! - [`api`]: the REST control API for admins, with its OpenAPI document generated from code.
//! - [`ws`]: one WebSocket connection's task: rate limit, size limit, parse, dispatch, write.
//! - [`hub`]: every live room and the operations on them (join, resume, leave, chat, mute,
//!   remove, close, shutdown); keeps rooms' order of events and the database in step.
//! - [`media`]: the hub's bridge to the SFU (`tiaojie-media`): standings (lobby, joint, private
//!   rooms, moderator blocks), SDP and candidates in, server offers / speaker / lost media out.
//! - [`recorder_bridge`]: the hub's bridge to the recorder: `record` requests, the room's
//!   recording policy, `recording.updated` to everyone.
//! - [`recording`]: the server's recorder (`tiaojie-recorder`): the signing key, each recorded
//!   room's capture thread fed by the media tap, listing/deleting recordings, crash recovery.
//! - [`recordings_api`]: the control API's recordings endpoints: by role, every read audited.
//! - [`cases_api`]: the mediation workflow's API (cases, sessions, checks, private rooms,
//!   minutes, agreement, signatures, outcome, time limits, ratings), every request checked
//!   against the permission matrix and audited; changes announced to the session's room.
//! - [`documents`]: the case's court documents as PDF (调解协议书, 调解笔录): what each says,
//!   from the case, for `tiaojie-documents` to set.
//! - [`court_link`]: the court bridge's WebSocket (`/confirmation/bridge`): key proof, leased
//!   outbox deliveries and acknowledgements out, the court's updates in (applied once each).
//! - [`live_room`]: one room's in-memory state; delivery that never blocks; resume buffers.
//! - [`protocol`]: the signaling protocol's messages and error codes (`docs/protocol.md`).
//! - [`token`]: JWT join/admin tokens (HS256 or EdDSA), with a distinct error per failure.
//! - [`rate_limit`], [`metrics`], [`ids`]: small helpers for the above.
//!
//! The `tiaojie` binary (`src/main.rs`) parses the command line and wires config, storage and
//! this crate together; nothing else does.

pub mod api;
pub mod app;
pub mod cases_api;
pub mod court_link;
pub mod documents;
pub mod hub;
pub mod ids;
pub mod listener;
pub mod live_room;
pub mod media;
pub mod metrics;
pub mod protocol;
pub mod rate_limit;
pub mod recorder_bridge;
pub mod recording;
pub mod recordings_api;
pub mod token;
pub mod web;
pub mod ws;

pub use app::{Server, StartError};

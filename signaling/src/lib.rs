//! tiaojie's edge: HTTP, WebSocket signaling, the control API, and the server's lifecycle.
//!
//! Map of the crate (every module imports only modules listed after it):
//! - [`app`]: the axum router (`/ws`, `/api/*`, `/healthz`, `/metrics`, the web client) and
//!   [`app::Server`], which starts everything on embedded defaults and shuts it down gracefully.
//! - [`listener`]: accepting connections: header timeout, per-address limits, the descriptor
//!   limit, graceful shutdown of HTTP connections.
//! - [`web`]: the browser client from `web-client/`, embedded in the binary.
//! - [`api`]: the REST control API, one module per resource (rooms and tokens, recordings and
//!   the audit log, the mediation workflow's cases), its error shape and extractors, and its
//!   OpenAPI document generated from code. Handlers reach live rooms through the hub only.
//! - [`court_link`]: the court bridge's WebSocket (`/confirmation/bridge`): key proof, leased
//!   outbox deliveries and acknowledgements out, the court's updates in (applied once each).
//! - [`state`]: what every handler reaches ([`state::AppState`]) and the court link's state.
//! - [`ws`]: one WebSocket connection's task: rate limit, size limit, parse, dispatch, write.
//! - The hub's parts, each adding operations to [`hub::Hub`]: [`media`] (the bridge to the SFU,
//!   `tiaojie-media`: standings, SDP and candidates in, server offers / speaker / lost media
//!   out), [`recorder_bridge`] (`record` requests, the room's recording policy,
//!   `recording.updated`), [`case_news`] (a case's changes announced to its live rooms and
//!   followers).
//! - [`hub`]: every live room and the operations on them (join, resume, leave, chat, mute,
//!   remove, close, shutdown); keeps rooms' order of events and the database in step.
//! - [`live_room`]: one room's in-memory state; delivery that never blocks; resume buffers.
//! - [`recording`]: the server's recorder (`tiaojie-recorder`): the signing key, each recorded
//!   room's capture thread fed by the media tap, listing/deleting recordings, crash recovery.
//! - [`documents`]: the case's court documents as PDF (调解协议书, 调解笔录): what each says,
//!   from the case, for `tiaojie-documents` to set.
//! - [`metrics`]: the counters behind `/metrics`.
//! - [`token`]: JWT join/admin tokens (HS256 or EdDSA), with a distinct error per failure.
//! - [`protocol`]: the signaling protocol's messages and error codes (`docs/protocol.md`).
//! - [`rate_limit`], [`ids`]: small helpers.
//!
//! The `tiaojie` binary (`src/main.rs`) parses the command line and wires config, storage and
//! this crate together; nothing else does.

pub mod api;
pub mod app;
pub mod case_news;
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
pub mod state;
pub mod token;
pub mod web;
pub mod ws;

pub use app::{Server, StartError};

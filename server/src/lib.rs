//! The tiaojie server: HTTP and WebSocket on one listener, the control API, the court link,
//! the embedded web client, and the server's lifecycle, over the live-session layer
//! (`tiaojie-signaling`), storage (`tiaojie-store`), the rules (`tiaojie-domain`), the SFU
//! (`tiaojie-media`) and the recorder (`tiaojie-recorder`).
//!
//! Map of the crate (every module imports only modules listed after it):
//! - [`app`]: the axum router (`/ws`, `/api/*`, `/healthz`, `/metrics`, the web client) and
//!   [`app::Server`], which starts everything on embedded defaults and shuts it down gracefully
//!   (every background loop gets the stop signal).
//! - [`listener`]: accepting connections: header timeout, per-address limits, the descriptor
//!   limit, graceful shutdown of HTTP connections.
//! - [`web`]: the browser client from `web-client/`, embedded in the binary.
//! - [`api`]: the REST control API, one module per resource (rooms and tokens, recordings and
//!   the audit log, the mediation workflow's cases), its error shape and extractors, and its
//!   OpenAPI document generated from code. Handlers reach live rooms through the hub only.
//! - [`court_link`]: the court bridge's WebSocket (`/confirmation/bridge`): key proof, leased
//!   outbox deliveries and acknowledgements out, the court's updates in (applied once each).
//! - [`state`]: what every handler reaches ([`state::AppState`]) and the court link's state.
//! - [`documents`]: the case's court documents as PDF (调解协议书, 调解笔录): what each says,
//!   from the case, for `tiaojie-documents` to set.
//!
//! The `tiaojie` binary (`src/main.rs`) parses the command line and wires config, storage and
//! this crate together; nothing else does.

pub mod api;
pub mod app;
pub mod court_link;
pub mod documents;
pub mod listener;
pub mod state;
pub mod web;

pub use app::{Server, StartError};

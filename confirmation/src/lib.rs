//! Judicial confirmation (司法确认) across the network boundary (法院专网).
//!
//! Map of the crate:
//! - [`envelope`]: signed envelopes (Ed25519 over the exact bytes sent), the message and its
//!   bodies, keys.
//! - [`application`]: the application package the internet side sends: case data, the
//!   agreement and its hash, signatures, identity checks, recording manifest heads.
//! - [`period`]: how a period of days is counted (CPL 85) — the one deadline rule of the
//!   mediation limits, the window to apply, and the court's limits, on both sides.
//! - [`court`]: the court-side states, actions and time limits (accept within 3 days, rule
//!   within 15, +10 with approval, 30 at most) — pure rules both sides use.
//! - [`wire`]: the WebSocket protocol between the server and the bridge: challenge and key
//!   proof, deliveries and acknowledgements, results and their acknowledgements.
//! - [`failpoint`]: crash points for the crash-matrix tests (`TIAOJIE_FAILPOINT`).
//!
//! This is the protocol both sides speak, and nothing else: the court bridge is its own crate
//! (`tiaojie-court-bridge`), and the internet side's outbox and inbox live with the case record
//! (`tiaojie-store`), so an application and its outbox message commit in one transaction. The
//! one piece of IO here, [`wire::Heard`] (a link's silence watch, on tokio), is behind the
//! `link` feature, so the domain's rules build without a runtime.

pub mod application;
pub mod court;
pub mod envelope;
pub mod failpoint;
pub mod period;
pub mod wire;

pub use court::{CourtAction, CourtStatus, CourtUpdate, Docket};
pub use envelope::{Body, Envelope, EnvelopeError, Message, PublicKey, Signer};

//! The WebSocket protocol between the internet-side server and the court bridge. The bridge
//! always dials out (the court network accepts no inbound connections); everything after the
//! handshake flows both ways over that one connection. Frames are JSON text.
//!
//! 1. server → `challenge {nonce}`; bridge → `auth {bridge, signature}` where the signature is
//!    the bridge key's over [`auth_bytes`]; server → `welcome` or closes with
//!    [`CLOSE_UNKNOWN_KEY`].
//! 2. server → `deliver {envelope}` for each leased outbox message (per case, in order; a
//!    lease not acknowledged in time is delivered again); bridge → `ack {message_id}` once the
//!    envelope is in its inbox, or `refuse {message_id, error}` when it cannot be taken (a bad
//!    signature, say); the server retries a refused message a few times, then dead-letters it.
//! 3. bridge → `result {envelope}` for each court-side outbox message, in order; server →
//!    `result_ack {message_id, outcome}` once it is applied, a duplicate, or refused for good.
//!
//! The server pings every `heartbeat_ms` (given in `welcome`); either side that hears nothing
//! for [`SILENT_HEARTBEATS`] of them drops the connection (the bridge then dials again).

use crate::envelope::Envelope;
use serde::{Deserialize, Serialize};

/// The WebSocket path the bridge connects to.
pub const PATH: &str = "/confirmation/bridge";
/// Close code: the bridge's key (or its signature) was not accepted.
pub const CLOSE_UNKNOWN_KEY: u16 = 4401;
/// Close code: a frame was not valid.
pub const CLOSE_PROTOCOL: u16 = 4400;
/// Heartbeats a side waits without hearing anything (a frame, a ping or a pong) before it
/// takes the connection for lost and drops it: a network that loses packets, or forgets the
/// connection, closes nothing.
pub const SILENT_HEARTBEATS: u32 = 3;

/// The bytes the bridge signs to prove it holds its key: bound to this protocol and the
/// server's fresh nonce, so a signature cannot be replayed or used elsewhere.
pub fn auth_bytes(nonce: &str) -> Vec<u8> {
    format!("tiaojie-court-bridge/1 auth {nonce}").into_bytes()
}

/// Server → bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToBridge {
    /// Prove your key.
    Challenge {
        /// Fresh random nonce.
        nonce: String,
    },
    /// Authenticated.
    Welcome {
        /// The server's public key, for the operator's information (the bridge checks
        /// envelopes with the key in its own configuration, never with this one).
        server_key: String,
        /// The server pings this often (ms); see [`SILENT_HEARTBEATS`].
        heartbeat_ms: u64,
    },
    /// An outbox message.
    Deliver {
        /// The signed message.
        envelope: Envelope,
    },
    /// A result was taken.
    ResultAck {
        /// The result's message id.
        message_id: String,
        /// What happened to it.
        outcome: ResultOutcome,
        /// Why it was refused, if it was.
        reason: Option<String>,
    },
}

/// What the internet side did with a court result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultOutcome {
    /// Applied now.
    Applied,
    /// Applied before (a redelivery).
    Duplicate,
    /// Not applied, for good: the wrong agreement version, a transition the case does not
    /// allow, a bad signature. Acknowledged so it does not loop; reported on both sides.
    Refused,
}

impl ResultOutcome {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ResultOutcome::Applied => "applied",
            ResultOutcome::Duplicate => "duplicate",
            ResultOutcome::Refused => "refused",
        }
    }
}

/// Bridge → server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FromBridge {
    /// The answer to the challenge.
    Auth {
        /// The bridge's name, for logs.
        bridge: String,
        /// Base64 signature of [`auth_bytes`].
        signature: String,
    },
    /// The delivered message is in the court inbox (or was already).
    Ack {
        /// Its message id.
        message_id: String,
    },
    /// The delivered message cannot be taken.
    Refuse {
        /// Its message id (as far as it could be read).
        message_id: String,
        /// Why.
        error: String,
    },
    /// A court-side outbox message.
    Result {
        /// The signed message.
        envelope: Envelope,
    },
}

/// When a connection last heard anything: the heartbeat rule's clock, touched by the side's
/// reader and watched by [`Heard::unless_silent`].
#[cfg(feature = "link")]
#[derive(Debug)]
pub struct Heard {
    start: std::time::Instant,
    last_ms: std::sync::atomic::AtomicU64,
}

#[cfg(feature = "link")]
impl Default for Heard {
    fn default() -> Self {
        Heard {
            start: std::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

#[cfg(feature = "link")]
impl Heard {
    /// Something arrived now.
    pub fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs `exchange` to its end, unless nothing arrives for `silence` first (`None`): then
    /// `exchange` is dropped wherever it waits (a send into a dead link can wait for minutes).
    pub async fn unless_silent<T>(
        &self,
        silence: std::time::Duration,
        exchange: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        tokio::select! {
            done = exchange => Some(done),
            () = self.silence(silence) => None,
        }
    }

    /// Resolves once nothing has arrived for `silence`.
    async fn silence(&self, silence: std::time::Duration) {
        loop {
            let last = std::time::Duration::from_millis(
                self.last_ms.load(std::sync::atomic::Ordering::Relaxed),
            );
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= silence {
                return;
            }
            tokio::time::sleep(silence - quiet).await;
        }
    }
}

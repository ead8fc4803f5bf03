//! What every HTTP handler and the court link can reach: the live-session hub, the
//! configuration, the fonts, and the court link's shared state.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};
use tiaojie_config::Config;
use tiaojie_confirmation::Signer;
use tiaojie_signaling::hub::Hub;
use tokio::sync::Notify;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Live rooms and storage.
    pub hub: Arc<Hub>,
    /// The configuration in force.
    pub config: Arc<Config>,
    /// The fonts court documents are set in; none installed, documents are unavailable.
    pub fonts: Option<tiaojie_documents::Fonts>,
    /// Judicial confirmation: the server key that seals envelopes, the bridge connections.
    pub court: Arc<CourtLink>,
}

/// What the server keeps for the bridge connections.
pub struct CourtLink {
    /// The server's key, which seals what goes to the court (the recording key: one server
    /// identity). `None` if it could not be read (then nothing can be applied for).
    pub signer: Option<Signer>,
    /// Woken when the outbox gets rows.
    pub outbox_ready: Notify,
    /// Bridge connections authenticated now.
    pub connected: AtomicI64,
    /// Envelopes or updates refused (bad signature, wrong version, ...), ever.
    pub refused: AtomicU64,
}

impl CourtLink {
    /// From the server key's PKCS#8 DER.
    pub fn new(key_der: &[u8]) -> CourtLink {
        CourtLink {
            signer: Signer::from_pkcs8(key_der).ok(),
            outbox_ready: Notify::new(),
            connected: AtomicI64::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

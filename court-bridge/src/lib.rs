//! The court bridge (`tiaojie-court-bridge`): runs inside the court's private network, dials out
//! to the internet-side server, keeps its own SQLite inbox, dockets and outbox, and serves
//! judges. It speaks the protocol of `tiaojie-confirmation` (envelopes, wire, the court's rules)
//! and shares nothing else with the server.
//!
//! Map of the crate:
//! - [`config`]: its configuration file.
//! - [`store`]: the SQLite database: inbox (each delivered envelope once), dockets (one per
//!   application), actions (who did what), outbox (court updates until the server has them),
//!   refused (envelopes that failed verification, for the operator).
//! - [`link`]: the outgoing WebSocket connection and its reconnection loop.
//! - [`api`]: the judges' page and the JSON API for the court's own case system.

pub mod api;
pub mod config;
pub mod link;
pub mod store;

use std::sync::Arc;
use tiaojie_confirmation::envelope::{PublicKey, Signer};
use tokio::sync::Notify;

/// What the link and the API share.
pub struct Bridge {
    /// Configuration.
    pub config: config::BridgeConfig,
    /// The database.
    pub store: store::CourtStore,
    /// The bridge's own key (signs its updates and proves it to the server).
    pub key: Signer,
    /// The server's key, from the configuration: every delivery must verify with it.
    pub server_key: PublicKey,
    /// Woken when the outbox has something new to send.
    pub outbox_ready: Notify,
    /// Whether the link is up now (shown on the page, `/healthz`).
    pub connected: std::sync::atomic::AtomicBool,
    /// The fonts rulings are set in; none found, a ruling goes back without its document
    /// (the page says so).
    pub fonts: Option<tiaojie_documents::Fonts>,
}

impl Bridge {
    /// Opens the database and loads (or on first start generates) the key.
    pub async fn open(config: config::BridgeConfig) -> anyhow::Result<Arc<Bridge>> {
        let key = config.load_or_generate_key()?;
        let server_key = PublicKey::from_b64(&config.server_public_key)
            .map_err(|e| anyhow::anyhow!("server_public_key in the configuration: {e}"))?;
        std::fs::create_dir_all(&config.data_dir)?;
        let store = store::CourtStore::open(&config.database_path()).await?;
        let fonts = match config.fonts() {
            Ok(fonts) => Some(fonts),
            Err(e) => {
                tracing::warn!(error = %e, "no font for the rulings' documents (install fonts-noto-cjk)");
                None
            }
        };
        Ok(Arc::new(Bridge {
            fonts,
            config,
            store,
            key,
            server_key,
            outbox_ready: Notify::new(),
            connected: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}

/// Wall-clock Unix ms.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

//! The bridge's outgoing connection: dial, prove the key, then take deliveries and send
//! results until the connection drops; then dial again with a growing pause (0.5 s to 5 s).

use super::{Bridge, now_ms};
use crate::envelope::Envelope;
use crate::wire::{self, FromBridge, ToBridge};
use futures_util::{SinkExt as _, StreamExt as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as Frame;

/// Why one connection ended.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The WebSocket.
    #[error("connection: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// The server closed or refused us.
    #[error("the server closed the connection: {0}")]
    Closed(String),
    /// A frame that is not the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The database.
    #[error(transparent)]
    Store(#[from] super::store::CourtStoreError),
}

/// Keeps the link up for as long as the bridge runs.
pub async fn run(bridge: Arc<Bridge>) {
    let mut pause = Duration::from_millis(500);
    loop {
        match connect_once(&bridge).await {
            Ok(()) => pause = Duration::from_millis(500),
            Err(e) => tracing::warn!(error = %e, "link to the server down"),
        }
        bridge.connected.store(false, Ordering::Relaxed);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// One connection, from dialling to its end.
pub async fn connect_once(bridge: &Bridge) -> Result<(), LinkError> {
    let (ws, _) = tokio_tungstenite::connect_async(&bridge.config.server_url).await?;
    let (mut tx, mut rx) = ws.split();
    // 1. The challenge and the key proof.
    let nonce = match next_frame(&mut rx).await? {
        ToBridge::Challenge { nonce } => nonce,
        other => {
            return Err(LinkError::Protocol(format!(
                "expected a challenge, got {other:?}"
            )));
        }
    };
    let auth = FromBridge::Auth {
        bridge: bridge.config.name.clone(),
        signature: bridge.key.sign_b64(&wire::auth_bytes(&nonce)),
    };
    tx.send(Frame::text(json(&auth))).await?;
    match next_frame(&mut rx).await? {
        ToBridge::Welcome { .. } => {}
        other => {
            return Err(LinkError::Protocol(format!(
                "expected welcome, got {other:?}"
            )));
        }
    }
    bridge.connected.store(true, Ordering::Relaxed);
    tracing::info!(server = %bridge.config.server_url, "link to the server up");

    // 2. Both directions: results out whenever the outbox has new rows, deliveries in.
    let mut sent_up_to = 0i64;
    loop {
        for pending in bridge.store.pending(sent_up_to, 256).await? {
            sent_up_to = pending.n;
            let frame = FromBridge::Result {
                envelope: pending.envelope,
            };
            tx.send(Frame::text(json(&frame))).await?;
            crate::failpoint::hit("bridge.after_result_sent");
        }
        let frame = tokio::select! {
            frame = next_frame(&mut rx) => frame?,
            () = bridge.outbox_ready.notified() => continue,
            // A periodic look at the outbox: another process (an admin tool) may have written.
            () = tokio::time::sleep(Duration::from_secs(2)) => continue,
        };
        match frame {
            ToBridge::Deliver { envelope } => {
                crate::failpoint::hit("bridge.before_inbox_commit");
                let reply = take(bridge, &envelope).await?;
                crate::failpoint::hit("bridge.after_inbox_commit");
                tx.send(Frame::text(json(&reply))).await?;
            }
            ToBridge::ResultAck {
                message_id,
                outcome,
                reason,
            } => {
                let outcome = serde_json::to_value(outcome)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                if outcome == "refused" {
                    tracing::warn!(%message_id, reason = reason.as_deref().unwrap_or(""), "the server refused a court update");
                }
                crate::failpoint::hit("bridge.before_result_ack_commit");
                bridge
                    .store
                    .acked(&message_id, &outcome, reason.as_deref(), now_ms())
                    .await?;
            }
            other => return Err(LinkError::Protocol(format!("unexpected {other:?}"))),
        }
    }
}

/// Checks a delivery and stores it; the reply to send.
async fn take(bridge: &Bridge, envelope: &Envelope) -> Result<FromBridge, LinkError> {
    // The id as far as the payload can be read, to name the message in a refusal.
    let claimed_id = serde_json::from_str::<serde_json::Value>(&envelope.payload)
        .ok()
        .and_then(|v| v.get("message_id")?.as_str().map(str::to_string))
        .unwrap_or_default();
    match envelope.open(&bridge.server_key) {
        Ok(message) => {
            let taken = bridge
                .store
                .take(envelope, &message, &bridge.key, now_ms())
                .await?;
            tracing::debug!(message_id = %message.message_id, ?taken, "delivery taken");
            bridge.outbox_ready.notify_one();
            Ok(FromBridge::Ack {
                message_id: message.message_id,
            })
        }
        Err(e) => {
            tracing::error!(message_id = %claimed_id, error = %e, "refused a delivery");
            bridge
                .store
                .refused(&envelope.payload, &e.to_string(), now_ms())
                .await?;
            Ok(FromBridge::Refuse {
                message_id: claimed_id,
                error: e.to_string(),
            })
        }
    }
}

async fn next_frame<S>(rx: &mut S) -> Result<ToBridge, LinkError>
where
    S: futures_util::Stream<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match rx.next().await {
            None => return Err(LinkError::Closed("end of stream".into())),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Frame::Text(text))) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|e| LinkError::Protocol(format!("{e}: {text}")));
            }
            Some(Ok(Frame::Close(close))) => {
                return Err(LinkError::Closed(
                    close.map_or_else(String::new, |c| format!("{} {}", c.code, c.reason)),
                ));
            }
            Some(Ok(_)) => {}
        }
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

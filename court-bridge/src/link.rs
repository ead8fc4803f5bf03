//! The bridge's outgoing connection: dial, prove the key, then take deliveries and send
//! results until the connection drops; then dial again with a growing pause (0.5 s to 5 s).

use crate::{Bridge, now_ms};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tiaojie_confirmation::envelope::Envelope;
use tiaojie_confirmation::wire::{self, FromBridge, ResultOutcome, ToBridge};
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
    Store(#[from] crate::store::CourtStoreError),
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

/// Dialling and the key proof, at most (a network that drops packets would leave it waiting
/// for minutes).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One connection, from dialling to its end.
pub async fn connect_once(bridge: &Bridge) -> Result<(), LinkError> {
    let (ws, heartbeat) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(bridge))
        .await
        .map_err(|_| LinkError::Closed(format!("no handshake within {HANDSHAKE_TIMEOUT:?}")))??;
    bridge.connected.store(true, Ordering::Relaxed);
    tracing::info!(server = %bridge.config.server_url, "link to the server up");
    let (mut tx, rx) = ws.split();
    // The server pings every heartbeat: hearing nothing for a few means the link is lost,
    // whatever the exchange is waiting for (a send into a dead link can wait for minutes).
    let heard = wire::Heard::default();
    let mut rx = rx.inspect(|_| heard.touch());
    let silence = heartbeat * wire::SILENT_HEARTBEATS;
    heard
        .unless_silent(silence, exchange(bridge, &mut tx, &mut rx))
        .await
        .unwrap_or_else(|| {
            Err(LinkError::Closed(format!(
                "nothing heard for {silence:?}: the link is lost"
            )))
        })
}

/// Dials and proves the key; the connection and the server's heartbeat.
async fn handshake(bridge: &Bridge) -> Result<(Socket, Duration), LinkError> {
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
    let heartbeat = match next_frame(&mut rx).await? {
        ToBridge::Welcome { heartbeat_ms, .. } => Duration::from_millis(heartbeat_ms.max(1)),
        other => {
            return Err(LinkError::Protocol(format!(
                "expected welcome, got {other:?}"
            )));
        }
    };
    let ws = tx
        .reunite(rx)
        .map_err(|e| LinkError::Protocol(e.to_string()))?;
    Ok((ws, heartbeat))
}

/// 2. Both directions: results out whenever the outbox has new rows, deliveries in.
async fn exchange(
    bridge: &Bridge,
    tx: &mut futures_util::stream::SplitSink<Socket, Frame>,
    rx: &mut (
             impl futures_util::Stream<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>>
             + Unpin
         ),
) -> Result<(), LinkError> {
    let mut sent_up_to = 0i64;
    loop {
        for pending in bridge.store.pending(sent_up_to, 256).await? {
            sent_up_to = pending.n;
            let frame = FromBridge::Result {
                envelope: pending.envelope,
            };
            tx.send(Frame::text(json(&frame))).await?;
            tiaojie_confirmation::failpoint::hit("bridge.after_result_sent");
        }
        let frame = tokio::select! {
            frame = next_frame(rx) => frame?,
            () = bridge.outbox_ready.notified() => continue,
            // A periodic look at the outbox: another process (an admin tool) may have written.
            () = tokio::time::sleep(Duration::from_secs(2)) => continue,
        };
        // Whatever else has already arrived is handled with it: deliveries in one transaction
        // (one fsync per batch, the acknowledgements after it), result acknowledgements in
        // another.
        let mut frames = vec![frame];
        while frames.len() < MAX_BATCH {
            let Some(next) = rx.next().now_or_never() else {
                break;
            };
            if let Some(frame) = parse(next)? {
                frames.push(frame);
            }
        }
        let mut deliveries = Vec::new();
        let mut acks = Vec::new();
        for frame in frames {
            match frame {
                ToBridge::Deliver { envelope } => deliveries.push(envelope),
                ToBridge::ResultAck {
                    message_id,
                    outcome,
                    reason,
                } => {
                    if outcome == ResultOutcome::Refused {
                        tracing::warn!(%message_id, reason = reason.as_deref().unwrap_or(""), "the server refused a court update");
                    }
                    acks.push((message_id, outcome.as_str(), reason));
                }
                other => return Err(LinkError::Protocol(format!("unexpected {other:?}"))),
            }
        }
        if !deliveries.is_empty() {
            tiaojie_confirmation::failpoint::hit("bridge.before_inbox_commit");
            let replies = take(bridge, &deliveries).await?;
            tiaojie_confirmation::failpoint::hit("bridge.after_inbox_commit");
            for reply in replies {
                tx.feed(Frame::text(json(&reply))).await?;
            }
            tx.flush().await?;
        }
        if !acks.is_empty() {
            tiaojie_confirmation::failpoint::hit("bridge.before_result_ack_commit");
            bridge.store.acked_batch(&acks, now_ms()).await?;
        }
    }
}

/// Deliveries taken in one transaction, at most.
const MAX_BATCH: usize = 256;

/// Checks deliveries, stores those that verify in one transaction; the replies, in order.
async fn take(bridge: &Bridge, batch: &[Envelope]) -> Result<Vec<FromBridge>, LinkError> {
    let now = now_ms();
    let opened: Vec<_> = batch
        .iter()
        .map(|e| (e, e.open(&bridge.server_key)))
        .collect();
    let good: Vec<_> = opened
        .iter()
        .filter_map(|(e, m)| m.as_ref().ok().map(|m| (*e, m)))
        .collect();
    if !good.is_empty() {
        bridge.store.take_batch(&good, &bridge.key, now).await?;
        // A withdrawal may have written a court update to send.
        bridge.outbox_ready.notify_one();
    }
    let mut replies = Vec::with_capacity(batch.len());
    for (envelope, opened) in opened {
        match opened {
            Ok(message) => replies.push(FromBridge::Ack {
                message_id: message.message_id.clone(),
            }),
            Err(e) => {
                let claimed_id = envelope.claimed("message_id");
                tracing::error!(message_id = %claimed_id, error = %e, "refused a delivery");
                bridge
                    .store
                    .refused(&envelope.payload, &e.to_string(), now)
                    .await?;
                replies.push(FromBridge::Refuse {
                    message_id: claimed_id,
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(replies)
}

async fn next_frame<S>(rx: &mut S) -> Result<ToBridge, LinkError>
where
    S: futures_util::Stream<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        if let Some(frame) = parse(rx.next().await)? {
            return Ok(frame);
        }
    }
}

/// One frame: a protocol message, `None` for pings and the like, or why the link ended.
fn parse(
    frame: Option<Result<Frame, tokio_tungstenite::tungstenite::Error>>,
) -> Result<Option<ToBridge>, LinkError> {
    match frame {
        None => Err(LinkError::Closed("end of stream".into())),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(Frame::Text(text))) => serde_json::from_str(text.as_str())
            .map(Some)
            .map_err(|e| LinkError::Protocol(format!("{e}: {text}"))),
        Some(Ok(Frame::Close(close))) => {
            Err(LinkError::Closed(close.map_or_else(String::new, |c| {
                format!("{} {}", c.code, c.reason)
            })))
        }
        Some(Ok(_)) => Ok(None),
    }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

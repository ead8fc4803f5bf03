//! The court bridge's connection (`/confirmation/bridge`, protocol in
//! `tiaojie_confirmation::wire`): the bridge dials in from the court network, proves it holds
//! a configured key, then takes leased outbox messages and sends the court's updates back.
//!
//! Delivery is at least once (a lease not acknowledged in time is delivered again, to this or
//! another connection or server process); the effect is exactly once because both inboxes are
//! keyed by message id and written in the same transaction as the effect.

use crate::state::AppState;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tiaojie_confirmation::wire::{self, FromBridge, ResultOutcome, ToBridge};
use tiaojie_confirmation::{Body, Envelope, PublicKey};
use tiaojie_domain::CaseId;
use tiaojie_store::Taken;

/// Frames larger than this are refused (an application with a long agreement is far smaller).
const MAX_FRAME_BYTES: usize = 4 << 20;
/// How long the bridge has to answer the challenge.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the outbox is looked at without a wake-up (other server processes write too).
const POLL: Duration = Duration::from_millis(250);
/// How often messages that were never acknowledged are looked for and dead-lettered.
const DEAD_LETTER_PASS: Duration = Duration::from_secs(1);

/// `GET /confirmation/bridge`: the WebSocket upgrade.
pub(crate) async fn bridge_socket(
    State(state): State<AppState>,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| async move {
            if let Err(e) = serve(state, socket).await {
                tracing::warn!(error = %e, "court bridge connection ended");
            }
        })
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("websocket: {0}")]
    Ws(#[from] axum::Error),
    #[error("storage: {0}")]
    Store(#[from] tiaojie_store::StoreError),
    #[error("{0}")]
    Protocol(String),
}

async fn send(
    ws: &mut futures_util::stream::SplitSink<WebSocket, Frame>,
    frame: &ToBridge,
) -> Result<(), LinkError> {
    let text = serde_json::to_string(frame).map_err(|e| LinkError::Protocol(e.to_string()))?;
    ws.send(Frame::Text(text.into())).await?;
    Ok(())
}

async fn close(
    mut ws: futures_util::stream::SplitSink<WebSocket, Frame>,
    code: u16,
    reason: &str,
) -> Result<(), LinkError> {
    ws.send(Frame::Close(Some(CloseFrame {
        code,
        reason: reason.to_string().into(),
    })))
    .await?;
    Err(LinkError::Protocol(reason.to_string()))
}

fn parse(frame: Option<Result<Frame, axum::Error>>) -> Result<Option<FromBridge>, LinkError> {
    match frame {
        None | Some(Ok(Frame::Close(_))) => Err(LinkError::Protocol("closed".into())),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(Frame::Text(text))) => serde_json::from_str(text.as_str())
            .map(Some)
            .map_err(|e| LinkError::Protocol(format!("not a bridge frame: {e}"))),
        Some(Ok(_)) => Ok(None),
    }
}

async fn serve(state: AppState, socket: WebSocket) -> Result<(), LinkError> {
    let (mut tx, mut rx) = socket.split();
    let link = &state.court;
    // 1. The key proof.
    let nonce = tiaojie_signaling::ids::random_token(32);
    send(
        &mut tx,
        &ToBridge::Challenge {
            nonce: nonce.clone(),
        },
    )
    .await?;
    let answer = tokio::time::timeout(AUTH_TIMEOUT, rx.next())
        .await
        .map_err(|_| LinkError::Protocol("no answer to the challenge".into()))?;
    let Ok(Some(FromBridge::Auth { bridge, signature })) = parse(answer) else {
        return close(tx, wire::CLOSE_PROTOCOL, "expected auth").await;
    };
    let keys: Vec<PublicKey> = state
        .config
        .confirmation
        .bridge_keys()
        .iter()
        .filter_map(|k| PublicKey::from_b64(k).ok())
        .collect();
    let Some(bridge_key) = keys
        .into_iter()
        .find(|k| k.verifies(&wire::auth_bytes(&nonce), &signature))
    else {
        tracing::warn!(%bridge, "a court bridge with an unknown key was refused");
        link.refused.fetch_add(1, Relaxed);
        return close(tx, wire::CLOSE_UNKNOWN_KEY, "unknown bridge key").await;
    };
    let Some(signer) = &link.signer else {
        return close(tx, 1011, "the server key is not available").await;
    };
    let heartbeat = state.config.confirmation.heartbeat;
    send(
        &mut tx,
        &ToBridge::Welcome {
            server_key: signer.public_b64(),
            heartbeat_ms: heartbeat.as_millis() as u64,
        },
    )
    .await?;
    tracing::info!(%bridge, "court bridge connected");
    link.connected.fetch_add(1, Relaxed);
    // Each connection leases under its own name, and gives back what it held when it ends.
    let owner = format!("{bridge}/{}", tiaojie_signaling::ids::random_id());
    // A link that loses packets closes nothing: the connection ends when nothing (not even a
    // pong) has come for a few heartbeats, whatever `run` is waiting for (a send to a dead
    // link can wait for minutes).
    let heard = wire::Heard::default();
    let mut rx = rx.inspect(|_| heard.touch());
    let silence = heartbeat * wire::SILENT_HEARTBEATS;
    let exchange = run(&state, &mut tx, &mut rx, &owner, &bridge_key, heartbeat);
    let result = heard
        .unless_silent(silence, exchange)
        .await
        .unwrap_or_else(|| {
            tracing::warn!(%bridge, ?silence, "court bridge silent: connection taken for lost");
            Err(LinkError::Protocol(format!(
                "nothing heard for {silence:?}"
            )))
        });
    link.connected.fetch_sub(1, Relaxed);
    if let Err(e) = state.hub.store().release_leases(&owner).await {
        tracing::warn!(error = %e, "could not release the bridge's leases (they expire)");
    }
    result
}

/// 2. and 3.: deliveries out, acknowledgements and results in, until the connection ends.
async fn run(
    state: &AppState,
    tx: &mut futures_util::stream::SplitSink<WebSocket, Frame>,
    rx: &mut (impl futures_util::Stream<Item = Result<Frame, axum::Error>> + Unpin),
    owner: &str,
    bridge_key: &PublicKey,
    heartbeat: Duration,
) -> Result<(), LinkError> {
    let config = &state.config.confirmation;
    let mut ping = tokio::time::interval(heartbeat);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let lease = config.lease;
    let store = state.hub.store();
    // Delivered and not yet acknowledged, with when: past its lease it may be leased again.
    let mut in_flight: HashMap<String, Instant> = HashMap::new();
    let window = config.window as usize;
    let mut dead_letter_pass = Instant::now();
    loop {
        in_flight.retain(|_, at| at.elapsed() < lease);
        if dead_letter_pass.elapsed() >= DEAD_LETTER_PASS {
            dead_letter_pass = Instant::now();
            store.dead_letter_outbox(state.hub.clock.now()).await?;
        }
        // Lease when a quarter of the window is free (or nothing is in flight): a lease per
        // run of acknowledgements, a few ids each, cost more than the deliveries it made.
        let room = window.saturating_sub(in_flight.len());
        if room > 0 && (room >= window / 4 || in_flight.is_empty()) {
            let now = state.hub.clock.now();
            let leased = store
                .lease_outbox(owner, room as i64, lease.as_millis() as i64, now)
                .await?;
            let any = !leased.is_empty();
            for leased in leased {
                in_flight.insert(leased.message_id.clone(), Instant::now());
                tiaojie_confirmation::failpoint::hit("server.after_lease");
                let frame = ToBridge::Deliver {
                    envelope: leased.envelope,
                };
                let text = serde_json::to_string(&frame)
                    .map_err(|e| LinkError::Protocol(e.to_string()))?;
                tx.feed(Frame::Text(text.into())).await?;
            }
            if any {
                tx.flush().await?;
            }
        }
        let frame = tokio::select! {
            frame = rx.next() => frame,
            () = state.court.outbox_ready.notified() => continue,
            () = tokio::time::sleep(POLL) => continue,
            _ = ping.tick() => {
                tx.send(Frame::Ping(Default::default())).await?;
                continue;
            }
        };
        let Some(frame) = parse(frame)? else { continue };
        // Whatever else has already arrived is handled with it: the bridge answers a batch of
        // deliveries with a run of acknowledgements, and the court's results come in runs.
        let mut frames = vec![frame];
        while frames.len() < MAX_RUN {
            let Some(next) = rx.next().now_or_never() else {
                break;
            };
            if let Some(frame) = parse(next)? {
                frames.push(frame);
            }
        }
        handle_run(state, tx, &mut in_flight, frames, bridge_key).await?;
    }
}

/// Frames handled together, at most.
const MAX_RUN: usize = 512;

/// The court network has these cases' applications: whoever has one of them open hears of it
/// (`case.updated`, change `confirmation_delivered`), off the link's path.
fn announce_delivered(state: &AppState, cases: Vec<CaseId>) {
    let heard: Vec<CaseId> = cases
        .into_iter()
        .filter(|c| state.hub.anyone_hears(c))
        .collect();
    if heard.is_empty() {
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        for id in heard {
            match state.hub.store().case(&id).await {
                Ok(case) => {
                    state
                        .hub
                        .announce_case_change(&case, "confirmation_delivered")
                        .await;
                }
                Err(e) => tracing::warn!(case = %id, error = %e, "delivery not announced"),
            }
        }
    });
}

/// A run of frames: acknowledgements commit together, results are applied together (see
/// [`take_results`]) and acknowledged in order, refusals one by one.
async fn handle_run(
    state: &AppState,
    tx: &mut futures_util::stream::SplitSink<WebSocket, Frame>,
    in_flight: &mut HashMap<String, Instant>,
    frames: Vec<FromBridge>,
    bridge_key: &PublicKey,
) -> Result<(), LinkError> {
    let store = state.hub.store();
    let now = state.hub.clock.now();
    let (mut acked, mut results) = (Vec::new(), Vec::new());
    for frame in frames {
        match frame {
            FromBridge::Ack { message_id } => {
                in_flight.remove(&message_id);
                acked.push(message_id);
            }
            FromBridge::Result { envelope } => results.push(envelope),
            FromBridge::Refuse { message_id, error } => {
                tracing::error!(%message_id, %error, "the court bridge refused a message");
                state.court.refused.fetch_add(1, Relaxed);
                in_flight.remove(&message_id);
                let retry = state.config.confirmation.retry.as_millis() as i64;
                store.refuse_outbox(&message_id, &error, retry, now).await?;
            }
            FromBridge::Auth { .. } => {
                return Err(LinkError::Protocol("auth again after welcome".into()));
            }
        }
    }
    if !acked.is_empty() {
        tiaojie_confirmation::failpoint::hit("server.before_ack_commit");
        let delivered = store.ack_outbox_batch(&acked, now).await?;
        tiaojie_confirmation::failpoint::hit("server.after_ack_commit");
        announce_delivered(state, delivered);
    }
    if !results.is_empty() {
        tiaojie_confirmation::failpoint::hit("server.before_result_commit");
        let acks = take_results(state, results, bridge_key).await?;
        tiaojie_confirmation::failpoint::hit("server.after_result_commit");
        for ack in acks {
            let text =
                serde_json::to_string(&ack).map_err(|e| LinkError::Protocol(e.to_string()))?;
            tx.feed(Frame::Text(text.into())).await?;
        }
        tx.flush().await?;
    }
    Ok(())
}

/// Applies a run of results: grouped by case (as the payload names it; each is verified when
/// applied), one case's in order, the cases concurrently. The acknowledgements, in the order
/// the results came.
async fn take_results(
    state: &AppState,
    results: Vec<Envelope>,
    bridge_key: &PublicKey,
) -> Result<Vec<ToBridge>, LinkError> {
    let mut by_case: HashMap<String, Vec<(usize, Envelope)>> = HashMap::new();
    for (i, envelope) in results.into_iter().enumerate() {
        by_case
            .entry(envelope.claimed("case_id"))
            .or_default()
            .push((i, envelope));
    }
    let per_case = by_case.into_values().map(|items| async move {
        let mut acks = Vec::with_capacity(items.len());
        for (i, envelope) in items {
            let (message_id, outcome, reason) = take_result(state, &envelope, bridge_key).await?;
            acks.push((
                i,
                ToBridge::ResultAck {
                    message_id,
                    outcome,
                    reason,
                },
            ));
        }
        Ok::<_, LinkError>(acks)
    });
    let mut acks = Vec::new();
    for done in futures_util::future::join_all(per_case).await {
        acks.extend(done?);
    }
    acks.sort_by_key(|(i, _)| *i);
    Ok(acks.into_iter().map(|(_, ack)| ack).collect())
}

/// Verifies and applies one court update; what to acknowledge.
async fn take_result(
    state: &AppState,
    envelope: &Envelope,
    bridge_key: &PublicKey,
) -> Result<(String, ResultOutcome, Option<String>), LinkError> {
    let claimed_id = envelope.claimed("message_id");
    let refused = |reason: String| {
        state.court.refused.fetch_add(1, Relaxed);
        tracing::error!(message_id = %claimed_id, %reason, "court update refused");
        Ok((claimed_id.clone(), ResultOutcome::Refused, Some(reason)))
    };
    let message = match envelope.open(bridge_key) {
        Ok(m) => m,
        Err(e) => return refused(e.to_string()),
    };
    let Body::CourtUpdate(update) = &message.body else {
        return refused("not a court update".into());
    };
    let now = state.hub.clock.now();
    let detail = format!(
        "{} {} {}",
        update.action.name(),
        update.status.as_str(),
        message.message_id
    );
    // Committed with the update: a ruling on the case is never without its entry.
    let entry = tiaojie_domain::AuditEntry::new(
        now,
        &update.judge,
        "court",
        tiaojie_domain::AuditAction::CourtUpdate,
        &format!("case:{}", message.case_id),
        &detail,
    );
    match state
        .hub
        .store()
        .take_court_update(&message, update, now, &entry)
        .await?
    {
        Taken::Applied(case) => {
            tracing::info!(case = %case.id, status = update.status.as_str(), "court update applied");
            // The announcement follows off the link's path: the bridge's next update does not
            // wait for the parties' connections.
            let state = state.clone();
            tokio::spawn(async move {
                state.hub.announce_case_change(&case, "court_updated").await;
            });
            Ok((message.message_id, ResultOutcome::Applied, None))
        }
        Taken::Duplicate => Ok((message.message_id, ResultOutcome::Duplicate, None)),
        Taken::Refused(reason) => {
            state.court.refused.fetch_add(1, Relaxed);
            Ok((message.message_id, ResultOutcome::Refused, Some(reason)))
        }
    }
}

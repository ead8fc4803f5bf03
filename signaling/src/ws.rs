//! One WebSocket connection: reads requests, answers each one, writes the room's events.
//!
//! A connection is one task that selects over four things: its kill switch (removal, takeover,
//! a full queue), its outbound queue (events and replies, in the order the hub queued them),
//! the socket (requests), a ping timer (a client silent for three intervals is treated as
//! dropped) and, until it joins, a join deadline (close 4408). Every write has a deadline
//! (`signaling.send_timeout`): a client that stops reading is dropped, not waited for. Bad input
//! is answered with an `error` and the connection stays up; only a message over the hard size
//! limit (close 1009) or a socket error ends it. Ending without `leave` is a drop: the member is
//! held for the grace period.
//!
//! The loop is generic over the socket (any `Stream` of frames that is also a `Sink` of them):
//! the server hands it axum's WebSocket, the unit tests below an in-memory pipe whose client
//! can stop reading.

use crate::hub::{Hub, Session, SignalError};
use crate::live_room::{Link, Outbound};
use crate::moderation::Moderation;
use crate::protocol::{
    self, ClientMessage, ErrorCode, ModerateAction, PROTOCOL_VERSION, Reply, RequestId, to_text,
};
use crate::rate_limit::TokenBucket;
use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt as _, Stream, StreamExt as _};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tiaojie_domain::CaseId;
use tiaojie_domain::mediation::Place;
use tracing::Instrument;

/// Frames over this many times `signaling.max_message_bytes` end the connection (code 1009):
/// reading them at all would let one client make the server buffer without bound.
pub const HARD_LIMIT_FACTOR: usize = 16;

/// Per-connection read buffer; small so that idle connections cost little memory.
pub const READ_BUFFER_BYTES: usize = 8 * 1024;

/// What the request loop decided.
enum Flow {
    Continue,
    /// Stop reading; the queued close frame (if any) is written first.
    Drain,
}

struct ConnectionState {
    hub: Arc<Hub>,
    link: Link,
    session: Option<Session>,
    /// The case this connection follows (`follow`), if it does.
    following: Option<CaseId>,
    left: bool,
    bucket: TokenBucket,
    last_rate_error: Option<Instant>,
}

/// Serves one upgraded WebSocket until it closes.
pub async fn serve<S>(socket: S, hub: Arc<Hub>)
where
    S: Socket,
{
    hub.metrics.connections_total.fetch_add(1, Relaxed);
    hub.metrics.connections_open.fetch_add(1, Relaxed);
    let conn = hub.connect();
    let span = tracing::info_span!(
        "ws",
        conn = conn.link.generation,
        room = tracing::field::Empty,
        participant = tracing::field::Empty
    );
    run(socket, hub.clone(), conn.link, conn.rx)
        .instrument(span)
        .await;
    hub.metrics.connections_open.fetch_sub(1, Relaxed);
}

/// What a connection runs over: frames in, frames out (axum's `WebSocket` is one).
pub trait Socket:
    Stream<Item = Result<Message, axum::Error>> + Sink<Message, Error = axum::Error> + Unpin + Send
{
}

impl<S> Socket for S where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Unpin
        + Send
{
}

async fn run<S: Socket>(
    mut socket: S,
    hub: Arc<Hub>,
    link: Link,
    mut rx: tokio::sync::mpsc::Receiver<Outbound>,
) {
    let config = hub.config().clone();
    let kill = link.kill.clone();
    let mut state = ConnectionState {
        hub: hub.clone(),
        link,
        session: None,
        following: None,
        left: false,
        bucket: TokenBucket::new(
            config.rate_limit_per_second,
            config.rate_limit_burst,
            Instant::now(),
        ),
        last_rate_error: None,
    };
    let mut ping = tokio::time::interval(config.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    let idle_limit = config.ping_interval * 3;
    let mut last_heard = Instant::now();
    let mut reading = true;
    let join_deadline = tokio::time::sleep(config.join_timeout);
    tokio::pin!(join_deadline);
    let mut out = Writer {
        socket: &mut socket,
        deadline: config.send_timeout,
    };

    loop {
        tokio::select! {
            biased;
            (code, reason) = kill.killed() => {
                out.close(code, &reason, &hub).await;
                break;
            }
            queued = rx.recv() => match queued {
                Some(Outbound::Text(text)) => {
                    hub.metrics.messages_out.fetch_add(1, Relaxed);
                    if let Err(e) = out.send(Message::Text(text.as_ref().into())).await {
                        e.log(&hub);
                        break;
                    }
                }
                Some(Outbound::Close { code, reason }) => {
                    out.close(code, &reason, &hub).await;
                    break;
                }
                None => break,
            },
            frame = out.socket.next(), if reading => {
                last_heard = Instant::now();
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        if let Flow::Drain = state.on_text(text.as_str()).await {
                            reading = false;
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        state.send_error(None, ErrorCode::UnsupportedFrame, "the protocol uses text frames only");
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        if over_hard_limit(e) {
                            // Say why, as docs/protocol.md promises: the client may resume.
                            out.close(1009, "message_too_large", &hub).await;
                        }
                        break;
                    }
                }
            }
            () = &mut join_deadline, if state.session.is_none() && state.following.is_none() => {
                // A socket that never joins holds a descriptor for nothing.
                hub.metrics.join_timeouts.fetch_add(1, Relaxed);
                out.close(CLOSE_JOIN_TIMEOUT, "join_timeout", &hub).await;
                break;
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > idle_limit {
                    tracing::info!("client silent for {:?}; treating the connection as dropped", idle_limit);
                    break;
                }
                if let Err(e) = out.send(Message::Ping(Default::default())).await {
                    e.log(&hub);
                    break;
                }
            }
        }
    }
    if let Some(session) = &state.session
        && !state.left
    {
        hub.connection_lost(session).await;
    }
    if let Some(case) = &state.following {
        hub.unfollow(case, state.link.generation);
    }
}

/// Close code for a socket that did not join within `signaling.join_timeout`.
pub const CLOSE_JOIN_TIMEOUT: u16 = 4408;

/// The socket's write side: every write has a deadline, so a client that stops reading (its
/// kernel buffers full) cannot hold the task — and with it the idle check, the outbound queue's
/// limit and a takeover's kill switch — forever.
struct Writer<'a, S> {
    socket: &'a mut S,
    deadline: Duration,
}

/// Why a write failed.
enum WriteFailed {
    /// The socket is gone.
    Closed,
    /// The client did not take the bytes within the deadline.
    Stalled(Duration),
}

impl WriteFailed {
    fn log(&self, hub: &Hub) {
        match self {
            WriteFailed::Closed => tracing::debug!("websocket write failed"),
            WriteFailed::Stalled(after) => {
                hub.metrics.stalled.fetch_add(1, Relaxed);
                tracing::info!(
                    ?after,
                    "client stopped reading; treating the connection as dropped"
                );
            }
        }
    }
}

impl<S: Socket> Writer<'_, S> {
    async fn send(&mut self, message: Message) -> Result<(), WriteFailed> {
        match tokio::time::timeout(self.deadline, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriteFailed::Closed),
            Err(_) => Err(WriteFailed::Stalled(self.deadline)),
        }
    }

    /// A close frame, best effort: a client that is not reading gets at most a second (and
    /// is counted as stalled).
    async fn close(&mut self, code: u16, reason: &str, hub: &Hub) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        let wait = self.deadline.min(Duration::from_secs(1));
        if tokio::time::timeout(wait, self.socket.send(frame))
            .await
            .is_err()
        {
            WriteFailed::Stalled(wait).log(hub);
        }
    }
}

/// Whether a read failed because the message was over the hard size limit.
fn over_hard_limit(e: axum::Error) -> bool {
    let inner = e.into_inner();
    let over = matches!(
        inner.downcast_ref::<tokio_tungstenite::tungstenite::Error>(),
        Some(tokio_tungstenite::tungstenite::Error::Capacity(_))
    );
    if !over {
        tracing::debug!(error = %inner, "websocket read failed");
    }
    over
}

impl ConnectionState {
    /// Queues a reply. A full queue means the client stopped reading: cut it off.
    fn send(&self, reply: &Reply) {
        if self
            .link
            .tx
            .try_send(Outbound::Text(to_text(reply).into()))
            .is_err()
        {
            self.link.kill.kill(
                crate::live_room::close_code::STALLED,
                "too many unread messages; reconnect to resume",
            );
        }
    }

    fn send_error(&self, id: Option<RequestId>, code: ErrorCode, message: &str) {
        self.send_failure(id, SignalError::new(code, message));
    }

    fn send_failure(&self, id: Option<RequestId>, e: SignalError) {
        self.hub.metrics.error(e.code);
        self.send(&Reply::Error {
            id,
            code: e.code,
            message: e.message,
            details: e.details,
        });
    }

    async fn on_text(&mut self, text: &str) -> Flow {
        self.hub.metrics.messages_in.fetch_add(1, Relaxed);
        let now = Instant::now();
        if !self.bucket.allow(now) {
            // Answer a flood once a second, not once per message, so the answers cannot
            // become a flood of their own.
            if self
                .last_rate_error
                .is_none_or(|t| now - t >= Duration::from_secs(1))
            {
                self.last_rate_error = Some(now);
                let id = protocol::parse_client_message(text)
                    .ok()
                    .and_then(|m| m.id().cloned());
                self.send_error(
                    id,
                    ErrorCode::RateLimited,
                    "too many messages; this one was dropped, slow down",
                );
            } else {
                self.hub.metrics.error(ErrorCode::RateLimited);
            }
            return Flow::Continue;
        }
        let limit = self.hub.config().max_message_bytes;
        if text.len() > limit {
            self.send_error(
                None,
                ErrorCode::MessageTooLarge,
                &format!(
                    "message of {} bytes is over the {limit}-byte limit",
                    text.len()
                ),
            );
            return Flow::Continue;
        }
        let message = match protocol::parse_client_message(text) {
            Ok(m) => m,
            Err(e) => {
                self.send_error(e.id, e.code, &e.message);
                return Flow::Continue;
            }
        };
        let id = message.id().cloned();
        match self.dispatch(message).await {
            Ok(flow) => flow,
            Err(e) => {
                if e.code == ErrorCode::Internal {
                    tracing::warn!(error = %e.message, "request failed");
                }
                self.send_failure(id, e);
                Flow::Continue
            }
        }
    }

    async fn dispatch(&mut self, message: ClientMessage) -> Result<Flow, SignalError> {
        use ClientMessage as M;
        match message {
            M::Ping { id } => {
                self.send(&Reply::Pong {
                    id,
                    at: tiaojie_domain::clock::now_millis(),
                });
                Ok(Flow::Continue)
            }
            M::Join { id, v, room, token } => {
                self.check_not_joined(v)?;
                let session = self.hub.join(id, &room, &token, self.link.clone()).await?;
                self.joined(session);
                Ok(Flow::Continue)
            }
            M::Follow { id, v, token, case } => {
                self.check_not_joined(v)?;
                let case = self
                    .hub
                    .follow(id, &token, case.as_ref(), &self.link)
                    .await?;
                self.following = Some(case);
                Ok(Flow::Continue)
            }
            M::Resume {
                id,
                v,
                resume_token,
                last_seq,
            } => {
                self.check_not_joined(v)?;
                let session = self
                    .hub
                    .resume(id, &resume_token, last_seq, self.link.clone())
                    .await?;
                self.joined(session);
                Ok(Flow::Continue)
            }
            other => {
                let session = self
                    .session
                    .clone()
                    .ok_or_else(|| SignalError::new(ErrorCode::NotJoined, "join a room first"))?;
                match other {
                    M::Leave { id } => {
                        self.hub.leave(&session, id).await?;
                        self.left = true;
                        Ok(Flow::Drain)
                    }
                    M::Participants { id } => {
                        self.hub.participants(&session, id).await?;
                        Ok(Flow::Continue)
                    }
                    M::Chat { id, text, to } => {
                        self.hub.chat(&session, id, text, to).await?;
                        Ok(Flow::Continue)
                    }
                    M::Mute { id, kind, muted } => {
                        self.hub.self_mute(&session, id, kind, muted).await?;
                        Ok(Flow::Continue)
                    }
                    M::Moderate {
                        id,
                        action,
                        target,
                        kind,
                        muted,
                        reason,
                        space,
                    } => {
                        let moderation = match action {
                            ModerateAction::Mute => Moderation::Mute {
                                kind: kind.ok_or_else(|| {
                                    SignalError::new(
                                        ErrorCode::InvalidMessage,
                                        "mute needs kind: audio or video",
                                    )
                                })?,
                                muted: muted.unwrap_or(true),
                            },
                            ModerateAction::Remove => Moderation::Remove {
                                reason: reason.filter(|r| !r.trim().is_empty()).unwrap_or_else(
                                    || crate::protocol::reason::REMOVED_BY_MODERATOR.into(),
                                ),
                            },
                            ModerateAction::Admit => Moderation::Move {
                                place: Place::Joint,
                            },
                            ModerateAction::Readmit => Moderation::Readmit,
                            ModerateAction::Move => Moderation::Move {
                                place: space.ok_or_else(|| {
                                    SignalError::new(
                                        ErrorCode::InvalidMessage,
                                        "move needs space: lobby, joint, private:applicant or \
                                         private:respondent",
                                    )
                                })?,
                            },
                        };
                        self.hub.moderate(&session, id, &target, moderation).await?;
                        Ok(Flow::Continue)
                    }
                    M::Offer { id, sdp, screen } => {
                        check_sdp(&sdp)?;
                        self.hub.media_offer(&session, id, sdp, screen).await?;
                        Ok(Flow::Continue)
                    }
                    M::Answer { id, sdp } => {
                        check_sdp(&sdp)?;
                        self.hub.media_answer(&session, id, sdp).await?;
                        Ok(Flow::Continue)
                    }
                    M::Candidate { id, candidate } => {
                        let line = candidate.map(|c| c.candidate);
                        self.hub.media_candidate(&session, id, line).await?;
                        Ok(Flow::Continue)
                    }
                    M::Preferences {
                        id,
                        audio_only,
                        max_height,
                    } => {
                        self.hub
                            .media_preferences(&session, id, audio_only, max_height)
                            .await?;
                        Ok(Flow::Continue)
                    }
                    M::Record { id, action, mode } => {
                        self.hub.record(&session, id, action, mode).await?;
                        Ok(Flow::Continue)
                    }
                    M::Join { .. } | M::Resume { .. } | M::Follow { .. } | M::Ping { .. } => {
                        Ok(Flow::Continue)
                    }
                }
            }
        }
    }

    fn check_not_joined(&self, v: Option<u32>) -> Result<(), SignalError> {
        if self.session.is_some() || self.following.is_some() {
            return Err(SignalError::new(
                ErrorCode::AlreadyJoined,
                "this connection has joined already",
            ));
        }
        let v = v.unwrap_or(PROTOCOL_VERSION);
        if v != PROTOCOL_VERSION {
            return Err(SignalError::new(
                ErrorCode::UnsupportedVersion,
                format!("this server speaks protocol version {PROTOCOL_VERSION}, not {v}"),
            ));
        }
        Ok(())
    }

    fn joined(&mut self, session: Session) {
        let span = tracing::Span::current();
        span.record("room", session.room.name.as_str());
        span.record("participant", session.identity.as_str());
        self.session = Some(session);
    }
}

fn check_sdp(sdp: &str) -> Result<(), SignalError> {
    if sdp.len() > protocol::MAX_SDP_BYTES {
        return Err(SignalError::new(ErrorCode::InvalidMessage, "SDP too large"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The connection loop driven in memory: a pipe stands in for the socket, a hub over a
    //! temporary SQLite store behind it, no network and no SFU.

    use super::*;
    use std::pin::Pin;
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Poll};
    use tokio::sync::mpsc;

    /// The test's end of a connection: frames to send, frames received, and whether the
    /// client is reading (not reading, the socket never takes another frame).
    struct Client {
        send: mpsc::UnboundedSender<Message>,
        received: mpsc::UnboundedReceiver<Message>,
        reading: Arc<AtomicBool>,
    }

    /// The server's end.
    struct Pipe {
        incoming: mpsc::UnboundedReceiver<Message>,
        outgoing: mpsc::UnboundedSender<Message>,
        reading: Arc<AtomicBool>,
    }

    fn pipe() -> (Client, Pipe) {
        let (to_server, incoming) = mpsc::unbounded_channel();
        let (outgoing, received) = mpsc::unbounded_channel();
        let reading = Arc::new(AtomicBool::new(true));
        let client = Client {
            send: to_server,
            received,
            reading: reading.clone(),
        };
        let server = Pipe {
            incoming,
            outgoing,
            reading,
        };
        (client, server)
    }

    impl Stream for Pipe {
        type Item = Result<Message, axum::Error>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_recv(cx).map(|m| m.map(Ok))
        }
    }

    impl Sink<Message> for Pipe {
        type Error = axum::Error;

        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            // A client that stopped reading: the kernel's buffers are full, the write waits
            // for ever (the loop's deadline is what wakes it).
            if self.reading.load(Relaxed) {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            }
        }

        fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            let _ = self.outgoing.send(item);
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    async fn hub(tag: &str, tune: impl FnOnce(&mut tiaojie_config::Config)) -> Arc<Hub> {
        crate::testing::hub(&format!("ws-{tag}"), tune, None).await
    }

    fn text(m: &Message) -> serde_json::Value {
        match m {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_malformed_frame_is_answered_and_the_connection_stays() {
        let hub = hub("malformed", |_| {}).await;
        let (mut client, socket) = pipe();
        let task = tokio::spawn(serve(socket, hub.clone()));
        for _ in 0..2 {
            client
                .send
                .send(Message::Text("{nope".into()))
                .expect("send");
            let reply = client.received.recv().await.expect("a reply");
            assert_eq!(text(&reply)["type"], "error");
            assert_eq!(text(&reply)["code"], "malformed_message");
        }
        client
            .send
            .send(Message::Binary(Default::default()))
            .expect("send");
        let reply = client.received.recv().await.expect("a reply");
        assert_eq!(text(&reply)["code"], "unsupported_frame");
        assert!(!task.is_finished(), "bad input does not end the connection");
        drop(client.send);
        task.await.expect("the task ends when the socket does");
        assert_eq!(hub.metrics.connections_open.load(Relaxed), 0);
    }

    #[tokio::test]
    async fn a_socket_that_never_joins_is_closed_with_4408() {
        let hub = hub("join-deadline", |c| {
            c.signaling.join_timeout = Duration::from_millis(100);
        })
        .await;
        let (mut client, socket) = pipe();
        let task = tokio::spawn(serve(socket, hub.clone()));
        match client.received.recv().await {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CLOSE_JOIN_TIMEOUT),
            other => panic!("expected close 4408, got {other:?}"),
        }
        task.await.expect("the task ends");
        assert_eq!(hub.metrics.join_timeouts.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_ends_its_task() {
        let hub = hub("stalled", |c| {
            c.signaling.send_timeout = Duration::from_millis(100);
        })
        .await;
        let (client, socket) = pipe();
        let task = tokio::spawn(serve(socket, hub.clone()));
        client.reading.store(false, Relaxed);
        // The answer to this cannot be written: the write's deadline ends the connection.
        client
            .send
            .send(Message::Text("{nope".into()))
            .expect("send");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the task ends instead of waiting for the client")
            .expect("no panic");
        assert_eq!(hub.metrics.stalled.load(Relaxed), 1);
        assert_eq!(hub.metrics.connections_open.load(Relaxed), 0);
    }
}

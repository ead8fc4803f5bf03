//! A signaling client over a real WebSocket, for tests and the load generator.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something the server should send promptly.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// A close frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Close code.
    pub code: u16,
    /// Reason text.
    pub reason: String,
}

/// A protocol client.
pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Messages read while waiting for something else, oldest first.
    pending: VecDeque<Value>,
    next_id: u64,
    /// The latest resume token.
    pub resume_token: String,
    /// The highest event seq seen.
    pub last_seq: u64,
    /// The close frame, once received.
    pub closed: Option<Close>,
}

impl WsClient {
    /// Connects (no join yet).
    pub async fn connect(url: &str) -> WsClient {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket connects");
        WsClient::over(ws)
    }

    fn over(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> WsClient {
        WsClient {
            ws,
            pending: VecDeque::new(),
            next_id: 0,
            resume_token: String::new(),
            last_seq: 0,
            closed: None,
        }
    }

    /// Connects over a socket with an 8 KiB receive buffer (fixed, so the kernel cannot grow
    /// it): a client that stops reading fills it quickly, as a stalled phone would.
    pub async fn connect_small_window(url: &str) -> WsClient {
        let addr = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|host| host.parse::<std::net::SocketAddr>().ok())
            .expect("a ws://IP:PORT/ URL");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(8 * 1024).expect("SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("connects");
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
            .await
            .expect("websocket handshake");
        WsClient::over(ws)
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.expect("send");
    }

    /// Sends `message` with a fresh id and returns the reply carrying that id.
    pub async fn request(&mut self, mut message: Value) -> Value {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        message["id"] = json!(id);
        self.send_text(&message.to_string()).await;
        self.reply_to(&id).await
    }

    /// Waits for the reply with `id`, keeping everything else for later.
    pub async fn reply_to(&mut self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        if let Some(pos) = self.pending.iter().position(|m| m["id"] == id) {
            return self.pending.remove(pos).unwrap_or_default();
        }
        loop {
            let message = self
                .read_until(deadline)
                .await
                .unwrap_or_else(|| panic!("no reply to {id} (closed: {:?})", self.closed));
            if message["id"] == id {
                return message;
            }
            self.pending.push_back(message);
        }
    }

    /// `join`; remembers the resume token.
    pub async fn join(&mut self, room: &str, token: &str) -> Value {
        let reply = self
            .request(json!({"type": "join", "room": room, "token": token}))
            .await;
        self.remember(&reply);
        reply
    }

    /// `resume` with the remembered token and seq.
    pub async fn resume_from(&mut self, resume_token: &str, last_seq: u64) -> Value {
        let reply = self
            .request(json!({"type": "resume", "resume_token": resume_token, "last_seq": last_seq}))
            .await;
        self.remember(&reply);
        reply
    }

    fn remember(&mut self, reply: &Value) {
        if let Some(token) = reply["resume_token"].as_str() {
            self.resume_token = token.to_string();
        }
        if let Some(seq) = reply["seq"].as_u64() {
            self.last_seq = self.last_seq.max(seq);
        }
    }

    /// The next message (reply or event) within `wait`, or `None`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        if let Some(m) = self.pending.pop_front() {
            return Some(m);
        }
        self.read_until(tokio::time::Instant::now() + wait).await
    }

    /// The next message of `kind` within [`PATIENCE`], skipping (and returning) others before it.
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.expect_skipping(kind).await.0
    }

    /// Like [`WsClient::expect`], also returning what came before.
    pub async fn expect_skipping(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut skipped = Vec::new();
        loop {
            let message = match self.pending.pop_front() {
                Some(m) => m,
                None => self.read_until(deadline).await.unwrap_or_else(|| {
                    panic!(
                        "no {kind} message; saw {skipped:?}; closed: {:?}",
                        self.closed
                    )
                }),
            };
            if message["type"] == kind {
                return (message, skipped);
            }
            skipped.push(message);
        }
    }

    /// Everything that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<Value> {
        let mut out: Vec<Value> = self.pending.drain(..).collect();
        let deadline = tokio::time::Instant::now() + wait;
        while let Some(m) = self.read_until(deadline).await {
            out.push(m);
        }
        out
    }

    /// Waits for the server's close frame.
    pub async fn expect_close(&mut self) -> Close {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.closed.is_none() {
            match self.read_until(deadline).await {
                Some(m) => self.pending.push_back(m),
                None => break,
            }
        }
        self.closed
            .clone()
            .expect("server closed the connection with a close frame")
    }

    /// Whether the connection still answers a ping.
    pub async fn ping(&mut self) -> bool {
        if self.closed.is_some() {
            return false;
        }
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        if self
            .ws
            .send(Message::text(json!({"type": "ping", "id": id}).to_string()))
            .await
            .is_err()
        {
            return false;
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.read_until(deadline).await {
                Some(m) if m["id"] == id => return m["type"] == "pong",
                Some(m) => self.pending.push_back(m),
                None => return false,
            }
        }
    }

    /// Drops the TCP connection without a close frame, as a vanished network would.
    pub fn vanish(self) {
        drop(self);
    }

    /// Sends a close frame and waits briefly for the server's.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.ws.next().await.is_some() {}
        })
        .await;
    }

    async fn read_until(&mut self, deadline: tokio::time::Instant) -> Option<Value> {
        loop {
            if self.closed.is_some() {
                return None;
            }
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match frame {
                Ok(Message::Text(text)) => {
                    let value: Value =
                        serde_json::from_str(text.as_str()).expect("server sends JSON");
                    if value.get("id").is_none()
                        && let Some(seq) = value["seq"].as_u64()
                    {
                        self.last_seq = self.last_seq.max(seq);
                    }
                    return Some(value);
                }
                Ok(Message::Close(frame)) => {
                    self.closed = Some(frame.map_or(
                        Close {
                            code: 1005,
                            reason: String::new(),
                        },
                        |f| Close {
                            code: u16::from(f.code),
                            reason: f.reason.to_string(),
                        },
                    ));
                    return None;
                }
                Ok(_) => continue,
                Err(_) => {
                    self.closed.get_or_insert(Close {
                        code: 1006,
                        reason: "connection error".into(),
                    });
                    return None;
                }
            }
        }
    }
}

//! Judicial confirmation's test parts: a case brought to an agreement in effect through the API,
//! the court bridge in-process (its link can be cut and restored), and a raw bridge connection
//! for feeding the server hand-made frames.

use crate::TestServer;
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tiaojie_confirmation::wire::{self, FromBridge, ToBridge};
use tiaojie_confirmation::{Envelope, Signer};
use tiaojie_court_bridge::config::{BridgeConfig, Judge};
use tiaojie_court_bridge::{Bridge, api, link};
use tiaojie_domain::Role;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as Frame;

/// The judge's API token in test bridges.
pub const JUDGE_TOKEN: &str = "judge-sun-token-0123456789abcdef";

/// A case whose agreement is in effect, and the parties' session tokens.
pub struct SignedCase {
    /// Case id.
    pub id: String,
    /// Party → session token.
    pub tokens: HashMap<&'static str, String>,
    /// The agreement's hash.
    pub sha256: String,
}

/// A server whose control API can be called: in-process or a child process.
pub trait ApiTarget: Sync {
    /// A room-less staff token.
    fn staff(&self, identity: &str, role: Role) -> String;
    /// `METHOD /api/...` with `token`: status and JSON body.
    fn call_api(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> impl std::future::Future<Output = (u16, Value)> + Send;
}

impl ApiTarget for TestServer {
    fn staff(&self, identity: &str, role: Role) -> String {
        self.staff_token(identity, role)
    }
    async fn call_api(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.api_as(token, method, path, body).await
    }
}

async fn call(
    server: &impl ApiTarget,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (status, value) = server.call_api(token, method.clone(), path, body).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {value}"
    );
    value
}

/// Both parties apply for judicial confirmation of `case`'s agreement.
pub async fn apply(server: &impl ApiTarget, case: &SignedCase) -> Value {
    let mut last = Value::Null;
    for p in ["p-zhang", "p-li"] {
        let path = format!(
            "/api/cases/{}/members/{p}/confirmation-application",
            case.id
        );
        last = call(server, &case.tokens[p], Method::PUT, &path, None).await;
    }
    last
}

/// Opens case `number` (parties p-zhang and p-li, mediator med-wang), verifies both parties in
/// a session, drafts an agreement and has everyone sign it.
pub async fn signed_case(server: &impl ApiTarget, number: &str) -> SignedCase {
    let staff = server.staff("med-wang", Role::Mediator);
    let case = call(
        server,
        &staff,
        Method::POST,
        "/api/cases",
        Some(json!({
            "number": number, "case_type": "民间借贷纠纷", "claim_amount": 4_000_000,
            "stage": "pre_filing",
            "mediator": {"id": "med-wang", "name": "王调解", "role": "mediator"},
            "members": [
                {"id": "p-zhang", "name": "张三", "role": "party", "side": "applicant"},
                {"id": "p-li", "name": "李四", "role": "party", "side": "respondent"},
                {"id": "lawyer-zhao", "name": "赵律师", "role": "agent", "side": "applicant",
                 "represents": "p-zhang"},
            ],
        })),
    )
    .await;
    let id = case["id"].as_str().expect("case id").to_string();
    let base = format!("/api/cases/{id}");
    call(
        server,
        &staff,
        Method::POST,
        &format!("{base}/sessions"),
        Some(json!({"scheduled_at": 1_800_000_000_000_i64})),
    )
    .await;
    let s1 = format!("{base}/sessions/1");
    let mut tokens = HashMap::new();
    for person in ["p-zhang", "p-li", "lawyer-zhao"] {
        let inv = call(
            server,
            &staff,
            Method::POST,
            &format!("{s1}/invitations"),
            Some(json!({"person": person})),
        )
        .await;
        tokens.insert(person, inv["token"].as_str().expect("token").to_string());
    }
    call(server, &staff, Method::POST, &format!("{s1}/lobby"), None).await;
    for person in ["p-zhang", "p-li"] {
        call(
            server,
            &staff,
            Method::PUT,
            &format!("{s1}/members/{person}/identity"),
            Some(json!({"method": "face_recognition", "passed": true, "note": ""})),
        )
        .await;
    }
    let drafted = call(
        server,
        &staff,
        Method::POST,
        &format!("{base}/agreement/versions"),
        Some(json!({"terms": "一、李四于2026年12月31日前向张三支付人民币四万元。"})),
    )
    .await;
    let sha256 = drafted["versions"][0]["sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    let sign = json!({"version": 1, "sha256": sha256});
    for person in ["p-zhang", "p-li"] {
        call(
            server,
            &tokens[person],
            Method::PUT,
            &format!("{base}/agreement/signatures/{person}"),
            Some(sign.clone()),
        )
        .await;
    }
    let signed = call(
        server,
        &staff,
        Method::PUT,
        &format!("{base}/agreement/signatures/med-wang"),
        Some(sign),
    )
    .await;
    assert!(signed["effective_at"].is_i64(), "{signed}");
    SignedCase { id, tokens, sha256 }
}

/// Writes a fresh bridge key into `dir`; returns the public key (for the server's
/// `confirmation.bridge_keys`).
pub fn bridge_key(dir: &Path) -> String {
    let config = bridge_config(dir, "ws://127.0.0.1:1/confirmation/bridge", "");
    std::fs::create_dir_all(dir).expect("bridge dir");
    config
        .load_or_generate_key()
        .expect("bridge key")
        .public_b64()
}

/// A bridge configuration in `dir` for `server_url`, one judge with [`JUDGE_TOKEN`].
pub fn bridge_config(dir: &Path, server_url: &str, server_public_key: &str) -> BridgeConfig {
    BridgeConfig {
        name: "test-court".into(),
        server_url: server_url.into(),
        server_public_key: server_public_key.into(),
        data_dir: dir.to_path_buf(),
        key_file: String::new(),
        listen: "127.0.0.1:0".into(),
        judges: vec![Judge {
            id: "judge-sun".into(),
            name: "孙法官".into(),
            token: JUDGE_TOKEN.into(),
        }],
        court: "北京市朝阳区人民法院".into(),
        font: String::new(),
        font_bold: String::new(),
    }
}

/// The court bridge, in-process.
pub struct TestBridge {
    /// The bridge.
    pub bridge: Arc<Bridge>,
    /// The judges' API address.
    pub addr: std::net::SocketAddr,
    link: Option<JoinHandle<()>>,
    api: JoinHandle<()>,
    http: reqwest::Client,
}

impl TestBridge {
    /// Opens the bridge in `dir` (key from [`bridge_key`]) for `server`, connects it.
    pub async fn start(dir: &Path, server: &TestServer) -> TestBridge {
        TestBridge::start_via(dir, server, server.addr).await
    }

    /// Like [`TestBridge::start`], dialling `server` at `via` (a [`crate::net::TcpPath`]).
    pub async fn start_via(
        dir: &Path,
        server: &TestServer,
        via: std::net::SocketAddr,
    ) -> TestBridge {
        let config = bridge_config(
            dir,
            &format!("ws://{via}{}", wire::PATH),
            &server.server_public_key(),
        );
        let bridge = Bridge::open(config).await.expect("bridge opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = api::router(bridge.clone());
        let api = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let mut b = TestBridge {
            link: None,
            bridge,
            addr,
            api,
            http: reqwest::Client::new(),
        };
        b.connect();
        b
    }

    /// (Re)starts the outgoing link.
    pub fn connect(&mut self) {
        if self.link.is_none() {
            self.link = Some(tokio::spawn(link::run(self.bridge.clone())));
        }
    }

    /// Cuts the link (the connection drops without a goodbye).
    pub fn cut(&mut self) {
        if let Some(link) = self.link.take() {
            link.abort();
        }
        self.bridge
            .connected
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// `METHOD /api/...` on the judges' API with the judge's token.
    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("http://{}/api{path}", self.addr))
            .bearer_auth(JUDGE_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("bridge api");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Raw bytes from the judges' API (a document).
    pub async fn api_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let response = self
            .http
            .get(format!("http://{}/api{path}", self.addr))
            .bearer_auth(JUDGE_TOKEN)
            .send()
            .await
            .expect("bridge api");
        let status = response.status().as_u16();
        (
            status,
            response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default(),
        )
    }

    /// Waits (up to 20 s) for the first application in the court's inbox; its id.
    pub async fn first_application(&self) -> String {
        for _ in 0..400 {
            let (_, list) = self.api(Method::GET, "/applications", None).await;
            if let Some(id) = list
                .as_array()
                .and_then(|l| l.first())
                .and_then(|d| d["id"].as_str())
            {
                return id.to_string();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no application reached the court");
    }

    /// A judge's action on an application; the status.
    pub async fn act(&self, application: &str, action: Value) -> u16 {
        let path = format!("/applications/{application}/actions");
        self.api(Method::POST, &path, Some(action)).await.0
    }

    /// Stops everything.
    pub fn stop(mut self) {
        self.cut();
        self.api.abort();
    }
}

/// A bridge connection made by hand: for frames the real bridge would never send.
pub struct RawBridge {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawBridge {
    /// Connects and answers the challenge with `key`; the server's reply (welcome, or the
    /// close code when refused).
    pub async fn connect(server: &TestServer, key: &Signer) -> Result<RawBridge, u16> {
        let url = format!("ws://{}{}", server.addr, wire::PATH);
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("connects");
        let nonce = match next(&mut ws).await {
            Ok(ToBridge::Challenge { nonce }) => nonce,
            other => panic!("expected a challenge, got {other:?}"),
        };
        let auth = FromBridge::Auth {
            bridge: "raw".into(),
            signature: key.sign_b64(&wire::auth_bytes(&nonce)),
        };
        ws.send(Frame::text(serde_json::to_string(&auth).expect("json")))
            .await
            .expect("send");
        match next(&mut ws).await {
            Ok(ToBridge::Welcome { .. }) => Ok(RawBridge { ws }),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(code) => Err(code),
        }
    }

    /// The next delivery within `wait` (`None`: nothing came).
    pub async fn delivery(&mut self, wait: std::time::Duration) -> Option<Envelope> {
        loop {
            let frame = tokio::time::timeout(wait, self.ws.next()).await.ok()??;
            if let Ok(Frame::Text(t)) = frame
                && let Ok(ToBridge::Deliver { envelope }) = serde_json::from_str(t.as_str())
            {
                return Some(envelope);
            }
        }
    }

    /// Acknowledges a delivery.
    pub async fn ack(&mut self, message_id: &str) {
        let frame = FromBridge::Ack {
            message_id: message_id.to_string(),
        };
        self.ws
            .send(Frame::text(serde_json::to_string(&frame).expect("json")))
            .await
            .expect("send");
    }

    /// Sends a result and returns the server's acknowledgement, skipping deliveries.
    pub async fn result(&mut self, envelope: Envelope) -> ToBridge {
        let frame = FromBridge::Result { envelope };
        self.ws
            .send(Frame::text(serde_json::to_string(&frame).expect("json")))
            .await
            .expect("send");
        loop {
            match next(&mut self.ws).await {
                Ok(ack @ ToBridge::ResultAck { .. }) => return ack,
                Ok(_) => {}
                Err(code) => panic!("closed {code}"),
            }
        }
    }
}

/// The next protocol frame, or the close code.
async fn next<S>(ws: &mut S) -> Result<ToBridge, u16>
where
    S: futures_util::Stream<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Frame::Text(t)))) => {
                return Ok(serde_json::from_str(t.as_str()).expect("a protocol frame"));
            }
            Ok(Some(Ok(Frame::Close(c)))) => return Err(c.map_or(1005, |c| u16::from(c.code))),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return Err(1006),
            Err(_) => panic!("no frame within 10 s"),
        }
    }
}

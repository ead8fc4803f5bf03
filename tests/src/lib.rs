//! tiaojie's cross-crate test harness.
//!
//! Map of the crate:
//! - [`TestServer`]: the real server in-process on `127.0.0.1:0`, on a fresh SQLite file or a
//!   fresh PostgreSQL database ([`Backend`]), with an admin token and HTTP helpers.
//! - [`WsClient`]: a protocol client over a real WebSocket that keeps events and replies apart,
//!   so a test can wait for "the reply to request 3" or "the next participant.left".
//! - [`cases`]: a case to test with (its form, everyone's links) and a checked API call.
//! - [`participant`]: the headless WebRTC participant (webrtc-rs): signaling, real Opus and
//!   well-formed VP8 or H.264 out, per-publisher receive counters, latency and layer in.
//! - [`h264`]: synthetic H.264 access units and finding their slices in RTP payloads.
//! - [`net`]: a damageable network for it (loss, a bandwidth cap, a cut), as a webrtc-rs runtime.
//! - [`postgres`]: creating and dropping per-test PostgreSQL databases.
//! - [`child`]: the server as a child process and measuring helpers, for the benchmarks.
//! - [`pdf_text`]: what `pdftotext` reads from a document the server made.
//! - `src/bin/signaling_load.rs`, `src/bin/media_bench.rs`: the load generators (BENCHMARKS.md).
//!
//! Everything binds and connects to 127.0.0.1 only.

pub mod cases;
pub mod child;
pub mod court;
pub mod court_crash;
pub mod h264;
pub mod net;
pub mod participant;
pub mod postgres;

/// Defines each listed `async fn NAME(backend: Backend)` scenario as two tests,
/// `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::Backend::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::$name($crate::Backend::Postgres).await } )*
        }
    };
}
mod ws_client;

pub use ws_client::{Close, WsClient};

/// The text `pdftotext` (Debian's poppler-utils, installed by scripts/test) reads from a PDF,
/// without whitespace (it breaks lines where the page does).
pub fn pdf_text(pdf: &[u8]) -> String {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let dir = TempDir::new("pdf");
    let path = dir.0.join("document.pdf");
    std::fs::write(&path, pdf).expect("write the PDF");
    let out = std::process::Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext runs (poppler-utils)");
    assert!(out.status.success(), "pdftotext failed");
    String::from_utf8_lossy(&out.stdout)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tiaojie_config::Config;
use tiaojie_domain::Role;
use tiaojie_server::Server;
use tiaojie_signaling::token::TokenRequest;

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the machine's PostgreSQL server (see [`postgres::base_url`]).
    Postgres,
}

/// A unique temporary directory, removed by [`TempDir::remove`] (or left for inspection).
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `<tmp>/tiaojie-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tiaojie-{tag}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            tiaojie_domain::clock::now_millis()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir(path)
    }

    /// Deletes the directory.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The real server, in-process, on an ephemeral port.
pub struct TestServer {
    /// The running server; `None` after [`TestServer::stop`].
    pub server: Option<Server>,
    /// Its address.
    pub addr: std::net::SocketAddr,
    /// A token with the admin grant.
    pub admin_token: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// The configuration it runs with.
    pub config: Config,
    data_dir: TempDir,
    pg_database: Option<String>,
}

impl TestServer {
    /// A server with test defaults on `backend`.
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    /// A server with test defaults, adjusted by `adjust`, on `backend`.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestServer {
        let data_dir = TempDir::new("server");
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse().expect("address");
        config.server.data_dir = data_dir.0.clone();
        config.server.shutdown_timeout = Duration::from_secs(3);
        config.media.bind = "127.0.0.1:0".parse().expect("address");
        config.auth.secret = "test-secret-test-secret-test-secret-0123".into();
        let pg_database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let (name, url) = postgres::create_database().await;
                config.database.url = url;
                Some(name)
            }
        };
        adjust(&mut config);
        let server = Server::start(config.clone()).await.expect("server starts");
        let admin_token = issue(&server, None, "ops-admin", Role::Admin);
        TestServer {
            addr: server.addr,
            server: Some(server),
            admin_token,
            http: reqwest::Client::new(),
            config,
            data_dir,
            pg_database,
        }
    }

    fn running(&self) -> &Server {
        self.server.as_ref().expect("server is running")
    }

    /// A join token for `identity` in `room` with `role`'s default grants.
    pub fn token(&self, room: &str, identity: &str, role: Role) -> String {
        issue(self.running(), Some(room), identity, role)
    }

    /// A join token like [`TestServer::token`] that expires after `ttl`.
    pub fn token_with_ttl(&self, room: &str, identity: &str, role: Role, ttl: Duration) -> String {
        self.running()
            .state
            .hub
            .keys()
            .issue(&TokenRequest {
                identity: identity.into(),
                name: format!("{identity} name"),
                room: Some(room.into()),
                role,
                grants: None,
                ttl: Some(ttl),
                not_before_secs: 0,
            })
            .expect("issue token")
            .0
    }

    /// A room-less staff token (an admin's, or a mediator's for their own cases).
    pub fn staff_token(&self, identity: &str, role: Role) -> String {
        issue(self.running(), None, identity, role)
    }

    /// The server's workflow clock (tests move it forward to reach time limits).
    pub fn clock(&self) -> &tiaojie_domain::clock::Clock {
        &self.running().state.hub.clock
    }

    /// The server's Ed25519 public key (base64): what the court bridge verifies with.
    pub fn server_public_key(&self) -> String {
        self.running()
            .state
            .court
            .signer
            .as_ref()
            .map(|s| s.public_b64())
            .unwrap_or_default()
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// A connected, not yet joined client.
    pub async fn connect(&self) -> WsClient {
        WsClient::connect(&self.ws_url()).await
    }

    /// A client joined to `room` as `identity`; the `joined` reply is in [`WsClient::joined`].
    pub async fn join(&self, room: &str, identity: &str, role: Role) -> WsClient {
        let mut client = self.connect().await;
        let token = self.token(room, identity, role);
        let reply = client.join(room, &token).await;
        assert_eq!(reply["type"], "joined", "join as {identity}: {reply}");
        client
    }

    /// `METHOD /api/...` with the admin token; returns status and JSON body (Null if empty).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let token = self.admin_token.clone();
        self.api_as(&token, method, path, body).await
    }

    /// `METHOD /api/...` with a given bearer token.
    pub async fn api_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("http://{}{path}", self.addr))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("http request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A figure of `/metrics` (NaN if absent).
    pub async fn metric(&self, name: &str) -> f64 {
        self.metric_via(&self.http, name).await
    }

    /// A figure of `/metrics`, asked with `http` (a client on another source address, say).
    pub async fn metric_via(&self, http: &reqwest::Client, name: &str) -> f64 {
        let text = http
            .get(format!("http://{}/metrics", self.addr))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(f64::NAN)
    }

    /// Shuts the server down gracefully (clients are told), keeping the database for inspection.
    pub async fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// Shuts down and starts again on the same data and database, with the configuration
    /// changed by `adjust` (an operator's edit between two runs). The address changes.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Config)) {
        self.shutdown().await;
        adjust(&mut self.config);
        self.config.server.listen = "127.0.0.1:0".parse().expect("address");
        let server = Server::start(self.config.clone())
            .await
            .expect("server starts again");
        self.addr = server.addr;
        self.admin_token = issue(&server, None, "ops-admin", Role::Admin);
        self.server = Some(server);
    }

    /// Shuts down and deletes the data directory and PostgreSQL database.
    pub async fn stop(mut self) {
        self.shutdown().await;
        self.data_dir.remove();
        if let Some(name) = self.pg_database.take() {
            postgres::drop_database(&name).await;
        }
    }
}

fn issue(server: &Server, room: Option<&str>, identity: &str, role: Role) -> String {
    server
        .state
        .hub
        .keys()
        .issue(&TokenRequest {
            identity: identity.into(),
            name: format!("{identity} name"),
            room: room.map(tiaojie_domain::RoomName::from),
            role,
            grants: None,
            ttl: None,
            not_before_secs: 0,
        })
        .expect("issue token")
        .0
}

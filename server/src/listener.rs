//! Accepting connections: the HTTP/1.1 listener with the limits a public server needs before
//! any request is read.
//!
//! A client that opens sockets and never finishes a request (slowloris), or opens thousands and
//! never joins, must not use up the process's descriptors and lock everyone else out. So:
//! - a request's headers must arrive within `server.header_timeout`, or the connection closes;
//! - one address holds at most `server.max_connections_per_address` connections (HTTP and
//!   WebSocket alike: the count follows the socket, through the upgrade); the next gets a short
//!   503 with a typed error and is closed;
//! - the descriptor limit is raised to the hard limit at start and reported (log and `/metrics`);
//!   accept failures (e.g. out of descriptors) back off instead of spinning.
//!
//! Graceful shutdown: every connection is told to finish its request and close; `serve` returns
//! when all HTTP connections have (upgraded WebSockets are ended by the hub, not here).

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tiaojie_signaling::metrics::Metrics;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the listener enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a request's headers.
    pub header_timeout: Duration,
    /// Most open connections from one address.
    pub per_address: usize,
}

/// Open connections per client address.
#[derive(Debug, Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

impl PerAddress {
    /// A slot for `ip`, or `None` when it already holds `max`.
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self.clone(),
            ip,
        })
    }
}

/// One connection's place in its address's count; given back when the socket closes.
#[derive(Debug)]
struct Slot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.owner.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A socket that holds its address's slot for as long as it is open — also after an upgrade
/// to WebSocket, which takes the socket over.
#[derive(Debug)]
struct Counted {
    stream: TcpStream,
    _slot: Slot,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The answer to a connection over its address's limit: written at once, then closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\nretry-after: 5\r\nconnection: close\r\ncontent-length: 97\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many open connections from this address\"}}";

/// Serves `router` on `listener` until `stop` fires, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let per_address = Arc::new(PerAddress::default());
    let (shutdown, watching) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of descriptors, most likely: wait for some to close instead of spinning.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = per_address.take(peer.ip(), limits.per_address) else {
            metrics.connections_refused.fetch_add(1, Relaxed);
            tokio::spawn(refuse(stream, peer));
            continue;
        };
        // No TCP_NODELAY: axum's own default, which every figure in BENCHMARKS.md was measured
        // with. Turned on, the court link's small frames stopped coalescing and rulings took
        // p99 38-42 ms instead of 4-10 ms in `confirmation-bench` (2026-12-05).
        let io = TokioIo::new(Counted {
            stream,
            _slot: slot,
        });
        let service = TowerToHyperService::new(router.clone());
        let connection = http.serve_connection(io, service).with_upgrades();
        let mut watching = watching.clone();
        let metrics = metrics.clone();
        metrics.http_connections_open.fetch_add(1, Relaxed);
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended");
                    }
                }
                _ = watching.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            metrics.http_connections_open.fetch_sub(1, Relaxed);
            drop(watching);
        });
    }
    drop(listener);
    drop(watching);
    let _ = shutdown.send(true);
    shutdown.closed().await;
}

/// Tells a client over its address's limit why, briefly, and closes.
async fn refuse(mut stream: TcpStream, peer: SocketAddr) {
    tracing::debug!(%peer, "too many connections from this address");
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(TOO_MANY)).await;
}

/// Raises the open-descriptor limit to what the system allows this process and returns it
/// (the soft limit in force). Each participant holds a WebSocket; the common default of 1,024
/// would lock everyone out long before the server is busy.
pub fn raise_descriptor_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "could not raise the descriptor limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the descriptor limit");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_limit_and_slots_come_back_when_sockets_close() {
        let counts = Arc::new(PerAddress::default());
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let first = counts.take(a, 2);
        let second = counts.take(a, 2);
        assert!(first.is_some() && second.is_some());
        assert!(counts.take(a, 2).is_none(), "the third from one address");
        assert!(
            counts.take(b, 2).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert!(
            counts.take(a, 2).is_some(),
            "a closed socket frees its slot"
        );
    }

    #[test]
    fn the_refusal_is_a_well_formed_response_with_a_typed_error() {
        let text = std::str::from_utf8(TOO_MANY).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("content-length");
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error"]["code"], "too_many_connections");
    }
}

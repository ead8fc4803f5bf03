//! Prometheus metrics in text exposition format, kept as atomics: no registry, no locks, and
//! nothing on the message path costlier than an atomic add.

use crate::protocol::ErrorCode;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The server's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    /// WebSocket connections accepted, ever.
    pub connections_total: AtomicU64,
    /// WebSocket connections open now.
    pub connections_open: AtomicI64,
    /// Live rooms (with someone present or within grace).
    pub rooms_live: AtomicI64,
    /// Participants present (connected or within grace).
    pub participants: AtomicI64,
    /// Client messages received.
    pub messages_in: AtomicU64,
    /// Messages queued to clients (events and replies).
    pub messages_out: AtomicU64,
    /// Joins that succeeded.
    pub joins: AtomicU64,
    /// Resumes that succeeded.
    pub resumes: AtomicU64,
    /// Control API requests served.
    pub api_requests: AtomicU64,
    /// HTTP connections open now (a WebSocket leaves this count when it upgrades).
    pub http_connections_open: AtomicI64,
    /// Connections refused because their address held too many.
    pub connections_refused: AtomicU64,
    /// WebSocket connections dropped because the client stopped reading (a send missed its
    /// deadline).
    pub stalled: AtomicU64,
    /// WebSocket connections closed because they did not join in time.
    pub join_timeouts: AtomicU64,
    /// The open-descriptor limit in force (set at start).
    pub descriptor_limit: AtomicU64,
    errors: Vec<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            connections_total: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            rooms_live: AtomicI64::new(0),
            participants: AtomicI64::new(0),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            joins: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            api_requests: AtomicU64::new(0),
            http_connections_open: AtomicI64::new(0),
            connections_refused: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
            join_timeouts: AtomicU64::new(0),
            descriptor_limit: AtomicU64::new(0),
            errors: ErrorCode::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Metrics {
    /// Counts an error answered with `code` (WebSocket or API).
    pub fn error(&self, code: ErrorCode) {
        if let Some(i) = ErrorCode::ALL.iter().position(|c| *c == code) {
            self.errors[i].fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "tiaojie_connections_total",
            "counter",
            "WebSocket connections accepted.",
            self.connections_total.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_connections_open",
            "gauge",
            "WebSocket connections open.",
            self.connections_open.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_rooms_live",
            "gauge",
            "Rooms with participants present.",
            self.rooms_live.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_participants",
            "gauge",
            "Participants present, connected or within the resume grace period.",
            self.participants.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_messages_in_total",
            "counter",
            "Client WebSocket messages received.",
            self.messages_in.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_messages_out_total",
            "counter",
            "WebSocket messages queued to clients.",
            self.messages_out.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_joins_total",
            "counter",
            "Successful joins.",
            self.joins.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_resumes_total",
            "counter",
            "Successful resumes.",
            self.resumes.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_api_requests_total",
            "counter",
            "Control API requests.",
            self.api_requests.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_http_connections_open",
            "gauge",
            "HTTP connections open (not counting upgraded WebSockets).",
            self.http_connections_open.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_connections_refused_total",
            "counter",
            "Connections refused because their address held too many.",
            self.connections_refused.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_stalled_connections_total",
            "counter",
            "WebSocket connections dropped because the client stopped reading.",
            self.stalled.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_join_timeouts_total",
            "counter",
            "WebSocket connections closed for not joining in time.",
            self.join_timeouts.load(Relaxed).to_string(),
        );
        metric(
            "tiaojie_descriptor_limit",
            "gauge",
            "The process's open-descriptor limit.",
            self.descriptor_limit.load(Relaxed).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP tiaojie_errors_total Errors answered, by code.\n# TYPE tiaojie_errors_total counter"
        );
        for (code, count) in ErrorCode::ALL.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "tiaojie_errors_total{{code=\"{}\"}} {}",
                code.as_str(),
                count.load(Relaxed)
            );
        }
        out
    }
}

/// The media plane's counters in Prometheus text.
pub fn render_media(c: &tiaojie_media::SfuCounters) -> String {
    let mut out = String::with_capacity(1024);
    for (name, kind, help, value) in [
        (
            "tiaojie_media_datagrams_in_total",
            "counter",
            "UDP datagrams received by the SFU.",
            c.datagrams_in(),
        ),
        (
            "tiaojie_media_datagrams_unknown_total",
            "counter",
            "Datagrams dropped because no participant owns them (garbage, floods, stale peers).",
            c.datagrams_unknown(),
        ),
        (
            "tiaojie_media_datagrams_out_total",
            "counter",
            "UDP datagrams sent by the SFU.",
            c.datagrams_out(),
        ),
        (
            "tiaojie_media_send_failures_total",
            "counter",
            "Datagrams the socket refused (send buffer full).",
            c.send_failures(),
        ),
        (
            "tiaojie_media_packets_forwarded_total",
            "counter",
            "RTP packets written to subscribers.",
            c.packets_forwarded(),
        ),
        (
            "tiaojie_media_peers_lost_total",
            "counter",
            "Media connections lost (ICE timeout, failed state).",
            c.peers_lost(),
        ),
        (
            "tiaojie_media_peer_panics_total",
            "counter",
            "Participant media states that panicked and were isolated.",
            c.peer_panics(),
        ),
        (
            "tiaojie_media_peers",
            "gauge",
            "Participants with a media connection.",
            c.peers(),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let name = "tiaojie_media_forward_delay_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} From an RTP packet's arrival to its being queued for every subscriber.\n# TYPE {name} histogram"
    );
    let (buckets, sum_us) = c.forward_delay();
    let mut count = 0;
    for (bound, n) in buckets {
        count = n;
        match bound {
            Some(us) => {
                let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {n}", us as f64 / 1e6);
            }
            None => {
                let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
            }
        }
    }
    let _ = writeln!(
        out,
        "{name}_sum {}\n{name}_count {count}",
        sum_us as f64 / 1e6
    );
    out
}

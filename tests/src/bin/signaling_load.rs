//! `signaling-load`: the signaling load generator behind BENCHMARKS.md.
//!
//! It starts the real `tiaojie` binary as a child process (so the server's memory and CPU are
//! measured apart from the load), mints join tokens with the same secret, and drives WebSocket
//! clients that join rooms of six over 127.0.0.1:
//!
//! - `ramp`: N connections join as fast as `--concurrency` workers allow → joins per second.
//! - `idle`: then hold them all open (answering pings) and read the server's RSS.
//! - `paced`: joins at a fixed rate (open loop, latency measured from the scheduled start so a
//!   stall is not hidden) → p50/p99/max join latency.
//!
//! `signaling-load all` runs the three with the issue's figures (10,000 connections; 500/s).

use anyhow::bail;
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tiaojie_domain::Role;
use tiaojie_tests::child::{ServerProcess, Tokens, cpu_seconds_of, percentile};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "signaling-load-secret-signaling-load-secret";
const ROOM_SIZE: u64 = 6;

#[derive(Parser)]
#[command(about = "Signaling load generator: joins rooms of six against a tiaojie child process")]
struct Cli {
    /// The tiaojie binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Drive a server you started yourself at this address (e.g. under a profiler) instead of
    /// a child process; start it with TIAOJIE_AUTH_SECRET set to this tool's secret (see
    /// `SECRET` in the source) and TIAOJIE_SERVER_MAX_CONNECTIONS_PER_ADDRESS above the
    /// connection count (they all come from 127.0.0.1). Server RSS and CPU are then not reported.
    #[arg(long)]
    attach: Option<String>,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand, Clone)]
enum Mode {
    /// Ramp to N joined connections as fast as possible, then hold them idle and read RSS.
    Ramp {
        /// Connections to open.
        #[arg(long, default_value_t = 10_000)]
        connections: u64,
        /// Concurrent joiners.
        #[arg(long, default_value_t = 256)]
        concurrency: u64,
        /// Seconds to hold the connections idle before reading RSS.
        #[arg(long, default_value_t = 10)]
        hold: u64,
    },
    /// Joins at a fixed rate for a while; each client leaves after `--stay` seconds.
    Paced {
        /// Joins per second.
        #[arg(long, default_value_t = 500)]
        rate: u64,
        /// Seconds to run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Seconds each client stays before leaving.
        #[arg(long, default_value_t = 3)]
        stay: u64,
    },
    /// `ramp` with 10,000 connections, then `paced` at 500/s, each on a fresh server.
    All,
}

/// The join token of load client `i`: rooms of six, the first of each a mediator.
fn token_for(tokens: &Tokens, run: &str, i: u64) -> (String, String) {
    let room = format!("{run}-{}", i / ROOM_SIZE);
    let role = if i.is_multiple_of(ROOM_SIZE) {
        Role::Mediator
    } else {
        Role::Party
    };
    let token = tokens.issue(&room, &format!("p{i}"), &format!("Participant {i}"), role);
    (room, token)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and joins; returns the socket, the connect time and the join round trip.
async fn connect_and_join(
    url: &str,
    room: &str,
    token: &str,
) -> anyhow::Result<(Ws, Duration, Duration)> {
    let t0 = Instant::now();
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let connected = t0.elapsed();
    let t1 = Instant::now();
    ws.send(Message::text(
        json!({"type": "join", "id": 1, "room": room, "token": token}).to_string(),
    ))
    .await?;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let v: Value = serde_json::from_str(text.as_str())?;
                if v["id"] == 1 {
                    if v["type"] != "joined" {
                        bail!("join refused: {v}");
                    }
                    return Ok((ws, connected, t1.elapsed()));
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("closed before joined"),
            Err(_) => bail!("no reply to join within 10 s"),
        }
    }
}

/// Keeps a joined client alive (reading events, answering pings) until `stop` turns true.
async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>, leave: bool) {
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            frame = ws.next() => {
                if !matches!(frame, Some(Ok(_))) {
                    return;
                }
            }
        }
    }
    if leave {
        let _ = ws.send(Message::text(r#"{"type":"leave","id":2}"#)).await;
    }
    let _ = ws.close(None).await;
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn server(bin: &std::path::Path, attach: Option<&str>) -> anyhow::Result<ServerProcess> {
    match attach {
        Some(addr) => Ok(ServerProcess::attach(addr)),
        None => ServerProcess::start(
            bin,
            SECRET,
            &[
                ("TIAOJIE_SIGNALING_MAX_PARTICIPANTS_PER_ROOM", "6"),
                // Every simulated person connects from 127.0.0.1: lift the per-address cap.
                ("TIAOJIE_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "1000000"),
            ],
        ),
    }
}

async fn ramp(
    bin: &std::path::Path,
    attach: Option<&str>,
    connections: u64,
    concurrency: u64,
    hold_secs: u64,
) -> anyhow::Result<()> {
    let server = server(bin, attach)?;
    let url = format!("ws://{}/ws", server.addr);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = server.rss_kib();
    let cpu_before = server.cpu_seconds();
    // Mint tokens up front so signing is not part of what is timed.
    let minted = Tokens::new(SECRET)?;
    let tokens: Arc<Vec<(String, String)>> = Arc::new(
        (0..connections)
            .map(|i| token_for(&minted, "ramp", i))
            .collect(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let own_cpu_before = own_cpu_seconds();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (url, tokens, next, failures, stop_rx) = (
            url.clone(),
            tokens.clone(),
            next.clone(),
            failures.clone(),
            stop_rx.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= connections {
                    break;
                }
                let (room, token) = &tokens[i as usize];
                match connect_and_join(&url, room, token).await {
                    Ok((ws, _, join)) => {
                        latencies.push(join);
                        tokio::spawn(hold(ws, stop_rx.clone(), false));
                    }
                    Err(e) => {
                        if failures.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("join {i} failed: {e:#}");
                        }
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await?);
    }
    let elapsed = started.elapsed();
    let cpu_ramp = server.cpu_seconds() - cpu_before;
    let own_cpu = own_cpu_seconds() - own_cpu_before;
    latencies.sort();
    let joined = latencies.len() as u64;
    println!(
        "ramp: {joined} joined ({} failed) in {:.2} s = {:.0} joins/s; server CPU {:.2} s ({:.0} joins per server-CPU-second); load generator CPU {:.2} s",
        failures.load(Ordering::Relaxed),
        elapsed.as_secs_f64(),
        joined as f64 / elapsed.as_secs_f64(),
        cpu_ramp,
        joined as f64 / cpu_ramp.max(0.001),
        own_cpu
    );
    println!(
        "ramp: join round trip p50 {} p99 {} max {} (closed loop, {concurrency} concurrent joiners)",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0))
    );
    tokio::time::sleep(Duration::from_secs(hold_secs)).await;
    let rss_after = server.rss_kib();
    let open = proc_fd_count(server.pid());
    println!(
        "idle: {joined} connections held {hold_secs} s; server RSS {:.1} MiB (was {:.1} MiB before connecting; {:.1} KiB per connection); server fds {open}",
        rss_after as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        (rss_after.saturating_sub(rss_before)) as f64 / joined.max(1) as f64
    );
    let _ = stop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop();
    Ok(())
}

/// This process's CPU time (the load generator's share of the machine).
fn own_cpu_seconds() -> f64 {
    cpu_seconds_of("/proc/self/stat")
}

fn proc_fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn paced(
    bin: &std::path::Path,
    attach: Option<&str>,
    rate: u64,
    seconds: u64,
    stay: u64,
) -> anyhow::Result<()> {
    let server = server(bin, attach)?;
    let url = Arc::new(format!("ws://{}/ws", server.addr));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tokens = Arc::new(Tokens::new(SECRET)?);
    let total = rate * seconds;
    // Mint tokens up front so signing is not part of what is timed.
    let minted: Vec<(String, String)> =
        (0..total).map(|i| token_for(&tokens, "paced", i)).collect();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = tokio::time::Instant::now();
    let cpu_before = server.cpu_seconds();
    let mut tasks = Vec::with_capacity(total as usize);
    for (i, (room, token)) in minted.into_iter().enumerate() {
        let scheduled = started + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let result = connect_and_join(&url, &room, &token).await;
            let from_schedule = scheduled.elapsed();
            match result {
                Ok((mut ws, connect, join)) => {
                    tokio::time::sleep(Duration::from_secs(stay)).await;
                    let _ = ws.send(Message::text(r#"{"type":"leave","id":2}"#)).await;
                    let _ = ws.close(None).await;
                    Some((connect, join, from_schedule))
                }
                Err(e) => {
                    eprintln!("join failed: {e:#}");
                    None
                }
            }
        }));
    }
    let offered = started.elapsed();
    let mut joins = Vec::new();
    let mut totals = Vec::new();
    let mut connects = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await? {
            Some((c, j, s)) => {
                connects.push(c);
                joins.push(j);
                totals.push(s);
            }
            None => failed += 1,
        }
    }
    let cpu = server.cpu_seconds() - cpu_before;
    joins.sort();
    totals.sort();
    connects.sort();
    println!(
        "paced: {} joins offered at {rate}/s over {:.1} s ({failed} failed); server CPU {:.2} s ({:.0}% of one core)",
        joins.len(),
        offered.as_secs_f64(),
        cpu,
        100.0 * cpu / (offered.as_secs_f64() + stay as f64)
    );
    println!(
        "paced: join round trip (join sent → joined) p50 {} p99 {} max {}",
        ms(percentile(&joins, 0.5)),
        ms(percentile(&joins, 0.99)),
        ms(percentile(&joins, 1.0))
    );
    println!(
        "paced: from scheduled start (TCP + WebSocket handshake + join) p50 {} p99 {} max {}",
        ms(percentile(&totals, 0.5)),
        ms(percentile(&totals, 0.99)),
        ms(percentile(&totals, 1.0))
    );
    println!(
        "paced: WebSocket connect alone p50 {} p99 {}",
        ms(percentile(&connects, 0.5)),
        ms(percentile(&connects, 0.99))
    );
    server.stop();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin = match cli.server_bin {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("tiaojie"),
    };
    let attach = cli.attach.as_deref();
    if attach.is_none() && !bin.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p tiaojie-server)",
            bin.display()
        );
    }
    match cli.command {
        Mode::Ramp {
            connections,
            concurrency,
            hold,
        } => ramp(&bin, attach, connections, concurrency, hold).await,
        Mode::Paced {
            rate,
            seconds,
            stay,
        } => paced(&bin, attach, rate, seconds, stay).await,
        Mode::All => {
            ramp(&bin, attach, 10_000, 256, 10).await?;
            paced(&bin, attach, 500, 20, 3).await
        }
    }
}

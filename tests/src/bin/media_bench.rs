//! `media-bench`: the SFU benchmark behind BENCHMARKS.md.
//!
//! Starts the real `tiaojie` binary as a child process (its CPU time and memory are measured
//! apart from the load) and drives headless webrtc-rs participants over 127.0.0.1:
//!
//! - `fanout`: one publisher (VP8 ~1.5 Mbit/s + Opus) to N subscribers.
//! - `meetings`: K rooms of six, everyone publishing and receiving.
//! - `voice`: K rooms of six publishing audio only — memory per participant without video
//!   packet buffers.
//!
//! Each run reports egress packets per second, the SFU's CPU (cores), egress packets per
//! CPU-second, publisher-send → subscriber-receive latency of video frames (p50/p99; both ends
//! in this process, one clock), and memory per participant. In the same run, a minimal plain
//! UDP relay (no SRTP, no WebRTC: receive each datagram, resend it to each destination) carries
//! the same packet rate and fan-out, and its packets per CPU-second are the physical-limit
//! baseline the SFU is compared with.

use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tiaojie_domain::Role;
use tiaojie_tests::child::{ServerProcess, Tokens, cpu_seconds_of, percentile};
use tiaojie_tests::participant::{Participant, ParticipantOptions};

const SECRET: &str = "media-bench-secret-media-bench-secret-0123";

#[derive(Parser)]
#[command(about = "SFU benchmark: headless WebRTC participants against a tiaojie child process")]
struct Cli {
    /// The tiaojie binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Seconds measured (after a warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Clone)]
enum Mode {
    /// One publisher to N subscribers.
    Fanout {
        /// Subscribers.
        #[arg(long, default_value_t = 30)]
        subscribers: usize,
    },
    /// K rooms of six, everyone publishing.
    Meetings {
        /// Rooms.
        #[arg(long, default_value_t = 3)]
        rooms: usize,
    },
    /// K rooms of six, everyone publishing audio only: memory per participant without video
    /// packet buffers (retransmission history, send queues).
    Voice {
        /// Rooms.
        #[arg(long, default_value_t = 10)]
        rooms: usize,
    },
    /// `fanout`, `meetings` and `voice` with their defaults.
    All,
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// The SFU's counters at one moment.
struct Counters {
    datagrams_in: u64,
    datagrams_out: u64,
    /// The forwarding-delay histogram: (upper bound in seconds, cumulative frames).
    delay: Vec<(f64, u64)>,
}

async fn counters(addr: &str) -> anyhow::Result<Counters> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await?
        .text()
        .await?;
    let delay = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("tiaojie_media_forward_delay_seconds_bucket{le=\"")?;
            let (le, n) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, n.trim().parse().ok()?))
        })
        .collect();
    Ok(Counters {
        datagrams_in: metric(&text, "tiaojie_media_datagrams_in_total"),
        datagrams_out: metric(&text, "tiaojie_media_datagrams_out_total"),
        delay,
    })
}

/// The bucket bound at or below which `q` of the frames counted between two readings fall.
fn delay_quantile(before: &[(f64, u64)], after: &[(f64, u64)], q: f64) -> f64 {
    let counts: Vec<(f64, u64)> = after
        .iter()
        .zip(before)
        .map(|((le, a), (_, b))| (*le, a.saturating_sub(*b)))
        .collect();
    let total = counts.last().map_or(0, |c| c.1);
    counts
        .iter()
        .find(|(_, n)| *n as f64 >= q * total as f64)
        .map_or(f64::NAN, |c| c.0)
}

struct Outcome {
    label: String,
    participants: usize,
    egress_pps: f64,
    ingress_pps: f64,
    sfu_cores: f64,
    latency_p50: Duration,
    latency_p99: Duration,
    frames: usize,
    /// The SFU's own forwarding delay (histogram bucket bounds, seconds).
    forward_p50: f64,
    forward_p99: f64,
    rss_per_participant_kib: f64,
    relay_pps_per_core: f64,
    fanout: usize,
}

impl Outcome {
    fn print(&self) {
        let per_core = self.egress_pps / self.sfu_cores.max(1e-9);
        println!("## {}", self.label);
        println!("participants:                {}", self.participants);
        println!("SFU ingress packets/s:       {:.0}", self.ingress_pps);
        println!("SFU egress packets/s:        {:.0}", self.egress_pps);
        println!("SFU CPU (cores busy):        {:.3}", self.sfu_cores);
        println!("egress packets/s per core:   {per_core:.0}");
        println!(
            "raw UDP relay, same load:    {:.0} packets/s per core (fan-out {})",
            self.relay_pps_per_core, self.fanout
        );
        println!(
            "ratio to the raw relay:      {:.2}",
            per_core / self.relay_pps_per_core.max(1e-9)
        );
        if self.frames > 0 {
            println!(
                "video latency send→receive: p50 {:.2} ms, p99 {:.2} ms ({} frames)",
                self.latency_p50.as_secs_f64() * 1000.0,
                self.latency_p99.as_secs_f64() * 1000.0,
                self.frames
            );
        }
        println!(
            "SFU forwarding delay:        p50 ≤ {:.2} ms, p99 ≤ {:.2} ms (packet in → queued for every subscriber)",
            self.forward_p50 * 1000.0,
            self.forward_p99 * 1000.0
        );
        println!(
            "server RSS per participant:  {:.0} KiB",
            self.rss_per_participant_kib
        );
        println!();
    }
}

/// The plain UDP relay: one thread receives each datagram and resends it to `fanout`
/// destinations, for `packets` datagrams sent at `rate` per second. Returns packets sent per
/// second of the relay thread's CPU time.
fn raw_relay(rate: f64, fanout: usize, seconds: f64) -> anyhow::Result<f64> {
    let relay = UdpSocket::bind("127.0.0.1:0")?;
    relay.set_read_timeout(Some(Duration::from_millis(200)))?;
    let relay_addr = relay.local_addr()?;
    let sinks: Vec<UdpSocket> = (0..fanout)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let dests: Vec<_> = sinks
        .iter()
        .map(UdpSocket::local_addr)
        .collect::<Result<_, _>>()?;
    let done = Arc::new(AtomicBool::new(false));
    let relay_done = done.clone();
    let relay_thread = std::thread::spawn(move || {
        let start = cpu_seconds_of("/proc/thread-self/stat");
        let mut buf = [0u8; 2048];
        let mut sent = 0u64;
        while !relay_done.load(Ordering::Relaxed) {
            if let Ok((n, _)) = relay.recv_from(&mut buf) {
                for d in &dests {
                    if relay.send_to(&buf[..n], d).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
        (sent, cpu_seconds_of("/proc/thread-self/stat") - start)
    });
    // Drain the sinks so their queues never fill (a full queue makes sends cheaper).
    let sink_done = done.clone();
    let sink_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for s in &sinks {
            let _ = s.set_nonblocking(true);
        }
        while !sink_done.load(Ordering::Relaxed) {
            let mut any = false;
            for s in &sinks {
                while s.recv_from(&mut buf).is_ok() {
                    any = true;
                }
            }
            if !any {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    let sender = UdpSocket::bind("127.0.0.1:0")?;
    let packet = vec![0x80u8; 1200];
    let start = Instant::now();
    let mut next = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while next < due {
            sender.send_to(&packet, relay_addr)?;
            next += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(100));
    done.store(true, Ordering::Relaxed);
    let (sent, cpu) = relay_thread
        .join()
        .map_err(|_| anyhow::anyhow!("relay thread"))?;
    let _ = sink_thread.join();
    Ok(sent as f64 / cpu.max(0.01))
}

async fn run(
    bin: &std::path::Path,
    label: String,
    groups: Vec<(String, usize, usize)>,
    seconds: u64,
    fanout: usize,
    publisher: ParticipantOptions,
) -> anyhow::Result<Outcome> {
    let server = ServerProcess::start(
        bin,
        SECRET,
        &[
            ("TIAOJIE_SIGNALING_MAX_PARTICIPANTS_PER_ROOM", "1000"),
            // Every simulated person connects from 127.0.0.1: lift the per-address cap.
            ("TIAOJIE_SERVER_MAX_CONNECTIONS_PER_ADDRESS", "1000000"),
        ],
    )?;
    let ws_url = format!("ws://{}/ws", server.addr);
    let tokens = Tokens::new(SECRET)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_empty = server.rss_kib();
    let mut people = Vec::new();
    for (room, publishers, subscribers) in &groups {
        for i in 0..(publishers + subscribers) {
            let identity = format!("{room}-p{i}");
            let role = if i == 0 { Role::Mediator } else { Role::Party };
            let options = if i < *publishers {
                publisher.clone()
            } else {
                ParticipantOptions::silent_observer()
            };
            let token = tokens.issue(room, &identity, &identity, role);
            people.push(
                Participant::join(&ws_url, room, &identity, &token, options)
                    .await
                    .with_context(|| format!("{identity} joins"))?,
            );
        }
    }
    // Warm up: every server offer answered, bandwidth estimates settled.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for p in &people {
        p.received.reset();
    }
    let c0 = counters(&server.addr).await?;
    let cpu0 = server.cpu_seconds();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let c1 = counters(&server.addr).await?;
    let cpu1 = server.cpu_seconds();
    let elapsed = t0.elapsed().as_secs_f64();
    let rss_full = server.rss_kib();
    let mut latencies: Vec<Duration> = Vec::new();
    for p in &people {
        for (from, kind) in p.received.sources() {
            if kind == "video" {
                latencies.extend(
                    p.received
                        .stream(&from, kind)
                        .latencies_us
                        .iter()
                        .map(|us| Duration::from_micros(*us)),
                );
            }
        }
    }
    latencies.sort();
    let participants = people.len();
    for p in &people {
        p.close().await;
    }
    drop(people);
    server.stop();
    let ingress_pps = (c1.datagrams_in - c0.datagrams_in) as f64 / elapsed;
    let egress_pps = (c1.datagrams_out - c0.datagrams_out) as f64 / elapsed;
    // The baseline carries the SFU's media ingress with the same fan-out.
    let relay = tokio::task::spawn_blocking(move || raw_relay(ingress_pps, fanout, 5.0)).await??;
    Ok(Outcome {
        label,
        participants,
        egress_pps,
        ingress_pps,
        sfu_cores: (cpu1 - cpu0) / elapsed,
        latency_p50: percentile(&latencies, 0.5),
        latency_p99: percentile(&latencies, 0.99),
        frames: latencies.len(),
        forward_p50: delay_quantile(&c0.delay, &c1.delay, 0.5),
        forward_p99: delay_quantile(&c0.delay, &c1.delay, 0.99),
        rss_per_participant_kib: rss_full.saturating_sub(rss_empty) as f64
            / participants.max(1) as f64,
        relay_pps_per_core: relay,
        fanout,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let bin = match cli.server_bin {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("tiaojie"),
    };
    anyhow::ensure!(
        bin.exists(),
        "{} not found: cargo build --release first",
        bin.display()
    );
    let modes = match cli.mode {
        Mode::All => vec![
            Mode::Fanout { subscribers: 30 },
            Mode::Meetings { rooms: 3 },
            Mode::Voice { rooms: 10 },
        ],
        m => vec![m],
    };
    println!("# media-bench, {} s measured per run\n", cli.seconds);
    let video = ParticipantOptions {
        video_bitrate_bps: 1_500_000,
        keyframe_interval: Duration::from_secs(5),
        ..ParticipantOptions::default()
    };
    for mode in modes {
        let outcome = match mode {
            Mode::Fanout { subscribers } => {
                run(
                    &bin,
                    format!("fan-out: 1 publisher → {subscribers} subscribers"),
                    vec![("fanout".into(), 1, subscribers)],
                    cli.seconds,
                    subscribers,
                    video.clone(),
                )
                .await?
            }
            Mode::Meetings { rooms } => {
                let groups = (0..rooms).map(|r| (format!("meeting{r}"), 6, 0)).collect();
                run(
                    &bin,
                    format!("meetings: {rooms} rooms of 6, everyone publishing"),
                    groups,
                    cli.seconds,
                    5,
                    video.clone(),
                )
                .await?
            }
            Mode::Voice { rooms } => {
                let groups = (0..rooms).map(|r| (format!("voice{r}"), 6, 0)).collect();
                run(
                    &bin,
                    format!("voice: {rooms} rooms of 6, everyone publishing audio only"),
                    groups,
                    cli.seconds,
                    5,
                    ParticipantOptions {
                        video: false,
                        ..ParticipantOptions::default()
                    },
                )
                .await?
            }
            Mode::All => continue,
        };
        outcome.print();
    }
    Ok(())
}

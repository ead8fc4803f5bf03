//! The shard's I/O shell: the one place that touches the UDP socket and the system clock.
//!
//! It waits for a command, a datagram or the shard's next timeout, reads the clock once per
//! input, hands the input to the [`Shard`], and sends what the shard queued in `sendmmsg`
//! batches ([`crate::outbox`]) — as soon as a batch is full, and the rest before it sleeps.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::outbox::{BATCH, Outbox};
use crate::shard::{Command, Now, Shard, Step};
use crate::stats::SfuCounters;

/// Datagrams read per wake-up before timers get a turn.
const READ_BATCH: usize = 256;

/// The system's clocks, now: the one clock read per input.
pub(crate) fn clock() -> Now {
    Now {
        at: Instant::now(),
        wall: SystemTime::now(),
    }
}

/// Runs `shard` on `socket` until shutdown (or until every handle is gone).
pub(crate) async fn run(
    mut shard: Shard,
    socket: UdpSocket,
    counters: Arc<SfuCounters>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut outbox = Outbox::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let wake = shard.poll_timeout();
        tokio::select! {
            biased;
            cmd = commands.recv() => {
                if let Step::Stop(reply) = shard.handle_command(cmd, clock()) {
                    outbox.send(shard.transmits(), &socket, &counters);
                    if let Some(reply) = reply {
                        let _ = reply.send(());
                    }
                    return;
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
            ready = socket.readable() => {
                if ready.is_ok() {
                    read_batch(&mut shard, &socket, &counters, &mut outbox, &mut buf);
                }
            }
        }
        shard.handle_timeout(clock());
        outbox.send(shard.transmits(), &socket, &counters);
    }
}

/// Reads what the socket holds (up to [`READ_BATCH`] datagrams), feeding each to the shard.
fn read_batch(
    shard: &mut Shard,
    socket: &UdpSocket,
    counters: &SfuCounters,
    outbox: &mut Outbox,
    buf: &mut [u8],
) {
    for _ in 0..READ_BATCH {
        match socket.try_recv_from(buf) {
            Ok((n, source)) => {
                counters.datagrams_in.fetch_add(1, Ordering::Relaxed);
                let now = clock();
                if shard.handle_datagram(source, &buf[..n], now) {
                    counters.observe_forward_delay(now.at.elapsed());
                }
                if shard.transmits().len() >= BATCH {
                    outbox.send(shard.transmits(), socket, counters);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            // ICMP errors (a peer's port closed) surface here on some systems; keep reading.
            Err(_) => continue,
        }
    }
}

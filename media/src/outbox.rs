//! Outgoing datagrams, sent in batches: one `sendmmsg(2)` carries up to [`BATCH`] of them to
//! any mix of destinations. A fan-out writes one packet to many subscribers, so per-datagram
//! `sendto` calls were the largest single cost of the media task.
//!
//! Sending never waits: a datagram the kernel refuses (a full socket buffer, an unreachable
//! peer) is dropped and counted, like a loss on the network, so one slow peer cannot stall the
//! others.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use str0m::net::DatagramSend;
use tokio::net::UdpSocket;

use crate::stats::SfuCounters;

/// Datagrams per system call; also the queue length that triggers a send.
pub(crate) const BATCH: usize = 64;

/// The sending side: `sendmmsg` headers kept between batches.
pub(crate) struct Outbox {
    headers: MultiHeaders<SockaddrStorage>,
}

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox {
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    /// Sends everything in `queue` (emptying it), in order.
    pub(crate) fn send(
        &mut self,
        queue: &mut Vec<(SocketAddr, DatagramSend)>,
        socket: &UdpSocket,
        counters: &SfuCounters,
    ) {
        if queue.is_empty() {
            return;
        }
        let (sent, failed) = send_all(&mut self.headers, queue, socket.as_raw_fd());
        queue.clear();
        counters.datagrams_out.fetch_add(sent, Ordering::Relaxed);
        counters.send_failures.fetch_add(failed, Ordering::Relaxed);
    }
}

/// Sends `queue` in chunks of [`BATCH`]; returns (sent, dropped).
fn send_all(
    headers: &mut MultiHeaders<SockaddrStorage>,
    queue: &[(SocketAddr, DatagramSend)],
    fd: std::os::fd::RawFd,
) -> (u64, u64) {
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut start = 0;
    while start < queue.len() {
        let chunk = &queue[start..queue.len().min(start + BATCH)];
        let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(_, d)| [IoSlice::new(d)]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = chunk
            .iter()
            .map(|(a, _)| Some(SockaddrStorage::from(*a)))
            .collect();
        match sendmmsg(fd, headers, &slices, &addrs, [], MsgFlags::empty()) {
            Ok(results) => {
                let n = results.count();
                if n == 0 {
                    // Nothing went out and no error was given: drop the head, go on.
                    failed += 1;
                    start += 1;
                } else {
                    sent += n as u64;
                    start += n;
                }
            }
            // The socket buffer is full: everything still queued would meet the same.
            Err(Errno::EAGAIN) => {
                failed += (queue.len() - start) as u64;
                break;
            }
            Err(Errno::EINTR) => {}
            // The first datagram of the chunk was refused (an ICMP error from a peer that
            // went away surfaces here): drop it alone.
            Err(_) => {
                failed += 1;
                start += 1;
            }
        }
    }
    (sent, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_reach_every_destination_in_order() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let counters = SfuCounters::default();
        let mut outbox = Outbox::new();
        // More than one batch, alternating destinations.
        let total = BATCH + 10;
        let mut queue = Vec::new();
        for i in 0..total {
            let to = if i % 2 == 0 { &a } else { &b };
            let addr = to.local_addr().expect("addr");
            queue.push((addr, vec![i as u8; 100].into()));
        }
        outbox.send(&mut queue, &sender, &counters);
        assert!(queue.is_empty());
        assert_eq!(counters.datagrams_out.load(Ordering::Relaxed), total as u64);
        let mut buf = [0u8; 200];
        for (socket, first) in [(&a, 0u8), (&b, 1u8)] {
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .expect("timeout");
            for k in 0..total / 2 {
                let n = socket.recv(&mut buf).expect("datagram");
                assert_eq!(n, 100);
                assert_eq!(buf[0], first + 2 * k as u8);
            }
        }
    }

    #[tokio::test]
    async fn an_unsendable_datagram_is_dropped_alone() {
        let sender = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let good = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let counters = SfuCounters::default();
        let mut outbox = Outbox::new();
        // An IPv6 destination on an IPv4 socket is refused by the kernel.
        let mut queue = vec![
            ("[::1]:9".parse().expect("addr"), vec![0; 10].into()),
            (good.local_addr().expect("addr"), vec![7; 10].into()),
        ];
        outbox.send(&mut queue, &sender, &counters);
        assert_eq!(counters.send_failures.load(Ordering::Relaxed), 1);
        assert_eq!(counters.datagrams_out.load(Ordering::Relaxed), 1);
        let mut buf = [0u8; 20];
        good.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("timeout");
        assert_eq!(good.recv(&mut buf).expect("datagram"), 10);
        assert_eq!(buf[0], 7);
    }
}

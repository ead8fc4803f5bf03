//! A network a test can damage: the headless participant's UDP sockets go through [`NetControl`],
//! which can drop a share of incoming media packets, cap the incoming rate, or cut everything;
//! a TCP connection can go through a [`TcpPath`], which can lose everything without closing.
//!
//! It plugs into webrtc-rs as a [`Runtime`] that wraps every UDP socket it is given; everything
//! else is delegated to webrtc-rs's own tokio runtime. Only RTP is ever dropped by the loss
//! setting, so ICE and DTLS come up and the test measures what NACK repairs.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    TokioRuntime, Transmit,
};

/// What the network does to one participant's traffic.
#[derive(Debug, Default)]
pub struct NetControl {
    /// Incoming RTP dropped, in parts per million.
    loss_ppm: AtomicU32,
    /// Incoming cap in bits per second (0: none); packets over it are dropped, as a full
    /// bottleneck queue does.
    cap_bps: AtomicU64,
    /// Nothing in or out.
    cut: AtomicBool,
    /// Counters.
    rtp_in: AtomicU64,
    rtp_dropped: AtomicU64,
    budget: std::sync::Mutex<(f64, Option<Instant>)>,
    rng: AtomicU64,
}

impl NetControl {
    /// A healthy network.
    pub fn new() -> Arc<NetControl> {
        let c = NetControl::default();
        c.rng.store(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        Arc::new(c)
    }

    /// Drops `fraction` (0..1) of incoming RTP packets at random.
    pub fn set_loss(&self, fraction: f64) {
        self.loss_ppm
            .store((fraction.clamp(0.0, 1.0) * 1e6) as u32, Ordering::Relaxed);
    }

    /// Caps incoming traffic at `bps` (0 lifts the cap).
    pub fn set_cap(&self, bps: u64) {
        self.cap_bps.store(bps, Ordering::Relaxed);
    }

    /// Cuts (or restores) the network entirely, both ways.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
    }

    /// (RTP packets that arrived, RTP packets dropped on purpose).
    pub fn rtp_counts(&self) -> (u64, u64) {
        (
            self.rtp_in.load(Ordering::Relaxed),
            self.rtp_dropped.load(Ordering::Relaxed),
        )
    }

    fn random(&self) -> u32 {
        // xorshift: the tests want a steady drop rate, not cryptographic randomness.
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x >> 32) as u32
    }

    /// Whether an incoming datagram survives.
    fn admit(&self, datagram: &[u8]) -> bool {
        if self.cut.load(Ordering::Relaxed) {
            return false;
        }
        // RTP and RTCP share the first-byte range 128..=191 (RFC 7983); RTCP packet types are
        // 192..=223 in the second byte.
        let is_rtp = datagram.len() > 12
            && (128..=191).contains(&datagram[0])
            && !(192..=223).contains(&datagram[1]);
        if !is_rtp {
            return true;
        }
        self.rtp_in.fetch_add(1, Ordering::Relaxed);
        let loss = self.loss_ppm.load(Ordering::Relaxed);
        if loss > 0 && self.random() % 1_000_000 < loss {
            self.rtp_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let cap = self.cap_bps.load(Ordering::Relaxed);
        if cap > 0 {
            let mut b = self.budget.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let (tokens, last) = *b;
            let elapsed = last.map_or(0.0, |l| now.duration_since(l).as_secs_f64());
            // A bucket of 100 ms worth of bytes: a shallow bottleneck queue.
            let max = cap as f64 / 8.0 / 10.0;
            let tokens = (tokens + elapsed * cap as f64 / 8.0).min(max);
            let need = datagram.len() as f64;
            if tokens < need {
                *b = (tokens, Some(now));
                self.rtp_dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            *b = (tokens - need, Some(now));
        }
        true
    }
}

/// webrtc-rs's tokio runtime with damaged UDP sockets.
pub struct NetRuntime {
    inner: TokioRuntime,
    control: Arc<NetControl>,
}

impl NetRuntime {
    /// A runtime whose sockets obey `control`.
    pub fn new(control: Arc<NetControl>) -> Arc<NetRuntime> {
        Arc::new(NetRuntime {
            inner: TokioRuntime,
            control,
        })
    }
}

impl fmt::Debug for NetRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetRuntime")
    }
}

impl Runtime for NetRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        pool: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(pool, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        socket.set_nonblocking(true)?;
        Ok(Arc::new(DamagedSocket {
            io: tokio::net::UdpSocket::from_std(socket)?,
            control: self.control.clone(),
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn name(&self) -> &'static str {
        "tiaojie-test-net"
    }
}

/// A plain tokio UDP socket (no GSO/GRO, so every receive is one datagram we can judge).
struct DamagedSocket {
    io: tokio::net::UdpSocket,
    control: Arc<NetControl>,
}

impl fmt::Debug for DamagedSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DamagedSocket")
    }
}

impl AsyncUdpSocket for DamagedSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        if self.control.cut.load(Ordering::Relaxed) {
            return Poll::Ready(Ok(transmit.contents.len()));
        }
        self.io
            .poll_send_to(cx, transmit.contents, transmit.destination)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let Some(buf) = bufs.first_mut() else {
            return Poll::Ready(Ok(0));
        };
        loop {
            let mut read = tokio::io::ReadBuf::new(buf);
            let addr = match self.io.poll_recv_from(cx, &mut read) {
                Poll::Ready(Ok(addr)) => addr,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            let len = read.filled().len();
            if !self.control.admit(read.filled()) {
                continue;
            }
            meta[0] = RecvMeta::default();
            meta[0].addr = addr;
            meta[0].len = len;
            meta[0].stride = len.max(1);
            return Poll::Ready(Ok(1));
        }
    }
}

/// A TCP path a test can lose: a proxy on 127.0.0.1 to `upstream`. While it is down nothing
/// passes either way and nothing is closed, as when a network drops packets. Connections it
/// carried stay dead after it comes back (the path forgot them, as a NAT does); connections
/// made while it is down wait and pass once it is up (SYNs retried).
pub struct TcpPath {
    /// Where to connect instead of `upstream`.
    pub addr: SocketAddr,
    down: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpPath {
    /// Listens on 127.0.0.1 (any port) for connections to carry to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpPath {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (down, watch) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            // Dropped with the task: every carried connection ends with the path.
            let mut carried = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let mut down = watch.clone();
                carried.spawn(async move {
                    if down.wait_for(|d| !*d).await.is_err() {
                        return;
                    }
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let lost = {
                        let pump = async {
                            tokio::try_join!(
                                tokio::io::copy(&mut cr, &mut sw),
                                tokio::io::copy(&mut sr, &mut cw)
                            )
                        };
                        tokio::select! {
                            _ = pump => false,
                            _ = down.wait_for(|d| *d) => true,
                        }
                    };
                    if lost {
                        // Both ends stay open and nothing passes, ever.
                        std::future::pending::<()>().await;
                    }
                });
            }
        });
        TcpPath { addr, down, task }
    }

    /// Loses everything (`true`) or carries new connections again (`false`).
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for TcpPath {
    fn drop(&mut self) {
        self.task.abort();
    }
}

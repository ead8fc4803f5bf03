//! The shard driven in memory, in the style of str0m's own tests: str0m peers as the
//! participants, a network of in-process queues, a simulated clock, no socket and no sleeping.
//! What the real-socket tests (`tests/tests/media.rs`) show with webrtc-rs and Chromium, these
//! show for the shard's decisions alone, fast and repeatable: forwarding, keyframe requests,
//! simulcast layer switches, and policy changes that pause and resume a track without
//! renegotiating.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, KeyframeRequest, MediaKind, MediaTime, Mid, Rid, Simulcast,
    SimulcastLayer,
};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::sync::{mpsc, oneshot};

use crate::messages::{MediaEvent, SfuConfig, StandingChange};
use crate::policy::{ParticipantId, Space, Standing};
use crate::shard::{Command, Now, Shard};
use crate::stats::SfuCounters;

const ROOM: &str = "r";
/// Addresses exist only inside this file's queues; nothing is sent anywhere.
const SFU: ([u8; 4], u16) = ([127, 0, 0, 1], 40_000);

thread_local! {
    /// The simulated time, for the shard's clock (each test runs on its own thread).
    static SIM_NOW: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
}

/// The time of an input at `now` (the wall clock starting at the epoch), which the shard's
/// clock then reads too.
fn sim_time(start: Instant, now: Instant) -> Now {
    SIM_NOW.with(|t| t.set(Some(now)));
    Now {
        at: now,
        wall: SystemTime::UNIX_EPOCH + (now - start),
    }
}

fn sim_clock() -> Instant {
    SIM_NOW
        .with(|t| t.get())
        .expect("a simulated network runs on this thread")
}

/// A participant: a str0m peer and what it got.
struct Peer {
    who: ParticipantId,
    addr: SocketAddr,
    rtc: Rtc,
    /// When it next wants a timeout.
    wake: Instant,
    events: Vec<Event>,
    /// The lines it publishes on.
    publishing: Vec<Mid>,
}

/// The shard, its peers, and the simulated clock.
struct Net {
    shard: Shard,
    counters: Arc<SfuCounters>,
    told: mpsc::UnboundedReceiver<MediaEvent>,
    /// Media events other than server offers (which are answered as they come).
    heard: Vec<MediaEvent>,
    peers: Vec<Peer>,
    start: Instant,
    now: Instant,
    /// Server offers each peer answered.
    offers: Vec<usize>,
}

impl Net {
    fn new() -> Net {
        let (events, told) = mpsc::unbounded_channel();
        let counters = Arc::new(SfuCounters::default());
        let start = Instant::now();
        SIM_NOW.with(|t| t.set(Some(start)));
        let sfu = SocketAddr::from(SFU);
        let shard = Shard::new(
            sfu,
            vec![sfu.ip()],
            SfuConfig::default(),
            events,
            counters.clone(),
            Now {
                at: start,
                wall: SystemTime::UNIX_EPOCH,
            },
            sim_clock,
        );
        Net {
            shard,
            counters,
            told,
            heard: Vec::new(),
            peers: Vec::new(),
            start,
            now: start,
            offers: Vec::new(),
        }
    }

    fn time(&self) -> Now {
        sim_time(self.start, self.now)
    }

    /// A command, answered at once (the shard answers within the input).
    fn ask<T>(&mut self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
        let (reply, mut answer) = oneshot::channel();
        let now = self.time();
        let _ = self.shard.handle_command(Some(make(reply)), now);
        answer
            .try_recv()
            .expect("the shard answers within the input")
    }

    /// `who` enters the joint room and offers to publish `publish`; returns its index.
    fn join(&mut self, who: &str, port: u16, publish: &[MediaKind]) -> usize {
        self.join_with(who, port, publish, &[])
    }

    /// Like [`Net::join`], each video line sent as simulcast layers `rids` (none: one layer).
    fn join_with(&mut self, who: &str, port: u16, publish: &[MediaKind], rids: &[&str]) -> usize {
        let participant = ParticipantId::from(who);
        self.ask(|reply| Command::Enter {
            room: ROOM.into(),
            participant: participant.clone(),
            standing: Standing::joint(),
            reply,
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut rtc = Rtc::builder().build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
        let mut api = rtc.sdp_api();
        let publishing: Vec<Mid> = publish
            .iter()
            .map(|kind| {
                let simulcast = (*kind == MediaKind::Video && !rids.is_empty()).then(|| {
                    let mut layers = Simulcast::new();
                    for rid in rids {
                        layers.add_send_layer(SimulcastLayer::new(rid));
                    }
                    layers
                });
                api.add_media(*kind, Direction::SendOnly, None, None, simulcast)
            })
            .collect();
        let (offer, pending) = api.apply().expect("an offer");
        let outcome = self
            .ask(|reply| Command::Offer {
                room: ROOM.into(),
                participant: participant.clone(),
                sdp: offer.to_sdp_string(),
                screen: None,
                reply,
            })
            .expect("answered");
        let answer = SdpAnswer::from_sdp_string(&outcome.answer).expect("answer SDP");
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .expect("accepted");
        self.peers.push(Peer {
            who: participant,
            addr,
            rtc,
            wake: self.now,
            events: Vec::new(),
            publishing,
        });
        self.offers.push(0);
        let at = self.peers.len() - 1;
        if let Some(next) = outcome.next_offer {
            self.answer_server_offer(at, &next);
        }
        at
    }

    /// A server offer to a peer: it answers, and the shard may offer again.
    fn answer_server_offer(&mut self, at: usize, sdp: &str) {
        self.offers[at] += 1;
        let offer = SdpOffer::from_sdp_string(sdp).expect("offer SDP");
        let answer = self.peers[at]
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .expect("the peer answers");
        let participant = self.peers[at].who.clone();
        let next = self
            .ask(|reply| Command::Answer {
                room: ROOM.into(),
                participant,
                sdp: answer.to_sdp_string(),
                reply,
            })
            .expect("the answer fits");
        if let Some(next) = next {
            self.answer_server_offer(at, &next);
        }
    }

    fn update(&mut self, who: usize, change: StandingChange) {
        let participant = self.peers[who].who.clone();
        self.ask(|reply| Command::Update {
            room: ROOM.into(),
            participant,
            change,
            reply,
        })
        .expect("applied");
        self.relay_events();
    }

    /// Answers server offers the shard sent as events; keeps the rest.
    fn relay_events(&mut self) {
        while let Ok(event) = self.told.try_recv() {
            match event {
                MediaEvent::Offer {
                    participant, sdp, ..
                } => {
                    let at = self
                        .peers
                        .iter()
                        .position(|p| p.who == participant)
                        .expect("a peer");
                    self.answer_server_offer(at, &sdp);
                }
                other => self.heard.push(other),
            }
        }
    }

    /// Moves every datagram until nobody has anything to send at this instant.
    fn settle(&mut self) {
        let sfu = SocketAddr::from(SFU);
        for _ in 0..10_000 {
            let mut moved = false;
            for peer in &mut self.peers {
                loop {
                    match peer.rtc.poll_output().expect("the peer runs") {
                        Output::Timeout(at) => {
                            peer.wake = at;
                            break;
                        }
                        Output::Transmit(t) => {
                            assert_eq!(t.destination, sfu, "peers talk only to the SFU");
                            let now = sim_time(self.start, self.now);
                            self.shard.handle_datagram(peer.addr, &t.contents, now);
                            moved = true;
                        }
                        Output::Event(e) => peer.events.push(e),
                    }
                }
            }
            let out: Vec<_> = self.shard.transmits().drain(..).collect();
            for (to, contents) in out {
                let peer = self
                    .peers
                    .iter_mut()
                    .find(|p| p.addr == to)
                    .expect("sent to a peer");
                let receive = Receive::new(Protocol::Udp, sfu, to, &contents).expect("a datagram");
                peer.rtc
                    .handle_input(Input::Receive(self.now, receive))
                    .expect("the peer takes it");
                moved = true;
            }
            self.relay_events();
            if !moved {
                return;
            }
        }
        panic!("the network does not settle at {:?}", self.now - self.start);
    }

    /// Runs the network for `span` of simulated time, in steps of at most 5 ms.
    fn run(&mut self, span: Duration) {
        let end = self.now + span;
        loop {
            self.settle();
            if self.now >= end {
                return;
            }
            let next = self
                .peers
                .iter()
                .map(|p| p.wake)
                .chain([self.shard.poll_timeout()])
                .min()
                .unwrap_or(end);
            self.now = next
                .clamp(
                    self.now + Duration::from_micros(100),
                    self.now + Duration::from_millis(5),
                )
                .min(end);
            let now = self.time();
            self.shard.handle_timeout(now);
            for peer in &mut self.peers {
                if peer.wake <= self.now {
                    peer.rtc
                        .handle_input(Input::Timeout(self.now))
                        .expect("the peer's timeout");
                }
            }
        }
    }

    /// Runs until every peer is connected to the shard.
    fn connect(&mut self) {
        for _ in 0..200 {
            self.run(Duration::from_millis(10));
            let connected = self
                .heard
                .iter()
                .filter(|e| matches!(e, MediaEvent::Connected { .. }))
                .count();
            if connected == self.peers.len() {
                return;
            }
        }
        panic!("not connected after 2 s: {:?}", self.heard);
    }

    /// Writes one frame on a peer's `line`-th publishing line, with the codec `codec`.
    fn write(&mut self, who: usize, line: usize, codec: Codec, time: MediaTime, data: &[u8]) {
        self.write_on(who, line, codec, None, time, data);
    }

    /// Writes one frame of simulcast layer `rid` on a peer's `line`-th publishing line (VP8).
    fn write_layer(&mut self, who: usize, line: usize, rid: &str, time: MediaTime, data: &[u8]) {
        self.write_on(who, line, Codec::Vp8, Some(rid), time, data);
    }

    /// Writes one frame on a peer's `line`-th publishing line with `codec`, as layer `rid`
    /// when it sends simulcast.
    fn write_on(
        &mut self,
        who: usize,
        line: usize,
        codec: Codec,
        rid: Option<&str>,
        time: MediaTime,
        data: &[u8],
    ) {
        let now = self.now;
        let peer = &mut self.peers[who];
        let mid = peer.publishing[line];
        let mut writer = peer.rtc.writer(mid).expect("a writer");
        let pt = writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
            .expect("the codec was negotiated");
        if let Some(rid) = rid {
            writer = writer.rid(Rid::from(rid));
        }
        writer.write(pt, now, time, data.to_vec()).expect("written");
    }

    /// The largest picture height a subscriber asks for (`None`: any).
    fn max_height(&mut self, who: usize, max_height: Option<u32>) {
        let participant = self.peers[who].who.clone();
        self.ask(|reply| Command::MaxHeight {
            room: ROOM.into(),
            participant,
            max_height,
            reply,
        })
        .expect("applied");
        self.relay_events();
    }

    /// The simulcast layers a peer was asked for keyframes of so far (and forgets the asks).
    fn keyframe_requests_by_layer(&mut self, who: usize) -> Vec<Option<String>> {
        let events = std::mem::take(&mut self.peers[who].events);
        let (asks, rest): (Vec<Event>, Vec<Event>) = events
            .into_iter()
            .partition(|e| matches!(e, Event::KeyframeRequest(_)));
        self.peers[who].events = rest;
        asks.into_iter()
            .filter_map(|e| match e {
                Event::KeyframeRequest(KeyframeRequest { rid, .. }) => {
                    Some(rid.map(|r| r.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    /// The frames a peer received so far (and forgets them).
    fn received(&mut self, who: usize) -> Vec<Arc<[u8]>> {
        let events = std::mem::take(&mut self.peers[who].events);
        events
            .into_iter()
            .filter_map(|e| match e {
                Event::MediaData(d) => Some(d.data),
                _ => None,
            })
            .collect()
    }

    /// Keyframe requests a peer received so far (and forgets them).
    fn keyframe_requests(&mut self, who: usize) -> usize {
        self.keyframe_requests_by_layer(who).len()
    }
}

/// 20 ms of Opus, tagged with its number.
fn opus(n: u8) -> Vec<u8> {
    vec![0xfc, n, n, n, n, n, n, n]
}

/// A VP8 frame (keyframe or delta), tagged with its number. A keyframe carries the start code
/// and a 640×480 size, as an encoder writes it.
fn vp8(n: u8, keyframe: bool) -> Vec<u8> {
    let mut frame = if keyframe {
        vec![0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]
    } else {
        vec![0x51, 0x02, 0x00]
    };
    frame.extend(std::iter::repeat_n(n, 200));
    frame
}

/// A VP8 frame of a simulcast layer: a keyframe carries its picture size; every byte after the
/// header is `tag` (which layer), `len` of them (the layers' bitrates differ as an encoder's do).
fn vp8_layer(keyframe: bool, (width, height): (u16, u16), tag: u8, len: usize) -> Vec<u8> {
    let mut frame = if keyframe {
        let (w, h) = (width.to_le_bytes(), height.to_le_bytes());
        vec![0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, w[0], w[1], h[0], h[1]]
    } else {
        vec![0x51, 0x02, 0x00]
    };
    frame.extend(std::iter::repeat_n(tag, len));
    frame
}

fn audio_time(n: u64) -> MediaTime {
    MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ)
}

fn video_time(n: u64) -> MediaTime {
    MediaTime::new(n * 3000, Frequency::NINETY_KHZ)
}

#[test]
fn audio_from_one_participant_reaches_the_other_through_the_core() {
    let mut net = Net::new();
    let a = net.join("a", 50_001, &[MediaKind::Audio]);
    let b = net.join("b", 50_002, &[MediaKind::Audio]);
    net.relay_events();
    net.connect();
    net.received(b);
    for n in 0..25u8 {
        net.write(a, 0, Codec::Opus, audio_time(u64::from(n)), &opus(n));
        net.run(Duration::from_millis(20));
    }
    let frames = net.received(b);
    assert!(frames.len() >= 20, "b heard {} of 25 frames", frames.len());
    let last = frames.last().expect("a frame");
    assert_eq!(last.as_ref(), opus(24).as_slice(), "the bytes a sent");
    assert!(net.counters.packets_forwarded.load(Ordering::Relaxed) >= 20);
    assert!(net.received(a).is_empty(), "nobody else published");
}

#[test]
fn video_waits_for_a_keyframe_and_the_shard_asks_the_publisher_for_one() {
    let mut net = Net::new();
    let a = net.join("a", 50_011, &[MediaKind::Video]);
    let b = net.join("b", 50_012, &[MediaKind::Audio]);
    net.relay_events();
    net.connect();
    // b's line opened: the publisher is asked for a keyframe at once.
    assert_eq!(net.keyframe_requests(a), 1, "asked when the line opened");
    // Deltas only, for 1.5 s: a decoder cannot start on them, so none go out, and the shard
    // asks again — once per throttle period (1 s), not once per delta.
    for n in 0..45u8 {
        net.write(a, 0, Codec::Vp8, video_time(u64::from(n)), &vp8(n, false));
        net.run(Duration::from_millis(33));
    }
    assert!(net.received(b).is_empty(), "no delta before a keyframe");
    assert_eq!(
        net.keyframe_requests(a),
        1,
        "asked again after the throttle"
    );
    // The keyframe starts the stream; deltas follow it.
    net.write(a, 0, Codec::Vp8, video_time(45), &vp8(45, true));
    net.run(Duration::from_millis(33));
    for n in 46..50u8 {
        net.write(a, 0, Codec::Vp8, video_time(u64::from(n)), &vp8(n, false));
        net.run(Duration::from_millis(33));
    }
    let frames = net.received(b);
    assert_eq!(
        frames.first().map(|f| f[0]),
        Some(0x50),
        "starts at the keyframe"
    );
    assert_eq!(frames.len(), 5, "the keyframe and the four deltas after it");
    assert_eq!(frames.last().map(|f| f[5]), Some(49));
}

#[test]
fn a_move_to_the_lobby_pauses_a_track_and_the_return_resumes_it_without_renegotiating() {
    let mut net = Net::new();
    let a = net.join("a", 50_021, &[MediaKind::Audio]);
    let b = net.join("b", 50_022, &[MediaKind::Audio]);
    net.relay_events();
    net.connect();
    let mut n = 0u8;
    let mut speak = |net: &mut Net, frames: u8| {
        for _ in 0..frames {
            net.write(a, 0, Codec::Opus, audio_time(u64::from(n)), &opus(n));
            net.run(Duration::from_millis(20));
            n += 1;
        }
    };
    speak(&mut net, 10);
    assert!(!net.received(b).is_empty(), "b hears a in the joint room");
    let offers_before = net.offers.clone();

    net.update(a, StandingChange::Move(Space::Lobby));
    speak(&mut net, 10);
    assert!(
        net.received(b).is_empty(),
        "nobody in the joint room hears the lobby"
    );

    net.update(a, StandingChange::Move(Space::Joint));
    speak(&mut net, 10);
    let frames = net.received(b);
    assert!(frames.len() >= 8, "heard again: {} frames", frames.len());
    assert_eq!(frames.last().map(|f| f[1]), Some(29));
    assert_eq!(net.offers, offers_before, "the lines stayed: no new offers");
}

#[test]
fn a_subscriber_asking_for_a_smaller_picture_switches_to_the_lower_layer_at_its_keyframe() {
    let mut net = Net::new();
    let a = net.join_with("a", 50_031, &[MediaKind::Video], &["h", "l"]);
    let b = net.join("b", 50_032, &[MediaKind::Audio]);
    net.relay_events();
    net.connect();
    // Both layers, a keyframe on each every second (30 frames).
    let mut n = 0u64;
    let mut send = |net: &mut Net, frames: u64, keyframes: bool| {
        for _ in 0..frames {
            let key = keyframes && n.is_multiple_of(30);
            let t = video_time(n);
            net.write_layer(a, 0, "h", t, &vp8_layer(key, (640, 480), b'H', 1000));
            net.write_layer(a, 0, "l", t, &vp8_layer(key, (320, 240), b'L', 200));
            net.run(Duration::from_millis(33));
            n += 1;
        }
    };
    let layer_of = |f: &Arc<[u8]>| f.last().copied();
    send(&mut net, 90, true);
    let frames = net.received(b);
    assert!(frames.len() >= 30, "b sees a: {} frames", frames.len());
    assert_eq!(
        frames.last().and_then(layer_of),
        Some(b'H'),
        "with no limit, the best layer"
    );
    net.keyframe_requests_by_layer(a);
    let offers_before = net.offers.clone();

    // b asks for at most 240 lines: the shard wants the lower layer and asks for its keyframe;
    // until one comes, b keeps the picture it has (no frozen gap, no undecodable delta).
    net.max_height(b, Some(240));
    send(&mut net, 10, false);
    assert!(
        net.keyframe_requests_by_layer(a)
            .contains(&Some("l".to_string())),
        "the publisher is asked for a keyframe of the lower layer"
    );
    let waiting = net.received(b);
    assert!(
        waiting.iter().all(|f| layer_of(f) == Some(b'H')),
        "no frame of the new layer before its keyframe"
    );
    assert!(!waiting.is_empty(), "the old layer goes on meanwhile");

    // The lower layer's keyframe: the switch happens on it, and only that layer follows.
    send(&mut net, 30, true);
    let after = net.received(b);
    let first_low = after
        .iter()
        .position(|f| layer_of(f) == Some(b'L'))
        .expect("switched to the lower layer");
    assert_eq!(after[first_low][0], 0x50, "the switch starts at a keyframe");
    assert!(
        after[first_low..].iter().all(|f| layer_of(f) == Some(b'L')),
        "only the lower layer after the switch"
    );
    assert_eq!(
        net.offers, offers_before,
        "a layer switch needs no renegotiation"
    );
}

//! The headless participant: a webrtc-rs peer (an independent WebRTC stack) that speaks our
//! signaling protocol, publishes real Opus and well-formed VP8 or H.264, and counts and timestamps what
//! it receives.
//!
//! One task owns the WebSocket: it answers server offers (`media.offer`) by itself, routes
//! replies to whoever asked, and queues every other event for the test. Received packets are
//! recorded per publisher and kind in [`Received`]. Video frames carry a small trailer — the
//! publisher's send time, frame number and simulcast layer — so a subscriber can measure added
//! latency and tell which layer it gets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::{
    Registry, register_default_interceptors,
};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use serde_json::{Value, json};
use std::collections::VecDeque;
use tokio::sync::{mpsc, oneshot};
use webrtc::media_stream::Track;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::WsClient;
use crate::h264;
use crate::net::{NetControl, NetRuntime};

const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
const TRAILER_MAGIC: [u8; 2] = *b"TJ";
const TRAILER_LEN: usize = 2 + 1 + 8 + 4;

/// The clock video trailers are stamped with (one per process: publisher and subscriber share it).
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// What a participant publishes.
#[derive(Debug, Clone)]
pub struct ParticipantOptions {
    /// Publish an Opus tone.
    pub audio: bool,
    /// Tone amplitude 0..1 (0: silence, level 127); changeable later with
    /// [`Participant::set_loudness`].
    pub loudness: f32,
    /// Tone frequency, Hz (tell speakers apart in a recording).
    pub tone_hz: f32,
    /// Publish video (VP8 unless `h264`).
    pub video: bool,
    /// Publish H.264 (constrained baseline, packetization mode 1) instead of VP8.
    pub h264: bool,
    /// Video bitrate, bits per second (at 30 frames per second).
    pub video_bitrate_bps: u64,
    /// A keyframe at least this often (and whenever one is requested).
    pub keyframe_interval: Duration,
    /// Send video as three simulcast layers `q`, `h`, `f` (1/9, 1/3 and all of the bitrate;
    /// 180, 360 and 720 lines); the trailer of each frame names its layer (0, 1, 2).
    pub simulcast: bool,
    /// Also share a screen: a second VP8 track, declared as the screen in the first offer
    /// (and sent on, whatever the server says, as a misbehaving client would).
    pub screen: bool,
}

impl Default for ParticipantOptions {
    fn default() -> Self {
        ParticipantOptions {
            audio: true,
            loudness: 0.3,
            tone_hz: 440.0,
            video: true,
            h264: false,
            video_bitrate_bps: 600_000,
            // A fallback, not the mechanism: keyframe requests from the SFU are answered at
            // once, but webrtc-rs 0.21.1 stops delivering them to a publisher whose connection
            // was renegotiated (see `watch_keyframe_requests`); tests of keyframe requests set a
            // long interval on a publisher that is never renegotiated.
            keyframe_interval: Duration::from_secs(1),
            simulcast: false,
            screen: false,
        }
    }
}

impl ParticipantOptions {
    /// Receives only.
    pub fn silent_observer() -> ParticipantOptions {
        ParticipantOptions {
            audio: false,
            video: false,
            ..ParticipantOptions::default()
        }
    }
}

/// What arrived on one track.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// RTP packets.
    pub packets: u64,
    /// Distinct sequence numbers seen (retransmissions fill gaps, duplicates count once).
    pub distinct: u64,
    /// Lowest and highest extended sequence numbers.
    pub first_seq: Option<u64>,
    /// Highest extended sequence number.
    pub last_seq: u64,
    /// First and latest packet times.
    pub first_at: Option<Instant>,
    /// Latest packet.
    pub last_at: Option<Instant>,
    /// Video keyframes (first packets of).
    pub keyframes: u64,
    /// When the first keyframe arrived.
    pub first_keyframe_at: Option<Instant>,
    /// Simulcast layer of the latest frame (from the trailer).
    pub layer: Option<u8>,
    /// Publisher-send → receive delay of frame starts, microseconds.
    pub latencies_us: Vec<u64>,
    seen: Vec<u64>,
    last_raw: Option<u16>,
}

impl StreamStats {
    /// Distinct packets over the sequence range spanned (1.0: nothing missing).
    pub fn completeness(&self) -> f64 {
        match self.first_seq {
            Some(first) if self.last_seq >= first => {
                self.distinct as f64 / (self.last_seq - first + 1) as f64
            }
            _ => 0.0,
        }
    }

    fn record_seq(&mut self, raw: u16) {
        let ext = match self.last_raw {
            None => u64::from(raw) + (1 << 16),
            Some(prev) => {
                let last = self.last_seq;
                let delta = raw.wrapping_sub(prev) as i16 as i64;
                (last as i64 + delta).max(0) as u64
            }
        };
        if self.last_raw.is_none() || ext > self.last_seq {
            self.last_seq = ext;
            self.last_raw = Some(raw);
        }
        let first = *self.first_seq.get_or_insert(ext);
        if ext < first {
            return; // before the first packet we saw: not part of the measured range
        }
        let bit = ext - first;
        let word = (bit / 64) as usize;
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let mask = 1u64 << (bit % 64);
        if self.seen[word] & mask == 0 {
            self.seen[word] |= mask;
            self.distinct += 1;
        }
    }
}

/// Everything received, by publisher identity (the stream id the SFU gives each track) and kind.
#[derive(Debug, Default)]
pub struct Received {
    streams: Mutex<HashMap<(String, &'static str), StreamStats>>,
    /// Payload types the SFU's SDP maps to H.264 (the rest of the video is VP8).
    h264_pts: Mutex<Vec<u8>>,
}

impl Received {
    /// Learns from a remote description which payload types carry H.264.
    fn learn_payload_types(&self, sdp: &str) {
        let pts: Vec<u8> = sdp
            .lines()
            .filter_map(|l| l.strip_prefix("a=rtpmap:"))
            .filter_map(|l| {
                let (pt, codec) = l.split_once(' ')?;
                codec
                    .to_ascii_uppercase()
                    .starts_with("H264/")
                    .then(|| pt.parse().ok())?
            })
            .collect();
        *self.h264_pts.lock().unwrap_or_else(|p| p.into_inner()) = pts;
    }

    fn is_h264(&self, pt: u8) -> bool {
        self.h264_pts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&pt)
    }

    /// A copy of one stream's counters.
    pub fn stream(&self, publisher: &str, kind: &'static str) -> StreamStats {
        self.lock()
            .get(&(publisher.to_string(), kind))
            .cloned()
            .unwrap_or_default()
    }

    /// Packets from `publisher` of `kind`.
    pub fn packets(&self, publisher: &str, kind: &'static str) -> u64 {
        self.lock()
            .get(&(publisher.to_string(), kind))
            .map_or(0, |s| s.packets)
    }

    /// Every (publisher, kind) with at least one packet.
    pub fn sources(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<_> = self.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// Forgets everything (to measure from now on).
    pub fn reset(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, &'static str), StreamStats>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, publisher: &str, kind: &'static str, h264: bool, seq: u16, payload: &[u8]) {
        let now = Instant::now();
        let mut map = self.lock();
        let s = map.entry((publisher.to_string(), kind)).or_default();
        s.packets += 1;
        s.first_at.get_or_insert(now);
        s.last_at = Some(now);
        s.record_seq(seq);
        let start = match (kind, h264) {
            ("video" | "screen", false) => vp8_frame_start(payload)
                .map(|frame| (frame.first().is_some_and(|b| b & 1 == 0), trailer(frame))),
            ("video", true) => h264::slice_start(payload),
            _ => None,
        };
        if let Some((keyframe, trailer)) = start {
            if keyframe {
                s.keyframes += 1;
                s.first_keyframe_at.get_or_insert(now);
            }
            if let Some((layer, sent_us)) = trailer {
                s.layer = Some(layer);
                let now_us = now.duration_since(epoch()).as_micros() as u64;
                if s.latencies_us.len() < 100_000 {
                    s.latencies_us.push(now_us.saturating_sub(sent_us));
                }
            }
        }
    }
}

/// The VP8 bitstream of a packet that starts a frame (RFC 7741 descriptor skipped).
fn vp8_frame_start(payload: &[u8]) -> Option<&[u8]> {
    let first = *payload.first()?;
    let start = first & 0x10 != 0 && first & 0x07 == 0;
    if !start {
        return None;
    }
    let mut at = 1;
    if first & 0x80 != 0 {
        let ext = *payload.get(at)?;
        at += 1;
        if ext & 0x80 != 0 {
            let pid = *payload.get(at)?;
            at += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            at += 1;
        }
        if ext & 0x30 != 0 {
            at += 1;
        }
    }
    payload.get(at..)
}

/// (layer, send time µs) from a frame's first bytes.
fn trailer(frame: &[u8]) -> Option<(u8, u64)> {
    let header = if frame.first()? & 1 == 0 { 10 } else { 3 };
    let t = frame.get(header..header + TRAILER_LEN)?;
    if t[..2] != TRAILER_MAGIC {
        return None;
    }
    let sent = u64::from_be_bytes(t[3..11].try_into().ok()?);
    Some((t[2], sent))
}

/// A synthetic but well-formed VP8 frame: correct frame tag and keyframe header, then the
/// trailer, then filler up to `size`.
pub fn synthetic_vp8_frame(
    keyframe: bool,
    layer: u8,
    number: u32,
    size: usize,
    (w, h): (u16, u16),
) -> Bytes {
    let mut f = Vec::with_capacity(size.max(32));
    let first_part = (size.max(32) as u32 / 2) & 0x7ffff;
    // Frame tag: bit 0 = not a keyframe, version 0, show_frame, first partition size.
    let tag = u32::from(!keyframe) | (1 << 4) | (first_part << 5);
    f.extend_from_slice(&tag.to_le_bytes()[..3]);
    if keyframe {
        f.extend_from_slice(&[0x9d, 0x01, 0x2a]);
        f.extend_from_slice(&(w & 0x3fff).to_le_bytes());
        f.extend_from_slice(&(h & 0x3fff).to_le_bytes());
    }
    f.extend_from_slice(&TRAILER_MAGIC);
    f.push(layer);
    f.extend_from_slice(&(epoch().elapsed().as_micros() as u64).to_be_bytes());
    f.extend_from_slice(&number.to_be_bytes());
    let mut x = number.wrapping_mul(2_654_435_761);
    while f.len() < size {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f.push(x as u8);
    }
    Bytes::from(f)
}

/// Passes keyframe requests (PLI, FIR) from the SFU up to the application; webrtc-rs's default
/// interceptors consume them otherwise.
struct KeyframeRequestsUp {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestsUp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet
            && packets.iter().any(|p| {
                p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()
            })
        {
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for KeyframeRequestsUp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

struct Handler {
    gathered: mpsc::UnboundedSender<()>,
    state: Arc<Mutex<RTCPeerConnectionState>>,
    received: Arc<Received>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = self.received.clone();
        // The stream id is the publisher's identity, `screen!<identity>` for a shared screen.
        let stream = track.stream_id().await.to_string();
        let (publisher, kind): (String, &'static str) = match stream.strip_prefix("screen!") {
            Some(who) => (who.to_string(), "screen"),
            None if track.kind().await == RtpCodecKind::Audio => (stream, "audio"),
            None => (stream, "video"),
        };
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                match event {
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        let h264 = received.is_h264(p.header.payload_type);
                        received.record(
                            &publisher,
                            kind,
                            h264,
                            p.header.sequence_number,
                            &p.payload,
                        );
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

type Request = (Value, oneshot::Sender<Value>);

/// A joined participant with a WebRTC connection to the SFU.
pub struct Participant {
    /// Identity.
    pub identity: String,
    /// The `joined` reply.
    pub joined: Value,
    /// Events from the server other than replies and server offers, oldest first.
    pub events: mpsc::UnboundedReceiver<Value>,
    /// The peer connection.
    pub pc: Arc<dyn PeerConnection>,
    /// What arrived, by publisher and kind.
    pub received: Arc<Received>,
    /// This participant's network (loss, caps, cut).
    pub net: Arc<NetControl>,
    /// Keyframe requests this participant's video got from the SFU.
    pub keyframe_requests: Arc<AtomicU64>,
    /// The tone's amplitude (f32 bits), read for every 20 ms frame.
    loudness: Arc<AtomicU32>,
    /// Server offers answered.
    pub offers_answered: Arc<AtomicU64>,
    state: Arc<Mutex<RTCPeerConnectionState>>,
    requests: mpsc::Sender<Request>,
    stop: Arc<AtomicBool>,
}

impl Participant {
    /// Joins `room` with `token` over `ws_url` and connects media (offer → answer → ICE + DTLS).
    pub async fn join(
        ws_url: &str,
        room: &str,
        identity: &str,
        token: &str,
        options: ParticipantOptions,
    ) -> anyhow::Result<Participant> {
        let _ = epoch();
        let mut ws = WsClient::connect(ws_url).await;
        let joined = ws.join(room, token).await;
        if joined["type"] != "joined" {
            return Err(anyhow!("join refused: {joined}"));
        }
        let net = NetControl::new();
        let received = Arc::new(Received::default());
        let state = Arc::new(Mutex::new(RTCPeerConnectionState::New));
        let (gathered_tx, mut gathered) = mpsc::unbounded_channel();

        let mut engine = MediaEngine::default();
        let video_feedback = vec![
            RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            },
            RTCPFeedback {
                typ: "nack".into(),
                parameter: "pli".into(),
            },
            RTCPFeedback {
                typ: "ccm".into(),
                parameter: "fir".into(),
            },
            RTCPFeedback {
                typ: "transport-cc".into(),
                parameter: String::new(),
            },
        ];
        engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )?;
        // VP8 and H.264, each with RTX (RFC 4588): the SFU answers NACKs with retransmissions
        // on their own SSRC. A publisher lists its own codec first.
        let mut video_codecs = [(vp8_codec(), 96), (h264_codec(), 102)];
        if options.h264 {
            video_codecs.reverse();
        }
        for (codec, pt) in video_codecs {
            engine.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        rtcp_feedback: video_feedback.clone(),
                        ..codec
                    },
                    payload_type: pt,
                },
                RtpCodecKind::Video,
            )?;
            engine.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: MIME_TYPE_RTX.to_owned(),
                        clock_rate: 90_000,
                        channels: 0,
                        sdp_fmtp_line: format!("apt={pt}"),
                        rtcp_feedback: vec![],
                    },
                    payload_type: pt + 1,
                },
                RtpCodecKind::Video,
            )?;
        }
        engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.into(),
            },
            RtpCodecKind::Audio,
            None,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut engine)?.with(
            Slot::from(14_000),
            KeyframeRequestsUp {
                reads: VecDeque::new(),
                writes: VecDeque::new(),
            },
        );
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_runtime(NetRuntime::new(net.clone()))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .with_handler(Arc::new(Handler {
                gathered: gathered_tx,
                state: state.clone(),
                received: received.clone(),
            }))
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let mut audio = None;
        let mut video = None;
        if options.audio {
            let track = Arc::new(TrackLocalStaticSample::new(
                Instant::now(),
                local_track(identity, "audio", RtpCodecKind::Audio, opus_codec()),
            )?);
            let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            audio = Some((track, sender));
        } else {
            pc.add_transceiver_from_kind(RtpCodecKind::Audio, Some(recv_only()))
                .await?;
        }
        if options.video {
            let media = if options.simulcast {
                simulcast_track(identity)
            } else if options.h264 {
                local_track(identity, "video", RtpCodecKind::Video, h264_codec())
            } else {
                local_track(identity, "video", RtpCodecKind::Video, vp8_codec())
            };
            let track = Arc::new(TrackLocalStaticSample::new(Instant::now(), media)?);
            let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            video = Some((track, sender));
        } else {
            pc.add_transceiver_from_kind(RtpCodecKind::Video, Some(recv_only()))
                .await?;
        }

        let mut screen = None;
        if options.screen {
            let media = local_track(identity, "screen", RtpCodecKind::Video, vp8_codec());
            let track = Arc::new(TrackLocalStaticSample::new(Instant::now(), media)?);
            let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            screen = Some((track, sender));
        }

        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        tokio::time::timeout(Duration::from_secs(5), gathered.recv())
            .await
            .context("ICE gathering did not complete")?;
        let local = pc
            .local_description()
            .await
            .context("no local description")?;
        dump_sdp(&format!("{identity}-offer"), &local.sdp);
        // The screen is the second video line after a camera; without one it took over the
        // receive-only video line (webrtc-rs reuses a transceiver that never sent).
        let screen_line = usize::from(options.video);
        let screen_mid = screen
            .as_ref()
            .and_then(|_| media_section_mids(&local.sdp, "video").nth(screen_line));
        let mut offer = json!({"type": "offer", "sdp": local.sdp});
        if let Some(mid) = &screen_mid {
            offer["screen"] = json!(mid);
        }
        let reply = ws.request(offer).await;
        if reply["type"] != "answer" {
            return Err(anyhow!("offer refused: {reply}"));
        }
        let answer = reply["sdp"]
            .as_str()
            .context("answer without sdp")?
            .to_string();
        dump_sdp(&format!("{identity}-answer"), &answer);
        received.learn_payload_types(&answer);
        pc.set_remote_description(RTCSessionDescription::answer(answer)?)
            .await?;

        let (requests, requests_rx) = mpsc::channel(16);
        let (events_tx, events) = mpsc::unbounded_channel();
        let offers_answered = Arc::new(AtomicU64::new(0));
        tokio::spawn(signaling_task(
            ws,
            pc.clone(),
            requests_rx,
            events_tx,
            offers_answered.clone(),
            received.clone(),
        ));

        let stop = Arc::new(AtomicBool::new(false));
        let keyframe_requests = Arc::new(AtomicU64::new(0));
        let loudness = Arc::new(AtomicU32::new(options.loudness.to_bits()));
        let participant = Participant {
            loudness: loudness.clone(),
            identity: identity.to_string(),
            joined,
            events,
            pc,
            received,
            net,
            keyframe_requests: keyframe_requests.clone(),
            offers_answered,
            state,
            requests,
            stop: stop.clone(),
        };
        participant.wait_connected(Duration::from_secs(10)).await?;
        if let Some((track, sender)) = audio {
            let pt = negotiated_pt(&sender).await?;
            tokio::spawn(send_audio(
                track,
                pt,
                loudness,
                options.tone_hz,
                stop.clone(),
            ));
        }
        if let Some((track, sender)) = video {
            let pt = negotiated_pt(&sender).await?;
            let wanted = Arc::new(AtomicBool::new(true));
            tokio::spawn(watch_keyframe_requests(
                track.clone(),
                wanted.clone(),
                keyframe_requests,
                stop.clone(),
            ));
            let mid = media_section_mids(&local.sdp, "video").next();
            tokio::spawn(send_video(
                track,
                pt,
                mid,
                options.clone(),
                wanted,
                stop.clone(),
            ));
        }
        if let Some((track, sender)) = screen {
            let pt = negotiated_pt(&sender).await?;
            // Keyframes once a second: the screen's keyframe requests are not watched.
            let plain = ParticipantOptions {
                simulcast: false,
                h264: false,
                ..options
            };
            let wanted = Arc::new(AtomicBool::new(true));
            tokio::spawn(send_video(
                track,
                pt,
                screen_mid,
                plain,
                wanted,
                stop.clone(),
            ));
        }
        Ok(participant)
    }

    /// Waits until ICE and DTLS are up.
    /// Changes the tone's amplitude (0: silence) from the next 20 ms frame on.
    pub fn set_loudness(&self, loudness: f32) {
        self.loudness.store(loudness.to_bits(), Ordering::Relaxed);
    }

    /// Waits until the media connection is up.
    pub async fn wait_connected(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let s = *self.state.lock().unwrap_or_else(|p| p.into_inner());
            match s {
                RTCPeerConnectionState::Connected => return Ok(()),
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                    return Err(anyhow!("peer connection {s}"));
                }
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(anyhow!("not connected after {within:?} (state {s})"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The connection state now.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends a signaling request and returns its reply.
    pub async fn request(&self, message: Value) -> anyhow::Result<Value> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send((message, tx))
            .await
            .map_err(|_| anyhow!("signaling task ended"))?;
        tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .context("no reply")?
            .map_err(|_| anyhow!("signaling task ended"))
    }

    /// Waits until `check` holds over what was received, or fails with what was seen.
    pub async fn until(
        &self,
        within: Duration,
        what: &str,
        check: impl Fn(&Received) -> bool,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if check(&self.received) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                return Err(anyhow!(
                    "{}: {what} not within {within:?}; received {:?}",
                    self.identity,
                    self.received.sources()
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The next event of `kind` within `within`, skipping others.
    pub async fn event(&mut self, kind: &str, within: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .map_err(|_| anyhow!("{}: no {kind} event within {within:?}", self.identity))?
                .context("signaling ended")?;
            if e["type"] == kind {
                return Ok(e);
            }
        }
    }

    /// Stops sending and closes the peer connection (the WebSocket stays until dropped).
    pub async fn close(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.pc.close().await;
    }
}

impl Drop for Participant {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // webrtc-rs drives every connection of the process on a shared reactor: a connection
        // left open keeps costing it after its test is over.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pc = self.pc.clone();
            runtime.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// The payload type negotiated for a sender (webrtc-rs refuses samples stamped with another).
async fn negotiated_pt(sender: &Arc<dyn RtpSender>) -> anyhow::Result<u8> {
    sender
        .get_parameters()
        .await?
        .rtp_parameters
        .codecs
        .first()
        .map(|c| c.payload_type)
        .context("no codec negotiated for a track")
}

fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
        rtcp_feedback: vec![],
    }
}

fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: vec![],
    }
}

fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
            .into(),
        rtcp_feedback: vec![],
    }
}

fn recv_only() -> RTCRtpTransceiverInit {
    RTCRtpTransceiverInit {
        direction: RTCRtpTransceiverDirection::Recvonly,
        streams: vec![],
        send_encodings: vec![],
    }
}

fn local_track(
    identity: &str,
    kind: &str,
    codec_kind: RtpCodecKind,
    codec: RTCRtpCodec,
) -> MediaStreamTrack {
    MediaStreamTrack::new(
        identity.to_owned(),
        format!("{identity}-{kind}"),
        kind.to_owned(),
        codec_kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(rand_u32()),
                ..Default::default()
            },
            codec,
            ..Default::default()
        }],
    )
}

/// The simulcast layers: rid, share of the bitrate, size.
const LAYERS: [(&str, u64, (u16, u16)); 3] = [
    ("q", 9, (320, 180)),
    ("h", 3, (640, 360)),
    ("f", 1, (1280, 720)),
];

fn simulcast_track(identity: &str) -> MediaStreamTrack {
    MediaStreamTrack::new(
        identity.to_owned(),
        format!("{identity}-video"),
        "video".to_owned(),
        RtpCodecKind::Video,
        LAYERS
            .iter()
            .map(|(rid, _, _)| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: (*rid).into(),
                    ssrc: Some(rand_u32()),
                    ..Default::default()
                },
                codec: vp8_codec(),
                ..Default::default()
            })
            .collect(),
    )
}

const SDES_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
const SDES_RTP_STREAM_ID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// An RTP header extension carrying an SDES text item (a mid or a rid, RFC 8843 / 8852).
struct SdesItem(Bytes);

impl SdesItem {
    fn extension(uri: &'static str, text: &str) -> HeaderExtension {
        HeaderExtension::Custom {
            uri: uri.into(),
            extension: Box::new(SdesItem(Bytes::copy_from_slice(text.as_bytes()))),
        }
    }
}

impl rtc::shared::marshal::MarshalSize for SdesItem {
    fn marshal_size(&self) -> usize {
        self.0.len()
    }
}

impl rtc::shared::marshal::Marshal for SdesItem {
    fn marshal_to(&self, buf: &mut [u8]) -> Result<usize, rtc::shared::error::Error> {
        let out = buf
            .get_mut(..self.0.len())
            .ok_or(rtc::shared::error::Error::ErrBufferTooSmall)?;
        out.copy_from_slice(&self.0);
        Ok(self.0.len())
    }
}

/// The `a=mid` of the first m-section of `kind` in an SDP.
/// The mids of the media lines of `kind`, in order.
fn media_section_mids<'a>(sdp: &'a str, kind: &'a str) -> impl Iterator<Item = String> + 'a {
    let mut in_kind = false;
    sdp.lines().filter_map(move |line| {
        if let Some(m) = line.strip_prefix("m=") {
            in_kind = m.starts_with(kind);
            None
        } else if in_kind {
            line.strip_prefix("a=mid:")
                .map(|mid| mid.trim().to_string())
        } else {
            None
        }
    })
}

fn rand_u32() -> u32 {
    static N: AtomicU64 = AtomicU64::new(0x2545_f491_4f6c_dd1d);
    let x = N.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    ((x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 32) as u32
}

async fn signaling_task(
    mut ws: WsClient,
    pc: Arc<dyn PeerConnection>,
    mut requests: mpsc::Receiver<Request>,
    events: mpsc::UnboundedSender<Value>,
    offers_answered: Arc<AtomicU64>,
    received: Arc<Received>,
) {
    let mut waiting: HashMap<String, oneshot::Sender<Value>> = HashMap::new();
    let mut next = 0u64;
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some((mut message, reply)) = request else { return };
                next += 1;
                let id = format!("p{next}");
                message["id"] = json!(id);
                ws.send_text(&message.to_string()).await;
                waiting.insert(id, reply);
            }
            message = ws.next(Duration::from_secs(3600)) => {
                let Some(message) = message else { return };
                if let Some(id) = message["id"].as_str() {
                    if let Some(reply) = waiting.remove(id) {
                        let _ = reply.send(message);
                    } else if message["type"] == "error" {
                        let _ = events.send(message);
                    }
                    continue;
                }
                if message["type"] == "media.offer" {
                    let offer = message["sdp"].as_str().unwrap_or_default();
                    received.learn_payload_types(offer);
                    match answer_offer(&pc, offer).await {
                        Ok(sdp) => {
                            next += 1;
                            let id = format!("a{next}");
                            ws.send_text(&json!({"type": "answer", "id": id, "sdp": sdp}).to_string()).await;
                            offers_answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "could not answer a server offer"),
                    }
                    continue;
                }
                let _ = events.send(message);
            }
        }
    }
}

/// With `TIAOJIE_TEST_DUMP_SDP=DIR`, every SDP the participant sends or gets is written to
/// `DIR/<name>.sdp`, for debugging negotiation.
fn dump_sdp(name: &str, sdp: &str) {
    if let Ok(dir) = std::env::var("TIAOJIE_TEST_DUMP_SDP") {
        let _ = std::fs::write(format!("{dir}/{name}.sdp"), sdp);
    }
}

async fn answer_offer(pc: &Arc<dyn PeerConnection>, sdp: &str) -> anyhow::Result<String> {
    dump_sdp(&format!("server-offer-{}", rand_u32()), sdp);
    pc.set_remote_description(RTCSessionDescription::offer(sdp.to_string())?)
        .await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    Ok(pc
        .local_description()
        .await
        .context("no local description")?
        .sdp)
}

async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticSample>,
    wanted: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        // webrtc-rs 0.21.1's `poll` holds the track's receiver lock while it waits, and a
        // renegotiation re-binds the track with a new receiver under that same lock: an endless
        // poll would keep the old one (and never see another keyframe request). Poll in short
        // turns so the re-bind gets through.
        let event = match tokio::time::timeout(Duration::from_millis(100), track.poll()).await {
            Ok(Some(event)) => event,
            Ok(None) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(_) => continue,
        };
        if let TrackLocalEvent::OnRtcpPacket(packets) = event
            && packets.iter().any(|p| {
                p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()
            })
        {
            count.fetch_add(1, Ordering::Relaxed);
            wanted.store(true, Ordering::Relaxed);
        }
    }
}

/// 20 ms Opus frames of a tone, with RFC 6464 levels.
async fn send_audio(
    track: Arc<TrackLocalStaticSample>,
    pt: u8,
    loudness: Arc<AtomicU32>,
    tone_hz: f32,
    stop: Arc<AtomicBool>,
) {
    let Ok(mut encoder) = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
    else {
        tracing::error!("opus encoder");
        return;
    };
    let Some(ssrc) = track.ssrcs().await.first().copied() else {
        return;
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut pcm = vec![0i16; 960];
    let mut out = vec![0u8; 1500];
    let mut phase = 0.0f32;
    let step = 2.0 * std::f32::consts::PI * tone_hz / 48_000.0;
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let loudness = f32::from_bits(loudness.load(Ordering::Relaxed)).clamp(0.0, 1.0);
        let rms = loudness / std::f32::consts::SQRT_2;
        let level = if rms <= 0.0 {
            127
        } else {
            (-20.0 * rms.log10()).clamp(0.0, 127.0) as u8
        };
        for s in pcm.iter_mut() {
            *s = (phase.sin() * loudness * f32::from(i16::MAX)) as i16;
            phase = (phase + step) % (2.0 * std::f32::consts::PI);
        }
        let Ok(n) = encoder.encode(&pcm, &mut out) else {
            continue;
        };
        let sample = Sample {
            data: Bytes::copy_from_slice(&out[..n]),
            duration: Duration::from_millis(20),
            ..Sample::new(Instant::now())
        };
        let _ = track
            .sample_writer(ssrc, pt)
            .with_audio_level(AudioLevelExtension {
                level,
                voice: level < 127,
            })
            .write_sample(&sample)
            .await;
    }
}

/// One encoding the participant sends.
struct VideoLayer {
    ssrc: u32,
    /// 0 for the only or lowest layer; written into each frame's trailer.
    layer: u8,
    frame_bytes: usize,
    dims: (u16, u16),
    /// The simulcast rid, if simulcast.
    rid: Option<&'static str>,
}

/// 30 frames per second of synthetic VP8 or H.264 at the configured bitrate (per layer with simulcast);
/// a keyframe when asked.
async fn send_video(
    track: Arc<TrackLocalStaticSample>,
    pt: u8,
    mid: Option<String>,
    options: ParticipantOptions,
    wanted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let ssrcs = track.ssrcs().await;
    let layers: Vec<VideoLayer> = if options.simulcast {
        ssrcs
            .iter()
            .zip(LAYERS)
            .enumerate()
            .map(|(i, (ssrc, (rid, share, dims)))| VideoLayer {
                ssrc: *ssrc,
                layer: i as u8,
                frame_bytes: (options.video_bitrate_bps / share / 8 / 30) as usize,
                dims,
                rid: Some(rid),
            })
            .collect()
    } else {
        let Some(ssrc) = ssrcs.first() else { return };
        vec![VideoLayer {
            ssrc: *ssrc,
            layer: 0,
            frame_bytes: (options.video_bitrate_bps / 8 / 30) as usize,
            dims: (640, 360),
            rid: None,
        }]
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(33));
    let mut number = 0u32;
    let mut last_key = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let key = wanted.swap(false, Ordering::Relaxed)
            || last_key.elapsed() >= options.keyframe_interval;
        if key {
            last_key = Instant::now();
        }
        for l in &layers {
            let frame_bytes = l.frame_bytes.max(64);
            let size = if key { frame_bytes * 3 } else { frame_bytes };
            let frame = if options.h264 {
                let sent_us = epoch().elapsed().as_micros() as u64;
                h264::synthetic_frame(key, l.layer, number, sent_us, size)
            } else {
                synthetic_vp8_frame(key, l.layer, number, size, l.dims)
            };
            let sample = Sample {
                data: frame,
                duration: Duration::from_millis(33),
                ..Sample::new(Instant::now())
            };
            let mut writer = track.sample_writer(l.ssrc, pt);
            // webrtc-rs leaves the mid and rid extensions to the application; without them a
            // receiver cannot tell which layer an SSRC it has not seen in the SDP belongs to.
            if let (Some(mid), Some(rid)) = (&mid, l.rid) {
                writer = writer
                    .with_extension(SdesItem::extension(SDES_MID, mid))
                    .with_extension(SdesItem::extension(SDES_RTP_STREAM_ID, rid));
            }
            let _ = writer.write_sample(&sample).await;
        }
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_wrap_and_repairs_fill_gaps() {
        let mut s = StreamStats::default();
        for seq in [65_530u16, 65_531, 65_533, 65_534, 65_535, 0, 1] {
            s.record_seq(seq);
        }
        assert_eq!(s.distinct, 7);
        assert!(s.completeness() < 1.0, "65532 is missing");
        s.record_seq(65_532);
        assert_eq!(s.completeness(), 1.0);
        s.record_seq(65_532);
        assert_eq!(s.distinct, 8, "duplicates count once");
    }

    #[test]
    fn the_mid_of_a_media_section_is_found_and_sdes_items_marshal() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\n";
        let mids = |kind| media_section_mids(sdp, kind).collect::<Vec<_>>();
        assert_eq!(mids("video"), ["1", "2"]);
        assert_eq!(mids("audio"), ["0"]);
        assert!(mids("application").is_empty());
        use rtc::shared::marshal::Marshal;
        let item = SdesItem(Bytes::from_static(b"h"));
        assert_eq!(item.marshal().expect("marshal").as_ref(), b"h");
        assert!(
            item.marshal_to(&mut []).is_err(),
            "too small a buffer is refused"
        );
    }

    #[test]
    fn synthetic_frames_carry_their_trailer() {
        let key = synthetic_vp8_frame(true, 2, 7, 500, (320, 180));
        assert_eq!(key.len(), 500);
        assert_eq!(key[0] & 1, 0);
        let (layer, _) = trailer(&key).expect("trailer");
        assert_eq!(layer, 2);
        let delta = synthetic_vp8_frame(false, 1, 8, 100, (320, 180));
        assert_eq!(delta[0] & 1, 1);
        assert_eq!(trailer(&delta).map(|t| t.0), Some(1));
        // A packet with a descriptor (X, I with a 15-bit picture id) that starts the frame.
        let mut packet = vec![0x90, 0x80, 0x81, 0x23];
        packet.extend_from_slice(&key);
        assert_eq!(vp8_frame_start(&packet).map(<[u8]>::len), Some(500));
    }
}

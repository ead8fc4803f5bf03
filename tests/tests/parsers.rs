//! Property runs over the parsers that take outside input: signaling messages, SDP offers (end
//! to end through a real server), court envelopes and wire frames, and the recorder's files.
//! Each run mutates well-formed samples (flipped, dropped, repeated and spliced bytes,
//! truncations) and feeds random bytes, from a fixed seed so a failure replays; the property is
//! always the same: a typed answer or a refusal, never a panic, and the server keeps serving.
//! Bounded: a few thousand cases each, seconds in a debug build.

use serde_json::json;
use tiaojie_confirmation::envelope::{Body, Envelope, Message, Signer};
use tiaojie_domain::Role;
use tiaojie_recorder::{CaptureConfig, EventKind, Packet, Recording, SigningKey, verify};
use tiaojie_signaling::protocol::parse_client_message;
use tiaojie_tests::{Backend, TempDir, TestServer};

/// xorshift64*: small, fast, and the same sequence for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// `sample` changed in one to four ways.
    fn mutate(&mut self, sample: &[u8]) -> Vec<u8> {
        let mut out = sample.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(6) {
                0 if !out.is_empty() => {
                    let (i, bit) = (at.min(out.len() - 1), self.below(8));
                    out[i] ^= 1 << bit;
                }
                1 if at < out.len() => {
                    out.remove(at);
                }
                2 => out.insert(at, self.next() as u8),
                3 => out.truncate(at),
                4 => {
                    // Repeat a slice: nesting, long strings, many fields.
                    let end = (at + 1 + self.below(16)).min(out.len());
                    let piece = out[at.min(end)..end].to_vec();
                    for _ in 0..self.below(64) {
                        out.splice(at..at, piece.iter().copied());
                    }
                }
                _ => {
                    let interesting: [&[u8]; 8] = [
                        b"\"",
                        b"{",
                        b"[",
                        b"null",
                        b"-1e999",
                        b"\\u0000",
                        "调".as_bytes(),
                        b"99999999999999999999",
                    ];
                    let piece = interesting[self.below(interesting.len())];
                    out.splice(at..at, piece.iter().copied());
                }
            }
        }
        out
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        (0..self.below(max)).map(|_| self.next() as u8).collect()
    }
}

const MESSAGES: &[&str] = &[
    r#"{"type":"join","v":1,"id":1,"room":"r","token":"a.b.c"}"#,
    r#"{"type":"resume","id":"x","resume_token":"t","last_seq":7}"#,
    r#"{"type":"chat","id":2,"text":"你好","to":"p-li"}"#,
    r#"{"type":"mute","id":3,"kind":"audio","muted":true}"#,
    r#"{"type":"moderate","id":4,"action":"move","target":"a","space":"private:applicant"}"#,
    r#"{"type":"moderate","id":5,"action":"readmit","target":"a"}"#,
    r#"{"type":"offer","id":6,"sdp":"v=0\r\n","screen":"1"}"#,
    r#"{"type":"candidate","id":7,"candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0"}}"#,
    r#"{"type":"record","id":8,"action":"start","mode":"audio"}"#,
    r#"{"type":"preferences","id":9,"max_height":360}"#,
    r#"{"type":"follow","id":10,"token":"a.b.c"}"#,
];

#[test]
fn signaling_messages_mutated_or_random_get_a_typed_answer() {
    let mut rng = Rng(0x5eed_0017);
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..30_000 {
        let input = if i % 10 == 0 {
            rng.bytes(256)
        } else {
            let sample = MESSAGES[rng.below(MESSAGES.len())];
            rng.mutate(sample.as_bytes())
        };
        let text = String::from_utf8_lossy(&input);
        match parse_client_message(&text) {
            Ok(_) => accepted += 1,
            Err(e) => {
                assert!(
                    !e.code.as_str().is_empty(),
                    "{text:?}: an error without a code"
                );
                refused += 1;
            }
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
}

const OFFER: &str = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
a=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF\r\n\
a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\na=ssrc:1001 cname:x\r\n";

/// Mutated offers through a real server's signaling and SFU: each is answered or refused with
/// a typed error, and the connection and the server keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_sdp_offers_are_answered_or_refused_and_the_server_stays_up() {
    let server = TestServer::start_with(Backend::Sqlite, |c| {
        c.signaling.rate_limit_per_second = 10_000;
        c.signaling.rate_limit_burst = 10_000;
    })
    .await;
    let mut rng = Rng(0x0ffe_0017);
    let (mut answered, mut refused) = (0, 0);
    for round in 0..10 {
        // A fresh participant each round: an accepted offer changes its media state.
        let mut c = server.join("sdp", &format!("p{round}"), Role::Party).await;
        for _ in 0..40 {
            let sdp = String::from_utf8_lossy(&rng.mutate(OFFER.as_bytes())).into_owned();
            let reply = c.request(json!({"type": "offer", "sdp": sdp})).await;
            match reply["type"].as_str() {
                Some("answer") => answered += 1,
                Some("error") => {
                    assert!(reply["code"].is_string(), "{reply}");
                    refused += 1;
                }
                other => panic!("neither an answer nor an error: {other:?} {reply}"),
            }
        }
        assert!(c.ping().await, "the connection survives its offers");
    }
    assert!(
        answered + refused == 400,
        "{answered} answered, {refused} refused"
    );
    let mut other = server.join("elsewhere", "x", Role::Party).await;
    assert!(other.ping().await, "the server serves others");
    server.stop().await;
}

fn message() -> Message {
    Message {
        message_id: "m1".into(),
        case_id: "c1".into(),
        seq: 1,
        created_at: 1,
        body: Body::Withdrawal {
            application: "a1".into(),
            by: "p-zhang".into(),
        },
    }
}

#[test]
fn court_envelopes_and_wire_frames_mutated_never_open_or_panic() {
    let mut rng = Rng(0xc0a7_0017);
    let (signer, _) = Signer::generate().expect("key");
    let key = signer.public();
    let sealed = signer.seal(&message());
    let frame = serde_json::to_string(&sealed).expect("json");
    for _ in 0..5_000 {
        // An altered payload or signature never opens.
        let payload = String::from_utf8_lossy(&rng.mutate(sealed.payload.as_bytes())).into_owned();
        if payload != sealed.payload {
            let altered = Envelope {
                payload,
                signature: sealed.signature.clone(),
            };
            assert!(altered.open(&key).is_err());
        }
        // A payload the key did sign but that is garbage is refused as malformed, not a panic.
        let garbage = String::from_utf8_lossy(&rng.mutate(sealed.payload.as_bytes())).into_owned();
        let signed = Envelope {
            signature: signer.sign_b64(garbage.as_bytes()),
            payload: garbage,
        };
        let _ = signed.open(&key);
        // Frames off the wire, either direction.
        let bytes = rng.mutate(frame.as_bytes());
        let text = String::from_utf8_lossy(&bytes);
        let _ = serde_json::from_str::<tiaojie_confirmation::wire::ToBridge>(&text);
        let _ = serde_json::from_str::<tiaojie_confirmation::wire::FromBridge>(&text);
        let _ = serde_json::from_str::<Envelope>(&text).map(|e| e.open(&key));
    }
}

#[test]
fn recordings_with_bytes_changed_are_reported_never_panic() {
    let dir = TempDir::new("fuzz-recording");
    let (key, der) = SigningKey::generate().expect("key");
    let rec_dir = dir.0.join("rec");
    let mut r = Recording::create(&rec_dir, "rec", CaptureConfig::default(), key).expect("create");
    r.event(EventKind::Started {
        room: "r".into(),
        mode: "audio".into(),
        by: "m".into(),
        private_rooms: false,
    })
    .expect("event");
    for i in 0..200u64 {
        r.write(&Packet {
            track: "a-audio",
            arrival_us: 1_000_000 + i * 20_000,
            seq: i,
            rtp_time: i * 960,
            marker: false,
            keyframe: false,
            audio_level: Some(30),
            payload: &[0xf8, 0xff, 0xfe, i as u8],
        })
        .expect("write");
    }
    r.finish().expect("finish");
    // Finished as the server finishes one: derived files and the signed manifest.
    let signer = SigningKey::from_pkcs8(&der).expect("key again");
    tiaojie_recorder::finalize(&rec_dir, &signer, true).expect("finalize");
    assert!(
        verify(&rec_dir).problems.is_empty(),
        "the untouched recording verifies"
    );
    let files: Vec<std::path::PathBuf> = walk(&rec_dir);
    let mut rng = Rng(0x7ec0_0017);
    for _ in 0..300 {
        let file = &files[rng.below(files.len())];
        let original = std::fs::read(file).expect("read");
        let changed = rng.mutate(&original);
        if changed == original {
            continue;
        }
        std::fs::write(file, &changed).expect("write");
        let report = verify(&rec_dir);
        let _ = tiaojie_recorder::read_events(&rec_dir);
        std::fs::write(file, &original).expect("restore");
        // Every file of a recording is covered by its chain or its signed manifest.
        assert!(
            !report.problems.is_empty(),
            "{} changed and the recording still verifies: {:?} -> {:?}",
            file.display(),
            String::from_utf8_lossy(&original),
            String::from_utf8_lossy(&changed)
        );
    }
    dir.remove();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

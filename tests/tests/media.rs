//! The media plane end to end: headless webrtc-rs participants (an independent WebRTC stack)
//! through our SFU over real DTLS-SRTP on 127.0.0.1.

use std::time::{Duration, Instant};

use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use serde_json::json;
use tiaojie_domain::Role;
use tiaojie_tests::participant::{Participant, ParticipantOptions};
use tiaojie_tests::{Backend, TestServer};

/// One scenario at a time: each runs several WebRTC peers plus the SFU, and timing assertions
/// (2 s to first media, 500 ms to a keyframe) mean nothing on two cores shared by ten of them.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn server() -> (TestServer, tokio::sync::MutexGuard<'static, ()>) {
    let turn = ONE_AT_A_TIME.lock().await;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .try_init();
    (TestServer::start(Backend::Sqlite).await, turn)
}

async fn enter(
    server: &TestServer,
    room: &str,
    identity: &str,
    role: Role,
    options: ParticipantOptions,
) -> Participant {
    let token = server.token(room, identity, role);
    Participant::join(&server.ws_url(), room, identity, &token, options)
        .await
        .unwrap_or_else(|e| panic!("{identity} joins with media: {e:#}"))
}

fn both(p: &Participant, from: &str) -> bool {
    p.received.packets(from, "audio") > 0 && p.received.packets(from, "video") > 0
}

async fn expect_flow(p: &Participant, from: &str, within: Duration) {
    if let Err(e) = p
        .until(within, &format!("audio+video from {from}"), |_| {
            both(p, from)
        })
        .await
    {
        panic!("{e:#}");
    }
}

/// Asserts `p` gets no new media of `kind` from `from` for `window`: no packet it had not
/// seen before. Packets already on their way at the cut (paced at the SFU, queued in this
/// busy test process) may still land, so first it waits — 3 s at most — for a quiet 300 ms; a
/// stream that never stops fails all the same. (The bandwidth estimator's padding resends
/// packets already delivered on a paused line; a receiver drops those as duplicates.)
async fn expect_silence(p: &Participant, from: &str, kind: &'static str, window: Duration) {
    let distinct = || p.received.stream(from, kind).distinct;
    let settle_until = Instant::now() + Duration::from_secs(3);
    let mut last = distinct();
    while Instant::now() < settle_until {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = distinct();
        if now == last {
            break;
        }
        last = now;
    }
    let before = distinct();
    tokio::time::sleep(window).await;
    let after = distinct();
    assert_eq!(
        after, before,
        "{} still receives {kind} from {from} ({before} → {after} distinct packets)",
        p.identity
    );
}

async fn moderate(mediator: &Participant, action: &str, target: &str, extra: serde_json::Value) {
    let mut message = json!({"type": "moderate", "action": action, "target": target});
    if let (Some(m), Some(e)) = (message.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    let reply = mediator.request(message).await.expect("reply");
    assert_eq!(reply["type"], "ok", "{action} {target}: {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_receive_each_others_audio_and_video_within_two_seconds() {
    let (server, _turn) = server().await;
    let cast = [
        ("mediator", Role::Mediator),
        ("party-a", Role::Party),
        ("party-b", Role::Party),
    ];
    let mut people = Vec::new();
    for (name, role) in cast {
        let started = Instant::now();
        people.push((
            enter(&server, "r1", name, role, ParticipantOptions::default()).await,
            started,
        ));
    }
    for (p, p_started) in &people {
        for (other, o_started) in &people {
            if other.identity == p.identity {
                continue;
            }
            let since = (*p_started).max(*o_started);
            expect_flow(p, &other.identity, Duration::from_secs(3)).await;
            for kind in ["audio", "video"] {
                let first = p
                    .received
                    .stream(&other.identity, kind)
                    .first_at
                    .expect("received");
                let took = first.saturating_duration_since(since);
                assert!(
                    took <= Duration::from_secs(2),
                    "{} got {kind} from {} {took:?} after joining",
                    p.identity,
                    other.identity
                );
            }
        }
    }
    // A publishing line the client offered `sendrecv` (webrtc-rs's add_track does) is answered
    // `recvonly`: the SFU never sends on a client's own line, so the client holds no phantom
    // remote track there that never carries media.
    for (p, _) in &people {
        let mut publishing = 0;
        for t in p.pc.get_transceivers().await {
            // The participant's own lines are its first two (audio, video); the SFU's come after.
            let mid = t.mid().await.ok().flatten().unwrap_or_default();
            if mid != "0" && mid != "1" {
                continue;
            }
            publishing += 1;
            assert_eq!(
                t.current_direction().await.expect("current direction"),
                RTCRtpTransceiverDirection::Sendonly,
                "{}'s line {mid}",
                p.identity
            );
        }
        assert_eq!(publishing, 2, "{}: audio and video", p.identity);
    }
    // The SFU's own forwarding delay is exported as a histogram, every forwarded frame in it.
    let (_, metrics) = server.api(reqwest::Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    let frames = value("tiaojie_media_forward_delay_seconds_count");
    assert!(frames > 100.0, "{metrics}");
    assert_eq!(
        value("tiaojie_media_forward_delay_seconds_bucket{le=\"+Inf\"}"),
        frames
    );
    assert!(
        value("tiaojie_media_datagrams_out_total") > frames,
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leavers_tracks_are_removed_by_renegotiation() {
    let (server, _turn) = server().await;
    let a = enter(
        &server,
        "r2",
        "a",
        Role::Mediator,
        ParticipantOptions::default(),
    )
    .await;
    let b = enter(
        &server,
        "r2",
        "b",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    expect_flow(&a, "b", Duration::from_secs(3)).await;
    let offers = a.offers_answered.load(std::sync::atomic::Ordering::Relaxed);
    let reply = b.request(json!({"type": "leave"})).await.expect("left");
    assert_eq!(reply["type"], "left");
    b.close().await;
    // a gets a server offer that stops b's two media lines, and answers it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while a.offers_answered.load(std::sync::atomic::Ordering::Relaxed) == offers {
        assert!(Instant::now() < deadline, "no renegotiation after b left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sdp =
        a.pc.remote_description()
            .await
            .expect("remote description")
            .sdp;
    assert!(
        !sdp.contains("msid:b "),
        "b's tracks are still offered:\n{sdp}"
    );
    let (_, stats) = server
        .api(reqwest::Method::GET, "/api/rooms/r2/media", None)
        .await;
    assert_eq!(stats.as_array().map(Vec::len), Some(1), "{stats}");
    assert_eq!(stats[0]["received"], json!([]), "{stats}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_room_isolates_one_side_with_the_mediator() {
    let (server, _turn) = server().await;
    let m = enter(
        &server,
        "r3",
        "mediator",
        Role::Mediator,
        ParticipantOptions::default(),
    )
    .await;
    let a = enter(
        &server,
        "r3",
        "a",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    let b = enter(
        &server,
        "r3",
        "b",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    expect_flow(&b, "a", Duration::from_secs(3)).await;
    let offers_before = a.offers_answered.load(std::sync::atomic::Ordering::Relaxed);

    // 背对背: the mediator takes A into a private room (one action each, no reconnect).
    moderate(&m, "move", "a", json!({"space": "private:applicant"})).await;
    moderate(
        &m,
        "move",
        "mediator",
        json!({"space": "private:applicant"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    m.received.reset();
    a.received.reset();
    b.received.reset();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        m.received.packets("a", "audio") > 20,
        "the mediator hears A"
    );
    assert!(
        a.received.packets("mediator", "audio") > 20,
        "A hears the mediator"
    );
    assert!(m.received.packets("a", "video") > 10, "the mediator sees A");
    for kind in ["audio", "video"] {
        assert_eq!(
            b.received.packets("a", kind),
            0,
            "B receives nothing of A's {kind}"
        );
        assert_eq!(
            a.received.packets("b", kind),
            0,
            "A receives nothing of B's {kind}"
        );
        assert_eq!(
            b.received.packets("mediator", kind),
            0,
            "B receives nothing from the private room"
        );
    }
    assert_eq!(
        a.connection_state().to_string(),
        "connected",
        "nobody reconnected"
    );
    // Only forwarding changed: no renegotiation (the media lines stay, paused), so a side's
    // SDP does not grow with every move and coming back is instant.
    assert_eq!(
        a.offers_answered.load(std::sync::atomic::Ordering::Relaxed),
        offers_before,
        "a move renegotiated"
    );

    // Back to the joint room: everyone again.
    moderate(&m, "move", "a", json!({"space": "joint"})).await;
    moderate(&m, "move", "mediator", json!({"space": "joint"})).await;
    expect_flow(&b, "a", Duration::from_secs(3)).await;
    // And the mediator, back, receives the side that stayed (its tracks were stopped and come
    // back on new media lines).
    m.received.reset();
    expect_flow(&m, "b", Duration::from_secs(3)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lobby_sends_and_receives_nothing_until_admitted() {
    let (server, _turn) = server().await;
    let (status, body) = server
        .api(
            reqwest::Method::POST,
            "/api/rooms",
            Some(json!({"name": "r4", "lobby": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let m = enter(
        &server,
        "r4",
        "mediator",
        Role::Mediator,
        ParticipantOptions::default(),
    )
    .await;
    let mut p = enter(
        &server,
        "r4",
        "party",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    assert_eq!(p.joined["you"]["space"], "lobby", "{}", p.joined);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for kind in ["audio", "video"] {
        assert_eq!(
            m.received.packets("party", kind),
            0,
            "nobody receives a waiting person"
        );
        assert_eq!(
            p.received.packets("mediator", kind),
            0,
            "a waiting person receives nobody"
        );
    }
    moderate(&m, "admit", "party", json!({})).await;
    expect_flow(&m, "party", Duration::from_secs(3)).await;
    expect_flow(&p, "mediator", Duration::from_secs(3)).await;
    // The party is told it was admitted (after its own media.connected update).
    loop {
        let updated = p
            .event("participant.updated", Duration::from_secs(2))
            .await
            .expect("told");
        if updated["participant"]["space"] == "joint" {
            assert_eq!(updated["participant"]["identity"], "party");
            break;
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_a_keyframe_within_500_ms() {
    let (server, _turn) = server().await;
    let rare_keyframes = ParticipantOptions {
        keyframe_interval: Duration::from_secs(600),
        ..ParticipantOptions::default()
    };
    let _publisher = enter(&server, "r5", "publisher", Role::Mediator, rare_keyframes).await;
    let early = enter(
        &server,
        "r5",
        "early",
        Role::Party,
        ParticipantOptions::silent_observer(),
    )
    .await;
    early
        .until(Duration::from_secs(3), "video", |r| {
            r.stream("publisher", "video").keyframes > 0
        })
        .await
        .expect("the first subscriber gets a keyframe");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let started = Instant::now();
    let late = enter(
        &server,
        "r5",
        "late",
        Role::Party,
        ParticipantOptions::silent_observer(),
    )
    .await;
    late.until(Duration::from_secs(3), "a keyframe", |r| {
        r.stream("publisher", "video").keyframes > 0
    })
    .await
    .expect("keyframe");
    let first = late
        .received
        .stream("publisher", "video")
        .first_keyframe_at
        .expect("keyframe");
    let took = first.duration_since(started);
    assert!(
        took <= Duration::from_millis(500),
        "late joiner's first keyframe after {took:?}"
    );
    let video = late.received.stream("publisher", "video");
    assert!(
        video.first_at <= Some(first),
        "nothing before the keyframe is forwarded"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_only_stops_video_to_that_subscriber_and_back() {
    let (server, _turn) = server().await;
    let a = enter(
        &server,
        "r6",
        "a",
        Role::Mediator,
        ParticipantOptions::default(),
    )
    .await;
    let b = enter(
        &server,
        "r6",
        "b",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    expect_flow(&b, "a", Duration::from_secs(3)).await;
    let reply = b
        .request(json!({"type": "preferences", "audio_only": true}))
        .await
        .expect("reply");
    assert_eq!(reply["type"], "ok", "{reply}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let audio_before = b.received.packets("a", "audio");
    expect_silence(&b, "a", "video", Duration::from_millis(1000)).await;
    assert!(
        b.received.packets("a", "audio") > audio_before + 25,
        "audio continues"
    );
    assert!(
        a.received.packets("b", "video") > 0,
        "b still publishes video to others"
    );
    b.request(json!({"type": "preferences", "audio_only": false}))
        .await
        .expect("reply");
    let video_before = b.received.packets("a", "video");
    b.until(Duration::from_secs(3), "video again", |r| {
        r.packets("a", "video") > video_before + 10
    })
    .await
    .expect("video restored");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_muted_by_the_mediator_reaches_nobody_until_unmuted() {
    let (server, _turn) = server().await;
    let m = enter(
        &server,
        "r7",
        "mediator",
        Role::Mediator,
        ParticipantOptions::default(),
    )
    .await;
    let _a = enter(
        &server,
        "r7",
        "a",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    let b = enter(
        &server,
        "r7",
        "b",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    expect_flow(&b, "a", Duration::from_secs(3)).await;
    expect_flow(&m, "a", Duration::from_secs(3)).await;
    moderate(&m, "mute", "a", json!({"kind": "audio"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Nobody: the other party and the mediator who muted A alike, over the same second.
    tokio::join!(
        expect_silence(&b, "a", "audio", Duration::from_millis(1000)),
        expect_silence(&m, "a", "audio", Duration::from_millis(1000)),
    );
    let video = b.received.packets("a", "video");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        b.received.packets("a", "video") > video,
        "video is not muted"
    );
    moderate(&m, "mute", "a", json!({"kind": "audio", "muted": false})).await;
    let audio = b.received.packets("a", "audio");
    b.until(Duration::from_secs(3), "audio again", |r| {
        r.packets("a", "audio") > audio + 10
    })
    .await
    .expect("unmuted");
    server.stop().await;
}

/// A STUN binding request naming `ufrag` (no valid integrity): enough to pass our demux.
fn stun_request(ufrag: &str) -> Vec<u8> {
    let username = format!("{ufrag}:intruder");
    let mut attr = vec![0x00, 0x06];
    attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attr.extend_from_slice(username.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    m.extend_from_slice(&[9; 12]);
    m.extend_from_slice(&attr);
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_media_port_does_not_disturb_a_live_room() {
    let (server, _turn) = server().await;
    let a = enter(
        &server,
        "r8",
        "a",
        Role::Mediator,
        ParticipantOptions::default(),
    )
    .await;
    let b = enter(
        &server,
        "r8",
        "b",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    expect_flow(&b, "a", Duration::from_secs(3)).await;
    let sfu = server
        .server
        .as_ref()
        .and_then(|s| s.state.hub.sfu_handle())
        .expect("sfu");
    let port = sfu.local_addr();
    let answer_sdp = a.pc.remote_description().await.expect("answer").sdp;
    let ufrag = answer_sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("ufrag")
        .trim()
        .to_string();

    let before = b.received.stream("a", "audio").packets;
    let started = Instant::now();
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut x: u64 = 0x1234_5678_9abc_def0;
    let mut sent = 0u64;
    let stun = stun_request(&ufrag);
    while started.elapsed() < Duration::from_secs(2) {
        for _ in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 1200) as usize + 1;
            let mut junk: Vec<u8> = (0..len).map(|i| (x >> (i % 56)) as u8).collect();
            // Make some of it look like the start of real protocols: truncated STUN, DTLS, RTP.
            match x % 5 {
                0 => junk
                    .splice(
                        0..junk.len().min(12),
                        stun[..stun.len().min(12)].iter().copied(),
                    )
                    .for_each(drop),
                1 => junk[0] = 22,   // DTLS handshake record
                2 => junk[0] = 0x80, // RTP
                _ => {}
            }
            let _ = attacker.send_to(&junk, port).await;
            sent += 1;
        }
        // A STUN request with a live ufrag binds the attacker's address to that participant;
        // garbage from it then reaches the participant's state, which must shrug it off.
        let _ = attacker.send_to(&stun, port).await;
        let _ = attacker.send_to(&stun[..30], port).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let audio = b.received.stream("a", "audio").packets - before;
    // Opus at 20 ms is 50 packets a second; allow a little scheduling slack on a busy machine.
    assert!(
        audio as f64 >= elapsed * 50.0 * 0.8,
        "{audio} audio packets in {elapsed:.1} s while {sent} junk datagrams arrived"
    );
    expect_flow(&a, "b", Duration::from_secs(1)).await;
    assert!(
        sfu.counters().datagrams_unknown() > sent / 2,
        "junk is counted and dropped"
    );
    assert_eq!(sfu.counters().peer_panics(), 0);
    assert_eq!(a.connection_state().to_string(), "connected");
    assert_eq!(b.connection_state().to_string(), "connected");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_peer_is_cleaned_up_and_the_others_are_told() {
    let (server, _turn) = server().await;
    let mut a = enter(
        &server,
        "r9",
        "a",
        Role::Mediator,
        ParticipantOptions::default(),
    )
    .await;
    let b = enter(
        &server,
        "r9",
        "b",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    expect_flow(&a, "b", Duration::from_secs(3)).await;
    let cut_at = Instant::now();
    b.net.set_cut(true);
    // The signaling socket stays up: only b's media network is gone.
    loop {
        let e = a
            .event("participant.updated", Duration::from_secs(30))
            .await
            .expect("a is told");
        if e["participant"]["identity"] == "b" && e["participant"]["media"] == "lost" {
            break;
        }
    }
    let took = cut_at.elapsed();
    let (_, stats) = server
        .api(reqwest::Method::GET, "/api/rooms/r9/media", None)
        .await;
    let a_stats = stats
        .as_array()
        .and_then(|v| v.iter().find(|p| p["participant"] == "a"))
        .cloned()
        .expect("a");
    assert_eq!(
        a_stats["received"],
        json!([]),
        "b's tracks are gone: {stats}"
    );
    let b_stats = stats
        .as_array()
        .and_then(|v| v.iter().find(|p| p["participant"] == "b"))
        .cloned()
        .expect("b");
    assert_eq!(b_stats["connected"], false);
    eprintln!("vanished peer detected after {took:?}");
    assert!(took < Duration::from_secs(30));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_on_one_leg_is_repaired_by_nack() {
    let (server, _turn) = server().await;
    let a = enter(
        &server,
        "r10",
        "a",
        Role::Mediator,
        ParticipantOptions {
            keyframe_interval: Duration::from_secs(600),
            ..ParticipantOptions::default()
        },
    )
    .await;
    let b = enter(
        &server,
        "r10",
        "b",
        Role::Party,
        ParticipantOptions::silent_observer(),
    )
    .await;
    expect_flow(&b, "a", Duration::from_secs(3)).await;
    b.net.set_loss(0.05);
    b.received.reset();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // Stop dropping, then give the last retransmissions time to arrive.
    b.net.set_loss(0.0);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let video = b.received.stream("a", "video");
    let (arrived, dropped) = b.net.rtp_counts();
    eprintln!(
        "video: {} distinct of {} sent, completeness {:.4}; rtp arrived {arrived}, dropped {dropped}",
        video.distinct,
        video.last_seq + 1 - video.first_seq.unwrap_or(0),
        video.completeness()
    );
    assert!(dropped > 20, "the loss was real: {dropped} dropped");
    assert!(
        video.completeness() >= 0.995,
        "NACK repaired only {:.4}",
        video.completeness()
    );
    drop(a);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loudest_speaker_is_announced() {
    let (server, _turn) = server().await;
    let quiet = ParticipantOptions {
        loudness: 0.002,
        video: false,
        ..ParticipantOptions::default()
    };
    let loud = ParticipantOptions {
        loudness: 0.5,
        video: false,
        ..ParticipantOptions::default()
    };
    let mut m = enter(&server, "r11", "mediator", Role::Mediator, quiet).await;
    let _b = enter(&server, "r11", "b", Role::Party, loud).await;
    let event = m
        .event("speaker.active", Duration::from_secs(3))
        .await
        .expect("speaker event");
    assert_eq!(event["identity"], "b", "{event}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_speaks_in_a_private_room_is_not_announced_outside_it() {
    let (server, _turn) = server().await;
    let quiet = || ParticipantOptions {
        loudness: 0.002,
        video: false,
        ..ParticipantOptions::default()
    };
    let mut m = enter(&server, "r13", "mediator", Role::Mediator, quiet()).await;
    let a = enter(&server, "r13", "a", Role::Party, quiet()).await;
    let mut b = enter(&server, "r13", "b", Role::Party, quiet()).await;
    moderate(&m, "move", "a", json!({"space": "private:applicant"})).await;
    moderate(
        &m,
        "move",
        "mediator",
        json!({"space": "private:applicant"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    while b.events.try_recv().is_ok() {}
    // A speaks up in the private room: the mediator there is told, B outside is not.
    a.set_loudness(0.5);
    let event = m
        .event("speaker.active", Duration::from_secs(3))
        .await
        .expect("speaker event in the private room");
    assert_eq!(event["identity"], "a", "{event}");
    let outside = b.event("speaker.active", Duration::from_millis(1500)).await;
    assert!(
        outside.is_err(),
        "B was told who speaks in the private room: {outside:?}"
    );
    server.stop().await;
}

/// A simulcast publisher (three layers, q/h/f) and one subscriber: the subscriber gets a layer
/// above the lowest, the lowest when it asks for 180 lines, a larger one when it lifts that;
/// the lowest when its network is capped at 250 kbit/s, and a higher one when the cap lifts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulcast_layers_follow_the_subscribers_bandwidth_and_size() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_default())
        .try_init();
    let (server, _turn) = server().await;
    let simulcast = ParticipantOptions {
        simulcast: true,
        video_bitrate_bps: 1_500_000,
        audio: false,
        ..ParticipantOptions::default()
    };
    let _publisher = enter(&server, "r12", "publisher", Role::Mediator, simulcast).await;
    let sub = enter(
        &server,
        "r12",
        "sub",
        Role::Party,
        ParticipantOptions::silent_observer(),
    )
    .await;
    let layer = |r: &tiaojie_tests::participant::Received| r.stream("publisher", "video").layer;
    if let Err(e) = sub
        .until(Duration::from_secs(10), "a layer above the lowest", |r| {
            layer(r) >= Some(1)
        })
        .await
    {
        let (_, stats) = server
            .api(reqwest::Method::GET, "/api/rooms/r12/media", None)
            .await;
        panic!("{e:#}\n{stats}");
    }

    // The subscriber asks for small pictures: the lowest layer (180 lines).
    sub.request(json!({"type": "preferences", "max_height": 180}))
        .await
        .expect("reply");
    sub.until(Duration::from_secs(5), "the 180-line layer", |r| {
        layer(r) == Some(0)
    })
    .await
    .expect("max_height honoured");
    sub.request(json!({"type": "preferences", "max_height": 0}))
        .await
        .expect("reply");
    sub.until(Duration::from_secs(5), "a larger layer again", |r| {
        layer(r) >= Some(1)
    })
    .await
    .expect("limit cleared");

    // Its network narrows to 250 kbit/s: the estimate falls and the lowest layer fits.
    sub.net.set_cap(250_000);
    let down = sub
        .until(
            Duration::from_secs(20),
            "the lowest layer under the cap",
            |r| layer(r) == Some(0),
        )
        .await
        .expect("switched down");
    sub.net.set_cap(0);
    let up = sub
        .until(
            Duration::from_secs(30),
            "a higher layer after the cap lifts",
            |r| layer(r) >= Some(1),
        )
        .await
        .expect("switched back up");
    eprintln!("switched down after {down:?}, up after {up:?}");
    let (_, stats) = server
        .api(reqwest::Method::GET, "/api/rooms/r12/media", None)
        .await;
    let publisher = stats
        .as_array()
        .and_then(|v| v.iter().find(|p| p["participant"] == "publisher"))
        .cloned()
        .expect("publisher");
    assert_eq!(
        publisher["published"][0]["layers"].as_array().map(Vec::len),
        Some(3),
        "{stats}"
    );
    server.stop().await;
}

/// H.264 where the publisher offers it: an H.264 publisher's frames reach a subscriber (which
/// offers VP8 and H.264) as H.264, starting on a keyframe (SPS, PPS, IDR), with every frame's
/// trailer intact; a late subscriber gets a keyframe on request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_is_forwarded_when_the_publisher_sends_it() {
    let (server, _turn) = server().await;
    let h264 = ParticipantOptions {
        h264: true,
        keyframe_interval: Duration::from_secs(600),
        ..ParticipantOptions::default()
    };
    let publisher = enter(&server, "r13", "publisher", Role::Mediator, h264).await;
    let offer = publisher.pc.local_description().await.expect("offer").sdp;
    assert!(offer.contains("H264/90000"), "the publisher offers H.264");
    let sub = enter(
        &server,
        "r13",
        "sub",
        Role::Party,
        ParticipantOptions::silent_observer(),
    )
    .await;
    expect_flow(&sub, "publisher", Duration::from_secs(3)).await;
    sub.until(Duration::from_secs(3), "60 H.264 frames", |r| {
        r.stream("publisher", "video").latencies_us.len() >= 60
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}: {:?}", sub.received.stream("publisher", "video")));
    let video = sub.received.stream("publisher", "video");
    assert!(video.keyframes >= 1, "{video:?}");
    assert!(
        video.first_at <= video.first_keyframe_at,
        "forwarding starts on a keyframe"
    );
    let late = enter(
        &server,
        "r13",
        "late",
        Role::Party,
        ParticipantOptions::silent_observer(),
    )
    .await;
    late.until(Duration::from_secs(2), "an H.264 keyframe", |r| {
        r.stream("publisher", "video").keyframes > 0
    })
    .await
    .expect("the late subscriber gets a keyframe although the publisher sends them rarely");
    server.stop().await;
}

/// Asks the room who is sharing a screen.
async fn sharing(p: &Participant, who: &str) -> bool {
    let reply = p
        .request(json!({"type": "participants"}))
        .await
        .expect("participants");
    reply["participants"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["identity"] == who))
        .is_some_and(|i| i["screen"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_screen_stops_when_the_rooms_split_and_cannot_start_while_split() {
    let (server, _turn) = server().await;
    let room = "r-screen";
    let mut m = enter(
        &server,
        room,
        "mediator",
        Role::Mediator,
        ParticipantOptions::default(),
    )
    .await;
    let sharer = ParticipantOptions {
        screen: true,
        ..ParticipantOptions::default()
    };
    let _a = enter(&server, room, "a", Role::Party, sharer.clone()).await;
    let b = enter(
        &server,
        room,
        "b",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;

    // In the joint room everyone sees A's screen besides A's camera, on its own track.
    for viewer in [&m, &b] {
        viewer
            .until(Duration::from_secs(3), "A's screen", |r| {
                r.packets("a", "screen") > 10 && r.packets("a", "video") > 10
            })
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    }
    assert!(sharing(&m, "a").await, "the room is told A shares");
    // A screen declared on a media line the offer does not have is refused, and nothing changes.
    let sdp =
        m.pc.local_description()
            .await
            .expect("local description")
            .sdp;
    let reply = m
        .request(json!({"type": "offer", "sdp": sdp, "screen": "9"}))
        .await
        .expect("reply");
    assert_eq!(reply["code"], "invalid_message", "{reply}");
    assert!(!sharing(&m, "mediator").await);

    // The mediator takes B's side into a private room: A's screen stops for everyone — the
    // mediator in the joint room included — although A, a misbehaving client, sends on.
    while m.events.try_recv().is_ok() {}
    moderate(&m, "move", "b", json!({"space": "private:respondent"})).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let e = m
            .event("participant.updated", Duration::from_secs(3))
            .await
            .expect("participant.updated");
        if e["participant"]["identity"] == "a" {
            assert_eq!(e["participant"]["screen"], false, "{e}");
            break;
        }
        assert!(Instant::now() < deadline, "A's share was never ended");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::join!(
        expect_silence(&m, "a", "screen", Duration::from_millis(1500)),
        expect_silence(&b, "a", "screen", Duration::from_millis(1500)),
    );
    let camera = m.received.packets("a", "video");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        m.received.packets("a", "video") > camera,
        "A's camera goes on in the joint room"
    );

    // While split, a new share is refused, and with it the offer that carries it.
    let late = server.token(room, "c", Role::Party);
    let refused = Participant::join(&server.ws_url(), room, "c", &late, sharer.clone()).await;
    let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("rooms_split"), "a share while split: {err}");
    // Someone without the publish grant may never share.
    let watcher = server.token(room, "watcher", Role::Observer);
    let options = ParticipantOptions {
        screen: true,
        ..ParticipantOptions::silent_observer()
    };
    let refused = Participant::join(&server.ws_url(), room, "watcher", &watcher, options).await;
    let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("forbidden"), "an observer's share: {err}");

    // Back together: the share stays ended (A must share again), the camera comes back to B.
    moderate(&m, "move", "b", json!({"space": "joint"})).await;
    b.received.reset();
    expect_flow(&b, "a", Duration::from_secs(3)).await;
    expect_silence(&b, "a", "screen", Duration::from_millis(1000)).await;
    assert!(!sharing(&m, "a").await, "A's share ended with the split");
    server.stop().await;
}

/// A STUN binding request for `ufrag` (our side's) with a MESSAGE-INTEGRITY that is not the
/// participant's (zeros) and a correct FINGERPRINT: well formed, forged.
fn forged_binding_request(ufrag: &str, n: u8) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let username = format!("{ufrag}:forger{n}");
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&0x0006u16.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    attrs.extend_from_slice(&0x0024u16.to_be_bytes()); // PRIORITY
    attrs.extend_from_slice(&4u16.to_be_bytes());
    attrs.extend_from_slice(&0x6e7f_00ffu32.to_be_bytes());
    attrs.extend_from_slice(&0x802au16.to_be_bytes()); // ICE-CONTROLLING
    attrs.extend_from_slice(&8u16.to_be_bytes());
    attrs.extend_from_slice(&[n; 8]);
    attrs.extend_from_slice(&0x0008u16.to_be_bytes()); // MESSAGE-INTEGRITY
    attrs.extend_from_slice(&20u16.to_be_bytes());
    attrs.extend_from_slice(&[0u8; 20]);
    let mut message = Vec::new();
    message.extend_from_slice(&0x0001u16.to_be_bytes());
    message.extend_from_slice(&((attrs.len() + 8) as u16).to_be_bytes());
    message.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    message.extend_from_slice(&[n; 12]);
    message.extend_from_slice(&attrs);
    let fingerprint = crc32(&message) ^ 0x5354_554e;
    message.extend_from_slice(&0x8028u16.to_be_bytes());
    message.extend_from_slice(&4u16.to_be_bytes());
    message.extend_from_slice(&fingerprint.to_be_bytes());
    message
}

/// Issue 17: a binding request with a participant's ufrag and a wrong MESSAGE-INTEGRITY was not
/// answered, yet the demux learnt the sender's address; eight of them evicted the real address
/// and the party's media stopped. Now an address is learnt only once str0m has answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stun_with_a_participants_ufrag_does_not_take_its_address() {
    let (server, _turn) = server().await;
    let m = enter(
        &server,
        "stun",
        "m",
        Role::Mediator,
        ParticipantOptions::default(),
    )
    .await;
    let a = enter(
        &server,
        "stun",
        "a",
        Role::Party,
        ParticipantOptions::default(),
    )
    .await;
    expect_flow(&m, "a", Duration::from_secs(3)).await;
    // What an attacker on the path sees: A's server-side ufrag and the media port.
    let sdp =
        a.pc.remote_description()
            .await
            .expect("A has the SFU's description")
            .sdp;
    let ufrag = sdp
        .lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
        .expect("ufrag")
        .to_string();
    let port: u16 = sdp
        .lines()
        .find(|l| l.contains("candidate") && l.contains("127.0.0.1"))
        .and_then(|l| l.split_whitespace().nth(5))
        .and_then(|p| p.parse().ok())
        .expect("the SFU's host candidate");
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // Twelve forgers keep at it while we watch A's media.
    let attack = tokio::spawn(async move {
        let mut sockets = Vec::new();
        for _ in 0..12 {
            sockets.push(
                tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("socket"),
            );
        }
        loop {
            for (n, socket) in sockets.iter().enumerate() {
                let _ = socket
                    .send_to(&forged_binding_request(&ufrag, n as u8), target)
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    m.received.reset();
    expect_flow(&m, "a", Duration::from_secs(3)).await;
    attack.abort();
}

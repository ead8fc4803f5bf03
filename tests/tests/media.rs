//! The media plane end to end: headless webrtc-rs participants (an independent WebRTC stack)
//! through our SFU over real DTLS-SRTP on 127.0.0.1.

use std::time::{Duration, Instant};

use serde_json::json;
use tiaojie_domain::Role;
use tiaojie_tests::participant::{Participant, ParticipantOptions};
use tiaojie_tests::{Backend, TestServer};

async fn server() -> TestServer {
    TestServer::start(Backend::Sqlite).await
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

/// Waits `settle`, then asserts `p` got nothing of `kind` from `from` during a further `window`.
async fn expect_silence(p: &Participant, from: &str, kind: &'static str, window: Duration) {
    let before = p.received.packets(from, kind);
    tokio::time::sleep(window).await;
    let after = p.received.packets(from, kind);
    assert_eq!(
        after, before,
        "{} still receives {kind} from {from} ({before} → {after})",
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
    let server = server().await;
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
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leavers_tracks_are_removed_by_renegotiation() {
    let server = server().await;
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

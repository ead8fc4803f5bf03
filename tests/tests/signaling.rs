//! End-to-end signaling: real server on 127.0.0.1:0, real WebSocket clients, both databases.

use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use tiaojie_domain::Role;
use tiaojie_tests::{Backend, TestServer};

use tiaojie_tests::on_both_backends;

on_both_backends!(
    three_participants_see_joins_and_leaves_in_order,
    chat_reaches_the_room_and_direct_messages_only_their_target,
    resume_within_grace_shows_no_leave_and_replays_missed_events,
    after_the_grace_period_the_others_see_a_leave,
    joining_again_takes_over_the_session_without_a_leave,
    admin_removal_closes_the_socket_with_its_reason_and_revokes_the_token,
    closing_a_room_disconnects_everyone_and_refuses_joins,
    admin_mute_and_grant_changes_reach_everyone,
    graceful_shutdown_tells_clients_and_records_every_leave,
    participation_records_survive_a_restart,
    room_capacity_is_enforced,
    a_mediator_moderates_over_signaling_and_a_party_cannot,
);

async fn three_participants_see_joins_and_leaves_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut mediator = server.join("room-1", "mediator", Role::Mediator).await;
    let mut alice = server.join("room-1", "alice", Role::Party).await;
    let bob_token = server.token("room-1", "bob", Role::Party);
    let mut bob = server.connect().await;
    let joined = bob.join("room-1", &bob_token).await;
    // Bob's snapshot lists the two already present.
    let mut present: Vec<&str> = joined["participants"]
        .as_array()
        .expect("list")
        .iter()
        .map(|p| p["identity"].as_str().unwrap_or(""))
        .collect();
    present.sort();
    assert_eq!(present, vec!["alice", "mediator"]);
    assert_eq!(joined["you"]["role"], "party");
    assert_eq!(joined["you"]["name"], "bob name");

    let a = mediator.expect("participant.joined").await;
    assert_eq!(a["participant"]["identity"], "alice");
    let b = mediator.expect("participant.joined").await;
    assert_eq!(b["participant"]["identity"], "bob");
    assert!(
        b["seq"].as_u64() > a["seq"].as_u64(),
        "events are ordered by seq"
    );
    assert_eq!(
        alice.expect("participant.joined").await["participant"]["identity"],
        "bob"
    );

    let left = alice.request(json!({"type": "leave"})).await;
    assert_eq!(left["type"], "left");
    assert_eq!(alice.expect_close().await.code, 1000);
    bob.close().await; // a close frame without `leave` is a drop, not a departure (yet)

    let alice_left = mediator.expect("participant.left").await;
    assert_eq!(
        (
            alice_left["identity"].as_str(),
            alice_left["reason"].as_str()
        ),
        (Some("alice"), Some("left"))
    );
    let (bob_update, skipped) = mediator.expect_skipping("participant.updated").await;
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(bob_update["participant"]["connection"], "reconnecting");
    let list = mediator.request(json!({"type": "participants"})).await;
    assert_eq!(
        list["participants"].as_array().map(Vec::len),
        Some(2),
        "bob is held for resume"
    );
    server.stop().await;
}

async fn chat_reaches_the_room_and_direct_messages_only_their_target(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let mut a = server.join("r", "a", Role::Party).await;
    let mut b = server.join("r", "b", Role::Party).await;
    m.drain(Duration::from_millis(100)).await;
    a.drain(Duration::from_millis(100)).await;

    let (status, health) = server.api(Method::GET, "/healthz", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (_, metrics) = server.api(Method::GET, "/metrics", None).await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        "tiaojie_rooms_live 1",
        "tiaojie_participants 3",
        "tiaojie_connections_open 3",
        "tiaojie_joins_total 3",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }

    let sent = m.request(json!({"type": "chat", "text": "大家好"})).await;
    assert_eq!(sent["type"], "chat.sent");
    for client in [&mut a, &mut b] {
        let chat = client.expect("chat").await;
        assert_eq!(
            (chat["from"].as_str(), chat["text"].as_str()),
            (Some("m"), Some("大家好"))
        );
        assert!(chat.get("to").is_none());
        assert_eq!(chat["message_id"], sent["message_id"]);
    }

    let direct = a
        .request(json!({"type": "chat", "text": "只给调解员", "to": "m"}))
        .await;
    assert_eq!(direct["type"], "chat.sent");
    let got = m.expect("chat").await;
    assert_eq!(
        (got["to"].as_str(), got["text"].as_str()),
        (Some("m"), Some("只给调解员"))
    );
    let b_saw = b.drain(Duration::from_millis(300)).await;
    assert!(
        b_saw.iter().all(|e| e["type"] != "chat"),
        "b must not see a's direct message: {b_saw:?}"
    );

    let err = a
        .request(json!({"type": "chat", "text": "hi", "to": "nobody"}))
        .await;
    assert_eq!(err["code"], "participant_not_found");
    let err = a.request(json!({"type": "chat", "text": "  "})).await;
    assert_eq!(err["code"], "invalid_message");
    let err = a
        .request(json!({"type": "chat", "text": "x".repeat(4001)}))
        .await;
    assert_eq!(err["code"], "invalid_message");
    server.stop().await;
}

async fn resume_within_grace_shows_no_leave_and_replays_missed_events(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let a = server.join("r", "a", Role::Party).await;
    m.expect("participant.joined").await;
    let (resume_token, last_seq) = (a.resume_token.clone(), a.last_seq);
    a.vanish();

    let update = m.expect("participant.updated").await;
    assert_eq!(update["participant"]["connection"], "reconnecting");
    m.request(json!({"type": "chat", "text": "你还在吗？"}))
        .await;

    let mut a = server.connect().await;
    let resumed = a.resume_from(&resume_token, last_seq).await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    assert_eq!(resumed["missed_events"], false);
    assert_eq!(resumed["you"]["identity"], "a");
    assert_ne!(
        resumed["resume_token"], resume_token,
        "resume tokens are single-use"
    );
    let missed = a.expect("chat").await;
    assert_eq!(
        missed["text"], "你还在吗？",
        "the chat sent while away is replayed"
    );

    let back = m.expect("participant.updated").await;
    assert_eq!(back["participant"]["connection"], "connected");
    let rest = m.drain(Duration::from_millis(300)).await;
    assert!(
        rest.iter()
            .all(|e| e["type"] != "participant.left" && e["type"] != "participant.joined"),
        "{rest:?}"
    );

    // The spent token cannot be used again.
    let mut thief = server.connect().await;
    let err = thief.resume_from(&resume_token, 0).await;
    assert_eq!(err["code"], "resume_failed");
    server.stop().await;
}

async fn after_the_grace_period_the_others_see_a_leave(backend: Backend) {
    let server = TestServer::start_with(backend, |c| {
        c.signaling.resume_grace = Duration::from_millis(400)
    })
    .await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let a = server.join("r", "a", Role::Party).await;
    m.expect("participant.joined").await;
    let token = a.resume_token.clone();
    a.vanish();
    m.expect("participant.updated").await;
    let left = m.expect("participant.left").await;
    assert_eq!(
        (left["identity"].as_str(), left["reason"].as_str()),
        (Some("a"), Some("connection_lost"))
    );
    let mut late = server.connect().await;
    assert_eq!(late.resume_from(&token, 0).await["code"], "resume_failed");
    let (_, records) = server
        .api(Method::GET, "/api/rooms/r/participations", None)
        .await;
    let a_record = records
        .as_array()
        .and_then(|r| r.iter().find(|p| p["identity"] == "a"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(a_record["leave_reason"], "connection_lost");
    server.stop().await;
}

async fn joining_again_takes_over_the_session_without_a_leave(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let mut first = server.join("r", "a", Role::Party).await;
    m.expect("participant.joined").await;
    let mut second = server.join("r", "a", Role::Party).await; // e.g. the page was reloaded
    assert_eq!(first.expect_close().await.code, 4002);
    let update = m.expect("participant.updated").await;
    assert_eq!(update["participant"]["identity"], "a");
    assert!(second.ping().await);
    let rest = m.drain(Duration::from_millis(300)).await;
    assert!(
        rest.iter().all(|e| e["type"] != "participant.left"),
        "{rest:?}"
    );
    let (_, records) = server
        .api(Method::GET, "/api/rooms/r/participations", None)
        .await;
    assert_eq!(
        records.as_array().map(Vec::len),
        Some(2),
        "one presence each: {records}"
    );
    server.stop().await;
}

async fn admin_removal_closes_the_socket_with_its_reason_and_revokes_the_token(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let token = server.token("r", "a", Role::Party);
    let mut a = server.connect().await;
    assert_eq!(a.join("r", &token).await["type"], "joined");
    m.expect("participant.joined").await;

    let (status, body) = server
        .api(
            Method::POST,
            "/api/rooms/r/participants/a/remove",
            Some(json!({"reason": "扰乱调解秩序"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let removed = a.expect("removed").await;
    assert_eq!(removed["reason"], "扰乱调解秩序");
    let close = a.expect_close().await;
    assert_eq!((close.code, close.reason.as_str()), (4001, "扰乱调解秩序"));
    let left = m.expect("participant.left").await;
    assert_eq!(
        (left["identity"].as_str(), left["reason"].as_str()),
        (Some("a"), Some("removed"))
    );

    // The removed person's link no longer works, nor a newly issued one, until an admin lets
    // them back (then their links work again).
    let mut again = server.connect().await;
    assert_eq!(again.join("r", &token).await["code"], "token_revoked");
    let fresh = server.token("r", "a", Role::Party);
    assert_eq!(again.join("r", &fresh).await["code"], "token_revoked");
    let (status, body) = server
        .api(Method::DELETE, "/api/rooms/r/removals/a", None)
        .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(again.join("r", &fresh).await["type"], "joined");

    let (status, body) = server
        .api(
            Method::POST,
            "/api/rooms/r/participants/ghost/remove",
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("participant_not_found"))
    );
    server.stop().await;
}

async fn closing_a_room_disconnects_everyone_and_refuses_joins(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, _) = server
        .api(Method::POST, "/api/rooms", Some(json!({"name": "case-7"})))
        .await;
    assert_eq!(status, 201);
    let mut m = server.join("case-7", "m", Role::Mediator).await;
    let mut a = server.join("case-7", "a", Role::Party).await;
    let (status, room) = server
        .api(
            Method::POST,
            "/api/rooms/case-7/close",
            Some(json!({"reason": "调解结束"})),
        )
        .await;
    assert_eq!(status, 200, "{room}");
    assert!(room["closed_at"].is_number());
    for client in [&mut m, &mut a] {
        assert_eq!(client.expect("room.closed").await["reason"], "调解结束");
        assert_eq!(client.expect_close().await.code, 4003);
    }
    let mut late = server.connect().await;
    let token = server.token("case-7", "b", Role::Party);
    assert_eq!(late.join("case-7", &token).await["code"], "room_closed");
    let (status, body) = server
        .api(Method::POST, "/api/rooms/case-7/close", Some(json!({})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("room_closed"))
    );
    let (_, records) = server
        .api(Method::GET, "/api/rooms/case-7/participations", None)
        .await;
    assert!(
        records.as_array().is_some_and(|r| r.len() == 2
            && r.iter()
                .all(|p| p["leave_reason"] == "room_closed: 调解结束")),
        "{records}"
    );
    server.stop().await;
}

async fn admin_mute_and_grant_changes_reach_everyone(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let mut a = server.join("r", "a", Role::Party).await;
    m.expect("participant.joined").await;
    let (status, info) = server
        .api(
            Method::POST,
            "/api/rooms/r/participants/a/mute",
            Some(json!({"kind": "audio", "muted": true})),
        )
        .await;
    assert_eq!((status, info["audio_muted"].as_bool()), (200, Some(true)));
    for client in [&mut m, &mut a] {
        let update = client.expect("participant.updated").await;
        assert_update(&update, "a", "audio_muted", true);
    }
    let (status, info) = server
        .api(
            Method::PUT,
            "/api/rooms/r/participants/a/grants",
            Some(json!({"grants": ["subscribe"]})),
        )
        .await;
    assert_eq!(
        (status, info["grants"].clone()),
        (200, json!(["subscribe"]))
    );
    assert_eq!(
        a.expect("participant.updated").await["participant"]["grants"],
        json!(["subscribe"])
    );
    let (_, list) = server
        .api(Method::GET, "/api/rooms/r/participants", None)
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));

    // Self-mute over signaling.
    let ok = m
        .request(json!({"type": "mute", "kind": "video", "muted": true}))
        .await;
    assert_eq!(ok["type"], "ok");
    let update = a.expect("participant.updated").await;
    assert_update(&update, "m", "video_muted", true);
    let (status, body) = server
        .api(
            Method::POST,
            "/api/rooms/r/participants/a/mute",
            Some(json!({"kind": "smell", "muted": true})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_request"))
    );
    // A moderator's mute over signaling and an admin's link into the room are on the record
    // too, beside the admin's mute and grant change.
    let ok = m
        .request(json!({"type": "moderate", "action": "mute", "target": "a", "kind": "video", "muted": true}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    let (status, _) = server
        .api(
            Method::POST,
            "/api/tokens",
            Some(json!({"room": "r", "identity": "late", "role": "party"})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, log) = server
        .api(Method::GET, "/api/audit?target=room:r", None)
        .await;
    let entries: Vec<(String, String, String)> = log
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (field("actor"), field("action"), field("detail"))
        })
        .collect();
    for (actor, action, detail) in [
        ("ops-admin", "person.mute", "a audio muted"),
        ("ops-admin", "person.grants", "a: subscribe"),
        ("m", "person.mute", "a video muted"),
    ] {
        assert!(
            entries
                .iter()
                .any(|e| (e.0.as_str(), e.1.as_str(), e.2.as_str()) == (actor, action, detail)),
            "{action} by {actor} not audited: {entries:?}"
        );
    }
    assert!(
        entries
            .iter()
            .any(|e| e.1 == "token.issue" && e.2.starts_with("late as party")),
        "{entries:?}"
    );
    server.stop().await;
}

async fn graceful_shutdown_tells_clients_and_records_every_leave(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let mut a = server.join("r", "a", Role::Party).await;
    let store = server
        .server
        .as_ref()
        .map(|s| s.state.hub.store().clone())
        .expect("running");
    server.shutdown().await;
    for client in [&mut m, &mut a] {
        client.expect("server.shutdown").await;
        assert_eq!(client.expect_close().await.code, 1001);
    }
    // The pool is closed; reopen the same database to read what was recorded.
    let url = if backend == Backend::Sqlite {
        server.config.database_url()
    } else {
        server.config.database.url.clone()
    };
    drop(store);
    let reopened = tiaojie_store::Store::connect(&url, 1)
        .await
        .expect("reopen");
    let records = reopened
        .participations(&tiaojie_domain::RoomName::from("r"))
        .await
        .expect("records");
    assert_eq!(records.len(), 2);
    assert!(
        records.iter().all(|p| p.left_at.is_some()
            && p.leave_reason
                .as_deref()
                .is_some_and(|r| r.starts_with("server_shutdown"))),
        "{records:?}"
    );
    reopened.close().await;
    server.stop().await;
}

async fn participation_records_survive_a_restart(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    m.request(json!({"type": "leave"})).await;
    server.shutdown().await;
    let config = server.config.clone();
    let restarted = tiaojie_server::Server::start(config)
        .await
        .expect("restart");
    let records = restarted
        .state
        .hub
        .store()
        .participations(&tiaojie_domain::RoomName::from("r"))
        .await
        .expect("records");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].identity, "m");
    assert_eq!(records[0].role, "mediator");
    assert_eq!(records[0].leave_reason.as_deref(), Some("left"));
    restarted.shutdown().await;
    server.stop().await;
}

async fn room_capacity_is_enforced(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, _) = server
        .api(
            Method::POST,
            "/api/rooms",
            Some(json!({"name": "small", "max_participants": 2})),
        )
        .await;
    assert_eq!(status, 201);
    let _m = server.join("small", "m", Role::Mediator).await;
    let _a = server.join("small", "a", Role::Party).await;
    let mut b = server.connect().await;
    let token = server.token("small", "b", Role::Party);
    assert_eq!(b.join("small", &token).await["code"], "room_full");
    server.stop().await;
}

async fn a_mediator_moderates_over_signaling_and_a_party_cannot(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let mut a = server.join("r", "a", Role::Party).await;
    let mut b = server.join("r", "b", Role::Party).await;
    m.drain(Duration::from_millis(100)).await;
    a.drain(Duration::from_millis(100)).await;

    // A party has no moderate grant.
    let refused = a
        .request(json!({"type": "moderate", "action": "mute", "target": "b", "kind": "audio"}))
        .await;
    assert_eq!(refused["code"], "forbidden");
    let refused = a
        .request(json!({"type": "moderate", "action": "remove", "target": "m"}))
        .await;
    assert_eq!(refused["code"], "forbidden");
    assert!(b.ping().await, "b is untouched");

    // The mediator mutes B; everyone sees it.
    let ok = m
        .request(json!({"type": "moderate", "action": "mute", "target": "b", "kind": "audio", "muted": true}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    for client in [&mut a, &mut b] {
        let update = client.expect("participant.updated").await;
        assert_update(&update, "b", "audio_muted", true);
    }
    let bad = m
        .request(json!({"type": "moderate", "action": "mute", "target": "b"}))
        .await;
    assert_eq!(bad["code"], "invalid_message", "mute needs a kind");
    let bad = m
        .request(json!({"type": "moderate", "action": "remove", "target": "m"}))
        .await;
    assert_eq!(bad["code"], "invalid_message", "not oneself");
    let missing = m
        .request(json!({"type": "moderate", "action": "remove", "target": "ghost"}))
        .await;
    assert_eq!(missing["code"], "participant_not_found");

    // The mediator removes A with a reason.
    let ok = m
        .request(json!({"type": "moderate", "action": "remove", "target": "a", "reason": "请遵守调解秩序"}))
        .await;
    assert_eq!(ok["type"], "ok", "{ok}");
    assert_eq!(a.expect("removed").await["reason"], "请遵守调解秩序");
    assert_eq!(a.expect_close().await.code, 4001);
    let left = b.expect("participant.left").await;
    assert_eq!(
        (left["identity"].as_str(), left["reason"].as_str()),
        (Some("a"), Some("removed"))
    );
    server.stop().await;
}

/// Asserts that a `participant.updated` event is about `identity` and shows `field` as `value`.
fn assert_update(update: &serde_json::Value, identity: &str, field: &str, value: bool) {
    assert_eq!(
        (
            update["participant"]["identity"].as_str(),
            update["participant"][field].as_bool()
        ),
        (Some(identity), Some(value)),
        "{update}"
    );
}

/// The web client is served by the server itself, with headers that keep a join link's token
/// to this origin; pages are only at their own paths, and nothing outside the client is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_is_served_with_safe_headers() {
    let server = TestServer::start(Backend::Sqlite).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("http://{}{path}", server.addr)).send();
    for page in ["/", "/join", "/admin"] {
        let response = get(page).await.expect("page");
        assert_eq!(response.status(), 200, "{page}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .is_ok_and(|csp| csp.contains("script-src 'self'")),
            "{page}"
        );
        let body = response.text().await.expect("body");
        assert!(body.contains("/web/js/"), "{page} loads its module");
    }
    let script = get("/web/js/signaling.js").await.expect("script");
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(
        script
            .text()
            .await
            .expect("body")
            .contains("PROTOCOL_VERSION = 1")
    );
    for missing in ["/web/index.html", "/web/../Cargo.toml", "/web/js/nope.js"] {
        assert_eq!(
            get(missing).await.expect("reply").status(),
            404,
            "{missing}"
        );
    }
    server.stop().await;
}

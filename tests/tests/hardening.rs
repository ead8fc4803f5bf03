//! What an outside security and robustness probe broke (issue 17), each as the attack it was:
//! a request that would take the server down, a removed person walking back in, stalled and
//! half-open connections, actions without their audit entry, duplicates that grow every read.
//! Each test fails on the code before its fix.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tiaojie_domain::Role;
use tiaojie_tests::cases::{MEDIATOR, call, case_with_links, invite};
use tiaojie_tests::{Backend, TestServer, WsClient, on_both_backends};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

on_both_backends!(
    a_template_bomb_is_refused_and_everyone_else_is_served,
    a_client_that_stops_reading_is_dropped_and_may_resume,
    connections_without_a_request_or_a_join_are_bounded,
    an_expired_link_may_finish_its_session_but_not_resume_it,
    what_a_side_does_in_its_private_room_is_not_announced_outside_it,
    a_removed_person_stays_out_until_a_mediator_lets_them_back,
    a_recording_of_a_private_room_stays_closed_to_parties_after_a_configuration_change,
    repeated_answers_record_nothing_and_long_lists_come_in_pages,
);

/// Waits up to `wait` for an event `pick` accepts, skipping others.
async fn wait_for(client: &mut WsClient, wait: Duration, pick: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        match client.next(left).await {
            Some(event) if pick(&event) => return event,
            Some(_) => {}
            None => break,
        }
    }
    panic!("nothing of the kind within {wait:?}");
}

/// The probe stopped reading on one connection: the server's write waited on full kernel
/// buffers with no deadline, so the idle check and the queue limit never ran, presence said
/// `connected` 100 s later, and the task never ended. Now a write that misses
/// `signaling.send_timeout` drops the connection: the others see `reconnecting`, the person may
/// resume, and the old task is gone.
async fn a_client_that_stops_reading_is_dropped_and_may_resume(backend: Backend) {
    let server = TestServer::start_with(backend, |c| {
        c.signaling.send_timeout = Duration::from_secs(1);
        c.signaling.rate_limit_per_second = 100_000;
        c.signaling.rate_limit_burst = 100_000;
        // Room for everything: only the write's own deadline can notice the stall.
        c.signaling.outbound_queue = 100_000;
    })
    .await;
    let mut mediator = server.join("r", "m", Role::Mediator).await;
    let mut phone = WsClient::connect_small_window(&server.ws_url()).await;
    let token = server.token("r", "p", Role::Party);
    assert_eq!(phone.join("r", &token).await["type"], "joined");
    mediator.expect("participant.joined").await;
    let resume = phone.resume_token.clone();
    // The mediator talks; the phone reads nothing. 1,500 chats of 12 KB are more than any
    // kernel buffers hold, so the server's writes to the phone stall.
    let chat = json!({"type": "chat", "text": "调".repeat(4000)}).to_string();
    for _ in 0..1_500 {
        mediator.send_text(&chat).await;
    }
    let dropped = wait_for(&mut mediator, Duration::from_secs(30), |e| {
        e["type"] == "participant.updated" && e["participant"]["identity"] == "p"
    })
    .await;
    assert_eq!(
        dropped["participant"]["connection"], "reconnecting",
        "{dropped}"
    );
    assert!(server.metric("tiaojie_stalled_connections_total").await >= 1.0);
    // The person comes back on a fresh connection; only two connections are open.
    let mut again = server.connect().await;
    let reply = again.resume_from(&resume, 0).await;
    assert_eq!(reply["type"], "resumed", "{reply}");
    assert_eq!(
        server.metric("tiaojie_connections_open").await,
        2.0,
        "the stalled task ended"
    );
    drop(phone);
    server.stop().await;
}

/// Slowloris sockets and WebSockets that never join used to stay open for as long as the client
/// liked, and 1,500 of them from one address were all accepted. Now headers must come within
/// `server.header_timeout`, a WebSocket must join within `signaling.join_timeout` (close 4408),
/// and one address holds at most `server.max_connections_per_address` (the next gets 503) while
/// other addresses are served.
async fn connections_without_a_request_or_a_join_are_bounded(backend: Backend) {
    let server = TestServer::start_with(backend, |c| {
        c.server.header_timeout = Duration::from_millis(500);
        c.server.max_connections_per_address = 10;
        c.signaling.join_timeout = Duration::from_secs(2);
    })
    .await;
    // Everything but the WebSockets comes from another address: 127.0.0.1's share is theirs.
    let elsewhere = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    assert!(
        server
            .metric_via(&elsewhere, "tiaojie_descriptor_limit")
            .await
            >= 1024.0
    );
    // Ten WebSockets that never join fill 127.0.0.1's share.
    let mut idle = Vec::new();
    for _ in 0..10 {
        idle.push(server.connect().await);
    }
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("the eleventh connection from one address: {other:?}"),
    }
    // Another address is served meanwhile.
    let health = elsewhere
        .get(format!("http://{}/healthz", server.addr))
        .send()
        .await
        .expect("healthz from 127.0.0.2");
    assert_eq!(health.status(), 200);
    // None of the ten joined: each is closed with 4408 and its slot comes back.
    for mut socket in idle {
        assert_eq!(socket.expect_close().await.code, 4408);
    }
    assert!(
        server
            .metric_via(&elsewhere, "tiaojie_join_timeouts_total")
            .await
            >= 10.0
    );
    // Half-sent requests are cut off after the header timeout.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut socket = tokio::net::TcpStream::connect(server.addr)
            .await
            .expect("connect");
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: tiaojie\r\n")
            .await
            .expect("half a request");
        slow.push(socket);
    }
    for mut socket in slow {
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "a half-sent request is still open after 5 s");
    }
    let (status, _) = server.api(Method::GET, "/api/rooms", None).await;
    assert_eq!(status, 200, "127.0.0.1 is served again");
    server.stop().await;
}

/// The probe's request: 300,000 characters of terms into 70,000 `{{terms}}` (930 KB, under
/// the body limit) made the server build 21 GB and abort, ending every session of every case.
/// Now the filling stops at the agreement's limit and says so; a live session carries on.
async fn a_template_bomb_is_refused_and_everyone_else_is_served(backend: Backend) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    let (base, _room, _) = case_with_links(&server, &staff, "(2026)京0105民调1号").await;
    let mut bystander = server.join("another-room", "someone", Role::Party).await;
    let bomb = json!({
        "terms": "k".repeat(300_000),
        "template": "{{terms}}".repeat(70_000),
    });
    let refusal = call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/agreement/versions"),
        Some(bomb),
        400,
    )
    .await;
    assert_eq!(
        refusal["error"]["details"],
        json!({"reason": "text_length", "field": "agreement", "max": 100_000}),
        "{refusal}"
    );
    assert!(bystander.ping().await, "another room is still served");
    // The case is untouched and a sensible draft still goes through.
    let fine = call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/agreement/versions"),
        Some(json!({"terms": "一、被申请人于2026年12月31日前支付四万元。"})),
        200,
    )
    .await;
    assert_eq!(fine["versions"].as_array().map(Vec::len), Some(1), "{fine}");
    server.stop().await;
}

/// A connection outlived its link and `resume` after the expiry succeeded. The rule now
/// (docs/protocol.md): a session in progress may finish on an expired link — a hearing is not
/// cut off mid-sentence — but there is no new join and no resume after expiry + leeway.
async fn an_expired_link_may_finish_its_session_but_not_resume_it(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.auth.leeway = Duration::ZERO).await;
    let mut mediator = server.join("r", "m", Role::Mediator).await;
    let token = server.token_with_ttl("r", "p", Role::Party, Duration::from_secs(1));
    let mut party = server.connect().await;
    assert_eq!(party.join("r", &token).await["type"], "joined");
    mediator.expect("participant.joined").await;
    let resume = party.resume_token.clone();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(party.ping().await, "the session in progress goes on");
    party.vanish();
    let mut again = server.connect().await;
    let reply = again.resume_from(&resume, 0).await;
    assert_eq!(reply["code"], "token_expired", "{reply}");
    let reply = again.join("r", &token).await;
    assert_eq!(reply["code"], "token_expired", "{reply}");
    server.stop().await;
}

/// `participant.updated` of people in a caucus reached the other side: B learnt each time A
/// muted or unmuted in the private room, and when the mediator muted A there. Presence details
/// now follow the audience rule of chat and speaker events; the other side sees only that A is
/// in a private room.
async fn what_a_side_does_in_its_private_room_is_not_announced_outside_it(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let mut a = server.join("r", "a", Role::Party).await;
    let mut b = server.join("r", "b", Role::Party).await;
    for (target, space) in [("a", "private:applicant"), ("m", "private:applicant")] {
        let reply = m
            .request(
                json!({"type": "moderate", "action": "move", "target": target, "space": space}),
            )
            .await;
        assert_eq!(reply["type"], "ok", "{reply}");
    }
    let moves = b.drain(Duration::from_millis(500)).await;
    assert!(
        moves.iter().any(|e| e["participant"]["identity"] == "a"
            && e["participant"]["space"] == "private:applicant"),
        "the other side sees A go into a private room: {moves:?}"
    );
    m.drain(Duration::from_millis(300)).await;
    // In the private room: A turns its camera off and on again; the mediator mutes A.
    for muted in [true, false] {
        let reply = a
            .request(json!({"type": "mute", "kind": "video", "muted": muted}))
            .await;
        assert_eq!(reply["type"], "ok", "{reply}");
    }
    let reply = m
        .request(json!({"type": "moderate", "action": "mute", "target": "a", "kind": "audio", "muted": true}))
        .await;
    assert_eq!(reply["type"], "ok", "{reply}");
    let inside: Vec<Value> = m
        .drain(Duration::from_millis(500))
        .await
        .into_iter()
        .filter(|e| e["type"] == "participant.updated" && e["participant"]["identity"] == "a")
        .collect();
    assert_eq!(
        inside.len(),
        3,
        "the mediator in the room sees each change: {inside:?}"
    );
    let outside: Vec<Value> = b
        .drain(Duration::from_millis(800))
        .await
        .into_iter()
        .filter(|e| e["participant"]["identity"] == "a")
        .collect();
    assert!(
        outside.is_empty(),
        "B heard of A's private-room activity: {outside:?}"
    );
    // B's list shows A in the private room, nothing of what A does there.
    let list = b.request(json!({"type": "participants"})).await;
    let seen = list["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["identity"] == "a")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(seen["space"], "private:applicant", "{seen}");
    assert_eq!(
        (seen["audio_muted"].clone(), seen["video_muted"].clone()),
        (json!(true), json!(true))
    );
    // The mediator steps out; A turns the camera off meanwhile (nobody outside hears of it);
    // back in the private room, the mediator is told how A is now.
    let moved =
        |space: &str| json!({"type": "moderate", "action": "move", "target": "m", "space": space});
    assert_eq!(m.request(moved("joint")).await["type"], "ok");
    let off = json!({"type": "mute", "kind": "video", "muted": true});
    assert_eq!(a.request(off).await["type"], "ok");
    m.drain(Duration::from_millis(300)).await;
    assert_eq!(m.request(moved("private:applicant")).await["type"], "ok");
    let told = m
        .drain(Duration::from_millis(500))
        .await
        .into_iter()
        .rfind(|e| e["type"] == "participant.updated" && e["participant"]["identity"] == "a")
        .unwrap_or(Value::Null);
    assert_eq!(told["participant"]["video_muted"], true, "{told}");
    server.stop().await;
}

/// Removal revoked only the link of the current join: another invitation, or a 30-day
/// follow-up link, for the same person still joined the room and still worked on the case
/// API. Now a removed person stays out of that session — every link of theirs for it — until a
/// mediator lets them back, and both acts are in the audit log.
async fn a_removed_person_stays_out_until_a_mediator_lets_them_back(backend: Backend) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    let (base, room, tokens) = case_with_links(&server, &staff, "(2026)京0105民调2号").await;
    let mut m = server.connect().await;
    assert_eq!(m.join(&room, &tokens[MEDIATOR]).await["type"], "joined");
    let mut li = server.connect().await;
    assert_eq!(li.join(&room, &tokens["p-li"]).await["type"], "joined");
    let removed = m
        .request(json!({"type": "moderate", "action": "remove", "target": "p-li", "reason": "扰乱调解秩序"}))
        .await;
    assert_eq!(removed["type"], "ok", "{removed}");
    assert_eq!(li.expect_close().await.code, 4001);

    // Every link of 李四's for this session: the one removed, a new one, a 30-day follow-up.
    let new_link = invite(&server, &staff, &base, 1, "p-li").await;
    let follow_up = call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/sessions/1/invitations"),
        Some(json!({"person": "p-li", "ttl_secs": 30 * 24 * 3600})),
        200,
    )
    .await["token"]
        .as_str()
        .expect("token")
        .to_string();
    for link in [&tokens["p-li"], &new_link, &follow_up] {
        let mut c = server.connect().await;
        assert_eq!(c.join(&room, link).await["code"], "token_revoked");
        let (status, body) = server
            .api_as(link, Method::GET, "/api/cases/current", None)
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("token_revoked")),
            "{body}"
        );
    }
    // Nobody else is affected.
    let mut zhang = server.connect().await;
    assert_eq!(
        zhang.join(&room, &tokens["p-zhang"]).await["type"],
        "joined"
    );

    // The mediator lets 李四 back: the links work again.
    let back = m
        .request(json!({"type": "moderate", "action": "readmit", "target": "p-li"}))
        .await;
    assert_eq!(back["type"], "ok", "{back}");
    let again = m
        .request(json!({"type": "moderate", "action": "readmit", "target": "p-li"}))
        .await;
    assert_eq!(
        again["code"], "participant_not_found",
        "only a removed person: {again}"
    );
    let mut li = server.connect().await;
    assert_eq!(li.join(&room, &new_link).await["type"], "joined");
    let (status, _) = server
        .api_as(&follow_up, Method::GET, "/api/cases/current", None)
        .await;
    assert_eq!(status, 200);
    let (_, audit) = server.api(Method::GET, "/api/audit", None).await;
    let actions: Vec<&str> = audit
        .as_array()
        .or_else(|| audit["entries"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for act in ["person.remove", "person.readmit"] {
        assert!(actions.contains(&act), "{act} audited: {actions:?}");
    }
    server.stop().await;
}

/// Access followed today's `recording.private_rooms`: a recording that captured a caucus was
/// served to a party after a restart with `private_rooms = false, participant_download = true`.
/// Now what a recording holds is read from its own events and signed manifest.
async fn a_recording_of_a_private_room_stays_closed_to_parties_after_a_configuration_change(
    backend: Backend,
) {
    let mut server = TestServer::start_with(backend, |c| c.recording.private_rooms = true).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let _a = server.join("r", "a", Role::Party).await;
    for target in ["a", "m"] {
        let reply = m
            .request(json!({"type": "moderate", "action": "move", "target": target, "space": "private:applicant"}))
            .await;
        assert_eq!(reply["type"], "ok", "{reply}");
    }
    let reply = m
        .request(json!({"type": "record", "action": "start", "mode": "audio"}))
        .await;
    assert_ne!(reply["type"], "error", "{reply}");
    let (event, _) = m.expect_skipping("recording.updated").await;
    let id = event["recording"]["id"].as_str().expect("id").to_string();
    let reply = m.request(json!({"type": "record", "action": "stop"})).await;
    assert_eq!(reply["type"], "ok", "{reply}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = server
            .api(Method::GET, &format!("/api/recordings/{id}"), None)
            .await;
        if body["state"] == "finished" {
            assert_eq!(body["private_rooms"], true, "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not finished: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(m);

    // The operator turns private-room recording off and lets parties download.
    server
        .restart_with(|c| {
            c.recording.private_rooms = false;
            c.recording.participant_download = true;
        })
        .await;
    let party = server.token("r", "b", Role::Party);
    let (status, body) = server
        .api_as(&party, Method::GET, &format!("/api/recordings/{id}"), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, list) = server
        .api_as(&party, Method::GET, "/api/recordings", None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list,
        json!([]),
        "the caucus recording is not listed to a party"
    );
    let judge = server.token("r", "j", Role::Judge);
    let (status, _) = server
        .api_as(&judge, Method::GET, &format!("/api/recordings/{id}"), None)
        .await;
    assert_eq!(status, 200, "those who may read recordings still do");
    server.stop().await;
}

/// The same consent sent 3,000 times made 3,000 events and audit entries, every read folded the
/// whole log, and `GET /api/audit` returned everything at once. An answer given again now
/// records nothing; the audit log and the case list come a page at a time.
async fn repeated_answers_record_nothing_and_long_lists_come_in_pages(backend: Backend) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    let (base, _room, tokens) = case_with_links(&server, &staff, "(2026)京0105民调3号").await;
    let case_id = base.trim_start_matches("/api/cases/").to_string();
    call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/sessions/1/lobby"),
        None,
        200,
    )
    .await;
    let li = &tokens["p-li"];
    let consents = format!("{base}/sessions/1/members/p-li/consents");
    let yes = json!({"subject": "recording", "given": true});
    for _ in 0..1_000 {
        call(&server, li, Method::PUT, &consents, Some(yes.clone()), 200).await;
    }
    let warning = format!("{base}/sessions/1/members/p-li/warning");
    for _ in 0..3 {
        call(&server, li, Method::PUT, &warning, None, 200).await;
    }
    // Changing the answer is recorded, of course.
    call(
        &server,
        li,
        Method::PUT,
        &consents,
        Some(json!({"subject": "recording", "given": false})),
        200,
    )
    .await;
    let (status, log) = server
        .api(
            Method::GET,
            &format!("/api/audit?target=case:{case_id}&limit=1000"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let count = |action: &str| {
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["action"] == action)
            .count()
    };
    assert_eq!(
        count("consent.give"),
        2,
        "one for yes, one for the change to no"
    );
    assert_eq!(count("warning.acknowledge"), 1);
    let (_, events) = server
        .api(Method::GET, &format!("{base}/events"), None)
        .await;
    let recorded = events
        .as_array()
        .or_else(|| events["events"].as_array())
        .map_or(0, Vec::len);
    assert!(
        recorded < 20,
        "the case's record stays small: {recorded} events"
    );

    // The audit log in pages: no entry twice, none skipped.
    let (_, first) = server.api(Method::GET, "/api/audit?limit=5", None).await;
    let first = first.as_array().cloned().unwrap_or_default();
    assert_eq!(first.len(), 5);
    let last = first[4]["id"].as_i64().expect("id");
    let (_, second) = server
        .api(
            Method::GET,
            &format!("/api/audit?limit=5&after={last}"),
            None,
        )
        .await;
    let second = second.as_array().cloned().unwrap_or_default();
    assert_eq!(
        second.first().and_then(|e| e["id"].as_i64()),
        Some(last + 1)
    );
    let (status, body) = server.api(Method::GET, "/api/audit?limit=0", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    // And the case list.
    case_with_links(&server, &staff, "(2026)京0105民调4号").await;
    let (_, page) = server.api(Method::GET, "/api/cases?limit=1", None).await;
    assert_eq!(page.as_array().map(Vec::len), Some(1), "{page}");
    let (_, rest) = server
        .api(Method::GET, "/api/cases?limit=1&offset=1", None)
        .await;
    assert_ne!(page, rest, "the second page is the other case");
    server.stop().await;
}

//! Bad input of every kind gets a clear, distinct error, and the connection (and everyone
//! else's) keeps working.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tiaojie_domain::Role;
use tiaojie_tests::{Backend, TestServer, on_both_backends};

on_both_backends!(
    bad_tokens_are_refused_with_distinct_codes,
    the_control_api_needs_an_admin,
    malformed_unknown_and_oversize_messages_get_errors_and_the_connection_stays_up,
    floods_are_rate_limited_without_disturbing_others,
    a_message_over_the_hard_limit_ends_only_that_connection,
    request_bodies_over_the_limit_get_413,
    protocol_misuse_gets_typed_errors,
    a_case_form_typed_in_free_text_gets_typed_errors,
);

/// What a case form once let through as free text (a role in Chinese, a party without a
/// side) is answered with a stable code and a reason a page says in its own words — never
/// the parser's English as the only explanation.
async fn a_case_form_typed_in_free_text_gets_typed_errors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token("med-wang", Role::Mediator);
    let case = |members: Value| {
        json!({
            "number": "(2026)京0105民诉前调5号", "case_type": "借款", "claim_amount": 100,
            "stage": "simple",
            "mediator": {"id": "med-wang", "name": "王调解", "role": "mediator"},
            "members": members,
        })
    };
    let party =
        |id: &str, side: &str| json!({"id": id, "name": "某", "role": "party", "side": side});
    // A role typed in Chinese: the body does not fit the request at all.
    let (status, body) = server
        .api_as(
            &staff,
            Method::POST,
            "/api/cases",
            Some(case(json!([
                {"id": "p1", "name": "张三", "role": "当事人", "side": "applicant"},
                party("p2", "respondent"),
            ]))),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["details"]["reason"], "invalid_body", "{body}");
    // Well formed, but breaking the case's rules: each rule by name, with the person's name.
    let no_side = json!([{"id": "p1", "name": "张三", "role": "party"}, party("p2", "respondent")]);
    let (status, body) = server
        .api_as(&staff, Method::POST, "/api/cases", Some(case(no_side)))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"],
        json!({"reason": "party_needs_side", "person": "p1", "name": "张三"})
    );
    let (status, body) = server
        .api_as(
            &staff,
            Method::POST,
            "/api/cases",
            Some(case(json!([party("p1", "applicant")]))),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["details"],
        json!({"reason": "case_needs_side", "side": "respondent"})
    );
    let (status, body) = server
        .api_as(
            &staff,
            Method::POST,
            "/api/cases",
            Some(case(json!([
                party("bad id!", "applicant"),
                party("p2", "respondent")
            ]))),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["reason"], "bad_person_id");
    server.stop().await;
}

/// The claims of a valid party token for room `r`, to be altered.
fn claims(server: &TestServer) -> Value {
    let token = server.token("r", "alice", Role::Party);
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

fn sign(server: &TestServer, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(server.config.auth.secret.as_bytes()),
    )
    .expect("sign")
}

async fn join_code(server: &TestServer, room: &str, token: &str) -> String {
    let mut client = server.connect().await;
    let reply = client.join(room, token).await;
    assert!(
        client.ping().await,
        "the connection survives a refused join"
    );
    reply["code"].as_str().unwrap_or("(joined)").to_string()
}

async fn bad_tokens_are_refused_with_distinct_codes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let now = tiaojie_signaling::token::now_secs();
    let base = claims(&server);

    let forged = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &base,
        &EncodingKey::from_secret(b"someone-else's-secret-someone-else's"),
    )
    .expect("sign");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(base.to_string())
    );
    let mut expired = base.clone();
    expired["exp"] = json!(now - 3600);
    expired["nbf"] = json!(now - 7200);
    let mut early = base.clone();
    early["nbf"] = json!(now + 3600);
    early["exp"] = json!(now + 7200);
    let mut foreign = base.clone();
    foreign["iss"] = json!("another-court");
    let mut no_subject = base.clone();
    no_subject.as_object_mut().map(|o| o.remove("sub"));

    let cases = [
        ("forged", forged, "token_bad_signature"),
        ("alg none", none, "token_algorithm"),
        ("expired", sign(&server, &expired), "token_expired"),
        (
            "not yet valid",
            sign(&server, &early),
            "token_not_yet_valid",
        ),
        (
            "other issuer",
            sign(&server, &foreign),
            "token_wrong_issuer",
        ),
        ("no subject", sign(&server, &no_subject), "token_malformed"),
        ("garbage", "abc.def".to_string(), "token_malformed"),
    ];
    let mut codes = std::collections::HashSet::new();
    for (what, token, code) in cases {
        assert_eq!(join_code(&server, "r", &token).await, code, "{what}");
        codes.insert(code);
    }
    let right = server.token("r", "alice", Role::Party);
    assert_eq!(
        join_code(&server, "other-room", &right).await,
        "token_wrong_room"
    );
    codes.insert("token_wrong_room");
    let admin = server.admin_token.clone();
    assert_eq!(
        join_code(&server, "r", &admin).await,
        "token_wrong_room",
        "room-less admin tokens join nothing"
    );

    // Revoked: removed, then the same link again.
    let mut alice = server.connect().await;
    assert_eq!(alice.join("r", &right).await["type"], "joined");
    let (status, _) = server
        .api(
            Method::POST,
            "/api/rooms/r/participants/alice/remove",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(join_code(&server, "r", &right).await, "token_revoked");
    codes.insert("token_revoked");
    assert_eq!(
        codes.len(),
        8,
        "every kind of failure has its own code: {codes:?}"
    );

    let (_, metrics) = server.api(Method::GET, "/metrics", None).await;
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains("tiaojie_errors_total{code=\"token_expired\"} 1"),
        "{text}"
    );
    server.stop().await;
}

async fn the_control_api_needs_an_admin(backend: Backend) {
    let server = TestServer::start(backend).await;
    let party = server.token("r", "alice", Role::Party);
    let mediator = server.token("r", "m", Role::Mediator);
    for token in [&party, &mediator] {
        let (status, body) = server.api_as(token, Method::GET, "/api/rooms", None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{body}"
        );
        let (status, _) = server
            .api_as(
                token,
                Method::POST,
                "/api/tokens",
                Some(json!({"room": "r", "identity": "x", "role": "judge"})),
            )
            .await;
        assert_eq!(status, 403);
    }
    let response = server
        .http
        .get(format!("http://{}/api/rooms", server.addr))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = server
        .api_as("forged.token.here", Method::GET, "/api/rooms", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("token_malformed"))
    );

    // An admin can issue a token that then joins.
    let (status, issued) = server
        .api(Method::POST, "/api/tokens", Some(json!({"room": "r", "identity": "judge-1", "name": "王法官", "role": "judge", "ttl": "30m"})))
        .await;
    assert_eq!(status, 201, "{issued}");
    assert!(
        issued["join_url"]
            .as_str()
            .is_some_and(|u| u.contains("/join?token="))
    );
    let token = issued["token"].as_str().expect("token").to_string();
    let mut judge = server.connect().await;
    let joined = judge.join("r", &token).await;
    assert_eq!(
        (
            joined["you"]["role"].as_str(),
            joined["you"]["name"].as_str()
        ),
        (Some("judge"), Some("王法官"))
    );
    let (status, body) = server
        .api(
            Method::POST,
            "/api/tokens",
            Some(json!({"room": "r", "identity": "x", "role": "party", "ttl": "400d"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    server.stop().await;
}

async fn malformed_unknown_and_oversize_messages_get_errors_and_the_connection_stays_up(
    backend: Backend,
) {
    let server = TestServer::start_with(backend, |c| c.signaling.max_message_bytes = 2048).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let mut a = server.join("r", "a", Role::Party).await;
    m.drain(Duration::from_millis(100)).await;

    a.send_text("{this is not json").await;
    assert_eq!(a.expect("error").await["code"], "malformed_message");
    a.send_text(r#"{"id": 5, "no_type": true}"#).await;
    assert_eq!(a.expect("error").await["code"], "malformed_message");
    a.send_text(r#"{"type": "teleport", "id": 6}"#).await;
    let e = a.expect("error").await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_u64()),
        (Some("unknown_type"), Some(6))
    );
    a.send_text(r#"{"type": "chat", "id": "x", "txt": "typo"}"#)
        .await;
    let e = a.expect("error").await;
    assert_eq!(
        (e["code"].as_str(), e["id"].as_str()),
        (Some("invalid_message"), Some("x"))
    );
    let big = json!({"type": "chat", "text": "字".repeat(1000)}).to_string();
    assert!(big.len() > 2048);
    a.send_text(&big).await;
    assert_eq!(a.expect("error").await["code"], "message_too_large");
    a.send_binary(vec![0, 1, 2, 3]).await;
    assert_eq!(a.expect("error").await["code"], "unsupported_frame");

    assert!(a.ping().await, "still connected");
    a.request(json!({"type": "chat", "text": "still here"}))
        .await;
    assert_eq!(m.expect("chat").await["text"], "still here");
    let noise = m.drain(Duration::from_millis(200)).await;
    assert!(
        noise.iter().all(|e| e["type"] != "error"),
        "others see none of it: {noise:?}"
    );
    server.stop().await;
}

async fn floods_are_rate_limited_without_disturbing_others(backend: Backend) {
    let server = TestServer::start_with(backend, |c| {
        c.signaling.rate_limit_per_second = 10;
        c.signaling.rate_limit_burst = 20;
    })
    .await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let mut flooder = server.join("r", "flooder", Role::Party).await;
    m.drain(Duration::from_millis(100)).await;
    for i in 0..200 {
        flooder
            .send_text(&json!({"type": "ping", "id": i}).to_string())
            .await;
    }
    let replies = flooder.drain(Duration::from_millis(500)).await;
    let pongs = replies.iter().filter(|r| r["type"] == "pong").count();
    let limited = replies
        .iter()
        .filter(|r| r["code"] == "rate_limited")
        .count();
    assert!(
        (20..60).contains(&pongs),
        "burst then refill: {pongs} pongs"
    );
    assert!(limited >= 1, "the flood is told it is limited");
    assert!(limited <= 2, "but not once per dropped message: {limited}");
    // Everyone else is served as usual.
    let sent = m
        .request(json!({"type": "chat", "text": "order in the room"}))
        .await;
    assert_eq!(sent["type"], "chat.sent");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        flooder.ping().await,
        "after a pause the flooder is served again"
    );
    server.stop().await;
}

async fn a_message_over_the_hard_limit_ends_only_that_connection(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.signaling.max_message_bytes = 1024).await;
    let mut m = server.join("r", "m", Role::Mediator).await;
    let mut a = server.join("r", "a", Role::Party).await;
    m.expect("participant.joined").await;
    a.send_text(&"x".repeat(1024 * 17)).await;
    let close = a.expect_close().await;
    assert_eq!(close.code, 1009, "docs/protocol.md: 1009, then resume");
    // A drop, not a departure: the others see it reconnecting and can carry on.
    assert_eq!(
        m.expect("participant.updated").await["participant"]["connection"],
        "reconnecting"
    );
    assert!(m.ping().await);
    server.stop().await;
}

async fn request_bodies_over_the_limit_get_413(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.api.max_body_bytes = 4096).await;
    let (status, body) = server
        .api(
            Method::POST,
            "/api/rooms",
            Some(json!({"name": "big", "metadata": "x".repeat(10_000)})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );
    let (status, body) = server
        .api(
            Method::POST,
            "/api/rooms",
            Some(json!({"name": "bad name!"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let response = server
        .http
        .post(format!("http://{}/api/rooms", server.addr))
        .bearer_auth(&server.admin_token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json error body");
    assert_eq!(body["error"]["code"], "invalid_request");
    let (status, _) = server
        .api(Method::POST, "/api/rooms", Some(json!({"name": "fine"})))
        .await;
    assert_eq!(status, 201, "the server keeps serving");
    server.stop().await;
}

async fn protocol_misuse_gets_typed_errors(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.connect().await;
    assert_eq!(
        c.request(json!({"type": "chat", "text": "hi"})).await["code"],
        "not_joined"
    );
    let token = server.token("r", "a", Role::Party);
    let reply = c
        .request(json!({"type": "join", "v": 99, "room": "r", "token": token}))
        .await;
    assert_eq!(reply["code"], "unsupported_version");
    assert_eq!(c.join("r", &token).await["type"], "joined");
    assert_eq!(c.join("r", &token).await["code"], "already_joined");
    // Media misuse: each gets a typed error and the connection (and the media plane) stays up.
    let reply = c.request(json!({"type": "offer", "sdp": "v=0"})).await;
    assert_eq!(reply["code"], "invalid_message", "{reply}");
    for screen in [json!("1 2"), json!(""), json!("x".repeat(17)), json!(7)] {
        let reply = c
            .request(json!({"type": "offer", "sdp": "v=0", "screen": screen}))
            .await;
        assert_eq!(reply["code"], "invalid_message", "screen {screen}: {reply}");
    }
    let reply = c.request(json!({"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}})).await;
    assert_eq!(
        reply["code"], "invalid_message",
        "a candidate before any offer: {reply}"
    );
    let reply = c.request(json!({"type": "answer", "sdp": "v=0\r\n"})).await;
    assert_eq!(
        reply["code"], "invalid_message",
        "an answer nobody asked for: {reply}"
    );
    let reply = c
        .request(json!({"type": "preferences", "max_height": "tall"}))
        .await;
    assert_eq!(reply["code"], "invalid_message", "{reply}");
    assert!(c.ping().await);
    server.stop().await;

    // A server with media turned off says so.
    let server = TestServer::start_with(backend, |c| c.media.enabled = false).await;
    let mut c = server.join("r", "a", Role::Party).await;
    let reply = c.request(json!({"type": "offer", "sdp": "v=0"})).await;
    assert_eq!(reply["code"], "media_unavailable", "{reply}");
    assert!(c.ping().await);
    server.stop().await;
}

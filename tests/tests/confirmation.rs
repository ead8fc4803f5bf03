//! Judicial confirmation across the network boundary: the full path with the real court bridge,
//! refusals (forged, altered, outdated, wrong key), a link that drops, dead letters, and several
//! servers leasing one PostgreSQL outbox. The crash matrix is in `confirmation_crash.rs`.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use tiaojie_confirmation::court::{CourtAction, CourtStatus, CourtUpdate};
use tiaojie_confirmation::wire::{ResultOutcome, ToBridge};
use tiaojie_confirmation::{Body, Message, Signer};
use tiaojie_domain::Role;
use tiaojie_tests::court::{JUDGE_TOKEN, RawBridge, TestBridge, apply, bridge_key, signed_case};
use tiaojie_tests::net::TcpPath;
use tiaojie_tests::{Backend, TempDir, TestServer, on_both_backends};

on_both_backends!(
    an_application_reaches_the_judge_and_the_ruling_reaches_the_parties,
    forged_altered_and_outdated_messages_are_refused,
    a_dropped_link_loses_nothing_and_a_poison_message_is_dead_lettered,
    a_party_withdraws_before_the_ruling,
    a_silently_lost_link_is_noticed_and_comes_back,
);

/// Several server processes on one PostgreSQL database lease the same outbox at once, each
/// to its own bridge connection: every message is delivered once, and a case's messages in
/// order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_servers_lease_one_postgres_outbox_without_double_delivery() {
    const CASES: usize = 20;
    const PER_CASE: i64 = 10;
    let (name, url) = tiaojie_tests::postgres::create_database().await;
    let (key, _) = Signer::generate().expect("key");
    let mut servers = Vec::new();
    for _ in 0..3 {
        let (url, public) = (url.clone(), key.public_b64());
        servers.push(
            TestServer::start_with(Backend::Sqlite, move |c| {
                c.database.url = url;
                c.confirmation.bridge_keys = public;
                c.confirmation.window = 4;
            })
            .await,
        );
    }
    // The outbox, written directly: 20 cases with 10 messages each, interleaved in time.
    let db = database(&servers[0]).await;
    for c in 0..CASES {
        sqlx::query("INSERT INTO cases (id, number, mediator, opened_at, due_at, seq) VALUES ($1, $2, 'm', 0, 0, 1)")
            .bind(format!("case-{c}"))
            .bind(format!("N{c}"))
            .execute(&db)
            .await
            .expect("case");
    }
    for seq in 1..=PER_CASE {
        for c in 0..CASES {
            let id = format!("m-{c}-{seq}");
            sqlx::query(
                "INSERT INTO confirmation_outbox (message_id, case_id, seq, payload, signature, created_at) \
                 VALUES ($1, $2, $3, $4, 'x', $5)",
            )
            .bind(&id)
            .bind(format!("case-{c}"))
            .bind(seq)
            .bind(json!({"message_id": id, "case": c, "seq": seq}).to_string())
            .bind(seq * 1000 + c as i64)
            .execute(&db)
            .await
            .expect("outbox row");
        }
    }
    // One bridge connection per server, each acknowledging what it gets.
    // Receipt order across connections: a case's next message can only be leased after the
    // previous one's acknowledgement, which follows its receipt.
    let order = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (n, server) in servers.iter().enumerate() {
        let order = order.clone();
        let mut raw = RawBridge::connect(server, &key).await.expect("connects");
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(envelope) = raw.delivery(Duration::from_secs(3)).await {
                let v: Value = serde_json::from_str(&envelope.payload).expect("payload");
                let id = v["message_id"].as_str().expect("id").to_string();
                let at = order.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                got.push((
                    at,
                    n,
                    v["case"].as_u64().unwrap_or(0),
                    v["seq"].as_i64().unwrap_or(0),
                    id.clone(),
                ));
                raw.ack(&id).await;
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    all.sort();
    let mut ids: Vec<&String> = all.iter().map(|(_, _, _, _, id)| id).collect();
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!(total, ids.len(), "a message was delivered twice");
    assert_eq!(total, CASES * PER_CASE as usize, "every message delivered");
    for c in 0..CASES as u64 {
        let seqs: Vec<i64> = all.iter().filter(|d| d.2 == c).map(|d| d.3).collect();
        assert_eq!(
            seqs,
            (1..=PER_CASE).collect::<Vec<_>>(),
            "case {c} out of order"
        );
    }
    let connections: std::collections::HashSet<usize> = all.iter().map(|d| d.1).collect();
    eprintln!(
        "deliveries per connection: {:?}",
        (0..3)
            .map(|n| all.iter().filter(|d| d.1 == n).count())
            .collect::<Vec<_>>()
    );
    assert!(connections.len() >= 2, "the servers shared the work");
    for s in servers {
        s.stop().await;
    }
    tiaojie_tests::postgres::drop_database(&name).await;
}

/// Polls `check` every 50 ms for up to 20 s.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn call(server: &TestServer, token: &str, method: Method, path: &str, want: u16) -> Value {
    let (status, value) = server.api_as(token, method.clone(), path, None).await;
    assert_eq!(status, want, "{method} {path}: {value}");
    value
}

/// A server that trusts a fresh bridge key, and that bridge (connected).
async fn server_and_bridge(
    backend: Backend,
    adjust: impl FnOnce(&mut tiaojie_config::Config),
) -> (TestServer, TestBridge, TempDir) {
    let dir = TempDir::new("bridge");
    let key = bridge_key(&dir.0);
    let server = TestServer::start_with(backend, |c| {
        c.confirmation.bridge_keys = key;
        adjust(c);
    })
    .await;
    let bridge = TestBridge::start(&dir.0, &server).await;
    (server, bridge, dir)
}

async fn an_application_reaches_the_judge_and_the_ruling_reaches_the_parties(backend: Backend) {
    let (server, bridge, dir) = server_and_bridge(backend, |_| {}).await;
    let case = signed_case(&server, "(2026)京0105民诉前调301号").await;
    let base = format!("/api/cases/{}", case.id);
    let apply = |p: &str| format!("{base}/members/{p}/confirmation-application");

    // Each party applies for themself; an agent and a party for the other are refused.
    call(
        &server,
        &case.tokens["lawyer-zhao"],
        Method::PUT,
        &apply("lawyer-zhao"),
        403,
    )
    .await;
    call(
        &server,
        &case.tokens["p-zhang"],
        Method::PUT,
        &apply("p-li"),
        403,
    )
    .await;
    let one = call(
        &server,
        &case.tokens["p-zhang"],
        Method::PUT,
        &apply("p-zhang"),
        200,
    )
    .await;
    assert_eq!(
        one["confirmation"]["applicants"].as_array().map(Vec::len),
        Some(1),
        "{one}"
    );
    assert!(one["confirmation"]["submitted"].is_null());
    assert!(one["confirmation_apply_by"].as_i64() > one["agreement"]["effective_at"].as_i64());
    call(
        &server,
        &case.tokens["p-zhang"],
        Method::PUT,
        &apply("p-zhang"),
        409,
    )
    .await;
    // 张三's page follows the case from outside its room (as after the session): it hears of
    // the application reaching the court network without asking again.
    let mut page = server.connect().await;
    let following = page
        .request(json!({"type": "follow", "token": case.tokens["p-zhang"]}))
        .await;
    assert_eq!(following["type"], "following", "{following}");
    assert_eq!(following["case"], case.id.as_str());
    let both = call(
        &server,
        &case.tokens["p-li"],
        Method::PUT,
        &apply("p-li"),
        200,
    )
    .await;
    let application = both["confirmation"]["submitted"]["message_id"]
        .as_str()
        .expect("submitted")
        .to_string();
    assert_eq!(
        both["confirmation"]["submitted"]["sha256"],
        case.sha256.as_str()
    );

    // The bridge has it: signature and hashes verified on the judge's side.
    let docket = until("the application in the court's inbox", async || {
        let (_, list) = bridge.api(Method::GET, "/applications", None).await;
        list.as_array().and_then(|l| l.first().cloned())
    })
    .await;
    assert_eq!(docket["id"], application.as_str());
    assert_eq!(docket["status"], "received");
    assert!(docket["due_at"].as_i64() > docket["received_at"].as_i64());
    let (status, full) = bridge
        .api(Method::GET, &format!("/applications/{application}"), None)
        .await;
    assert_eq!(status, 200, "{full}");
    for check in [
        "envelope_signature_valid",
        "agreement_hash_valid",
        "signatures_on_this_hash",
    ] {
        assert_eq!(full["verification"][check], true, "{check}: {full}");
    }
    assert_eq!(
        full["application"]["case_number"],
        "(2026)京0105民诉前调301号"
    );
    assert_eq!(
        full["application"]["signatures"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        full["application"]["identity_checks"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        full["application"]["applicants"].as_array().map(Vec::len),
        Some(2)
    );
    until("the server to see the delivery acknowledged", async || {
        let (_, v) = server
            .api_as(&case.tokens["p-zhang"], Method::GET, &base, None)
            .await;
        (v["confirmation_delivered"] == true).then_some(())
    })
    .await;
    let mut changes = Vec::new();
    while !changes.iter().any(|c| c == "confirmation_delivered") {
        let event = page.expect("case.updated").await;
        assert_eq!(event["case"], case.id.as_str(), "{event}");
        changes.push(event["change"].as_str().unwrap_or_default().to_string());
    }

    // The judge's API: a ruling before acceptance is refused; texts are required; no token, no API.
    let act = |body: Value| {
        let bridge = &bridge;
        let path = format!("/applications/{application}/actions");
        async move { bridge.api(Method::POST, &path, Some(body)).await }
    };
    let (status, _) =
        act(json!({"action": "confirm", "ruling_number": "x", "ruling_text": "y"})).await;
    assert_eq!(status, 409);
    let (status, _) = act(json!({"action": "not_accept", "grounds": " "})).await;
    assert_eq!(status, 400);
    let (status, _) = act(json!({"action": "withdraw"})).await;
    assert_eq!(status, 400);
    let anonymous = reqwest::Client::new()
        .get(format!("http://{}/api/applications", bridge.addr))
        .bearer_auth("not-the-judge-token-000000000000")
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status().as_u16(), 401);
    assert_ne!(JUDGE_TOKEN, "not-the-judge-token-000000000000");

    // Accept, extend, confirm: each change reaches the case, in order.
    let (status, accepted) = act(json!({"action": "accept"})).await;
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    let (status, extended) =
        act(json!({"action": "extend", "approval": "院长批准（2026）第12号"})).await;
    assert_eq!(status, 200, "{extended}");
    assert_eq!(
        extended["due_at"]
            .as_i64()
            .zip(accepted["due_at"].as_i64())
            .map(|(a, b)| a - b),
        Some(10 * 24 * 3600 * 1000)
    );
    let (status, _) = act(json!({"action": "confirm", "ruling_number": "(2026)京0105民特301号", "ruling_text": "调解协议有效。"})).await;
    assert_eq!(status, 200);
    let seen = until("the parties to see the ruling", async || {
        let (_, v) = server
            .api_as(&case.tokens["p-li"], Method::GET, &base, None)
            .await;
        (v["confirmation"]["docket"]["status"] == "confirmed").then_some(v)
    })
    .await;
    let updates = seen["confirmation"]["updates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let actions: Vec<&str> = updates
        .iter()
        .filter_map(|u| u["action"]["action"].as_str())
        .collect();
    assert_eq!(actions, ["accept", "extend", "confirm"], "{seen}");
    assert_eq!(
        updates[2]["action"]["ruling_number"],
        "(2026)京0105民特301号"
    );
    assert_eq!(updates[2]["judge_name"], "孙法官");
    assert_eq!(seen["confirmation"]["docket"]["extended"], true);
    // The following page heard each of the court's updates as it came.
    let court_updates = page
        .drain(Duration::from_millis(300))
        .await
        .into_iter()
        .filter(|e| e["type"] == "case.updated" && e["change"] == "court_updated")
        .count();
    assert_eq!(court_updates, 3, "accept, extend, confirm");

    // The ruling's document (民事裁定书), made in the court network, came back with it: the
    // case's record keeps its hash, the parties download the court's very bytes.
    let sha = updates[2]["document"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(sha.len(), 64, "{}", updates[2]);
    assert!(
        updates[2]["document"].get("pdf").is_none(),
        "the bytes are kept apart"
    );
    let response = server
        .http
        .get(format!("http://{}{base}/confirmation/ruling", server.addr))
        .bearer_auth(&case.tokens["p-li"])
        .send()
        .await
        .expect("ruling");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.expect("body").to_vec();
    assert_eq!(tiaojie_domain::mediation::agreement::sha256_hex(&pdf), sha);
    let (status, at_court) = bridge
        .api_bytes(&format!("/applications/{application}/ruling"))
        .await;
    assert_eq!(
        (status, &at_court),
        (200, &pdf),
        "the same document on both sides"
    );
    let text = tiaojie_tests::pdf_text(&pdf);
    for expected in [
        "北京市朝阳区人民法院",
        "民事裁定书",
        "(2026)京0105民特301号",
        "调解协议有效",
        "孙法官",
        "申请执行",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not in the ruling:\n{text}"
        );
    }
    // Nobody outside the case reads it.
    let (status, _) = server
        .api_as(
            &server.token("other-room", "stranger", Role::Party),
            Method::GET,
            &format!("{base}/confirmation/ruling"),
            None,
        )
        .await;
    assert_eq!(status, 403);

    // Every result is acknowledged on the court side; nothing waits; the audit log has them.
    until("the court outbox to drain", async || {
        let (inbox, pending) = bridge.bridge.store.counts().await.ok()?;
        (inbox == 1 && pending == 0).then_some(())
    })
    .await;
    assert_eq!(
        server.metric("tiaojie_confirmation_outbox_pending").await,
        0.0
    );
    assert_eq!(
        server
            .metric("tiaojie_confirmation_bridges_connected")
            .await,
        1.0
    );
    until("three court updates in the audit log", async || {
        let path = format!("/api/audit?target=case:{}", case.id);
        let (_, audit) = server.api(Method::GET, &path, None).await;
        let court = audit
            .as_array()?
            .iter()
            .filter(|e| e["action"] == "confirmation.court_update")
            .count();
        (court == 3).then_some(())
    })
    .await;
    // After the ruling: no withdrawal, no second application.
    call(
        &server,
        &case.tokens["p-li"],
        Method::POST,
        &format!("{base}/members/p-li/confirmation-withdrawal"),
        409,
    )
    .await;
    call(
        &server,
        &case.tokens["p-li"],
        Method::PUT,
        &apply("p-li"),
        409,
    )
    .await;

    bridge.stop();
    server.stop().await;
    dir.remove();
}

async fn forged_altered_and_outdated_messages_are_refused(backend: Backend) {
    let (server, mut bridge, dir) = server_and_bridge(backend, |_| {}).await;
    // A bridge with a key the server does not know cannot connect.
    let (stranger, _) = Signer::generate().expect("key");
    assert_eq!(
        RawBridge::connect(&server, &stranger).await.err(),
        Some(tiaojie_confirmation::wire::CLOSE_UNKNOWN_KEY)
    );
    assert!(server.metric("tiaojie_confirmation_refused_total").await >= 1.0);

    // A case applied for; the judge accepts.
    let case = signed_case(&server, "(2026)京0105民诉前调302号").await;
    let base = format!("/api/cases/{}", case.id);
    for p in ["p-zhang", "p-li"] {
        call(
            &server,
            &case.tokens[p],
            Method::PUT,
            &format!("{base}/members/{p}/confirmation-application"),
            200,
        )
        .await;
    }
    let application = bridge.first_application().await;
    assert_eq!(
        bridge.act(&application, json!({"action": "accept"})).await,
        200
    );
    until("acceptance at the server", async || {
        let (_, v) = server.api(Method::GET, &base, None).await;
        (v["confirmation"]["docket"]["status"] == "accepted").then_some(())
    })
    .await;
    bridge.cut();

    // Hand-made updates with the bridge's own key over a raw connection.
    let key_der = std::fs::read(dir.0.join("bridge-key.der")).expect("bridge key");
    let key = Signer::from_pkcs8(&key_der).expect("key");
    let mut raw = RawBridge::connect(&server, &key)
        .await
        .expect("the real key connects");
    let update = |action: CourtAction, status: CourtStatus, sha: &str| Message {
        message_id: tiaojie_confirmation::envelope::random_id(),
        case_id: case.id.clone(),
        seq: 100,
        created_at: 1,
        body: Body::CourtUpdate(CourtUpdate {
            application: application.clone(),
            agreement_sha256: sha.to_string(),
            action,
            status,
            extended: false,
            due_at: None,
            judge: "judge-sun".into(),
            judge_name: "孙法官".into(),
            at: tiaojie_domain::clock::now_millis(),
            document: None,
        }),
    };
    let outcome = |ack: ToBridge| match ack {
        ToBridge::ResultAck {
            outcome, reason, ..
        } => (outcome, reason.unwrap_or_default()),
        other => panic!("{other:?}"),
    };
    let confirm = || CourtAction::Confirm {
        ruling_number: "(2026)京0105民特302号".into(),
        ruling_text: "有效".into(),
    };
    // A ruling on another agreement hash: refused, and again when redelivered.
    let outdated = key.seal(&update(confirm(), CourtStatus::Confirmed, &"0".repeat(64)));
    let (o, reason) = outcome(raw.result(outdated.clone()).await);
    assert_eq!(o, ResultOutcome::Refused);
    assert!(reason.contains("hash"), "{reason}");
    assert_eq!(
        outcome(raw.result(outdated).await).0,
        ResultOutcome::Refused
    );
    // Signed by someone else, or altered after signing: refused.
    let good = update(confirm(), CourtStatus::Confirmed, &case.sha256);
    let (o, reason) = outcome(raw.result(stranger.seal(&good)).await);
    assert_eq!(o, ResultOutcome::Refused);
    assert!(reason.contains("signature"), "{reason}");
    let mut altered = key.seal(&good);
    altered.payload = altered.payload.replace("有效", "无效");
    assert_eq!(outcome(raw.result(altered).await).0, ResultOutcome::Refused);
    // A transition the court's rules do not allow (not accepting an accepted application).
    let not_accept = key.seal(&update(
        CourtAction::NotAccept {
            grounds: "x".into(),
        },
        CourtStatus::NotAccepted,
        &case.sha256,
    ));
    assert_eq!(
        outcome(raw.result(not_accept).await).0,
        ResultOutcome::Refused
    );
    // The real ruling applies once; its redelivery is a duplicate.
    let sealed = key.seal(&good);
    assert_eq!(
        outcome(raw.result(sealed.clone()).await).0,
        ResultOutcome::Applied
    );
    assert_eq!(
        outcome(raw.result(sealed).await).0,
        ResultOutcome::Duplicate
    );
    let (_, v) = server.api(Method::GET, &base, None).await;
    assert_eq!(v["confirmation"]["docket"]["status"], "confirmed");
    assert_eq!(
        v["confirmation"]["updates"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );

    // An envelope altered on its way to the court is refused there and reported.
    let other = signed_case(&server, "(2026)京0105民诉前调303号").await;
    let obase = format!("/api/cases/{}", other.id);
    for p in ["p-zhang", "p-li"] {
        call(
            &server,
            &other.tokens[p],
            Method::PUT,
            &format!("{obase}/members/{p}/confirmation-application"),
            200,
        )
        .await;
    }
    tamper_outbox(&server, &other.id).await;
    drop(raw);
    bridge.connect();
    let refusals = until("the bridge to report the altered envelope", async || {
        let (_, r) = bridge.api(Method::GET, "/refused", None).await;
        let envelopes = r["envelopes"].as_array()?.clone();
        (!envelopes.is_empty()).then_some(envelopes)
    })
    .await;
    assert!(
        refusals[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("signature"),
        "{refusals:?}"
    );
    let (_, list) = bridge.api(Method::GET, "/applications", None).await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "the altered application is not in the inbox"
    );
    // The server hears of it over the link, after the bridge has recorded it.
    until("the server to record the refusal", async || {
        let (_, outbox) = server
            .api(Method::GET, "/api/confirmation/outbox?state=pending", None)
            .await;
        outbox[0]["last_error"]
            .as_str()?
            .contains("signature")
            .then_some(())
    })
    .await;

    bridge.stop();
    server.stop().await;
    dir.remove();
}

/// Alters the pending outbox message of `case` in the server's database, as an attacker
/// between the two networks would.
async fn tamper_outbox(server: &TestServer, case: &str) {
    sqlx::query("UPDATE confirmation_outbox SET payload = REPLACE(payload, '四万元', '四十万元') WHERE case_id = $1")
        .bind(case)
        .execute(&database(server).await)
        .await
        .expect("tamper");
}

/// A connection of our own to the server's database.
async fn database(server: &TestServer) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&server.config.database_url())
        .await
        .expect("database")
}

async fn a_dropped_link_loses_nothing_and_a_poison_message_is_dead_lettered(backend: Backend) {
    let (server, mut bridge, dir) = server_and_bridge(backend, |c| {
        c.confirmation.retry = Duration::from_millis(50);
        c.confirmation.lease = Duration::from_secs(2);
        c.confirmation.heartbeat = Duration::from_millis(500);
    })
    .await;
    // The link is down while three cases apply.
    bridge.cut();
    let mut cases = Vec::new();
    for n in 0..3 {
        let case = signed_case(&server, &format!("(2026)京0105民诉前调31{n}号")).await;
        for p in ["p-zhang", "p-li"] {
            let path = format!(
                "/api/cases/{}/members/{p}/confirmation-application",
                case.id
            );
            call(&server, &case.tokens[p], Method::PUT, &path, 200).await;
        }
        cases.push(case);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        server.metric("tiaojie_confirmation_outbox_pending").await,
        3.0
    );
    assert!(
        server
            .metric("tiaojie_confirmation_outbox_oldest_seconds")
            .await
            >= 1.0
    );
    // One of them is poisoned: altered, so the bridge refuses it every time.
    tamper_outbox(&server, &cases[1].id).await;
    if backend == Backend::Postgres {
        // The database "restarts": every connection the server holds is cut under it.
        let db = database(&server).await;
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&db)
        .await
        .expect("terminate");
        assert!(!cut.is_empty(), "the server had connections to cut");
    }
    bridge.connect();
    until("the two good ones at the court", async || {
        let (_, list) = bridge.api(Method::GET, "/applications", None).await;
        (list.as_array()?.len() == 2).then_some(())
    })
    .await;
    let dead = until("the poisoned one dead-lettered", async || {
        let (_, dead) = server
            .api(Method::GET, "/api/confirmation/outbox?state=dead", None)
            .await;
        (dead.as_array()?.len() == 1).then_some(dead)
    })
    .await;
    assert_eq!(dead[0]["case_id"], cases[1].id.as_str());
    assert!(
        dead[0]["attempts"].as_i64() >= Some(tiaojie_store::MAX_ATTEMPTS),
        "{dead}"
    );
    assert_eq!(
        server.metric("tiaojie_confirmation_dead_letters").await,
        1.0
    );
    // A party cannot see or touch the queue; an admin repairs the row and sends it again.
    let party = &cases[0].tokens["p-zhang"];
    call(&server, party, Method::GET, "/api/confirmation/outbox", 403).await;
    let message = dead[0]["message_id"].as_str().expect("id").to_string();
    sqlx::query("UPDATE confirmation_outbox SET payload = REPLACE(payload, '四十万元', '四万元') WHERE message_id = $1")
        .bind(&message)
        .execute(&database(&server).await)
        .await
        .expect("repair");
    let admin = server.admin_token.clone();
    call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/confirmation/outbox/{message}/retry"),
        200,
    )
    .await;
    call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/confirmation/outbox/{message}/retry"),
        404,
    )
    .await;
    until("all three at the court", async || {
        let (_, list) = bridge.api(Method::GET, "/applications", None).await;
        (list.as_array()?.len() == 3).then_some(())
    })
    .await;
    assert_eq!(
        server.metric("tiaojie_confirmation_dead_letters").await,
        0.0
    );
    until("nothing pending", async || {
        (server.metric("tiaojie_confirmation_outbox_pending").await == 0.0).then_some(())
    })
    .await;
    let staff = server.staff_token("med-wang", Role::Mediator);
    call(
        &server,
        &staff,
        Method::GET,
        "/api/confirmation/outbox",
        403,
    )
    .await;

    bridge.stop();
    server.stop().await;
    dir.remove();
}

async fn a_party_withdraws_before_the_ruling(backend: Backend) {
    let (server, bridge, dir) = server_and_bridge(backend, |_| {}).await;
    let case = signed_case(&server, "(2026)京0105民诉前调320号").await;
    let base = format!("/api/cases/{}", case.id);
    let withdraw = |p: &str| format!("{base}/members/{p}/confirmation-withdrawal");
    // Nothing to withdraw before the application; a party withdraws only for themself.
    call(
        &server,
        &case.tokens["p-li"],
        Method::POST,
        &withdraw("p-li"),
        409,
    )
    .await;
    tiaojie_tests::court::apply(&server, &case).await;
    let application = bridge.first_application().await;
    assert_eq!(
        bridge.act(&application, json!({"action": "accept"})).await,
        200
    );
    call(
        &server,
        &case.tokens["p-zhang"],
        Method::POST,
        &withdraw("p-li"),
        403,
    )
    .await;
    let withdrawn = call(
        &server,
        &case.tokens["p-li"],
        Method::POST,
        &withdraw("p-li"),
        200,
    )
    .await;
    assert_eq!(withdrawn["confirmation"]["withdrawal"][1], "p-li");
    call(
        &server,
        &case.tokens["p-li"],
        Method::POST,
        &withdraw("p-li"),
        409,
    )
    .await;
    // The withdrawal crosses to the court, which records it and says so back.
    until("the court to record the withdrawal", async || {
        let (_, d) = bridge
            .api(Method::GET, &format!("/applications/{application}"), None)
            .await;
        (d["docket"]["status"] == "withdrawn").then_some(())
    })
    .await;
    let seen = until("the parties to see it withdrawn", async || {
        let (_, v) = server
            .api_as(&case.tokens["p-zhang"], Method::GET, &base, None)
            .await;
        (v["confirmation"]["docket"]["status"] == "withdrawn").then_some(v)
    })
    .await;
    assert_eq!(
        seen["confirmation"]["updates"].as_array().map(Vec::len),
        Some(2)
    );
    // A ruling after the withdrawal is refused by the court's own rules.
    let (status, _) = bridge
        .api(
            Method::POST,
            &format!("/applications/{application}/actions"),
            Some(json!({"action": "confirm", "ruling_number": "x", "ruling_text": "y"})),
        )
        .await;
    assert_eq!(status, 409);
    bridge.stop();
    server.stop().await;
    dir.remove();
}

/// The network between the court and the server loses everything for a while and closes
/// nothing: both sides notice by the heartbeat, the server gives back what it had delivered
/// into the dead connection, the bridge dials again once the network is back, and what waited
/// on either side crosses once.
async fn a_silently_lost_link_is_noticed_and_comes_back(backend: Backend) {
    let dir = TempDir::new("bridge");
    let key = bridge_key(&dir.0);
    let server = TestServer::start_with(backend, |c| {
        c.confirmation.bridge_keys = key;
        c.confirmation.heartbeat = Duration::from_millis(200);
    })
    .await;
    let path = TcpPath::start(server.addr).await;
    let bridge = TestBridge::start_via(&dir.0, &server, path.addr).await;
    let connected = "tiaojie_confirmation_bridges_connected";
    let first = signed_case(&server, "(2026)京0105民诉前调330号").await;
    apply(&server, &first).await;
    let application = bridge.first_application().await;

    path.set_down(true);
    // While the network is lost the judge accepts (the update waits at the court) and two
    // more cases apply (the server may deliver them into the dead connection).
    assert_eq!(
        bridge.act(&application, json!({"action": "accept"})).await,
        200
    );
    let mut cases = Vec::new();
    for n in 1..3 {
        let case = signed_case(&server, &format!("(2026)京0105民诉前调33{n}号")).await;
        apply(&server, &case).await;
        cases.push(case);
    }
    until("the server to drop the silent connection", async || {
        (server.metric(connected).await == 0.0).then_some(())
    })
    .await;
    until("the bridge to notice", async || {
        (!bridge
            .bridge
            .connected
            .load(std::sync::atomic::Ordering::Relaxed))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, list) = bridge.api(Method::GET, "/applications", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (_, case) = server
        .api(Method::GET, &format!("/api/cases/{}", first.id), None)
        .await;
    assert_eq!(
        case["confirmation"]["updates"].as_array().map(Vec::len),
        Some(0),
        "the acceptance crossed a lost network: {case}"
    );

    path.set_down(false);
    until("the two at the court", async || {
        let (_, list) = bridge.api(Method::GET, "/applications", None).await;
        (list.as_array()?.len() == 3).then_some(())
    })
    .await;
    let case = until("the acceptance at the case", async || {
        let (_, case) = server
            .api(Method::GET, &format!("/api/cases/{}", first.id), None)
            .await;
        (case["confirmation"]["docket"]["status"] == "accepted").then_some(case)
    })
    .await;
    assert_eq!(
        case["confirmation"]["updates"].as_array().map(Vec::len),
        Some(1),
        "{case}"
    );
    until("nothing pending", async || {
        (server.metric("tiaojie_confirmation_outbox_pending").await == 0.0).then_some(())
    })
    .await;
    assert_eq!(server.metric(connected).await, 1.0);
    assert_eq!(
        server.metric("tiaojie_confirmation_dead_letters").await,
        0.0
    );
    let db = database(&server).await;
    for case in &cases {
        let messages: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM confirmation_outbox WHERE case_id = $1")
                .bind(&case.id)
                .fetch_one(&db)
                .await
                .expect("count");
        assert_eq!(messages, 1);
    }
    bridge.stop();
    server.stop().await;
    dir.remove();
}

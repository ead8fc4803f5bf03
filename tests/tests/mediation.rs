//! The mediation workflow end to end: a case from opening to a signed agreement through the API
//! and signaling with headless participants, on both databases; every cell of the permission
//! matrix; the audit chain with one row tampered; time limits on a controlled clock; the two
//! other ends, a refusal to sign and a failure.

use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use tiaojie_domain::permission::{Action, MATRIX, Scope};
use tiaojie_domain::{Role, permission};
use tiaojie_tests::cases::{MEDIATOR, call, case_with_links, new_case};
use tiaojie_tests::{Backend, TestServer, WsClient, on_both_backends};

on_both_backends!(
    a_full_mediation_from_case_to_signed_agreement,
    one_admission_rule_on_every_path,
    every_cell_of_the_permission_matrix_is_enforced,
    time_limits_follow_the_clock_and_overdue_cases_are_flagged,
    concurrent_commands_on_one_case_all_land_in_order,
    a_refusal_to_sign_ends_the_mediation_and_a_failure_is_referred_for_filing,
);

/// Waits for `kind` and returns it, skipping other events.
async fn expect(client: &mut WsClient, kind: &str) -> Value {
    client.expect_skipping(kind).await.0
}

/// Reads chat texts that arrive within `wait`.
async fn chats(client: &mut WsClient, wait: Duration) -> Vec<String> {
    client
        .drain(wait)
        .await
        .into_iter()
        .filter(|e| e["type"] == "chat")
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

/// Where `who` stands, as `client` sees the room now.
async fn place_of(client: &mut WsClient, who: &str) -> Value {
    let list = client.request(json!({"type": "participants"})).await;
    list["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["identity"] == who)
        .map_or(Value::Null, |p| p["space"].clone())
}

/// The checks a refusal names for `person`, as (name, check) pairs.
fn missing_for(details: &Value, person: &str) -> Vec<(String, String)> {
    details["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["person"] == person)
        .map(|m| {
            (
                m["name"].as_str().unwrap_or("").to_string(),
                m["check"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// ODR-Lit 7 / ODR-Med 17: a party is never in the room unchecked, whichever path puts them
/// there — the mediator's admit and move over signaling, the control API's and the case API's
/// moves, a side's move, the start, a takeover join and a resume — and a check withdrawn
/// later sends them back to the lobby.
async fn one_admission_rule_on_every_path(backend: Backend) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    let admin = server.admin_token.clone();
    let (base, room, tokens) = case_with_links(&server, &staff, "(2026)京0105民诉前调90号").await;
    let s1 = format!("{base}/sessions/1");
    let t = |p: &str| tokens[p].clone();
    let mut m = server.connect().await;
    let joined = m.join(&room, &t(MEDIATOR)).await;
    assert_eq!(joined["you"]["space"], "joint", "{joined}");
    let mut zhang = server.connect().await;
    assert_eq!(
        zhang.join(&room, &t("p-zhang")).await["you"]["space"],
        "lobby"
    );

    // Before check-in nothing can have been checked: the admit is refused with every check
    // that is missing, named, for 张三.
    let refused = m
        .request(json!({"type": "moderate", "action": "admit", "target": "p-zhang"}))
        .await;
    assert_eq!(refused["code"], "checks_missing", "{refused}");
    assert_eq!(
        missing_for(&refused["details"], "p-zhang"),
        [
            "identity_not_verified",
            "warning_not_acknowledged",
            "online_mediation_not_answered",
            "recording_not_answered"
        ]
        .map(|c| ("张三".to_string(), c.to_string()))
    );
    call(
        &server,
        &staff,
        Method::POST,
        &format!("{s1}/lobby"),
        None,
        200,
    )
    .await;

    // Check-in, with 张三 only part-way: every path that would take 张三 out of the lobby is
    // refused and names what is missing.
    call(
        &server,
        &t("p-zhang"),
        Method::PUT,
        &format!("{s1}/members/p-zhang/warning"),
        None,
        200,
    )
    .await;
    let admit = json!({"type": "moderate", "action": "admit", "target": "p-zhang"});
    let refused = m.request(admit.clone()).await;
    assert_eq!(refused["code"], "checks_missing", "{refused}");
    let still = [
        "identity_not_verified",
        "online_mediation_not_answered",
        "recording_not_answered",
    ]
    .map(|c| ("张三".to_string(), c.to_string()));
    assert_eq!(missing_for(&refused["details"], "p-zhang"), still);
    let moved = m
        .request(
            json!({"type": "moderate", "action": "move", "target": "p-zhang", "space": "joint"}),
        )
        .await;
    assert_eq!(missing_for(&moved["details"], "p-zhang"), still, "{moved}");
    let by_admin = call(
        &server,
        &admin,
        Method::POST,
        &format!("/api/rooms/{room}/participants/p-zhang/move"),
        Some(json!({"space": "joint"})),
        409,
    )
    .await;
    assert_eq!(missing_for(&by_admin["error"]["details"], "p-zhang"), still);
    let by_case_api = call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/members/p-zhang/move"),
        Some(json!({"to": "joint"})),
        409,
    )
    .await;
    assert_eq!(
        missing_for(&by_case_api["error"]["details"], "p-zhang"),
        still
    );
    let start = call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/start"),
        None,
        409,
    )
    .await;
    assert_eq!(missing_for(&start["error"]["details"], "p-zhang"), still);
    // A place that is not one is refused as such, never read as some other place.
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/members/p-zhang/move"),
        Some(json!({"to": "private:side-b"})),
        422,
    )
    .await;
    // A takeover join (the same link again, from another page) does not bring 张三 in.
    let mut again = server.connect().await;
    assert_eq!(
        again.join(&room, &t("p-zhang")).await["you"]["space"],
        "lobby"
    );
    assert_eq!(place_of(&mut m, "p-zhang").await, "lobby");
    zhang = again;

    // With every check done, the same admit works.
    call(
        &server,
        &t(MEDIATOR),
        Method::PUT,
        &format!("{s1}/members/p-zhang/identity"),
        Some(json!({"method": "id_document_video", "passed": true})),
        200,
    )
    .await;
    for subject in ["online_mediation", "recording"] {
        call(
            &server,
            &t("p-zhang"),
            Method::PUT,
            &format!("{s1}/members/p-zhang/consents"),
            Some(json!({"subject": subject, "given": true})),
            200,
        )
        .await;
    }
    let admitted = m.request(admit.clone()).await;
    assert_eq!(admitted["type"], "ok", "{admitted}");
    assert_eq!(place_of(&mut m, "p-zhang").await, "joint");

    // 李四 comes in unchecked: the start is refused and names 李四; checked, it starts and
    // the lobby empties into the joint room.
    let mut li = server.connect().await;
    assert_eq!(li.join(&room, &t("p-li")).await["you"]["space"], "lobby");
    let start = call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/start"),
        None,
        409,
    )
    .await;
    assert!(missing_for(&start["error"]["details"], "p-zhang").is_empty());
    assert_eq!(
        missing_for(&start["error"]["details"], "p-li")[0],
        ("李四".to_string(), "identity_not_verified".to_string())
    );
    call(
        &server,
        &t(MEDIATOR),
        Method::PUT,
        &format!("{s1}/members/p-li/identity"),
        Some(json!({"method": "face_recognition", "passed": true})),
        200,
    )
    .await;
    call(
        &server,
        &t("p-li"),
        Method::PUT,
        &format!("{s1}/members/p-li/warning"),
        None,
        200,
    )
    .await;
    for subject in ["online_mediation", "recording"] {
        call(
            &server,
            &t("p-li"),
            Method::PUT,
            &format!("{s1}/members/p-li/consents"),
            Some(json!({"subject": subject, "given": true})),
            200,
        )
        .await;
    }
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/start"),
        None,
        200,
    )
    .await;
    assert_eq!(place_of(&mut m, "p-li").await, "joint");

    // The agent came late and unchecked: a side's move leaves the agent where it is, and the
    // case API cannot put the agent into its side's room either.
    let mut zhao = server.connect().await;
    assert_eq!(
        zhao.join(&room, &t("lawyer-zhao")).await["you"]["space"],
        "lobby"
    );
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/sides/applicant/move"),
        Some(json!({"private": true})),
        200,
    )
    .await;
    assert_eq!(place_of(&mut m, "p-zhang").await, "private:applicant");
    assert_eq!(place_of(&mut m, "lawyer-zhao").await, "lobby");
    let refused = call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/members/lawyer-zhao/move"),
        Some(json!({"to": "private:applicant"})),
        409,
    )
    .await;
    assert_eq!(
        missing_for(&refused["error"]["details"], "lawyer-zhao"),
        ["identity_not_verified", "warning_not_acknowledged"]
            .map(|c| ("赵律师".to_string(), c.to_string()))
    );
    // Not their room: 李四 into the applicant's private room, named and placed.
    let wrong = m
        .request(json!({"type": "moderate", "action": "move", "target": "p-li", "space": "private:applicant"}))
        .await;
    assert_eq!(wrong["code"], "forbidden", "{wrong}");
    assert_eq!(wrong["details"]["reason"], "not_their_room");
    assert_eq!(wrong["details"]["name"], "李四");
    assert_eq!(wrong["details"]["place"], "private:applicant");
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/sides/applicant/move"),
        Some(json!({"private": false})),
        200,
    )
    .await;

    // A check withdrawn sends its person back to the lobby at once, audited; a resume and a
    // takeover join find them there, and only a new check lets them in again.
    li.drain(Duration::from_millis(200)).await;
    let resume_token = li.resume_token.clone();
    let last_seq = li.last_seq;
    li.vanish();
    call(
        &server,
        &t(MEDIATOR),
        Method::PUT,
        &format!("{s1}/members/p-li/identity"),
        Some(json!({"method": "offline", "passed": false, "note": "证件与本人不符"})),
        200,
    )
    .await;
    assert_eq!(place_of(&mut m, "p-li").await, "lobby");
    let mut li = server.connect().await;
    let resumed = li.resume_from(&resume_token, last_seq).await;
    assert_eq!(resumed["type"], "resumed", "{resumed}");
    assert_eq!(resumed["you"]["space"], "lobby", "{resumed}");
    let mut li_again = server.connect().await;
    assert_eq!(
        li_again.join(&room, &t("p-li")).await["you"]["space"],
        "lobby"
    );
    let refused = m
        .request(json!({"type": "moderate", "action": "admit", "target": "p-li"}))
        .await;
    assert_eq!(
        missing_for(&refused["details"], "p-li"),
        [("李四".to_string(), "identity_failed".to_string())]
    );
    let case_id = base.trim_start_matches("/api/cases/");
    let audit = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/audit?target=case:{case_id}"),
        None,
        200,
    )
    .await;
    assert!(
        audit
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["action"] == "person.move"
                && e["actor"] == "system"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("p-li to lobby"))),
        "the move back to the lobby is audited"
    );
    // 张三 withdraws consent to mediating online: back to the lobby too.
    call(
        &server,
        &t("p-zhang"),
        Method::PUT,
        &format!("{s1}/members/p-zhang/consents"),
        Some(json!({"subject": "online_mediation", "given": false})),
        200,
    )
    .await;
    assert_eq!(place_of(&mut m, "p-zhang").await, "lobby");
    drop((zhang, zhao, li_again));
    server.stop().await;
}

async fn a_full_mediation_from_case_to_signed_agreement(backend: Backend) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    let admin = server.admin_token.clone();

    // 1. The mediator opens the case and schedules a session.
    let case = call(
        &server,
        &staff,
        Method::POST,
        "/api/cases",
        Some(new_case("(2026)京0105民诉前调88号", "pre_filing")),
        201,
    )
    .await;
    let id = case["id"].as_str().expect("case id").to_string();
    assert_eq!(case["time_limit"]["limit_days"], 30);
    call(
        &server,
        &staff,
        Method::POST,
        "/api/cases",
        Some(new_case("(2026)京0105民诉前调88号", "pre_filing")),
        409,
    )
    .await;
    let base = format!("/api/cases/{id}");
    let case = call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/sessions"),
        Some(json!({"scheduled_at": 1_800_000_000_000_i64})),
        200,
    )
    .await;
    let room = case["sessions"][0]["room"]
        .as_str()
        .expect("room")
        .to_string();
    let s1 = format!("{base}/sessions/1");

    // 2. Personal links for everyone, logged.
    let mut tokens = HashMap::new();
    for person in [MEDIATOR, "p-zhang", "p-li", "lawyer-zhao"] {
        let inv = call(
            &server,
            &staff,
            Method::POST,
            &format!("{s1}/invitations"),
            Some(json!({"person": person, "ttl_secs": 7200})),
            200,
        )
        .await;
        assert!(
            inv["link"]
                .as_str()
                .is_some_and(|l| l.starts_with("/join?token="))
        );
        assert_eq!(inv["room"], room.as_str());
        tokens.insert(person, inv["token"].as_str().expect("token").to_string());
    }
    call(
        &server,
        &staff,
        Method::POST,
        &format!("{s1}/invitations"),
        Some(json!({"person": "nobody"})),
        404,
    )
    .await;
    let case = call(&server, &staff, Method::GET, &base, None, 200).await;
    assert_eq!(
        case["sessions"][0]["invitations"].as_array().map(Vec::len),
        Some(4)
    );

    // 3. Lobby: everyone comes in; the parties wait.
    call(
        &server,
        &staff,
        Method::POST,
        &format!("{s1}/lobby"),
        None,
        200,
    )
    .await;
    let mut clients = HashMap::new();
    for person in [MEDIATOR, "p-zhang", "p-li", "lawyer-zhao"] {
        let mut c = server.connect().await;
        let joined = c.join(&room, &tokens[person]).await;
        assert_eq!(joined["type"], "joined", "{person}: {joined}");
        let expected_space = if person == MEDIATOR { "joint" } else { "lobby" };
        assert_eq!(joined["you"]["space"], expected_space, "{person}");
        clients.insert(person, c);
    }
    let t = |p: &str| tokens[p].clone();
    // The session room is the case's: a valid link for someone outside the case, or for a
    // member in another role than theirs, is refused.
    for (who, role) in [("stranger", Role::Party), ("p-li", Role::Mediator)] {
        let mut c = server.connect().await;
        let refused = c.join(&room, &server.token(&room, who, role)).await;
        assert_eq!(refused["code"], "forbidden", "{who}: {refused}");
    }
    // No private room before the session is in session (its checks done), over signaling too.
    let early = clients
        .get_mut(MEDIATOR)
        .expect("m")
        .request(json!({"type": "moderate", "action": "move", "target": "p-zhang", "space": "private:applicant"}))
        .await;
    assert_eq!(early["code"], "case_state", "{early}");
    // Nothing is recorded before each party has consented to it: the refusal names each
    // party and the consent, with their names.
    let refused = clients
        .get_mut(MEDIATOR)
        .expect("m")
        .request(json!({"type": "record", "action": "start"}))
        .await;
    assert_eq!(refused["code"], "checks_missing", "{refused}");
    assert_eq!(
        refused["details"]["missing"],
        json!([
            {"person": "p-zhang", "name": "张三", "role": "party", "check": "recording_not_consented"},
            {"person": "p-li", "name": "李四", "role": "party", "check": "recording_not_consented"},
        ]),
        "{refused}"
    );

    // 4. The session cannot start before the checks.
    let refused = call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/start"),
        None,
        409,
    )
    .await;
    assert_eq!(refused["error"]["code"], "checks_missing");
    let missing = refused["error"]["details"]["missing"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (person, name, check) in [
        ("p-zhang", "张三", "identity_not_verified"),
        ("p-li", "李四", "online_mediation_not_answered"),
        ("lawyer-zhao", "赵律师", "warning_not_acknowledged"),
    ] {
        assert!(
            missing
                .iter()
                .any(|m| m["person"] == person && m["name"] == name && m["check"] == check),
            "{person} {check}: {missing:?}"
        );
    }
    let case = call(&server, &t(MEDIATOR), Method::GET, &base, None, 200).await;
    assert_eq!(
        case["missing_checks"][0]["present"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    // Identity: by video, by face, and one offline (recorded as such).
    for (person, method, note) in [
        ("p-zhang", "id_document_video", "身份证尾号 1234"),
        ("p-li", "face_recognition", ""),
        ("lawyer-zhao", "offline", "律师证线下核验"),
    ] {
        call(
            &server,
            &t(MEDIATOR),
            Method::PUT,
            &format!("{s1}/members/{person}/identity"),
            Some(json!({"method": method, "passed": true, "note": note})),
            200,
        )
        .await;
    }
    // Parties consent for themselves only.
    call(
        &server,
        &t("p-zhang"),
        Method::PUT,
        &format!("{s1}/members/p-li/consents"),
        Some(json!({"subject": "online_mediation", "given": true})),
        403,
    )
    .await;
    for person in ["p-zhang", "p-li"] {
        for subject in [
            "online_mediation",
            "recording",
            "recording_replaces_minutes",
        ] {
            call(
                &server,
                &t(person),
                Method::PUT,
                &format!("{s1}/members/{person}/consents"),
                Some(json!({"subject": subject, "given": true})),
                200,
            )
            .await;
        }
    }
    call(
        &server,
        &t("lawyer-zhao"),
        Method::PUT,
        &format!("{s1}/members/lawyer-zhao/consents"),
        Some(json!({"subject": "recording", "given": true})),
        403,
    )
    .await;
    for person in ["p-zhang", "p-li", "lawyer-zhao"] {
        call(
            &server,
            &t(person),
            Method::PUT,
            &format!("{s1}/members/{person}/warning"),
            None,
            200,
        )
        .await;
    }
    // Everyone hears about each change.
    let update = expect(clients.get_mut("p-li").expect("li"), "case.updated").await;
    assert_eq!(update["case"], id.as_str());

    // 5. In session: the checked come out of the lobby.
    let case = call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/start"),
        None,
        200,
    )
    .await;
    assert_eq!(case["sessions"][0]["phase"], "in_session");
    let checks = &case["sessions"][0]["checks"];
    assert_eq!(checks["lawyer-zhao"]["identity"]["method"], "offline");
    assert_eq!(checks["lawyer-zhao"]["identity"]["by"], MEDIATOR);
    assert_eq!(checks["p-li"]["online_mediation"]["given"], true);
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/start"),
        None,
        409,
    )
    .await;
    for c in clients.values_mut() {
        c.drain(Duration::from_millis(200)).await;
    }
    let list = clients
        .get_mut("p-li")
        .expect("li")
        .request(json!({"type": "participants"}))
        .await;
    let spaces: Vec<(String, String)> = list["participants"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["identity"].as_str().unwrap_or("").to_string(),
                p["space"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(spaces.iter().all(|(_, s)| s == "joint"), "{spaces:?}");

    // Recording with everyone's consent; a withdrawal pauses it at once, and it resumes only
    // when the party consents again.
    let started = clients
        .get_mut(MEDIATOR)
        .expect("m")
        .request(json!({"type": "record", "action": "start", "mode": "audio"}))
        .await;
    assert_eq!(started["type"], "ok", "{started}");
    call(
        &server,
        &t("p-li"),
        Method::PUT,
        &format!("{s1}/members/p-li/consents"),
        Some(json!({"subject": "recording", "given": false})),
        200,
    )
    .await;
    let (paused, _) = clients
        .get_mut("p-zhang")
        .expect("zhang")
        .expect_skipping("recording.updated")
        .await;
    let paused = if paused["recording"]["state"] == "paused" {
        paused
    } else {
        expect(
            clients.get_mut("p-zhang").expect("zhang"),
            "recording.updated",
        )
        .await
    };
    assert_eq!(paused["recording"]["state"], "paused", "{paused}");
    let resume = clients
        .get_mut(MEDIATOR)
        .expect("m")
        .request(json!({"type": "record", "action": "resume"}))
        .await;
    assert_eq!(resume["code"], "checks_missing", "{resume}");
    assert_eq!(
        resume["details"]["missing"][0]["person"], "p-li",
        "{resume}"
    );
    call(
        &server,
        &t("p-li"),
        Method::PUT,
        &format!("{s1}/members/p-li/consents"),
        Some(json!({"subject": "recording", "given": true})),
        200,
    )
    .await;
    let resume = clients
        .get_mut(MEDIATOR)
        .expect("m")
        .request(json!({"type": "record", "action": "resume"}))
        .await;
    assert_eq!(resume["type"], "ok", "{resume}");
    let stop = clients
        .get_mut(MEDIATOR)
        .expect("m")
        .request(json!({"type": "record", "action": "stop"}))
        .await;
    assert_eq!(stop["type"], "ok", "{stop}");

    // What a party sees of the case: its own links and notes, not the others'.
    let seen_by_li = call(&server, &t("p-li"), Method::GET, &base, None, 200).await;
    let invitations = seen_by_li["sessions"][0]["invitations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        invitations.iter().all(|i| i["person"] == "p-li") && !invitations.is_empty(),
        "{invitations:?}"
    );
    assert_eq!(
        seen_by_li["sessions"][0]["checks"]["lawyer-zhao"]["identity"]["note"],
        ""
    );
    assert_eq!(
        seen_by_li["sessions"][0]["checks"]["lawyer-zhao"]["identity"]["method"],
        "offline"
    );
    call(
        &server,
        &t("p-li"),
        Method::GET,
        &format!("{base}/events"),
        None,
        403,
    )
    .await;

    // 6. 背对背: the applicant side (party and lawyer) and the mediator go private in one action.
    call(
        &server,
        &t("p-zhang"),
        Method::POST,
        &format!("{s1}/sides/applicant/move"),
        Some(json!({"private": true})),
        403,
    )
    .await;
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/sides/applicant/move"),
        Some(json!({"private": true})),
        200,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for c in clients.values_mut() {
        c.drain(Duration::from_millis(100)).await;
    }
    let list = clients
        .get_mut("p-li")
        .expect("li")
        .request(json!({"type": "participants"}))
        .await;
    let space_of = |who: &str| {
        list["participants"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["identity"] == who)
            .map(|p| p["space"].clone())
    };
    assert_eq!(space_of("p-zhang"), Some(json!("private:applicant")));
    assert_eq!(space_of("lawyer-zhao"), Some(json!("private:applicant")));
    assert_eq!(space_of(MEDIATOR), Some(json!("private:applicant")));
    assert_eq!(space_of("p-li"), Some(json!("joint")), "{list}");
    // What is typed in the private room reaches nobody outside it.
    let sent = clients
        .get_mut("p-zhang")
        .expect("zhang")
        .request(json!({"type": "chat", "text": "底线是四万"}))
        .await;
    assert_eq!(sent["type"], "chat.sent");
    assert_eq!(
        chats(
            clients.get_mut("lawyer-zhao").expect("zhao"),
            Duration::from_millis(300)
        )
        .await,
        vec!["底线是四万"]
    );
    assert_eq!(
        chats(
            clients.get_mut(MEDIATOR).expect("m"),
            Duration::from_millis(100)
        )
        .await,
        vec!["底线是四万"]
    );
    assert!(
        chats(
            clients.get_mut("p-li").expect("li"),
            Duration::from_millis(300)
        )
        .await
        .is_empty(),
        "the other side reads nothing"
    );
    // An assisting judge is invited mid-session and joins the private room.
    call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/members"),
        Some(json!({"id": "judge-sun", "name": "孙法官", "role": "judge"})),
        200,
    )
    .await;
    let inv = call(
        &server,
        &staff,
        Method::POST,
        &format!("{s1}/invitations"),
        Some(json!({"person": "judge-sun"})),
        200,
    )
    .await;
    let mut judge = server.connect().await;
    let joined = judge
        .join(&room, inv["token"].as_str().expect("token"))
        .await;
    assert_eq!(joined["you"]["role"], "judge", "{joined}");
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/members/judge-sun/move"),
        Some(json!({"to": "private:applicant"})),
        204,
    )
    .await;
    judge.drain(Duration::from_millis(200)).await;
    clients
        .get_mut("lawyer-zhao")
        .expect("zhao")
        .request(json!({"type": "chat", "text": "请法官释明"}))
        .await;
    assert_eq!(
        chats(&mut judge, Duration::from_millis(300)).await,
        vec!["请法官释明"]
    );
    assert!(
        chats(
            clients.get_mut("p-li").expect("li"),
            Duration::from_millis(200)
        )
        .await
        .is_empty()
    );
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/members/judge-sun/move"),
        Some(json!({"to": "joint"})),
        204,
    )
    .await;

    // A late agent waits in the lobby until checked like everyone at the start.
    call(&server, &staff, Method::POST, &format!("{base}/members"), Some(json!({"id": "lawyer-qian", "name": "钱律师", "role": "agent", "side": "respondent", "represents": "p-li"})), 200).await;
    let inv = call(
        &server,
        &staff,
        Method::POST,
        &format!("{s1}/invitations"),
        Some(json!({"person": "lawyer-qian"})),
        200,
    )
    .await;
    let mut qian = server.connect().await;
    let joined = qian
        .join(&room, inv["token"].as_str().expect("token"))
        .await;
    assert_eq!(joined["you"]["space"], "lobby", "{joined}");
    let admit = json!({"type": "moderate", "action": "admit", "target": "lawyer-qian"});
    let early = clients
        .get_mut(MEDIATOR)
        .expect("m")
        .request(admit.clone())
        .await;
    assert_eq!(early["code"], "checks_missing", "{early}");
    call(
        &server,
        &t(MEDIATOR),
        Method::PUT,
        &format!("{s1}/members/lawyer-qian/identity"),
        Some(json!({"method": "id_document_video", "passed": true})),
        200,
    )
    .await;
    call(
        &server,
        inv["token"].as_str().expect("token"),
        Method::PUT,
        &format!("{s1}/members/lawyer-qian/warning"),
        None,
        200,
    )
    .await;
    let admitted = clients.get_mut(MEDIATOR).expect("m").request(admit).await;
    assert_eq!(admitted["type"], "ok", "{admitted}");

    // Nor can the other side reach into it, or be put into it.
    let direct = clients
        .get_mut("p-li")
        .expect("li")
        .request(json!({"type": "chat", "text": "听得到吗", "to": "p-zhang"}))
        .await;
    assert_eq!(direct["code"], "participant_not_found", "{direct}");
    let own = clients.get_mut("p-li").expect("li").request(json!({"type": "moderate", "action": "move", "target": "p-li", "space": "private:applicant"})).await;
    assert_eq!(own["code"], "forbidden", "{own}");
    // The mediator cannot put a party into the other side's room over signaling either.
    let wrong = clients
        .get_mut(MEDIATOR)
        .expect("m")
        .request(json!({"type": "moderate", "action": "move", "target": "p-li", "space": "private:applicant"}))
        .await;
    assert_eq!(wrong["code"], "forbidden", "{wrong}");
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/members/p-li/move"),
        Some(json!({"to": "private:applicant"})),
        403,
    )
    .await;
    call(
        &server,
        &t("p-li"),
        Method::POST,
        &format!("{s1}/members/p-li/move"),
        Some(json!({"to": "private:applicant"})),
        403,
    )
    .await;
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/sides/applicant/move"),
        Some(json!({"private": false})),
        200,
    )
    .await;
    let case = call(&server, &t(MEDIATOR), Method::GET, &base, None, 200).await;
    assert_eq!(case["sessions"][0]["sides"]["applicant"], "joint");

    // 7. Minutes: edited live, seen by the parties, no overwrite of a newer revision.
    let minutes = call(
        &server,
        &t(MEDIATOR),
        Method::PUT,
        &format!("{s1}/minutes"),
        Some(json!({"base_revision": 0, "text": "调解笔录\n双方同意分期付款。"})),
        200,
    )
    .await;
    assert_eq!(minutes["revision"], 1);
    let seen = expect(clients.get_mut("p-li").expect("li"), "minutes.updated").await;
    assert_eq!(
        (seen["revision"].as_i64(), &seen["sha256"]),
        (Some(1), &minutes["sha256"])
    );
    assert!(
        seen.get("text").is_none(),
        "the text is read through the audited API"
    );
    call(
        &server,
        &t(MEDIATOR),
        Method::PUT,
        &format!("{s1}/minutes"),
        Some(json!({"base_revision": 0, "text": "覆盖"})),
        409,
    )
    .await;
    call(
        &server,
        &t("p-li"),
        Method::PUT,
        &format!("{s1}/minutes"),
        Some(json!({"base_revision": 1, "text": "我来写"})),
        403,
    )
    .await;
    let read = call(
        &server,
        &t("p-zhang"),
        Method::GET,
        &format!("{s1}/minutes"),
        None,
        200,
    )
    .await;
    assert_eq!(read["sha256"], minutes["sha256"]);
    call(
        &server,
        &t("p-zhang"),
        Method::PUT,
        &format!("{s1}/members/p-zhang/minutes-confirmation"),
        Some(json!({"revision": 0})),
        409,
    )
    .await;
    for person in ["p-zhang", "p-li"] {
        call(
            &server,
            &t(person),
            Method::PUT,
            &format!("{s1}/members/{person}/minutes-confirmation"),
            Some(json!({"revision": 1})),
            200,
        )
        .await;
    }
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{s1}/minutes/replace-by-recording"),
        None,
        200,
    )
    .await;

    // 8. The agreement: from the template, signed, edited (signatures void), signed again.
    let v1 = call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{base}/agreement/versions"),
        Some(json!({"terms": "一、被申请人于2026年12月31日前支付四万元。"})),
        200,
    )
    .await;
    let text1 = v1["versions"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text1.contains("申请人：张三") && text1.contains("标的额：50000.00 元"),
        "{text1}"
    );
    let sha1 = v1["versions"][0]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(sha1.len(), 64);
    call(
        &server,
        &t("p-zhang"),
        Method::PUT,
        &format!("{base}/agreement/signatures/p-zhang"),
        Some(json!({"version": 1, "sha256": sha1})),
        200,
    )
    .await;
    call(
        &server,
        &t("p-zhang"),
        Method::PUT,
        &format!("{base}/agreement/signatures/p-li"),
        Some(json!({"version": 1, "sha256": sha1})),
        403,
    )
    .await;
    call(
        &server,
        &t("lawyer-zhao"),
        Method::PUT,
        &format!("{base}/agreement/signatures/lawyer-zhao"),
        Some(json!({"version": 1, "sha256": sha1})),
        403,
    )
    .await;
    // Nobody joins as a party while the agreement is being signed.
    call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/members"),
        Some(json!({"id": "p-wu", "name": "吴", "role": "party", "side": "respondent"})),
        409,
    )
    .await;
    let v2 = call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{base}/agreement/versions"),
        Some(json!({"text": text1.replace("四万元", "三万八千元")})),
        200,
    )
    .await;
    let sha2 = v2["versions"][1]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(sha1, sha2);
    assert_eq!(
        v2["unsigned"].as_array().map(Vec::len),
        Some(3),
        "the old signature is void: {v2}"
    );
    // The old signature replayed onto the new version, or the old hash with the new number.
    let replay = call(
        &server,
        &t("p-zhang"),
        Method::PUT,
        &format!("{base}/agreement/signatures/p-zhang"),
        Some(json!({"version": 1, "sha256": sha1})),
        409,
    )
    .await;
    assert_eq!(replay["error"]["code"], "stale_version");
    call(
        &server,
        &t("p-zhang"),
        Method::PUT,
        &format!("{base}/agreement/signatures/p-zhang"),
        Some(json!({"version": 2, "sha256": sha1})),
        409,
    )
    .await;
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{base}/outcome"),
        Some(json!({"result": "success"})),
        409,
    )
    .await;
    for person in ["p-zhang", "p-li", MEDIATOR] {
        call(
            &server,
            &t(person),
            Method::PUT,
            &format!("{base}/agreement/signatures/{person}"),
            Some(json!({"version": 2, "sha256": sha2})),
            200,
        )
        .await;
    }
    let agreement = call(
        &server,
        &t("p-li"),
        Method::GET,
        &format!("{base}/agreement"),
        None,
        200,
    )
    .await;
    assert!(
        agreement["effective_at"].as_i64().is_some(),
        "in effect at the last signature"
    );
    let signatures: Vec<&Value> = agreement["signatures"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["version"] == 2)
        .collect();
    assert_eq!(signatures.len(), 3);
    assert!(signatures.iter().all(|s| s["sha256"] == sha2.as_str()));
    let zhao_basis = signatures
        .iter()
        .find(|s| s["person"] == "p-li")
        .and_then(|s| s["identity"].as_str())
        .unwrap_or_default();
    assert!(
        zhao_basis.starts_with("face_recognition by med-wang"),
        "{zhao_basis}"
    );
    call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{base}/agreement/versions"),
        Some(json!({"text": "改"})),
        409,
    )
    .await;
    // The 调解协议书 as PDF: the parties, the text as signed, every signature, the hash.
    let response = server
        .http
        .get(format!("http://{}{base}/agreement/document", server.addr))
        .bearer_auth(t("p-zhang"))
        .send()
        .await
        .expect("document");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let text = tiaojie_tests::pdf_text(&response.bytes().await.expect("body"));
    for expected in [
        "调解协议书",
        "(2026)京0105民诉前调88号",
        "三万八千元",
        "张三",
        "李四",
        "赵律师",
        "张三的委托代理人",
        "王调解",
        "本协议自最后一方签署时生效",
        &sha2,
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not in the agreement:\n{text}"
        );
    }
    // The minutes too, with their revision and hash.
    let response = server
        .http
        .get(format!("http://{}{s1}/minutes/document", server.addr))
        .bearer_auth(t("p-li"))
        .send()
        .await
        .expect("minutes document");
    assert_eq!(response.status().as_u16(), 200);
    let text = tiaojie_tests::pdf_text(&response.bytes().await.expect("body"));
    assert!(
        text.contains("调解笔录") && text.contains("双方同意分期付款"),
        "{text}"
    );

    // 9. Outcome: success; the room closes; the parties rate; admins see the aggregates.
    let case = call(
        &server,
        &t(MEDIATOR),
        Method::POST,
        &format!("{base}/outcome"),
        Some(json!({"result": "success"})),
        200,
    )
    .await;
    assert_eq!(case["outcome"]["result"], "success");
    assert_eq!(case["sessions"][0]["phase"], "ended");
    let closed = expect(clients.get_mut("p-zhang").expect("zhang"), "room.closed").await;
    // The server's own reason is a code the page says in the person's language.
    assert_eq!(closed["reason"], "mediation_ended", "{closed}");
    call(
        &server,
        &t("p-zhang"),
        Method::PUT,
        &format!("{s1}/members/p-zhang/rating"),
        Some(json!({"score": 5, "comment": "耐心"})),
        200,
    )
    .await;
    call(
        &server,
        &t("p-li"),
        Method::PUT,
        &format!("{s1}/members/p-li/rating"),
        Some(json!({"score": 4})),
        200,
    )
    .await;
    call(
        &server,
        &t("p-li"),
        Method::PUT,
        &format!("{s1}/members/p-li/rating"),
        Some(json!({"score": 1})),
        409,
    )
    .await;
    call(
        &server,
        &staff,
        Method::GET,
        "/api/ratings/mediators",
        None,
        403,
    )
    .await;
    let ratings = call(
        &server,
        &admin,
        Method::GET,
        "/api/ratings/mediators",
        None,
        200,
    )
    .await;
    assert_eq!(ratings[0]["mediator"], MEDIATOR);
    assert_eq!(
        (ratings[0]["count"].as_i64(), ratings[0]["average"].as_f64()),
        (Some(2), Some(4.5))
    );
    assert_eq!(ratings[0]["by_score"], json!([0, 0, 0, 1, 1]));

    // 10. The audit log holds every action and read, and its chain verifies — until a row is
    // edited behind the server's back.
    // A party reads the case, which shows the agreement it signed.
    call(&server, &t("p-li"), Method::GET, &base, None, 200).await;
    let log = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/audit?target=case:{id}"),
        None,
        200,
    )
    .await;
    let actions: Vec<&str> = log
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "case.create",
        "session.schedule",
        "invitation.issue",
        "identity.verify",
        "consent.give",
        "warning.acknowledge",
        "session.run",
        "side.move",
        "person.move",
        "minutes.edit",
        "minutes.read",
        "minutes.confirm",
        "agreement.draft",
        "agreement.sign",
        "agreement.read",
        "agreement.download",
        "minutes.download",
        "outcome.record",
        "rating.submit",
        "permission.denied",
        "case.read",
        "recording.start",
        "recording.resume",
        "recording.stop",
    ] {
        assert!(
            actions.contains(&action),
            "{action} not audited: {actions:?}"
        );
    }
    // A read of the case shows the agreement: the entry names the version read; a download
    // names the version and hash served.
    let entries = log.as_array().cloned().unwrap_or_default();
    assert!(
        entries.iter().any(|e| e["action"] == "case.read"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("agreement version "))),
        "{log}"
    );
    assert!(
        entries.iter().any(|e| e["action"] == "agreement.download"
            && e["detail"].as_str().is_some_and(|d| d.len() > 64)),
        "{log}"
    );
    // The mediator's admission over signaling is in the case's record too.
    assert!(
        log.as_array()
            .into_iter()
            .flatten()
            .any(|e| e["action"] == "person.move"
                && e["actor"] == MEDIATOR
                && e["detail"] == "lawyer-qian to joint"),
        "{log}"
    );
    let ok = call(&server, &admin, Method::GET, "/api/audit/verify", None, 200).await;
    assert_eq!(ok["problems"], json!([]), "{ok}");
    let victim = log[5]["id"].as_i64().expect("id");
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&server.config.database_url())
        .await
        .expect("database");
    sqlx::query("UPDATE audit_log SET detail = 'p-zhang passed=false' WHERE id = $1")
        .bind(victim)
        .execute(&pool)
        .await
        .expect("tamper");
    pool.close().await;
    let broken = call(&server, &admin, Method::GET, "/api/audit/verify", None, 200).await;
    assert_eq!(
        broken["problems"][0]["id"].as_i64(),
        Some(victim),
        "{broken}"
    );
    server.stop().await;
}

/// The HTTP request that exercises `action` as `person` (for self-scoped actions, on their own
/// behalf), or `None` for actions checked on signaling (grants; see below).
fn request_for(
    action: Action,
    case: &str,
    person: &str,
) -> Option<(Method, String, Option<Value>)> {
    let base = format!("/api/cases/{case}");
    let s1 = format!("{base}/sessions/1");
    let r = |m: Method, path: String, body: Option<Value>| Some((m, path, body));
    match action {
        Action::MediaPublish
        | Action::MediaSubscribe
        | Action::RoomModerate
        | Action::RecordingControl => None,
        Action::ControlApi => r(Method::GET, "/api/rooms".into(), None),
        Action::AuditRead => r(Method::GET, "/api/audit".into(), None),
        Action::RecordingRead => r(Method::GET, "/api/recordings".into(), None),
        Action::CaseCreate => r(
            Method::POST,
            "/api/cases".into(),
            Some(
                json!({"number": "", "case_type": "", "claim_amount": 0, "stage": "simple", "mediator": {"id": person, "name": "x", "role": "mediator"}, "members": []}),
            ),
        ),
        Action::CaseList => r(Method::GET, "/api/cases".into(), None),
        Action::CaseRead => r(Method::GET, base, None),
        Action::CaseEventsRead => r(Method::GET, format!("{base}/events"), None),
        Action::MemberAdd => r(
            Method::POST,
            format!("{base}/members"),
            Some(json!({"id": "p-zhang", "name": "dup", "role": "party", "side": "applicant"})),
        ),
        Action::SessionSchedule => r(
            Method::POST,
            format!("{base}/sessions"),
            Some(json!({"scheduled_at": 0})),
        ),
        Action::InvitationIssue => r(
            Method::POST,
            format!("{s1}/invitations"),
            Some(json!({"person": "nobody"})),
        ),
        Action::SessionRun => r(Method::POST, format!("{s1}/lobby"), None),
        Action::IdentityVerify => r(
            Method::PUT,
            format!("{s1}/members/nobody/identity"),
            Some(json!({"method": "offline", "passed": true})),
        ),
        Action::ConsentGive => r(
            Method::PUT,
            format!("{s1}/members/{person}/consents"),
            Some(json!({"subject": "recording", "given": true})),
        ),
        Action::WarningAcknowledge => {
            r(Method::PUT, format!("{s1}/members/{person}/warning"), None)
        }
        Action::SideMove => r(
            Method::POST,
            format!("{s1}/sides/applicant/move"),
            Some(json!({"private": true})),
        ),
        Action::MinutesEdit => r(
            Method::PUT,
            format!("{s1}/minutes"),
            Some(json!({"base_revision": 99, "text": "x"})),
        ),
        Action::MinutesRead => r(Method::GET, format!("{s1}/minutes"), None),
        Action::MinutesConfirm => r(
            Method::PUT,
            format!("{s1}/members/{person}/minutes-confirmation"),
            Some(json!({"revision": 99})),
        ),
        Action::AgreementDraft => r(
            Method::POST,
            format!("{base}/agreement/versions"),
            Some(json!({})),
        ),
        Action::AgreementRead => r(Method::GET, format!("{base}/agreement"), None),
        Action::AgreementSign => r(
            Method::PUT,
            format!("{base}/agreement/signatures/{person}"),
            Some(json!({"version": 9, "sha256": "x"})),
        ),
        Action::AgreementRefuse => r(
            Method::PUT,
            format!("{base}/agreement/refusals/{person}"),
            Some(json!({"version": 9})),
        ),
        Action::OutcomeRecord => r(
            Method::POST,
            format!("{base}/outcome"),
            Some(json!({"result": "termination", "ground": 99})),
        ),
        Action::DeadlineChange => r(
            Method::POST,
            format!("{base}/deadline/extensions"),
            Some(json!({"days": 0})),
        ),
        Action::RatingSubmit => r(
            Method::PUT,
            format!("{s1}/members/{person}/rating"),
            Some(json!({"score": 9})),
        ),
        Action::RatingRead => r(Method::GET, "/api/ratings/mediators".into(), None),
        Action::ConfirmationApply => r(
            Method::PUT,
            format!("{base}/members/{person}/confirmation-application"),
            None,
        ),
        Action::ConfirmationQueue => r(Method::GET, "/api/confirmation/outbox".into(), None),
    }
}

async fn every_cell_of_the_permission_matrix_is_enforced(backend: Backend) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    // Two cases; everyone below is a member of case A only.
    let a = call(
        &server,
        &staff,
        Method::POST,
        "/api/cases",
        Some(new_case("A-1", "simple")),
        201,
    )
    .await;
    let b = call(
        &server,
        &staff,
        Method::POST,
        "/api/cases",
        Some(new_case("B-1", "simple")),
        201,
    )
    .await;
    let (a, b) = (
        a["id"].as_str().expect("a").to_string(),
        b["id"].as_str().expect("b").to_string(),
    );
    for (person, role) in [("judge-sun", "judge"), ("obs-qian", "observer")] {
        call(
            &server,
            &staff,
            Method::POST,
            &format!("/api/cases/{a}/members"),
            Some(json!({"id": person, "name": person, "role": role})),
            200,
        )
        .await;
    }
    let mut rooms = HashMap::new();
    for case in [&a, &b] {
        let v = call(
            &server,
            &staff,
            Method::POST,
            &format!("/api/cases/{case}/sessions"),
            Some(json!({"scheduled_at": 0})),
            200,
        )
        .await;
        rooms.insert(
            case.clone(),
            v["sessions"][0]["room"].as_str().expect("room").to_string(),
        );
    }
    let people = [
        (MEDIATOR, Role::Mediator),
        ("p-zhang", Role::Party),
        ("lawyer-zhao", Role::Agent),
        ("judge-sun", Role::Judge),
        ("obs-qian", Role::Observer),
        ("ops-admin", Role::Admin),
    ];
    let token_in = |case: &str, person: &str, role: Role| match role {
        Role::Admin => server.admin_token.clone(),
        _ => server.token(&rooms[case], person, role),
    };
    let mut cells = 0;
    for rule in MATRIX {
        for (person, role) in people {
            let Some((method, path, body)) = request_for(rule.action, &a, person) else {
                // Signaling actions are grants; their defaults come from this matrix.
                let grant_of = match rule.action {
                    Action::MediaPublish => tiaojie_domain::Grant::Publish,
                    Action::MediaSubscribe => tiaojie_domain::Grant::Subscribe,
                    Action::RoomModerate => tiaojie_domain::Grant::Moderate,
                    _ => tiaojie_domain::Grant::Record,
                };
                assert_eq!(
                    tiaojie_domain::permission::default_grants(role).contains(&grant_of),
                    permission::role_may(role, rule.action),
                    "{} {role}",
                    rule.name
                );
                cells += 1;
                continue;
            };
            // A mediator's case-level work is done with the staff token, the rest with the
            // session link.
            let token = match (role, rule.action) {
                (Role::Mediator, Action::CaseCreate | Action::CaseList) => staff.clone(),
                _ => token_in(&a, person, role),
            };
            let (status, value) = server
                .api_as(&token, method.clone(), &path, body.clone())
                .await;
            let allowed = permission::role_may(role, rule.action);
            assert_eq!(
                status == 403,
                !allowed,
                "{} as {role}: {method} {path} -> {status} {value}",
                rule.name
            );
            cells += 1;
            // The same request with a link to the other case: never a member of case A.
            // (Recordings are listed per room token, not per case: a token for another case's
            // room lists that room's recordings; reading another room's is refused in
            // tests/tests/recording.rs.)
            if allowed
                && role != Role::Admin
                && rule.scope != Scope::Any
                && rule.action != Action::RecordingRead
            {
                let other = token_in(&b, person, role);
                let (status, value) = server
                    .api_as(&other, method.clone(), &path, body.clone())
                    .await;
                assert_eq!(
                    status, 403,
                    "{} as {role} of another case: {value}",
                    rule.name
                );
            }
            // Self-scoped: never on someone else's behalf.
            if allowed && rule.scope == Scope::OwnSelf {
                let (m, path, body) = request_for(rule.action, &a, "p-li").expect("http action");
                let (status, value) = server.api_as(&token, m, &path, body).await;
                assert_eq!(status, 403, "{} as {role} for p-li: {value}", rule.name);
            }
        }
    }
    assert_eq!(cells, MATRIX.len() * people.len());
    // Malformed bodies are refused with a clear error and change nothing.
    for body in [json!({"number": "X"}), json!({"extra": 1})] {
        let (status, value) = server
            .api_as(&staff, Method::POST, "/api/cases", Some(body))
            .await;
        assert_eq!(status, 422, "{value}");
        assert_eq!(value["error"]["code"], "invalid_request", "{value}");
    }
    let response = server
        .http
        .post(format!(
            "http://{}/api/cases/{a}/agreement/versions",
            server.addr
        ))
        .bearer_auth(&staff)
        .header("content-type", "application/json")
        .body("{\"text\": ")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 400);
    let (status, _) = server
        .api_as(&staff, Method::GET, "/api/cases/no-such-case", None)
        .await;
    assert_eq!(status, 404);
    // A forged token and an expired-looking one are refused before any rule.
    let (status, _) = server
        .api_as("not-a-token", Method::GET, &format!("/api/cases/{a}"), None)
        .await;
    assert_eq!(status, 401);
    server.stop().await;
}

async fn time_limits_follow_the_clock_and_overdue_cases_are_flagged(backend: Backend) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    let admin = server.admin_token.clone();
    let case = call(
        &server,
        &staff,
        Method::POST,
        "/api/cases",
        Some(new_case("T-1", "simple")),
        201,
    )
    .await;
    let id = case["id"].as_str().expect("id").to_string();
    assert_eq!(case["time_limit"]["limit_days"], 7);
    let day = 86_400_000_i64;
    let overdue = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().filter(|c| c["overdue"] == true).count())
    };
    assert_eq!(
        overdue(
            &call(
                &server,
                &admin,
                Method::GET,
                "/api/cases?overdue=true",
                None,
                200
            )
            .await
        ),
        Some(0)
    );

    server.clock().advance(8 * day);
    let list = call(
        &server,
        &admin,
        Method::GET,
        "/api/cases?overdue=true",
        None,
        200,
    )
    .await;
    assert_eq!(overdue(&list), Some(1));
    assert_eq!(list[0]["id"], id.as_str());
    let v = call(
        &server,
        &staff,
        Method::GET,
        &format!("/api/cases/{id}"),
        None,
        200,
    )
    .await;
    assert_eq!(v["time_limit"]["overdue"], true);
    let (_, metrics) = server.api(Method::GET, "/metrics", None).await;
    assert!(
        metrics
            .as_str()
            .is_some_and(|m| m.lines().any(|l| l == "tiaojie_cases_overdue 1")),
        "{metrics}"
    );
    // A mediator lists their own cases only.
    let other = server.staff_token("med-other", Role::Mediator);
    assert_eq!(
        call(&server, &other, Method::GET, "/api/cases", None, 200).await,
        json!([])
    );

    // Extended by both parties' consent: the mediator proposes, each party agrees for itself;
    // the last agreement extends the limit.
    let v = call(
        &server,
        &staff,
        Method::POST,
        &format!("/api/cases/{id}/sessions"),
        Some(json!({"scheduled_at": 0})),
        200,
    )
    .await;
    let room = v["sessions"][0]["room"].as_str().expect("room").to_string();
    let (zhang, li) = (
        server.token(&room, "p-zhang", Role::Party),
        server.token(&room, "p-li", Role::Party),
    );
    call(
        &server,
        &staff,
        Method::POST,
        &format!("/api/cases/{id}/deadline/extensions"),
        Some(json!({"days": 45})),
        400,
    )
    .await;
    call(
        &server,
        &staff,
        Method::POST,
        &format!("/api/cases/{id}/deadline/extensions"),
        Some(json!({"days": 5})),
        200,
    )
    .await;
    let v = call(
        &server,
        &zhang,
        Method::PUT,
        &format!("/api/cases/{id}/members/p-zhang/extension-consent"),
        Some(json!({"agreed": true})),
        200,
    )
    .await;
    assert_eq!(
        (
            v["time_limit"]["overdue"].as_bool(),
            v["pending_extension"]["days"].as_i64()
        ),
        (Some(true), Some(5))
    );
    call(
        &server,
        &li,
        Method::PUT,
        &format!("/api/cases/{id}/members/p-zhang/extension-consent"),
        Some(json!({"agreed": true})),
        403,
    )
    .await;
    let v = call(
        &server,
        &li,
        Method::PUT,
        &format!("/api/cases/{id}/members/p-li/extension-consent"),
        Some(json!({"agreed": true})),
        200,
    )
    .await;
    assert_eq!(v["time_limit"]["extension_days"], 5);
    assert_eq!(v["time_limit"]["overdue"], false);
    assert_eq!(
        overdue(
            &call(
                &server,
                &admin,
                Method::GET,
                "/api/cases?overdue=true",
                None,
                200
            )
            .await
        ),
        Some(0)
    );

    // An appraisal pauses the clock: ten more days pass without becoming late.
    call(
        &server,
        &staff,
        Method::POST,
        &format!("/api/cases/{id}/deadline/pause"),
        Some(json!({"pause": true, "reason": "司法鉴定"})),
        200,
    )
    .await;
    server.clock().advance(10 * day);
    let v = call(
        &server,
        &staff,
        Method::GET,
        &format!("/api/cases/{id}"),
        None,
        200,
    )
    .await;
    assert_eq!(
        (
            v["time_limit"]["paused"].as_bool(),
            v["time_limit"]["overdue"].as_bool()
        ),
        (Some(true), Some(false))
    );
    call(
        &server,
        &staff,
        Method::POST,
        &format!("/api/cases/{id}/deadline/pause"),
        Some(json!({"pause": false})),
        200,
    )
    .await;
    server.clock().advance(5 * day);
    assert_eq!(
        overdue(
            &call(
                &server,
                &admin,
                Method::GET,
                "/api/cases?overdue=true",
                None,
                200
            )
            .await
        ),
        Some(1)
    );

    // Ground 1 is recorded as success, ground 7 only by a party's own refusal.
    for ground in [1, 7] {
        call(
            &server,
            &staff,
            Method::POST,
            &format!("/api/cases/{id}/outcome"),
            Some(json!({"result": "termination", "ground": ground})),
            400,
        )
        .await;
    }
    // A termination stops the clock for good.
    call(
        &server,
        &staff,
        Method::POST,
        &format!("/api/cases/{id}/outcome"),
        Some(json!({"result": "termination", "ground": 6, "note": "期满未同意延长"})),
        200,
    )
    .await;
    assert_eq!(
        overdue(
            &call(
                &server,
                &admin,
                Method::GET,
                "/api/cases?overdue=true",
                None,
                200
            )
            .await
        ),
        Some(0)
    );
    let v = call(
        &server,
        &staff,
        Method::GET,
        &format!("/api/cases/{id}"),
        None,
        200,
    )
    .await;
    assert_eq!(v["outcome"]["ground"], 6);
    server.stop().await;
}

async fn concurrent_commands_on_one_case_all_land_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    let case = call(
        &server,
        &staff,
        Method::POST,
        "/api/cases",
        Some(new_case("C-1", "simple")),
        201,
    )
    .await;
    let id = case["id"].as_str().expect("id").to_string();
    call(
        &server,
        &staff,
        Method::POST,
        &format!("/api/cases/{id}/sessions"),
        Some(json!({"scheduled_at": 0})),
        200,
    )
    .await;
    call(
        &server,
        &staff,
        Method::POST,
        &format!("/api/cases/{id}/sessions/1/lobby"),
        None,
        200,
    )
    .await;
    let admin = server.admin_token.clone();
    let before = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/cases/{id}/events"),
        None,
        200,
    )
    .await;
    let before = before.as_array().map_or(0, Vec::len);
    // Twelve commands on one case at once: each decides on the state it read; the losers of
    // each race decide again on the new state. None is lost, none applied twice.
    let people = ["p-zhang", "p-li", "lawyer-zhao"];
    let calls = (0..12).map(|i| {
        let (server, staff, id) = (&server, &staff, &id);
        async move {
            let person = people[i % 3];
            let body = json!({"method": "offline", "passed": true, "note": format!("round {i}")});
            server
                .api_as(
                    staff,
                    Method::PUT,
                    &format!("/api/cases/{id}/sessions/1/members/{person}/identity"),
                    Some(body),
                )
                .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    assert!(
        results.iter().all(|(status, _)| *status == 200),
        "{results:?}"
    );
    let events = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/cases/{id}/events"),
        None,
        200,
    )
    .await;
    let events = events.as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), before + 12);
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    let mut notes: Vec<String> = events
        .iter()
        .filter(|e| e["event"]["kind"] == "identity_verified")
        .filter_map(|e| e["event"]["note"].as_str().map(str::to_string))
        .collect();
    notes.sort();
    notes.dedup();
    assert_eq!(notes.len(), 12, "every command landed once");
    server.stop().await;
}

async fn a_refusal_to_sign_ends_the_mediation_and_a_failure_is_referred_for_filing(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    let mut ids = Vec::new();
    let mut rooms = Vec::new();
    for number in ["R-1", "F-1"] {
        let case = call(
            &server,
            &staff,
            Method::POST,
            "/api/cases",
            Some(new_case(number, "ordinary")),
            201,
        )
        .await;
        let id = case["id"].as_str().expect("id").to_string();
        let v = call(
            &server,
            &staff,
            Method::POST,
            &format!("/api/cases/{id}/sessions"),
            Some(json!({"scheduled_at": 0})),
            200,
        )
        .await;
        rooms.push(v["sessions"][0]["room"].as_str().expect("room").to_string());
        ids.push(id);
    }

    // Case R-1: a version is drafted, one party signs, the other refuses (ODR-Med 25(7)).
    let base = format!("/api/cases/{}", ids[0]);
    let party = |who: &str| server.token(&rooms[0], who, Role::Party);
    call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/sessions/1/lobby"),
        None,
        200,
    )
    .await;
    for person in ["p-zhang", "p-li"] {
        call(
            &server,
            &staff,
            Method::PUT,
            &format!("{base}/sessions/1/members/{person}/identity"),
            Some(json!({"method": "face_recognition", "passed": true})),
            200,
        )
        .await;
    }
    let v1 = call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/agreement/versions"),
        Some(json!({"terms": "一、被申请人于2026年12月31日前支付四万元。"})),
        200,
    )
    .await;
    let sha = v1["versions"][0]["sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    let signature = json!({"version": 1, "sha256": sha});
    call(
        &server,
        &party("p-zhang"),
        Method::PUT,
        &format!("{base}/agreement/signatures/p-zhang"),
        Some(signature.clone()),
        200,
    )
    .await;
    // Nobody refuses for another party.
    call(
        &server,
        &party("p-zhang"),
        Method::PUT,
        &format!("{base}/agreement/refusals/p-li"),
        Some(json!({"version": 1, "reason": "x"})),
        403,
    )
    .await;
    let ended = call(
        &server,
        &party("p-li"),
        Method::PUT,
        &format!("{base}/agreement/refusals/p-li"),
        Some(json!({"version": 1, "reason": "金额过高"})),
        200,
    )
    .await;
    assert_eq!(ended["outcome"]["result"], "termination", "{ended}");
    assert_eq!(ended["outcome"]["ground"], 7, "{ended}");
    assert_eq!(ended["sessions"][0]["phase"], "ended", "{ended}");
    // A follow-up link for the ended session, valid 30 days, opens the case (not the room).
    let follow_up = call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/sessions/1/invitations"),
        Some(json!({"person": "p-li", "ttl_secs": 30 * 24 * 3600})),
        200,
    )
    .await;
    let token = follow_up["token"].as_str().expect("token").to_string();
    let seen = call(
        &server,
        &token,
        Method::GET,
        "/api/cases/current",
        None,
        200,
    )
    .await;
    assert_eq!(seen["outcome"]["ground"], 7, "{seen}");
    let mut c = server.connect().await;
    let closed = c.join(&rooms[0], &token).await;
    assert_eq!(closed["code"], "room_closed", "{closed}");
    // The mediation is over: nothing more is signed or drafted.
    call(
        &server,
        &staff,
        Method::PUT,
        &format!("{base}/agreement/signatures/{MEDIATOR}"),
        Some(signature),
        409,
    )
    .await;

    // Case F-1: a failure needs the mediator's reasons and refers the case for filing.
    let base = format!("/api/cases/{}", ids[1]);
    let empty = call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/outcome"),
        Some(json!({"result": "failure", "reason": " "})),
        400,
    )
    .await;
    assert_eq!(empty["error"]["code"], "invalid_request", "{empty}");
    let failed = call(
        &server,
        &staff,
        Method::POST,
        &format!("{base}/outcome"),
        Some(json!({"result": "failure", "reason": "双方对赔偿金额分歧较大"})),
        200,
    )
    .await;
    assert_eq!(failed["outcome"]["result"], "failure", "{failed}");
    assert_eq!(failed["outcome"]["reason"], "双方对赔偿金额分歧较大");
    let log = call(
        &server,
        &server.admin_token,
        Method::GET,
        &format!("/api/audit?target=case:{}", ids[0]),
        None,
        200,
    )
    .await;
    assert!(
        log.as_array()
            .into_iter()
            .flatten()
            .any(|e| e["action"] == "agreement.refuse" && e["actor"] == "p-li"),
        "{log}"
    );
    server.stop().await;
}

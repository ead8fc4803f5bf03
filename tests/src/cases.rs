//! A case to test with: the form of one (a mediator, two parties, an applicant's lawyer), a
//! checked API call, and a case opened with its first session and everyone's link.

use crate::TestServer;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The mediator of [`new_case`].
pub const MEDIATOR: &str = "med-wang";

/// The form of a case numbered `number` at `stage`: 王调解 mediates 张三 (applicant, with
/// 赵律师) and 李四 (respondent).
pub fn new_case(number: &str, stage: &str) -> Value {
    json!({
        "number": number,
        "case_type": "买卖合同纠纷",
        "claim_amount": 5_000_000,
        "stage": stage,
        "mediator": {"id": MEDIATOR, "name": "王调解", "role": "mediator"},
        "members": [
            {"id": "p-zhang", "name": "张三", "role": "party", "side": "applicant"},
            {"id": "p-li", "name": "李四", "role": "party", "side": "respondent"},
            {"id": "lawyer-zhao", "name": "赵律师", "role": "agent", "side": "applicant",
             "represents": "p-zhang"},
        ],
    })
}

/// Calls the API with `token` and asserts the status.
pub async fn call(
    server: &TestServer,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
    want: u16,
) -> Value {
    let (status, value) = server.api_as(token, method.clone(), path, body).await;
    assert_eq!(status, want, "{method} {path}: {value}");
    value
}

/// Opens a case, schedules its first session and issues everyone's link: (the case's API
/// path, the session's room, each person's token).
pub async fn case_with_links(
    server: &TestServer,
    staff: &str,
    number: &str,
) -> (String, String, HashMap<&'static str, String>) {
    let case = call(
        server,
        staff,
        Method::POST,
        "/api/cases",
        Some(new_case(number, "pre_filing")),
        201,
    )
    .await;
    let base = format!("/api/cases/{}", case["id"].as_str().expect("id"));
    let case = call(
        server,
        staff,
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
    let mut tokens = HashMap::new();
    for person in [MEDIATOR, "p-zhang", "p-li", "lawyer-zhao"] {
        tokens.insert(person, invite(server, staff, &base, 1, person).await);
    }
    (base, room, tokens)
}

/// A fresh link for `person` to session `n` of the case at `base`: its token.
pub async fn invite(server: &TestServer, staff: &str, base: &str, n: u32, person: &str) -> String {
    let inv = call(
        server,
        staff,
        Method::POST,
        &format!("{base}/sessions/{n}/invitations"),
        Some(json!({"person": person})),
        200,
    )
    .await;
    inv["token"].as_str().expect("token").to_string()
}

//! Actions without their audit entry after a crash (issue 17): a case command committed and its
//! entry was written afterwards, so a `kill -9` in between left cases without `case.create` and
//! sessions without `session.schedule` while `tiaojie audit verify` said the log was intact.
//! Now the entry is in the action's transaction and verify checks that every case event has its
//! entry. The server runs as a real process, crashed at the point between the two and killed at
//! random moments under load; after each restart the log is whole.

use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tiaojie_domain::Role;
use tiaojie_tests::cases::{MEDIATOR, new_case};
use tiaojie_tests::child::{ServerProcess, Tokens};

const SECRET: &str = "audit-crash-secret-0123456789abcdef-xyz";

fn bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|t| Some(t.parent()?.parent()?.join("tiaojie")))
        .filter(|b| b.exists())
        .expect("target/debug/tiaojie (cargo test --workspace builds it)")
}

async fn api(
    server: &ServerProcess,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("http://{}{path}", server.addr))
        .bearer_auth(token)
        .timeout(Duration::from_secs(10));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

/// What `tiaojie audit verify` reports, and the actions logged on cases.
async fn audit_of(server: &ServerProcess, admin: &str) -> (Value, Vec<(String, String)>) {
    let (status, report) = api(server, admin, Method::GET, "/api/audit/verify", None)
        .await
        .expect("verify answers");
    assert_eq!(status, 200, "{report}");
    // The whole log, a page at a time.
    let mut actions = Vec::new();
    let mut after = 0;
    loop {
        let path = format!("/api/audit?limit=1000&after={after}");
        let (_, page) = api(server, admin, Method::GET, &path, None)
            .await
            .expect("audit answers");
        let page = page.as_array().cloned().unwrap_or_default();
        let Some(last) = page.last().and_then(|e| e["id"].as_i64()) else {
            break;
        };
        after = last;
        actions.extend(page.iter().filter_map(|e| {
            Some((
                e["action"].as_str()?.to_string(),
                e["target"].as_str()?.to_string(),
            ))
        }));
    }
    (report, actions)
}

/// Opens cases and schedules their sessions until the server stops answering.
async fn keep_opening(server: &ServerProcess, staff: &str, tag: &str) {
    for i in 0.. {
        let number = format!("(2026)京0105民调{tag}{i}号");
        let Some((201, case)) = api(
            server,
            staff,
            Method::POST,
            "/api/cases",
            Some(new_case(&number, "pre_filing")),
        )
        .await
        else {
            return;
        };
        let id = case["id"].as_str().unwrap_or_default().to_string();
        let schedule = json!({"scheduled_at": 1_800_000_000_000_i64});
        if api(
            server,
            staff,
            Method::POST,
            &format!("/api/cases/{id}/sessions"),
            Some(schedule),
        )
        .await
        .is_none()
        {
            return;
        }
    }
}

fn data_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tiaojie-audit-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn start(dir: &Path, env: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::start_in(&bin(), dir, SECRET, env).expect("server starts")
}

/// Crashed exactly between the action's commit and where its entry used to be written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_right_after_a_case_action_commits_leaves_its_audit_entry() {
    let tokens = Tokens::new(SECRET).expect("keys");
    let (staff, admin) = (
        tokens.issue_staff(MEDIATOR, Role::Mediator),
        tokens.issue_admin("ops"),
    );
    let dir = data_dir("point");
    let server = start(&dir, &[("TIAOJIE_FAILPOINT", "server.case_committed")]);
    let crashed = api(
        &server,
        &staff,
        Method::POST,
        "/api/cases",
        Some(new_case("(2026)京0105民调1号", "pre_filing")),
    )
    .await;
    assert!(
        crashed.is_none(),
        "the failpoint aborts the server: {crashed:?}"
    );
    server.kill();
    let server = start(&dir, &[]);
    let (report, actions) = audit_of(&server, &admin).await;
    assert_eq!(report["problems"], json!([]), "{report}");
    assert!(
        actions.iter().any(|(a, _)| a == "case.create"),
        "{actions:?}"
    );
    server.stop();
}

/// SIGKILLs at random moments while cases are opened and sessions scheduled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_under_load_leave_every_action_with_its_audit_entry() {
    let tokens = Tokens::new(SECRET).expect("keys");
    let (staff, admin) = (
        tokens.issue_staff(MEDIATOR, Role::Mediator),
        tokens.issue_admin("ops"),
    );
    let dir = data_dir("random");
    for trial in 0..4u64 {
        let server = start(&dir, &[]);
        let load = {
            let (addr, staff) = (server.addr.clone(), staff.clone());
            tokio::spawn(async move {
                keep_opening(&ServerProcess::attach(&addr), &staff, &format!("{trial}-")).await
            })
        };
        // A different moment each trial: 150 ms to 600 ms into the load.
        tokio::time::sleep(Duration::from_millis(150 + (trial * 7919) % 450)).await;
        server.kill();
        let _ = load.await;
    }
    let server = start(&dir, &[]);
    let (report, actions) = audit_of(&server, &admin).await;
    assert_eq!(report["problems"], json!([]), "{report}");
    let mut cases = Vec::new();
    loop {
        let path = format!("/api/cases?limit=500&offset={}", cases.len());
        let (_, page) = api(&server, &admin, Method::GET, &path, None)
            .await
            .expect("cases");
        let page = page.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        cases.extend(page);
    }
    assert!(!cases.is_empty(), "the load opened cases");
    for case in &cases {
        let target = format!("case:{}", case["id"].as_str().unwrap_or_default());
        assert!(
            actions
                .iter()
                .any(|(a, t)| a == "case.create" && *t == target),
            "{target} has no case.create entry"
        );
    }
    server.stop();
}

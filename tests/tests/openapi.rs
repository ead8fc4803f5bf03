//! The OpenAPI document is true to the API: real responses — successes and every kind of error
//! — are checked against the document the server serves (`/api/openapi.json`): the status is
//! documented for the operation, the body is the documented JSON (schema, required fields,
//! types, enums such as the error codes), and errors are never plain text.

use reqwest::Method;
use serde_json::{Value, json};
use tiaojie_domain::Role;
use tiaojie_tests::cases::{MEDIATOR, new_case};
use tiaojie_tests::{Backend, TestServer};

/// The document, and checks of values against its schemas.
struct Doc(Value);

impl Doc {
    /// The operation `method path` matches, with its template.
    fn operation(&self, method: &Method, path: &str) -> Option<(String, &Value)> {
        let path = path.split('?').next().unwrap_or(path);
        let wanted: Vec<&str> = path.split('/').collect();
        let paths = self.0["paths"].as_object()?;
        // Literal segments beat parameters (`/cases/current` before `/cases/{case}`).
        let mut best: Option<(usize, String, &Value)> = None;
        for (template, item) in paths {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != wanted.len() {
                continue;
            }
            let fits = parts
                .iter()
                .zip(&wanted)
                .all(|(t, w)| t == w || (t.starts_with('{') && t.ends_with('}')));
            let literal = parts.iter().filter(|t| !t.starts_with('{')).count();
            if let (true, Some(op)) = (fits, item.get(method.as_str().to_lowercase()))
                && best.as_ref().is_none_or(|(n, _, _)| literal > *n)
            {
                best = Some((literal, template.clone(), op));
            }
        }
        best.map(|(_, t, op)| (t, op))
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => self
                .0
                .pointer(r.trim_start_matches('#'))
                .map_or(schema, |s| self.resolve(s)),
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
        let schema = self.resolve(schema);
        for part in schema["allOf"].as_array().into_iter().flatten() {
            self.check(part, value, at, problems);
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(options) = schema[key].as_array() {
                let fits = options.iter().any(|o| {
                    let mut p = Vec::new();
                    self.check(o, value, at, &mut p);
                    p.is_empty()
                });
                if !fits {
                    problems.push(format!("{at}: matches none of {key}: {value}"));
                }
            }
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            problems.push(format!("{at}: {value} is not one of {allowed:?}"));
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() {
            let kind = match value {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            };
            let ok = types.contains(&kind) || (kind == "integer" && types.contains(&"number"));
            if !ok {
                problems.push(format!("{at}: a {kind}, documented as {types:?}"));
                return;
            }
        }
        if let Value::Object(object) = value {
            for field in schema["required"].as_array().into_iter().flatten() {
                if let Some(name) = field.as_str()
                    && !object.contains_key(name)
                {
                    problems.push(format!("{at}: required `{name}` is missing"));
                }
            }
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    if let Some(v) = object.get(name) {
                        self.check(property, v, &format!("{at}.{name}"), problems);
                    }
                }
            }
        }
        if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
            for (i, v) in items.iter().enumerate() {
                self.check(item, v, &format!("{at}[{i}]"), problems);
            }
        }
    }
}

/// One request as a client sends it: token, method, path, body, content type.
struct Call<'a> {
    token: Option<&'a str>,
    method: Method,
    path: String,
    body: Option<String>,
    content_type: &'a str,
}

fn call<'a>(token: Option<&'a str>, method: Method, path: &str, body: Option<Value>) -> Call<'a> {
    Call {
        token,
        method,
        path: path.to_string(),
        body: body.map(|b| b.to_string()),
        content_type: "application/json",
    }
}

/// A request with a body as given, under `content_type`.
fn raw<'a>(
    token: Option<&'a str>,
    method: Method,
    path: &str,
    body: &str,
    content_type: &'a str,
) -> Call<'a> {
    Call {
        token,
        method,
        path: path.to_string(),
        body: Some(body.to_string()),
        content_type,
    }
}

/// Sends `c` and checks its response against the document; returns status and body.
async fn checked(
    server: &TestServer,
    doc: &Doc,
    c: Call<'_>,
    problems: &mut Vec<String>,
) -> (u16, Value) {
    let mut request = server.http.request(
        c.method.clone(),
        format!("http://{}{}", server.addr, c.path),
    );
    if let Some(token) = c.token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = c.body {
        request = request.header("content-type", c.content_type).body(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let json_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    let text = response.text().await.unwrap_or_default();
    let at = format!("{} {} → {status}", c.method, c.path);
    let Some((template, op)) = doc.operation(&c.method, &c.path) else {
        problems.push(format!("{at}: no such operation in the document"));
        return (status, Value::Null);
    };
    let Some(documented) = op["responses"].get(status.to_string()) else {
        problems.push(format!("{at}: status not documented for {template}"));
        return (status, Value::Null);
    };
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    match documented.pointer("/content/application~1json/schema") {
        Some(schema) => {
            if !json_type {
                problems.push(format!("{at}: not JSON: {text:?}"));
            } else {
                doc.check(schema, &body, &at, problems);
            }
        }
        None if status == 204 && !text.is_empty() => {
            problems.push(format!("{at}: a body where none is documented"));
        }
        None => {}
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_success_and_error_match_the_openapi_document() {
    let server =
        TestServer::start_with(Backend::Sqlite, |c| c.api.max_body_bytes = 64 * 1024).await;
    let (_, doc) = server.api(Method::GET, "/api/openapi.json", None).await;
    let doc = Doc(doc);
    let admin = server.admin_token.clone();
    let staff = server.staff_token(MEDIATOR, Role::Mediator);
    let party = server.token("oa-room", "p", Role::Party);
    let (admin, staff, party) = (
        Some(admin.as_str()),
        Some(staff.as_str()),
        Some(party.as_str()),
    );
    let mut problems = Vec::new();
    let mut statuses = std::collections::BTreeSet::new();
    let mut run = async |calls: Vec<Call<'_>>, problems: &mut Vec<String>| {
        let mut last = Value::Null;
        for c in calls {
            let (status, body) = checked(&server, &doc, c, problems).await;
            statuses.insert(status);
            last = body;
        }
        last
    };
    use Method as M;

    // Rooms: created, listed, read; and each way to get it wrong.
    let rooms = vec![
        call(
            admin,
            M::POST,
            "/api/rooms",
            Some(json!({"name": "oa-room"})),
        ),
        call(admin, M::GET, "/api/rooms", None),
        call(admin, M::GET, "/api/rooms/oa-room", None),
        call(admin, M::GET, "/api/rooms/no-such-room", None),
        call(
            admin,
            M::POST,
            "/api/rooms",
            Some(json!({"name": "bad name!"})),
        ),
        call(admin, M::POST, "/api/rooms", Some(json!({"name": 5}))),
        raw(
            admin,
            M::POST,
            "/api/rooms",
            "{not json",
            "application/json",
        ),
        raw(admin, M::POST, "/api/rooms", "name=x", "text/plain"),
        call(
            admin,
            M::POST,
            "/api/rooms",
            Some(json!({"name": "big", "metadata": "x".repeat(70_000)})),
        ),
        call(None, M::GET, "/api/rooms", None),
        call(Some("not-a-token"), M::GET, "/api/rooms", None),
        call(party, M::GET, "/api/rooms", None),
        call(
            admin,
            M::POST,
            "/api/rooms/oa-room/participants/ghost/remove",
            Some(json!({})),
        ),
        call(admin, M::DELETE, "/api/rooms/oa-room/removals/ghost", None),
    ];
    run(rooms, &mut problems).await;
    // Someone present, removed and let back in (204s).
    let mut present = server.connect().await;
    assert_eq!(
        present.join("oa-room", party.unwrap_or_default()).await["type"],
        "joined"
    );
    let removal = vec![
        call(
            admin,
            M::POST,
            "/api/rooms/oa-room/participants/p/remove",
            Some(json!({"reason": "测试"})),
        ),
        call(admin, M::DELETE, "/api/rooms/oa-room/removals/p", None),
    ];
    run(removal, &mut problems).await;

    // A case: opened, read, listed, scheduled, linked; bad path and query parameters.
    let opened = vec![call(
        staff,
        M::POST,
        "/api/cases",
        Some(new_case("(2026)京0105民调9号", "pre_filing")),
    )];
    let case = run(opened, &mut problems).await;
    let base = format!("/api/cases/{}", case["id"].as_str().unwrap_or("missing"));
    let draft = format!("{base}/agreement/versions");
    let cases = vec![
        call(staff, M::GET, &base, None),
        call(staff, M::GET, "/api/cases?limit=1", None),
        call(staff, M::GET, "/api/cases?limit=abc", None),
        call(staff, M::GET, "/api/cases?limit=0", None),
        call(
            staff,
            M::POST,
            &format!("{base}/sessions"),
            Some(json!({"scheduled_at": 1_800_000_000_000_i64})),
        ),
        call(
            staff,
            M::POST,
            &format!("{base}/sessions/1/invitations"),
            Some(json!({"person": "p-li"})),
        ),
        call(
            staff,
            M::POST,
            &format!("{base}/sessions/abc/invitations"),
            Some(json!({"person": "p-li"})),
        ),
        call(
            staff,
            M::POST,
            &format!("{base}/sessions/9/invitations"),
            Some(json!({"person": "p-li"})),
        ),
        call(staff, M::GET, "/api/cases/no-such-case", None),
        call(
            party,
            M::POST,
            "/api/cases",
            Some(new_case("(2026)京0105民调10号", "pre_filing")),
        ),
        call(
            staff,
            M::POST,
            &draft,
            Some(json!({"terms": "k".repeat(20_000), "template": "{{terms}}".repeat(20)})),
        ),
        call(
            staff,
            M::POST,
            &draft,
            Some(json!({"terms": "一、付款。", "template": "{{nope}}"})),
        ),
    ];
    run(cases, &mut problems).await;

    // The audit log and recordings.
    let reads = vec![
        call(admin, M::GET, "/api/audit?limit=5", None),
        call(admin, M::GET, "/api/audit?limit=-1", None),
        call(admin, M::GET, "/api/audit/verify", None),
        call(staff, M::GET, "/api/audit", None),
        call(admin, M::GET, "/api/recordings", None),
        call(admin, M::GET, "/api/recordings/no-such-recording", None),
    ];
    run(reads, &mut problems).await;

    assert!(
        problems.is_empty(),
        "the document is not true to the API:\n{}",
        problems.join("\n")
    );
    for status in [200, 201, 204, 400, 401, 403, 404, 413, 415, 422] {
        assert!(
            statuses.contains(&status),
            "no response with {status} was checked: {statuses:?}"
        );
    }
    server.stop().await;
}

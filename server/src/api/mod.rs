//! The control API: REST + JSON under `/api/`, one module per resource, and its OpenAPI
//! document generated from the handlers it describes (served at `/api/openapi.json`). Every
//! failure is an [`ApiError`] with one JSON shape: `{"error": {"code": "...", "message": "..."}}`.
//!
//! Map (arrows point down; the resources never import each other):
//! - [`rooms`]: admins' room operations and join tokens.
//! - [`recordings`]: recordings by role (every read audited), recording control and policy, the
//!   audit log and its verification.
//! - [`cases`]: the mediation workflow's API (cases, sessions, checks, private rooms, minutes,
//!   agreement, signatures, outcome, time limits, ratings, judicial confirmation).
//! - [`extract`]: who is asking (`Admin`, `Caller`) and extractors whose rejections are API
//!   errors; the page size rule.
//! - [`audit`]: audit entries for reads and admins' acts.
//! - [`error`]: [`ApiError`], the error body, the status of each code, errors counted.
//!
//! Handlers reach live rooms only through the hub's operations, never a room's lock.

pub mod audit;
pub mod cases;
pub mod error;
pub mod extract;
pub mod recordings;
pub mod rooms;

pub use error::{ApiError, ErrorBody, ErrorDetail};

use crate::state::AppState;
use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tiaojie_domain::mediation::Place;
use tiaojie_signaling::protocol::{ErrorCode, ErrorDetails};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The control API's routes, nested under `/api` by the app.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .merge(rooms::routes())
        .merge(recordings::routes())
        .merge(cases::routes())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tiaojie control API",
        description = "Admin operations on rooms, participants, join tokens and recordings, and the mediation workflow (cases, sessions, checks, private rooms, minutes, agreement, signatures, outcome, time limits, ratings). Room operations need a bearer token with the `admin` grant (`tiaojie token create --role admin`). The recordings' reads and the case API follow the permission matrix (docs/permissions.md): a mediator's staff token (no room) for their own cases, a session token (personal join link) for its case, acting only for its own person where the action is personal. Every read and action is audited.",
        version = "1"
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode, ErrorDetails, Place)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document as JSON: what the handlers declare, plus what every request can meet
/// before or around its handler (`document_errors`).
pub fn openapi_document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.merge(rooms::RoomsDoc::openapi());
    doc.merge(recordings::RecordingsDoc::openapi());
    doc.merge(cases::CasesDoc::openapi());
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    document_errors(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Answers any operation may give besides its own: a malformed path or query parameter (400),
/// a missing or bad token (401), a role or grant that does not allow it (403), an unknown
/// resource (404), a failure of the server or its storage (500, 503); with a JSON body also one
/// over the size limit (413), not `application/json` (415) or of the wrong shape (422). Each
/// is an [`ErrorBody`]. And the error codes as they are sent (snake_case).
fn document_errors(doc: &mut serde_json::Value) {
    const ALWAYS: [(&str, &str); 6] = [
        (
            "400",
            "A path or query parameter that is not what this operation takes.",
        ),
        (
            "401",
            "No token, or one that is not valid (the code says how).",
        ),
        ("403", "The token's role or grants do not allow this."),
        ("404", "No such resource."),
        ("500", "The server failed."),
        ("503", "The server's storage is unavailable."),
    ];
    const WITH_BODY: [(&str, &str); 3] = [
        ("413", "The body is over `api.max_body_bytes`."),
        ("415", "The body is not `application/json`."),
        ("422", "The body is JSON of the wrong shape."),
    ];
    let error_body = serde_json::json!({
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    });
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for operation in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for op in operation.values_mut().filter_map(|o| o.as_object_mut()) {
                let with_body = op.contains_key("requestBody");
                let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut())
                else {
                    continue;
                };
                let extra = ALWAYS.iter().chain(WITH_BODY.iter().filter(|_| with_body));
                for (status, description) in extra {
                    responses.entry(*status).or_insert_with(|| {
                        let mut response = error_body.clone();
                        response["description"] = (*description).into();
                        response
                    });
                }
            }
        }
    }
    if let Some(codes) = doc.pointer_mut("/components/schemas/ErrorCode") {
        codes["enum"] = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    }
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi_document(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiaojie_domain::{Grant, Role};

    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_document()).expect("valid JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let paths = doc["paths"].as_object().expect("paths");
        for (path, method) in [
            ("/api/rooms", "get"),
            ("/api/rooms", "post"),
            ("/api/rooms/{room}", "get"),
            ("/api/rooms/{room}/close", "post"),
            ("/api/rooms/{room}/participants", "get"),
            ("/api/rooms/{room}/participations", "get"),
            ("/api/rooms/{room}/participants/{identity}/remove", "post"),
            ("/api/rooms/{room}/participants/{identity}/mute", "post"),
            ("/api/rooms/{room}/participants/{identity}/grants", "put"),
            ("/api/rooms/{room}/participants/{identity}/move", "post"),
            ("/api/rooms/{room}/media", "get"),
            ("/api/tokens", "post"),
            ("/api/recordings", "get"),
            ("/api/recordings/{id}", "get"),
            ("/api/recordings/{id}", "delete"),
            ("/api/recordings/{id}/files/{file}", "get"),
            ("/api/rooms/{room}/recording", "post"),
            ("/api/rooms/{room}/recording-policy", "put"),
            ("/api/audit", "get"),
            ("/api/audit/verify", "get"),
            ("/api/cases", "get"),
            ("/api/cases", "post"),
            ("/api/cases/current", "get"),
            ("/api/cases/{case}", "get"),
            ("/api/cases/{case}/sessions/{n}/start", "post"),
            (
                "/api/cases/{case}/sessions/{n}/members/{person}/identity",
                "put",
            ),
            (
                "/api/cases/{case}/sessions/{n}/members/{person}/consents",
                "put",
            ),
            ("/api/cases/{case}/sessions/{n}/sides/{side}/move", "post"),
            ("/api/cases/{case}/sessions/{n}/minutes", "put"),
            ("/api/cases/{case}/agreement/versions", "post"),
            ("/api/cases/{case}/agreement/signatures/{person}", "put"),
            ("/api/cases/{case}/agreement/document", "get"),
            ("/api/cases/{case}/outcome", "post"),
            ("/api/ratings/mediators", "get"),
            (
                "/api/cases/{case}/members/{person}/confirmation-application",
                "put",
            ),
            (
                "/api/cases/{case}/members/{person}/confirmation-withdrawal",
                "post",
            ),
            ("/api/confirmation/outbox", "get"),
            ("/api/confirmation/outbox/{message}/retry", "post"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing"
            );
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    }

    /// Every `reason` an error's `details` can name, read from the OpenAPI document.
    fn reasons(doc: &serde_json::Value) -> Vec<String> {
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(values) = map
                        .get("properties")
                        .and_then(|p| p.get("reason"))
                        .and_then(|r| r.get("enum"))
                        .and_then(|e| e.as_array())
                    {
                        out.extend(values.iter().filter_map(|r| r.as_str().map(str::to_string)));
                    }
                    map.values().for_each(|v| walk(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(&doc["components"]["schemas"]["ErrorDetails"], &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// People see every refusal in their language: each error code, each reason, each
    /// check, role and action has its words in the web client's table, in Chinese and in
    /// English (the table holds both languages, so each key is there twice).
    #[test]
    fn every_error_a_page_can_get_has_words_in_both_languages() {
        let doc: serde_json::Value = serde_json::from_str(&openapi_document()).expect("valid JSON");
        let reasons = reasons(&doc);
        assert!(reasons.len() > 60, "{reasons:?}");
        for must in [
            "checks_missing",
            "not_their_room",
            "role_not_permitted",
            "room_full",
        ] {
            assert!(reasons.iter().any(|r| r == must), "{must} in {reasons:?}");
        }
        let table = include_str!("../../../web-client/js/i18n.js");
        let twice = |key: String| {
            assert_eq!(
                table.matches(&format!("'{key}':")).count(),
                2,
                "web-client/js/i18n.js needs '{key}' in zh-CN and en"
            );
        };
        for code in ErrorCode::ALL {
            twice(format!("error.{}", code.as_str()));
        }
        for reason in reasons {
            twice(format!("reason.{reason}"));
        }
        use tiaojie_domain::mediation::{Act, Check, Field};
        for check in [
            Check::IdentityNotVerified,
            Check::IdentityFailed,
            Check::WarningNotAcknowledged,
            Check::OnlineMediationNotAnswered,
            Check::OnlineMediationRefused,
            Check::RecordingNotAnswered,
            Check::RecordingNotConsented,
            Check::RecordingReplacesMinutesNotConsented,
        ] {
            twice(format!("check.{}", check.as_str()));
        }
        for act in [
            Act::GiveConsent,
            Act::AcknowledgeWarning,
            Act::BeIdentityChecked,
            Act::ConfirmMinutes,
            Act::Sign,
            Act::RefuseToSign,
            Act::AnswerExtension,
            Act::Rate,
            Act::ApplyForConfirmation,
        ] {
            twice(format!("act.{}", act.as_str()));
        }
        for field in [
            Field::Number,
            Field::CaseType,
            Field::ClaimAmount,
            Field::Name,
            Field::Note,
            Field::Agreement,
            Field::Terms,
            Field::Reason,
            Field::Comment,
            Field::Days,
            Field::Score,
            Field::Ground,
            Field::Minutes,
            Field::Members,
        ] {
            twice(format!("field.{}", field.as_str()));
        }
        for rule in tiaojie_domain::permission::MATRIX {
            twice(format!("action.{}", rule.name));
        }
        for role in Role::ALL {
            twice(format!("role.{role}"));
        }
        for grant in Grant::ALL {
            twice(format!("grant.{}", grant.as_str()));
        }
        for reason in [
            tiaojie_signaling::protocol::reason::CLOSED_BY_ADMIN,
            tiaojie_signaling::protocol::reason::REMOVED_BY_ADMIN,
            tiaojie_signaling::protocol::reason::REMOVED_BY_MODERATOR,
            tiaojie_signaling::protocol::reason::DECLINED,
            tiaojie_signaling::protocol::reason::SESSION_ENDED,
            tiaojie_signaling::protocol::reason::MEDIATION_ENDED,
            tiaojie_signaling::protocol::reason::NOT_SCHEDULED,
            tiaojie_signaling::protocol::reason::SERVER_SHUTDOWN,
        ] {
            twice(format!("close.{reason}"));
        }
    }
}

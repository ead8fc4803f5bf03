//! The judges' page and the JSON API, served inside the court network.
//!
//! - `GET /` — the page (list, an application with its checks, the actions).
//! - `GET /api/applications` — dockets, nearest limit first.
//! - `GET /api/applications/{id}` — docket, application, verification, actions (with the
//!   judges' and applicants' names), and the actions the application's state allows now.
//! - `POST /api/applications/{id}/actions` — a [`CourtAction`] as JSON; a ruling's document
//!   (民事裁定书, PDF) is made with it and goes to the parties with the update.
//! - `GET /api/applications/{id}/ruling` — that document.
//! - `GET /api/refused` — envelopes refused and updates the server refused.
//! - `GET /healthz` — link state and counts (no token).
//!
//! Every `/api` call needs `Authorization: Bearer <a judge's token>`; the judge is recorded.

use crate::store::CourtStoreError;
use crate::{Bridge, now_ms};
use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;
use tiaojie_confirmation::application::Application;
use tiaojie_confirmation::court::{CourtAction, CourtRuleError};

/// The router.
pub fn router(bridge: Arc<Bridge>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(health))
        .route("/api/applications", get(list))
        .route("/api/applications/{id}", get(show))
        .route("/api/applications/{id}/actions", post(act))
        .route("/api/applications/{id}/ruling", get(ruling))
        .route("/api/refused", get(refused))
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
        .with_state(bridge)
}

/// An API error: status and a JSON body `{error, message, details}`: a stable code, English
/// for logs and programs, and the facts (`reason` and its fields) the judges' page says in
/// Chinese.
struct ApiError(StatusCode, &'static str, String, serde_json::Value);

impl ApiError {
    fn plain(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError(status, code, message.into(), serde_json::Value::Null)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.1, "message": self.2, "details": self.3});
        (self.0, Json(body)).into_response()
    }
}

impl From<CourtStoreError> for ApiError {
    fn from(e: CourtStoreError) -> Self {
        let message = e.to_string();
        match e {
            CourtStoreError::NotFound(_) => {
                ApiError::plain(StatusCode::NOT_FOUND, "not_found", message)
            }
            CourtStoreError::Rule(CourtRuleError::Missing(field)) => ApiError(
                StatusCode::BAD_REQUEST,
                "invalid",
                message,
                json!({"reason": "missing", "field": field}),
            ),
            CourtStoreError::Rule(CourtRuleError::Transition { action, status }) => ApiError(
                StatusCode::CONFLICT,
                "court_state",
                message,
                json!({"reason": "transition", "action": action, "status": status}),
            ),
            CourtStoreError::Rule(CourtRuleError::AlreadyExtended) => ApiError(
                StatusCode::CONFLICT,
                "court_state",
                message,
                json!({"reason": "already_extended"}),
            ),
            other => {
                tracing::error!(error = %other, "court store");
                ApiError::plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "storage error",
                )
            }
        }
    }
}

/// The judge a request's token belongs to.
fn judge<'a>(
    bridge: &'a Bridge,
    headers: &HeaderMap,
) -> Result<&'a crate::config::Judge, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bridge
        .config
        .judges
        .iter()
        .find(|j| {
            aws_lc_rs::constant_time::verify_slices_are_equal(
                j.token.as_bytes(),
                presented.as_bytes(),
            )
            .is_ok()
        })
        .ok_or(ApiError::plain(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a judge's token is required",
        ))
}

async fn page() -> Html<&'static str> {
    Html(include_str!("judges.html"))
}

async fn health(State(bridge): State<Arc<Bridge>>) -> Result<Json<serde_json::Value>, ApiError> {
    let (inbox, outbox_pending) = bridge.store.counts().await?;
    Ok(Json(json!({
        "connected": bridge.connected.load(std::sync::atomic::Ordering::Relaxed),
        "inbox": inbox,
        "outbox_pending": outbox_pending,
        "key": bridge.key.public_b64(),
    })))
}

async fn list(
    State(bridge): State<Arc<Bridge>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    judge(&bridge, &headers)?;
    Ok(Json(json!(bridge.store.dockets(now_ms()).await?)))
}

async fn show(
    State(bridge): State<Arc<Bridge>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    judge(&bridge, &headers)?;
    let docket = bridge.store.docket(&id, now_ms()).await?;
    let (envelope, application) = bridge.store.received(&id).await?;
    // Checked again on every view, from the bytes as received: the signature, the text
    // against its hash, and every signature against that hash.
    let text_sha256 = hex(digest(&SHA256, application.agreement.text.as_bytes()).as_ref());
    let has_document = bridge.store.document(&id).await?.is_some();
    let verification = json!({
        "envelope_signature_valid": bridge.server_key.verifies(envelope.payload.as_bytes(), &envelope.signature),
        "agreement_hash_valid": text_sha256 == application.agreement.sha256,
        "agreement_sha256_computed": text_sha256,
        "signatures_on_this_hash": application.signatures.iter().all(|s| s.sha256 == application.agreement.sha256),
        "recordings": application.recordings.len(),
    });
    // People by name: a judge by the court's list, an applicant (a withdrawal) by the
    // application's.
    let name_of = |id: &str| {
        bridge
            .config
            .judges
            .iter()
            .find(|j| j.id == id)
            .map(|j| j.name.clone())
            .or_else(|| {
                application
                    .members
                    .iter()
                    .find(|m| m.id == id)
                    .map(|m| m.name.clone())
            })
            .unwrap_or_else(|| id.to_string())
    };
    let actions: Vec<_> = bridge
        .store
        .actions(&id)
        .await?
        .into_iter()
        .map(|(action, judge, at)| {
            json!({"action": action, "judge": judge, "judge_name": name_of(&judge), "at": at})
        })
        .collect();
    // Only what the application's state allows is offered.
    let now = now_ms();
    let judge_actions = tiaojie_confirmation::court::Docket {
        status: docket.status,
        received_at: docket.received_at,
        accepted_at: docket.accepted_at,
        extended: docket.extended,
    }
    .judge_actions(now);
    Ok(Json(json!({
        "docket": docket,
        "application": application,
        "verification": verification,
        "actions": actions,
        "judge_actions": judge_actions,
        "document": has_document,
    })))
}

async fn act(
    State(bridge): State<Arc<Bridge>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let judge = judge(&bridge, &headers)?;
    let action: CourtAction = serde_json::from_slice(&body)
        .map_err(|e| ApiError::plain(StatusCode::BAD_REQUEST, "invalid", e.to_string()))?;
    if action == CourtAction::Withdraw {
        return Err(ApiError::plain(
            StatusCode::BAD_REQUEST,
            "invalid",
            "only the applicants withdraw, from the internet side",
        ));
    }
    // A ruling goes to the parties with its document, made here in the court network.
    let document = match action.ruling() {
        Some(number_and_text) => {
            let (_, application) = bridge.store.received(&id).await?;
            let ruling = ruling_document(
                &bridge,
                &application,
                matches!(action, CourtAction::Confirm { .. }),
                number_and_text,
                &judge.name,
                now_ms(),
            );
            match (&bridge.fonts, ruling) {
                (Some(fonts), ruling) => {
                    let fonts = fonts.clone();
                    tokio::task::spawn_blocking(move || {
                        tiaojie_documents::render_ruling(&fonts, &ruling)
                    })
                    .await
                    .ok()
                    .and_then(|r| {
                        r.map_err(|e| tracing::error!(error = %e, "ruling document not made"))
                            .ok()
                    })
                    .map(|r| r.bytes)
                }
                (None, _) => None,
            }
        }
        None => None,
    };
    let docket = bridge
        .store
        .act(
            &id,
            &action,
            (&judge.id, &judge.name),
            document.as_deref(),
            &bridge.key,
            now_ms(),
        )
        .await?;
    tracing::info!(application = %id, action = action.name(), judge = %judge.id, "court action");
    bridge.outbox_ready.notify_one();
    Ok(Json(json!(docket)))
}

/// What the 民事裁定书 says, from the application and the ruling.
fn ruling_document(
    bridge: &Bridge,
    application: &Application,
    confirmed: bool,
    (number, text): (&str, &str),
    judge: &str,
    now: i64,
) -> tiaojie_documents::ruling::Ruling {
    let applicants = application
        .applicants
        .iter()
        .map(|a| {
            let member = application.members.iter().find(|m| m.id == a.person);
            let name = member.map_or_else(|| a.person.clone(), |m| m.name.clone());
            let standing = match member.map(|m| m.side.as_str()) {
                Some("applicant") => "申请人",
                Some("respondent") => "被申请人",
                _ => "当事人",
            };
            (name, standing.to_string())
        })
        .collect();
    tiaojie_documents::ruling::Ruling {
        court: bridge.config.court_name().to_string(),
        number: number.to_string(),
        applicants,
        case_number: application.case_number.clone(),
        case_type: application.case_type.clone(),
        applied_at: application
            .applicants
            .iter()
            .map(|a| a.at)
            .max()
            .unwrap_or(now),
        agreement_sha256: application.agreement.sha256.clone(),
        confirmed,
        text: text.to_string(),
        judge: judge.to_string(),
        at: now,
    }
}

/// The ruling's document, as it went to the parties.
async fn ruling(
    State(bridge): State<Arc<Bridge>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    judge(&bridge, &headers)?;
    let Some(pdf) = bridge.store.document(&id).await? else {
        return Err(ApiError::plain(
            StatusCode::NOT_FOUND,
            "not_found",
            "this application has no ruling document",
        ));
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"ruling.pdf\"".to_string(),
            ),
        ],
        pdf,
    )
        .into_response())
}

async fn refused(
    State(bridge): State<Arc<Bridge>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    judge(&bridge, &headers)?;
    let envelopes: Vec<_> = bridge
        .store
        .refusals()
        .await?
        .into_iter()
        .map(|(at, error, payload)| json!({"at": at, "error": error, "payload": payload}))
        .collect();
    let updates: Vec<_> = bridge
        .store
        .refused_updates()
        .await?
        .into_iter()
        .map(|(message_id, reason)| json!({"message_id": message_id, "reason": reason}))
        .collect();
    Ok(Json(json!({"envelopes": envelopes, "updates": updates})))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

//! The control API: REST + JSON under `/api/`, for admins (the `admin` grant); the
//! recordings endpoints (in [`crate::recordings_api`]) also serve a room's mediator or judge.
//!
//! Every handler is annotated for the OpenAPI document served at `/api/openapi.json`, so the
//! document is generated from the code it describes. Every failure is an [`ApiError`] with one
//! JSON shape: `{"error": {"code": "...", "message": "..."}}`.

use crate::app::AppState;
use crate::hub::SignalError;
use crate::protocol::{
    ErrorCode, ErrorDetails, MediaKind, MediaState, ParticipantInfo, SignalReason,
};
use crate::token::{Claims, KeyError, TokenRequest};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;
use tiaojie_domain::clock::now_millis;
use tiaojie_domain::mediation::Place;
use tiaojie_domain::{AuditEntry, Grant, NewRoom, Participation, Role, Room};
use tiaojie_media::ParticipantMediaStats;
use tiaojie_media::sfu::{LayerStats, PublishedTrackStats, ReceivedTrackStats};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The control API's routes, nested under `/api` by the app.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/rooms", get(list_rooms).post(create_room))
        .route("/rooms/{room}", get(get_room))
        .route("/rooms/{room}/close", post(close_room))
        .route("/rooms/{room}/participants", get(list_participants))
        .route("/rooms/{room}/participations", get(list_participations))
        .route(
            "/rooms/{room}/participants/{identity}/remove",
            post(remove_participant),
        )
        .route(
            "/rooms/{room}/removals/{identity}",
            axum::routing::delete(readmit_participant),
        )
        .route(
            "/rooms/{room}/participants/{identity}/mute",
            post(mute_participant),
        )
        .route(
            "/rooms/{room}/participants/{identity}/grants",
            put(update_grants),
        )
        .route(
            "/rooms/{room}/participants/{identity}/move",
            post(move_participant),
        )
        .route("/rooms/{room}/media", get(room_media))
        .route("/tokens", post(create_token))
        .merge(crate::recordings_api::routes())
        .merge(crate::cases_api::routes())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tiaojie control API",
        description = "Admin operations on rooms, participants, join tokens and recordings, and the mediation workflow (cases, sessions, checks, private rooms, minutes, agreement, signatures, outcome, time limits, ratings). Room operations need a bearer token with the `admin` grant (`tiaojie token create --role admin`). The recordings' reads and the case API follow the permission matrix (docs/permissions.md): a mediator's staff token (no room) for their own cases, a session token (personal join link) for its case, acting only for its own person where the action is personal. Every read and action is audited.",
        version = "1"
    ),
    paths(
        list_rooms,
        create_room,
        get_room,
        close_room,
        list_participants,
        list_participations,
        remove_participant,
        readmit_participant,
        mute_participant,
        update_grants,
        move_participant,
        room_media,
        create_token,
        crate::recordings_api::list_recordings,
        crate::recordings_api::get_recording,
        crate::recordings_api::download_file,
        crate::recordings_api::delete_recording,
        crate::recordings_api::control_recording,
        crate::recordings_api::set_policy,
        crate::recordings_api::audit_log,
        crate::recordings_api::verify_audit_log
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode, ErrorDetails, Place, RoomView, NewRoom, Room, CloseRoom, RemoveParticipant, MuteParticipant, UpdateGrants, MoveParticipant, ParticipantMediaStats, PublishedTrackStats, ReceivedTrackStats, LayerStats, MediaState, ParticipantInfo, Participation, Role, Grant, MediaKind, CreateToken, TokenView, crate::recording::RecordingView, crate::recording::RecordingFile, crate::recordings_api::RecordingDetail, crate::recordings_api::ControlRecording, crate::recordings_api::RecordingPolicy, crate::protocol::RecordingStatus, crate::protocol::RecordingState, crate::protocol::RecordAction, tiaojie_domain::RecordingMode, tiaojie_domain::AuditEntry, tiaojie_domain::AuditVerification, tiaojie_domain::AuditProblem)),
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
    doc.merge(crate::cases_api::CasesDoc::openapi());
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

/// Every API error's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code.
    pub code: ErrorCode,
    /// Detail in English, for logs and programs; a page says `code` and `details` in the
    /// person's language instead.
    pub message: String,
    /// The facts (who, which check, which state), tagged by `reason`, where the code alone
    /// does not say them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<ErrorDetails>,
}

/// A failed API call.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    details: Option<ErrorDetails>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: None,
        }
    }

    /// The code this error answers with.
    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

/// The HTTP status for a code.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        TokenMalformed | TokenAlgorithm | TokenBadSignature | TokenExpired | TokenNotYetValid
        | TokenWrongIssuer | TokenWrongRoom | TokenRevoked | Unauthorized => {
            StatusCode::UNAUTHORIZED
        }
        Forbidden => StatusCode::FORBIDDEN,
        RoomNotFound | ParticipantNotFound | NotFound => StatusCode::NOT_FOUND,
        RoomExists | RoomClosed | RoomFull | RecordingState | CaseState | ChecksMissing
        | StaleVersion | CaseExists | RoomsSplit => StatusCode::CONFLICT,
        PayloadTooLarge | MessageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Internal => StatusCode::INTERNAL_SERVER_ERROR,
        MediaUnavailable | DocumentsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<SignalError> for ApiError {
    fn from(e: SignalError) -> Self {
        ApiError {
            status: status_of(e.code),
            code: e.code,
            message: e.message,
            details: e.details,
        }
    }
}

impl From<tiaojie_domain::mediation::RuleError> for ApiError {
    fn from(e: tiaojie_domain::mediation::RuleError) -> Self {
        SignalError::from(e).into()
    }
}

impl From<tiaojie_store::StoreError> for ApiError {
    fn from(e: tiaojie_store::StoreError) -> Self {
        SignalError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// Counts an error by code for `/metrics` on its way out.
pub(crate) fn counted<T>(state: &AppState, result: Result<T, ApiError>) -> Result<T, ApiError> {
    state.hub.metrics.api_requests.fetch_add(1, Relaxed);
    if let Err(e) = &result {
        state.hub.metrics.error(e.code);
    }
    result
}

/// Path parameters whose rejections (a case number that is not a number) are [`ApiError`]s:
/// every answer of the API is the JSON its OpenAPI document describes, never axum's text.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                rejection.body_text(),
            )),
        }
    }
}

/// Query parameters whose rejections are [`ApiError`]s (as [`ApiPath`]).
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                rejection.body_text(),
            )),
        }
    }
}

/// A JSON body whose rejections (bad JSON, too large) are [`ApiError`]s.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(status, ErrorCode::PayloadTooLarge, rejection.body_text());
    }
    // The parser's own words (a field, a variant) are for programs; a page says the reason.
    ApiError {
        status,
        code: ErrorCode::InvalidRequest,
        message: rejection.body_text(),
        details: Some(ErrorDetails::Signal(SignalReason::InvalidBody)),
    }
}

/// The claims of the request's bearer token (any valid token: admin or room).
pub(crate) async fn bearer_claims(
    parts: &Parts,
    state: &AppState,
    what: &str,
) -> Result<Claims, ApiError> {
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                format!("send {what} as 'Authorization: Bearer <token>'"),
            )
        })?;
    Ok(state.hub.authenticate(token, None).await?)
}

/// Writes an audit entry; the read it records does not happen if this fails.
pub(crate) async fn audit(
    state: &AppState,
    claims: &Claims,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), ApiError> {
    let entry = AuditEntry::new(
        now_millis(),
        &claims.sub,
        claims.role.as_str(),
        action,
        target,
        detail,
    );
    state.hub.store().audit(&entry).await?;
    Ok(())
}

/// Writes an audit entry for an admin's act in `room` (on its case in a case's room).
async fn audit_room(
    state: &AppState,
    admin: &Claims,
    room: &str,
    action: &str,
    detail: &str,
) -> Result<(), ApiError> {
    state
        .hub
        .audit_in_room(room, &admin.sub, admin.role.as_str(), action, detail)
        .await?;
    Ok(())
}

/// An authenticated caller holding the `admin` grant.
pub struct Admin(pub Claims);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let result = async {
            let claims = bearer_claims(parts, state, "an admin token").await?;
            if !claims.has(Grant::Admin) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    ErrorCode::Forbidden,
                    "the control API needs the admin grant",
                ));
            }
            Ok(Admin(claims))
        }
        .await;
        if result.is_err() {
            counted(state, result)
        } else {
            result
        }
    }
}

/// A room with its live participant count.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoomView {
    /// The stored room.
    #[serde(flatten)]
    pub room: Room,
    /// Participants present now (connected or within the resume grace period).
    pub participants: usize,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ListRoomsQuery {
    /// Include closed rooms.
    #[serde(default)]
    include_closed: bool,
}

/// List rooms, newest first.
#[utoipa::path(get, path = "/api/rooms", params(ListRoomsQuery), responses(
    (status = 200, body = [RoomView]),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_rooms(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(query): ApiQuery<ListRoomsQuery>,
) -> Result<Json<Vec<RoomView>>, ApiError> {
    let result = async {
        let rooms = state.hub.store().rooms(query.include_closed).await?;
        let counts = state.hub.live_counts().await;
        Ok(Json(
            rooms
                .into_iter()
                .map(|room| RoomView {
                    participants: counts.get(&room.name).copied().unwrap_or(0),
                    room,
                })
                .collect(),
        ))
    }
    .await;
    counted(&state, result)
}

/// Create a room.
#[utoipa::path(post, path = "/api/rooms", request_body = NewRoom, responses(
    (status = 201, body = RoomView),
    (status = 400, body = ErrorBody), (status = 409, description = "name taken", body = ErrorBody),
    (status = 413, body = ErrorBody)))]
async fn create_room(
    State(state): State<AppState>,
    _admin: Admin,
    body: Result<ApiJson<NewRoom>, ApiError>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    let result = async {
        let ApiJson(new) = body?;
        let room = state.hub.store().create_room(&new, now_millis()).await?;
        tracing::info!(room = %room.name, "room created");
        Ok((
            StatusCode::CREATED,
            Json(RoomView {
                room,
                participants: 0,
            }),
        ))
    }
    .await;
    counted(&state, result)
}

/// Get one room.
#[utoipa::path(get, path = "/api/rooms/{room}", params(("room" = String, Path)), responses(
    (status = 200, body = RoomView), (status = 404, body = ErrorBody)))]
async fn get_room(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<RoomView>, ApiError> {
    let result = async {
        let record = state.hub.store().room(&room).await?;
        let participants = state.hub.room_participants(&room).await?.len();
        Ok(Json(RoomView {
            room: record,
            participants,
        }))
    }
    .await;
    counted(&state, result)
}

/// Why a room is closed.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRoom {
    /// Shown to everyone in the room.
    #[serde(default)]
    pub reason: String,
}

/// Close a room: everyone in it is told and disconnected; nobody can join it again.
#[utoipa::path(post, path = "/api/rooms/{room}/close", params(("room" = String, Path)), request_body = CloseRoom,
    responses((status = 200, body = RoomView), (status = 404, body = ErrorBody), (status = 409, description = "already closed", body = ErrorBody)))]
async fn close_room(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath(room): ApiPath<String>,
    body: Result<ApiJson<CloseRoom>, ApiError>,
) -> Result<Json<RoomView>, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let reason = if body.reason.is_empty() {
            crate::protocol::reason::CLOSED_BY_ADMIN.to_string()
        } else {
            body.reason
        };
        let record = state.hub.close_room(&room, &reason).await?;
        audit_room(&state, &admin, &room, "room.close", &reason).await?;
        Ok(Json(RoomView {
            room: record,
            participants: 0,
        }))
    }
    .await;
    counted(&state, result)
}

/// Participants present in a room now.
#[utoipa::path(get, path = "/api/rooms/{room}/participants", params(("room" = String, Path)), responses(
    (status = 200, body = [ParticipantInfo]), (status = 404, body = ErrorBody)))]
async fn list_participants(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<Vec<ParticipantInfo>>, ApiError> {
    let result = async { Ok(Json(state.hub.room_participants(&room).await?)) }.await;
    counted(&state, result)
}

/// The room's participation records: who was there, when, and why they left.
#[utoipa::path(get, path = "/api/rooms/{room}/participations", params(("room" = String, Path)), responses(
    (status = 200, body = [Participation]), (status = 404, body = ErrorBody)))]
async fn list_participations(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<Vec<Participation>>, ApiError> {
    let result = async {
        state.hub.store().room(&room).await?;
        Ok(Json(state.hub.store().participations(&room).await?))
    }
    .await;
    counted(&state, result)
}

/// Why a participant is removed.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveParticipant {
    /// Shown to the removed person and recorded.
    #[serde(default)]
    pub reason: String,
}

/// Remove a participant: its socket is closed with the reason (code 4001) and its token revoked.
#[utoipa::path(post, path = "/api/rooms/{room}/participants/{identity}/remove",
    params(("room" = String, Path), ("identity" = String, Path)), request_body = RemoveParticipant,
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn remove_participant(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath((room, identity)): ApiPath<(String, String)>,
    body: Result<ApiJson<RemoveParticipant>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let reason = if body.reason.is_empty() {
            crate::protocol::reason::REMOVED_BY_ADMIN.to_string()
        } else {
            body.reason
        };
        state.hub.remove(&room, &identity, &reason).await?;
        audit_room(
            &state,
            &admin,
            &room,
            "person.remove",
            &format!("{identity}: {reason}"),
        )
        .await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    counted(&state, result)
}

/// Let a removed participant back into the room: every link of theirs for it works again.
#[utoipa::path(delete, path = "/api/rooms/{room}/removals/{identity}",
    params(("room" = String, Path), ("identity" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn readmit_participant(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath((room, identity)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        state.hub.readmit(&room, &identity).await?;
        audit_room(&state, &admin, &room, "person.readmit", &identity).await?;
        Ok(StatusCode::NO_CONTENT)
    }
    .await;
    counted(&state, result)
}

/// Mute or unmute a participant's audio or video.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteParticipant {
    /// Which media.
    pub kind: MediaKind,
    /// Muted or not.
    pub muted: bool,
}

/// Mute or unmute a participant; everyone sees the change.
#[utoipa::path(post, path = "/api/rooms/{room}/participants/{identity}/mute",
    params(("room" = String, Path), ("identity" = String, Path)), request_body = MuteParticipant,
    responses((status = 200, body = ParticipantInfo), (status = 404, body = ErrorBody)))]
async fn mute_participant(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath((room, identity)): ApiPath<(String, String)>,
    body: Result<ApiJson<MuteParticipant>, ApiError>,
) -> Result<Json<ParticipantInfo>, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let info = state
            .hub
            .moderate_mute(&room, &identity, body.kind, body.muted)
            .await?;
        let detail = crate::hub::mute_detail(&identity, body.kind, body.muted);
        audit_room(&state, &admin, &room, "person.mute", &detail).await?;
        Ok(Json(info))
    }
    .await;
    counted(&state, result)
}

/// Where to move a participant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveParticipant {
    /// `lobby`, `joint` (admit), `private:applicant` or `private:respondent` (背对背).
    pub space: Place,
}

/// Move a participant between the lobby, the joint room and private rooms; forwarding follows at
/// once and nobody reconnects.
#[utoipa::path(post, path = "/api/rooms/{room}/participants/{identity}/move",
    params(("room" = String, Path), ("identity" = String, Path)), request_body = MoveParticipant,
    responses((status = 200, body = ParticipantInfo), (status = 400, body = ErrorBody), (status = 403, description = "not their place (another side's private room)", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "checks missing, or private rooms before the session is in session", body = ErrorBody)))]
async fn move_participant(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath((room, identity)): ApiPath<(String, String)>,
    body: Result<ApiJson<MoveParticipant>, ApiError>,
) -> Result<Json<ParticipantInfo>, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let info = state
            .hub
            .move_participant(&room, &identity, body.space)
            .await?;
        let detail = format!("{identity} to {}", body.space);
        audit_room(&state, &admin.0, &room, "person.move", &detail).await?;
        Ok(Json(info))
    }
    .await;
    counted(&state, result)
}

/// Per-participant media statistics of a live room: bitrates, loss, round-trip time, the
/// bandwidth estimate, published layers and what each one receives.
#[utoipa::path(get, path = "/api/rooms/{room}/media", params(("room" = String, Path)), responses(
    (status = 200, body = [ParticipantMediaStats]), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn room_media(
    State(state): State<AppState>,
    _admin: Admin,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<Vec<ParticipantMediaStats>>, ApiError> {
    let result = async {
        state.hub.room_participants(&room).await?;
        let sfu = state.hub.sfu_handle().ok_or_else(|| {
            SignalError::new(
                ErrorCode::MediaUnavailable,
                "media is disabled on this server",
            )
        })?;
        let stats = sfu
            .stats(&room)
            .await
            .map_err(|e| SignalError::new(ErrorCode::MediaUnavailable, e.to_string()))?;
        Ok(Json(stats))
    }
    .await;
    counted(&state, result)
}

/// New grants for a participant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGrants {
    /// The complete new set.
    pub grants: Vec<Grant>,
}

/// Replace a participant's grants, effective at once.
#[utoipa::path(put, path = "/api/rooms/{room}/participants/{identity}/grants",
    params(("room" = String, Path), ("identity" = String, Path)), request_body = UpdateGrants,
    responses((status = 200, body = ParticipantInfo), (status = 404, body = ErrorBody)))]
async fn update_grants(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ApiPath((room, identity)): ApiPath<(String, String)>,
    body: Result<ApiJson<UpdateGrants>, ApiError>,
) -> Result<Json<ParticipantInfo>, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let info = state
            .hub
            .update_grants(&room, &identity, body.grants)
            .await?;
        let grants: Vec<&str> = info.grants.iter().map(|g| g.as_str()).collect();
        let detail = format!("{identity}: {}", grants.join(","));
        audit_room(&state, &admin, &room, "person.grants", &detail).await?;
        Ok(Json(info))
    }
    .await;
    counted(&state, result)
}

/// What a join token should carry.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The room; omit only for an admin token.
    #[serde(default)]
    pub room: Option<String>,
    /// The person's identity in the room.
    pub identity: String,
    /// Display name (default: the identity).
    #[serde(default)]
    pub name: String,
    /// Role.
    pub role: Role,
    /// Grants (default: the role's).
    #[serde(default)]
    pub grants: Option<Vec<Grant>>,
    /// Lifetime such as "2h" (default `auth.default_ttl`, at most `auth.max_ttl`).
    #[serde(default)]
    pub ttl: Option<String>,
}

/// An issued token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// The JWT.
    pub token: String,
    /// Its id (for audit).
    pub token_id: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// The personal join link for the web client.
    pub join_url: Option<String>,
}

/// Issue a join token (or an admin token).
#[utoipa::path(post, path = "/api/tokens", request_body = CreateToken, responses(
    (status = 201, body = TokenView), (status = 400, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    Admin(admin): Admin,
    body: Result<ApiJson<CreateToken>, ApiError>,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let ttl = body
            .ttl
            .as_deref()
            .map(tiaojie_config::duration::parse)
            .transpose()
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidRequest,
                    format!("ttl: {e}"),
                )
            })?;
        let request = TokenRequest {
            identity: body.identity,
            name: body.name,
            room: body.room,
            role: body.role,
            grants: body.grants,
            ttl,
            not_before_secs: 0,
        };
        let (token, claims) = state.hub.keys().issue(&request).map_err(|e| match e {
            KeyError::Invalid(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, m)
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                other.to_string(),
            ),
        })?;
        // A link into a room is an invitation: it is on the record (ODR-Lit 29-32), in a
        // case's room beside the case API's.
        let detail = format!("{} as {} ({})", claims.sub, claims.role, claims.jti);
        match &claims.room {
            Some(room) => audit_room(&state, &admin, room, "token.issue", &detail).await?,
            None => audit(&state, &admin, "token.issue", "server", &detail).await?,
        }
        let join_url = claims.room.as_ref().map(|_| {
            format!(
                "{}/join?token={token}",
                state.config.server.public_base_url()
            )
        });
        Ok((
            StatusCode::CREATED,
            Json(TokenView {
                token,
                token_id: claims.jti,
                expires_at: claims.exp,
                join_url,
            }),
        ))
    }
    .await;
    counted(&state, result)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let table = include_str!("../../web-client/js/i18n.js");
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
            crate::protocol::reason::CLOSED_BY_ADMIN,
            crate::protocol::reason::REMOVED_BY_ADMIN,
            crate::protocol::reason::REMOVED_BY_MODERATOR,
            crate::protocol::reason::DECLINED,
            crate::protocol::reason::SESSION_ENDED,
            crate::protocol::reason::MEDIATION_ENDED,
            crate::protocol::reason::NOT_SCHEDULED,
            crate::protocol::reason::SERVER_SHUTDOWN,
        ] {
            twice(format!("close.{reason}"));
        }
    }
}

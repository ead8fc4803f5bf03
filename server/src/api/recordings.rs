//! The control API's recordings: listed and played only through here, only by those the
//! record belongs to — an admin, or the room's mediator or judge (parties and agents only when
//! `recording.participant_download` allows) — and every read, refusal and deletion is written
//! to the audit log before anything is served. Also: starting and stopping a room's recording,
//! its recording policy, and the audit log itself and its verification (admins).

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tiaojie_config::RecordingConfig;
use tiaojie_domain::{
    Action, AuditAction, AuditEntry, AuditVerification, Grant, RecordingMode, Role, Room, RoomName,
};
use utoipa::ToSchema;

use super::audit::audit;
use super::error::{ApiError, ErrorBody, counted};
use super::extract::{Admin, ApiJson, ApiPath, ApiQuery, Caller, page_limit};
use crate::state::AppState;
use tiaojie_signaling::hub::SignalError;
use tiaojie_signaling::protocol::{ErrorCode, RecordAction, RecordingStatus, SignalReason};
use tiaojie_signaling::recording::RecordingView;
use tiaojie_signaling::token::Claims;

/// The recordings routes, merged into `/api` by [`super::routes`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/recordings", get(list_recordings))
        .route(
            "/recordings/{id}",
            get(get_recording).delete(delete_recording),
        )
        .route("/recordings/{id}/files/{*file}", get(download_file))
        .route("/rooms/{room}/recording", post(control_recording))
        .route("/rooms/{room}/recording-policy", put(set_policy))
        .route("/audit", get(audit_log))
        .route("/audit/verify", get(verify_audit_log))
}

/// The recordings' and the audit log's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_recordings,
        get_recording,
        download_file,
        delete_recording,
        control_recording,
        set_policy,
        audit_log,
        verify_audit_log
    ),
    components(schemas(
        tiaojie_signaling::recording::RecordingView,
        tiaojie_signaling::recording::RecordingFile,
        RecordingDetail,
        ControlRecording,
        RecordingPolicy,
        tiaojie_signaling::protocol::RecordingStatus,
        tiaojie_signaling::protocol::RecordingState,
        tiaojie_signaling::protocol::RecordAction,
        tiaojie_domain::RecordingMode,
        tiaojie_domain::AuditEntry,
        tiaojie_domain::AuditVerification,
        tiaojie_domain::AuditProblem
    ))
)]
pub(crate) struct RecordingsDoc;

/// Whether `claims` may read a recording of `room` that may (`private`) or does not hold a
/// private room by its own record ([`RecordingView::private_rooms`]).
fn may_read(claims: &Claims, room: &RoomName, private: bool, recording: &RecordingConfig) -> bool {
    if claims.has(Grant::Admin) {
        return true;
    }
    if claims.room.as_ref() != Some(room) {
        return false;
    }
    // The permission matrix's `recording.read`, widened to parties and agents by
    // `recording.participant_download` — unless the recording may hold a private room, which
    // is one side's caucus the other side must never get. What it holds is the recording's
    // own record, not today's `recording.private_rooms`: a configuration edited after the
    // fact must not open a caucus to the other side.
    let parties = recording.participant_download && !private;
    tiaojie_domain::permission::role_may(claims.role, tiaojie_domain::Action::RecordingRead)
        || (parties && matches!(claims.role, Role::Party | Role::Agent))
}

fn forbidden() -> ApiError {
    SignalError::because(ErrorCode::Forbidden, SignalReason::RecordingReaders).into()
}

fn not_found() -> ApiError {
    SignalError::because(ErrorCode::NotFound, SignalReason::NoSuchRecording).into()
}

/// Runs a blocking read of the recordings directory off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SignalError::new(ErrorCode::Internal, e.to_string()).into())
}

/// The recording `id` if `claims` may read it; a refusal is audited (`what`: the read refused).
async fn readable(
    state: &AppState,
    claims: &Claims,
    id: &str,
    view: Option<RecordingView>,
    what: &str,
) -> Result<RecordingView, ApiError> {
    let Some(view) = view else {
        return Err(not_found());
    };
    if !may_read(
        claims,
        &view.room,
        view.private_rooms,
        &state.config.recording,
    ) {
        audit(
            state,
            claims,
            AuditAction::RecordingDenied,
            &format!("recording:{id}"),
            what,
        )
        .await?;
        return Err(forbidden());
    }
    Ok(view)
}

/// List the recordings the caller may read, newest first (every listing is audited).
#[utoipa::path(get, path = "/api/recordings", responses(
    (status = 200, body = [RecordingView]),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_recordings(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Vec<RecordingView>>, ApiError> {
    let result = async {
        let config = &state.config.recording;
        let scope = if claims.has(Grant::Admin) {
            "recordings".to_string()
        } else {
            let room = claims.room.clone().unwrap_or_default();
            // Whether they may read any recording of the room; each is then filtered.
            if !may_read(&claims, &room, false, config) {
                audit(
                    &state,
                    &claims,
                    AuditAction::RecordingDenied,
                    &format!("room:{room}"),
                    "list",
                )
                .await?;
                return Err(forbidden());
            }
            format!("room:{room}")
        };
        audit(&state, &claims, AuditAction::RecordingList, &scope, "").await?;
        let recorders = state.hub.recorders().clone();
        let all = blocking(move || recorders.list()).await?;
        Ok(Json(
            all.into_iter()
                .filter(|v| may_read(&claims, &v.room, v.private_rooms, config))
                .collect(),
        ))
    }
    .await;
    counted(&state, result)
}

/// A recording with its signed manifest.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecordingDetail {
    /// The summary.
    #[serde(flatten)]
    pub recording: RecordingView,
    /// The signed manifest (events, chain head, files and hashes), once finished.
    #[schema(value_type = Object)]
    pub manifest: Option<serde_json::Value>,
}

/// One recording and its signed manifest (audited).
#[utoipa::path(get, path = "/api/recordings/{id}", params(("id" = String, Path)), responses(
    (status = 200, body = RecordingDetail),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_recording(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RecordingDetail>, ApiError> {
    let result = async {
        let recorders = state.hub.recorders().clone();
        let lookup = id.clone();
        let (view, manifest) =
            blocking(move || (recorders.view(&lookup), recorders.manifest(&lookup))).await?;
        let view = readable(&state, &claims, &id, view, "read").await?;
        audit(
            &state,
            &claims,
            AuditAction::Act(Action::RecordingRead),
            &format!("recording:{id}"),
            "",
        )
        .await?;
        let manifest = manifest
            .filter(|_| view.state == "finished")
            .and_then(|m| serde_json::to_value(m).ok());
        Ok(Json(RecordingDetail {
            recording: view,
            manifest,
        }))
    }
    .await;
    counted(&state, result)
}

/// Download one of a finished recording's files (audited). `file` is a path the recording's
/// `files` list names, e.g. `derived/mixed.opus`.
#[utoipa::path(get, path = "/api/recordings/{id}/files/{file}", params(("id" = String, Path), ("file" = String, Path)), responses(
    (status = 200, description = "the file (audio/ogg or video/webm)", content_type = "application/octet-stream"),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn download_file(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((id, file)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let result = async {
        let recorders = state.hub.recorders().clone();
        let (lookup, wanted) = (id.clone(), file.clone());
        let (view, path) =
            blocking(move || (recorders.view(&lookup), recorders.file(&lookup, &wanted))).await?;
        readable(&state, &claims, &id, view, &file).await?;
        let Some(path) = path else {
            return Err(not_found());
        };
        let handle = tokio::fs::File::open(&path)
            .await
            .map_err(|_| not_found())?;
        let length = handle.metadata().await.map(|m| m.len()).unwrap_or(0);
        let target = format!("recording:{id}");
        audit(
            &state,
            &claims,
            AuditAction::RecordingDownload,
            &target,
            &file,
        )
        .await?;
        let content_type = if file.ends_with(".webm") {
            "video/webm"
        } else if file.ends_with(".opus") {
            "audio/ogg; codecs=opus"
        } else {
            "application/octet-stream"
        };
        let name = file.rsplit('/').next().unwrap_or("recording");
        Ok((
            [
                (header::CONTENT_TYPE, content_type.to_string()),
                (header::CONTENT_LENGTH, length.to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}-{name}\""),
                ),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
            Body::from_stream(read_chunks(handle)),
        )
            .into_response())
    }
    .await;
    counted(&state, result)
}

/// A file as a stream of 64 KiB chunks (recordings can be gigabytes).
fn read_chunks(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct DeleteQuery {
    /// Why (kept in the audit log).
    #[serde(default)]
    pub reason: String,
}

/// Delete a recording for good (admins; audited; a running recording cannot be deleted).
#[utoipa::path(delete, path = "/api/recordings/{id}", params(("id" = String, Path), DeleteQuery), responses(
    (status = 204, description = "deleted"),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, description = "still recording", body = ErrorBody)))]
pub(crate) async fn delete_recording(
    State(state): State<AppState>,
    Admin(claims): Admin,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        let recorders = state.hub.recorders().clone();
        let lookup = id.clone();
        if blocking(move || recorders.view(&lookup)).await?.is_none() {
            return Err(not_found());
        }
        if state.hub.recorders().is_live(&id) {
            return Err(SignalError::because(
                ErrorCode::RecordingState,
                SignalReason::RecordingRunning,
            )
            .into());
        }
        // Audited first: a deletion that happens is always on record.
        audit(
            &state,
            &claims,
            AuditAction::RecordingDelete,
            &format!("recording:{id}"),
            &query.reason,
        )
        .await?;
        let recorders = state.hub.recorders().clone();
        let deleted = blocking(move || recorders.delete(&id)).await?;
        match deleted {
            Ok(true) => Ok(StatusCode::NO_CONTENT),
            Ok(false) => Err(not_found()),
            Err(e) => Err(SignalError::new(ErrorCode::Internal, e.to_string()).into()),
        }
    }
    .await;
    counted(&state, result)
}

/// What to do with a room's recording.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlRecording {
    /// `start`, `pause`, `resume` or `stop`.
    pub action: RecordAction,
    /// `start`: `audio` or `audio_video` (default: the most the room allows).
    #[serde(default)]
    pub mode: Option<RecordingMode>,
}

/// Start, pause, resume or stop recording a room people are in; everyone present is told.
#[utoipa::path(post, path = "/api/rooms/{room}/recording", params(("room" = String, Path)), request_body = ControlRecording, responses(
    (status = 200, body = RecordingStatus),
    (status = 403, description = "not allowed in this room", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "not in a state for this (e.g. nobody is in the room)", body = ErrorBody)))]
pub(crate) async fn control_recording(
    State(state): State<AppState>,
    Admin(claims): Admin,
    ApiPath(room): ApiPath<RoomName>,
    body: Result<ApiJson<ControlRecording>, ApiError>,
) -> Result<Json<RecordingStatus>, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let status = state
            .hub
            .recording_action(&room, claims.sub.as_str(), body.action, body.mode)
            .await?;
        state
            .hub
            .audit_in_room(
                &room,
                claims.sub.as_str(),
                claims.role.as_str(),
                body.action.audit_action(),
                &status.audit_detail(),
            )
            .await?;
        Ok(Json(status))
    }
    .await;
    counted(&state, result)
}

/// A room's recording policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingPolicy {
    /// The most the room may record (`off`, `audio`, `audio_video`); `null` follows the
    /// server's `recording.allowed`. The server's limit always applies.
    pub recording: Option<RecordingMode>,
}

/// Set a room's recording policy.
#[utoipa::path(put, path = "/api/rooms/{room}/recording-policy", params(("room" = String, Path)), request_body = RecordingPolicy, responses(
    (status = 200, body = Room), (status = 404, body = ErrorBody)))]
pub(crate) async fn set_policy(
    State(state): State<AppState>,
    Admin(claims): Admin,
    ApiPath(room): ApiPath<RoomName>,
    body: Result<ApiJson<RecordingPolicy>, ApiError>,
) -> Result<Json<Room>, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        state.hub.store().room(&room).await?;
        let record = state
            .hub
            .store()
            .set_room_recording(&room, body.recording)
            .await?;
        audit(
            &state,
            &claims,
            AuditAction::RoomRecordingPolicy,
            &format!("room:{room}"),
            body.recording
                .map_or("server default", RecordingMode::as_str),
        )
        .await?;
        Ok(Json(record))
    }
    .await;
    counted(&state, result)
}

/// Most audit entries one request returns.
pub const MAX_AUDIT_PAGE: i64 = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub(crate) struct AuditQuery {
    /// Only entries on this target, e.g. `recording:<id>`.
    pub target: Option<String>,
    /// Entries after this one (its `id`); the next page starts after the last `id` received.
    #[serde(default)]
    pub after: i64,
    /// Entries per page: 1 to 1000, default 500.
    pub limit: Option<i64>,
}

/// The audit log, oldest first, a page at a time (admins).
#[utoipa::path(get, path = "/api/audit", params(AuditQuery), responses(
    (status = 200, body = [AuditEntry]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn audit_log(
    State(state): State<AppState>,
    _admin: Admin,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let result = async {
        let limit = page_limit(query.limit, 500, MAX_AUDIT_PAGE)?;
        Ok(Json(
            state
                .hub
                .store()
                .audit_page(query.target.as_deref(), query.after, limit)
                .await?,
        ))
    }
    .await;
    counted(&state, result)
}

/// Recompute the audit log's hash chain and say where it breaks (admins).
#[utoipa::path(get, path = "/api/audit/verify", responses(
    (status = 200, description = "`problems` empty: the log is intact", body = AuditVerification),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn verify_audit_log(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<AuditVerification>, ApiError> {
    let result = async { Ok(Json(state.hub.store().verify_audit_log().await?)) }.await;
    counted(&state, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(role: Role, room: &str) -> Claims {
        Claims {
            iss: "tiaojie".into(),
            sub: "someone".into(),
            name: String::new(),
            room: Some(room.into()),
            role,
            grants: tiaojie_domain::permission::default_grants(role),
            exp: 0,
            nbf: 0,
            iat: 0,
            jti: String::new(),
        }
    }

    #[test]
    fn parties_read_recordings_only_when_allowed_and_never_with_private_rooms_recorded() {
        let mut config = RecordingConfig::default();
        let party = claims(Role::Party, "r1");
        let judge = claims(Role::Judge, "r1");
        assert!(
            may_read(&judge, &RoomName::from("r1"), false, &config)
                && !may_read(&judge, &RoomName::from("r2"), false, &config)
        );
        assert!(
            !may_read(&party, &RoomName::from("r1"), false, &config),
            "off by default"
        );
        config.participant_download = true;
        assert!(
            may_read(&party, &RoomName::from("r1"), false, &config)
                && !may_read(&party, &RoomName::from("r2"), false, &config)
        );
        // A recording that may hold the other side's caucus, whatever today's configuration.
        assert!(!may_read(&party, &RoomName::from("r1"), true, &config));
        assert!(may_read(&judge, &RoomName::from("r1"), true, &config));
    }

    fn event(what: tiaojie_recorder::EventKind) -> tiaojie_recorder::RecordingEvent {
        tiaojie_recorder::RecordingEvent { at_us: 1, what }
    }

    #[test]
    fn a_recording_holds_a_private_room_by_its_own_events() {
        use tiaojie_recorder::EventKind;
        use tiaojie_signaling::recording::may_hold_private_rooms;
        let started = |private_rooms| {
            event(EventKind::Started {
                room: "r1".into(),
                mode: "audio".into(),
                by: "m".into(),
                private_rooms,
            })
        };
        let present = |space: &str, recorded| {
            event(EventKind::Present {
                identity: "a".into(),
                name: "张三".into(),
                role: "party".into(),
                space: space.into(),
                recorded,
            })
        };
        assert!(!may_hold_private_rooms(&[
            started(false),
            present("joint", true)
        ]));
        assert!(!may_hold_private_rooms(&[
            started(false),
            present("private:applicant", false)
        ]));
        assert!(may_hold_private_rooms(&[started(true)]));
        assert!(may_hold_private_rooms(&[
            started(false),
            present("private:applicant", true)
        ]));
        assert!(may_hold_private_rooms(&[]), "unknown counts as private");
    }
}

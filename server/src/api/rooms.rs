//! Admins' operations on live rooms and their people (list, create, close; participants and
//! their presence records; remove, readmit, mute, grants, move; media statistics) and join
//! tokens. Every act is audited on the room (on its case, in a case's room).

use super::audit::{audit, audit_room};
use super::error::{ApiError, ErrorBody, counted};
use super::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tiaojie_domain::clock::now_millis;
use tiaojie_domain::mediation::Place;
use tiaojie_domain::{AuditAction, Grant, NewRoom, Participation, PersonId, Role, Room, RoomName};
use tiaojie_media::ParticipantMediaStats;
use tiaojie_media::sfu::{LayerStats, PublishedTrackStats, ReceivedTrackStats};
use tiaojie_signaling::hub::SignalError;
use tiaojie_signaling::moderation::{Moderation, Moderator};
use tiaojie_signaling::protocol::{ErrorCode, MediaKind, MediaState, ParticipantInfo};
use tiaojie_signaling::token::Claims;
use tiaojie_signaling::token::{KeyError, TokenRequest};
use utoipa::{OpenApi, ToSchema};

/// The rooms' and tokens' routes, merged into `/api` by [`super::routes`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
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
}

/// The rooms' and tokens' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
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
        create_token
    ),
    components(schemas(
        RoomView,
        NewRoom,
        Room,
        CloseRoom,
        RemoveParticipant,
        MuteParticipant,
        UpdateGrants,
        MoveParticipant,
        ParticipantMediaStats,
        PublishedTrackStats,
        ReceivedTrackStats,
        LayerStats,
        MediaState,
        ParticipantInfo,
        Participation,
        Role,
        Grant,
        MediaKind,
        CreateToken,
        TokenView
    ))
)]
pub(crate) struct RoomsDoc;

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
    ApiPath(room): ApiPath<RoomName>,
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
    ApiPath(room): ApiPath<RoomName>,
    body: Result<ApiJson<CloseRoom>, ApiError>,
) -> Result<Json<RoomView>, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let reason = if body.reason.is_empty() {
            tiaojie_signaling::protocol::reason::CLOSED_BY_ADMIN.to_string()
        } else {
            body.reason
        };
        let record = state.hub.close_room(&room, &reason).await?;
        audit_room(&state, &admin, &room, AuditAction::RoomClose, &reason).await?;
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
    ApiPath(room): ApiPath<RoomName>,
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
    ApiPath(room): ApiPath<RoomName>,
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
    ApiPath((room, identity)): ApiPath<(RoomName, PersonId)>,
    body: Result<ApiJson<RemoveParticipant>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let reason = if body.reason.is_empty() {
            tiaojie_signaling::protocol::reason::REMOVED_BY_ADMIN.to_string()
        } else {
            body.reason
        };
        state
            .hub
            .moderate_room(
                moderator(&admin),
                &room,
                &identity,
                Moderation::Remove { reason },
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
    ApiPath((room, identity)): ApiPath<(RoomName, PersonId)>,
) -> Result<StatusCode, ApiError> {
    let result = async {
        state
            .hub
            .moderate_room(moderator(&admin), &room, &identity, Moderation::Readmit)
            .await?;
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
    ApiPath((room, identity)): ApiPath<(RoomName, PersonId)>,
    body: Result<ApiJson<MuteParticipant>, ApiError>,
) -> Result<Json<ParticipantInfo>, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let mute = Moderation::Mute {
            kind: body.kind,
            muted: body.muted,
        };
        let info = state
            .hub
            .moderate_room(moderator(&admin), &room, &identity, mute)
            .await?;
        Ok(Json(present(info)?))
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
    ApiPath((room, identity)): ApiPath<(RoomName, PersonId)>,
    body: Result<ApiJson<MoveParticipant>, ApiError>,
) -> Result<Json<ParticipantInfo>, ApiError> {
    let result = async {
        let ApiJson(body) = body?;
        let to = Moderation::Move { place: body.space };
        let info = state
            .hub
            .moderate_room(moderator(&admin.0), &room, &identity, to)
            .await?;
        Ok(Json(present(info)?))
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
    ApiPath(room): ApiPath<RoomName>,
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
    ApiPath((room, identity)): ApiPath<(RoomName, PersonId)>,
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
        audit_room(&state, &admin, &room, AuditAction::PersonGrants, &detail).await?;
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
    pub room: Option<RoomName>,
    /// The person's identity in the room.
    pub identity: PersonId,
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
            Some(room) => {
                audit_room(&state, &admin, room, AuditAction::TokenIssue, &detail).await?
            }
            None => audit(&state, &admin, AuditAction::TokenIssue, "server", &detail).await?,
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

/// An admin as the audit log names them when they moderate.
fn moderator(admin: &Claims) -> Moderator<'_> {
    Moderator {
        id: &admin.sub,
        role: admin.role.as_str(),
    }
}

/// The moderated person as everyone now sees them (a mute or a move always returns them).
fn present(info: Option<ParticipantInfo>) -> Result<ParticipantInfo, ApiError> {
    info.ok_or_else(|| {
        SignalError::new(ErrorCode::ParticipantNotFound, "the participant left").into()
    })
}

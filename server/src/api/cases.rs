//! The mediation workflow's API (`/api/cases/...`, `/api/ratings/...`).
//!
//! Every handler names its [`Action`]; [`authorize`] resolves who the caller is in the case
//! (an admin; a staff mediator token for their own cases; a session token whose room belongs to
//! the case and whose subject is a member with that role) and asks the permission matrix. Refusals
//! are audited. Commands run the domain's pure rules through `Store::case_command`, are audited,
//! and are announced to the case's live session room (`case.updated`, `minutes.updated`).

use super::audit::audit;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, Caller, page_limit};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tiaojie_domain::mediation::agreement::{DEFAULT_TEMPLATE, TemplateData, fill_template};
use tiaojie_domain::mediation::confirmation::{SessionText, apply_by};
use tiaojie_domain::mediation::deadline::TimeLimit;
use tiaojie_domain::mediation::state::AgreementState;
use tiaojie_domain::mediation::{
    CaseEvent, CaseState, ConsentSubject, IdentityMethod, Member, MissingCheck, NewCase, Outcome,
    Place, Recorded, RuleError, Side,
};
use tiaojie_domain::permission::{self, Action, Asker};
use tiaojie_domain::{AuditAction, AuditEntry, CaseId, Grant, NewRoom, PersonId, Role, RoomName};
use tiaojie_signaling::hub::SignalError;
use tiaojie_signaling::live_room::Audience;
use tiaojie_signaling::moderation::{Moderation, Moderator};
use tiaojie_signaling::protocol::{ErrorCode, Event, SignalReason};
use tiaojie_signaling::token::{Claims, TokenRequest};
use tiaojie_store::{CaseSummary, MediatorRating, Minutes};
use utoipa::{OpenApi, ToSchema};

/// The routes, merged under `/api` by [`super::routes`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/cases", get(list_cases).post(open_case))
        .route("/cases/current", get(current_case))
        .route("/cases/{case}", get(get_case))
        .route("/cases/{case}/events", get(case_events))
        .route("/cases/{case}/members", post(add_member))
        .route("/cases/{case}/sessions", post(schedule_session))
        .route("/cases/{case}/sessions/{n}/invitations", post(invite))
        .route("/cases/{case}/sessions/{n}/lobby", post(open_lobby))
        .route("/cases/{case}/sessions/{n}/start", post(start_session))
        .route("/cases/{case}/sessions/{n}/end", post(end_session))
        .route(
            "/cases/{case}/sessions/{n}/members/{person}/identity",
            put(verify_identity),
        )
        .route(
            "/cases/{case}/sessions/{n}/members/{person}/consents",
            put(give_consent),
        )
        .route(
            "/cases/{case}/sessions/{n}/members/{person}/warning",
            put(acknowledge_warning),
        )
        .route(
            "/cases/{case}/sessions/{n}/members/{person}/move",
            post(move_person),
        )
        .route(
            "/cases/{case}/sessions/{n}/members/{person}/minutes-confirmation",
            put(confirm_minutes),
        )
        .route(
            "/cases/{case}/sessions/{n}/members/{person}/rating",
            put(rate_session),
        )
        .route(
            "/cases/{case}/sessions/{n}/sides/{side}/move",
            post(move_side),
        )
        .route(
            "/cases/{case}/sessions/{n}/minutes",
            get(read_minutes).put(save_minutes),
        )
        .route(
            "/cases/{case}/sessions/{n}/minutes/replace-by-recording",
            post(replace_minutes),
        )
        .route("/cases/{case}/agreement", get(read_agreement))
        .route("/cases/{case}/agreement/document", get(agreement_document))
        .route(
            "/cases/{case}/sessions/{n}/minutes/document",
            get(minutes_document),
        )
        .route("/cases/{case}/confirmation/ruling", get(ruling_document))
        .route("/cases/{case}/agreement/versions", post(draft_agreement))
        .route(
            "/cases/{case}/agreement/signatures/{person}",
            put(sign_agreement),
        )
        .route(
            "/cases/{case}/agreement/refusals/{person}",
            put(refuse_agreement),
        )
        .route("/cases/{case}/outcome", post(record_outcome))
        .route("/cases/{case}/deadline/extensions", post(extend_deadline))
        .route(
            "/cases/{case}/members/{person}/extension-consent",
            put(answer_extension),
        )
        .route("/cases/{case}/deadline/pause", post(pause_deadline))
        .route("/ratings/mediators", get(mediator_ratings))
        .route(
            "/cases/{case}/members/{person}/confirmation-application",
            put(apply_for_confirmation),
        )
        .route(
            "/cases/{case}/members/{person}/confirmation-withdrawal",
            post(withdraw_confirmation),
        )
        .route("/confirmation/outbox", get(confirmation_outbox))
        .route(
            "/confirmation/outbox/{message}/retry",
            post(retry_confirmation_message),
        )
}

/// The workflow's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        list_cases,
        open_case,
        current_case,
        get_case,
        case_events,
        add_member,
        schedule_session,
        invite,
        open_lobby,
        start_session,
        end_session,
        verify_identity,
        give_consent,
        acknowledge_warning,
        move_person,
        confirm_minutes,
        rate_session,
        move_side,
        read_minutes,
        save_minutes,
        replace_minutes,
        read_agreement,
        agreement_document,
        minutes_document,
        ruling_document,
        draft_agreement,
        sign_agreement,
        refuse_agreement,
        record_outcome,
        extend_deadline,
        answer_extension,
        pause_deadline,
        mediator_ratings,
        apply_for_confirmation,
        withdraw_confirmation,
        confirmation_outbox,
        retry_confirmation_message
    ),
    components(schemas(
        CaseView,
        CurrentCase,
        SessionMissing,
        CaseListItem,
        NewCase,
        Member,
        Side,
        tiaojie_domain::mediation::Stage,
        CaseState,
        TimeLimit,
        Recorded,
        CaseEvent,
        Outcome,
        IdentityMethod,
        ConsentSubject,
        Minutes,
        MediatorRating,
        AgreementView,
        Schedule,
        InvitationRequest,
        InvitationView,
        IdentityBody,
        ConsentBody,
        MoveBody,
        SideMoveBody,
        MinutesBody,
        ConfirmBody,
        RatingBody,
        DraftBody,
        SignBody,
        RefuseBody,
        ExtendBody,
        ExtensionAnswer,
        PauseBody,
        tiaojie_domain::mediation::confirmation::ConfirmationState,
        tiaojie_domain::mediation::confirmation::Submitted,
        tiaojie_store::OutboxEntry
    ))
)]
pub(crate) struct CasesDoc;

// ---- who is asking ----

/// The caller's standing in one case.
struct Standing {
    claims: Claims,
    case: CaseState,
}

/// Loads the case and checks `action` for the caller (acting for `acting_for`, if the action
/// is someone's own). A refusal is audited and answered 403.
async fn authorize(
    state: &AppState,
    claims: Claims,
    case_id: &CaseId,
    action: Action,
    acting_for: Option<&PersonId>,
) -> Result<Standing, ApiError> {
    let case = state.hub.store().case(case_id).await?;
    let role = role_of(&claims);
    let member = match (&claims.room, role) {
        (_, Role::Admin) => true,
        (Some(room), _) => {
            let room_case = state.hub.store().case_of_room(room).await?;
            room_case.is_some_and(|(c, _)| c == case.id)
                && case
                    .member(&claims.sub)
                    .is_some_and(|m| m.role == claims.role)
        }
        (None, Role::Mediator) => case.mediator().is_some_and(|m| m.id == claims.sub),
        (None, _) => false,
    };
    let asker = Asker {
        role,
        member,
        acting_for,
        person: &claims.sub,
    };
    if let Err(denied) = permission::check(action, asker) {
        return Err(refuse(state, &claims, &target(&case.id), denied).await);
    }
    Ok(Standing { claims, case })
}

fn target(case: &CaseId) -> String {
    format!("case:{case}")
}

/// The role the matrix sees: an admin token is an admin whatever else it says.
fn role_of(claims: &Claims) -> Role {
    if claims.has(Grant::Admin) {
        Role::Admin
    } else {
        claims.role
    }
}

/// Audits a refusal and answers it 403: every `permission.denied` goes through here.
async fn refuse(
    state: &AppState,
    claims: &Claims,
    target: &str,
    why: impl Into<SignalError>,
) -> ApiError {
    let why: SignalError = why.into();
    if let Err(e) = audit(
        state,
        claims,
        AuditAction::PermissionDenied,
        target,
        &why.message,
    )
    .await
    {
        return e;
    }
    why.into()
}

/// Who a view is for: what they may see of the case.
struct Viewer {
    role: Role,
    person: PersonId,
}

impl Viewer {
    fn of(claims: &Claims) -> Viewer {
        Viewer {
            role: role_of(claims),
            person: claims.sub.clone(),
        }
    }
}

/// Runs a command: authorize, decide and append, audit, announce. Returns the new state and
/// who asked.
async fn command(
    state: &AppState,
    claims: Claims,
    case_id: &CaseId,
    action: Action,
    acting_for: Option<&PersonId>,
    detail: String,
    decide: impl Fn(&CaseState) -> Result<Vec<CaseEvent>, RuleError>,
) -> Result<(CaseState, Viewer), ApiError> {
    let standing = authorize(state, claims, case_id, action, acting_for).await?;
    let now = state.hub.clock.now();
    let entry = audit_entry(&standing.claims, action, case_id, &detail);
    let (after, recorded) = state
        .hub
        .store()
        .case_command(case_id, &standing.claims.sub, now, decide, &entry)
        .await?;
    finish_command(state, standing, after, recorded).await
}

/// The audit entry of a case action; the store writes it with the action (and adds the events
/// the action recorded to its detail).
fn audit_entry(claims: &Claims, action: Action, case_id: &CaseId, detail: &str) -> AuditEntry {
    AuditEntry::new(
        tiaojie_domain::clock::now_millis(),
        claims.sub.as_str(),
        claims.role.as_str(),
        AuditAction::Act(action),
        &target(case_id),
        detail,
    )
}

/// Like [`command`], for commands that also put messages for the court in the outbox (in the
/// same transaction), sealed with the server key; wakes the bridge connections.
#[allow(clippy::too_many_arguments)]
async fn command_with_outbox(
    state: &AppState,
    claims: Claims,
    case_id: &CaseId,
    action: Action,
    acting_for: Option<&PersonId>,
    detail: String,
    decide: impl Fn(&CaseState) -> Result<Vec<CaseEvent>, RuleError>,
    outbox: impl Fn(&CaseState, &[Recorded]) -> Vec<tiaojie_confirmation::Message>,
) -> Result<(CaseState, Viewer), ApiError> {
    let Some(signer) = &state.court.signer else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Internal,
            "the server key is not available",
        ));
    };
    let standing = authorize(state, claims, case_id, action, acting_for).await?;
    let now = state.hub.clock.now();
    let entry = audit_entry(&standing.claims, action, case_id, &detail);
    let (after, recorded) = state
        .hub
        .store()
        .case_command_with_outbox(case_id, now, decide, outbox, signer, &entry)
        .await?;
    state.court.outbox_ready.notify_waiters();
    finish_command(state, standing, after, recorded).await
}

/// Announces an applied (and audited) command to the case's rooms.
async fn finish_command(
    state: &AppState,
    standing: Standing,
    after: CaseState,
    recorded: Vec<Recorded>,
) -> Result<(CaseState, Viewer), ApiError> {
    if let Some(last) = recorded.last() {
        state
            .hub
            .announce_case_change(&after, last.event.kind())
            .await;
    }
    Ok((after, Viewer::of(&standing.claims)))
}

// ---- views ----

/// A case as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseView {
    /// The case's state.
    #[serde(flatten)]
    pub case: CaseState,
    /// The time limit now.
    pub time_limit: TimeLimit,
    /// Required signers who have not signed the current agreement version.
    pub unsigned: Vec<PersonId>,
    /// Per live session (scheduled, checking in or in session): who is present, where, and
    /// what each still lacks.
    pub missing_checks: Vec<SessionMissing>,
    /// Judicial confirmation: the end of the window to apply (24:00 China time of the 30th
    /// day after the day the agreement took effect, CPL 85), Unix ms.
    pub confirmation_apply_by: Option<i64>,
    /// Judicial confirmation: whether the court bridge has the application in its inbox.
    pub confirmation_delivered: bool,
}

/// A live session's room as its mediator's check table needs it: who is there, where each
/// stands, and what each still lacks.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionMissing {
    /// Session number.
    pub session: u32,
    /// Who is present in its room now (connected, or reconnecting within the grace period).
    pub present: Vec<PersonId>,
    /// Where each of them stands.
    #[schema(value_type = std::collections::BTreeMap<String, Place>)]
    pub places: std::collections::BTreeMap<PersonId, Place>,
    /// What each member still lacks to take part in this session (to leave the lobby; the
    /// start needs it of everyone present).
    pub missing: Vec<MissingCheck>,
}

/// Hides what a viewer has no business seeing: other people's identity-check notes and
/// join links (parties, agents), and ratings (everyone but admins and the rater).
fn redact(case: &mut CaseState, viewer: &Viewer) {
    if viewer.role == Role::Admin {
        return;
    }
    let staff = matches!(viewer.role, Role::Mediator | Role::Judge);
    for s in &mut case.sessions {
        s.ratings.retain(|r| r.person == viewer.person);
        if staff {
            continue;
        }
        s.invitations.retain(|i| i.person == viewer.person);
        for (person, checks) in s.checks.iter_mut() {
            if person != &viewer.person
                && let Some(identity) = checks.identity.as_mut()
            {
                identity.note.clear();
            }
        }
    }
}

async fn view(
    state: &AppState,
    mut case: CaseState,
    viewer: &Viewer,
) -> Result<CaseView, ApiError> {
    redact(&mut case, viewer);
    let now = state.hub.clock.now();
    let mut missing_checks = Vec::new();
    for s in case
        .sessions
        .iter()
        .filter(|s| s.phase != tiaojie_domain::mediation::Phase::Ended)
    {
        let people = state
            .hub
            .room_participants(&s.room)
            .await
            .unwrap_or_default();
        let present: Vec<PersonId> = people.iter().map(|p| p.identity.clone()).collect();
        // Everyone's, present or not: a page shows what each still lacks before they come.
        let everyone: Vec<PersonId> = case.members.iter().map(|m| m.id.clone()).collect();
        let missing = case.missing_checks(s.number, &everyone).unwrap_or_default();
        missing_checks.push(SessionMissing {
            session: s.number,
            places: people.into_iter().map(|p| (p.identity, p.space)).collect(),
            present,
            missing,
        });
    }
    let confirmation_delivered = match &case.confirmation.submitted {
        Some(s) => {
            state
                .hub
                .store()
                .outbox_state(&s.message_id)
                .await?
                .as_deref()
                == Some("acked")
        }
        None => false,
    };
    Ok(CaseView {
        confirmation_apply_by: case.agreement.effective_at.map(apply_by),
        confirmation_delivered,
        time_limit: case.time_limit(now),
        unsigned: case.unsigned().iter().map(|m| m.id.clone()).collect(),
        missing_checks,
        case,
    })
}

async fn present_in(state: &AppState, room: &RoomName) -> Vec<PersonId> {
    state
        .hub
        .room_participants(room)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.identity)
        .collect()
}

/// A case in a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseListItem {
    /// The stored summary.
    #[serde(flatten)]
    pub summary: CaseSummary,
    /// Past its time limit now (open, not paused).
    pub overdue: bool,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    overdue: bool,
    #[serde(default)]
    offset: i64,
    limit: Option<i64>,
}

/// Most cases one request lists.
pub const MAX_CASE_PAGE: i64 = 500;

#[utoipa::path(get, path = "/api/cases", params(
    ("overdue" = Option<bool>, Query, description = "only cases past their time limit"),
    ("offset" = Option<i64>, Query, description = "cases to skip (newest first)"),
    ("limit" = Option<i64>, Query, description = "cases per page: 1 to 500, default 100")), responses(
    (status = 200, body = [CaseListItem]), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_cases(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<CaseListItem>>, ApiError> {
    let role = role_of(&claims);
    // Listing is for staff: admins see every case; a mediator (staff token) their own.
    let staff = role == Role::Admin || (role == Role::Mediator && claims.room.is_none());
    let asker = Asker {
        role,
        member: staff,
        acting_for: None,
        person: &claims.sub,
    };
    let checked = permission::check(Action::CaseList, asker).and(if staff {
        Ok(())
    } else {
        Err(permission::Denied::NotMember {
            action: "case.list",
        })
    });
    if let Err(denied) = checked {
        return Err(refuse(&state, &claims, "cases", denied).await);
    }
    let limit = page_limit(query.limit, 100, MAX_CASE_PAGE)?;
    let now = state.hub.clock.now();
    let mediator = (role == Role::Mediator).then_some(&claims.sub);
    let cases = state
        .hub
        .store()
        .cases(
            mediator,
            query.overdue.then_some(now),
            (query.offset.max(0), limit),
        )
        .await?;
    audit(
        &state,
        &claims,
        AuditAction::Act(Action::CaseList),
        "cases",
        &format!("{} cases", cases.len()),
    )
    .await?;
    Ok(Json(
        cases
            .into_iter()
            .map(|summary| CaseListItem {
                overdue: summary.closed_at.is_none() && !summary.paused && summary.due_at < now,
                summary,
            })
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/cases", request_body = NewCase, responses(
    (status = 201, body = CaseView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn open_case(
    State(state): State<AppState>,
    Caller(claims): Caller,
    body: Result<ApiJson<NewCase>, ApiError>,
) -> Result<(StatusCode, Json<CaseView>), ApiError> {
    let ApiJson(new) = body?;
    let role = role_of(&claims);
    let staff = role == Role::Admin || claims.room.is_none();
    let asker = Asker {
        role,
        member: true,
        acting_for: None,
        person: &claims.sub,
    };
    let denied = permission::check(Action::CaseCreate, asker)
        .err()
        .map(SignalError::from)
        .or_else(|| {
            (!staff)
                .then(|| SignalError::because(ErrorCode::Forbidden, SignalReason::StaffTokenNeeded))
        })
        .or_else(|| {
            // A mediator opens cases they mediate; an admin assigns any mediator.
            (role == Role::Mediator && new.mediator.id != claims.sub)
                .then(|| SignalError::because(ErrorCode::Forbidden, SignalReason::OwnCasesOnly))
        });
    if let Some(denied) = denied {
        return Err(refuse(&state, &claims, "cases", denied).await);
    }
    let id = tiaojie_signaling::ids::case_id();
    let now = state.hub.clock.now();
    let entry = AuditEntry::new(
        tiaojie_domain::clock::now_millis(),
        claims.sub.as_str(),
        claims.role.as_str(),
        AuditAction::Act(Action::CaseCreate),
        &target(&id),
        new.number.trim(),
    );
    let case = state
        .hub
        .store()
        .open_case(&id, &new, &claims.sub, now, &entry)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, case, &Viewer::of(&claims)).await?),
    ))
}

/// Authorizes a read of the whole case and audits it. The view carries the agreement's text,
/// so the entry names the version shown: a read of the case is a read of that version.
async fn read_case(
    state: &AppState,
    claims: Claims,
    case_id: &CaseId,
) -> Result<Standing, ApiError> {
    let s = authorize(state, claims, case_id, Action::CaseRead, None).await?;
    let shown = s
        .case
        .agreement
        .current()
        .map(|v| format!("agreement version {} ({})", v.version, v.sha256))
        .unwrap_or_default();
    audit(
        state,
        &s.claims,
        AuditAction::Act(Action::CaseRead),
        &target(case_id),
        &shown,
    )
    .await?;
    Ok(s)
}

#[utoipa::path(get, path = "/api/cases/{case}", params(("case" = String, Path)), responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_case(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
) -> Result<Json<CaseView>, ApiError> {
    let s = read_case(&state, claims, &case_id).await?;
    let viewer = Viewer::of(&s.claims);
    Ok(Json(view(&state, s.case, &viewer).await?))
}

/// The case a session token belongs to, with the session's number: what the web client
/// shows next to the call.
#[derive(Debug, Serialize, ToSchema)]
pub struct CurrentCase {
    /// The session this token's room is.
    pub session: u32,
    /// The case.
    #[serde(flatten)]
    pub view: CaseView,
}

#[utoipa::path(get, path = "/api/cases/current", responses(
    (status = 200, body = CurrentCase), (status = 403, body = ErrorBody), (status = 404, description = "the token's room is no case's session", body = ErrorBody)))]
async fn current_case(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<CurrentCase>, ApiError> {
    let found = match &claims.room {
        Some(room) => state.hub.store().case_of_room(room).await?,
        None => None,
    };
    let Some((case_id, session)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "this token's room is not a case's session",
        ));
    };
    let s = read_case(&state, claims, &case_id).await?;
    Ok(Json(CurrentCase {
        session,
        view: view(&state, s.case, &Viewer::of(&s.claims)).await?,
    }))
}

#[utoipa::path(get, path = "/api/cases/{case}/events", params(("case" = String, Path)), responses(
    (status = 200, body = [Recorded]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn case_events(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
) -> Result<Json<Vec<Recorded>>, ApiError> {
    let s = authorize(&state, claims, &case_id, Action::CaseEventsRead, None).await?;
    audit(
        &state,
        &s.claims,
        AuditAction::Act(Action::CaseEventsRead),
        &target(&case_id),
        "",
    )
    .await?;
    Ok(Json(state.hub.store().case_events(&case_id).await?))
}

#[utoipa::path(post, path = "/api/cases/{case}/members", params(("case" = String, Path)), request_body = Member, responses(
    (status = 200, body = CaseView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
    body: Result<ApiJson<Member>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(member) = body?;
    let detail = format!("{} as {}", member.id, member.role);
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::MemberAdd,
        None,
        detail,
        |c| c.add_member(&member),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

/// Scheduling a session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Planned start, Unix ms.
    pub scheduled_at: i64,
}

#[utoipa::path(post, path = "/api/cases/{case}/sessions", params(("case" = String, Path)), request_body = Schedule, responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn schedule_session(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
    body: Result<ApiJson<Schedule>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(schedule) = body?;
    // The session's room: created first (with a lobby), so the recorded event names a room
    // that exists. Its name is fresh per request, so two schedules racing never share a room;
    // a refused schedule closes only the room it made.
    let s = authorize(
        &state,
        claims.clone(),
        &case_id,
        Action::SessionSchedule,
        None,
    )
    .await?;
    let room = tiaojie_signaling::ids::session_room(&case_id);
    let now = state.hub.clock.now();
    let new_room = NewRoom {
        name: room.clone(),
        lobby: true,
        metadata: s.case.number.clone(),
        ..NewRoom::default()
    };
    state.hub.store().create_room(&new_room, now).await?;
    let detail = format!("room {room}");
    let result = command(
        &state,
        claims,
        &case_id,
        Action::SessionSchedule,
        None,
        detail,
        |c| c.schedule(&room, schedule.scheduled_at),
    )
    .await;
    match result {
        Ok((case, viewer)) => Ok(Json(view(&state, case, &viewer).await?)),
        Err(e) => {
            let _ = state
                .hub
                .close_room(&room, tiaojie_signaling::protocol::reason::NOT_SCHEDULED)
                .await;
            Err(e)
        }
    }
}

/// Issuing a join link.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationRequest {
    /// For whom (a member of the case).
    pub person: PersonId,
    /// Validity in seconds (default: the server's token lifetime).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// A personal join link.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationView {
    /// For whom.
    pub person: PersonId,
    /// The room.
    pub room: RoomName,
    /// The token (role- and person-bound, expiring).
    pub token: String,
    /// The link to send (path; prefix the server's public address).
    pub link: String,
    /// Expiry, Unix ms.
    pub expires_at: i64,
}

#[utoipa::path(post, path = "/api/cases/{case}/sessions/{n}/invitations", params(("case" = String, Path), ("n" = u32, Path)), request_body = InvitationRequest, responses(
    (status = 200, body = InvitationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn invite(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n)): ApiPath<(CaseId, u32)>,
    body: Result<ApiJson<InvitationRequest>, ApiError>,
) -> Result<Json<InvitationView>, ApiError> {
    let ApiJson(request) = body?;
    let s = authorize(
        &state,
        claims.clone(),
        &case_id,
        Action::InvitationIssue,
        None,
    )
    .await?;
    let session = s.case.session(n)?;
    let member = s
        .case
        .member(&request.person)
        .ok_or_else(|| RuleError::NotAMember {
            person: request.person.clone(),
        })?
        .clone();
    let (token, issued) = state
        .hub
        .keys()
        .issue(&TokenRequest {
            identity: member.id.clone(),
            name: member.name.clone(),
            room: Some(session.room.clone()),
            role: member.role,
            grants: None,
            ttl: request.ttl_secs.map(Duration::from_secs),
            not_before_secs: 0,
        })
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidRequest,
                e.to_string(),
            )
        })?;
    let expires_at = issued.exp * 1000;
    let jti = issued.jti.clone();
    let person = member.id.clone();
    let detail = format!("{person} session {n} token {jti}");
    command(
        &state,
        claims,
        &case_id,
        Action::InvitationIssue,
        None,
        detail,
        |c| c.invite(n, &person, &jti, expires_at),
    )
    .await?;
    Ok(Json(InvitationView {
        person: member.id,
        room: session.room.clone(),
        link: format!("/join?token={token}"),
        token,
        expires_at,
    }))
}

#[utoipa::path(post, path = "/api/cases/{case}/sessions/{n}/lobby", params(("case" = String, Path), ("n" = u32, Path)), responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn open_lobby(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n)): ApiPath<(CaseId, u32)>,
) -> Result<Json<CaseView>, ApiError> {
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::SessionRun,
        None,
        format!("session {n}"),
        |c| c.open_lobby(n),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

#[utoipa::path(post, path = "/api/cases/{case}/sessions/{n}/start", params(("case" = String, Path), ("n" = u32, Path)), responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, description = "checks missing (listed) or wrong phase", body = ErrorBody)))]
async fn start_session(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n)): ApiPath<(CaseId, u32)>,
) -> Result<Json<CaseView>, ApiError> {
    let s = authorize(&state, claims.clone(), &case_id, Action::SessionRun, None).await?;
    let room = s.case.session(n)?.room.clone();
    let present = present_in(&state, &room).await;
    let names: Vec<&str> = present.iter().map(PersonId::as_str).collect();
    let detail = format!("session {n} present {}", names.join(","));
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::SessionRun,
        None,
        detail,
        |c| c.start(n, &present),
    )
    .await?;
    // Everyone checked comes out of the lobby into the joint room.
    let waiting: Vec<PersonId> = state
        .hub
        .room_participants(&room)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.space == Place::Lobby && present.contains(&p.identity))
        .map(|p| p.identity)
        .collect();
    for identity in waiting {
        // Each through the admission rule, like any other move.
        if let Err(e) = state
            .hub
            .move_participant(&room, &identity, Place::Joint)
            .await
        {
            tracing::warn!(%room, participant = %identity, error = %e.message, "stays in the lobby");
        }
    }
    Ok(Json(view(&state, case, &viewer).await?))
}

#[utoipa::path(post, path = "/api/cases/{case}/sessions/{n}/end", params(("case" = String, Path), ("n" = u32, Path)), responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn end_session(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n)): ApiPath<(CaseId, u32)>,
) -> Result<Json<CaseView>, ApiError> {
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::SessionRun,
        None,
        format!("session {n}"),
        |c| c.end(n),
    )
    .await?;
    if let Ok(session) = case.session(n) {
        let _ = state
            .hub
            .close_room(
                &session.room,
                tiaojie_signaling::protocol::reason::SESSION_ENDED,
            )
            .await;
    }
    Ok(Json(view(&state, case, &viewer).await?))
}

/// An identity check's result.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityBody {
    /// How.
    pub method: IdentityMethod,
    /// Whether it matched.
    pub passed: bool,
    /// Free text.
    #[serde(default)]
    pub note: String,
}

#[utoipa::path(put, path = "/api/cases/{case}/sessions/{n}/members/{person}/identity", params(("case" = String, Path), ("n" = u32, Path), ("person" = String, Path)), request_body = IdentityBody, responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn verify_identity(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n, person)): ApiPath<(CaseId, u32, PersonId)>,
    body: Result<ApiJson<IdentityBody>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(b) = body?;
    let detail = format!("{person} {} passed={}", b.method.as_str(), b.passed);
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::IdentityVerify,
        None,
        detail,
        |c| c.verify_identity(n, &person, b.method, b.passed, &b.note),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

/// A consent or refusal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// To what.
    pub subject: ConsentSubject,
    /// Yes or no.
    pub given: bool,
}

#[utoipa::path(put, path = "/api/cases/{case}/sessions/{n}/members/{person}/consents", params(("case" = String, Path), ("n" = u32, Path), ("person" = String, Path)), request_body = ConsentBody, responses(
    (status = 200, body = CaseView), (status = 403, description = "not your own consent", body = ErrorBody)))]
async fn give_consent(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n, person)): ApiPath<(CaseId, u32, PersonId)>,
    body: Result<ApiJson<ConsentBody>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(b) = body?;
    let detail = format!("{person} {:?}={}", b.subject, b.given);
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::ConsentGive,
        Some(&person),
        detail,
        |c| c.consent(n, &person, b.subject, b.given),
    )
    .await?;
    // Consent to recording withdrawn: the re-check of the room that every change to the case
    // makes has paused a running recording already (it resumes only once every party present
    // consents again).
    Ok(Json(view(&state, case, &viewer).await?))
}

#[utoipa::path(put, path = "/api/cases/{case}/sessions/{n}/members/{person}/warning", params(("case" = String, Path), ("n" = u32, Path), ("person" = String, Path)), responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody)))]
async fn acknowledge_warning(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n, person)): ApiPath<(CaseId, u32, PersonId)>,
) -> Result<Json<CaseView>, ApiError> {
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::WarningAcknowledge,
        Some(&person),
        person.to_string(),
        |c| c.acknowledge_warning(n, &person),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

/// Moving one person.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// `lobby`, `joint`, `private:applicant` or `private:respondent`.
    pub to: Place,
}

#[utoipa::path(post, path = "/api/cases/{case}/sessions/{n}/members/{person}/move", params(("case" = String, Path), ("n" = u32, Path), ("person" = String, Path)), request_body = MoveBody, responses(
    (status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn move_person(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n, person)): ApiPath<(CaseId, u32, PersonId)>,
    body: Result<ApiJson<MoveBody>, ApiError>,
) -> Result<StatusCode, ApiError> {
    let ApiJson(b) = body?;
    let s = authorize(&state, claims, &case_id, Action::SideMove, None).await?;
    let session = s.case.session(n)?;
    s.case
        .member(&person)
        .ok_or_else(|| RuleError::NotAMember {
            person: person.clone(),
        })?;
    // Who may stand where, and when, is the case's admission rule, asked by the hub for every
    // move.
    // The move and its audit entry (on the case) under one hold of the room.
    let by = Moderator {
        id: &s.claims.sub,
        role: s.claims.role.as_str(),
    };
    state
        .hub
        .moderate_room(by, &session.room, &person, Moderation::Move { place: b.to })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Moving a side.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SideMoveBody {
    /// Into the side's private room (`true`) or back to the joint room (`false`).
    pub private: bool,
    /// The mediator goes along (default: yes).
    #[serde(default = "yes")]
    pub with_mediator: bool,
}

fn yes() -> bool {
    true
}

#[utoipa::path(post, path = "/api/cases/{case}/sessions/{n}/sides/{side}/move", params(("case" = String, Path), ("n" = u32, Path), ("side" = Side, Path)), request_body = SideMoveBody, responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn move_side(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n, side)): ApiPath<(CaseId, u32, Side)>,
    body: Result<ApiJson<SideMoveBody>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(b) = body?;
    let detail = format!("{} private={}", side.as_str(), b.private);
    let mover = claims.sub.clone();
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::SideMove,
        None,
        detail,
        |c| c.move_side(n, side, b.private),
    )
    .await?;
    let room = case.session(n)?.room.clone();
    let place = if b.private {
        Place::Private(side)
    } else {
        Place::Joint
    };
    for p in state.hub.room_participants(&room).await.unwrap_or_default() {
        let on_side = case
            .member(&p.identity)
            .is_some_and(|m| matches!(m.role, Role::Party | Role::Agent) && m.side == Some(side));
        let mediator = b.with_mediator && p.identity == mover;
        // Someone who left meanwhile is skipped, not a reason to leave the side split.
        if (on_side || mediator)
            && p.space != Place::Lobby
            && let Err(e) = state.hub.move_participant(&room, &p.identity, place).await
        {
            tracing::warn!(%room, participant = %p.identity, error = %e.message, "side move skipped");
        }
    }
    Ok(Json(view(&state, case, &viewer).await?))
}

#[utoipa::path(get, path = "/api/cases/{case}/sessions/{n}/minutes", params(("case" = String, Path), ("n" = u32, Path)), responses(
    (status = 200, body = Minutes), (status = 403, body = ErrorBody)))]
async fn read_minutes(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n)): ApiPath<(CaseId, u32)>,
) -> Result<Json<Minutes>, ApiError> {
    let s = authorize(&state, claims, &case_id, Action::MinutesRead, None).await?;
    s.case.session(n)?;
    let minutes = state.hub.store().minutes(&case_id, n).await?;
    audit(
        &state,
        &s.claims,
        AuditAction::Act(Action::MinutesRead),
        &target(&case_id),
        &format!("session {n} revision {}", minutes.revision),
    )
    .await?;
    Ok(Json(minutes))
}

/// Saving the minutes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MinutesBody {
    /// The revision the editor started from (0 for the first save).
    pub base_revision: i64,
    /// The whole text.
    pub text: String,
}

/// Longest minutes accepted (characters).
const MAX_MINUTES_CHARS: usize = 200_000;

#[utoipa::path(put, path = "/api/cases/{case}/sessions/{n}/minutes", params(("case" = String, Path), ("n" = u32, Path)), request_body = MinutesBody, responses(
    (status = 200, body = Minutes), (status = 403, body = ErrorBody), (status = 409, description = "saved over a newer revision", body = ErrorBody)))]
async fn save_minutes(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n)): ApiPath<(CaseId, u32)>,
    body: Result<ApiJson<MinutesBody>, ApiError>,
) -> Result<Json<Minutes>, ApiError> {
    let ApiJson(b) = body?;
    let s = authorize(&state, claims, &case_id, Action::MinutesEdit, None).await?;
    let session = s.case.session(n)?;
    if s.case.outcome.is_some() || session.phase == tiaojie_domain::mediation::Phase::Ended {
        return Err(RuleError::MinutesClosed.into());
    }
    if b.text.chars().count() > MAX_MINUTES_CHARS {
        return Err(RuleError::TextLength {
            field: tiaojie_domain::mediation::Field::Minutes,
            max: MAX_MINUTES_CHARS,
        }
        .into());
    }
    let now = state.hub.clock.now();
    let minutes = state
        .hub
        .store()
        .save_minutes(&case_id, n, b.base_revision, &b.text, &s.claims.sub, now)
        .await?;
    audit(
        &state,
        &s.claims,
        AuditAction::Act(Action::MinutesEdit),
        &target(&case_id),
        &format!(
            "session {n} revision {} sha256 {}",
            minutes.revision, minutes.sha256
        ),
    )
    .await?;
    state
        .hub
        .announce(&session.room, Audience::All, |seq| Event::MinutesUpdated {
            seq,
            case: case_id.clone(),
            session: n,
            revision: minutes.revision,
            sha256: minutes.sha256.clone(),
        })
        .await;
    Ok(Json(minutes))
}

/// Confirming the minutes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    /// The revision read.
    pub revision: i64,
}

#[utoipa::path(put, path = "/api/cases/{case}/sessions/{n}/members/{person}/minutes-confirmation", params(("case" = String, Path), ("n" = u32, Path), ("person" = String, Path)), request_body = ConfirmBody, responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn confirm_minutes(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n, person)): ApiPath<(CaseId, u32, PersonId)>,
    body: Result<ApiJson<ConfirmBody>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(b) = body?;
    let current = state.hub.store().minutes(&case_id, n).await?;
    let detail = format!("{person} revision {}", b.revision);
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::MinutesConfirm,
        Some(&person),
        detail,
        |c| c.confirm_minutes(n, &person, b.revision, (current.revision, &current.sha256)),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

#[utoipa::path(post, path = "/api/cases/{case}/sessions/{n}/minutes/replace-by-recording", params(("case" = String, Path), ("n" = u32, Path)), responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, description = "a party has not consented, or the session has no recording", body = ErrorBody)))]
async fn replace_minutes(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n)): ApiPath<(CaseId, u32)>,
) -> Result<Json<CaseView>, ApiError> {
    // A recording of the session's room (live or finished) must exist to stand for the minutes.
    // (Read quietly: a missing case or a caller who may not act gets the command's own error.)
    let room = state
        .hub
        .store()
        .case(&case_id)
        .await
        .ok()
        .and_then(|c| c.session(n).ok().map(|s| s.room.clone()));
    let recorded =
        room.is_some_and(|room| state.hub.recorders().list().iter().any(|r| r.room == room));
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::MinutesEdit,
        None,
        format!("session {n}"),
        |c| c.replace_minutes_by_recording(n, recorded),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

/// A rating.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingBody {
    /// 1–5.
    pub score: u8,
    /// Free text.
    #[serde(default)]
    pub comment: String,
}

#[utoipa::path(put, path = "/api/cases/{case}/sessions/{n}/members/{person}/rating", params(("case" = String, Path), ("n" = u32, Path), ("person" = String, Path)), request_body = RatingBody, responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn rate_session(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n, person)): ApiPath<(CaseId, u32, PersonId)>,
    body: Result<ApiJson<RatingBody>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(b) = body?;
    let detail = format!("{person} session {n} score {}", b.score);
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::RatingSubmit,
        Some(&person),
        detail,
        |c| c.rate(n, &person, b.score, &b.comment),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

/// The agreement with who still has to sign.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgreementView {
    /// Versions, signatures, refusal, effect.
    #[serde(flatten)]
    pub agreement: AgreementState,
    /// Required signers who have not signed the current version.
    pub unsigned: Vec<PersonId>,
}

#[utoipa::path(get, path = "/api/cases/{case}/agreement", params(("case" = String, Path)), responses(
    (status = 200, body = AgreementView), (status = 403, body = ErrorBody)))]
async fn read_agreement(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
) -> Result<Json<AgreementView>, ApiError> {
    let s = authorize(&state, claims, &case_id, Action::AgreementRead, None).await?;
    let version = s.case.agreement.current().map_or(0, |v| v.version);
    audit(
        &state,
        &s.claims,
        AuditAction::Act(Action::AgreementRead),
        &target(&case_id),
        &format!("version {version}"),
    )
    .await?;
    Ok(Json(AgreementView {
        unsigned: s.case.unsigned().iter().map(|m| m.id.clone()).collect(),
        agreement: s.case.agreement,
    }))
}

#[derive(Debug, Deserialize)]
struct DocumentQuery {
    version: Option<u32>,
}

#[utoipa::path(get, path = "/api/cases/{case}/agreement/document", params(("case" = String, Path), ("version" = Option<u32>, Query, description = "a version (default: the current one)")), responses(
    (status = 200, description = "the 调解协议书 as PDF: the parties with their identity checks, the text as signed, each signature, the text's SHA-256 and the recordings' chain heads", content_type = "application/pdf"),
    (status = 403, body = ErrorBody), (status = 404, description = "no such agreement version", body = ErrorBody),
    (status = 503, description = "documents_unavailable: the server has no Chinese font", body = ErrorBody)))]
async fn agreement_document(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
    ApiQuery(query): ApiQuery<DocumentQuery>,
) -> Result<Response, ApiError> {
    let s = authorize(&state, claims, &case_id, Action::AgreementRead, None).await?;
    let rooms: Vec<RoomName> = s.case.sessions.iter().map(|x| x.room.clone()).collect();
    let recordings = recording_heads(&state, &rooms)
        .into_iter()
        .map(|r| r.chain_head)
        .collect();
    let issuer = &state.config.documents.issuer;
    let document = crate::documents::agreement(&s.case, query.version, issuer, recordings)
        .ok_or_else(|| {
            SignalError::because(
                ErrorCode::NotFound,
                SignalReason::NoSuchVersion {
                    version: query.version.unwrap_or(0),
                },
            )
        })?;
    let detail = format!("version {} ({})", document.version, document.sha256);
    let pdf = render(&state, move |fonts| {
        tiaojie_documents::render_agreement(fonts, &document)
    })
    .await?;
    // The read is recorded before anything is served.
    audit(
        &state,
        &s.claims,
        AuditAction::AgreementDownload,
        &target(&case_id),
        &detail,
    )
    .await?;
    Ok(pdf_response(pdf, &format!("agreement-{case_id}.pdf")))
}

#[utoipa::path(get, path = "/api/cases/{case}/sessions/{n}/minutes/document", params(("case" = String, Path), ("n" = u32, Path)), responses(
    (status = 200, description = "the 调解笔录 as PDF: when, who attended, the text, its revision and SHA-256, the parties' confirmations", content_type = "application/pdf"),
    (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 503, description = "documents_unavailable: the server has no Chinese font", body = ErrorBody)))]
async fn minutes_document(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, n)): ApiPath<(CaseId, u32)>,
) -> Result<Response, ApiError> {
    let s = authorize(&state, claims, &case_id, Action::MinutesRead, None).await?;
    let room = s.case.session(n)?.room.clone();
    let text = state.hub.store().minutes(&case_id, n).await?;
    let recordings = recording_heads(&state, &[room])
        .into_iter()
        .map(|r| r.chain_head)
        .collect();
    let issuer = &state.config.documents.issuer;
    let document = crate::documents::minutes(&s.case, n, &text, issuer, recordings)
        .ok_or(RuleError::NoSuchSession { session: n })?;
    let detail = format!("session {n} revision {} ({})", text.revision, text.sha256);
    let pdf = render(&state, move |fonts| {
        tiaojie_documents::render_minutes(fonts, &document)
    })
    .await?;
    audit(
        &state,
        &s.claims,
        AuditAction::MinutesDownload,
        &target(&case_id),
        &detail,
    )
    .await?;
    Ok(pdf_response(pdf, &format!("minutes-{case_id}-{n}.pdf")))
}

#[utoipa::path(get, path = "/api/cases/{case}/confirmation/ruling", params(("case" = String, Path)), responses(
    (status = 200, description = "the court's 民事裁定书 as it came back from the court network (PDF); its SHA-256 is in the case's court update", content_type = "application/pdf"),
    (status = 403, body = ErrorBody), (status = 404, description = "the court has sent no ruling document", body = ErrorBody)))]
async fn ruling_document(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
) -> Result<Response, ApiError> {
    let s = authorize(&state, claims, &case_id, Action::CaseRead, None).await?;
    let Some(pdf) = state.hub.store().court_document(&case_id).await? else {
        return Err(
            SignalError::because(ErrorCode::NotFound, SignalReason::NoRulingDocument).into(),
        );
    };
    let sha = tiaojie_domain::mediation::agreement::sha256_hex(&pdf);
    audit(
        &state,
        &s.claims,
        AuditAction::RulingDownload,
        &target(&case_id),
        &sha,
    )
    .await?;
    Ok(pdf_response(pdf, &format!("ruling-{case_id}.pdf")))
}

/// Sets a document off the async threads (a few milliseconds of work, a little more in a
/// debug build).
async fn render(
    state: &AppState,
    make: impl FnOnce(
        &tiaojie_documents::Fonts,
    ) -> Result<tiaojie_documents::Rendered, tiaojie_documents::FontError>
    + Send
    + 'static,
) -> Result<Vec<u8>, ApiError> {
    let Some(fonts) = state.fonts.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::DocumentsUnavailable,
            "no Chinese font is installed (fonts-noto-cjk) or set (documents.font)",
        ));
    };
    let rendered = tokio::task::spawn_blocking(move || make(&fonts))
        .await
        .map_err(|e| SignalError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| {
            tracing::error!(error = %e, "a document could not be made");
            SignalError::new(ErrorCode::DocumentsUnavailable, e.to_string())
        })?;
    if !rendered.missing.is_empty() {
        tracing::warn!(missing = ?rendered.missing, "characters the font lacks, shown as boxes");
    }
    Ok(rendered.bytes)
}

fn pdf_response(pdf: Vec<u8>, name: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        pdf,
    )
        .into_response()
}

/// Drafting a version: the whole text, or terms filled into a template.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftBody {
    /// The whole text (exclusive with `terms`).
    #[serde(default)]
    pub text: Option<String>,
    /// The agreed terms, filled into `template` (or the default template).
    #[serde(default)]
    pub terms: Option<String>,
    /// A template with `{{placeholders}}`.
    #[serde(default)]
    pub template: Option<String>,
}

#[utoipa::path(post, path = "/api/cases/{case}/agreement/versions", params(("case" = String, Path)), request_body = DraftBody, responses(
    (status = 200, body = AgreementView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn draft_agreement(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
    body: Result<ApiJson<DraftBody>, ApiError>,
) -> Result<Json<AgreementView>, ApiError> {
    let ApiJson(b) = body?;
    let (case, _) = command(
        &state,
        claims,
        &case_id,
        Action::AgreementDraft,
        None,
        String::new(),
        |c| {
            let text = match (&b.text, &b.terms) {
                (Some(text), None) => text.clone(),
                (None, Some(terms)) => fill_template(
                    b.template.as_deref().unwrap_or(DEFAULT_TEMPLATE),
                    &TemplateData {
                        case_number: &c.number,
                        case_type: &c.case_type,
                        claim_amount: c.claim_amount,
                        members: &c.members,
                        terms,
                    },
                )?,
                _ => return Err(RuleError::TextOrTerms),
            };
            c.draft(&text)
        },
    )
    .await?;
    Ok(Json(AgreementView {
        unsigned: case.unsigned().iter().map(|m| m.id.clone()).collect(),
        agreement: case.agreement,
    }))
}

/// A signature: the version and hash the signer was shown.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignBody {
    /// Version.
    pub version: u32,
    /// Its SHA-256 as shown.
    pub sha256: String,
}

#[utoipa::path(put, path = "/api/cases/{case}/agreement/signatures/{person}", params(("case" = String, Path), ("person" = String, Path)), request_body = SignBody, responses(
    (status = 200, body = AgreementView), (status = 403, description = "signing for someone else", body = ErrorBody), (status = 409, description = "not the current version", body = ErrorBody)))]
async fn sign_agreement(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, person)): ApiPath<(CaseId, PersonId)>,
    body: Result<ApiJson<SignBody>, ApiError>,
) -> Result<Json<AgreementView>, ApiError> {
    let ApiJson(b) = body?;
    let detail = format!("{person} version {} sha256 {}", b.version, b.sha256);
    let (case, _) = command(
        &state,
        claims,
        &case_id,
        Action::AgreementSign,
        Some(&person),
        detail,
        |c| c.sign(&person, b.version, &b.sha256),
    )
    .await?;
    Ok(Json(AgreementView {
        unsigned: case.unsigned().iter().map(|m| m.id.clone()).collect(),
        agreement: case.agreement,
    }))
}

/// A refusal to sign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefuseBody {
    /// The version refused.
    pub version: u32,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

#[utoipa::path(put, path = "/api/cases/{case}/agreement/refusals/{person}", params(("case" = String, Path), ("person" = String, Path)), request_body = RefuseBody, responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn refuse_agreement(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, person)): ApiPath<(CaseId, PersonId)>,
    body: Result<ApiJson<RefuseBody>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(b) = body?;
    let detail = format!("{person} version {}", b.version);
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::AgreementRefuse,
        Some(&person),
        detail,
        |c| c.refuse(&person, b.version, &b.reason),
    )
    .await?;
    close_session_rooms(
        &state,
        &case,
        tiaojie_signaling::protocol::reason::MEDIATION_ENDED,
    )
    .await;
    Ok(Json(view(&state, case, &viewer).await?))
}

async fn close_session_rooms(state: &AppState, case: &CaseState, reason: &str) {
    for s in &case.sessions {
        if state.hub.is_live(&s.room) {
            let _ = state.hub.close_room(&s.room, reason).await;
        }
    }
}

#[utoipa::path(post, path = "/api/cases/{case}/outcome", params(("case" = String, Path)), request_body = Outcome, responses(
    (status = 200, body = CaseView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn record_outcome(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
    body: Result<ApiJson<Outcome>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(outcome) = body?;
    let detail = outcome.describe();
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::OutcomeRecord,
        None,
        detail,
        |c| c.record_outcome(&outcome),
    )
    .await?;
    close_session_rooms(
        &state,
        &case,
        tiaojie_signaling::protocol::reason::MEDIATION_ENDED,
    )
    .await;
    Ok(Json(view(&state, case, &viewer).await?))
}

/// A proposed extension of the time limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// Days (1–30).
    pub days: i64,
}

#[utoipa::path(post, path = "/api/cases/{case}/deadline/extensions", params(("case" = String, Path)), request_body = ExtendBody, responses(
    (status = 200, description = "proposed; each party answers with PUT .../members/{person}/extension-consent", body = CaseView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn extend_deadline(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
    body: Result<ApiJson<ExtendBody>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(b) = body?;
    let detail = format!("{} days proposed", b.days);
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::DeadlineChange,
        None,
        detail,
        |c| c.propose_extension(b.days),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

/// A party's answer to a proposed extension.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionAnswer {
    /// Agree or not.
    pub agreed: bool,
}

#[utoipa::path(put, path = "/api/cases/{case}/members/{person}/extension-consent", params(("case" = String, Path), ("person" = String, Path)), request_body = ExtensionAnswer, responses(
    (status = 200, description = "answered; the last party's agreement extends the limit", body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn answer_extension(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, person)): ApiPath<(CaseId, PersonId)>,
    body: Result<ApiJson<ExtensionAnswer>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(b) = body?;
    let detail = format!("{person} agreed={}", b.agreed);
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::ConsentGive,
        Some(&person),
        detail,
        |c| c.answer_extension(&person, b.agreed),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

/// Pausing (appraisal) or resuming the time limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// Pause (`true`) or resume (`false`).
    pub pause: bool,
    /// Why (needed to pause).
    #[serde(default)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/cases/{case}/deadline/pause", params(("case" = String, Path)), request_body = PauseBody, responses(
    (status = 200, body = CaseView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn pause_deadline(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(case_id): ApiPath<CaseId>,
    body: Result<ApiJson<PauseBody>, ApiError>,
) -> Result<Json<CaseView>, ApiError> {
    let ApiJson(b) = body?;
    let detail = format!("pause={} {}", b.pause, b.reason);
    let (case, viewer) = command(
        &state,
        claims,
        &case_id,
        Action::DeadlineChange,
        None,
        detail,
        |c| c.pause(b.pause, &b.reason),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

#[utoipa::path(get, path = "/api/ratings/mediators", responses(
    (status = 200, body = [MediatorRating]), (status = 403, body = ErrorBody)))]
async fn mediator_ratings(
    State(state): State<AppState>,
    Caller(claims): Caller,
) -> Result<Json<Vec<MediatorRating>>, ApiError> {
    let role = role_of(&claims);
    let asker = Asker {
        role,
        member: true,
        acting_for: None,
        person: &claims.sub,
    };
    if let Err(denied) = permission::check(Action::RatingRead, asker) {
        return Err(refuse(&state, &claims, "ratings", denied).await);
    }
    audit(
        &state,
        &claims,
        AuditAction::Act(Action::RatingRead),
        "ratings",
        "",
    )
    .await?;
    Ok(Json(state.hub.store().mediator_ratings().await?))
}

// ---- judicial confirmation ----

/// The outbox messages a confirmation command's events make: the application package when
/// the last party applied, the withdrawal when a party withdrew.
fn confirmation_messages(
    case: &CaseState,
    recorded: &[Recorded],
    recordings: &[tiaojie_confirmation::application::RecordingHead],
    minutes: &[(u32, SessionText)],
) -> Vec<tiaojie_confirmation::Message> {
    use tiaojie_confirmation::{Body, Message};
    recorded
        .iter()
        .filter_map(|r| {
            let (message_id, body) = match &r.event {
                CaseEvent::ConfirmationSubmitted { message_id, .. } => (
                    message_id,
                    Body::Application(Box::new(
                        case.application_package(recordings.to_vec(), minutes),
                    )),
                ),
                CaseEvent::ConfirmationWithdrawn { message_id, person } => (
                    message_id,
                    Body::Withdrawal {
                        application: case
                            .confirmation
                            .submitted
                            .as_ref()
                            .map(|s| s.message_id.clone())
                            .unwrap_or_default(),
                        by: person.to_string(),
                    },
                ),
                _ => return None,
            };
            Some(Message {
                message_id: message_id.clone(),
                case_id: case.id.to_string(),
                seq: case.confirmation.messages_sent,
                created_at: r.at,
                body,
            })
        })
        .collect()
}

/// The signed manifest heads of the recordings made in the case's session rooms.
fn recording_heads(
    state: &AppState,
    rooms: &[RoomName],
) -> Vec<tiaojie_confirmation::application::RecordingHead> {
    state
        .hub
        .recorders()
        .list()
        .into_iter()
        .filter(|r| rooms.contains(&r.room))
        .filter_map(|r| {
            Some(tiaojie_confirmation::application::RecordingHead {
                chain_head: r.chain_head?,
                recording: r.id,
                room: r.room.into_string(),
            })
        })
        .collect()
}

#[utoipa::path(put, path = "/api/cases/{case}/members/{person}/confirmation-application", params(("case" = String, Path), ("person" = String, Path)), responses(
    (status = 200, description = "applied; the last party's application goes to the court (outbox, same transaction)", body = CaseView),
    (status = 403, body = ErrorBody), (status = 409, description = "no agreement in effect, 30 days passed, applied already", body = ErrorBody)))]
async fn apply_for_confirmation(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, person)): ApiPath<(CaseId, PersonId)>,
) -> Result<Json<CaseView>, ApiError> {
    let before = state.hub.store().case(&case_id).await?;
    let rooms: Vec<RoomName> = before.sessions.iter().map(|s| s.room.clone()).collect();
    let recordings = recording_heads(&state, &rooms);
    // The minutes go to the court as they stand (their text is kept beside the case's events).
    let mut minutes = Vec::new();
    for s in &before.sessions {
        let m = state.hub.store().minutes(&case_id, s.number).await?;
        minutes.push((
            s.number,
            SessionText {
                revision: m.revision,
                text: m.text,
                sha256: m.sha256,
            },
        ));
    }
    let message_id = tiaojie_signaling::ids::random_id();
    let now = state.hub.clock.now();
    let (case, viewer) = command_with_outbox(
        &state,
        claims,
        &case_id,
        Action::ConfirmationApply,
        Some(&person),
        person.to_string(),
        |c| c.apply_for_confirmation(&person, now, &message_id),
        |c, recorded| confirmation_messages(c, recorded, &recordings, &minutes),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

#[utoipa::path(post, path = "/api/cases/{case}/members/{person}/confirmation-withdrawal", params(("case" = String, Path), ("person" = String, Path)), responses(
    (status = 200, description = "withdrawn; the withdrawal goes to the court", body = CaseView),
    (status = 403, body = ErrorBody), (status = 409, description = "nothing to withdraw, or the court has ruled", body = ErrorBody)))]
async fn withdraw_confirmation(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath((case_id, person)): ApiPath<(CaseId, PersonId)>,
) -> Result<Json<CaseView>, ApiError> {
    let message_id = tiaojie_signaling::ids::random_id();
    let (case, viewer) = command_with_outbox(
        &state,
        claims,
        &case_id,
        Action::ConfirmationApply,
        Some(&person),
        person.to_string(),
        |c| c.withdraw_confirmation(&person, &message_id),
        |c, recorded| confirmation_messages(c, recorded, &[], &[]),
    )
    .await?;
    Ok(Json(view(&state, case, &viewer).await?))
}

#[derive(Debug, Deserialize)]
struct OutboxQuery {
    #[serde(default)]
    state: Option<String>,
}

#[utoipa::path(get, path = "/api/confirmation/outbox", params(("state" = Option<String>, Query, description = "pending, acked or dead")), responses(
    (status = 200, description = "outbox messages, oldest first", body = [tiaojie_store::OutboxEntry]), (status = 403, body = ErrorBody)))]
async fn confirmation_outbox(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> Result<Json<Vec<tiaojie_store::OutboxEntry>>, ApiError> {
    queue_access(&state, &claims).await?;
    Ok(Json(
        state.hub.store().outbox_entries(q.state.as_deref()).await?,
    ))
}

#[utoipa::path(post, path = "/api/confirmation/outbox/{message}/retry", params(("message" = String, Path)), responses(
    (status = 200, description = "the dead-lettered message is pending again"), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn retry_confirmation_message(
    State(state): State<AppState>,
    Caller(claims): Caller,
    ApiPath(message): ApiPath<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    queue_access(&state, &claims).await?;
    if !state.hub.store().retry_dead(&message).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no dead-lettered message {message}"),
        ));
    }
    audit(
        &state,
        &claims,
        AuditAction::ConfirmationRetry,
        &format!("message:{message}"),
        "",
    )
    .await?;
    state.court.outbox_ready.notify_waiters();
    Ok(Json(
        serde_json::json!({"message_id": message, "state": "pending"}),
    ))
}

async fn queue_access(state: &AppState, claims: &Claims) -> Result<(), ApiError> {
    let asker = Asker {
        role: role_of(claims),
        member: true,
        acting_for: None,
        person: &claims.sub,
    };
    match permission::check(Action::ConfirmationQueue, asker) {
        Ok(()) => Ok(()),
        Err(denied) => Err(refuse(state, claims, "confirmation:outbox", denied).await),
    }
}

//! Who is asking, and what they sent: the bearer token's claims ([`Admin`], [`Caller`]), and
//! path, query and JSON extractors whose rejections are [`ApiError`]s — every answer of the API
//! is the JSON its OpenAPI document describes, never axum's text. Also the page size rule.

use super::error::{ApiError, counted, json_rejection};
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use tiaojie_domain::Grant;
use tiaojie_signaling::protocol::ErrorCode;
use tiaojie_signaling::token::Claims;

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

/// Any valid token: an admin's, or a room token (its role decides what it may read).
pub struct Caller(pub Claims);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let result = bearer_claims(parts, state, "a token").await.map(Caller);
        if result.is_err() {
            counted(state, result)
        } else {
            result
        }
    }
}

/// A page size asked for: `default` when not given, an error outside 1..=`max`.
pub(crate) fn page_limit(asked: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match asked {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidRequest,
            format!("limit: 1 to {max}"),
        )),
    }
}

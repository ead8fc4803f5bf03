//! The API's one error shape (`{"error": {"code", "message", "details"}}`), the HTTP status of
//! each code, and the count of errors by code for `/metrics`.

use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::atomic::Ordering::Relaxed;
use tiaojie_signaling::hub::SignalError;
use tiaojie_signaling::protocol::{ErrorCode, ErrorDetails, SignalReason};
use utoipa::ToSchema;

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

/// The API error for a JSON body axum refused.
pub(crate) fn json_rejection(rejection: JsonRejection) -> ApiError {
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

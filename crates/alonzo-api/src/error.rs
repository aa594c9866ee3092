//! [`ApiError`]: every failure of a request, rendered in Lambda's error format
//! (`x-amzn-ErrorType` header, `{"Type": "User", "message": …}` body, the right status).
//! Internal details are logged, never sent.

use alonzo_control::ControlError;
use alonzo_model::ValidationKind;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// A Lambda-shaped error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Whether the model spells the message member `Message` (true) or `message` (false).
    capital_message: bool,
    /// Extra body members (e.g. `Reason` of a throttle).
    extra: Vec<(&'static str, String)>,
    /// `Retry-After` seconds, for throttles.
    retry_after: Option<u32>,
}

impl ApiError {
    /// An error with an explicit status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let capital_message = matches!(
            code,
            "ResourceNotFoundException"
                | "ServiceException"
                | "InvalidRuntimeException"
                | "InvalidZipFileException"
        );
        Self {
            status,
            code,
            message: message.into(),
            capital_message,
            extra: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 `InvalidParameterValueException`.
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameterValueException", message)
    }

    /// 400 `InvalidRequestContentException`, for bodies that are not the JSON expected.
    pub fn bad_content(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContentException",
            format!("Could not parse request body into json: {detail}"),
        )
    }

    /// 413 `RequestEntityTooLargeException` for an operation's body limit.
    pub fn too_large(limit: usize, operation: &str) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLargeException",
            format!("Request must be smaller than {limit} bytes for the {operation} operation"),
        )
    }

    /// 500 `ServiceException`; `detail` goes to the log only.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "An internal error occurred.",
        )
    }

    /// The error code (for logs and tests).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The message the client sees.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", m),
            ControlError::Conflict(m) => Self::new(StatusCode::CONFLICT, "ResourceConflictException", m),
            ControlError::PreconditionFailed(m) => {
                Self::new(StatusCode::PRECONDITION_FAILED, "PreconditionFailedException", m)
            }
            ControlError::Invalid(v) if v.kind == ValidationKind::Constraint => {
                Self::new(StatusCode::BAD_REQUEST, "ValidationException", v.message)
            }
            ControlError::Invalid(v) => Self::invalid_parameter(v.message),
            ControlError::Package(p) => Self::invalid_parameter(p.to_string()),
            ControlError::InvalidContent(m) => Self::new(StatusCode::BAD_REQUEST, "InvalidRequestContentException", m),
            ControlError::TooLarge { limit, operation } => Self::too_large(limit, operation),
            ControlError::ProvisionedNotFound(m) => {
                Self::new(StatusCode::NOT_FOUND, "ProvisionedConcurrencyConfigNotFoundException", m)
            }
            ControlError::PolicyTooLarge(m) => {
                Self::new(StatusCode::BAD_REQUEST, "PolicyLengthExceededException", m)
            }
            ControlError::Throttled { reason } => {
                let mut err = Self::new(StatusCode::TOO_MANY_REQUESTS, "TooManyRequestsException", "Rate Exceeded.");
                err.extra.push(("Reason", reason.to_owned()));
                err.retry_after = Some(1);
                err
            }
            ControlError::Unavailable => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                "The function could not be run; the operator can find the reason in the server log.",
            ),
            ControlError::Internal(e) => Self::internal(&e),
        }
    }
}

impl From<crate::sigv4::SigV4Error> for ApiError {
    fn from(e: crate::sigv4::SigV4Error) -> Self {
        let status = if matches!(e, crate::sigv4::SigV4Error::MissingAuthenticationToken) {
            StatusCode::FORBIDDEN
        } else if e.error_code() == "IncompleteSignatureException" {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::FORBIDDEN
        };
        let mut err = Self::new(status, e.error_code(), e.to_string());
        err.capital_message = true;
        err
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::Map::new();
        body.insert("__type".into(), self.code.into());
        body.insert(
            "Type".into(),
            (if self.status.is_server_error() { "Service" } else { "User" }).into(),
        );
        body.insert(
            (if self.capital_message { "Message" } else { "message" }).into(),
            self.message.into(),
        );
        for (key, value) in self.extra {
            body.insert(key.into(), value.into());
        }
        let mut response =
            (self.status, axum::Json(serde_json::Value::Object(body))).into_response();
        response.headers_mut().insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert("Retry-After", HeaderValue::from(secs));
        }
        response
    }
}

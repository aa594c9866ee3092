//! Dispatch of the JSON-protocol services that share the endpoint with Lambda's REST API:
//! requests to `/` name their operation in `X-Amz-Target` (`Logs_20140328.FilterLogEvents`)
//! and are signed for their own service name (`logs`, `sqs`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::{logs_api, sqs, ApiState};

/// The SigV4 service name a request must be signed for.
pub(crate) fn signing_service(headers: &HeaderMap, path: &str) -> &'static str {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    if path == "/" && target.starts_with("Logs_20140328.") {
        "logs"
    } else if path == "/" && target.starts_with("AmazonSQS.") {
        "sqs"
    } else {
        "lambda"
    }
}

/// `POST /` with an `X-Amz-Target`.
pub(crate) async fn dispatch(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let result = match target.split_once('.') {
        Some(("AmazonSQS", op)) => return sqs::handle(&state, op, &headers, &body).await,
        Some(("Logs_20140328", op)) => logs_api::handle(&state, op, &body),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            "Unknown operation.",
        )),
    };
    let mut response = match result {
        Ok(value) => (StatusCode::OK, axum::Json(value)).into_response(),
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .insert("content-type", axum::http::HeaderValue::from_static("application/x-amz-json-1.1"));
    response
}

//! Handlers of `Invoke` and the legacy `InvokeAsync`: headers in, the function's bytes out,
//! with Lambda's response headers (`X-Amz-Executed-Version`, `X-Amz-Function-Error`,
//! `X-Amz-Log-Result`).

use std::sync::Arc;

use alonzo_control::{InvocationType, InvokeInput, InvokeResult};
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::auth::RequestId;
use crate::error::ApiError;
use crate::{query, ApiState};

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

fn invocation_type(headers: &HeaderMap) -> Result<InvocationType, ApiError> {
    match header(headers, "x-amz-invocation-type").unwrap_or("RequestResponse") {
        "RequestResponse" => Ok(InvocationType::RequestResponse),
        "Event" => Ok(InvocationType::Event),
        "DryRun" => Ok(InvocationType::DryRun),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!("1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"),
        )),
    }
}

/// `POST /2015-03-31/functions/{name}/invocations`
pub(crate) async fn invoke(
    State(state): State<Arc<ApiState>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    let qualifier = query::first(&pairs, "Qualifier");
    let log_tail = match header(&headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!("Invalid LogType: {other}")))
        }
    };
    let input = InvokeInput {
        request_id,
        invocation_type: invocation_type(&headers)?,
        payload: body,
        log_tail,
        client_context_b64: header(&headers, "x-amz-client-context").map(str::to_owned),
        trace_id: header(&headers, "x-amzn-trace-id").map(str::to_owned),
    };
    let result = state.control.invoke(&name, qualifier, input).await?;
    Ok(render(result))
}

fn render(result: InvokeResult) -> Response {
    match result {
        InvokeResult::DryRun => StatusCode::NO_CONTENT.into_response(),
        InvokeResult::Queued { request_id } => {
            let mut response = StatusCode::ACCEPTED.into_response();
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert("x-amzn-RequestId", v);
            }
            response
        }
        InvokeResult::Completed(outcome) => {
            let mut response = (StatusCode::OK, outcome.body).into_response();
            let headers = response.headers_mut();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            if let Ok(v) = HeaderValue::from_str(&outcome.executed_version) {
                headers.insert("X-Amz-Executed-Version", v);
            }
            if let Some(error) = outcome.function_error.and_then(|e| HeaderValue::from_str(&e).ok())
            {
                headers.insert("X-Amz-Function-Error", error);
            }
            if let Some(tail) = outcome.log_tail {
                let encoded = base64::engine::general_purpose::STANDARD.encode(tail.as_bytes());
                if let Ok(v) = HeaderValue::from_str(&encoded) {
                    headers.insert("X-Amz-Log-Result", v);
                }
            }
            response
        }
    }
}

/// `POST /2014-11-13/functions/{name}/invoke-async` (deprecated): an `Event` invocation.
pub(crate) async fn invoke_async(
    State(state): State<Arc<ApiState>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = InvokeInput {
        request_id,
        invocation_type: InvocationType::Event,
        payload: body,
        log_tail: false,
        client_context_b64: None,
        trace_id: None,
    };
    match state.control.invoke(&name, None, input).await? {
        InvokeResult::Queued { request_id } => {
            let mut response =
                (StatusCode::ACCEPTED, axum::Json(serde_json::json!({ "Status": 202 })))
                    .into_response();
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                response.headers_mut().insert("x-amzn-RequestId", v);
            }
            Ok(response)
        }
        other => Ok(render(other)),
    }
}

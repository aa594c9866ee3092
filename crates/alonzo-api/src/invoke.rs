//! Handlers of `Invoke`, `InvokeWithResponseStream` and the legacy `InvokeAsync`: headers
//! in, the function's bytes out, with Lambda's response headers (`X-Amz-Executed-Version`,
//! `X-Amz-Function-Error`, `X-Amz-Log-Result`), or for the streaming operation an
//! `application/vnd.amazon.eventstream` body of `PayloadChunk` events as the function
//! writes them and a closing `InvokeComplete`.

use std::sync::Arc;

use alonzo_control::{InvocationType, InvokeInput, InvokeOutcome, InvokeResult};
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::auth::RequestId;
use crate::error::ApiError;
use crate::{event_stream, query, ApiState};

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

fn log_tail(headers: &HeaderMap) -> Result<bool, ApiError> {
    match header(headers, "x-amz-log-type") {
        None | Some("None") => Ok(false),
        Some("Tail") => Ok(true),
        Some(other) => Err(ApiError::invalid_parameter(format!("Invalid LogType: {other}"))),
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
    let input = InvokeInput {
        request_id,
        invocation_type: invocation_type(&headers)?,
        payload: body,
        log_tail: log_tail(&headers)?,
        client_context_b64: header(&headers, "x-amz-client-context").map(str::to_owned),
        trace_id: header(&headers, "x-amzn-trace-id").map(str::to_owned),
        stream: false,
    };
    let result = state.control.invoke(&name, qualifier, input).await?;
    Ok(render(result))
}

/// `POST /2021-11-15/functions/{name}/response-streaming-invocations`
/// (`InvokeWithResponseStream`). Failures before the function runs (unknown function,
/// throttling, bad parameters) are ordinary Lambda errors; once it runs the answer is 200
/// and a function error is reported in the closing `InvokeComplete` event.
pub(crate) async fn invoke_with_response_stream(
    State(state): State<Arc<ApiState>>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    let qualifier = query::first(&pairs, "Qualifier");
    let invocation_type = match header(&headers, "x-amz-invocation-type").unwrap_or("RequestResponse") {
        "RequestResponse" => InvocationType::RequestResponse,
        "DryRun" => InvocationType::DryRun,
        other => return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            format!("1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [RequestResponse, DryRun]"),
        )),
    };
    let input = InvokeInput {
        request_id,
        invocation_type,
        payload: body,
        log_tail: log_tail(&headers)?,
        client_context_b64: header(&headers, "x-amz-client-context").map(str::to_owned),
        trace_id: header(&headers, "x-amzn-trace-id").map(str::to_owned),
        stream: true,
    };
    match state.control.invoke(&name, qualifier, input).await? {
        InvokeResult::Completed(outcome) => Ok(event_stream_response(outcome)),
        other => Ok(render(other)),
    }
}

/// Writes frames to the response body in the background; the answer's headers go out at
/// once. A caller that hangs up drops the receivers, and the function runs on unobserved.
fn event_stream_response(outcome: InvokeOutcome) -> Response {
    let (mut tx, body) =
        http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(4);
    let version = HeaderValue::from_str(&outcome.executed_version).ok();
    tokio::spawn(async move {
        let end = match outcome.stream {
            None => {
                // A buffered response: one chunk (an error is reported in `InvokeComplete`).
                if outcome.function_error.is_none() {
                    for piece in outcome.body.chunks(event_stream::MAX_CHUNK) {
                        if tx.send_data(event_stream::payload_chunk(piece)).await.is_err() {
                            return;
                        }
                    }
                }
                InvokeOutcome { stream: None, ..outcome }
            }
            Some(mut stream) => {
                while let Some(chunk) = stream.chunks.recv().await {
                    for piece in chunk.chunks(event_stream::MAX_CHUNK) {
                        if tx.send_data(event_stream::payload_chunk(piece)).await.is_err() {
                            return;
                        }
                    }
                }
                match stream.end.await {
                    Ok(end) => end,
                    Err(_) => return,
                }
            }
        };
        let _ = tx.send_data(complete_event(&end)).await;
    });
    let mut response = Response::new(axum::body::Body::new(body));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/vnd.amazon.eventstream"));
    if let Some(v) = version {
        headers.insert("X-Amz-Executed-Version", v);
    }
    response
}

/// The `InvokeComplete` event of an ended invocation: `ErrorCode` is the error type
/// (`Runtime.StreamError`, `Sandbox.Timedout`…), `ErrorDetails` its message.
fn complete_event(end: &InvokeOutcome) -> Bytes {
    let log = end
        .log_tail
        .as_ref()
        .map(|tail| base64::engine::general_purpose::STANDARD.encode(tail.as_bytes()));
    let (code, details) = match &end.function_error {
        None => (None, None),
        Some(kind) => {
            let doc: Option<serde_json::Value> = serde_json::from_slice(&end.body).ok();
            let message = doc
                .as_ref()
                .and_then(|d| d.get("errorMessage"))
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| String::from_utf8_lossy(&end.body).into_owned(), str::to_owned);
            (Some(end.error_type.clone().unwrap_or_else(|| kind.clone())), Some(message))
        }
    };
    event_stream::invoke_complete(code.as_deref(), details.as_deref(), log.as_deref())
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
        stream: false,
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

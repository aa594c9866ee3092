//! The HTTP front door of function URLs: requests to `/lambda-url/<url-id>/…` (or to any path
//! with `Host: <url-id>.lambda-url.<region>.<domain>`) skip the Lambda API's SigV4 check and
//! are answered here: CORS preflights by the platform, then authorisation (`NONE`: a
//! resource-policy statement must allow `lambda:InvokeFunctionUrl` to `*`; `AWS_IAM`: a valid
//! SigV4 signature for service `lambda`), then a synchronous invocation with the payload
//! format 2.0 event, whose result becomes the HTTP answer.
//!
//! `RESPONSE_STREAM` URLs send the function's streamed response with chunked transfer
//! encoding as it is written: a stream that starts with an HTTP prelude
//! (`awslambda.HttpResponseStream.from`: JSON, then eight NUL bytes) gives the status and
//! headers; a mid-stream failure cuts the body short. A function that does not stream is
//! answered as in buffered mode.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use alonzo_control::{ControlError, InvocationType, InvokeInput, InvokeOutcome, InvokeResult};
use alonzo_model::InvokeMode;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};

use crate::auth::{self, RequestId, INVOKE_BODY_LIMIT};
use crate::http_event::{self, EventContext, HttpRequest, HttpResponse, IamCaller, PayloadFormat};
use crate::url_configs::URL_PATH_PREFIX;
use crate::{sigv4, ApiState};

/// Target of the access log lines of function URLs and routes.
pub(crate) const ACCESS_LOG: &str = "alonzo::access";

/// A bare `{"Message": …}` answer, as the function URL front end sends its errors.
pub(crate) fn message(status: StatusCode, text: &str) -> Response {
    let mut response = (status, axum::Json(serde_json::json!({ "Message": text }))).into_response();
    if status == StatusCode::FORBIDDEN {
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static("AccessDeniedException"));
    }
    response
}

/// `Root=1-<epoch hex>-<24 hex>;Sampled=0`: a fresh X-Ray trace id.
pub(crate) fn new_trace_id() -> String {
    alonzo_control::new_trace_root()
}

/// The URL id a `Host` header names for host-based routing: `<id>.lambda-url.<region>.…`.
pub(crate) fn url_id_from_host(host: &str) -> Option<&str> {
    let mut labels = host.split('.');
    let id = labels.next()?;
    (labels.next()? == "lambda-url" && labels.next().is_some() && alonzo_model::is_url_id(id))
        .then_some(id)
}

/// Splits `/lambda-url/<id>[/rest]` into the id and the path relative to the URL root.
fn split_url_path(path: &str) -> Option<(&str, String)> {
    let rest = path.strip_prefix(URL_PATH_PREFIX)?;
    let (id, tail) = rest.split_once('/').map_or((rest, ""), |(id, tail)| (id, tail));
    Some((id, format!("/{tail}")))
}

/// Handler of `/lambda-url/{id}` and `/lambda-url/{id}/{*rest}` (any method).
pub(crate) async fn by_path(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    match split_url_path(&path) {
        Some((id, relative)) => serve(&state, id.to_owned(), relative, req).await,
        None => message(StatusCode::FORBIDDEN, "Forbidden"),
    }
}

/// Middleware: a request whose `Host` names a function URL is served by that URL, whatever
/// its path.
pub(crate) async fn by_host(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    match url_id_from_host(host) {
        Some(id) => {
            let (id, path) = (id.to_owned(), req.uri().path().to_owned());
            serve(&state, id, path, req).await
        }
        None => next.run(req).await,
    }
}

async fn serve(state: &ApiState, url_id: String, relative_path: String, req: Request) -> Response {
    let started = Instant::now();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |r| r.0.clone());
    let source_ip = source_ip(&req);
    let trace_id = req
        .headers()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(new_trace_id, str::to_owned);
    let method = req.method().as_str().to_owned();
    let mut response =
        answer(state, &url_id, relative_path.clone(), req, &request_id, source_ip, &trace_id).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-RequestId", v);
    }
    if let Ok(v) = HeaderValue::from_str(&trace_id) {
        headers.insert("X-Amzn-Trace-Id", v);
    }
    tracing::info!(
        target: ACCESS_LOG,
        kind = "function-url",
        url_id = %url_id,
        method = %method,
        path = %relative_path,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64,
        request_id = %request_id,
        "function URL request"
    );
    response
}

/// Turns a converted answer into an axum response.
pub(crate) fn to_response(r: HttpResponse) -> Response {
    let mut response = Response::new(Body::from(r.body));
    *response.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    for (name, value) in r.headers {
        if let (Ok(n), Ok(v)) =
            (http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value))
        {
            headers.append(n, v);
        }
    }
    response
}

/// Reads the body within the synchronous invocation limit; `Err` is the 413 answer.
pub(crate) async fn read_body(body: Body, headers: &HeaderMap) -> Result<Vec<u8>, Response> {
    let too_large = || message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > INVOKE_BODY_LIMIT) {
        auth::drain(body).await;
        return Err(too_large());
    }
    match auth::read_limited(body, INVOKE_BODY_LIMIT).await {
        Some(bytes) => Ok(bytes.to_vec()),
        None => Err(too_large()),
    }
}

#[allow(clippy::too_many_arguments)] // one call site; the pieces are what the log also needs
async fn answer(
    state: &ApiState,
    url_id: &str,
    relative_path: String,
    req: Request,
    request_id: &str,
    source_ip: String,
    trace_id: &str,
) -> Response {
    let access = match state.control.url_access(url_id).await {
        Ok(a) => a,
        Err(ControlError::NotFound(_)) => return message(StatusCode::FORBIDDEN, "Forbidden"),
        Err(e) => {
            tracing::error!(error = %e, "looking up a function URL failed");
            return message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
    };
    let url = access.url;
    let (parts, body) = req.into_parts();
    if http_event::is_preflight(url.cors.as_ref(), parts.method.as_str(), &parts.headers) {
        let cors = url.cors.as_ref().expect("is_preflight checked the configuration");
        let headers = http_event::preflight_headers(cors, &parts.headers);
        return to_response(HttpResponse { status: 200, headers, body: Vec::new() });
    }
    let body = match read_body(body, &parts.headers).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let iam = match url.auth_type {
        alonzo_model::UrlAuthType::None if access.public_invoke_allowed => None,
        alonzo_model::UrlAuthType::None => return message(StatusCode::FORBIDDEN, "Forbidden"),
        alonzo_model::UrlAuthType::AwsIam => match verify_iam(state, &parts, &body) {
            Some(caller) => Some(caller),
            None => return message(StatusCode::FORBIDDEN, "Forbidden"),
        },
    };
    let domain_name =
        crate::code::request_host(&parts.headers).unwrap_or_else(|| state.public_host.clone());
    let request = HttpRequest::from_parts(&parts, relative_path, body, source_ip);
    let context = EventContext {
        account_id: iam.as_ref().map_or_else(|| "anonymous".to_owned(), |i| i.account_id.clone()),
        api_id: url.url_id.clone(),
        domain_name,
        domain_prefix: url.url_id.clone(),
        request_id: request_id.to_owned(),
        route_key: "$default".into(),
        stage: "$default".into(),
        time: chrono::Utc::now(),
        resource: "$default".into(),
        path_parameters: Default::default(),
        stage_variables: Default::default(),
        iam,
    };
    let event = http_event::event_v2(&request, &context);
    let (function, qualifier) = (&url.function, url.qualifier.as_deref());
    let answer = match url.invoke_mode {
        InvokeMode::Buffered => {
            invoke(state, function, qualifier, &event, request_id, trace_id, PayloadFormat::V2)
                .await
                .map(Answer::Whole)
                .map_err(url_failure)
        }
        InvokeMode::ResponseStream => {
            invoke_streamed(state, function, qualifier, &event, request_id, trace_id).await
        }
    };
    match answer {
        Err(r) => r,
        Ok(Answer::Whole(mut response)) => {
            if let Some(cors) = &url.cors {
                http_event::apply_cors(cors, &parts.headers, &mut response);
            }
            to_response(response)
        }
        Ok(Answer::Streamed { mut head, first, outcome }) => {
            if let Some(cors) = &url.cors {
                http_event::apply_cors(cors, &parts.headers, &mut head);
            }
            streamed_response(head, first, outcome)
        }
    }
}

/// What a function URL sends back.
enum Answer {
    /// A whole body.
    Whole(HttpResponse),
    /// Status and headers now, then `first` and the rest of the stream.
    Streamed { head: HttpResponse, first: Bytes, outcome: InvokeOutcome },
}

/// Longest HTTP prelude of a streamed response.
const MAX_PRELUDE: usize = 1 << 20;

/// Invokes `function` for a `RESPONSE_STREAM` URL: the answer's head is known once the
/// stream's prelude (if it has one) has arrived.
async fn invoke_streamed(
    state: &ApiState,
    function: &str,
    qualifier: Option<&str>,
    event: &serde_json::Value,
    request_id: &str,
    trace_id: &str,
) -> Result<Answer, Response> {
    let payload = event.to_string();
    if payload.len() > INVOKE_BODY_LIMIT {
        return Err(message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"));
    }
    let input = InvokeInput {
        request_id: request_id.to_owned(),
        invocation_type: InvocationType::RequestResponse,
        payload: payload.into(),
        log_tail: false,
        client_context_b64: None,
        trace_id: Some(trace_id.to_owned()),
        stream: true,
    };
    let bad_gateway = || message(StatusCode::BAD_GATEWAY, "Internal Server Error");
    let mut outcome = match state.control.invoke(function, qualifier, input).await {
        Ok(InvokeResult::Completed(outcome)) => outcome,
        Ok(_) => return Err(bad_gateway()),
        Err(e) => return Err(invoke_error(function, e)),
    };
    if outcome.function_error.is_some() {
        tracing::info!(function, error_type = ?outcome.error_type, "function error behind an HTTP front door");
        return Err(bad_gateway());
    }
    let Some(stream) = outcome.stream.as_mut() else {
        // The function did not stream: its result is an ordinary payload 2.0 answer.
        return http_event::http_response(&outcome.body, PayloadFormat::V2)
            .map(Answer::Whole)
            .map_err(|e| {
                tracing::info!(function, error = %e, "function result is not a valid HTTP response");
                bad_gateway()
            });
    };
    if stream.content_type.as_deref() != Some(http_event::HTTP_INTEGRATION_CONTENT_TYPE) {
        let content_type =
            stream.content_type.clone().unwrap_or_else(|| "application/octet-stream".into());
        let head = HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), content_type)],
            body: Vec::new(),
        };
        return Ok(Answer::Streamed { head, first: Bytes::new(), outcome });
    }
    let mut buf = BytesMut::new();
    let end = loop {
        match stream.chunks.recv().await {
            Some(chunk) => {
                buf.extend_from_slice(&chunk);
                if let Some(end) = http_event::find_prelude_end(&buf) {
                    break end;
                }
                if buf.len() > MAX_PRELUDE {
                    tracing::info!(function, "streamed response prelude too long");
                    return Err(bad_gateway());
                }
            }
            None => {
                tracing::info!(function, "streamed response ended before its prelude did");
                return Err(bad_gateway());
            }
        }
    };
    let first = buf.split_off(end + http_event::PRELUDE_DELIMITER.len()).freeze();
    let head = http_event::stream_prelude(&buf[..end]).map_err(|e| {
        tracing::info!(function, error = %e, "streamed response prelude is not valid");
        bad_gateway()
    })?;
    Ok(Answer::Streamed { head, first, outcome })
}

/// The answer whose head is `head` and whose body is `first` followed by the rest of the
/// stream, chunk by chunk; a function error after the head went out cuts the body short
/// (no final chunk), so the client sees an incomplete response.
fn streamed_response(head: HttpResponse, first: Bytes, outcome: InvokeOutcome) -> Response {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    let function_error = outcome.function_error.clone();
    tokio::spawn(async move {
        if !first.is_empty() && tx.send_data(first).await.is_err() {
            return;
        }
        let Some(mut stream) = outcome.stream else {
            if function_error.is_some() {
                tx.abort(std::io::Error::other("function error"));
            }
            return;
        };
        while let Some(chunk) = stream.chunks.recv().await {
            if tx.send_data(chunk).await.is_err() {
                return;
            }
        }
        match stream.end.await {
            Ok(end) if end.function_error.is_none() => {}
            Ok(end) => {
                tracing::info!(error_type = ?end.error_type, "function error in a streamed function URL response");
                tx.abort(std::io::Error::other("function error"));
            }
            Err(_) => tx.abort(std::io::Error::other("the invocation ended without an outcome")),
        }
    });
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    for (name, value) in head.headers {
        if let (Ok(n), Ok(v)) =
            (http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value))
        {
            headers.append(n, v);
        }
    }
    response
}

/// The function URL answer for an invocation that could not run.
fn invoke_error(function: &str, e: ControlError) -> Response {
    url_failure(failure_of(function, e))
}

/// Why an HTTP front door's invocation produced no answer; each front door renders it in
/// its own error format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvokeFailure {
    /// The event is over the synchronous payload limit (413).
    TooLarge,
    /// A concurrency or scaling limit was reached (429).
    Throttled,
    /// The function (or its qualifier) does not exist.
    NoFunction,
    /// A function error, a result that is not a valid answer, or a platform failure.
    Failed,
}

/// Invokes `function` synchronously with an HTTP event and converts its result with the
/// rules of `format`.
pub(crate) async fn invoke(
    state: &ApiState,
    function: &str,
    qualifier: Option<&str>,
    event: &serde_json::Value,
    request_id: &str,
    trace_id: &str,
    format: PayloadFormat,
) -> Result<HttpResponse, InvokeFailure> {
    let payload = event.to_string();
    if payload.len() > INVOKE_BODY_LIMIT {
        return Err(InvokeFailure::TooLarge);
    }
    let input = InvokeInput {
        request_id: request_id.to_owned(),
        invocation_type: InvocationType::RequestResponse,
        payload: payload.into(),
        log_tail: false,
        client_context_b64: None,
        trace_id: Some(trace_id.to_owned()),
        stream: false,
    };
    match state.control.invoke(function, qualifier, input).await {
        Ok(InvokeResult::Completed(outcome)) if outcome.function_error.is_some() => {
            tracing::info!(function, error_type = ?outcome.error_type, "function error behind an HTTP front door");
            Err(InvokeFailure::Failed)
        }
        Ok(InvokeResult::Completed(outcome)) => {
            http_event::http_response(&outcome.body, format).map_err(|e| {
                tracing::info!(function, error = %e, "function result is not a valid HTTP response");
                InvokeFailure::Failed
            })
        }
        Ok(_) => Err(InvokeFailure::Failed),
        Err(e) => Err(failure_of(function, e)),
    }
}

/// Why an invocation that could not run failed, in front-door terms.
fn failure_of(function: &str, e: ControlError) -> InvokeFailure {
    match e {
        ControlError::Throttled { .. } => InvokeFailure::Throttled,
        ControlError::TooLarge { .. } => InvokeFailure::TooLarge,
        ControlError::NotFound(e) => {
            tracing::warn!(function, error = %e, "the function behind an HTTP front door does not exist");
            InvokeFailure::NoFunction
        }
        e => {
            tracing::warn!(function, error = %e, "invocation behind an HTTP front door failed");
            InvokeFailure::Failed
        }
    }
}

/// The function URL answer to a failed invocation (Lambda's `{"Message": …}` bodies).
fn url_failure(failure: InvokeFailure) -> Response {
    match failure {
        InvokeFailure::TooLarge => {
            message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
        }
        InvokeFailure::Throttled => {
            let mut r = message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            r.headers_mut().insert("Retry-After", HeaderValue::from_static("1"));
            r
        }
        InvokeFailure::NoFunction | InvokeFailure::Failed => {
            message(StatusCode::BAD_GATEWAY, "Internal Server Error")
        }
    }
}

/// The caller's address, as the server loop recorded it.
pub(crate) fn source_ip(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "127.0.0.1".to_owned(), |c| c.0.ip().to_string())
}

/// Checks the SigV4 signature of an `AWS_IAM` URL request (service `lambda`, this region,
/// the platform's credentials).
fn verify_iam(state: &ApiState, parts: &http::request::Parts, body: &[u8]) -> Option<IamCaller> {
    let to_verify = sigv4::RequestToVerify {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body,
    };
    let auth = &state.auth;
    match sigv4::verify(
        &to_verify,
        chrono::Utc::now(),
        auth.max_skew,
        &auth.region,
        &["lambda"],
        |k| auth.keys.get(k).cloned(),
    ) {
        Ok(v) => Some(IamCaller {
            access_key: v.access_key_id,
            account_id: state.control.account().account_id.clone(),
        }),
        Err(e) => {
            tracing::info!(
                code = e.error_code(),
                "function URL request rejected by SigV4 verification"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_paths_name_urls() {
        let id = "abcdefghijklmnopqrstuvwxyz012345";
        assert_eq!(url_id_from_host(&format!("{id}.lambda-url.us-east-1.on.aws")), Some(id));
        assert_eq!(
            url_id_from_host(&format!("{id}.lambda-url.eu-west-1.example.com:9000")),
            Some(id)
        );
        assert_eq!(url_id_from_host("127.0.0.1:9000"), None);
        assert_eq!(url_id_from_host(&format!("{id}.lambda-url")), None);
        assert_eq!(url_id_from_host("short.lambda-url.us-east-1.on.aws"), None);
        assert_eq!(split_url_path(&format!("/lambda-url/{id}")), Some((id, "/".to_owned())));
        assert_eq!(split_url_path(&format!("/lambda-url/{id}/")), Some((id, "/".to_owned())));
        assert_eq!(
            split_url_path(&format!("/lambda-url/{id}/a/b%20c")),
            Some((id, "/a/b%20c".to_owned()))
        );
        assert!(new_trace_id().starts_with("Root=1-"));
    }
}

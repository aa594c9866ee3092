//! The front door every API request passes: a request id on every response, the body read
//! within its operation's size limit, and the SigV4 signature verified before any handler
//! runs.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::error::ApiError;
use crate::sigv4;
use crate::ApiState;

/// Largest body of `CreateFunction`/`UpdateFunctionCode`: a base64-inflated 50 MB zip.
pub const CODE_BODY_LIMIT: usize = 69_905_067;
/// Largest body of a synchronous invocation.
pub const INVOKE_BODY_LIMIT: usize = 6_291_456;
/// Largest body of every other operation.
pub const DEFAULT_BODY_LIMIT: usize = 1_048_576;

/// Credentials and the accepted scope.
#[derive(Clone)]
pub struct AuthConfig {
    /// The only region a credential scope may name.
    pub region: String,
    /// Access key id → secret access key.
    pub keys: std::collections::HashMap<String, String>,
    /// Accepted clock skew.
    pub max_skew: chrono::Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("region", &self.region)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The id of the request being served: sent back in `x-amzn-RequestId`, and used as the
/// invocation's request id by `Invoke`, as Lambda does.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

/// Adds `x-amzn-RequestId` to every response, errors included.
pub(crate) async fn request_id(mut req: Request, next: Next) -> Response {
    let id = uuid::Uuid::new_v4().to_string();
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    if !response.headers().contains_key("x-amzn-RequestId") {
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-amzn-RequestId", value);
        }
    }
    response
}

/// Reads the body within its limit and verifies the signature; the handler then sees the
/// buffered body.
pub(crate) async fn authenticate(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    match verified_request(&state, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn verified_request(state: &ApiState, req: Request) -> Result<Request, ApiError> {
    let (parts, body) = req.into_parts();
    let (limit, operation) = body_limit(&parts.method, parts.uri.path());
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        drain(body).await;
        return Err(ApiError::too_large(limit, operation));
    }
    let Some(bytes) = read_limited(body, limit).await else {
        return Err(ApiError::too_large(limit, operation));
    };
    let to_verify = sigv4::RequestToVerify {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body: &bytes,
    };
    let auth = &state.auth;
    let service = crate::targets::signing_service(&parts.headers, parts.uri.path());
    let verified = sigv4::verify(
        &to_verify,
        chrono::Utc::now(),
        auth.max_skew,
        &auth.region,
        &[service],
        |key| auth.keys.get(key).cloned(),
    );
    if let Err(e) = verified {
        tracing::info!(code = e.error_code(), path = %parts.uri.path(), "request rejected by SigV4 verification");
        return Err(e.into());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Collects a body, giving up (`None`) as soon as it exceeds `limit`.
pub(crate) async fn read_limited(body: Body, limit: usize) -> Option<Bytes> {
    let limited = http_body_util::Limited::new(body, limit);
    limited.collect().await.ok().map(http_body_util::Collected::to_bytes)
}

/// Reads and discards an oversized body (up to a cap), so that clients that send the whole
/// body before reading the response see the 413 rather than a reset connection.
pub(crate) async fn drain(mut body: Body) {
    const DRAIN_CAP: usize = 256 << 20;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, Bytes::len);
        if seen > DRAIN_CAP {
            break;
        }
    }
}

/// The body limit of the operation a request is for, and that operation's name for the
/// error message.
fn body_limit(method: &Method, path: &str) -> (usize, &'static str) {
    if path.ends_with("/invocations") || path.ends_with("/response-streaming-invocations") {
        (INVOKE_BODY_LIMIT, "InvokeFunction")
    } else if path.contains("/invoke-async") {
        (DEFAULT_BODY_LIMIT, "InvokeAsync")
    } else if *method == Method::POST && path.trim_end_matches('/') == "/2015-03-31/functions" {
        (CODE_BODY_LIMIT, "CreateFunction")
    } else if *method == Method::PUT && path.ends_with("/code") {
        (CODE_BODY_LIMIT, "UpdateFunctionCode")
    } else if path.starts_with("/2018-10-31/layers") {
        (CODE_BODY_LIMIT, "PublishLayerVersion")
    } else {
        (DEFAULT_BODY_LIMIT, "requested")
    }
}

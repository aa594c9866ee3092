//! The minimal API gateway's front door: requests to `/_routes/<stage>/<path>` skip the Lambda
//! API's SigV4 check (like function URLs), select a route of the stage from the operator's
//! routes file, and invoke its function or alias synchronously with a payload format 1.0
//! (REST-API style) or 2.0 (HTTP-API style) event. Errors are answered as API Gateway does,
//! with `{"message": …}` bodies.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::RequestId;
use crate::function_url::{self, InvokeFailure, ACCESS_LOG};
use crate::http_event::{self, EventContext, HttpRequest, PayloadFormat};
use crate::routes::RouteMatch;
use crate::ApiState;

/// Where stages are served: `/_routes/<stage>/…`.
pub const ROUTES_PATH_PREFIX: &str = "/_routes/";

/// The `apiId` (and `domainPrefix`) events carry: one API per server.
pub const API_ID: &str = "alonzo";

/// An API Gateway-style error: `{"message": text}`.
fn gateway_message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "message": text }))).into_response()
}

/// Splits `/_routes/<stage>[/rest]` into the (decoded) stage name and the path relative to
/// the stage, as on the wire.
fn split_stage_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(ROUTES_PATH_PREFIX)?;
    let (stage, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if stage.is_empty() {
        return None;
    }
    let stage = percent_encoding::percent_decode_str(stage).decode_utf8_lossy().into_owned();
    Some((stage, format!("/{tail}")))
}

/// Handler of `/_routes/…` (any method).
pub(crate) async fn serve(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), |r| r.0.clone());
    let trace_id = req
        .headers()
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(function_url::new_trace_id, str::to_owned);
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let (mut response, route_key) = answer(&state, req, &request_id, &trace_id).await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-RequestId", v.clone());
        headers.insert("apigw-requestid", v);
    }
    if let Ok(v) = HeaderValue::from_str(&trace_id) {
        headers.insert("X-Amzn-Trace-Id", v);
    }
    tracing::info!(
        target: ACCESS_LOG,
        kind = "route",
        route = route_key.as_deref().unwrap_or("-"),
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64,
        request_id = %request_id,
        "route request"
    );
    response
}

/// The answer, and the route key that was selected (for the access log).
async fn answer(
    state: &ApiState,
    req: Request,
    request_id: &str,
    trace_id: &str,
) -> (Response, Option<String>) {
    let not_found = || gateway_message(StatusCode::NOT_FOUND, "Not Found");
    let Some((stage_name, relative)) = split_stage_path(req.uri().path()) else {
        return (not_found(), None);
    };
    let Some(stage) = state.routes.stage(&stage_name) else {
        return (not_found(), None);
    };
    let Some(RouteMatch { route, path_parameters }) =
        stage.select(req.method().as_str(), &relative)
    else {
        return (not_found(), None);
    };
    let source_ip = function_url::source_ip(&req);
    let (parts, body) = req.into_parts();
    let body = match function_url::read_body(body, &parts.headers).await {
        Ok(b) => b,
        Err(_) => {
            let r = gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
            return (r, Some(route.key.clone()));
        }
    };
    let domain_name =
        crate::code::request_host(&parts.headers).unwrap_or_else(|| state.public_host.clone());
    // HTTP APIs put a named stage in `rawPath`; `$default` has none. REST APIs (1.0) leave
    // it out of `path` and show it in `requestContext.path`.
    let event_path = match route.format {
        PayloadFormat::V2 if stage_name != "$default" => format!("/{stage_name}{relative}"),
        _ => relative,
    };
    let request = HttpRequest::from_parts(&parts, event_path, body, source_ip);
    let context = EventContext {
        account_id: state.control.account().account_id.clone(),
        api_id: API_ID.to_owned(),
        domain_name,
        domain_prefix: API_ID.to_owned(),
        request_id: request_id.to_owned(),
        route_key: route.key.clone(),
        stage: stage_name.clone(),
        time: chrono::Utc::now(),
        resource: route.resource.clone(),
        path_parameters,
        stage_variables: stage.variables.clone(),
        iam: None,
    };
    let event = match route.format {
        PayloadFormat::V1 => {
            let mut event = http_event::event_v1(&request, &context);
            if stage_name == "$default" {
                event["requestContext"]["path"] = serde_json::Value::String(request.path.clone());
            }
            event
        }
        PayloadFormat::V2 => http_event::event_v2(&request, &context),
    };
    let result = function_url::invoke(
        state,
        &route.function,
        None,
        &event,
        request_id,
        trace_id,
        route.format,
    )
    .await;
    let response = match result {
        Ok(r) => function_url::to_response(r),
        Err(failure) => gateway_failure(failure),
    };
    (response, Some(route.key.clone()))
}

/// API Gateway's answers to a failed Lambda integration.
fn gateway_failure(failure: InvokeFailure) -> Response {
    match failure {
        InvokeFailure::TooLarge => {
            gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large")
        }
        InvokeFailure::Throttled => {
            let mut r = gateway_message(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            r.headers_mut().insert("Retry-After", HeaderValue::from_static("1"));
            r
        }
        // A route to a function that does not exist is a configuration error of the API.
        InvokeFailure::NoFunction => {
            gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
        InvokeFailure::Failed => gateway_message(StatusCode::BAD_GATEWAY, "Internal server error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_paths() {
        assert_eq!(split_stage_path("/_routes/prod"), Some(("prod".into(), "/".into())));
        assert_eq!(split_stage_path("/_routes/prod/"), Some(("prod".into(), "/".into())));
        assert_eq!(
            split_stage_path("/_routes/prod/pets/7"),
            Some(("prod".into(), "/pets/7".into()))
        );
        assert_eq!(
            split_stage_path("/_routes/%24default/a%20b"),
            Some(("$default".into(), "/a%20b".into()))
        );
        assert_eq!(split_stage_path("/_routes/"), None);
        assert_eq!(split_stage_path("/lambda-url/x"), None);
    }

    #[tokio::test]
    async fn failures_are_answered_as_api_gateway_does() {
        use http_body_util::BodyExt;
        let cases = [
            (InvokeFailure::Failed, 502, "Internal server error"),
            (InvokeFailure::NoFunction, 500, "Internal server error"),
            (InvokeFailure::Throttled, 429, "Too Many Requests"),
            (InvokeFailure::TooLarge, 413, "Request Entity Too Large"),
        ];
        for (failure, status, text) in cases {
            let response = gateway_failure(failure);
            assert_eq!(response.status().as_u16(), status);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(value, serde_json::json!({ "message": text }));
        }
    }
}

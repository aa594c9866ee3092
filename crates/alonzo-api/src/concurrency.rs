//! Handlers of reserved concurrency (`Put/Get/DeleteFunctionConcurrency`), provisioned
//! concurrency (`Put/Get/List/DeleteProvisionedConcurrencyConfig`) and asynchronous
//! invocation configuration (`Put/Update/Get/Delete/ListFunctionEventInvokeConfig(s)`).

use std::sync::Arc;

use alonzo_control::{EventInvokeInput, EventInvokeView, ProvisionedView};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::functions::{parse_body, qualifier};
use crate::{query, ApiState};

type ApiResult = Result<Response, ApiError>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutConcurrencyRequest {
    reserved_concurrent_executions: Option<i64>,
}

/// `PUT /2017-10-31/functions/{name}/concurrency`
pub(crate) async fn put_reserved(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: PutConcurrencyRequest = parse_body(&body)?;
    let n = req.reserved_concurrent_executions.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'reservedConcurrentExecutions' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let reserved = state.control.put_function_concurrency(&name, n).await?;
    Ok(Json(json!({ "ReservedConcurrentExecutions": reserved })).into_response())
}

/// `GET /2019-09-30/functions/{name}/concurrency`
pub(crate) async fn get_reserved(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> ApiResult {
    Ok(match state.control.get_function_concurrency(&name).await? {
        Some(n) => Json(json!({ "ReservedConcurrentExecutions": n })),
        None => Json(json!({})),
    }
    .into_response())
}

/// `DELETE /2017-10-31/functions/{name}/concurrency`
pub(crate) async fn delete_reserved(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> ApiResult {
    state.control.delete_function_concurrency(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutProvisionedRequest {
    provisioned_concurrent_executions: Option<i64>,
}

fn provisioned_json(view: &ProvisionedView, with_arn: Option<String>) -> serde_json::Value {
    let mut out = json!({
        "RequestedProvisionedConcurrentExecutions": view.requested,
        "AvailableProvisionedConcurrentExecutions": view.available,
        "AllocatedProvisionedConcurrentExecutions": view.allocated,
        "Status": view.status,
        "LastModified": crate::wire::lambda_timestamp(
            chrono::DateTime::from_timestamp_millis(view.last_modified_ms).unwrap_or_default()
        ),
    });
    if let Some(reason) = &view.status_reason {
        out["StatusReason"] = json!(reason);
    }
    if let Some(arn) = with_arn {
        out["FunctionArn"] = json!(arn);
    }
    out
}

/// `PUT /2019-09-30/functions/{name}/provisioned-concurrency?Qualifier=`
pub(crate) async fn put_provisioned(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult {
    let req: PutProvisionedRequest = parse_body(&body)?;
    let n = req.provisioned_concurrent_executions.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "1 validation error detected: Value null at 'provisionedConcurrentExecutions' failed to satisfy constraint: Member must not be null",
        )
    })?;
    let q = qualifier(raw.as_deref());
    let view = state.control.put_provisioned_concurrency(&name, q.as_deref(), n).await?;
    Ok((StatusCode::ACCEPTED, Json(provisioned_json(&view, None))).into_response())
}

/// `GET /2019-09-30/functions/{name}/provisioned-concurrency` (`?Qualifier=` or `?List=ALL`)
pub(crate) async fn get_provisioned(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let pairs = raw.as_deref().map(query::pairs).unwrap_or_default();
    if query::first(&pairs, "List") == Some("ALL") {
        let views = state.control.list_provisioned_concurrency(&name).await?;
        let (bare, _) = state.control.resolve(&name, None)?;
        let configs: Vec<_> = views
            .iter()
            .map(|v| {
                let arn = state.control.account().qualified_function_arn(&bare, &v.qualifier);
                provisioned_json(v, Some(arn))
            })
            .collect();
        return Ok(Json(json!({ "ProvisionedConcurrencyConfigs": configs })).into_response());
    }
    let q = qualifier(raw.as_deref());
    let view = state.control.get_provisioned_concurrency(&name, q.as_deref()).await?;
    Ok(Json(provisioned_json(&view, None)).into_response())
}

/// `DELETE /2019-09-30/functions/{name}/provisioned-concurrency?Qualifier=`
pub(crate) async fn delete_provisioned(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = qualifier(raw.as_deref());
    state.control.delete_provisioned_concurrency(&name, q.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EventInvokeRequest {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<WireDestinations>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireDestinations {
    on_success: Option<WireDestination>,
    on_failure: Option<WireDestination>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireDestination {
    destination: Option<String>,
}

fn event_invoke_input(req: EventInvokeRequest) -> Result<EventInvokeInput, ApiError> {
    let range = |v: Option<i64>,
                 field: &str,
                 min: i64,
                 max: i64|
     -> Result<Option<u32>, ApiError> {
        match v {
            None => Ok(None),
            Some(n) if n < min || n > max => {
                let constraint = if n < min {
                    format!("Member must have value greater than or equal to {min}")
                } else {
                    format!("Member must have value less than or equal to {max}")
                };
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    format!("1 validation error detected: Value '{n}' at '{field}' failed to satisfy constraint: {constraint}"),
                ))
            }
            Some(n) => Ok(u32::try_from(n).ok()),
        }
    };
    let destinations = req.destination_config;
    let pick =
        |d: Option<&WireDestination>| d.map(|d| d.destination.clone().filter(|s| !s.is_empty()));
    Ok(EventInvokeInput {
        maximum_retry_attempts: range(req.maximum_retry_attempts, "maximumRetryAttempts", 0, 2)?,
        maximum_event_age_seconds: range(
            req.maximum_event_age_in_seconds,
            "maximumEventAgeInSeconds",
            60,
            21_600,
        )?,
        on_success: destinations.as_ref().and_then(|d| pick(d.on_success.as_ref())),
        on_failure: destinations.as_ref().and_then(|d| pick(d.on_failure.as_ref())),
    })
}

fn event_invoke_json(view: &EventInvokeView) -> serde_json::Value {
    let c = &view.config;
    let destination = |d: &Option<String>| match d {
        Some(arn) => json!({ "Destination": arn }),
        None => json!({}),
    };
    let mut out = json!({
        "FunctionArn": view.function_arn,
        "LastModified": c.last_modified_ms as f64 / 1000.0,
        "DestinationConfig": {
            "OnSuccess": destination(&c.on_success),
            "OnFailure": destination(&c.on_failure),
        },
    });
    if let Some(n) = c.maximum_retry_attempts {
        out["MaximumRetryAttempts"] = json!(n);
    }
    if let Some(n) = c.maximum_event_age_seconds {
        out["MaximumEventAgeInSeconds"] = json!(n);
    }
    out
}

/// `PUT /2019-09-25/functions/{name}/event-invoke-config`: replaces the configuration.
pub(crate) async fn put_event_invoke(
    state: State<Arc<ApiState>>,
    name: Path<String>,
    raw: RawQuery,
    body: Bytes,
) -> ApiResult {
    store_event_invoke(state, name, raw, body, true).await
}

/// `POST /2019-09-25/functions/{name}/event-invoke-config`: merges into the configuration.
pub(crate) async fn update_event_invoke(
    state: State<Arc<ApiState>>,
    name: Path<String>,
    raw: RawQuery,
    body: Bytes,
) -> ApiResult {
    store_event_invoke(state, name, raw, body, false).await
}

async fn store_event_invoke(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
    replace: bool,
) -> ApiResult {
    let input = event_invoke_input(parse_body(&body)?)?;
    let q = qualifier(raw.as_deref());
    let view = state.control.put_event_invoke_config(&name, q.as_deref(), input, replace).await?;
    Ok(Json(event_invoke_json(&view)).into_response())
}

/// `GET /2019-09-25/functions/{name}/event-invoke-config`
pub(crate) async fn get_event_invoke(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = qualifier(raw.as_deref());
    let view = state.control.get_event_invoke_config(&name, q.as_deref()).await?;
    Ok(Json(event_invoke_json(&view)).into_response())
}

/// `DELETE /2019-09-25/functions/{name}/event-invoke-config`
pub(crate) async fn delete_event_invoke(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = qualifier(raw.as_deref());
    state.control.delete_event_invoke_config(&name, q.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /2019-09-25/functions/{name}/event-invoke-config/list`
pub(crate) async fn list_event_invoke(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let views = state.control.list_event_invoke_configs(&name).await?;
    let (marker, max_items) = crate::functions::paging(raw.as_deref())?;
    let start =
        marker.and_then(|m| views.iter().position(|v| v.function_arn == m)).map_or(0, |i| i + 1);
    let limit = max_items.unwrap_or(50).clamp(1, 50);
    let page: Vec<_> = views.iter().skip(start).take(limit).map(event_invoke_json).collect();
    let mut out = json!({ "FunctionEventInvokeConfigs": page });
    if start + limit < views.len() {
        out["NextMarker"] = json!(views[start + limit - 1].function_arn);
    }
    Ok(Json(out).into_response())
}

//! Handlers of the event source mapping operations (`CreateEventSourceMapping`,
//! `GetEventSourceMapping`, `UpdateEventSourceMapping`, `DeleteEventSourceMapping`,
//! `ListEventSourceMappings`) and their JSON shapes.

use std::sync::Arc;

use alonzo_control::MappingInput;
use alonzo_model::EventSourceMappingRecord;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::functions::parse_body;
use crate::{query, ApiState};

type ApiResult = Result<Response, ApiError>;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MappingRequest {
    function_name: Option<String>,
    event_source_arn: Option<String>,
    batch_size: Option<i64>,
    maximum_batching_window_in_seconds: Option<i64>,
    enabled: Option<bool>,
    function_response_types: Option<Vec<String>>,
    scaling_config: Option<WireScaling>,
    filter_criteria: Option<WireFilterCriteria>,
    starting_position: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireScaling {
    maximum_concurrency: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireFilterCriteria {
    filters: Option<Vec<WireFilter>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireFilter {
    pattern: Option<String>,
}

fn non_negative(v: Option<i64>, field: &str) -> Result<Option<u32>, ApiError> {
    match v {
        None => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!("1 validation error detected: Value '{n}' at '{field}' failed to satisfy constraint: Member must have value greater than or equal to 0"),
            )
        }),
    }
}

fn input(req: MappingRequest) -> Result<MappingInput, ApiError> {
    if req.starting_position.is_some() {
        return Err(ApiError::invalid_parameter(
            "StartingPosition is not valid for SQS event sources.",
        ));
    }
    Ok(MappingInput {
        function_name: req.function_name,
        event_source_arn: req.event_source_arn,
        batch_size: non_negative(req.batch_size, "batchSize")?,
        maximum_batching_window_s: non_negative(
            req.maximum_batching_window_in_seconds,
            "maximumBatchingWindowInSeconds",
        )?,
        enabled: req.enabled,
        function_response_types: req.function_response_types,
        maximum_concurrency: req.scaling_config.map(|s| s.maximum_concurrency),
        filter_patterns: req
            .filter_criteria
            .map(|f| f.filters.unwrap_or_default().into_iter().filter_map(|f| f.pattern).collect()),
    })
}

fn mapping_json(state: &ApiState, m: &EventSourceMappingRecord) -> serde_json::Value {
    let account = state.control.account();
    let function_arn = match &m.qualifier {
        Some(q) => account.qualified_function_arn(&m.function, q),
        None => account.function_arn(&m.function),
    };
    let mut out = json!({
        "UUID": m.uuid,
        "EventSourceMappingArn": format!("arn:aws:lambda:{}:{}:event-source-mapping:{}", account.region, account.account_id, m.uuid),
        "BatchSize": m.batch_size,
        "MaximumBatchingWindowInSeconds": m.maximum_batching_window_s,
        "EventSourceArn": m.event_source_arn,
        "FunctionArn": function_arn,
        "LastModified": m.last_modified_ms as f64 / 1000.0,
        "State": m.state.as_str(),
        "StateTransitionReason": m.state_transition_reason,
        "FunctionResponseTypes": m.function_response_types,
    });
    if let Some(n) = m.maximum_concurrency {
        out["ScalingConfig"] = json!({ "MaximumConcurrency": n });
    }
    if !m.filter_patterns.is_empty() {
        let filters: Vec<_> = m.filter_patterns.iter().map(|p| json!({ "Pattern": p })).collect();
        out["FilterCriteria"] = json!({ "Filters": filters });
    }
    out
}

/// `POST /2015-03-31/event-source-mappings`
pub(crate) async fn create(State(state): State<Arc<ApiState>>, body: Bytes) -> ApiResult {
    let req: MappingRequest = parse_body(&body)?;
    let mapping = state.control.create_event_source_mapping(input(req)?).await?;
    Ok((StatusCode::ACCEPTED, Json(mapping_json(&state, &mapping))).into_response())
}

/// `GET /2015-03-31/event-source-mappings/{uuid}`
pub(crate) async fn get(State(state): State<Arc<ApiState>>, Path(uuid): Path<String>) -> ApiResult {
    let mapping = state.control.get_event_source_mapping(&uuid).await?;
    Ok(Json(mapping_json(&state, &mapping)).into_response())
}

/// `PUT /2015-03-31/event-source-mappings/{uuid}`
pub(crate) async fn update(
    State(state): State<Arc<ApiState>>,
    Path(uuid): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: MappingRequest = parse_body(&body)?;
    if req.event_source_arn.is_some() {
        return Err(ApiError::invalid_parameter(
            "EventSourceArn cannot be changed; create a new mapping.",
        ));
    }
    let mapping = state.control.update_event_source_mapping(&uuid, input(req)?).await?;
    Ok((StatusCode::ACCEPTED, Json(mapping_json(&state, &mapping))).into_response())
}

/// `DELETE /2015-03-31/event-source-mappings/{uuid}`
pub(crate) async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(uuid): Path<String>,
) -> ApiResult {
    let mapping = state.control.delete_event_source_mapping(&uuid).await?;
    Ok((StatusCode::ACCEPTED, Json(mapping_json(&state, &mapping))).into_response())
}

/// `GET /2015-03-31/event-source-mappings?EventSourceArn=&FunctionName=&Marker=&MaxItems=`
pub(crate) async fn list(State(state): State<Arc<ApiState>>, RawQuery(raw): RawQuery) -> ApiResult {
    let pairs = raw.as_deref().map(query::pairs).unwrap_or_default();
    let (marker, max_items) = crate::functions::paging(raw.as_deref())?;
    let page = state
        .control
        .list_event_source_mappings(
            query::first(&pairs, "EventSourceArn"),
            query::first(&pairs, "FunctionName"),
            marker.as_deref(),
            max_items,
        )
        .await?;
    let items: Vec<_> = page.items.iter().map(|m| mapping_json(&state, m)).collect();
    let mut out = json!({ "EventSourceMappings": items });
    if let Some(next) = page.next_marker {
        out["NextMarker"] = json!(next);
    }
    Ok(Json(out).into_response())
}

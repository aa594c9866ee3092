//! Alonzo's own signed operations beyond Lambda's API, under `/_alonzo/api/`: live
//! concurrency for `alonzo top`, the loaded route table for `alonzo routes`, and usage and
//! cost for `alonzo usage`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::{query, ApiState};

/// `GET /_alonzo/api/usage?since=&until=&function=`: requests, GB-seconds and cost per
/// function and month. `since` (inclusive) and `until` (exclusive) are `YYYY-MM-DD` (UTC
/// midnight) or RFC 3339 instants.
pub(crate) async fn usage(
    State(state): State<Arc<ApiState>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    let instant = |key: &str| -> Result<Option<i64>, ApiError> {
        match query::first(&pairs, key).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_instant(v).map(Some).ok_or_else(|| {
                ApiError::invalid_parameter(format!(
                    "{key} {v:?} is not a date (YYYY-MM-DD) or an RFC 3339 time."
                ))
            }),
        }
    };
    let input = alonzo_control::UsageQuery {
        since_ms: instant("since")?,
        until_ms: instant("until")?,
        function: query::first(&pairs, "function").filter(|v| !v.is_empty()).map(str::to_owned),
    };
    let report = state.control.usage(input).await?;
    Ok(Json(report).into_response())
}

/// `2026-11-01` (UTC midnight) or `2026-11-01T12:00:00Z`, as epoch ms.
pub(crate) fn parse_instant(text: &str) -> Option<i64> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
    }
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// `GET /_alonzo/api/concurrency`
pub(crate) async fn concurrency(State(state): State<Arc<ApiState>>) -> Result<Response, ApiError> {
    let stats = state.control.concurrency_stats().unwrap_or_default();
    let settings = state.control.account_settings().await?;
    let versions: Vec<_> = stats
        .versions
        .iter()
        .map(|v| {
            json!({
                "Function": v.function,
                "Version": v.version,
                "Busy": v.busy,
                "Idle": v.idle,
                "Provisioned": v.provisioned,
                "KeepAliveSeconds": v.keep_alive_ms as f64 / 1000.0,
            })
        })
        .collect();
    let throttles: serde_json::Map<String, serde_json::Value> =
        stats.throttles.iter().map(|(f, n)| (f.clone(), json!(n))).collect();
    let reserved: serde_json::Map<String, serde_json::Value> =
        stats.reserved.iter().map(|(f, n)| (f.clone(), json!(n))).collect();
    Ok(Json(json!({
        "ConcurrencyLimit": settings.concurrent_executions,
        "UnreservedConcurrentExecutions": settings.unreserved_concurrent_executions,
        "Busy": stats.busy,
        "Versions": versions,
        "Throttles": throttles,
        "Reserved": reserved,
    }))
    .into_response())
}

/// `GET /_alonzo/api/routes`: every stage with its variables and routes (in file order).
pub(crate) async fn routes(State(state): State<Arc<ApiState>>) -> Response {
    let stages: serde_json::Map<String, serde_json::Value> = state
        .routes
        .stages()
        .iter()
        .map(|(name, stage)| {
            let routes: Vec<_> = stage
                .routes
                .iter()
                .map(|r| {
                    json!({
                        "Route": r.key,
                        "Function": r.function,
                        "PayloadFormat": r.format_name(),
                    })
                })
                .collect();
            (name.clone(), json!({ "Variables": stage.variables, "Routes": routes }))
        })
        .collect();
    Json(json!({ "Stages": stages })).into_response()
}

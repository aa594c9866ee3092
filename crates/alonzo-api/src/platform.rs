//! Alonzo's own signed operations beyond Lambda's API, under `/_alonzo/api/`: live
//! concurrency for `alonzo top`, and the loaded route table for `alonzo routes`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::ApiState;

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

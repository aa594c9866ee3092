//! Handlers of `PublishVersion` and the alias operations (`CreateAlias`, `GetAlias`,
//! `UpdateAlias`, `DeleteAlias`, `ListAliases`).

use std::sync::Arc;

use alonzo_control::{AliasInput, PublishInput};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::functions::{paging, parse_body};
use crate::wire::{self, AliasRequest, PublishRequest};
use crate::{query, ApiState};

type ApiResult = Result<Response, ApiError>;

/// `POST /2015-03-31/functions/{name}/versions`
pub(crate) async fn publish(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: PublishRequest = parse_body(&body)?;
    let input = PublishInput {
        code_sha256_b64: req.code_sha256,
        description: req.description,
        revision_id: req.revision_id,
    };
    let view = state.control.publish_version(&name, input).await?;
    Ok((StatusCode::CREATED, Json(wire::function_configuration(state.control.account(), &view)))
        .into_response())
}

fn alias_input(req: AliasRequest) -> AliasInput {
    AliasInput {
        function_version: req.function_version,
        description: req.description,
        routing: req.routing_config.map(|r| r.additional_version_weights.unwrap_or_default()),
        revision_id: req.revision_id,
    }
}

/// `POST /2015-03-31/functions/{name}/aliases`
pub(crate) async fn create(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: AliasRequest = parse_body(&body)?;
    let alias_name =
        req.name.clone().ok_or_else(|| ApiError::invalid_parameter("Name is required."))?;
    let alias = state.control.create_alias(&name, &alias_name, alias_input(req)).await?;
    Ok((StatusCode::CREATED, Json(wire::alias_configuration(state.control.account(), &alias)))
        .into_response())
}

/// `GET /2015-03-31/functions/{name}/aliases/{alias}`
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult {
    let alias = state.control.get_alias(&name, &alias).await?;
    Ok(Json(wire::alias_configuration(state.control.account(), &alias)).into_response())
}

/// `PUT /2015-03-31/functions/{name}/aliases/{alias}`
pub(crate) async fn update(
    State(state): State<Arc<ApiState>>,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let req: AliasRequest = parse_body(&body)?;
    let alias = state.control.update_alias(&name, &alias, alias_input(req)).await?;
    Ok(Json(wire::alias_configuration(state.control.account(), &alias)).into_response())
}

/// `DELETE /2015-03-31/functions/{name}/aliases/{alias}`
pub(crate) async fn delete(
    State(state): State<Arc<ApiState>>,
    Path((name, alias)): Path<(String, String)>,
) -> ApiResult {
    state.control.delete_alias(&name, &alias).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /2015-03-31/functions/{name}/aliases`
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let (marker, max_items) = paging(raw.as_deref())?;
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    let version = query::first(&pairs, "FunctionVersion");
    let page = state.control.list_aliases(&name, version, marker.as_deref(), max_items).await?;
    let aliases: Vec<_> =
        page.items.iter().map(|a| wire::alias_configuration(state.control.account(), a)).collect();
    let mut out = json!({ "Aliases": aliases });
    if let Some(next) = page.next_marker {
        out["NextMarker"] = next.into();
    }
    Ok(Json(out).into_response())
}

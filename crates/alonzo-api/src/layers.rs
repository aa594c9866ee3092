//! Handlers of the layer operations: `PublishLayerVersion`, `GetLayerVersion`,
//! `GetLayerVersionByArn`, `ListLayers`, `ListLayerVersions`, `DeleteLayerVersion`.

use std::sync::Arc;

use alonzo_control::PublishLayerInput;
use alonzo_model::LayerVersionRecord;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::functions::{paging, parse_upload};
use crate::wire::{code_sha256_b64, decode_zip, lambda_timestamp};
use crate::{query, ApiState};

type ApiResult = Result<Response, ApiError>;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublishLayerRequest {
    content: Option<LayerContent>,
    description: Option<String>,
    compatible_runtimes: Option<Vec<String>>,
    compatible_architectures: Option<Vec<String>>,
    license_info: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LayerContent {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
}

/// A layer version as `GetLayerVersion` and `PublishLayerVersion` return it.
fn layer_version_json(state: &ApiState, headers: &HeaderMap, layer: &LayerVersionRecord) -> Value {
    let mut out = summary_json(state, layer);
    out["LayerArn"] = state.control.account().layer_arn(&layer.name).into();
    out["Content"] = json!({
        "Location": crate::code::presigned_url(state, headers, &layer.code.sha256_hex),
        "CodeSha256": code_sha256_b64(&layer.code.sha256_hex),
        "CodeSize": layer.code.size,
    });
    out
}

/// A layer version as listings show it.
fn summary_json(state: &ApiState, layer: &LayerVersionRecord) -> Value {
    let mut out = json!({
        "LayerVersionArn": state.control.account().layer_version_arn(&layer.name, layer.version),
        "Version": layer.version,
        "Description": layer.description,
        "CreatedDate": lambda_timestamp(layer.created),
        "CompatibleRuntimes": layer.compatible_runtimes,
        "CompatibleArchitectures": layer.compatible_architectures,
    });
    if let Some(license) = &layer.license_info {
        out["LicenseInfo"] = license.clone().into();
    }
    out
}

fn version_number(raw: &str) -> Result<u64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid_parameter(format!("Invalid layer version number: {raw}")))
}

/// `POST /2018-10-31/layers/{name}/versions`
pub(crate) async fn publish(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let (req, zip) = parse_upload(body, |mut req: PublishLayerRequest| {
        let content = req
            .content
            .take()
            .ok_or_else(|| ApiError::invalid_parameter("Content is required."))?;
        if content.s3_bucket.is_some() {
            return Err(ApiError::invalid_parameter(
                "Layer content from S3 is not supported by Alonzo yet; use ZipFile.",
            ));
        }
        let zip = decode_zip(
            &content
                .zip_file
                .ok_or_else(|| ApiError::invalid_parameter("Content must contain ZipFile."))?,
        )?;
        Ok((req, zip))
    })
    .await?;
    let input = PublishLayerInput {
        zip,
        description: req.description,
        compatible_runtimes: req.compatible_runtimes.unwrap_or_default(),
        compatible_architectures: req.compatible_architectures.unwrap_or_default(),
        license_info: req.license_info,
    };
    let layer = state.control.publish_layer_version(&name, input).await?;
    Ok((StatusCode::CREATED, Json(layer_version_json(&state, &headers, &layer))).into_response())
}

/// `GET /2018-10-31/layers/{name}/versions/{version}`
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult {
    let layer = state.control.get_layer_version(&name, version_number(&version)?).await?;
    Ok(Json(layer_version_json(&state, &headers, &layer)).into_response())
}

/// `DELETE /2018-10-31/layers/{name}/versions/{version}`
pub(crate) async fn delete(
    State(state): State<Arc<ApiState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult {
    state.control.delete_layer_version(&name, version_number(&version)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /2018-10-31/layers/{name}/versions`
pub(crate) async fn list_versions(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    let versions = state
        .control
        .list_layer_versions(
            &name,
            query::first(&pairs, "CompatibleRuntime"),
            query::first(&pairs, "CompatibleArchitecture"),
        )
        .await?;
    let (marker, max_items) = paging(raw.as_deref())?;
    let (page, next) = paginate(&versions, marker.as_deref(), max_items, |l| l.version.to_string());
    let items: Vec<Value> = page.iter().map(|l| summary_json(&state, l)).collect();
    let mut out = json!({ "LayerVersions": items });
    if let Some(next) = next {
        out["NextMarker"] = next.into();
    }
    Ok(Json(out).into_response())
}

/// `GET /2018-10-31/layers`: `ListLayers`, or `GetLayerVersionByArn` with `find=LayerVersion`.
pub(crate) async fn list_or_find(
    State(state): State<Arc<ApiState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    if query::first(&pairs, "find") == Some("LayerVersion") {
        let arn = query::first(&pairs, "Arn")
            .ok_or_else(|| ApiError::invalid_parameter("Arn is required."))?;
        let layer = state.control.get_layer_version_by_arn(arn).await?;
        return Ok(Json(layer_version_json(&state, &headers, &layer)).into_response());
    }
    let layers = state
        .control
        .list_layers(
            query::first(&pairs, "CompatibleRuntime"),
            query::first(&pairs, "CompatibleArchitecture"),
        )
        .await?;
    let (marker, max_items) = paging(raw.as_deref())?;
    let (page, next) = paginate(&layers, marker.as_deref(), max_items, |l| l.name.clone());
    let items: Vec<Value> = page
        .iter()
        .map(|l| {
            json!({
                "LayerName": l.name,
                "LayerArn": state.control.account().layer_arn(&l.name),
                "LatestMatchingVersion": summary_json(&state, l),
            })
        })
        .collect();
    let mut out = json!({ "Layers": items });
    if let Some(next) = next {
        out["NextMarker"] = next.into();
    }
    Ok(Json(out).into_response())
}

/// One page of `items` after the item whose key is `marker` (at most 50), and the marker of
/// the next page.
fn paginate<'a, T>(
    items: &'a [T],
    marker: Option<&str>,
    max_items: Option<usize>,
    key: impl Fn(&T) -> String,
) -> (&'a [T], Option<String>) {
    let start = marker.and_then(|m| items.iter().position(|i| key(i) == m)).map_or(0, |i| i + 1);
    let end = (start + max_items.unwrap_or(50).min(50)).min(items.len());
    let next = (end < items.len()).then(|| key(&items[end - 1]));
    (&items[start..end], next)
}

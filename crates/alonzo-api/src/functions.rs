//! Handlers of the function-management operations: create, get, update, delete, list,
//! versions, tags, account settings, and the read-only settings tools query on every refresh.

use std::sync::Arc;

use alonzo_control::{CreateFunction, FunctionView, UpdateCode};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::ApiError;
use crate::query;
use crate::wire::{
    self, CreateFunctionRequest, TagResourceRequest, UpdateCodeRequest, UpdateConfigurationRequest,
};
use crate::ApiState;

type ApiResult = Result<Response, ApiError>;

/// Bodies from this size on (package uploads: up to 70 MB of base64) are parsed and decoded
/// on a blocking thread, not on the server's few async threads.
const LARGE_BODY: usize = 1 << 20;

/// A package upload's body parsed into `T` and then taken apart by `then` (which decodes the
/// zip), on a blocking thread when the body is large.
pub(crate) async fn parse_upload<T, R>(
    body: Bytes,
    then: impl FnOnce(T) -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError>
where
    T: DeserializeOwned,
    R: Send + 'static,
{
    let large = body.len() >= LARGE_BODY;
    let work = move || parse_body::<T>(&body).and_then(then);
    if !large {
        return work();
    }
    tokio::task::spawn_blocking(work).await.map_err(|e| ApiError::internal(&e))?
}

/// Parses a JSON body; an empty body counts as `{}` (botocore sends `{}` but other clients
/// may send nothing).
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(text).map_err(ApiError::bad_content)
}

fn config_json(state: &ApiState, view: &FunctionView) -> serde_json::Value {
    wire::function_configuration(state.control.account(), view)
}

pub(crate) fn qualifier(raw: Option<&str>) -> Option<String> {
    raw.map(query::pairs).and_then(|p| query::first(&p, "Qualifier").map(str::to_owned))
}

/// `POST /2015-03-31/functions`
pub(crate) async fn create(State(state): State<Arc<ApiState>>, body: Bytes) -> ApiResult {
    let (req, zip) = parse_upload(body, |mut req: CreateFunctionRequest| {
        let zip = zip_from_code(req.code.take().unwrap_or_default());
        Ok((req, zip))
    })
    .await?;
    let name = req
        .function_name
        .ok_or_else(|| ApiError::invalid_parameter("FunctionName is required."))?;
    if req.config.role.is_none() {
        return Err(ApiError::invalid_parameter("Role is required."));
    }
    if req.package_type.as_deref().is_some_and(|t| t != "Zip") {
        return Err(ApiError::invalid_parameter(
            "Container image functions (PackageType Image) are not supported by Alonzo yet.",
        ));
    }
    if req.code_signing_config_arn.is_some() {
        return Err(ApiError::invalid_parameter("Code signing is not supported by Alonzo."));
    }
    let zip = zip?;
    let input = CreateFunction {
        function_name: name,
        config: req.config.into_patch()?,
        zip,
        architectures: req.architectures,
        tags: req.tags.unwrap_or_default(),
        publish: req.publish.unwrap_or(false),
    };
    let view = state.control.create_function(input).await?;
    Ok((StatusCode::CREATED, Json(config_json(&state, &view))).into_response())
}

fn zip_from_code(code: wire::WireCode) -> Result<Vec<u8>, ApiError> {
    if code.image_uri.is_some() {
        return Err(ApiError::invalid_parameter(
            "Container images (ImageUri) are not supported by Alonzo yet.",
        ));
    }
    if code.s3_bucket.is_some() || code.s3_key.is_some() {
        return Err(ApiError::invalid_parameter(
            "Code from S3 (S3Bucket/S3Key) is not supported by Alonzo yet; upload the package with ZipFile.",
        ));
    }
    let b64 =
        code.zip_file.ok_or_else(|| ApiError::invalid_parameter("Code must contain ZipFile."))?;
    wire::decode_zip(&b64)
}

/// `GET /2015-03-31/functions/{name}`
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let view = state.control.get_function(&name, qualifier(raw.as_deref()).as_deref()).await?;
    let tags =
        state.control.list_tags(&state.control.account().function_arn(&view.record.name)).await?;
    let mut out = json!({
        "Configuration": config_json(&state, &view),
        "Code": {
            "RepositoryType": "S3",
            "Location": crate::code::presigned_url(&state, &headers, &view.record.code.sha256_hex),
        },
    });
    if !tags.is_empty() {
        out["Tags"] = json!(tags);
    }
    if let Some(reserved) = state.control.get_function_concurrency(&view.record.name).await? {
        out["Concurrency"] = json!({ "ReservedConcurrentExecutions": reserved });
    }
    Ok(Json(out).into_response())
}

/// `GET /2015-03-31/functions/{name}/configuration`
pub(crate) async fn get_configuration(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let view = state.control.get_function(&name, qualifier(raw.as_deref()).as_deref()).await?;
    Ok(Json(config_json(&state, &view)).into_response())
}

/// `PUT /2015-03-31/functions/{name}/code`
pub(crate) async fn update_code(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let (req, zip) = parse_upload(body, |mut req: UpdateCodeRequest| {
        let code = wire::WireCode {
            zip_file: req.zip_file.take(),
            s3_bucket: req.s3_bucket.take(),
            s3_key: None,
            image_uri: req.image_uri.take(),
        };
        Ok((req, zip_from_code(code)?))
    })
    .await?;
    let input = UpdateCode {
        zip,
        architectures: req.architectures,
        revision_id: req.revision_id,
        dry_run: req.dry_run.unwrap_or(false),
        publish: req.publish.unwrap_or(false),
    };
    let view = state.control.update_code(&name, input).await?;
    Ok(Json(config_json(&state, &view)).into_response())
}

/// `PUT /2015-03-31/functions/{name}/configuration`
pub(crate) async fn update_configuration(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: UpdateConfigurationRequest = parse_body(&body)?;
    let patch = req.config.into_patch()?;
    let view = state.control.update_configuration(&name, patch, req.revision_id.as_deref()).await?;
    Ok(Json(config_json(&state, &view)).into_response())
}

/// `DELETE /2015-03-31/functions/{name}`
pub(crate) async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    state.control.delete_function(&name, qualifier(raw.as_deref()).as_deref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Reads `Marker` and `MaxItems` (1–10000).
pub(crate) fn paging(raw: Option<&str>) -> Result<(Option<String>, Option<usize>), ApiError> {
    let pairs = query::pairs(raw.unwrap_or(""));
    let marker = query::first(&pairs, "Marker").map(str::to_owned);
    let max_items = match query::first(&pairs, "MaxItems") {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=10_000) => Some(n),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    format!("1 validation error detected: Value '{v}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 10000"),
                ))
            }
        },
    };
    Ok((marker, max_items))
}

/// `GET /2015-03-31/functions`
pub(crate) async fn list(State(state): State<Arc<ApiState>>, RawQuery(raw): RawQuery) -> ApiResult {
    let (marker, max_items) = paging(raw.as_deref())?;
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    let all_versions = match query::first(&pairs, "FunctionVersion") {
        None => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!("1 validation error detected: Value '{other}' at 'functionVersion' failed to satisfy constraint: Member must satisfy enum value set: [ALL]"),
            ))
        }
    };
    let page = state.control.list_functions(marker.as_deref(), max_items, all_versions).await?;
    let functions: Vec<_> = page
        .items
        .into_iter()
        .map(|record| {
            let view = if record.version == alonzo_model::LATEST {
                FunctionView::unqualified(record)
            } else {
                FunctionView::of_version(record)
            };
            config_json(&state, &view)
        })
        .collect();
    let mut out = json!({ "Functions": functions });
    if let Some(next) = page.next_marker {
        out["NextMarker"] = next.into();
    }
    Ok(Json(out).into_response())
}

/// `GET /2015-03-31/functions/{name}/versions`
pub(crate) async fn list_versions(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let (marker, max_items) = paging(raw.as_deref())?;
    let page = state.control.list_versions(&name, marker.as_deref(), max_items).await?;
    let versions: Vec<_> = page
        .items
        .into_iter()
        .map(|record| config_json(&state, &FunctionView::of_version(record)))
        .collect();
    let mut out = json!({ "Versions": versions });
    if let Some(next) = page.next_marker {
        out["NextMarker"] = next.into();
    }
    Ok(Json(out).into_response())
}

/// `GET /2016-08-19/account-settings`
pub(crate) async fn account_settings(State(state): State<Arc<ApiState>>) -> ApiResult {
    let s = state.control.account_settings().await?;
    Ok(Json(json!({
        "AccountLimit": {
            "TotalCodeSize": s.total_code_size_limit,
            "CodeSizeUnzipped": s.code_size_unzipped,
            "CodeSizeZipped": s.code_size_zipped,
            "ConcurrentExecutions": s.concurrent_executions,
            "UnreservedConcurrentExecutions": s.unreserved_concurrent_executions,
        },
        "AccountUsage": { "TotalCodeSize": s.total_code_size, "FunctionCount": s.function_count },
    }))
    .into_response())
}

/// `GET /2017-03-31/tags/{arn}`
pub(crate) async fn list_tags(
    State(state): State<Arc<ApiState>>,
    Path(arn): Path<String>,
) -> ApiResult {
    let tags = state.control.list_tags(&arn).await?;
    Ok(Json(json!({ "Tags": tags })).into_response())
}

/// `POST /2017-03-31/tags/{arn}`
pub(crate) async fn tag(
    State(state): State<Arc<ApiState>>,
    Path(arn): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: TagResourceRequest = parse_body(&body)?;
    let tags = req.tags.ok_or_else(|| ApiError::invalid_parameter("Tags are required."))?;
    state.control.tag_resource(&arn, tags).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /2017-03-31/tags/{arn}?tagKeys=…`
pub(crate) async fn untag(
    State(state): State<Arc<ApiState>>,
    Path(arn): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let keys: Vec<String> = query::pairs(raw.as_deref().unwrap_or(""))
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    state.control.untag_resource(&arn, &keys).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /2020-06-30/functions/{name}/code-signing-config`: none is ever configured.
pub(crate) async fn code_signing_config(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> ApiResult {
    let view = state.control.get_function(&name, None).await?;
    Ok(Json(json!({ "CodeSigningConfigArn": "", "FunctionName": view.record.name }))
        .into_response())
}

/// `GET /2021-07-20/functions/{name}/runtime-management-config`: runtimes update automatically.
pub(crate) async fn runtime_management_config(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let view = state.control.get_function(&name, qualifier(raw.as_deref()).as_deref()).await?;
    let arn = state.control.account().function_arn(&view.record.name);
    Ok(Json(json!({ "UpdateRuntimeOn": "Auto", "FunctionArn": arn })).into_response())
}

/// `GET /2024-08-31/functions/{name}/recursion-config`: loops are terminated (the default).
pub(crate) async fn recursion_config(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
) -> ApiResult {
    state.control.get_function(&name, None).await?;
    Ok(Json(json!({ "RecursiveLoop": "Terminate" })).into_response())
}

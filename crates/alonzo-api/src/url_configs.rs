//! Handlers of the function URL configuration operations (`CreateFunctionUrlConfig`,
//! `GetFunctionUrlConfig`, `UpdateFunctionUrlConfig`, `DeleteFunctionUrlConfig`,
//! `ListFunctionUrlConfigs`) and the URL they hand out.
//!
//! A `FunctionUrl` is `http://<host>/lambda-url/<url-id>/`, where `<host>` is the `Host` the
//! client used to reach this API (or the server's public address): it works as given from
//! curl or any HTTP library, without DNS. Operators with wildcard DNS may also use
//! `http://<url-id>.lambda-url.<region>.<domain>/` (see `function_url.rs`).

use std::sync::Arc;

use alonzo_control::UrlConfigInput;
use alonzo_model::{Cors, FunctionUrlRecord};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::functions::parse_body;
use crate::{query, ApiState};

type ApiResult = Result<Response, ApiError>;

/// The path prefix of function URLs on this server.
pub(crate) const URL_PATH_PREFIX: &str = "/lambda-url/";

/// `Cors` as the model spells it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireCors {
    allow_credentials: Option<bool>,
    allow_headers: Option<Vec<String>>,
    allow_methods: Option<Vec<String>>,
    allow_origins: Option<Vec<String>>,
    expose_headers: Option<Vec<String>>,
    max_age: Option<i64>,
}

/// `CreateFunctionUrlConfig`/`UpdateFunctionUrlConfig` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UrlConfigRequest {
    auth_type: Option<String>,
    cors: Option<WireCors>,
    invoke_mode: Option<String>,
}

fn cors_from_wire(w: WireCors) -> Result<Cors, ApiError> {
    let max_age = match w.max_age {
        None => None,
        Some(age) => Some(u32::try_from(age).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                format!("1 validation error detected: Value '{age}' at 'cors.maxAge' failed to satisfy constraint: Member must have value greater than or equal to 0"),
            )
        })?),
    };
    Ok(Cors {
        allow_credentials: w.allow_credentials,
        allow_headers: w.allow_headers,
        allow_methods: w.allow_methods,
        allow_origins: w.allow_origins,
        expose_headers: w.expose_headers,
        max_age,
    })
}

fn input(body: &Bytes) -> Result<UrlConfigInput, ApiError> {
    let req: UrlConfigRequest = parse_body(body)?;
    Ok(UrlConfigInput {
        auth_type: req.auth_type,
        cors: req.cors.map(cors_from_wire).transpose()?,
        invoke_mode: req.invoke_mode,
    })
}

/// `2021-10-31T12:00:00.000000Z`, the timestamp format of URL configurations.
fn url_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The URL clients call, for a client that reached this API with `headers`.
pub(crate) fn function_url(state: &ApiState, headers: &HeaderMap, url_id: &str) -> String {
    let host = crate::code::request_host(headers).unwrap_or_else(|| state.public_host.clone());
    format!("http://{host}{URL_PATH_PREFIX}{url_id}/")
}

fn cors_json(c: &Cors) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(v) = c.allow_credentials {
        out.insert("AllowCredentials".into(), v.into());
    }
    for (key, list) in [
        ("AllowHeaders", &c.allow_headers),
        ("AllowMethods", &c.allow_methods),
        ("AllowOrigins", &c.allow_origins),
        ("ExposeHeaders", &c.expose_headers),
    ] {
        if let Some(list) = list {
            out.insert(key.into(), json!(list));
        }
    }
    if let Some(age) = c.max_age {
        out.insert("MaxAge".into(), age.into());
    }
    Value::Object(out)
}

/// `FunctionUrlConfig` (and the Get/Update answers); `with_modified` adds `LastModifiedTime`,
/// which `CreateFunctionUrlConfig`'s answer does not have.
fn url_json(
    state: &ApiState,
    headers: &HeaderMap,
    url: &FunctionUrlRecord,
    with_modified: bool,
) -> Value {
    let mut out = json!({
        "FunctionUrl": function_url(state, headers, &url.url_id),
        "FunctionArn": state.control.url_function_arn(&url.function, url.qualifier.as_deref()),
        "AuthType": url.auth_type.as_str(),
        "CreationTime": url_timestamp(url.created),
        "InvokeMode": url.invoke_mode.as_str(),
    });
    if with_modified {
        out["LastModifiedTime"] = url_timestamp(url.last_modified).into();
    }
    if let Some(cors) = &url.cors {
        out["Cors"] = cors_json(cors);
    }
    out
}

fn qualifier(raw: Option<&str>) -> Option<String> {
    let pairs = query::pairs(raw.unwrap_or(""));
    query::first(&pairs, "Qualifier").map(str::to_owned)
}

/// `POST /2021-10-31/functions/{name}/url`
pub(crate) async fn create(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let q = qualifier(raw.as_deref());
    let url = state.control.create_function_url(&name, q.as_deref(), input(&body)?).await?;
    Ok((StatusCode::CREATED, Json(url_json(&state, &headers, &url, false))).into_response())
}

/// `GET /2021-10-31/functions/{name}/url`
pub(crate) async fn get(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let q = qualifier(raw.as_deref());
    let url = state.control.get_function_url(&name, q.as_deref()).await?;
    Ok(Json(url_json(&state, &headers, &url, true)).into_response())
}

/// `PUT /2021-10-31/functions/{name}/url`
pub(crate) async fn update(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let q = qualifier(raw.as_deref());
    let url = state.control.update_function_url(&name, q.as_deref(), input(&body)?).await?;
    Ok(Json(url_json(&state, &headers, &url, true)).into_response())
}

/// `DELETE /2021-10-31/functions/{name}/url`
pub(crate) async fn delete(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult {
    let q = qualifier(raw.as_deref());
    state.control.delete_function_url(&name, q.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /2021-10-31/functions/{name}/urls`
pub(crate) async fn list(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let pairs = query::pairs(raw.as_deref().unwrap_or(""));
    let marker = query::first(&pairs, "Marker");
    let max_items = match query::first(&pairs, "MaxItems") {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=50) => Some(n),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "ValidationException",
                    format!("1 validation error detected: Value '{v}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 50"),
                ))
            }
        },
    };
    let page = state.control.list_function_urls(&name, marker, max_items).await?;
    let configs: Vec<Value> =
        page.items.iter().map(|u| url_json(&state, &headers, u, true)).collect();
    let mut out = json!({ "FunctionUrlConfigs": configs });
    if let Some(next) = page.next_marker {
        out["NextMarker"] = next.into();
    }
    Ok(Json(out).into_response())
}

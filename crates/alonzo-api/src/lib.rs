//! The Lambda REST API (2015-03-31 family) over HTTP: routing, SigV4 verification, Lambda's
//! JSON shapes and error format.
//!
//! This is the only crate that knows the wire format and SigV4; it calls `alonzo-control`
//! for every operation and never touches a store. [`router`] builds the whole HTTP
//! application; `alonzo serve` binds it to a socket.

mod aliases;
mod auth;
mod code;
mod error;
mod functions;
mod invoke;
mod layers;
mod logs_api;
mod query;
pub mod sigv4;
mod sqs;
mod targets;
mod unimplemented;
mod wire;

use std::sync::Arc;

use alonzo_control::Control;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;

pub use auth::{AuthConfig, CODE_BODY_LIMIT, DEFAULT_BODY_LIMIT, INVOKE_BODY_LIMIT};
pub use error::ApiError;

/// What every handler shares.
#[derive(Debug)]
pub struct ApiState {
    /// The control plane.
    pub control: Control,
    /// Credentials and accepted signing scope.
    pub auth: AuthConfig,
    /// Key of the HMAC that signs package download links.
    pub code_url_key: Vec<u8>,
    /// `host:port` to put in links when a request carries no usable `Host`.
    pub public_host: String,
    /// The SQS-compatible queues (`AmazonSQS.*` on `/`).
    pub queues: alonzo_queue::Queues,
}

/// The whole HTTP application: the signed Lambda API plus the unsigned platform routes
/// (`/_alonzo/health`, package downloads).
pub fn router(state: ApiState) -> Router {
    let state = Arc::new(state);
    let lambda = Router::new()
        .route("/2015-03-31/functions", post(functions::create).get(functions::list))
        .route("/2015-03-31/functions/", post(functions::create).get(functions::list))
        .route("/2015-03-31/functions/{name}", get(functions::get).delete(functions::delete))
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(functions::get_configuration).put(functions::update_configuration),
        )
        .route("/2015-03-31/functions/{name}/code", put(functions::update_code))
        .route(
            "/2015-03-31/functions/{name}/versions",
            get(functions::list_versions).post(aliases::publish),
        )
        .route("/2015-03-31/functions/{name}/aliases", get(aliases::list).post(aliases::create))
        .route("/2018-10-31/layers", get(layers::list_or_find))
        .route("/2018-10-31/layers/", get(layers::list_or_find))
        .route(
            "/2018-10-31/layers/{name}/versions",
            get(layers::list_versions).post(layers::publish),
        )
        .route(
            "/2018-10-31/layers/{name}/versions/{version}",
            get(layers::get).delete(layers::delete),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(aliases::get).put(aliases::update).delete(aliases::delete),
        )
        .route("/2015-03-31/functions/{name}/invocations", post(invoke::invoke))
        .route("/2014-11-13/functions/{name}/invoke-async", post(invoke::invoke_async))
        .route("/2014-11-13/functions/{name}/invoke-async/", post(invoke::invoke_async))
        .route("/2016-08-19/account-settings", get(functions::account_settings))
        .route("/2016-08-19/account-settings/", get(functions::account_settings))
        .route(
            "/2017-03-31/tags/{arn}",
            get(functions::list_tags).post(functions::tag).delete(functions::untag),
        )
        .route(
            "/2020-06-30/functions/{name}/code-signing-config",
            get(functions::code_signing_config),
        )
        .route("/2019-09-30/functions/{name}/concurrency", get(functions::function_concurrency))
        .route(
            "/2021-07-20/functions/{name}/runtime-management-config",
            get(functions::runtime_management_config),
        )
        .route("/2024-08-31/functions/{name}/recursion-config", get(functions::recursion_config))
        .route("/", axum::routing::post(targets::dispatch))
        .fallback(unimplemented::fallback)
        .method_not_allowed_fallback(unimplemented::fallback)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), auth::authenticate));
    Router::new()
        .route("/_alonzo/health", get(|| async { "ok" }))
        .route("/_alonzo/code/{sha}", get(code::download))
        .merge(lambda)
        .layer(axum::middleware::from_fn(auth::request_id))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

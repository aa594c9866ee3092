//! The Lambda REST API (2015-03-31 family) over HTTP: routing, SigV4 verification, Lambda's
//! JSON shapes and error format.
//!
//! This is the only crate that knows the wire format and SigV4; it calls `alonzo-control`
//! for every operation and never touches a store. [`router`] builds the whole HTTP
//! application; `alonzo serve` binds it to a socket.

mod aliases;
mod auth;
mod code;
mod concurrency;
mod console;
mod error;
mod event_stream;
mod function_url;
mod functions;
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
pub mod http_event;
mod invoke;
mod layers;
mod logs_api;
mod mappings;
mod permissions;
mod platform;
mod query;
pub mod routes;
pub mod sigv4;
mod sqs;
mod targets;
mod unimplemented;
mod url_configs;
mod wire;

use std::sync::Arc;

use alonzo_control::Control;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post, put};
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
    /// The API gateway's stages and routes (served under `/_routes/<stage>/`).
    pub routes: routes::RouteTable,
    /// Whether the web console is served under `/_alonzo/console/`.
    pub console: bool,
}

/// The whole HTTP application: the signed Lambda API plus the unsigned platform routes
/// (`/_alonzo/health`, package downloads), the function URL front door (`/lambda-url/…`,
/// or any path under a `<url-id>.lambda-url.…` host) and the API gateway's routes
/// (`/_routes/<stage>/…`), and the web console (`/_alonzo/console/`, behind its own login).
pub fn router(state: ApiState) -> Router {
    let state = Arc::new(state);
    let console = state.console.then(|| console::router(Arc::clone(&state)));
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
        .route("/2015-03-31/event-source-mappings", get(mappings::list).post(mappings::create))
        .route("/2015-03-31/event-source-mappings/", get(mappings::list).post(mappings::create))
        .route(
            "/2015-03-31/event-source-mappings/{uuid}",
            get(mappings::get).put(mappings::update).delete(mappings::delete),
        )
        .route("/2015-03-31/functions/{name}/invocations", post(invoke::invoke))
        .route(
            "/2021-11-15/functions/{name}/response-streaming-invocations",
            post(invoke::invoke_with_response_stream),
        )
        .route("/2015-03-31/functions/{name}/policy", get(permissions::get).post(permissions::add))
        .route(
            "/2015-03-31/functions/{name}/policy/{sid}",
            axum::routing::delete(permissions::remove),
        )
        .route(
            "/2021-10-31/functions/{name}/url",
            get(url_configs::get)
                .post(url_configs::create)
                .put(url_configs::update)
                .delete(url_configs::delete),
        )
        .route("/2021-10-31/functions/{name}/urls", get(url_configs::list))
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
        .route("/2019-09-30/functions/{name}/concurrency", get(concurrency::get_reserved))
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            put(concurrency::put_reserved).delete(concurrency::delete_reserved),
        )
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            get(concurrency::get_provisioned)
                .put(concurrency::put_provisioned)
                .delete(concurrency::delete_provisioned),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            get(concurrency::get_event_invoke)
                .put(concurrency::put_event_invoke)
                .post(concurrency::update_event_invoke)
                .delete(concurrency::delete_event_invoke),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(concurrency::list_event_invoke),
        )
        .route(
            "/2021-07-20/functions/{name}/runtime-management-config",
            get(functions::runtime_management_config),
        )
        .route("/2024-08-31/functions/{name}/recursion-config", get(functions::recursion_config))
        .route("/_alonzo/api/concurrency", get(platform::concurrency))
        .route("/_alonzo/api/routes", get(platform::routes))
        .route("/_alonzo/api/usage", get(platform::usage))
        .route("/", axum::routing::post(targets::dispatch))
        .fallback(unimplemented::fallback)
        .method_not_allowed_fallback(unimplemented::fallback)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), auth::authenticate));
    let mut app = Router::new();
    if let Some(console) = console {
        app = app.nest_service(console::PREFIX, console);
    }
    app.route("/_alonzo/health", get(|| async { "ok" }))
        .route("/_alonzo/code/{sha}", get(code::download))
        .route("/lambda-url/{id}", any(function_url::by_path))
        .route("/lambda-url/{id}/", any(function_url::by_path))
        .route("/lambda-url/{id}/{*rest}", any(function_url::by_path))
        .route("/_routes", any(gateway::serve))
        .route("/_routes/", any(gateway::serve))
        .route("/_routes/{stage}", any(gateway::serve))
        .route("/_routes/{stage}/", any(gateway::serve))
        .route("/_routes/{stage}/{*rest}", any(gateway::serve))
        .merge(lambda)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), function_url::by_host))
        .layer(axum::middleware::from_fn(auth::request_id))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

//! The Lambda Runtime API (2018-06-01) of one execution environment: `next`, `response`,
//! `error` and `init/error`, served on the listener that lives in the sandbox's own network
//! namespace, so that no other sandbox can reach it.
//!
//! The HTTP side only moves messages: [`RuntimeChannel`] is what the environment driver
//! holds to hand an event to the runtime and to hear what the runtime said.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{mpsc, Mutex};

/// Largest response body a runtime may post (Lambda: 6 MiB + 100 bytes).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

/// An invocation handed to the runtime by `GET /next`.
#[derive(Debug, Clone)]
pub struct Event {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// `Lambda-Runtime-Deadline-Ms`, epoch milliseconds.
    pub deadline_ms: i64,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_arn: String,
    /// `Lambda-Runtime-Trace-Id`.
    pub trace_id: Option<String>,
    /// `Lambda-Runtime-Client-Context` (decoded JSON).
    pub client_context: Option<String>,
    /// `Lambda-Runtime-Cognito-Identity` (JSON).
    pub cognito_identity: Option<String>,
    /// The payload.
    pub payload: Bytes,
}

/// What the runtime said.
#[derive(Debug)]
pub enum RuntimeMessage {
    /// The runtime asked for the next event (initialisation done, or previous one finished).
    Ready,
    /// `POST /response` for `request_id`.
    Response { request_id: String, body: Bytes },
    /// `POST /error` for `request_id`.
    Error { request_id: String, error_type: String, body: Bytes },
    /// `POST /init/error`.
    InitError { error_type: String, body: Bytes },
    /// The runtime posted a response larger than Lambda allows.
    ResponseTooLarge { request_id: String, size: usize },
}

/// The environment driver's end of the Runtime API.
#[derive(Debug)]
pub struct RuntimeChannel {
    /// Events to deliver to `GET /next` (capacity 1: one invocation at a time).
    pub events: mpsc::Sender<Event>,
    /// Everything the runtime posts, in order.
    pub messages: mpsc::UnboundedReceiver<RuntimeMessage>,
}

#[derive(Debug)]
struct Shared {
    events: Mutex<mpsc::Receiver<Event>>,
    messages: mpsc::UnboundedSender<RuntimeMessage>,
    /// The request id of the event handed out and not yet answered.
    current: std::sync::Mutex<Option<String>>,
}

/// Serves the Runtime API on `listener` until the returned task is aborted.
pub fn serve(listener: tokio::net::TcpListener) -> (RuntimeChannel, tokio::task::JoinHandle<()>) {
    let (event_tx, event_rx) = mpsc::channel(1);
    let (message_tx, message_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        events: Mutex::new(event_rx),
        messages: message_tx,
        current: std::sync::Mutex::new(None),
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route("/2018-06-01/ping", get(|| async { "pong" }))
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(shared);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::debug!(error = %e, "runtime API server stopped");
        }
    });
    (RuntimeChannel { events: event_tx, messages: message_rx }, task)
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    // One invocation at a time: asking for the next event before answering the current one
    // is a state error, as on Lambda.
    if shared.current.lock().is_ok_and(|c| c.is_some()) {
        let body = r#"{"errorMessage":"State transition from Invoke to Next is not allowed before the invocation is answered","errorType":"InvalidStateTransition"}"#;
        return (StatusCode::FORBIDDEN, [("content-type", "application/json")], body)
            .into_response();
    }
    let _ = shared.messages.send(RuntimeMessage::Ready);
    let event = {
        let mut events = shared.events.lock().await;
        events.recv().await
    };
    let Some(event) = event else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "environment is shutting down").into_response();
    };
    if let Ok(mut current) = shared.current.lock() {
        *current = Some(event.request_id.clone());
    }
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    put("lambda-runtime-aws-request-id", &event.request_id);
    put("lambda-runtime-deadline-ms", &event.deadline_ms.to_string());
    put("lambda-runtime-invoked-function-arn", &event.invoked_arn);
    put("content-type", "application/json");
    for (name, value) in [
        ("lambda-runtime-trace-id", &event.trace_id),
        ("lambda-runtime-client-context", &event.client_context),
        ("lambda-runtime-cognito-identity", &event.cognito_identity),
    ] {
        if let Some(v) = value {
            put(name, v);
        }
    }
    (StatusCode::OK, headers, event.payload).into_response()
}

/// Takes the current request id if it is `id`, so each invocation is answered once.
fn claim(shared: &Shared, id: &str) -> bool {
    let Ok(mut current) = shared.current.lock() else { return false };
    if current.as_deref() == Some(id) {
        *current = None;
        true
    } else {
        false
    }
}

fn invalid_request_id() -> Response {
    let body = r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#;
    (StatusCode::BAD_REQUEST, [("content-type", "application/json")], body).into_response()
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, [("content-type", "application/json")], r#"{"status":"OK"}"#)
        .into_response()
}

async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !claim(&shared, &id) {
        return invalid_request_id();
    }
    if body.len() > MAX_RESPONSE_BYTES {
        let _ = shared
            .messages
            .send(RuntimeMessage::ResponseTooLarge { request_id: id, size: body.len() });
        let msg = format!(
            r#"{{"errorMessage":"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).","errorType":"RequestEntityTooLarge"}}"#
        );
        return (StatusCode::PAYLOAD_TOO_LARGE, [("content-type", "application/json")], msg)
            .into_response();
    }
    let _ = shared.messages.send(RuntimeMessage::Response { request_id: id, body });
    accepted()
}

fn error_type(headers: &HeaderMap) -> String {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .unwrap_or("Runtime.Unknown")
        .to_owned()
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !claim(&shared, &id) {
        return invalid_request_id();
    }
    let _ = shared.messages.send(RuntimeMessage::Error {
        request_id: id,
        error_type: error_type(&headers),
        body,
    });
    accepted()
}

async fn init_error(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _ =
        shared.messages.send(RuntimeMessage::InitError { error_type: error_type(&headers), body });
    accepted()
}

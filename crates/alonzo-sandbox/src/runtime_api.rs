//! The Lambda Runtime API (2018-06-01) of one execution environment: `next`, `response`,
//! `error` and `init/error`, served on the listener that lives in the sandbox's own network
//! namespace, so that no other sandbox can reach it.
//!
//! The HTTP side only moves messages: [`RuntimeChannel`] is what the environment driver
//! holds to hand an event to the runtime and to hear what the runtime said.
//!
//! A response posted with `Lambda-Runtime-Function-Response-Mode: streaming` (a chunked
//! body) is not buffered: the driver gets a [`RuntimeMessage::Stream`] as soon as the
//! request arrives and then each chunk as it is read, so the caller can see the first bytes
//! while the function is still writing. Error trailers (`Lambda-Runtime-Function-Error-Type`,
//! `Lambda-Runtime-Function-Error-Body` in base64) end the stream with a function error.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use tokio::sync::{mpsc, Mutex};

/// Largest response body a runtime may post (Lambda: 6 MiB + 100 bytes).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

/// Largest response a runtime may stream to a caller that reads it as a stream
/// (`InvokeWithResponseStream`, `RESPONSE_STREAM` function URLs). Lambda allows 200 MB
/// since 2025 (a 20 MB soft limit before); we take 200 MiB for both. A streamed response to
/// a caller that wants it buffered is held to [`MAX_RESPONSE_BYTES`].
pub const MAX_STREAM_BYTES: usize = 200 * 1024 * 1024;

/// Largest buffered body read to learn the size of a too-large response.
const MAX_READ_BYTES: usize = 64 << 20;

/// How many chunks of a streamed response may wait between the runtime and the driver: a
/// slow reader slows the runtime down rather than filling memory.
const STREAM_BUFFER: usize = 16;

/// The trailer (or header) naming the error that ended a streamed response.
const ERROR_TYPE: &str = "lambda-runtime-function-error-type";
/// The trailer carrying the error document of a streamed response, base64.
const ERROR_BODY: &str = "lambda-runtime-function-error-body";

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
    /// The runtime started a streamed response (`Lambda-Runtime-Function-Response-Mode:
    /// streaming`); its pieces follow on `items`.
    Stream {
        request_id: String,
        /// The response's `Content-Type`.
        content_type: Option<String>,
        /// Chunks, then [`StreamItem::Complete`] or [`StreamItem::Failed`]; closed without
        /// either when the runtime's request broke off.
        items: mpsc::Receiver<StreamItem>,
    },
}

/// One piece of a streamed response.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamItem {
    /// Bytes as the runtime wrote them.
    Chunk(Bytes),
    /// The body ended normally.
    Complete,
    /// The body ended with error trailers (or its request broke off).
    Failed {
        /// `Lambda-Runtime-Function-Error-Type` (`Runtime.StreamError` by default).
        error_type: String,
        /// The decoded `Lambda-Runtime-Function-Error-Body`.
        body: Bytes,
    },
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
    let (channel, app) = app();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::debug!(error = %e, "runtime API server stopped");
        }
    });
    (channel, task)
}

/// The Runtime API's routes and the driver's end of them, not yet bound to a listener.
pub(crate) fn app() -> (RuntimeChannel, Router) {
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
        .layer(axum::extract::DefaultBodyLimit::max(MAX_READ_BYTES))
        .with_state(shared);
    (RuntimeChannel { events: event_tx, messages: message_rx }, app)
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
    headers: HeaderMap,
    body: Body,
) -> Response {
    match headers.get("lambda-runtime-function-response-mode").map(HeaderValue::to_str) {
        None => buffered_response(&shared, id, &headers, body).await,
        Some(Ok(mode)) if mode.eq_ignore_ascii_case("streaming") => {
            streamed_response(&shared, id, &headers, body).await
        }
        Some(mode) => {
            if !claim(&shared, &id) {
                return invalid_request_id();
            }
            let mode = mode.unwrap_or("");
            let body = serde_json::json!({
                "errorType": "Runtime.InvalidResponseModeHeader",
                "errorMessage": format!("Invalid response mode header value: {mode}"),
            });
            let _ = shared.messages.send(RuntimeMessage::Error {
                request_id: id,
                error_type: "Runtime.InvalidResponseModeHeader".into(),
                body: Bytes::from(body.to_string()),
            });
            let msg = format!(
                r#"{{"errorMessage":"Invalid function response mode: {}","errorType":"InvalidFunctionResponseMode"}}"#,
                mode.replace(['"', '\\'], "")
            );
            (StatusCode::BAD_REQUEST, [("content-type", "application/json")], msg).into_response()
        }
    }
}

fn too_large() -> Response {
    let msg = format!(
        r#"{{"errorMessage":"Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).","errorType":"RequestEntityTooLarge"}}"#
    );
    (StatusCode::PAYLOAD_TOO_LARGE, [("content-type", "application/json")], msg).into_response()
}

fn truncated() -> Response {
    let body =
        r#"{"errorMessage":"The request body was cut short","errorType":"TruncatedHTTPRequest"}"#;
    (StatusCode::BAD_REQUEST, [("content-type", "application/json")], body).into_response()
}

/// An ordinary response: the whole body, then one message.
async fn buffered_response(
    shared: &Shared,
    id: String,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut body = body;
    let mut data = bytes::BytesMut::new();
    let mut size = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return truncated() };
        if let Ok(chunk) = frame.into_data() {
            size += chunk.len();
            if size <= MAX_RESPONSE_BYTES {
                data.extend_from_slice(&chunk);
            } else if size > MAX_READ_BYTES {
                break;
            }
        }
    }
    if !claim(shared, &id) {
        return invalid_request_id();
    }
    if size > MAX_RESPONSE_BYTES {
        let size = declared.unwrap_or(size).max(size);
        let _ = shared.messages.send(RuntimeMessage::ResponseTooLarge { request_id: id, size });
        return too_large();
    }
    let _ = shared.messages.send(RuntimeMessage::Response { request_id: id, body: data.freeze() });
    accepted()
}

/// A streamed response: the driver hears of it at once, then of each chunk as it is read.
async fn streamed_response(
    shared: &Shared,
    id: String,
    headers: &HeaderMap,
    mut body: Body,
) -> Response {
    if !claim(shared, &id) {
        return invalid_request_id();
    }
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (items, rx) = mpsc::channel(STREAM_BUFFER);
    let _ =
        shared.messages.send(RuntimeMessage::Stream { request_id: id, content_type, items: rx });
    loop {
        let item = match body.frame().await {
            None => StreamItem::Complete,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "a streamed response broke off");
                // The receiver sees the channel close without an ending.
                return truncated();
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) if chunk.is_empty() => continue,
                Ok(chunk) => StreamItem::Chunk(chunk),
                Err(frame) => match frame.into_trailers().ok().and_then(|t| stream_error(&t)) {
                    Some(failed) => failed,
                    None => continue,
                },
            },
        };
        let last = !matches!(item, StreamItem::Chunk(_));
        if items.send(item).await.is_err() {
            // The invocation is already over (the response grew too large, or it timed out).
            return too_large();
        }
        if last {
            return accepted();
        }
    }
}

/// The error a streamed response's trailers report, if any.
fn stream_error(trailers: &HeaderMap) -> Option<StreamItem> {
    let error_type = trailers.get(ERROR_TYPE).and_then(|v| v.to_str().ok())?.trim();
    let error_type = if error_type.is_empty() { "Runtime.StreamError" } else { error_type };
    let body = trailers
        .get(ERROR_BODY)
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v.as_bytes()).ok())
        .map_or_else(
            || {
                let doc = serde_json::json!({ "errorType": error_type, "errorMessage": "The function's response stream failed." });
                Bytes::from(doc.to_string())
            },
            Bytes::from,
        );
    Some(StreamItem::Failed { error_type: error_type.to_owned(), body })
}

fn error_type(headers: &HeaderMap) -> String {
    headers
        .get(ERROR_TYPE)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(WAIT, fut).await.unwrap_or_else(|_| panic!("timed out: {what}"))
    }

    /// Serves the API on a loopback port and hands `id` to a runtime's `GET /next`.
    async fn with_event(id: &str) -> (RuntimeChannel, std::net::SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (mut channel, _task) = serve(listener);
        let mut next = TcpStream::connect(addr).await.expect("connect");
        next.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: api\r\n\r\n")
            .await
            .expect("write");
        assert!(matches!(
            within("ready", channel.messages.recv()).await,
            Some(RuntimeMessage::Ready)
        ));
        let event = Event {
            request_id: id.to_owned(),
            deadline_ms: 0,
            invoked_arn: "arn".into(),
            trace_id: None,
            client_context: None,
            cognito_identity: None,
            payload: Bytes::from_static(b"{}"),
        };
        channel.events.send(event).await.expect("event");
        let head = read_head(&mut next).await;
        assert!(head.contains(id), "{head}");
        (channel, addr)
    }

    async fn read_head(conn: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = within("response", conn.read(&mut byte)).await.expect("read");
            assert!(n > 0, "connection closed");
            buf.extend_from_slice(&byte[..n]);
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    async fn stream_start(
        channel: &mut RuntimeChannel,
    ) -> (Option<String>, mpsc::Receiver<StreamItem>) {
        match within("stream start", channel.messages.recv()).await {
            Some(RuntimeMessage::Stream { request_id, content_type, items }) => {
                assert_eq!(request_id, "req-1");
                (content_type, items)
            }
            other => panic!("expected a stream, got {other:?}"),
        }
    }

    const STREAM_HEAD: &[u8] =
        b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: api\r\n\
        Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\
        Content-Type: text/plain\r\n\
        Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n";

    #[tokio::test]
    async fn chunks_are_forwarded_as_they_arrive() {
        let (mut channel, addr) = with_event("req-1").await;
        let mut post = TcpStream::connect(addr).await.expect("connect");
        post.write_all(STREAM_HEAD).await.expect("write");
        post.write_all(b"5\r\nhello\r\n").await.expect("write");
        let (content_type, mut items) = stream_start(&mut channel).await;
        assert_eq!(content_type.as_deref(), Some("text/plain"));
        // The first chunk is here while the body is still open.
        assert_eq!(within("chunk", items.recv()).await, Some(StreamItem::Chunk("hello".into())));
        post.write_all(b"6\r\n world\r\n").await.expect("write");
        assert_eq!(within("chunk", items.recv()).await, Some(StreamItem::Chunk(" world".into())));
        post.write_all(b"0\r\n\r\n").await.expect("write");
        assert_eq!(within("end", items.recv()).await, Some(StreamItem::Complete));
        assert!(read_head(&mut post).await.starts_with("HTTP/1.1 202"));
    }

    #[tokio::test]
    async fn error_trailers_fail_the_stream() {
        let (mut channel, addr) = with_event("req-1").await;
        let mut post = TcpStream::connect(addr).await.expect("connect");
        post.write_all(STREAM_HEAD).await.expect("write");
        post.write_all(b"7\r\npartial\r\n").await.expect("write");
        let (_, mut items) = stream_start(&mut channel).await;
        assert_eq!(within("chunk", items.recv()).await, Some(StreamItem::Chunk("partial".into())));
        let body = base64::engine::general_purpose::STANDARD.encode(r#"{"errorMessage":"boom"}"#);
        let trailers = format!(
            "0\r\nLambda-Runtime-Function-Error-Type: Runtime.StreamError\r\nLambda-Runtime-Function-Error-Body: {body}\r\n\r\n"
        );
        post.write_all(trailers.as_bytes()).await.expect("write");
        assert_eq!(
            within("end", items.recv()).await,
            Some(StreamItem::Failed {
                error_type: "Runtime.StreamError".into(),
                body: Bytes::from_static(br#"{"errorMessage":"boom"}"#),
            })
        );
        assert!(read_head(&mut post).await.starts_with("HTTP/1.1 202"));
    }

    #[tokio::test]
    async fn unknown_response_modes_are_refused() {
        let (mut channel, addr) = with_event("req-1").await;
        let mut post = TcpStream::connect(addr).await.expect("connect");
        post.write_all(b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: api\r\nLambda-Runtime-Function-Response-Mode: bogus\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .expect("write");
        let head = read_head(&mut post).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        match within("error", channel.messages.recv()).await {
            Some(RuntimeMessage::Error { request_id, error_type, .. }) => {
                assert_eq!(request_id, "req-1");
                assert_eq!(error_type, "Runtime.InvalidResponseModeHeader");
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn buffered_responses_are_one_message() {
        let (mut channel, addr) = with_event("req-1").await;
        let mut post = TcpStream::connect(addr).await.expect("connect");
        post.write_all(b"POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1\r\nHost: api\r\nContent-Length: 7\r\n\r\n\"whole\"")
            .await
            .expect("write");
        assert!(read_head(&mut post).await.starts_with("HTTP/1.1 202"));
        match within("response", channel.messages.recv()).await {
            Some(RuntimeMessage::Response { body, .. }) => assert_eq!(&body[..], b"\"whole\""),
            other => panic!("expected a response, got {other:?}"),
        }
    }
}

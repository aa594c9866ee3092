//! The Runtime API of an execution environment (`alonzo_sandbox`'s `runtime_api.rs`), fed the
//! input as raw HTTP/1.1 bytes over an in-memory connection: request lines and paths, request
//! ids, headers, buffered, chunked and streamed bodies with error trailers. Each `GET /next`
//! hands out the event `req-0`, `req-1`, … (ids repeat modulo 4).
//!
//! Properties: the server answers or closes without panicking or hanging; every response,
//! error or stream it reports names a request id that `GET /next` handed out, at most once
//! per hand-out; a streamed response's items end at most once, with nothing after the end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alonzo_sandbox::fuzzing::{runtime_api, Event, RuntimeMessage, StreamItem};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The fuzz target's body: `data` is what the runtime sends on its connection.
pub fn run(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), exchange(data.to_vec()))
            .await
            .expect("the Runtime API hung");
    });
}

#[derive(Debug, Default)]
struct Seen {
    issued: Vec<String>,
    answered: HashMap<String, usize>,
}

async fn exchange(wire: Vec<u8>) {
    let (mut channel, app) = runtime_api();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let service = TowerToHyperService::new(app);
    let server = tokio::spawn(async move {
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(server), service)
            .await;
    });
    let seen = Arc::new(Mutex::new(Seen::default()));
    let events = channel.events.clone();
    let driver_seen = seen.clone();
    let driver = tokio::spawn(async move {
        let mut streams = Vec::new();
        let mut next_id = 0u32;
        while let Some(message) = channel.messages.recv().await {
            let mut seen = driver_seen.lock().expect("not poisoned");
            let id = match message {
                RuntimeMessage::Ready => {
                    let request_id = format!("req-{}", next_id % 4);
                    next_id += 1;
                    // Ids repeat after four events: an id is answerable again once reissued.
                    if events.try_send(event(&request_id)).is_ok() {
                        seen.answered.remove(&request_id);
                        seen.issued.push(request_id);
                    }
                    continue;
                }
                RuntimeMessage::Response { request_id, .. }
                | RuntimeMessage::Error { request_id, .. }
                | RuntimeMessage::ResponseTooLarge { request_id, .. } => request_id,
                RuntimeMessage::Stream { request_id, items, .. } => {
                    streams.push(tokio::spawn(drain(items)));
                    request_id
                }
                RuntimeMessage::InitError { .. } => continue,
            };
            assert!(seen.issued.contains(&id), "an answer for an id never handed out: {id:?}");
            let count = seen.answered.entry(id.clone()).or_default();
            *count += 1;
            assert_eq!(*count, 1, "request {id:?} was answered twice");
        }
        for stream in streams {
            stream.await.expect("a stream drain panicked");
        }
    });
    let (mut read_half, mut write_half) = tokio::io::split(client);
    let reader = tokio::spawn(async move {
        let mut answers = Vec::new();
        let _ = read_half.read_to_end(&mut answers).await;
        answers
    });
    let _ = write_half.write_all(&wire).await;
    let _ = write_half.shutdown().await;
    let _answers = reader.await.expect("the reader");
    server.await.map_err(|e| std::panic::resume_unwind(e.into_panic())).ok();
    driver.await.map_err(|e| std::panic::resume_unwind(e.into_panic())).ok();
}

fn event(request_id: &str) -> Event {
    Event {
        request_id: request_id.to_owned(),
        deadline_ms: 0,
        invoked_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".to_owned(),
        trace_id: None,
        client_context: None,
        cognito_identity: None,
        payload: axum::body::Bytes::from_static(b"{}"),
    }
}

async fn drain(mut items: tokio::sync::mpsc::Receiver<StreamItem>) {
    let mut ended = false;
    while let Some(item) = items.recv().await {
        assert!(!ended, "a stream item after the stream's end: {item:?}");
        ended = !matches!(item, StreamItem::Chunk(_));
    }
}

//! The SQS phase: durable `SendMessage` (AWS JSON 1.0, signed for `sqs`) against the
//! server's built-in queue, whose answer comes only after the message's commit (fsync,
//! shared by concurrent senders through the store's group commit).

use std::net::SocketAddr;

use anyhow::{bail, Context};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use serde_json::{json, Value};

use crate::http::{Conn, Reply};

/// The queue the phase sends to.
pub(crate) const QUEUE: &str = "bench-sqs";
/// The body of every message (a typical small event).
const BODY: &str = r#"{"order":12345,"item":"bench","quantity":1}"#;

/// A signed `AmazonSQS.<op>` request.
fn request(conn: &Conn, op: &str, body: &Value) -> anyhow::Result<Request<Full<Bytes>>> {
    let target = format!("AmazonSQS.{op}");
    conn.signed_for(
        "sqs",
        Method::POST,
        "/",
        Bytes::from(serde_json::to_vec(body)?),
        &[("x-amz-target", &target), ("content-type", "application/x-amz-json-1.0")],
    )
}

/// Creates the queue and returns its URL.
pub(crate) async fn create_queue(addr: SocketAddr) -> anyhow::Result<String> {
    let mut conn = Conn::open(addr).await?;
    let reply = conn.send(request(&conn, "CreateQueue", &json!({"QueueName": QUEUE}))?).await?;
    if !reply.status.is_success() {
        bail!("CreateQueue answered HTTP {}: {}", reply.status, reply.snippet());
    }
    let answer: Value = serde_json::from_slice(&reply.body).context("CreateQueue's answer")?;
    answer["QueueUrl"].as_str().map(str::to_owned).context("CreateQueue answered no QueueUrl")
}

/// One `SendMessage` to `queue_url`.
pub(crate) fn send_request(conn: &Conn, queue_url: &str) -> anyhow::Result<Request<Full<Bytes>>> {
    request(conn, "SendMessage", &json!({"QueueUrl": queue_url, "MessageBody": BODY}))
}

/// `Ok` when the reply acknowledges the message with the body's MD5.
pub(crate) fn judge_send(reply: &Reply) -> anyhow::Result<()> {
    if reply.status != http::StatusCode::OK {
        bail!("SendMessage answered HTTP {}: {}", reply.status, reply.snippet());
    }
    let answer: Value = serde_json::from_slice(&reply.body).context("SendMessage's answer")?;
    // The MD5 of BODY (`md5sum`).
    if answer["MD5OfMessageBody"] != "0c0c9df2449b30203900e25e8a1f8afe"
        || !answer["MessageId"].is_string()
    {
        bail!("SendMessage answered {}", reply.snippet());
    }
    Ok(())
}

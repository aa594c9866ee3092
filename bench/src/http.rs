//! The bench's HTTP client: one plain hyper HTTP/1.1 keep-alive connection per [`Conn`]
//! (no pool, no SDK, `TCP_NODELAY`), SigV4 signing with the server's own signer, and the
//! few Lambda operations the bench calls. Signing happens before a request's clock starts;
//! the measured span is send → last byte of the response body.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use alonzo_api::sigv4::{self, Credentials};
use anyhow::{bail, Context};
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use crate::server;

const REGION: &str = "us-east-1";
/// Any IAM-shaped role ARN; Alonzo does not assume roles.
const ROLE: &str = "arn:aws:iam::000000000000:role/alonzo-bench";
/// Longest wait for a function to become `Active` or an update `Successful`.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for one response (the functions' own timeout is 10 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A response, fully read.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub(crate) fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response is not JSON: {}", self.snippet()))
    }

    /// The start of the body, for error messages.
    pub(crate) fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }

    /// `Err` unless the status is 2xx, with Lambda's error type and message.
    pub(crate) fn success(self) -> anyhow::Result<Self> {
        if self.status.is_success() {
            return Ok(self);
        }
        let kind = self
            .headers
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?")
            .to_owned();
        bail!("HTTP {} {kind}: {}", self.status, self.snippet())
    }
}

/// One keep-alive HTTP/1.1 connection to the server.
#[derive(Debug)]
pub(crate) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    addr: SocketAddr,
}

impl Conn {
    /// Opens a connection; its I/O task runs on the current tokio runtime.
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| {
                anyhow::anyhow!("connecting to {addr}: no answer within {CONNECT_TIMEOUT:?}")
            })?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Errors surface on the next `send`; the task only drives the socket.
            let _ = connection.await;
        });
        Ok(Self { sender, host: HeaderValue::from_str(&addr.to_string())?, addr })
    }

    /// Replaces the connection by a new one (after a failure left it in an unknown state);
    /// if that fails the old one stays, and the next request reports the failure.
    pub(crate) async fn reopen(&mut self) {
        if let Ok(fresh) = Self::open(self.addr).await {
            *self = fresh;
        }
    }

    /// Sends a prepared request and reads the whole response. After an error (a timeout
    /// included) the connection may be unusable: open a new one.
    pub(crate) async fn send(&mut self, request: Request<Full<Bytes>>) -> anyhow::Result<Reply> {
        let exchange = async {
            self.sender.ready().await.context("the connection closed")?;
            let response =
                self.sender.send_request(request).await.context("sending the request")?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.context("reading the response body")?.to_bytes();
            anyhow::Ok(Reply { status: parts.status, headers: parts.headers, body })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => bail!("no response within {REQUEST_TIMEOUT:?}"),
        }
    }

    /// `GET /_alonzo/health` (unsigned), as a request ready to send.
    pub(crate) fn health_request(&self) -> Request<Full<Bytes>> {
        Request::get("/_alonzo/health")
            .header("host", self.host.clone())
            .body(Full::new(Bytes::new()))
            .expect("static request")
    }

    /// A SigV4-signed request for service `lambda`, ready to send; `extra` headers are signed.
    pub(crate) fn signed(
        &self,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        extra: &[(&'static str, &str)],
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        self.signed_for("lambda", method, path_and_query, body, extra)
    }

    /// A SigV4-signed request for `service`, ready to send; `extra` headers are signed.
    pub(crate) fn signed_for(
        &self,
        service: &str,
        method: Method,
        path_and_query: &str,
        body: Bytes,
        extra: &[(&'static str, &str)],
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        let mut headers = HeaderMap::new();
        headers.insert(http::header::HOST, self.host.clone());
        if !body.is_empty() {
            headers
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (name, value) in extra {
            headers.insert(*name, HeaderValue::from_str(value)?);
        }
        sigv4::sign(
            method.as_str(),
            path,
            query,
            &mut headers,
            &body,
            &credentials(),
            REGION,
            service,
            chrono::Utc::now(),
        );
        if !headers.contains_key(http::header::AUTHORIZATION) {
            bail!("signing {method} {path_and_query} failed");
        }
        let mut request = Request::builder().method(method).uri(path_and_query);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        Ok(request.body(Full::new(body))?)
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let bytes = body.map(|b| serde_json::to_vec(&b)).transpose()?.unwrap_or_default();
        let what = format!("{method} {path}");
        let request = self.signed(method, path, Bytes::from(bytes), &[])?;
        let reply = self
            .send(request)
            .await
            .with_context(|| what.clone())?
            .success()
            .with_context(|| what.clone())?;
        if reply.body.is_empty() {
            return Ok(Value::Null);
        }
        reply.json().with_context(|| what)
    }

    /// `CreateFunction` with an inline zip and 128 MB, then waits until the function is
    /// `Active`.
    pub(crate) async fn create_function(
        &mut self,
        name: &str,
        runtime: &str,
        handler: &str,
        zip: &[u8],
    ) -> anyhow::Result<()> {
        self.create_function_sized(name, runtime, handler, zip, 128).await
    }

    /// [`Conn::create_function`] with `memory_mb` (and the CPU share that comes with it).
    pub(crate) async fn create_function_sized(
        &mut self,
        name: &str,
        runtime: &str,
        handler: &str,
        zip: &[u8],
        memory_mb: u32,
    ) -> anyhow::Result<()> {
        let body = json!({
            "FunctionName": name,
            "Runtime": runtime,
            "Role": ROLE,
            "Handler": handler,
            "MemorySize": memory_mb,
            "Timeout": 10,
            "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(zip) },
        });
        self.call(Method::POST, "/2015-03-31/functions", Some(body)).await?;
        self.wait_settled(name, "State", "Active", Duration::from_millis(5)).await
    }

    /// `PutFunctionConcurrency`.
    pub(crate) async fn put_reserved_concurrency(
        &mut self,
        name: &str,
        n: u32,
    ) -> anyhow::Result<()> {
        let path = format!("/2017-10-31/functions/{name}/concurrency");
        self.call(Method::PUT, &path, Some(json!({ "ReservedConcurrentExecutions": n }))).await?;
        Ok(())
    }

    /// `UpdateFunctionConfiguration` setting one environment variable; a new revision, so the
    /// next invoke starts a new environment. Waits until `LastUpdateStatus` is `Successful`,
    /// polling every `poll`.
    pub(crate) async fn update_env(
        &mut self,
        name: &str,
        key: &str,
        value: &str,
        poll: Duration,
    ) -> anyhow::Result<()> {
        let body = json!({ "Environment": { "Variables": { key: value } } });
        self.call(Method::PUT, &format!("/2015-03-31/functions/{name}/configuration"), Some(body))
            .await?;
        self.wait_settled(name, "LastUpdateStatus", "Successful", poll).await
    }

    /// Polls `GetFunctionConfiguration` until `field` is `wanted`; fails on `Failed`.
    async fn wait_settled(
        &mut self,
        name: &str,
        field: &str,
        wanted: &str,
        poll: Duration,
    ) -> anyhow::Result<()> {
        let path = format!("/2015-03-31/functions/{name}/configuration");
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let config = self.call(Method::GET, &path, None).await?;
            match config.get(field).and_then(Value::as_str) {
                Some(v) if v == wanted => return Ok(()),
                Some("Failed") => bail!("{name}: {field} is Failed: {config}"),
                _ => {}
            }
            if Instant::now() > deadline {
                bail!("{name}: {field} did not become {wanted} within {SETTLE_TIMEOUT:?} (last: {config})");
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// A signed `Invoke` (`RequestResponse`) of `name` with payload `{}`, ready to send;
    /// `tail` asks for the log tail (`X-Amz-Log-Type: Tail`).
    pub(crate) fn invoke_request(
        &self,
        name: &str,
        tail: bool,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        let path = format!("/2015-03-31/functions/{name}/invocations");
        let extra: &[(&'static str, &str)] = if tail { &[("x-amz-log-type", "Tail")] } else { &[] };
        self.signed(Method::POST, &path, Bytes::from_static(b"{}"), extra)
    }

    /// A signed asynchronous `Invoke` (`X-Amz-Invocation-Type: Event`).
    pub(crate) fn invoke_event_request(&self, name: &str) -> anyhow::Result<Request<Full<Bytes>>> {
        let path = format!("/2015-03-31/functions/{name}/invocations");
        self.signed(
            Method::POST,
            &path,
            Bytes::from_static(b"{}"),
            &[("x-amz-invocation-type", "Event")],
        )
    }
}

/// The outcome of one invocation, judged.
#[derive(Debug)]
pub(crate) struct Invoked {
    /// The function's JSON answer.
    pub(crate) payload: Value,
    /// The decoded `X-Amz-Log-Result`, if asked for.
    pub(crate) log_tail: Option<String>,
}

/// Judges an `Invoke` reply: `Err` (with the reason) unless it is a 200 without
/// `X-Amz-Function-Error` and a JSON body.
pub(crate) fn check_invoke(reply: &Reply) -> anyhow::Result<Invoked> {
    if reply.status != StatusCode::OK {
        let kind =
            reply.headers.get("x-amzn-ErrorType").and_then(|v| v.to_str().ok()).unwrap_or("?");
        bail!("invoke answered HTTP {} {kind}: {}", reply.status, reply.snippet());
    }
    if let Some(error) = reply.headers.get("x-amz-function-error") {
        bail!("function error {}: {}", error.to_str().unwrap_or("?"), reply.snippet());
    }
    let payload = reply.json()?;
    let log_tail = match reply.headers.get("x-amz-log-result") {
        Some(v) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_bytes())
                .context("X-Amz-Log-Result is not base64")?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        None => None,
    };
    Ok(Invoked { payload, log_tail })
}

/// `Init Duration` of the `REPORT` line in a log tail, in milliseconds, if there is one
/// (there is exactly when the invocation started a new environment).
pub(crate) fn init_duration_ms(log_tail: &str) -> Option<f64> {
    let report = log_tail.lines().rev().find(|l| l.starts_with("REPORT "))?;
    let rest = report.split("Init Duration: ").nth(1)?;
    rest.split(" ms").next()?.trim().parse().ok()
}

fn credentials() -> Credentials {
    Credentials {
        access_key_id: server::ACCESS_KEY_ID.to_owned(),
        secret_access_key: server::SECRET_ACCESS_KEY.to_owned(),
        session_token: None,
    }
}

#[cfg(test)]
mod tests {
    use super::init_duration_ms;

    #[test]
    fn init_duration_is_read_from_the_report_line() {
        let tail = "START RequestId: x Version: $LATEST\nEND RequestId: x\nREPORT RequestId: x\tDuration: 1.20 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 9 MB\tInit Duration: 35.71 ms\t\n";
        assert_eq!(init_duration_ms(tail), Some(35.71));
        assert_eq!(init_duration_ms("REPORT RequestId: x\tDuration: 1.20 ms\t"), None);
    }
}

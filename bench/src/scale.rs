//! The scale-out phase: N parallel invocations of a Python function that sleeps, each on its
//! own connection, against a function with no environment yet; every call needs its own
//! new environment. The scale-out time is the slowest call minus the sleep: how long it
//! took until all N environments were running at once.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Method;
use serde_json::json;

use crate::http::Conn;

/// How long the function sleeps.
pub(crate) const SLEEP: Duration = Duration::from_secs(2);

/// The Python handler.
pub(crate) const SOURCE: &str =
    "import time\n\ndef handler(event, context):\n    time.sleep(event['sleep'])\n    return {}\n";

/// What one scale-out run measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScaleOut {
    /// Parallel calls.
    pub(crate) n: usize,
    /// Calls that failed.
    pub(crate) errors: usize,
    /// First error, if any.
    pub(crate) first_error: Option<String>,
    /// Slowest call minus the sleep, ms.
    pub(crate) scale_ms: f64,
    /// Median call minus the sleep, ms.
    pub(crate) median_ms: f64,
    /// CPU time the whole machine spent busy during the burst, per call, ms: what one new
    /// environment costs, less noisy than the burst's length.
    pub(crate) cpu_ms_per_env: f64,
}

/// Runs `n` calls of `name` at once.
pub(crate) async fn run(addr: SocketAddr, name: &str, n: usize) -> anyhow::Result<ScaleOut> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(addr).await?);
    }
    let body = Bytes::from(json!({ "sleep": SLEEP.as_secs_f64() }).to_string());
    let path = format!("/2015-03-31/functions/{name}/invocations");
    let cpu_before = crate::machine::busy_cpu_ms();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for mut conn in conns {
        let request = conn.signed(Method::POST, &path, body.clone(), &[])?;
        tasks.push(tokio::spawn(async move {
            let reply = conn.send(request).await?;
            if reply.status != http::StatusCode::OK
                || reply.headers.contains_key("x-amz-function-error")
            {
                bail!("HTTP {}: {}", reply.status, reply.snippet());
            }
            anyhow::Ok(start.elapsed())
        }));
    }
    let mut out = ScaleOut { n, ..ScaleOut::default() };
    let mut times = Vec::new();
    for task in tasks {
        match task.await.context("a scale-out call panicked")? {
            Ok(d) => times.push(d.saturating_sub(SLEEP).as_secs_f64() * 1000.0),
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    if let (Some(before), Some(after)) = (cpu_before, crate::machine::busy_cpu_ms()) {
        out.cpu_ms_per_env = (after - before) / n as f64;
    }
    times.sort_by(f64::total_cmp);
    out.scale_ms = times.last().copied().unwrap_or(f64::NAN);
    out.median_ms = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
    Ok(out)
}

//! The measurements: sequential latency on one keep-alive connection, throughput with N
//! concurrent clients (each its own connection) for a fixed time, and cold starts forced by
//! a configuration change. Every loop is bounded by a count or a deadline, every request is
//! judged, and a failure is counted in [`Samples::errors`] rather than timed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};
use tokio::sync::Barrier;

use crate::http::{check_invoke, init_duration_ms, Conn, Reply};
use crate::stats::{round3, Samples};

/// Upper bound on requests per client in a timed run, whatever the deadline says.
const MAX_REQUESTS_PER_CLIENT: u64 = 5_000_000;

/// Which kind of no-op a function is, to know what its answer must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Answers `{}`.
    Python,
    /// Answers `{}` (Node.js).
    Node,
    /// Answers `{"main_start_ns": N}`.
    Rust,
}

/// What one request of a measurement is.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// `GET /_alonzo/health`: the loopback floor.
    Health,
    /// A signed synchronous invoke of a function.
    Invoke { name: String, kind: Kind },
    /// A signed, durable SQS `SendMessage`.
    SqsSend { queue_url: String },
    /// A signed asynchronous invoke, answered 202 once the event is durably queued.
    InvokeEvent { name: String },
}

impl Op {
    fn request(&self, conn: &Conn) -> anyhow::Result<Request<Full<Bytes>>> {
        match self {
            Self::Health => Ok(conn.health_request()),
            Self::Invoke { name, .. } => conn.invoke_request(name, false),
            Self::SqsSend { queue_url } => crate::sqs::send_request(conn, queue_url),
            Self::InvokeEvent { name } => conn.invoke_event_request(name),
        }
    }

    /// `Ok` when the reply is the right answer to this request.
    fn judge(&self, reply: &Reply) -> anyhow::Result<()> {
        match self {
            Self::Health => {
                if reply.status != http::StatusCode::OK || reply.body.as_ref() != b"ok" {
                    bail!("health answered HTTP {}: {}", reply.status, reply.snippet());
                }
                Ok(())
            }
            Self::Invoke { kind, .. } => {
                check_payload(*kind, &check_invoke(reply)?.payload).map(|_| ())
            }
            Self::SqsSend { .. } => crate::sqs::judge_send(reply),
            Self::InvokeEvent { .. } => {
                if reply.status != http::StatusCode::ACCEPTED {
                    bail!("Event invoke answered HTTP {}: {}", reply.status, reply.snippet());
                }
                Ok(())
            }
        }
    }
}

/// Checks a no-op's answer; for Rust returns the reported `main` start (epoch ns).
fn check_payload(kind: Kind, payload: &Value) -> anyhow::Result<Option<u64>> {
    match kind {
        Kind::Python | Kind::Node if payload == &json!({}) => Ok(None),
        Kind::Rust => match payload.get("main_start_ns").and_then(Value::as_u64) {
            Some(ns) => Ok(Some(ns)),
            None => bail!("the Rust no-op answered {payload} (no main_start_ns)"),
        },
        Kind::Python | Kind::Node => bail!("the no-op answered {payload}, not {{}}"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Sends one request of `op` and judges it; the duration is send → last body byte.
/// A transport failure reopens the connection for the next request.
async fn one(conn: &mut Conn, op: &Op) -> anyhow::Result<Duration> {
    let request = op.request(conn)?;
    let start = Instant::now();
    let result = conn.send(request).await;
    let elapsed = start.elapsed();
    match result {
        Ok(reply) => op.judge(&reply).map(|()| elapsed),
        Err(e) => {
            conn.reopen().await;
            Err(e)
        }
    }
}

/// `warmup` unmeasured then `n` measured sequential requests on one keep-alive connection.
pub(crate) async fn sequential(
    addr: SocketAddr,
    op: &Op,
    warmup: usize,
    n: usize,
) -> anyhow::Result<Samples> {
    let mut conn = Conn::open(addr).await?;
    let mut samples = Samples::with_capacity(n);
    for _ in 0..warmup {
        // Not timed, but a failure is a failure: it is counted and reported.
        if let Err(e) = one(&mut conn, op).await {
            samples.fail(format!("warm-up: {e:#}"));
        }
    }
    for _ in 0..n {
        match one(&mut conn, op).await {
            Ok(d) => samples.push(ms(d)),
            Err(e) => samples.fail(format!("{e:#}")),
        }
    }
    Ok(samples)
}

/// A timed run with concurrent clients.
#[derive(Debug, Clone)]
pub(crate) struct Throughput {
    pub(crate) clients: usize,
    /// Successful requests per second over the run.
    pub(crate) rps: f64,
    pub(crate) seconds: f64,
    /// Successful requests completed in each whole second of the run, to show its
    /// steadiness (the machine is shared; a stall shows up here).
    pub(crate) per_second: Vec<u64>,
    /// Per-request latency under this load, and the failures.
    pub(crate) latency: Samples,
}

impl Throughput {
    /// Lowest and highest count of the whole one-second windows.
    pub(crate) fn window_range(&self) -> Option<(u64, u64)> {
        Some((*self.per_second.iter().min()?, *self.per_second.iter().max()?))
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "clients": self.clients,
            "rps": self.rps.round(),
            "seconds": round3(self.seconds),
            "ok": self.latency.len(),
            "per_second": self.per_second,
            "latency_ms": self.latency.to_json(),
        })
    }
}

/// `clients` concurrent clients, each on its own connection, send `op` back to back for
/// `duration` (after `warmup` of the same load, unmeasured). Runs on the current runtime's
/// workers.
pub(crate) async fn throughput(
    addr: SocketAddr,
    op: &Op,
    clients: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let warm = if warmup.is_zero() { None } else { Some(timed(addr, op, clients, warmup).await?) };
    let mut measured = timed(addr, op, clients, duration).await?;
    if let Some(warm) = warm {
        // Warm-up requests are not timed, but their failures are counted and reported.
        measured.latency.merge_errors(&warm.latency, "warm-up: ");
    }
    Ok(measured)
}

async fn timed(
    addr: SocketAddr,
    op: &Op,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(Conn::open(addr).await?);
    }
    let barrier = Arc::new(Barrier::new(clients + 1));
    // Every client starts at the barrier, which opens right after they are spawned; they
    // share one origin for the deadline and the one-second windows.
    let origin = Instant::now();
    let deadline = origin + duration;
    let windows = duration.as_secs() as usize;
    let mut tasks = Vec::with_capacity(clients);
    for mut conn in conns {
        let op = op.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::with_capacity(16_384);
            let mut per_second = vec![0u64; windows];
            barrier.wait().await;
            let mut sent = 0u64;
            while Instant::now() < deadline && sent < MAX_REQUESTS_PER_CLIENT {
                sent += 1;
                match one(&mut conn, &op).await {
                    Ok(d) => {
                        samples.push(ms(d));
                        if let Some(w) = per_second.get_mut(origin.elapsed().as_secs() as usize) {
                            *w += 1;
                        }
                    }
                    Err(e) => samples.fail(format!("{e:#}")),
                }
            }
            (samples, per_second)
        }));
    }
    barrier.wait().await;
    let mut latency = Samples::default();
    let mut per_second = vec![0u64; windows];
    for task in tasks {
        let (samples, counts) = task.await.context("a client task panicked")?;
        latency.merge(samples);
        for (total, n) in per_second.iter_mut().zip(counts) {
            *total += n;
        }
    }
    let seconds = origin.elapsed().as_secs_f64();
    Ok(Throughput { clients, rps: latency.len() as f64 / seconds, seconds, per_second, latency })
}

/// Cold starts of one function in one mode.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cold {
    /// Client send → end of response.
    pub(crate) total: Samples,
    /// `Init Duration` of the `REPORT` line.
    pub(crate) init: Samples,
    /// Rust only: client send → first statement of the function's `main`.
    pub(crate) platform: Samples,
}

impl Cold {
    pub(crate) fn errors(&self) -> u64 {
        self.total.errors
    }

    pub(crate) fn to_json(&self, kind: Kind) -> Value {
        let mut v =
            json!({ "total_ms": self.total.to_json(), "init_duration_ms": self.init.to_json() });
        if kind == Kind::Rust {
            v["platform_ms"] = self.platform.to_json();
        }
        v
    }
}

/// One cold start of `name`, recorded into `into`: changes an environment variable to
/// `revision` (a new revision never reuses an environment), waits for
/// `LastUpdateStatus: Successful`, optionally sleeps `idle`, then invokes with the log tail.
/// An invocation whose `REPORT` has no `Init Duration` was not cold, and counts as a
/// failure.
pub(crate) async fn cold_start(
    conn: &mut Conn,
    name: &str,
    kind: Kind,
    revision: &str,
    idle: Option<Duration>,
    into: &mut Cold,
) {
    let poll = Duration::from_millis(1);
    if let Err(e) = conn.update_env(name, "BENCH_REVISION", revision, poll).await {
        into.total.fail(format!("forcing a cold start: {e:#}"));
        conn.reopen().await;
        return;
    }
    if let Some(gap) = idle {
        tokio::time::sleep(gap).await;
    }
    match cold_once(conn, name, kind).await {
        Ok((total, init, platform)) => {
            into.total.push(total);
            into.init.push(init);
            if let Some(p) = platform {
                into.platform.push(p);
            }
        }
        Err(e) => {
            into.total.fail(format!("{e:#}"));
            conn.reopen().await;
        }
    }
}

/// One cold invoke: (total ms, Init Duration ms, platform part ms for Rust).
async fn cold_once(
    conn: &mut Conn,
    name: &str,
    kind: Kind,
) -> anyhow::Result<(f64, f64, Option<f64>)> {
    let request = conn.invoke_request(name, true)?;
    let sent_ns = epoch_ns();
    let start = Instant::now();
    let reply = conn.send(request).await?;
    let total = ms(start.elapsed());
    let invoked = check_invoke(&reply)?;
    let tail = invoked
        .log_tail
        .as_deref()
        .context("no X-Amz-Log-Result although LogType=Tail was asked")?;
    let init = init_duration_ms(tail).with_context(|| {
        format!("not a cold start: no Init Duration in the REPORT line:\n{tail}")
    })?;
    let platform = match check_payload(kind, &invoked.payload)? {
        Some(main_ns) => {
            let part = (i128::from(main_ns) - i128::from(sent_ns)) as f64 / 1e6;
            if !(0.0..=total).contains(&part) {
                bail!("implausible platform part {part:.3} ms (total {total:.3} ms): main started at {main_ns}, sent at {sent_ns}");
            }
            Some(part)
        }
        None => None,
    };
    Ok((total, init, platform))
}

fn epoch_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

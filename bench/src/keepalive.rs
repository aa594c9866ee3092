//! The keep-alive phase: the same synthetic trace replayed at the same moments against two
//! servers with the same `--idle-timeout` (2 s), one per `--keep-alive-policy` (fixed,
//! adaptive), counting cold starts (`Init Duration` in the Tail log's REPORT line) and the
//! environment-seconds spent idle (memory held), from `/_alonzo/api/concurrency` sampled
//! every 100 ms, and of those the ones wasted: idle time not followed by a warm start (the
//! environment was reclaimed before the next call, or never called again). Two functions: "periodic", invoked every 1.5 × the idle timeout (the fixed
//! timer always reclaims just before the next call), and "bursty", 40 calls 100 ms apart and
//! then none (the fixed timer holds the environment a whole idle timeout after the burst).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use http::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::fixtures::Fixture;
use crate::http::{check_invoke, init_duration_ms, Conn};
use crate::stats::round3;

/// `--idle-timeout` of both servers.
pub(crate) const IDLE_TIMEOUT: &str = "2s";
/// The adaptive server's bounds: the defaults (1 m and 30 m against a 5 m idle timeout)
/// scaled like the idle timeout.
pub(crate) const ADAPTIVE_FLAGS: [&str; 4] =
    ["--keep-alive-min", "400ms", "--keep-alive-max", "12s"];
const PERIODIC: &str = "bench-ka-periodic";
const BURSTY: &str = "bench-ka-bursty";
const PERIODIC_GAP: Duration = Duration::from_millis(3000);
const PERIODIC_CALLS: u32 = 20;
const BURST_START: Duration = Duration::from_millis(1000);
const BURST_GAP: Duration = Duration::from_millis(100);
const BURST_CALLS: u32 = 40;
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// After the trace, sampling goes on until neither function has an idle environment, at most
/// this long (longer than the adaptive server's maximum keep-alive).
const SETTLE: Duration = Duration::from_secs(14);

/// One function's figures on one server.
#[derive(Debug, Clone, Default)]
pub(crate) struct FnRun {
    pub(crate) calls: u32,
    pub(crate) cold: u32,
    /// Environment-seconds idle over the whole run.
    pub(crate) idle_env_s: f64,
    /// Of which wasted: before a cold start or after the last call (never used again).
    pub(crate) wasted_env_s: f64,
}

/// One server's figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyRun {
    pub(crate) periodic: FnRun,
    pub(crate) bursty: FnRun,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
}

impl PolicyRun {
    pub(crate) fn cold(&self) -> u32 {
        self.periodic.cold + self.bursty.cold
    }

    pub(crate) fn idle_env_s(&self) -> f64 {
        self.periodic.idle_env_s + self.bursty.idle_env_s
    }

    pub(crate) fn wasted_env_s(&self) -> f64 {
        self.periodic.wasted_env_s + self.bursty.wasted_env_s
    }

    fn to_json(&self) -> Value {
        let f = |r: &FnRun| json!({ "calls": r.calls, "cold_starts": r.cold, "idle_env_seconds": round3(r.idle_env_s), "wasted_idle_env_seconds": round3(r.wasted_env_s) });
        json!({ "periodic": f(&self.periodic), "bursty": f(&self.bursty), "cold_starts": self.cold(), "idle_env_seconds": round3(self.idle_env_s()), "wasted_idle_env_seconds": round3(self.wasted_env_s()), "errors": self.errors })
    }
}

/// Both servers' figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeepAlive {
    pub(crate) fixed: PolicyRun,
    pub(crate) adaptive: PolicyRun,
}

impl KeepAlive {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "idle_timeout": IDLE_TIMEOUT,
            "adaptive_flags": ADAPTIVE_FLAGS.join(" "),
            "fixed": self.fixed.to_json(),
            "adaptive": self.adaptive.to_json(),
            "ratio_adaptive_to_fixed": {
                "cold_starts": round3(f64::from(self.adaptive.cold()) / f64::from(self.fixed.cold())),
                "idle_env_seconds": round3(self.adaptive.idle_env_s() / self.fixed.idle_env_s()),
                "wasted_idle_env_seconds": round3(self.adaptive.wasted_env_s() / self.fixed.wasted_env_s()),
            },
        })
    }
}

/// Creates the two functions on a server.
pub(crate) async fn prepare(addr: SocketAddr, python: &Fixture) -> anyhow::Result<()> {
    let mut conn = Conn::open(addr).await?;
    for name in [PERIODIC, BURSTY] {
        conn.create_function(name, python.runtime, python.handler, &python.zip)
            .await
            .with_context(|| format!("creating {name} on {addr}"))?;
    }
    Ok(())
}

/// Replays the trace against both servers at once.
pub(crate) async fn run(fixed: SocketAddr, adaptive: SocketAddr) -> anyhow::Result<KeepAlive> {
    let start = Instant::now() + Duration::from_millis(200);
    let (fixed, adaptive) = tokio::join!(one(fixed, start), one(adaptive, start));
    Ok(KeepAlive { fixed: fixed?, adaptive: adaptive? })
}

/// What the calls of one function saw.
#[derive(Debug, Default)]
struct Calls {
    calls: u32,
    cold: u32,
    errors: u64,
    first_error: Option<String>,
    /// When each call was sent, and whether it started an environment.
    sent: Vec<(Instant, bool)>,
}

async fn calls(addr: SocketAddr, name: &str, at: Vec<Instant>) -> anyhow::Result<Calls> {
    let mut conn = Conn::open(addr).await?;
    let mut out = Calls::default();
    for when in at {
        tokio::time::sleep_until(when).await;
        let sent = Instant::now();
        let outcome = async {
            let reply = conn.send(conn.invoke_request(name, true)?).await?;
            let invoked = check_invoke(&reply)?;
            anyhow::Ok(invoked.log_tail.as_deref().and_then(init_duration_ms).is_some())
        }
        .await;
        out.calls += 1;
        match outcome {
            Ok(cold) => {
                out.cold += u32::from(cold);
                out.sent.push((sent, cold));
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("{name}: {e:#}"));
                conn.reopen().await;
            }
        }
    }
    Ok(out)
}

/// Idle environments of each function, from `/_alonzo/api/concurrency`.
async fn idle_counts(conn: &mut Conn) -> anyhow::Result<(u64, u64)> {
    let request = conn.signed(Method::GET, "/_alonzo/api/concurrency", bytes::Bytes::new(), &[])?;
    let stats = conn.send(request).await?.success()?.json()?;
    let idle = |name: &str| {
        stats["Versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["Function"] == name)
            .filter_map(|v| v["Idle"].as_u64())
            .sum::<u64>()
    };
    Ok((idle(PERIODIC), idle(BURSTY)))
}

async fn one(addr: SocketAddr, start: Instant) -> anyhow::Result<PolicyRun> {
    let periodic_at = (0..PERIODIC_CALLS).map(|i| start + PERIODIC_GAP * i).collect();
    let burst_at = (0..BURST_CALLS).map(|i| start + BURST_START + BURST_GAP * i).collect();
    let periodic = tokio::spawn(calls(addr, PERIODIC, periodic_at));
    let bursty = tokio::spawn(calls(addr, BURSTY, burst_at));
    // Samples (time, idle periodic, idle bursty) until the trace is over and nothing is idle.
    let mut conn = Conn::open(addr).await?;
    let trace_end = start + PERIODIC_GAP * (PERIODIC_CALLS - 1);
    let mut samples: Vec<(Instant, u64, u64)> = Vec::new();
    let mut tick = tokio::time::interval_at(start, SAMPLE_EVERY);
    let mut errors = 0;
    let mut first_error = None;
    loop {
        let now = tick.tick().await;
        match idle_counts(&mut conn).await {
            Ok((p, b)) => samples.push((now, p, b)),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("/_alonzo/api/concurrency: {e:#}"));
                conn.reopen().await;
            }
        }
        let done = periodic.is_finished() && bursty.is_finished() && now > trace_end;
        let idle_now = samples.last().is_some_and(|(_, p, b)| p + b > 0);
        if done && (!idle_now || now > trace_end + SETTLE) {
            break;
        }
    }
    let periodic = periodic.await.context("the periodic caller panicked")??;
    let bursty = bursty.await.context("the bursty caller panicked")??;
    // Idle time is wasted unless the next call of the function was warm.
    let integrate = |which: fn(&(Instant, u64, u64)) -> u64, sent: &[(Instant, bool)]| {
        let mut total = 0.0;
        let mut wasted = 0.0;
        for pair in samples.windows(2) {
            let dt = (pair[1].0 - pair[0].0).as_secs_f64();
            let env_s = which(&pair[0]) as f64 * dt;
            total += env_s;
            let next = sent.iter().find(|(at, _)| *at > pair[0].0);
            if next.is_none_or(|(_, cold)| *cold) {
                wasted += env_s;
            }
        }
        (total, wasted)
    };
    let fn_run = |c: &Calls, which: fn(&(Instant, u64, u64)) -> u64| {
        let (idle_env_s, wasted_env_s) = integrate(which, &c.sent);
        FnRun { calls: c.calls, cold: c.cold, idle_env_s, wasted_env_s }
    };
    Ok(PolicyRun {
        periodic: fn_run(&periodic, |s| s.1),
        bursty: fn_run(&bursty, |s| s.2),
        errors: periodic.errors + bursty.errors + errors,
        first_error: periodic.first_error.or(bursty.first_error).or(first_error),
    })
}

/// The phase's lines of the printed table.
pub(crate) fn table(k: &KeepAlive) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nKEEP-ALIVE  one trace, two servers with --idle-timeout {IDLE_TIMEOUT}: --keep-alive-policy fixed vs adaptive ({})",
        ADAPTIVE_FLAGS.join(" ")
    );
    let ratio = |a: f64, f: f64| if f > 0.0 { format!("{:.2}", a / f) } else { "-".into() };
    let rows = [
        (
            format!("periodic, {PERIODIC_CALLS} calls {} s apart", PERIODIC_GAP.as_secs_f64()),
            &k.fixed.periodic,
            &k.adaptive.periodic,
        ),
        (
            format!("bursty, {BURST_CALLS} calls {} ms apart, then none", BURST_GAP.as_millis()),
            &k.fixed.bursty,
            &k.adaptive.bursty,
        ),
    ];
    let _ = writeln!(
        s,
        "  {:<40} {:>17} {:>6}  {:>21} {:>6}  {:>23}",
        "", "cold (fix / ada)", "ratio", "idle env-s (fix / ada)", "ratio", "wasted (f / a)"
    );
    for (what, f, a) in rows {
        let _ = writeln!(
            s,
            "  {what:<40} {:>8} / {:<8} {:>6}  {:>10.1} / {:<8.1} {:>6}  {:>9.1} / {:<6.1} {:>6}",
            f.cold,
            a.cold,
            ratio(f64::from(a.cold), f64::from(f.cold)),
            f.idle_env_s,
            a.idle_env_s,
            ratio(a.idle_env_s, f.idle_env_s),
            f.wasted_env_s,
            a.wasted_env_s,
            ratio(a.wasted_env_s, f.wasted_env_s),
        );
    }
    let _ = writeln!(
        s,
        "  {:<40} {:>8} / {:<8} {:>6}  {:>10.1} / {:<8.1} {:>6}  {:>9.1} / {:<6.1} {:>6}",
        "both",
        k.fixed.cold(),
        k.adaptive.cold(),
        ratio(f64::from(k.adaptive.cold()), f64::from(k.fixed.cold())),
        k.fixed.idle_env_s(),
        k.adaptive.idle_env_s(),
        ratio(k.adaptive.idle_env_s(), k.fixed.idle_env_s()),
        k.fixed.wasted_env_s(),
        k.adaptive.wasted_env_s(),
        ratio(k.adaptive.wasted_env_s(), k.fixed.wasted_env_s()),
    );
    s
}

//! `alonzo-bench`: runs the release `alonzo` server on loopback and measures, in one run,
//! the loopback HTTP floor, warm invoke latency (Python and Rust no-ops), warm throughput at
//! 1 and 32 clients, cold starts (back to back and after an idle gap), durable SQS
//! `SendMessage` throughput at 1 and 64 clients, and cold starts and idle memory under the
//! fixed and adaptive keep-alive policies (`keepalive.rs`); prints a table
//! and writes the same figures to `target/bench/latest.json`. This module owns the order of
//! the phases and their sizes; `report` renders, `scenarios` measures.
//!
//! Environment: `ALONZO_BIN` (server binary, default `target/release/alonzo`),
//! `ALONZO_BENCH_SERVER_LOG` (the server's `RUST_LOG`, default `warn`), and
//! `ALONZO_BENCH_PHASES` (a comma-separated subset of the phases; see `want`); for the
//! scale-out phase `ALONZO_BENCH_SCALE_N` (parallel calls), `ALONZO_BENCH_SCALE_BASELINE=0`
//! (skip the `--python-zygote off` burst) and `ALONZO_BENCH_SCALE_ARGS` (more `serve`
//! arguments for its servers, e.g. `--network-mode none`); `ALONZO_BENCH_WARM_MB` (the warm
//! and throughput functions' memory, default 1769: one core); `ALONZO_BENCH_KEEP_LOGS` (a
//! directory to copy each server's log into when it stops).
//! Exit status: 0 when every request succeeded, 1 when some failed (they are reported),
//! 2 when the bench could not run or hit its watchdog, 130/143 on SIGINT/SIGTERM.

mod density;
mod fixtures;
mod http;
mod keepalive;
mod machine;
mod packages;
mod report;
mod scale;
mod scenarios;
mod server;
mod sqs;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::fixtures::Fixture;
use crate::http::Conn;
use crate::report::Results;
use crate::scenarios::{Kind, Op};
use crate::server::Server;

/// Sequential requests per latency figure (after the warm-up).
const LATENCY_N: usize = 3000;
const LATENCY_WARMUP: usize = 300;
/// Cold starts per runtime and mode.
const COLD_N: usize = 25;
/// The idle gap before each "after idle" cold start.
const IDLE_GAP: Duration = Duration::from_millis(200);
const FLOOR_SECONDS: Duration = Duration::from_secs(3);
const INVOKE_SECONDS: Duration = Duration::from_secs(5);
const HIGH_CONCURRENCY: usize = 32;
/// Concurrent senders of the SQS phase's second run.
const SQS_CONCURRENCY: usize = 64;
const SQS_SECONDS: Duration = Duration::from_secs(5);
/// The whole run (a first fixture build included) is stopped after this; a normal run takes
/// under a minute.
const WATCHDOG: Duration = Duration::from_secs(600);
/// How long the machine's background load is sampled before and after the run.
const BACKGROUND_SAMPLE: Duration = Duration::from_secs(1);

const PY_WARM: &str = "bench-python-warm";
const RS_WARM: &str = "bench-rust-warm";
/// The Python no-op again at Lambda's smallest size, to show what its CPU quota does to a
/// back-to-back caller.
const PY_WARM_SMALL: &str = "bench-python-warm-128";
/// Memory of the warm-path functions: one whole core (Lambda's 1,769 MB per vCPU). At 128 MB
/// a function gets 7.2 % of a core, less than a back-to-back caller makes its runtime spend
/// (about 0.1 ms of CPU per call), so the warm numbers would measure the quota's pauses, not
/// the platform.
const WARM_MEMORY_MB: u32 = 1769;
const PY_COLD: &str = "bench-python-cold";
const PY_ASYNC: &str = "bench-python-async";
const NODE_COLD: &str = "bench-node-cold";
const PY_SCALE: &str = "bench-python-scale";
const PY_DENSE: &str = "bench-python-dense";
/// Idle environments of the density phase (`ALONZO_BENCH_DENSITY_N`): the goal, 2000.
const DENSITY_N_DEFAULT: usize = 2000;
/// Environments the density phase starts at once.
const DENSITY_WAVE: usize = 200;
/// Parallel calls of the scale-out phase (`ALONZO_BENCH_SCALE_N`; the goal is stated
/// for 1000).
const SCALE_N_DEFAULT: usize = 200;
const RS_COLD: &str = "bench-rust-cold";

fn main() -> ExitCode {
    match run() {
        Ok(results) if results.failures() == 0 => ExitCode::SUCCESS,
        Ok(results) => {
            eprintln!("bench: {} request(s) failed; see ERRORS above", results.failures());
            ExitCode::from(1)
        }
        Err(_) if server::interrupted() => ExitCode::from(130),
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<Results> {
    let root = project_root();
    let bin = std::env::var_os("ALONZO_BIN")
        .map_or_else(|| root.join("target/release/alonzo"), PathBuf::from);
    server::guard_run(WATCHDOG)?;
    let python = fixtures::python_noop()?;
    let rust = fixtures::rust_noop(&root)?;
    let node = fixtures::node_noop()?;

    let background_before = machine::busy_share(BACKGROUND_SAMPLE);
    // Lambda's default account limit (1000) holds unless a phase asks for more environments.
    let limit = env_count("ALONZO_BENCH_SCALE_N", SCALE_N_DEFAULT)
        .max(env_count("ALONZO_BENCH_DENSITY_N", DENSITY_N_DEFAULT) + 50)
        .max(1000)
        .to_string();
    // The scale-out and density phases start that many environments at once, beyond the
    // default 1000 per 10 s when asked for more.
    let mut server =
        Server::start_with(&bin, &["--concurrency-limit", &limit, "--scale-rate", &limit])?;
    eprintln!("bench: server {} on {}", bin.display(), server.addr);
    let started = Instant::now();
    let measured = measure(&server, &bin, &python, &rust, &node);
    let elapsed = started.elapsed();
    let mut results = match measured {
        Ok(mut results) => {
            results.bin = bin.display().to_string();
            results.seconds = elapsed.as_secs_f64();
            results
        }
        Err(e) => {
            let tail = server.log_tail();
            if !tail.trim().is_empty() && !server::interrupted() {
                eprintln!("bench: the server's last log lines:\n{tail}");
            }
            return Err(e);
        }
    };
    // Figures taken while the server was dying are not figures.
    server.ensure_running()?;
    // With every environment the phases left (the density phase's thousands among them).
    results.stop = Some(server.stop());
    drop(server);
    results.background = (background_before, machine::busy_share(BACKGROUND_SAMPLE));

    print!("{}", results.table());
    let out = root.join("target/bench/latest.json");
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    std::fs::write(&out, serde_json::to_string_pretty(&results.to_json())? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("\nwritten to {}", out.display());
    Ok(results)
}

/// All phases, in an order that keeps each undisturbed by the previous: the floor first,
/// then single-connection latency, cold starts, and the concurrency runs (which leave 32
/// environments behind) last, then the floor latency once more to show how steady the
/// shared machine was. Latency phases run on a single-threaded runtime (no
/// cross-thread wake-ups in the client), and so do the one-client throughput runs; the
/// 32-client runs use a two-worker runtime.
/// A count from the environment, or `default`.
fn env_count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Whether a phase runs: all do unless `ALONZO_BENCH_PHASES` lists some (comma-separated:
/// warm, cold, throughput, sqs, async, scale, density, keepalive, packages; the loopback floor always
/// runs).
fn want(phase: &str) -> bool {
    std::env::var("ALONZO_BENCH_PHASES")
        .map_or(true, |list| list.split(',').any(|p| p.trim() == phase))
}

fn measure(
    server: &Server,
    bin: &std::path::Path,
    python: &Fixture,
    rust: &Fixture,
    node: &Fixture,
) -> anyhow::Result<Results> {
    let addr = server.addr;
    let single = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let multi =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let py_warm = Op::Invoke { name: PY_WARM.into(), kind: Kind::Python };
    let rs_warm = Op::Invoke { name: RS_WARM.into(), kind: Kind::Rust };
    let py_warm_small = Op::Invoke { name: PY_WARM_SMALL.into(), kind: Kind::Python };
    let mut r = Results::default();
    let warm_mb = u32::try_from(env_count("ALONZO_BENCH_WARM_MB", WARM_MEMORY_MB as usize))
        .unwrap_or(WARM_MEMORY_MB);
    r.warm_memory_mb = warm_mb;

    single.block_on(async {
        let mut conn = Conn::open(addr).await?;
        for (name, f) in [(PY_WARM, python), (RS_WARM, rust)] {
            conn.create_function_sized(name, f.runtime, f.handler, &f.zip, warm_mb)
                .await
                .with_context(|| format!("creating {name}"))?;
        }
        for (name, f) in [
            (PY_WARM_SMALL, python),
            (PY_COLD, python),
            (RS_COLD, rust),
            (PY_ASYNC, python),
            (NODE_COLD, node),
        ] {
            conn.create_function(name, f.runtime, f.handler, &f.zip)
                .await
                .with_context(|| format!("creating {name}"))?;
        }
        let sleeper = fixtures::zip_one("index.py", scale::SOURCE.as_bytes(), 0o644)?;
        if want("density") {
            // One function per wave of the density phase.
            let waves =
                env_count("ALONZO_BENCH_DENSITY_N", DENSITY_N_DEFAULT).div_ceil(DENSITY_WAVE);
            for wave in 0..waves.max(1) {
                let name = format!("{PY_DENSE}-{wave}");
                conn.create_function(&name, "python3.11", "index.handler", &sleeper).await?;
            }
        }
        // The async phase measures the durable queue, not Python: with reserved concurrency
        // 0 every accepted event goes straight to the (empty) failure path.
        conn.put_reserved_concurrency(PY_ASYNC, 0).await?;
        anyhow::Ok(())
    })?;

    eprintln!("bench: loopback floor");
    r.floor_latency =
        single.block_on(scenarios::sequential(addr, &Op::Health, LATENCY_WARMUP, LATENCY_N))?;
    let warm_floor = Duration::from_millis(500);
    r.floor_c1 = Some(single.block_on(scenarios::throughput(
        addr,
        &Op::Health,
        1,
        warm_floor,
        FLOOR_SECONDS,
    ))?);
    r.floor_cn = Some(multi.block_on(scenarios::throughput(
        addr,
        &Op::Health,
        HIGH_CONCURRENCY,
        warm_floor,
        FLOOR_SECONDS,
    ))?);

    if want("warm") {
        eprintln!("bench: warm invoke latency");
        r.warm_python =
            single.block_on(scenarios::sequential(addr, &py_warm, LATENCY_WARMUP, LATENCY_N))?;
        r.warm_rust =
            single.block_on(scenarios::sequential(addr, &rs_warm, LATENCY_WARMUP, LATENCY_N))?;
        r.warm_python_small = single.block_on(scenarios::sequential(
            addr,
            &py_warm_small,
            LATENCY_WARMUP,
            LATENCY_N,
        ))?;
    }

    if want("cold") {
        eprintln!("bench: cold starts");
        single.block_on(async {
            let mut conn = Conn::open(addr).await?;
            // Interleaved, so that background load drifting during the run hits every series.
            for i in 0..COLD_N {
                let b2b = format!("b2b-{i}");
                let idle = format!("idle-{i}");
                let run = [
                    (PY_COLD, Kind::Python, &b2b, None, &mut r.cold_python),
                    (PY_COLD, Kind::Python, &idle, Some(IDLE_GAP), &mut r.cold_python_idle),
                    (RS_COLD, Kind::Rust, &b2b, None, &mut r.cold_rust),
                    (RS_COLD, Kind::Rust, &idle, Some(IDLE_GAP), &mut r.cold_rust_idle),
                    (NODE_COLD, Kind::Node, &b2b, None, &mut r.cold_node),
                    (NODE_COLD, Kind::Node, &idle, Some(IDLE_GAP), &mut r.cold_node_idle),
                ];
                for (name, kind, revision, gap, into) in run {
                    scenarios::cold_start(&mut conn, name, kind, revision, gap, into).await;
                }
            }
            anyhow::Ok(())
        })?;

        // The baseline: the same back-to-back cold starts on a second server that builds no
        // sandbox ahead (`--prebuilt-sandboxes 0`: every sandbox and runtime from scratch),
        // in the same run, so the ratio survives the machine's noise.
        eprintln!("bench: cold starts from scratch (baseline server, --prebuilt-sandboxes 0)");
        let mut baseline = Server::start_with(bin, &["--prebuilt-sandboxes", "0"])?;
        single.block_on(async {
            let mut conn = Conn::open(baseline.addr).await?;
            for (name, f) in [(PY_COLD, python), (RS_COLD, rust), (NODE_COLD, node)] {
                conn.create_function(name, f.runtime, f.handler, &f.zip)
                    .await
                    .with_context(|| format!("creating {name} on the baseline server"))?;
            }
            for i in 0..COLD_N {
                let b2b = format!("b2b-{i}");
                let run = [
                    (PY_COLD, Kind::Python, &mut r.cold_python_scratch),
                    (RS_COLD, Kind::Rust, &mut r.cold_rust_scratch),
                    (NODE_COLD, Kind::Node, &mut r.cold_node_scratch),
                ];
                for (name, kind, into) in run {
                    scenarios::cold_start(&mut conn, name, kind, &b2b, None, into).await;
                }
            }
            anyhow::Ok(())
        })?;
        baseline.ensure_running()?;
        drop(baseline);
    }

    if want("throughput") {
        eprintln!("bench: warm throughput");
        r.invoke_c1 = Some(single.block_on(scenarios::throughput(
            addr,
            &py_warm,
            1,
            Duration::from_secs(1),
            INVOKE_SECONDS,
        ))?);
        // The warm-up starts the 32 environments the measured run then reuses.
        r.invoke_cn = Some(multi.block_on(scenarios::throughput(
            addr,
            &py_warm,
            HIGH_CONCURRENCY,
            Duration::from_secs(2),
            INVOKE_SECONDS,
        ))?);
    }

    if want("sqs") {
        eprintln!("bench: durable SQS SendMessage");
        let queue_url = single.block_on(sqs::create_queue(addr))?;
        let send = Op::SqsSend { queue_url };
        r.sqs_c1 = Some(single.block_on(scenarios::throughput(
            addr,
            &send,
            1,
            Duration::from_millis(500),
            SQS_SECONDS,
        ))?);
        r.sqs_cn = Some(multi.block_on(scenarios::throughput(
            addr,
            &send,
            SQS_CONCURRENCY,
            Duration::from_millis(500),
            SQS_SECONDS,
        ))?);
    }

    if want("async") {
        eprintln!("bench: durable asynchronous Invoke (202 after the queue's commit)");
        // Events settle (to the failure path) while the phase runs: the workers' lease and
        // removal writes share the store with the accepting requests.
        let event = Op::InvokeEvent { name: PY_ASYNC.into() };
        r.async_c1 = Some(single.block_on(scenarios::throughput(
            addr,
            &event,
            1,
            Duration::from_millis(500),
            SQS_SECONDS,
        ))?);
        r.async_cn = Some(multi.block_on(scenarios::throughput(
            addr,
            &event,
            SQS_CONCURRENCY,
            Duration::from_millis(500),
            SQS_SECONDS,
        ))?);
    }

    if want("scale") {
        let n = env_count("ALONZO_BENCH_SCALE_N", SCALE_N_DEFAULT);
        eprintln!("bench: scale-out, {n} parallel calls of a sleeping python3.11 function");
        // Each burst on a server of its own, stopped before the next: a server still holding
        // a thousand environments (their namespaces, mounts and cgroups) slows the next
        // burst's kernel work. The second runs Python sandboxes forked from a zygote
        // (`--python-zygote on`, docs/performance.md), for the ratio.
        let limit = n.max(1000).to_string();
        let burst = |zygote: &str| -> anyhow::Result<scale::ScaleOut> {
            let extra = std::env::var("ALONZO_BENCH_SCALE_ARGS").unwrap_or_default();
            let mut args = vec![
                "--python-zygote",
                zygote,
                "--concurrency-limit",
                &limit,
                "--scale-rate",
                &limit,
            ];
            args.extend(extra.split_whitespace());
            let server = Server::start_with(bin, &args)?;
            let out = multi.block_on(async {
                let sleeper = fixtures::zip_one("index.py", scale::SOURCE.as_bytes(), 0o644)?;
                Conn::open(server.addr)
                    .await?
                    .create_function(PY_SCALE, "python3.11", "index.handler", &sleeper)
                    .await?;
                scale::run(server.addr, PY_SCALE, n).await
            });
            drop(server);
            // The kernel frees network namespaces in the background.
            std::thread::sleep(Duration::from_secs(3));
            out
        };
        // `ALONZO_BENCH_SCALE_BASELINE=0` skips the `off` burst (for profiling the default).
        if std::env::var("ALONZO_BENCH_SCALE_BASELINE").as_deref() != Ok("0") {
            r.scale = Some(burst("off")?);
            eprintln!("bench: scale-out again with --python-zygote on");
        }
        r.scale_zygote = Some(burst("on")?);
    }

    if want("density") {
        let n = env_count("ALONZO_BENCH_DENSITY_N", DENSITY_N_DEFAULT);
        eprintln!("bench: density, {n} idle python3.11 environments");
        let before = density::pss_tree_kib(server.pid());
        // In waves of at most DENSITY_WAVE environments, each wave a function of its own (so
        // that a wave cannot reuse the previous one's idle environments): the figure is how
        // many idle environments the server holds, not how fast it creates them (that is the
        // scale-out phase).
        let started = multi.block_on(async {
            let mut total = scale::ScaleOut::default();
            let mut left = n;
            let mut wave = 0;
            while left > 0 {
                let size = left.min(DENSITY_WAVE);
                let out = scale::run(addr, &format!("{PY_DENSE}-{wave}"), size).await?;
                total.errors += out.errors;
                total.first_error = total.first_error.or(out.first_error);
                left -= size;
                wave += 1;
            }
            anyhow::Ok(total)
        })?;
        let after = density::pss_tree_kib(server.pid());
        let warm = single.block_on(density::warm_latency(addr, PY_WARM))?;
        r.density = Some(density::Density {
            n: n - started.errors,
            pss_before_kib: before,
            pss_after_kib: after,
            warm,
            errors: started.errors,
            first_error: started.first_error,
        });
    }

    if want("keepalive") {
        eprintln!(
            "bench: keep-alive, one trace against --keep-alive-policy fixed and adaptive (--idle-timeout {})",
            keepalive::IDLE_TIMEOUT
        );
        let common = ["--idle-timeout", keepalive::IDLE_TIMEOUT, "--prebuilt-sandboxes", "1"];
        let mut fixed =
            Server::start_with(bin, &[&common[..], &["--keep-alive-policy", "fixed"]].concat())?;
        let mut adaptive = Server::start_with(
            bin,
            &[&common[..], &["--keep-alive-policy", "adaptive"], &keepalive::ADAPTIVE_FLAGS[..]]
                .concat(),
        )?;
        multi.block_on(async {
            keepalive::prepare(fixed.addr, python).await?;
            keepalive::prepare(adaptive.addr, python).await
        })?;
        r.keep_alive = Some(multi.block_on(keepalive::run(fixed.addr, adaptive.addr))?);
        fixed.ensure_running()?;
        adaptive.ensure_running()?;
    }

    if want("packages") {
        eprintln!("bench: Python package cold starts, --compile-python on vs off");
        let mut on = Server::start_with(bin, &["--compile-python", "on"])?;
        let mut off = Server::start_with(bin, &["--compile-python", "off"])?;
        r.packages = Some(single.block_on(packages::run(on.addr, off.addr))?);
        on.ensure_running()?;
        off.ensure_running()?;
    }

    eprintln!("bench: loopback floor again");
    r.floor_latency_end =
        single.block_on(scenarios::sequential(addr, &Op::Health, LATENCY_WARMUP, LATENCY_N))?;
    r.idle_gap_ms = IDLE_GAP.as_millis() as u64;
    Ok(r)
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench lives in the project root")
        .to_owned()
}

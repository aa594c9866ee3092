//! The results of one bench run and their two renderings: the table printed to stdout and
//! the JSON written to `target/bench/latest.json` (the same figures, in milliseconds and
//! requests per second), with the targets judged next to the figures.

use std::fmt::Write;

use serde_json::{json, Value};

use crate::scenarios::{Cold, Kind, Throughput};
use crate::stats::{round3, Samples};

/// Target: warm invoke p50 of the Python no-op, ms.
const TARGET_WARM_P50_MS: f64 = 0.5;
/// Background busy share above which the table warns that figures are likely disturbed.
const NOISY_BACKGROUND: f64 = 0.15;
/// Target: the platform part of a cold start (client send → function's `main`), ms.
const TARGET_PLATFORM_MS: f64 = 3.0;
/// Target: the whole cold start of the Python no-op (client send → response), ms.
const TARGET_PYTHON_COLD_MS: f64 = 15.0;
/// Target: warm invoke p50 as a multiple of the loopback floor's p50.
const TARGET_WARM_OVER_FLOOR: f64 = 2.0;
/// Target: from none to this many Python environments running at once...
const TARGET_SCALE_N: usize = 1000;
/// ...within this many ms.
const TARGET_SCALE_MS: f64 = 3000.0;
/// Target: idle Python environments held at once...
const TARGET_DENSITY_N: usize = 2000;
/// ...with the warm p50 at most this multiple of the one measured before them ("without
/// degrading invoke latency").
const DENSITY_WARM_SLOWDOWN_MAX: f64 = 1.5;

/// Every figure of one run.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) bin: String,
    pub(crate) seconds: f64,
    pub(crate) idle_gap_ms: u64,
    /// Busy share of all cores in one second before the server started and one after it
    /// stopped: other work on the (shared) machine.
    pub(crate) background: (Option<f64>, Option<f64>),
    pub(crate) floor_latency: Samples,
    /// The same floor latency measured again after every other phase: how steady the
    /// machine was.
    pub(crate) floor_latency_end: Samples,
    /// How long the main server took to exit after SIGTERM at the end, with every environment
    /// the phases left (`Some(None)`: not within the bench's timeout, so SIGKILLed).
    pub(crate) stop: Option<Option<std::time::Duration>>,
    pub(crate) floor_c1: Option<Throughput>,
    pub(crate) floor_cn: Option<Throughput>,
    pub(crate) warm_python: Samples,
    pub(crate) warm_rust: Samples,
    /// Memory of the functions behind `warm_python`, `warm_rust` and the throughput phase.
    pub(crate) warm_memory_mb: u32,
    /// The Python no-op at 128 MB (7.2 % of a core).
    pub(crate) warm_python_small: Samples,
    pub(crate) invoke_c1: Option<Throughput>,
    pub(crate) invoke_cn: Option<Throughput>,
    /// Durable SQS `SendMessage` with 1 and with many clients.
    pub(crate) sqs_c1: Option<Throughput>,
    pub(crate) sqs_cn: Option<Throughput>,
    pub(crate) async_c1: Option<Throughput>,
    pub(crate) async_cn: Option<Throughput>,
    pub(crate) cold_python: Cold,
    pub(crate) cold_node: Cold,
    pub(crate) scale: Option<crate::scale::ScaleOut>,
    /// The same scale-out on a `--python-zygote on` server.
    pub(crate) scale_zygote: Option<crate::scale::ScaleOut>,
    pub(crate) density: Option<crate::density::Density>,
    /// The keep-alive phase: fixed against adaptive on the same trace.
    pub(crate) keep_alive: Option<crate::keepalive::KeepAlive>,
    /// The packages phase: Python package cold starts with and without compiled bytecode.
    pub(crate) packages: Option<crate::packages::Packages>,
    pub(crate) cold_node_idle: Cold,
    pub(crate) cold_rust: Cold,
    pub(crate) cold_python_idle: Cold,
    pub(crate) cold_rust_idle: Cold,
    /// The back-to-back series on a server with `--prebuilt-sandboxes 0` (the baseline).
    pub(crate) cold_python_scratch: Cold,
    pub(crate) cold_rust_scratch: Cold,
    pub(crate) cold_node_scratch: Cold,
}

fn rps(t: &Option<Throughput>) -> f64 {
    t.as_ref().map_or(f64::NAN, |t| t.rps)
}

/// `min–max` of a run's one-second windows, in requests.
fn windows(t: &Option<Throughput>) -> String {
    match t.as_ref().and_then(Throughput::window_range) {
        Some((lo, hi)) => format!("{}-{}", thousands(lo as f64), thousands(hi as f64)),
        None => "-".into(),
    }
}

fn tput_errors(t: &Option<Throughput>) -> u64 {
    t.as_ref().map_or(0, |t| t.latency.errors)
}

fn verdict(value: f64, target: f64) -> &'static str {
    if !value.is_finite() {
        "NO DATA"
    } else if value < target {
        "met"
    } else {
        "NOT MET"
    }
}

fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

fn f1(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-".into()
    }
}

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".into();
    }
    let digits = format!("{:.0}", x.round());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Results {
    /// Failed requests over the whole run.
    pub(crate) fn failures(&self) -> u64 {
        self.floor_latency.errors
            + self.floor_latency_end.errors
            + self.warm_python.errors
            + self.warm_rust.errors
            + self.warm_python_small.errors
            + tput_errors(&self.floor_c1)
            + tput_errors(&self.floor_cn)
            + tput_errors(&self.invoke_c1)
            + tput_errors(&self.invoke_cn)
            + tput_errors(&self.sqs_c1)
            + tput_errors(&self.sqs_cn)
            + tput_errors(&self.async_c1)
            + tput_errors(&self.async_cn)
            + self.cold_python.errors()
            + self.cold_rust.errors()
            + self.cold_python_idle.errors()
            + self.cold_rust_idle.errors()
            + self.cold_node.errors()
            + self.cold_node_idle.errors()
            + self.cold_python_scratch.errors()
            + self.cold_rust_scratch.errors()
            + self.cold_node_scratch.errors()
            + self.scale.as_ref().map_or(0, |s| s.errors as u64)
            + self.scale_zygote.as_ref().map_or(0, |s| s.errors as u64)
            + self.density.as_ref().map_or(0, |d| d.warm.errors + d.errors as u64)
            + self.keep_alive.as_ref().map_or(0, |k| k.fixed.errors + k.adaptive.errors)
            + self.packages.as_ref().map_or(0, crate::packages::Packages::errors)
    }

    fn floor_p50(&self) -> f64 {
        self.floor_latency.percentile(50.0)
    }

    fn clients_high(&self) -> usize {
        self.floor_cn.as_ref().map_or(0, |t| t.clients)
    }

    /// `(phase, errors, first error)` of every phase that had failures.
    fn error_list(&self) -> Vec<(&'static str, u64, String)> {
        let mut out = Vec::new();
        let mut add = |phase: &'static str, s: &Samples| {
            if s.errors > 0 {
                out.push((phase, s.errors, s.first_error.clone().unwrap_or_default()));
            }
        };
        add("floor latency", &self.floor_latency);
        add("floor latency, at the end", &self.floor_latency_end);
        add("warm python3.11", &self.warm_python);
        add("warm Rust", &self.warm_rust);
        add("warm python3.11, 128 MB", &self.warm_python_small);
        for (phase, t) in [
            ("floor throughput, 1 connection", &self.floor_c1),
            ("floor throughput, N connections", &self.floor_cn),
            ("invoke throughput, 1 client", &self.invoke_c1),
            ("invoke throughput, N clients", &self.invoke_cn),
            ("SQS SendMessage, 1 client", &self.sqs_c1),
            ("SQS SendMessage, N clients", &self.sqs_cn),
            ("async Invoke, 1 client", &self.async_c1),
            ("async Invoke, N clients", &self.async_cn),
        ] {
            if let Some(t) = t {
                add(phase, &t.latency);
            }
        }
        add("cold python3.11, back to back", &self.cold_python.total);
        add("cold Rust, back to back", &self.cold_rust.total);
        add("cold python3.11, after idle", &self.cold_python_idle.total);
        add("cold Rust, after idle", &self.cold_rust_idle.total);
        add("cold nodejs20.x, back to back", &self.cold_node.total);
        add("cold nodejs20.x, after idle", &self.cold_node_idle.total);
        add("cold python3.11, from scratch", &self.cold_python_scratch.total);
        add("cold Rust, from scratch", &self.cold_rust_scratch.total);
        add("cold nodejs20.x, from scratch", &self.cold_node_scratch.total);
        if let Some(d) = &self.density {
            add("warm python3.11 with the density environments idle", &d.warm);
        }
        if let Some(p) = &self.packages {
            add("package cold starts, compile on", &p.on.total);
            add("package cold starts, compile off", &p.off.total);
        }
        if let Some(s) = self.scale.as_ref().filter(|s| s.errors > 0) {
            out.push(("scale-out", s.errors as u64, s.first_error.clone().unwrap_or_default()));
        }
        if let Some(s) = self.scale_zygote.as_ref().filter(|s| s.errors > 0) {
            out.push((
                "scale-out, zygote",
                s.errors as u64,
                s.first_error.clone().unwrap_or_default(),
            ));
        }
        if let Some(d) = self.density.as_ref().filter(|d| d.errors > 0) {
            out.push(("density", d.errors as u64, d.first_error.clone().unwrap_or_default()));
        }
        if let Some(k) = &self.keep_alive {
            for (phase, run) in
                [("keep-alive, fixed", &k.fixed), ("keep-alive, adaptive", &k.adaptive)]
            {
                if run.errors > 0 {
                    out.push((phase, run.errors, run.first_error.clone().unwrap_or_default()));
                }
            }
        }

        out
    }

    /// The human-readable table.
    pub(crate) fn table(&self) -> String {
        let mut s = String::new();
        let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
        let n = self.clients_high();
        let floor_p50 = self.floor_p50();
        let _ = writeln!(
            s,
            "\nAlonzo bench, {}, {cores} cores, server {}",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            self.bin
        );
        let _ = writeln!(
            s,
            "(times in ms; client and server share this machine's cores; measured in {:.0} s)",
            self.seconds
        );

        let share = |x: Option<f64>| x.map_or("-".to_owned(), |v| format!("{:.0}%", v * 100.0));
        let (before, after) = self.background;
        let noisy = [before, after].into_iter().flatten().any(|v| v > NOISY_BACKGROUND);
        let _ = writeln!(
            s,
            "(other work on the machine, busy share of all cores: {} in the second before, {} in the second after{})",
            share(before),
            share(after),
            if noisy { "; FIGURES LIKELY DISTURBED" } else { "" }
        );
        let _ = writeln!(s, "\nLOOPBACK FLOOR  GET /_alonzo/health, keep-alive HTTP/1.1");
        let _ = writeln!(s, "  {:<34}{:>6} {:>9} {:>9}", "", "n", "p50", "p99");
        for (label, l) in [
            ("latency, 1 connection", &self.floor_latency),
            ("  the same, after all other phases", &self.floor_latency_end),
        ] {
            let _ = writeln!(
                s,
                "  {:<34}{:>6} {:>9} {:>9}",
                label,
                l.len(),
                f3(l.percentile(50.0)),
                f3(l.percentile(99.0))
            );
        }
        for (label, t) in [
            ("throughput, 1 connection".to_owned(), &self.floor_c1),
            (format!("throughput, {n} connections"), &self.floor_cn),
        ] {
            let _ = writeln!(
                s,
                "  {:<34}{:>16} req/s   (1-s windows {})",
                label,
                thousands(rps(t)),
                windows(t)
            );
        }

        let _ = writeln!(
            s,
            "\nWARM INVOKE  sequential, signed, 1 keep-alive connection, payload {{}}; {} MB",
            thousands(f64::from(self.warm_memory_mb))
        );
        let _ =
            writeln!(s, "  {:<34}{:>6} {:>9} {:>9} {:>14}", "", "n", "p50", "p99", "p50/floor p50");
        for (label, w) in [
            ("python3.11 no-op", &self.warm_python),
            ("Rust no-op (provided.al2023)", &self.warm_rust),
            ("python3.11 no-op, 128 MB (quota)", &self.warm_python_small),
        ] {
            if w.len() == 0 {
                continue;
            }
            let p50 = w.percentile(50.0);
            let _ = writeln!(
                s,
                "  {:<34}{:>6} {:>9} {:>9} {:>13}x",
                label,
                w.len(),
                f3(p50),
                f3(w.percentile(99.0)),
                f1(p50 / floor_p50)
            );
        }

        let _ = writeln!(s, "\nTHROUGHPUT  python3.11 no-op, warm, one connection per client");
        let _ = writeln!(
            s,
            "  {:<34}{:>10} {:>15} {:>9} {:>9}  1-s windows",
            "", "invokes/s", "x floor same c", "p50", "p99"
        );
        for (label, t, floor) in [
            ("1 client".to_owned(), &self.invoke_c1, &self.floor_c1),
            (format!("{n} clients"), &self.invoke_cn, &self.floor_cn),
        ] {
            let lat = t.as_ref().map(|t| &t.latency);
            let _ = writeln!(
                s,
                "  {:<34}{:>10} {:>15} {:>9} {:>9}  {}",
                label,
                thousands(rps(t)),
                format!("{:.3}", rps(t) / rps(floor)),
                f3(lat.map_or(f64::NAN, |l| l.percentile(50.0))),
                f3(lat.map_or(f64::NAN, |l| l.percentile(99.0))),
                windows(t),
            );
        }

        for (title, unit, runs) in [
            (
                "\nSQS  durable SendMessage (answered after its commit's fsync), one connection per client",
                "sends/s",
                [(&self.sqs_c1, &self.floor_c1), (&self.sqs_cn, &self.floor_cn)],
            ),
            (
                "\nASYNC  durable Invoke with InvocationType Event (202 after the queue's commit), to a function with reserved concurrency 0 (events settle at once, so this is the queue, not Python)",
                "202s/s",
                [(&self.async_c1, &self.floor_c1), (&self.async_cn, &self.floor_cn)],
            ),
        ] {
        let _ = writeln!(s, "{title}");
        let _ = writeln!(
            s,
            "  {:<34}{:>10} {:>15} {:>9} {:>9}  1-s windows",
            "", unit, "x floor", "p50", "p99"
        );
        for (t, floor) in runs {
            let clients = t.as_ref().map_or(0, |t| t.clients);
            let floor_clients = floor.as_ref().map_or(0, |t| t.clients);
            let lat = t.as_ref().map(|t| &t.latency);
            let _ = writeln!(
                s,
                "  {:<34}{:>10} {:>15} {:>9} {:>9}  {}",
                format!("{clients} client(s)"),
                thousands(rps(t)),
                format!("{:.3} (c={floor_clients})", rps(t) / rps(floor)),
                f3(lat.map_or(f64::NAN, |l| l.percentile(50.0))),
                f3(lat.map_or(f64::NAN, |l| l.percentile(99.0))),
                windows(t),
            );
        }
        }

        let _ = writeln!(
            s,
            "\nCOLD START  a new revision per sample (UpdateFunctionConfiguration), LogType=Tail"
        );
        let _ = writeln!(s, "  total = client send -> response; init = REPORT Init Duration; platform = client send -> Rust main()");
        let _ = writeln!(
            s,
            "  {:<34}{:>4} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
            "", "n", "total50", "total90", "init50", "init90", "platf50", "platf90"
        );
        let idle = format!("after {} ms idle", self.idle_gap_ms);
        for (label, c, kind) in [
            ("python3.11, back to back".to_owned(), &self.cold_python, Kind::Python),
            (format!("python3.11, {idle}"), &self.cold_python_idle, Kind::Python),
            ("Rust, back to back".to_owned(), &self.cold_rust, Kind::Rust),
            (format!("Rust, {idle}"), &self.cold_rust_idle, Kind::Rust),
            ("nodejs20.x, back to back".to_owned(), &self.cold_node, Kind::Node),
            (format!("nodejs20.x, {idle}"), &self.cold_node_idle, Kind::Node),
            ("python3.11, from scratch".to_owned(), &self.cold_python_scratch, Kind::Python),
            ("Rust, from scratch".to_owned(), &self.cold_rust_scratch, Kind::Rust),
            ("nodejs20.x, from scratch".to_owned(), &self.cold_node_scratch, Kind::Node),
        ] {
            let (p50, p90) = if kind == Kind::Rust {
                (f3(c.platform.percentile(50.0)), f3(c.platform.percentile(90.0)))
            } else {
                ("-".into(), "-".into())
            };
            let _ = writeln!(
                s,
                "  {:<34}{:>4} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
                label,
                c.total.len(),
                f3(c.total.percentile(50.0)),
                f3(c.total.percentile(90.0)),
                f3(c.init.percentile(50.0)),
                f3(c.init.percentile(90.0)),
                p50,
                p90
            );
        }

        let _ =
            writeln!(s, "  built ahead / from scratch, back to back (p50 total; init; platform):");
        for (label, ahead, scratch) in [
            ("python3.11", &self.cold_python, &self.cold_python_scratch),
            ("Rust", &self.cold_rust, &self.cold_rust_scratch),
            ("nodejs20.x", &self.cold_node, &self.cold_node_scratch),
        ] {
            let ratio = |a: &Samples, b: &Samples| {
                let (a, b) = (a.percentile(50.0), b.percentile(50.0));
                if a.is_finite() && b.is_finite() && b > 0.0 {
                    format!("{:.2}x", a / b)
                } else {
                    "-".to_owned()
                }
            };
            let _ = writeln!(
                s,
                "    {:<14} {:>8} {:>8} {:>8}",
                label,
                ratio(&ahead.total, &scratch.total),
                ratio(&ahead.init, &scratch.init),
                ratio(&ahead.platform, &scratch.platform)
            );
        }

        if let Some(first) = self.scale.as_ref().or(self.scale_zygote.as_ref()) {
            let _ = writeln!(
                s,
                "\nSCALE-OUT  {} parallel calls of a python3.11 function sleeping {} s, none warm",
                first.n,
                crate::scale::SLEEP.as_secs()
            );
            if let Some(sc) = &self.scale {
                let _ = writeln!(
                    s,
                    "  all {} environments running after {} ms (median call waited {} ms for its environment; machine CPU {:.1} ms per environment); {} failed",
                    sc.n,
                    f3(sc.scale_ms),
                    f3(sc.median_ms),
                    sc.cpu_ms_per_env,
                    sc.errors
                );
            }
            if let Some(z) = &self.scale_zygote {
                let ratios = self.scale.as_ref().map_or_else(
                    || " (no --python-zygote off baseline)".to_owned(),
                    |sc| {
                        format!(
                            ", {:.2}x (median {:.2}x, CPU {:.2}x)",
                            z.scale_ms / sc.scale_ms,
                            z.median_ms / sc.median_ms,
                            z.cpu_ms_per_env / sc.cpu_ms_per_env
                        )
                    },
                );
                let _ = writeln!(
                    s,
                    "  with --python-zygote on: all running after {} ms (median {} ms; CPU {:.1} ms per environment){ratios}; {} failed",
                    f3(z.scale_ms),
                    f3(z.median_ms),
                    z.cpu_ms_per_env,
                    z.errors
                );
            }
        }

        if let Some(d) = &self.density {
            let _ = writeln!(
                s,
                "\nDENSITY  {} idle python3.11 environments: {:.1} MiB PSS each (server and descendants {} -> {} MiB); warm python p50 with them idle {} ms (p99 {} ms), at the start {} ms",
                d.n,
                d.per_environment_mib(),
                d.pss_before_kib / 1024,
                d.pss_after_kib / 1024,
                f3(d.warm.percentile(50.0)),
                f3(d.warm.percentile(99.0)),
                f3(self.warm_python.percentile(50.0)),
            );
            match self.stop {
                Some(Some(took)) => {
                    let _ = writeln!(
                        s,
                        "  the server stopped {} ms after SIGTERM with them and every other environment",
                        took.as_millis()
                    );
                }
                Some(None) => {
                    let _ = writeln!(
                        s,
                        "  the server did NOT stop within the bench's timeout after SIGTERM with them"
                    );
                }
                None => {}
            }
        }

        if let Some(k) = &self.keep_alive {
            s.push_str(&crate::keepalive::table(k));
        }
        if let Some(p) = &self.packages {
            s.push_str(&crate::packages::table(p));
        }

        let _ = writeln!(s, "\nTARGETS");
        let warm = self.warm_python.percentile(50.0);
        let _ = writeln!(
            s,
            "  {:<56} < {:>4} ms  {:>9} ms  {}",
            "warm invoke p50, python3.11 no-op",
            TARGET_WARM_P50_MS,
            f3(warm),
            verdict(warm, TARGET_WARM_P50_MS)
        );
        let over_floor = warm / self.floor_p50();
        let _ = writeln!(
            s,
            "  {:<56} < {:>4} x   {:>9} x   {}",
            "warm invoke p50, python3.11 no-op, over the floor's p50",
            TARGET_WARM_OVER_FLOOR,
            f3(over_floor),
            verdict(over_floor, TARGET_WARM_OVER_FLOOR)
        );
        for (label, c) in
            [("back to back", &self.cold_python), (idle.as_str(), &self.cold_python_idle)]
        {
            let p50 = c.total.percentile(50.0);
            let _ = writeln!(
                s,
                "  {:<56} < {:>4} ms  {:>9} ms  {}",
                format!("cold start total p50, python3.11, {label}"),
                TARGET_PYTHON_COLD_MS,
                f3(p50),
                verdict(p50, TARGET_PYTHON_COLD_MS)
            );
        }
        for (label, c) in [("back to back", &self.cold_rust), (idle.as_str(), &self.cold_rust_idle)]
        {
            let p50 = c.platform.percentile(50.0);
            let p90 = c.platform.percentile(90.0);
            let _ = writeln!(
                s,
                "  {:<56} < {:>4} ms  {:>9} ms  {}  (p90 {} ms: {})",
                format!("cold-start platform part p50, Rust, {label}"),
                TARGET_PLATFORM_MS,
                f3(p50),
                verdict(p50, TARGET_PLATFORM_MS),
                f3(p90),
                verdict(p90, TARGET_PLATFORM_MS)
            );
        }

        let scale = self.scale_zygote.as_ref().filter(|z| z.errors == 0);
        let (value, result) = match scale {
            Some(z) if z.n >= TARGET_SCALE_N => {
                (f3(z.scale_ms), verdict(z.scale_ms, TARGET_SCALE_MS))
            }
            Some(z) => (f3(z.scale_ms), "NOT MEASURED at 1000 (ALONZO_BENCH_SCALE_N)"),
            None => ("-".to_owned(), "NO DATA"),
        };
        let _ = writeln!(
            s,
            "  {:<56} < {:>4} ms  {:>9} ms  {}{}",
            format!("scale-out to {TARGET_SCALE_N} python3.11 environments (zygotes on)"),
            TARGET_SCALE_MS,
            value,
            result,
            scale.map_or(String::new(), |z| format!("  ({} environments)", z.n))
        );
        let density = self.density.as_ref().map(|d| {
            let slowdown = d.warm.percentile(50.0) / self.warm_python.percentile(50.0);
            let held = if d.errors == 0 && d.warm.errors == 0 { d.n } else { 0 };
            let met = if slowdown.is_finite() {
                let ok = held >= TARGET_DENSITY_N && slowdown <= DENSITY_WARM_SLOWDOWN_MAX;
                if ok {
                    "met"
                } else {
                    "NOT MET"
                }
            } else {
                "NO DATA"
            };
            (held, slowdown, met)
        });
        let _ = writeln!(
            s,
            "  {:<56} >= {:>4}     {:>9}     {}",
            format!("idle python3.11 environments, warm p50 <= {DENSITY_WARM_SLOWDOWN_MAX}x"),
            TARGET_DENSITY_N,
            density.map_or("-".to_owned(), |(held, _, _)| held.to_string()),
            match density {
                None => "NO DATA".to_owned(),
                Some((_, slowdown, met)) => {
                    format!("{met}  (warm p50 {}x the one before)", f3(slowdown))
                }
            }
        );

        let errors = self.error_list();
        if errors.is_empty() {
            let _ = writeln!(s, "\nERRORS  none");
        } else {
            let _ = writeln!(
                s,
                "\nERRORS  {} failed request(s), excluded from every figure above",
                self.failures()
            );
            for (phase, count, first) in errors {
                let _ = writeln!(s, "  {phase}: {count} failed; first: {first}");
            }
        }
        s
    }

    /// The same figures as JSON.
    pub(crate) fn to_json(&self) -> Value {
        let floor_p50 = self.floor_p50();
        let warm = |w: &Samples| {
            let mut v = w.to_json();
            v["ratio_to_floor_p50"] = round3(w.percentile(50.0) / floor_p50);
            v
        };
        let tput = |t: &Option<Throughput>, floor: &Option<Throughput>| match t {
            Some(t) => {
                let mut v = t.to_json();
                v["ratio_to_floor"] = round3(t.rps / rps(floor));
                v
            }
            None => Value::Null,
        };
        let warm_p50 = self.warm_python.percentile(50.0);
        let platform = |c: &Cold| {
            let p50 = c.platform.percentile(50.0);
            json!({ "target_ms": TARGET_PLATFORM_MS, "p50_ms": round3(p50), "met": p50 < TARGET_PLATFORM_MS })
        };
        json!({
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "server_binary": self.bin,
            "cores": std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            "seconds": round3(self.seconds),
            "failures": self.failures(),
            "background_busy_share": { "before": self.background.0.map(round3), "after": self.background.1.map(round3) },
            "units": "latencies in ms, throughput in successful requests per second",
            "floor": {
                "latency_ms": self.floor_latency.to_json(),
                "latency_ms_at_end": self.floor_latency_end.to_json(),
                "throughput": { "c1": self.floor_c1.as_ref().map(Throughput::to_json), "cN": self.floor_cn.as_ref().map(Throughput::to_json) },
            },
            "warm_invoke": { "memory_mb": self.warm_memory_mb, "python": warm(&self.warm_python), "rust": warm(&self.warm_rust), "python_128mb": warm(&self.warm_python_small) },
            "invoke_throughput_python": { "c1": tput(&self.invoke_c1, &self.floor_c1), "cN": tput(&self.invoke_cn, &self.floor_cn) },
            "sqs_send_message_durable": { "c1": tput(&self.sqs_c1, &self.floor_c1), "cN": tput(&self.sqs_cn, &self.floor_cn) },
            "async_invoke_durable": { "c1": tput(&self.async_c1, &self.floor_c1), "cN": tput(&self.async_cn, &self.floor_cn) },
            "cold_start": {
                "idle_gap_ms": self.idle_gap_ms,
                "python": { "back_to_back": self.cold_python.to_json(Kind::Python), "after_idle": self.cold_python_idle.to_json(Kind::Python) },
                "rust": { "back_to_back": self.cold_rust.to_json(Kind::Rust), "after_idle": self.cold_rust_idle.to_json(Kind::Rust) },
                "nodejs": { "back_to_back": self.cold_node.to_json(Kind::Node), "after_idle": self.cold_node_idle.to_json(Kind::Node) },
                "from_scratch": { "python": self.cold_python_scratch.to_json(Kind::Python), "rust": self.cold_rust_scratch.to_json(Kind::Rust), "nodejs": self.cold_node_scratch.to_json(Kind::Node) },
                "density": self.density.as_ref().map(|d| json!({ "n": d.n, "pss_per_environment_mib": round3(d.per_environment_mib()), "warm_python_ms": d.warm.to_json(), "server_stop_ms": self.stop.flatten().map(|t| t.as_millis() as u64) })),
                "scale_out": self.scale.as_ref().map(|s| json!({ "n": s.n, "errors": s.errors, "all_running_ms": round3(s.scale_ms), "median_ms": round3(s.median_ms), "cpu_ms_per_env": round3(s.cpu_ms_per_env) })),
                "scale_out_zygote": self.scale_zygote.as_ref().map(|s| json!({ "n": s.n, "errors": s.errors, "all_running_ms": round3(s.scale_ms), "median_ms": round3(s.median_ms), "cpu_ms_per_env": round3(s.cpu_ms_per_env) })),
            },
            "keep_alive": self.keep_alive.as_ref().map(crate::keepalive::KeepAlive::to_json),
            "packages": self.packages.as_ref().map(crate::packages::Packages::to_json),
            "targets": {
                "warm_p50_python": { "target_ms": TARGET_WARM_P50_MS, "p50_ms": round3(warm_p50), "met": warm_p50 < TARGET_WARM_P50_MS },
                "cold_platform_part_rust_back_to_back": platform(&self.cold_rust),
                "cold_platform_part_rust_after_idle": platform(&self.cold_rust_idle),
            },
        })
    }
}

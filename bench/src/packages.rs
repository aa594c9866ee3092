//! The packages phase: cold starts of a python3.11 function whose package is a library of
//! generated modules (about 1 MiB of source, imported by the handler's module), on two
//! servers started together, `--compile-python on` (the default: bytecode compiled at
//! deployment) and `off` (the baseline: every cold start compiles the modules), alternating
//! one cold start on each; and how long `CreateFunction` took to reach `Active` on each.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Context;
use serde_json::{json, Value};
use zip::write::SimpleFileOptions;

use crate::http::Conn;
use crate::scenarios::{cold_start, Cold, Kind};
use crate::stats::round3;

const FUNCTION: &str = "bench-python-package";
/// Modules in the library, about 10 KiB of source each.
const MODULES: usize = 100;
/// Cold starts on each server.
const COLD_N: usize = 15;

/// Both servers' figures.
#[derive(Debug, Clone, Default)]
pub(crate) struct Packages {
    pub(crate) on: Cold,
    pub(crate) off: Cold,
    /// `CreateFunction` → `Active`, ms.
    pub(crate) active_on_ms: f64,
    pub(crate) active_off_ms: f64,
    pub(crate) source_bytes: usize,
}

impl Packages {
    pub(crate) fn errors(&self) -> u64 {
        self.on.errors() + self.off.errors()
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "modules": MODULES,
            "source_bytes": self.source_bytes,
            "compile_on": self.on.to_json(Kind::Python),
            "compile_off": self.off.to_json(Kind::Python),
            "create_to_active_ms": { "on": round3(self.active_on_ms), "off": round3(self.active_off_ms) },
            "ratio_on_to_off": {
                "init_p50": round3(self.on.init.percentile(50.0) / self.off.init.percentile(50.0)),
                "total_p50": round3(self.on.total.percentile(50.0) / self.off.total.percentile(50.0)),
            },
        })
    }
}

/// One generated module: a class and functions with some control flow, about 10 KiB.
fn module(i: usize) -> String {
    let mut s =
        format!("\"\"\"Generated module {i} of the bench's library.\"\"\"\nimport math\n\n");
    for f in 0..24 {
        s += &format!(
            "def f{f}(items, scale={f}):\n    \"\"\"Function {f}.\"\"\"\n    total = 0\n    for n, item in enumerate(items):\n        if n % 3 == 0:\n            total += item * scale\n        elif n % 3 == 1:\n            total -= math.sqrt(abs(item)) + {i}\n        else:\n            total = max(total, item) if item else total\n    return {{'total': total, 'count': len(items), 'module': {i}}}\n\n"
        );
    }
    s += &format!("class Thing{i}:\n    def __init__(self, value):\n        self.value = value\n\n    def scaled(self, by):\n        return [self.value * k for k in range(by)]\n");
    s
}

/// The function's package: `index.py` (a no-op handler that imports the whole library at
/// init) and `lib/m0.py` … `lib/m99.py`. Returns the zip and the library's source size.
fn package() -> anyhow::Result<(Vec<u8>, usize)> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let imports: String = (0..MODULES).map(|i| format!("import lib.m{i}\n")).collect();
    zip.start_file("index.py", options)?;
    zip.write_all(
        format!("{imports}\ndef handler(event, context):\n    return {{}}\n").as_bytes(),
    )?;
    zip.start_file("lib/__init__.py", options)?;
    let mut bytes = 0;
    for i in 0..MODULES {
        let source = module(i);
        bytes += source.len();
        zip.start_file(format!("lib/m{i}.py"), options)?;
        zip.write_all(source.as_bytes())?;
    }
    Ok((zip.finish()?.into_inner(), bytes))
}

/// Creates the function on both servers (timing each until `Active`), then alternates cold
/// starts between them.
pub(crate) async fn run(on: SocketAddr, off: SocketAddr) -> anyhow::Result<Packages> {
    let (zip, source_bytes) = package()?;
    let mut out = Packages { source_bytes, ..Packages::default() };
    let mut conn_on = Conn::open(on).await?;
    let mut conn_off = Conn::open(off).await?;
    let began = Instant::now();
    conn_on.create_function(FUNCTION, "python3.11", "index.handler", &zip).await.context("on")?;
    out.active_on_ms = began.elapsed().as_secs_f64() * 1000.0;
    let began = Instant::now();
    conn_off.create_function(FUNCTION, "python3.11", "index.handler", &zip).await.context("off")?;
    out.active_off_ms = began.elapsed().as_secs_f64() * 1000.0;
    for i in 0..COLD_N {
        let revision = format!("pkg-{i}");
        cold_start(&mut conn_on, FUNCTION, Kind::Python, &revision, None, &mut out.on).await;
        cold_start(&mut conn_off, FUNCTION, Kind::Python, &revision, None, &mut out.off).await;
    }
    Ok(out)
}

/// The phase's lines of the human-readable table.
pub(crate) fn table(p: &Packages) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nPACKAGES  python3.11 importing a library of {MODULES} modules ({} KiB of source) at init; two servers, --compile-python on vs off, alternating",
        p.source_bytes / 1024
    );
    let _ = writeln!(
        s,
        "  {:<28} {:>4} {:>9} {:>9} {:>9} {:>9} {:>16}",
        "", "n", "total50", "total90", "init50", "init90", "create->Active"
    );
    for (label, c, active) in [
        ("compile on (default)", &p.on, p.active_on_ms),
        ("compile off (baseline)", &p.off, p.active_off_ms),
    ] {
        let _ = writeln!(
            s,
            "  {label:<28} {:>4} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>13.1} ms",
            c.total.len(),
            c.total.percentile(50.0),
            c.total.percentile(90.0),
            c.init.percentile(50.0),
            c.init.percentile(90.0),
            active
        );
    }
    let _ = writeln!(
        s,
        "  on / off (p50): total {:.2}, init {:.2}",
        p.on.total.percentile(50.0) / p.off.total.percentile(50.0),
        p.on.init.percentile(50.0) / p.off.init.percentile(50.0)
    );
    s
}

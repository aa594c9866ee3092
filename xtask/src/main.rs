//! Project automation, run as `cargo xtask <task>`:
//!
//! - `test`: the whole gate, as CI runs it: formatting and clippy (warnings are errors), the
//!   release build, every Rust test (unit, in-process, the jail's privileged integration
//!   tests and the tidy checks), then the runtime bootstraps' tests and the black-box suite
//!   in `tests/` against the release binary with real clients (boto3, the AWS CLI,
//!   Terraform, `awslambdaric`, a `lambda_runtime` binary).
//! - `bench`: the release build of the server, then the benchmark harness in `bench/`
//!   (`alonzo-bench`: loopback floor, warm and cold invoke latency, throughput, durable SQS
//!   sends; prints a table and writes `target/bench/latest.json`).
//! - `fuzz [TARGET] [--seconds N]`: every fuzz target of `fuzz/` (or one) for N seconds each
//!   (default 60) with cargo-fuzz; see `fuzz.rs` and `docs/fuzzing.md`.

mod fuzz;
mod tidy;

use std::process::Command;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().cloned().unwrap_or_default();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match task.as_str() {
        "test" => test(),
        "bench" => bench(),
        "fuzz" => fuzz::fuzz(&root, &fuzz::FuzzArgs::parse(&args[1..])?),
        _ => bail!("usage: cargo xtask test | bench | fuzz [TARGET] [--seconds N]"),
    }
}

fn test() -> anyhow::Result<()> {
    check_python_deps()?;
    run("cargo", &["fmt", "--all", "--check"])?;
    run("cargo", &["clippy", "--workspace", "--all-targets", "--release", "--", "-D", "warnings"])?;
    run("cargo", &["build", "--release", "--bin", "alonzo"])?;
    run("cargo", &["test", "--workspace", "--release"])?;
    run("python3", &["-m", "pytest", "runtimes/tests", "tests", "-q", "-p", "no:cacheprovider"])
}

fn bench() -> anyhow::Result<()> {
    run("cargo", &["build", "--release", "--bin", "alonzo"])?;
    run("cargo", &["run", "--release", "--package", "alonzo-bench"])
}

/// The black-box suite needs real clients; say how to get them rather than failing deep in
/// pytest.
fn check_python_deps() -> anyhow::Result<()> {
    let ok = Command::new("python3")
        .args(["-c", "import pytest, boto3, awscli"])
        .status()
        .context("python3 is required for the black-box suite")?
        .success();
    if !ok {
        bail!(
            "the black-box suite needs its Python clients: pip install -r tests/requirements.txt"
        );
    }
    Ok(())
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status =
        Command::new(program).args(args).status().with_context(|| format!("running {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the project root")
        .to_owned()
}

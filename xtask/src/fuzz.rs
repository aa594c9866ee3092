//! `cargo xtask fuzz [TARGET] [--seconds N]`: runs every fuzz target of `fuzz/` (or one) for
//! N seconds each (default 60), one after the other, with cargo-fuzz and libFuzzer.
//!
//! It installs `cargo-fuzz` (`cargo install cargo-fuzz --locked`) when it is missing, and
//! uses the nightly toolchain when rustup has one, else the stable one with
//! `RUSTC_BOOTSTRAP=1` (cargo-fuzz passes `-Z` flags to rustc). Each target fuzzes into a
//! scratch corpus under the target directory, seeded from `fuzz/corpus/<target>/`, which is
//! never written; crashes land in `fuzz/artifacts/<target>/`, and the run stops at the first
//! one with a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// What `cargo xtask fuzz` was asked to do.
#[derive(Debug)]
pub struct FuzzArgs {
    /// One target, or all of them.
    pub target: Option<String>,
    /// Seconds per target.
    pub seconds: u64,
}

impl FuzzArgs {
    /// Parses the arguments after `fuzz`.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let mut out = Self { target: None, seconds: 60 };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--seconds" => {
                    let value = args.next().context("--seconds needs a number")?;
                    out.seconds = value.parse().context("--seconds needs a number")?;
                }
                flag if flag.starts_with('-') => bail!("unknown option {flag}"),
                target if out.target.is_none() => out.target = Some(target.to_owned()),
                extra => bail!("unexpected argument {extra}"),
            }
        }
        Ok(out)
    }
}

/// Runs the fuzz targets as `args` says, from the project root.
pub fn fuzz(root: &Path, args: &FuzzArgs) -> anyhow::Result<()> {
    let fuzz_dir = root.join("fuzz");
    let all = targets(&fuzz_dir)?;
    let chosen: Vec<String> = match &args.target {
        Some(target) if all.contains(target) => vec![target.clone()],
        Some(target) => bail!("no fuzz target {target}; there are: {}", all.join(", ")),
        None => all,
    };
    ensure_cargo_fuzz()?;
    let toolchain = Toolchain::detect();
    eprintln!("fuzzing with {toolchain:?}, {} s per target", args.seconds);
    let scratch = target_dir(root).join("fuzz-corpus");
    for target in &chosen {
        let work = scratch.join(target);
        std::fs::create_dir_all(&work)?;
        let seeds = fuzz_dir.join("corpus").join(target);
        let mut cmd = toolchain.cargo();
        // cargo-fuzz finds `fuzz/` from the project root.
        cmd.current_dir(root)
            .args(["fuzz", "run", target.as_str()])
            .arg(&work)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={}", args.seconds))
            .args(["-timeout=30", "-rss_limit_mb=2048", "-max_len=65536", "-print_final_stats=1"]);
        eprintln!("$ cargo fuzz run {target} (for {} s)", args.seconds);
        let status = cmd.status().context("running cargo fuzz")?;
        if !status.success() {
            bail!(
                "fuzz target {target} failed ({status}); the input is in fuzz/artifacts/{target}/ \
                 (replay it with `cargo fuzz run {target} <file>`)"
            );
        }
    }
    Ok(())
}

/// The `[[bin]]` targets of `fuzz/Cargo.toml`, from `fuzz/fuzz_targets/*.rs`.
fn targets(fuzz_dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(fuzz_dir.join("fuzz_targets"))
        .context("reading fuzz/fuzz_targets")?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            (path.extension()? == "rs").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    Ok(names)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !installed {
        eprintln!("$ cargo install cargo-fuzz --locked");
        let status = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .context("installing cargo-fuzz")?;
        if !status.success() {
            bail!("cargo install cargo-fuzz --locked failed ({status})");
        }
    }
    Ok(())
}

/// Which compiler builds the targets.
#[derive(Debug)]
enum Toolchain {
    /// rustup's nightly toolchain (`cargo +nightly`).
    Nightly,
    /// The default (stable) toolchain, allowed `-Z` flags by `RUSTC_BOOTSTRAP=1`.
    StableBootstrap,
}

impl Toolchain {
    fn detect() -> Self {
        let nightly = Command::new("rustup")
            .args(["run", "nightly", "rustc", "--version"])
            .output()
            .is_ok_and(|out| out.status.success());
        if nightly {
            Self::Nightly
        } else {
            Self::StableBootstrap
        }
    }

    fn cargo(&self) -> Command {
        let mut cmd = Command::new("cargo");
        match self {
            Self::Nightly => {
                cmd.arg("+nightly");
            }
            Self::StableBootstrap => {
                cmd.env("RUSTC_BOOTSTRAP", "1");
            }
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<FuzzArgs> {
        FuzzArgs::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn arguments() {
        let all = parse(&[]).unwrap();
        assert_eq!((all.target, all.seconds), (None, 60));
        let one = parse(&["sigv4", "--seconds", "5"]).unwrap();
        assert_eq!((one.target.as_deref(), one.seconds), (Some("sigv4"), 5));
        assert!(parse(&["--seconds"]).is_err());
        assert!(parse(&["a", "b"]).is_err());
        assert!(parse(&["--jobs", "2"]).is_err());
    }

    #[test]
    fn every_target_has_a_seed_corpus() {
        let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let names = targets(&fuzz_dir).unwrap();
        assert!(names.len() >= 10, "{names:?}");
        let manifest = std::fs::read_to_string(fuzz_dir.join("Cargo.toml")).unwrap();
        for name in names {
            assert!(
                manifest.contains(&format!("name = \"{name}\"")),
                "{name} not in fuzz/Cargo.toml"
            );
            assert!(fuzz_dir.join("corpus").join(&name).is_dir(), "no corpus for {name}");
        }
    }
}

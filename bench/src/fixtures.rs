//! The functions the bench deploys, as zip packages: a Python no-op (`python3.11`, handler
//! returns `{}`) written inline, and the Rust no-op of `bench/fixtures/rust-noop` (official
//! `lambda_runtime` client), built with cargo into `target/fixtures` and zipped as
//! `bootstrap` (mode 0755) for `provided.al2023`.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};
use zip::write::SimpleFileOptions;

/// A deployable function.
#[derive(Debug, Clone)]
pub(crate) struct Fixture {
    pub(crate) runtime: &'static str,
    pub(crate) handler: &'static str,
    pub(crate) zip: Vec<u8>,
}

/// The Python no-op.
pub(crate) fn python_noop() -> anyhow::Result<Fixture> {
    let source = "def handler(event, context):\n    return {}\n";
    Ok(Fixture {
        runtime: "python3.11",
        handler: "index.handler",
        zip: zip_one("index.py", source.as_bytes(), 0o644)?,
    })
}

/// The Node.js no-op.
pub(crate) fn node_noop() -> anyhow::Result<Fixture> {
    let source = "export const handler = async () => ({});\n";
    Ok(Fixture {
        runtime: "nodejs20.x",
        handler: "index.handler",
        zip: zip_one("index.mjs", source.as_bytes(), 0o644)?,
    })
}

/// The Rust no-op, built (or found up to date) by cargo first.
pub(crate) fn rust_noop(root: &Path) -> anyhow::Result<Fixture> {
    let manifest = root.join("bench/fixtures/rust-noop/Cargo.toml");
    let target = root.join("target/fixtures");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("bench: building the Rust fixture ({})", manifest.display());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "--locked", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .context("running cargo for the Rust fixture")?;
    if !status.success() {
        bail!("building {} failed ({status})", manifest.display());
    }
    let binary = target.join("release/rust-noop");
    let bytes = std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
    Ok(Fixture {
        runtime: "provided.al2023",
        handler: "bootstrap",
        zip: zip_one("bootstrap", &bytes, 0o755)?,
    })
}

/// A zip holding one file with the given unix mode.
pub(crate) fn zip_one(name: &str, contents: &[u8], mode: u32) -> anyhow::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(mode);
    zip.start_file(name, options)?;
    zip.write_all(contents)?;
    Ok(zip.finish()?.into_inner())
}

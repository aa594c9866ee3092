//! Builds `alonzo-jail` a second time, as a shared library: the Python extension module a
//! Python launcher's interpreter loads (`alonzo-jail/src/launcher.rs`, `python.rs`). The
//! binary carries it (`include_bytes!` in `main.rs`) so that it stays one file.
//!
//! The nested `cargo` uses its own target directory (no lock shared with the outer build),
//! the outer build's jobserver, no clippy wrapper, and no debug information.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let var = |name: &str| std::env::var_os(name).unwrap_or_else(|| panic!("{name} is not set"));
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.join("../..");
    let out_dir = PathBuf::from(var("OUT_DIR"));
    let release = var("PROFILE") == "release";
    let target_dir = out_dir.join("python-extension");
    let mut cargo = Command::new(var("CARGO"));
    cargo
        .current_dir(&workspace)
        .args(["rustc", "--offline", "--quiet", "-p", "alonzo-jail", "--lib"])
        .args(["--crate-type", "cdylib", "--target-dir"])
        .arg(&target_dir)
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env("CARGO_PROFILE_DEV_DEBUG", "false");
    if release {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo for the Python extension");
    assert!(status.success(), "building alonzo-jail as a Python extension failed: {status}");
    let built =
        target_dir.join(if release { "release" } else { "debug" }).join("libalonzo_jail.so");
    std::fs::copy(&built, out_dir.join("alonzo_launcher.so"))
        .unwrap_or_else(|e| panic!("copy {}: {e}", built.display()));
    for path in ["../alonzo-jail/src", "../alonzo-jail/Cargo.toml", "../alonzo-jail/build.rs"] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-changed=../../Cargo.lock");
    println!("cargo:rerun-if-changed=../../Cargo.toml");
}

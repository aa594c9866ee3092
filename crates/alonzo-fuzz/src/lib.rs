//! The bodies of Alonzo's fuzz targets, one module per parser of untrusted input, so that
//! the same code runs under libFuzzer (the `fuzz/` project, `cargo xtask fuzz`) and on
//! stable as an ordinary test that replays every committed seed and crash input
//! (`fuzz/corpus/<target>/`).
//!
//! Each target takes raw bytes, read as the readable sections of [`input`] (or as raw HTTP,
//! or a raw zip), and asserts properties beyond "does not panic": round trips, signatures that verify and stop
//! verifying when a byte changes, extraction that stays inside its root. A failed property
//! panics, which libFuzzer reports as a crash and `cargo test` as a failure.

pub mod event_pattern;
pub mod event_stream;
pub mod http_event;
pub mod input;
pub mod names;
pub mod package;
pub mod routes;
pub mod runtime_api;
pub mod sigv4;
pub mod sqs;
pub mod wire;

/// A target's body.
pub type Body = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` name it.
pub const TARGETS: &[(&str, Body)] = &[
    ("sigv4", sigv4::run),
    ("names", names::run),
    ("package", package::run),
    ("runtime_api", runtime_api::run),
    ("wire", wire::run),
    ("event_pattern", event_pattern::run),
    ("http_event", http_event::run),
    ("sqs", sqs::run),
    ("routes", routes::run),
    ("event_stream", event_stream::run),
];

/// Runs the target called `name` on `data`; false if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => {
            body(data);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod corpus;

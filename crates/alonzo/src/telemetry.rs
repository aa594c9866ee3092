//! Logging set-up: `tracing` to stderr, filtered by `RUST_LOG` (default: `info` for Alonzo's
//! crates, `warn` for dependencies). Called once, from `main`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_level` applies to Alonzo's own crates when
/// `RUST_LOG` is unset.
pub(crate) fn init(default_level: &str) {
    let default = format!("warn,alonzo={default_level},alonzo_api={default_level},alonzo_control={default_level},alonzo_store={default_level},alonzo_store_sqlite={default_level}");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

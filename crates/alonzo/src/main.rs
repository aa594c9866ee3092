//! The `alonzo` executable: parses the command line and runs `serve` or a client command.
//!
//! Business logic lives in the library crates; this crate only composes them, reads
//! configuration (the only place that reads environment variables), and maps failures to
//! exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.

mod cli;
mod client;
mod commands;
mod credentials;
mod http_server;
mod metrics;
mod network;
mod otel;
mod package;
mod queue_port;
mod serve;
mod telemetry;
mod upload;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // The Python launchers' extension module (build.rs): the jail crate built as a library.
    alonzo_jail::set_python_extension(include_bytes!(concat!(
        env!("OUT_DIR"),
        "/alonzo_launcher.so"
    )));
    // The sandbox jail is this same executable re-executed; it must take over before any
    // thread or runtime exists.
    alonzo_jail::main_if_jail();
    let cli = cli::Cli::parse();
    telemetry::init(cli.log_level());
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let usage = e.downcast_ref::<serve::ConfigError>().is_some()
                || e.downcast_ref::<cli::UsageError>().is_some();
            let code = if usage { 2 } else { 1 };
            eprintln!("alonzo: {e:#}");
            std::process::ExitCode::from(code)
        }
    }
}

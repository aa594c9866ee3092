//! Dispatch of the subcommands; one module per client command.

mod deploy;
mod functions;
mod invoke;
mod logs;
mod routes;
mod runtimes;
mod top;
mod usage;

use crate::cli::{Cli, Command};

/// Runs the chosen subcommand to completion.
pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::serve::run(*args),
        Command::Functions(args) => client_runtime()?.block_on(functions::run(&args)),
        Command::Runtimes => runtimes::run(),
        Command::Logs(args) => client_runtime()?.block_on(logs::run(&args)),
        Command::Invoke(args) => client_runtime()?.block_on(invoke::run(&args)),
        Command::Deploy(args) => client_runtime()?.block_on(deploy::run(&args)),
        Command::Top(args) => client_runtime()?.block_on(top::run(&args)),
        Command::Routes(args) => client_runtime()?.block_on(routes::run(&args)),
        Command::Usage(args) => client_runtime()?.block_on(usage::run(&args)),
    }
}

/// Client commands need only a small single-threaded runtime.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

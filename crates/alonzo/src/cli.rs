//! The command line: `alonzo serve` and the client commands, with their flags and the
//! environment variables that back them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Alonzo: a self-hosted serverless platform that speaks AWS Lambda's API.
#[derive(Debug, Parser)]
#[command(name = "alonzo", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// Client commands log only warnings, so their output stays readable.
    pub(crate) fn log_level(&self) -> &'static str {
        match self.command {
            Command::Serve(_) => "info",
            _ => "warn",
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the platform (API server) on its embedded defaults: SQLite and local disk.
    Serve(Box<ServeArgs>),
    /// List the deployed functions.
    Functions(ClientArgs),
    /// Show which Lambda runtimes this host can run, and with what.
    Runtimes,
    /// Print a function's logs (its log group), optionally following new lines.
    Logs(LogsArgs),
    /// Invoke a function and print its result and the tail of its log.
    Invoke(InvokeArgs),
    /// Create or update a function from a directory (zipped here) or a ready .zip file,
    /// and wait until it is Active.
    Deploy(Box<DeployArgs>),
    /// Show live concurrency per function version: busy, idle and provisioned
    /// environments, reservations and throttles.
    Top(TopArgs),
    /// Show the API gateway routes the server loaded (from `serve --routes`), per stage.
    Routes(ClientArgs),
    /// Show requests, GB-seconds, provisioned concurrency, extra ephemeral storage and cost
    /// per function and month, from the metering records, with the monthly free tier applied.
    Usage(UsageArgs),
}

/// Settings of `alonzo usage`.
#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// Only invocations started at or after this date (`YYYY-MM-DD`, UTC) or RFC 3339 time.
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Only invocations started before this date (`YYYY-MM-DD`, UTC) or RFC 3339 time.
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Only this function.
    #[arg(long)]
    pub(crate) function: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = UsageFormat::Table)]
    pub(crate) format: UsageFormat,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// How `alonzo usage` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum UsageFormat {
    /// Aligned columns and monthly totals.
    Table,
    /// The API's JSON.
    Json,
    /// One line per function and month.
    Csv,
}

/// Settings of `alonzo top`.
#[derive(Debug, Args)]
pub(crate) struct TopArgs {
    /// Print one snapshot and exit (the default refreshes until interrupted).
    #[arg(long)]
    pub(crate) once: bool,
    /// Refresh interval (e.g. `1s`, `500ms`).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub(crate) interval: std::time::Duration,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Settings of `alonzo invoke`.
#[derive(Debug, Args)]
pub(crate) struct InvokeArgs {
    /// Function name or ARN, optionally `name:qualifier`.
    pub(crate) function: String,
    /// The event, as JSON (default `{}`); `-` reads it from standard input.
    pub(crate) payload: Option<String>,
    /// Queue the event (`Event` invocation) instead of waiting for the result.
    #[arg(long = "async")]
    pub(crate) asynchronous: bool,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Settings of `alonzo deploy`.
#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// A directory to package (its contents become `/var/task`), or a ready `.zip` file.
    pub(crate) path: PathBuf,
    /// Function name: created when it does not exist, updated when it does.
    #[arg(long)]
    pub(crate) name: String,
    /// Runtime id (see `alonzo runtimes`); needed to create a function, changed on update
    /// when it differs.
    #[arg(long)]
    pub(crate) runtime: Option<String>,
    /// Handler [default on create: `lambda_function.lambda_handler` for Python and Ruby,
    /// `index.handler` for Node.js, `bootstrap` for `provided*`].
    #[arg(long)]
    pub(crate) handler: Option<String>,
    /// Memory in MB (Lambda's default on create: 128).
    #[arg(long, value_name = "MB")]
    pub(crate) memory: Option<u32>,
    /// Timeout in seconds (Lambda's default on create: 3).
    #[arg(long, value_name = "SECONDS")]
    pub(crate) timeout: Option<u32>,
    /// Execution role ARN, recorded only (Alonzo has no IAM) [default on create:
    /// `arn:aws:iam::<account>:role/alonzo-deploy`].
    #[arg(long, value_name = "ARN")]
    pub(crate) role: Option<String>,
    /// Environment variables; when given, they replace all of the function's variables.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env_pair, num_args = 1.., action = clap::ArgAction::Append)]
    pub(crate) env: Vec<(String, String)>,
    /// Instruction set (Lambda's default on create: x86_64).
    #[arg(long, value_parser = ["x86_64", "arm64"])]
    pub(crate) architecture: Option<String>,
    /// Layer version ARNs, in order; when given, they replace the function's layers.
    #[arg(long, value_name = "ARN", num_args = 1.., action = clap::ArgAction::Append)]
    pub(crate) layers: Vec<String>,
    /// Publish a version once the code and configuration are in place.
    #[arg(long)]
    pub(crate) publish: bool,
    /// The function's description.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// How long to wait for the function to become Active after each change (e.g. `90s`).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub(crate) wait_timeout: std::time::Duration,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Parses `KEY=VALUE` (the value may be empty and may contain `=`).
fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

/// A mistake in what the user asked a client command to do (a missing directory, a file
/// that is not a zip): reported with exit code 2, like a usage error caught by the parser.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

/// Settings of `alonzo logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Function name (or ARN).
    pub(crate) function: String,
    /// Keep printing new lines as they arrive.
    #[arg(long, short)]
    pub(crate) follow: bool,
    /// Only lines newer than this (e.g. `10m`, `1h`).
    #[arg(long, value_parser = parse_duration)]
    pub(crate) since: Option<std::time::Duration>,
    /// Only lines matching this CloudWatch filter pattern.
    #[arg(long)]
    pub(crate) filter: Option<String>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// Settings of `alonzo serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on for the API.
    #[arg(long, env = "ALONZO_LISTEN", default_value = "127.0.0.1:9000")]
    pub(crate) listen: String,
    /// Address of the unsigned Prometheus endpoint `/metrics`; `off` (or empty) disables it.
    #[arg(long, env = "ALONZO_METRICS_LISTEN", default_value = "127.0.0.1:9464")]
    pub(crate) metrics_listen: String,
    /// The web console under `/_alonzo/console/` on the API's address, behind a login with
    /// the server's access key: `on` (default) or `off`.
    #[arg(long, env = "ALONZO_CONSOLE", default_value = "on", value_parser = ["on", "off"])]
    pub(crate) console: String,
    /// Directory holding the database, code packages and generated credentials.
    #[arg(long, env = "ALONZO_DATA_DIR", default_value = "./.alonzo")]
    pub(crate) data_dir: PathBuf,
    /// Region used in ARNs and accepted in SigV4 scopes.
    #[arg(long, env = "ALONZO_REGION", default_value = "us-east-1")]
    pub(crate) region: String,
    /// 12-digit account id used in ARNs.
    #[arg(long, env = "ALONZO_ACCOUNT_ID", default_value = "000000000000")]
    pub(crate) account_id: String,
    /// Account-wide concurrency limit.
    #[arg(long, env = "ALONZO_CONCURRENCY_LIMIT", default_value_t = 1000)]
    pub(crate) concurrency_limit: u32,
    /// Concurrency that reserved concurrency must leave to unreserved functions (Lambda:
    /// 100); capped at the concurrency limit.
    #[arg(long, env = "ALONZO_UNRESERVED_CONCURRENCY_MIN", default_value_t = 100)]
    pub(crate) unreserved_concurrency_min: u32,
    /// New execution environments each function may start per 10 seconds (Lambda: 1000);
    /// a cold start beyond it waits up to half a second, then is throttled.
    #[arg(long, env = "ALONZO_SCALE_RATE", default_value_t = 1000)]
    pub(crate) scale_rate: u32,
    /// Threads that run the server's asynchronous work (HTTP, the Runtime API, scheduling)
    /// [default: half the cores this process may use, at least 1]. The other cores are left
    /// to functions; fewer threads also mean fewer hand-offs between them on every invocation
    /// (see docs/performance.md).
    #[arg(long, env = "ALONZO_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) worker_threads: Option<u16>,
    /// Compile the modules of Python function packages (64 KiB of source or more) to bytecode
    /// at deployment, in a sandbox, so that cold starts do not compile them: `on` or `off`
    /// (see docs/sandbox.md).
    #[arg(long, env = "ALONZO_COMPILE_PYTHON", default_value = "on", value_parser = ["on", "off"])]
    pub(crate) compile_python: String,
    /// Fork the runtime of each Python sandbox from a zygote, an interpreter of that runtime
    /// initialised once, instead of starting a new interpreter per sandbox: `on` or `off`.
    /// Starts many environments about twice as fast, with less memory each (see
    /// docs/sandbox.md).
    #[arg(long, env = "ALONZO_PYTHON_ZYGOTE", default_value = "on", value_parser = ["on", "off"])]
    pub(crate) python_zygote: String,
    /// Sandboxes built ahead for cold starts, per kind in demand (any runtime; a Python or
    /// Node.js runtime started ahead) and network; 0 starts every sandbox from scratch.
    #[arg(long, env = "ALONZO_PREBUILT_SANDBOXES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub(crate) prebuilt_sandboxes: u32,
    /// How long an idle execution environment is kept warm (e.g. `300s`, `5m`).
    #[arg(long, env = "ALONZO_IDLE_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub(crate) idle_timeout: std::time::Duration,
    /// How long idle on-demand environments are kept: `adaptive` (per function version, the
    /// 99th percentile of its observed idle times plus 10 %, within
    /// [--keep-alive-min, --keep-alive-max]; --idle-timeout until it has 10 idle times) or
    /// `fixed` (always --idle-timeout); see docs/keep-alive.md.
    #[arg(long, env = "ALONZO_KEEP_ALIVE_POLICY", default_value = "adaptive", value_parser = ["adaptive", "fixed"])]
    pub(crate) keep_alive_policy: String,
    /// The shortest keep-alive the adaptive policy gives (e.g. `30s`, `500ms`) [default: 1m,
    /// or --idle-timeout when that is shorter].
    #[arg(long, env = "ALONZO_KEEP_ALIVE_MIN", value_parser = parse_duration)]
    pub(crate) keep_alive_min: Option<std::time::Duration>,
    /// The longest keep-alive the adaptive policy gives (e.g. `1h`) [default: 30m, or
    /// --idle-timeout when that is longer].
    #[arg(long, env = "ALONZO_KEEP_ALIVE_MAX", value_parser = parse_duration)]
    pub(crate) keep_alive_max: Option<std::time::Duration>,
    /// Delay before the first retry of a failed asynchronous invocation; the second waits
    /// twice as long (Lambda: about 1 and 2 minutes).
    #[arg(long, env = "ALONZO_ASYNC_RETRY_DELAY", default_value = "60s", value_parser = parse_duration)]
    pub(crate) async_retry_delay: std::time::Duration,
    /// A routes file (JSON) mapping `METHOD /path/{param}` routes, per stage, to functions
    /// or aliases, served under `/_routes/<stage>/`; see docs/routes.md.
    #[arg(long, env = "ALONZO_ROUTES")]
    pub(crate) routes: Option<PathBuf>,
    /// A price file (JSON) for `alonzo usage`: request_per_million, gb_second_<arch>,
    /// provisioned_gb_second_<arch>, provisioned_duration_gb_second_<arch>,
    /// ephemeral_gb_second_<arch> (arch: x86_64 or arm64), free_requests_per_month,
    /// free_gb_seconds_per_month, currency; missing fields take Lambda's published prices
    /// (us-east-1); see docs/metrics.md.
    #[arg(long, env = "ALONZO_PRICES")]
    pub(crate) prices: Option<PathBuf>,
    /// An OpenTelemetry collector's OTLP/HTTP base URL (e.g. `http://127.0.0.1:4318`):
    /// platform spans (invoke, initialisation, queue wait) are exported to `<URL>/v1/traces`.
    /// Without it, OpenTelemetry's `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` are honoured; with none of them, nothing is exported.
    #[arg(long, env = "ALONZO_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,
    /// The OTLP encoding: `http/protobuf` (default) or `http/json`; without it,
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or `OTEL_EXPORTER_OTLP_PROTOCOL`.
    #[arg(long, env = "ALONZO_OTLP_PROTOCOL")]
    pub(crate) otlp_protocol: Option<String>,
    /// The network of functions without `VpcConfig`: `outbound` (their own interface with
    /// NAT: outbound connections, nothing inbound, as on Lambda) or `none` (loopback only);
    /// see docs/network.md.
    #[arg(long, env = "ALONZO_NETWORK_MODE", default_value = "outbound")]
    pub(crate) network_mode: String,
    /// A networks file (JSON) defining the networks `VpcConfig` subnet and security-group ids
    /// select, each with a mode and egress rules; see docs/network.md.
    #[arg(long, env = "ALONZO_NETWORKS")]
    pub(crate) networks: Option<PathBuf>,
    /// DNS resolvers for functions (comma-separated IPv4 addresses), written to their
    /// `/etc/resolv.conf`; default: the host's non-loopback resolvers in /etc/resolv.conf.
    #[arg(long, env = "ALONZO_DNS")]
    pub(crate) dns: Option<String>,
    /// Function-to-platform calls: `off`, `endpoint` (functions get `AWS_ENDPOINT_URL`, the
    /// API port through their gateway) or `credentials` (also the server's access key as
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`).
    #[arg(long, env = "ALONZO_FUNCTION_PLATFORM_ACCESS", default_value = "off")]
    pub(crate) function_platform_access: String,
    /// Bytes of output per second one execution environment may log (one second of
    /// burst); the excess is dropped with one `LOGS_DROPPED` notice per invocation.
    /// Accepts `KiB`, `MiB`, `GiB` suffixes.
    #[arg(long, env = "ALONZO_LOG_RATE_LIMIT", default_value = "1MiB", value_parser = parse_bytes)]
    pub(crate) log_rate_limit: u64,
    /// Bytes of logs one function's log group may hold: a stream stops growing at it and
    /// the sweeper deletes the group's oldest streams beyond it.
    #[arg(long, env = "ALONZO_LOG_MAX_BYTES_PER_FUNCTION", default_value = "1GiB", value_parser = parse_bytes)]
    pub(crate) log_max_bytes_per_function: u64,
    /// How often log retention and the per-function cap are enforced (e.g. `60s`, `5m`).
    #[arg(long, env = "ALONZO_LOG_SWEEP_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub(crate) log_sweep_interval: std::time::Duration,
    /// DEVELOPMENT ONLY: run functions as plain child processes when this host cannot
    /// isolate them (no root, no user namespaces, no cgroups). Functions then see the host
    /// and each other, and memory limits do not apply.
    #[arg(long, env = "ALONZO_INSECURE_NO_ISOLATION")]
    pub(crate) insecure_no_isolation: bool,
}

/// Parses `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 30s or 5m"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{text:?} is not a valid duration"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Parses `4096`, `512KiB`, `10MiB`, `1GiB` (also `K`, `M`, `G`, `KB`, `MB`, `GB`, all
/// binary) into bytes; at least 1.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 =
        number.parse().map_err(|_| format!("{text:?} is not a size like 4096, 512KiB or 1GiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (use KiB, MiB or GiB)")),
    };
    match value.checked_mul(scale) {
        Some(0) => Err(format!("{text:?} must be at least 1 byte")),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{text:?} is too large")),
    }
}

/// How client commands reach a server (the standard AWS settings apply).
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// Endpoint of the Alonzo server [env: AWS_ENDPOINT_URL_LAMBDA, AWS_ENDPOINT_URL; default: http://127.0.0.1:9000].
    #[arg(long)]
    pub(crate) endpoint_url: Option<String>,
    /// Named profile from the AWS shared credentials and config files [env: AWS_PROFILE].
    #[arg(long)]
    pub(crate) profile: Option<String>,
    /// Region to sign for [env: AWS_REGION, AWS_DEFAULT_REGION; default: us-east-1].
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// Print JSON instead of a table (`deploy`: the final function configuration).
    #[arg(long)]
    pub(crate) json: bool,
}

//! `alonzo serve`: validates the configuration before binding anything, opens the embedded
//! stores in the data directory, starts the control plane and serves the API until SIGTERM or
//! SIGINT, then drains in-flight requests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use alonzo_api::{ApiState, AuthConfig};
use alonzo_control::{Control, ControlConfig, PackageLimits, RuntimeCatalog};
use alonzo_model::Account;
use alonzo_sandbox::{Manager as SandboxManager, ManagerConfig};
use alonzo_store::FsBlobStore;
use alonzo_store_sqlite::SqliteStore;
use anyhow::Context;

use crate::cli::ServeArgs;
use crate::credentials;

/// A configuration mistake: reported with exit code 2 before any port is bound.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub(crate) struct ConfigError(pub(crate) String);

/// The validated settings of a server.
#[derive(Debug)]
struct ServeConfig {
    listen: SocketAddr,
    /// Where `/metrics` is served; `None` when disabled.
    metrics_listen: Option<SocketAddr>,
    /// Whether the web console is served.
    console: bool,
    data_dir: PathBuf,
    account: Account,
    concurrency_limit: u32,
    unreserved_minimum: u32,
    scale_per_10s: u32,
    prebuilt_sandboxes: u32,
    /// Threads of the server's tokio runtime.
    worker_threads: usize,
    /// Whether Python packages are compiled to bytecode at deployment.
    compile_python: bool,
    python_zygote: bool,
    idle_timeout: std::time::Duration,
    keep_alive: alonzo_sandbox::KeepAlivePolicy,
    log_limits: alonzo_sandbox::LogLimits,
    async_retry_delay: std::time::Duration,
    insecure_no_isolation: bool,
    access_key: Option<credentials::KeyPair>,
    routes: alonzo_api::routes::RouteTable,
    prices: alonzo_control::PriceTable,
    network: crate::network::NetworkConfig,
    /// Where platform spans are exported; `None`: nowhere.
    otlp: Option<crate::otel::OtlpConfig>,
}

/// Checks every setting; nothing is created or bound yet.
fn validate(args: ServeArgs) -> Result<ServeConfig, ConfigError> {
    let listen: SocketAddr = args.listen.parse().map_err(|_| {
        ConfigError(format!("--listen/ALONZO_LISTEN {:?} is not an IP:port address", args.listen))
    })?;
    let metrics_listen = match args.metrics_listen.trim() {
        "" | "off" => None,
        text => Some(text.parse::<SocketAddr>().map_err(|_| {
            ConfigError(format!(
                "--metrics-listen/ALONZO_METRICS_LISTEN {:?} is not an IP:port address or `off`",
                args.metrics_listen
            ))
        })?),
    };
    if !Account::is_valid_region(&args.region) {
        return Err(ConfigError(format!(
            "ALONZO_REGION {:?} is not a region name like us-east-1",
            args.region
        )));
    }
    if !Account::is_valid_account_id(&args.account_id) {
        return Err(ConfigError(format!(
            "ALONZO_ACCOUNT_ID {:?} must be exactly 12 digits",
            args.account_id
        )));
    }
    if args.data_dir.as_os_str().is_empty() {
        return Err(ConfigError("--data-dir/ALONZO_DATA_DIR is empty".into()));
    }
    if args.concurrency_limit == 0 {
        return Err(ConfigError("--concurrency-limit must be at least 1".into()));
    }
    let keep_alive = keep_alive_policy(&args)?;
    let account = Account { region: args.region, account_id: args.account_id };
    let routes = match &args.routes {
        Some(path) => load_routes(path, &account)?,
        None => alonzo_api::routes::RouteTable::default(),
    };
    let prices = match &args.prices {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("--prices/ALONZO_PRICES: cannot read {}: {e}", path.display()))
            })?;
            alonzo_control::PriceTable::from_json(&text).map_err(|e| {
                ConfigError(format!("--prices/ALONZO_PRICES {}: {e}", path.display()))
            })?
        }
        None => alonzo_control::PriceTable::default(),
    };
    let network = crate::network::validate(
        &args.network_mode,
        args.networks.as_deref(),
        args.dns.as_deref(),
        &args.function_platform_access,
    )?;
    let otlp = crate::otel::config(args.otlp_endpoint.as_deref(), args.otlp_protocol.as_deref())?;
    Ok(ServeConfig {
        otlp,
        network,
        prices,
        listen,
        metrics_listen,
        console: args.console == "on",
        data_dir: args.data_dir,
        account,
        concurrency_limit: args.concurrency_limit,
        unreserved_minimum: args.unreserved_concurrency_min,
        scale_per_10s: args.scale_rate,
        prebuilt_sandboxes: args.prebuilt_sandboxes,
        worker_threads: args.worker_threads.map_or_else(default_worker_threads, usize::from),
        compile_python: args.compile_python == "on",
        python_zygote: args.python_zygote == "on",
        idle_timeout: args.idle_timeout,
        keep_alive,
        log_limits: alonzo_sandbox::LogLimits {
            rate_bytes_per_s: args.log_rate_limit,
            max_bytes_per_function: args.log_max_bytes_per_function,
            sweep_interval: args.log_sweep_interval.max(std::time::Duration::from_millis(100)),
        },
        async_retry_delay: args.async_retry_delay,
        insecure_no_isolation: args.insecure_no_isolation,
        access_key: access_key_from_env()?,
        routes,
    })
}

/// The keep-alive policy of `--keep-alive-policy`, `--keep-alive-min` and `--keep-alive-max`.
fn keep_alive_policy(args: &ServeArgs) -> Result<alonzo_sandbox::KeepAlivePolicy, ConfigError> {
    match args.keep_alive_policy.as_str() {
        "fixed" => Ok(alonzo_sandbox::KeepAlivePolicy::Fixed),
        "adaptive" => {
            // The default bounds always include the --idle-timeout the operator chose: a
            // minute (or less, when --idle-timeout is less) to half an hour (or more, when
            // --idle-timeout is more).
            let min = args.keep_alive_min.unwrap_or(DEFAULT_KEEP_ALIVE_MIN.min(args.idle_timeout));
            let max = args.keep_alive_max.unwrap_or(DEFAULT_KEEP_ALIVE_MAX.max(args.idle_timeout));
            if min > max {
                return Err(ConfigError(format!(
                    "--keep-alive-min/ALONZO_KEEP_ALIVE_MIN ({}) is more than --keep-alive-max/ALONZO_KEEP_ALIVE_MAX ({})",
                    show(min),
                    show(max)
                )));
            }
            Ok(alonzo_sandbox::KeepAlivePolicy::Adaptive { min, max })
        }
        other => Err(ConfigError(format!(
            "--keep-alive-policy/ALONZO_KEEP_ALIVE_POLICY {other:?} is not `fixed` or `adaptive`"
        ))),
    }
}

/// `--keep-alive-min` unless given (or --idle-timeout is shorter).
const DEFAULT_KEEP_ALIVE_MIN: std::time::Duration = std::time::Duration::from_secs(60);
/// `--keep-alive-max` unless given (or --idle-timeout is longer).
const DEFAULT_KEEP_ALIVE_MAX: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// A duration as the flags write it.
fn show(d: std::time::Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Reads and validates the routes file of `--routes`/`ALONZO_ROUTES`.
fn load_routes(
    path: &Path,
    account: &Account,
) -> Result<alonzo_api::routes::RouteTable, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!("--routes/ALONZO_ROUTES: cannot read {}: {e}", path.display()))
    })?;
    alonzo_api::routes::RouteTable::parse(&text, account)
        .map_err(|e| ConfigError(format!("--routes/ALONZO_ROUTES {}: {e}", path.display())))
}

/// `ALONZO_ACCESS_KEY_ID`/`ALONZO_SECRET_ACCESS_KEY`: both or neither.
fn access_key_from_env() -> Result<Option<credentials::KeyPair>, ConfigError> {
    let id = std::env::var("ALONZO_ACCESS_KEY_ID").ok().filter(|v| !v.is_empty());
    let secret = std::env::var("ALONZO_SECRET_ACCESS_KEY").ok().filter(|v| !v.is_empty());
    match (id, secret) {
        (Some(access_key_id), Some(secret_access_key)) => {
            Ok(Some(credentials::KeyPair { access_key_id, secret_access_key }))
        }
        (None, None) => Ok(None),
        _ => Err(ConfigError(
            "set both ALONZO_ACCESS_KEY_ID and ALONZO_SECRET_ACCESS_KEY, or neither".into(),
        )),
    }
}

/// Half the cores this process may run on, at least 1: the server's share of the machine by
/// default. On the project's 2-core machine one thread instead of two took warm invocations
/// from 0.36-0.40 ms to 0.27-0.29 ms (p50): with two, every invocation woke the idle thread to
/// steal work, and each wake-up preempted the busy one (docs/performance.md).
fn default_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The open-file limit the server asks for: room for tens of thousands of environments.
const OPEN_FILE_LIMIT: u64 = 1 << 20;

/// Runs the server until a shutdown signal.
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = validate(args)?;
    // Before any thread exists, so every thread and child starts with it.
    let open_files = alonzo_jail::raise_open_file_limit(OPEN_FILE_LIMIT);
    tracing::debug!(open_files, "open-file limit");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads)
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(serve(config))
}

async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    // What the runtime really runs, not what was asked for.
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    tracing::info!(worker_threads = workers, "server threads");
    let data_dir = prepare_data_dir(&config.data_dir)?;
    let _lock = lock_data_dir(&data_dir)?;
    let keys = server_keys(&config, &data_dir)?;
    let url_key = url_signing_key(&data_dir)?;
    let meta =
        SqliteStore::open(&data_dir.join("meta.db")).context("opening the metadata database")?;
    let blobs = FsBlobStore::open(data_dir.join("code")).context("opening the code store")?;
    let runtimes = RuntimeCatalog::detect();
    tracing::info!(runtimes = ?runtimes.ids(), "runtimes available on this host");
    // Bound before the sandboxes start, so that functions can be given the real port.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let networking = if config.insecure_no_isolation {
        None
    } else {
        crate::network::start(&config.network, listener.local_addr()?, &keys)?
    };
    let sandbox = start_sandboxes(&config, &data_dir, networking.clone())?;
    sandbox.0.compile_runtimes(&runtimes);
    let otlp = config.otlp.as_ref().map(crate::otel::OtlpSink::start).transpose()?.map(Arc::new);
    let spans = otlp.clone().map(|s| s as Arc<dyn alonzo_control::spans::SpanSink>);
    let control_config = ControlConfig {
        account: config.account.clone(),
        package_limits: PackageLimits::default(),
        runtimes,
        concurrency_limit: config.concurrency_limit,
        unreserved_minimum: config.unreserved_minimum,
        tasks_dir: data_dir.join("tasks"),
        async_retry_delay: config.async_retry_delay,
        prices: config.prices.clone(),
        networks: config.network.networks.clone(),
        spans: spans.clone(),
    };
    let queue_store = alonzo_store_sqlite::SqliteQueueStore::open(&data_dir.join("queues.db"))
        .context("opening the queue database")?;
    let queues = alonzo_queue::Queues::open(Arc::new(queue_store), config.account.clone())
        .await
        .context("loading the queues")?;
    let queue_port: Arc<dyn alonzo_control::QueueService> =
        Arc::new(crate::queue_port::BuiltInQueues(queues.clone()));
    let control = Control::start(
        control_config,
        Arc::new(meta),
        Arc::new(blobs),
        Some(sandbox),
        Some(queue_port),
    )
    .await
    .context("starting the control plane")?;
    let manager = control.sandbox().cloned();
    let state = ApiState {
        control,
        auth: AuthConfig {
            region: config.account.region.clone(),
            keys,
            max_skew: chrono::Duration::minutes(15),
        },
        code_url_key: url_key,
        public_host: config.listen.to_string(),
        queues: queues.clone(),
        routes: config.routes,
        console: config.console,
    };
    if let Some(addr) = config.metrics_listen {
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the metrics address {addr}"))?;
        tracing::info!(listen = %metrics.local_addr()?, "serving Prometheus metrics at /metrics");
        tokio::spawn(crate::metrics::serve(metrics, state.control.clone(), queues.clone()));
    }
    for (stage, routes) in state.routes.stages() {
        tracing::info!(stage = %stage, routes = routes.routes.len(), "serving API gateway stage under /_routes/{stage}/");
    }
    if state.console {
        tracing::info!(
            "serving the web console at http://{}/_alonzo/console/",
            listener.local_addr()?
        );
    }
    tracing::info!(listen = %listener.local_addr()?, data_dir = %data_dir.display(), region = %config.account.region, "alonzo is serving the Lambda API");
    crate::http_server::serve(listener, alonzo_api::router(state), async move {
        shutdown_signal().await;
        // Parked long polls answer now instead of holding the drain for up to 20 s.
        queues.close();
    })
    .await?;
    if let Some(manager) = manager {
        manager.shutdown();
    }
    if let Some(networking) = networking {
        networking.stop();
    }
    if let Some(otlp) = otlp {
        // Blocks while the last batch is sent (bounded by the exporter's timeout).
        tokio::task::spawn_blocking(move || otlp.shutdown()).await.ok();
    }
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The sandbox manager: isolated, or (only with `--insecure-no-isolation`) not.
fn start_sandboxes(
    config: &ServeConfig,
    data_dir: &Path,
    networking: Option<Arc<alonzo_sandbox::network::Networking>>,
) -> anyhow::Result<(
    SandboxManager,
    tokio::sync::mpsc::UnboundedReceiver<alonzo_sandbox::InvocationReport>,
)> {
    let manager_config = |isolation| ManagerConfig {
        data_dir: data_dir.to_owned(),
        // The kernel's link to our own image keeps working even if the file is replaced
        // (an in-place upgrade), where the path would name the new binary or nothing.
        exe: std::path::PathBuf::from("/proc/self/exe"),
        idle_timeout: config.idle_timeout,
        keep_alive: config.keep_alive,
        concurrency_limit: config.concurrency_limit,
        scale_per_10s: config.scale_per_10s,
        prebuilt_sandboxes: config.prebuilt_sandboxes as usize,
        isolation,
        compile_python: config.compile_python,
        python_zygote: config.python_zygote,
        networking: networking.clone(),
        log_limits: config.log_limits,
    };
    if config.insecure_no_isolation {
        tracing::warn!("INSECURE: --insecure-no-isolation is set: functions run as plain processes that see the host and each other, without memory limits. Never use this with code you do not trust.");
        return SandboxManager::new(manager_config(false)).map_err(|e| anyhow::anyhow!("{e}"));
    }
    SandboxManager::new(manager_config(true)).map_err(|e| {
        anyhow::anyhow!(
            "function isolation is unavailable on this host: {e}. Alonzo refuses to run functions unisolated; for development only, pass --insecure-no-isolation"
        )
    })
}

/// Creates the data directory (0700) and returns its absolute path.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))
}

/// Holds an exclusive lock on the data directory for the life of the server, so two servers
/// never share one store.
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let file =
        std::fs::File::create(dir.join("lock")).context("creating the data directory lock")?;
    file.try_lock().map_err(|_| {
        anyhow::anyhow!("another alonzo server is using data directory {}", dir.display())
    })?;
    Ok(file)
}

/// The root credentials: from the environment, or generated once into the data directory.
fn server_keys(
    config: &ServeConfig,
    data_dir: &Path,
) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let pair = match &config.access_key {
        Some(pair) => pair.clone(),
        None => {
            let (pair, generated) = credentials::load_or_generate(data_dir)?;
            let file = data_dir.join(credentials::FILE_NAME);
            if generated {
                eprintln!(
                    "Generated root credentials (access key {}) in {} (mode 0600).\nTo use them with the AWS CLI or SDKs:\n  export AWS_ENDPOINT_URL=http://{} AWS_SHARED_CREDENTIALS_FILE={} AWS_REGION={} AWS_DEFAULT_REGION={}",
                    pair.access_key_id,
                    file.display(),
                    config.listen,
                    file.display(),
                    config.account.region,
                    config.account.region
                );
            }
            pair
        }
    };
    Ok([(pair.access_key_id, pair.secret_access_key)].into())
}

/// The key that signs package download links, generated once.
fn url_signing_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    use rand::RngCore;
    let path = data_dir.join("url-signing.key");
    if let Ok(key) = std::fs::read(&path) {
        if key.len() == 32 {
            return Ok(key);
        }
    }
    let mut key = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    credentials::write_private(&path, &key)?;
    Ok(key)
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
    }
}

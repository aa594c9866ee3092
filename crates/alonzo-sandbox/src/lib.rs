//! Execution environments: the pool of sandboxes per function version, their lifecycle
//! (cold start, warm reuse, idle reclaim, kill on timeout or crash), the per-sandbox Runtime
//! API, and log capture.
//!
//! [`Manager::invoke`] is the one entry point: it takes an idle environment of the function
//! version or starts one, hands it the event, and returns what the runtime answered. All
//! privileged work (namespaces, mounts, cgroup attach, dropping privileges) happens in
//! `alonzo-jail`'s re-executed process, never here: this crate has no `unsafe`.

mod bytecode;
mod environment;
#[doc(hidden)]
pub mod fuzzing;
mod keep_alive;
mod log_store;
mod logs;
pub mod network;
mod platform_log;
mod prepared;
mod provisioned;
mod rootfs;
mod runtime_api;
pub mod runtimes;
mod scaling;
mod unisolated;
mod zygote;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alonzo_jail::cgroup::{CgroupLayout, CgroupLimits, CgroupParent, SandboxCgroup, CPU_PERIOD_US};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

pub use environment::{InvocationReport, InvokeOutcome, ResponseStream};
pub use keep_alive::KeepAlivePolicy;
pub use log_store::{LogEvent, LogGroupInfo, LogStore, LogStreamInfo, SweepStats, MAX_EVENTS};
pub use logs::{group_dir_name, LogLimits};
pub use provisioned::ProvisionedStatus;
pub use runtime_api::{MAX_RESPONSE_BYTES, MAX_STREAM_BYTES};
pub use runtimes::{RuntimeCatalog, RuntimeKind};

use environment::Environment;

/// What the manager needs to know to run a function version.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// Function name.
    pub name: String,
    /// `$LATEST` or a version number.
    pub version: String,
    /// Changes whenever code or configuration change: environments of an older revision are
    /// never reused.
    pub revision_id: String,
    /// Runtime id (`python3.11`).
    pub runtime: String,
    /// How to start it.
    pub runtime_kind: RuntimeKind,
    /// Handler.
    pub handler: String,
    /// Memory limit, MB.
    pub memory_mb: u32,
    /// Timeout, seconds.
    pub timeout_s: u32,
    /// `/tmp` size, MB.
    pub ephemeral_mb: u32,
    /// The function's own variables.
    pub environment: Vec<(String, String)>,
    /// The unpacked package, bound at `/var/task`.
    pub code_dir: PathBuf,
    /// The merged layers, bound at `/opt` (empty when `None`).
    pub opt_dir: Option<PathBuf>,
    /// Log group.
    pub log_group: String,
    /// `Text` or `JSON`.
    pub log_format: String,
    /// `ApplicationLogLevel` (JSON format only), given to the runtime as
    /// `AWS_LAMBDA_LOG_LEVEL`.
    pub application_log_level: Option<String>,
    /// `SystemLogLevel` (JSON format only): which platform records are written.
    pub system_log_level: Option<String>,
    /// Region for `AWS_REGION`.
    pub region: String,
    /// The operator network the function's `VpcConfig` selects; `None` for the default.
    pub network: Option<String>,
}

#[cfg(test)]
impl FunctionSpec {
    /// A plain Python function's spec for unit tests.
    pub(crate) fn sample() -> Self {
        FunctionSpec {
            name: "f".into(),
            version: "$LATEST".into(),
            revision_id: "r".into(),
            runtime: "python3.11".into(),
            runtime_kind: crate::RuntimeKind::Provided,
            handler: "h".into(),
            memory_mb: 128,
            timeout_s: 3,
            ephemeral_mb: 512,
            environment: Vec::new(),
            code_dir: "/x".into(),
            opt_dir: None,
            log_group: "/aws/lambda/f".into(),
            log_format: "Text".into(),
            application_log_level: None,
            system_log_level: None,
            region: "us-east-1".into(),
            network: None,
        }
    }
}

/// One invocation.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// Request id.
    pub request_id: String,
    /// Event bytes.
    pub payload: Bytes,
    /// ARN the caller used.
    pub invoked_arn: String,
    /// Decoded client context JSON.
    pub client_context: Option<String>,
    /// X-Ray trace header, as the runtime gets it.
    pub trace_id: Option<String>,
    /// The caller's parent span id (16 hex digits) when the platform put its own span in
    /// `trace_id`'s `Parent` (platform spans are exported); carried into the report.
    pub caller_parent: Option<String>,
    /// Whether the caller wants the log tail.
    pub log_tail: bool,
    /// Whether the caller reads a streamed response as a stream
    /// ([`InvokeOutcome::stream`]); otherwise a streamed response is buffered (within the
    /// 6 MB limit) like any other.
    pub stream: bool,
}

/// Why the manager could not run an invocation at all.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox could not be created.
    #[error("sandbox could not be started: {0}")]
    Spawn(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A concurrency limit is reached.
    #[error("concurrency limit reached: {0:?}")]
    Throttled(ThrottleReason),
    /// Isolation is unavailable on this host.
    #[error("isolation unavailable: {0}")]
    Unavailable(String),
}

/// Which limit throttled an invocation (Lambda's `Reason` of `TooManyRequestsException`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleReason {
    /// The account's unreserved concurrency is in use.
    ConcurrentInvocationLimitExceeded,
    /// The function's reserved concurrency is in use (or is 0).
    ReservedFunctionConcurrentInvocationLimitExceeded,
}

impl ThrottleReason {
    /// Lambda's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConcurrentInvocationLimitExceeded => "ConcurrentInvocationLimitExceeded",
            Self::ReservedFunctionConcurrentInvocationLimitExceeded => {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            }
        }
    }
}

/// Live figures of one function version, for `alonzo top` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionStats {
    /// Function name.
    pub function: String,
    /// Version.
    pub version: String,
    /// Environments running an invocation now.
    pub busy: u32,
    /// Idle on-demand environments.
    pub idle: u32,
    /// Provisioned environments (idle or busy).
    pub provisioned: u32,
    /// Provisioned environments idle now.
    pub provisioned_idle: u32,
    /// How long an idle on-demand environment of this version is kept now, milliseconds
    /// (the fixed idle timeout, or the adaptive policy's figure).
    pub keep_alive_ms: u64,
}

/// Live figures of the whole pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Account-wide limit.
    pub concurrency_limit: u32,
    /// Invocations running now.
    pub busy: u32,
    /// Per function version.
    pub versions: Vec<VersionStats>,
    /// Throttled invocations since start, per function.
    pub throttles: Vec<(String, u64)>,
    /// Reserved concurrency per function.
    pub reserved: Vec<(String, u32)>,
}

impl SandboxError {
    fn io(context: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |source| Self::Io { context, source }
    }
}

/// Settings of the manager.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Data directory (holds `runtime/`, `sandboxes/`, `logs/`).
    pub data_dir: PathBuf,
    /// The executable re-executed as the jail (`alonzo` itself).
    pub exe: PathBuf,
    /// Idle environments older than this are reclaimed (under the adaptive policy: until a
    /// function version's idle-time history is representative).
    pub idle_timeout: Duration,
    /// Fixed or adaptive keep-alive of idle on-demand environments (`keep_alive.rs`).
    pub keep_alive: KeepAlivePolicy,
    /// Account-wide limit of concurrently running environments.
    pub concurrency_limit: u32,
    /// New environments each function may start per 10 seconds (Lambda: 1000).
    pub scale_per_10s: u32,
    /// Sandboxes built ahead per template in demand (`prepared.rs`); 0 disables them.
    pub prebuilt_sandboxes: usize,
    /// Run sandboxes isolated (the default). `false` runs runtimes as plain child processes:
    /// development only (`--insecure-no-isolation`).
    pub isolation: bool,
    /// Compile Python function packages to bytecode at deployment (`bytecode.rs`).
    pub compile_python: bool,
    /// Fork Python sandboxes' runtimes from a zygote, an interpreter initialised once
    /// (`zygote.rs`).
    pub python_zygote: bool,
    /// External interfaces for sandboxes; `None` gives every sandbox loopback only.
    pub networking: Option<Arc<network::Networking>>,
    /// Flood protection and storage bounds of function logs.
    pub log_limits: LogLimits,
}

/// The pool of execution environments. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    exe: PathBuf,
    files: rootfs::RuntimeFiles,
    sandboxes_dir: PathBuf,
    logs_dir: PathBuf,
    log_limits: LogLimits,
    cgroups: Option<CgroupParent>,
    concurrency_limit: u32,
    isolation: bool,
    /// Whether Python packages are compiled at deployment.
    compile_python: bool,
    /// Whether Python sandboxes built ahead fork their runtime from a zygote.
    python_zygote: bool,
    /// The zygotes, by interpreter.
    zygotes: zygote::Zygotes,
    networking: Option<Arc<network::Networking>>,
    pool: Mutex<Pool>,
    uid_counter: AtomicU32,
    reports: mpsc::UnboundedSender<InvocationReport>,
    /// Signalled whenever an environment goes back to the pool.
    returned: tokio::sync::Notify,
    /// Provisioned-concurrency targets.
    provisioned: Mutex<provisioned::Targets>,
    /// Wakes the provisioner.
    provision_wakeup: tokio::sync::Notify,
    /// The rate at which functions may add environments.
    scaling: scaling::ScaleLimiter,
    /// Sandboxes built ahead of demand.
    prepared: Mutex<prepared::PreparedPool>,
    /// How many of each template `prepared` keeps (0: none).
    prebuilt: usize,
    /// Wakes the task that refills `prepared`.
    prepare_wakeup: tokio::sync::Notify,
    /// Environments starting now: building sandboxes ahead waits for them (see
    /// `prepared::run`), so that the pool's refill never competes with a cold start for the
    /// cores.
    starting: prepared::Starting,
    /// Environment starts allowed at once (four per core): a burst of cold starts beyond it
    /// waits its turn instead of a thousand runtimes initialising on two cores, where none
    /// gets enough CPU and sandbox set-up and invocations time out.
    start_permits: tokio::sync::Semaphore,
}

/// Environments of one function revision are interchangeable: the pool key.
pub(crate) type EnvKey = (String, String, String);

#[derive(Debug, Default)]
struct Pool {
    idle: HashMap<EnvKey, Vec<Environment>>,
    /// Environments that answered their caller and are about to become idle (their runtime
    /// has not asked for its next event yet).
    returning: HashMap<EnvKey, usize>,
    /// Invocations running (or starting an environment) now, all functions.
    busy: u32,
    /// The same, per version.
    busy_by_key: HashMap<EnvKey, u32>,
    /// The same, per function.
    busy_by_function: HashMap<String, u32>,
    /// Busy invocations of functions without a reservation (they share the unreserved pool).
    unreserved_busy: u32,
    /// Reserved concurrency per function.
    reserved: HashMap<String, u32>,
    reserved_total: u32,
    /// Throttled invocations since start, per function.
    throttles: HashMap<String, u64>,
    /// Provisioned environments alive (idle or busy) per version.
    provisioned_alive: HashMap<EnvKey, u32>,
    /// How long idle on-demand environments are kept, per function version.
    keep_alive: keep_alive::KeepAlive,
}

impl Pool {
    /// Takes a concurrency slot for `key`, or says which limit is reached.
    fn acquire(&mut self, key: &EnvKey, limit: u32) -> Result<(), ThrottleReason> {
        let function = &key.0;
        let reserved = self.reserved.get(function).copied();
        let busy_fn = self.busy_by_function.get(function).copied().unwrap_or(0);
        match reserved {
            Some(r) if busy_fn >= r => {
                return Err(ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded)
            }
            Some(_) => {}
            None => {
                if self.unreserved_busy >= limit.saturating_sub(self.reserved_total) {
                    return Err(ThrottleReason::ConcurrentInvocationLimitExceeded);
                }
                self.unreserved_busy += 1;
            }
        }
        self.busy += 1;
        *self.busy_by_function.entry(function.clone()).or_default() += 1;
        *self.busy_by_key.entry(key.clone()).or_default() += 1;
        Ok(())
    }

    /// Gives back a slot taken by [`Pool::acquire`].
    fn release(&mut self, key: &EnvKey) {
        self.busy = self.busy.saturating_sub(1);
        if !self.reserved.contains_key(&key.0) {
            self.unreserved_busy = self.unreserved_busy.saturating_sub(1);
        }
        if let Some(n) = self.busy_by_function.get_mut(&key.0) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.busy_by_function.remove(&key.0);
            }
        }
        if let Some(n) = self.busy_by_key.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.busy_by_key.remove(key);
            }
        }
    }

    /// Changes a function's reservation; its running invocations move between the
    /// unreserved pool and its own.
    fn set_reserved(&mut self, function: &str, reserved: Option<u32>) {
        let busy_fn = self.busy_by_function.get(function).copied().unwrap_or(0);
        let old = match reserved {
            Some(r) => self.reserved.insert(function.to_owned(), r),
            None => self.reserved.remove(function),
        };
        match (old, reserved) {
            (None, Some(_)) => self.unreserved_busy = self.unreserved_busy.saturating_sub(busy_fn),
            (Some(_), None) => self.unreserved_busy += busy_fn,
            _ => {}
        }
        self.reserved_total = self.reserved.values().sum();
    }

    /// Takes an idle environment of `key`, provisioned ones first.
    fn pop_idle(&mut self, key: &EnvKey) -> Option<Environment> {
        let envs = self.idle.get_mut(key)?;
        let pos = envs.iter().rposition(|e| e.provisioned).unwrap_or(envs.len().checked_sub(1)?);
        Some(envs.swap_remove(pos))
    }
}

/// How long a request waits for an environment that is about to become idle before it
/// starts a new one (a runtime asks for its next event within a fraction of a millisecond).
const RETURNING_WAIT: Duration = Duration::from_millis(20);

impl Manager {
    /// Compiles the Python runtime's bytecode for every interpreter of `catalog` whose
    /// bytecode is missing or older than the source (`RuntimeFiles::compile_python`). A
    /// failure costs only speed: that interpreter then compiles the source at each start.
    pub fn compile_runtimes(&self, catalog: &RuntimeCatalog) {
        for (id, kind) in catalog.iter() {
            if let RuntimeKind::Python(python) = kind {
                if self.inner.files.python_bytecode_current(id) {
                    continue;
                }
                if let Err(error) = self.inner.files.compile_python(python) {
                    tracing::warn!(runtime = id, %error, "could not precompile the Python runtime");
                }
            }
        }
    }

    /// Prepares the data directories and the cgroup parent. Reports of finished
    /// invocations are delivered on the returned receiver.
    pub fn new(
        config: ManagerConfig,
    ) -> Result<(Self, mpsc::UnboundedReceiver<InvocationReport>), SandboxError> {
        let dns = config.networking.as_ref().map(|n| n.dns().to_vec()).unwrap_or_default();
        let files = rootfs::RuntimeFiles::install(&config.data_dir.join("runtime"), &dns)
            .map_err(SandboxError::io("installing runtime files"))?;
        let sandboxes_dir = sandboxes_dir(&config.data_dir)?;
        let logs_dir = config.data_dir.join("logs");
        std::fs::create_dir_all(&logs_dir)
            .map_err(SandboxError::io("creating the logs directory"))?;
        let cgroups = if config.isolation { Some(cgroup_parent(&config.data_dir)?) } else { None };
        let (reports, report_rx) = mpsc::unbounded_channel();
        let inner = Inner {
            exe: config.exe,
            files,
            sandboxes_dir,
            logs_dir,
            log_limits: config.log_limits,
            cgroups,
            concurrency_limit: config.concurrency_limit,
            isolation: config.isolation,
            compile_python: config.compile_python,
            python_zygote: config.python_zygote,
            zygotes: zygote::Zygotes::default(),
            networking: config.networking,
            pool: Mutex::new(Pool {
                keep_alive: keep_alive::KeepAlive::new(config.keep_alive, config.idle_timeout),
                ..Pool::default()
            }),
            uid_counter: AtomicU32::new(0),
            reports,
            returned: tokio::sync::Notify::new(),
            provisioned: Mutex::new(provisioned::Targets::default()),
            provision_wakeup: tokio::sync::Notify::new(),
            scaling: scaling::ScaleLimiter::new(config.scale_per_10s),
            prepared: Mutex::new(prepared::PreparedPool::default()),
            prebuilt: config.prebuilt_sandboxes,
            prepare_wakeup: tokio::sync::Notify::new(),
            starting: prepared::Starting::default(),
            start_permits: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(4, |n| n.get() * 4).max(4),
            ),
        };
        let manager = Self { inner: Arc::new(inner) };
        tokio::spawn(reap_idle(Arc::downgrade(&manager.inner)));
        tokio::spawn(sweep_logs(Arc::downgrade(&manager.inner)));
        tokio::spawn(provisioned::run(Arc::downgrade(&manager.inner)));
        if manager.inner.cgroups.is_some() && manager.inner.prebuilt > 0 {
            tokio::spawn(prepared::run(Arc::downgrade(&manager.inner)));
        }
        Ok((manager, report_rx))
    }

    /// Where log streams are stored (`<data>/logs`).
    pub fn logs_dir(&self) -> &std::path::Path {
        &self.inner.logs_dir
    }

    /// Runs one invocation of `spec`, warm if an idle environment exists, cold otherwise.
    pub async fn invoke(
        &self,
        spec: Arc<FunctionSpec>,
        req: InvokeRequest,
    ) -> Result<InvokeOutcome, SandboxError> {
        let key = (spec.name.clone(), spec.version.clone(), spec.revision_id.clone());
        let warm = self.take_idle_or_wait(&key).await?;
        let mut env = match warm {
            Some(env) => env,
            None if !self.inner.scaling.take(&spec.name).await => {
                self.release_slot(&key);
                if let Ok(mut pool) = self.inner.pool.lock() {
                    *pool.throttles.entry(key.0.clone()).or_default() += 1;
                }
                return Err(SandboxError::Throttled(
                    ThrottleReason::ConcurrentInvocationLimitExceeded,
                ));
            }
            None => match Environment::start(self, Arc::clone(&spec), false).await {
                Ok(Ok(env)) => env,
                Ok(Err(failure)) => {
                    self.release_slot(&key);
                    return Ok(self.init_failed(&spec, &req, failure));
                }
                Err(e) => {
                    self.release_slot(&key);
                    return Err(e);
                }
            },
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        let this = self.clone();
        tokio::spawn(async move {
            let answered = || this.mark_returning(&key, 1);
            let (reusable, report) = env.invoke(req, reply_tx, answered).await;
            let _ = this.inner.reports.send(report);
            this.give_back(key, env, reusable);
        });
        reply_rx
            .await
            .map_err(|_| SandboxError::Spawn("the environment stopped unexpectedly".into()))
    }

    /// Kills the idle environments of a function version (`$LATEST` changed, a version was
    /// deleted) or, with `None`, of the whole function (it was deleted, and its provisioned
    /// concurrency with it); busy ones are not reused after they finish.
    pub fn retire(&self, function: &str, version: Option<&str>) {
        if version.is_none() {
            self.set_provisioned(function, Vec::new());
        }
        let retired: Vec<Environment> = match self.inner.pool.lock() {
            Ok(mut pool) => {
                let keys: Vec<_> = pool
                    .idle
                    .keys()
                    .filter(|k| k.0 == function && version.is_none_or(|v| k.1 == v))
                    .cloned()
                    .collect();
                // A `$LATEST` update keeps the history: callers call as often as before.
                if version != Some("$LATEST") {
                    pool.keep_alive.forget(function, version);
                }
                let mut out = Vec::new();
                for key in keys {
                    let envs = pool.idle.remove(&key).unwrap_or_default();
                    let provisioned = envs.iter().filter(|e| e.provisioned).count();
                    if let Some(n) = pool.provisioned_alive.get_mut(&key) {
                        *n = n.saturating_sub(u32::try_from(provisioned).unwrap_or(u32::MAX));
                    }
                    out.extend(envs);
                }
                out
            }
            Err(_) => Vec::new(),
        };
        for env in retired {
            env.destroy();
        }
    }

    /// Takes an idle environment for `key`, or a concurrency slot for a new one.
    fn take_idle(
        &self,
        key: &(String, String, String),
    ) -> Result<Option<Environment>, SandboxError> {
        let mut pool =
            self.inner.pool.lock().map_err(|_| SandboxError::Spawn("pool lock poisoned".into()))?;
        if let Err(reason) = pool.acquire(key, self.inner.concurrency_limit) {
            *pool.throttles.entry(key.0.clone()).or_default() += 1;
            return Err(SandboxError::Throttled(reason));
        }
        let env = pool.pop_idle(key);
        let now = Instant::now();
        match &env {
            Some(env) if !env.provisioned => {
                let idle = now.saturating_duration_since(env.last_used);
                pool.keep_alive.reused(&key.0, &key.1, idle);
            }
            Some(_) => {}
            // Nothing of the version idle and nothing else running (this slot is ours).
            None if pool.busy_by_key.get(key) == Some(&1) => {
                pool.keep_alive.missed(&key.0, &key.1, now);
            }
            None => {}
        }
        Ok(env)
    }

    fn release_slot(&self, key: &EnvKey) {
        if let Ok(mut pool) = self.inner.pool.lock() {
            pool.release(key);
        }
    }

    /// Sets (or with `None` removes) a function's reserved concurrency: from now on at most
    /// that many of its invocations run at once, and the others share what is left.
    pub fn set_reserved_concurrency(&self, function: &str, reserved: Option<u32>) {
        if let Ok(mut pool) = self.inner.pool.lock() {
            pool.set_reserved(function, reserved);
        }
    }

    /// Live figures for `alonzo top` and metrics.
    pub fn stats(&self) -> PoolStats {
        let Ok(pool) = self.inner.pool.lock() else { return PoolStats::default() };
        let mut by_version: std::collections::BTreeMap<(String, String), VersionStats> =
            std::collections::BTreeMap::new();
        fn row<'a>(
            rows: &'a mut std::collections::BTreeMap<(String, String), VersionStats>,
            key: &EnvKey,
        ) -> &'a mut VersionStats {
            rows.entry((key.0.clone(), key.1.clone())).or_insert_with(|| VersionStats {
                function: key.0.clone(),
                version: key.1.clone(),
                ..VersionStats::default()
            })
        }
        for (key, n) in &pool.busy_by_key {
            row(&mut by_version, key).busy += n;
        }
        for (key, envs) in &pool.idle {
            let idle = envs.iter().filter(|e| !e.provisioned).count();
            let provisioned_idle = envs.len() - idle;
            let row = row(&mut by_version, key);
            row.idle += u32::try_from(idle).unwrap_or(u32::MAX);
            row.provisioned_idle += u32::try_from(provisioned_idle).unwrap_or(u32::MAX);
        }
        for (key, n) in &pool.provisioned_alive {
            row(&mut by_version, key).provisioned += n;
        }
        for row in by_version.values_mut() {
            let keep = pool.keep_alive.keep_alive(&row.function, &row.version);
            row.keep_alive_ms = u64::try_from(keep.as_millis()).unwrap_or(u64::MAX);
        }
        let mut throttles: Vec<_> = pool.throttles.iter().map(|(f, n)| (f.clone(), *n)).collect();
        throttles.sort();
        let mut reserved: Vec<_> = pool.reserved.iter().map(|(f, n)| (f.clone(), *n)).collect();
        reserved.sort();
        PoolStats {
            concurrency_limit: self.inner.concurrency_limit,
            busy: pool.busy,
            versions: by_version.into_values().collect(),
            throttles,
            reserved,
        }
    }

    fn give_back(&self, key: EnvKey, env: Environment, reusable: bool) {
        let Ok(mut pool) = self.inner.pool.lock() else { return };
        pool.release(&key);
        if !reusable && env.provisioned {
            if let Some(n) = pool.provisioned_alive.get_mut(&key) {
                *n = n.saturating_sub(1);
            }
        }
        if let Some(n) = pool.returning.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                pool.returning.remove(&key);
            }
        }
        if reusable {
            if !env.provisioned {
                pool.keep_alive.went_idle(&key.0, &key.1, env.last_used);
            }
            pool.idle.entry(key).or_default().push(env);
        } else {
            drop(pool);
            env.destroy();
        }
        self.inner.returned.notify_waiters();
    }

    /// Counts an environment that answered and will be idle shortly.
    fn mark_returning(&self, key: &EnvKey, n: usize) {
        if let Ok(mut pool) = self.inner.pool.lock() {
            *pool.returning.entry(key.clone()).or_default() += n;
        }
    }

    /// Takes an idle environment; if none is idle but one is about to be, waits briefly for
    /// it rather than paying for a cold start.
    async fn take_idle_or_wait(&self, key: &EnvKey) -> Result<Option<Environment>, SandboxError> {
        let deadline = tokio::time::Instant::now() + RETURNING_WAIT;
        loop {
            let notified = self.inner.returned.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let returning = {
                let pool = self
                    .inner
                    .pool
                    .lock()
                    .map_err(|_| SandboxError::Spawn("pool lock poisoned".into()))?;
                pool.idle.get(key).is_none_or(Vec::is_empty)
                    && pool.returning.get(key).is_some_and(|n| *n > 0)
            };
            if !returning || tokio::time::Instant::now() >= deadline {
                return self.take_idle(key);
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    fn init_failed(
        &self,
        spec: &FunctionSpec,
        req: &InvokeRequest,
        failure: environment::InitFailure,
    ) -> InvokeOutcome {
        let report = InvocationReport {
            request_id: req.request_id.clone(),
            function: spec.name.clone(),
            version: spec.version.clone(),
            duration_ms: 0.0,
            billed_ms: failure.init.as_millis().try_into().unwrap_or(u64::MAX).max(1),
            memory_mb: spec.memory_mb,
            ephemeral_mb: spec.ephemeral_mb,
            provisioned: false,
            max_memory_used_mb: 0,
            init_ms: Some(failure.init.as_secs_f64() * 1000.0),
            error_type: Some(failure.error_type.clone()),
            started_at: chrono::Utc::now(),
            trace_id: req.trace_id.clone(),
            caller_parent: req.caller_parent.clone(),
        };
        let _ = self.inner.reports.send(report);
        InvokeOutcome {
            body: failure.body,
            function_error: Some("Unhandled".into()),
            error_type: Some(failure.error_type),
            log_tail: req.log_tail.then(String::new),
            executed_version: spec.version.clone(),
            stream: None,
        }
    }

    fn create_cgroup(
        &self,
        id: &str,
        limits: &CgroupLimits,
    ) -> Result<Option<SandboxCgroup>, SandboxError> {
        let Some(parent) = &self.inner.cgroups else { return Ok(None) };
        SandboxCgroup::create(parent, id, limits)
            .map(Some)
            .map_err(|e| SandboxError::Spawn(format!("cgroup: {e}")))
    }

    /// A distinct 65536-id range on the host for each new sandbox's user namespace.
    fn next_uid_base(&self) -> u32 {
        let n = self.inner.uid_counter.fetch_add(1, Ordering::Relaxed) % 16_384;
        1_000_000 + n * 65_536
    }

    /// Kills every environment (shutdown).
    pub fn shutdown(&self) {
        prepared::drain(&self.inner);
        let all: Vec<Environment> = match self.inner.pool.lock() {
            Ok(mut pool) => pool.idle.drain().flat_map(|(_, envs)| envs).collect(),
            Err(_) => Vec::new(),
        };
        // Every environment is signalled before any is waited for: killed one at a time, each
        // waiting for its processes to exit, a server with 2,000 idle environments took about
        // 10 s to stop. Each is then killed here, not in the background, as the runtime that
        // would run `destroy`'s clean-up is stopping.
        for env in &all {
            env.signal();
        }
        for env in all {
            env.kill();
            env.destroy_killed();
        }
    }
}

/// The cgroup limits a function's environment starts with. The CPU quota is at least one core
/// while the runtime initialises, so small functions start as fast as large ones;
/// `steady_cpu_quota_us` replaces it once init is done. See docs/sandbox.md.
pub(crate) fn limits_for(spec: &FunctionSpec) -> CgroupLimits {
    let memory_bytes = u64::from(spec.memory_mb) * 1024 * 1024;
    let cpu_quota_us = steady_cpu_quota_us(spec).max(CPU_PERIOD_US);
    CgroupLimits { memory_bytes, cpu_quota_us, pids_max: 1024 }
}

/// The CPU quota of an initialised environment: Lambda's ratio of one vCPU at 1,769 MB
/// (128 MB: 7.2 % of a core; 10,240 MB: 5.8 cores), and at least the 1 ms cgroup v1 accepts.
pub(crate) fn steady_cpu_quota_us(spec: &FunctionSpec) -> u64 {
    (u64::from(spec.memory_mb) * CPU_PERIOD_US / MB_PER_VCPU).max(1_000)
}

/// Lambda's memory per vCPU.
const MB_PER_VCPU: u64 = 1769;

/// Detects the cgroup layout, creates this data directory's cgroup parent and removes
/// sandboxes a previous server left in it.
fn cgroup_parent(data_dir: &std::path::Path) -> Result<CgroupParent, SandboxError> {
    check_namespaces()?;
    let layout =
        CgroupLayout::detect().map_err(|e| SandboxError::Unavailable(format!("cgroups: {e}")))?;
    // One parent per data directory (which only one server can hold), so sandboxes a
    // crashed server left behind are found and removed by its successor, and servers with
    // other data directories are never touched.
    let cgroups = CgroupParent::create(&layout, &cgroup_name(data_dir))
        .map_err(|e| SandboxError::Unavailable(format!("cgroups: {e}")))?;
    match cgroups.clean_up_leftovers() {
        Ok(0) => {}
        Ok(n) => tracing::info!(removed = n, "removed sandboxes left by a previous server"),
        Err(e) => tracing::warn!(error = %e, "cleaning up leftover sandboxes failed"),
    }
    Ok(cgroups)
}

/// Sandboxes need root (to map a private uid range for each user namespace) and user
/// namespaces enabled in the kernel.
fn check_namespaces() -> Result<(), SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let uid =
        std::fs::metadata("/proc/self").map_err(SandboxError::io("reading /proc/self"))?.uid();
    if uid != 0 {
        return Err(SandboxError::Unavailable(
            "creating sandboxes needs root (run alonzo serve as root)".into(),
        ));
    }
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").unwrap_or_default();
    if max.trim() == "0" {
        return Err(SandboxError::Unavailable(
            "user namespaces are disabled (user.max_user_namespaces = 0)".into(),
        ));
    }
    Ok(())
}

/// Where sandbox roots (mount points only) are made: a private directory in `/dev/shm` when
/// it is a tmpfs (`alonzo_jail::private_tmpfs_dir`), named after the data directory so that
/// servers with different data directories never share it; else `<data>/sandboxes`. Left
/// over from an earlier run, either is emptied.
fn sandboxes_dir(data_dir: &std::path::Path) -> Result<PathBuf, SandboxError> {
    let on_disk = data_dir.join("sandboxes");
    let _ = std::fs::remove_dir_all(&on_disk);
    let name = format!("alonzo-sandboxes-{}", cgroup_name(data_dir));
    if let Some(dir) = alonzo_jail::private_tmpfs_dir(std::path::Path::new("/dev/shm"), &name) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&on_disk)
        .map_err(SandboxError::io("creating the sandboxes directory"))?;
    Ok(on_disk)
}

/// The cgroup parent's name for a data directory: a stable hash (FNV-1a) of its path, the
/// same across restarts and upgrades.
fn cgroup_name(data_dir: &std::path::Path) -> String {
    let hash =
        data_dir.as_os_str().as_encoded_bytes().iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// Reclaims idle on-demand environments once their function version's keep-alive has
/// passed, until the manager is dropped. It sleeps until the next environment is due, at
/// least 100 ms and at most `KeepAlive::check_interval` (a quarter of the shortest
/// keep-alive the policy can give, at most 5 s), so that short keep-alives are honoured.
async fn reap_idle(inner: std::sync::Weak<Inner>) {
    let mut wait = keep_alive::MIN_CHECK;
    loop {
        tokio::time::sleep(wait).await;
        let Some(inner) = inner.upgrade() else { return };
        let expired: Vec<Environment> = match inner.pool.lock() {
            Ok(mut pool) => {
                let now = Instant::now();
                let mut next: Option<Instant> = None;
                let mut out = Vec::new();
                let Pool { idle, keep_alive, .. } = &mut *pool;
                for (key, envs) in idle.iter_mut() {
                    if envs.iter().all(|e| e.provisioned) {
                        continue;
                    }
                    let keep = keep_alive.keep_alive(&key.0, &key.1);
                    let expired =
                        |e: &Environment| !e.provisioned && now.duration_since(e.last_used) > keep;
                    for e in envs.iter().filter(|e| !e.provisioned && !expired(e)) {
                        let due = e.last_used + keep;
                        next = Some(next.map_or(due, |n| n.min(due)));
                    }
                    // Most wake-ups reclaim nothing: no reallocation then.
                    if envs.iter().any(expired) {
                        let (old, kept): (Vec<_>, Vec<_>) = envs.drain(..).partition(expired);
                        *envs = kept;
                        out.extend(old);
                    }
                }
                idle.retain(|_, envs| !envs.is_empty());
                let most = keep_alive.check_interval();
                wait = next
                    .map_or(most, |due| due.saturating_duration_since(now))
                    .clamp(keep_alive::MIN_CHECK, most);
                out
            }
            Err(_) => Vec::new(),
        };
        for env in expired {
            tracing::debug!(env = %env.id, function = %env.spec.name, "reclaiming idle environment");
            env.destroy();
        }
    }
}

/// Enforces log retention and the per-function volume cap every `sweep_interval`, until
/// the manager is dropped.
async fn sweep_logs(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(interval) = inner.upgrade().map(|i| i.log_limits.sweep_interval) else { return };
        tokio::time::sleep(interval).await;
        let Some(strong) = inner.upgrade() else { return };
        let store = LogStore::new(&strong.logs_dir);
        let cap = strong.log_limits.max_bytes_per_function;
        drop(strong);
        let now_ms = chrono::Utc::now().timestamp_millis();
        match tokio::task::spawn_blocking(move || store.sweep(now_ms, cap)).await {
            Ok(stats) if stats.removed_streams > 0 => tracing::info!(
                removed_streams = stats.removed_streams,
                freed_bytes = stats.freed_bytes,
                "log sweep removed expired or excess streams"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "log sweep failed"),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        prepared::drain(self);
        let _ = std::fs::remove_dir_all(&self.sandboxes_dir);
        if let Some(parent) = &self.cgroups {
            parent.remove();
        }
    }
}

//! Control-plane operations: one method per Lambda action on [`Control`], with typed inputs
//! and outputs, over the metadata and package stores.
//!
//! This crate knows neither HTTP nor JSON nor SigV4 (that is `alonzo-api`), nor SQL (that
//! is the store backends). It owns the rules that span several records: name resolution,
//! optimistic locking, the Pending→Active state machine, package validation and the
//! collection of packages no record refers to any more.

mod access;
mod activity;
mod aliases;
mod async_worker;
mod code;
mod concurrency;
mod error;
mod event_invoke;
mod functions;
mod invoke;
mod layers;
mod mappings;
mod metrics;
pub mod package;
mod queues;
mod settle;
pub mod spans;
mod sqs_poller;
mod trace;
mod usage;
mod versions;

use std::sync::Arc;

use alonzo_model::Account;
use alonzo_store::{BlobStore, MetaStore};
use tokio::sync::{mpsc, RwLock};

pub use access::{PermissionInput, UrlAccess, UrlConfigInput};
pub use activity::ActivityBucket;
pub use aliases::AliasInput;
pub use alonzo_sandbox::{
    InvocationReport, InvokeOutcome, LogEvent, LogStore, Manager as SandboxManager,
    MAX_EVENTS as MAX_LOG_EVENTS,
};
pub use alonzo_sandbox::{PoolStats, RuntimeCatalog, RuntimeKind, VersionStats};
pub use concurrency::ProvisionedView;
pub use error::ControlError;
pub use event_invoke::{EventInvokeInput, EventInvokeView};
pub use functions::{
    AccountSettings, ConfigPatch, CreateFunction, FunctionView, ListPage, UpdateCode,
};
pub use invoke::{InvocationType, InvokeInput, InvokeResult, ASYNC_PAYLOAD_LIMIT};
pub use layers::PublishLayerInput;
pub use mappings::{MappingInput, MappingPage};
pub use metrics::{Metrics, QueueDepth};
pub use package::PackageLimits;
pub use queues::{MessageAttribute, QueueMessage, QueueService};
pub use trace::{new_trace_id, new_trace_root};
pub use usage::{FunctionUsage, MonthUsage, PriceTable, UsageQuery, UsageReport};
pub use versions::PublishInput;

/// Settings of the control plane, fixed at start-up.
#[derive(Debug, Clone)]
pub struct ControlConfig {
    /// Region and account used in ARNs.
    pub account: Account,
    /// Limits applied to deployment packages.
    pub package_limits: PackageLimits,
    /// Runtimes this host can run.
    pub runtimes: RuntimeCatalog,
    /// Account-wide concurrency limit reported by `GetAccountSettings`.
    pub concurrency_limit: u32,
    /// Concurrency that reservations must leave unreserved (Lambda: 100).
    pub unreserved_minimum: u32,
    /// Where packages are unpacked for sandboxes (`<data>/tasks`).
    pub tasks_dir: std::path::PathBuf,
    /// Delay before the first retry of a failed asynchronous invocation (Lambda: about a
    /// minute; the second retry waits twice as long).
    pub async_retry_delay: std::time::Duration,
    /// Prices for usage reports.
    pub prices: PriceTable,
    /// The operator's networks, which `VpcConfig` ids must name.
    pub networks: alonzo_sandbox::network::Networks,
    /// Where platform spans go (an OpenTelemetry exporter); `None` records none.
    pub spans: Option<Arc<dyn spans::SpanSink>>,
}

/// The control plane. Cheap to clone; all clones share one state.
#[derive(Debug, Clone)]
pub struct Control {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ControlConfig,
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    /// Held shared by every operation that stores a package and then records it, and
    /// exclusively by the collector of unreferenced packages, so that the collector never
    /// deletes a package whose record is about to be written.
    code_gate: RwLock<()>,
    settle_tx: mpsc::UnboundedSender<settle::SettleJob>,
    /// Runs function code; `None` in a control plane without execution (tests).
    sandbox: Option<alonzo_sandbox::Manager>,
    /// Wakes the asynchronous workers when an event is queued.
    async_wakeup: tokio::sync::Notify,
    /// Serialises publishing, so that concurrent `PublishVersion` calls on an unchanged
    /// `$LATEST` agree on one version.
    publish_lock: tokio::sync::Mutex<()>,
    /// Serialises changes to reserved and provisioned concurrency, whose rules span
    /// functions.
    concurrency_lock: tokio::sync::Mutex<()>,
    /// Serialises bringing the sandbox manager and the metering ledger in line with the
    /// stored provisioned-concurrency configurations (`sync_provisioned`).
    provisioned_lock: tokio::sync::Mutex<()>,
    /// The queue service for dead-letter queues, SQS destinations and event source
    /// mappings.
    queues: Option<Arc<dyn QueueService>>,
    /// Serialises changes to event source mappings.
    mappings_lock: tokio::sync::Mutex<()>,
    /// Wakes the mapping supervisor after a change.
    mappings_wakeup: tokio::sync::Notify,
    /// Operational metrics (counters and histograms of what happened).
    metrics: metrics::Metrics,
    /// The sandbox specification of each function version last run, valid while its
    /// `RevisionId` is the record's: warm invocations skip rebuilding it and the file
    /// checks behind it.
    specs: std::sync::Mutex<
        std::collections::HashMap<(String, String), Arc<alonzo_sandbox::FunctionSpec>>,
    >,
}

impl Control {
    /// Starts the control plane: collects orphaned packages, resumes changes a crash
    /// interrupted, and spawns the worker that settles new changes. Needs a tokio runtime.
    /// With a sandbox manager (and the receiver of its invocation reports), it also runs
    /// functions: synchronous invocations, and the workers that drain the asynchronous queue
    /// (events a crash interrupted are leased again).
    pub async fn start(
        config: ControlConfig,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        sandbox: Option<(alonzo_sandbox::Manager, mpsc::UnboundedReceiver<InvocationReport>)>,
        queues: Option<Arc<dyn QueueService>>,
    ) -> Result<Self, ControlError> {
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let (sandbox, reports) = sandbox.map_or((None, None), |(m, r)| (Some(m), Some(r)));
        let parallelism = usize::try_from(config.concurrency_limit).unwrap_or(usize::MAX);
        let inner = Inner {
            config,
            meta,
            blobs,
            code_gate: RwLock::new(()),
            settle_tx,
            sandbox,
            async_wakeup: tokio::sync::Notify::new(),
            publish_lock: tokio::sync::Mutex::new(()),
            concurrency_lock: tokio::sync::Mutex::new(()),
            provisioned_lock: tokio::sync::Mutex::new(()),
            queues,
            mappings_lock: tokio::sync::Mutex::new(()),
            mappings_wakeup: tokio::sync::Notify::new(),
            metrics: metrics::Metrics::new(),
            specs: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        let control = Self { inner: Arc::new(inner) };
        std::fs::create_dir_all(&control.inner.config.tasks_dir).map_err(code::io_error)?;
        control.collect_code(true).await?;
        tokio::spawn(settle::run(control.clone(), settle_rx));
        for record in control.inner.meta.list_unsettled().await? {
            control.schedule_settle(&record.name, &record.version);
        }
        control.restore_concurrency().await?;
        if let Some(reports) = reports {
            tokio::spawn(control.clone().record_reports(reports));
            let released = control.inner.meta.release_leases().await?;
            if released > 0 {
                tracing::info!(
                    released,
                    "asynchronous events interrupted by a restart are queued again"
                );
            }
            tokio::spawn(Self::run_async_workers(Arc::downgrade(&control.inner), parallelism));
            if control.inner.queues.is_some() {
                tokio::spawn(Self::run_mapping_supervisor(Arc::downgrade(&control.inner)));
            }
        }
        Ok(control)
    }

    /// Live concurrency figures (busy, idle and provisioned environments, throttles), for
    /// `alonzo top`; `None` without a sandbox manager.
    pub fn concurrency_stats(&self) -> Option<PoolStats> {
        self.inner.sandbox.as_ref().map(alonzo_sandbox::Manager::stats)
    }

    /// The Prometheus exposition (OpenMetrics text): event metrics, live concurrency and
    /// environments, and the depths of `queues` (read by the caller).
    pub fn encode_metrics(&self, queues: &[QueueDepth]) -> String {
        let pool = self.concurrency_stats();
        self.inner.metrics.encode(pool.as_ref(), queues).unwrap_or_else(|e| {
            tracing::error!(error = %e, "encoding metrics failed");
            String::from("# EOF\n")
        })
    }

    pub(crate) fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// Awaits one metadata store operation and records how long it took
    /// (`alonzo_store_operation_duration_seconds{operation}`).
    pub(crate) async fn timed_store<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = T>,
    ) -> T {
        let began = std::time::Instant::now();
        let out = call.await;
        self.metrics().store_operation(operation, began.elapsed());
        out
    }

    /// Read access to the stored function logs (empty without a sandbox manager).
    pub fn log_store(&self) -> alonzo_sandbox::LogStore {
        match &self.inner.sandbox {
            Some(sandbox) => alonzo_sandbox::LogStore::new(sandbox.logs_dir()),
            None => alonzo_sandbox::LogStore::new(self.inner.config.tasks_dir.join("no-logs")),
        }
    }

    /// The sandbox manager, if this control plane runs functions.
    pub fn sandbox(&self) -> Option<&alonzo_sandbox::Manager> {
        self.inner.sandbox.as_ref()
    }

    /// Region and account used in ARNs.
    pub fn account(&self) -> &Account {
        &self.inner.config.account
    }

    /// Runtimes this host can run.
    pub fn runtimes(&self) -> &RuntimeCatalog {
        &self.inner.config.runtimes
    }

    /// Deletes stored packages that no record refers to.
    pub async fn collect_unreferenced_code(&self) -> Result<usize, ControlError> {
        self.collect_code(false).await
    }

    async fn collect_code(&self, startup: bool) -> Result<usize, ControlError> {
        let _gate = self.inner.code_gate.write().await;
        let referenced: std::collections::HashSet<String> =
            self.inner.meta.referenced_code().await?.into_iter().collect();
        let mut removed = 0;
        for hash in self.inner.blobs.list().await? {
            if !referenced.contains(&hash) {
                self.inner.blobs.delete(&hash).await?;
                removed += 1;
            }
        }
        self.remove_unpacked_except(&referenced, startup).await;
        if removed > 0 {
            tracing::info!(removed, "collected unreferenced code packages");
        }
        Ok(removed)
    }
}

/// Helpers for this crate's unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    /// A control plane over a fresh SQLite store and code store in `dir`, without sandboxes.
    pub(crate) async fn control_with_prices(
        dir: &std::path::Path,
        prices: crate::PriceTable,
    ) -> crate::Control {
        let meta = alonzo_store_sqlite::SqliteStore::open(&dir.join("meta.db")).unwrap();
        let blobs = alonzo_store::FsBlobStore::open(dir.join("code")).unwrap();
        let config = crate::ControlConfig {
            account: alonzo_model::Account {
                region: "us-east-1".into(),
                account_id: "000000000000".into(),
            },
            package_limits: crate::PackageLimits::default(),
            runtimes: crate::RuntimeCatalog::default(),
            concurrency_limit: 10,
            unreserved_minimum: 1,
            tasks_dir: dir.join("tasks"),
            async_retry_delay: std::time::Duration::from_secs(1),
            prices,
            networks: Default::default(),
            spans: None,
        };
        crate::Control::start(config, Arc::new(meta), Arc::new(blobs), None, None).await.unwrap()
    }
}

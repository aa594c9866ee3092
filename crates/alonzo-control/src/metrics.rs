//! Operational metrics: counters and histograms recorded where events happen (invocation
//! reports, throttles, the asynchronous queue, event source mappings), plus gauges computed at
//! scrape time (environments, concurrency, queue depths), encoded in the OpenMetrics text
//! format that Prometheus scrapes.
//!
//! The registry lives here, beside the events it counts, so that counts are exact (invocations
//! are counted from the same report that becomes the metering record); serving it over HTTP is
//! the binary's business. Every metric is documented in `docs/metrics.md`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::{InvocationReport, PoolStats};

/// Buckets of invocation and init durations, seconds (1 ms to Lambda's 15-minute timeout).
const DURATION_BUCKETS: [f64; 18] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    600.0, 900.0,
];
/// Buckets of asynchronous event age, seconds (100 ms to Lambda's 6-hour maximum).
const AGE_BUCKETS: [f64; 14] =
    [0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0];

/// Buckets of store operation durations, seconds (10 µs, cached reads, to 1 s).
const STORE_BUCKETS: [f64; 12] =
    [0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 0.25, 1.0];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InvocationLabels {
    function: String,
    version: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    function: String,
    version: String,
    error_type: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    function: String,
    version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FunctionLabels {
    function: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    function: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    function: String,
    destination: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MappingLabels {
    function: String,
    event_source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    function: String,
    version: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
    state: &'static str,
}

/// Builds histograms with fixed buckets.
#[derive(Debug, Clone, Copy)]
struct Buckets(&'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Messages of one queue at scrape time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    /// Queue name.
    pub queue: String,
    /// Available for retrieval.
    pub visible: u64,
    /// Received, not yet deleted, within their visibility timeout.
    pub in_flight: u64,
    /// Delayed, not yet visible.
    pub delayed: u64,
}

/// The event metrics of one server. Shared by every `Control` clone.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    invocations: Family<InvocationLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    throttles: Family<ReasonLabels, Counter>,
    duration: Family<VersionLabels, Histogram, Buckets>,
    init_duration: Family<VersionLabels, Histogram, Buckets>,
    async_received: Family<FunctionLabels, Counter>,
    async_dropped: Family<ReasonLabels, Counter>,
    async_age: Family<FunctionLabels, Histogram, Buckets>,
    dead_letter_errors: Family<FunctionLabels, Counter>,
    destination_failures: Family<DestinationLabels, Counter>,
    mapping_batches: Family<MappingLabels, Counter>,
    mapping_records: Family<MappingLabels, Counter>,
    mapping_failed_records: Family<MappingLabels, Counter>,
    mapping_lag: Family<MappingLabels, Histogram, Buckets>,
    store_duration: Family<StoreLabels, Histogram, Buckets>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every event metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let invocations = Family::default();
        registry.register(
            "alonzo_invocations",
            "Invocations that ran, by function, version that ran and outcome (success or error)",
            invocations.clone(),
        );
        let errors = Family::default();
        registry.register(
            "alonzo_errors",
            "Invocations that ended in a function or runtime error, by error type",
            errors.clone(),
        );
        let throttles = Family::default();
        registry.register(
            "alonzo_throttles",
            "Invocation requests refused for lack of concurrency, by throttle reason",
            throttles.clone(),
        );
        let duration = Family::new_with_constructor(Buckets(&DURATION_BUCKETS));
        registry.register(
            "alonzo_invocation_duration_seconds",
            "Duration of invocations, from event delivery to response, init excluded",
            duration.clone(),
        );
        let init_duration = Family::new_with_constructor(Buckets(&DURATION_BUCKETS));
        registry.register(
            "alonzo_init_duration_seconds",
            "Init phase of cold starts (provisioned environments report none)",
            init_duration.clone(),
        );
        let async_received = Family::default();
        registry.register(
            "alonzo_async_events_received",
            "Asynchronous events accepted into the durable queue",
            async_received.clone(),
        );
        let async_dropped = Family::default();
        registry.register(
            "alonzo_async_events_dropped",
            "Asynchronous events given up without a successful run, by reason",
            async_dropped.clone(),
        );
        let async_age = Family::new_with_constructor(Buckets(&AGE_BUCKETS));
        registry.register(
            "alonzo_async_event_age_seconds",
            "Age of asynchronous events when a worker runs them (every attempt)",
            async_age.clone(),
        );
        let dead_letter_errors = Family::default();
        registry.register(
            "alonzo_dead_letter_errors",
            "Failed attempts to send an event to its dead-letter queue",
            dead_letter_errors.clone(),
        );
        let destination_failures = Family::default();
        registry.register(
            "alonzo_destination_delivery_failures",
            "Failed attempts to deliver an invocation record to an OnSuccess/OnFailure destination",
            destination_failures.clone(),
        );
        let mapping_batches = Family::default();
        registry.register(
            "alonzo_event_source_batches",
            "Batches an event source mapping passed to its function",
            mapping_batches.clone(),
        );
        let mapping_records = Family::default();
        registry.register(
            "alonzo_event_source_records",
            "Records an event source mapping passed to its function",
            mapping_records.clone(),
        );
        let mapping_failed_records = Family::default();
        registry.register(
            "alonzo_event_source_failed_records",
            "Records whose batch failed or that the function reported as failed",
            mapping_failed_records.clone(),
        );
        let mapping_lag = Family::new_with_constructor(Buckets(&AGE_BUCKETS));
        registry.register(
            "alonzo_event_source_lag_seconds",
            "Age of each record an event source mapping passes to its function (SQS: since SentTimestamp)",
            mapping_lag.clone(),
        );
        let store_duration = Family::new_with_constructor(Buckets(&STORE_BUCKETS));
        registry.register(
            "alonzo_store_operation_duration_seconds",
            "Metadata store operations on the invocation and asynchronous paths",
            store_duration.clone(),
        );
        Self {
            registry,
            mapping_lag,
            store_duration,
            invocations,
            errors,
            throttles,
            duration,
            init_duration,
            async_received,
            async_dropped,
            async_age,
            dead_letter_errors,
            destination_failures,
            mapping_batches,
            mapping_records,
            mapping_failed_records,
        }
    }

    /// Counts one finished invocation from its report.
    pub(crate) fn record_report(&self, report: &InvocationReport) {
        let outcome = if report.error_type.is_some() { "error" } else { "success" };
        self.invocations
            .get_or_create(&InvocationLabels {
                function: report.function.clone(),
                version: report.version.clone(),
                outcome,
            })
            .inc();
        if let Some(error_type) = &report.error_type {
            self.errors
                .get_or_create(&ErrorLabels {
                    function: report.function.clone(),
                    version: report.version.clone(),
                    error_type: error_type.clone(),
                })
                .inc();
        }
        let version =
            VersionLabels { function: report.function.clone(), version: report.version.clone() };
        self.duration.get_or_create(&version).observe(report.duration_ms / 1000.0);
        if let Some(init_ms) = report.init_ms {
            self.init_duration.get_or_create(&version).observe(init_ms / 1000.0);
        }
    }

    /// Counts one throttled invocation request.
    pub(crate) fn throttled(&self, function: &str, reason: &str) {
        self.throttles
            .get_or_create(&ReasonLabels {
                function: function.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one asynchronous event accepted.
    pub(crate) fn async_received(&self, function: &str) {
        self.async_received.get_or_create(&FunctionLabels { function: function.to_owned() }).inc();
    }

    /// Counts one asynchronous event given up.
    pub(crate) fn async_dropped(&self, function: &str, reason: &str) {
        self.async_dropped
            .get_or_create(&ReasonLabels {
                function: function.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Observes the age of an asynchronous event about to run.
    pub(crate) fn async_age(&self, function: &str, age_ms: i64) {
        #[allow(clippy::cast_precision_loss)]
        let seconds = age_ms.max(0) as f64 / 1000.0;
        self.async_age
            .get_or_create(&FunctionLabels { function: function.to_owned() })
            .observe(seconds);
    }

    /// Counts one failed send to a dead-letter queue.
    pub(crate) fn dead_letter_error(&self, function: &str) {
        self.dead_letter_errors
            .get_or_create(&FunctionLabels { function: function.to_owned() })
            .inc();
    }

    /// Counts one failed destination delivery (`destination` is `lambda` or `sqs`).
    pub(crate) fn destination_failure(&self, function: &str, destination: &str) {
        self.destination_failures
            .get_or_create(&DestinationLabels {
                function: function.to_owned(),
                destination: destination.to_owned(),
            })
            .inc();
    }

    /// Counts one batch of an event source mapping and its records, `failed` of which failed.
    pub(crate) fn mapping_batch(
        &self,
        function: &str,
        event_source: &str,
        records: usize,
        failed: usize,
    ) {
        let labels =
            MappingLabels { function: function.to_owned(), event_source: event_source.to_owned() };
        self.mapping_batches.get_or_create(&labels).inc();
        self.mapping_records.get_or_create(&labels).inc_by(records as u64);
        self.mapping_failed_records.get_or_create(&labels).inc_by(failed as u64);
    }

    /// Observes the age of the records of one batch, seconds each.
    pub(crate) fn mapping_lag(&self, function: &str, event_source: &str, ages: &[f64]) {
        let labels =
            MappingLabels { function: function.to_owned(), event_source: event_source.to_owned() };
        let histogram = self.mapping_lag.get_or_create(&labels);
        for age in ages {
            histogram.observe(age.max(0.0));
        }
    }

    /// Observes one store operation's duration.
    pub(crate) fn store_operation(&self, operation: &'static str, elapsed: std::time::Duration) {
        self.store_duration
            .get_or_create(&StoreLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// The whole exposition: event metrics, then the live figures of `pool` and `queues`,
    /// ending with OpenMetrics' `# EOF`.
    pub fn encode(
        &self,
        pool: Option<&PoolStats>,
        queues: &[QueueDepth],
    ) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &scrape_registry(pool, queues))?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// Gauges computed now; a fresh registry per scrape, so functions and queues that are gone
/// disappear from the exposition.
fn scrape_registry(pool: Option<&PoolStats>, queues: &[QueueDepth]) -> Registry {
    let mut registry = Registry::default();
    let concurrent: Family<FunctionLabels, Gauge> = Family::default();
    let environments: Family<StateLabels, Gauge> = Family::default();
    let provisioned: Family<VersionLabels, Gauge> = Family::default();
    let utilization: Family<VersionLabels, Gauge<f64, AtomicU64>> = Family::default();
    let keep_alive: Family<VersionLabels, Gauge<f64, AtomicU64>> = Family::default();
    let reserved: Family<FunctionLabels, Gauge> = Family::default();
    let account_busy: Gauge = Gauge::default();
    let account_limit: Gauge = Gauge::default();
    if let Some(pool) = pool {
        account_busy.set(i64::from(pool.busy));
        account_limit.set(i64::from(pool.concurrency_limit));
        for v in &pool.versions {
            let function = FunctionLabels { function: v.function.clone() };
            concurrent.get_or_create(&function).inc_by(i64::from(v.busy));
            let state = |state| StateLabels {
                function: v.function.clone(),
                version: v.version.clone(),
                state,
            };
            let provisioned_busy = v.provisioned.saturating_sub(v.provisioned_idle);
            environments.get_or_create(&state("busy")).set(i64::from(v.busy));
            environments.get_or_create(&state("idle")).set(i64::from(v.idle));
            environments.get_or_create(&state("provisioned")).set(i64::from(v.provisioned));
            let version =
                VersionLabels { function: v.function.clone(), version: v.version.clone() };
            keep_alive.get_or_create(&version).set(v.keep_alive_ms as f64 / 1000.0);
            if v.provisioned > 0 {
                provisioned.get_or_create(&version).set(i64::from(v.provisioned));
                utilization
                    .get_or_create(&version)
                    .set(f64::from(provisioned_busy) / f64::from(v.provisioned));
            }
        }
        for (function, n) in &pool.reserved {
            reserved
                .get_or_create(&FunctionLabels { function: function.clone() })
                .set(i64::from(*n));
        }
    }
    registry.register(
        "alonzo_account_concurrent_executions",
        "Invocations running now, account-wide",
        account_busy,
    );
    registry.register(
        "alonzo_account_concurrency_limit",
        "Account-wide concurrency limit",
        account_limit,
    );
    registry.register(
        "alonzo_concurrent_executions",
        "Invocations running now, per function",
        concurrent,
    );
    registry.register(
        "alonzo_environments",
        "Execution environments by state: busy (running an invocation), idle (warm on-demand), provisioned (provisioned concurrency, idle or busy)",
        environments,
    );
    registry.register(
        "alonzo_provisioned_environments",
        "Initialised provisioned-concurrency environments per version",
        provisioned,
    );
    registry.register(
        "alonzo_provisioned_concurrency_utilization",
        "Share (0 to 1) of a version's provisioned environments running an invocation now",
        utilization,
    );
    registry.register("alonzo_reserved_concurrency", "Reserved concurrency per function", reserved);
    registry.register(
        "alonzo_keep_alive_seconds",
        "How long an idle on-demand environment of a version is kept now (--keep-alive-policy)",
        keep_alive,
    );
    let depth: Family<QueueLabels, Gauge> = Family::default();
    for q in queues {
        for (state, n) in
            [("visible", q.visible), ("in_flight", q.in_flight), ("delayed", q.delayed)]
        {
            depth
                .get_or_create(&QueueLabels { queue: q.queue.clone(), state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    registry.register(
        "alonzo_queue_messages",
        "Messages of each built-in queue by state (SQS's ApproximateNumberOfMessages, …NotVisible, …Delayed)",
        depth,
    );
    registry
}

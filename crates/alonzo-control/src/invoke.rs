//! Invocation: synchronous (`RequestResponse`) through the sandbox manager, asynchronous
//! (`Event`) through the durable queue and its workers, and `DryRun`; plus the metering sink
//! that stores every invocation's report.

use std::sync::Arc;
use std::time::Duration;

use alonzo_model::{
    AsyncEvent, FunctionConfig, FunctionRecord, FunctionState, InvocationRecord, Qualifier,
    ValidationError, LATEST,
};
use alonzo_sandbox::{FunctionSpec, InvocationReport, InvokeOutcome, InvokeRequest, SandboxError};
use bytes::Bytes;

use crate::{Control, ControlError};

/// How the caller wants the function run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvocationType {
    /// Wait for the result.
    RequestResponse,
    /// Queue durably and return.
    Event,
    /// Check everything, run nothing.
    DryRun,
}

/// Input of `Invoke`.
#[derive(Debug, Clone)]
pub struct InvokeInput {
    /// The invocation's request id (the API request's id, as on Lambda).
    pub request_id: String,
    /// How to run it.
    pub invocation_type: InvocationType,
    /// Event bytes (JSON).
    pub payload: Bytes,
    /// `X-Amz-Log-Type: Tail`.
    pub log_tail: bool,
    /// Base64 client context from `X-Amz-Client-Context`.
    pub client_context_b64: Option<String>,
    /// `X-Amzn-Trace-Id`.
    pub trace_id: Option<String>,
    /// The caller reads a streamed response as it is produced (`InvokeWithResponseStream`,
    /// `RESPONSE_STREAM` function URLs): a runtime's streamed response then arrives as
    /// [`InvokeOutcome::stream`] instead of one buffered body.
    pub stream: bool,
}

/// Result of `Invoke`.
#[derive(Debug)]
pub enum InvokeResult {
    /// The function ran (successfully or not).
    Completed(InvokeOutcome),
    /// The event was durably queued under this request id.
    Queued {
        /// Request id of the asynchronous invocation.
        request_id: String,
    },
    /// A dry run passed.
    DryRun,
}

/// How long metering records wait to share a commit with the next ones, at most.
const METERING_WINDOW: Duration = Duration::from_millis(10);

/// Specifications kept at most by [`Control::function_spec`]'s cache.
const SPEC_CACHE_MAX: usize = 4096;

/// Largest asynchronous payload (Lambda: 1 MB since 2025).
pub const ASYNC_PAYLOAD_LIMIT: usize = 1_048_576;

impl Control {
    /// `Invoke`.
    pub async fn invoke(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
        input: InvokeInput,
    ) -> Result<InvokeResult, ControlError> {
        let (name, qualifier) = self.resolve(function_name, qualifier)?;
        let (record, invoked_arn) = self.pick(&name, qualifier.as_ref()).await?;
        check_payload(&input.payload)?;
        let client_context = decode_client_context(input.client_context_b64.as_deref())?;
        // Lambda traces every invocation: without a caller's header, it starts a trace.
        let trace_id = Some(input.trace_id.unwrap_or_else(|| {
            if self.inner.config.spans.is_some() {
                // The platform's span is the trace's root: no phantom parent.
                crate::trace::new_trace_root()
            } else {
                crate::trace::new_trace_id()
            }
        }));
        match input.invocation_type {
            InvocationType::DryRun => Ok(InvokeResult::DryRun),
            InvocationType::Event => {
                if input.payload.len() > ASYNC_PAYLOAD_LIMIT {
                    return Err(ControlError::TooLarge {
                        limit: ASYNC_PAYLOAD_LIMIT,
                        operation: "Invoke",
                    });
                }
                let event = AsyncEvent {
                    id: input.request_id,
                    function: name,
                    qualifier: qualifier.map(|q| q.as_string()).unwrap_or_default(),
                    payload: input.payload.to_vec(),
                    received_ms: chrono::Utc::now().timestamp_millis(),
                    attempts: 0,
                    trace_id,
                    system_attempts: 0,
                    last_failure: None,
                    outcome: None,
                };
                let queued = self.inner.meta.enqueue_event(&event, event.received_ms);
                self.timed_store("enqueue_event", queued).await?;
                self.metrics().async_received(&event.function);
                self.inner.async_wakeup.notify_one();
                Ok(InvokeResult::Queued { request_id: event.id })
            }
            InvocationType::RequestResponse => {
                let request = InvokeRequest {
                    request_id: input.request_id,
                    payload: input.payload,
                    invoked_arn,
                    client_context,
                    trace_id,
                    caller_parent: None,
                    log_tail: input.log_tail,
                    stream: input.stream,
                };
                let outcome = self.run(&record, request).await?;
                Ok(InvokeResult::Completed(outcome))
            }
        }
    }

    /// The record an invocation of `name` with `qualifier` runs (an alias picks one of its
    /// versions by weight), and the ARN the runtime is told it was invoked as.
    pub(crate) async fn pick(
        &self,
        name: &str,
        qualifier: Option<&Qualifier>,
    ) -> Result<(FunctionRecord, String), ControlError> {
        let version = match qualifier {
            None => LATEST.to_owned(),
            Some(Qualifier::Alias(alias)) => {
                let alias = self.load_alias(name, alias).await?;
                alias.pick_version(rand::random::<f64>()).to_owned()
            }
            Some(other) => other.as_string(),
        };
        let record = self.runnable(name, &version).await?;
        let invoked_arn = match qualifier {
            None => self.account().function_arn(name),
            Some(q) => self.account().qualified_function_arn(name, &q.as_string()),
        };
        Ok((record, invoked_arn))
    }

    /// The record to run, if it can run now.
    async fn runnable(&self, name: &str, version: &str) -> Result<FunctionRecord, ControlError> {
        let record = self.get_function(name, Some(version)).await?.record;
        match record.state {
            FunctionState::Active => Ok(record),
            FunctionState::Pending => Err(ControlError::Conflict(
                "The operation cannot be performed at this time. The function is currently in the following state: Pending".into(),
            )),
            FunctionState::Failed => Err(ControlError::Conflict(format!(
                "Lambda is unable to invoke the function because it is in the Failed state: {}",
                record.state_reason.unwrap_or_default()
            ))),
        }
    }

    /// Runs one invocation in a sandbox.
    pub(crate) async fn run(
        &self,
        record: &FunctionRecord,
        mut request: InvokeRequest,
    ) -> Result<InvokeOutcome, ControlError> {
        let sandbox = self.inner.sandbox.as_ref().ok_or(ControlError::Unavailable)?;
        if self.inner.config.spans.is_some() {
            // The runtime's `Parent` names the platform's `Invoke` span, so that what the
            // function traces nests under it, as on Lambda.
            if let Some((header, caller)) =
                request.trace_id.as_deref().and_then(crate::spans::for_runtime)
            {
                request.trace_id = Some(header);
                request.caller_parent = caller;
            }
        }
        let spec = self.function_spec(record).await?;
        sandbox.invoke(spec, request).await.map_err(|e| match e {
            SandboxError::Throttled(reason) => {
                self.metrics().throttled(&record.name, reason.as_str());
                ControlError::Throttled { reason: reason.as_str() }
            }
            other => {
                tracing::error!(function = %record.name, error = %other, "cannot run the function");
                ControlError::Unavailable
            }
        })
    }

    /// The sandbox specification of `record`, from the cache while its `RevisionId` holds
    /// (every change of code or configuration gives a new one).
    pub(crate) async fn function_spec(
        &self,
        record: &FunctionRecord,
    ) -> Result<Arc<FunctionSpec>, ControlError> {
        let key = (record.name.clone(), record.version.clone());
        if let Some(hit) = self.inner.specs.lock().ok().and_then(|specs| specs.get(&key).cloned()) {
            if hit.revision_id == record.revision_id {
                return Ok(hit);
            }
        }
        let spec = Arc::new(self.build_function_spec(record).await?);
        if let Ok(mut specs) = self.inner.specs.lock() {
            if specs.len() >= SPEC_CACHE_MAX {
                specs.clear();
            }
            specs.insert(key, Arc::clone(&spec));
        }
        Ok(spec)
    }

    async fn build_function_spec(
        &self,
        record: &FunctionRecord,
    ) -> Result<FunctionSpec, ControlError> {
        let config = &record.config;
        let runtime_kind = self.runtimes().get(&config.runtime).cloned().ok_or_else(|| {
            ControlError::Invalid(ValidationError::param(format!(
                "Runtime {} is not available on this host.",
                config.runtime
            )))
        })?;
        let code_dir = self.unpacked_code(&record.code.sha256_hex).await?;
        let opt_dir = self.opt_dir(&config.layer_code).await?;
        Ok(FunctionSpec {
            name: record.name.clone(),
            version: record.version.clone(),
            revision_id: record.revision_id.clone(),
            runtime: config.runtime.clone(),
            runtime_kind,
            handler: config.handler.clone(),
            memory_mb: config.memory_size,
            timeout_s: config.timeout,
            ephemeral_mb: config.ephemeral_storage,
            environment: config.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            code_dir,
            opt_dir,
            log_group: config.logging.log_group.clone(),
            log_format: config.logging.log_format.clone(),
            application_log_level: config.logging.application_log_level.clone(),
            system_log_level: config.logging.system_log_level.clone(),
            region: self.account().region.clone(),
            network: self.network_of(config)?,
        })
    }

    /// The operator network `config.vpc` selects (`None`: the default network). A network
    /// the operator has since removed fails the invocation.
    fn network_of(&self, config: &FunctionConfig) -> Result<Option<String>, ControlError> {
        let Some(vpc) = &config.vpc else { return Ok(None) };
        let network = self
            .inner
            .config
            .networks
            .resolve(&vpc.subnet_ids, &vpc.security_group_ids)
            .map_err(|why| ControlError::Invalid(ValidationError::param(why)))?;
        Ok(network.map(|n| n.name.clone()))
    }

    /// Stores the metering record of every finished invocation, in batches.
    pub(crate) async fn record_reports(
        self,
        mut reports: tokio::sync::mpsc::UnboundedReceiver<InvocationReport>,
    ) {
        let mut batch = Vec::new();
        let mut last_commit: Option<tokio::time::Instant> = None;
        while let Some(first) = reports.recv().await {
            // Under steady traffic, records of the next few milliseconds share one commit
            // (one fsync) instead of one each; an invocation after a quiet spell is stored
            // at once.
            if let Some(since) = last_commit.map(|t| t.elapsed()) {
                if since < METERING_WINDOW {
                    tokio::time::sleep(METERING_WINDOW - since).await;
                }
            }
            let mut spans = Vec::new();
            for report in
                std::iter::once(first).chain(std::iter::from_fn(|| reports.try_recv().ok()))
            {
                self.metrics().record_report(&report);
                if self.inner.config.spans.is_some() {
                    spans.extend(
                        crate::spans::invocation_spans(&report, self.account()).unwrap_or_default(),
                    );
                }
                batch.push(to_record(report));
            }
            if let (Some(sink), false) = (&self.inner.config.spans, spans.is_empty()) {
                sink.export(spans);
            }
            let stored = self.inner.meta.record_invocations(&batch);
            if let Err(e) = self.timed_store("record_invocations", stored).await {
                tracing::warn!(error = %e, records = batch.len(), "storing metering records failed");
            }
            last_commit = Some(tokio::time::Instant::now());
            batch.clear();
        }
    }
}

fn to_record(r: InvocationReport) -> InvocationRecord {
    InvocationRecord {
        request_id: r.request_id,
        function: r.function,
        version: r.version,
        started_ms: r.started_at.timestamp_millis(),
        duration_ms: r.duration_ms,
        billed_ms: r.billed_ms,
        memory_mb: r.memory_mb,
        init_ms: r.init_ms,
        error_type: r.error_type,
        ephemeral_mb: r.ephemeral_mb,
        provisioned: r.provisioned,
    }
}

/// The payload must be JSON (an empty body is allowed: the AWS CLI sends one).
fn check_payload(payload: &[u8]) -> Result<(), ControlError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(payload).map(|_| ()).map_err(|e| {
        ControlError::InvalidContent(format!("Could not parse request body into json: {e}"))
    })
}

/// `X-Amz-Client-Context`: base64 of a JSON object, handed to the runtime decoded.
fn decode_client_context(b64: Option<&str>) -> Result<Option<String>, ControlError> {
    use base64::Engine;
    let Some(b64) = b64.filter(|s| !s.is_empty()) else { return Ok(None) };
    let invalid = || {
        ControlError::InvalidContent(
            "Client context must be a valid Base64-encoded JSON object.".into(),
        )
    };
    if b64.len() > 3583 {
        return Err(ControlError::Invalid(ValidationError::param(
            "Client context must be at most 3583 bytes of base64.",
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| invalid())?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if !value.is_object() {
        return Err(invalid());
    }
    Ok(Some(value.to_string()))
}

/// Backoff of an asynchronous event after throttling or a platform error: 1 s doubling to 5 min.
pub(crate) fn system_backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(8)).min(Duration::from_secs(300))
}

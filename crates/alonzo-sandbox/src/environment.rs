//! One execution environment: a sandboxed runtime process with its Runtime API, its cgroup
//! and its log stream, started cold, then driven one invocation at a time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alonzo_jail::cgroup::SandboxCgroup;
use alonzo_jail::{Assignment, JailSpec, Program};

use crate::prepared::{PreparedSandbox, Template, TemplateKind};
use crate::runtimes::RuntimeKind;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::logs::{self, LogCommand, LogStream};
use crate::platform_log::{PlatformLog, Status};
use crate::runtime_api::{self, Event, RuntimeChannel, RuntimeMessage, StreamItem};
use crate::{rootfs, FunctionSpec, InvokeRequest, Manager, SandboxError};

/// How long a runtime may take to initialise (Lambda: 10 s for on-demand environments).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long after its response a runtime may take to ask for the next event before the
/// invocation's closing log lines are written anyway.
const NEXT_GRACE: Duration = Duration::from_secs(2);

/// How the runtime process ended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExitInfo {
    /// The exit code the jail reported (128 + signal for a signal).
    pub(crate) code: i32,
}

impl ExitInfo {
    fn describe(self) -> String {
        if self.code > 128 {
            let name = match self.code - 128 {
                9 => "killed".to_owned(),
                6 => "aborted".to_owned(),
                11 => "segmentation fault".to_owned(),
                15 => "terminated".to_owned(),
                n => format!("signal {n}"),
            };
            format!("signal: {name}")
        } else {
            format!("exit status {}", self.code)
        }
    }
}

/// A running environment.
#[derive(Debug)]
pub(crate) struct Environment {
    pub(crate) id: String,
    pub(crate) spec: Arc<FunctionSpec>,
    channel: RuntimeChannel,
    api_task: tokio::task::JoinHandle<()>,
    logs: mpsc::UnboundedSender<LogCommand>,
    /// Renders the platform's log records in the function's log format.
    platform: PlatformLog,
    exit: watch::Receiver<Option<ExitInfo>>,
    cgroup: Option<Arc<SandboxCgroup>>,
    /// Process group of a runtime started without isolation (development mode).
    pgid: Option<u32>,
    root_dir: PathBuf,
    /// Init duration, reported on the first invocation only.
    pending_init: Option<Duration>,
    pub(crate) last_used: Instant,
    /// Initialised ahead of demand for provisioned concurrency: never reclaimed when idle,
    /// and its first invocation reports no `Init Duration`.
    pub(crate) provisioned: bool,
}

/// How many chunks of a streamed response may wait for a slow caller before the runtime is
/// slowed down.
const STREAM_BUFFER: usize = 16;

/// The result of one invocation as the caller sees it.
#[derive(Debug)]
pub struct InvokeOutcome {
    /// Response or error body (empty when the response is [`InvokeOutcome::stream`]ed).
    pub body: Bytes,
    /// `Some("Unhandled")` when the function failed.
    pub function_error: Option<String>,
    /// Error type, for metering and logs.
    pub error_type: Option<String>,
    /// Last 4 KB of the invocation's log, when requested.
    pub log_tail: Option<String>,
    /// Version that ran.
    pub executed_version: String,
    /// The response, when the runtime streams it and the caller asked for a stream
    /// ([`crate::InvokeRequest::stream`]); this outcome is then sent as soon as the stream
    /// starts, and how the invocation ended follows on [`ResponseStream::end`].
    pub stream: Option<ResponseStream>,
}

/// A response the runtime is streaming.
#[derive(Debug)]
pub struct ResponseStream {
    /// The `Content-Type` the runtime declared (`application/vnd.awslambda.http-integration-response`
    /// when the stream starts with an HTTP status and headers prelude for a function URL).
    pub content_type: Option<String>,
    /// The chunks, in order, as the runtime writes them; closed at the end of the stream.
    pub chunks: mpsc::Receiver<Bytes>,
    /// How the invocation ended, once the last chunk is sent: `function_error` and `body`
    /// describe a failure (mid-stream error, timeout, crash, size limit), `log_tail` is set
    /// when it was asked for; `stream` is `None`.
    pub end: oneshot::Receiver<InvokeOutcome>,
}

/// What one invocation cost, for metering and `REPORT`.
#[derive(Debug, Clone)]
pub struct InvocationReport {
    /// Request id.
    pub request_id: String,
    /// Function name.
    pub function: String,
    /// Version that ran.
    pub version: String,
    /// Event delivery to response, ms.
    pub duration_ms: f64,
    /// Billed ms (init included, rounded up to 1 ms).
    pub billed_ms: u64,
    /// Configured memory, MB.
    pub memory_mb: u32,
    /// Configured `/tmp` size (`EphemeralStorage.Size`), MB.
    pub ephemeral_mb: u32,
    /// Whether it ran on an environment initialised for provisioned concurrency.
    pub provisioned: bool,
    /// Peak memory of the environment, MB.
    pub max_memory_used_mb: u64,
    /// Init duration if this was a cold start, ms.
    pub init_ms: Option<f64>,
    /// Error type if the invocation failed.
    pub error_type: Option<String>,
    /// When the invocation started.
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The invocation's X-Ray trace header, as the runtime got it.
    pub trace_id: Option<String>,
    /// The caller's parent span id, from [`crate::InvokeRequest::caller_parent`].
    pub caller_parent: Option<String>,
}

/// How an invocation ended, from the driver's point of view.
enum Ending {
    Response(Bytes),
    /// The runtime started streaming its response (not a final state: it is pumped to its
    /// end by [`Environment::pump`]).
    Stream {
        content_type: Option<String>,
        items: mpsc::Receiver<StreamItem>,
    },
    FunctionError {
        error_type: String,
        body: Bytes,
    },
    /// The environment cannot be reused (timeout, crash, too-large response).
    Fatal {
        error_type: String,
        message: String,
        log_line: Option<String>,
    },
}

impl Environment {
    /// Starts a sandbox for `spec` and waits for its runtime to finish initialising.
    /// An init failure is returned as an outcome for the invocation that triggered it.
    pub(crate) async fn start(
        manager: &Manager,
        spec: Arc<FunctionSpec>,
        provisioned: bool,
    ) -> Result<Result<Self, InitFailure>, SandboxError> {
        let init_type = if provisioned { "provisioned-concurrency" } else { "on-demand" };
        // Waiting for a turn is not initialisation: `Init Duration` starts after it.
        let _turn = manager.inner.start_permits.acquire().await;
        let started = Instant::now();
        let _starting = manager.inner.starting.enter();
        let stream = LogStream::create(&manager.inner.logs_dir, &spec.log_group, &spec.version)
            .map_err(SandboxError::io("creating the log stream"))?;
        // A sandbox built ahead when one is waiting (see prepared.rs), else for a Python
        // function one forked from its interpreter's zygote (zygote.rs), else a new one.
        let ahead =
            if manager.inner.isolation { take_built_ahead(manager, &spec).await } else { None };
        let (id, cgroup, root_dir, spawned) = match ahead {
            Some(ahead) => {
                let env = rootfs::environment(&spec, &stream.name, init_type, &ahead.network_env);
                match assign(manager, &spec, &env, ahead).await {
                    Ok(started) => started,
                    Err(e) => {
                        tracing::warn!(error = %e, "a sandbox built ahead failed; starting one afresh");
                        spawn_fresh(manager, &spec, &stream.name, init_type).await?
                    }
                }
            }
            None if manager.inner.isolation => {
                spawn_fresh(manager, &spec, &stream.name, init_type).await?
            }
            None => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let root_dir = manager.inner.sandboxes_dir.join(&id);
                std::fs::create_dir_all(&root_dir)
                    .map_err(SandboxError::io("creating the sandbox root"))?;
                let spawned =
                    crate::unisolated::spawn(&manager.inner.files, &spec, &stream.name, init_type)?;
                (id, None, root_dir, spawned)
            }
        };
        tracing::debug!(id = %id, elapsed_us = started.elapsed().as_micros() as u64, "sandbox started");
        let pgid = (!manager.inner.isolation).then(|| spawned.child.id());
        spawned
            .runtime_api
            .set_nonblocking(true)
            .map_err(SandboxError::io("configuring the Runtime API listener"))?;
        let listener = tokio::net::TcpListener::from_std(spawned.runtime_api)
            .map_err(SandboxError::io("registering the Runtime API listener"))?;
        let (channel, api_task) = runtime_api::serve(listener);
        let platform = PlatformLog::new(&spec);
        let logs = logs::spawn(
            &stream,
            spawned.stdout,
            spawned.stderr,
            manager.inner.log_limits,
            platform.clone(),
        )
        .map_err(SandboxError::io("capturing logs"))?;
        let exit = watch_exit(spawned.child, spawned.slot);
        if let Some(line) = platform.init_start(init_type) {
            let _ = logs.send(LogCommand::Platform(line));
        }
        let mut env = Self {
            id,
            spec,
            channel,
            api_task,
            logs,
            platform,
            exit,
            cgroup: cgroup.map(Arc::new),
            pgid,
            root_dir,
            pending_init: None,
            last_used: Instant::now(),
            provisioned,
        };
        match env.wait_init().await {
            Ok(()) => {
                let init = started.elapsed();
                // Init ran with at least one core; from now on the function gets Lambda's
                // share for its memory size. Written on the blocking pool (two CPU bandwidth
                // writes, each walking every CPU cgroup), not awaited: the first invocation
                // may start a fraction of a millisecond before the lower quota holds.
                if let Some(cgroup) = env.cgroup.clone() {
                    let quota = crate::steady_cpu_quota_us(&env.spec);
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = cgroup.set_cpu_quota(quota) {
                            tracing::warn!(error = %e, "cannot lower the CPU quota after init");
                        }
                    });
                }
                env.platform_line(env.platform.init_runtime_done(init_type));
                if provisioned {
                    // Initialised before any request: its invocations are never cold.
                    let ms = init.as_secs_f64() * 1000.0;
                    env.platform_line(env.platform.init_report(init_type, ms, None));
                } else {
                    env.pending_init = Some(init);
                }
                Ok(Ok(env))
            }
            Err(failure) => {
                let failure = InitFailure { init: started.elapsed(), ..failure };
                let ms = failure.init.as_secs_f64() * 1000.0;
                let line = env.platform.init_report(init_type, ms, Some(&failure.error_type));
                env.platform_line(line);
                env.destroy();
                Ok(Err(failure))
            }
        }
    }

    /// Sends a platform record to the log, unless the system log level filtered it out.
    fn platform_line(&self, line: Option<String>) {
        if let Some(line) = line {
            let _ = self.logs.send(LogCommand::Platform(line));
        }
    }

    /// Waits for the runtime's first `GET /next`.
    async fn wait_init(&mut self) -> Result<(), InitFailure> {
        let deadline = tokio::time::Instant::now() + INIT_TIMEOUT;
        let mut exit = self.exit.clone();
        let messages = &mut self.channel.messages;
        loop {
            tokio::select! {
                // Messages first: a runtime posts its init error (queued before its request is
                // answered) and then exits at once, so both can be ready together.
                biased;
                msg = messages.recv() => match msg {
                    Some(RuntimeMessage::Ready) => return Ok(()),
                    Some(RuntimeMessage::InitError { error_type, body }) => {
                        // The runtime exits after reporting; give it a moment so its last
                        // words reach the log.
                        let mut exit_now = self.exit.clone();
                        let _ = tokio::time::timeout(Duration::from_millis(200), wait_exit(&mut exit_now)).await;
                        return Err(InitFailure::new(error_type, body));
                    }
                    Some(_) => continue,
                    None => return Err(InitFailure::exited("Runtime.ExitError", "Runtime API closed")),
                },
                info = wait_exit(&mut exit) => {
                    let (error_type, how) = exit_reason(self.cgroup.as_deref(), info);
                    return Err(InitFailure::exited(&error_type, &format!("Runtime exited with error: {how}")));
                }
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(InitFailure::exited("Runtime.Unknown", &format!("Init timed out after {:.2} seconds", INIT_TIMEOUT.as_secs_f64())));
                }
            }
        }
    }

    /// Runs one invocation. `reply` receives the outcome as soon as it is known (or, with
    /// `Tail`, once the closing log lines are written). Returns whether the environment can
    /// serve another invocation, and the report.
    pub(crate) async fn invoke(
        &mut self,
        req: InvokeRequest,
        reply: oneshot::Sender<InvokeOutcome>,
        answered: impl FnOnce(),
    ) -> (bool, InvocationReport) {
        let spec = Arc::clone(&self.spec);
        let started_at = chrono::Utc::now();
        let timeout = Duration::from_secs(u64::from(spec.timeout_s));
        let deadline_ms =
            started_at.timestamp_millis() + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let _ = self.logs.send(LogCommand::BeginTail);
        self.platform_line(self.platform.start(&req.request_id));
        let event = Event {
            request_id: req.request_id.clone(),
            deadline_ms,
            invoked_arn: req.invoked_arn.clone(),
            trace_id: req.trace_id.clone(),
            client_context: req.client_context.clone(),
            cognito_identity: None,
            payload: req.payload.clone(),
        };
        let began = Instant::now();
        let deadline = began + timeout;
        let mut ending = if self.channel.events.send(event).await.is_err() {
            Ending::Fatal {
                error_type: "Runtime.ExitError".into(),
                message: "Runtime API closed".into(),
                log_line: None,
            }
        } else {
            self.await_ending(&req.request_id, deadline, timeout).await
        };
        let mut reply = Some(reply);
        if let Ending::Stream { content_type, items } = ending {
            ending = if req.stream {
                // The caller reads the stream: it gets the outcome now, the end later.
                let (chunks_tx, chunks) = mpsc::channel(STREAM_BUFFER);
                let (end_tx, end) = oneshot::channel();
                let start = InvokeOutcome {
                    body: Bytes::new(),
                    function_error: None,
                    error_type: None,
                    log_tail: None,
                    executed_version: spec.version.clone(),
                    stream: Some(ResponseStream { content_type, chunks, end }),
                };
                if let Some(reply) = reply.replace(end_tx) {
                    let _ = reply.send(start);
                }
                let limit = runtime_api::MAX_STREAM_BYTES;
                self.pump(&req.request_id, items, Some(chunks_tx), limit, deadline, timeout).await
            } else {
                let limit = runtime_api::MAX_RESPONSE_BYTES;
                self.pump(&req.request_id, items, None, limit, deadline, timeout).await
            };
        }
        let duration = began.elapsed();
        let reusable = !matches!(ending, Ending::Fatal { .. });
        let status = match &ending {
            Ending::Fatal { error_type, .. } if error_type == "Sandbox.Timedout" => Status::Timeout,
            Ending::Fatal { .. } | Ending::Stream { .. } => Status::Error,
            Ending::FunctionError { .. } => Status::Failure,
            Ending::Response(_) => Status::Success,
        };
        let (outcome, fatal_line) = self.outcome(&req.request_id, ending);
        let error_type = outcome.error_type.clone();
        // Without a log tail to collect, the caller gets its answer at once; the rest (the
        // runtime asking for its next event, the closing log lines) happens off its path.
        let held = if req.log_tail {
            Some(outcome)
        } else {
            if let Some(reply) = reply.take() {
                let _ = reply.send(outcome);
            }
            answered();
            None
        };
        if reusable {
            // The invocation ends when the runtime asks for the next event.
            self.await_ready(began + timeout.max(NEXT_GRACE)).await;
        }
        let report = self.report(&req, duration, error_type, started_at);
        let mut lines = Vec::new();
        lines.extend(fatal_line.and_then(|line| self.platform.fatal(line)));
        lines.extend(self.platform.end(&report, status));
        lines.extend(self.platform.report(&report, status));
        let (tail_tx, tail_rx) = oneshot::channel();
        let _ = self.logs.send(LogCommand::Finish { lines, reply: tail_tx });
        if let (Some(reply), Some(outcome)) = (reply, held) {
            let tail = tail_rx.await.unwrap_or_default();
            let _ = reply.send(InvokeOutcome { log_tail: Some(tail), ..outcome });
        }
        self.last_used = Instant::now();
        (reusable, report)
    }

    async fn await_ending(
        &mut self,
        request_id: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Ending {
        let mut exit = self.exit.clone();
        let messages = &mut self.channel.messages;
        let cgroup = self.cgroup.as_deref();
        let pgid = self.pgid;
        loop {
            tokio::select! {
                msg = messages.recv() => match msg {
                    Some(RuntimeMessage::Response { request_id: id, body }) if id == request_id => return Ending::Response(body),
                    Some(RuntimeMessage::Stream { request_id: id, content_type, items }) if id == request_id => {
                        return Ending::Stream { content_type, items }
                    }
                    Some(RuntimeMessage::Error { request_id: id, error_type, body }) if id == request_id => {
                        return Ending::FunctionError { error_type, body }
                    }
                    Some(RuntimeMessage::ResponseTooLarge { request_id: id, size }) if id == request_id => {
                        return Ending::Fatal {
                            error_type: "Function.ResponseSizeTooLarge".into(),
                            message: format!("Response payload size ({size} bytes) exceeded maximum allowed payload size ({} bytes).", runtime_api::MAX_RESPONSE_BYTES),
                            log_line: None,
                        }
                    }
                    Some(_) => continue,
                    None => return Ending::Fatal { error_type: "Runtime.ExitError".into(), message: "Runtime API closed".into(), log_line: None },
                },
                info = wait_exit(&mut exit) => return exited(cgroup, request_id, info),
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return timed_out(self.cgroup.clone(), pgid, request_id, timeout).await;
                }
            }
        }
    }

    /// Follows a streamed response to its end: forwards each chunk to `forward` (the caller
    /// reading the stream) or, without one, collects the chunks into one body; at most
    /// `limit` bytes either way. The deadline and the runtime's exit still apply.
    async fn pump(
        &self,
        request_id: &str,
        mut items: mpsc::Receiver<StreamItem>,
        forward: Option<mpsc::Sender<Bytes>>,
        limit: usize,
        deadline: Instant,
        timeout: Duration,
    ) -> Ending {
        let mut exit = self.exit.clone();
        let cgroup = self.cgroup.as_deref();
        let pgid = self.pgid;
        let streaming = forward.is_some();
        let mut forward = forward;
        let mut buffered = bytes::BytesMut::new();
        let mut size = 0usize;
        loop {
            tokio::select! {
                item = items.recv() => match item {
                    Some(StreamItem::Chunk(chunk)) => {
                        size += chunk.len();
                        if size > limit {
                            return Ending::Fatal {
                                error_type: "Function.ResponseSizeTooLarge".into(),
                                message: format!("Response payload size exceeded maximum allowed payload size ({limit} bytes)."),
                                log_line: None,
                            };
                        }
                        match &forward {
                            Some(tx) => match tokio::time::timeout_at(deadline.into(), tx.send(chunk)).await {
                                Ok(Ok(())) => {}
                                // The caller went away: the function still runs to its end.
                                Ok(Err(_)) => forward = None,
                                Err(_) => return timed_out(self.cgroup.clone(), pgid, request_id, timeout).await,
                            },
                            None if streaming => {}
                            None => buffered.extend_from_slice(&chunk),
                        }
                    }
                    Some(StreamItem::Complete) => return Ending::Response(buffered.freeze()),
                    Some(StreamItem::Failed { error_type, body }) => {
                        return Ending::FunctionError { error_type, body }
                    }
                    None => {
                        return Ending::Fatal {
                            error_type: "Runtime.TruncatedResponse".into(),
                            message: "The runtime's streamed response broke off.".into(),
                            log_line: None,
                        }
                    }
                },
                info = wait_exit(&mut exit) => return exited(cgroup, request_id, info),
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return timed_out(self.cgroup.clone(), pgid, request_id, timeout).await;
                }
            }
        }
    }

    /// Waits (bounded) for the runtime's next `GET /next`.
    async fn await_ready(&mut self, until: Instant) {
        let wait = async {
            while let Some(msg) = self.channel.messages.recv().await {
                if matches!(msg, RuntimeMessage::Ready) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout_at(until.into(), wait).await;
    }

    fn outcome(&self, request_id: &str, ending: Ending) -> (InvokeOutcome, Option<String>) {
        let executed_version = self.spec.version.clone();
        match ending {
            Ending::Response(body) => (
                InvokeOutcome {
                    body,
                    function_error: None,
                    error_type: None,
                    log_tail: None,
                    executed_version,
                    stream: None,
                },
                None,
            ),
            Ending::FunctionError { error_type, body } => (
                InvokeOutcome {
                    body,
                    function_error: Some("Unhandled".into()),
                    error_type: Some(error_type),
                    log_tail: None,
                    executed_version,
                    stream: None,
                },
                None,
            ),
            // Never left unpumped; a stream that ends here broke off.
            Ending::Stream { .. } => self.outcome(
                request_id,
                Ending::Fatal {
                    error_type: "Runtime.TruncatedResponse".into(),
                    message: "The runtime's streamed response broke off.".into(),
                    log_line: None,
                },
            ),
            Ending::Fatal { error_type, message, log_line } => {
                let message = if message.starts_with("RequestId:") {
                    message
                } else {
                    format!("RequestId: {request_id} Error: {message}")
                };
                let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
                let outcome = InvokeOutcome {
                    body: Bytes::from(body.to_string()),
                    function_error: Some("Unhandled".into()),
                    error_type: Some(error_type),
                    log_tail: None,
                    executed_version,
                    stream: None,
                };
                (outcome, log_line)
            }
        }
    }

    fn report(
        &mut self,
        req: &InvokeRequest,
        duration: Duration,
        error_type: Option<String>,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> InvocationReport {
        let init = self.pending_init.take();
        let duration_ms = duration.as_secs_f64() * 1000.0;
        let init_ms = init.map(|d| d.as_secs_f64() * 1000.0);
        let billed_ms = (duration_ms + init_ms.unwrap_or(0.0)).ceil().max(1.0) as u64;
        let max_memory_used_mb = self
            .cgroup
            .as_ref()
            .and_then(|c| c.memory_peak_bytes())
            .map_or(0, |b| b.div_ceil(1024 * 1024));
        InvocationReport {
            request_id: req.request_id.clone(),
            function: self.spec.name.clone(),
            version: self.spec.version.clone(),
            duration_ms,
            billed_ms,
            memory_mb: self.spec.memory_mb,
            ephemeral_mb: self.spec.ephemeral_mb,
            provisioned: self.provisioned,
            max_memory_used_mb,
            init_ms,
            error_type,
            started_at,
            trace_id: req.trace_id.clone(),
            caller_parent: req.caller_parent.clone(),
        }
    }

    /// Whether the runtime process is still running.
    pub(crate) fn is_alive(&self) -> bool {
        self.exit.borrow().is_none()
    }

    /// Kills every process of the environment and waits (up to two seconds) until they are
    /// gone. Blocks: not for an async thread.
    pub(crate) fn kill(&self) {
        kill_tree(self.cgroup.as_deref(), self.pgid);
    }

    /// Signals every process of the environment to die, without waiting for any.
    pub(crate) fn signal(&self) {
        if let Some(cgroup) = self.cgroup.as_deref() {
            cgroup.signal_all();
        }
        if let Some(pgid) = self.pgid {
            alonzo_jail::kill_process_group(pgid);
        }
    }

    /// Kills the environment and removes what it used, in the background. Killing waits for
    /// the processes to exit, so it runs on the blocking pool, not on the async thread that
    /// called this: done in place, reclaiming a few hundred idle environments at once stalled
    /// every request behind it for 30–50 ms at a time.
    pub(crate) fn destroy(self) {
        self.release(true);
    }

    /// [`Environment::destroy`] for an environment that [`Environment::kill`] already killed.
    pub(crate) fn destroy_killed(self) {
        self.release(false);
    }

    fn release(self, kill: bool) {
        self.api_task.abort();
        let mut exit = self.exit;
        let cgroup = self.cgroup;
        let pgid = self.pgid;
        let root_dir = self.root_dir;
        tokio::spawn(async move {
            if kill {
                kill_off_thread(cgroup.clone(), pgid).await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), wait_exit(&mut exit)).await;
            if let Some(cgroup) = cgroup.and_then(|c| Arc::try_unwrap(c).ok()) {
                tokio::task::spawn_blocking(move || cgroup.remove());
            }
            let _ = tokio::fs::remove_dir_all(&root_dir).await;
        });
    }
}

/// The runtime process died during an invocation.
fn exited(cgroup: Option<&SandboxCgroup>, request_id: &str, info: ExitInfo) -> Ending {
    let (error_type, how) = exit_reason(cgroup, info);
    let message = format!("RequestId: {request_id} Error: Runtime exited with error: {how}");
    Ending::Fatal { log_line: Some(message.clone()), error_type, message }
}

/// The invocation ran past its deadline: the environment is killed (on the blocking pool, as
/// killing waits for its processes to exit) before the invocation ends.
async fn timed_out(
    cgroup: Option<Arc<SandboxCgroup>>,
    pgid: Option<u32>,
    request_id: &str,
    timeout: Duration,
) -> Ending {
    kill_off_thread(cgroup, pgid).await;
    let secs = format!("{:.2}", timeout.as_secs_f64());
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    Ending::Fatal {
        error_type: "Sandbox.Timedout".into(),
        message: format!("RequestId: {request_id} Error: Task timed out after {secs} seconds"),
        log_line: Some(format!("{now} {request_id} Task timed out after {secs} seconds")),
    }
}

/// [`kill_tree`] on the blocking pool: it waits for the processes to exit.
async fn kill_off_thread(cgroup: Option<Arc<SandboxCgroup>>, pgid: Option<u32>) {
    let _ = tokio::task::spawn_blocking(move || kill_tree(cgroup.as_deref(), pgid)).await;
}

/// Kills everything an environment started: through its cgroup, or its process group when
/// it runs without isolation.
fn kill_tree(cgroup: Option<&SandboxCgroup>, pgid: Option<u32>) {
    if let Some(cgroup) = cgroup {
        cgroup.kill_all();
    }
    if let Some(pgid) = pgid {
        alonzo_jail::kill_process_group(pgid);
    }
}

/// A started sandbox: its id, cgroup, root directory and processes.
type Started = (String, Option<SandboxCgroup>, std::path::PathBuf, crate::unisolated::Spawned);

/// Takes a sandbox built ahead for `spec`: one whose runtime started ahead if it suits, else
/// (for Python) one forked now from the zygote, else one that runs any runtime (in the
/// function's network either way).
async fn take_built_ahead(manager: &Manager, spec: &FunctionSpec) -> Option<PreparedSandbox> {
    let best = Template::for_spec(spec);
    if let Some(ahead) = manager.take_prepared(&best) {
        return Some(ahead);
    }
    if let Some(forked) = forked_from_zygote(manager, &best).await {
        return Some(forked);
    }
    let any = Template { kind: TemplateKind::Any, ..best.clone() };
    (best != any).then(|| manager.take_prepared(&any)).flatten()
}

/// With no sandbox built ahead for a Python function whose runtime can start ahead, one built
/// now around a copy of its interpreter's zygote: a fork instead of an interpreter start,
/// which is what lets many environments start at once (`zygote.rs`).
async fn forked_from_zygote(manager: &Manager, template: &Template) -> Option<PreparedSandbox> {
    let is_python = matches!(&template.kind, TemplateKind::Started(RuntimeKind::Python(_)));
    // `--prebuilt-sandboxes 0` means every runtime starts with its function, as before.
    let enabled = manager.inner.python_zygote && manager.inner.prebuilt > 0;
    if !enabled || !is_python || manager.inner.cgroups.is_none() {
        return None;
    }
    let (m, template) = (manager.clone(), template.clone());
    match tokio::task::spawn_blocking(move || m.build_ahead(&template, true)).await {
        Ok(Ok(built)) => Some(built),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "no sandbox from the zygote");
            None
        }
        Err(_) => None,
    }
}

/// Completes a sandbox built ahead with `spec`'s limits, files and environment.
async fn assign(
    manager: &Manager,
    spec: &FunctionSpec,
    env: &[(String, String)],
    ahead: PreparedSandbox,
) -> Result<Started, String> {
    let began = Instant::now();
    let limits = crate::limits_for(spec);
    let files = &manager.inner.files;
    let assignment = match &ahead.template.kind {
        TemplateKind::Any => Assignment {
            binds: rootfs::function_binds(files, spec, true),
            tmp_size_mb: u64::from(spec.ephemeral_mb),
            program: Some(Program {
                argv: rootfs::argv(spec),
                env: env.to_vec(),
                cwd: "/var/task".into(),
            }),
            message: Vec::new(),
        },
        TemplateKind::Started(_) => Assignment {
            binds: rootfs::function_binds(files, spec, false),
            tmp_size_mb: u64::from(spec.ephemeral_mb),
            program: None,
            message: rootfs::assignment_message("/var/task", env),
        },
    };
    let PreparedSandbox { id, cgroup, jail, root_dir, template, slot, .. } = ahead;
    // The function's limits and the assignment, on one blocking thread: each CPU bandwidth
    // write walks every CPU cgroup of the machine, which in a burst of a thousand starts
    // kept the async thread busy for tenths of a millisecond per start.
    let cgroup = Arc::new(cgroup);
    let limited = Arc::clone(&cgroup);
    let assigned = tokio::task::spawn_blocking(move || {
        crate::prepared::set_limits(&limited, &limits).map_err(|e| format!("cgroup: {e}"))?;
        jail.assign(&assignment).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    tracing::debug!(
        ?template,
        us = began.elapsed().as_micros() as u64,
        "assigned a sandbox built ahead"
    );
    // The blocking task has ended, and its reference with it.
    let cgroup = Arc::try_unwrap(cgroup).ok();
    match assigned {
        Ok(jail) => Ok((id, cgroup, root_dir, spawned(jail, slot))),
        Err(e) => {
            // A jail whose limits could not be set was dropped with the task.
            crate::prepared::tear_down_in_background(cgroup, root_dir, slot);
            Err(e)
        }
    }
}

/// Starts a jailed sandbox for `spec` from nothing: a new cgroup, a network attachment, then
/// the whole jail.
async fn spawn_fresh(
    manager: &Manager,
    spec: &FunctionSpec,
    log_stream: &str,
    init_type: &str,
) -> Result<Started, SandboxError> {
    let attachment = crate::network::attach_for(manager, spec.network.as_deref())
        .map_err(|why| SandboxError::Spawn(format!("network: {why}")))?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let root_dir = manager.inner.sandboxes_dir.join(&id);
    let mut jail_spec = JailSpec {
        root_dir: root_dir.clone(),
        binds: rootfs::binds(&manager.inner.files, spec),
        tmp_size_mb: u64::from(spec.ephemeral_mb),
        hostname: "localhost".into(),
        uid_base: manager.next_uid_base(),
        run_as_uid: rootfs::SANDBOX_UID,
        run_as_gid: rootfs::SANDBOX_GID,
        cgroup_procs: Vec::new(),
        argv: rootfs::argv(spec),
        env: rootfs::environment(spec, log_stream, init_type, &attachment.env),
        cwd: "/var/task".into(),
        nofile: 1024,
        nproc: 1024,
        runtime_api_port: rootfs::RUNTIME_API_PORT,
        deferred: None,
        network: attachment.jail,
    };
    // The cgroup (directories and limits: a CPU bandwidth write walks every CPU cgroup of the
    // machine), the root directory and the jail, all on one blocking thread.
    let (m, limits, sandbox) = (manager.clone(), crate::limits_for(spec), id.clone());
    let started = tokio::task::spawn_blocking(move || {
        let cgroup = m.create_cgroup(&sandbox, &limits)?;
        jail_spec.cgroup_procs =
            cgroup.as_ref().map(SandboxCgroup::procs_files).unwrap_or_default();
        if let Err(e) = std::fs::create_dir_all(&jail_spec.root_dir) {
            crate::prepared::tear_down(cgroup, &jail_spec.root_dir);
            return Err(SandboxError::io("creating the sandbox root")(e));
        }
        let jail = alonzo_jail::spawn(&m.inner.exe, &jail_spec);
        Ok((cgroup, jail))
    })
    .await
    .map_err(|e| SandboxError::Spawn(e.to_string()))??;
    match started {
        (cgroup, Ok(jail)) => Ok((id, cgroup, root_dir, spawned(jail, attachment.slot))),
        (cgroup, Err(e)) => {
            crate::prepared::tear_down_in_background(cgroup, root_dir, attachment.slot);
            Err(SandboxError::Spawn(e.to_string()))
        }
    }
}

fn spawned(
    jail: alonzo_jail::Jail,
    slot: Option<crate::network::SlotGuard>,
) -> crate::unisolated::Spawned {
    crate::unisolated::Spawned {
        child: jail.child,
        stdout: jail.stdout,
        stderr: jail.stderr,
        runtime_api: jail.runtime_api,
        slot,
    }
}

/// Waits until the runtime process has exited and returns how (the watch's borrow is not
/// held across an await, so the future stays `Send`).
async fn wait_exit(exit: &mut watch::Receiver<Option<ExitInfo>>) -> ExitInfo {
    exit.wait_for(Option::is_some).await.ok().and_then(|r| *r).unwrap_or(ExitInfo { code: -1 })
}

/// Whether the runtime died of memory exhaustion or otherwise, and how it exited.
fn exit_reason(cgroup: Option<&SandboxCgroup>, info: ExitInfo) -> (String, String) {
    let oom = cgroup.is_some_and(SandboxCgroup::oom_killed);
    let error_type = if oom { "Runtime.OutOfMemory" } else { "Runtime.ExitError" };
    (error_type.to_owned(), info.describe())
}

/// Why an environment failed to initialise.
#[derive(Debug, Clone)]
pub(crate) struct InitFailure {
    pub(crate) error_type: String,
    pub(crate) body: Bytes,
    pub(crate) init: Duration,
}

impl InitFailure {
    fn new(error_type: String, body: Bytes) -> Self {
        Self { error_type, body, init: Duration::ZERO }
    }

    fn exited(error_type: &str, message: &str) -> Self {
        let body = serde_json::json!({ "errorType": error_type, "errorMessage": message });
        Self {
            error_type: error_type.to_owned(),
            body: Bytes::from(body.to_string()),
            init: Duration::ZERO,
        }
    }
}

/// Waits for the jail process on a blocking thread and publishes its exit.
fn watch_exit(
    child: alonzo_jail::JailProcess,
    slot: Option<crate::network::SlotGuard>,
) -> watch::Receiver<Option<ExitInfo>> {
    let (tx, rx) = watch::channel(None);
    let reap = move |mut child: alonzo_jail::JailProcess| {
        // The network slot is free again once the jail process is gone.
        let _slot = slot;
        let code = match child.wait() {
            Ok(status) => status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            }),
            Err(_) => -1,
        };
        let _ = tx.send(Some(ExitInfo { code }));
    };
    // A pidfd in the reactor, not a blocking thread per environment: the blocking pool (512
    // threads) would otherwise cap the server at about 500 environments and then starve
    // everything else that needs it.
    // `try_with_interest` is deprecated for descriptor types whose `as_raw_fd` could change
    // or close early; an `ExitWatch`'s is its process's pidfd, which it owns, unchanged (the
    // replacement is `unsafe` for that contract, and this crate has no `unsafe`).
    #[allow(deprecated)]
    let registered = child.into_exit_watch().and_then(|watch| {
        tokio::io::unix::AsyncFd::try_with_interest(watch, tokio::io::Interest::READABLE).map_err(
            |refused| {
                let (watch, e) = refused.into_parts();
                (e, watch.into_process())
            },
        )
    });
    match registered {
        Ok(exited) => {
            tokio::spawn(async move {
                let _ = exited.readable().await;
                // The process has exited: `wait` only collects its status.
                reap(exited.into_inner().into_process());
            });
        }
        Err((e, child)) => {
            tracing::debug!(error = %e, "no pidfd; waiting for the jail process on a thread");
            tokio::task::spawn_blocking(move || reap(child));
        }
    }
    rx
}

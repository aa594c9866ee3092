//! Sandboxes built ahead of demand, so that a cold start does not wait for them: each is a
//! jail process already in its own cgroup that has created its namespaces, built and pivoted
//! into its root and, for Python and Node.js, started the runtime with its bootstrap loaded; it
//! waits for a function (`alonzo_jail::Prepared::build_ahead`, then `assign`). A cold start
//! takes one, sets the function's limits on its cgroup and assigns it the function's code,
//! layers, `/tmp` size and environment; a background task keeps `--prebuilt-sandboxes` of
//! each template in demand (2 by default; 0 disables this).
//!
//! Nothing of any function is in a sandbox before it is assigned, and each is assigned once.
//! Two kinds exist: [`TemplateKind::Any`] (the program starts at assignment; serves every
//! runtime) and [`TemplateKind::Started`] (a Python or Node.js runtime started ahead; used for
//! functions whose environment does not change how a process starts, see
//! `rootfs::affects_process_start`). A sandbox's network is part of its template, since the
//! jail attaches it while building. A template is kept only while it is in demand.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use alonzo_jail::cgroup::{CgroupLimits, SandboxCgroup, CPU_PERIOD_US};
use alonzo_jail::{Deferred, JailSpec};

use crate::runtimes::RuntimeKind;
use crate::{rootfs, FunctionSpec, Inner, Manager};

/// How long a template kind nobody asked for is kept.
const WANTED_FOR: Duration = Duration::from_secs(600);

/// What a sandbox built ahead already holds: its kind, and the network it is attached to
/// (`None`: the operator's default network), which is part of what it is built with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Template {
    pub(crate) kind: TemplateKind,
    pub(crate) network: Option<String>,
}

/// How far a sandbox built ahead goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum TemplateKind {
    /// Namespaces and root; runtime files, code, layers and program come at assignment.
    Any,
    /// Also a managed runtime (Python or Node.js) at `/var/runtime`, started with this
    /// interpreter and waiting for its function's environment.
    Started(RuntimeKind),
}

impl Template {
    /// The template that suits `spec` best.
    pub(crate) fn for_spec(spec: &FunctionSpec) -> Template {
        let kind = match &spec.runtime_kind {
            kind @ (RuntimeKind::Python(_) | RuntimeKind::Node(_))
                if !spec.environment.iter().any(|(k, _)| rootfs::affects_process_start(k)) =>
            {
                TemplateKind::Started(kind.clone())
            }
            _ => TemplateKind::Any,
        };
        Template { kind, network: spec.network.clone() }
    }

    /// The template every function of the default network can use.
    fn any() -> Template {
        Template { kind: TemplateKind::Any, network: None }
    }
}

/// One waiting sandbox, its cgroup, and what its network attachment gave it.
#[derive(Debug)]
pub(crate) struct PreparedSandbox {
    pub(crate) id: String,
    pub(crate) cgroup: SandboxCgroup,
    pub(crate) jail: alonzo_jail::Prepared,
    pub(crate) template: Template,
    pub(crate) root_dir: PathBuf,
    /// The variables its network gives the function (`AWS_ENDPOINT_URL`…).
    pub(crate) network_env: Vec<(String, String)>,
    /// Its address slot, held until the sandbox is gone.
    pub(crate) slot: Option<crate::network::SlotGuard>,
}

/// The pool.
#[derive(Debug, Default)]
pub(crate) struct PreparedPool {
    ready: HashMap<Template, VecDeque<PreparedSandbox>>,
    /// Templates in demand and when they were last asked for (`Any` in the default network
    /// always is).
    wanted: HashMap<Template, Instant>,
}

/// The limits a prepared sandbox waits under, until a function's replace them.
fn waiting_limits() -> CgroupLimits {
    CgroupLimits { memory_bytes: 128 << 20, cpu_quota_us: CPU_PERIOD_US, pids_max: 1024 }
}

impl Manager {
    /// Takes a waiting sandbox of `template`, if one is there and alive, and records the
    /// demand so the pool keeps that kind.
    pub(crate) fn take_prepared(&self, template: &Template) -> Option<PreparedSandbox> {
        let taken = loop {
            let mut pool = self.inner.prepared.lock().ok()?;
            pool.wanted.insert(template.clone(), Instant::now());
            let next = pool.ready.get_mut(template).and_then(VecDeque::pop_front);
            drop(pool);
            let Some(mut next) = next else {
                self.inner.prepare_wakeup.notify_one();
                return None;
            };
            if next.jail.is_alive() {
                break next;
            }
            discard_in_background(next);
        };
        self.inner.prepare_wakeup.notify_one();
        Some(taken)
    }

    /// Builds one sandbox of `template` ahead (blocking: call it from a blocking thread). A
    /// Python runtime started ahead is forked from its interpreter's zygote when there is one.
    pub(crate) fn prepare_one(&self, template: &Template) -> Result<PreparedSandbox, String> {
        self.build_ahead(template, false)
    }

    /// As [`Manager::prepare_one`]; with `zygote_only`, fails rather than start the
    /// interpreter when no zygote forks it.
    pub(crate) fn build_ahead(
        &self,
        template: &Template,
        zygote_only: bool,
    ) -> Result<PreparedSandbox, String> {
        let Some(parent) = &self.inner.cgroups else { return Err("no cgroups".into()) };
        let zygote = match &template.kind {
            TemplateKind::Started(RuntimeKind::Python(python)) if self.inner.python_zygote => self
                .inner
                .zygotes
                .get(&self.inner.exe, &self.inner.files, python)
                .map(|z| (z, python)),
            _ => None,
        };
        if zygote.is_none() && zygote_only {
            return Err("no zygote".into());
        }
        let attachment = crate::network::attach_for(self, template.network.as_deref())?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let root_dir = self.inner.sandboxes_dir.join(&id);
        std::fs::create_dir_all(&root_dir).map_err(|e| format!("sandbox root: {e}"))?;
        let cgroup =
            SandboxCgroup::create(parent, &id, &waiting_limits()).map_err(|e| e.to_string())?;
        let spec = self.template_spec(template, &root_dir, attachment.jail);
        let procs = cgroup.procs_files();
        let build = |jail: Result<alonzo_jail::Prepared, _>, spec: &JailSpec| {
            jail.and_then(|mut jail: alonzo_jail::Prepared| {
                jail.build_ahead(spec)?;
                Ok(jail)
            })
        };
        let forked = zygote.and_then(|(zygote, python)| {
            let mut forked_spec = spec.clone();
            if let Some(deferred) = &mut forked_spec.deferred {
                deferred.continue_program = true;
                // A sandbox that waits in the pool copies its pages while it waits; one built
                // for a start now takes the faults of what it writes only.
                deferred.copy_shared_pages = !zygote_only;
            }
            build(zygote.prepare(&procs), &forked_spec)
                .map_err(|e| {
                    tracing::warn!(error = %e, "the Python zygote failed; starting the interpreter");
                    self.inner.zygotes.failed(python);
                })
                .ok()
        });
        let built = match forked {
            Some(jail) => Ok(jail),
            None if zygote_only => {
                tear_down(Some(cgroup), &root_dir);
                return Err("no zygote".into());
            }
            None => build(alonzo_jail::prepare(&self.inner.exe, &procs), &spec),
        };
        match built {
            Ok(jail) => Ok(PreparedSandbox {
                id,
                cgroup,
                jail,
                template: template.clone(),
                root_dir,
                network_env: attachment.env,
                slot: attachment.slot,
            }),
            Err(e) => {
                tear_down(Some(cgroup), &root_dir);
                Err(e.to_string())
            }
        }
    }

    /// The spec a sandbox of `template` is built with.
    fn template_spec(
        &self,
        template: &Template,
        root_dir: &std::path::Path,
        network: Option<alonzo_jail::JailNetwork>,
    ) -> JailSpec {
        let files = &self.inner.files;
        let mut binds = rootfs::common_binds(files);
        let (argv, env, started) = match &template.kind {
            // The program is the assignment's; this placeholder never runs.
            TemplateKind::Any => (vec!["/bin/false".to_owned()], Vec::new(), false),
            TemplateKind::Started(kind) => {
                binds.push(rootfs::runtime_dir_bind(files, kind));
                let argv = rootfs::runtime_argv(kind).unwrap_or_default();
                (argv, rootfs::started_environment(kind), true)
            }
        };
        JailSpec {
            root_dir: root_dir.to_owned(),
            binds,
            // Resized at assignment.
            tmp_size_mb: 512,
            hostname: "localhost".into(),
            uid_base: self.next_uid_base(),
            run_as_uid: rootfs::SANDBOX_UID,
            run_as_gid: rootfs::SANDBOX_GID,
            cgroup_procs: Vec::new(),
            argv,
            env,
            cwd: "/var/task".into(),
            nofile: 1024,
            nproc: 1024,
            runtime_api_port: rootfs::RUNTIME_API_PORT,
            deferred: Some(Deferred {
                targets: rootfs::deferred_targets(started),
                start_program: started,
                continue_program: false,
                copy_shared_pages: false,
            }),
            network,
        }
    }
}

/// Kills a prepared sandbox that will not be used and removes its cgroup and root directory.
/// Blocks until its processes have exited: not for an async thread.
pub(crate) fn discard(prepared: PreparedSandbox) {
    drop(prepared.jail);
    tear_down(Some(prepared.cgroup), &prepared.root_dir);
    // The address slot goes last, once nothing of the sandbox is left.
    drop(prepared.slot);
}

/// [`discard`] on the blocking pool, for callers on an async thread: killing waits until the
/// sandbox's processes have exited.
pub(crate) fn discard_in_background(prepared: PreparedSandbox) {
    tokio::task::spawn_blocking(move || discard(prepared));
}

/// [`tear_down`] on the blocking pool, for callers on an async thread; the sandbox's address
/// slot, if it holds one, is given back once nothing of the sandbox is left.
pub(crate) fn tear_down_in_background(
    cgroup: Option<SandboxCgroup>,
    root_dir: PathBuf,
    slot: Option<crate::network::SlotGuard>,
) {
    tokio::task::spawn_blocking(move || {
        tear_down(cgroup, &root_dir);
        drop(slot);
    });
}

/// Kills whatever runs in a sandbox that will not be used and removes its cgroup and (empty)
/// root directory. Blocks until its processes have exited: not for an async thread.
pub(crate) fn tear_down(cgroup: Option<SandboxCgroup>, root_dir: &std::path::Path) {
    if let Some(cgroup) = cgroup {
        cgroup.kill_all();
        cgroup.remove();
    }
    let _ = std::fs::remove_dir(root_dir);
}

/// Keeps the pool full until the manager is dropped.
pub(crate) async fn run(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let manager = Manager { inner: Arc::clone(&strong) };
        let (missing, stale) = plan(&strong);
        for prepared in stale {
            discard_in_background(prepared);
        }
        'fill: for (template, count) in missing {
            for _ in 0..count {
                // A sandbox still waiting in the pool can serve the next cold start: build its
                // successor once the starts in progress are done (or a little later at most).
                if ready_count(&strong, &template) > 0 {
                    strong.starting.quiet(REFILL_SETTLE, REFILL_DEFER_MAX).await;
                }
                let (m, t) = (manager.clone(), template.clone());
                match tokio::task::spawn_blocking(move || m.prepare_one(&t)).await {
                    Ok(Ok(prepared)) => {
                        if let Ok(mut pool) = strong.prepared.lock() {
                            pool.ready.entry(template.clone()).or_default().push_back(prepared);
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, ?template, "preparing a sandbox failed");
                        break 'fill;
                    }
                    Err(_) => break 'fill,
                }
            }
        }
        drop(manager);
        let _ =
            tokio::time::timeout(Duration::from_secs(5), strong.prepare_wakeup.notified()).await;
    }
}

/// Quiet time after the last environment start before the pool is refilled.
const REFILL_SETTLE: Duration = Duration::from_millis(20);
/// Longest a refill waits for starts to end, under a stream of cold starts.
const REFILL_DEFER_MAX: Duration = Duration::from_millis(300);

/// Sandboxes of `template` waiting in the pool.
fn ready_count(inner: &Inner, template: &Template) -> usize {
    inner.prepared.lock().map_or(0, |p| p.ready.get(template).map_or(0, VecDeque::len))
}

/// Counts environment starts in progress and remembers when the last one ended.
#[derive(Debug, Default)]
pub(crate) struct Starting {
    now: std::sync::atomic::AtomicUsize,
    last_end: std::sync::Mutex<Option<Instant>>,
}

/// Held while an environment starts.
pub(crate) struct StartGuard<'a>(&'a Starting);

impl Drop for StartGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut last) = self.0.last_end.lock() {
            *last = Some(Instant::now());
        }
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Starting {
    /// Marks a start in progress until the guard drops.
    pub(crate) fn enter(&self) -> StartGuard<'_> {
        self.now.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        StartGuard(self)
    }

    /// Waits until no start is in progress and none ended in the last `settle`, or `max`.
    async fn quiet(&self, settle: Duration, max: Duration) {
        let deadline = Instant::now() + max;
        while Instant::now() < deadline {
            let busy = self.now.load(std::sync::atomic::Ordering::Acquire) > 0;
            let recent =
                self.last_end.lock().ok().and_then(|l| *l).is_some_and(|t| t.elapsed() < settle);
            if !busy && !recent {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// What to build (per template kind, how many) and what to drop (kinds no longer in demand).
fn plan(inner: &Inner) -> (Vec<(Template, usize)>, Vec<PreparedSandbox>) {
    let Ok(mut pool) = inner.prepared.lock() else { return (Vec::new(), Vec::new()) };
    pool.wanted.insert(Template::any(), Instant::now());
    pool.wanted.retain(|_, asked| asked.elapsed() < WANTED_FOR);
    let wanted: Vec<Template> = pool.wanted.keys().cloned().collect();
    let mut stale = Vec::new();
    pool.ready.retain(|template, ready| {
        let keep = wanted.contains(template);
        if !keep {
            stale.extend(ready.drain(..));
        }
        keep
    });
    // `Any` first: it serves every runtime.
    let mut missing: Vec<(Template, usize)> = wanted
        .into_iter()
        .map(|t| {
            let have = pool.ready.get(&t).map_or(0, VecDeque::len);
            (t, inner.prebuilt.saturating_sub(have))
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    missing.sort_by_key(|(t, _)| *t != Template::any());
    (missing, stale)
}

/// Empties the pool (shutdown).
pub(crate) fn drain(inner: &Inner) {
    let all: Vec<PreparedSandbox> = inner
        .prepared
        .lock()
        .map(|mut p| p.ready.drain().flat_map(|(_, q)| q).collect())
        .unwrap_or_default();
    for prepared in all {
        discard(prepared);
    }
}

/// Applies a function's limits to a taken sandbox's cgroup.
pub(crate) fn set_limits(cgroup: &SandboxCgroup, limits: &CgroupLimits) -> Result<(), String> {
    cgroup.change_limits(&waiting_limits(), limits).map_err(|e| e.to_string())
}

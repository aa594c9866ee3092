//! Prepared sandboxes: a few jail processes started ahead of demand, each already in its own
//! cgroup and waiting for a spec, so that a cold start skips the re-executed binary's start
//! and, above all, the cgroup migration (on cgroup v1 it waits for an RCU grace period,
//! 10 ms and more). A cold start takes one, sets the function's limits on its cgroup and
//! hands over the spec; a background task keeps the pool full. Nothing of a function is in a
//! prepared sandbox before it is taken: it has no namespaces, mounts or environment yet.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use alonzo_jail::cgroup::{CgroupLimits, SandboxCgroup};

use crate::{Inner, Manager};

/// Prepared sandboxes kept waiting.
pub(crate) const POOL_SIZE: usize = 2;

/// One waiting jail process and its cgroup.
#[derive(Debug)]
pub(crate) struct PreparedSandbox {
    pub(crate) id: String,
    pub(crate) cgroup: SandboxCgroup,
    pub(crate) jail: alonzo_jail::Prepared,
}

/// The pool.
#[derive(Debug, Default)]
pub(crate) struct PreparedPool {
    ready: VecDeque<PreparedSandbox>,
}

/// The limits a prepared sandbox waits under, until a function's replace them.
fn waiting_limits() -> CgroupLimits {
    CgroupLimits { memory_bytes: 128 << 20, cpu_quota_us: 100_000, pids_max: 1024 }
}

impl Manager {
    /// Takes a prepared sandbox, if one is waiting and alive.
    pub(crate) fn take_prepared(&self) -> Option<PreparedSandbox> {
        let taken = loop {
            let mut pool = self.inner.prepared.lock().ok()?;
            let mut next = pool.ready.pop_front()?;
            drop(pool);
            if next.jail.is_alive() {
                break next;
            }
            discard(next);
        };
        self.inner.prepare_wakeup.notify_one();
        Some(taken)
    }

    /// Starts one prepared sandbox.
    fn prepare_one(&self) -> Result<PreparedSandbox, String> {
        let Some(parent) = &self.inner.cgroups else { return Err("no cgroups".into()) };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let cgroup =
            SandboxCgroup::create(parent, &id, &waiting_limits()).map_err(|e| e.to_string())?;
        match alonzo_jail::prepare(&self.inner.exe, &cgroup.procs_files()) {
            Ok(jail) => Ok(PreparedSandbox { id, cgroup, jail }),
            Err(e) => {
                cgroup.kill_all();
                cgroup.remove();
                Err(e.to_string())
            }
        }
    }
}

/// Kills a prepared sandbox that will not be used and removes its cgroup.
pub(crate) fn discard(prepared: PreparedSandbox) {
    drop(prepared.jail);
    prepared.cgroup.kill_all();
    prepared.cgroup.remove();
}

/// Keeps the pool full until the manager is dropped.
pub(crate) async fn run(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let manager = Manager { inner: Arc::clone(&strong) };
        let missing = strong.prepared.lock().map_or(0, |p| POOL_SIZE.saturating_sub(p.ready.len()));
        for _ in 0..missing {
            let m = manager.clone();
            match tokio::task::spawn_blocking(move || m.prepare_one()).await {
                Ok(Ok(prepared)) => {
                    if let Ok(mut pool) = strong.prepared.lock() {
                        pool.ready.push_back(prepared);
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "preparing a sandbox failed");
                    break;
                }
                Err(_) => break,
            }
        }
        drop(manager);
        let _ =
            tokio::time::timeout(Duration::from_secs(5), strong.prepare_wakeup.notified()).await;
    }
}

/// Empties the pool (shutdown).
pub(crate) fn drain(inner: &Inner) {
    let all: Vec<PreparedSandbox> =
        inner.prepared.lock().map(|mut p| p.ready.drain(..).collect()).unwrap_or_default();
    for prepared in all {
        discard(prepared);
    }
}

/// Applies a function's limits to a taken sandbox's cgroup.
pub(crate) fn set_limits(cgroup: &SandboxCgroup, limits: &CgroupLimits) -> Result<(), String> {
    cgroup.set_limits(limits).map_err(|e| e.to_string())
}

//! Provisioned concurrency: a background task keeps the requested number of fully
//! initialised environments alive for each configured function version, starts them before
//! any request needs them, replaces those that die, and removes the excess when a request is
//! lowered or deleted.
//!
//! Provisioned environments live in the ordinary idle pool, flagged `provisioned`: the
//! invoke path takes them before on-demand ones, the idle reaper never reclaims them, and an
//! invocation beyond them spills over to on-demand environments.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::environment::Environment;
use crate::{EnvKey, FunctionSpec, Inner, Manager};

/// How many environments the provisioner initialises at once.
const PARALLEL_STARTS: usize = 4;
/// How often the provisioner checks its targets when nothing wakes it.
const TICK: Duration = Duration::from_millis(500);
/// Wait before retrying after an environment failed to initialise.
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// The state of one version's provisioned concurrency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedStatus {
    /// Environments requested.
    pub requested: u32,
    /// Environments initialised and alive (idle or busy).
    pub available: u32,
    /// Why the last initialisation failed, while the target is not met.
    pub failure: Option<String>,
}

/// One version's target.
#[derive(Debug)]
pub(crate) struct Target {
    spec: Arc<FunctionSpec>,
    requested: u32,
    /// Starts in flight.
    starting: u32,
    failure: Option<String>,
    retry_at: Option<Instant>,
}

/// Every target, by version.
#[derive(Debug, Default)]
pub(crate) struct Targets {
    by_key: HashMap<EnvKey, Target>,
}

impl Manager {
    /// Replaces the provisioned-concurrency targets of `function`: for each version spec, the
    /// number of environments to keep initialised. Versions left out lose theirs.
    pub fn set_provisioned(&self, function: &str, targets: Vec<(Arc<FunctionSpec>, u32)>) {
        let Ok(mut all) = self.inner.provisioned.lock() else { return };
        for (key, target) in all.by_key.iter_mut() {
            if key.0 == function {
                target.requested = 0;
            }
        }
        for (spec, requested) in targets {
            let key = (spec.name.clone(), spec.version.clone(), spec.revision_id.clone());
            let target = all.by_key.entry(key).or_insert_with(|| Target {
                spec: Arc::clone(&spec),
                requested: 0,
                starting: 0,
                failure: None,
                retry_at: None,
            });
            target.spec = spec;
            target.requested = requested;
            target.retry_at = None;
        }
        drop(all);
        self.inner.provision_wakeup.notify_one();
    }

    /// The provisioned concurrency of one version, if it has a target.
    pub fn provisioned_status(&self, function: &str, version: &str) -> Option<ProvisionedStatus> {
        let all = self.inner.provisioned.lock().ok()?;
        let (key, target) = all
            .by_key
            .iter()
            .find(|(k, t)| k.0 == function && k.1 == version && t.requested > 0)?;
        let available = self
            .inner
            .pool
            .lock()
            .ok()
            .and_then(|p| p.provisioned_alive.get(key).copied())
            .unwrap_or(0);
        Some(ProvisionedStatus {
            requested: target.requested,
            available: available.min(target.requested),
            failure: target.failure.clone(),
        })
    }

    /// One pass of the provisioner: drop dead and excess environments, start missing ones.
    fn provision_pass(&self) {
        let now = Instant::now();
        let mut to_start: Vec<(EnvKey, Arc<FunctionSpec>)> = Vec::new();
        let mut to_destroy: Vec<Environment> = Vec::new();
        {
            let (Ok(mut targets), Ok(mut pool)) =
                (self.inner.provisioned.lock(), self.inner.pool.lock())
            else {
                return;
            };
            let in_flight: u32 = targets.by_key.values().map(|t| t.starting).sum();
            let mut budget = PARALLEL_STARTS.saturating_sub(in_flight as usize);
            targets.by_key.retain(|key, target| {
                // Provisioned environments that died while idle are replaced.
                let mut alive = pool.provisioned_alive.get(key).copied().unwrap_or(0);
                if let Some(envs) = pool.idle.get_mut(key) {
                    let mut i = 0;
                    while i < envs.len() {
                        let dead = envs[i].provisioned && !envs[i].is_alive();
                        let excess = envs[i].provisioned && alive > target.requested;
                        if dead || excess {
                            to_destroy.push(envs.swap_remove(i));
                            alive = alive.saturating_sub(1);
                        } else {
                            i += 1;
                        }
                    }
                }
                pool.provisioned_alive.insert(key.clone(), alive);
                if target.requested == 0 && target.starting == 0 && alive == 0 {
                    pool.provisioned_alive.remove(key);
                    return false;
                }
                let missing = target.requested.saturating_sub(alive + target.starting);
                let waiting = target.retry_at.is_some_and(|t| t > now);
                for _ in 0..missing {
                    if budget == 0 || waiting {
                        break;
                    }
                    budget -= 1;
                    target.starting += 1;
                    to_start.push((key.clone(), Arc::clone(&target.spec)));
                }
                true
            });
        }
        for env in to_destroy {
            env.destroy();
        }
        for (key, spec) in to_start {
            let this = self.clone();
            tokio::spawn(async move { this.start_provisioned(key, spec).await });
        }
    }

    async fn start_provisioned(&self, key: EnvKey, spec: Arc<FunctionSpec>) {
        let started = Environment::start(self, Arc::clone(&spec), true).await;
        let failure = match started {
            Ok(Ok(env)) => {
                if let Ok(mut pool) = self.inner.pool.lock() {
                    *pool.provisioned_alive.entry(key.clone()).or_default() += 1;
                    pool.idle.entry(key.clone()).or_default().push(env);
                } else {
                    env.destroy();
                }
                self.inner.returned.notify_waiters();
                None
            }
            Ok(Err(init)) => Some(format!(
                "FUNCTION_ERROR_INIT_FAILURE: {} ({})",
                init.error_type,
                String::from_utf8_lossy(&init.body)
            )),
            Err(e) => Some(format!("INTERNAL_ERROR: {e}")),
        };
        if let Ok(mut targets) = self.inner.provisioned.lock() {
            if let Some(target) = targets.by_key.get_mut(&key) {
                target.starting = target.starting.saturating_sub(1);
                if let Some(reason) = &failure {
                    tracing::warn!(function = %key.0, version = %key.1, %reason, "a provisioned environment failed to initialise");
                    target.retry_at = Some(Instant::now() + FAILURE_BACKOFF);
                    target.failure = failure;
                } else {
                    target.failure = None;
                }
            }
        }
        self.inner.provision_wakeup.notify_one();
    }
}

/// Runs provisioning passes until the manager is dropped.
pub(crate) async fn run(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let manager = Manager { inner: Arc::clone(&strong) };
        manager.provision_pass();
        drop(manager);
        let _ = tokio::time::timeout(TICK, strong.provision_wakeup.notified()).await;
    }
}

//! Control-plane operations: one method per Lambda action on [`Control`], with typed inputs
//! and outputs, over the metadata and package stores.
//!
//! This crate knows neither HTTP nor JSON nor SigV4 (that is `alonzo-api`), nor SQL (that
//! is the store backends). It owns the rules that span several records: name resolution,
//! optimistic locking, the Pending→Active state machine, package validation and the
//! collection of packages no record refers to any more.

mod error;
mod functions;
pub mod package;
pub mod runtimes;
mod settle;

use std::sync::Arc;

use alonzo_model::Account;
use alonzo_store::{BlobStore, MetaStore};
use tokio::sync::{mpsc, RwLock};

pub use error::ControlError;
pub use functions::{AccountSettings, ConfigPatch, CreateFunction, FunctionView, ListPage, UpdateCode};
pub use package::PackageLimits;
pub use runtimes::{RuntimeCatalog, RuntimeKind};

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
}

impl Control {
    /// Starts the control plane: collects orphaned packages, resumes changes a crash
    /// interrupted, and spawns the worker that settles new changes. Needs a tokio runtime.
    pub async fn start(
        config: ControlConfig,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Self, ControlError> {
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let control = Self { inner: Arc::new(Inner { config, meta, blobs, code_gate: RwLock::new(()), settle_tx }) };
        control.collect_unreferenced_code().await?;
        tokio::spawn(settle::run(control.clone(), settle_rx));
        for record in control.inner.meta.list_unsettled().await? {
            control.schedule_settle(&record.name, &record.version);
        }
        Ok(control)
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
        if removed > 0 {
            tracing::info!(removed, "collected unreferenced code packages");
        }
        Ok(removed)
    }
}

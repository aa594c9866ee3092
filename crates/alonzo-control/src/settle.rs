//! The worker that moves new and updated functions from `Pending`/`InProgress` to
//! `Active`/`Successful` once their resources are ready.
//!
//! The preparation: unpacking the package for sandboxes and, for a Python function, having
//! its modules compiled to bytecode (`Manager::compile_python_package`; a failure there costs
//! only speed). Jobs are replayed at start-up for records a crash left unsettled, so a change
//! is never stuck in `Pending`.

use alonzo_store::StoreError;
use tokio::sync::mpsc;

use crate::Control;

/// A record to settle: `(function name, version)`.
pub(crate) type SettleJob = (String, String);

impl Control {
    /// Queues a record for settling.
    pub(crate) fn schedule_settle(&self, name: &str, version: &str) {
        // The receiver lives as long as any `Control`, so sending cannot fail while we exist.
        let _ = self.inner.settle_tx.send((name.to_owned(), version.to_owned()));
    }

    async fn settle(&self, name: &str, version: &str) -> Result<(), StoreError> {
        let current = match self.inner.meta.get_version(name, version).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        if !current.is_busy() {
            return Ok(());
        }
        let mut next = current.clone();
        match self.unpacked_code(&current.code.sha256_hex).await {
            Ok(dir) => {
                self.compile_python(&current, &dir).await;
                next.settle();
            }
            Err(e) => {
                tracing::warn!(function = %name, error = %e, "preparing the function's code failed");
                next.state = alonzo_model::FunctionState::Failed;
                next.state_reason =
                    Some("The function's code package could not be prepared.".into());
                next.state_reason_code = Some("InternalError".into());
                next.last_update_status = alonzo_model::LastUpdateStatus::Failed;
            }
        }
        match self.inner.meta.update_version(&next, &current.revision_id).await {
            Ok(()) | Err(StoreError::NotFound | StoreError::RevisionMismatch) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Control {
    /// Has the modules of a Python function's unpacked package and merged layers compiled to
    /// bytecode, so that its cold starts do not compile them; logged, never failing the
    /// function.
    async fn compile_python(&self, record: &alonzo_model::FunctionRecord, dir: &std::path::Path) {
        let Some(sandbox) = self.inner.sandbox.as_ref() else { return };
        let runtime = &record.config.runtime;
        let Some(alonzo_sandbox::RuntimeKind::Python(python)) = self.runtimes().get(runtime) else {
            return;
        };
        if let Err(e) = sandbox.compile_python_package(runtime, python, dir, "/var/task").await {
            tracing::warn!(function = %record.name, error = %e, "compiling the package's Python modules failed");
        }
        // The merged layers too: made now rather than at the first cold start.
        match self.opt_dir(&record.config.layer_code).await {
            Ok(Some(opt)) => {
                if let Err(e) = sandbox.compile_python_package(runtime, python, &opt, "/opt").await
                {
                    tracing::warn!(function = %record.name, error = %e, "compiling the layers' Python modules failed");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(function = %record.name, error = %e, "merging the layers failed")
            }
        }
    }
}

/// Records settled at once: compiling a large package takes a core for seconds, and the
/// functions created beside it should not wait behind it.
const SETTLE_CONCURRENCY: usize = 4;

/// Settles queued records, [`SETTLE_CONCURRENCY`] at a time, until every `Control` is
/// dropped; a failing record is logged and retried after a pause, and never stops the loop.
/// Two jobs for the same record may overlap: each settles the record as it is then, and the
/// store's revision check lets only one write.
pub(crate) async fn run(control: Control, mut jobs: mpsc::UnboundedReceiver<SettleJob>) {
    let weak = std::sync::Arc::downgrade(&control.inner);
    drop(control);
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(SETTLE_CONCURRENCY));
    while let Some((name, version)) = jobs.recv().await {
        let Ok(permit) = std::sync::Arc::clone(&permits).acquire_owned().await else { break };
        let Some(inner) = weak.upgrade() else { break };
        let control = Control { inner };
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = control.settle(&name, &version).await {
                tracing::warn!(function = %name, %version, error = %e, "settling failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                control.schedule_settle(&name, &version);
            }
        });
    }
}

//! Unpacked packages for sandboxes: `<tasks>/<sha256>/` holds the extracted zip that
//! sandboxes bind read-only at `/var/task`. Content-addressed, so functions with the same
//! package share one copy; extracted into a temporary directory and renamed into place, so a
//! crash never leaves a half-extracted package under its final name.

use std::collections::HashSet;
use std::path::PathBuf;

use alonzo_model::ValidationError;

use crate::{package, Control, ControlError};

impl Control {
    /// The directory holding the package `sha256_hex` unpacked, extracting it if needed.
    pub(crate) async fn unpacked_code(&self, sha256_hex: &str) -> Result<PathBuf, ControlError> {
        let dest = self.inner.config.tasks_dir.join(sha256_hex);
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            return Ok(dest);
        }
        // Held shared while extracting, so the collector (which takes it exclusively) never
        // removes a half-written temporary directory.
        let _gate = self.inner.code_gate.read().await;
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            return Ok(dest);
        }
        let zip = self.code(sha256_hex).await?;
        let tmp =
            self.inner.config.tasks_dir.join(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let limits = self.inner.config.package_limits;
        let final_dir = dest.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ControlError> {
            std::fs::create_dir(&tmp).map_err(io_error)?;
            let extracted = package::extract(&zip, &tmp, &limits);
            if let Err(e) = extracted {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e.into());
            }
            if std::fs::rename(&tmp, &final_dir).is_err() {
                // Another task extracted the same package first; theirs is as good as ours.
                let _ = std::fs::remove_dir_all(&tmp);
            }
            Ok(())
        })
        .await
        .map_err(|e| {
            ControlError::Invalid(ValidationError::param(format!("extraction failed: {e}")))
        })??;
        Ok(dest)
    }

    /// Checks a package (`package::inspect`, which inflates every entry) on a blocking thread:
    /// a large package takes a core for a second, which the server's few async threads must
    /// not lose. Gives the bytes back with what they hold.
    pub(crate) async fn inspect_package(
        &self,
        zip: Vec<u8>,
    ) -> Result<(Vec<u8>, crate::package::PackageInfo), ControlError> {
        let limits = self.inner.config.package_limits;
        tokio::task::spawn_blocking(move || {
            let info = crate::package::inspect(&zip, &limits)?;
            Ok((zip, info))
        })
        .await
        .map_err(|e| io_error(std::io::Error::other(e.to_string())))?
    }

    /// Removes unpacked packages no record refers to (and leftovers of interrupted
    /// extractions). Merged layer directories (`opt-*`), which running sandboxes may have
    /// bound, are only removed at start-up, before any sandbox exists.
    pub(crate) async fn remove_unpacked_except(&self, referenced: &HashSet<String>, startup: bool) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.inner.config.tasks_dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("opt-") && !startup {
                continue;
            }
            if !referenced.contains(&name) {
                let _ = tokio::fs::remove_dir_all(entry.path()).await;
            }
        }
    }
}

/// A filesystem failure of the platform: logged, shown to clients as an internal error.
pub(crate) fn io_error(e: std::io::Error) -> ControlError {
    ControlError::Internal(alonzo_store::StoreError::Backend(e.to_string()))
}

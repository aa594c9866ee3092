//! Published versions: `PublishVersion` (and `Publish: true` on create and code updates)
//! freezes `$LATEST`'s code and configuration under the next number, which is never reused;
//! `DeleteFunction` with a version qualifier removes one version.

use alonzo_model::{FunctionRecord, ValidationError, LATEST};
use alonzo_store::StoreError;

use crate::functions::{check_revision, new_revision};
use crate::{Control, ControlError, FunctionView};

/// Input of `PublishVersion`.
#[derive(Debug, Clone, Default)]
pub struct PublishInput {
    /// Publish only if `$LATEST`'s `CodeSha256` (base64) is this.
    pub code_sha256_b64: Option<String>,
    /// The version's description (defaults to `$LATEST`'s).
    pub description: Option<String>,
    /// Publish only if `$LATEST`'s revision is this.
    pub revision_id: Option<String>,
}

impl Control {
    /// `PublishVersion`.
    pub async fn publish_version(
        &self,
        function_name: &str,
        input: PublishInput,
    ) -> Result<FunctionView, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        let latest = self.load(&name, LATEST).await?;
        check_revision(&latest, input.revision_id.as_deref())?;
        if let Some(expected) = &input.code_sha256_b64 {
            if *expected != code_sha256_b64(&latest.code.sha256_hex) {
                return Err(ControlError::PreconditionFailed(
                    "CodeSha256 does not match the code of the function's $LATEST version.".into(),
                ));
            }
        }
        self.check_not_busy(&latest)?;
        if let Some(description) = &input.description {
            if description.chars().count() > 256 {
                return Err(ValidationError::constraint(
                    description,
                    "description",
                    "Member must have length less than or equal to 256",
                )
                .into());
            }
        }
        self.publish(latest, input.description, input.revision_id.is_some()).await
    }

    /// Freezes `latest` as a new version, unless the newest version already has the same code
    /// and configuration, in which case that version is returned.
    pub(crate) async fn publish(
        &self,
        latest: FunctionRecord,
        description: Option<String>,
        had_precondition: bool,
    ) -> Result<FunctionView, ControlError> {
        let _serial = self.inner.publish_lock.lock().await;
        let versions = self.inner.meta.list_versions(&latest.name).await?;
        if let Some(newest) = versions.iter().rfind(|v| v.version != LATEST) {
            if same_content(newest, &latest) {
                return Ok(FunctionView::of_version(newest.clone()));
            }
        }
        let mut record = latest.clone();
        record.revision_id = new_revision();
        record.last_modified = chrono::Utc::now();
        if let Some(d) = description {
            record.config.description = d;
        }
        let number = match self.inner.meta.publish_version(&record, &latest.revision_id).await {
            Ok(n) => n,
            Err(StoreError::RevisionMismatch) if had_precondition => {
                return Err(ControlError::PreconditionFailed(
                    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
                ))
            }
            Err(StoreError::RevisionMismatch) => {
                return Err(ControlError::Conflict(
                    "The function was changed while publishing; retry the request.".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        record.version = number.to_string();
        if record.is_busy() {
            self.schedule_settle(&record.name, &record.version);
        }
        Ok(FunctionView::of_version(record))
    }

    /// Deletes one published version, unless an alias points at it.
    pub(crate) async fn delete_version(
        &self,
        name: &str,
        version: &str,
    ) -> Result<(), ControlError> {
        self.load(name, version).await?;
        let aliases = self.inner.meta.list_aliases(name).await?;
        if let Some(alias) = aliases
            .iter()
            .find(|a| a.function_version == version || a.routing.contains_key(version))
        {
            return Err(ControlError::Conflict(format!(
                "Unable to delete version because the following aliases reference it: [{}]",
                alias.name
            )));
        }
        match self.inner.meta.delete_version(name, version).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(StoreError::InUse) => {
                return Err(ControlError::Conflict(
                    "Unable to delete version because an alias references it.".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        self.sync_provisioned(name).await?;
        if let Some(sandbox) = &self.inner.sandbox {
            sandbox.retire(name, Some(version));
        }
        drop(self.collect_unreferenced_code_soon());
        Ok(())
    }
}

/// Whether two records would run the same code with the same configuration (descriptions
/// aside: a version's description is its own).
fn same_content(a: &FunctionRecord, b: &FunctionRecord) -> bool {
    let mut a_config = a.config.clone();
    a_config.description.clone_from(&b.config.description);
    a.code.sha256_hex == b.code.sha256_hex && a_config == b.config
}

/// `CodeSha256` as Lambda shows it: base64 of the SHA-256.
pub(crate) fn code_sha256_b64(hex_hash: &str) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..hex_hash.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex_hash.get(i * 2..i * 2 + 2)?, 16).ok())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

//! Layers: publishing, reading, listing and deleting layer versions; resolving a function's
//! `Layers` to their archives; and assembling the merged, read-only `/opt` a sandbox sees
//! (layers extracted in list order, later files overriding earlier ones).

use std::path::{Path, PathBuf};

use alonzo_model::{
    validate_layer_name, CodeRef, FunctionConfig, LayerVersionRecord, ValidationError,
    LAMBDA_RUNTIME_IDS,
};
use alonzo_store::StoreError;

use crate::code::io_error;
use crate::{Control, ControlError};

/// Input of `PublishLayerVersion`.
#[derive(Debug, Clone, Default)]
pub struct PublishLayerInput {
    /// The zip archive.
    pub zip: Vec<u8>,
    /// Description.
    pub description: Option<String>,
    /// Declared compatible runtimes (at most 15).
    pub compatible_runtimes: Vec<String>,
    /// Declared compatible architectures (at most 2).
    pub compatible_architectures: Vec<String>,
    /// Licence.
    pub license_info: Option<String>,
}

impl Control {
    /// `PublishLayerVersion`.
    pub async fn publish_layer_version(
        &self,
        name: &str,
        mut input: PublishLayerInput,
    ) -> Result<LayerVersionRecord, ControlError> {
        let name = self.layer_name(name)?;
        if input.compatible_runtimes.len() > 15 {
            return Err(
                ValidationError::param("CompatibleRuntimes can list at most 15 runtimes.").into()
            );
        }
        let unknown =
            input.compatible_runtimes.iter().find(|r| !LAMBDA_RUNTIME_IDS.contains(&r.as_str()));
        if let Some(bad) = unknown {
            let constraint = "Member must satisfy enum value set of Lambda's runtime ids";
            return Err(ValidationError::constraint(bad, "compatibleRuntimes", constraint).into());
        }
        if input.compatible_architectures.len() > 2
            || input
                .compatible_architectures
                .iter()
                .any(|a| alonzo_model::Architecture::parse(a).is_none())
        {
            return Err(ValidationError::param(
                "CompatibleArchitectures must be at most two of x86_64, arm64.",
            )
            .into());
        }
        if input.description.as_ref().is_some_and(|d| d.chars().count() > 256)
            || input.license_info.as_ref().is_some_and(|l| l.chars().count() > 512)
        {
            return Err(ValidationError::param(
                "Description is limited to 256 characters and LicenseInfo to 512.",
            )
            .into());
        }
        let (zip, info) = self.inspect_package(input.zip).await?;
        input.zip = zip;
        let _gate = self.inner.code_gate.read().await;
        let size = input.zip.len() as u64;
        let sha256_hex = self.inner.blobs.put(input.zip).await?;
        let mut record = LayerVersionRecord {
            name,
            version: 0,
            description: input.description.unwrap_or_default(),
            compatible_runtimes: input.compatible_runtimes,
            compatible_architectures: input.compatible_architectures,
            license_info: input.license_info,
            code: CodeRef { sha256_hex, size, unzipped_size: info.unzipped_bytes },
            created: chrono::Utc::now(),
        };
        record.version = self.inner.meta.publish_layer_version(&record).await?;
        Ok(record)
    }

    /// `GetLayerVersion`.
    pub async fn get_layer_version(
        &self,
        name: &str,
        version: u64,
    ) -> Result<LayerVersionRecord, ControlError> {
        let name = self.layer_name(name)?;
        self.inner
            .meta
            .get_layer_version(&name, version)
            .await
            .map_err(|e| self.layer_not_found(e, &name, version))
    }

    /// `GetLayerVersionByArn`.
    pub async fn get_layer_version_by_arn(
        &self,
        arn: &str,
    ) -> Result<LayerVersionRecord, ControlError> {
        let (name, version) = self.account().parse_layer_version_arn(arn)?;
        self.get_layer_version(&name, version).await
    }

    /// `ListLayerVersions` (newest first), filtered by declared compatibility.
    pub async fn list_layer_versions(
        &self,
        name: &str,
        runtime: Option<&str>,
        architecture: Option<&str>,
    ) -> Result<Vec<LayerVersionRecord>, ControlError> {
        let name = self.layer_name(name)?;
        let all = self.inner.meta.list_layer_versions(&name).await?;
        Ok(all.into_iter().filter(|l| compatible(l, runtime, architecture)).collect())
    }

    /// `ListLayers`: each layer with its newest version matching the filters.
    pub async fn list_layers(
        &self,
        runtime: Option<&str>,
        architecture: Option<&str>,
    ) -> Result<Vec<LayerVersionRecord>, ControlError> {
        let mut latest: Vec<LayerVersionRecord> = Vec::new();
        for layer in self.inner.meta.list_all_layer_versions().await? {
            if compatible(&layer, runtime, architecture)
                && latest.last().is_none_or(|l| l.name != layer.name)
            {
                latest.push(layer);
            }
        }
        Ok(latest)
    }

    /// `DeleteLayerVersion`. Functions already using it keep their copy of its archive.
    pub async fn delete_layer_version(&self, name: &str, version: u64) -> Result<(), ControlError> {
        let name = self.layer_name(name)?;
        match self.inner.meta.delete_layer_version(&name, version).await {
            Ok(()) => {
                drop(self.collect_unreferenced_code_soon());
                Ok(())
            }
            Err(StoreError::NotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Resolves `config.layers` to their archives (each must exist), and checks that the
    /// function and its layers unpack to at most the package limit together.
    pub(crate) async fn attach_layers(
        &self,
        config: &mut FunctionConfig,
        code_unzipped: u64,
    ) -> Result<(), ControlError> {
        let mut codes = Vec::with_capacity(config.layers.len());
        let mut names = std::collections::HashSet::new();
        for arn in &config.layers {
            let (name, version) = self.account().parse_layer_version_arn(arn)?;
            if !names.insert(name.clone()) {
                return Err(ValidationError::param(format!(
                    "Two different versions of the same layer are not allowed: {name}"
                ))
                .into());
            }
            let layer = self.inner.meta.get_layer_version(&name, version).await.map_err(|_| {
                ValidationError::param(format!("Layer version {arn} does not exist."))
            })?;
            codes.push(layer.code);
        }
        let limit = self.inner.config.package_limits.max_unzipped_bytes;
        let total: u64 = code_unzipped + codes.iter().map(|c| c.unzipped_size).sum::<u64>();
        if total > limit {
            return Err(ValidationError::param(format!(
                "Function code combined with layers exceeds the maximum allowed size of {limit} bytes. The actual size is {total} bytes."
            ))
            .into());
        }
        config.layer_code = codes;
        Ok(())
    }

    /// The merged `/opt` of a list of layer archives, built once per combination.
    pub(crate) async fn opt_dir(
        &self,
        layers: &[CodeRef],
    ) -> Result<Option<PathBuf>, ControlError> {
        if layers.is_empty() {
            return Ok(None);
        }
        let key: String = layers.iter().map(|c| &c.sha256_hex[..16]).collect::<Vec<_>>().join("-");
        let dest = self.inner.config.tasks_dir.join(format!("opt-{key}"));
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            return Ok(Some(dest));
        }
        let mut sources = Vec::with_capacity(layers.len());
        for layer in layers {
            sources.push(self.unpacked_code(&layer.sha256_hex).await?);
        }
        let _gate = self.inner.code_gate.read().await;
        let tmp =
            self.inner.config.tasks_dir.join(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let final_dir = dest.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir(&tmp)?;
            for source in &sources {
                overlay(source, &tmp)?;
            }
            if std::fs::rename(&tmp, &final_dir).is_err() {
                std::fs::remove_dir_all(&tmp)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| io_error(std::io::Error::other(e.to_string())))?
        .map_err(io_error)?;
        Ok(Some(dest))
    }

    fn layer_name(&self, name_or_arn: &str) -> Result<String, ControlError> {
        let name = match name_or_arn.strip_prefix(&self.account().layer_arn("")) {
            Some(rest) => rest.to_owned(),
            None => name_or_arn.to_owned(),
        };
        validate_layer_name(&name)?;
        Ok(name)
    }

    fn layer_not_found(&self, e: StoreError, name: &str, version: u64) -> ControlError {
        match e {
            StoreError::NotFound => ControlError::NotFound(format!(
                "Layer version {} does not exist.",
                self.account().layer_version_arn(name, version)
            )),
            other => other.into(),
        }
    }
}

fn compatible(
    layer: &LayerVersionRecord,
    runtime: Option<&str>,
    architecture: Option<&str>,
) -> bool {
    runtime.is_none_or(|r| layer.compatible_runtimes.iter().any(|c| c == r))
        && architecture.is_none_or(|a| layer.compatible_architectures.iter().any(|c| c == a))
}

/// Copies the tree `source` into `dest` as hard links (the unpacked layers are immutable),
/// replacing files that an earlier layer put at the same path.
fn overlay(source: &Path, dest: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let target = dest.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if target.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
                std::fs::remove_file(&target)?;
            }
            if !target.exists() {
                std::fs::create_dir(&target)?;
            }
            overlay(&entry.path(), &target)?;
        } else {
            if let Ok(meta) = target.symlink_metadata() {
                if meta.is_dir() {
                    std::fs::remove_dir_all(&target)?;
                } else {
                    std::fs::remove_file(&target)?;
                }
            }
            if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
            } else {
                std::fs::hard_link(entry.path(), &target)?;
            }
        }
    }
    Ok(())
}

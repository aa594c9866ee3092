//! Function management: create, read, update code and configuration, delete, list, tags and
//! account settings.

use std::collections::BTreeMap;

use alonzo_model::{
    validate_tags, Architecture, CodeRef, EnvironmentVars, FunctionConfig, FunctionRecord,
    FunctionRef, FunctionState, LastUpdateStatus, Qualifier, TracingMode, ValidationError,
    VpcConfig, LATEST,
};
use alonzo_store::StoreError;
use chrono::Utc;

use crate::{Control, ControlError};

/// `ListFunctions` never returns more than this many items per page.
const MAX_PAGE: usize = 50;

/// Optional changes to a function's configuration: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ConfigPatch {
    /// Runtime id.
    pub runtime: Option<String>,
    /// Handler.
    pub handler: Option<String>,
    /// Execution role ARN.
    pub role: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Timeout, seconds.
    pub timeout: Option<u32>,
    /// Memory, MB.
    pub memory_size: Option<u32>,
    /// Replaces the whole variable map.
    pub environment: Option<EnvironmentVars>,
    /// `/tmp` size, MB.
    pub ephemeral_storage: Option<u32>,
    /// X-Ray mode.
    pub tracing_mode: Option<TracingMode>,
    /// `Text` or `JSON`.
    pub log_format: Option<String>,
    /// Application log level.
    pub application_log_level: Option<String>,
    /// System log level.
    pub system_log_level: Option<String>,
    /// Log group.
    pub log_group: Option<String>,
    /// Dead-letter target (`Some("")` removes it).
    pub dead_letter_target: Option<String>,
    /// Replaces the layer list.
    pub layers: Option<Vec<String>>,
    /// KMS key (`Some("")` reverts to the default).
    pub kms_key_arn: Option<String>,
    /// Network attachment.
    pub vpc: Option<VpcConfig>,
}

/// Input of `CreateFunction`.
#[derive(Debug, Clone)]
pub struct CreateFunction {
    /// The name as given (bare name or ARN without qualifier).
    pub function_name: String,
    /// The configuration; `role`, `runtime` and `handler` are required for zip packages.
    pub config: ConfigPatch,
    /// The zip package.
    pub zip: Vec<u8>,
    /// Architectures (at most one).
    pub architectures: Option<Vec<String>>,
    /// Tags of the new function.
    pub tags: BTreeMap<String, String>,
    /// Also publish version 1 (the response is then that version).
    pub publish: bool,
}

/// Input of `UpdateFunctionCode`.
#[derive(Debug, Clone)]
pub struct UpdateCode {
    /// The new zip package.
    pub zip: Vec<u8>,
    /// New architectures, if given.
    pub architectures: Option<Vec<String>>,
    /// Precondition on the current revision.
    pub revision_id: Option<String>,
    /// Validate only; change nothing.
    pub dry_run: bool,
    /// Also publish a version (the response is then that version).
    pub publish: bool,
}

/// A function version as an operation returns it.
#[derive(Debug, Clone)]
pub struct FunctionView {
    /// The stored record.
    pub record: FunctionRecord,
    /// The qualifier to show in `FunctionArn` (the version, or the alias the caller named);
    /// `None` for the unqualified ARN.
    pub arn_qualifier: Option<String>,
}

impl FunctionView {
    /// A view with the unqualified ARN.
    pub fn unqualified(record: FunctionRecord) -> Self {
        Self { record, arn_qualifier: None }
    }

    /// A view whose ARN names the record's own version.
    pub fn of_version(record: FunctionRecord) -> Self {
        let arn_qualifier = Some(record.version.clone());
        Self { record, arn_qualifier }
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ListPage<T> {
    /// The items.
    pub items: Vec<T>,
    /// Marker for the next page, if there is one.
    pub next_marker: Option<String>,
}

/// What `GetAccountSettings` reports.
#[derive(Debug, Clone, Copy)]
pub struct AccountSettings {
    /// Code storage quota, bytes.
    pub total_code_size_limit: u64,
    /// Largest unzipped function plus layers, bytes.
    pub code_size_unzipped: u64,
    /// Largest directly uploaded zip, bytes.
    pub code_size_zipped: u64,
    /// Account concurrency limit.
    pub concurrent_executions: u32,
    /// Concurrency not reserved by any function.
    pub unreserved_concurrent_executions: u32,
    /// Stored code, bytes.
    pub total_code_size: u64,
    /// Number of functions.
    pub function_count: u64,
}

impl Control {
    /// `CreateFunction`: validates everything, stores the package, then the record
    /// (`State: Pending`), and schedules it to become `Active`.
    pub async fn create_function(
        &self,
        mut input: CreateFunction,
    ) -> Result<FunctionView, ControlError> {
        let name = FunctionRef::validate_new_name(&input.function_name, self.account())?;
        let patch = input.config;
        let role = patch.role.clone().unwrap_or_default();
        let mut config = FunctionConfig::new(&name, String::new(), String::new(), role);
        apply_patch(&mut config, patch);
        if let Some(archs) = input.architectures {
            config.architectures = parse_architectures(&archs)?;
        }
        if config.runtime.is_empty() {
            return Err(ValidationError::param(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            )
            .into());
        }
        self.validate_config(&config)?;
        validate_tags(&input.tags)?;
        let (zip, info) = self.inspect_package(input.zip).await?;
        input.zip = zip;
        self.attach_layers(&mut config, info.unzipped_bytes).await?;
        self.check_bootstrap(&config, info.has_root_bootstrap);

        let _gate = self.inner.code_gate.read().await;
        let code = self.store_code(input.zip, info.unzipped_bytes).await?;
        let record = FunctionRecord {
            name: name.clone(),
            version: LATEST.to_owned(),
            config,
            code,
            last_modified: Utc::now(),
            revision_id: new_revision(),
            state: FunctionState::Pending,
            state_reason: Some("The function is being created.".to_owned()),
            state_reason_code: Some("Creating".to_owned()),
            last_update_status: LastUpdateStatus::Successful,
            last_update_status_reason: None,
        };
        match self.inner.meta.create_function(&record, &input.tags).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists) => {
                return Err(ControlError::Conflict(format!("Function already exist: {name}")));
            }
            Err(e) => return Err(e.into()),
        }
        self.schedule_settle(&record.name, &record.version);
        if input.publish {
            return self.publish(record, None, false).await;
        }
        Ok(FunctionView::unqualified(record))
    }

    /// `GetFunction` / `GetFunctionConfiguration`: the record a name and qualifier resolve to.
    pub async fn get_function(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionView, ControlError> {
        let (name, qualifier) = self.resolve(function_name, qualifier)?;
        let Some(qualifier) = qualifier else {
            return Ok(FunctionView::unqualified(self.load(&name, LATEST).await?));
        };
        let version = match &qualifier {
            Qualifier::Alias(alias) => self.load_alias(&name, alias).await?.function_version,
            other => other.as_string(),
        };
        let record = self.load(&name, &version).await?;
        Ok(FunctionView { record, arn_qualifier: Some(qualifier.as_string()) })
    }

    /// `UpdateFunctionCode`: replaces `$LATEST`'s package.
    pub async fn update_code(
        &self,
        function_name: &str,
        mut input: UpdateCode,
    ) -> Result<FunctionView, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        let current = self.load(&name, LATEST).await?;
        check_revision(&current, input.revision_id.as_deref())?;
        let (zip, info) = self.inspect_package(input.zip).await?;
        input.zip = zip;
        let mut next = current.clone();
        if let Some(archs) = input.architectures {
            next.config.architectures = parse_architectures(&archs)?;
        }
        if input.dry_run {
            return Ok(FunctionView::unqualified(current));
        }
        self.check_not_busy(&current)?;
        self.check_bootstrap(&next.config, info.has_root_bootstrap);
        let _gate = self.inner.code_gate.read().await;
        next.code = self.store_code(input.zip, info.unzipped_bytes).await?;
        let view = self.commit_update(current, next, input.revision_id.is_some()).await?;
        if input.publish {
            return self.publish(view.record, None, false).await;
        }
        Ok(view)
    }

    /// `UpdateFunctionConfiguration`: changes `$LATEST`'s settings.
    pub async fn update_configuration(
        &self,
        function_name: &str,
        patch: ConfigPatch,
        revision_id: Option<&str>,
    ) -> Result<FunctionView, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        let current = self.load(&name, LATEST).await?;
        check_revision(&current, revision_id)?;
        let mut next = current.clone();
        apply_patch(&mut next.config, patch);
        self.validate_config(&next.config)?;
        if next.config.layers != current.config.layers {
            self.attach_layers(&mut next.config, current.code.unzipped_size).await?;
        }
        self.check_not_busy(&current)?;
        self.commit_update(current, next, revision_id.is_some()).await
    }

    /// `DeleteFunction`: removes the function with all its versions and aliases (a version
    /// qualifier deletes one version; `$LATEST` cannot be deleted on its own).
    pub async fn delete_function(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let (name, qualifier) = self.resolve(function_name, qualifier)?;
        match qualifier {
            None => {}
            Some(Qualifier::Version(n)) => return self.delete_version(&name, &n.to_string()).await,
            Some(Qualifier::Latest) => {
                return Err(ValidationError::param(
                    "$LATEST version cannot be deleted without deleting the function.",
                )
                .into())
            }
            Some(Qualifier::Alias(_)) => {
                return Err(ValidationError::param(
                    "DeleteFunction does not delete aliases; use DeleteAlias.",
                )
                .into())
            }
        }
        self.load(&name, LATEST).await?;
        if let Some(sandbox) = &self.inner.sandbox {
            sandbox.retire(&name, None);
        }
        match self.inner.meta.delete_function(&name).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        // Its provisioned-concurrency configurations went with it: their periods end.
        self.sync_provisioned(&name).await?;
        self.collect_unreferenced_code().await?;
        Ok(())
    }

    /// `ListFunctions`: `$LATEST` of every function, by name, at most 50 a page.
    pub async fn list_functions(
        &self,
        marker: Option<&str>,
        max_items: Option<usize>,
        all_versions: bool,
    ) -> Result<ListPage<FunctionRecord>, ControlError> {
        let limit = max_items.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let mut items = self.inner.meta.list_functions(marker, limit + 1).await?;
        let next_marker = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|r| r.name.clone())
        } else {
            None
        };
        if all_versions {
            // `FunctionVersion=ALL`: every version of each function on the page, which keeps
            // the marker a function name.
            let mut expanded = Vec::with_capacity(items.len());
            for latest in items {
                match self.inner.meta.list_versions(&latest.name).await {
                    Ok(versions) => expanded.extend(versions),
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            items = expanded;
        }
        Ok(ListPage { items, next_marker })
    }

    /// `ListVersionsByFunction`: every version, `$LATEST` first.
    pub async fn list_versions(
        &self,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<usize>,
    ) -> Result<ListPage<FunctionRecord>, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        let all =
            self.inner.meta.list_versions(&name).await.map_err(|e| self.not_found(e, &name))?;
        let start =
            marker.and_then(|m| all.iter().position(|r| r.version == m)).map_or(0, |i| i + 1);
        let limit = max_items.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let items: Vec<FunctionRecord> = all.iter().skip(start).take(limit).cloned().collect();
        let next_marker = (start + items.len() < all.len())
            .then(|| items.last().map(|r| r.version.clone()))
            .flatten();
        Ok(ListPage { items, next_marker })
    }

    /// `GetAccountSettings`.
    pub async fn account_settings(&self) -> Result<AccountSettings, ControlError> {
        let usage = self.inner.meta.account_usage().await?;
        let limits = &self.inner.config.package_limits;
        Ok(AccountSettings {
            total_code_size_limit: 80_530_636_800,
            code_size_unzipped: limits.max_unzipped_bytes,
            code_size_zipped: 52_428_800,
            concurrent_executions: self.inner.config.concurrency_limit,
            unreserved_concurrent_executions: self.unreserved_concurrency().await?,
            total_code_size: usage.total_code_size,
            function_count: usage.function_count,
        })
    }

    /// `ListTags` on a function ARN.
    pub async fn list_tags(
        &self,
        resource_arn: &str,
    ) -> Result<BTreeMap<String, String>, ControlError> {
        if let Some(uuid) = Self::mapping_uuid_of(resource_arn) {
            return self.mapping_tags(uuid).await;
        }
        let name = self.resolve_tag_resource(resource_arn)?;
        self.inner.meta.get_tags(&name).await.map_err(|e| self.not_found(e, &name))
    }

    /// `TagResource`: adds or overwrites tags.
    pub async fn tag_resource(
        &self,
        resource_arn: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), ControlError> {
        if let Some(uuid) = Self::mapping_uuid_of(resource_arn) {
            return self.change_mapping_tags(uuid, |current| current.extend(tags)).await;
        }
        let name = self.resolve_tag_resource(resource_arn)?;
        let mut current =
            self.inner.meta.get_tags(&name).await.map_err(|e| self.not_found(e, &name))?;
        current.extend(tags);
        validate_tags(&current)?;
        self.inner.meta.put_tags(&name, &current).await.map_err(|e| self.not_found(e, &name))
    }

    /// `UntagResource`: removes the given keys.
    pub async fn untag_resource(
        &self,
        resource_arn: &str,
        keys: &[String],
    ) -> Result<(), ControlError> {
        if let Some(uuid) = Self::mapping_uuid_of(resource_arn) {
            return self
                .change_mapping_tags(uuid, |current| {
                    for key in keys {
                        current.remove(key);
                    }
                })
                .await;
        }
        let name = self.resolve_tag_resource(resource_arn)?;
        let mut current =
            self.inner.meta.get_tags(&name).await.map_err(|e| self.not_found(e, &name))?;
        for key in keys {
            current.remove(key);
        }
        self.inner.meta.put_tags(&name, &current).await.map_err(|e| self.not_found(e, &name))
    }

    /// The bytes of a stored package.
    pub async fn code(&self, sha256_hex: &str) -> Result<Vec<u8>, ControlError> {
        self.inner.blobs.get(sha256_hex).await.map_err(|e| match e {
            StoreError::NotFound => {
                ControlError::NotFound("The resource you requested does not exist.".into())
            }
            other => other.into(),
        })
    }

    /// Resolves a name and an optional `Qualifier` parameter to the bare name and the one
    /// qualifier they name together; conflicting qualifiers are rejected.
    pub fn resolve(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, Option<Qualifier>), ControlError> {
        let fref = FunctionRef::parse(function_name, self.account())?;
        let param = match qualifier {
            Some(q) => Some(Qualifier::parse(q).ok_or_else(|| {
                ValidationError::constraint(
                    q,
                    "qualifier",
                    "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)",
                )
            })?),
            None => None,
        };
        let qualifier = match (fref.qualifier, param) {
            (Some(a), Some(b)) if a != b => {
                return Err(ValidationError::param("The derived qualifier from the function name does not match the specified qualifier.").into())
            }
            (a, b) => a.or(b),
        };
        Ok((fref.name, qualifier))
    }

    pub(crate) fn resolve_unqualified(&self, function_name: &str) -> Result<String, ControlError> {
        let fref = FunctionRef::parse(function_name, self.account())?;
        match fref.qualifier {
            None | Some(Qualifier::Latest) => Ok(fref.name),
            Some(_) => Err(ValidationError::param("Qualifier is not supported for this operation; only the unpublished version can be changed.").into()),
        }
    }

    /// Tag operations take a full, unqualified function ARN.
    fn resolve_tag_resource(&self, arn: &str) -> Result<String, ControlError> {
        if !arn.starts_with("arn:") {
            return Err(ValidationError::param(format!("Invalid resource ARN: {arn}")).into());
        }
        let fref = FunctionRef::parse(arn, self.account())?;
        if fref.qualifier.is_some() {
            return Err(ValidationError::param(
                "Tags are not supported on a qualified function ARN.",
            )
            .into());
        }
        Ok(fref.name)
    }

    pub(crate) async fn load(
        &self,
        name: &str,
        version: &str,
    ) -> Result<FunctionRecord, ControlError> {
        let found = self.inner.meta.get_version(name, version);
        self.timed_store("get_version", found).await.map_err(|e| match e {
            StoreError::NotFound if version == LATEST => self.not_found(StoreError::NotFound, name),
            StoreError::NotFound => ControlError::NotFound(format!(
                "Function not found: {}",
                self.account().qualified_function_arn(name, version)
            )),
            other => other.into(),
        })
    }

    fn not_found(&self, e: StoreError, name: &str) -> ControlError {
        match e {
            StoreError::NotFound => ControlError::NotFound(format!(
                "Function not found: {}",
                self.account().function_arn(name)
            )),
            other => other.into(),
        }
    }

    fn validate_config(&self, config: &FunctionConfig) -> Result<(), ControlError> {
        if self.runtimes().get(&config.runtime).is_none() {
            return Err(ValidationError::param(format!(
                "Value {} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: [{}] (the runtimes available on this Alonzo host)",
                config.runtime,
                self.runtimes().ids().join(", ")
            ))
            .into());
        }
        config.validate()?;
        if let Some(vpc) = &config.vpc {
            self.inner
                .config
                .networks
                .resolve(&vpc.subnet_ids, &vpc.security_group_ids)
                .map_err(ValidationError::param)?;
        }
        Ok(())
    }

    /// A custom runtime without a `bootstrap` may still get one from a layer, so this only
    /// warns, as Lambda only fails at invoke time.
    fn check_bootstrap(&self, config: &FunctionConfig, has_bootstrap: bool) {
        if config.runtime.starts_with("provided") && !has_bootstrap && config.layers.is_empty() {
            tracing::debug!(runtime = %config.runtime, "custom-runtime package without a root bootstrap");
        }
    }

    pub(crate) fn check_not_busy(&self, record: &FunctionRecord) -> Result<(), ControlError> {
        if record.is_busy() {
            return Err(ControlError::Conflict(format!(
                "The operation cannot be performed at this time. An update is in progress for resource: {}",
                self.account().function_arn(&record.name)
            )));
        }
        Ok(())
    }

    async fn store_code(&self, zip: Vec<u8>, unzipped_size: u64) -> Result<CodeRef, ControlError> {
        let size = zip.len() as u64;
        let sha256_hex = self.inner.blobs.put(zip).await?;
        Ok(CodeRef { sha256_hex, size, unzipped_size })
    }

    /// Writes `next` over `current` (compare-and-swap on the revision) as an update in
    /// progress, and schedules it to settle.
    async fn commit_update(
        &self,
        current: FunctionRecord,
        mut next: FunctionRecord,
        had_precondition: bool,
    ) -> Result<FunctionView, ControlError> {
        next.last_modified = Utc::now();
        next.revision_id = new_revision();
        next.last_update_status = LastUpdateStatus::InProgress;
        next.last_update_status_reason = Some("The function is being updated.".to_owned());
        match self.inner.meta.update_version(&next, &current.revision_id).await {
            Ok(()) => {}
            Err(StoreError::RevisionMismatch) if had_precondition => {
                return Err(ControlError::PreconditionFailed(
                    "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
                ))
            }
            Err(StoreError::RevisionMismatch) => return Err(self.check_not_busy(&next).err().unwrap_or_else(|| {
                ControlError::Conflict("The function was changed concurrently; retry the request.".into())
            })),
            Err(e) => return Err(self.not_found(e, &current.name)),
        }
        self.schedule_settle(&next.name, &next.version);
        if let Some(sandbox) = &self.inner.sandbox {
            sandbox.retire(&next.name, Some(LATEST));
        }
        if current.code.sha256_hex != next.code.sha256_hex {
            drop(self.collect_unreferenced_code_soon());
        }
        Ok(FunctionView::unqualified(next))
    }

    /// Collects packages in the background so the caller does not wait for it.
    pub(crate) fn collect_unreferenced_code_soon(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.collect_unreferenced_code().await {
                tracing::warn!(error = %e, "collecting unreferenced code failed");
            }
        })
    }
}

pub(crate) fn check_revision(
    record: &FunctionRecord,
    expected: Option<&str>,
) -> Result<(), ControlError> {
    match expected {
        Some(rev) if rev != record.revision_id => Err(ControlError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
        )),
        _ => Ok(()),
    }
}

fn parse_architectures(archs: &[String]) -> Result<Vec<Architecture>, ControlError> {
    if archs.len() != 1 {
        return Err(ValidationError::param("Architectures must contain exactly one value.").into());
    }
    archs
        .iter()
        .map(|a| {
            Architecture::parse(a).ok_or_else(|| {
                ControlError::from(ValidationError::constraint(
                    a,
                    "architectures",
                    "Member must satisfy enum value set: [x86_64, arm64]",
                ))
            })
        })
        .collect()
}

fn apply_patch(config: &mut FunctionConfig, patch: ConfigPatch) {
    let ConfigPatch {
        runtime,
        handler,
        role,
        description,
        timeout,
        memory_size,
        environment,
        ephemeral_storage,
        tracing_mode,
        log_format,
        application_log_level,
        system_log_level,
        log_group,
        dead_letter_target,
        layers,
        kms_key_arn,
        vpc,
    } = patch;
    set(&mut config.runtime, runtime);
    set(&mut config.handler, handler);
    set(&mut config.role, role);
    set(&mut config.description, description);
    set(&mut config.timeout, timeout);
    set(&mut config.memory_size, memory_size);
    set(&mut config.environment, environment);
    set(&mut config.ephemeral_storage, ephemeral_storage);
    set(&mut config.tracing_mode, tracing_mode);
    set(&mut config.logging.log_group, log_group);
    set(&mut config.layers, layers);
    apply_logging(&mut config.logging, log_format, application_log_level, system_log_level);
    if let Some(target) = dead_letter_target {
        config.dead_letter_target = (!target.is_empty()).then_some(target);
    }
    if let Some(key) = kms_key_arn {
        config.kms_key_arn = (!key.is_empty()).then_some(key);
    }
    if let Some(vpc) = vpc {
        config.vpc =
            (!vpc.subnet_ids.is_empty() || !vpc.security_group_ids.is_empty()).then_some(vpc);
    }
}

/// Lambda's log levels follow the format: switching to `Text` drops them, `JSON` defaults
/// both to `INFO`; levels given explicitly with `Text` are kept so validation refuses them.
fn apply_logging(
    logging: &mut alonzo_model::LoggingConfig,
    format: Option<String>,
    application_level: Option<String>,
    system_level: Option<String>,
) {
    let explicit = application_level.is_some() || system_level.is_some();
    set(&mut logging.log_format, format);
    if application_level.is_some() {
        logging.application_log_level = application_level;
    }
    if system_level.is_some() {
        logging.system_log_level = system_level;
    }
    if logging.log_format == "JSON" {
        logging.application_log_level.get_or_insert_with(|| "INFO".to_owned());
        logging.system_log_level.get_or_insert_with(|| "INFO".to_owned());
    } else if !explicit {
        logging.application_log_level = None;
        logging.system_log_level = None;
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

pub(crate) fn new_revision() -> String {
    uuid::Uuid::new_v4().to_string()
}

//! Concurrency settings: reserved concurrency per function (`Put/Get/DeleteFunctionConcurrency`)
//! and provisioned concurrency per version or alias (`…ProvisionedConcurrencyConfig`), kept
//! in the store and applied to the sandbox manager, which enforces them; the periods
//! provisioned concurrency is configured are recorded for metering (see `usage.rs`).

use std::collections::BTreeSet;

use alonzo_model::{
    Architecture, FunctionSetting, ProvisionedConcurrencyConfig, ProvisionedInterval, Qualifier,
    SettingKind, ValidationError, LATEST,
};
use alonzo_store::StoreError;

use crate::{Control, ControlError};

/// A provisioned-concurrency configuration with its live status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedView {
    /// The version or alias it was set on.
    pub qualifier: String,
    /// Environments requested.
    pub requested: u32,
    /// Environments initialised now.
    pub available: u32,
    /// Environments allocated: as on Lambda, those initialised so far (0 in the answer to a
    /// new configuration, rising to the request while `IN_PROGRESS`).
    pub allocated: u32,
    /// `IN_PROGRESS`, `READY` or `FAILED`.
    pub status: &'static str,
    /// Why it failed.
    pub status_reason: Option<String>,
    /// Epoch milliseconds of the last change.
    pub last_modified_ms: i64,
}

impl Control {
    /// The minimum of unreserved concurrency reservations must leave.
    fn unreserved_minimum(&self) -> u32 {
        self.inner.config.unreserved_minimum.min(self.inner.config.concurrency_limit)
    }

    /// Reservations of every function.
    async fn reservations(&self) -> Result<Vec<(String, u32)>, ControlError> {
        Ok(self
            .inner
            .meta
            .list_settings(None, SettingKind::ReservedConcurrency)
            .await?
            .into_iter()
            .filter_map(|(f, _, s)| match s {
                FunctionSetting::ReservedConcurrency { reserved } => Some((f, reserved)),
                _ => None,
            })
            .collect())
    }

    /// Concurrency no function reserves.
    pub(crate) async fn unreserved_concurrency(&self) -> Result<u32, ControlError> {
        let reserved: u32 = self.reservations().await?.iter().map(|(_, r)| r).sum();
        Ok(self.inner.config.concurrency_limit.saturating_sub(reserved))
    }

    /// `PutFunctionConcurrency`.
    pub async fn put_function_concurrency(
        &self,
        function_name: &str,
        reserved: i64,
    ) -> Result<u32, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        let Ok(reserved) = u32::try_from(reserved) else {
            return Err(ValidationError::constraint(
                &reserved.to_string(),
                "reservedConcurrentExecutions",
                "Member must have value greater than or equal to 0",
            )
            .into());
        };
        let _guard = self.inner.concurrency_lock.lock().await;
        self.load(&name, LATEST).await?;
        let others: u32 =
            self.reservations().await?.iter().filter(|(f, _)| *f != name).map(|(_, r)| r).sum();
        let limit = self.inner.config.concurrency_limit;
        let minimum = self.unreserved_minimum();
        if u64::from(others) + u64::from(reserved) + u64::from(minimum) > u64::from(limit) {
            return Err(ValidationError::param(format!(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{minimum}]."
            ))
            .into());
        }
        let provisioned = self.provisioned_total(&name).await?;
        if provisioned > reserved {
            return Err(ValidationError::param(format!(
                "Specified ReservedConcurrentExecutions for function is less than the function's provisioned concurrency [{provisioned}]."
            ))
            .into());
        }
        self.inner
            .meta
            .put_setting(&name, "", &FunctionSetting::ReservedConcurrency { reserved })
            .await
            .map_err(|e| self.store_not_found(e, &name))?;
        if let Some(sandbox) = &self.inner.sandbox {
            sandbox.set_reserved_concurrency(&name, Some(reserved));
        }
        Ok(reserved)
    }

    /// `GetFunctionConcurrency`: `None` when the function has no reservation.
    pub async fn get_function_concurrency(
        &self,
        function_name: &str,
    ) -> Result<Option<u32>, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        self.load(&name, LATEST).await?;
        self.reserved_concurrency(&name).await
    }

    pub(crate) async fn reserved_concurrency(
        &self,
        name: &str,
    ) -> Result<Option<u32>, ControlError> {
        Ok(match self.inner.meta.get_setting(name, SettingKind::ReservedConcurrency, "").await? {
            Some(FunctionSetting::ReservedConcurrency { reserved }) => Some(reserved),
            _ => None,
        })
    }

    /// `DeleteFunctionConcurrency`.
    pub async fn delete_function_concurrency(
        &self,
        function_name: &str,
    ) -> Result<(), ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        let _guard = self.inner.concurrency_lock.lock().await;
        self.load(&name, LATEST).await?;
        self.inner.meta.delete_setting(&name, SettingKind::ReservedConcurrency, "").await?;
        if let Some(sandbox) = &self.inner.sandbox {
            sandbox.set_reserved_concurrency(&name, None);
        }
        Ok(())
    }

    /// Provisioned environments requested over all qualifiers of a function.
    async fn provisioned_total(&self, name: &str) -> Result<u32, ControlError> {
        Ok(self
            .inner
            .meta
            .list_settings(Some(name), SettingKind::ProvisionedConcurrency)
            .await?
            .iter()
            .map(|(_, _, s)| match s {
                FunctionSetting::ProvisionedConcurrency(c) => c.requested,
                _ => 0,
            })
            .sum())
    }

    /// The version a provisioned-concurrency qualifier stands for (an alias: its main
    /// version). `$LATEST` and unqualified names are refused, as on Lambda.
    async fn provisioned_target(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, String, String), ControlError> {
        let (name, qualifier) = self.resolve(function_name, qualifier)?;
        let version = match &qualifier {
            None => {
                return Err(ValidationError::param(
                    "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
                )
                .into())
            }
            Some(Qualifier::Latest) => {
                return Err(ValidationError::param(
                    "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
                )
                .into())
            }
            Some(Qualifier::Version(n)) => {
                self.load(&name, &n.to_string()).await?;
                n.to_string()
            }
            Some(Qualifier::Alias(alias)) => {
                let alias = self.load_alias(&name, alias).await?;
                if alias.function_version == LATEST {
                    return Err(ValidationError::param(
                        "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
                    )
                    .into());
                }
                alias.function_version
            }
        };
        let qualifier = qualifier.map(|q| q.as_string()).unwrap_or_default();
        Ok((name, qualifier, version))
    }

    /// `PutProvisionedConcurrencyConfig`.
    pub async fn put_provisioned_concurrency(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
        requested: i64,
    ) -> Result<ProvisionedView, ControlError> {
        let Ok(requested) =
            u32::try_from(requested).map_err(|_| ()).and_then(
                |n| {
                    if n == 0 {
                        Err(())
                    } else {
                        Ok(n)
                    }
                },
            )
        else {
            return Err(ValidationError::constraint(
                &requested.to_string(),
                "provisionedConcurrentExecutions",
                "Member must have value greater than or equal to 1",
            )
            .into());
        };
        let _guard = self.inner.concurrency_lock.lock().await;
        let (name, qualifier, version) = self.provisioned_target(function_name, qualifier).await?;
        let existing =
            self.inner.meta.list_settings(Some(&name), SettingKind::ProvisionedConcurrency).await?;
        for (_, other, _) in &existing {
            if *other != qualifier && self.qualifier_version(&name, other).await? == version {
                return Err(ControlError::Conflict(format!(
                    "Alias or version {other} already has provisioned concurrency configured on version {version}."
                )));
            }
        }
        let others: u32 = existing
            .iter()
            .filter(|(_, q, _)| *q != qualifier)
            .map(|(_, _, s)| match s {
                FunctionSetting::ProvisionedConcurrency(c) => c.requested,
                _ => 0,
            })
            .sum();
        let total = others.saturating_add(requested);
        match self.reserved_concurrency(&name).await? {
            Some(reserved) if total > reserved => {
                return Err(ValidationError::param(format!(
                    "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution for function [{reserved}]."
                ))
                .into())
            }
            Some(_) => {}
            None => {
                let available =
                    self.unreserved_concurrency().await?.saturating_sub(self.unreserved_minimum());
                if total > available {
                    return Err(ValidationError::param(format!(
                        "Specified ConcurrentExecutions for function is greater than account's unreserved concurrency [{available}]."
                    ))
                    .into());
                }
            }
        }
        let config = ProvisionedConcurrencyConfig {
            requested,
            last_modified_ms: chrono::Utc::now().timestamp_millis(),
        };
        self.inner
            .meta
            .put_setting(
                &name,
                &qualifier,
                &FunctionSetting::ProvisionedConcurrency(config.clone()),
            )
            .await
            .map_err(|e| self.store_not_found(e, &name))?;
        self.sync_provisioned(&name).await?;
        Ok(self.provisioned_view(&name, &version, qualifier, &config))
    }

    /// `GetProvisionedConcurrencyConfig`.
    pub async fn get_provisioned_concurrency(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<ProvisionedView, ControlError> {
        let (name, qualifier, version) = self.provisioned_target(function_name, qualifier).await?;
        match self
            .inner
            .meta
            .get_setting(&name, SettingKind::ProvisionedConcurrency, &qualifier)
            .await?
        {
            Some(FunctionSetting::ProvisionedConcurrency(config)) => {
                Ok(self.provisioned_view(&name, &version, qualifier, &config))
            }
            _ => Err(ControlError::ProvisionedNotFound(format!(
                "No Provisioned Concurrency Config found for this function: {}",
                self.account().qualified_function_arn(&name, &qualifier)
            ))),
        }
    }

    /// `ListProvisionedConcurrencyConfigs`.
    pub async fn list_provisioned_concurrency(
        &self,
        function_name: &str,
    ) -> Result<Vec<ProvisionedView>, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        self.load(&name, LATEST).await?;
        let mut out = Vec::new();
        for (_, qualifier, setting) in
            self.inner.meta.list_settings(Some(&name), SettingKind::ProvisionedConcurrency).await?
        {
            if let FunctionSetting::ProvisionedConcurrency(config) = setting {
                let version = self.qualifier_version(&name, &qualifier).await?;
                out.push(self.provisioned_view(&name, &version, qualifier, &config));
            }
        }
        Ok(out)
    }

    /// `DeleteProvisionedConcurrencyConfig`.
    pub async fn delete_provisioned_concurrency(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let _guard = self.inner.concurrency_lock.lock().await;
        let (name, qualifier, _) = self.provisioned_target(function_name, qualifier).await?;
        if !self
            .inner
            .meta
            .delete_setting(&name, SettingKind::ProvisionedConcurrency, &qualifier)
            .await?
        {
            return Err(ControlError::ProvisionedNotFound(format!(
                "No Provisioned Concurrency Config found for this function: {}",
                self.account().qualified_function_arn(&name, &qualifier)
            )));
        }
        self.sync_provisioned(&name).await
    }

    /// The version a stored qualifier (a version number or an alias) points at now.
    async fn qualifier_version(&self, name: &str, qualifier: &str) -> Result<String, ControlError> {
        match Qualifier::parse(qualifier) {
            Some(Qualifier::Alias(alias)) => match self.inner.meta.get_alias(name, &alias).await {
                Ok(a) => Ok(a.function_version),
                Err(StoreError::NotFound) => Ok(String::new()),
                Err(e) => Err(e.into()),
            },
            _ => Ok(qualifier.to_owned()),
        }
    }

    fn provisioned_view(
        &self,
        name: &str,
        version: &str,
        qualifier: String,
        config: &ProvisionedConcurrencyConfig,
    ) -> ProvisionedView {
        let live = self.inner.sandbox.as_ref().and_then(|s| s.provisioned_status(name, version));
        let available = live.as_ref().map_or(0, |l| l.available.min(config.requested));
        let failure = live.and_then(|l| l.failure);
        let status = if available >= config.requested {
            "READY"
        } else if failure.is_some() {
            "FAILED"
        } else {
            "IN_PROGRESS"
        };
        ProvisionedView {
            qualifier,
            requested: config.requested,
            available,
            allocated: available,
            status,
            status_reason: if status == "FAILED" { failure } else { None },
            last_modified_ms: config.last_modified_ms,
        }
    }

    /// Tells the sandbox manager which versions of `name` to keep provisioned, and makes the
    /// metering ledger's open provisioned-concurrency periods match, from the stored
    /// configurations (after any change to them, to the aliases they name, to the versions
    /// or the function, or at start-up).
    ///
    /// A period starts when a configuration is put and ends when it is deleted or changes
    /// (a new count, an alias moved to another version, the version, alias or function
    /// deleted); periods are compared as a whole, so putting the same configuration again
    /// keeps the period running. Calls are serialised so that the last one, which follows
    /// the last change, decides.
    pub(crate) async fn sync_provisioned(&self, name: &str) -> Result<(), ControlError> {
        let _ledger = self.inner.provisioned_lock.lock().await;
        let mut targets = Vec::new();
        let mut periods = Vec::new();
        for (_, qualifier, setting) in
            self.inner.meta.list_settings(Some(name), SettingKind::ProvisionedConcurrency).await?
        {
            let FunctionSetting::ProvisionedConcurrency(config) = setting else { continue };
            let version = self.qualifier_version(name, &qualifier).await?;
            if version.is_empty() || version == LATEST {
                continue;
            }
            let record = match self.inner.meta.get_version(name, &version).await {
                Ok(r) => r,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            if self.inner.sandbox.is_some() {
                match self.function_spec(&record).await {
                    Ok(spec) => targets.push((spec, config.requested)),
                    Err(e) => {
                        // Never set up, so never billed.
                        tracing::warn!(function = %name, %version, error = %e, "provisioned concurrency cannot be set up");
                        continue;
                    }
                }
            }
            periods.push(ProvisionedInterval {
                function: name.to_owned(),
                qualifier,
                version,
                count: config.requested,
                memory_mb: record.config.memory_size,
                ephemeral_mb: record.config.ephemeral_storage,
                architecture: record
                    .config
                    .architectures
                    .first()
                    .copied()
                    .unwrap_or(Architecture::X86_64),
                start_ms: 0,
                end_ms: None,
            });
        }
        if let Some(sandbox) = &self.inner.sandbox {
            sandbox.set_provisioned(name, targets);
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.inner.meta.set_provisioned_intervals(name, &periods, now_ms).await?;
        Ok(())
    }

    /// At start-up: the stored reservations and provisioned concurrency take effect, and
    /// provisioned-concurrency periods left open by a crash between a change and its ledger
    /// update (a function deleted, say) end now.
    pub(crate) async fn restore_concurrency(&self) -> Result<(), ControlError> {
        if let Some(sandbox) = &self.inner.sandbox {
            for (function, reserved) in self.reservations().await? {
                sandbox.set_reserved_concurrency(&function, Some(reserved));
            }
        }
        let mut functions: BTreeSet<String> = self
            .inner
            .meta
            .list_settings(None, SettingKind::ProvisionedConcurrency)
            .await?
            .into_iter()
            .map(|(f, _, _)| f)
            .collect();
        functions.extend(
            self.inner
                .meta
                .provisioned_intervals(None)
                .await?
                .into_iter()
                .filter(|p| p.end_ms.is_none())
                .map(|p| p.function),
        );
        for function in functions {
            self.sync_provisioned(&function).await?;
        }
        Ok(())
    }

    fn store_not_found(&self, e: StoreError, name: &str) -> ControlError {
        match e {
            StoreError::NotFound => ControlError::NotFound(format!(
                "Function not found: {}",
                self.account().function_arn(name)
            )),
            other => other.into(),
        }
    }
}

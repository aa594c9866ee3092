//! Aliases: create, read, update (with `RevisionId`), delete, list, and the choice of the
//! version an invocation through an alias runs (weighted routing).

use std::collections::BTreeMap;

use alonzo_model::{validate_alias_name, AliasRecord, ValidationError, LATEST};
use alonzo_store::StoreError;

use crate::functions::new_revision;
use crate::{Control, ControlError, ListPage};

/// Input of `CreateAlias` and `UpdateAlias` (for updates, `None` keeps a field).
#[derive(Debug, Clone, Default)]
pub struct AliasInput {
    /// Version the alias points to.
    pub function_version: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Additional version → weight; `Some(empty)` removes routing.
    pub routing: Option<BTreeMap<String, f64>>,
    /// Precondition on the alias's revision (updates).
    pub revision_id: Option<String>,
}

impl Control {
    /// `CreateAlias`.
    pub async fn create_alias(
        &self,
        function_name: &str,
        alias_name: &str,
        input: AliasInput,
    ) -> Result<AliasRecord, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        validate_alias_name(alias_name)?;
        let function_version = input
            .function_version
            .ok_or_else(|| ValidationError::param("FunctionVersion is required."))?;
        let alias = AliasRecord {
            function: name.clone(),
            name: alias_name.to_owned(),
            function_version,
            description: input.description.unwrap_or_default(),
            routing: input.routing.unwrap_or_default(),
            revision_id: new_revision(),
        };
        self.check_alias(&alias).await?;
        match self.inner.meta.create_alias(&alias).await {
            Ok(()) => Ok(alias),
            Err(StoreError::AlreadyExists) => Err(ControlError::Conflict(format!(
                "Alias already exists: {}",
                self.account().qualified_function_arn(&name, alias_name)
            ))),
            Err(StoreError::NotFound) => Err(self.function_not_found(&name)),
            Err(StoreError::Dangling(version)) => Err(self.version_not_found(&name, &version)),
            Err(e) => Err(e.into()),
        }
    }

    /// `GetAlias`.
    pub async fn get_alias(
        &self,
        function_name: &str,
        alias_name: &str,
    ) -> Result<AliasRecord, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        self.load_alias(&name, alias_name).await
    }

    /// `UpdateAlias`.
    pub async fn update_alias(
        &self,
        function_name: &str,
        alias_name: &str,
        input: AliasInput,
    ) -> Result<AliasRecord, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        let current = self.load_alias(&name, alias_name).await?;
        if input.revision_id.as_deref().is_some_and(|r| r != current.revision_id) {
            return Err(stale_revision());
        }
        let mut next = current.clone();
        if let Some(v) = input.function_version {
            next.function_version = v;
        }
        if let Some(d) = input.description {
            next.description = d;
        }
        if let Some(r) = input.routing {
            next.routing = r;
        }
        next.revision_id = new_revision();
        self.check_alias(&next).await?;
        match self.inner.meta.update_alias(&next, &current.revision_id).await {
            Ok(()) => {
                if next.function_version != current.function_version {
                    self.sync_provisioned(&name).await?;
                }
                Ok(next)
            }
            Err(StoreError::RevisionMismatch) if input.revision_id.is_some() => {
                Err(stale_revision())
            }
            Err(StoreError::RevisionMismatch) => Err(ControlError::Conflict(
                "The alias was changed concurrently; retry the request.".into(),
            )),
            Err(StoreError::NotFound) => Err(self.alias_not_found(&name, alias_name)),
            Err(StoreError::Dangling(version)) => Err(self.version_not_found(&name, &version)),
            Err(e) => Err(e.into()),
        }
    }

    /// `DeleteAlias`.
    pub async fn delete_alias(
        &self,
        function_name: &str,
        alias_name: &str,
    ) -> Result<(), ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        match self.inner.meta.delete_alias(&name, alias_name).await {
            Ok(()) => self.sync_provisioned(&name).await,
            Err(StoreError::NotFound) => {
                self.load(&name, LATEST).await?;
                Err(self.alias_not_found(&name, alias_name))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `ListAliases`, optionally only those pointing at `function_version`.
    pub async fn list_aliases(
        &self,
        function_name: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<usize>,
    ) -> Result<ListPage<AliasRecord>, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        self.load(&name, LATEST).await?;
        let all: Vec<AliasRecord> = self
            .inner
            .meta
            .list_aliases(&name)
            .await?
            .into_iter()
            .filter(|a| function_version.is_none_or(|v| a.function_version == v))
            .collect();
        let start = marker.and_then(|m| all.iter().position(|a| a.name == m)).map_or(0, |i| i + 1);
        let limit = max_items.unwrap_or(50).clamp(1, 10_000);
        let items: Vec<AliasRecord> = all.iter().skip(start).take(limit).cloned().collect();
        let next_marker = (start + items.len() < all.len())
            .then(|| items.last().map(|a| a.name.clone()))
            .flatten();
        Ok(ListPage { items, next_marker })
    }

    /// Reads an alias of a function, with Lambda's not-found message.
    pub(crate) async fn load_alias(
        &self,
        function: &str,
        alias: &str,
    ) -> Result<AliasRecord, ControlError> {
        match self.inner.meta.get_alias(function, alias).await {
            Ok(a) => Ok(a),
            Err(StoreError::NotFound) => Err(self.alias_not_found(function, alias)),
            Err(e) => Err(e.into()),
        }
    }

    /// The versions an alias names must exist, and its routing must follow Lambda's rules.
    async fn check_alias(&self, alias: &AliasRecord) -> Result<(), ControlError> {
        alias.validate_routing()?;
        if alias.description.chars().count() > 256 {
            return Err(ValidationError::constraint(
                &alias.description,
                "description",
                "Member must have length less than or equal to 256",
            )
            .into());
        }
        if alias.function_version.is_empty() {
            return Err(ValidationError::constraint(
                "",
                "functionVersion",
                "Member must have length greater than or equal to 1",
            )
            .into());
        }
        if alias.function_version != LATEST
            && !alias.function_version.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ValidationError::param(format!(
                "Invalid FunctionVersion: {}",
                alias.function_version
            ))
            .into());
        }
        self.load(&alias.function, &alias.function_version).await?;
        for version in alias.routing.keys() {
            self.load(&alias.function, version).await?;
        }
        Ok(())
    }

    fn alias_not_found(&self, function: &str, alias: &str) -> ControlError {
        ControlError::NotFound(format!(
            "Alias not found: {}",
            self.account().qualified_function_arn(function, alias)
        ))
    }

    fn version_not_found(&self, function: &str, version: &str) -> ControlError {
        ControlError::NotFound(format!(
            "Function not found: {}",
            self.account().qualified_function_arn(function, version)
        ))
    }

    fn function_not_found(&self, function: &str) -> ControlError {
        ControlError::NotFound(format!(
            "Function not found: {}",
            self.account().function_arn(function)
        ))
    }
}

fn stale_revision() -> ControlError {
    ControlError::PreconditionFailed(
        "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
    )
}

//! Storage interfaces: [`MetaStore`] for function metadata, [`BlobStore`] for deployment
//! packages and [`QueueStore`] for the SQS-compatible queues, plus [`FsBlobStore`], the
//! content-addressed local-disk package store.
//!
//! The traits know nothing of SQL or of any wire format; backends (`alonzo-store-sqlite`
//! now, PostgreSQL and S3-compatible object storage later) implement them. Only the
//! `alonzo` binary picks a backend.
//!
//! Crash-safety contract for every backend: a call that returned `Ok` is durable, and a
//! crash at any moment leaves either the old or the new state, never a mixture. Packages are
//! written to the blob store before the metadata that names them, so metadata never points at
//! a missing package; orphaned packages are collected at start-up.

mod access;
mod blob;
pub mod queue;

use std::collections::BTreeMap;

use alonzo_model::{
    AliasRecord, AsyncEvent, FunctionRecord, FunctionSetting, InvocationRecord, LayerVersionRecord,
    ProvisionedInterval, SettingKind,
};

pub use access::AccessStore;
pub use blob::{BlobStore, FsBlobStore};
pub use queue::{QueueStore, QueueStoreError};

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The function (or version) does not exist.
    #[error("not found")]
    NotFound,
    /// A function with that name already exists.
    #[error("already exists")]
    AlreadyExists,
    /// The record is referenced by another one (a version an alias points at).
    #[error("in use")]
    InUse,
    /// A record would refer to one that does not exist (an alias to a missing version).
    #[error("refers to missing {0}")]
    Dangling(String),
    /// The stored revision is not the one the caller read: someone else changed it first.
    #[error("revision mismatch")]
    RevisionMismatch,
    /// The backend failed; the message is for operators' logs, never for clients.
    #[error("storage backend failure: {0}")]
    Backend(String),
}

/// Totals reported by `GetAccountSettings`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountUsage {
    /// Number of functions.
    pub function_count: u64,
    /// Sum of the stored packages' sizes over all function versions and layer versions,
    /// bytes (Lambda's `TotalCodeSize`).
    pub total_code_size: u64,
}

/// Function metadata storage. Every method is one atomic, durable transaction.
#[async_trait::async_trait]
pub trait MetaStore: AccessStore + Send + Sync + std::fmt::Debug + 'static {
    /// Stores a new function: its `$LATEST` record and its tags.
    async fn create_function(
        &self,
        record: &FunctionRecord,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), StoreError>;

    /// Reads one version of a function.
    async fn get_version(&self, name: &str, version: &str) -> Result<FunctionRecord, StoreError>;

    /// Replaces a version's record if its stored `revision_id` is still `expected_revision`.
    async fn update_version(
        &self,
        record: &FunctionRecord,
        expected_revision: &str,
    ) -> Result<(), StoreError>;

    /// Stores `record` as the function's next published version if `$LATEST`'s revision is
    /// still `latest_revision`; returns the number it got (never reused).
    async fn publish_version(
        &self,
        record: &FunctionRecord,
        latest_revision: &str,
    ) -> Result<u64, StoreError>;

    /// Deletes one published version.
    async fn delete_version(&self, name: &str, version: &str) -> Result<(), StoreError>;

    /// Stores a new alias.
    async fn create_alias(&self, alias: &AliasRecord) -> Result<(), StoreError>;

    /// Reads an alias.
    async fn get_alias(&self, function: &str, name: &str) -> Result<AliasRecord, StoreError>;

    /// Replaces an alias if its stored revision is still `expected_revision`.
    async fn update_alias(
        &self,
        alias: &AliasRecord,
        expected_revision: &str,
    ) -> Result<(), StoreError>;

    /// Deletes an alias.
    async fn delete_alias(&self, function: &str, name: &str) -> Result<(), StoreError>;

    /// A function's aliases, by name.
    async fn list_aliases(&self, function: &str) -> Result<Vec<AliasRecord>, StoreError>;

    /// Stores a new version of a layer and returns its number (never reused).
    async fn publish_layer_version(&self, record: &LayerVersionRecord) -> Result<u64, StoreError>;

    /// Reads one layer version.
    async fn get_layer_version(
        &self,
        name: &str,
        version: u64,
    ) -> Result<LayerVersionRecord, StoreError>;

    /// A layer's versions, newest first.
    async fn list_layer_versions(&self, name: &str) -> Result<Vec<LayerVersionRecord>, StoreError>;

    /// Every layer's versions, by layer name then newest first.
    async fn list_all_layer_versions(&self) -> Result<Vec<LayerVersionRecord>, StoreError>;

    /// Deletes one layer version.
    async fn delete_layer_version(&self, name: &str, version: u64) -> Result<(), StoreError>;

    /// Deletes a function with all its versions and tags.
    async fn delete_function(&self, name: &str) -> Result<(), StoreError>;

    /// `$LATEST` records of functions whose name sorts after `after`, at most `limit`.
    async fn list_functions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FunctionRecord>, StoreError>;

    /// All versions of a function, `$LATEST` first.
    async fn list_versions(&self, name: &str) -> Result<Vec<FunctionRecord>, StoreError>;

    /// A function's tags.
    async fn get_tags(&self, name: &str) -> Result<BTreeMap<String, String>, StoreError>;

    /// Replaces a function's tags.
    async fn put_tags(&self, name: &str, tags: &BTreeMap<String, String>)
        -> Result<(), StoreError>;

    /// Totals for `GetAccountSettings`.
    async fn account_usage(&self) -> Result<AccountUsage, StoreError>;

    /// Records still `Pending` or `InProgress` (to finish after a restart).
    async fn list_unsettled(&self) -> Result<Vec<FunctionRecord>, StoreError>;

    /// Hex hashes of every package some record refers to (functions' code, their layers'
    /// archives, and layer versions), for collecting orphans.
    async fn referenced_code(&self) -> Result<Vec<String>, StoreError>;

    /// Durably records an accepted asynchronous event, due at `due_ms`.
    async fn enqueue_event(&self, event: &AsyncEvent, due_ms: i64) -> Result<(), StoreError>;

    /// Leases up to `limit` events due at `now_ms` and not leased, until `lease_until_ms`.
    async fn lease_events(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<AsyncEvent>, StoreError>;

    /// Removes an event that was handled (delivered, or given up on).
    async fn complete_event(&self, id: &str) -> Result<(), StoreError>;

    /// Puts a leased event back, due again at `due_ms`, with its new attempt counts and last
    /// failure (the whole record is replaced; its id identifies it).
    async fn retry_event(&self, event: &AsyncEvent, due_ms: i64) -> Result<(), StoreError>;

    /// Makes every leased event due again (at start-up: no worker holds a lease any more).
    async fn release_leases(&self) -> Result<u64, StoreError>;

    /// Stores a setting of `function` for `qualifier` (empty for function-wide settings),
    /// replacing one of the same kind. `NotFound` when the function does not exist.
    async fn put_setting(
        &self,
        function: &str,
        qualifier: &str,
        setting: &FunctionSetting,
    ) -> Result<(), StoreError>;

    /// The setting of that kind for `qualifier`, if any.
    async fn get_setting(
        &self,
        function: &str,
        kind: SettingKind,
        qualifier: &str,
    ) -> Result<Option<FunctionSetting>, StoreError>;

    /// Removes a setting; `false` when there was none.
    async fn delete_setting(
        &self,
        function: &str,
        kind: SettingKind,
        qualifier: &str,
    ) -> Result<bool, StoreError>;

    /// Every setting of a kind as `(function, qualifier, setting)`, of one function or of
    /// all, ordered by function and qualifier.
    async fn list_settings(
        &self,
        function: Option<&str>,
        kind: SettingKind,
    ) -> Result<Vec<(String, String, FunctionSetting)>, StoreError>;

    /// Appends metering records.
    async fn record_invocations(&self, records: &[InvocationRecord]) -> Result<(), StoreError>;

    /// Metering records of a function (all functions when `None`), oldest first.
    async fn invocations(
        &self,
        function: Option<&str>,
    ) -> Result<Vec<InvocationRecord>, StoreError>;

    /// Makes `desired` the open provisioned-concurrency periods of `function`, in one
    /// transaction: each open period with no [same configuration] in `desired` ends at
    /// `now_ms`, and each entry of `desired` not open yet starts at `now_ms` (its own times
    /// are ignored). Periods are kept after the function is deleted (they are billing history).
    ///
    /// [same configuration]: ProvisionedInterval::same_configuration
    async fn set_provisioned_intervals(
        &self,
        function: &str,
        desired: &[ProvisionedInterval],
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Provisioned-concurrency periods of a function (all functions when `None`), open and
    /// ended, oldest first.
    async fn provisioned_intervals(
        &self,
        function: Option<&str>,
    ) -> Result<Vec<ProvisionedInterval>, StoreError>;
}

//! [`AccessStore`]: storage of what lets callers reach a function from outside, namely
//! resource policies (per function and qualifier) and function URL configurations.
//!
//! Every backend of [`crate::MetaStore`] implements it too. Deleting a function removes its
//! policies and URL configurations; deleting a version or an alias removes the policy and
//! URL configuration of that qualifier.

use alonzo_model::{FunctionUrlRecord, ResourcePolicy};

use crate::StoreError;

/// Resource policies and function URL configurations. Every method is one atomic, durable
/// transaction. A qualifier of `None` is the unqualified function.
#[async_trait::async_trait]
pub trait AccessStore: Send + Sync {
    /// The policy of a function or one of its qualifiers, if it has any statement.
    async fn get_policy(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<ResourcePolicy>, StoreError>;

    /// Replaces a policy if its stored revision is still `expected_revision` (`None`: no
    /// policy is stored yet); a policy without statements is deleted. `NotFound` when the
    /// function does not exist, `RevisionMismatch` when someone changed the policy first.
    async fn put_policy(
        &self,
        policy: &ResourcePolicy,
        expected_revision: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Stores a new URL configuration: `AlreadyExists` when the function or qualifier has
    /// one, `NotFound` when the function does not exist.
    async fn create_function_url(&self, url: &FunctionUrlRecord) -> Result<(), StoreError>;

    /// The URL configuration of a function or alias.
    async fn get_function_url(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionUrlRecord, StoreError>;

    /// The URL configuration with this URL id.
    async fn function_url_by_id(&self, url_id: &str) -> Result<FunctionUrlRecord, StoreError>;

    /// Replaces a URL configuration (same function and qualifier).
    async fn update_function_url(&self, url: &FunctionUrlRecord) -> Result<(), StoreError>;

    /// Deletes a URL configuration.
    async fn delete_function_url(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(), StoreError>;

    /// Every URL configuration of a function, unqualified first, then by alias name.
    async fn list_function_urls(
        &self,
        function: &str,
    ) -> Result<Vec<FunctionUrlRecord>, StoreError>;
}

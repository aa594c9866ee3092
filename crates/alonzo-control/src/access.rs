//! Resource policies (`AddPermission`, `RemovePermission`, `GetPolicy`) and function URL
//! configurations (`CreateFunctionUrlConfig` and friends), plus what the HTTP front door asks
//! before invoking through a URL: which function the URL names and whether the policy lets
//! anonymous callers in.

use alonzo_model::{
    validate_url_qualifier, Cors, FunctionUrlRecord, InvokeMode, PolicyStatement, Qualifier,
    ResourcePolicy, UrlAuthType, ValidationError, LATEST, MAX_POLICY_BYTES,
};
use alonzo_store::StoreError;

use crate::functions::new_revision;
use crate::{Control, ControlError, ListPage};

/// How many times a permission change without a `RevisionId` retries after losing a race.
const POLICY_RETRIES: usize = 8;

/// Input of `AddPermission` (everything but the function and qualifier).
#[derive(Debug, Clone, Default)]
pub struct PermissionInput {
    /// `StatementId`.
    pub statement_id: String,
    /// `Action`.
    pub action: String,
    /// `Principal`.
    pub principal: String,
    /// `SourceArn`.
    pub source_arn: Option<String>,
    /// `SourceAccount`.
    pub source_account: Option<String>,
    /// `PrincipalOrgID`.
    pub principal_org_id: Option<String>,
    /// `EventSourceToken`.
    pub event_source_token: Option<String>,
    /// `FunctionUrlAuthType`, as sent.
    pub function_url_auth_type: Option<String>,
    /// `InvokedViaFunctionUrl`.
    pub invoked_via_function_url: Option<bool>,
    /// `RevisionId` precondition.
    pub revision_id: Option<String>,
}

/// Input of `CreateFunctionUrlConfig` and `UpdateFunctionUrlConfig` (for updates, `None`
/// keeps a field).
#[derive(Debug, Clone, Default)]
pub struct UrlConfigInput {
    /// `AuthType`, as sent.
    pub auth_type: Option<String>,
    /// `Cors`.
    pub cors: Option<Cors>,
    /// `InvokeMode`, as sent.
    pub invoke_mode: Option<String>,
}

/// What the front door needs to serve a request to a function URL.
#[derive(Debug, Clone)]
pub struct UrlAccess {
    /// The URL's configuration.
    pub url: FunctionUrlRecord,
    /// Whether the resource policy lets anyone invoke the URL (needed for `AuthType: NONE`).
    pub public_invoke_allowed: bool,
}

impl Control {
    /// `AddPermission`: appends a statement to the policy of the function or qualifier.
    pub async fn add_permission(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
        input: PermissionInput,
    ) -> Result<PolicyStatement, ControlError> {
        let (name, qualifier, target_revision) =
            self.policy_target(function_name, qualifier, true).await?;
        let resource = match &qualifier {
            Some(q) => self.account().qualified_function_arn(&name, q),
            None => self.account().function_arn(&name),
        };
        let statement = PolicyStatement {
            sid: input.statement_id,
            action: input.action,
            principal: input.principal,
            resource,
            source_arn: input.source_arn,
            source_account: input.source_account,
            principal_org_id: input.principal_org_id,
            event_source_token: input.event_source_token,
            function_url_auth_type: input
                .function_url_auth_type
                .as_deref()
                .map(|t| UrlAuthType::parse(t, "functionUrlAuthType"))
                .transpose()?,
            invoked_via_function_url: input.invoked_via_function_url,
        };
        statement.validate()?;
        for _ in 0..POLICY_RETRIES {
            let current = self.inner.meta.get_policy(&name, qualifier.as_deref()).await?;
            let current_revision = current.as_ref().map(|p| p.revision_id.clone());
            check_policy_revision(
                input.revision_id.as_deref(),
                current_revision.as_deref(),
                &target_revision,
            )?;
            let mut next = current.unwrap_or_else(|| ResourcePolicy {
                function: name.clone(),
                qualifier: qualifier.clone(),
                revision_id: String::new(),
                statements: Vec::new(),
            });
            if next.statements.iter().any(|s| s.sid == statement.sid) {
                return Err(ControlError::Conflict(format!(
                    "The statement id ({}) provided already exists. Please provide a new statement id, or remove the existing statement.",
                    statement.sid
                )));
            }
            next.statements.push(statement.clone());
            next.revision_id = new_revision();
            if next.approximate_size() > MAX_POLICY_BYTES {
                return Err(ControlError::PolicyTooLarge(
                    "The final policy size is bigger than the limit (20480).".into(),
                ));
            }
            match self.inner.meta.put_policy(&next, current_revision.as_deref()).await {
                Ok(()) => return Ok(statement),
                Err(StoreError::RevisionMismatch) if input.revision_id.is_some() => {
                    return Err(stale_policy())
                }
                Err(StoreError::RevisionMismatch) => continue,
                Err(StoreError::NotFound) => return Err(self.function_missing(&name)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Conflict(
            "The policy was changed concurrently; retry the request.".into(),
        ))
    }

    /// `RemovePermission`.
    pub async fn remove_permission(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
        statement_id: &str,
        revision_id: Option<&str>,
    ) -> Result<(), ControlError> {
        let (name, qualifier, target_revision) =
            self.policy_target(function_name, qualifier, false).await?;
        for _ in 0..POLICY_RETRIES {
            let Some(mut policy) = self.inner.meta.get_policy(&name, qualifier.as_deref()).await?
            else {
                return Err(ControlError::NotFound(
                    "No policy is associated with the given resource.".into(),
                ));
            };
            let current = policy.revision_id.clone();
            check_policy_revision(revision_id, Some(&current), &target_revision)?;
            let before = policy.statements.len();
            policy.statements.retain(|s| s.sid != statement_id);
            if policy.statements.len() == before {
                return Err(ControlError::NotFound(format!(
                    "Statement {statement_id} is not found in resource policy."
                )));
            }
            policy.revision_id = new_revision();
            match self.inner.meta.put_policy(&policy, Some(&current)).await {
                Ok(()) => return Ok(()),
                Err(StoreError::RevisionMismatch) if revision_id.is_some() => {
                    return Err(stale_policy())
                }
                Err(StoreError::RevisionMismatch) => continue,
                Err(StoreError::NotFound) => return Err(self.function_missing(&name)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControlError::Conflict(
            "The policy was changed concurrently; retry the request.".into(),
        ))
    }

    /// `GetPolicy`.
    pub async fn get_policy(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<ResourcePolicy, ControlError> {
        let (name, qualifier, _) = self.policy_target(function_name, qualifier, false).await?;
        self.inner.meta.get_policy(&name, qualifier.as_deref()).await?.ok_or_else(|| {
            ControlError::NotFound("The resource you requested does not exist.".into())
        })
    }

    /// The function and qualifier a policy operation addresses (which must exist), and the
    /// `RevisionId` of that function version or alias (also accepted as a precondition).
    /// `$LATEST` cannot carry a policy of its own: adding is refused, and reading or removing
    /// addresses the unqualified function's policy.
    async fn policy_target(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
        adding: bool,
    ) -> Result<(String, Option<String>, String), ControlError> {
        let (name, qualifier) = self.resolve(function_name, qualifier)?;
        match qualifier {
            Some(Qualifier::Latest) if adding => Err(ValidationError::param(
                "We currently do not support adding policies for $LATEST.",
            )
            .into()),
            None | Some(Qualifier::Latest) => {
                let record = self.load(&name, LATEST).await?;
                Ok((name, None, record.revision_id))
            }
            Some(Qualifier::Version(n)) => {
                let record = self.load(&name, &n.to_string()).await?;
                Ok((name, Some(n.to_string()), record.revision_id))
            }
            Some(Qualifier::Alias(alias)) => {
                let record = self.load_alias(&name, &alias).await?;
                Ok((name, Some(alias), record.revision_id))
            }
        }
    }

    /// `CreateFunctionUrlConfig`.
    pub async fn create_function_url(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
        input: UrlConfigInput,
    ) -> Result<FunctionUrlRecord, ControlError> {
        let (name, qualifier) = self.url_target(function_name, qualifier).await?;
        let auth_type = input.auth_type.as_deref().ok_or_else(|| {
            ValidationError::constraint("null", "authType", "Member must not be null")
        })?;
        let now = chrono::Utc::now();
        let url = FunctionUrlRecord {
            function: name.clone(),
            qualifier: qualifier.clone(),
            url_id: new_url_id(),
            auth_type: UrlAuthType::parse(auth_type, "authType")?,
            cors: input.cors,
            invoke_mode: input
                .invoke_mode
                .as_deref()
                .map(InvokeMode::parse)
                .transpose()?
                .unwrap_or(InvokeMode::Buffered),
            created: now,
            last_modified: now,
        };
        if let Some(cors) = &url.cors {
            cors.validate()?;
        }
        match self.inner.meta.create_function_url(&url).await {
            Ok(()) => Ok(url),
            Err(StoreError::AlreadyExists) => Err(ControlError::Conflict(format!(
                "Failed to create function url config for [functionArn = {}]. Error message:  FunctionUrlConfig exists for this Lambda function",
                self.url_function_arn(&name, qualifier.as_deref())
            ))),
            Err(StoreError::NotFound) => Err(self.function_missing(&name)),
            Err(e) => Err(e.into()),
        }
    }

    /// `GetFunctionUrlConfig`.
    pub async fn get_function_url(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionUrlRecord, ControlError> {
        let (name, qualifier) = self.url_target(function_name, qualifier).await?;
        self.load_url(&name, qualifier.as_deref()).await
    }

    /// `UpdateFunctionUrlConfig`.
    pub async fn update_function_url(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
        input: UrlConfigInput,
    ) -> Result<FunctionUrlRecord, ControlError> {
        let (name, qualifier) = self.url_target(function_name, qualifier).await?;
        let mut url = self.load_url(&name, qualifier.as_deref()).await?;
        if let Some(auth) = input.auth_type.as_deref() {
            url.auth_type = UrlAuthType::parse(auth, "authType")?;
        }
        if let Some(mode) = input.invoke_mode.as_deref() {
            url.invoke_mode = InvokeMode::parse(mode)?;
        }
        if let Some(cors) = input.cors {
            cors.validate()?;
            url.cors = Some(cors);
        }
        url.last_modified = chrono::Utc::now();
        match self.inner.meta.update_function_url(&url).await {
            Ok(()) => Ok(url),
            Err(StoreError::NotFound) => Err(url_not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// `DeleteFunctionUrlConfig`.
    pub async fn delete_function_url(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), ControlError> {
        let (name, qualifier) = self.url_target(function_name, qualifier).await?;
        match self.inner.meta.delete_function_url(&name, qualifier.as_deref()).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound) => Err(url_not_found()),
            Err(e) => Err(e.into()),
        }
    }

    /// `ListFunctionUrlConfigs` (`MaxItems` 1–50).
    pub async fn list_function_urls(
        &self,
        function_name: &str,
        marker: Option<&str>,
        max_items: Option<usize>,
    ) -> Result<ListPage<FunctionUrlRecord>, ControlError> {
        let name = self.resolve_unqualified(function_name)?;
        self.load(&name, LATEST).await?;
        let all = self.inner.meta.list_function_urls(&name).await?;
        let start =
            marker.and_then(|m| all.iter().position(|u| u.url_id == m)).map_or(0, |i| i + 1);
        let limit = max_items.unwrap_or(50).clamp(1, 50);
        let items: Vec<FunctionUrlRecord> = all.iter().skip(start).take(limit).cloned().collect();
        let next_marker = (start + items.len() < all.len())
            .then(|| items.last().map(|u| u.url_id.clone()))
            .flatten();
        Ok(ListPage { items, next_marker })
    }

    /// The URL configuration with `url_id`, and whether its policy lets anyone invoke it.
    pub async fn url_access(&self, url_id: &str) -> Result<UrlAccess, ControlError> {
        let url = match self.inner.meta.function_url_by_id(url_id).await {
            Ok(url) => url,
            Err(StoreError::NotFound) => return Err(url_not_found()),
            Err(e) => return Err(e.into()),
        };
        let policy = self.inner.meta.get_policy(&url.function, url.qualifier.as_deref()).await?;
        let public_invoke_allowed = policy.is_some_and(|p| p.allows_public_url_invoke());
        Ok(UrlAccess { url, public_invoke_allowed })
    }

    /// The ARN a URL configuration reports: the alias ARN, or the unqualified function ARN.
    pub fn url_function_arn(&self, function: &str, qualifier: Option<&str>) -> String {
        match qualifier {
            Some(q) => self.account().qualified_function_arn(function, q),
            None => self.account().function_arn(function),
        }
    }

    /// The function and alias a URL operation addresses; versions and `$LATEST` are not
    /// accepted, as on Lambda.
    async fn url_target(
        &self,
        function_name: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, Option<String>), ControlError> {
        if let Some(q) = qualifier {
            validate_url_qualifier(q)?;
        }
        let (name, qualifier) = self.resolve(function_name, qualifier)?;
        match qualifier {
            None => {
                self.load(&name, LATEST).await?;
                Ok((name, None))
            }
            Some(Qualifier::Alias(alias)) => {
                self.load_alias(&name, &alias).await?;
                Ok((name, Some(alias)))
            }
            Some(other) => Err(ValidationError::constraint(
                &other.as_string(),
                "qualifier",
                "Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)",
            )
            .into()),
        }
    }

    async fn load_url(
        &self,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<FunctionUrlRecord, ControlError> {
        match self.inner.meta.get_function_url(function, qualifier).await {
            Ok(url) => Ok(url),
            Err(StoreError::NotFound) => Err(url_not_found()),
            Err(e) => Err(e.into()),
        }
    }

    fn function_missing(&self, name: &str) -> ControlError {
        ControlError::NotFound(format!("Function not found: {}", self.account().function_arn(name)))
    }
}

/// A `RevisionId` precondition holds when it names the policy's current revision, or the
/// revision of the function version or alias the policy belongs to (what `GetFunction` or
/// `GetAlias` showed the caller).
fn check_policy_revision(
    expected: Option<&str>,
    policy_revision: Option<&str>,
    target_revision: &str,
) -> Result<(), ControlError> {
    match expected {
        Some(rev) if Some(rev) != policy_revision && rev != target_revision => Err(stale_policy()),
        _ => Ok(()),
    }
}

fn stale_policy() -> ControlError {
    ControlError::PreconditionFailed(
        "The Revision Id provided does not match the latest Revision Id. Call the GetPolicy API to retrieve the latest Revision Id".into(),
    )
}

fn url_not_found() -> ControlError {
    ControlError::NotFound("The resource you requested does not exist.".into())
}

/// A fresh URL id: 32 random lowercase alphanumerics.
fn new_url_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..32).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_ids_are_lowercase_alphanumeric() {
        let a = new_url_id();
        assert!(alonzo_model::is_url_id(&a), "{a}");
        assert_ne!(a, new_url_id());
    }

    #[test]
    fn revision_preconditions() {
        assert!(check_policy_revision(None, None, "t").is_ok());
        assert!(check_policy_revision(Some("p"), Some("p"), "t").is_ok());
        assert!(check_policy_revision(Some("t"), Some("p"), "t").is_ok());
        assert!(check_policy_revision(Some("x"), Some("p"), "t").is_err());
        assert!(check_policy_revision(Some("x"), None, "t").is_err());
    }
}

//! Who may reach a function from outside: resource-policy statements (`AddPermission`) and
//! function URL configurations (`CreateFunctionUrlConfig`), with the rules Lambda applies to
//! them and the one policy question the platform itself asks: may anyone call this URL?

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Largest resource policy Lambda accepts (20 KB), in bytes of its JSON document.
pub const MAX_POLICY_BYTES: usize = 20_480;

/// `FunctionUrlAuthType`: how a function URL authenticates callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UrlAuthType {
    /// Anyone may call; a resource-policy statement must still allow it.
    None,
    /// Callers sign with SigV4 (service `lambda`).
    AwsIam,
}

impl UrlAuthType {
    /// Lambda's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::AwsIam => "AWS_IAM",
        }
    }

    /// Parses Lambda's spelling; `field` names the parameter in the error.
    pub fn parse(s: &str, field: &str) -> Result<Self, ValidationError> {
        match s {
            "NONE" => Ok(Self::None),
            "AWS_IAM" => Ok(Self::AwsIam),
            other => Err(ValidationError::constraint(
                other,
                field,
                "Member must satisfy enum value set: [NONE, AWS_IAM]",
            )),
        }
    }
}

/// `InvokeMode` of a function URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvokeMode {
    /// The response is collected and sent whole (6 MB).
    Buffered,
    /// The response is streamed as the function writes it.
    ResponseStream,
}

impl InvokeMode {
    /// Lambda's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buffered => "BUFFERED",
            Self::ResponseStream => "RESPONSE_STREAM",
        }
    }

    /// Parses Lambda's spelling.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "BUFFERED" => Ok(Self::Buffered),
            "RESPONSE_STREAM" => Ok(Self::ResponseStream),
            other => Err(ValidationError::constraint(
                other,
                "invokeMode",
                "Member must satisfy enum value set: [BUFFERED, RESPONSE_STREAM]",
            )),
        }
    }
}

/// One statement of a function's resource policy, as `AddPermission` received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatement {
    /// `StatementId`, unique within the policy.
    pub sid: String,
    /// `lambda:InvokeFunction`, `lambda:InvokeFunctionUrl`, `lambda:*`, `*`…
    pub action: String,
    /// `*`, an account id, an ARN or a service principal (`s3.amazonaws.com`).
    pub principal: String,
    /// The function ARN the statement applies to (qualified when the policy is).
    pub resource: String,
    /// `SourceArn` condition.
    pub source_arn: Option<String>,
    /// `SourceAccount` condition.
    pub source_account: Option<String>,
    /// `PrincipalOrgID` condition.
    pub principal_org_id: Option<String>,
    /// `EventSourceToken` condition.
    pub event_source_token: Option<String>,
    /// `FunctionUrlAuthType` condition.
    pub function_url_auth_type: Option<UrlAuthType>,
    /// `InvokedViaFunctionUrl` condition.
    pub invoked_via_function_url: Option<bool>,
}

impl PolicyStatement {
    /// Checks every field against Lambda's rules for `AddPermission`.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_statement_id(&self.sid)?;
        check_action(&self.action)?;
        check_principal(&self.principal)?;
        if let Some(arn) = &self.source_arn {
            check_source_arn(arn)?;
        }
        if let Some(account) = &self.source_account {
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ValidationError::constraint(
                    account,
                    "sourceAccount",
                    "Member must satisfy regular expression pattern: \\d{12}",
                ));
            }
        }
        if let Some(org) = &self.principal_org_id {
            let tail = org.strip_prefix("o-").unwrap_or("");
            let ok = (10..=32).contains(&tail.len())
                && tail.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !ok {
                return Err(ValidationError::constraint(
                    org,
                    "principalOrgID",
                    "Member must satisfy regular expression pattern: o-[a-z0-9]{10,32}",
                ));
            }
        }
        if let Some(token) = &self.event_source_token {
            let ok = token.len() <= 256
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !ok {
                return Err(ValidationError::constraint(
                    token,
                    "eventSourceToken",
                    "Member must satisfy regular expression pattern: [a-zA-Z0-9._\\-]+",
                ));
            }
        }
        let any_action = self.action == "*" || self.action == "lambda:*";
        if self.function_url_auth_type.is_some()
            && !(any_action || self.action == "lambda:InvokeFunctionUrl")
        {
            return Err(ValidationError::param(
                "FunctionUrlAuthType is only supported with the lambda:InvokeFunctionUrl action.",
            ));
        }
        if self.invoked_via_function_url.is_some()
            && !(any_action || self.action == "lambda:InvokeFunction")
        {
            return Err(ValidationError::param(
                "InvokedViaFunctionUrl is only supported with the lambda:InvokeFunction action.",
            ));
        }
        Ok(())
    }

    /// Whether this statement lets anyone invoke a function URL whose `AuthType` is `NONE`:
    /// it allows `lambda:InvokeFunctionUrl` (or every action) to principal `*`, under the
    /// condition `lambda:FunctionUrlAuthType = NONE`, and with no condition an anonymous
    /// HTTP caller cannot meet (source ARN, source account, organisation, token).
    pub fn allows_public_url_invoke(&self) -> bool {
        let action = matches!(self.action.as_str(), "lambda:InvokeFunctionUrl" | "lambda:*" | "*");
        action
            && self.principal == "*"
            && self.function_url_auth_type == Some(UrlAuthType::None)
            && self.source_arn.is_none()
            && self.source_account.is_none()
            && self.principal_org_id.is_none()
            && self.event_source_token.is_none()
    }

    /// A generous estimate of the statement's size in the rendered policy document.
    pub fn approximate_size(&self) -> usize {
        const OVERHEAD: usize = 200;
        let optional = [
            &self.source_arn,
            &self.source_account,
            &self.principal_org_id,
            &self.event_source_token,
        ];
        OVERHEAD
            + self.sid.len()
            + self.action.len()
            + self.principal.len()
            + self.resource.len()
            + optional.iter().filter_map(|o| o.as_ref()).map(|s| s.len() + 40).sum::<usize>()
            + self.function_url_auth_type.map_or(0, |_| 60)
            + self.invoked_via_function_url.map_or(0, |_| 60)
    }
}

/// The resource policy of one function or one of its qualifiers (version or alias).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcePolicy {
    /// Function name.
    pub function: String,
    /// Version number or alias; `None` for the unqualified function.
    pub qualifier: Option<String>,
    /// Changes on every `AddPermission`/`RemovePermission` (optimistic locking).
    pub revision_id: String,
    /// Statements in the order they were added.
    pub statements: Vec<PolicyStatement>,
}

impl ResourcePolicy {
    /// Whether some statement lets anyone call a `NONE` function URL.
    pub fn allows_public_url_invoke(&self) -> bool {
        self.statements.iter().any(PolicyStatement::allows_public_url_invoke)
    }

    /// Estimated size of the rendered policy document.
    pub fn approximate_size(&self) -> usize {
        100 + self.statements.iter().map(PolicyStatement::approximate_size).sum::<usize>()
    }
}

/// Checks a `StatementId`: 1–100 of `[a-zA-Z0-9-_]`.
pub fn validate_statement_id(sid: &str) -> Result<(), ValidationError> {
    let ok = !sid.is_empty()
        && sid.len() <= 100
        && sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::constraint(
            sid,
            "statementId",
            "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)",
        ))
    }
}

fn check_action(action: &str) -> Result<(), ValidationError> {
    let ok = action == "*"
        || action.strip_prefix("lambda:").is_some_and(|a| {
            a == "*" || (!a.is_empty() && a.bytes().all(|b| b.is_ascii_alphabetic()))
        });
    if ok {
        Ok(())
    } else {
        Err(ValidationError::constraint(
            action,
            "action",
            "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])",
        ))
    }
}

fn check_principal(principal: &str) -> Result<(), ValidationError> {
    if principal.is_empty() || principal.chars().any(char::is_whitespace) {
        return Err(ValidationError::constraint(
            principal,
            "principal",
            "Member must satisfy regular expression pattern: [^\\s]+",
        ));
    }
    let account = principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit());
    let arn = principal.starts_with("arn:") && principal.split(':').count() >= 6;
    let service = principal.contains('.')
        && principal
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if principal == "*" || account || arn || service {
        Ok(())
    } else {
        Err(ValidationError::param(
            "The provided principal was invalid. Please check the principal and try again.",
        ))
    }
}

fn check_source_arn(arn: &str) -> Result<(), ValidationError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && !parts[2].is_empty()
        && (parts[4].is_empty()
            || (parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit())));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::constraint(
            arn,
            "sourceArn",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)",
        ))
    }
}

/// A function URL's CORS settings, as the caller set them (absent lists stay absent, so
/// that tools comparing what they sent with what they read see no drift).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cors {
    /// `Access-Control-Allow-Credentials`.
    pub allow_credentials: Option<bool>,
    /// `Access-Control-Allow-Headers` (≤ 100).
    pub allow_headers: Option<Vec<String>>,
    /// `Access-Control-Allow-Methods` (≤ 6; `*` or HTTP methods).
    pub allow_methods: Option<Vec<String>>,
    /// Allowed origins (≤ 100; `*` allows every origin).
    pub allow_origins: Option<Vec<String>>,
    /// `Access-Control-Expose-Headers` (≤ 100).
    pub expose_headers: Option<Vec<String>>,
    /// `Access-Control-Max-Age`, seconds (0–86400).
    pub max_age: Option<u32>,
}

/// The methods a CORS `AllowMethods` list may name.
const CORS_METHODS: &[&str] = &["*", "GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"];

impl Cors {
    /// Checks the model's limits and Lambda's own rules.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let lists = [
            (&self.allow_headers, "cors.allowHeaders", 100, 1024),
            (&self.allow_methods, "cors.allowMethods", 6, 6),
            (&self.allow_origins, "cors.allowOrigins", 100, 253),
            (&self.expose_headers, "cors.exposeHeaders", 100, 1024),
        ];
        for (list, field, max_items, max_len) in lists {
            let Some(list) = list else { continue };
            if list.len() > max_items {
                return Err(ValidationError::constraint(
                    &format!("{list:?}"),
                    field,
                    &format!("Member must have length less than or equal to {max_items}"),
                ));
            }
            if let Some(long) = list.iter().find(|v| v.len() > max_len) {
                return Err(ValidationError::constraint(
                    long,
                    field,
                    &format!("Member must have length less than or equal to {max_len}"),
                ));
            }
        }
        if let Some(empty) = self.allow_origins.iter().flatten().find(|o| o.is_empty()) {
            return Err(ValidationError::constraint(
                empty,
                "cors.allowOrigins",
                "Member must have length greater than or equal to 1",
            ));
        }
        if let Some(bad) = self
            .allow_methods
            .iter()
            .flatten()
            .find(|m| !CORS_METHODS.contains(&m.to_ascii_uppercase().as_str()))
        {
            return Err(ValidationError::param(format!(
                "Invalid CORS AllowMethods value: {bad}. Allowed values are *, GET, PUT, HEAD, POST, PATCH, DELETE and OPTIONS."
            )));
        }
        if let Some(age) = self.max_age.filter(|a| *a > 86_400) {
            return Err(ValidationError::constraint(
                &age.to_string(),
                "cors.maxAge",
                "Member must have value less than or equal to 86400",
            ));
        }
        Ok(())
    }
}

/// A stored function URL configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionUrlRecord {
    /// Function name.
    pub function: String,
    /// Alias the URL invokes; `None` for the unqualified function (`$LATEST`).
    pub qualifier: Option<String>,
    /// 32 lowercase alphanumerics, stable for the configuration's life.
    pub url_id: String,
    /// How callers authenticate.
    pub auth_type: UrlAuthType,
    /// CORS settings, if any.
    pub cors: Option<Cors>,
    /// Buffered or streamed responses.
    pub invoke_mode: InvokeMode,
    /// When the configuration was created.
    pub created: DateTime<Utc>,
    /// When it was last changed.
    pub last_modified: DateTime<Utc>,
}

/// Checks a URL id: 32 lowercase alphanumerics.
pub fn is_url_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Checks a function URL qualifier: an alias name (never all digits, never `$LATEST`).
pub fn validate_url_qualifier(q: &str) -> Result<(), ValidationError> {
    let ok = !q.is_empty()
        && q.len() <= 128
        && q.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !q.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ValidationError::constraint(
            q,
            "qualifier",
            "Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statement(action: &str, principal: &str) -> PolicyStatement {
        PolicyStatement {
            sid: "s1".into(),
            action: action.into(),
            principal: principal.into(),
            resource: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            source_arn: None,
            source_account: None,
            principal_org_id: None,
            event_source_token: None,
            function_url_auth_type: None,
            invoked_via_function_url: None,
        }
    }

    #[test]
    fn statement_rules() {
        assert!(statement("lambda:InvokeFunction", "s3.amazonaws.com").validate().is_ok());
        assert!(statement("lambda:*", "123456789012").validate().is_ok());
        assert!(statement("*", "arn:aws:iam::123456789012:role/x").validate().is_ok());
        assert!(statement("lambda:InvokeFunctionUrl", "*").validate().is_ok());
        assert!(statement("s3:GetObject", "*").validate().is_err());
        assert!(statement("lambda:Invoke1", "*").validate().is_err());
        assert!(statement("lambda:InvokeFunction", "not a principal").validate().is_err());
        assert_eq!(
            statement("lambda:InvokeFunction", "nobody").validate().unwrap_err().kind,
            crate::ValidationKind::Parameter
        );
        let mut s = statement("lambda:InvokeFunction", "*");
        s.sid = "bad id".into();
        assert!(s.validate().is_err());
        let mut s = statement("lambda:InvokeFunction", "*");
        s.function_url_auth_type = Some(UrlAuthType::None);
        assert!(s.validate().is_err(), "FunctionUrlAuthType needs InvokeFunctionUrl");
        let mut s = statement("lambda:InvokeFunction", "*");
        s.source_arn = Some("arn:aws:s3:::bucket".into());
        s.source_account = Some("123456789012".into());
        assert!(s.validate().is_ok());
        s.source_account = Some("12".into());
        assert!(s.validate().is_err());
        s.source_account = None;
        s.source_arn = Some("bucket".into());
        assert!(s.validate().is_err());
    }

    #[test]
    fn public_url_invocation_needs_the_none_condition_and_star() {
        let mut s = statement("lambda:InvokeFunctionUrl", "*");
        assert!(!s.allows_public_url_invoke());
        s.function_url_auth_type = Some(UrlAuthType::None);
        assert!(s.allows_public_url_invoke());
        s.principal = "123456789012".into();
        assert!(!s.allows_public_url_invoke());
        s.principal = "*".into();
        s.function_url_auth_type = Some(UrlAuthType::AwsIam);
        assert!(!s.allows_public_url_invoke());
        let mut s = statement("lambda:InvokeFunction", "*");
        s.function_url_auth_type = Some(UrlAuthType::None);
        assert!(!s.allows_public_url_invoke());
    }

    #[test]
    fn cors_rules() {
        let ok = Cors {
            allow_origins: Some(vec!["https://example.com".into()]),
            allow_methods: Some(vec!["GET".into(), "post".into()]),
            max_age: Some(300),
            ..Cors::default()
        };
        assert!(ok.validate().is_ok());
        let bad = Cors { allow_methods: Some(vec!["FETCH".into()]), ..Cors::default() };
        assert!(bad.validate().is_err());
        let bad = Cors { max_age: Some(86_401), ..Cors::default() };
        assert!(bad.validate().is_err());
        let bad = Cors { allow_methods: Some(vec!["GET".into(); 7]), ..Cors::default() };
        assert!(bad.validate().is_err());
        let bad = Cors { allow_origins: Some(vec![String::new()]), ..Cors::default() };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn ids_and_qualifiers() {
        assert!(is_url_id(&"a1".repeat(16)));
        assert!(!is_url_id(&"A1".repeat(16)));
        assert!(!is_url_id("abc"));
        assert!(validate_url_qualifier("live").is_ok());
        assert!(validate_url_qualifier("3").is_err());
        assert!(validate_url_qualifier("$LATEST").is_err());
    }
}

//! Alonzo's domain vocabulary: function names and ARNs, qualifiers, the version-specific
//! function configuration with Lambda's validation rules, and the function state model.
//!
//! This crate does no I/O, is not async and knows no wire format: the Lambda JSON shapes
//! live in `alonzo-api`, the SQL rows in `alonzo-store-sqlite`. Types derive `serde` only so
//! that stores can persist them in their own internal format.
//!
//! Main types: [`FunctionRef`] (what a client named), [`Account`] (region and account id used
//! in every ARN), [`FunctionConfig`] (what `$LATEST` or a version runs with) and
//! [`FunctionRecord`] (a stored function version with its code and state).

mod access;
mod alias;
mod arn;
mod config;
mod event_pattern;
mod function;
mod invocation;
mod layer;
mod names;
mod settings;

pub use access::{
    is_url_id, validate_statement_id, validate_url_qualifier, Cors, FunctionUrlRecord, InvokeMode,
    PolicyStatement, ResourcePolicy, UrlAuthType, MAX_POLICY_BYTES,
};
pub use alias::{validate_alias_name, AliasRecord};
pub use arn::Account;
pub use config::{
    Architecture, EnvironmentVars, FunctionConfig, LoggingConfig, TracingMode, VpcConfig,
    LAMBDA_RUNTIME_IDS, RESERVED_ENV_KEYS,
};
pub use event_pattern::{
    matches_any, sqs_record_view, EventPattern, PatternError, MAX_PATTERN_LEN,
};
pub use function::{CodeRef, FunctionRecord, FunctionState, LastUpdateStatus, LATEST};
pub use invocation::{
    AsyncEvent, AsyncOutcome, AttemptFailure, Delivery, InvocationRecord, ProvisionedInterval,
    FREE_EPHEMERAL_MB,
};
pub use layer::{validate_layer_name, LayerVersionRecord};
pub use names::{validate_tags, FunctionRef, Qualifier};
pub use settings::{
    DestinationKind, EventInvokeConfig, EventSourceMappingRecord, FunctionSetting, MappingState,
    ProvisionedConcurrencyConfig, SettingKind, DEFAULT_MAXIMUM_EVENT_AGE_SECONDS,
    DEFAULT_MAXIMUM_RETRY_ATTEMPTS,
};

/// Which of Lambda's two validation errors a broken rule produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationKind {
    /// A constraint of the API model itself (pattern, length, range): Lambda's front door
    /// answers these with `ValidationException` and a "1 validation error detected" message.
    Constraint,
    /// A rule Lambda checks behind the front door: `InvalidParameterValueException`.
    Parameter,
}

/// A rule of Lambda's that an input broke; the message is shown to the client as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// Which error code the client sees.
    pub kind: ValidationKind,
    /// The client-facing message.
    pub message: String,
}

impl ValidationError {
    /// An `InvalidParameterValueException`.
    pub fn param(msg: impl Into<String>) -> Self {
        Self { kind: ValidationKind::Parameter, message: msg.into() }
    }

    /// A `ValidationException` in the front door's wording:
    /// `1 validation error detected: Value 'x' at 'field' failed to satisfy constraint: …`.
    pub fn constraint(value: &str, field: &str, constraint: &str) -> Self {
        Self {
            kind: ValidationKind::Constraint,
            message: format!(
                "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
            ),
        }
    }
}

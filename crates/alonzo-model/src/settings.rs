//! Per-function settings that live beside the versions rather than inside them: reserved
//! concurrency (per function), asynchronous invocation configuration and provisioned
//! concurrency (per qualifier), with Lambda's rules for each.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Which kind of setting a stored entry is; the store keys settings by function, kind and
/// qualifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettingKind {
    /// `PutFunctionConcurrency` (qualifier always empty).
    ReservedConcurrency,
    /// `PutFunctionEventInvokeConfig`.
    EventInvoke,
    /// `PutProvisionedConcurrencyConfig`.
    ProvisionedConcurrency,
    /// `CreateEventSourceMapping` (the qualifier column holds the mapping's UUID).
    EventSourceMapping,
}

impl SettingKind {
    /// Stable name used by stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReservedConcurrency => "reserved-concurrency",
            Self::EventInvoke => "event-invoke",
            Self::ProvisionedConcurrency => "provisioned-concurrency",
            Self::EventSourceMapping => "event-source-mapping",
        }
    }
}

/// One stored setting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FunctionSetting {
    /// Reserved concurrent executions of the whole function.
    ReservedConcurrency {
        /// 0 disables invocation.
        reserved: u32,
    },
    /// Asynchronous invocation configuration of a qualifier.
    EventInvoke(EventInvokeConfig),
    /// Provisioned concurrency of a version or alias.
    ProvisionedConcurrency(ProvisionedConcurrencyConfig),
    /// An event source mapping that invokes the function.
    EventSourceMapping(EventSourceMappingRecord),
}

impl FunctionSetting {
    /// The kind of this setting.
    pub fn kind(&self) -> SettingKind {
        match self {
            Self::ReservedConcurrency { .. } => SettingKind::ReservedConcurrency,
            Self::EventInvoke(_) => SettingKind::EventInvoke,
            Self::ProvisionedConcurrency(_) => SettingKind::ProvisionedConcurrency,
            Self::EventSourceMapping(_) => SettingKind::EventSourceMapping,
        }
    }
}

/// Lambda's defaults for asynchronous invocation.
pub const DEFAULT_MAXIMUM_RETRY_ATTEMPTS: u32 = 2;
/// Six hours.
pub const DEFAULT_MAXIMUM_EVENT_AGE_SECONDS: u32 = 21_600;

/// `FunctionEventInvokeConfig`: retries, event age and destinations of a qualifier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInvokeConfig {
    /// 0–2; `None` means Lambda's default (2).
    pub maximum_retry_attempts: Option<u32>,
    /// 60–21600 seconds; `None` means six hours.
    pub maximum_event_age_seconds: Option<u32>,
    /// Destination ARN for successful invocations.
    pub on_success: Option<String>,
    /// Destination ARN for discarded events.
    pub on_failure: Option<String>,
    /// Epoch milliseconds of the last change.
    pub last_modified_ms: i64,
}

impl EventInvokeConfig {
    /// The retries after a function error this configuration allows.
    pub fn retries(&self) -> u32 {
        self.maximum_retry_attempts.unwrap_or(DEFAULT_MAXIMUM_RETRY_ATTEMPTS)
    }

    /// The maximum age of an event, milliseconds.
    pub fn max_age_ms(&self) -> i64 {
        i64::from(self.maximum_event_age_seconds.unwrap_or(DEFAULT_MAXIMUM_EVENT_AGE_SECONDS))
            * 1000
    }

    /// Checks the ranges and destination kinds.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(n) = self.maximum_retry_attempts {
            if n > 2 {
                return Err(ValidationError::constraint(
                    &n.to_string(),
                    "maximumRetryAttempts",
                    "Member must have value less than or equal to 2",
                ));
            }
        }
        if let Some(n) = self.maximum_event_age_seconds {
            if !(60..=21_600).contains(&n) {
                let constraint = if n < 60 {
                    "Member must have value greater than or equal to 60"
                } else {
                    "Member must have value less than or equal to 21600"
                };
                return Err(ValidationError::constraint(
                    &n.to_string(),
                    "maximumEventAgeInSeconds",
                    constraint,
                ));
            }
        }
        for arn in [&self.on_success, &self.on_failure].into_iter().flatten() {
            DestinationKind::of(arn)?;
        }
        Ok(())
    }
}

/// Where a destination or dead-letter ARN points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// `arn:aws:sqs:…` (the built-in queue service).
    Sqs,
    /// `arn:aws:lambda:…:function:…`.
    Lambda,
}

impl DestinationKind {
    /// Classifies a destination ARN; targets Alonzo cannot deliver to yet (SNS, EventBridge,
    /// S3) are refused rather than accepted and silently dropped.
    pub fn of(arn: &str) -> Result<Self, ValidationError> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let invalid = || {
            ValidationError::param(format!(
                "The provided destination config DestinationConfig is invalid: {arn} is not a valid ARN."
            ))
        };
        if parts.len() < 6 || parts[0] != "arn" || parts[5].is_empty() {
            return Err(invalid());
        }
        match parts[2] {
            "sqs" => Ok(Self::Sqs),
            "lambda" if parts[5].starts_with("function:") => Ok(Self::Lambda),
            "sns" | "events" | "s3" => Err(ValidationError::param(format!(
                "Destination {arn} is not supported by this server yet: use an SQS queue or a Lambda function."
            ))),
            _ => Err(invalid()),
        }
    }
}

/// `ProvisionedConcurrencyConfig` as requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedConcurrencyConfig {
    /// Environments to keep initialised.
    pub requested: u32,
    /// Epoch milliseconds of the last change.
    pub last_modified_ms: i64,
}

/// Where an event source mapping is in its life (Lambda's `State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MappingState {
    /// Just created; the poller is starting.
    Creating,
    /// Being enabled.
    Enabling,
    /// Polling.
    Enabled,
    /// Being disabled.
    Disabling,
    /// Not polling.
    Disabled,
    /// Changed; the poller restarts with the new settings.
    Updating,
    /// Being deleted.
    Deleting,
}

impl MappingState {
    /// Lambda's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "Creating",
            Self::Enabling => "Enabling",
            Self::Enabled => "Enabled",
            Self::Disabling => "Disabling",
            Self::Disabled => "Disabled",
            Self::Updating => "Updating",
            Self::Deleting => "Deleting",
        }
    }
}

/// A stored event source mapping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventSourceMappingRecord {
    /// The mapping's id.
    pub uuid: String,
    /// Function name.
    pub function: String,
    /// Version or alias to invoke, if any.
    pub qualifier: Option<String>,
    /// The queue (or stream) ARN.
    pub event_source_arn: String,
    /// Records per invocation.
    pub batch_size: u32,
    /// How long to gather records before invoking, seconds.
    pub maximum_batching_window_s: u32,
    /// Whether the mapping should poll.
    pub enabled: bool,
    /// `["ReportBatchItemFailures"]` or empty.
    pub function_response_types: Vec<String>,
    /// `ScalingConfig.MaximumConcurrency`.
    pub maximum_concurrency: Option<u32>,
    /// `FilterCriteria.Filters[].Pattern`, as given.
    pub filter_patterns: Vec<String>,
    /// Current state.
    pub state: MappingState,
    /// Why it is in that state (`USER_INITIATED`…).
    pub state_transition_reason: String,
    /// Epoch milliseconds of the last change.
    pub last_modified_ms: i64,
    /// Increases on every change, so the poller knows to restart.
    pub generation: u64,
    /// The mapping's tags (`TagResource` on its ARN).
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_invoke_ranges() {
        let ok = EventInvokeConfig {
            maximum_retry_attempts: Some(0),
            maximum_event_age_seconds: Some(60),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.retries(), 0);
        assert_eq!(ok.max_age_ms(), 60_000);
        let too_many = EventInvokeConfig { maximum_retry_attempts: Some(3), ..Default::default() };
        assert!(too_many.validate().is_err());
        let young = EventInvokeConfig { maximum_event_age_seconds: Some(59), ..Default::default() };
        assert!(young.validate().is_err());
        let default = EventInvokeConfig::default();
        assert_eq!(default.retries(), 2);
        assert_eq!(default.max_age_ms(), 21_600_000);
    }

    #[test]
    fn destinations() {
        assert_eq!(
            DestinationKind::of("arn:aws:sqs:us-east-1:123456789012:q").unwrap(),
            DestinationKind::Sqs
        );
        assert_eq!(
            DestinationKind::of("arn:aws:lambda:us-east-1:123456789012:function:f").unwrap(),
            DestinationKind::Lambda
        );
        assert!(DestinationKind::of("arn:aws:sns:us-east-1:123456789012:t").is_err());
        assert!(DestinationKind::of("not-an-arn").is_err());
        assert!(DestinationKind::of("arn:aws:lambda:us-east-1:123456789012:layer:x").is_err());
    }
}

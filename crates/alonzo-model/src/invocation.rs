//! Invocation records: what one invocation cost and how long provisioned concurrency was
//! configured (for metering), and an asynchronous event waiting in the durable queue.

use serde::{Deserialize, Serialize};

use crate::config::{limits, Architecture};

/// One finished invocation, as metered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvocationRecord {
    /// Request id.
    pub request_id: String,
    /// Function name.
    pub function: String,
    /// Version that ran.
    pub version: String,
    /// Start, epoch milliseconds.
    pub started_ms: i64,
    /// Duration, ms.
    pub duration_ms: f64,
    /// Billed duration (init included), ms.
    pub billed_ms: u64,
    /// Configured memory, MB.
    pub memory_mb: u32,
    /// Init duration of a cold start, ms.
    pub init_ms: Option<f64>,
    /// Error type of a failed invocation.
    pub error_type: Option<String>,
    /// Configured `EphemeralStorage.Size`, MB (512, the free size, in records stored before
    /// this field existed).
    #[serde(default = "free_ephemeral_mb")]
    pub ephemeral_mb: u32,
    /// Whether it ran on an environment initialised for provisioned concurrency (billed at
    /// the provisioned duration price; never in records stored before this field existed).
    #[serde(default)]
    pub provisioned: bool,
}

/// `/tmp` MB included in the price of duration (Lambda's smallest `EphemeralStorage.Size`);
/// only storage above it is billed.
pub const FREE_EPHEMERAL_MB: u32 = limits::EPHEMERAL_MB.0;

fn free_ephemeral_mb() -> u32 {
    FREE_EPHEMERAL_MB
}

/// A period during which a version (or the version an alias points at) had provisioned
/// concurrency configured, with the configuration it was billed at. A change of any of these
/// fields (a new count, an alias moved to another version) ends one period and starts another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisionedInterval {
    /// Function name.
    pub function: String,
    /// The version number or alias the configuration was put on.
    pub qualifier: String,
    /// The version it stood for.
    pub version: String,
    /// Environments configured.
    pub count: u32,
    /// The version's memory, MB.
    pub memory_mb: u32,
    /// The version's `EphemeralStorage.Size`, MB.
    pub ephemeral_mb: u32,
    /// The version's architecture.
    pub architecture: Architecture,
    /// Start, epoch milliseconds.
    pub start_ms: i64,
    /// End, epoch milliseconds; `None` while it lasts.
    pub end_ms: Option<i64>,
}

impl ProvisionedInterval {
    /// Whether two periods bill the same configuration (everything but their times).
    pub fn same_configuration(&self, other: &Self) -> bool {
        self.function == other.function
            && self.qualifier == other.qualifier
            && self.version == other.version
            && self.count == other.count
            && self.memory_mb == other.memory_mb
            && self.ephemeral_mb == other.ephemeral_mb
            && self.architecture == other.architecture
    }
}

/// An accepted asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncEvent {
    /// Request id given to the caller with the 202.
    pub id: String,
    /// Function name.
    pub function: String,
    /// Qualifier the caller used (`$LATEST` when none).
    pub qualifier: String,
    /// Event bytes.
    pub payload: Vec<u8>,
    /// When it was accepted, epoch milliseconds.
    pub received_ms: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// X-Ray trace header, if any.
    pub trace_id: Option<String>,
    /// Retries after throttles and platform errors so far (they do not count against
    /// `MaximumRetryAttempts`).
    #[serde(default)]
    pub system_attempts: u32,
    /// The last failed attempt's outcome, for the failure record when the event expires.
    #[serde(default)]
    pub last_failure: Option<AttemptFailure>,
    /// Set once the event is settled (succeeded or given up on): what remains to deliver.
    #[serde(default)]
    pub outcome: Option<AsyncOutcome>,
}

/// The final result of an asynchronous event, kept until its destinations and dead-letter
/// queue have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncOutcome {
    /// `Success`, `RetriesExhausted` or `EventAgeExceeded`.
    pub condition: String,
    /// Attempts made.
    pub invoke_count: u32,
    /// The qualified ARN the event was invoked as.
    pub function_arn: String,
    /// The version that ran last, if any.
    pub executed_version: Option<String>,
    /// `Unhandled` when the function failed.
    pub function_error: Option<String>,
    /// The function's response or error payload.
    pub response: Vec<u8>,
    /// Error type, for the dead-letter queue's `ErrorMessage`.
    pub error_type: Option<String>,
    /// When it settled, epoch milliseconds.
    pub settled_ms: i64,
    /// Deliveries not yet made.
    pub pending: Vec<Delivery>,
    /// Failed delivery attempts so far.
    #[serde(default)]
    pub delivery_attempts: u32,
}

/// One delivery of a settled event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// The invocation record to a destination ARN.
    Destination(String),
    /// The original event to a dead-letter queue ARN.
    DeadLetter(String),
}

/// How an attempt of an asynchronous event failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptFailure {
    /// `Unhandled` for a function error; empty for throttles and platform errors.
    pub function_error: Option<String>,
    /// The error's type (`Runtime.ExitError`, `TooManyRequestsException`…).
    pub error_type: String,
    /// The function's error payload or the platform's message.
    pub payload: Vec<u8>,
    /// The version that ran, if one did.
    pub executed_version: Option<String>,
}

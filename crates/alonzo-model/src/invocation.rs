//! Invocation records: what one invocation cost (for metering) and an asynchronous event
//! waiting in the durable queue.

use serde::{Deserialize, Serialize};

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
}

//! A stored function version: its configuration, its code package and its state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::FunctionConfig;

/// The name of the mutable version.
pub const LATEST: &str = "$LATEST";

/// Lambda's `State`: whether the function can be invoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FunctionState {
    /// Resources are being prepared; invocations are refused.
    Pending,
    /// Ready to invoke.
    Active,
    /// Preparation failed; see the state reason.
    Failed,
}

impl FunctionState {
    /// Lambda's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Active => "Active",
            Self::Failed => "Failed",
        }
    }
}

/// Lambda's `LastUpdateStatus`: how the latest change is getting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LastUpdateStatus {
    /// The change is being applied; further changes are refused.
    InProgress,
    /// The change was applied.
    Successful,
    /// The change failed; see the reason.
    Failed,
}

impl LastUpdateStatus {
    /// Lambda's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "InProgress",
            Self::Successful => "Successful",
            Self::Failed => "Failed",
        }
    }
}

/// A deployment package in the content-addressed code store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRef {
    /// Hex SHA-256 of the zip: the key in the code store.
    pub sha256_hex: String,
    /// Size of the zip in bytes (`CodeSize`).
    pub size: u64,
    /// Total uncompressed size, for the 250 MB function-plus-layers limit.
    pub unzipped_size: u64,
}

/// One version of one function, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRecord {
    /// Bare function name.
    pub name: String,
    /// `$LATEST` or a version number.
    pub version: String,
    /// What the version runs with.
    pub config: FunctionConfig,
    /// Its code.
    pub code: CodeRef,
    /// When the code or configuration last changed.
    pub last_modified: DateTime<Utc>,
    /// Changes on every mutation (optimistic locking).
    pub revision_id: String,
    /// Invocability.
    pub state: FunctionState,
    /// Why the state is what it is (for `Pending` and `Failed`).
    pub state_reason: Option<String>,
    /// Machine-readable reason code (`Creating`, `Idle`…).
    pub state_reason_code: Option<String>,
    /// Progress of the latest change.
    pub last_update_status: LastUpdateStatus,
    /// Why the latest change failed, if it did.
    pub last_update_status_reason: Option<String>,
}

impl FunctionRecord {
    /// Whether a change is still being applied, so a new one must wait.
    pub fn is_busy(&self) -> bool {
        self.state == FunctionState::Pending
            || self.last_update_status == LastUpdateStatus::InProgress
    }

    /// Marks the pending creation or update as applied.
    pub fn settle(&mut self) {
        self.state = FunctionState::Active;
        self.state_reason = None;
        self.state_reason_code = None;
        self.last_update_status = LastUpdateStatus::Successful;
        self.last_update_status_reason = None;
    }
}

//! The control plane's error: what went wrong, in terms the API layer maps to Lambda's
//! error codes. Messages of client errors are shown to clients; `Internal` is not.

use alonzo_model::ValidationError;
use alonzo_store::StoreError;

use crate::package::PackageError;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The named resource does not exist (`ResourceNotFoundException`).
    #[error("{0}")]
    NotFound(String),
    /// The resource exists already or is busy (`ResourceConflictException`).
    #[error("{0}")]
    Conflict(String),
    /// An input broke one of Lambda's rules.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A `RevisionId` or `CodeSha256` precondition did not hold (`PreconditionFailedException`).
    #[error("{0}")]
    PreconditionFailed(String),
    /// The deployment package was rejected (`InvalidParameterValueException`).
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The platform failed; details go to the log, never to the client.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e)
    }
}

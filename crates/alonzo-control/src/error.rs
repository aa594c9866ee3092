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
    /// The request body is not what the operation accepts (`InvalidRequestContentException`).
    #[error("{0}")]
    InvalidContent(String),
    /// A payload exceeds its limit (`RequestEntityTooLargeException`).
    #[error("Request must be smaller than {limit} bytes for the {operation} operation")]
    TooLarge {
        /// The limit, bytes.
        limit: usize,
        /// The operation named in the message.
        operation: &'static str,
    },
    /// A resource policy would exceed its size limit (`PolicyLengthExceededException`).
    #[error("{0}")]
    PolicyTooLarge(String),
    /// A concurrency limit was reached (`TooManyRequestsException` with this `Reason`).
    #[error("Rate Exceeded.")]
    Throttled {
        /// Lambda's throttle reason.
        reason: &'static str,
    },
    /// No provisioned-concurrency configuration (`ProvisionedConcurrencyConfigNotFoundException`).
    #[error("{0}")]
    ProvisionedNotFound(String),
    /// The function cannot be run on this host now (`ServiceException`; details are logged).
    #[error("the function could not be run")]
    Unavailable,
    /// The platform failed; details go to the log, never to the client.
    #[error("internal error")]
    Internal(#[source] StoreError),
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e)
    }
}

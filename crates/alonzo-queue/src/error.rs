//! [`QueueError`]: every way a queue operation fails, named after SQS's error codes; the
//! API crate decides how each is rendered on the wire.

use alonzo_store::QueueStoreError;

/// A failed queue operation.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue does not exist (`QueueDoesNotExist`).
    #[error("The specified queue does not exist.")]
    QueueDoesNotExist,
    /// A queue of that name exists with other attribute values (`QueueNameExists`).
    #[error("{0}")]
    QueueNameExists(String),
    /// A parameter's value is out of range or malformed (`InvalidParameterValue`).
    #[error("{0}")]
    InvalidParameterValue(String),
    /// A required parameter is missing (`MissingParameter`).
    #[error("{0}")]
    MissingParameter(String),
    /// An unknown or read-only queue attribute name (`InvalidAttributeName`).
    #[error("{0}")]
    InvalidAttributeName(String),
    /// A queue attribute's value is invalid (`InvalidAttributeValue`).
    #[error("{0}")]
    InvalidAttributeValue(String),
    /// The body has characters SQS does not allow (`InvalidMessageContents`).
    #[error("{0}")]
    InvalidMessageContents(String),
    /// A receipt handle that no receive produced (`ReceiptHandleIsInvalid`).
    #[error("{0}")]
    ReceiptHandleIsInvalid(String),
    /// A visibility change for a message that is not in flight (`MessageNotInflight`).
    #[error("The message referred to is not in flight.")]
    MessageNotInflight,
    /// A batch without entries (`EmptyBatchRequest`).
    #[error("There should be at least one {0} in the request.")]
    EmptyBatchRequest(&'static str),
    /// More than ten entries (`TooManyEntriesInBatchRequest`).
    #[error("Maximum number of entries per request are 10. You have sent {0}.")]
    TooManyEntriesInBatchRequest(usize),
    /// Two entries share an id (`BatchEntryIdsNotDistinct`).
    #[error("Id {0} repeated.")]
    BatchEntryIdsNotDistinct(String),
    /// An entry id of the wrong shape (`InvalidBatchEntryId`).
    #[error("A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")]
    InvalidBatchEntryId,
    /// The entries' messages together exceed the queue's maximum size
    /// (`BatchRequestTooLong`).
    #[error("Batch requests cannot be longer than {0} bytes. You have sent {1} bytes.")]
    BatchRequestTooLong(usize, usize),
    /// Something SQS has and Alonzo does not (`UnsupportedOperation`).
    #[error("{0}")]
    Unsupported(String),
    /// The store failed; the detail is logged, never sent.
    #[error("internal queue failure: {0}")]
    Internal(String),
}

impl From<QueueStoreError> for QueueError {
    fn from(e: QueueStoreError) -> Self {
        match e {
            QueueStoreError::QueueNotFound => Self::QueueDoesNotExist,
            QueueStoreError::Backend(m) => Self::Internal(m),
        }
    }
}

//! [`QueueStore`]: durable storage of the SQS-compatible queues and their messages.
//!
//! The store holds queue records (attributes as SQS spells them, uninterpreted) and messages
//! with their delivery state (`visible_at_ms`, receive count, the current receipt token). It
//! applies no SQS rule of its own beyond what must be atomic: a receive picks visible
//! messages, drops those past retention, moves those over the redrive limit to the
//! dead-letter queue and hides the rest behind a fresh receipt token, all in one
//! transaction. The rules themselves (defaults, validation, long polling) live in
//! `alonzo-queue`.
//!
//! Crash-safety contract: a call that returned `Ok` is durable.

use std::collections::BTreeMap;

/// A queue's numeric identity. A queue deleted and created again under the same name gets
/// a new id, so handles and messages of the old queue never leak into the new one.
pub type QueueId = i64;

/// What can go wrong in a queue store.
#[derive(Debug, thiserror::Error)]
pub enum QueueStoreError {
    /// The queue does not exist (any more).
    #[error("queue not found")]
    QueueNotFound,
    /// The backend failed; the message is for operators' logs, never for clients.
    #[error("queue storage backend failure: {0}")]
    Backend(String),
}

/// A stored queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecord {
    /// Identity of this incarnation of the queue.
    pub id: QueueId,
    /// The queue name.
    pub name: String,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// Last attribute change, ms since the epoch.
    pub modified_ms: i64,
    /// Settable attributes as SQS names and spells them (`VisibilityTimeout` → `"30"`).
    pub attributes: BTreeMap<String, String>,
    /// Cost-allocation tags.
    pub tags: BTreeMap<String, String>,
}

/// A typed message attribute: its `DataType` (`String`, `Number`, `Binary`, with an
/// optional `.custom` suffix) and exactly one of the two values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttributeValue {
    /// `String`, `Number` or `Binary`, optionally followed by `.label`.
    pub data_type: String,
    /// The value of a `String` or `Number` attribute.
    pub string_value: Option<String>,
    /// The value of a `Binary` attribute.
    pub binary_value: Option<Vec<u8>>,
}

impl MessageAttributeValue {
    /// A `String`/`Number` (or custom-labelled) attribute.
    pub fn string(data_type: impl Into<String>, value: impl Into<String>) -> Self {
        Self { data_type: data_type.into(), string_value: Some(value.into()), binary_value: None }
    }

    /// A `Binary` (or custom-labelled) attribute.
    pub fn binary(data_type: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self { data_type: data_type.into(), string_value: None, binary_value: Some(value.into()) }
    }
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The message id (a UUID).
    pub message_id: String,
    /// The body.
    pub body: String,
    /// Message attributes by name.
    pub attributes: BTreeMap<String, MessageAttributeValue>,
    /// Hex MD5 of the body.
    pub md5_of_body: String,
    /// Hex MD5 of the attributes (SQS's algorithm), if there are any.
    pub md5_of_attributes: Option<String>,
    /// Who sent it (`SenderId`).
    pub sender_id: String,
    /// The X-Ray trace header sent as the `AWSTraceHeader` system attribute, if any.
    pub trace_header: Option<String>,
    /// When it was accepted, ms since the epoch (`SentTimestamp`).
    pub sent_ms: i64,
    /// When it first becomes receivable (sent time plus delay).
    pub visible_at_ms: i64,
}

/// A message as handed out by a receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in the store, unique across queues; part of the receipt handle.
    pub seq: i64,
    /// The stored message.
    pub message: NewMessage,
    /// Receives so far, this one included.
    pub receive_count: u32,
    /// First receive, ms since the epoch.
    pub first_receive_ms: Option<i64>,
    /// The token of this receive; only the newest token deletes the message.
    pub receipt_token: String,
}

/// The dead-letter rule applied during a receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedriveRule {
    /// The dead-letter queue.
    pub dead_letter_queue: QueueId,
    /// A message already received this many times moves instead of being delivered again.
    pub max_receive_count: u32,
}

/// One receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveRequest {
    /// The queue.
    pub queue: QueueId,
    /// The current time, ms since the epoch.
    pub now_ms: i64,
    /// Most messages to hand out.
    pub max: usize,
    /// How long the handed-out messages stay invisible, ms.
    pub visibility_ms: i64,
    /// Messages sent this long ago or earlier are dropped, ms.
    pub retention_ms: i64,
    /// Where messages over the receive limit go.
    pub redrive: Option<RedriveRule>,
}

/// What a receive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// The delivered messages.
    pub messages: Vec<StoredMessage>,
    /// How many messages were moved to the dead-letter queue.
    pub moved_to_dead_letter: usize,
}

/// Outcome of a visibility change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibilityChange {
    /// The message's visibility was changed.
    Changed,
    /// The message is not in flight (visible, or never received).
    NotInFlight,
    /// No message has this handle: deleted, moved, or received again since.
    Unknown,
}

/// Message counts of a queue at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Receivable now (`ApproximateNumberOfMessages`).
    pub visible: u64,
    /// Received and not yet visible again (`ApproximateNumberOfMessagesNotVisible`).
    pub in_flight: u64,
    /// Never received and still delayed (`ApproximateNumberOfMessagesDelayed`).
    pub delayed: u64,
}

/// Queue and message storage. Every method is one atomic, durable transaction; concurrent
/// calls may share a commit (and its fsync).
#[async_trait::async_trait]
pub trait QueueStore: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a queue, or returns the existing one of that name unchanged (`Err` is never
    /// "exists": the caller compares attributes).
    async fn create_queue(
        &self,
        name: &str,
        attributes: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<(QueueRecord, bool), QueueStoreError>;

    /// Every queue, by name.
    async fn list_queues(&self) -> Result<Vec<QueueRecord>, QueueStoreError>;

    /// Replaces a queue's attributes and tags.
    async fn update_queue(
        &self,
        queue: QueueId,
        attributes: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
        now_ms: i64,
    ) -> Result<QueueRecord, QueueStoreError>;

    /// Deletes a queue and its messages.
    async fn delete_queue(&self, queue: QueueId) -> Result<(), QueueStoreError>;

    /// Deletes every message of a queue.
    async fn purge_queue(&self, queue: QueueId) -> Result<(), QueueStoreError>;

    /// Stores messages (one queue or several), all or none; returns their `seq`s.
    async fn put_messages(
        &self,
        messages: Vec<(QueueId, NewMessage)>,
    ) -> Result<Vec<i64>, QueueStoreError>;

    /// Hands out visible messages (see the module documentation).
    async fn receive(&self, request: ReceiveRequest) -> Result<Received, QueueStoreError>;

    /// Deletes the message if `token` is its newest receipt token; `Ok(false)` when it was
    /// not (already deleted, or received again since).
    async fn delete_message(
        &self,
        queue: QueueId,
        seq: i64,
        token: &str,
    ) -> Result<bool, QueueStoreError>;

    /// Makes an in-flight message visible again at `visible_at_ms`.
    async fn change_visibility(
        &self,
        queue: QueueId,
        seq: i64,
        token: &str,
        now_ms: i64,
        visible_at_ms: i64,
    ) -> Result<VisibilityChange, QueueStoreError>;

    /// Counts a queue's messages at `now_ms`, ignoring those past retention.
    async fn counts(
        &self,
        queue: QueueId,
        now_ms: i64,
        retention_ms: i64,
    ) -> Result<QueueCounts, QueueStoreError>;
}

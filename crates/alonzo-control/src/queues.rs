//! The control plane's view of a message queue service: what dead-letter queues, SQS
//! destinations and SQS event source mappings need from it. The binary connects it to the
//! built-in queue service; other brokers can implement it too.

use std::collections::BTreeMap;
use std::time::Duration;

/// A message attribute: name, data type (`String`, `Number`, `Binary`), value.
pub type MessageAttribute = (String, String, String);

/// A received message, with what Lambda's SQS event record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// `messageId`.
    pub message_id: String,
    /// `receiptHandle` of this receive.
    pub receipt_handle: String,
    /// `body`.
    pub body: String,
    /// `md5OfBody`.
    pub md5_of_body: String,
    /// `md5OfMessageAttributes`, when the message has attributes.
    pub md5_of_message_attributes: Option<String>,
    /// System attributes (`ApproximateReceiveCount`, `SentTimestamp`, `SenderId`,
    /// `ApproximateFirstReceiveTimestamp`…).
    pub attributes: BTreeMap<String, String>,
    /// Message attributes: name → (data type, string value or base64 of a binary value).
    pub message_attributes: BTreeMap<String, (String, String)>,
}

/// A queue service reachable by queue ARN. Errors carry a message for the operator's log.
#[async_trait::async_trait]
pub trait QueueService: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one message durably.
    async fn send(
        &self,
        queue_arn: &str,
        body: String,
        attributes: Vec<MessageAttribute>,
    ) -> Result<(), String>;

    /// Whether the queue exists.
    async fn exists(&self, queue_arn: &str) -> bool;

    /// Receives up to `max` messages, waiting up to `wait` for the first (long polling).
    async fn receive(
        &self,
        queue_arn: &str,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<QueueMessage>, String>;

    /// Deletes a received message.
    async fn delete(&self, queue_arn: &str, receipt_handle: &str) -> Result<(), String>;

    /// Makes a received message visible again after `timeout`.
    async fn change_visibility(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), String>;

    /// Messages waiting to be received (`ApproximateNumberOfMessages`).
    async fn backlog(&self, queue_arn: &str) -> Result<u64, String>;
}

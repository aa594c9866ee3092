//! The control plane's view of a message queue service: what dead-letter queues, SQS
//! destinations and SQS event source mappings need from it. The binary connects it to the
//! built-in queue service; other brokers can implement it too.

/// A message attribute: name, data type (`String`, `Number`, `Binary`), value.
pub type MessageAttribute = (String, String, String);

/// A queue service reachable by queue ARN.
#[async_trait::async_trait]
pub trait QueueService: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one message durably; `Err` carries a message for the operator's log.
    async fn send(
        &self,
        queue_arn: &str,
        body: String,
        attributes: Vec<MessageAttribute>,
    ) -> Result<(), String>;
}

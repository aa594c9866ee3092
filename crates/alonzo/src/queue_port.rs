//! Connects the control plane's `QueueService` port (dead-letter queues, SQS destinations,
//! SQS event source mappings) to the built-in queue engine, `alonzo_queue::Queues`.

use std::collections::BTreeMap;
use std::time::Duration;

use alonzo_control::{MessageAttribute, QueueMessage, QueueService};
use alonzo_queue::{MessageAttributeValue, Queues, ReceiveOptions, SendMessage};
use base64::Engine as _;

/// The built-in queues, seen by the control plane.
#[derive(Debug, Clone)]
pub(crate) struct BuiltInQueues(pub(crate) Queues);

impl BuiltInQueues {
    fn name(&self, arn: &str) -> Result<String, String> {
        let info = self.0.get_queue_by_arn(arn).map_err(|e| e.to_string())?;
        Ok(info.name)
    }
}

#[async_trait::async_trait]
impl QueueService for BuiltInQueues {
    async fn send(
        &self,
        queue_arn: &str,
        body: String,
        attributes: Vec<MessageAttribute>,
    ) -> Result<(), String> {
        let name = self.name(queue_arn)?;
        let mut message = SendMessage::new(body);
        for (key, data_type, value) in attributes {
            message.message_attributes.insert(key, MessageAttributeValue::string(data_type, value));
        }
        self.0.send_message(&name, message).await.map(|_| ()).map_err(|e| e.to_string())
    }

    async fn exists(&self, queue_arn: &str) -> bool {
        self.0.get_queue_by_arn(queue_arn).is_ok()
    }

    async fn receive(
        &self,
        queue_arn: &str,
        max: u32,
        wait: Duration,
    ) -> Result<Vec<QueueMessage>, String> {
        let name = self.name(queue_arn)?;
        let options = ReceiveOptions {
            max_messages: usize::try_from(max.clamp(1, 10)).unwrap_or(10),
            visibility_timeout: None,
            wait_time_seconds: Some(u32::try_from(wait.as_secs()).unwrap_or(20).min(20)),
            message_attribute_names: vec!["All".into()],
        };
        let received = self.0.receive_messages(&name, options).await.map_err(|e| e.to_string())?;
        Ok(received
            .into_iter()
            .map(|m| {
                let attributes: BTreeMap<String, String> =
                    m.system_attributes().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                let message_attributes = m
                    .message_attributes
                    .iter()
                    .map(|(k, v)| {
                        let value = match (&v.string_value, &v.binary_value) {
                            (Some(s), _) => s.clone(),
                            (None, Some(b)) => base64::engine::general_purpose::STANDARD.encode(b),
                            (None, None) => String::new(),
                        };
                        (k.clone(), (v.data_type.clone(), value))
                    })
                    .collect();
                QueueMessage {
                    message_id: m.message_id,
                    receipt_handle: m.receipt_handle,
                    body: m.body,
                    md5_of_body: m.md5_of_body,
                    md5_of_message_attributes: m.md5_of_message_attributes,
                    attributes,
                    message_attributes,
                }
            })
            .collect())
    }

    async fn delete(&self, queue_arn: &str, receipt_handle: &str) -> Result<(), String> {
        let name = self.name(queue_arn)?;
        self.0.delete_message(&name, receipt_handle).await.map_err(|e| e.to_string())
    }

    async fn change_visibility(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let name = self.name(queue_arn)?;
        let seconds = u32::try_from(timeout.as_secs()).unwrap_or(43_200);
        self.0
            .change_message_visibility(&name, receipt_handle, seconds)
            .await
            .map_err(|e| e.to_string())
    }

    async fn backlog(&self, queue_arn: &str) -> Result<u64, String> {
        let name = self.name(queue_arn)?;
        let attrs = self
            .0
            .queue_attributes(&name, &["ApproximateNumberOfMessages".to_owned()])
            .await
            .map_err(|e| e.to_string())?;
        Ok(attrs.get("ApproximateNumberOfMessages").and_then(|v| v.parse().ok()).unwrap_or(0))
    }
}

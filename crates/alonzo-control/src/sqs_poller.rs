//! The poller of an SQS event source mapping: long-polls the queue, gathers batches (up to
//! `BatchSize`, within `MaximumBatchingWindowInSeconds`), drops and deletes records that no
//! filter matches, invokes the function synchronously with Lambda's SQS event, then deletes
//! what succeeded. Failed records are left to the queue: they come back after its
//! visibility timeout and go to its dead-letter queue after `maxReceiveCount` receives.
//! With `ReportBatchItemFailures` only the records the function lists are left.
//!
//! Concurrency scales with the backlog: one batch in flight when the queue is quiet, up to
//! `ScalingConfig.MaximumConcurrency` (default [`DEFAULT_MAX_CONCURRENCY`]) while messages
//! wait.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use alonzo_model::{sqs_record_view, EventPattern, EventSourceMappingRecord};
use bytes::Bytes;
use tokio::sync::watch;

use crate::invoke::{InvocationType, InvokeInput, InvokeResult};
use crate::queues::{QueueMessage, QueueService};
use crate::{Control, ControlError};

/// Concurrent batches of one mapping without a `MaximumConcurrency`.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// Long-poll wait of one receive (short enough to notice a stop promptly).
const RECEIVE_WAIT: Duration = Duration::from_secs(1);
/// Pause after an error talking to the queue or a throttled invocation.
const BACKOFF: Duration = Duration::from_secs(1);
/// Largest SQS receive.
const RECEIVE_MAX: u32 = 10;

struct Shared {
    control: Weak<crate::Inner>,
    queues: Arc<dyn QueueService>,
    mapping: EventSourceMappingRecord,
    filters: Vec<EventPattern>,
    workers: AtomicUsize,
    target: AtomicUsize,
    stop: watch::Receiver<bool>,
}

/// Runs the mapping's pollers until `stop` turns true or the control plane is dropped.
pub(crate) async fn run(
    control: Weak<crate::Inner>,
    queues: Arc<dyn QueueService>,
    mapping: EventSourceMappingRecord,
    filters: Vec<EventPattern>,
    mut stop: watch::Receiver<bool>,
) {
    let max = mapping
        .maximum_concurrency
        .map_or(DEFAULT_MAX_CONCURRENCY, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let shared = Arc::new(Shared {
        control,
        queues,
        mapping,
        filters,
        workers: AtomicUsize::new(0),
        target: AtomicUsize::new(1),
        stop: stop.clone(),
    });
    tracing::info!(uuid = %shared.mapping.uuid, source = %shared.mapping.event_source_arn, function = %shared.mapping.function, "event source mapping poller started");
    loop {
        // Scale: one batch in flight per batch-worth of waiting messages, within the cap.
        let backlog = shared.queues.backlog(&shared.mapping.event_source_arn).await.unwrap_or(0);
        let per_batch = u64::from(shared.mapping.batch_size.max(1));
        let wanted =
            usize::try_from(backlog.div_ceil(per_batch)).unwrap_or(usize::MAX).clamp(1, max);
        shared.target.store(wanted, Ordering::Relaxed);
        while shared.workers.load(Ordering::Relaxed) < wanted {
            shared.workers.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(worker(Arc::clone(&shared)));
        }
        if shared.control.upgrade().is_none() {
            break;
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if *stop.borrow() {
            break;
        }
    }
    tracing::info!(uuid = %shared.mapping.uuid, "event source mapping poller stopped");
}

async fn worker(shared: Arc<Shared>) {
    loop {
        if *shared.stop.borrow() {
            break;
        }
        let batch = match gather(&shared).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(uuid = %shared.mapping.uuid, error = %e, "receiving from the event source failed");
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        if *shared.stop.borrow() {
            // Stopped while receiving: hand the batch back untouched.
            for message in &batch {
                let _ = shared
                    .queues
                    .change_visibility(
                        &shared.mapping.event_source_arn,
                        &message.receipt_handle,
                        Duration::ZERO,
                    )
                    .await;
            }
            break;
        }
        if batch.is_empty() {
            // Quiet: surplus workers leave, keeping at least one.
            let target = shared.target.load(Ordering::Relaxed).max(1);
            let workers = shared.workers.load(Ordering::Relaxed);
            if workers > target
                && shared
                    .workers
                    .compare_exchange(workers, workers - 1, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            continue;
        }
        let Some(inner) = shared.control.upgrade() else { break };
        let control = Control { inner };
        if process(&shared, &control, batch).await.is_err() {
            tokio::time::sleep(BACKOFF).await;
        }
    }
    shared.workers.fetch_sub(1, Ordering::Relaxed);
}

/// Receives up to a batch: at most `BatchSize` records, waiting no longer than the batching
/// window once the first has arrived.
async fn gather(shared: &Shared) -> Result<Vec<QueueMessage>, String> {
    let arn = &shared.mapping.event_source_arn;
    let size = usize::try_from(shared.mapping.batch_size).unwrap_or(10);
    let window = Duration::from_secs(u64::from(shared.mapping.maximum_batching_window_s));
    let mut batch = shared.queues.receive(arn, RECEIVE_MAX.min(size as u32), RECEIVE_WAIT).await?;
    if batch.is_empty() || window.is_zero() {
        return Ok(batch);
    }
    let deadline = tokio::time::Instant::now() + window;
    while batch.len() < size && tokio::time::Instant::now() < deadline && !*shared.stop.borrow() {
        let want = u32::try_from(size - batch.len()).unwrap_or(RECEIVE_MAX).min(RECEIVE_MAX);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let more = shared.queues.receive(arn, want, left.min(RECEIVE_WAIT)).await?;
        batch.extend(more);
    }
    Ok(batch)
}

/// Filters, invokes and acknowledges one batch. `Err` when the function could not run.
async fn process(shared: &Shared, control: &Control, batch: Vec<QueueMessage>) -> Result<(), ()> {
    let arn = &shared.mapping.event_source_arn;
    let region = control.account().region.clone();
    let mut records = Vec::new();
    let mut handles = Vec::new();
    // The batch continues the trace of its first traced message (`AWSTraceHeader`);
    // otherwise `Control::invoke` starts one.
    let trace_id = batch.iter().find_map(|m| crate::trace::from_sqs_attributes(&m.attributes));
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut ages = Vec::new();
    for message in batch {
        let record = sqs_record(&message, arn, &region);
        if !shared.filters.is_empty()
            && !alonzo_model::matches_any(&shared.filters, &sqs_record_view(&record))
        {
            // Lambda deletes records that no filter matches.
            let _ = shared.queues.delete(arn, &message.receipt_handle).await;
            continue;
        }
        handles.push((message.message_id.clone(), message.receipt_handle.clone()));
        records.push(record);
        if let Some(sent) =
            message.attributes.get("SentTimestamp").and_then(|t| t.parse::<i64>().ok())
        {
            #[allow(clippy::cast_precision_loss)]
            ages.push((now_ms - sent) as f64 / 1000.0);
        }
    }
    control.metrics().mapping_lag(&shared.mapping.function, arn, &ages);
    if records.is_empty() {
        return Ok(());
    }
    let payload = serde_json::json!({ "Records": records }).to_string();
    let function = match &shared.mapping.qualifier {
        Some(q) => format!("{}:{q}", shared.mapping.function),
        None => shared.mapping.function.clone(),
    };
    let input = InvokeInput {
        request_id: uuid::Uuid::new_v4().to_string(),
        invocation_type: InvocationType::RequestResponse,
        payload: Bytes::from(payload),
        log_tail: false,
        client_context_b64: None,
        trace_id,
        stream: false,
    };
    let count = records.len();
    let metric = |failed| {
        control.metrics().mapping_batch(&shared.mapping.function, arn, count, failed);
    };
    let outcome = match control.invoke(&function, None, input).await {
        Ok(InvokeResult::Completed(outcome)) => outcome,
        Ok(_) => return Ok(()),
        Err(ControlError::Throttled { .. }) => {
            metric(count);
            tracing::debug!(uuid = %shared.mapping.uuid, "batch throttled; records return after the visibility timeout");
            return Err(());
        }
        Err(e) => {
            metric(count);
            tracing::warn!(uuid = %shared.mapping.uuid, function = %function, error = %e, "invoking the function of an event source mapping failed");
            return Err(());
        }
    };
    if outcome.function_error.is_some() {
        metric(count);
        tracing::info!(uuid = %shared.mapping.uuid, function = %function, "the function failed; the batch returns to the queue after its visibility timeout");
        return Ok(());
    }
    let failed: HashSet<String> = if shared
        .mapping
        .function_response_types
        .iter()
        .any(|t| t == "ReportBatchItemFailures")
    {
        match batch_item_failures(&outcome.body, &handles) {
            Some(failed) => failed,
            None => {
                metric(count);
                tracing::warn!(uuid = %shared.mapping.uuid, "invalid batchItemFailures response; the whole batch fails");
                return Ok(());
            }
        }
    } else {
        HashSet::new()
    };
    metric(failed.len());
    for (id, receipt) in &handles {
        if !failed.contains(id) {
            if let Err(e) = shared.queues.delete(arn, receipt).await {
                tracing::warn!(uuid = %shared.mapping.uuid, error = %e, "deleting a processed message failed");
            }
        }
    }
    Ok(())
}

/// The message ids a `ReportBatchItemFailures` response lists; `None` when the response is
/// malformed (Lambda then fails the whole batch).
fn batch_item_failures(body: &[u8], handles: &[(String, String)]) -> Option<HashSet<String>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(HashSet::new());
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list = match value.get("batchItemFailures") {
        None | Some(serde_json::Value::Null) => return Some(HashSet::new()),
        Some(serde_json::Value::Array(list)) => list,
        Some(_) => return None,
    };
    let known: HashSet<&str> = handles.iter().map(|(id, _)| id.as_str()).collect();
    let mut failed = HashSet::new();
    for item in list {
        let id = item.get("itemIdentifier")?.as_str().filter(|s| !s.is_empty())?;
        if !known.contains(id) {
            return None;
        }
        failed.insert(id.to_owned());
    }
    Some(failed)
}

/// Lambda's SQS event record.
fn sqs_record(message: &QueueMessage, arn: &str, region: &str) -> serde_json::Value {
    let attributes: serde_json::Map<String, serde_json::Value> = message
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let message_attributes: serde_json::Map<String, serde_json::Value> = message
        .message_attributes
        .iter()
        .map(|(name, (data_type, value))| {
            let mut attr = serde_json::json!({
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": data_type,
            });
            if data_type.starts_with("Binary") {
                attr["binaryValue"] = serde_json::Value::String(value.clone());
            } else {
                attr["stringValue"] = serde_json::Value::String(value.clone());
            }
            (name.clone(), attr)
        })
        .collect();
    let mut record = serde_json::json!({
        "messageId": message.message_id,
        "receiptHandle": message.receipt_handle,
        "body": message.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body,
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    });
    if let Some(md5) = &message.md5_of_message_attributes {
        record["md5OfMessageAttributes"] = serde_json::Value::String(md5.clone());
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handles() -> Vec<(String, String)> {
        vec![("a".into(), "ra".into()), ("b".into(), "rb".into())]
    }

    #[test]
    fn batch_item_failures_follow_lambdas_rules() {
        assert_eq!(batch_item_failures(b"", &handles()), Some(HashSet::new()));
        assert_eq!(batch_item_failures(b"null", &handles()), Some(HashSet::new()));
        assert_eq!(
            batch_item_failures(br#"{"batchItemFailures":[]}"#, &handles()),
            Some(HashSet::new())
        );
        assert_eq!(
            batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":"b"}]}"#, &handles()),
            Some(HashSet::from(["b".to_owned()]))
        );
        // Unknown ids, empty ids, wrong keys and wrong shapes fail the whole batch.
        assert_eq!(
            batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":"z"}]}"#, &handles()),
            None
        );
        assert_eq!(
            batch_item_failures(br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#, &handles()),
            None
        );
        assert_eq!(batch_item_failures(br#"{"batchItemFailures":[{"id":"a"}]}"#, &handles()), None);
        assert_eq!(batch_item_failures(br#"{"batchItemFailures":"a"}"#, &handles()), None);
    }

    #[test]
    fn record_shape() {
        let message = QueueMessage {
            message_id: "m1".into(),
            receipt_handle: "r1".into(),
            body: "hello".into(),
            md5_of_body: "5d41402abc4b2a76b9719d911017c592".into(),
            md5_of_message_attributes: None,
            attributes: [("ApproximateReceiveCount".to_owned(), "1".to_owned())].into(),
            message_attributes: [("k".to_owned(), ("String".to_owned(), "v".to_owned()))].into(),
        };
        let r = sqs_record(&message, "arn:aws:sqs:us-east-1:000000000000:q", "us-east-1");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["messageAttributes"]["k"]["stringValue"], "v");
        assert_eq!(r["messageAttributes"]["k"]["dataType"], "String");
        assert!(r.get("md5OfMessageAttributes").is_none());
    }
}

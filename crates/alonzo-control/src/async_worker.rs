//! The workers that drain the durable asynchronous-invocation queue: lease due events, run
//! them, retry as Lambda does, and deliver what happened.
//!
//! Function errors are retried up to the qualifier's `MaximumRetryAttempts` (default 2; after
//! one, then two retry delays); throttles and platform errors are retried with backoff (1 s
//! doubling to 5 minutes) without counting against it; an event older than
//! `MaximumEventAgeInSeconds` (default 6 hours) is given up with `EventAgeExceeded`. A
//! function whose reserved concurrency is 0 sends its events straight to the failure path.
//!
//! A settled event stays in the queue, with its outcome, until every delivery is made: the
//! invocation record to the `OnSuccess`/`OnFailure` destination and the original event to the
//! version's dead-letter queue. A delivery that fails is retried with backoff and logged; it
//! is dropped (with an error in the log) only after a day of failures.

use std::sync::Arc;
use std::time::Duration;

use alonzo_model::{
    AsyncEvent, AsyncOutcome, AttemptFailure, Delivery, DestinationKind, EventInvokeConfig,
    FunctionRef, LATEST,
};
use alonzo_sandbox::InvokeRequest;
use bytes::Bytes;

use crate::invoke::system_backoff;
use crate::{Control, ControlError};

/// How long a leased event is reserved for the worker that took it (longer than any timeout).
const LEASE_MS: i64 = 20 * 60 * 1000;
/// Events leased per poll.
const BATCH: usize = 64;
/// Deliveries of a settled event are given up after failing for this long.
const DELIVERY_GIVE_UP_MS: i64 = 24 * 3600 * 1000;
/// A dead-letter message's `ErrorMessage` is cut to this many bytes (Lambda: 1 KB).
const DLQ_MESSAGE_LIMIT: usize = 1024;

/// What one run of an event produced.
enum Attempt {
    Succeeded { version: String, response: Bytes },
    FunctionFailed(AttemptFailure),
    Throttled(AttemptFailure),
}

impl Control {
    /// Drains the queue until every `Control` is dropped; never stops on a failing event.
    pub(crate) async fn run_async_workers(weak: std::sync::Weak<crate::Inner>, parallelism: usize) {
        let permits = Arc::new(tokio::sync::Semaphore::new(parallelism));
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let control = Control { inner };
            let now = chrono::Utc::now().timestamp_millis();
            let leased = control.inner.meta.lease_events(now, now + LEASE_MS, BATCH);
            let events = match control.timed_store("lease_events", leased).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "leasing asynchronous events failed");
                    Vec::new()
                }
            };
            let idle = events.is_empty();
            for event in events {
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { return };
                let control = control.clone();
                tokio::spawn(async move {
                    control.handle_event(event).await;
                    drop(permit);
                });
            }
            if idle {
                let wakeup = Arc::clone(&control.inner);
                drop(control);
                let _ = tokio::time::timeout(
                    Duration::from_millis(250),
                    wakeup.async_wakeup.notified(),
                )
                .await;
            }
        }
    }

    async fn handle_event(&self, mut event: AsyncEvent) {
        if event.outcome.is_some() {
            return self.deliver_all(event).await;
        }
        let config = match self.effective_event_invoke(&event.function, &event.qualifier).await {
            Ok(c) => c,
            Err(e) => return self.system_retry(event, &e.to_string()).await,
        };
        let now = chrono::Utc::now().timestamp_millis();
        if now - event.received_ms > config.max_age_ms() {
            tracing::warn!(request_id = %event.id, function = %event.function, "asynchronous event expired: EventAgeExceeded");
            let failure = event.last_failure.clone();
            self.metrics().async_dropped(&event.function, "EventAgeExceeded");
            return self.settle_failure(event, &config, "EventAgeExceeded", failure.as_ref()).await;
        }
        match self.reserved_concurrency(&event.function).await {
            Ok(Some(0)) => {
                let failure = AttemptFailure {
                    function_error: None,
                    error_type: "TooManyRequestsException".into(),
                    payload: br#"{"errorType":"TooManyRequestsException","errorMessage":"Rate Exceeded. The function's reserved concurrency is 0."}"#.to_vec(),
                    executed_version: None,
                };
                tracing::warn!(request_id = %event.id, function = %event.function, "reserved concurrency is 0: asynchronous event sent to the failure path");
                self.metrics().async_dropped(&event.function, "ReservedConcurrencyZero");
                return self
                    .settle_failure(event, &config, "RetriesExhausted", Some(&failure))
                    .await;
            }
            Ok(_) => {}
            Err(e) => return self.system_retry(event, &e.to_string()).await,
        }
        self.metrics().async_age(&event.function, now - event.received_ms);
        if let Some(sink) = &self.inner.config.spans {
            let attempt = event.attempts + event.system_attempts;
            sink.export(
                crate::spans::queue_span(
                    event.trace_id.as_deref(),
                    &event.id,
                    &event.function,
                    attempt,
                    event.received_ms,
                    now,
                )
                .into_iter()
                .collect(),
            );
        }
        match self.run_event(&event).await {
            Ok(Attempt::Succeeded { version, response }) => {
                event.attempts += 1;
                self.settle_success(event, &config, version, response).await;
            }
            Ok(Attempt::FunctionFailed(failure)) => {
                event.attempts += 1;
                if event.attempts <= config.retries() {
                    let delay = self.inner.config.async_retry_delay * event.attempts;
                    tracing::info!(request_id = %event.id, function = %event.function, error_type = %failure.error_type, attempt = event.attempts, "asynchronous invocation failed; retrying");
                    event.last_failure = Some(failure);
                    self.reschedule(&event, delay).await;
                } else {
                    tracing::warn!(request_id = %event.id, function = %event.function, error_type = %failure.error_type, attempts = event.attempts, "asynchronous event failed: RetriesExhausted");
                    self.metrics().async_dropped(&event.function, "RetriesExhausted");
                    self.settle_failure(event, &config, "RetriesExhausted", Some(&failure)).await;
                }
            }
            Ok(Attempt::Throttled(failure)) => {
                tracing::info!(request_id = %event.id, function = %event.function, error_type = %failure.error_type, "asynchronous invocation throttled; will retry");
                event.last_failure = Some(failure);
                event.system_attempts += 1;
                self.reschedule(&event, system_backoff(event.system_attempts)).await;
            }
            Err(ControlError::NotFound(message)) => {
                tracing::warn!(request_id = %event.id, function = %event.function, %message, "asynchronous event dropped: the function no longer exists");
                self.metrics().async_dropped(&event.function, "FunctionDeleted");
                self.finish(&event).await;
            }
            Err(e) => self.system_retry(event, &e.to_string()).await,
        }
    }

    /// A platform-side failure: try again later, without counting an attempt.
    async fn system_retry(&self, mut event: AsyncEvent, message: &str) {
        tracing::info!(request_id = %event.id, function = %event.function, error = %message, "asynchronous invocation not runnable now; will retry");
        event.system_attempts += 1;
        event.last_failure = Some(AttemptFailure {
            function_error: None,
            error_type: "ServiceException".into(),
            payload: serde_json::json!({"errorType": "ServiceException", "errorMessage": message})
                .to_string()
                .into_bytes(),
            executed_version: None,
        });
        self.reschedule(&event, system_backoff(event.system_attempts)).await;
    }

    /// Runs the event once.
    async fn run_event(&self, event: &AsyncEvent) -> Result<Attempt, ControlError> {
        let qualifier = if event.qualifier.is_empty() {
            None
        } else {
            alonzo_model::Qualifier::parse(&event.qualifier)
        };
        let (record, invoked_arn) = self.pick(&event.function, qualifier.as_ref()).await?;
        let request = InvokeRequest {
            request_id: event.id.clone(),
            payload: Bytes::from(event.payload.clone()),
            invoked_arn,
            client_context: None,
            // Events queued before trace ids were generated at enqueue get one now.
            trace_id: Some(event.trace_id.clone().unwrap_or_else(crate::trace::new_trace_id)),
            caller_parent: None,
            log_tail: false,
            stream: false,
        };
        match self.run(&record, request).await {
            Ok(outcome) if outcome.function_error.is_none() => {
                Ok(Attempt::Succeeded { version: outcome.executed_version, response: outcome.body })
            }
            Ok(outcome) => Ok(Attempt::FunctionFailed(AttemptFailure {
                function_error: outcome.function_error,
                error_type: outcome.error_type.unwrap_or_else(|| "Unhandled".into()),
                payload: outcome.body.to_vec(),
                executed_version: Some(outcome.executed_version),
            })),
            Err(ControlError::Throttled { reason }) => Ok(Attempt::Throttled(AttemptFailure {
                function_error: None,
                error_type: "TooManyRequestsException".into(),
                payload: serde_json::json!({"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded.", "reason": reason})
                    .to_string()
                    .into_bytes(),
                executed_version: None,
            })),
            Err(e) => Err(e),
        }
    }

    async fn settle_success(
        &self,
        event: AsyncEvent,
        config: &EventInvokeConfig,
        version: String,
        response: Bytes,
    ) {
        let pending = config.on_success.iter().cloned().map(Delivery::Destination).collect();
        let outcome = AsyncOutcome {
            condition: "Success".into(),
            invoke_count: event.attempts,
            function_arn: self.event_arn(&event),
            executed_version: Some(version),
            function_error: None,
            response: response.to_vec(),
            error_type: None,
            settled_ms: chrono::Utc::now().timestamp_millis(),
            pending,
            delivery_attempts: 0,
        };
        self.deliver_settled(event, outcome).await;
    }

    /// Gives up on an event: its failure destination and dead-letter queue get it.
    async fn settle_failure(
        &self,
        event: AsyncEvent,
        config: &EventInvokeConfig,
        condition: &str,
        failure: Option<&AttemptFailure>,
    ) {
        let mut pending: Vec<Delivery> =
            config.on_failure.iter().cloned().map(Delivery::Destination).collect();
        if let Some(dlq) = self.dead_letter_target(&event, failure).await {
            pending.push(Delivery::DeadLetter(dlq));
        }
        let outcome = AsyncOutcome {
            condition: condition.to_owned(),
            invoke_count: event.attempts,
            function_arn: self.event_arn(&event),
            executed_version: failure.and_then(|f| f.executed_version.clone()),
            function_error: failure.and_then(|f| f.function_error.clone()),
            response: failure.map(|f| f.payload.clone()).unwrap_or_default(),
            error_type: failure.map(|f| f.error_type.clone()),
            settled_ms: chrono::Utc::now().timestamp_millis(),
            pending,
            delivery_attempts: 0,
        };
        self.deliver_settled(event, outcome).await;
    }

    /// The dead-letter queue of the version that ran (or that the qualifier names now).
    async fn dead_letter_target(
        &self,
        event: &AsyncEvent,
        failure: Option<&AttemptFailure>,
    ) -> Option<String> {
        let version = match failure.and_then(|f| f.executed_version.clone()) {
            Some(v) => v,
            None => match alonzo_model::Qualifier::parse(&event.qualifier) {
                Some(alonzo_model::Qualifier::Alias(alias)) => {
                    self.inner.meta.get_alias(&event.function, &alias).await.ok()?.function_version
                }
                Some(q) => q.as_string(),
                None => LATEST.to_owned(),
            },
        };
        let record = self.inner.meta.get_version(&event.function, &version).await.ok()?;
        record.config.dead_letter_target.filter(|t| !t.is_empty())
    }

    fn event_arn(&self, event: &AsyncEvent) -> String {
        let qualifier = if event.qualifier.is_empty() { LATEST } else { &event.qualifier };
        self.account().qualified_function_arn(&event.function, qualifier)
    }

    /// Records the outcome durably first if there is something to deliver, then delivers.
    async fn deliver_settled(&self, mut event: AsyncEvent, outcome: AsyncOutcome) {
        if outcome.pending.is_empty() {
            return self.finish(&event).await;
        }
        event.outcome = Some(outcome);
        self.deliver_all(event).await;
    }

    async fn deliver_all(&self, mut event: AsyncEvent) {
        let Some(mut outcome) = event.outcome.take() else { return };
        let mut still = Vec::new();
        for delivery in std::mem::take(&mut outcome.pending) {
            if let Err(message) = self.deliver(&event, &outcome, &delivery).await {
                tracing::warn!(request_id = %event.id, function = %event.function, ?delivery, %message, "delivering an asynchronous invocation's outcome failed; will retry");
                match &delivery {
                    Delivery::DeadLetter(_) => self.metrics().dead_letter_error(&event.function),
                    Delivery::Destination(arn) => {
                        let kind = match DestinationKind::of(arn) {
                            Ok(DestinationKind::Lambda) => "lambda",
                            Ok(DestinationKind::Sqs) => "sqs",
                            Err(_) => "invalid",
                        };
                        self.metrics().destination_failure(&event.function, kind);
                    }
                }
                still.push(delivery);
            }
        }
        if still.is_empty() {
            return self.finish(&event).await;
        }
        let now = chrono::Utc::now().timestamp_millis();
        if now - outcome.settled_ms > DELIVERY_GIVE_UP_MS {
            tracing::error!(request_id = %event.id, function = %event.function, undelivered = ?still, "giving up delivering an asynchronous invocation's outcome after a day of failures");
            return self.finish(&event).await;
        }
        outcome.pending = still;
        outcome.delivery_attempts += 1;
        let delay = system_backoff(outcome.delivery_attempts);
        event.outcome = Some(outcome);
        self.reschedule(&event, delay).await;
    }

    /// Makes one delivery.
    async fn deliver(
        &self,
        event: &AsyncEvent,
        outcome: &AsyncOutcome,
        delivery: &Delivery,
    ) -> Result<(), String> {
        match delivery {
            Delivery::Destination(arn) => {
                let record = invocation_record(event, outcome);
                match DestinationKind::of(arn).map_err(|e| e.to_string())? {
                    DestinationKind::Lambda => self.deliver_to_function(arn, record, event).await,
                    DestinationKind::Sqs => {
                        self.send_to_queue(arn, record.to_string(), Vec::new()).await
                    }
                }
            }
            Delivery::DeadLetter(arn) => {
                let message = dead_letter_message(outcome);
                let status = if outcome.function_error.is_some() { "200" } else { "429" };
                let attributes = vec![
                    ("RequestID".to_owned(), "String".to_owned(), event.id.clone()),
                    ("ErrorCode".to_owned(), "Number".to_owned(), status.to_owned()),
                    ("ErrorMessage".to_owned(), "String".to_owned(), message),
                ];
                let body = String::from_utf8_lossy(&event.payload).into_owned();
                self.send_to_queue(arn, body, attributes).await
            }
        }
    }

    /// A function destination is invoked asynchronously with the record as its event.
    async fn deliver_to_function(
        &self,
        arn: &str,
        record: serde_json::Value,
        event: &AsyncEvent,
    ) -> Result<(), String> {
        let target = FunctionRef::parse(arn, self.account()).map_err(|e| e.to_string())?;
        self.inner.meta.get_version(&target.name, LATEST).await.map_err(|e| match e {
            alonzo_store::StoreError::NotFound => {
                format!("destination function {arn} does not exist")
            }
            other => other.to_string(),
        })?;
        let now = chrono::Utc::now().timestamp_millis();
        let delivered = AsyncEvent {
            // Derived from the source event, so a repeated delivery after a crash is the
            // same queue entry rather than a second event.
            id: uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_OID,
                format!("{}:{arn}", event.id).as_bytes(),
            )
            .to_string(),
            function: target.name,
            qualifier: target.qualifier.map(|q| q.as_string()).unwrap_or_default(),
            payload: record.to_string().into_bytes(),
            received_ms: now,
            attempts: 0,
            trace_id: event.trace_id.clone(),
            system_attempts: 0,
            last_failure: None,
            outcome: None,
        };
        self.inner.meta.enqueue_event(&delivered, now).await.map_err(|e| e.to_string())?;
        self.metrics().async_received(&delivered.function);
        self.inner.async_wakeup.notify_one();
        Ok(())
    }

    /// Sends a message to a queue of the built-in queue service.
    async fn send_to_queue(
        &self,
        arn: &str,
        body: String,
        attributes: Vec<(String, String, String)>,
    ) -> Result<(), String> {
        let Some(queues) = &self.inner.queues else {
            return Err(format!("no queue service to deliver to {arn}"));
        };
        queues.send(arn, body, attributes).await
    }

    async fn finish(&self, event: &AsyncEvent) {
        let completed = self.inner.meta.complete_event(&event.id);
        if let Err(e) = self.timed_store("complete_event", completed).await {
            tracing::warn!(request_id = %event.id, error = %e, "removing a handled asynchronous event failed");
        }
    }

    async fn reschedule(&self, event: &AsyncEvent, delay: Duration) {
        let due = chrono::Utc::now().timestamp_millis()
            + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = self.inner.meta.retry_event(event, due).await {
            tracing::warn!(request_id = %event.id, error = %e, "rescheduling an asynchronous event failed");
        }
    }
}

/// Lambda's invocation record, delivered to destinations.
fn invocation_record(event: &AsyncEvent, outcome: &AsyncOutcome) -> serde_json::Value {
    let timestamp = chrono::DateTime::from_timestamp_millis(outcome.settled_ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let mut response_context = serde_json::json!({
        "statusCode": if outcome.function_error.is_some() || outcome.executed_version.is_some() { 200 } else { 429 },
        "executedVersion": outcome.executed_version.clone().unwrap_or_else(|| LATEST.to_owned()),
    });
    if let Some(error) = &outcome.function_error {
        response_context["functionError"] = serde_json::Value::String(error.clone());
    }
    serde_json::json!({
        "version": "1.0",
        "timestamp": timestamp,
        "requestContext": {
            "requestId": event.id,
            "functionArn": outcome.function_arn,
            "condition": outcome.condition,
            "approximateInvokeCount": outcome.invoke_count,
        },
        "requestPayload": json_or_string(&event.payload),
        "responseContext": response_context,
        "responsePayload": json_or_string(&outcome.response),
    })
}

/// A payload as JSON when it parses, as a string otherwise, `null` when empty.
fn json_or_string(bytes: &[u8]) -> serde_json::Value {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The `ErrorMessage` attribute of a dead-letter message: the error's message, at most 1 KB.
fn dead_letter_message(outcome: &AsyncOutcome) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&outcome.response).ok();
    let mut message = parsed
        .as_ref()
        .and_then(|v| v.get("errorMessage"))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
        .or_else(|| outcome.error_type.clone())
        .unwrap_or_else(|| outcome.condition.clone());
    if message.len() > DLQ_MESSAGE_LIMIT {
        let mut end = DLQ_MESSAGE_LIMIT;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(condition: &str, response: &[u8], error: Option<&str>) -> AsyncOutcome {
        AsyncOutcome {
            condition: condition.into(),
            invoke_count: 3,
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST".into(),
            executed_version: Some("$LATEST".into()),
            function_error: error.map(str::to_owned),
            response: response.to_vec(),
            error_type: error.map(|_| "Exception".to_owned()),
            settled_ms: 0,
            pending: Vec::new(),
            delivery_attempts: 0,
        }
    }

    #[test]
    fn record_has_lambdas_fields() {
        let event = AsyncEvent {
            id: "req-1".into(),
            function: "f".into(),
            qualifier: String::new(),
            payload: br#"{"k": 1}"#.to_vec(),
            received_ms: 0,
            attempts: 3,
            trace_id: None,
            system_attempts: 0,
            last_failure: None,
            outcome: None,
        };
        let failed = outcome("RetriesExhausted", br#"{"errorMessage":"boom"}"#, Some("Unhandled"));
        let record = invocation_record(&event, &failed);
        assert_eq!(record["version"], "1.0");
        assert_eq!(record["timestamp"], "1970-01-01T00:00:00.000Z");
        assert_eq!(record["requestContext"]["requestId"], "req-1");
        assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(record["requestPayload"]["k"], 1);
        assert_eq!(record["responseContext"]["statusCode"], 200);
        assert_eq!(record["responseContext"]["functionError"], "Unhandled");
        assert_eq!(record["responsePayload"]["errorMessage"], "boom");
        let ok = outcome("Success", b"\"done\"", None);
        let record = invocation_record(&event, &ok);
        assert!(record["responseContext"].get("functionError").is_none());
        assert_eq!(record["responsePayload"], "done");
    }

    #[test]
    fn dead_letter_message_is_the_error_message_cut_to_1kb() {
        let failed = outcome("RetriesExhausted", br#"{"errorMessage":"boom"}"#, Some("Unhandled"));
        assert_eq!(dead_letter_message(&failed), "boom");
        let long = format!(r#"{{"errorMessage":"{}"}}"#, "é".repeat(1000));
        let failed = outcome("RetriesExhausted", long.as_bytes(), Some("Unhandled"));
        let message = dead_letter_message(&failed);
        assert!(message.len() <= 1024 && message.len() > 1000);
    }
}

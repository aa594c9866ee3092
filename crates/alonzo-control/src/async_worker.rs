//! The workers that drain the durable asynchronous-invocation queue: lease due events, run
//! them, and retry as Lambda does: function errors up to two more times (after one, then two
//! retry delays), throttles and platform errors with backoff until the event is six hours
//! old. Destinations and dead-letter queues come with the asynchronous-invocation work.

use std::sync::Arc;
use std::time::Duration;

use alonzo_model::AsyncEvent;
use alonzo_sandbox::InvokeRequest;
use bytes::Bytes;

use crate::invoke::system_backoff;
use crate::{Control, ControlError};

/// Retries after a function error (Lambda's default `MaximumRetryAttempts`).
const MAX_RETRIES: u32 = 2;
/// Events older than this are dropped (Lambda's default `MaximumEventAgeInSeconds`).
const MAX_EVENT_AGE_MS: i64 = 6 * 3600 * 1000;
/// How long a leased event is reserved for the worker that took it (longer than any timeout).
const LEASE_MS: i64 = 20 * 60 * 1000;
/// Events leased per poll.
const BATCH: usize = 64;

impl Control {
    /// Drains the queue until every `Control` is dropped; never stops on a failing event.
    pub(crate) async fn run_async_workers(weak: std::sync::Weak<crate::Inner>, parallelism: usize) {
        let permits = Arc::new(tokio::sync::Semaphore::new(parallelism));
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let control = Control { inner };
            let now = chrono::Utc::now().timestamp_millis();
            let events = match control.inner.meta.lease_events(now, now + LEASE_MS, BATCH).await {
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

    async fn handle_event(&self, event: AsyncEvent) {
        let now = chrono::Utc::now().timestamp_millis();
        if now - event.received_ms > MAX_EVENT_AGE_MS {
            tracing::warn!(request_id = %event.id, function = %event.function, "asynchronous event dropped: EventAgeExceeded");
            return self.finish(&event).await;
        }
        let attempt = event.attempts + 1;
        match self.run_event(&event).await {
            Ok(None) => self.finish(&event).await,
            Ok(Some(error_type)) if event.attempts < MAX_RETRIES => {
                let delay = self.inner.config.async_retry_delay * attempt;
                tracing::info!(request_id = %event.id, function = %event.function, %error_type, attempt, "asynchronous invocation failed; retrying");
                self.retry(&event, attempt, delay).await;
            }
            Ok(Some(error_type)) => {
                tracing::warn!(request_id = %event.id, function = %event.function, %error_type, attempts = attempt, "asynchronous event dropped: RetriesExhausted");
                self.finish(&event).await;
            }
            Err(ControlError::NotFound(_)) => {
                tracing::warn!(request_id = %event.id, function = %event.function, "asynchronous event dropped: the function no longer exists");
                self.finish(&event).await;
            }
            Err(e) => {
                tracing::info!(request_id = %event.id, function = %event.function, error = %e, "asynchronous invocation throttled or not runnable; will retry");
                self.retry(&event, event.attempts, system_backoff(event.attempts)).await;
            }
        }
    }

    /// Runs the event; `Ok(Some(error type))` when the function failed.
    async fn run_event(&self, event: &AsyncEvent) -> Result<Option<String>, ControlError> {
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
            trace_id: event.trace_id.clone(),
            log_tail: false,
        };
        let outcome = self.run(&record, request).await?;
        Ok(outcome.function_error.map(|_| outcome.error_type.unwrap_or_else(|| "Unhandled".into())))
    }

    async fn finish(&self, event: &AsyncEvent) {
        if let Err(e) = self.inner.meta.complete_event(&event.id).await {
            tracing::warn!(request_id = %event.id, error = %e, "removing a handled asynchronous event failed");
        }
    }

    async fn retry(&self, event: &AsyncEvent, attempts: u32, delay: Duration) {
        let due = chrono::Utc::now().timestamp_millis()
            + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = self.inner.meta.retry_event(&event.id, attempts, due).await {
            tracing::warn!(request_id = %event.id, error = %e, "rescheduling an asynchronous event failed");
        }
    }
}

//! The console's data endpoints under `/_alonzo/console/api/`: HTML fragments the pages
//! refresh themselves with (concurrency, queues, charts; escaped on the server by maud), new
//! log events for the live tail (JSON, shown by the script as text, never as markup), and
//! invoking a function from the page (JSON, with the CSRF token the session middleware
//! checks). Failures are Lambda-shaped errors.

use std::sync::Arc;

use alonzo_control::{InvocationType, InvokeInput, InvokeResult, LogEvent};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use crate::console::{chart, layout, ConsoleState, PREFIX};
use crate::error::ApiError;
use crate::logs_api::FilterPattern;

/// Most events the log viewer shows (the newest).
pub(crate) const MAX_EVENTS: usize = 500;

/// The newest matching events of `group` (after `after_ms`, if given), oldest first.
pub(crate) fn recent_events(
    console: &ConsoleState,
    group: &str,
    filter: &str,
    after_ms: Option<i64>,
) -> Vec<LogEvent> {
    let pattern = FilterPattern::parse(filter);
    let store = console.api.control.log_store();
    // Only an existing group: a name is never used as a path on its own.
    if !store.has_group(group) {
        return Vec::new();
    }
    let mut events: Vec<LogEvent> = store
        .events(group, &[], after_ms, None)
        .into_iter()
        .filter(|e| pattern.matches(&e.message))
        .collect();
    let skip = events.len().saturating_sub(MAX_EVENTS);
    events.drain(..skip);
    events
}

/// One log event as a line of the viewer.
pub(crate) fn event_line(e: &LogEvent) -> Markup {
    html! {
        div.ev data-id=(e.event_id) {
            span.ts { (layout::time(e.timestamp_ms)) } " " span.msg { (e.message) }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogsParams {
    group: String,
    #[serde(default)]
    filter: String,
    /// Events at or after this time (epoch ms); the script drops ids it already shows.
    #[serde(default)]
    after: Option<i64>,
}

/// `GET /api/logs?group=&filter=&after=`: events for the live tail.
pub(crate) async fn logs(
    State(console): State<Arc<ConsoleState>>,
    Query(q): Query<LogsParams>,
) -> Result<Response, ApiError> {
    let events: Vec<_> = recent_events(&console, &q.group, &q.filter, q.after)
        .into_iter()
        .map(|e| {
            json!({"id": e.event_id, "timestamp": e.timestamp_ms, "time": layout::time(e.timestamp_ms), "message": e.message})
        })
        .collect();
    Ok(Json(json!({ "events": events })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvokeRequest {
    function: String,
    #[serde(default)]
    qualifier: Option<String>,
    payload: String,
}

/// `POST /api/invoke`: runs the function synchronously with its log tail, as `Invoke` with
/// `LogType: Tail` does.
pub(crate) async fn invoke(
    State(console): State<Arc<ConsoleState>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: InvokeRequest = serde_json::from_slice(&body).map_err(ApiError::bad_content)?;
    let request_id = uuid::Uuid::new_v4().to_string();
    let input = InvokeInput {
        request_id: request_id.clone(),
        invocation_type: InvocationType::RequestResponse,
        payload: Bytes::from(req.payload.into_bytes()),
        log_tail: true,
        client_context_b64: None,
        trace_id: None,
        stream: false,
    };
    let qualifier = req.qualifier.as_deref().filter(|q| !q.is_empty());
    let result = console.api.control.invoke(&req.function, qualifier, input).await?;
    let InvokeResult::Completed(outcome) = result else {
        return Err(ApiError::internal(&"a synchronous invocation was not completed"));
    };
    Ok(Json(json!({
        "RequestId": request_id,
        "StatusCode": 200,
        "ExecutedVersion": outcome.executed_version,
        "FunctionError": outcome.function_error,
        "Payload": String::from_utf8_lossy(&outcome.body),
        "LogTail": outcome.log_tail.unwrap_or_default(),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChartParams {
    #[serde(default)]
    function: Option<String>,
}

/// `GET /api/charts?function=`: the last hour's charts, per minute.
pub(crate) async fn charts(
    State(console): State<Arc<ConsoleState>>,
    Query(q): Query<ChartParams>,
) -> Result<Response, ApiError> {
    let now = chrono::Utc::now().timestamp_millis();
    let function = q.function.as_deref().filter(|f| !f.is_empty());
    let hour = console.api.control.activity(function, now, 60_000, 60).await?;
    Ok(Html(chart::activity_charts(&hour).into_string()).into_response())
}

/// `GET /api/concurrency`: the live concurrency tables.
pub(crate) async fn concurrency(
    State(console): State<Arc<ConsoleState>>,
) -> Result<Response, ApiError> {
    let fragment = concurrency_fragment(&console).await?;
    Ok(Html(fragment.into_string()).into_response())
}

/// Busy, idle and provisioned environments per version, reservations and throttles.
pub(crate) async fn concurrency_fragment(
    console: &ConsoleState,
) -> Result<Markup, alonzo_control::ControlError> {
    let control = &console.api.control;
    let stats = control.concurrency_stats().unwrap_or_default();
    let settings = control.account_settings().await?;
    let idle: u32 = stats.versions.iter().map(|v| v.idle).sum();
    let provisioned: u32 = stats.versions.iter().map(|v| v.provisioned).sum();
    let throttles: u64 = stats.throttles.iter().map(|(_, n)| n).sum();
    let pct = if stats.concurrency_limit == 0 {
        0.0
    } else {
        f64::from(stats.busy) * 100.0 / f64::from(stats.concurrency_limit)
    };
    Ok(html! {
        div.cards {
            div.card.stat { span.label { "Busy" } span.value id="busy" { (stats.busy) } }
            div.card.stat { span.label { "Idle (warm)" } span.value { (idle) } }
            div.card.stat { span.label { "Provisioned" } span.value { (provisioned) } }
            div.card.stat { span.label { "Throttles since start" } span.value.bad[throttles > 0] { (throttles) } }
            div.card.stat { span.label { "Limit / unreserved" } span.value { (settings.concurrent_executions) " / " (settings.unreserved_concurrent_executions) } }
        }
        progress.meter value=(stats.busy) max=(stats.concurrency_limit.max(1)) title={ "Busy: " (format!("{pct:.1}")) "% of the account limit" } {}
        section.card {
            h2 { "Environments per version" }
            @if stats.versions.is_empty() { p.muted { "No environments: nothing has run since the server started, or all were reclaimed." } } @else {
                div.table-wrap { table id="concurrency" {
                    thead { tr { th { "Function" } th { "Version" } th.num { "Busy" } th.num { "Idle" } th.num { "Provisioned" } th.num { "Provisioned idle" } } }
                    tbody { @for v in &stats.versions { tr {
                        td { a href={ (PREFIX) "/functions/" (crate::console::pages::url_encode(&v.function)) } { (v.function) } }
                        td { (v.version) } td.num { (v.busy) } td.num { (v.idle) } td.num { (v.provisioned) } td.num { (v.provisioned_idle) }
                    } } }
                } }
            }
        }
        div.grid2 {
            section.card {
                h2 { "Reserved concurrency" }
                @if stats.reserved.is_empty() { p.muted { "No reservations." } } @else {
                    table { thead { tr { th { "Function" } th.num { "Reserved" } } }
                        tbody { @for (f, n) in &stats.reserved { tr { td { (f) } td.num { (n) } } } } }
                }
            }
            section.card {
                h2 { "Throttles" }
                @if stats.throttles.is_empty() { p.muted { "No throttles." } } @else {
                    table { thead { tr { th { "Function" } th.num { "Throttled requests" } } }
                        tbody { @for (f, n) in &stats.throttles { tr { td { (f) } td.num { (n) } } } } }
                }
            }
        }
    })
}

/// `GET /api/queues`: the queue table.
pub(crate) async fn queues(State(console): State<Arc<ConsoleState>>) -> Response {
    Html(queues_fragment(&console).await.into_string()).into_response()
}

/// Every queue with its visible, in-flight and delayed messages and its kind.
pub(crate) async fn queues_fragment(console: &ConsoleState) -> Markup {
    let queues = &console.api.queues;
    let wanted = ["All".to_owned()];
    let mut rows = Vec::new();
    for name in queues.list_queues("") {
        // A queue deleted since the listing is simply left out.
        let Ok(attributes) = queues.queue_attributes(&name, &wanted).await else { continue };
        let get = |key: &str| attributes.get(key).cloned().unwrap_or_default();
        rows.push(QueueRow {
            visible: get("ApproximateNumberOfMessages"),
            in_flight: get("ApproximateNumberOfMessagesNotVisible"),
            delayed: get("ApproximateNumberOfMessagesDelayed"),
            fifo: get("FifoQueue") == "true",
            dead_letter: dead_letter_name(&get("RedrivePolicy")),
            visibility_timeout: get("VisibilityTimeout"),
            retention: get("MessageRetentionPeriod"),
            name,
        });
    }
    html! {
        section.card {
            @if rows.is_empty() { p.muted { "No queues. Create one with the AWS CLI (" code { "aws sqs create-queue" } ") or an SDK." } } @else {
                div.table-wrap { table id="queues" {
                    thead { tr { th { "Queue" } th { "Type" } th.num { "Visible" } th.num { "In flight" } th.num { "Delayed" } th.num { "Visibility timeout" } th.num { "Retention" } th { "Dead-letter queue" } } }
                    tbody { @for q in &rows { tr data-queue=(q.name) {
                        td { strong { (q.name) } } td { @if q.fifo { "FIFO" } @else { "Standard" } }
                        td.num.visible { (q.visible) } td.num { (q.in_flight) } td.num { (q.delayed) }
                        td.num { (q.visibility_timeout) " s" } td.num { (q.retention) " s" }
                        td { @if let Some(dlq) = &q.dead_letter { (dlq) } @else { span.muted { "none" } } }
                    } } }
                } }
            }
        }
    }
}

#[derive(Debug)]
struct QueueRow {
    name: String,
    visible: String,
    in_flight: String,
    delayed: String,
    fifo: bool,
    dead_letter: Option<String>,
    visibility_timeout: String,
    retention: String,
}

/// The dead-letter queue's name from a `RedrivePolicy` document.
fn dead_letter_name(policy: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(policy).ok()?;
    let arn = doc.get("deadLetterTargetArn")?.as_str()?;
    Some(arn.rsplit(':').next().unwrap_or(arn).to_owned())
}

//! A CloudWatch Logs-compatible subset (AWS JSON 1.1, `Logs_20140328.*`) over the stored
//! function logs, so that `aws logs`, boto3's `logs` client and `alonzo logs` read them:
//! `DescribeLogGroups`, `DescribeLogStreams`, `GetLogEvents`, `FilterLogEvents` (plain and
//! quoted terms, `?` alternatives), `CreateLogGroup`, `DeleteLogGroup`, `CreateLogStream`,
//! `DeleteLogStream`, `PutLogEvents`, `PutRetentionPolicy`, `DeleteRetentionPolicy`.

use alonzo_control::LogEvent;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::ApiState;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogsRequest {
    log_group_name: Option<String>,
    log_group_name_prefix: Option<String>,
    log_stream_name: Option<String>,
    log_stream_name_prefix: Option<String>,
    log_stream_names: Option<Vec<String>>,
    start_time: Option<i64>,
    end_time: Option<i64>,
    filter_pattern: Option<String>,
    next_token: Option<String>,
    limit: Option<usize>,
    start_from_head: Option<bool>,
    descending: Option<bool>,
    retention_in_days: Option<i64>,
    log_events: Option<Vec<InputEvent>>,
}

#[derive(Debug, Deserialize)]
struct InputEvent {
    timestamp: i64,
    message: String,
}

/// The retention periods CloudWatch Logs accepts, in days.
const RETENTION_DAYS: &[i64] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
/// How far in the past `PutLogEvents` accepts events (CloudWatch: 14 days).
const MAX_EVENT_AGE_MS: i64 = 14 * 86_400_000;
/// How far in the future it accepts them (CloudWatch: 2 hours).
const MAX_EVENT_AHEAD_MS: i64 = 2 * 3_600_000;

/// Runs one operation.
pub(crate) fn handle(state: &ApiState, op: &str, body: &[u8]) -> Result<Value, ApiError> {
    let req: LogsRequest = if body.is_empty() {
        LogsRequest::default()
    } else {
        serde_json::from_slice(body).map_err(ApiError::bad_content)?
    };
    let store = state.control.log_store();
    let account = state.control.account();
    let group_arn =
        |g: &str| format!("arn:aws:logs:{}:{}:log-group:{g}", account.region, account.account_id);
    match op {
        "DescribeLogGroups" => {
            let groups: Vec<Value> = store
                .groups(req.log_group_name_prefix.as_deref().unwrap_or(""))
                .into_iter()
                .map(|g| {
                    let mut v = json!({"logGroupName": g.name, "creationTime": g.created_ms, "storedBytes": g.stored_bytes, "metricFilterCount": 0, "arn": format!("{}:*", group_arn(&g.name)), "logGroupArn": group_arn(&g.name), "logGroupClass": "STANDARD"});
                    if let Some(days) = g.retention_days {
                        v["retentionInDays"] = days.into();
                    }
                    v
                })
                .collect();
            Ok(json!({ "logGroups": groups }))
        }
        "DescribeLogStreams" => {
            let group = required_group(&store, &req)?;
            let prefix = req.log_stream_name_prefix.as_deref().unwrap_or("");
            let mut streams: Vec<Value> = store
                .streams(&group)
                .into_iter()
                .filter(|s| s.name.starts_with(prefix))
                .map(|s| json!({"logStreamName": s.name, "creationTime": s.created_ms, "firstEventTimestamp": s.first_event_ms, "lastEventTimestamp": s.last_event_ms, "lastIngestionTime": s.last_event_ms, "storedBytes": s.stored_bytes, "arn": format!("{}:log-stream:{}", group_arn(&group), s.name)}))
                .collect();
            if req.descending == Some(true) {
                streams.reverse();
            }
            Ok(json!({ "logStreams": streams }))
        }
        "GetLogEvents" => get_log_events(&store, &req),
        "FilterLogEvents" => filter_log_events(&store, &req),
        "DeleteLogGroup" => {
            let group = required_group(&store, &req)?;
            store.delete_group(&group).map_err(|e| ApiError::internal(&e))?;
            Ok(json!({}))
        }
        "CreateLogGroup" => {
            let group = req.log_group_name.unwrap_or_default();
            check_name("logGroupName", &group, |c| {
                c.is_ascii_alphanumeric() || "._-/#".contains(c)
            })?;
            if !store.create_group(&group).map_err(|e| ApiError::internal(&e))? {
                return Err(already_exists("The specified log group already exists"));
            }
            Ok(json!({}))
        }
        "PutRetentionPolicy" => {
            let group = required_group(&store, &req)?;
            let days = req.retention_in_days.unwrap_or(0);
            if !RETENTION_DAYS.contains(&days) {
                let allowed: Vec<String> = RETENTION_DAYS.iter().map(i64::to_string).collect();
                return Err(invalid(format!("1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [{}]", allowed.join(", "))));
            }
            let days = u32::try_from(days).map_err(|_| invalid("retentionInDays is invalid."))?;
            store.set_retention(&group, Some(days)).map_err(|e| ApiError::internal(&e))?;
            Ok(json!({}))
        }
        "DeleteRetentionPolicy" => {
            let group = required_group(&store, &req)?;
            store.set_retention(&group, None).map_err(|e| ApiError::internal(&e))?;
            Ok(json!({}))
        }
        "CreateLogStream" => {
            let group = required_group(&store, &req)?;
            let stream = req.log_stream_name.unwrap_or_default();
            check_name("logStreamName", &stream, |c| c != ':' && c != '*')?;
            if !store.create_stream(&group, &stream).map_err(|e| ApiError::internal(&e))? {
                return Err(already_exists("The specified log stream already exists"));
            }
            Ok(json!({}))
        }
        "DeleteLogStream" => {
            let group = required_group(&store, &req)?;
            let stream = required_stream(&store, &group, &req)?;
            store.delete_stream(&group, &stream).map_err(|e| ApiError::internal(&e))?;
            Ok(json!({}))
        }
        "PutLogEvents" => put_log_events(&store, &req),
        other => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("The {other} operation is not supported by Alonzo's logs service."),
        )),
    }
}

fn required_group(store: &alonzo_control::LogStore, req: &LogsRequest) -> Result<String, ApiError> {
    let group = req.log_group_name.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            "logGroupName is required.",
        )
    })?;
    if !store.has_group(&group) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "The specified log group does not exist.",
        ));
    }
    Ok(group)
}

fn required_stream(
    store: &alonzo_control::LogStore,
    group: &str,
    req: &LogsRequest,
) -> Result<String, ApiError> {
    let stream = req.log_stream_name.clone().unwrap_or_default();
    if !store.has_stream(group, &stream) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
        ));
    }
    Ok(stream)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidParameterException", message.into())
}

fn already_exists(message: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "ResourceAlreadyExistsException", message.to_owned())
}

/// CloudWatch's name rule: 1–512 characters from an allowed set.
fn check_name(member: &str, name: &str, allowed: impl Fn(char) -> bool) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 512 || !name.chars().all(allowed) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            format!("1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: Member must have length between 1 and 512 and consist of allowed characters"),
        ));
    }
    Ok(())
}

/// `PutLogEvents`: 1–10,000 events in time order, within 24 hours of each other; events
/// too old (more than 14 days, or beyond the group's retention) or too far ahead are
/// rejected individually, as CloudWatch does.
fn put_log_events(store: &alonzo_control::LogStore, req: &LogsRequest) -> Result<Value, ApiError> {
    let group = required_group(store, req)?;
    let stream = required_stream(store, &group, req)?;
    let events = req.log_events.as_deref().unwrap_or_default();
    if events.is_empty() || events.len() > 10_000 {
        return Err(invalid("logEvents must hold between 1 and 10000 events."));
    }
    if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
        return Err(invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    if events.last().map_or(0, |e| e.timestamp) - events[0].timestamp > 86_400_000 {
        return Err(invalid("The batch of log events in a single PutLogEvents request cannot span more than 24 hours."));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let retention =
        store.groups(&group).into_iter().find(|g| g.name == group).and_then(|g| g.retention_days);
    let oldest = now
        - retention.map_or(MAX_EVENT_AGE_MS, |d| i64::from(d) * 86_400_000).min(MAX_EVENT_AGE_MS);
    let too_old = events.iter().rposition(|e| e.timestamp < oldest);
    let too_new = events.iter().position(|e| e.timestamp > now + MAX_EVENT_AHEAD_MS);
    let first = too_old.map_or(0, |i| i + 1);
    let last = too_new.unwrap_or(events.len());
    let accepted: Vec<(i64, String)> = events
        .get(first..last.max(first))
        .unwrap_or_default()
        .iter()
        .map(|e| (e.timestamp, e.message.clone()))
        .collect();
    if !accepted.is_empty() {
        store.put_events(&group, &stream, &accepted).map_err(|e| ApiError::internal(&e))?;
    }
    let mut out = json!({ "nextSequenceToken": format!("{:056}", now) });
    let mut rejected = serde_json::Map::new();
    if let Some(i) = too_old {
        rejected.insert("tooOldLogEventEndIndex".into(), i.into());
    }
    if let Some(i) = too_new {
        rejected.insert("tooNewLogEventStartIndex".into(), i.into());
    }
    if !rejected.is_empty() {
        out["rejectedLogEventsInfo"] = Value::Object(rejected);
    }
    Ok(out)
}

fn event_json(e: &LogEvent, with_stream: bool) -> Value {
    let mut v =
        json!({"timestamp": e.timestamp_ms, "message": e.message, "ingestionTime": e.timestamp_ms});
    if with_stream {
        v["logStreamName"] = e.stream.clone().into();
        v["eventId"] = e.event_id.clone().into();
    }
    v
}

fn get_log_events(store: &alonzo_control::LogStore, req: &LogsRequest) -> Result<Value, ApiError> {
    let group = required_group(store, req)?;
    let stream = req.log_stream_name.clone().unwrap_or_default();
    let events = store.stream_events(&group, &stream).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "The specified log stream does not exist.",
        )
    })?;
    let events: Vec<LogEvent> = events
        .into_iter()
        .filter(|e| {
            req.start_time.is_none_or(|t| e.timestamp_ms >= t)
                && req.end_time.is_none_or(|t| e.timestamp_ms < t)
        })
        .collect();
    let limit = req.limit.unwrap_or(alonzo_sandbox_max()).clamp(1, alonzo_sandbox_max());
    let (start, end) = match req.next_token.as_deref() {
        Some(token) if token.starts_with("f/") => {
            let from = token[2..].parse::<usize>().unwrap_or(0).min(events.len());
            (from, (from + limit).min(events.len()))
        }
        Some(token) if token.starts_with("b/") => {
            let to = token[2..].parse::<usize>().unwrap_or(0).min(events.len());
            (to.saturating_sub(limit), to)
        }
        _ if req.start_from_head == Some(true) => (0, limit.min(events.len())),
        _ => (events.len().saturating_sub(limit), events.len()),
    };
    let page: Vec<Value> = events[start..end].iter().map(|e| event_json(e, false)).collect();
    Ok(
        json!({"events": page, "nextForwardToken": format!("f/{end:020}"), "nextBackwardToken": format!("b/{start:020}")}),
    )
}

fn filter_log_events(
    store: &alonzo_control::LogStore,
    req: &LogsRequest,
) -> Result<Value, ApiError> {
    let group = required_group(store, req)?;
    let streams = req.log_stream_names.clone().unwrap_or_default();
    let pattern = FilterPattern::parse(req.filter_pattern.as_deref().unwrap_or(""));
    let matching: Vec<LogEvent> = store
        .events(&group, &streams, req.start_time, req.end_time)
        .into_iter()
        .filter(|e| pattern.matches(&e.message))
        .collect();
    let from = req
        .next_token
        .as_deref()
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0)
        .min(matching.len());
    let limit = req.limit.unwrap_or(alonzo_sandbox_max()).clamp(1, alonzo_sandbox_max());
    let to = (from + limit).min(matching.len());
    let page: Vec<Value> = matching[from..to].iter().map(|e| event_json(e, true)).collect();
    let mut out = json!({"events": page, "searchedLogStreams": []});
    if to < matching.len() {
        out["nextToken"] = to.to_string().into();
    }
    Ok(out)
}

fn alonzo_sandbox_max() -> usize {
    alonzo_control::MAX_LOG_EVENTS
}

/// CloudWatch's text filter patterns: every plain or quoted term must occur, unless `?`
/// terms are given, in which case any one of them suffices. Matching is case-sensitive.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FilterPattern {
    all: Vec<String>,
    any: Vec<String>,
}

impl FilterPattern {
    pub(crate) fn parse(text: &str) -> Self {
        let mut pattern = Self { all: Vec::new(), any: Vec::new() };
        let mut chars = text.trim().chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            let optional = c == '?';
            if optional {
                chars.next();
            }
            let term: String = if chars.peek() == Some(&'"') {
                chars.next();
                let t: String = chars.by_ref().take_while(|&c| c != '"').collect();
                t
            } else {
                let mut t = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    t.push(c);
                    chars.next();
                }
                t
            };
            if !term.is_empty() {
                if optional {
                    pattern.any.push(term)
                } else {
                    pattern.all.push(term)
                }
            }
        }
        pattern
    }

    pub(crate) fn matches(&self, message: &str) -> bool {
        if !self.any.is_empty() {
            return self.any.iter().any(|t| message.contains(t.as_str()));
        }
        self.all.iter().all(|t| message.contains(t.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_patterns() {
        assert!(FilterPattern::parse("").matches("anything"));
        assert!(FilterPattern::parse("ERROR timeout").matches("ERROR: a timeout"));
        assert!(!FilterPattern::parse("ERROR timeout").matches("ERROR only"));
        assert!(FilterPattern::parse("\"Task timed out\"")
            .matches("x Task timed out after 1.00 seconds"));
        assert!(!FilterPattern::parse("\"Task timed out\"").matches("Task was timed out"));
        let alt = FilterPattern::parse("?ERROR ?WARN");
        assert!(alt.matches("WARN x") && alt.matches("ERROR y") && !alt.matches("INFO z"));
    }
}

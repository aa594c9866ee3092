//! A CloudWatch Logs-compatible subset (AWS JSON 1.1, `Logs_20140328.*`) over the stored
//! function logs, so that `aws logs`, boto3's `logs` client and `alonzo logs` read them:
//! `DescribeLogGroups`, `DescribeLogStreams`, `GetLogEvents`, `FilterLogEvents` (plain and
//! quoted terms, `?` alternatives), `DeleteLogGroup`.

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
}

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
                .map(|g| json!({"logGroupName": g.name, "creationTime": g.created_ms, "storedBytes": g.stored_bytes, "metricFilterCount": 0, "arn": format!("{}:*", group_arn(&g.name)), "logGroupArn": group_arn(&g.name)}))
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

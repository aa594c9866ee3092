//! The HTTP event conversions (`alonzo_api::http_event`): request → payload format 1.0/2.0
//! event, function result → HTTP answer, the streamed response's JSON prelude.
//!
//! Properties: a function's result is turned into an answer or refused, never a panic, and
//! an answer always has a status in 100..=599 and header names and values that can be sent;
//! the events of any request carry its body back exactly (as text, or as base64 when they
//! say so), its raw query and its method.

use std::collections::BTreeMap;

use alonzo_api::http_event::{
    event_v1, event_v2, find_prelude_end, http_response, stream_prelude, EventContext, HttpRequest,
    HttpResponse, PayloadFormat,
};
use base64::Engine;
use chrono::{TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::input::{header_lines, sections, text};

/// Sections: the function's result, `v1` or `v2`, method, path, query, headers, body.
#[derive(Debug)]
struct Input {
    result: Vec<u8>,
    v1: bool,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// The fuzz target's body.
pub fn run(data: &[u8]) {
    let s = sections(data, 7);
    let input = Input {
        result: s[0].to_vec(),
        v1: s[1] == b"v1",
        method: text(s[2]),
        path: text(s[3]),
        query: text(s[4]),
        headers: header_lines(s[5]),
        body: s[6].to_vec(),
    };
    let format = if input.v1 { PayloadFormat::V1 } else { PayloadFormat::V2 };
    if let Ok(answer) = http_response(&input.result, format) {
        sendable(&answer);
    }
    let prelude = match find_prelude_end(&input.result) {
        Some(end) => &input.result[..end],
        None => &input.result[..],
    };
    if let Ok(head) = stream_prelude(prelude) {
        sendable(&head);
        assert!(head.body.is_empty());
    }
    events(&input);
}

fn sendable(answer: &HttpResponse) {
    assert!((100..=599).contains(&answer.status), "status {}", answer.status);
    for (name, value) in &answer.headers {
        assert!(HeaderName::from_bytes(name.as_bytes()).is_ok(), "header name {name:?}");
        assert!(HeaderValue::from_str(value).is_ok(), "header {name}: {value:?}");
    }
}

fn events(input: &Input) {
    let mut headers = HeaderMap::new();
    for (name, value) in input.headers.iter().take(8) {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value))
        {
            headers.append(name, value);
        }
    }
    let request = HttpRequest {
        method: input.method.clone(),
        path: format!("/{}", input.path),
        raw_query: input.query.clone(),
        headers,
        body: input.body.clone(),
        source_ip: "127.0.0.1".to_owned(),
        protocol: "HTTP/1.1".to_owned(),
    };
    let context = EventContext {
        account_id: "anonymous".to_owned(),
        api_id: "abc".to_owned(),
        domain_name: "abc.lambda-url.us-east-1.on.aws".to_owned(),
        domain_prefix: "abc".to_owned(),
        request_id: "id".to_owned(),
        route_key: "$default".to_owned(),
        stage: "$default".to_owned(),
        time: Utc.timestamp_opt(0, 0).single().expect("the epoch"),
        resource: "/{proxy+}".to_owned(),
        path_parameters: BTreeMap::new(),
        stage_variables: BTreeMap::new(),
        iam: None,
    };
    for event in [event_v2(&request, &context), event_v1(&request, &context)] {
        let text = serde_json::to_string(&event).expect("an event serialises");
        let event: Value = serde_json::from_str(&text).expect("an event parses back");
        body_round_trips(&event, &input.body);
    }
    let v2 = event_v2(&request, &context);
    assert_eq!(v2["rawQueryString"], Value::from(input.query.as_str()));
    assert_eq!(v2["requestContext"]["http"]["method"], Value::from(input.method.as_str()));
}

fn body_round_trips(event: &Value, body: &[u8]) {
    let encoded = event["isBase64Encoded"].as_bool().unwrap_or(false);
    let sent = match &event["body"] {
        Value::Null => Vec::new(),
        Value::String(text) if encoded => {
            base64::engine::general_purpose::STANDARD.decode(text).expect("a base64 body decodes")
        }
        Value::String(text) => text.clone().into_bytes(),
        other => panic!("body is {other}"),
    };
    assert_eq!(sent, body, "the event does not carry the request body");
}

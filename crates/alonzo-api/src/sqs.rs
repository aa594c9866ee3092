//! The SQS API in AWS JSON 1.0 (`X-Amz-Target: AmazonSQS.*`, signed for `sqs`), as current
//! SDKs and the AWS CLI speak it, over `alonzo_queue::Queues`. Errors carry SQS's shape name
//! in `__type` and the legacy query-protocol code in `x-amzn-query-error`, from which
//! botocore derives `Error.Code` (`AWS.SimpleQueueService.NonExistentQueue`) and the
//! modelled exception class (`QueueDoesNotExist`).

use std::collections::BTreeMap;

use alonzo_queue::{
    MessageAttributeValue, QueueError, Queues, ReceiveOptions, ReceivedMessage, SendMessage,
    SentMessage,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::ApiState;

/// An SQS-shaped error.
#[derive(Debug)]
struct SqsError {
    status: StatusCode,
    /// The model's shape name (`__type` after `#`).
    shape: &'static str,
    /// The query-protocol code (`x-amzn-query-error`).
    query_code: &'static str,
    /// Whether the sender (4xx) or the server is at fault.
    sender_fault: bool,
    message: String,
}

impl SqsError {
    fn new(shape: &'static str, query_code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            shape,
            query_code,
            sender_fault: true,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterValue", "InvalidParameterValue", message)
    }

    fn missing(parameter: &str) -> Self {
        Self::new(
            "MissingParameter",
            "MissingParameter",
            format!("The request must contain the parameter {parameter}."),
        )
    }
}

impl From<QueueError> for SqsError {
    fn from(e: QueueError) -> Self {
        let message = e.to_string();
        let (shape, code) = match &e {
            QueueError::QueueDoesNotExist => {
                ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue")
            }
            QueueError::QueueNameExists(_) => ("QueueNameExists", "QueueAlreadyExists"),
            QueueError::InvalidParameterValue(_) => {
                ("InvalidParameterValue", "InvalidParameterValue")
            }
            QueueError::MissingParameter(_) => ("MissingParameter", "MissingParameter"),
            QueueError::InvalidAttributeName(_) => ("InvalidAttributeName", "InvalidAttributeName"),
            QueueError::InvalidAttributeValue(_) => {
                ("InvalidAttributeValue", "InvalidAttributeValue")
            }
            QueueError::InvalidMessageContents(_) => {
                ("InvalidMessageContents", "InvalidMessageContents")
            }
            QueueError::ReceiptHandleIsInvalid(_) => {
                ("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid")
            }
            QueueError::MessageNotInflight => {
                ("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight")
            }
            QueueError::EmptyBatchRequest(_) => {
                ("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest")
            }
            QueueError::TooManyEntriesInBatchRequest(_) => (
                "TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            ),
            QueueError::BatchEntryIdsNotDistinct(_) => {
                ("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct")
            }
            QueueError::InvalidBatchEntryId => {
                ("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId")
            }
            QueueError::BatchRequestTooLong(..) => {
                ("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong")
            }
            QueueError::Unsupported(_) => {
                ("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation")
            }
            QueueError::Internal(detail) => {
                tracing::error!(error = %detail, "queue operation failed");
                return Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    shape: "InternalError",
                    query_code: "InternalError",
                    sender_fault: false,
                    message: "We encountered an internal error. Please try again.".into(),
                };
            }
        };
        Self::new(shape, code, message)
    }
}

impl IntoResponse for SqsError {
    fn into_response(self) -> Response {
        let body =
            json!({"__type": format!("com.amazonaws.sqs#{}", self.shape), "message": self.message});
        let mut response = (self.status, axum::Json(body)).into_response();
        let fault = if self.sender_fault { "Sender" } else { "Receiver" };
        if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", self.query_code)) {
            response.headers_mut().insert("x-amzn-query-error", v);
        }
        response
    }
}

/// A batch entry's failure in a batch result.
fn entry_failure(id: &str, e: QueueError) -> Value {
    let err = SqsError::from(e);
    json!({"Id": id, "SenderFault": err.sender_fault, "Code": err.query_code, "Message": err.message})
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireAttribute {
    data_type: Option<String>,
    string_value: Option<String>,
    binary_value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendEntry {
    id: Option<String>,
    message_body: Option<String>,
    delay_seconds: Option<i64>,
    #[serde(default)]
    message_attributes: BTreeMap<String, WireAttribute>,
    #[serde(default)]
    message_system_attributes: BTreeMap<String, WireAttribute>,
    message_deduplication_id: Option<String>,
    message_group_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HandleEntry {
    id: Option<String>,
    receipt_handle: Option<String>,
    visibility_timeout: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Request {
    queue_name: Option<String>,
    queue_url: Option<String>,
    queue_name_prefix: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default, rename = "tags")]
    create_tags: BTreeMap<String, String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(default)]
    tag_keys: Vec<String>,
    #[serde(default)]
    attribute_names: Vec<String>,
    #[serde(default)]
    message_system_attribute_names: Vec<String>,
    #[serde(default)]
    message_attribute_names: Vec<String>,
    max_number_of_messages: Option<i64>,
    visibility_timeout: Option<i64>,
    wait_time_seconds: Option<i64>,
    receipt_handle: Option<String>,
    #[serde(flatten)]
    message: SendEntry,
    #[serde(default)]
    entries: Vec<Value>,
}

/// Runs one `AmazonSQS.*` operation and renders its answer.
pub(crate) async fn handle(
    state: &ApiState,
    op: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let result = run(state, op, headers, body).await;
    let mut response = match result {
        Ok(value) => (StatusCode::OK, axum::Json(value)).into_response(),
        Err(e) => e.into_response(),
    };
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
    response
}

fn host(state: &ApiState, headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
        .map_or_else(|| state.public_host.clone(), str::to_owned)
}

fn queue_name(queues: &Queues, req: &Request) -> Result<String, SqsError> {
    let url = req.queue_url.as_deref().ok_or_else(|| SqsError::missing("QueueUrl"))?;
    Ok(queues.name_from_url(url)?)
}

fn int(value: Option<i64>, name: &str, min: i64, max: i64) -> Result<Option<u32>, SqsError> {
    match value {
        None => Ok(None),
        Some(v) if (min..=max).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(SqsError::invalid(format!(
            "Value {v} for parameter {name} is invalid. Reason: Must be between {min} and {max}, if provided."
        ))),
    }
}

fn to_send(entry: SendEntry) -> Result<SendMessage, SqsError> {
    if entry.message_group_id.is_some() || entry.message_deduplication_id.is_some() {
        return Err(SqsError::invalid(
            "The request include parameter that is not valid for this queue type",
        ));
    }
    let body = entry.message_body.ok_or_else(|| SqsError::missing("MessageBody"))?;
    let delay = match entry.delay_seconds {
        Some(d) if !(0..=900).contains(&d) => {
            return Err(SqsError::invalid(format!(
                "Value {d} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
            )))
        }
        d => d.map(|d| d as u32),
    };
    let mut message_attributes = BTreeMap::new();
    for (name, a) in entry.message_attributes {
        let data_type = a.data_type.ok_or_else(|| {
            SqsError::invalid(format!(
                "The message attribute '{name}' must contain non-empty message attribute type."
            ))
        })?;
        let value = if data_type.starts_with("Binary") {
            let raw = a.binary_value.unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD.decode(raw).map_err(|_| {
                SqsError::invalid(format!(
                    "The message attribute '{name}' has an invalid binary value."
                ))
            })?;
            MessageAttributeValue { data_type, string_value: None, binary_value: Some(bytes) }
        } else {
            MessageAttributeValue { data_type, string_value: a.string_value, binary_value: None }
        };
        message_attributes.insert(name, value);
    }
    let mut trace_header = None;
    for (name, a) in entry.message_system_attributes {
        if name != "AWSTraceHeader" || a.data_type.as_deref() != Some("String") {
            return Err(SqsError::invalid(format!(
                "Message system attribute name '{name}' is invalid."
            )));
        }
        trace_header = a.string_value;
    }
    Ok(SendMessage {
        body,
        delay_seconds: delay,
        message_attributes,
        sender_id: None,
        trace_header,
    })
}

fn sent_json(sent: &SentMessage) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("MessageId".into(), sent.message_id.clone().into());
    out.insert("MD5OfMessageBody".into(), sent.md5_of_body.clone().into());
    if let Some(md5) = &sent.md5_of_message_attributes {
        out.insert("MD5OfMessageAttributes".into(), md5.clone().into());
    }
    out
}

fn received_json(m: ReceivedMessage, system: &[String]) -> Value {
    let all = system.iter().any(|n| n == "All");
    let attributes: Map<String, Value> = m
        .system_attributes()
        .into_iter()
        .filter(|(k, _)| all || system.iter().any(|n| n == k))
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    let mut out = json!({
        "MessageId": m.message_id,
        "ReceiptHandle": m.receipt_handle,
        "MD5OfBody": m.md5_of_body,
        "Body": m.body,
    });
    if !attributes.is_empty() {
        out["Attributes"] = Value::Object(attributes);
    }
    if let Some(md5) = m.md5_of_message_attributes {
        out["MD5OfMessageAttributes"] = md5.into();
        let attrs: Map<String, Value> = m
            .message_attributes
            .into_iter()
            .map(|(name, a)| {
                let mut v = json!({"DataType": a.data_type});
                if let Some(s) = a.string_value {
                    v["StringValue"] = s.into();
                }
                if let Some(b) = a.binary_value {
                    v["BinaryValue"] = base64::engine::general_purpose::STANDARD.encode(b).into();
                }
                (name, v)
            })
            .collect();
        out["MessageAttributes"] = Value::Object(attrs);
    }
    out
}

fn batch_entries<T: serde::de::DeserializeOwned + Default>(
    entries: Vec<Value>,
) -> Result<Vec<T>, SqsError> {
    entries
        .into_iter()
        .map(|e| {
            serde_json::from_value(e)
                .map_err(|e| SqsError::invalid(format!("Invalid batch entry: {e}")))
        })
        .collect()
}

fn batch_result<T>(
    results: Vec<(String, Result<T, QueueError>)>,
    ok: impl Fn(&str, T) -> Value,
) -> Value {
    let mut successful = Vec::new();
    let mut failed = Vec::new();
    for (id, result) in results {
        match result {
            Ok(v) => successful.push(ok(&id, v)),
            Err(e) => failed.push(entry_failure(&id, e)),
        }
    }
    json!({"Successful": successful, "Failed": failed})
}

fn parse_request(body: &[u8]) -> Result<Request, SqsError> {
    if body.is_empty() {
        return Ok(Request::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        SqsError::new(
            "InvalidParameterValue",
            "InvalidParameterValue",
            format!("The request body is not valid JSON for this operation: {e}"),
        )
    })
}

/// The messages `SendMessage` (no `Entries`) or `SendMessageBatch` would send, decoded as
/// `run` decodes them; the error is the first refusal's query-protocol code.
pub(crate) fn decode_send_for_fuzzing(body: &[u8]) -> Result<Vec<SendMessage>, &'static str> {
    let decode = || -> Result<Vec<SendMessage>, SqsError> {
        let req = parse_request(body)?;
        if req.entries.is_empty() {
            return Ok(vec![to_send(req.message)?]);
        }
        let entries: Vec<SendEntry> = batch_entries(req.entries)?;
        alonzo_queue::check_batch_ids(
            entries.iter().map(|e| e.id.as_deref().unwrap_or("")),
            "SendMessageBatchRequestEntry",
        )?;
        entries.into_iter().map(to_send).collect()
    };
    decode().map_err(|e| e.query_code)
}

async fn run(
    state: &ApiState,
    op: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Value, SqsError> {
    let queues = &state.queues;
    let req = parse_request(body)?;
    match op {
        "CreateQueue" => {
            let name = req.queue_name.as_deref().ok_or_else(|| SqsError::missing("QueueName"))?;
            let info = queues.create_queue(name, &req.attributes, &req.create_tags).await?;
            Ok(json!({"QueueUrl": queues.queue_url(&host(state, headers), &info.name)}))
        }
        "GetQueueUrl" => {
            let name = req.queue_name.as_deref().ok_or_else(|| SqsError::missing("QueueName"))?;
            let info = queues.get_queue(name)?;
            Ok(json!({"QueueUrl": queues.queue_url(&host(state, headers), &info.name)}))
        }
        "ListQueues" => {
            let host = host(state, headers);
            let names = queues.list_queues(req.queue_name_prefix.as_deref().unwrap_or(""));
            let max = int(req.max_results, "MaxResults", 1, 1000)?;
            let start = match &req.next_token {
                Some(token) => names.iter().position(|n| n > token).unwrap_or(names.len()),
                None => 0,
            };
            let page_len = max.map_or(1000, |m| m as usize);
            let page = &names[start..(start + page_len).min(names.len())];
            let mut out = json!({});
            if !page.is_empty() {
                out["QueueUrls"] =
                    page.iter().map(|n| queues.queue_url(&host, n)).collect::<Vec<_>>().into();
            }
            if max.is_some() && start + page.len() < names.len() {
                if let Some(last) = page.last() {
                    out["NextToken"] = last.clone().into();
                }
            }
            Ok(out)
        }
        "GetQueueAttributes" => {
            let name = queue_name(queues, &req)?;
            let names =
                if req.attribute_names.is_empty() { Vec::new() } else { req.attribute_names };
            let attrs = queues.queue_attributes(&name, &names).await?;
            if attrs.is_empty() {
                return Ok(json!({}));
            }
            Ok(json!({"Attributes": attrs}))
        }
        "SetQueueAttributes" => {
            let name = queue_name(queues, &req)?;
            queues.set_queue_attributes(&name, &req.attributes).await?;
            Ok(json!({}))
        }
        "DeleteQueue" => {
            queues.delete_queue(&queue_name(queues, &req)?).await?;
            Ok(json!({}))
        }
        "PurgeQueue" => {
            queues.purge_queue(&queue_name(queues, &req)?).await?;
            Ok(json!({}))
        }
        "TagQueue" => {
            queues.tag_queue(&queue_name(queues, &req)?, &req.tags).await?;
            Ok(json!({}))
        }
        "UntagQueue" => {
            queues.untag_queue(&queue_name(queues, &req)?, &req.tag_keys).await?;
            Ok(json!({}))
        }
        "ListQueueTags" => {
            let tags = queues.list_queue_tags(&queue_name(queues, &req)?)?;
            if tags.is_empty() {
                return Ok(json!({}));
            }
            Ok(json!({"Tags": tags}))
        }
        "SendMessage" => {
            let name = queue_name(queues, &req)?;
            let sent = queues.send_message(&name, to_send(req.message)?).await?;
            Ok(Value::Object(sent_json(&sent)))
        }
        "SendMessageBatch" => {
            let name = queue_name(queues, &req)?;
            queues.get_queue(&name)?;
            let entries: Vec<SendEntry> = batch_entries(req.entries)?;
            alonzo_queue::check_batch_ids(
                entries.iter().map(|e| e.id.as_deref().unwrap_or("")),
                "SendMessageBatchRequestEntry",
            )?;
            let mut prepared = Vec::with_capacity(entries.len());
            let mut early = Vec::new();
            for e in entries {
                let id = e.id.clone().unwrap_or_default();
                match to_send(e) {
                    Ok(m) => prepared.push((id, m)),
                    Err(err) => early.push(json!({"Id": id, "SenderFault": true, "Code": err.query_code, "Message": err.message})),
                }
            }
            let results = if prepared.is_empty() {
                Vec::new()
            } else {
                queues.send_message_batch(&name, prepared).await?
            };
            let mut out = batch_result(results, |id, sent| {
                let mut v = sent_json(&sent);
                v.insert("Id".into(), id.into());
                Value::Object(v)
            });
            if let Some(failed) = out["Failed"].as_array_mut() {
                failed.extend(early);
            }
            Ok(out)
        }
        "ReceiveMessage" => {
            let name = queue_name(queues, &req)?;
            let max = int(req.max_number_of_messages, "MaxNumberOfMessages", 1, 10)?.unwrap_or(1);
            let visibility = int(req.visibility_timeout, "VisibilityTimeout", 0, 43_200)?;
            let wait = int(req.wait_time_seconds, "WaitTimeSeconds", 0, 20)?;
            let options = ReceiveOptions {
                max_messages: max as usize,
                visibility_timeout: visibility,
                wait_time_seconds: wait,
                message_attribute_names: req.message_attribute_names,
            };
            let mut system = req.attribute_names;
            system.extend(req.message_system_attribute_names);
            let messages = queues.receive_messages(&name, options).await?;
            if messages.is_empty() {
                return Ok(json!({}));
            }
            let out: Vec<Value> = messages.into_iter().map(|m| received_json(m, &system)).collect();
            Ok(json!({"Messages": out}))
        }
        "DeleteMessage" => {
            let name = queue_name(queues, &req)?;
            let handle =
                req.receipt_handle.as_deref().ok_or_else(|| SqsError::missing("ReceiptHandle"))?;
            queues.delete_message(&name, handle).await?;
            Ok(json!({}))
        }
        "DeleteMessageBatch" => {
            let name = queue_name(queues, &req)?;
            let entries: Vec<HandleEntry> = batch_entries(req.entries)?;
            let entries = entries
                .into_iter()
                .map(|e| (e.id.unwrap_or_default(), e.receipt_handle.unwrap_or_default()))
                .collect();
            let results = queues.delete_message_batch(&name, entries).await?;
            Ok(batch_result(results, |id, ()| json!({"Id": id})))
        }
        "ChangeMessageVisibility" => {
            let name = queue_name(queues, &req)?;
            let handle =
                req.receipt_handle.as_deref().ok_or_else(|| SqsError::missing("ReceiptHandle"))?;
            let timeout = int(req.visibility_timeout, "VisibilityTimeout", 0, 43_200)?
                .ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
            queues.change_message_visibility(&name, handle, timeout).await?;
            Ok(json!({}))
        }
        "ChangeMessageVisibilityBatch" => {
            let name = queue_name(queues, &req)?;
            let entries: Vec<HandleEntry> = batch_entries(req.entries)?;
            let entries = entries
                .into_iter()
                .map(|e| {
                    let timeout =
                        e.visibility_timeout.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32;
                    (e.id.unwrap_or_default(), e.receipt_handle.unwrap_or_default(), timeout)
                })
                .collect();
            let results = queues.change_message_visibility_batch(&name, entries).await?;
            Ok(batch_result(results, |id, ()| json!({"Id": id})))
        }
        other => Err(SqsError::new(
            "UnsupportedOperation",
            "AWS.SimpleQueueService.UnsupportedOperation",
            format!("The {other} operation is not supported by Alonzo's SQS service."),
        )),
    }
}

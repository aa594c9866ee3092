//! Entry points for the fuzz targets in `crates/alonzo-fuzz` (and `fuzz/`): the smallest
//! public doors into this crate's private decoders, so that the targets run exactly the code
//! a request runs. Nothing here is part of the API; every function only forwards.

use serde_json::Value;

use crate::error::ApiError;
use crate::functions::parse_body;
use crate::wire::{
    self, CreateFunctionRequest, TagResourceRequest, UpdateCodeRequest, UpdateConfigurationRequest,
};

/// What a Lambda JSON body decoded to, as far as the handlers go before the control plane.
#[derive(Debug)]
pub struct WireOutcome {
    /// The configuration patch, when the body was a valid `CreateFunction` or
    /// `UpdateFunctionConfiguration` and every member passed the wire checks.
    pub patch: Option<alonzo_control::ConfigPatch>,
    /// The decoded `ZipFile`, when one was sent and was valid base64.
    pub zip: Option<Vec<u8>>,
    /// The status and `x-amzn-ErrorType` of the first refusal, if any.
    pub error: Option<(u16, String)>,
}

/// Decodes `body` as the JSON of `CreateFunction` (`op` 0), `UpdateFunctionConfiguration`
/// (1), `UpdateFunctionCode` (2) or `TagResource` (3), as those handlers do.
pub fn decode_lambda_body(op: u8, body: &[u8]) -> WireOutcome {
    let mut out = WireOutcome { patch: None, zip: None, error: None };
    let body = bytes::Bytes::copy_from_slice(body);
    let result = match op % 4 {
        0 => parse_body::<CreateFunctionRequest>(&body).and_then(|req| {
            if let Some(zip) = req.code.and_then(|c| c.zip_file) {
                out.zip = Some(wire::decode_zip(&zip)?);
            }
            out.patch = Some(req.config.into_patch()?);
            Ok(())
        }),
        1 => parse_body::<UpdateConfigurationRequest>(&body).and_then(|req| {
            out.patch = Some(req.config.into_patch()?);
            Ok(())
        }),
        2 => parse_body::<UpdateCodeRequest>(&body).and_then(|req| {
            if let Some(zip) = req.zip_file {
                out.zip = Some(wire::decode_zip(&zip)?);
            }
            Ok(())
        }),
        _ => parse_body::<TagResourceRequest>(&body).map(|_| ()),
    };
    if let Err(err) = result {
        out.error = Some(error_parts(err));
    }
    out
}

fn error_parts(err: ApiError) -> (u16, String) {
    use axum::response::IntoResponse;
    let response = err.into_response();
    let kind = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (response.status().as_u16(), kind)
}

/// Decodes an `AmazonSQS.*` JSON body and its `Entries` into the messages `SendMessage` and
/// `SendMessageBatch` would send; `Err` is the refusal's query-protocol code.
pub fn decode_sqs_send(body: &[u8]) -> Result<Vec<alonzo_queue::SendMessage>, &'static str> {
    crate::sqs::decode_send_for_fuzzing(body)
}

/// The `application/vnd.amazon.eventstream` messages of a streamed invoke: a `PayloadChunk`
/// per chunk, then the `InvokeComplete` event.
pub fn event_stream(
    chunks: &[&[u8]],
    error_code: Option<&str>,
    error_details: Option<&str>,
    log_result: Option<&str>,
) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(&crate::event_stream::payload_chunk(chunk));
    }
    out.extend_from_slice(&crate::event_stream::invoke_complete(
        error_code,
        error_details,
        log_result,
    ));
    out
}

/// The JSON document of an `InvokeComplete` event built from these fields, for comparison.
pub fn invoke_complete_doc(
    error_code: Option<&str>,
    error_details: Option<&str>,
    log_result: Option<&str>,
) -> Value {
    let mut doc = serde_json::Map::new();
    for (key, value) in
        [("ErrorCode", error_code), ("ErrorDetails", error_details), ("LogResult", log_result)]
    {
        if let Some(value) = value {
            doc.insert(key.into(), value.into());
        }
    }
    Value::Object(doc)
}

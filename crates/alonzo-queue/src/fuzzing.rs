//! Entry points for the fuzz targets in `crates/alonzo-fuzz`: the crate's private parsers
//! and checks of client input (queue attributes, message bodies and attributes, receipt
//! handles), exposed unchanged. Nothing here is part of the API.

use std::collections::BTreeMap;

use crate::{MessageAttributeValue, QueueError};

/// The queue-attribute validation `CreateQueue` (`creating`) and `SetQueueAttributes` run;
/// every dead-letter target is taken to exist.
pub fn validate_queue_attributes(
    given: &BTreeMap<String, String>,
    creating: bool,
) -> Result<BTreeMap<String, String>, QueueError> {
    crate::config::validate(given, creating, |_| true)
}

/// The body check of `SendMessage`.
pub fn validate_body(body: &str) -> Result<(), QueueError> {
    crate::message::validate_body(body)
}

/// The message-attribute check of `SendMessage`; the bytes they count.
pub fn validate_attributes(
    attributes: &BTreeMap<String, MessageAttributeValue>,
) -> Result<usize, QueueError> {
    crate::message::validate_attributes(attributes)
}

/// A receipt handle as clients see it for `(queue, seq, token)`.
pub fn encode_receipt(queue: i64, seq: i64, token: &str) -> String {
    crate::message::Receipt { queue, seq, token: token.to_owned() }.encode()
}

/// What a client's receipt handle names, if it is one.
pub fn decode_receipt(handle: &str) -> Result<(i64, i64, String), QueueError> {
    crate::message::Receipt::decode(handle).map(|r| (r.queue, r.seq, r.token))
}

//! The message-level rules of SQS: body characters, sizes, delays, message attribute names,
//! types and values, batch entry ids, and the opaque receipt handle.

use std::collections::BTreeMap;

use alonzo_store::queue::{MessageAttributeValue, QueueId};
use base64::Engine;

use crate::QueueError;

/// Most message attributes per message.
const MAX_ATTRIBUTES: usize = 10;

/// Checks a body's characters (`#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
/// #x10000-#x10FFFF`).
pub(crate) fn validate_body(body: &str) -> Result<(), QueueError> {
    if body.is_empty() {
        return Err(QueueError::MissingParameter(
            "The request must contain the parameter MessageBody.".into(),
        ));
    }
    if let Some(bad) = body.chars().find(|&c| {
        let c = c as u32;
        !(c == 0x9
            || c == 0xA
            || c == 0xD
            || (0x20..=0xD7FF).contains(&c)
            || (0xE000..=0xFFFD).contains(&c)
            || c >= 0x10000)
    }) {
        return Err(QueueError::InvalidMessageContents(format!(
            "Invalid binary character '#x{:X}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
            bad as u32
        )));
    }
    Ok(())
}

/// Checks message attributes; returns the bytes they count towards the message size.
pub(crate) fn validate_attributes(
    attributes: &BTreeMap<String, MessageAttributeValue>,
) -> Result<usize, QueueError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(QueueError::InvalidParameterValue(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            attributes.len()
        )));
    }
    let mut size = 0;
    for (name, value) in attributes {
        let lower = name.to_ascii_lowercase();
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..")
            && !lower.starts_with("aws.")
            && !lower.starts_with("amazon.");
        if !name_ok {
            return Err(QueueError::InvalidParameterValue(format!(
                "Message (user) attribute name '{name}' is invalid."
            )));
        }
        let base = value.data_type.split('.').next().unwrap_or("");
        if !matches!(base, "String" | "Number" | "Binary") || value.data_type.len() > 256 {
            return Err(QueueError::InvalidParameterValue(format!(
                "The type of message (user) attribute '{name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String."
            )));
        }
        let value_len = match base {
            "Binary" => match &value.binary_value {
                Some(b) if !b.is_empty() => b.len(),
                _ => {
                    return Err(QueueError::InvalidParameterValue(format!(
                        "Message (user) attribute '{name}' must contain a non-empty value of type '{}'.",
                        value.data_type
                    )))
                }
            },
            _ => match &value.string_value {
                Some(s) if !s.is_empty() => {
                    if base == "Number" && s.trim().parse::<f64>().is_err() {
                        return Err(QueueError::InvalidParameterValue(format!(
                            "Can't cast the value of message (user) attribute '{name}' to a number."
                        )));
                    }
                    validate_body(s).map_err(|_| {
                        QueueError::InvalidParameterValue(format!(
                            "Message (user) attribute '{name}' contains invalid characters."
                        ))
                    })?;
                    s.len()
                }
                _ => {
                    return Err(QueueError::InvalidParameterValue(format!(
                        "Message (user) attribute '{name}' must contain a non-empty value of type '{}'.",
                        value.data_type
                    )))
                }
            },
        };
        size += name.len() + value.data_type.len() + value_len;
    }
    Ok(size)
}

/// Checks a delay, seconds.
pub(crate) fn validate_delay(delay: u32) -> Result<(), QueueError> {
    if delay > 900 {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
        )));
    }
    Ok(())
}

/// Checks a visibility timeout, seconds.
pub(crate) fn validate_visibility(timeout: u32) -> Result<(), QueueError> {
    if timeout > 43_200 {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 and <= 43200, if provided."
        )));
    }
    Ok(())
}

/// Checks a batch's shape: 1 to 10 entries with distinct, well-formed ids.
pub(crate) fn validate_batch<'a>(
    ids: impl ExactSizeIterator<Item = &'a str>,
    entry_kind: &'static str,
) -> Result<(), QueueError> {
    let n = ids.len();
    if n == 0 {
        return Err(QueueError::EmptyBatchRequest(entry_kind));
    }
    if n > 10 {
        return Err(QueueError::TooManyEntriesInBatchRequest(n));
    }
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if id.is_empty()
            || id.len() > 80
            || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(QueueError::InvalidBatchEntryId);
        }
        if !seen.insert(id) {
            return Err(QueueError::BatchEntryIdsNotDistinct(id.to_owned()));
        }
    }
    Ok(())
}

/// What a receipt handle names: one receive of one message of one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Receipt {
    pub(crate) queue: QueueId,
    pub(crate) seq: i64,
    pub(crate) token: String,
}

impl Receipt {
    /// The opaque handle clients see.
    pub(crate) fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{}:{}:{}", self.queue, self.seq, self.token))
    }

    /// Reads a handle back.
    pub(crate) fn decode(handle: &str) -> Result<Self, QueueError> {
        let invalid = || {
            QueueError::ReceiptHandleIsInvalid(format!(
                "The input receipt handle \"{handle}\" is not a valid receipt handle."
            ))
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(handle.trim())
            .map_err(|_| invalid())?;
        let text = String::from_utf8(raw).map_err(|_| invalid())?;
        let mut parts = text.splitn(3, ':');
        let queue = parts.next().and_then(|p| p.parse().ok()).ok_or_else(invalid)?;
        let seq = parts.next().and_then(|p| p.parse().ok()).ok_or_else(invalid)?;
        let token = parts.next().filter(|t| !t.is_empty()).ok_or_else(invalid)?.to_owned();
        Ok(Self { queue, seq, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipts_round_trip_and_reject_garbage() {
        let r = Receipt { queue: 3, seq: 42, token: "abc".into() };
        assert_eq!(Receipt::decode(&r.encode()).unwrap(), r);
        for bad in ["", "not-a-handle", "bm9wZQ", "MTox"] {
            assert!(
                matches!(Receipt::decode(bad), Err(QueueError::ReceiptHandleIsInvalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn bodies_and_attributes() {
        assert!(validate_body("ok\n\t").is_ok());
        assert!(matches!(validate_body("a\u{1}b"), Err(QueueError::InvalidMessageContents(_))));
        assert!(matches!(validate_body(""), Err(QueueError::MissingParameter(_))));
        let mut attrs = BTreeMap::new();
        attrs.insert("n".to_owned(), MessageAttributeValue::string("Number.int", "12"));
        assert_eq!(validate_attributes(&attrs).unwrap(), 1 + 10 + 2);
        attrs.insert("AWS.x".to_owned(), MessageAttributeValue::string("String", "v"));
        assert!(validate_attributes(&attrs).is_err());
        let mut attrs = BTreeMap::new();
        attrs.insert("n".to_owned(), MessageAttributeValue::string("Number", "abc"));
        assert!(validate_attributes(&attrs).is_err());
        let mut attrs = BTreeMap::new();
        attrs.insert("b".to_owned(), MessageAttributeValue::string("Binary", "abc"));
        assert!(validate_attributes(&attrs).is_err());
    }

    #[test]
    fn batches() {
        assert!(validate_batch(["a", "b"].into_iter(), "x").is_ok());
        assert!(matches!(
            validate_batch([].into_iter(), "x"),
            Err(QueueError::EmptyBatchRequest(_))
        ));
        assert!(matches!(
            validate_batch(["a", "a"].into_iter(), "x"),
            Err(QueueError::BatchEntryIdsNotDistinct(_))
        ));
        assert!(matches!(
            validate_batch(["a b"].into_iter(), "x"),
            Err(QueueError::InvalidBatchEntryId)
        ));
        let many: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        assert!(matches!(
            validate_batch(many.iter().map(String::as_str), "x"),
            Err(QueueError::TooManyEntriesInBatchRequest(11))
        ));
    }
}

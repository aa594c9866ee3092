//! Queue attributes: which names are settable, their ranges and defaults, the
//! `RedrivePolicy` document, and [`QueueConfig`], the typed view the engine works with.

use std::collections::BTreeMap;

use crate::QueueError;

/// Default `MaximumMessageSize`, bytes.
pub const DEFAULT_MAX_MESSAGE_SIZE: u32 = 262_144;

/// Integer attributes: name, smallest, largest, default.
const NUMERIC: &[(&str, u32, u32, u32)] = &[
    ("DelaySeconds", 0, 900, 0),
    ("MaximumMessageSize", 1024, 1_048_576, DEFAULT_MAX_MESSAGE_SIZE),
    ("MessageRetentionPeriod", 60, 1_209_600, 345_600),
    ("ReceiveMessageWaitTimeSeconds", 0, 20, 0),
    ("VisibilityTimeout", 0, 43_200, 30),
];

/// Attributes stored as given and shown back, without effect here.
const STORED: &[&str] = &[
    "Policy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
];

/// Read-only attributes computed on request.
pub(crate) const COMPUTED: &[&str] = &[
    "QueueArn",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
];

/// The typed settings of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Seconds a received message stays invisible.
    pub visibility_timeout: u32,
    /// Seconds a message is kept.
    pub retention: u32,
    /// Default delay of new messages, seconds.
    pub delay: u32,
    /// Default long-poll wait of a receive, seconds.
    pub receive_wait: u32,
    /// Largest message (body plus attributes), bytes.
    pub max_message_size: u32,
    /// The dead-letter rule.
    pub redrive: Option<RedrivePolicy>,
}

/// A parsed `RedrivePolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedrivePolicy {
    /// The dead-letter queue's ARN.
    pub dead_letter_target_arn: String,
    /// Receives before a message moves there.
    pub max_receive_count: u32,
}

impl QueueConfig {
    /// The typed view of stored (already validated) attributes; defaults fill the gaps.
    pub fn from_attributes(attributes: &BTreeMap<String, String>) -> Self {
        let num = |name: &str| {
            let default = NUMERIC.iter().find(|n| n.0 == name).map_or(0, |n| n.3);
            attributes.get(name).and_then(|v| v.parse().ok()).unwrap_or(default)
        };
        Self {
            visibility_timeout: num("VisibilityTimeout"),
            retention: num("MessageRetentionPeriod"),
            delay: num("DelaySeconds"),
            receive_wait: num("ReceiveMessageWaitTimeSeconds"),
            max_message_size: num("MaximumMessageSize"),
            redrive: attributes.get("RedrivePolicy").and_then(|p| parse_redrive(p).ok()),
        }
    }
}

/// Every settable attribute with its effective value (defaults included).
pub(crate) fn effective(attributes: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = NUMERIC
        .iter()
        .map(|(name, _, _, default)| ((*name).to_owned(), default.to_string()))
        .collect();
    out.insert("SqsManagedSseEnabled".into(), "false".into());
    out.extend(attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

/// Validates attributes a client sets and returns them normalised; `creating` allows
/// `FifoQueue=false`. An empty `RedrivePolicy` means "remove" and stays empty.
pub(crate) fn validate(
    given: &BTreeMap<String, String>,
    creating: bool,
    dead_letter_exists: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>, QueueError> {
    let mut out = BTreeMap::new();
    for (name, value) in given {
        let invalid = || {
            QueueError::InvalidAttributeValue(format!("Invalid value for the parameter {name}."))
        };
        if let Some((_, min, max, _)) = NUMERIC.iter().find(|n| n.0 == name) {
            let n: u32 = value.trim().parse().map_err(|_| invalid())?;
            if n < *min || n > *max {
                return Err(invalid());
            }
            out.insert(name.clone(), n.to_string());
        } else if name == "RedrivePolicy" {
            if value.is_empty() {
                out.insert(name.clone(), String::new());
                continue;
            }
            let policy = parse_redrive(value).map_err(|reason| {
                QueueError::InvalidParameterValue(format!(
                    "Value {value} for parameter RedrivePolicy is invalid. Reason: {reason}"
                ))
            })?;
            if !dead_letter_exists(&policy.dead_letter_target_arn) {
                return Err(QueueError::InvalidParameterValue(format!(
                    "Value {value} for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist."
                )));
            }
            out.insert(
                name.clone(),
                serde_json::json!({
                    "deadLetterTargetArn": policy.dead_letter_target_arn,
                    "maxReceiveCount": policy.max_receive_count,
                })
                .to_string(),
            );
        } else if name == "RedriveAllowPolicy" || name == "Policy" {
            if !value.is_empty()
                && serde_json::from_str::<serde_json::Value>(value).map_or(true, |v| !v.is_object())
            {
                return Err(invalid());
            }
            out.insert(name.clone(), value.clone());
        } else if STORED.contains(&name.as_str()) {
            out.insert(name.clone(), value.clone());
        } else if name == "FifoQueue" && creating {
            if value.eq_ignore_ascii_case("true") {
                return Err(QueueError::Unsupported(
                    "FIFO queues are not supported by Alonzo yet.".into(),
                ));
            }
            if !value.eq_ignore_ascii_case("false") {
                return Err(invalid());
            }
        } else {
            return Err(QueueError::InvalidAttributeName(format!("Unknown Attribute {name}.")));
        }
    }
    Ok(out)
}

/// Parses a `RedrivePolicy` document; `maxReceiveCount` may be a number or a numeric
/// string, as SQS accepts both.
pub fn parse_redrive(text: &str) -> Result<RedrivePolicy, String> {
    let doc: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| "Redrive policy is not a valid JSON map.".to_owned())?;
    let arn = doc
        .get("deadLetterTargetArn")
        .and_then(|v| v.as_str())
        .ok_or("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")?;
    let count = match doc.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        None => {
            return Err(
                "Redrive policy does not contain mandatory attribute: maxReceiveCount.".into()
            )
        }
        _ => None,
    }
    .filter(|n| (1..=1000).contains(n))
    .ok_or("Invalid value for maxReceiveCount: must be an integer from 1 to 1000.")?;
    Ok(RedrivePolicy { dead_letter_target_arn: arn.to_owned(), max_receive_count: count as u32 })
}

/// Checks a queue name: 1 to 80 letters, digits, hyphens and underscores (`.fifo` names are
/// FIFO queues, not supported yet).
pub(crate) fn validate_name(name: &str) -> Result<(), QueueError> {
    if name.ends_with(".fifo") {
        return Err(QueueError::Unsupported("FIFO queues are not supported by Alonzo yet.".into()));
    }
    let ok = !name.is_empty()
        && name.len() <= 80
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidParameterValue(
            "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
                .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn ranges_defaults_and_names() {
        let ok = validate(&attrs(&[("VisibilityTimeout", "5")]), true, |_| true).unwrap();
        assert_eq!(QueueConfig::from_attributes(&ok).visibility_timeout, 5);
        assert_eq!(QueueConfig::from_attributes(&BTreeMap::new()).retention, 345_600);
        assert!(matches!(
            validate(&attrs(&[("VisibilityTimeout", "43201")]), true, |_| true),
            Err(QueueError::InvalidAttributeValue(_))
        ));
        assert!(matches!(
            validate(&attrs(&[("Bogus", "1")]), true, |_| true),
            Err(QueueError::InvalidAttributeName(_))
        ));
        assert!(matches!(
            validate(&attrs(&[("QueueArn", "x")]), false, |_| true),
            Err(QueueError::InvalidAttributeName(_))
        ));
        assert!(validate_name("a-b_C9").is_ok());
        assert!(validate_name("a.b").is_err() && validate_name("").is_err());
        assert!(validate_name(&"x".repeat(81)).is_err());
    }

    #[test]
    fn redrive_policies() {
        let p =
            parse_redrive(r#"{"deadLetterTargetArn":"arn:aws:sqs:r:1:d","maxReceiveCount":"3"}"#)
                .unwrap();
        assert_eq!(p.max_receive_count, 3);
        assert!(parse_redrive(r#"{"deadLetterTargetArn":"a","maxReceiveCount":0}"#).is_err());
        assert!(parse_redrive(r#"{"maxReceiveCount":1}"#).is_err());
        let normalised = validate(
            &attrs(&[("RedrivePolicy", r#"{"maxReceiveCount":2,"deadLetterTargetArn":"arn:d"}"#)]),
            false,
            |arn| arn == "arn:d",
        )
        .unwrap();
        assert_eq!(
            normalised["RedrivePolicy"],
            r#"{"deadLetterTargetArn":"arn:d","maxReceiveCount":2}"#
        );
        assert!(validate(
            &attrs(&[("RedrivePolicy", r#"{"maxReceiveCount":2,"deadLetterTargetArn":"arn:x"}"#)]),
            false,
            |arn| arn == "arn:d"
        )
        .is_err());
    }
}

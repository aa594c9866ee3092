//! SQS JSON inputs: the `AmazonSQS.*` request bodies of `SendMessage`/`SendMessageBatch`
//! (`alonzo-api`'s `sqs.rs`), and the queue engine's checks of client input
//! (`alonzo-queue`: queue attributes, message bodies and attributes, receipt handles).
//!
//! Properties: nothing panics; a decoded binary attribute re-encodes to the base64 sent;
//! attribute validation is idempotent (validating its own output gives it back) and the
//! typed view of validated attributes agrees with them; receipt handles round-trip, and a
//! client's handle that decodes names what re-encoding it names.

use std::collections::BTreeMap;

use alonzo_queue::fuzzing;
use alonzo_queue::{md5_of_attributes, md5_of_body, QueueConfig};

use crate::input::{number, sections, text};

/// Sections: an `AmazonSQS.*` JSON body, queue attributes (`Name=value` lines), `create` or
/// `set`, a receipt handle, and `queue:seq:token` for a handle to build.
#[derive(Debug)]
struct Input {
    body: Vec<u8>,
    attributes: BTreeMap<String, String>,
    creating: bool,
    handle: String,
    receipt: (i64, i64, String),
}

/// The fuzz target's body.
pub fn run(data: &[u8]) {
    let s = sections(data, 5);
    let receipt = text(s[4]);
    let mut parts = receipt.splitn(3, ':');
    let input = Input {
        body: s[0].to_vec(),
        attributes: text(s[1])
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect(),
        creating: s[2] == b"create",
        handle: text(s[3]),
        receipt: (
            parts.next().map_or(0, |p| number(p.as_bytes()) as i64),
            parts.next().map_or(0, |p| number(p.as_bytes()) as i64),
            parts.next().unwrap_or("").to_owned(),
        ),
    };
    if let Ok(messages) = alonzo_api::fuzzing::decode_sqs_send(&input.body) {
        for message in messages {
            let _ = fuzzing::validate_body(&message.body);
            let _ = md5_of_body(&message.body);
            if fuzzing::validate_attributes(&message.message_attributes).is_ok() {
                let _ = md5_of_attributes(&message.message_attributes);
            }
        }
    }
    attributes(&input.attributes, input.creating);
    receipts(&input);
}

fn attributes(given: &BTreeMap<String, String>, creating: bool) {
    let Ok(valid) = fuzzing::validate_queue_attributes(given, creating) else { return };
    let again = fuzzing::validate_queue_attributes(&valid, creating)
        .unwrap_or_else(|e| panic!("validated attributes are refused: {e:?} ({valid:?})"));
    assert_eq!(again, valid, "validation is not idempotent");
    let config = QueueConfig::from_attributes(&valid);
    if let Some(v) = valid.get("VisibilityTimeout") {
        assert_eq!(v.parse::<u32>().ok(), Some(config.visibility_timeout));
    }
    if let Some(policy) = valid.get("RedrivePolicy").filter(|p| !p.is_empty()) {
        assert!(config.redrive.is_some(), "a validated RedrivePolicy {policy:?} is unreadable");
    }
}

fn receipts(input: &Input) {
    let (queue, seq, token) = &input.receipt;
    if !token.is_empty() {
        let handle = fuzzing::encode_receipt(*queue, *seq, token);
        let decoded = fuzzing::decode_receipt(&handle).expect("our own handle decodes");
        assert_eq!(decoded, (*queue, *seq, token.clone()));
    }
    if let Ok((queue, seq, token)) = fuzzing::decode_receipt(&input.handle) {
        let handle = fuzzing::encode_receipt(queue, seq, &token);
        assert_eq!(fuzzing::decode_receipt(&handle).ok(), Some((queue, seq, token)));
    }
}

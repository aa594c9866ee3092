//! Lambda's JSON request bodies (`alonzo-api`'s `wire.rs` through the handlers' decoding):
//! `CreateFunction`, `UpdateFunctionConfiguration`, `UpdateFunctionCode`, `TagResource`.
//!
//! Properties: any body decodes or is refused with a Lambda-shaped 4xx (never a 5xx, never
//! a panic); an accepted integer member is never narrowed below the model's minimum; a
//! decoded `ZipFile` re-encodes to the base64 that was sent.

use base64::Engine;

use crate::input::sections;

const OPERATIONS: [&[u8]; 4] =
    [b"CreateFunction", b"UpdateFunctionConfiguration", b"UpdateFunctionCode", b"TagResource"];

struct Input {
    body: Vec<u8>,
}

/// The fuzz target's body. Sections: the operation's name, the body.
pub fn run(data: &[u8]) {
    let s = sections(data, 2);
    let op = (OPERATIONS.iter().position(|o| *o == s[0]).unwrap_or(s[0].len()) % 4) as u8;
    let input = Input { body: s[1].to_vec() };
    let outcome = alonzo_api::fuzzing::decode_lambda_body(op, &input.body);
    if let Some((status, kind)) = &outcome.error {
        assert!((400..500).contains(status), "a body was refused with {status} {kind}");
        assert!(kind.ends_with("Exception"), "error type {kind:?}");
    }
    if let Some(patch) = &outcome.patch {
        assert!(patch.timeout.is_none_or(|t| t >= 1));
        assert!(patch.memory_size.is_none_or(|m| m >= 128));
        assert!(patch.ephemeral_storage.is_none_or(|e| e >= 512));
    }
    if let Some(zip) = &outcome.zip {
        // The wire sends `Code.ZipFile` for CreateFunction and `ZipFile` for UpdateFunctionCode.
        // serde_json skips unknown members without checking that their strings are UTF-8,
        // so an accepted body is not always a valid JSON document (see docs/fuzzing.md).
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&input.body) else { return };
        let sent = match op {
            0 => doc.get("Code").and_then(|c| c.get("ZipFile")),
            _ => doc.get("ZipFile"),
        };
        let sent = sent.and_then(|z| z.as_str()).expect("a ZipFile member");
        let again = base64::engine::general_purpose::STANDARD.encode(zip);
        assert_eq!(again, sent.trim(), "ZipFile does not round-trip");
    }
}

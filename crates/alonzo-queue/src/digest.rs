//! The MD5 digests SQS returns and clients (the Java and .NET SDKs, some others) verify:
//! of the body, and of the message attributes in SQS's own length-prefixed encoding.

use std::collections::BTreeMap;

use alonzo_store::queue::MessageAttributeValue;
use md5::{Digest, Md5};

/// Hex MD5 of a message body's UTF-8 bytes (`MD5OfMessageBody`, `MD5OfBody`).
pub fn md5_of_body(body: &str) -> String {
    hex(&Md5::digest(body.as_bytes()))
}

/// Hex MD5 of message attributes as SQS computes it (`MD5OfMessageAttributes`), or `None`
/// when there are none: attributes sorted by name; for each, the name, the data type, a
/// transport byte (1 for string and number values, 2 for binary) and the value, every field
/// but the transport byte preceded by its byte length as a 4-byte big-endian integer.
pub fn md5_of_attributes(attributes: &BTreeMap<String, MessageAttributeValue>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut md5 = Md5::new();
    let field = |md5: &mut Md5, bytes: &[u8]| {
        md5.update((bytes.len() as u32).to_be_bytes());
        md5.update(bytes);
    };
    for (name, value) in attributes {
        field(&mut md5, name.as_bytes());
        field(&mut md5, value.data_type.as_bytes());
        match (&value.binary_value, &value.string_value) {
            (Some(b), _) => {
                md5.update([2u8]);
                field(&mut md5, b);
            }
            (None, s) => {
                md5.update([1u8]);
                field(&mut md5, s.as_deref().unwrap_or("").as_bytes());
            }
        }
    }
    Some(hex(&md5.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_digest() {
        assert_eq!(md5_of_body("hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn attribute_digest_matches_sqs() {
        // Reference: an independent Python implementation of SQS's documented algorithm
        // (tests/test_sqs.py::expected_attributes_md5) gives the same digest.
        let mut attrs = BTreeMap::new();
        attrs.insert("b".to_owned(), MessageAttributeValue::binary("Binary", vec![1, 2, 3]));
        attrs.insert("a".to_owned(), MessageAttributeValue::string("String", "x"));
        let mut manual = Vec::new();
        for (n, t, k, v) in [("a", "String", 1u8, &b"x"[..]), ("b", "Binary", 2, &[1, 2, 3][..])] {
            for f in [n.as_bytes(), t.as_bytes()] {
                manual.extend_from_slice(&(f.len() as u32).to_be_bytes());
                manual.extend_from_slice(f);
            }
            manual.push(k);
            manual.extend_from_slice(&(v.len() as u32).to_be_bytes());
            manual.extend_from_slice(v);
        }
        assert_eq!(md5_of_attributes(&attrs), Some(hex(&Md5::digest(&manual))));
        assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
    }
}

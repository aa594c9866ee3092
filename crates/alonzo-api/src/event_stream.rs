//! The `application/vnd.amazon.eventstream` framing of `InvokeWithResponseStream`: each
//! message is a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes), the
//! headers, the payload and a CRC32 of everything before it, all big-endian.
//!
//! Only what Lambda sends is encoded: string headers (`:message-type`, `:event-type`,
//! `:content-type`) and raw payloads. The CRC is CRC-32 (IEEE), computed by `crc32fast`,
//! which the workspace already depends on through `zip`'s deflate code.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of a message around its headers and payload: prelude (12) and message CRC (4).
const OVERHEAD: usize = 16;
/// Header value type `string` (2-byte length, then UTF-8).
const TYPE_STRING: u8 = 7;

/// Encodes one message with string headers.
pub(crate) fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let headers_len: usize = headers.iter().map(|(n, v)| 1 + n.len() + 1 + 2 + v.len()).sum();
    let total = OVERHEAD + headers_len + payload.len();
    let mut out = BytesMut::with_capacity(total);
    // Lengths are bounded by the stream limit (200 MiB) and header names/values we choose.
    out.put_u32(u32::try_from(total).unwrap_or(u32::MAX));
    out.put_u32(u32::try_from(headers_len).unwrap_or(u32::MAX));
    out.put_u32(crc32fast::hash(&out[..8]));
    for (name, value) in headers {
        out.put_u8(u8::try_from(name.len()).unwrap_or(u8::MAX));
        out.put_slice(name.as_bytes());
        out.put_u8(TYPE_STRING);
        out.put_u16(u16::try_from(value.len()).unwrap_or(u16::MAX));
        out.put_slice(value.as_bytes());
    }
    out.put_slice(payload);
    let crc = crc32fast::hash(&out);
    out.put_u32(crc);
    out.freeze()
}

/// Largest payload of one `PayloadChunk` message; bigger chunks are split (the AWS SDKs
/// refuse messages over 16 MiB).
pub(crate) const MAX_CHUNK: usize = 1 << 20;

/// A `PayloadChunk` event carrying `chunk`.
pub(crate) fn payload_chunk(chunk: &[u8]) -> Bytes {
    encode(
        &[
            (":event-type", "PayloadChunk"),
            (":content-type", "application/octet-stream"),
            (":message-type", "event"),
        ],
        chunk,
    )
}

/// The closing `InvokeComplete` event: no `ErrorCode` means success.
pub(crate) fn invoke_complete(
    error_code: Option<&str>,
    error_details: Option<&str>,
    log_result: Option<&str>,
) -> Bytes {
    let mut doc = serde_json::Map::new();
    if let Some(code) = error_code {
        doc.insert("ErrorCode".into(), code.into());
    }
    if let Some(details) = error_details {
        doc.insert("ErrorDetails".into(), details.into());
    }
    if let Some(log) = log_result {
        doc.insert("LogResult".into(), log.into());
    }
    encode(
        &[
            (":event-type", "InvokeComplete"),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        serde_json::Value::Object(doc).to_string().as_bytes(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A decoded message.
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct Message {
        pub(crate) headers: Vec<(String, String)>,
        pub(crate) payload: Vec<u8>,
    }

    impl Message {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    fn be32(b: &[u8]) -> u32 {
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Decodes every message of `buf`, checking lengths and both CRCs.
    pub(crate) fn decode_all(mut buf: &[u8]) -> Result<Vec<Message>, String> {
        let mut out = Vec::new();
        while !buf.is_empty() {
            if buf.len() < OVERHEAD {
                return Err("short prelude".into());
            }
            let total = be32(&buf[0..4]) as usize;
            let headers_len = be32(&buf[4..8]) as usize;
            if crc32fast::hash(&buf[..8]) != be32(&buf[8..12]) {
                return Err("prelude CRC mismatch".into());
            }
            if total > buf.len() || total < OVERHEAD + headers_len {
                return Err("bad total length".into());
            }
            let message = &buf[..total];
            if crc32fast::hash(&message[..total - 4]) != be32(&message[total - 4..]) {
                return Err("message CRC mismatch".into());
            }
            let mut h = &message[12..12 + headers_len];
            let mut headers = Vec::new();
            while !h.is_empty() {
                let name_len = h[0] as usize;
                let name =
                    String::from_utf8(h[1..1 + name_len].to_vec()).map_err(|e| e.to_string())?;
                h = &h[1 + name_len..];
                if h[0] != TYPE_STRING {
                    return Err(format!("unexpected header type {}", h[0]));
                }
                let value_len = u16::from_be_bytes([h[1], h[2]]) as usize;
                let value =
                    String::from_utf8(h[3..3 + value_len].to_vec()).map_err(|e| e.to_string())?;
                h = &h[3 + value_len..];
                headers.push((name, value));
            }
            let payload = message[12 + headers_len..total - 4].to_vec();
            out.push(Message { headers, payload });
            buf = &buf[total..];
        }
        Ok(out)
    }

    #[test]
    fn empty_message_matches_the_reference_vector() {
        // aws-c-event-stream's "empty message" test vector.
        let expected = [
            0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98,
            0xc8, 0xff,
        ];
        assert_eq!(&encode(&[], &[])[..], &expected);
    }

    #[test]
    fn frames_round_trip_through_the_decoder() {
        let mut stream = BytesMut::new();
        stream.extend_from_slice(&payload_chunk(b"hello "));
        stream.extend_from_slice(&payload_chunk(&[0, 159, 146, 150, 255]));
        stream.extend_from_slice(&payload_chunk(b""));
        stream.extend_from_slice(&invoke_complete(None, None, Some("bG9n")));
        let messages = decode_all(&stream).expect("decodes");
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0].payload, b"hello ");
        assert_eq!(messages[0].header(":event-type"), Some("PayloadChunk"));
        assert_eq!(messages[0].header(":message-type"), Some("event"));
        assert_eq!(messages[0].header(":content-type"), Some("application/octet-stream"));
        assert_eq!(messages[1].payload, [0, 159, 146, 150, 255]);
        assert!(messages[2].payload.is_empty());
        assert_eq!(messages[3].header(":event-type"), Some("InvokeComplete"));
        assert_eq!(messages[3].header(":content-type"), Some("application/json"));
        let doc: serde_json::Value = serde_json::from_slice(&messages[3].payload).expect("json");
        assert_eq!(doc, serde_json::json!({ "LogResult": "bG9n" }));
    }

    #[test]
    fn a_failed_invocation_names_its_error() {
        let frame = invoke_complete(Some("Runtime.StreamError"), Some("boom"), None);
        let messages = decode_all(&frame).expect("decodes");
        let doc: serde_json::Value = serde_json::from_slice(&messages[0].payload).expect("json");
        assert_eq!(
            doc,
            serde_json::json!({ "ErrorCode": "Runtime.StreamError", "ErrorDetails": "boom" })
        );
    }

    #[test]
    fn corruption_is_detected() {
        let mut frame = payload_chunk(b"data").to_vec();
        let last = frame.len() - 6;
        frame[last] ^= 1;
        assert_eq!(decode_all(&frame), Err("message CRC mismatch".into()));
        let mut frame = payload_chunk(b"data").to_vec();
        frame[3] ^= 1;
        assert_eq!(decode_all(&frame), Err("prelude CRC mismatch".into()));
    }
}

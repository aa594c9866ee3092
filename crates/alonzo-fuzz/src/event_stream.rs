//! The `application/vnd.amazon.eventstream` framing of `InvokeWithResponseStream`
//! (`alonzo-api`'s `event_stream.rs`), checked by an independent decoder.
//!
//! Properties: any chunks and `InvokeComplete` fields encode into messages whose lengths and
//! both CRC-32s are right, whose headers are the three Lambda sends, whose `PayloadChunk`
//! payloads are the chunks in order, and whose `InvokeComplete` payload is JSON holding
//! exactly the fields given.

use crate::input::{optional, sections};

struct Input {
    error_code: Option<String>,
    error_details: Option<String>,
    log_result: Option<String>,
}

/// The fuzz target's body. Sections: `ErrorCode`, `ErrorDetails`, `LogResult` (absent when
/// empty), then one section per chunk.
pub fn run(data: &[u8]) {
    let s = sections(data, 19);
    let input = Input {
        error_code: optional(s[0]),
        error_details: optional(s[1]),
        log_result: optional(s[2]),
    };
    let last = s[3..].iter().rposition(|c| !c.is_empty()).map_or(0, |i| i + 1);
    let chunks: Vec<&[u8]> = s[3..3 + last].to_vec();
    let (code, details, log) =
        (input.error_code.as_deref(), input.error_details.as_deref(), input.log_result.as_deref());
    let stream = alonzo_api::fuzzing::event_stream(&chunks, code, details, log);
    let messages = decode_all(&stream).unwrap_or_else(|e| panic!("undecodable stream: {e}"));
    assert_eq!(messages.len(), chunks.len() + 1);
    for (message, chunk) in messages.iter().zip(&chunks) {
        assert_eq!(message.event_type(), Some("PayloadChunk"));
        assert_eq!(&message.payload, chunk);
    }
    let last = messages.last().expect("InvokeComplete");
    assert_eq!(last.event_type(), Some("InvokeComplete"));
    let doc: serde_json::Value = serde_json::from_slice(&last.payload).expect("JSON");
    assert_eq!(doc, alonzo_api::fuzzing::invoke_complete_doc(code, details, log));
}

struct Message {
    headers: Vec<(String, String)>,
    payload: Vec<u8>,
}

impl Message {
    fn event_type(&self) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == ":event-type").map(|(_, v)| v.as_str())
    }
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

fn decode_all(mut buf: &[u8]) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.len() < 16 {
            return Err("short prelude".into());
        }
        let (total, headers_len) = (be32(&buf[0..4]), be32(&buf[4..8]));
        if crc32fast::hash(&buf[..8]) as usize != be32(&buf[8..12]) {
            return Err("prelude CRC".into());
        }
        if total > buf.len() || total < 16 + headers_len {
            return Err("lengths".into());
        }
        let message = &buf[..total];
        if crc32fast::hash(&message[..total - 4]) as usize != be32(&message[total - 4..]) {
            return Err("message CRC".into());
        }
        let mut h = &message[12..12 + headers_len];
        let mut headers = Vec::new();
        while !h.is_empty() {
            let name_len = usize::from(h[0]);
            let name = String::from_utf8(h.get(1..1 + name_len).ok_or("name")?.to_vec())
                .map_err(|e| e.to_string())?;
            h = &h[1 + name_len..];
            if h.first() != Some(&7) || h.len() < 3 {
                return Err("header type".into());
            }
            let value_len = usize::from(u16::from_be_bytes([h[1], h[2]]));
            let value = String::from_utf8(h.get(3..3 + value_len).ok_or("value")?.to_vec())
                .map_err(|e| e.to_string())?;
            h = &h[3 + value_len..];
            headers.push((name, value));
        }
        out.push(Message { headers, payload: message[12 + headers_len..total - 4].to_vec() });
        buf = &buf[total..];
    }
    Ok(out)
}

//! EventBridge filter patterns (`alonzo_model::EventPattern`): parsing and matching.
//!
//! Properties: any pattern text parses or is refused, any record matches or not, without
//! panicking; `matches_any` is the OR of `matches`; and a pattern built from a record (each
//! scalar field as a one-value leaf, each scalar array as its values, nested objects as
//! nested patterns) is accepted and matches that record, while `anything-but` its value
//! does not.

use alonzo_model::{matches_any, sqs_record_view, EventPattern};
use serde_json::{json, Map, Value};

use crate::input::{sections, text};

/// The fuzz target's body. Sections: the pattern, the record (JSON).
pub fn run(data: &[u8]) {
    let s = sections(data, 2);
    let record: Option<Value> = serde_json::from_slice(s[1]).ok();
    let parsed = EventPattern::parse(&text(s[0]));
    if let (Ok(pattern), Some(record)) = (&parsed, &record) {
        let direct = pattern.matches(record);
        assert_eq!(matches_any(std::slice::from_ref(pattern), record), direct);
        let _ = pattern.matches(&sqs_record_view(record));
    }
    if let Some(Value::Object(fields)) = &record {
        derived(fields, record.as_ref().expect("an object"));
    }
}

/// The pattern that names every field of `record` with its own value(s).
fn pattern_of(fields: &Map<String, Value>, depth: usize) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in fields {
        if key == "$or" || depth > 16 {
            continue;
        }
        let leaf = match value {
            Value::Object(inner) => {
                let nested = pattern_of(inner, depth + 1);
                if nested.is_empty() {
                    continue;
                }
                Value::Object(nested)
            }
            Value::Array(items) if !items.is_empty() && items.iter().all(is_scalar) => {
                value.clone()
            }
            Value::Array(_) => continue,
            scalar => json!([scalar]),
        };
        out.insert(key.clone(), leaf);
    }
    out
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn derived(fields: &Map<String, Value>, record: &Value) {
    let pattern = pattern_of(fields, 0);
    if pattern.is_empty() {
        return;
    }
    let text = Value::Object(pattern).to_string();
    if text.len() > alonzo_model::MAX_PATTERN_LEN {
        return;
    }
    match EventPattern::parse(&text) {
        Ok(p) => assert!(p.matches(record), "{text} does not match the record it came from"),
        Err(e) => panic!("{text} was refused: {e}"),
    }
    // `anything-but` the first string field's own value excludes the record.
    if let Some((key, Value::String(s))) = fields.iter().find(|(k, v)| v.is_string() && *k != "$or")
    {
        let text = json!({ key: [{"anything-but": s}] }).to_string();
        if text.len() <= alonzo_model::MAX_PATTERN_LEN {
            if let Ok(p) = EventPattern::parse(&text) {
                assert!(!p.matches(record), "{text} matches the record it excludes");
            }
        }
    }
}

//! X-Ray trace headers: every invocation carries one (`Lambda-Runtime-Trace-Id`, the
//! runtime's `_X_AMZN_TRACE_ID`); when the caller sent none, one is generated, as Lambda
//! does, and asynchronous retries, destinations and event-source batches carry it on.

/// A fresh trace header, `Root=1-<8 hex epoch seconds>-<24 hex>;Parent=<16 hex>;Sampled=0`.
pub fn new_trace_id() -> String {
    let epoch = chrono::Utc::now().timestamp();
    let root = uuid::Uuid::new_v4().simple().to_string();
    let parent = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{epoch:08x}-{};Parent={};Sampled=0", &root[..24], &parent[..16])
}

/// A fresh trace header without a parent, `Root=1-<8 hex epoch seconds>-<24 hex>;Sampled=0`,
/// for traces whose first span is the platform's own (exported spans).
pub fn new_trace_root() -> String {
    let epoch = chrono::Utc::now().timestamp();
    let root = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{epoch:08x}-{};Sampled=0", &root[..24])
}

/// The trace header of an SQS message (its `AWSTraceHeader` system attribute), if any.
pub(crate) fn from_sqs_attributes(
    attributes: &std::collections::BTreeMap<String, String>,
) -> Option<String> {
    attributes.get("AWSTraceHeader").filter(|v| v.starts_with("Root=")).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_xrays_shape() {
        let id = new_trace_id();
        let parts: Vec<&str> = id.split(';').collect();
        assert_eq!(parts.len(), 3, "{id}");
        let root = parts[0].strip_prefix("Root=1-").unwrap();
        let (time, random) = root.split_once('-').unwrap();
        assert_eq!((time.len(), random.len()), (8, 24));
        assert!(root.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(parts[1].len(), "Parent=".len() + 16);
        assert_eq!(parts[2], "Sampled=0");
        assert_ne!(new_trace_id(), id);
    }
}

//! Platform spans: what the platform did for an invocation (queue wait, initialisation,
//! the invocation itself), as plain data handed to a [`SpanSink`] that exports them (the
//! `alonzo` binary's OpenTelemetry exporter). The trace is the invocation's X-Ray trace:
//! `Root=1-5759e988-bd862e3fe1be46a994272793` is OpenTelemetry trace id
//! `5759e988bd862e3fe1be46a994272793`, and the header's `Parent` is the parent span, as in
//! the AWS X-Ray propagator, so the platform's spans join the caller's trace.

use std::time::{Duration, SystemTime};

use alonzo_model::Account;
use alonzo_sandbox::InvocationReport;

/// Receives finished spans; must not block (exporters batch on their own thread).
pub trait SpanSink: Send + Sync + std::fmt::Debug + 'static {
    /// Takes spans that have ended.
    fn export(&self, spans: Vec<PlatformSpan>);
}

/// What a span describes, in OpenTelemetry's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// The platform serving an invocation.
    Server,
    /// A phase inside it.
    Internal,
    /// An event waiting in the asynchronous queue.
    Consumer,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A flag.
    Bool(bool),
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformSpan {
    /// The trace (16 bytes, from the X-Ray root).
    pub trace_id: [u8; 16],
    /// This span.
    pub span_id: [u8; 8],
    /// The parent span; `None` for a root.
    pub parent_span_id: Option<[u8; 8]>,
    /// Whether the parent is the caller's (from the trace header) rather than the platform's.
    pub parent_is_remote: bool,
    /// Span name.
    pub name: &'static str,
    /// Span kind.
    pub kind: SpanKind,
    /// Start.
    pub start: SystemTime,
    /// End.
    pub end: SystemTime,
    /// Attributes, by OpenTelemetry's FaaS and cloud conventions where one fits.
    pub attributes: Vec<(&'static str, AttributeValue)>,
    /// The error type, when the span failed.
    pub error: Option<String>,
}

/// The trace id and parent span id of an X-Ray trace header
/// (`Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=…`); `None` when the root is malformed.
pub fn xray_ids(header: &str) -> Option<([u8; 16], Option<[u8; 8]>)> {
    let mut root = None;
    let mut parent = None;
    for part in header.split(';') {
        let (key, value) = part.trim().split_once('=')?;
        match key {
            "Root" => {
                let rest = value.strip_prefix("1-")?;
                let (time, random) = rest.split_once('-')?;
                if time.len() != 8 || random.len() != 24 {
                    return None;
                }
                root = Some(hex_array::<16>(&format!("{time}{random}"))?);
            }
            "Parent" => parent = hex_array::<8>(value),
            _ => {}
        }
    }
    let root = root.filter(|r| r.iter().any(|b| *b != 0))?;
    Some((root, parent.filter(|p| p.iter().any(|b| *b != 0))))
}

fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The header the runtime gets when platform spans are exported: the caller's header with
/// `Parent` replaced by a new span id, which becomes the platform's `Invoke` span, so that
/// spans the function records nest under it (on Lambda, the function segment's id). Also
/// returns the caller's `Parent`, the `Invoke` span's own parent. `None` when the header has
/// no usable root (it is then passed on unchanged and no span is recorded).
pub(crate) fn for_runtime(header: &str) -> Option<(String, Option<String>)> {
    let (_, caller) = xray_ids(header)?;
    let own = hex(&new_span_id());
    let mut parts = Vec::new();
    for part in header.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        if part.starts_with("Parent=") {
            continue;
        }
        parts.push(part.to_owned());
        if part.starts_with("Root=") {
            parts.push(format!("Parent={own}"));
        }
    }
    Some((parts.join(";"), caller.map(|c| hex(&c))))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn new_span_id() -> [u8; 8] {
    loop {
        let id: [u8; 8] = rand::random();
        if id != [0; 8] {
            return id;
        }
    }
}

fn ms(value: f64) -> Duration {
    Duration::from_secs_f64(value.max(0.0) / 1000.0)
}

/// The spans of one invocation that ran: `Invoke` (from the start of initialisation, for a
/// cold start, or from the event's delivery, to the end of the invocation), with the phases
/// `Initialization` (cold starts only) and `Invocation` beneath it, the names X-Ray gives
/// Lambda's subsegments. The `Invoke` span's id is the `Parent` of the runtime's header (see
/// [`for_runtime`]); its parent is the caller's. `None` without a usable trace header.
pub(crate) fn invocation_spans(
    report: &InvocationReport,
    account: &Account,
) -> Option<Vec<PlatformSpan>> {
    let (trace_id, own) = xray_ids(report.trace_id.as_deref()?)?;
    let root_id = own?;
    let parent = report.caller_parent.as_deref().and_then(hex_array::<8>);
    let delivered: SystemTime = report.started_at.into();
    let init = report.init_ms.map(ms);
    let start = init.map_or(delivered, |d| delivered.checked_sub(d).unwrap_or(delivered));
    let end = delivered + ms(report.duration_ms);
    let mut attributes = vec![
        ("faas.invocation_id", AttributeValue::Text(report.request_id.clone())),
        ("faas.name", AttributeValue::Text(report.function.clone())),
        ("faas.version", AttributeValue::Text(report.version.clone())),
        ("faas.coldstart", AttributeValue::Bool(init.is_some())),
        ("faas.max_memory", AttributeValue::Int(i64::from(report.memory_mb) * 1024 * 1024)),
        ("cloud.provider", AttributeValue::Text("alonzo".into())),
        ("cloud.region", AttributeValue::Text(account.region.clone())),
        ("cloud.account.id", AttributeValue::Text(account.account_id.clone())),
        (
            "cloud.resource_id",
            AttributeValue::Text(account.qualified_function_arn(&report.function, &report.version)),
        ),
        ("aws.lambda.billed_duration_ms", AttributeValue::Int(report.billed_ms as i64)),
    ];
    if let Some(error) = &report.error_type {
        attributes.push(("error.type", AttributeValue::Text(error.clone())));
    }
    let mut spans = vec![PlatformSpan {
        trace_id,
        span_id: root_id,
        parent_span_id: parent,
        parent_is_remote: parent.is_some(),
        name: "Invoke",
        kind: SpanKind::Server,
        start,
        end,
        attributes,
        error: report.error_type.clone(),
    }];
    let phase = |name, start, end, error: Option<String>| PlatformSpan {
        trace_id,
        span_id: new_span_id(),
        parent_span_id: Some(root_id),
        parent_is_remote: false,
        name,
        kind: SpanKind::Internal,
        start,
        end,
        attributes: vec![("faas.invocation_id", AttributeValue::Text(report.request_id.clone()))],
        error,
    };
    if init.is_some() {
        spans.push(phase("Initialization", start, delivered, None));
    }
    spans.push(phase("Invocation", delivered, end, report.error_type.clone()));
    Some(spans)
}

/// The span of an asynchronous event's wait in the queue, from its acceptance to this
/// attempt's dispatch.
pub(crate) fn queue_span(
    trace_header: Option<&str>,
    request_id: &str,
    function: &str,
    attempt: u32,
    received_ms: i64,
    dispatched_ms: i64,
) -> Option<PlatformSpan> {
    let (trace_id, parent) = xray_ids(trace_header?)?;
    let at =
        |ms: i64| SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    Some(PlatformSpan {
        trace_id,
        span_id: new_span_id(),
        parent_span_id: parent,
        parent_is_remote: parent.is_some(),
        name: "Queued",
        kind: SpanKind::Consumer,
        start: at(received_ms),
        end: at(dispatched_ms.max(received_ms)),
        attributes: vec![
            ("faas.invocation_id", AttributeValue::Text(request_id.to_owned())),
            ("faas.name", AttributeValue::Text(function.to_owned())),
            ("faas.trigger", AttributeValue::Text("pubsub".into())),
            ("alonzo.async.attempt", AttributeValue::Int(i64::from(attempt) + 1)),
        ],
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(trace: Option<&str>, init_ms: Option<f64>) -> InvocationReport {
        let (runtime_header, caller_parent) = trace.and_then(for_runtime).unzip();
        InvocationReport {
            request_id: "req-1".into(),
            function: "f".into(),
            version: "$LATEST".into(),
            duration_ms: 12.5,
            billed_ms: 13,
            memory_mb: 256,
            ephemeral_mb: 512,
            provisioned: false,
            max_memory_used_mb: 30,
            init_ms,
            error_type: None,
            started_at: chrono::DateTime::from_timestamp_millis(1_796_000_000_000).unwrap(),
            trace_id: runtime_header,
            caller_parent: caller_parent.flatten(),
        }
    }

    #[test]
    fn xray_headers_map_to_trace_and_parent_ids() {
        let (trace, parent) =
            xray_ids("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
                .unwrap();
        assert_eq!(hex(&trace), "5759e988bd862e3fe1be46a994272793");
        assert_eq!(hex(&parent.unwrap()), "53995c3f42cd8ad8");
        let (_, none) = xray_ids("Root=1-5759e988-bd862e3fe1be46a994272793").unwrap();
        assert!(none.is_none());
        for bad in [
            "",
            "Parent=53995c3f42cd8ad8",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e98-bd862e3fe1be46a9942727930",
            "Root=1-zz59e988-bd862e3fe1be46a994272793",
            "Root=1-00000000-000000000000000000000000",
            "garbage",
        ] {
            assert!(xray_ids(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_runtime_gets_the_platforms_span_as_parent() {
        let given = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=a:1";
        let (header, caller) = for_runtime(given).unwrap();
        assert_eq!(caller.as_deref(), Some("53995c3f42cd8ad8"));
        let parts: Vec<&str> = header.split(';').collect();
        assert_eq!(parts[0], "Root=1-5759e988-bd862e3fe1be46a994272793");
        assert!(
            parts[1].starts_with("Parent=") && parts[1] != "Parent=53995c3f42cd8ad8",
            "{header}"
        );
        assert_eq!(&parts[2..], ["Sampled=1", "Lineage=a:1"]);
        let (header, caller) =
            for_runtime("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0").unwrap();
        assert!(caller.is_none());
        assert_eq!(header.split(';').count(), 3, "{header}");
        assert!(for_runtime("Root=nonsense").is_none());
    }

    #[test]
    fn a_cold_invocation_has_init_and_invocation_phases_under_one_root() {
        let account = Account { region: "us-east-1".into(), account_id: "000000000000".into() };
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";
        let spans = invocation_spans(&report(Some(header), Some(40.0)), &account).unwrap();
        let names: Vec<_> = spans.iter().map(|s| s.name).collect();
        assert_eq!(names, ["Invoke", "Initialization", "Invocation"]);
        let root = &spans[0];
        assert_eq!(hex(&root.parent_span_id.unwrap()), "53995c3f42cd8ad8");
        assert!(root.parent_is_remote);
        assert_eq!(root.end.duration_since(root.start).unwrap(), Duration::from_micros(52_500));
        for phase in &spans[1..] {
            assert_eq!(phase.parent_span_id, Some(root.span_id));
            assert_eq!(phase.trace_id, root.trace_id);
        }
        assert_eq!(spans[1].start, root.start);
        assert_eq!(spans[1].end, spans[2].start);
        assert_eq!(spans[2].end, root.end);

        let warm = invocation_spans(&report(Some(header), None), &account).unwrap();
        assert_eq!(warm.iter().map(|s| s.name).collect::<Vec<_>>(), ["Invoke", "Invocation"]);
        assert!(invocation_spans(&report(None, None), &account).is_none());
        // The runtime was told the root span's id.
        let r = report(Some(header), None);
        let told = xray_ids(r.trace_id.as_deref().unwrap()).unwrap().1.unwrap();
        assert_eq!(invocation_spans(&r, &account).unwrap()[0].span_id, told);
    }

    #[test]
    fn queue_spans_cover_the_wait() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793";
        let span = queue_span(Some(header), "r", "f", 0, 1_000, 1_250).unwrap();
        assert_eq!(span.end.duration_since(span.start).unwrap(), Duration::from_millis(250));
        assert!(span.parent_span_id.is_none());
        assert!(queue_span(None, "r", "f", 0, 1, 2).is_none());
    }
}

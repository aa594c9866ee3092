//! OpenTelemetry export of platform spans: when an OTLP endpoint is configured, the
//! control plane's [`PlatformSpan`]s (invoke, initialisation, queue wait) are batched and
//! sent over OTLP/HTTP (protobuf or JSON) by the `opentelemetry-otlp` exporter, on the SDK's
//! own export thread, never on the server's.

use std::borrow::Cow;

use alonzo_control::spans::{AttributeValue, PlatformSpan, SpanKind, SpanSink};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind as OtelKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;

use crate::serve::ConfigError;

/// Where and how spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtlpConfig {
    /// The full URL spans are posted to (`…/v1/traces`).
    pub(crate) traces_url: String,
    /// `http/protobuf` or `http/json`.
    pub(crate) protocol: Protocol,
}

/// Reads the export settings: `--otlp-endpoint` (a base URL, to which `/v1/traces` is
/// appended), else OpenTelemetry's own `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (a base); the protocol from `--otlp-protocol`, else
/// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`, else
/// `http/protobuf`. `None`: nothing configured, nothing exported.
pub(crate) fn config(
    endpoint: Option<&str>,
    protocol: Option<&str>,
) -> Result<Option<OtlpConfig>, ConfigError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let base = |url: &str| format!("{}/v1/traces", url.trim_end_matches('/'));
    let traces_url = match endpoint.map(str::trim).filter(|e| !e.is_empty()) {
        Some(url) => Some(("--otlp-endpoint/ALONZO_OTLP_ENDPOINT", base(url))),
        None => env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .map(|url| ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url))
            .or_else(|| {
                env("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .map(|url| ("OTEL_EXPORTER_OTLP_ENDPOINT", base(&url)))
            }),
    };
    let Some((source, traces_url)) = traces_url else { return Ok(None) };
    let uri: http::Uri = traces_url
        .parse()
        .map_err(|_| ConfigError(format!("{source}: {traces_url:?} is not a URL")))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(ConfigError(format!(
            "{source}: {traces_url:?} must be an http:// URL (OTLP over HTTP; https and gRPC are not built in)"
        )));
    }
    let protocol_text = protocol
        .map(str::to_owned)
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into());
    let protocol = match protocol_text.trim() {
        "http/protobuf" => Protocol::HttpBinary,
        "http/json" => Protocol::HttpJson,
        other => {
            return Err(ConfigError(format!(
                "OTLP protocol {other:?}: use http/protobuf or http/json"
            )))
        }
    };
    Ok(Some(OtlpConfig { traces_url, protocol }))
}

/// The exporter: a batch processor over the OTLP HTTP exporter.
#[derive(Debug)]
pub(crate) struct OtlpSink {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

impl OtlpSink {
    /// Builds the exporter; the resource is `service.name` (from `OTEL_SERVICE_NAME`,
    /// default `alonzo`) plus `OTEL_RESOURCE_ATTRIBUTES`.
    pub(crate) fn start(config: &OtlpConfig) -> anyhow::Result<Self> {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(config.traces_url.clone())
            .with_protocol(config.protocol)
            .build()?;
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        let service = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "alonzo".into());
        let resource = Resource::builder()
            .with_service_name(service)
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        processor.set_resource(&resource);
        let scope =
            InstrumentationScope::builder("alonzo").with_version(env!("CARGO_PKG_VERSION")).build();
        tracing::info!(url = %config.traces_url, protocol = ?config.protocol, "exporting platform spans over OTLP");
        Ok(Self { processor, scope })
    }

    /// Sends what is batched and stops the export thread (at shutdown).
    pub(crate) fn shutdown(&self) {
        if let Err(e) = self.processor.shutdown() {
            tracing::warn!(error = %e, "flushing OTLP spans at shutdown failed");
        }
    }

    fn to_span_data(&self, span: PlatformSpan) -> SpanData {
        let trace_id = TraceId::from_bytes(span.trace_id);
        let context = SpanContext::new(
            trace_id,
            SpanId::from_bytes(span.span_id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let attributes = span
            .attributes
            .into_iter()
            .map(|(key, value)| match value {
                AttributeValue::Text(v) => KeyValue::new(key, v),
                AttributeValue::Int(v) => KeyValue::new(key, v),
                AttributeValue::Bool(v) => KeyValue::new(key, v),
            })
            .collect();
        SpanData {
            span_context: context,
            parent_span_id: span.parent_span_id.map_or(SpanId::INVALID, SpanId::from_bytes),
            parent_span_is_remote: span.parent_is_remote,
            span_kind: match span.kind {
                SpanKind::Server => OtelKind::Server,
                SpanKind::Internal => OtelKind::Internal,
                SpanKind::Consumer => OtelKind::Consumer,
            },
            name: Cow::Borrowed(span.name),
            start_time: span.start,
            end_time: span.end,
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: span.error.map_or(Status::Unset, Status::error),
            instrumentation_scope: self.scope.clone(),
        }
    }
}

impl SpanSink for OtlpSink {
    fn export(&self, spans: Vec<PlatformSpan>) {
        for span in spans {
            // The processor queues and returns at once (dropping spans, with a count, when
            // its queue is full); the export happens on its thread.
            self.processor.on_end(self.to_span_data(span));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_protocols_are_checked() {
        let c = config(Some("http://127.0.0.1:4318/"), None).unwrap().unwrap();
        assert_eq!(c.traces_url, "http://127.0.0.1:4318/v1/traces");
        let c = config(Some("http://127.0.0.1:4318"), Some("http/json")).unwrap().unwrap();
        assert_eq!(c.protocol, Protocol::HttpJson);
        assert!(config(Some("https://collector:4318"), None).is_err());
        assert!(config(Some("not a url"), None).is_err());
        assert!(config(Some("http://127.0.0.1:4318"), Some("grpc")).is_err());
    }
}

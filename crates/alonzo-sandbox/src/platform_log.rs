//! The platform's own log records (Lambda's "system logs"): `INIT_START`, `START`, `END`,
//! `REPORT`… as Text lines, or, with `LoggingConfig.LogFormat = JSON`, as the JSON records
//! of Lambda's Telemetry schema (`{"time", "type": "platform.report", "record": {…}}`),
//! filtered by `SystemLogLevel`. It only renders; `logs.rs` writes.

use serde_json::{json, Value};

use crate::environment::InvocationReport;

/// How one environment renders its platform records.
#[derive(Debug, Clone)]
pub(crate) struct PlatformLog {
    json: bool,
    /// Least severe level written (JSON format only): 0 DEBUG, 1 INFO, 2 WARN.
    min_level: u8,
    function: String,
    version: String,
    runtime: String,
}

/// How an invocation or init ended, for the `status` of JSON records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Success,
    /// The function returned an error.
    Failure,
    /// The runtime crashed or the platform failed it.
    Error,
    Timeout,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }
}

const DEBUG: u8 = 0;
const INFO: u8 = 1;
const WARN: u8 = 2;

impl PlatformLog {
    /// The renderer of a function version's environments. `system_level` is `DEBUG`, `INFO`
    /// (the default) or `WARN`, and only matters for the JSON format.
    pub(crate) fn new(spec: &crate::FunctionSpec) -> Self {
        let min_level = match spec.system_log_level.as_deref() {
            Some("DEBUG") => DEBUG,
            Some("WARN") => WARN,
            _ => INFO,
        };
        Self {
            json: spec.log_format.eq_ignore_ascii_case("JSON"),
            min_level,
            function: spec.name.clone(),
            version: spec.version.clone(),
            runtime: spec.runtime.clone(),
        }
    }

    pub(crate) fn init_start(&self, init_type: &str) -> Option<String> {
        if !self.json {
            return Some(format!("INIT_START Runtime Version: {}", self.runtime));
        }
        self.record(
            INFO,
            "platform.initStart",
            json!({
                "initializationType": init_type,
                "phase": "init",
                "runtimeVersion": self.runtime,
                "functionName": self.function,
                "functionVersion": self.version,
            }),
        )
    }

    /// The end of an init that is reported on its own (provisioned environments and
    /// failures; an on-demand success is part of the first `REPORT`).
    pub(crate) fn init_report(
        &self,
        init_type: &str,
        init_ms: f64,
        error_type: Option<&str>,
    ) -> Option<String> {
        if !self.json {
            return Some(match error_type {
                None => format!("INIT_REPORT Init Duration: {init_ms:.2} ms\tPhase: init\tStatus: success"),
                Some(t) => format!(
                    "INIT_REPORT Init Duration: {init_ms:.2} ms\tPhase: init\tStatus: error\tError Type: {t}"
                ),
            });
        }
        let mut record = json!({
            "initializationType": init_type,
            "phase": "init",
            "status": if error_type.is_some() { "error" } else { "success" },
            "metrics": { "durationMs": round2(init_ms) },
        });
        if let Some(t) = error_type {
            record["errorType"] = t.into();
        }
        self.record(if error_type.is_some() { WARN } else { INFO }, "platform.initReport", record)
    }

    /// The runtime finished initialising (JSON format at `DEBUG` only; Text has no line).
    pub(crate) fn init_runtime_done(&self, init_type: &str) -> Option<String> {
        if !self.json {
            return None;
        }
        self.record(
            DEBUG,
            "platform.initRuntimeDone",
            json!({"initializationType": init_type, "phase": "init", "status": "success"}),
        )
    }

    pub(crate) fn start(&self, request_id: &str) -> Option<String> {
        if !self.json {
            return Some(format!("START RequestId: {request_id} Version: {}", self.version));
        }
        self.record(
            INFO,
            "platform.start",
            json!({"requestId": request_id, "version": self.version}),
        )
    }

    /// A platform error line of a failed invocation (timeout, crash); JSON records carry
    /// the failure in their `status` and `errorType` instead.
    pub(crate) fn fatal(&self, line: String) -> Option<String> {
        (!self.json).then_some(line)
    }

    /// `END` (Text) or `platform.runtimeDone` (JSON).
    pub(crate) fn end(&self, report: &InvocationReport, status: Status) -> Option<String> {
        if !self.json {
            return Some(format!("END RequestId: {}", report.request_id));
        }
        let mut record = json!({
            "requestId": report.request_id,
            "status": status.as_str(),
            "metrics": { "durationMs": round2(report.duration_ms) },
        });
        if let Some(t) = &report.error_type {
            record["errorType"] = t.clone().into();
        }
        self.record(INFO, "platform.runtimeDone", record)
    }

    /// `REPORT` (Text) or `platform.report` (JSON).
    pub(crate) fn report(&self, report: &InvocationReport, status: Status) -> Option<String> {
        if !self.json {
            return Some(report_line(report));
        }
        let mut metrics = json!({
            "durationMs": round2(report.duration_ms),
            "billedDurationMs": report.billed_ms,
            "memorySizeMB": report.memory_mb,
            "maxMemoryUsedMB": report.max_memory_used_mb,
        });
        if let Some(init) = report.init_ms {
            metrics["initDurationMs"] = round2(init).into();
        }
        let mut record =
            json!({"requestId": report.request_id, "metrics": metrics, "status": status.as_str()});
        if let Some(t) = &report.error_type {
            record["errorType"] = t.clone().into();
        }
        self.record(INFO, "platform.report", record)
    }

    /// The notice that output was dropped (rate limit or size cap): Text line, or
    /// `platform.logsDropped` (level WARN).
    pub(crate) fn logs_dropped(&self, lines: u64, bytes: u64, reason: &str) -> Option<String> {
        if !self.json {
            return Some(format!(
                "LOGS_DROPPED Dropped {lines} lines ({bytes} bytes) of function output: {reason}"
            ));
        }
        self.record(
            WARN,
            "platform.logsDropped",
            json!({"reason": reason, "droppedRecords": lines, "droppedBytes": bytes}),
        )
    }

    fn record(&self, level: u8, kind: &str, record: Value) -> Option<String> {
        if level < self.min_level {
            return None;
        }
        let time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        Some(json!({"time": time, "type": kind, "record": record}).to_string())
    }
}

/// A millisecond figure with two decimals, as Lambda reports them.
fn round2(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

/// `REPORT` line, tab-separated with a trailing tab, as Lambda writes it.
pub(crate) fn report_line(r: &InvocationReport) -> String {
    let mut line = format!(
        "REPORT RequestId: {}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
        r.request_id, r.duration_ms, r.billed_ms, r.memory_mb, r.max_memory_used_mb
    );
    if let Some(init) = r.init_ms {
        line.push_str(&format!("Init Duration: {init:.2} ms\t"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(format: &str, level: Option<&str>) -> crate::FunctionSpec {
        crate::FunctionSpec {
            log_format: format.into(),
            system_log_level: level.map(str::to_owned),
            ..crate::FunctionSpec::sample()
        }
    }

    fn report() -> InvocationReport {
        InvocationReport {
            request_id: "req".into(),
            function: "f".into(),
            version: "$LATEST".into(),
            duration_ms: 1.234,
            billed_ms: 2,
            memory_mb: 128,
            ephemeral_mb: 512,
            provisioned: false,
            max_memory_used_mb: 30,
            init_ms: Some(100.0),
            error_type: None,
            started_at: chrono::Utc::now(),
            trace_id: None,
            caller_parent: None,
        }
    }

    #[test]
    fn text_lines_are_lambdas() {
        let log = PlatformLog::new(&spec("Text", None));
        assert_eq!(log.start("req").unwrap(), "START RequestId: req Version: $LATEST");
        assert_eq!(log.end(&report(), Status::Success).unwrap(), "END RequestId: req");
        assert_eq!(
            log.report(&report(), Status::Success).unwrap(),
            "REPORT RequestId: req\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 30 MB\tInit Duration: 100.00 ms\t"
        );
        assert!(log.init_runtime_done("on-demand").is_none());
    }

    #[test]
    fn json_records_and_levels() {
        let log = PlatformLog::new(&spec("JSON", None));
        let start: Value = serde_json::from_str(&log.start("req").unwrap()).unwrap();
        assert_eq!(start["type"], "platform.start");
        assert_eq!(start["record"]["requestId"], "req");
        assert_eq!(start["record"]["version"], "$LATEST");
        assert!(start["time"].as_str().unwrap().ends_with('Z'));
        let rep: Value =
            serde_json::from_str(&log.report(&report(), Status::Success).unwrap()).unwrap();
        assert_eq!(rep["record"]["metrics"]["billedDurationMs"], 2);
        assert_eq!(rep["record"]["metrics"]["initDurationMs"], 100.0);
        assert_eq!(rep["record"]["status"], "success");
        assert!(log.init_runtime_done("on-demand").is_none(), "DEBUG is below INFO");
        let debug = PlatformLog::new(&spec("JSON", Some("DEBUG")));
        assert!(debug.init_runtime_done("on-demand").is_some());
        let warn = PlatformLog::new(&spec("JSON", Some("WARN")));
        assert!(warn.start("req").is_none() && warn.report(&report(), Status::Success).is_none());
        assert!(warn.logs_dropped(1, 2, "rate").is_some());
        assert!(log.fatal("x".into()).is_none());
    }
}

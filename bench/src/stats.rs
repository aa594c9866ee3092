//! Sample bookkeeping: latency samples in milliseconds with nearest-rank percentiles, and
//! failures counted separately (with the first reason kept), so a failed request is always
//! reported and never enters a latency or throughput figure.

use serde_json::{json, Value};

/// Samples of one measurement and the failures met while taking them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Samples {
    values: Vec<f64>,
    /// Requests that failed (transport error, non-200, function error, wrong answer).
    pub(crate) errors: u64,
    /// The first failure's reason.
    pub(crate) first_error: Option<String>,
}

impl Samples {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self { values: Vec::with_capacity(n), ..Self::default() }
    }

    pub(crate) fn push(&mut self, value_ms: f64) {
        self.values.push(value_ms);
    }

    pub(crate) fn fail(&mut self, reason: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(reason.to_string());
        }
    }

    /// Folds another set in (e.g. one per concurrent client).
    pub(crate) fn merge(&mut self, other: Samples) {
        self.values.extend(other.values);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Counts another set's failures (not its values), their first reason marked `prefix`.
    pub(crate) fn merge_errors(&mut self, other: &Samples, prefix: &str) {
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error.as_ref().map(|e| format!("{prefix}{e}"));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// Nearest-rank percentile (`p` in 0..=100); `NaN` without samples.
    pub(crate) fn percentile(&self, p: f64) -> f64 {
        if self.values.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub(crate) fn max(&self) -> f64 {
        self.values.iter().copied().fold(f64::NAN, f64::max)
    }

    /// `{"n", "errors", "p50", "p90", "p99", "max", "first_error"?}` (ms, rounded to µs).
    pub(crate) fn to_json(&self) -> Value {
        let mut v = json!({
            "n": self.len(),
            "errors": self.errors,
            "p50": round3(self.percentile(50.0)),
            "p90": round3(self.percentile(90.0)),
            "p99": round3(self.percentile(99.0)),
            "max": round3(self.max()),
        });
        if let Some(e) = &self.first_error {
            v["first_error"] = json!(e);
        }
        v
    }
}

/// Rounds to three decimals; `NaN` becomes JSON `null`.
pub(crate) fn round3(x: f64) -> Value {
    if x.is_finite() {
        json!((x * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

#[cfg(test)]
mod tests {
    use super::Samples;

    #[test]
    fn nearest_rank_percentiles() {
        let mut s = Samples::default();
        for v in 1..=100 {
            s.push(f64::from(v));
        }
        assert_eq!(s.percentile(50.0), 50.0);
        assert_eq!(s.percentile(90.0), 90.0);
        assert_eq!(s.percentile(99.0), 99.0);
        assert_eq!(s.percentile(100.0), 100.0);
        assert_eq!(s.max(), 100.0);
        assert!(Samples::default().percentile(50.0).is_nan());
    }
}

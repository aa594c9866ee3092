//! Usage metering and cost: requests and GB-seconds per function and month, computed from the
//! per-invocation metering records, priced with a [`PriceTable`] (by default Lambda's
//! published on-demand prices, US East) with the monthly free tier applied across the account.
//!
//! Every invocation that ran is one record (an asynchronous event retried is several
//! invocations under one request id, each billed, as on Lambda); a record stored twice is
//! counted once, keyed by request id and start time.

use std::collections::{BTreeMap, HashMap, HashSet};

use alonzo_model::{Architecture, ValidationError};
use serde::{Deserialize, Serialize};

use crate::{Control, ControlError};

/// Prices of invocations. Loadable from JSON (`alonzo serve --prices FILE`); missing fields
/// take Lambda's published values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTable {
    /// Currency label shown with the figures.
    pub currency: String,
    /// Price of one million requests.
    pub request_per_million: f64,
    /// Price of one GB-second on x86_64.
    pub gb_second_x86_64: f64,
    /// Price of one GB-second on arm64.
    pub gb_second_arm64: f64,
    /// Requests free each month, account-wide.
    pub free_requests_per_month: u64,
    /// GB-seconds free each month, account-wide (both architectures together).
    pub free_gb_seconds_per_month: f64,
}

impl Default for PriceTable {
    /// Lambda's on-demand prices in us-east-1 and its permanent monthly free tier.
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            request_per_million: 0.20,
            gb_second_x86_64: 0.000_016_666_7,
            gb_second_arm64: 0.000_013_333_4,
            free_requests_per_month: 1_000_000,
            free_gb_seconds_per_month: 400_000.0,
        }
    }
}

impl PriceTable {
    /// Parses a price file; every price must be finite and not negative.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let table: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (name, v) in [
            ("request_per_million", table.request_per_million),
            ("gb_second_x86_64", table.gb_second_x86_64),
            ("gb_second_arm64", table.gb_second_arm64),
            ("free_gb_seconds_per_month", table.free_gb_seconds_per_month),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a number of at least 0"));
            }
        }
        Ok(table)
    }

    fn gb_second(&self, arch: Architecture) -> f64 {
        match arch {
            Architecture::X86_64 => self.gb_second_x86_64,
            Architecture::Arm64 => self.gb_second_arm64,
        }
    }
}

/// Which records to count: started in `[since_ms, until_ms)`, of one function or all.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Inclusive start, epoch ms.
    pub since_ms: Option<i64>,
    /// Exclusive end, epoch ms.
    pub until_ms: Option<i64>,
    /// One function only.
    pub function: Option<String>,
}

/// Usage of one function in one month (UTC).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionUsage {
    /// `YYYY-MM`.
    pub month: String,
    /// Function name.
    pub function: String,
    /// `x86_64` or `arm64` (of the function's configuration; `x86_64` once it is deleted).
    pub architecture: String,
    /// Invocations that ran.
    pub requests: u64,
    /// Of which ended in an error.
    pub errors: u64,
    /// Sum of billed durations (init included), ms.
    pub billed_ms: u64,
    /// Billed ms × memory MB / 1024 / 1000, summed.
    pub gb_seconds: f64,
    /// Requests × the request price, before the free tier.
    pub request_cost: f64,
    /// GB-seconds × the architecture's price, before the free tier.
    pub compute_cost: f64,
    /// `request_cost + compute_cost`.
    pub gross_cost: f64,
}

/// One month of the account, with the free tier applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthUsage {
    /// `YYYY-MM`.
    pub month: String,
    /// Invocations that ran.
    pub requests: u64,
    /// GB-seconds.
    pub gb_seconds: f64,
    /// Cost before the free tier.
    pub gross_cost: f64,
    /// Requests the free tier covered.
    pub free_requests: u64,
    /// GB-seconds the free tier covered.
    pub free_gb_seconds: f64,
    /// Cost after the free tier.
    pub cost: f64,
}

/// The answer of [`Control::usage`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    /// Per function and month, ordered by month then function.
    pub functions: Vec<FunctionUsage>,
    /// Per month, account-wide, with the free tier applied.
    pub months: Vec<MonthUsage>,
    /// Sum of the months' costs after the free tier.
    pub total_cost: f64,
    /// The prices used.
    pub prices: PriceTable,
}

impl Control {
    /// Usage and cost from the metering records.
    ///
    /// With `function`, the free tier is still applied as if that function were the whole
    /// account (Lambda's free tier is account-wide; a per-function view cannot know its share).
    pub async fn usage(&self, query: UsageQuery) -> Result<UsageReport, ControlError> {
        if let (Some(since), Some(until)) = (query.since_ms, query.until_ms) {
            if since >= until {
                return Err(ControlError::Invalid(ValidationError::param(
                    "since must be before until.",
                )));
            }
        }
        let records = self.inner.meta.invocations(query.function.as_deref()).await?;
        let prices = self.inner.config.prices.clone();
        let mut seen = HashSet::new();
        let mut arch_of: HashMap<(String, String), Architecture> = HashMap::new();
        let mut rows: BTreeMap<(String, String), FunctionUsage> = BTreeMap::new();
        for r in records {
            if query.since_ms.is_some_and(|s| r.started_ms < s)
                || query.until_ms.is_some_and(|u| r.started_ms >= u)
            {
                continue;
            }
            if !seen.insert((r.request_id.clone(), r.started_ms)) {
                continue;
            }
            let key = (r.function.clone(), r.version.clone());
            let arch = match arch_of.get(&key) {
                Some(a) => *a,
                None => {
                    let a = self
                        .inner
                        .meta
                        .get_version(&r.function, &r.version)
                        .await
                        .ok()
                        .and_then(|rec| rec.config.architectures.first().copied())
                        .unwrap_or(Architecture::X86_64);
                    arch_of.insert(key, a);
                    a
                }
            };
            let month = month_of(r.started_ms);
            let row =
                rows.entry((month.clone(), r.function.clone())).or_insert_with(|| FunctionUsage {
                    month,
                    function: r.function.clone(),
                    architecture: arch_name(arch).into(),
                    requests: 0,
                    errors: 0,
                    billed_ms: 0,
                    gb_seconds: 0.0,
                    request_cost: 0.0,
                    compute_cost: 0.0,
                    gross_cost: 0.0,
                });
            #[allow(clippy::cast_precision_loss)]
            let gb_seconds = r.billed_ms as f64 * f64::from(r.memory_mb) / 1024.0 / 1000.0;
            row.requests += 1;
            row.errors += u64::from(r.error_type.is_some());
            row.billed_ms += r.billed_ms;
            row.gb_seconds += gb_seconds;
            row.compute_cost += gb_seconds * prices.gb_second(arch);
        }
        let mut months: BTreeMap<String, (u64, f64, f64, f64)> = BTreeMap::new();
        for row in rows.values_mut() {
            #[allow(clippy::cast_precision_loss)]
            let request_cost = row.requests as f64 * prices.request_per_million / 1_000_000.0;
            row.request_cost = request_cost;
            row.gross_cost = row.request_cost + row.compute_cost;
            let m = months.entry(row.month.clone()).or_default();
            m.0 += row.requests;
            m.1 += row.gb_seconds;
            m.2 += row.compute_cost;
            m.3 += row.gross_cost;
        }
        let months: Vec<MonthUsage> = months
            .into_iter()
            .map(|(month, (requests, gb_seconds, compute_cost, gross_cost))| {
                let free_requests = requests.min(prices.free_requests_per_month);
                let free_gb_seconds = gb_seconds.min(prices.free_gb_seconds_per_month);
                #[allow(clippy::cast_precision_loss)]
                let request_cost =
                    (requests - free_requests) as f64 * prices.request_per_million / 1_000_000.0;
                // The free GB-seconds are valued at the month's average price per GB-second,
                // so mixed architectures share the free tier in proportion to their use.
                let compute = if gb_seconds > 0.0 {
                    compute_cost * (gb_seconds - free_gb_seconds) / gb_seconds
                } else {
                    0.0
                };
                MonthUsage {
                    month,
                    requests,
                    gb_seconds,
                    gross_cost,
                    free_requests,
                    free_gb_seconds,
                    cost: request_cost + compute,
                }
            })
            .collect();
        let total_cost = months.iter().map(|m| m.cost).sum();
        Ok(UsageReport { functions: rows.into_values().collect(), months, total_cost, prices })
    }
}

fn arch_name(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "x86_64",
        Architecture::Arm64 => "arm64",
    }
}

/// `YYYY-MM` of an epoch-ms instant, UTC.
fn month_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| "1970-01".to_owned(), |t| t.format("%Y-%m").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use alonzo_model::InvocationRecord;

    fn record(
        id: &str,
        function: &str,
        started_ms: i64,
        billed_ms: u64,
        memory_mb: u32,
    ) -> InvocationRecord {
        InvocationRecord {
            request_id: id.into(),
            function: function.into(),
            version: "$LATEST".into(),
            started_ms,
            duration_ms: billed_ms as f64,
            billed_ms,
            memory_mb,
            init_ms: None,
            error_type: None,
        }
    }

    async fn control(dir: &std::path::Path, prices: PriceTable) -> Control {
        crate::testing::control_with_prices(dir, prices).await
    }

    #[tokio::test]
    async fn retries_count_each_time_and_a_record_stored_twice_once() {
        let dir = tempfile::tempdir().unwrap();
        let prices = PriceTable {
            free_requests_per_month: 1,
            free_gb_seconds_per_month: 0.5,
            request_per_million: 1_000_000.0, // 1 per request
            gb_second_x86_64: 2.0,
            ..PriceTable::default()
        };
        let control = control(dir.path(), prices).await;
        // An asynchronous event run twice (same request id, two starts), one record stored
        // twice, and one invocation in the next month. 1024 MB, 1000 ms = 1 GB-s.
        let nov = 1_796_083_199_000; // 2026-11-30T23:59:59Z
        let dec = 1_796_083_200_000; // 2026-12-01T00:00:00Z
        let a1 = record("async-1", "f", nov - 5_000, 1000, 1024);
        let a2 = record("async-1", "f", nov - 2_000, 500, 1024);
        let s = record("sync-1", "f", nov, 250, 512);
        let d = record("sync-2", "f", dec, 1000, 1024);
        control.inner.meta.record_invocations(&[a1, a2, s.clone()]).await.unwrap();
        control.inner.meta.record_invocations(&[s, d]).await.unwrap();

        let report = control.usage(UsageQuery::default()).await.unwrap();
        assert_eq!(report.functions.len(), 2);
        let november = &report.functions[0];
        assert_eq!((november.month.as_str(), november.requests), ("2026-11", 3));
        assert_eq!(november.billed_ms, 1750);
        assert!((november.gb_seconds - (1.0 + 0.5 + 0.125)).abs() < 1e-12);
        assert!((november.gross_cost - (3.0 + 2.0 * 1.625)).abs() < 1e-9);
        // The free tier: 1 request and 0.5 GB-s of each month.
        let m = &report.months[0];
        assert_eq!(m.free_requests, 1);
        assert!((m.cost - (2.0 + 2.0 * 1.125)).abs() < 1e-9, "{m:?}");
        let december = &report.months[1];
        assert_eq!((december.month.as_str(), december.requests), ("2026-12", 1));
        assert!((december.cost - 2.0 * 0.5).abs() < 1e-9, "{december:?}");
        assert!((report.total_cost - (4.25 + 1.0)).abs() < 1e-9);

        // since inclusive, until exclusive.
        let only_dec = control
            .usage(UsageQuery { since_ms: Some(dec), ..UsageQuery::default() })
            .await
            .unwrap();
        assert_eq!(only_dec.functions.len(), 1);
        let only_nov = control
            .usage(UsageQuery { until_ms: Some(dec), ..UsageQuery::default() })
            .await
            .unwrap();
        assert_eq!(only_nov.months.len(), 1);
        assert_eq!(only_nov.months[0].requests, 3);
        let other = control
            .usage(UsageQuery { function: Some("g".into()), ..UsageQuery::default() })
            .await
            .unwrap();
        assert!(other.functions.is_empty() && other.total_cost == 0.0);
        assert!(control
            .usage(UsageQuery { since_ms: Some(dec), until_ms: Some(dec), function: None })
            .await
            .is_err());
    }

    #[test]
    fn months_are_utc() {
        assert_eq!(month_of(0), "1970-01");
        // 2026-11-30T23:59:59.999Z and one ms later.
        assert_eq!(month_of(1_796_083_199_999), "2026-11");
        assert_eq!(month_of(1_796_083_200_000), "2026-12");
    }

    #[test]
    fn price_files_fill_in_defaults_and_reject_nonsense() {
        let t = PriceTable::from_json(r#"{"request_per_million": 1.5}"#).unwrap();
        assert_eq!(t.request_per_million, 1.5);
        assert_eq!(t.gb_second_x86_64, PriceTable::default().gb_second_x86_64);
        assert!(PriceTable::from_json(r#"{"request_per_million": -1}"#).is_err());
        assert!(PriceTable::from_json(r#"{"unknown": 1}"#).is_err());
        assert!(PriceTable::from_json("[").is_err());
    }
}

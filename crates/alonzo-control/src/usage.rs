//! Usage metering and cost: requests, GB-seconds, provisioned concurrency and extra
//! ephemeral storage per function and month, computed from the per-invocation metering
//! records and the provisioned-concurrency periods, priced with a [`PriceTable`] (by default
//! Lambda's published prices, US East) with the monthly free tier applied across the account.
//!
//! Every invocation that ran is one record (an asynchronous event retried is several
//! invocations under one request id, each billed, as on Lambda); a record stored twice is
//! counted once, keyed by request id and start time.
//!
//! As on Lambda:
//! - an invocation is billed its duration (init included) × memory, at the on-demand price,
//!   or at the lower provisioned duration price when it ran on an environment initialised for
//!   provisioned concurrency;
//! - provisioned concurrency is billed configured environments × memory × the time it was
//!   configured, each period (from a put to the delete or change that ends it) rounded up to
//!   five minutes as a whole;
//! - `EphemeralStorage.Size` above the free 512 MB is billed × billed duration for
//!   invocations, and × configured environments × configured time for provisioned periods;
//! - the free GB-seconds cover on-demand duration only (Lambda's free tier does not apply to
//!   provisioned concurrency), the free requests all requests; extra ephemeral storage has no
//!   free tier.
//!
//! Figures are summed in integer MB-milliseconds and converted once, so they are exact.

use std::collections::{BTreeMap, HashMap, HashSet};

use alonzo_model::{
    Architecture, InvocationRecord, ProvisionedInterval, ValidationError, FREE_EPHEMERAL_MB,
};
use serde::{Deserialize, Serialize};

use crate::{Control, ControlError};

/// Prices of invocations and configured concurrency. Loadable from JSON (`alonzo serve
/// --prices FILE`); missing fields take Lambda's published values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTable {
    /// Currency label shown with the figures.
    pub currency: String,
    /// Price of one million requests.
    pub request_per_million: f64,
    /// Price of one GB-second of on-demand duration on x86_64.
    pub gb_second_x86_64: f64,
    /// Price of one GB-second of on-demand duration on arm64.
    pub gb_second_arm64: f64,
    /// Price of one GB-second of configured provisioned concurrency on x86_64.
    pub provisioned_gb_second_x86_64: f64,
    /// Price of one GB-second of configured provisioned concurrency on arm64.
    pub provisioned_gb_second_arm64: f64,
    /// Price of one GB-second of duration on a provisioned environment, x86_64.
    pub provisioned_duration_gb_second_x86_64: f64,
    /// Price of one GB-second of duration on a provisioned environment, arm64.
    pub provisioned_duration_gb_second_arm64: f64,
    /// Price of one GB-second of ephemeral storage above 512 MB, x86_64.
    pub ephemeral_gb_second_x86_64: f64,
    /// Price of one GB-second of ephemeral storage above 512 MB, arm64.
    pub ephemeral_gb_second_arm64: f64,
    /// Requests free each month, account-wide.
    pub free_requests_per_month: u64,
    /// GB-seconds of on-demand duration free each month, account-wide (both architectures
    /// together).
    pub free_gb_seconds_per_month: f64,
}

impl Default for PriceTable {
    /// Lambda's prices in us-east-1 and its permanent monthly free tier.
    fn default() -> Self {
        Self {
            currency: "USD".into(),
            request_per_million: 0.20,
            gb_second_x86_64: 0.000_016_666_7,
            gb_second_arm64: 0.000_013_333_4,
            provisioned_gb_second_x86_64: 0.000_004_166_7,
            provisioned_gb_second_arm64: 0.000_003_333_4,
            provisioned_duration_gb_second_x86_64: 0.000_009_722_2,
            provisioned_duration_gb_second_arm64: 0.000_007_777_8,
            ephemeral_gb_second_x86_64: 0.000_000_030_9,
            ephemeral_gb_second_arm64: 0.000_000_030_9,
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
            ("provisioned_gb_second_x86_64", table.provisioned_gb_second_x86_64),
            ("provisioned_gb_second_arm64", table.provisioned_gb_second_arm64),
            ("provisioned_duration_gb_second_x86_64", table.provisioned_duration_gb_second_x86_64),
            ("provisioned_duration_gb_second_arm64", table.provisioned_duration_gb_second_arm64),
            ("ephemeral_gb_second_x86_64", table.ephemeral_gb_second_x86_64),
            ("ephemeral_gb_second_arm64", table.ephemeral_gb_second_arm64),
            ("free_gb_seconds_per_month", table.free_gb_seconds_per_month),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a number of at least 0"));
            }
        }
        Ok(table)
    }

    /// The price of one GB-second of `charge` on `arch`.
    fn price(&self, charge: Charge, arch: Architecture) -> f64 {
        let x86 = arch == Architecture::X86_64;
        match charge {
            Charge::OnDemand if x86 => self.gb_second_x86_64,
            Charge::OnDemand => self.gb_second_arm64,
            Charge::ProvisionedDuration if x86 => self.provisioned_duration_gb_second_x86_64,
            Charge::ProvisionedDuration => self.provisioned_duration_gb_second_arm64,
            Charge::Provisioned if x86 => self.provisioned_gb_second_x86_64,
            Charge::Provisioned => self.provisioned_gb_second_arm64,
            Charge::Ephemeral if x86 => self.ephemeral_gb_second_x86_64,
            Charge::Ephemeral => self.ephemeral_gb_second_arm64,
        }
    }
}

/// What a GB-second is of, for its price.
#[derive(Debug, Clone, Copy)]
enum Charge {
    /// Invocation duration on an on-demand environment.
    OnDemand,
    /// Invocation duration on a provisioned environment.
    ProvisionedDuration,
    /// Configured provisioned concurrency.
    Provisioned,
    /// Ephemeral storage above 512 MB.
    Ephemeral,
}

/// Which records to count: invocations started in `[since_ms, until_ms)` and the part of
/// provisioned-concurrency periods inside it, of one function or all.
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
    /// Of which ran on an environment initialised for provisioned concurrency.
    pub provisioned_requests: u64,
    /// Sum of billed durations (init included), ms.
    pub billed_ms: u64,
    /// Duration GB-seconds of all invocations, on-demand and on provisioned environments:
    /// billed ms × memory MB / 1024 / 1000, summed.
    pub gb_seconds: f64,
    /// The part of `gb_seconds` that ran on provisioned environments (priced at the
    /// provisioned duration price, outside the free tier).
    pub provisioned_duration_gb_seconds: f64,
    /// Configured provisioned concurrency: environments × memory GB × configured seconds,
    /// each period rounded up to five minutes.
    pub provisioned_gb_seconds: f64,
    /// Ephemeral storage above 512 MB, GB × seconds: × billed duration for invocations, ×
    /// environments × configured time for provisioned concurrency.
    pub ephemeral_gb_seconds: f64,
    /// Requests × the request price, before the free tier.
    pub request_cost: f64,
    /// Duration cost before the free tier: on-demand GB-seconds at the architecture's
    /// price, plus `provisioned_duration_gb_seconds` at the provisioned duration price.
    pub compute_cost: f64,
    /// `provisioned_gb_seconds` × the provisioned concurrency price.
    pub provisioned_cost: f64,
    /// `ephemeral_gb_seconds` × the ephemeral storage price.
    pub ephemeral_cost: f64,
    /// `request_cost + compute_cost + provisioned_cost + ephemeral_cost`.
    pub gross_cost: f64,
}

/// One month of the account, with the free tier applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonthUsage {
    /// `YYYY-MM`.
    pub month: String,
    /// Invocations that ran.
    pub requests: u64,
    /// Duration GB-seconds, on-demand and on provisioned environments.
    pub gb_seconds: f64,
    /// The part of `gb_seconds` that ran on provisioned environments.
    pub provisioned_duration_gb_seconds: f64,
    /// Configured provisioned concurrency GB-seconds.
    pub provisioned_gb_seconds: f64,
    /// Ephemeral storage above 512 MB, GB-seconds.
    pub ephemeral_gb_seconds: f64,
    /// Cost before the free tier.
    pub gross_cost: f64,
    /// Requests the free tier covered.
    pub free_requests: u64,
    /// On-demand duration GB-seconds the free tier covered.
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
    /// Usage and cost from the metering records and provisioned-concurrency periods (a
    /// period still configured counts up to now).
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
        let function = query.function.as_deref();
        let periods = self.inner.meta.provisioned_intervals(function).await?;
        let records = self.inner.meta.invocations(function).await?;
        let mut arch_of: HashMap<(String, String), Architecture> = HashMap::new();
        let mut priced = Vec::with_capacity(records.len());
        for r in records {
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
            priced.push((r, arch));
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        Ok(tally(&self.inner.config.prices, &query, now_ms, priced, &periods))
    }
}

/// Provisioned concurrency is billed in steps of five minutes.
const BILLING_STEP_MS: i64 = 5 * 60 * 1000;

/// MB-milliseconds per GB-second.
const MB_MS_PER_GB_SECOND: f64 = 1024.0 * 1000.0;

/// One function's (or month's) usage, in exact integers, by architecture (`[x86_64, arm64]`).
#[derive(Debug, Default, Clone)]
struct Meter {
    requests: u64,
    errors: u64,
    provisioned_requests: u64,
    billed_ms: u64,
    /// Invocation MB-ms on on-demand environments.
    on_demand: [u128; 2],
    /// Invocation MB-ms on provisioned environments.
    provisioned_duration: [u128; 2],
    /// Configured environments × MB × ms.
    provisioned: [u128; 2],
    /// MB above 512 × ms (× environments for provisioned periods).
    ephemeral: [u128; 2],
}

impl Meter {
    fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.provisioned_requests += other.provisioned_requests;
        self.billed_ms += other.billed_ms;
        for i in 0..2 {
            self.on_demand[i] += other.on_demand[i];
            self.provisioned_duration[i] += other.provisioned_duration[i];
            self.provisioned[i] += other.provisioned[i];
            self.ephemeral[i] += other.ephemeral[i];
        }
    }

    /// GB-seconds of one kind, both architectures.
    fn gb_seconds(kind: &[u128; 2]) -> f64 {
        (kind[0] + kind[1]) as f64 / MB_MS_PER_GB_SECOND
    }

    /// Cost of one kind: each architecture's GB-seconds at its price.
    fn cost(kind: &[u128; 2], prices: &PriceTable, charge: Charge) -> f64 {
        [Architecture::X86_64, Architecture::Arm64]
            .iter()
            .zip(kind)
            .map(|(arch, mb_ms)| *mb_ms as f64 / MB_MS_PER_GB_SECOND * prices.price(charge, *arch))
            .sum()
    }

    fn request_cost(requests: u64, prices: &PriceTable) -> f64 {
        requests as f64 * prices.request_per_million / 1_000_000.0
    }
}

fn arch_index(arch: Architecture) -> usize {
    match arch {
        Architecture::X86_64 => 0,
        Architecture::Arm64 => 1,
    }
}

/// MB of ephemeral storage beyond the free 512.
fn extra_ephemeral_mb(ephemeral_mb: u32) -> u128 {
    u128::from(ephemeral_mb.saturating_sub(FREE_EPHEMERAL_MB))
}

/// The report from the records (each with its version's architecture) and periods, for the
/// window of `query` (its `function` was applied when reading); periods still open end at
/// `now_ms`.
fn tally(
    prices: &PriceTable,
    query: &UsageQuery,
    now_ms: i64,
    records: Vec<(InvocationRecord, Architecture)>,
    periods: &[ProvisionedInterval],
) -> UsageReport {
    let (since, until) = (query.since_ms.unwrap_or(i64::MIN), query.until_ms.unwrap_or(i64::MAX));
    let mut rows: BTreeMap<(String, String), (Architecture, Meter)> = BTreeMap::new();
    let mut seen = HashSet::new();
    for (r, arch) in records {
        if r.started_ms < since || r.started_ms >= until {
            continue;
        }
        if !seen.insert((r.request_id.clone(), r.started_ms)) {
            continue;
        }
        let (_, m) = rows
            .entry((month_of(r.started_ms), r.function.clone()))
            .or_insert_with(|| (arch, Meter::default()));
        let a = arch_index(arch);
        let mb_ms = u128::from(r.billed_ms) * u128::from(r.memory_mb);
        m.requests += 1;
        m.errors += u64::from(r.error_type.is_some());
        m.billed_ms += r.billed_ms;
        if r.provisioned {
            m.provisioned_requests += 1;
            m.provisioned_duration[a] += mb_ms;
        } else {
            m.on_demand[a] += mb_ms;
        }
        m.ephemeral[a] += u128::from(r.billed_ms) * extra_ephemeral_mb(r.ephemeral_mb);
    }
    for p in periods {
        let (start, end) = billed_span(p, now_ms);
        let a = arch_index(p.architecture);
        for (month, ms) in month_pieces(start.max(since), end.min(until)) {
            let (_, m) = rows
                .entry((month, p.function.clone()))
                .or_insert_with(|| (p.architecture, Meter::default()));
            let env_ms = u128::from(p.count) * u128::from(ms);
            m.provisioned[a] += env_ms * u128::from(p.memory_mb);
            m.ephemeral[a] += env_ms * extra_ephemeral_mb(p.ephemeral_mb);
        }
    }

    let mut months: BTreeMap<String, Meter> = BTreeMap::new();
    let mut functions = Vec::with_capacity(rows.len());
    for ((month, function), (arch, m)) in rows {
        months.entry(month.clone()).or_default().add(&m);
        let request_cost = Meter::request_cost(m.requests, prices);
        let compute_cost = Meter::cost(&m.on_demand, prices, Charge::OnDemand)
            + Meter::cost(&m.provisioned_duration, prices, Charge::ProvisionedDuration);
        let provisioned_cost = Meter::cost(&m.provisioned, prices, Charge::Provisioned);
        let ephemeral_cost = Meter::cost(&m.ephemeral, prices, Charge::Ephemeral);
        functions.push(FunctionUsage {
            month,
            function,
            architecture: arch.as_str().into(),
            requests: m.requests,
            errors: m.errors,
            provisioned_requests: m.provisioned_requests,
            billed_ms: m.billed_ms,
            gb_seconds: Meter::gb_seconds(&[
                m.on_demand[0] + m.provisioned_duration[0],
                m.on_demand[1] + m.provisioned_duration[1],
            ]),
            provisioned_duration_gb_seconds: Meter::gb_seconds(&m.provisioned_duration),
            provisioned_gb_seconds: Meter::gb_seconds(&m.provisioned),
            ephemeral_gb_seconds: Meter::gb_seconds(&m.ephemeral),
            request_cost,
            compute_cost,
            provisioned_cost,
            ephemeral_cost,
            gross_cost: request_cost + compute_cost + provisioned_cost + ephemeral_cost,
        });
    }
    let months: Vec<MonthUsage> =
        months.into_iter().map(|(month, m)| month_usage(prices, month, &m)).collect();
    let total_cost = months.iter().map(|m| m.cost).sum();
    UsageReport { functions, months, total_cost, prices: prices.clone() }
}

/// A month's totals with the free tier applied: the free requests to all requests, the free
/// GB-seconds to on-demand duration only.
fn month_usage(prices: &PriceTable, month: String, m: &Meter) -> MonthUsage {
    let on_demand_gb_seconds = Meter::gb_seconds(&m.on_demand);
    let on_demand_cost = Meter::cost(&m.on_demand, prices, Charge::OnDemand);
    let other_cost = Meter::cost(&m.provisioned_duration, prices, Charge::ProvisionedDuration)
        + Meter::cost(&m.provisioned, prices, Charge::Provisioned)
        + Meter::cost(&m.ephemeral, prices, Charge::Ephemeral);
    let free_requests = m.requests.min(prices.free_requests_per_month);
    let free_gb_seconds = on_demand_gb_seconds.min(prices.free_gb_seconds_per_month);
    // The free GB-seconds are valued at the month's average on-demand price per GB-second,
    // so mixed architectures share the free tier in proportion to their use.
    let on_demand_after = if on_demand_gb_seconds > 0.0 {
        on_demand_cost * (on_demand_gb_seconds - free_gb_seconds) / on_demand_gb_seconds
    } else {
        0.0
    };
    MonthUsage {
        month,
        requests: m.requests,
        gb_seconds: Meter::gb_seconds(&[
            m.on_demand[0] + m.provisioned_duration[0],
            m.on_demand[1] + m.provisioned_duration[1],
        ]),
        provisioned_duration_gb_seconds: Meter::gb_seconds(&m.provisioned_duration),
        provisioned_gb_seconds: Meter::gb_seconds(&m.provisioned),
        ephemeral_gb_seconds: Meter::gb_seconds(&m.ephemeral),
        gross_cost: Meter::request_cost(m.requests, prices) + on_demand_cost + other_cost,
        free_requests,
        free_gb_seconds,
        cost: Meter::request_cost(m.requests - free_requests, prices)
            + on_demand_after
            + other_cost,
    }
}

/// The billed span of a provisioned-concurrency period: from its start, its length (up to
/// its end, or `now_ms` while it lasts) rounded up to five minutes, at least five minutes.
/// Rounding applies to the period as a whole; a window or a month boundary then takes the
/// part of this span inside it, so the parts always add up to the whole.
fn billed_span(p: &ProvisionedInterval, now_ms: i64) -> (i64, i64) {
    let end = p.end_ms.unwrap_or(now_ms);
    let length = end.saturating_sub(p.start_ms).max(1);
    let steps = (length + BILLING_STEP_MS - 1) / BILLING_STEP_MS;
    (p.start_ms, p.start_ms.saturating_add(steps.saturating_mul(BILLING_STEP_MS)))
}

/// `[start, end)` cut at UTC month boundaries: each month with its milliseconds.
fn month_pieces(start: i64, end: i64) -> Vec<(String, u64)> {
    let mut pieces = Vec::new();
    let mut at = start;
    while at < end {
        let next = next_month_ms(at).min(end);
        pieces.push((month_of(at), u64::try_from(next - at).unwrap_or(0)));
        at = next;
    }
    pieces
}

/// The first millisecond of the UTC month after the one holding `ms`.
fn next_month_ms(ms: i64) -> i64 {
    use chrono::Datelike;
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else { return i64::MAX };
    let (year, month) = if t.month() == 12 { (t.year() + 1, 1) } else { (t.year(), t.month() + 1) };
    chrono::NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map_or(i64::MAX, |t| t.and_utc().timestamp_millis())
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
            ephemeral_mb: 512,
            provisioned: false,
        }
    }

    const MIN: i64 = 60_000;
    /// 2026-12-01T00:00:00Z.
    const DEC: i64 = 1_796_083_200_000;

    fn period(
        count: u32,
        memory_mb: u32,
        ephemeral_mb: u32,
        architecture: Architecture,
        start_ms: i64,
        end_ms: Option<i64>,
    ) -> ProvisionedInterval {
        ProvisionedInterval {
            function: "f".into(),
            qualifier: "1".into(),
            version: "1".into(),
            count,
            memory_mb,
            ephemeral_mb,
            architecture,
            start_ms,
            end_ms,
        }
    }

    /// Prices that make each kind of charge easy to tell apart.
    fn distinct_prices() -> PriceTable {
        PriceTable {
            request_per_million: 1_000_000.0, // 1 per request
            gb_second_x86_64: 10.0,
            gb_second_arm64: 20.0,
            provisioned_gb_second_x86_64: 100.0,
            provisioned_gb_second_arm64: 200.0,
            provisioned_duration_gb_second_x86_64: 1_000.0,
            provisioned_duration_gb_second_arm64: 2_000.0,
            ephemeral_gb_second_x86_64: 10_000.0,
            ephemeral_gb_second_arm64: 20_000.0,
            free_requests_per_month: 0,
            free_gb_seconds_per_month: 0.0,
            ..PriceTable::default()
        }
    }

    fn window(since_ms: Option<i64>, until_ms: Option<i64>) -> UsageQuery {
        UsageQuery { since_ms, until_ms, function: None }
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
    fn periods_are_rounded_up_to_five_minutes_as_a_whole() {
        let span = |start: i64, end: Option<i64>, now: i64| {
            let (a, b) = billed_span(&period(1, 1024, 512, Architecture::X86_64, start, end), now);
            assert_eq!(a, start);
            b - a
        };
        assert_eq!(span(0, Some(1), 0), 5 * MIN);
        assert_eq!(span(0, Some(0), 0), 5 * MIN, "put and deleted at once still bills 5 min");
        assert_eq!(span(0, Some(5 * MIN), 0), 5 * MIN);
        assert_eq!(span(0, Some(5 * MIN + 1), 0), 10 * MIN);
        // Still configured: counted up to now.
        assert_eq!(span(0, None, 7 * MIN), 10 * MIN);

        // 2 environments × 0.25 GB × 300 s, whatever the length below 5 min.
        let prices = distinct_prices();
        let periods = [period(2, 256, 512, Architecture::X86_64, DEC, Some(DEC + 61_234))];
        let report = tally(&prices, &UsageQuery::default(), 0, Vec::new(), &periods);
        let f = &report.functions[0];
        assert_eq!((f.month.as_str(), f.requests), ("2026-12", 0));
        assert_eq!(f.provisioned_gb_seconds, 150.0);
        assert_eq!(f.provisioned_cost, 150.0 * 100.0);
        assert_eq!((f.gb_seconds, f.ephemeral_gb_seconds, f.compute_cost), (0.0, 0.0, 0.0));
        assert_eq!(report.total_cost, 15_000.0);
    }

    #[test]
    fn a_period_across_a_month_boundary_is_split_and_windows_clip_it() {
        let prices = distinct_prices();
        // 23:58 to 00:01: 3 minutes, billed 5, of which 2 in November and 3 in December.
        // 1 environment, 1024 MB, 1536 MB of ephemeral storage (1 GB above 512).
        let periods = [period(1, 1024, 1536, Architecture::X86_64, DEC - 2 * MIN, Some(DEC + MIN))];
        let all = tally(&prices, &UsageQuery::default(), 0, Vec::new(), &periods);
        let months: Vec<_> = all
            .functions
            .iter()
            .map(|f| (f.month.as_str(), f.provisioned_gb_seconds, f.ephemeral_gb_seconds))
            .collect();
        assert_eq!(months, vec![("2026-11", 120.0, 120.0), ("2026-12", 180.0, 180.0)]);
        assert_eq!(all.months[0].provisioned_gb_seconds, 120.0);
        assert_eq!(all.months[1].ephemeral_gb_seconds, 180.0);
        assert_eq!(all.total_cost, 300.0 * 100.0 + 300.0 * 10_000.0);

        // A window takes the part of the billed span inside it; the parts add up.
        let dec = tally(&prices, &window(Some(DEC), None), 0, Vec::new(), &periods);
        assert_eq!(dec.functions.len(), 1);
        assert_eq!(dec.functions[0].provisioned_gb_seconds, 180.0);
        let nov = tally(&prices, &window(None, Some(DEC)), 0, Vec::new(), &periods);
        assert_eq!(nov.functions[0].provisioned_gb_seconds, 120.0);
        let minute =
            tally(&prices, &window(Some(DEC + MIN), Some(DEC + 2 * MIN)), 0, Vec::new(), &periods);
        assert_eq!(minute.functions[0].provisioned_gb_seconds, 60.0, "the rounded-up tail");
        let after = tally(&prices, &window(Some(DEC + 3 * MIN), None), 0, Vec::new(), &periods);
        assert!(after.functions.is_empty());
    }

    #[test]
    fn each_architecture_has_its_prices() {
        let prices = distinct_prices();
        let mut on_demand = record("od", "f", DEC, 1000, 1024);
        on_demand.ephemeral_mb = 1536;
        let mut warm = record("pc", "f", DEC + 1, 500, 1024);
        warm.provisioned = true;
        let periods = [period(1, 1024, 512, Architecture::X86_64, DEC, Some(DEC + 5 * MIN))];
        for (arch, [duration, pc_duration, pc, ephemeral]) in [
            (Architecture::X86_64, [10.0, 1_000.0, 100.0, 10_000.0]),
            (Architecture::Arm64, [20.0, 2_000.0, 200.0, 20_000.0]),
        ] {
            let records = vec![(on_demand.clone(), arch), (warm.clone(), arch)];
            let periods: Vec<_> = periods
                .iter()
                .map(|p| ProvisionedInterval { architecture: arch, ..p.clone() })
                .collect();
            let report = tally(&prices, &UsageQuery::default(), 0, records, &periods);
            let f = &report.functions[0];
            assert_eq!(f.architecture, arch.as_str());
            assert_eq!((f.requests, f.provisioned_requests, f.billed_ms), (2, 1, 1500));
            assert_eq!((f.gb_seconds, f.provisioned_duration_gb_seconds), (1.5, 0.5));
            assert_eq!(f.compute_cost, 1.0 * duration + 0.5 * pc_duration);
            assert_eq!(f.provisioned_gb_seconds, 300.0);
            assert_eq!(f.provisioned_cost, 300.0 * pc);
            // Only the on-demand invocation has extra ephemeral storage (1 GB × 1 s).
            assert_eq!(f.ephemeral_gb_seconds, 1.0);
            assert_eq!(f.ephemeral_cost, ephemeral);
            assert_eq!(f.request_cost, 2.0);
            assert_eq!(f.gross_cost, 2.0 + f.compute_cost + f.provisioned_cost + f.ephemeral_cost);
        }
        assert_eq!(PriceTable::default().provisioned_gb_second_arm64, 0.000_003_333_4);
        assert_eq!(PriceTable::default().provisioned_duration_gb_second_x86_64, 0.000_009_722_2);
    }

    #[test]
    fn ephemeral_storage_is_billed_above_512_mb_only() {
        let prices = distinct_prices();
        let mut records = Vec::new();
        for (i, mb) in [512, 513, 1024, 10_240].into_iter().enumerate() {
            let mut r = record(&format!("r{i}"), "f", DEC, 2000, 128);
            r.ephemeral_mb = mb;
            records.push((r, Architecture::X86_64));
        }
        let report = tally(&prices, &UsageQuery::default(), 0, records, &[]);
        // (0 + 1 + 512 + 9728) MB × 2 s.
        let f = &report.functions[0];
        assert_eq!(f.ephemeral_gb_seconds, 10_241.0 * 2.0 / 1024.0);
        assert_eq!(f.ephemeral_cost, f.ephemeral_gb_seconds * 10_000.0);
        // A period at 512 MB has none.
        let periods = [period(3, 128, 512, Architecture::X86_64, DEC, Some(DEC + MIN))];
        let report = tally(&prices, &UsageQuery::default(), 0, Vec::new(), &periods);
        assert_eq!(report.functions[0].ephemeral_gb_seconds, 0.0);
    }

    #[test]
    fn the_free_tier_covers_on_demand_duration_only() {
        let prices = PriceTable {
            free_requests_per_month: 1_000,
            free_gb_seconds_per_month: 1_000_000.0,
            ..distinct_prices()
        };
        let on_demand = record("od", "f", DEC, 1000, 1024);
        let mut warm = record("pc", "f", DEC + 1, 1000, 1024);
        warm.provisioned = true;
        warm.ephemeral_mb = 1024;
        let records = vec![(on_demand, Architecture::X86_64), (warm, Architecture::X86_64)];
        let periods = [period(1, 1024, 512, Architecture::X86_64, DEC, Some(DEC + MIN))];
        let report = tally(&prices, &UsageQuery::default(), 0, records, &periods);
        let m = &report.months[0];
        assert_eq!((m.requests, m.free_requests), (2, 2));
        assert_eq!((m.gb_seconds, m.provisioned_duration_gb_seconds), (2.0, 1.0));
        assert_eq!(m.free_gb_seconds, 1.0, "the on-demand GB-second only");
        assert_eq!((m.provisioned_gb_seconds, m.ephemeral_gb_seconds), (300.0, 0.5));
        // Provisioned duration, configured concurrency and extra ephemeral storage remain.
        let left = 1.0 * 1_000.0 + 300.0 * 100.0 + 0.5 * 10_000.0;
        assert_eq!(m.cost, left);
        assert_eq!(m.gross_cost, 2.0 + 10.0 + left);
        assert_eq!(report.total_cost, left);
    }

    fn version_record(
        memory_mb: u32,
        ephemeral_mb: u32,
        arch: Architecture,
    ) -> alonzo_model::FunctionRecord {
        let mut config = alonzo_model::FunctionConfig::new(
            "f",
            "python3.12".into(),
            "app.handler".into(),
            "arn:aws:iam::000000000000:role/r".into(),
        );
        config.memory_size = memory_mb;
        config.ephemeral_storage = ephemeral_mb;
        config.architectures = vec![arch];
        alonzo_model::FunctionRecord {
            name: "f".into(),
            version: alonzo_model::LATEST.into(),
            config,
            code: alonzo_model::CodeRef { sha256_hex: "ab".repeat(32), size: 1, unzipped_size: 1 },
            last_modified: chrono::Utc::now(),
            revision_id: "r1".into(),
            state: alonzo_model::FunctionState::Active,
            state_reason: None,
            state_reason_code: None,
            last_update_status: alonzo_model::LastUpdateStatus::Successful,
            last_update_status_reason: None,
        }
    }

    #[tokio::test]
    async fn the_ledger_follows_the_configurations_and_survives_a_restart() {
        use alonzo_model::{FunctionSetting, ProvisionedConcurrencyConfig};

        let dir = tempfile::tempdir().unwrap();
        let control = control(dir.path(), distinct_prices()).await;
        let meta = &control.inner.meta;
        let latest = version_record(256, 1024, Architecture::Arm64);
        meta.create_function(&latest, &Default::default()).await.unwrap();
        assert_eq!(meta.publish_version(&latest, "r1").await.unwrap(), 1);
        let put = |n: u32| {
            FunctionSetting::ProvisionedConcurrency(ProvisionedConcurrencyConfig {
                requested: n,
                last_modified_ms: 0,
            })
        };
        meta.put_setting("f", "1", &put(2)).await.unwrap();
        control.sync_provisioned("f").await.unwrap();
        control.sync_provisioned("f").await.unwrap();
        let open = meta.provisioned_intervals(None).await.unwrap();
        assert_eq!(open.len(), 1, "{open:?}");
        assert_eq!(
            (
                open[0].count,
                open[0].memory_mb,
                open[0].ephemeral_mb,
                open[0].architecture,
                open[0].end_ms
            ),
            (2, 256, 1024, Architecture::Arm64, None)
        );
        // Usage counts it up to now: 5 minutes so far. Summed over the rows: a period that
        // starts in the last 5 minutes of a month is split between two months' rows.
        let report = control.usage(UsageQuery::default()).await.unwrap();
        let total = |field: fn(&FunctionUsage) -> f64| -> f64 {
            report.functions.iter().filter(|f| f.function == "f").map(field).sum()
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6 * b.abs().max(1.0);
        assert!(close(total(|f| f.provisioned_gb_seconds), 150.0), "{:?}", report.functions);
        assert!(close(total(|f| f.provisioned_cost), 150.0 * 200.0), "{:?}", report.functions);
        assert!(close(total(|f| f.ephemeral_gb_seconds), 300.0), "{:?}", report.functions);

        // A new count: a second period.
        meta.put_setting("f", "1", &put(1)).await.unwrap();
        control.sync_provisioned("f").await.unwrap();
        // The function is deleted behind the ledger's back (a crash before the update): the
        // restart ends what is still open.
        meta.delete_function("f").await.unwrap();
        drop(control);
        let control = super::tests::control(dir.path(), distinct_prices()).await;
        let periods = control.inner.meta.provisioned_intervals(None).await.unwrap();
        assert_eq!(periods.iter().map(|p| p.count).collect::<Vec<_>>(), vec![2, 1]);
        assert!(periods.iter().all(|p| p.end_ms.is_some()), "{periods:?}");
        let report = control.usage(UsageQuery::default()).await.unwrap();
        // Two periods, each billed at least 5 minutes: (2 + 1) × 0.25 GB × 300 s.
        let total: f64 = report.functions.iter().map(|f| f.provisioned_gb_seconds).sum();
        assert!((total - 225.0).abs() < 1e-6, "{:?}", report.functions);
        assert!(
            report.functions.iter().all(|f| f.architecture == "arm64"),
            "{:?}",
            report.functions
        );
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
        let t = PriceTable::from_json(
            r#"{"provisioned_gb_second_arm64": 0.5, "ephemeral_gb_second_x86_64": 0.25}"#,
        )
        .unwrap();
        assert_eq!((t.provisioned_gb_second_arm64, t.ephemeral_gb_second_x86_64), (0.5, 0.25));
        assert_eq!(t.ephemeral_gb_second_arm64, 0.000_000_030_9);
        let negative = PriceTable::from_json(r#"{"provisioned_duration_gb_second_x86_64": -1}"#);
        assert!(negative.unwrap_err().contains("provisioned_duration_gb_second_x86_64"));
        assert!(PriceTable::from_json(r#"{"unknown": 1}"#).is_err());
        assert!(PriceTable::from_json("[").is_err());
    }
}

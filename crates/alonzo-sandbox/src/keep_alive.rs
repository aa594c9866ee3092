//! How long an idle on-demand environment is kept before it is reclaimed: the fixed
//! `--idle-timeout`, or the adaptive "hybrid histogram" policy of Shahrad et al., "Serverless
//! in the Wild" (USENIX ATC 2020), from a bounded histogram of each function version's idle
//! times. Pure: no I/O, no clock (callers pass the instants), no async.
//!
//! An idle time is how long a function version had nothing running before its next
//! invocation arrived: measured exactly when an invocation reuses an idle environment (how
//! long that environment sat idle), and, when an invocation finds no environment at all and
//! nothing of the version is running, as the time since the version's last environment went
//! idle (it was reclaimed too early, or this is the pattern's real gap). Both are what the
//! keep-alive must cover for the next invocation to be warm.
//!
//! The adaptive keep-alive is the 99th percentile of those idle times, plus 10 %, clamped to
//! `[min, max]`. With fewer than [`MIN_SAMPLES`] idle times, or when the 99th percentile lies
//! beyond the histogram's range (about 1.8 hours: the pattern is not represented), the fixed
//! timeout applies.
//!
//! Histories are kept per function name and version, not per revision: a `$LATEST` update
//! changes the code, not how often callers call, so its history carries over; published
//! versions and `$LATEST` are kept apart because each has its own environments and its own
//! share of the traffic (an alias that sends 10 % to a version makes that version's gaps
//! longer).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Which keep-alive applies to idle on-demand environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlivePolicy {
    /// Every idle environment is kept for the fixed idle timeout.
    Fixed,
    /// Each function version's keep-alive follows its idle-time histogram, within
    /// `[min, max]`; the fixed idle timeout applies until the histogram is representative.
    Adaptive {
        /// The shortest adaptive keep-alive.
        min: Duration,
        /// The longest adaptive keep-alive.
        max: Duration,
    },
}

/// Idle times needed before the histogram is trusted.
pub const MIN_SAMPLES: f32 = 10.0;
/// The keep-alive covers the 99th percentile of idle times…
const PERCENTILE: f64 = 0.99;
/// …with this margin.
const MARGIN: f64 = 1.1;
/// The upper edge of the first bin: shorter idle times all land in it.
const BIN_BASE: Duration = Duration::from_millis(50);
/// Bins per doubling: each bin is 2^(1/8) ≈ 9 % wider than the previous, so a percentile
/// read as its bin's upper edge overestimates by at most 9 %.
const BINS_PER_DOUBLING: f64 = 8.0;
/// Bins: their upper edges run from 50 ms to 50 ms × 2^17 ≈ 1.8 hours. Memory per function
/// version is fixed: 137 counts.
const BINS: usize = 137;
/// When the recorded weight reaches this, every count is halved: the histogram describes
/// about the last 200 to 400 idle times, the recent ones weighing more, so a function whose
/// pattern changes gets a keep-alive that follows.
const DECAY_AT: f32 = 400.0;

/// A bounded histogram of idle times with logarithmic bins and an overflow count.
#[derive(Debug, Clone)]
pub struct IdleHistogram {
    counts: [f32; BINS],
    /// Idle times beyond the last bin.
    overflow: f32,
    total: f32,
}

impl Default for IdleHistogram {
    fn default() -> Self {
        Self { counts: [0.0; BINS], overflow: 0.0, total: 0.0 }
    }
}

impl IdleHistogram {
    /// Counts one idle time (halving every count once the weight reaches [`DECAY_AT`]).
    pub fn record(&mut self, idle: Duration) {
        match bin_of(idle) {
            Some(i) => self.counts[i] += 1.0,
            None => self.overflow += 1.0,
        }
        self.total += 1.0;
        if self.total >= DECAY_AT {
            for c in &mut self.counts {
                *c *= 0.5;
            }
            self.overflow *= 0.5;
            self.total *= 0.5;
        }
    }

    /// The weight of the recorded idle times (their number until the first decay).
    #[cfg(test)]
    pub fn weight(&self) -> f32 {
        self.total
    }

    /// The `p` quantile (0 < p ≤ 1) as the upper edge of the bin it falls in; `None` when
    /// nothing is recorded or it falls beyond the last bin.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.total <= 0.0 {
            return None;
        }
        let target = p * f64::from(self.total);
        let mut seen = 0.0_f64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += f64::from(*c);
            // A small tolerance: halving and float sums must not push an exact quantile
            // into the next bin.
            if seen >= target - 1e-6 && *c > 0.0 {
                return Some(upper_edge(i));
            }
        }
        None
    }

    /// The adaptive keep-alive: the 99th percentile plus the margin, clamped to
    /// `[min, max]`; `None` (use the fixed timeout) with too few idle times or a 99th
    /// percentile beyond the histogram's range.
    pub fn keep_alive(&self, min: Duration, max: Duration) -> Option<Duration> {
        if self.total < MIN_SAMPLES {
            return None;
        }
        let p = self.percentile(PERCENTILE)?;
        Some(p.mul_f64(MARGIN).clamp(min, max))
    }
}

/// The bin of an idle time; `None` beyond the last.
fn bin_of(idle: Duration) -> Option<usize> {
    if idle <= BIN_BASE {
        return Some(0);
    }
    let doublings = (idle.as_secs_f64() / BIN_BASE.as_secs_f64()).log2();
    // The smallest i whose upper edge is at least `idle`.
    let i = (doublings * BINS_PER_DOUBLING - 1e-9).ceil();
    if i < BINS as f64 {
        Some(i as usize)
    } else {
        None
    }
}

/// The upper edge of bin `i`.
fn upper_edge(i: usize) -> Duration {
    BIN_BASE.mul_f64((i as f64 / BINS_PER_DOUBLING).exp2())
}

/// What is known of one function version.
#[derive(Debug, Clone, Default)]
struct VersionIdle {
    histogram: IdleHistogram,
    /// When its most recent environment went idle.
    last_idle: Option<Instant>,
    /// The adaptive keep-alive, recomputed after each new idle time; `None`: the fixed one.
    keep_alive: Option<Duration>,
}

/// The keep-alive of every function version: the policy, the fixed timeout and, under the
/// adaptive policy, each version's idle-time history.
#[derive(Debug, Clone)]
pub struct KeepAlive {
    policy: KeepAlivePolicy,
    idle_timeout: Duration,
    /// Function name → version → history.
    functions: HashMap<String, HashMap<String, VersionIdle>>,
}

impl Default for KeepAlive {
    fn default() -> Self {
        Self::new(KeepAlivePolicy::Fixed, Duration::from_secs(300))
    }
}

/// The reaper checks at least this often when nothing is due sooner…
const MAX_CHECK: Duration = Duration::from_secs(5);
/// …and never more often than this.
pub const MIN_CHECK: Duration = Duration::from_millis(100);

impl KeepAlive {
    /// A policy with `idle_timeout` as the fixed keep-alive (and the adaptive one's fallback).
    pub fn new(policy: KeepAlivePolicy, idle_timeout: Duration) -> Self {
        Self { policy, idle_timeout, functions: HashMap::new() }
    }

    fn adaptive(&self) -> Option<(Duration, Duration)> {
        match self.policy {
            KeepAlivePolicy::Fixed => None,
            KeepAlivePolicy::Adaptive { min, max } => Some((min, max)),
        }
    }

    fn entry(&mut self, function: &str, version: &str) -> &mut VersionIdle {
        // Keys are cloned only the first time a function version is seen.
        if !self.functions.contains_key(function) {
            self.functions.insert(function.to_owned(), HashMap::new());
        }
        let versions = self.functions.get_mut(function).expect("present or just inserted");
        if !versions.contains_key(version) {
            versions.insert(version.to_owned(), VersionIdle::default());
        }
        versions.get_mut(version).expect("present or just inserted")
    }

    fn record(&mut self, function: &str, version: &str, idle: Duration) {
        let Some((min, max)) = self.adaptive() else { return };
        let entry = self.entry(function, version);
        entry.histogram.record(idle);
        entry.keep_alive = entry.histogram.keep_alive(min, max);
    }

    /// An invocation reused an environment of the version that had been idle for `idle`.
    pub fn reused(&mut self, function: &str, version: &str, idle: Duration) {
        self.record(function, version, idle);
    }

    /// An invocation found no idle environment while nothing of the version was running: the
    /// time since its last environment went idle is an idle time the keep-alive did not
    /// cover (nothing is recorded if none ever did).
    pub fn missed(&mut self, function: &str, version: &str, now: Instant) {
        let last =
            self.functions.get(function).and_then(|v| v.get(version)).and_then(|v| v.last_idle);
        if let Some(last) = last {
            self.record(function, version, now.saturating_duration_since(last));
        }
    }

    /// An on-demand environment of the version went idle at `at`.
    pub fn went_idle(&mut self, function: &str, version: &str, at: Instant) {
        if self.adaptive().is_none() {
            return;
        }
        let entry = self.entry(function, version);
        entry.last_idle = Some(entry.last_idle.map_or(at, |t| t.max(at)));
    }

    /// How long an idle on-demand environment of the version is kept.
    pub fn keep_alive(&self, function: &str, version: &str) -> Duration {
        self.adaptive_for(function, version).unwrap_or(self.idle_timeout)
    }

    /// The version's adaptive keep-alive, when the adaptive policy applies and its history is
    /// representative.
    pub fn adaptive_for(&self, function: &str, version: &str) -> Option<Duration> {
        self.adaptive()?;
        self.functions.get(function)?.get(version)?.keep_alive
    }

    /// Forgets a version's history (`Some`: a published version was deleted) or a whole
    /// function's (`None`: it was deleted).
    pub fn forget(&mut self, function: &str, version: Option<&str>) {
        match version {
            None => {
                self.functions.remove(function);
            }
            Some(v) => {
                if let Some(versions) = self.functions.get_mut(function) {
                    versions.remove(v);
                    if versions.is_empty() {
                        self.functions.remove(function);
                    }
                }
            }
        }
    }

    /// The longest the reaper may sleep: a quarter of the shortest keep-alive this policy can
    /// give, within [100 ms, 5 s], so that an environment is reclaimed at most that late.
    pub fn check_interval(&self) -> Duration {
        let shortest = match self.policy {
            KeepAlivePolicy::Fixed => self.idle_timeout,
            KeepAlivePolicy::Adaptive { min, .. } => min.min(self.idle_timeout),
        };
        (shortest / 4).clamp(MIN_CHECK, MAX_CHECK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(60);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn adaptive(min: Duration, max: Duration) -> KeepAlive {
        KeepAlive::new(KeepAlivePolicy::Adaptive { min, max }, Duration::from_secs(2))
    }

    #[test]
    fn bins_cover_their_idle_times_within_nine_percent() {
        for idle in [ms(1), ms(50), ms(51), ms(100), ms(999), ms(3_000), ms(600_000)] {
            let edge = upper_edge(bin_of(idle).expect("in range"));
            assert!(edge >= idle, "{idle:?} above its bin's edge {edge:?}");
            assert!(edge <= idle.max(BIN_BASE).mul_f64(1.091), "{idle:?}: edge {edge:?}");
        }
        // Exact edges land in their own bin, not the next.
        assert_eq!(bin_of(upper_edge(8)), Some(8));
        assert_eq!(bin_of(Duration::from_secs(7_000)), None);
        assert!(upper_edge(BINS - 1) > Duration::from_secs(6_000));
    }

    #[test]
    fn the_99th_percentile_ignores_one_outlier_in_a_hundred_but_not_two() {
        let mut h = IdleHistogram::default();
        for _ in 0..99 {
            h.record(ms(1_000));
        }
        h.record(ms(20_000));
        let p = h.percentile(0.99).unwrap();
        assert!(p >= ms(1_000) && p < ms(1_100), "{p:?}");
        h.record(ms(20_000));
        let p = h.percentile(0.99).unwrap();
        assert!(p >= ms(20_000) && p < ms(22_000), "{p:?}");
        assert!(h.percentile(0.5).unwrap() < ms(1_100));
    }

    #[test]
    fn keep_alive_is_the_percentile_with_a_margin_within_the_bounds() {
        let mut h = IdleHistogram::default();
        for _ in 0..20 {
            h.record(ms(3_000));
        }
        let k = h.keep_alive(MIN, MAX).unwrap();
        assert!(k >= ms(3_300) && k <= ms(3_000).mul_f64(1.1 * 1.091), "{k:?}");
        // Clamped below and above.
        assert_eq!(h.keep_alive(ms(10_000), MAX), Some(ms(10_000)));
        assert_eq!(h.keep_alive(MIN, ms(2_000)), Some(ms(2_000)));
        let mut short = IdleHistogram::default();
        for _ in 0..20 {
            short.record(ms(5));
        }
        assert_eq!(short.keep_alive(MIN, MAX), Some(MIN));
    }

    #[test]
    fn too_few_or_unrepresentative_samples_fall_back_to_the_fixed_timeout() {
        let mut k = adaptive(MIN, MAX);
        for _ in 0..9 {
            k.reused("f", "$LATEST", ms(500));
        }
        assert_eq!(k.adaptive_for("f", "$LATEST"), None);
        assert_eq!(k.keep_alive("f", "$LATEST"), Duration::from_secs(2));
        k.reused("f", "$LATEST", ms(500));
        let adaptive = k.keep_alive("f", "$LATEST");
        assert!(adaptive > ms(500) && adaptive < ms(700), "{adaptive:?}");
        // More than 1 % of idle times beyond the histogram's range: not representative.
        for _ in 0..2 {
            k.reused("f", "$LATEST", Duration::from_secs(3 * 3600));
        }
        assert_eq!(k.adaptive_for("f", "$LATEST"), None);
        assert_eq!(k.keep_alive("f", "$LATEST"), Duration::from_secs(2));
        // Other versions and functions have their own history.
        assert_eq!(k.keep_alive("f", "1"), Duration::from_secs(2));
        assert_eq!(k.keep_alive("g", "$LATEST"), Duration::from_secs(2));
    }

    #[test]
    fn the_fixed_policy_records_nothing_and_always_answers_the_timeout() {
        let mut k = KeepAlive::new(KeepAlivePolicy::Fixed, ms(1_500));
        let t0 = Instant::now();
        for i in 0..50 {
            k.went_idle("f", "$LATEST", t0 + ms(i * 10));
            k.reused("f", "$LATEST", ms(10));
            k.missed("f", "$LATEST", t0 + ms(i * 10 + 5));
        }
        assert!(k.functions.is_empty());
        assert_eq!(k.keep_alive("f", "$LATEST"), ms(1_500));
        assert_eq!(k.check_interval(), ms(375));
    }

    #[test]
    fn a_miss_records_the_time_since_the_version_last_went_idle() {
        let mut k = adaptive(MIN, MAX);
        let t0 = Instant::now();
        // No environment ever went idle: nothing to measure.
        k.missed("f", "$LATEST", t0);
        assert!(k.functions.is_empty());
        let mut t = t0;
        for _ in 0..10 {
            k.went_idle("f", "$LATEST", t);
            t += ms(3_000);
            k.missed("f", "$LATEST", t);
        }
        let keep = k.keep_alive("f", "$LATEST");
        assert!(keep >= ms(3_300) && keep < ms(3_700), "{keep:?}");
        // An older environment going idle later does not move the mark back.
        k.went_idle("f", "$LATEST", t);
        k.went_idle("f", "$LATEST", t - ms(1_000));
        assert_eq!(k.functions["f"]["$LATEST"].last_idle, Some(t));
    }

    #[test]
    fn old_idle_times_decay_so_a_changed_pattern_takes_over() {
        let mut h = IdleHistogram::default();
        for _ in 0..300 {
            h.record(ms(10_000));
        }
        assert!(h.percentile(0.99).unwrap() >= ms(10_000));
        // The weight stays bounded however many are recorded.
        for _ in 0..2_000 {
            h.record(ms(100));
        }
        assert!(h.weight() < DECAY_AT);
        let p = h.percentile(0.99).unwrap();
        assert!(p < ms(110), "the old pattern still dominates: {p:?}");
    }

    #[test]
    fn forgetting_removes_a_version_or_the_whole_function() {
        let mut k = adaptive(MIN, MAX);
        for v in ["$LATEST", "1"] {
            for _ in 0..10 {
                k.reused("f", v, ms(400));
            }
        }
        k.forget("f", Some("1"));
        assert_eq!(k.keep_alive("f", "1"), Duration::from_secs(2));
        assert_ne!(k.keep_alive("f", "$LATEST"), Duration::from_secs(2));
        k.forget("f", None);
        assert!(k.functions.is_empty());
    }

    #[test]
    fn the_reaper_checks_often_enough_for_the_shortest_keep_alive() {
        assert_eq!(adaptive(ms(400), MAX).check_interval(), ms(100));
        assert_eq!(adaptive(ms(1_000), MAX).check_interval(), ms(250));
        let default = KeepAlive::new(
            KeepAlivePolicy::Adaptive { min: Duration::from_secs(60), max: MAX },
            Duration::from_secs(300),
        );
        assert_eq!(default.check_interval(), Duration::from_secs(5));
    }
}

//! The scaling policy: each function may create new environments at a bounded rate (Lambda:
//! 1000 every 10 seconds per function), as a token bucket per function. A cold start that
//! finds the bucket empty waits briefly for a token, then is throttled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a cold start waits for the bucket to refill before it is throttled.
pub(crate) const MAX_WAIT: Duration = Duration::from_millis(500);

/// Token buckets by function.
#[derive(Debug)]
pub(crate) struct ScaleLimiter {
    /// New environments per 10 seconds (also the burst size).
    per_10s: u32,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl ScaleLimiter {
    pub(crate) fn new(per_10s: u32) -> Self {
        Self { per_10s: per_10s.max(1), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `function`, or says how long until one is available.
    pub(crate) fn try_take(&self, function: &str) -> Result<(), Duration> {
        let capacity = f64::from(self.per_10s);
        let per_second = capacity / 10.0;
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let (tokens, last) = buckets.entry(function.to_owned()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * per_second).min(capacity);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / per_second))
        }
    }

    /// Waits up to [`MAX_WAIT`] for a token; `false` when none came.
    pub(crate) async fn take(&self, function: &str) -> bool {
        let deadline = Instant::now() + MAX_WAIT;
        loop {
            match self.try_take(function) {
                Ok(()) => return true,
                Err(wait) if Instant::now() + wait <= deadline => tokio::time::sleep(wait).await,
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let limiter = ScaleLimiter::new(10);
        for _ in 0..10 {
            assert!(limiter.try_take("f").is_ok());
        }
        let wait = limiter.try_take("f").unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900), "{wait:?}");
        assert!(limiter.try_take("g").is_ok(), "buckets are per function");
    }
}

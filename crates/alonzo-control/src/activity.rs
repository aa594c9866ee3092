//! Recent activity as a time series: invocations, errors and durations per time bucket, from
//! the per-invocation metering records (the same records usage is billed from), for the web
//! console's charts. The Prometheus registry has only running totals; the records have times.

use crate::{Control, ControlError};

/// One bucket of [`Control::activity`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActivityBucket {
    /// Start of the bucket, epoch ms.
    pub start_ms: i64,
    /// Invocations that started in it.
    pub invocations: u64,
    /// Of which ended in an error.
    pub errors: u64,
    /// Mean duration, ms (0 without invocations).
    pub mean_duration_ms: f64,
    /// Longest duration, ms.
    pub max_duration_ms: f64,
}

impl Control {
    /// `buckets` consecutive buckets of `bucket_ms` ending at `now_ms` (the last one holds
    /// `now_ms`), for one function or (`None`) all of them.
    pub async fn activity(
        &self,
        function: Option<&str>,
        now_ms: i64,
        bucket_ms: i64,
        buckets: usize,
    ) -> Result<Vec<ActivityBucket>, ControlError> {
        let bucket_ms = bucket_ms.max(1);
        let count = i64::try_from(buckets).unwrap_or(i64::MAX);
        let first = (now_ms.div_euclid(bucket_ms) - count + 1) * bucket_ms;
        let mut out: Vec<ActivityBucket> = (0..count)
            .map(|i| ActivityBucket { start_ms: first + i * bucket_ms, ..Default::default() })
            .collect();
        let mut sums = vec![0.0_f64; out.len()];
        let mut seen = std::collections::HashSet::new();
        for r in self.inner.meta.invocations(function).await? {
            let Ok(idx) = usize::try_from((r.started_ms - first).div_euclid(bucket_ms)) else {
                continue;
            };
            // A record stored twice is one invocation (as in usage).
            if idx >= out.len() || !seen.insert((r.request_id, r.started_ms)) {
                continue;
            }
            let b = &mut out[idx];
            b.invocations += 1;
            b.errors += u64::from(r.error_type.is_some());
            b.max_duration_ms = b.max_duration_ms.max(r.duration_ms);
            sums[idx] += r.duration_ms;
        }
        for (b, sum) in out.iter_mut().zip(sums) {
            if b.invocations > 0 {
                #[allow(clippy::cast_precision_loss)]
                let n = b.invocations as f64;
                b.mean_duration_ms = sum / n;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bucket_bounds_end_at_now() {
        // The arithmetic of `activity`: 3 buckets of 60 s ending at 125 s start at 0 s.
        let (now, bucket, count) = (125_000_i64, 60_000_i64, 3_i64);
        let first = (now.div_euclid(bucket) - count + 1) * bucket;
        assert_eq!(first, 0);
        assert_eq!((now - first).div_euclid(bucket), 2);
    }
}

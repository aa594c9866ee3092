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
    use alonzo_model::InvocationRecord;

    fn record(
        id: &str,
        function: &str,
        started_ms: i64,
        duration_ms: f64,
        error: bool,
    ) -> InvocationRecord {
        InvocationRecord {
            request_id: id.into(),
            function: function.into(),
            version: "$LATEST".into(),
            started_ms,
            duration_ms,
            billed_ms: 1,
            memory_mb: 128,
            init_ms: None,
            error_type: error.then(|| "Runtime.Error".into()),
            ephemeral_mb: 512,
            provisioned: false,
        }
    }

    #[tokio::test]
    async fn buckets_count_invocations_errors_and_durations() {
        let dir = tempfile::tempdir().unwrap();
        let control =
            crate::testing::control_with_prices(dir.path(), crate::PriceTable::default()).await;
        // Three one-minute buckets ending at 180.5 s: [60, 120), [120, 180), [180, 240).
        let records = [
            record("too-old", "f", 59_999, 1.0, false),
            record("a", "f", 60_000, 2.0, false),
            record("b", "f", 61_000, 4.0, true),
            record("c", "g", 150_000, 9.0, false),
            record("d", "f", 180_400, 6.0, false),
        ];
        control.inner.meta.record_invocations(&records).await.unwrap();
        control.inner.meta.record_invocations(&records[1..2]).await.unwrap();

        let f = control.activity(Some("f"), 180_500, 60_000, 3).await.unwrap();
        let starts: Vec<i64> = f.iter().map(|b| b.start_ms).collect();
        assert_eq!(starts, [60_000, 120_000, 180_000]);
        let counts: Vec<(u64, u64)> = f.iter().map(|b| (b.invocations, b.errors)).collect();
        assert_eq!(counts, [(2, 1), (0, 0), (1, 0)], "a record stored twice counts once");
        assert!((f[0].mean_duration_ms - 3.0).abs() < 1e-9);
        assert!((f[0].max_duration_ms - 4.0).abs() < 1e-9);
        let all = control.activity(None, 180_500, 60_000, 3).await.unwrap();
        assert_eq!(all.iter().map(|b| b.invocations).collect::<Vec<_>>(), [2, 1, 1]);
    }
}

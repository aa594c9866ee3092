//! Inline SVG bar charts of recent activity (invocations, errors, duration per minute), drawn
//! on the server: no chart library, no script, nothing fetched from elsewhere.

use alonzo_control::ActivityBucket;
use maud::{html, Markup};

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 150.0;
/// Room at the bottom for the time axis.
const AXIS: f64 = 22.0;

/// One series to draw.
struct Series<'a> {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    class: &'static str,
    values: Vec<f64>,
    /// A second, lighter series drawn behind (the maximum duration behind the mean).
    behind: Option<Vec<f64>>,
    total: String,
    buckets: &'a [ActivityBucket],
}

/// The three charts of a period, side by side on wide screens.
pub(crate) fn activity_charts(buckets: &[ActivityBucket]) -> Markup {
    #[allow(clippy::cast_precision_loss)]
    let count = |f: fn(&ActivityBucket) -> u64| -> Vec<f64> {
        buckets.iter().map(|b| f(b) as f64).collect()
    };
    let invocations: u64 = buckets.iter().map(|b| b.invocations).sum();
    let errors: u64 = buckets.iter().map(|b| b.errors).sum();
    let max_duration = buckets.iter().map(|b| b.max_duration_ms).fold(0.0, f64::max);
    let charts = [
        Series {
            id: "chart-invocations",
            title: "Invocations",
            unit: "",
            class: "bar",
            values: count(|b| b.invocations),
            behind: None,
            total: invocations.to_string(),
            buckets,
        },
        Series {
            id: "chart-errors",
            title: "Errors",
            unit: "",
            class: "bar err",
            values: count(|b| b.errors),
            behind: None,
            total: errors.to_string(),
            buckets,
        },
        Series {
            id: "chart-duration",
            title: "Duration (mean, max)",
            unit: " ms",
            class: "bar dur",
            values: buckets.iter().map(|b| b.mean_duration_ms).collect(),
            behind: Some(buckets.iter().map(|b| b.max_duration_ms).collect()),
            total: if max_duration > 0.0 {
                format!("max {max_duration:.1} ms")
            } else {
                "–".to_owned()
            },
            buckets,
        },
    ];
    html! {
        div.charts {
            @for s in &charts { (draw(s)) }
        }
    }
}

fn draw(s: &Series<'_>) -> Markup {
    let top =
        s.values.iter().chain(s.behind.iter().flatten()).copied().fold(0.0, f64::max).max(1.0);
    #[allow(clippy::cast_precision_loss)]
    let slot = WIDTH / s.values.len().max(1) as f64;
    let plot = HEIGHT - AXIS;
    let y = |v: f64| plot - v / top * (plot - 6.0);
    let label = |idx: usize| {
        s.buckets.get(idx).map(|b| crate::console::layout::time(b.start_ms)).unwrap_or_default()
    };
    let first = label(0);
    let last = label(s.values.len().saturating_sub(1));
    html! {
        figure.chart id=(s.id) data-total=(s.total) {
            figcaption { span { (s.title) } span.total { (s.total) } }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(s.title) xmlns="http://www.w3.org/2000/svg" {
                line.grid x1="0" x2=(WIDTH) y1=(y(top)) y2=(y(top)) {}
                line.grid x1="0" x2=(WIDTH) y1=(y(top / 2.0)) y2=(y(top / 2.0)) {}
                line.axis x1="0" x2=(WIDTH) y1=(plot) y2=(plot) {}
                text.tick x="4" y=(y(top) + 15.0) { (fmt(top)) (s.unit) }
                @if let Some(behind) = &s.behind {
                    @for (i, v) in behind.iter().enumerate() { @if *v > 0.0 {
                        rect.bar.max x=(x(i, slot)) y=(y(*v)) width=(bar_width(slot)) height=(plot - y(*v)) {}
                    } }
                }
                @for (i, v) in s.values.iter().enumerate() { @if *v > 0.0 {
                    rect class=(s.class) x=(x(i, slot)) y=(y(*v)) width=(bar_width(slot)) height=(plot - y(*v)) {
                        title { (label(i)) ": " (fmt(*v)) (s.unit) }
                    }
                } }
                text.tick x="2" y=(HEIGHT - 4.0) { (short_time(&first)) }
                text.tick.end x=(WIDTH - 2.0) y=(HEIGHT - 4.0) { (short_time(&last)) " UTC" }
            }
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn x(idx: usize, slot: f64) -> f64 {
    idx as f64 * slot + slot * 0.1
}

fn bar_width(slot: f64) -> f64 {
    (slot * 0.8).max(1.0)
}

/// `HH:MM` of a `YYYY-MM-DD HH:MM:SS` time.
fn short_time(full: &str) -> &str {
    full.get(11..16).unwrap_or(full)
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_only_for_buckets_with_invocations() {
        let buckets: Vec<ActivityBucket> = (0..4)
            .map(|i| ActivityBucket {
                start_ms: i * 60_000,
                invocations: u64::try_from(i % 2).unwrap_or(0) * 3,
                errors: 0,
                mean_duration_ms: 2.5,
                max_duration_ms: 4.0,
            })
            .collect();
        let svg = activity_charts(&buckets).into_string();
        assert!(svg.contains(r#"data-total="6""#), "{svg}");
        let invocations = svg.split("chart-errors").next().unwrap_or("");
        assert_eq!(invocations.matches("<rect").count(), 2, "{invocations}");
    }
}

//! The Prometheus endpoint: `GET /metrics` on its own listen address (`--metrics-listen`),
//! unsigned, as scrapers expect. The figures come from the control plane's registry; this
//! module adds only the depths of the built-in queues and the HTTP around them.

use alonzo_control::{Control, QueueDepth};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// OpenMetrics 1.0 text, which Prometheus negotiates and parses natively.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone)]
struct MetricsState {
    control: Control,
    queues: alonzo_queue::Queues,
}

/// Serves `/metrics` on `listener` until the process exits.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    control: Control,
    queues: alonzo_queue::Queues,
) {
    let app = axum::Router::new()
        .route("/metrics", get(scrape))
        .with_state(MetricsState { control, queues });
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the metrics endpoint stopped");
    }
}

async fn scrape(State(state): State<MetricsState>) -> impl IntoResponse {
    let body = state.control.encode_metrics(&queue_depths(&state.queues).await);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

/// Visible, in-flight and delayed messages of every queue, counted now.
async fn queue_depths(queues: &alonzo_queue::Queues) -> Vec<QueueDepth> {
    let wanted: Vec<String> = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut depths = Vec::new();
    for name in queues.list_queues("") {
        // A queue deleted since the listing is simply left out.
        let Ok(attributes) = queues.queue_attributes(&name, &wanted).await else { continue };
        let count = |key: &str| attributes.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
        depths.push(QueueDepth {
            visible: count("ApproximateNumberOfMessages"),
            in_flight: count("ApproximateNumberOfMessagesNotVisible"),
            delayed: count("ApproximateNumberOfMessagesDelayed"),
            queue: name,
        });
    }
    depths
}

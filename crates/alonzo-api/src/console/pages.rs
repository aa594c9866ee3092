//! The console's pages: the functions list, one function (configuration, versions, aliases,
//! invoke, charts), live concurrency, the log viewer, usage and cost, and queues. Each page is
//! rendered whole on the server; the parts that refresh themselves are fetched again from
//! `data.rs`.

use std::sync::Arc;

use alonzo_control::{ControlError, UsageQuery};
use alonzo_model::FunctionRecord;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use crate::console::layout::{self, money, page, Section};
use crate::console::session::Session;
use crate::console::{chart, data, ConsoleState, PREFIX};

/// Most functions the list shows.
const MAX_FUNCTIONS: usize = 1000;

/// A page that could not be shown: rendered as a page, with its status.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl From<ControlError> for PageError {
    fn from(e: ControlError) -> Self {
        let api = crate::ApiError::from(e);
        let status = api.status();
        let message = match status {
            StatusCode::NOT_FOUND => "Not found.".to_owned(),
            s if s.is_server_error() => "The server could not answer; see its log.".to_owned(),
            _ => api.message().to_owned(),
        };
        Self { status, message }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let body = layout::bare(
            "Error",
            html! {
                p.error { (self.message) }
                p { a href={ (PREFIX) "/" } { "Back to the functions" } }
            },
        );
        (self.status, Html(body.into_string())).into_response()
    }
}

type PageResult = Result<Html<String>, PageError>;

/// Percent-encodes a query value.
pub(crate) fn url_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn function_link(name: &str) -> String {
    format!("{PREFIX}/functions/{}", url_encode(name))
}

/// The `$LATEST` of every function (up to [`MAX_FUNCTIONS`]).
pub(crate) async fn all_functions(
    console: &ConsoleState,
) -> Result<Vec<FunctionRecord>, ControlError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = console.api.control.list_functions(marker.as_deref(), None, false).await?;
        out.extend(page.items);
        match page.next_marker {
            Some(m) if out.len() < MAX_FUNCTIONS => marker = Some(m),
            _ => return Ok(out),
        }
    }
}

/// `GET /`: every function, with a summary of the account.
pub(crate) async fn functions(
    State(console): State<Arc<ConsoleState>>,
    Extension(session): Extension<Session>,
) -> PageResult {
    let functions = all_functions(&console).await?;
    let stats = console.api.control.concurrency_stats().unwrap_or_default();
    let now = chrono::Utc::now().timestamp_millis();
    let hour = console.api.control.activity(None, now, 60_000, 60).await?;
    let invocations: u64 = hour.iter().map(|b| b.invocations).sum();
    let errors: u64 = hour.iter().map(|b| b.errors).sum();
    let queues = console.api.queues.list_queues("").len();
    let content = html! {
        div.cards {
            div.card.stat { span.label { "Functions" } span.value { (functions.len()) } }
            div.card.stat { span.label { "Running now" } span.value { (stats.busy) " / " (stats.concurrency_limit) } }
            div.card.stat { span.label { "Invocations, last hour" } span.value id="hour-invocations" { (invocations) } }
            div.card.stat { span.label { "Errors, last hour" } span.value.bad[errors > 0] { (errors) } }
            div.card.stat { span.label { "Queues" } span.value { a href={ (PREFIX) "/queues" } { (queues) } } }
        }
        section.card {
            h2 { "Invocations, last hour (all functions)" }
            div.chart-panel data-refresh={ (PREFIX) "/api/charts" } data-interval="5000" {
                (chart::activity_charts(&hour))
            }
        }
        section.card {
            h2 { "Functions" }
            @if functions.is_empty() {
                p.muted { "No functions yet. Create one with the AWS CLI, an SDK or Terraform." }
            } @else {
                div.table-wrap { table id="functions" {
                    thead { tr { th { "Name" } th { "Runtime" } th { "Memory" } th { "Architecture" } th { "State" } th { "Last modified" } th { "Description" } } }
                    tbody { @for f in &functions {
                        tr {
                            td { a.fn-link href=(function_link(&f.name)) { (f.name) } }
                            td { (f.config.runtime) }
                            td.num { (f.config.memory_size) " MB" }
                            td { (arch(f)) }
                            td { span class={ "badge " (f.state.as_str().to_lowercase()) } { (f.state.as_str()) } }
                            td { (f.last_modified.format("%Y-%m-%d %H:%M")) }
                            td.muted { (f.config.description) }
                        }
                    } }
                } }
            }
        }
    };
    Ok(Html(page("Functions", Section::Functions, &session, content).into_string()))
}

fn arch(f: &FunctionRecord) -> &'static str {
    f.config.architectures.first().map_or("x86_64", |a| a.as_str())
}

/// `GET /functions/{name}`: configuration, versions, aliases, invoke, charts, recent logs.
pub(crate) async fn function(
    State(console): State<Arc<ConsoleState>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
) -> PageResult {
    let control = &console.api.control;
    let latest = control.get_function(&name, None).await?.record;
    let name = latest.name.clone();
    let versions = control.list_versions(&name, None, None).await?.items;
    let aliases = control.list_aliases(&name, None, None, None).await?.items;
    let reserved = control.get_function_concurrency(&name).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let hour = control.activity(Some(&name), now, 60_000, 60).await?;
    let group = format!("/aws/lambda/{name}");
    let c = &latest.config;
    let content = html! {
        p.crumbs { a href={ (PREFIX) "/" } { "Functions" } " / " strong { (name) } }
        div.grid2 {
            section.card {
                h2 { "Configuration" }
                table.kv id="configuration" { tbody {
                    tr { th { "Runtime" } td { (c.runtime) } }
                    tr { th { "Handler" } td { code { (c.handler) } } }
                    tr { th { "Memory" } td { (c.memory_size) " MB" } }
                    tr { th { "Timeout" } td { (c.timeout) " s" } }
                    tr { th { "Ephemeral storage" } td { (c.ephemeral_storage) " MB" } }
                    tr { th { "Architecture" } td { (arch(&latest)) } }
                    tr { th { "State" } td { (latest.state.as_str()) " · " (latest.last_update_status.as_str()) } }
                    tr { th { "Reserved concurrency" } td { @if let Some(r) = reserved { (r) } @else { span.muted { "none (unreserved pool)" } } } }
                    tr { th { "Role" } td.break { (c.role) } }
                    tr { th { "Code" } td { (latest.code.size) " bytes · " code.break { (latest.code.sha256_hex) } } }
                    tr { th { "Last modified" } td { (latest.last_modified.to_rfc3339()) } }
                    tr { th { "Revision" } td { code { (latest.revision_id) } } }
                    @if !c.description.is_empty() { tr { th { "Description" } td { (c.description) } } }
                    @if !c.layers.is_empty() { tr { th { "Layers" } td { @for l in &c.layers { div.break { (l) } } } } }
                    @if let Some(dlq) = &c.dead_letter_target { tr { th { "Dead-letter target" } td.break { (dlq) } } }
                } }
                @if !c.environment.is_empty() {
                    h3 { "Environment variables" }
                    table.kv id="environment" { tbody { @for (k, v) in &c.environment { tr { th { code { (k) } } td.break { code { (v) } } } } } }
                }
            }
            section.card {
                h2 { "Invoke" }
                form id="invoke-form" data-function=(name) {
                    label { "Qualifier"
                        select name="qualifier" id="invoke-qualifier" {
                            @for v in &versions { option value=(v.version) { (v.version) } }
                            @for a in &aliases { option value=(a.name) { "alias " (a.name) } }
                        }
                    }
                    label { "Event (JSON)"
                        textarea name="payload" id="invoke-payload" rows="8" spellcheck="false" { "{\n  \"hello\": \"world\"\n}" }
                    }
                    div.row { button.primary type="submit" id="invoke-button" { "Invoke" } span id="invoke-status" .muted {} }
                }
                h3 { "Response" }
                pre.output id="invoke-result" { span.muted { "Not invoked yet." } }
                h3 { "Log tail" }
                pre.output.log id="invoke-log" {}
            }
        }
        section.card {
            h2 { "Last hour" }
            div.chart-panel data-refresh={ (PREFIX) "/api/charts?function=" (url_encode(&name)) } data-interval="5000" {
                (chart::activity_charts(&hour))
            }
        }
        div.grid2 {
            section.card {
                h2 { "Versions" }
                div.table-wrap { table id="versions" {
                    thead { tr { th { "Version" } th { "Description" } th { "Runtime" } th { "Last modified" } } }
                    tbody { @for v in &versions { tr {
                        td { (v.version) } td.muted { (v.config.description) } td { (v.config.runtime) }
                        td { (v.last_modified.format("%Y-%m-%d %H:%M")) }
                    } } }
                } }
            }
            section.card {
                h2 { "Aliases" }
                @if aliases.is_empty() { p.muted { "No aliases." } } @else {
                    div.table-wrap { table id="aliases" {
                        thead { tr { th { "Alias" } th { "Version" } th { "Routing" } th { "Description" } } }
                        tbody { @for a in &aliases { tr {
                            td { (a.name) } td { (a.function_version) }
                            td { @for (v, w) in &a.routing { (v) ": " (format!("{:.0}%", w * 100.0)) " " } }
                            td.muted { (a.description) }
                        } } }
                    } }
                }
            }
        }
        section.card {
            h2 { "Logs " a.small href={ (PREFIX) "/logs?group=" (url_encode(&group)) } { "open the log viewer →" } }
            (log_viewer(&console, &group, ""))
        }
    };
    Ok(Html(page(&name, Section::Functions, &session, content).into_string()))
}

/// `GET /concurrency`: busy, idle and provisioned environments per version, throttles and
/// reservations, refreshed every two seconds.
pub(crate) async fn concurrency(
    State(console): State<Arc<ConsoleState>>,
    Extension(session): Extension<Session>,
) -> PageResult {
    let content = html! {
        p.muted { "Live figures of the execution environments, as " code { "alonzo top" } " shows them; refreshed every 2 seconds." }
        div data-refresh={ (PREFIX) "/api/concurrency" } data-interval="2000" {
            (data::concurrency_fragment(&console).await?)
        }
    };
    Ok(Html(page("Concurrency", Section::Concurrency, &session, content).into_string()))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogsQuery {
    group: Option<String>,
    filter: Option<String>,
}

/// `GET /logs?group=&filter=`: a log group's recent events, filtered, with live tail.
pub(crate) async fn logs(
    State(console): State<Arc<ConsoleState>>,
    Extension(session): Extension<Session>,
    Query(q): Query<LogsQuery>,
) -> PageResult {
    let store = console.api.control.log_store();
    let groups = store.groups("");
    let group = q
        .group
        .filter(|g| !g.is_empty())
        .or_else(|| groups.first().map(|g| g.name.clone()))
        .unwrap_or_default();
    let filter = q.filter.unwrap_or_default();
    let content = html! {
        form.toolbar method="get" action={ (PREFIX) "/logs" } {
            label { "Log group"
                select name="group" id="log-group" {
                    @for g in &groups { option value=(g.name) selected[g.name == group] { (g.name) } }
                    @if groups.is_empty() { option value="" { "(no log groups yet)" } }
                }
            }
            label.grow { "Filter pattern"
                input type="search" name="filter" id="log-filter" value=(filter) placeholder="ERROR  \"exact phrase\"  ?alt1 ?alt2";
            }
            button type="submit" id="log-search" { "Search" }
        }
        @if group.is_empty() { p.muted { "No logs yet: invoke a function." } } @else { (log_viewer(&console, &group, &filter)) }
    };
    Ok(Html(page("Logs", Section::Logs, &session, content).into_string()))
}

/// The last events of `group` matching `filter`, and the live-tail switch.
fn log_viewer(console: &ConsoleState, group: &str, filter: &str) -> Markup {
    let events = data::recent_events(console, group, filter, None);
    let after = events.last().map(|e| e.timestamp_ms).unwrap_or(0);
    html! {
        div.log-viewer data-group=(group) data-filter=(filter) data-after=(after) {
            div.row {
                label.switch { input type="checkbox" class="live-tail" checked; " Live tail" }
                span.muted { "Newest at the bottom · at most " (data::MAX_EVENTS) " events" }
            }
            pre.output.log.log-events {
                @if events.is_empty() { span.muted.empty { "No events" @if !filter.is_empty() { " match" } "." } }
                @for e in &events { (data::event_line(e)) }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct UsageParams {
    since: Option<String>,
    until: Option<String>,
}

/// `GET /usage?since=&until=`: requests, GB-seconds, provisioned concurrency, extra ephemeral
/// storage and cost per function and month.
pub(crate) async fn usage(
    State(console): State<Arc<ConsoleState>>,
    Extension(session): Extension<Session>,
    Query(q): Query<UsageParams>,
) -> PageResult {
    let parse = |v: &Option<String>, key: &str| -> Result<Option<i64>, PageError> {
        match v.as_deref().filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(text) => crate::platform::parse_instant(text).map(Some).ok_or_else(|| PageError {
                status: StatusCode::BAD_REQUEST,
                message: format!("{key} must be a date (YYYY-MM-DD) or an RFC 3339 time."),
            }),
        }
    };
    let query = UsageQuery {
        since_ms: parse(&q.since, "since")?,
        until_ms: parse(&q.until, "until")?,
        function: None,
    };
    let report = console.api.control.usage(query).await?;
    let cur = &report.prices.currency;
    let prices = &report.prices;
    // Columns for provisioned concurrency and extra ephemeral storage only when there are some.
    let provisioned = report
        .functions
        .iter()
        .any(|u| u.provisioned_gb_seconds > 0.0 || u.provisioned_requests > 0);
    let ephemeral = report.functions.iter().any(|u| u.ephemeral_gb_seconds > 0.0);
    let content = html! {
        form.toolbar method="get" action={ (PREFIX) "/usage" } {
            label { "Since" input type="date" name="since" value=[q.since.as_deref()]; }
            label { "Until" input type="date" name="until" value=[q.until.as_deref()]; }
            button type="submit" { "Apply" }
        }
        div.cards {
            div.card.stat { span.label { "Total cost (after free tier)" } span.value id="total-cost" { (money(report.total_cost, cur)) } }
            div.card.stat { span.label { "Requests" } span.value id="total-requests" { (report.months.iter().map(|m| m.requests).sum::<u64>()) } }
            div.card.stat { span.label { "GB-seconds" } span.value { (format!("{:.3}", report.months.iter().map(|m| m.gb_seconds).sum::<f64>())) } }
            @if provisioned {
                div.card.stat { span.label { "Provisioned GB-seconds" } span.value id="total-provisioned" { (format!("{:.3}", report.months.iter().map(|m| m.provisioned_gb_seconds).sum::<f64>())) } }
            }
        }
        section.card {
            h2 { "Per function and month" }
            @if report.functions.is_empty() { p.muted { "No invocations in this period." } } @else {
                div.table-wrap { table id="usage" {
                    thead { tr {
                        th { "Month" } th { "Function" } th { "Arch" } th.num { "Requests" } th.num { "Errors" } th.num { "Billed ms" } th.num { "GB-seconds" }
                        @if provisioned { th.num { "On provisioned" } th.num { "Provisioned GB-s" } th.num { "Provisioned cost" } }
                        @if ephemeral { th.num { "Ephemeral GB-s" } th.num { "Ephemeral cost" } }
                        th.num { "Cost before free tier" }
                    } }
                    tbody { @for u in &report.functions { tr data-function=(u.function) {
                        td { (u.month) } td { a href=(function_link(&u.function)) { (u.function) } } td { (u.architecture) }
                        td.num.requests { (u.requests) } td.num { (u.errors) } td.num { (u.billed_ms) }
                        td.num { (format!("{:.4}", u.gb_seconds)) }
                        @if provisioned {
                            td.num { (u.provisioned_requests) } td.num.provisioned { (format!("{:.3}", u.provisioned_gb_seconds)) } td.num { (money(u.provisioned_cost, cur)) }
                        }
                        @if ephemeral { td.num { (format!("{:.3}", u.ephemeral_gb_seconds)) } td.num { (money(u.ephemeral_cost, cur)) } }
                        td.num { (money(u.gross_cost, cur)) }
                    } } }
                } }
            }
        }
        section.card {
            h2 { "Per month, account-wide" }
            div.table-wrap { table id="months" {
                thead { tr { th { "Month" } th.num { "Requests" } th.num { "GB-seconds" } th.num { "Gross" } th.num { "Free requests" } th.num { "Free GB-s" } th.num { "Cost" } } }
                tbody { @for m in &report.months { tr {
                    td { (m.month) } td.num { (m.requests) } td.num { (format!("{:.3}", m.gb_seconds)) }
                    td.num { (money(m.gross_cost, cur)) } td.num { (m.free_requests) } td.num { (format!("{:.3}", m.free_gb_seconds)) }
                    td.num { strong { (money(m.cost, cur)) } }
                } } }
            } }
            p.muted { "Prices per GB-second, x86_64 / arm64: on-demand duration "
                (prices.gb_second_x86_64) " / " (prices.gb_second_arm64) ", provisioned concurrency "
                (prices.provisioned_gb_second_x86_64) " / " (prices.provisioned_gb_second_arm64) ", duration on provisioned environments "
                (prices.provisioned_duration_gb_second_x86_64) " / " (prices.provisioned_duration_gb_second_arm64) ", ephemeral storage above 512 MB "
                (prices.ephemeral_gb_second_x86_64) " / " (prices.ephemeral_gb_second_arm64) "; "
                (money(prices.request_per_million, cur)) " per million requests. Free each month: "
                (prices.free_requests_per_month) " requests and " (prices.free_gb_seconds_per_month)
                " GB-seconds of on-demand duration (not provisioned concurrency)." }
        }
    };
    Ok(Html(page("Usage & cost", Section::Usage, &session, content).into_string()))
}

/// `GET /queues`: every built-in queue with its depths, refreshed every two seconds.
pub(crate) async fn queues(
    State(console): State<Arc<ConsoleState>>,
    Extension(session): Extension<Session>,
) -> PageResult {
    let content = html! {
        p.muted { "The built-in SQS-compatible queues; refreshed every 2 seconds." }
        div data-refresh={ (PREFIX) "/api/queues" } data-interval="2000" {
            (data::queues_fragment(&console).await)
        }
    };
    Ok(Html(page("Queues", Section::Queues, &session, content).into_string()))
}

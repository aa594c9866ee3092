//! `alonzo logs NAME [--follow]`: a function's log lines (its log group, per its
//! `LoggingConfig`), read through the CloudWatch Logs-compatible API.

use std::collections::HashSet;

use crate::cli::LogsArgs;
use crate::client::Client;

/// Prints the lines, then keeps polling with `--follow`.
pub(crate) async fn run(args: &LogsArgs) -> anyhow::Result<()> {
    let client = Client::from_args(&args.client)?;
    let name = crate::client::percent_encode(&args.function);
    let config =
        client.call("GET", &format!("/2015-03-31/functions/{name}/configuration"), None).await?;
    let group = config.body["LoggingConfig"]["LogGroup"].as_str().map_or_else(
        || {
            format!(
                "/aws/lambda/{}",
                config.body["FunctionName"].as_str().unwrap_or(&args.function)
            )
        },
        str::to_owned,
    );
    let mut since = args
        .since
        .map(|d| chrono::Utc::now().timestamp_millis() - i64::try_from(d.as_millis()).unwrap_or(0));
    let mut seen = HashSet::new();
    loop {
        let mut token: Option<String> = None;
        loop {
            let mut body = serde_json::json!({ "logGroupName": group });
            if let Some(t) = since {
                body["startTime"] = t.into();
            }
            if let Some(f) = &args.filter {
                body["filterPattern"] = f.clone().into();
            }
            if let Some(t) = &token {
                body["nextToken"] = t.clone().into();
            }
            let reply =
                match client.call_target("logs", "Logs_20140328.FilterLogEvents", body).await {
                    Ok(reply) => reply,
                    // A function that never ran has no log group yet.
                    Err(e) if e.to_string().starts_with("ResourceNotFoundException") => break,
                    Err(e) => return Err(e),
                };
            for event in reply.body["events"].as_array().into_iter().flatten() {
                let id = event["eventId"].as_str().unwrap_or_default().to_owned();
                if seen.insert(id) {
                    println!("{}", event["message"].as_str().unwrap_or_default());
                    since = since.max(event["timestamp"].as_i64());
                }
            }
            token = reply.body["nextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

//! `alonzo top`: live concurrency per function version (busy, idle and provisioned
//! environments, and how long idle ones are kept), reservations and throttles, refreshed until interrupted, from the signed
//! `/_alonzo/api/concurrency` operation.

use std::fmt::Write as _;

use crate::cli::TopArgs;
use crate::client::Client;

/// Prints snapshots until interrupted (or one with `--once`).
pub(crate) async fn run(args: &TopArgs) -> anyhow::Result<()> {
    let client = Client::from_args(&args.client)?;
    loop {
        let reply = client.call("GET", "/_alonzo/api/concurrency", None).await?;
        if args.client.json {
            println!("{}", serde_json::to_string(&reply.body)?);
        } else {
            let screen = render(&reply.body);
            if args.once {
                print!("{screen}");
            } else {
                // Clear the terminal and redraw.
                print!("\x1b[2J\x1b[H{screen}");
            }
        }
        if args.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The snapshot as text.
fn render(body: &serde_json::Value) -> String {
    let mut out = String::new();
    let num = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let _ = writeln!(
        out,
        "concurrency: {} busy of {} (unreserved pool {})",
        num(&body["Busy"]),
        num(&body["ConcurrencyLimit"]),
        num(&body["UnreservedConcurrentExecutions"])
    );
    let mut rows: Vec<[String; 8]> = Vec::new();
    let empty = Vec::new();
    for v in body["Versions"].as_array().unwrap_or(&empty) {
        let function = v["Function"].as_str().unwrap_or("").to_owned();
        rows.push([
            function.clone(),
            v["Version"].as_str().unwrap_or("").to_owned(),
            num(&v["Busy"]).to_string(),
            num(&v["Idle"]).to_string(),
            num(&v["Provisioned"]).to_string(),
            body["Reserved"].get(&function).map_or("-".to_owned(), |r| num(r).to_string()),
            num(body["Throttles"].get(&function).unwrap_or(&serde_json::Value::Null)).to_string(),
            v["KeepAliveSeconds"].as_f64().map_or("-".to_owned(), seconds),
        ]);
    }
    // Functions that were throttled or have a reservation but no environment now.
    for key in ["Throttles", "Reserved"] {
        if let Some(map) = body[key].as_object() {
            for function in map.keys() {
                if !rows.iter().any(|r| &r[0] == function) {
                    rows.push([
                        function.clone(),
                        "-".into(),
                        "0".into(),
                        "0".into(),
                        "0".into(),
                        body["Reserved"]
                            .get(function)
                            .map_or("-".to_owned(), |r| num(r).to_string()),
                        num(body["Throttles"].get(function).unwrap_or(&serde_json::Value::Null))
                            .to_string(),
                        "-".into(),
                    ]);
                }
            }
        }
    }
    rows.sort();
    let header = [
        "FUNCTION",
        "VERSION",
        "BUSY",
        "IDLE",
        "PROVISIONED",
        "RESERVED",
        "THROTTLES",
        "KEEP-ALIVE",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0).max(header[i].len()))
        .collect();
    let line = |cells: &[&str]| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let _ = writeln!(out, "{}", line(&header));
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(no environments)");
    }
    out
}

/// A keep-alive for the table: `300s`, `2.4s`.
fn seconds(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

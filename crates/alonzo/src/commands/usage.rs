//! `alonzo usage`: requests, GB-seconds and cost per function and month, from the signed
//! `/_alonzo/api/usage` operation, as a table, JSON or CSV.

use std::fmt::Write as _;

use crate::cli::{UsageArgs, UsageFormat};
use crate::client::{percent_encode, Client};

/// Prints the usage report.
pub(crate) async fn run(args: &UsageArgs) -> anyhow::Result<()> {
    let client = Client::from_args(&args.client)?;
    let mut query = Vec::new();
    for (key, value) in
        [("since", &args.since), ("until", &args.until), ("function", &args.function)]
    {
        if let Some(value) = value {
            query.push(format!("{key}={}", percent_encode(value)));
        }
    }
    let path = if query.is_empty() {
        "/_alonzo/api/usage".to_owned()
    } else {
        format!("/_alonzo/api/usage?{}", query.join("&"))
    };
    let reply = client.call("GET", &path, None).await?;
    let format = if args.client.json { UsageFormat::Json } else { args.format };
    match format {
        UsageFormat::Json => println!("{}", serde_json::to_string_pretty(&reply.body)?),
        UsageFormat::Csv => print!("{}", csv(&reply.body)),
        UsageFormat::Table => print!("{}", table(&reply.body)),
    }
    Ok(())
}

const COLUMNS: [&str; 9] = [
    "month",
    "function",
    "architecture",
    "requests",
    "errors",
    "billed_ms",
    "gb_seconds",
    "request_cost",
    "compute_cost",
];

/// One row per function and month, with the columns of [`COLUMNS`] and the gross cost.
fn rows(body: &serde_json::Value) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for f in body["functions"].as_array().into_iter().flatten() {
        let text = |k: &str| match &f[k] {
            serde_json::Value::String(s) => s.clone(),
            // Plain decimals (never exponents), at full precision.
            serde_json::Value::Number(n) => {
                n.as_u64().map_or_else(|| n.as_f64().unwrap_or(0.0).to_string(), |v| v.to_string())
            }
            _ => String::new(),
        };
        let mut row: Vec<String> = COLUMNS.iter().map(|k| text(k)).collect();
        row.push(f["gross_cost"].as_f64().unwrap_or(0.0).to_string());
        rows.push(row);
    }
    rows
}

fn money(v: f64) -> String {
    format!("{v:.6}")
}

/// CSV (RFC 4180: fields with commas or quotes are quoted).
fn csv(body: &serde_json::Value) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "{},gross_cost", COLUMNS.join(","));
    for row in rows(body) {
        let _ = writeln!(out, "{}", row.iter().map(|c| quote(c)).collect::<Vec<_>>().join(","));
    }
    out
}

/// The per-function table, then each month's total with the free tier applied.
fn table(body: &serde_json::Value) -> String {
    let currency = body["prices"]["currency"].as_str().unwrap_or("USD");
    let mut out = String::new();
    let mut all = vec![vec![
        "MONTH".to_owned(),
        "FUNCTION".into(),
        "ARCH".into(),
        "REQUESTS".into(),
        "ERRORS".into(),
        "BILLED_MS".into(),
        "GB_SECONDS".into(),
        "COST".into(),
    ]];
    for row in rows(body) {
        let gb = row[6].parse::<f64>().map_or(row[6].clone(), |v| format!("{v:.3}"));
        all.push(vec![
            row[0].clone(),
            row[1].clone(),
            row[2].clone(),
            row[3].clone(),
            row[4].clone(),
            row[5].clone(),
            gb,
            row[9].parse::<f64>().map_or(row[9].clone(), money),
        ]);
    }
    if all.len() == 1 {
        out.push_str("No invocations in this period.\n");
    } else {
        let widths: Vec<usize> =
            (0..8).map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
        for row in &all {
            let line: Vec<String> =
                row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
    }
    for m in body["months"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{}: {} requests, {:.3} GB-s; {} {} before, {} {} after the free tier ({} requests, {:.3} GB-s free)",
            m["month"].as_str().unwrap_or(""),
            m["requests"].as_u64().unwrap_or(0),
            m["gb_seconds"].as_f64().unwrap_or(0.0),
            money(m["gross_cost"].as_f64().unwrap_or(0.0)),
            currency,
            money(m["cost"].as_f64().unwrap_or(0.0)),
            currency,
            m["free_requests"].as_u64().unwrap_or(0),
            m["free_gb_seconds"].as_f64().unwrap_or(0.0),
        );
    }
    let _ =
        writeln!(out, "total: {} {currency}", money(body["total_cost"].as_f64().unwrap_or(0.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "functions": [{"month": "2026-11", "function": "a,b", "architecture": "x86_64",
                "requests": 3, "errors": 1, "billed_ms": 300, "gb_seconds": 0.075,
                "request_cost": 0.0000006, "compute_cost": 0.00000125, "gross_cost": 0.00000185}],
            "months": [{"month": "2026-11", "requests": 3, "gb_seconds": 0.075, "gross_cost": 0.00000185,
                "free_requests": 3, "free_gb_seconds": 0.075, "cost": 0.0}],
            "total_cost": 0.0,
            "prices": {"currency": "USD"}
        })
    }

    #[test]
    fn csv_quotes_and_keeps_exact_numbers() {
        let text = csv(&sample());
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("month,function,architecture,requests,errors,billed_ms,gb_seconds,request_cost,compute_cost,gross_cost")
        );
        assert_eq!(
            lines.next(),
            Some("2026-11,\"a,b\",x86_64,3,1,300,0.075,0.0000006,0.00000125,0.00000185")
        );
    }

    #[test]
    fn table_shows_rows_and_month_totals() {
        let text = table(&sample());
        assert!(text.contains("MONTH"), "{text}");
        assert!(text.contains("2026-11: 3 requests, 0.075 GB-s"), "{text}");
        assert!(text.ends_with("total: 0.000000 USD\n"), "{text}");
    }
}

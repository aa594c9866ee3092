//! `alonzo usage`: requests, GB-seconds, provisioned concurrency, extra ephemeral storage and
//! cost per function and month, from the signed `/_alonzo/api/usage` operation, as a table,
//! JSON or CSV.

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

/// The CSV columns: the first ten as before provisioned concurrency and ephemeral storage
/// were metered, then theirs (so older readers that go by position keep working).
const COLUMNS: [&str; 16] = [
    "month",
    "function",
    "architecture",
    "requests",
    "errors",
    "billed_ms",
    "gb_seconds",
    "request_cost",
    "compute_cost",
    "gross_cost",
    "provisioned_requests",
    "provisioned_duration_gb_seconds",
    "provisioned_gb_seconds",
    "ephemeral_gb_seconds",
    "provisioned_cost",
    "ephemeral_cost",
];

/// A field of a report row as text: strings as they are, numbers as plain decimals (never
/// exponents) at full precision, missing fields empty.
fn text(row: &serde_json::Value, key: &str) -> String {
    match &row[key] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => {
            n.as_u64().map_or_else(|| n.as_f64().unwrap_or(0.0).to_string(), |v| v.to_string())
        }
        _ => String::new(),
    }
}

fn number(row: &serde_json::Value, key: &str) -> f64 {
    row[key].as_f64().unwrap_or(0.0)
}

fn functions(body: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    body["functions"].as_array().into_iter().flatten()
}

fn money(v: f64) -> String {
    format!("{v:.6}")
}

/// CSV (RFC 4180: fields with commas or quotes are quoted), one row per function and month.
fn csv(body: &serde_json::Value) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", COLUMNS.join(","));
    for f in functions(body) {
        let row: Vec<String> = COLUMNS.iter().map(|k| quote(&text(f, k))).collect();
        let _ = writeln!(out, "{}", row.join(","));
    }
    out
}

/// The per-function table, then each month's total with the free tier applied. Columns for
/// provisioned concurrency and ephemeral storage appear only when the report has some.
fn table(body: &serde_json::Value) -> String {
    let currency = body["prices"]["currency"].as_str().unwrap_or("USD");
    let any = |key: &str| functions(body).any(|f| number(f, key) > 0.0);
    let provisioned = any("provisioned_gb_seconds") || any("provisioned_requests");
    let ephemeral = any("ephemeral_gb_seconds");
    let gb = |f: &serde_json::Value, key: &str| format!("{:.3}", number(f, key));
    let mut header =
        vec!["MONTH", "FUNCTION", "ARCH", "REQUESTS", "ERRORS", "BILLED_MS", "GB_SECONDS"];
    if provisioned {
        header.extend(["PROV_REQUESTS", "PROV_GB_SECONDS"]);
    }
    if ephemeral {
        header.push("EPHEMERAL_GB_SECONDS");
    }
    header.push("COST");
    let mut all = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for f in functions(body) {
        let mut row: Vec<String> =
            ["month", "function", "architecture", "requests", "errors", "billed_ms"]
                .iter()
                .map(|k| text(f, k))
                .collect();
        row.push(gb(f, "gb_seconds"));
        if provisioned {
            row.extend([text(f, "provisioned_requests"), gb(f, "provisioned_gb_seconds")]);
        }
        if ephemeral {
            row.push(gb(f, "ephemeral_gb_seconds"));
        }
        row.push(money(number(f, "gross_cost")));
        all.push(row);
    }
    let mut out = String::new();
    if all.len() == 1 {
        out.push_str("No invocations in this period.\n");
    } else {
        let widths: Vec<usize> =
            (0..all[0].len()).map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
        for row in &all {
            let line: Vec<String> =
                row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
    }
    for m in body["months"].as_array().into_iter().flatten() {
        let mut extra = String::new();
        for (key, label) in [
            ("provisioned_gb_seconds", "provisioned"),
            ("ephemeral_gb_seconds", "extra ephemeral storage"),
        ] {
            if number(m, key) > 0.0 {
                let _ = write!(extra, ", {:.3} GB-s {label}", number(m, key));
            }
        }
        let _ = writeln!(
            out,
            "{}: {} requests, {:.3} GB-s{extra}; {} {} before, {} {} after the free tier ({} requests, {:.3} GB-s free)",
            m["month"].as_str().unwrap_or(""),
            m["requests"].as_u64().unwrap_or(0),
            number(m, "gb_seconds"),
            money(number(m, "gross_cost")),
            currency,
            money(number(m, "cost")),
            currency,
            m["free_requests"].as_u64().unwrap_or(0),
            number(m, "free_gb_seconds"),
        );
    }
    let _ = writeln!(out, "total: {} {currency}", money(number(body, "total_cost")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> serde_json::Value {
        serde_json::json!({
            "functions": [{"month": "2026-11", "function": "a,b", "architecture": "x86_64",
                "requests": 3, "errors": 1, "billed_ms": 300, "gb_seconds": 0.075,
                "request_cost": 0.0000006, "compute_cost": 0.00000125, "gross_cost": 0.00000185,
                "provisioned_requests": 0, "provisioned_duration_gb_seconds": 0.0,
                "provisioned_gb_seconds": 0.0, "ephemeral_gb_seconds": 0.0,
                "provisioned_cost": 0.0, "ephemeral_cost": 0.0}],
            "months": [{"month": "2026-11", "requests": 3, "gb_seconds": 0.075, "gross_cost": 0.00000185,
                "free_requests": 3, "free_gb_seconds": 0.075, "cost": 0.0,
                "provisioned_gb_seconds": 0.0, "ephemeral_gb_seconds": 0.0}],
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
            Some("month,function,architecture,requests,errors,billed_ms,gb_seconds,request_cost,compute_cost,gross_cost,provisioned_requests,provisioned_duration_gb_seconds,provisioned_gb_seconds,ephemeral_gb_seconds,provisioned_cost,ephemeral_cost")
        );
        assert_eq!(
            lines.next(),
            Some(
                "2026-11,\"a,b\",x86_64,3,1,300,0.075,0.0000006,0.00000125,0.00000185,0,0,0,0,0,0"
            )
        );
    }

    #[test]
    fn table_shows_rows_and_month_totals() {
        let text = table(&sample());
        assert!(text.contains("MONTH"), "{text}");
        assert!(!text.contains("PROV_") && !text.contains("EPHEMERAL"), "{text}");
        assert!(text.contains("2026-11: 3 requests, 0.075 GB-s;"), "{text}");
        assert!(text.ends_with("total: 0.000000 USD\n"), "{text}");
    }

    #[test]
    fn table_shows_provisioned_and_ephemeral_columns_when_there_are_some() {
        let mut body = sample();
        body["functions"][0]["provisioned_requests"] = 2.into();
        body["functions"][0]["provisioned_gb_seconds"] = 150.0.into();
        body["functions"][0]["ephemeral_gb_seconds"] = 300.0.into();
        body["months"][0]["provisioned_gb_seconds"] = 150.0.into();
        body["months"][0]["ephemeral_gb_seconds"] = 300.0.into();
        let text = table(&body);
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(
            &header[7..],
            ["PROV_REQUESTS", "PROV_GB_SECONDS", "EPHEMERAL_GB_SECONDS", "COST"]
        );
        let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
        assert_eq!(&row[6..], ["0.075", "2", "150.000", "300.000", "0.000002"]);
        assert!(
            text.contains(
                "0.075 GB-s, 150.000 GB-s provisioned, 300.000 GB-s extra ephemeral storage;"
            ),
            "{text}"
        );
    }
}

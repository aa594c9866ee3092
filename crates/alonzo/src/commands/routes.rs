//! `alonzo routes`: the API gateway route table a server loaded from its routes file, per
//! stage, through the signed `/_alonzo/api/routes` operation.

use std::fmt::Write as _;

use crate::cli::ClientArgs;
use crate::client::Client;

/// Prints every stage's routes (or the JSON with `--json`).
pub(crate) async fn run(args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let reply = client.call("GET", "/_alonzo/api/routes", None).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reply.body)?);
    } else {
        print!("{}", render(&reply.body));
    }
    Ok(())
}

/// The table as text: one line per route, with the path prefix of its stage.
fn render(body: &serde_json::Value) -> String {
    let Some(stages) = body["Stages"].as_object().filter(|s| !s.is_empty()) else {
        return "No routes loaded (start the server with --routes FILE).\n".to_owned();
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let mut rows = vec![["STAGE".to_owned(), "ROUTE".into(), "FUNCTION".into(), "FORMAT".into()]];
    for (stage, value) in stages {
        for route in value["Routes"].as_array().into_iter().flatten() {
            rows.push([
                format!("/_routes/{stage}"),
                text(&route["Route"]),
                text(&route["Function"]),
                text(&route["PayloadFormat"]),
            ]);
        }
    }
    let widths: Vec<usize> =
        (0..4).map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_line_per_route() {
        let body = serde_json::json!({"Stages": {"prod": {"Variables": {}, "Routes": [
            {"Route": "GET /pets/{id}", "Function": "pets:live", "PayloadFormat": "1.0"}]}}});
        let out = render(&body);
        assert!(out.starts_with("STAGE"));
        assert!(out.contains("/_routes/prod  GET /pets/{id}  pets:live  1.0"));
        assert!(render(&serde_json::json!({"Stages": {}})).contains("No routes"));
    }
}

//! `alonzo functions`: the deployed functions as a table (or JSON), through the signed
//! `ListFunctions` API, following every page.

use crate::cli::ClientArgs;
use crate::client::Client;

/// Prints every function.
pub(crate) async fn run(args: &ClientArgs) -> anyhow::Result<()> {
    let client = Client::from_args(args)?;
    let mut functions = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let path = match &marker {
            Some(m) => format!("/2015-03-31/functions?Marker={}", crate::client::percent_encode(m)),
            None => "/2015-03-31/functions".to_owned(),
        };
        let reply = client.call("GET", &path, None).await?;
        functions.extend(reply.body["Functions"].as_array().cloned().unwrap_or_default());
        marker = reply.body["NextMarker"].as_str().map(str::to_owned);
        if marker.is_none() {
            break;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&functions)?);
        return Ok(());
    }
    print_table(&functions);
    Ok(())
}

fn print_table(functions: &[serde_json::Value]) {
    if functions.is_empty() {
        println!("No functions deployed.");
        return;
    }
    let columns = ["FunctionName", "Runtime", "MemorySize", "Timeout", "State", "LastModified"];
    let cell = |f: &serde_json::Value, c: &str| match &f[c] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let widths: Vec<usize> = columns
        .iter()
        .map(|c| functions.iter().map(|f| cell(f, c).len()).max().unwrap_or(0).max(header(c).len()))
        .collect();
    let row = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    println!("{}", row(columns.iter().map(|c| header(c).to_owned()).collect()));
    for f in functions {
        println!("{}", row(columns.iter().map(|c| cell(f, c)).collect()));
    }
}

fn header(column: &str) -> &str {
    match column {
        "FunctionName" => "NAME",
        "Runtime" => "RUNTIME",
        "MemorySize" => "MEMORY",
        "Timeout" => "TIMEOUT",
        "State" => "STATE",
        _ => "LAST MODIFIED",
    }
}

//! `alonzo invoke NAME [PAYLOAD]`: runs a function through the signed `Invoke` API and
//! prints its result (pretty JSON when it is JSON) and the tail of its log; a function error
//! makes the command exit non-zero.

use std::io::Read;

use anyhow::bail;
use base64::Engine;

use crate::cli::InvokeArgs;
use crate::client::Client;

/// Invokes and prints.
pub(crate) async fn run(args: &InvokeArgs) -> anyhow::Result<()> {
    let client = Client::from_args(&args.client)?;
    let payload = match args.payload.as_deref() {
        None => b"{}".to_vec(),
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf)?;
            buf
        }
        Some(text) => text.as_bytes().to_vec(),
    };
    let target = args.function.as_str();
    if args.asynchronous {
        let reply = client.invoke(target, payload, &[("x-amz-invocation-type", "Event")]).await?;
        let id = reply.headers.get("x-amzn-requestid").and_then(|v| v.to_str().ok()).unwrap_or("?");
        println!("queued: request id {id}");
        return Ok(());
    }
    let reply = client.invoke(target, payload, &[("x-amz-log-type", "Tail")]).await?;
    if let Some(tail) = reply.headers.get("x-amz-log-result").and_then(|v| v.to_str().ok()) {
        let text = base64::engine::general_purpose::STANDARD.decode(tail).unwrap_or_default();
        eprint!("{}", String::from_utf8_lossy(&text));
    }
    match &reply.body {
        serde_json::Value::Null => println!("{}", String::from_utf8_lossy(&reply.raw)),
        value => println!("{}", serde_json::to_string_pretty(value)?),
    }
    if let Some(error) = reply.headers.get("x-amz-function-error").and_then(|v| v.to_str().ok()) {
        let version = reply
            .headers
            .get("x-amz-executed-version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("?");
        bail!("the function failed ({error}, version {version})");
    }
    Ok(())
}

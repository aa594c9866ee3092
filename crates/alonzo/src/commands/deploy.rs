//! `alonzo deploy PATH --name NAME`: creates or updates a function from a directory (zipped
//! here, see [`crate::package`]) or a ready zip, the way the AWS CLI would: `CreateFunction`
//! for a new function; otherwise `UpdateFunctionCode` then `UpdateFunctionConfiguration` for
//! the flags given; then `PublishVersion` with `--publish`. After each change it polls
//! `GetFunctionConfiguration` until the function is `Active` with `LastUpdateStatus`
//! `Successful`, and a `Failed` state ends the command with the server's reason.
//!
//! Status lines go to standard error, with a progress bar for large uploads when it is a
//! terminal; a summary (or, with `--json`, the final configuration) goes to standard output.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use indicatif::HumanBytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::cli::{DeployArgs, UsageError};
use crate::client::{percent_encode, ApiError, Client};
use crate::package::{self, Package, PackageError};
use crate::upload;

/// The account in the default role when the server's ARNs do not reveal its own.
const FALLBACK_ACCOUNT: &str = "000000000000";
/// The first pause between polls while waiting; it doubles up to [`MAX_POLL_DELAY`].
const FIRST_POLL_DELAY: Duration = Duration::from_millis(100);
const MAX_POLL_DELAY: Duration = Duration::from_secs(1);

/// Deploys and prints the summary.
pub(crate) async fn run(args: &DeployArgs) -> anyhow::Result<()> {
    let package = load_package(args)?;
    let sha256 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&package.zip));
    let client = Client::from_args(&args.client)?;
    let name = args.name.as_str();
    let mut config = match get_configuration(&client, name, None).await {
        Ok(current) => update(&client, args, &package, &sha256, current).await?,
        Err(e) => match e.downcast_ref::<ApiError>() {
            Some(api) if api.code == "ResourceNotFoundException" => {
                let account = account_in(&api.message).unwrap_or(FALLBACK_ACCOUNT);
                create(&client, args, &package, account).await?
            }
            _ => return Err(e),
        },
    };
    if config["CodeSha256"].as_str() != Some(sha256.as_str()) {
        bail!(
            "the server holds code with SHA-256 {} for {name}, not the package sent ({sha256})",
            config["CodeSha256"]
        );
    }
    if args.publish {
        config = publish(&client, args, &sha256, &config).await?;
    }
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&config)?);
    } else {
        print_summary(&config, args.publish);
    }
    Ok(())
}

/// Reads or zips the package; bad input is a usage error (exit code 2).
fn load_package(args: &DeployArgs) -> anyhow::Result<Package> {
    let package = package::load(&args.path).map_err(|e| match e {
        PackageError::Zip(_) => anyhow::Error::new(e),
        other => UsageError(other.to_string()).into(),
    })?;
    for dir in &package.skipped {
        status(&format!("skipped {dir} (version-control metadata is never packaged)"));
    }
    let (how, what) = if package.zipped_here { ("packaged", "files") } else { ("read", "entries") };
    status(&format!(
        "{how} {}: {} {what}, {} zipped",
        args.path.display(),
        package.files,
        HumanBytes(package.zip.len() as u64)
    ));
    Ok(package)
}

/// `CreateFunction`, then waits until the function is Active.
async fn create(
    client: &Client,
    args: &DeployArgs,
    package: &Package,
    account: &str,
) -> anyhow::Result<Value> {
    let name = args.name.as_str();
    let Some(runtime) = args.runtime.as_deref() else {
        return Err(UsageError(format!(
            "function {name} does not exist yet: give --runtime to create it"
        ))
        .into());
    };
    let mut body = config_fields(args);
    body.insert("FunctionName".into(), name.into());
    body.insert("Runtime".into(), runtime.into());
    if let Some(handler) = args.handler.as_deref().or_else(|| default_handler(runtime)) {
        body.insert("Handler".into(), handler.into());
    }
    if !body.contains_key("Role") {
        body.insert("Role".into(), format!("arn:aws:iam::{account}:role/alonzo-deploy").into());
    }
    if let Some(arch) = &args.architecture {
        body.insert("Architectures".into(), json!([arch]));
    }
    body.insert("Code".into(), json!({ "ZipFile": base64_zip(package) }));
    status(&format!("creating function {name} ({runtime})"));
    let body = Value::Object(body);
    send_code(client, "POST", "/2015-03-31/functions", &body, "creating", package).await?;
    wait_ready(client, name, None, args.wait_timeout).await
}

/// `UpdateFunctionCode` (unless the code and architecture are unchanged), then
/// `UpdateFunctionConfiguration` for the flags given, waiting after each.
async fn update(
    client: &Client,
    args: &DeployArgs,
    package: &Package,
    sha256: &str,
    current: Value,
) -> anyhow::Result<Value> {
    let name = args.name.as_str();
    // A failed function is updated all the same: a new package is how it gets fixed.
    let mut current = if is_busy(&current) {
        status(&format!("waiting for an earlier change to {name} to finish"));
        wait_ready(client, name, None, args.wait_timeout).await?
    } else {
        current
    };
    let same_arch = args
        .architecture
        .as_deref()
        .is_none_or(|arch| current["Architectures"][0].as_str() == Some(arch));
    if current["CodeSha256"].as_str() == Some(sha256) && same_arch {
        status(&format!("the code of {name} is unchanged (same SHA-256); not uploading it"));
    } else {
        let mut body = Map::new();
        body.insert("ZipFile".into(), base64_zip(package).into());
        if let Some(arch) = &args.architecture {
            body.insert("Architectures".into(), json!([arch]));
        }
        status(&format!("updating the code of {name}"));
        let path = format!("/2015-03-31/functions/{}/code", percent_encode(name));
        send_code(client, "PUT", &path, &Value::Object(body), "updating", package).await?;
        current = wait_ready(client, name, None, args.wait_timeout).await?;
    }
    let mut patch = config_fields(args);
    if let Some(runtime) = args.runtime.as_deref() {
        if current["Runtime"].as_str() != Some(runtime) {
            patch.insert("Runtime".into(), runtime.into());
        }
    }
    if let Some(handler) = &args.handler {
        patch.insert("Handler".into(), handler.as_str().into());
    }
    if patch.is_empty() {
        // Nothing was sent: the function must be ready as it is (a failed one is an error).
        is_ready(&current)?;
        return Ok(current);
    }
    let fields: Vec<&str> = patch.keys().map(String::as_str).collect();
    status(&format!("updating the configuration of {name}: {}", fields.join(", ")));
    let path = format!("/2015-03-31/functions/{}/configuration", percent_encode(name));
    client.call("PUT", &path, Some(Value::Object(patch))).await?;
    wait_ready(client, name, None, args.wait_timeout).await
}

/// `PublishVersion` of exactly what was deployed (its code hash and revision), then waits
/// for the version.
async fn publish(
    client: &Client,
    args: &DeployArgs,
    sha256: &str,
    latest: &Value,
) -> anyhow::Result<Value> {
    let name = args.name.as_str();
    status(&format!("publishing a version of {name}"));
    let path = format!("/2015-03-31/functions/{}/versions", percent_encode(name));
    let body = json!({ "CodeSha256": sha256, "RevisionId": latest["RevisionId"] });
    let reply = client.call("POST", &path, Some(body)).await?;
    let version = reply.body["Version"].as_str().context("PublishVersion returned no Version")?;
    wait_ready(client, name, Some(version), args.wait_timeout).await
}

/// The configuration fields shared by create and update, from the flags given.
fn config_fields(args: &DeployArgs) -> Map<String, Value> {
    let mut fields = Map::new();
    if let Some(memory) = args.memory {
        fields.insert("MemorySize".into(), memory.into());
    }
    if let Some(timeout) = args.timeout {
        fields.insert("Timeout".into(), timeout.into());
    }
    if let Some(role) = &args.role {
        fields.insert("Role".into(), role.as_str().into());
    }
    if let Some(description) = &args.description {
        fields.insert("Description".into(), description.as_str().into());
    }
    if !args.env.is_empty() {
        let variables: Map<String, Value> =
            args.env.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))).collect();
        fields.insert("Environment".into(), json!({ "Variables": variables }));
    }
    if !args.layers.is_empty() {
        fields.insert("Layers".into(), json!(args.layers));
    }
    fields
}

/// The handler Lambda's console starts a function of `runtime` with; `None` for runtimes
/// whose handler names a class or binary only the user knows (the server then asks for it).
fn default_handler(runtime: &str) -> Option<&'static str> {
    if runtime.starts_with("python") || runtime.starts_with("ruby") {
        Some("lambda_function.lambda_handler")
    } else if runtime.starts_with("nodejs") {
        Some("index.handler")
    } else if runtime.starts_with("provided") {
        Some("bootstrap")
    } else {
        None
    }
}

fn base64_zip(package: &Package) -> String {
    base64::engine::general_purpose::STANDARD.encode(&package.zip)
}

/// Sends a request carrying a package, with a progress bar when one is worth drawing; a
/// refusal for size says how big the package is (the server counts base64 request bytes).
async fn send_code(
    client: &Client,
    method: &str,
    path: &str,
    body: &Value,
    verb: &str,
    package: &Package,
) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(body)?;
    let total = bytes.len() as u64;
    let bar = upload::progress_bar(total, &format!("{verb}: uploading"));
    if bar.is_none() {
        status(&format!("uploading {} (the package, base64-encoded)", HumanBytes(total)));
    }
    let result = client.upload(method, path, bytes, bar.as_ref().map(upload::bar_callback)).await;
    if let Some(bar) = bar {
        if result.is_ok() {
            bar.finish();
        } else {
            bar.abandon();
        }
    }
    result.map(drop).map_err(|e| match e.downcast_ref::<ApiError>() {
        Some(api) if api.code == "RequestEntityTooLargeException" => e.context(format!(
            "the package is {} zipped ({} as base64 in the request); Lambda takes direct uploads of up to 50 MB zipped",
            HumanBytes(package.zip.len() as u64),
            HumanBytes(total)
        )),
        _ => e,
    })
}

/// `GetFunctionConfiguration`, optionally of a version.
async fn get_configuration(
    client: &Client,
    name: &str,
    version: Option<&str>,
) -> anyhow::Result<Value> {
    let mut path = format!("/2015-03-31/functions/{}/configuration", percent_encode(name));
    if let Some(version) = version {
        path.push_str(&format!("?Qualifier={}", percent_encode(version)));
    }
    Ok(client.call("GET", &path, None).await?.body)
}

/// Whether a change is still being applied (`Pending`, or an update `InProgress`), so a new
/// one would be refused.
fn is_busy(config: &Value) -> bool {
    config["State"] == "Pending" || config["LastUpdateStatus"] == "InProgress"
}

/// Whether a configuration is `Active` and its last update `Successful`; `Err` when either
/// failed, with the server's reason.
fn is_ready(config: &Value) -> anyhow::Result<bool> {
    let text = |key: &str| config[key].as_str().unwrap_or("");
    let name = text("FunctionName");
    if text("State") == "Failed" {
        bail!("{name} failed: {} ({})", text("StateReason"), text("StateReasonCode"));
    }
    if text("LastUpdateStatus") == "Failed" {
        bail!(
            "the update of {name} failed: {} ({})",
            text("LastUpdateStatusReason"),
            text("LastUpdateStatusReasonCode")
        );
    }
    // A server that does not report `LastUpdateStatus` has no updates in progress.
    Ok(text("State") == "Active" && matches!(text("LastUpdateStatus"), "Successful" | ""))
}

/// Polls until [`is_ready`], or fails after `timeout`.
async fn wait_ready(
    client: &Client,
    name: &str,
    version: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    let mut delay = FIRST_POLL_DELAY;
    let mut announced = false;
    loop {
        let config = get_configuration(client, name, version).await?;
        if is_ready(&config)? {
            return Ok(config);
        }
        let text = |key: &str| config[key].as_str().unwrap_or("-").to_owned();
        let state =
            format!("State {}, LastUpdateStatus {}", text("State"), text("LastUpdateStatus"));
        if Instant::now() >= deadline {
            bail!(
                "{name} is not ready after {}s ({state}); the change may still complete (raise --wait-timeout)",
                timeout.as_secs()
            );
        }
        if !announced {
            status(&format!("waiting for {name} to become Active ({state})"));
            announced = true;
        }
        tokio::time::sleep(delay.min(deadline - Instant::now())).await;
        delay = (delay * 2).min(MAX_POLL_DELAY);
    }
}

/// The 12-digit account of the first Lambda ARN in `text` (a not-found message names the
/// function's would-be ARN).
fn account_in(text: &str) -> Option<&str> {
    text.split_whitespace().find_map(|word| {
        let parts: Vec<&str> = word.split(':').collect();
        let account = *parts.get(4)?;
        (parts[0] == "arn"
            && parts.get(2) == Some(&"lambda")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit()))
        .then_some(account)
    })
}

fn status(line: &str) {
    eprintln!("{line}");
}

/// The summary on standard output.
fn print_summary(config: &Value, published: bool) {
    let text = |key: &str| config[key].as_str().unwrap_or("-").to_owned();
    println!("function:    {}", text("FunctionArn"));
    if published {
        println!("version:     {}", text("Version"));
    }
    let size = config["CodeSize"].as_u64().unwrap_or(0);
    println!("code size:   {size} bytes ({})", HumanBytes(size));
    println!("code sha256: {}", text("CodeSha256"));
    println!("state:       {} (last update {})", text("State"), text("LastUpdateStatus"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_handlers_follow_the_runtime_family() {
        assert_eq!(default_handler("python3.11"), Some("lambda_function.lambda_handler"));
        assert_eq!(default_handler("nodejs20.x"), Some("index.handler"));
        assert_eq!(default_handler("provided.al2023"), Some("bootstrap"));
        assert_eq!(default_handler("java21"), None);
    }

    #[test]
    fn the_account_comes_from_the_not_found_message() {
        let message = "Function not found: arn:aws:lambda:us-east-1:123456789012:function:f";
        assert_eq!(account_in(message), Some("123456789012"));
        assert_eq!(account_in("Function not found: f"), None);
        assert_eq!(account_in("arn:aws:iam::123456789012:role/x"), None);
    }

    #[test]
    fn readiness() {
        let config = |state: &str, update: &str| {
            json!({ "FunctionName": "f", "State": state, "LastUpdateStatus": update,
                    "StateReason": "broken", "StateReasonCode": "InternalError" })
        };
        assert!(is_ready(&config("Active", "Successful")).unwrap());
        assert!(!is_ready(&config("Pending", "Successful")).unwrap());
        assert!(!is_ready(&config("Active", "InProgress")).unwrap());
        assert!(is_busy(&config("Pending", "Successful")));
        assert!(is_busy(&config("Active", "InProgress")));
        assert!(!is_busy(&config("Failed", "Failed")), "a failed function can be redeployed");
        let failed = is_ready(&config("Failed", "Failed")).unwrap_err().to_string();
        assert!(failed.contains("broken (InternalError)"), "{failed}");
    }
}

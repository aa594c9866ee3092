//! The signed HTTP client that client commands use to talk to a server, configured the way
//! the AWS CLI is: `AWS_ENDPOINT_URL[_LAMBDA]`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
//! profiles from the shared files, `AWS_REGION`; by default the local server with the
//! credentials it generated in its data directory.

use std::path::PathBuf;

use alonzo_api::sigv4;
use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use crate::cli::ClientArgs;
use crate::credentials::{self, KeyPair};
use crate::upload::{OnProgress, UploadBody};

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";

/// A client for one endpoint with one identity.
#[derive(Debug)]
pub(crate) struct Client {
    endpoint: http::Uri,
    region: String,
    keys: KeyPair,
    http: HyperClient<hyper_util::client::legacy::connect::HttpConnector, UploadBody>,
}

/// An error answer from the server, in Lambda's shape (`x-amzn-ErrorType` and a message).
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub(crate) struct ApiError {
    /// The HTTP status.
    pub(crate) status: http::StatusCode,
    /// The error code, e.g. `ResourceNotFoundException`.
    pub(crate) code: String,
    /// The message.
    pub(crate) message: String,
}

/// A decoded API answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The body decoded as JSON (`Null` when it is not JSON).
    pub(crate) body: serde_json::Value,
    /// The body as sent.
    pub(crate) raw: Bytes,
    /// The response headers.
    pub(crate) headers: http::HeaderMap,
}

impl Client {
    /// Resolves endpoint, region and credentials from flags, then the environment, then the
    /// shared AWS files, then the local server's data directory.
    pub(crate) fn from_args(args: &ClientArgs) -> anyhow::Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let endpoint_text = args
            .endpoint_url
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_LAMBDA"))
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        let endpoint: http::Uri =
            endpoint_text.parse().with_context(|| format!("endpoint {endpoint_text:?}"))?;
        if endpoint.scheme_str() != Some("http") {
            bail!(
                "endpoint {endpoint_text:?}: only http:// endpoints are supported by this client"
            );
        }
        let profile = args.profile.clone().or_else(|| env("AWS_PROFILE"));
        let region = args
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| profile_region(profile.as_deref().unwrap_or("default")))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let keys = resolve_keys(profile.as_deref())?;
        let http = HyperClient::builder(TokioExecutor::new()).build_http();
        Ok(Self { endpoint, region, keys, http })
    }

    /// Sends a signed request and decodes the JSON answer; Lambda errors become `Err` with
    /// an [`ApiError`] (its code and message).
    pub(crate) async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Reply> {
        let body_bytes = body.map(|b| serde_json::to_vec(&b)).transpose()?.unwrap_or_default();
        self.send(method, path_and_query, UploadBody::new(body_bytes), "lambda", None, &[]).await
    }

    /// Like [`Client::call`] with a JSON body already serialised (a deployment package can
    /// be tens of megabytes), reporting the bytes sent to `on_progress`.
    pub(crate) async fn upload(
        &self,
        method: &str,
        path_and_query: &str,
        json_body: Vec<u8>,
        on_progress: Option<OnProgress>,
    ) -> anyhow::Result<Reply> {
        let body = UploadBody::new(json_body).with_progress(on_progress);
        self.send(method, path_and_query, body, "lambda", None, &[]).await
    }

    /// `Invoke` with raw payload bytes and extra headers (`X-Amz-Log-Type`…).
    pub(crate) async fn invoke(
        &self,
        function: &str,
        payload: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let path = format!("/2015-03-31/functions/{}/invocations", percent_encode(function));
        self.send("POST", &path, UploadBody::new(payload), "lambda", None, extra).await
    }

    /// Calls an AWS JSON 1.1 operation (`X-Amz-Target: <target>`) of another service on the
    /// same endpoint, e.g. `logs`.
    pub(crate) async fn call_target(
        &self,
        service: &str,
        target: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<Reply> {
        let body = UploadBody::new(serde_json::to_vec(&body)?);
        self.send("POST", "/", body, service, Some(target), &[]).await
    }

    async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: UploadBody,
        service: &str,
        target: Option<&str>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let uri: http::Uri =
            format!("{}{}", self.endpoint.to_string().trim_end_matches('/'), path_and_query)
                .parse()?;
        let mut headers = http::HeaderMap::new();
        let host = uri.authority().context("endpoint has no host")?.as_str().to_owned();
        headers.insert(http::header::HOST, host.parse()?);
        if let Some(target) = target {
            headers.insert("x-amz-target", target.parse()?);
            headers.insert(http::header::CONTENT_TYPE, "application/x-amz-json-1.1".parse()?);
        } else if !body.bytes().is_empty() {
            headers.insert(http::header::CONTENT_TYPE, "application/json".parse()?);
        }
        for (name, value) in extra {
            headers.insert(http::header::HeaderName::from_bytes(name.as_bytes())?, value.parse()?);
        }
        let creds = sigv4::Credentials {
            access_key_id: self.keys.access_key_id.clone(),
            secret_access_key: self.keys.secret_access_key.clone(),
            session_token: None,
        };
        sigv4::sign(
            method,
            uri.path(),
            uri.query(),
            &mut headers,
            body.bytes(),
            &creds,
            &self.region,
            service,
            chrono::Utc::now(),
        );
        let mut request = http::Request::builder().method(method).uri(uri.clone());
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let response = self.http.request(request.body(body)?).await.with_context(|| {
            format!(
                "cannot reach the Alonzo server at {} (is `alonzo serve` running?)",
                self.endpoint
            )
        })?;
        let status = response.status();
        let response_headers = response.headers().clone();
        let error_type = response
            .headers()
            .get("x-amzn-ErrorType")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = response.into_body().collect().await?.to_bytes();
        let body: serde_json::Value = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
        };
        if let Some(code) = error_type.filter(|_| !status.is_success()) {
            let message = body
                .get("message")
                .or_else(|| body.get("Message"))
                .and_then(|m| m.as_str())
                .unwrap_or("")
                .to_owned();
            return Err(ApiError { status, code, message }.into());
        }
        Ok(Reply { body, raw: bytes, headers: response_headers })
    }
}

/// Credentials in the AWS CLI's order, with the local server's generated file as the last
/// resort (so a fresh `alonzo serve` works with no set-up).
fn resolve_keys(profile: Option<&str>) -> anyhow::Result<KeyPair> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(access_key_id), Some(secret_access_key)) =
        (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(KeyPair { access_key_id, secret_access_key });
    }
    let shared = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| home_file(".aws/credentials"));
    if let Some(profile) = profile {
        let path = shared.context("a profile was named but there is no shared credentials file")?;
        return credentials::read_profile(&path, profile)?
            .with_context(|| format!("profile {profile:?} not found in {}", path.display()));
    }
    let data_dir = env("ALONZO_DATA_DIR").map_or_else(|| PathBuf::from("./.alonzo"), PathBuf::from);
    let local = data_dir.join(credentials::FILE_NAME);
    if local.exists() {
        if let Some(pair) = credentials::read_profile(&local, "default")? {
            return Ok(pair);
        }
    }
    if let Some(path) = shared.filter(|p| p.exists()) {
        if let Some(pair) = credentials::read_profile(&path, "default")? {
            return Ok(pair);
        }
    }
    bail!("no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run from the directory holding the server's .alonzo/")
}

fn profile_region(profile: &str) -> Option<String> {
    let path = std::env::var("AWS_CONFIG_FILE")
        .ok()
        .map(PathBuf::from)
        .or_else(|| home_file(".aws/config"))?;
    let text = std::fs::read_to_string(path).ok()?;
    credentials::parse_ini(&text).get(profile)?.get("region").cloned()
}

fn home_file(rel: &str) -> Option<PathBuf> {
    std::env::var("HOME").ok().map(|h| PathBuf::from(h).join(rel))
}

/// Percent-encodes a path segment or query value as the AWS SDKs do (unreserved characters
/// kept).
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

//! AWS Signature Version 4 for Alonzo's non-S3 APIs (lambda, sqs, logs). This module owns
//! both halves of the protocol: server-side verification of `Authorization`-header and
//! presigned-query requests ([`verify`]), and client-side signing for our CLI and tests
//! ([`sign`], [`presign`]). Canonicalisation follows what botocore, the AWS CLI, the JS v3
//! SDK and the Rust SDK send for non-S3 services: the path is normalised and percent-encoded
//! a second time, query parameters are decoded and re-encoded, and header values are
//! trimmed with inner whitespace collapsed. Error messages mirror AWS wording and never
//! contain the secret or the expected signature.

use std::fmt;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use http::header::{AUTHORIZATION, DATE};
use http::{HeaderMap, HeaderValue};
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const TERMINATOR: &str = "aws4_request";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const AMZ_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
/// Longest lifetime AWS allows for a presigned URL: seven days.
const MAX_PRESIGN_EXPIRES_SECS: i64 = 604_800;
/// Headers botocore never signs (besides `proxy-*` and `authorization`).
const UNSIGNABLE_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];
/// RFC 3986 unreserved characters stay literal; everything else is percent-encoded.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
/// Like [`UNRESERVED`] but keeps the path separator.
const PATH_SAFE: &AsciiSet = &UNRESERVED.remove(b'/');

type HmacSha256 = Hmac<Sha256>;

/// An incoming request as seen on the wire, borrowed for verification.
#[derive(Debug, Clone, Copy)]
pub struct RequestToVerify<'a> {
    /// HTTP method, e.g. `"GET"`.
    pub method: &'a str,
    /// Path exactly as on the wire, still percent-encoded.
    pub raw_path: &'a str,
    /// Query string as on the wire, without the leading `?`.
    pub raw_query: Option<&'a str>,
    /// All request headers; `host` must be present for HTTP/2 too.
    pub headers: &'a HeaderMap,
    /// The complete request body.
    pub body: &'a [u8],
}

/// The identity a successfully verified request was signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Access key id from the credential scope.
    pub access_key_id: String,
    /// Region from the credential scope.
    pub region: String,
    /// Service from the credential scope.
    pub service: String,
}

/// Why a request failed SigV4 verification; `Display` is the client-facing message.
#[derive(Debug, thiserror::Error)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor presigned query parameters were sent.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The authorization data is malformed or incomplete.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key id is unknown.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// The credential scope names the wrong region, service, date or terminator.
    #[error("{0}")]
    InvalidScope(String),
    /// The request time is outside the accepted window, or a presigned URL has expired.
    #[error("{0}")]
    Expired(String),
    /// `x-amz-content-sha256` does not match the body.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,
    /// The signature is wrong.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method. \
         Consult the service documentation for details."
    )]
    SignatureMismatch,
}

impl SigV4Error {
    /// AWS error code for the `x-amzn-ErrorType` header.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature(_) => "IncompleteSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::InvalidScope(_)
            | Self::Expired(_)
            | Self::ContentSha256Mismatch
            | Self::SignatureMismatch => "InvalidSignatureException",
        }
    }
}

fn incomplete(message: impl Into<String>) -> SigV4Error {
    SigV4Error::IncompleteSignature(message.into())
}

/// Long-term or temporary AWS credentials used for signing.
#[derive(Clone)]
pub struct Credentials {
    /// Access key id, e.g. `AKIDEXAMPLE`.
    pub access_key_id: String,
    /// Secret access key; never logged.
    pub secret_access_key: String,
    /// Session token of temporary credentials, sent as `x-amz-security-token`.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Verifies a SigV4-signed request (`Authorization` header or presigned query string).
///
/// `region` is the only region accepted in the credential scope, `services` the accepted
/// service names, and `secret_for` maps an access key id to its secret. Header-signed
/// requests must be dated within `max_skew` of `now`; presigned ones must not be expired.
pub fn verify(
    req: &RequestToVerify<'_>,
    now: DateTime<Utc>,
    max_skew: Duration,
    region: &str,
    services: &[&str],
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<Verified, SigV4Error> {
    let mut query = parse_query(req.raw_query.unwrap_or(""));
    let auth = extract_auth(req.headers, &query)?;
    check_signed_headers_present(req.headers, &auth.signed_headers)?;
    check_scope(&auth, region, services)?;
    check_freshness(&auth, now, max_skew)?;
    let secret =
        secret_for(&auth.credential.access_key_id).ok_or(SigV4Error::UnrecognizedClient)?;
    let presigned = auth.expires_secs.is_some();
    if presigned {
        query.retain(|param| param.key != b"X-Amz-Signature");
    }
    let payload_hashes = payload_hash_candidates(req.headers, req.body, presigned)?;
    let canonical =
        CanonicalRequest::new(req.method, req.raw_path, &query, req.headers, &auth.signed_headers);
    check_signature(&canonical, &payload_hashes, &auth, &secret)?;
    let Credential { access_key_id, region, service, .. } = auth.credential;
    Ok(Verified { access_key_id, region, service })
}

/// Signs a request for a non-S3 service with an `Authorization` header.
///
/// Adds `x-amz-date` (and `x-amz-security-token` when `creds` has a session token) and
/// `Authorization` to `headers`, which must already contain `host`. Every header present is
/// signed except the ones botocore never signs (`user-agent`, `expect`, `x-amzn-trace-id`,
/// hop-by-hop headers, `proxy-*`, `authorization`). The payload hash is the value of an
/// existing `x-amz-content-sha256` header, else the SHA-256 of `body`.
///
/// Credentials containing characters that cannot appear in an HTTP header cannot be sent;
/// the request is then left without `Authorization`, and servers reject it as unauthenticated.
#[allow(clippy::too_many_arguments)] // signature fixed by the crate's public API
pub fn sign(
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &mut HeaderMap,
    body: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
    now: DateTime<Utc>,
) {
    headers.remove(AUTHORIZATION);
    let request = UnsignedRequest { method, raw_path, raw_query, body };
    let scope = Scope::at(now, region, service);
    if try_sign(&request, headers, creds, &scope, now).is_err() {
        headers.remove(AUTHORIZATION);
    }
}

/// Builds a presigned query string (without `?`) for a request to `host`.
///
/// The result is `raw_query` (if any) followed by the `X-Amz-*` authentication parameters,
/// ending with `X-Amz-Signature`. Only `host` is signed and the payload is `UNSIGNED-PAYLOAD`,
/// so the URL may be used with any body. `expires` is clamped to 1 second ..= 7 days.
#[allow(clippy::too_many_arguments)] // mirrors `sign`
pub fn presign(
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    host: &str,
    creds: &Credentials,
    region: &str,
    service: &str,
    now: DateTime<Utc>,
    expires: Duration,
) -> String {
    let amz_date = now.format(AMZ_DATE_FORMAT).to_string();
    let scope = Scope::at(now, region, service);
    let auth_query = presign_auth_query(creds, &scope, &amz_date, expires);
    let query = match raw_query {
        Some(q) if !q.is_empty() => format!("{q}&{auth_query}"),
        _ => auth_query,
    };
    let canonical = CanonicalRequest {
        method,
        uri: canonical_uri(raw_path),
        query: canonical_query(&parse_query(&query)),
        headers: format!("host:{}\n", trim_all(host.as_bytes())).into_bytes(),
        signed_headers: "host".to_owned(),
    };
    let string_to_sign = string_to_sign(&amz_date, &scope, &canonical, UNSIGNED_PAYLOAD);
    let signature = signature(&creds.secret_access_key, &scope, &string_to_sign);
    format!("{query}&X-Amz-Signature={signature}")
}

/// The `X-Amz-*` parameters of a presigned URL, excluding the signature, in botocore's order.
fn presign_auth_query(
    creds: &Credentials,
    scope: &Scope<'_>,
    amz_date: &str,
    expires: Duration,
) -> String {
    let expires = expires.num_seconds().clamp(1, MAX_PRESIGN_EXPIRES_SECS).to_string();
    let credential = format!("{}/{}", creds.access_key_id, scope);
    let mut params = vec![
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", credential.as_str()),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", expires.as_str()),
        ("X-Amz-SignedHeaders", "host"),
    ];
    if let Some(token) = &creds.session_token {
        params.push(("X-Amz-Security-Token", token));
    }
    let encoded: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encode(v.as_bytes(), UNRESERVED)))
        .collect();
    encoded.join("&")
}

/// The request parts [`sign`] needs besides headers.
struct UnsignedRequest<'a> {
    method: &'a str,
    raw_path: &'a str,
    raw_query: Option<&'a str>,
    body: &'a [u8],
}

fn try_sign(
    req: &UnsignedRequest<'_>,
    headers: &mut HeaderMap,
    creds: &Credentials,
    scope: &Scope<'_>,
    now: DateTime<Utc>,
) -> Result<(), http::header::InvalidHeaderValue> {
    let amz_date = now.format(AMZ_DATE_FORMAT).to_string();
    headers.insert(X_AMZ_DATE, HeaderValue::from_str(&amz_date)?);
    if let Some(token) = &creds.session_token {
        headers.insert(X_AMZ_SECURITY_TOKEN, HeaderValue::from_str(token)?);
    }
    let query = parse_query(req.raw_query.unwrap_or(""));
    let signed_headers = signable_header_names(headers);
    let canonical =
        CanonicalRequest::new(req.method, req.raw_path, &query, headers, &signed_headers);
    let payload_hash = match headers.get(X_AMZ_CONTENT_SHA256) {
        Some(value) => trim_all(value.as_bytes()),
        None => hex_sha256(req.body),
    };
    let string_to_sign = string_to_sign(&amz_date, scope, &canonical, &payload_hash);
    let signature = signature(&creds.secret_access_key, scope, &string_to_sign);
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        creds.access_key_id, canonical.signed_headers
    );
    headers.insert(AUTHORIZATION, HeaderValue::from_str(&authorization)?);
    Ok(())
}

/// Lower-case names of the headers [`sign`] signs, sorted and unique.
fn signable_header_names(headers: &HeaderMap) -> Vec<String> {
    let mut names: Vec<String> = headers
        .keys()
        .map(|name| name.as_str())
        .filter(|name| !UNSIGNABLE_HEADERS.contains(name) && !name.starts_with("proxy-"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `date/region/service/aws4_request`.
struct Scope<'a> {
    date: String,
    region: &'a str,
    service: &'a str,
}

impl<'a> Scope<'a> {
    fn at(now: DateTime<Utc>, region: &'a str, service: &'a str) -> Self {
        Self { date: now.format("%Y%m%d").to_string(), region, service }
    }
}

impl fmt::Display for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{TERMINATOR}", self.date, self.region, self.service)
    }
}

/// The five parts of `Credential=AKID/20150830/us-east-1/service/aws4_request`.
#[derive(Debug)]
struct Credential {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    terminator: String,
}

/// Authentication data taken from the `Authorization` header or the presigned query.
#[derive(Debug)]
struct AuthInfo {
    credential: Credential,
    signed_headers: Vec<String>,
    signature: String,
    timestamp: DateTime<Utc>,
    /// `X-Amz-Expires` of a presigned request; `None` for header authentication.
    expires_secs: Option<i64>,
}

/// A decoded query parameter (`+` is kept literally, as SigV4 clients never send it for space).
#[derive(Debug)]
struct QueryParam {
    key: Vec<u8>,
    value: Vec<u8>,
}

fn parse_query(raw: &str) -> Vec<QueryParam> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            QueryParam {
                key: percent_decode_str(key).collect(),
                value: percent_decode_str(value).collect(),
            }
        })
        .collect()
}

fn query_value(query: &[QueryParam], name: &str) -> Option<String> {
    query
        .iter()
        .find(|param| param.key == name.as_bytes())
        .map(|param| String::from_utf8_lossy(&param.value).into_owned())
}

/// Finds the authentication mechanism the request uses and parses it.
fn extract_auth(headers: &HeaderMap, query: &[QueryParam]) -> Result<AuthInfo, SigV4Error> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    let header = authorization.next();
    if authorization.next().is_some() {
        return Err(incomplete("Only one Authorization header may be specified."));
    }
    let presigned = query_value(query, "X-Amz-Algorithm").is_some();
    match (header, presigned) {
        (None, false) => Err(SigV4Error::MissingAuthenticationToken),
        (Some(_), true) => Err(incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter \
             or the Authorization header should be specified.",
        )),
        (Some(value), false) => {
            let value = value
                .to_str()
                .map_err(|_| incomplete("Authorization header is not valid ASCII."))?;
            auth_from_header(value, headers)
        }
        (None, true) => auth_from_query(query),
    }
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
fn auth_from_header(value: &str, headers: &HeaderMap) -> Result<AuthInfo, SigV4Error> {
    let (algorithm, components) =
        value.trim().split_once([' ', '\t']).unwrap_or((value.trim(), ""));
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "Authorization header requires '{ALGORITHM}' algorithm, got '{algorithm}'."
        )));
    }
    let parts = HeaderComponents::parse(components)?;
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (parts.credential, parts.signed_headers, parts.signature)
    else {
        return Err(parts.missing());
    };
    let signed_headers = parse_signed_headers(signed_headers)?;
    let timestamp = header_timestamp(headers, &signed_headers)?;
    Ok(AuthInfo {
        credential: parse_credential(credential)?,
        signed_headers,
        signature: signature.to_owned(),
        timestamp,
        expires_secs: None,
    })
}

/// The `key=value` components after the algorithm in an `Authorization` header.
#[derive(Debug, Default)]
struct HeaderComponents<'a> {
    credential: Option<&'a str>,
    signed_headers: Option<&'a str>,
    signature: Option<&'a str>,
}

impl<'a> HeaderComponents<'a> {
    fn parse(components: &'a str) -> Result<Self, SigV4Error> {
        let mut parts = Self::default();
        for component in components.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let Some((key, value)) = component.split_once('=') else {
                return Err(incomplete(format!(
                    "Authorization header component is not of the form key=value: '{component}'."
                )));
            };
            let slot = match key.trim() {
                "Credential" => &mut parts.credential,
                "SignedHeaders" => &mut parts.signed_headers,
                "Signature" => &mut parts.signature,
                _ => continue,
            };
            *slot = Some(value.trim());
        }
        Ok(parts)
    }

    fn missing(&self) -> SigV4Error {
        let required = [
            (self.credential.is_none(), "Credential"),
            (self.signature.is_none(), "Signature"),
            (self.signed_headers.is_none(), "SignedHeaders"),
        ];
        let messages: Vec<String> = required
            .iter()
            .filter(|(is_missing, _)| *is_missing)
            .map(|(_, name)| format!("Authorization header requires '{name}' parameter."))
            .collect();
        incomplete(messages.join(" "))
    }
}

/// Parses the `X-Amz-*` parameters of a presigned request.
fn auth_from_query(query: &[QueryParam]) -> Result<AuthInfo, SigV4Error> {
    let get = |name| query_value(query, name);
    let (
        Some(algorithm),
        Some(credential),
        Some(signature),
        Some(date),
        Some(signed_headers),
        Some(expires),
    ) = (
        get("X-Amz-Algorithm"),
        get("X-Amz-Credential"),
        get("X-Amz-Signature"),
        get("X-Amz-Date"),
        get("X-Amz-SignedHeaders"),
        get("X-Amz-Expires"),
    )
    else {
        return Err(incomplete(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', \
             'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', 'X-Amz-Expires'. \
             Re-examine the query-string parameters.",
        ));
    };
    if algorithm != ALGORITHM {
        return Err(incomplete(format!("X-Amz-Algorithm only supports \"{ALGORITHM}\".")));
    }
    Ok(AuthInfo {
        credential: parse_credential(&credential)?,
        signed_headers: parse_signed_headers(&signed_headers)?,
        signature,
        timestamp: parse_amz_date(&date)?,
        expires_secs: Some(parse_expires(&expires)?),
    })
}

fn parse_expires(value: &str) -> Result<i64, SigV4Error> {
    let secs: i64 = value
        .parse()
        .map_err(|_| incomplete(format!("X-Amz-Expires should be a number, got '{value}'.")))?;
    if !(0..=MAX_PRESIGN_EXPIRES_SECS).contains(&secs) {
        return Err(incomplete(format!(
            "X-Amz-Expires must be between 0 and {MAX_PRESIGN_EXPIRES_SECS} seconds (7 days), \
             got '{value}'."
        )));
    }
    Ok(secs)
}

fn parse_credential(value: &str) -> Result<Credential, SigV4Error> {
    let parts: Vec<&str> = value.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts.as_slice() else {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, \
             e.g. keyid/date/region/service/term, got '{value}'"
        )));
    };
    Ok(Credential {
        access_key_id: (*access_key_id).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        terminator: (*terminator).to_owned(),
    })
}

/// Parses `host;x-amz-date`; the order given is kept, as the client signed it that way.
fn parse_signed_headers(value: &str) -> Result<Vec<String>, SigV4Error> {
    let names: Vec<String> =
        value.split(';').map(|name| name.trim().to_ascii_lowercase()).collect();
    if names.iter().any(String::is_empty) {
        return Err(incomplete(format!("SignedHeaders contains an empty header name: '{value}'.")));
    }
    if !names.iter().any(|name| name == "host") {
        return Err(incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(names)
}

/// The request time from `x-amz-date`, or from `date` when that is absent; it must be signed.
fn header_timestamp(
    headers: &HeaderMap,
    signed_headers: &[String],
) -> Result<DateTime<Utc>, SigV4Error> {
    let (name, timestamp) = if let Some(value) = headers.get(X_AMZ_DATE) {
        (X_AMZ_DATE, parse_amz_date(value.to_str().unwrap_or_default())?)
    } else if let Some(value) = headers.get(DATE) {
        (DATE.as_str(), parse_http_date(value.to_str().unwrap_or_default())?)
    } else {
        return Err(incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };
    if !signed_headers.iter().any(|signed| signed == name) {
        return Err(incomplete(format!(
            "'{name}' must be a 'SignedHeader' in the AWS Authorization."
        )));
    }
    Ok(timestamp)
}

/// Parses the ISO-8601 basic format `20150830T123600Z`.
fn parse_amz_date(value: &str) -> Result<DateTime<Utc>, SigV4Error> {
    let malformed = || {
        incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{value}'. \
             See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    };
    if value.len() != 16 || !value.is_ascii() {
        return Err(malformed());
    }
    NaiveDateTime::parse_from_str(value, AMZ_DATE_FORMAT)
        .map(|naive| naive.and_utc())
        .map_err(|_| malformed())
}

/// Parses an RFC 1123 `Date` header such as `Sun, 30 Aug 2015 12:36:00 GMT`.
fn parse_http_date(value: &str) -> Result<DateTime<Utc>, SigV4Error> {
    DateTime::parse_from_rfc2822(value)
        .map(|date| date.with_timezone(&Utc))
        .map_err(|_| incomplete(format!("Date header must be in RFC 1123 format. Got '{value}'.")))
}

fn check_scope(auth: &AuthInfo, region: &str, services: &[&str]) -> Result<(), SigV4Error> {
    let credential = &auth.credential;
    if credential.terminator != TERMINATOR {
        return Err(SigV4Error::InvalidScope(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not '{}'. ",
            credential.terminator
        )));
    }
    if credential.region != region {
        return Err(SigV4Error::InvalidScope(
            "Credential should be scoped to a valid region. ".to_owned(),
        ));
    }
    if !services.contains(&credential.service.as_str()) {
        return Err(SigV4Error::InvalidScope(format!(
            "Credential should be scoped to correct service: '{}'. ",
            services.join("' or '")
        )));
    }
    check_scope_date(&credential.date, auth.timestamp)
}

fn check_scope_date(scope_date: &str, timestamp: DateTime<Utc>) -> Result<(), SigV4Error> {
    let amz_date = format_amz_date(timestamp);
    let date = &amz_date[..8];
    if scope_date != date {
        return Err(SigV4Error::InvalidScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{scope_date}' != '{date}', from '{amz_date}'."
        )));
    }
    Ok(())
}

fn format_amz_date(timestamp: DateTime<Utc>) -> String {
    timestamp.format(AMZ_DATE_FORMAT).to_string()
}

/// Rejects requests dated outside `now ± max_skew`, and expired presigned requests.
fn check_freshness(
    auth: &AuthInfo,
    now: DateTime<Utc>,
    max_skew: Duration,
) -> Result<(), SigV4Error> {
    let age = now.signed_duration_since(auth.timestamp);
    let (signed, now_text) = (format_amz_date(auth.timestamp), format_amz_date(now));
    if -age > max_skew {
        let limit = now.checked_add_signed(max_skew).map(format_amz_date).unwrap_or_default();
        let minutes = max_skew.num_minutes();
        return Err(SigV4Error::Expired(format!(
            "Signature not yet current: {signed} is still later than {limit} \
             ({now_text} + {minutes} min.)"
        )));
    }
    let (window, unit) = match auth.expires_secs {
        Some(secs) => (Duration::seconds(secs), format!("{secs} sec.")),
        None => (max_skew, format!("{} min.", max_skew.num_minutes())),
    };
    if age > window {
        let limit = now.checked_sub_signed(window).map(format_amz_date).unwrap_or_default();
        return Err(SigV4Error::Expired(format!(
            "Signature expired: {signed} is now earlier than {limit} ({now_text} - {unit})"
        )));
    }
    Ok(())
}

/// The payload hash to sign: `x-amz-content-sha256` when sent (checked against the body
/// unless it is `UNSIGNED-PAYLOAD`), else the SHA-256 of the body.
fn payload_hash(headers: &HeaderMap, body: &[u8]) -> Result<String, SigV4Error> {
    let body_hash = hex_sha256(body);
    let Some(value) = headers.get(X_AMZ_CONTENT_SHA256) else {
        return Ok(body_hash);
    };
    let claimed = trim_all(value.as_bytes());
    if claimed == UNSIGNED_PAYLOAD || claimed.eq_ignore_ascii_case(&body_hash) {
        Ok(claimed)
    } else {
        Err(SigV4Error::ContentSha256Mismatch)
    }
}

/// The payload hashes a signature may cover. Presigned requests may be signed over the body's
/// hash (botocore and the SDKs for non-S3 services) or over `UNSIGNED-PAYLOAD` (S3-style
/// presigners, [`presign`]); each signature commits to one choice, so accepting both is safe.
fn payload_hash_candidates(
    headers: &HeaderMap,
    body: &[u8],
    presigned: bool,
) -> Result<Vec<String>, SigV4Error> {
    let payload_hash = payload_hash(headers, body)?;
    if presigned && payload_hash != UNSIGNED_PAYLOAD {
        Ok(vec![payload_hash, UNSIGNED_PAYLOAD.to_owned()])
    } else {
        Ok(vec![payload_hash])
    }
}

/// Accepts the request if any candidate payload hash reproduces the provided signature.
fn check_signature(
    canonical: &CanonicalRequest<'_>,
    payload_hashes: &[String],
    auth: &AuthInfo,
    secret: &str,
) -> Result<(), SigV4Error> {
    let credential = &auth.credential;
    let scope = Scope {
        date: credential.date.clone(),
        region: &credential.region,
        service: &credential.service,
    };
    let amz_date = format_amz_date(auth.timestamp);
    let matches = payload_hashes.iter().any(|payload_hash| {
        let expected =
            signature(secret, &scope, &string_to_sign(&amz_date, &scope, canonical, payload_hash));
        bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes()))
    });
    if matches {
        Ok(())
    } else {
        Err(SigV4Error::SignatureMismatch)
    }
}

/// Everything in the canonical request except the payload hash.
struct CanonicalRequest<'a> {
    method: &'a str,
    uri: String,
    query: String,
    /// `name:value\n` lines of the signed headers.
    headers: Vec<u8>,
    signed_headers: String,
}

impl<'a> CanonicalRequest<'a> {
    /// Canonicalises a request whose `signed_headers` are all present in `headers`.
    fn new(
        method: &'a str,
        raw_path: &str,
        query: &[QueryParam],
        headers: &HeaderMap,
        signed_headers: &[String],
    ) -> Self {
        Self {
            method,
            uri: canonical_uri(raw_path),
            query: canonical_query(query),
            headers: canonical_headers(headers, signed_headers),
            signed_headers: signed_headers.join(";"),
        }
    }

    fn to_bytes(&self, payload_hash: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.headers.len());
        for part in [self.method, &self.uri, &self.query] {
            out.extend_from_slice(part.as_bytes());
            out.push(b'\n');
        }
        out.extend_from_slice(&self.headers);
        out.push(b'\n');
        out.extend_from_slice(self.signed_headers.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(payload_hash.as_bytes());
        out
    }
}

/// botocore's `quote(normalize_url_path(path), safe='/~')`: the wire path is encoded again.
fn canonical_uri(raw_path: &str) -> String {
    percent_encode(normalize_path(raw_path).as_bytes(), PATH_SAFE).to_string()
}

/// RFC 3986 dot-segment removal that also collapses empty segments, keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let leading = if path.starts_with('/') { "/" } else { "" };
    let trailing = if path.ends_with('/') && !segments.is_empty() { "/" } else { "" };
    format!("{leading}{}{trailing}", segments.join("/"))
}

/// Sorted `key=value` pairs, each re-encoded with the unreserved set.
fn canonical_query(query: &[QueryParam]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|param| {
            let key = percent_encode(&param.key, UNRESERVED).to_string();
            (key, percent_encode(&param.value, UNRESERVED).to_string())
        })
        .collect();
    pairs.sort();
    let encoded: Vec<String> =
        pairs.into_iter().map(|(key, value)| format!("{key}={value}")).collect();
    encoded.join("&")
}

/// `name:value\n` for each signed header, all values joined by `,`, each whitespace-trimmed.
fn canonical_headers(headers: &HeaderMap, signed_headers: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in signed_headers {
        let values: Vec<String> =
            headers.get_all(name.as_str()).iter().map(|v| trim_all(v.as_bytes())).collect();
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        out.extend_from_slice(values.join(",").as_bytes());
        out.push(b'\n');
    }
    out
}

fn check_signed_headers_present(
    headers: &HeaderMap,
    signed_headers: &[String],
) -> Result<(), SigV4Error> {
    match signed_headers.iter().find(|name| !headers.contains_key(name.as_str())) {
        Some(name) => {
            Err(incomplete(format!("Signed header '{name}' is not present in the request.")))
        }
        None => Ok(()),
    }
}

/// Trims a header value and collapses inner runs of whitespace to one space.
fn trim_all(value: &[u8]) -> String {
    let words: Vec<String> = value
        .split(u8::is_ascii_whitespace)
        .filter(|word| !word.is_empty())
        .map(|word| String::from_utf8_lossy(word).into_owned())
        .collect();
    words.join(" ")
}

fn string_to_sign(
    amz_date: &str,
    scope: &Scope<'_>,
    canonical: &CanonicalRequest<'_>,
    payload_hash: &str,
) -> String {
    let canonical_hash = hex_sha256(&canonical.to_bytes(payload_hash));
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{canonical_hash}")
}

/// Hex HMAC of `string_to_sign` under the key derived from `secret` and `scope`.
fn signature(secret: &str, scope: &Scope<'_>, string_to_sign: &str) -> String {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes());
    let k_region = hmac_sha256(&k_date, scope.region.as_bytes());
    let k_service = hmac_sha256(&k_region, scope.service.as_bytes());
    let k_signing = hmac_sha256(&k_service, TERMINATOR.as_bytes());
    hex::encode(hmac_sha256(&k_signing, string_to_sign.as_bytes()))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests;

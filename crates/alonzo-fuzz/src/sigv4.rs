//! SigV4 (`alonzo_api::sigv4`): the `Authorization` header parser, canonical requests and the
//! presigned query form.
//!
//! Properties: arbitrary headers and queries never panic the verifier; a request signed by
//! [`sign`] (or [`presign`]) verifies; after changing one byte of the method, path, query,
//! a header or the body, the request verifies exactly when signing the changed request gives
//! the same signature (the change was canonically irrelevant, such as whitespace in a header
//! value); a changed `Authorization` header or presigned signature never verifies unless the
//! change was only whitespace or letter case.

use crate::input::{header_lines, number, optional, sections, text};
use alonzo_api::sigv4::{presign, sign, verify, Credentials, RequestToVerify, SigV4Error};
use chrono::{DateTime, Duration, TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};

const REGION: &str = "us-east-1";
const SERVICE: &str = "lambda";
const KEY_ID: &str = "AKIDEXAMPLE";
const HOST: &str = "127.0.0.1:9000";

/// Sections: `header` or `presigned`, method, path, query, headers (`name: value` lines),
/// secret, time (seconds since 1970), expiry seconds, the offset and new value of the byte
/// to change, a raw `Authorization` header and a raw query for the verifier alone, body.
#[derive(Debug)]
struct Input {
    presigned: bool,
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    secret: String,
    time: u32,
    expires: u32,
    mutate_at: u16,
    mutate_to: u8,
    raw_authorization: Option<String>,
    raw_query: Option<String>,
    body: Vec<u8>,
}

impl Input {
    fn parse(data: &[u8]) -> Self {
        let s = sections(data, 13);
        Self {
            presigned: s[0] == b"presigned",
            method: text(s[1]),
            path: text(s[2]),
            query: optional(s[3]),
            headers: header_lines(s[4]),
            secret: text(s[5]),
            // Within four-digit years, as `x-amz-date` is.
            time: (number(s[6]) % 253_402_300_799) as u32,
            expires: number(s[7]) as u32,
            mutate_at: number(s[8]) as u16,
            mutate_to: number(s[9]) as u8,
            raw_authorization: optional(s[10]),
            raw_query: optional(s[11]),
            body: s[12].to_vec(),
        }
    }
}

/// The fuzz target's body.
pub fn run(data: &[u8]) {
    let input = Input::parse(data);
    let now = Utc.timestamp_opt(i64::from(input.time), 0).single().unwrap_or_default();
    raw_verify(&input, now);
    if input.presigned {
        presigned(&input, now);
    } else {
        header_signed(&input, now);
    }
}

fn creds(secret: &str) -> Credentials {
    Credentials {
        access_key_id: KEY_ID.to_owned(),
        secret_access_key: secret.to_owned(),
        session_token: None,
    }
}

fn check(
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), SigV4Error> {
    let req = RequestToVerify { method, raw_path: path, raw_query: query, headers, body };
    let secret = secret.to_owned();
    let verified = verify(&req, now, Duration::minutes(15), REGION, &[SERVICE], |id| {
        (id == KEY_ID).then(|| secret.clone())
    })?;
    assert_eq!(verified.access_key_id, KEY_ID);
    assert_eq!(verified.region, REGION);
    assert_eq!(verified.service, SERVICE);
    Ok(())
}

/// Garbage in the `Authorization` header and query: any answer but a panic; never success
/// for a secret nobody signed with.
fn raw_verify(input: &Input, now: DateTime<Utc>) {
    let mut headers = header_map(&input.headers);
    if let Some(auth) =
        input.raw_authorization.as_deref().and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert(http::header::AUTHORIZATION, auth);
    }
    let query = input.raw_query.as_deref();
    // The secret is the fuzzer's, but the signature would have to be an HMAC under it.
    let result = check(&input.method, &input.path, query, &headers, &input.body, "x", now);
    if let Ok(()) = result {
        panic!("an unsigned request verified");
    }
}

/// The valid headers of the input, with exactly one `host` and none of the headers the
/// signer sets itself or that would pin the payload hash.
fn header_map(pairs: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs.iter().take(8) {
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        if matches!(
            name.as_str(),
            "host" | "authorization" | "x-amz-date" | "x-amz-content-sha256" | "date"
        ) {
            continue;
        }
        headers.append(name, value);
    }
    headers.insert(http::header::HOST, HeaderValue::from_static(HOST));
    headers
}

/// Whether the query carries SigV4's own parameters (then it is a different protocol).
fn has_auth_params(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        percent_encoding::percent_decode_str(q).decode_utf8_lossy().contains("X-Amz-")
    })
}

fn header_signed(input: &Input, now: DateTime<Utc>) {
    if has_auth_params(input.query.as_deref()) {
        return;
    }
    let query = input.query.as_deref();
    let mut headers = header_map(&input.headers);
    let signer = creds(&input.secret);
    sign(
        &input.method,
        &input.path,
        query,
        &mut headers,
        &input.body,
        &signer,
        REGION,
        SERVICE,
        now,
    );
    let Some(authorization) = headers.get(http::header::AUTHORIZATION).cloned() else {
        panic!("sign left no Authorization header for printable credentials");
    };
    let verifies = |m: &str, p: &str, q: Option<&str>, h: &HeaderMap, b: &[u8]| {
        check(m, p, q, h, b, &input.secret, now)
    };
    if let Err(e) = verifies(&input.method, &input.path, query, &headers, &input.body) {
        panic!("a signed request does not verify: {e}");
    }
    // Change one byte of one part and compare with what the signer says about the change.
    let mut parts: Vec<Vec<u8>> = vec![
        input.method.clone().into_bytes(),
        input.path.clone().into_bytes(),
        query.unwrap_or("").as_bytes().to_vec(),
        input.body.clone(),
    ];
    let signed_names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| !matches!(n.as_str(), "authorization" | "x-amz-date"))
        .cloned()
        .collect();
    for name in &signed_names {
        parts.push(headers.get(name).map(|v| v.as_bytes().to_vec()).unwrap_or_default());
    }
    let total: usize = parts.iter().map(Vec::len).sum();
    if total > 0 {
        let mut at = usize::from(input.mutate_at) % total;
        let part = parts.iter().position(|p| {
            let here = at < p.len();
            if !here {
                at -= p.len();
            }
            here
        });
        let part = part.expect("a position inside the total length");
        let mut changed = parts.clone();
        changed[part][at] = input.mutate_to;
        if changed[part] != parts[part] {
            mutated(input, now, &headers, &authorization, &signed_names, &changed, part);
        }
    }
    // Any change of the Authorization header itself fails, unless it is whitespace or case.
    let auth = authorization.as_bytes();
    let at = usize::from(input.mutate_at) % auth.len();
    let mut bad = auth.to_vec();
    bad[at] = input.mutate_to;
    if bad != auth {
        if let Ok(value) = HeaderValue::from_bytes(&bad) {
            let mut tampered = headers.clone();
            tampered.insert(http::header::AUTHORIZATION, value);
            if verifies(&input.method, &input.path, query, &tampered, &input.body).is_ok() {
                let (a, b) = (auth[at], bad[at]);
                assert!(
                    (a.is_ascii_whitespace() && b.is_ascii_whitespace())
                        || a.eq_ignore_ascii_case(&b),
                    "a tampered Authorization header verified: {:?}",
                    String::from_utf8_lossy(&bad)
                );
            }
        }
    }
}

/// Verifies the request with one part changed, and checks the verdict against re-signing.
fn mutated(
    input: &Input,
    now: DateTime<Utc>,
    headers: &HeaderMap,
    authorization: &HeaderValue,
    signed_names: &[HeaderName],
    changed: &[Vec<u8>],
    part: usize,
) {
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    let (Some(method), Some(path), Some(query)) =
        (text(&changed[0]), text(&changed[1]), text(&changed[2]))
    else {
        return;
    };
    if has_auth_params(Some(&query)) {
        return;
    }
    let query = (input.query.is_some() || !query.is_empty()).then_some(query);
    let mut new_headers = headers.clone();
    if part >= 4 {
        let Ok(value) = HeaderValue::from_bytes(&changed[part]) else { return };
        new_headers.insert(signed_names[part - 4].clone(), value);
    }
    let body = &changed[3];
    let mut resigned = new_headers.clone();
    let signer = creds(&input.secret);
    sign(&method, &path, query.as_deref(), &mut resigned, body, &signer, REGION, SERVICE, now);
    let equivalent = resigned.get(http::header::AUTHORIZATION) == Some(authorization);
    new_headers.insert(http::header::AUTHORIZATION, authorization.clone());
    let result = check(&method, &path, query.as_deref(), &new_headers, body, &input.secret, now);
    assert_eq!(
        result.is_ok(),
        equivalent,
        "verify and sign disagree about a changed request (part {part}): {result:?}"
    );
}

fn presigned(input: &Input, now: DateTime<Utc>) {
    if has_auth_params(input.query.as_deref()) {
        return;
    }
    let expires = Duration::seconds(i64::from(input.expires % 604_800) + 1);
    let signer = creds(&input.secret);
    let query = presign(
        &input.method,
        &input.path,
        input.query.as_deref(),
        HOST,
        &signer,
        REGION,
        SERVICE,
        now,
        expires,
    );
    let headers = header_map(&input.headers);
    let verifies = |q: &str, at: DateTime<Utc>| {
        check(&input.method, &input.path, Some(q), &headers, &input.body, &input.secret, at)
    };
    if let Err(e) = verifies(&query, now) {
        panic!("a presigned request does not verify: {e} ({query})");
    }
    assert!(verifies(&query, now + expires + Duration::seconds(1)).is_err(), "expiry ignored");
    // A changed byte of the query verifies only if it decodes to the same parameters.
    let at = usize::from(input.mutate_at) % query.len();
    let mut bad = query.clone().into_bytes();
    bad[at] = input.mutate_to;
    let Ok(bad) = String::from_utf8(bad) else { return };
    if bad != query && verifies(&bad, now).is_ok() {
        assert_eq!(decoded_pairs(&bad), decoded_pairs(&query), "a tampered presigned URL verified");
    }
}

/// The query's parameters, percent-decoded and sorted, as a signature covers them.
fn decoded_pairs(query: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
            (decode(k), decode(v))
        })
        .collect();
    pairs.sort();
    pairs
}

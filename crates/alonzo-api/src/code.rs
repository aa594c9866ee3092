//! Presigned download links for deployment packages (`GetFunction`'s `Code.Location`): a URL
//! on this server carrying an expiry and an HMAC of the package hash, so that any HTTP client
//! can fetch the zip for ten minutes without signing.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ApiError;
use crate::ApiState;

/// How long a link stays valid.
const LINK_VALIDITY_SECS: i64 = 600;

/// Builds the link to a package for a client that reached us at `host`.
pub(crate) fn presigned_url(state: &ApiState, headers: &HeaderMap, sha256_hex: &str) -> String {
    let expires = chrono::Utc::now().timestamp() + LINK_VALIDITY_SECS;
    let signature = sign(&state.code_url_key, sha256_hex, expires);
    let host = request_host(headers).unwrap_or_else(|| state.public_host.clone());
    format!("http://{host}/_alonzo/code/{sha256_hex}?Expires={expires}&Signature={signature}")
}

/// Serves a package to the holder of a valid, unexpired link.
pub(crate) async fn download(
    State(state): State<Arc<ApiState>>,
    Path(sha256_hex): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = crate::query::pairs(query.as_deref().unwrap_or(""));
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let expires = get("Expires").and_then(|e| e.parse::<i64>().ok());
    let valid = match (expires, get("Signature")) {
        (Some(exp), Some(sig)) => {
            exp >= chrono::Utc::now().timestamp()
                && verify(&state.code_url_key, &sha256_hex, exp, sig)
        }
        _ => false,
    };
    if !valid {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "Request has expired or its signature is invalid.",
        )
        .into_response();
    }
    match state.control.code(&sha256_hex).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/zip")], bytes).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn mac(key: &[u8], sha256_hex: &str, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(format!("{sha256_hex}\n{expires}").as_bytes());
    mac
}

fn sign(key: &[u8], sha256_hex: &str, expires: i64) -> String {
    hex::encode(mac(key, sha256_hex, expires).finalize().into_bytes())
}

fn verify(key: &[u8], sha256_hex: &str, expires: i64, signature_hex: &str) -> bool {
    // Only the exact (lower-case) form this server hands out: a link is one string, and an
    // edited one, even to the same bytes, is not it.
    let canonical = signature_hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    canonical
        && hex::decode(signature_hex)
            .is_ok_and(|sig| mac(key, sha256_hex, expires).verify_slice(&sig).is_ok())
}

/// The `Host` the client used, if it is a plausible `host[:port]` (never echo garbage into URLs).
pub(crate) fn request_host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plausible = !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    plausible.then(|| host.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_hash_and_expiry() {
        let key = b"k";
        let sig = sign(key, "ab", 10);
        assert!(verify(key, "ab", 10, &sig));
        assert!(!verify(key, "ac", 10, &sig));
        assert!(!verify(key, "ab", 11, &sig));
        assert!(!verify(b"other", "ab", 10, &sig));
        assert!(!verify(key, "ab", 10, &sig.to_uppercase()), "only the form handed out");
        assert!(!verify(key, "ab", 10, "zz"));
    }

    #[test]
    fn hosts_are_sanitised() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(request_host(&headers).as_deref(), Some("127.0.0.1:9000"));
        headers.insert(header::HOST, "evil/path?x".parse().unwrap());
        assert_eq!(request_host(&headers), None);
    }
}

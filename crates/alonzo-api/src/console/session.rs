//! The console's door: login with the server's access key id and secret access key, sessions
//! (random tokens, kept only as SHA-256 digests, with an absolute and an idle expiry), the
//! session cookie (`HttpOnly`, `SameSite=Strict`, scoped to the console's path), CSRF tokens
//! for every state-changing request, and logout.
//!
//! Every console route except the login page and the static assets passes [`require`]: a
//! page without a valid session is redirected to the login page, a data endpoint answers 401
//! in Lambda's error format, and a POST must carry the session's CSRF token and must not come
//! from another origin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::console::{ConsoleState, PREFIX};
use crate::error::ApiError;

/// Name of the session cookie.
pub(crate) const COOKIE: &str = "alonzo_console";
/// Name of the login form's double-submit cookie (CSRF protection of the login itself).
pub(crate) const LOGIN_COOKIE: &str = "alonzo_console_login";
/// A session ends this long after login, whatever happens.
pub(crate) const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// A session ends after this long without a request.
const IDLE_LIMIT: Duration = Duration::from_secs(3600);
/// Most sessions kept at once; the oldest is dropped beyond it.
const MAX_SESSIONS: usize = 1024;
/// Largest body of a console POST (an invocation payload, as `Invoke`'s limit, plus form
/// overhead).
pub(crate) const BODY_LIMIT: usize = crate::INVOKE_BODY_LIMIT + 4096;

/// A logged-in session, as handlers see it.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token every POST must carry (form field `csrf` or header `X-CSRF-Token`).
    pub(crate) csrf: String,
    /// The access key id that logged in.
    pub(crate) access_key_id: String,
    created: Instant,
    last_seen: Instant,
}

/// Live sessions, keyed by the SHA-256 of their cookie token, so that neither a lookup's
/// timing nor a memory dump gives a usable token away.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// Starts a session; returns the cookie token.
    pub(crate) fn create(&self, access_key_id: &str) -> String {
        let token = random_token();
        let now = Instant::now();
        let session = Session {
            csrf: random_token(),
            access_key_id: access_key_id.to_owned(),
            created: now,
            last_seen: now,
        };
        let mut map = self.lock();
        map.retain(|_, s| s.is_live(now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(digest(&token), session);
        token
    }

    /// The live session of `token`, refreshed; an expired one is removed.
    pub(crate) fn get(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let key = digest(token);
        let mut map = self.lock();
        let session = map.get_mut(&key)?;
        if !session.is_live(now) {
            map.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends the session of `token`.
    pub(crate) fn remove(&self, token: &str) {
        self.lock().remove(&digest(token));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock leaves a map that is still consistent.
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Session {
    fn is_live(&self, now: Instant) -> bool {
        now.duration_since(self.created) < LIFETIME
            && now.duration_since(self.last_seen) < IDLE_LIMIT
    }
}

/// 32 random bytes from the OS, hex.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `id` and `secret` are one of the server's key pairs. Every pair is compared, each
/// in constant time, so the answer's timing says nothing about how close a guess was.
pub(crate) fn credentials_match(keys: &HashMap<String, String>, id: &str, secret: &str) -> bool {
    let mut found = subtle::Choice::from(0);
    for (key_id, key_secret) in keys {
        found |=
            key_id.as_bytes().ct_eq(id.as_bytes()) & key_secret.as_bytes().ct_eq(secret.as_bytes());
    }
    found.into()
}

/// Constant-time equality of two tokens.
pub(crate) fn tokens_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for the session token (or, with `None`, one that deletes it).
pub(crate) fn session_cookie(token: Option<&str>) -> HeaderValue {
    set_cookie(COOKIE, token, LIFETIME)
}

/// `Set-Cookie` for the login form's double-submit nonce.
pub(crate) fn login_cookie(nonce: Option<&str>) -> HeaderValue {
    set_cookie(LOGIN_COOKIE, nonce, Duration::from_secs(3600))
}

fn set_cookie(name: &str, value: Option<&str>, max_age: Duration) -> HeaderValue {
    let (value, max_age) = match value {
        Some(v) => (v, max_age.as_secs()),
        None => ("", 0),
    };
    let text =
        format!("{name}={value}; Path={PREFIX}/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether a state-changing request comes from the console's own pages: a browser sends
/// `Origin` (and `Sec-Fetch-Site`) with every POST, and both must name this host.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let bare = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    bare.is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host))
}

/// Lets a request through only with a live session (added to its extensions); a POST must
/// also carry the session's CSRF token and come from this origin. The body of a POST is read
/// here (within [`BODY_LIMIT`]) so that a form's `csrf` field can be checked.
pub(crate) async fn require(
    State(console): State<Arc<ConsoleState>>,
    req: Request,
    next: Next,
) -> Response {
    let is_data = req.uri().path().starts_with("/api/");
    let token = cookie(req.headers(), COOKIE).map(str::to_owned);
    let Some(session) = token.as_deref().and_then(|t| console.sessions.get(t)) else {
        return refuse(is_data, req.uri().path());
    };
    let req = if req.method() == Method::GET || req.method() == Method::HEAD {
        req
    } else {
        match check_csrf(req, &session).await {
            Ok(req) => req,
            Err(e) => return e.into_response(),
        }
    };
    let mut req = req;
    req.extensions_mut().insert(session);
    let mut response = next.run(req).await;
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refuse(is_data: bool, path: &str) -> Response {
    if is_data {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UnauthorizedException",
            "Log in to the console first.",
        )
        .into_response();
    }
    let next = format!("{PREFIX}{path}");
    let target = format!("{PREFIX}/login?next={}", crate::console::pages::url_encode(&next));
    Redirect::to(&target).into_response()
}

async fn check_csrf(req: Request, session: &Session) -> Result<Request, ApiError> {
    let forbidden = |m: &str| ApiError::new(StatusCode::FORBIDDEN, "AccessDeniedException", m);
    if !same_origin(req.headers()) {
        return Err(forbidden("Cross-origin requests to the console are refused."));
    }
    let (parts, body) = req.into_parts();
    let Some(bytes) = crate::auth::read_limited(body, BODY_LIMIT).await else {
        return Err(ApiError::too_large(BODY_LIMIT, "console"));
    };
    let header_token = parts.headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    let form_token = if header_token.is_none() && is_form(&parts.headers) {
        form_field(&bytes, "csrf")
    } else {
        None
    };
    let given = header_token.map(str::to_owned).or(form_token);
    if !given.is_some_and(|t| tokens_equal(&t, &session.csrf)) {
        return Err(forbidden("The request's CSRF token is missing or wrong; reload the page."));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// One field of an `application/x-www-form-urlencoded` body.
pub(crate) fn form_field(body: &[u8], name: &str) -> Option<String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    fields.into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_need_both_halves() {
        let keys: HashMap<String, String> = [("AKID".to_owned(), "secret".to_owned())].into();
        assert!(credentials_match(&keys, "AKID", "secret"));
        assert!(!credentials_match(&keys, "AKID", "secreT"));
        assert!(!credentials_match(&keys, "AKID", "secret2"));
        assert!(!credentials_match(&keys, "OTHER", "secret"));
        assert!(!credentials_match(&keys, "", ""));
    }

    #[test]
    fn sessions_are_found_by_token_and_removed() {
        let sessions = Sessions::default();
        let token = sessions.create("AKID");
        let session = sessions.get(&token).expect("live session");
        assert_eq!(session.access_key_id, "AKID");
        assert_eq!(session.csrf.len(), 64);
        assert!(sessions.get(&format!("{token}0")).is_none());
        sessions.remove(&token);
        assert!(sessions.get(&token).is_none());
    }

    #[test]
    fn origins() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9000"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9000"));
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9000"));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&headers));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; alonzo_console=tok; b=2"));
        assert_eq!(cookie(&headers, COOKIE), Some("tok"));
        assert_eq!(cookie(&headers, LOGIN_COOKIE), None);
    }
}

//! The web console under `/_alonzo/console/` on the API's own port: server-rendered pages
//! (maud, which escapes every interpolated value) of functions with their versions, aliases
//! and configuration, live concurrency, charts, logs with live tail and search, usage and
//! cost, and queues; a small embedded script for invoking, polling and live tail.
//!
//! It reads the control plane in-process (`Control`, its `LogStore`, usage and activity) and
//! the built-in queues through `ApiState::queues`, never a store. Logging in needs one of the
//! server's key pairs (`session.rs`); everything is embedded in the binary (no CDN, no build
//! step), and the Content-Security-Policy allows scripts and styles from the console only.

mod chart;
mod data;
mod layout;
pub(crate) mod pages;
mod session;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::ApiState;

/// Where the console is mounted.
pub(crate) const PREFIX: &str = "/_alonzo/console";

/// Largest login form: two keys, a nonce and a redirect target.
const LOGIN_BODY_LIMIT: usize = 16 * 1024;
const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What the console's handlers share.
#[derive(Debug)]
pub(crate) struct ConsoleState {
    pub(crate) api: Arc<ApiState>,
    pub(crate) sessions: session::Sessions,
}

/// The console's routes, to be nested at [`PREFIX`].
pub(crate) fn router(api: Arc<ApiState>) -> Router {
    let state = Arc::new(ConsoleState { api, sessions: session::Sessions::default() });
    let protected = Router::new()
        .route("/", get(pages::functions))
        .route("/functions/{name}", get(pages::function))
        .route("/concurrency", get(pages::concurrency))
        .route("/logs", get(pages::logs))
        .route("/usage", get(pages::usage))
        .route("/queues", get(pages::queues))
        .route("/logout", post(logout))
        .route("/api/concurrency", get(data::concurrency))
        .route("/api/queues", get(data::queues))
        .route("/api/charts", get(data::charts))
        .route("/api/logs", get(data::logs))
        .route("/api/invoke", post(data::invoke))
        .route_layer(axum::middleware::from_fn_with_state(Arc::clone(&state), session::require));
    Router::new()
        .route("/login", get(login_page).post(login).layer(DefaultBodyLimit::max(LOGIN_BODY_LIMIT)))
        .route("/static/console.css", get(|| asset("text/css; charset=utf-8", CSS)))
        .route("/static/console.js", get(|| asset("text/javascript; charset=utf-8", JS)))
        .merge(protected)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(session::BODY_LIMIT))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers =
        [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "private, max-age=300")];
    (headers, body).into_response()
}

async fn not_found() -> Response {
    let body = layout::bare(
        "Not found",
        maud::html! {
            p { "There is no console page here. " a href={ (PREFIX) "/" } { "Go to the functions." } }
        },
    );
    (StatusCode::NOT_FOUND, Html(body.into_string())).into_response()
}

/// Headers that keep the console out of frames and other origins' reach, and its pages out
/// of caches.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

#[derive(Debug, Deserialize)]
struct LoginQuery {
    next: Option<String>,
    error: Option<String>,
}

async fn login_page(headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    // A nonce in a cookie and in the form (double submit): a login posted from another site
    // cannot know it, so nobody can log a victim's browser into an attacker's session.
    let nonce = session::cookie(&headers, session::LOGIN_COOKIE)
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(session::random_token, str::to_owned);
    let next = safe_next(q.next.as_deref());
    let failed = q.error.is_some();
    let body = layout::login(&nonce, &next, failed);
    let mut response = Html(body.into_string()).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session::login_cookie(Some(&nonce)));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    access_key_id: String,
    secret_access_key: String,
    nonce: String,
    next: Option<String>,
}

async fn login(
    State(console): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let cookie_nonce = session::cookie(&headers, session::LOGIN_COOKIE).unwrap_or("");
    if !session::same_origin(&headers)
        || cookie_nonce.is_empty()
        || !session::tokens_equal(cookie_nonce, &form.nonce)
    {
        let body = layout::bare(
            "Refused",
            maud::html! {
                p { "This login did not come from the console's own login page. "
                    a href={ (PREFIX) "/login" } { "Log in again." } }
            },
        );
        return (StatusCode::FORBIDDEN, Html(body.into_string())).into_response();
    }
    let next = safe_next(form.next.as_deref());
    let keys = &console.api.auth.keys;
    if !session::credentials_match(keys, form.access_key_id.trim(), &form.secret_access_key) {
        tracing::warn!(target: "alonzo::access", "console login refused");
        // Slows guessing down; the secrets are random and long, so this is only a courtesy.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let target = format!("{PREFIX}/login?error=1&next={}", pages::url_encode(&next));
        return Redirect::to(&target).into_response();
    }
    let token = console.sessions.create(form.access_key_id.trim());
    tracing::info!(target: "alonzo::access", access_key_id = %form.access_key_id.trim(), "console login");
    let mut response = Redirect::to(&next).into_response();
    let set = response.headers_mut();
    set.append(header::SET_COOKIE, session::session_cookie(Some(&token)));
    set.append(header::SET_COOKIE, session::login_cookie(None));
    response
}

async fn logout(State(console): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    if let Some(token) = session::cookie(&headers, session::COOKIE) {
        console.sessions.remove(token);
    }
    let mut response = Redirect::to(&format!("{PREFIX}/login")).into_response();
    response.headers_mut().insert(header::SET_COOKIE, session::session_cookie(None));
    response
}

/// A redirect target inside the console only (no open redirect).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with(&format!("{PREFIX}/"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with(&format!("{PREFIX}/login")) =>
        {
            n.to_owned()
        }
        _ => format!("{PREFIX}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn redirects_stay_in_the_console() {
        assert_eq!(safe_next(Some("/_alonzo/console/logs")), "/_alonzo/console/logs");
        assert_eq!(safe_next(Some("https://evil.example/")), "/_alonzo/console/");
        assert_eq!(safe_next(Some("/_alonzo/console//evil.example")), "/_alonzo/console/");
        assert_eq!(safe_next(Some("/_alonzo/console/login")), "/_alonzo/console/");
        assert_eq!(safe_next(None), "/_alonzo/console/");
    }
}

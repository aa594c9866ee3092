//! Lambda's HTTP event formats, without I/O: an HTTP request turned into the payload format
//! 2.0 event (function URLs, HTTP APIs) or 1.0 event (REST-style routes), a function's answer
//! turned back into an HTTP status, headers and body, and the CORS decisions of a function
//! URL. The function-URL front door and the routes use it; so can a streaming front door.

use std::collections::BTreeMap;

use alonzo_model::Cors;
use base64::Engine;
use chrono::{DateTime, Utc};
use http::HeaderMap;
use serde_json::{json, Map, Value};

/// An HTTP request as received, body buffered.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Method, e.g. `GET`.
    pub method: String,
    /// Path relative to the function URL's root or the stage, as on the wire (starts with `/`).
    pub path: String,
    /// Query string as on the wire, without `?`.
    pub raw_query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// Body bytes.
    pub body: Vec<u8>,
    /// The caller's address.
    pub source_ip: String,
    /// `HTTP/1.1`…
    pub protocol: String,
}

impl HttpRequest {
    /// The request a front door received: `path` is the one the event shows (relative to
    /// the URL root or the stage), `parts` give method, query, headers and protocol.
    pub fn from_parts(
        parts: &http::request::Parts,
        path: String,
        body: Vec<u8>,
        source_ip: String,
    ) -> Self {
        Self {
            method: parts.method.as_str().to_owned(),
            path,
            raw_query: parts.uri.query().unwrap_or("").to_owned(),
            headers: parts.headers.clone(),
            body,
            source_ip,
            protocol: format!("{:?}", parts.version),
        }
    }
}

/// The caller's identity when a SigV4 signature was verified (`AWS_IAM` URLs).
#[derive(Debug, Clone)]
pub struct IamCaller {
    /// Access key id that signed.
    pub access_key: String,
    /// Account of the caller.
    pub account_id: String,
}

/// Where and how the request arrived, for the event's `requestContext`.
#[derive(Debug, Clone)]
pub struct EventContext {
    /// `accountId` (`anonymous` for unauthenticated function URL callers).
    pub account_id: String,
    /// `apiId` (the URL id for function URLs).
    pub api_id: String,
    /// `domainName` (the `Host` the client used).
    pub domain_name: String,
    /// `domainPrefix`.
    pub domain_prefix: String,
    /// `requestId`.
    pub request_id: String,
    /// `routeKey`: `$default`, or the matched route (`GET /pets/{id}`).
    pub route_key: String,
    /// `stage`.
    pub stage: String,
    /// When the request arrived.
    pub time: DateTime<Utc>,
    /// The route's resource template (1.0 `resource`), e.g. `/pets/{id}`.
    pub resource: String,
    /// Values of the route's path parameters.
    pub path_parameters: BTreeMap<String, String>,
    /// The stage's variables.
    pub stage_variables: BTreeMap<String, String>,
    /// Set when the request was SigV4-authenticated.
    pub iam: Option<IamCaller>,
}

fn header_text(v: &http::HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// Header name → every value, in arrival order (names are lower-case).
fn grouped_headers(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        out.entry(name.as_str().to_owned()).or_default().push(header_text(value));
    }
    out
}

/// Decoded query parameters in order; `+` is a space, as browsers and curl encode it.
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// Whether a body of this content type reaches the function as text (otherwise it is
/// base64-encoded with `isBase64Encoded: true`). Form posts count as binary, as on Lambda.
pub fn is_text_content_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-javascript"
                | "application/graphql"
                | "application/yaml"
                | "application/x-yaml"
        )
}

/// The body as the event carries it: `(body, isBase64Encoded)`; `None` when empty.
fn event_body(req: &HttpRequest) -> (Option<String>, bool) {
    if req.body.is_empty() {
        return (None, false);
    }
    let content_type = req.headers.get(http::header::CONTENT_TYPE).map(header_text);
    match std::str::from_utf8(&req.body) {
        Ok(text) if is_text_content_type(content_type.as_deref()) => (Some(text.to_owned()), false),
        _ => (Some(base64::engine::general_purpose::STANDARD.encode(&req.body)), true),
    }
}

/// `12/Mar/2020:19:03:58 +0000`, the format of `requestContext.time`.
fn clf_time(t: DateTime<Utc>) -> String {
    t.format("%d/%b/%Y:%H:%M:%S +0000").to_string()
}

fn user_agent(req: &HttpRequest) -> String {
    req.headers.get(http::header::USER_AGENT).map(header_text).unwrap_or_default()
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Object(map.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
}

/// The payload format 2.0 event (function URLs and HTTP APIs).
pub fn event_v2(req: &HttpRequest, ctx: &EventContext) -> Value {
    let mut headers = Map::new();
    let mut cookies = Vec::new();
    for (name, values) in grouped_headers(&req.headers) {
        if name == "cookie" {
            for value in values {
                cookies.extend(
                    value.split(';').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned),
                );
            }
            continue;
        }
        headers.insert(name, Value::String(values.join(",")));
    }
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in query_pairs(&req.raw_query) {
        query.entry(k).or_default().push(v);
    }
    let (body, is_base64) = event_body(req);
    let mut request_context = json!({
        "accountId": ctx.account_id,
        "apiId": ctx.api_id,
        "domainName": ctx.domain_name,
        "domainPrefix": ctx.domain_prefix,
        "http": {
            "method": req.method,
            "path": req.path,
            "protocol": req.protocol,
            "sourceIp": req.source_ip,
            "userAgent": user_agent(req),
        },
        "requestId": ctx.request_id,
        "routeKey": ctx.route_key,
        "stage": ctx.stage,
        "time": clf_time(ctx.time),
        "timeEpoch": ctx.time.timestamp_millis(),
    });
    if let Some(iam) = &ctx.iam {
        request_context["authorizer"] = json!({
            "iam": {
                "accessKey": iam.access_key,
                "accountId": iam.account_id,
                "callerId": iam.access_key,
                "cognitoIdentity": null,
                "principalOrgId": null,
                "userArn": format!("arn:aws:iam::{}:root", iam.account_id),
                "userId": iam.account_id,
            }
        });
    }
    let mut event = json!({
        "version": "2.0",
        "routeKey": ctx.route_key,
        "rawPath": req.path,
        "rawQueryString": req.raw_query,
        "headers": headers,
        "requestContext": request_context,
        "isBase64Encoded": is_base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = Value::Object(
            query.into_iter().map(|(k, v)| (k, Value::String(v.join(",")))).collect(),
        );
    }
    if !ctx.path_parameters.is_empty() {
        event["pathParameters"] = string_map(&ctx.path_parameters);
    }
    if !ctx.stage_variables.is_empty() {
        event["stageVariables"] = string_map(&ctx.stage_variables);
    }
    if let Some(body) = body {
        event["body"] = Value::String(body);
    }
    event
}

/// The payload format 1.0 event (REST-API style), with single- and multi-value headers and
/// query parameters.
pub fn event_v1(req: &HttpRequest, ctx: &EventContext) -> Value {
    let grouped = grouped_headers(&req.headers);
    let headers: Map<String, Value> = grouped
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), Value::String(v.last()?.clone()))))
        .collect();
    let multi_headers: Map<String, Value> =
        grouped.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in query_pairs(&req.raw_query) {
        query.entry(k).or_default().push(v);
    }
    let (single_query, multi_query) = if query.is_empty() {
        (Value::Null, Value::Null)
    } else {
        (
            query
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), Value::String(v.last()?.clone()))))
                .collect::<Map<_, _>>()
                .into(),
            query.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>().into(),
        )
    };
    let (body, is_base64) = event_body(req);
    let optional_map =
        |m: &BTreeMap<String, String>| if m.is_empty() { Value::Null } else { string_map(m) };
    json!({
        "version": "1.0",
        "resource": ctx.resource,
        "path": req.path,
        "httpMethod": req.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query,
        "requestContext": {
            "accountId": ctx.account_id,
            "apiId": ctx.api_id,
            "domainName": ctx.domain_name,
            "domainPrefix": ctx.domain_prefix,
            "extendedRequestId": ctx.request_id,
            "httpMethod": req.method,
            "identity": {
                "sourceIp": req.source_ip,
                "userAgent": user_agent(req),
                "accessKey": ctx.iam.as_ref().map(|i| i.access_key.clone()),
                "accountId": ctx.iam.as_ref().map(|i| i.account_id.clone()),
                "caller": null,
                "user": null,
                "userArn": null,
            },
            "path": format!("/{}{}", ctx.stage, req.path),
            "protocol": req.protocol,
            "requestId": ctx.request_id,
            "requestTime": clf_time(ctx.time),
            "requestTimeEpoch": ctx.time.timestamp_millis(),
            "resourceId": ctx.route_key,
            "resourcePath": ctx.resource,
            "stage": ctx.stage,
        },
        "pathParameters": optional_map(&ctx.path_parameters),
        "stageVariables": optional_map(&ctx.stage_variables),
        "body": body,
        "isBase64Encoded": is_base64,
    })
}

/// An HTTP answer built from a function's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers in order; a name may repeat (`set-cookie`).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a function's result cannot be turned into an HTTP answer (the caller answers 502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The result is not JSON.
    #[error("the function's result is not JSON")]
    NotJson,
    /// The result has no `statusCode` (payload format 1.0 requires it).
    #[error("the function's result has no statusCode")]
    NoStatusCode,
    /// `statusCode` is not an HTTP status.
    #[error("statusCode is not a valid HTTP status")]
    BadStatus,
    /// `body` is not a string, or not valid base64 while `isBase64Encoded` is set.
    #[error("body is not a string or not valid base64")]
    BadBody,
    /// A header name or value cannot be sent.
    #[error("a header is not valid")]
    BadHeader,
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Which result shapes a format accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// 1.0: the result must be `{statusCode, headers, multiValueHeaders, body, isBase64Encoded}`.
    V1,
    /// 2.0: also accepts any other JSON, answered as a 200 `application/json` body.
    V2,
}

/// Turns a function's result into an HTTP answer, as a function URL (2.0) or a 1.0 route
/// does.
pub fn http_response(payload: &[u8], format: PayloadFormat) -> Result<HttpResponse, ResponseError> {
    let text = if payload.iter().all(u8::is_ascii_whitespace) { b"null" as &[u8] } else { payload };
    let value: Value = serde_json::from_slice(text).map_err(|_| ResponseError::NotJson)?;
    let structured = value.as_object().filter(|o| o.contains_key("statusCode"));
    match (structured, format) {
        (Some(obj), _) => structured_response(obj),
        (None, PayloadFormat::V1) => Err(ResponseError::NoStatusCode),
        (None, PayloadFormat::V2) => {
            let body = match &value {
                Value::String(s) => s.clone().into_bytes(),
                _ => text.to_vec(),
            };
            Ok(HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            })
        }
    }
}

fn structured_response(obj: &Map<String, Value>) -> Result<HttpResponse, ResponseError> {
    let status = match &obj["statusCode"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .and_then(|s| u16::try_from(s).ok())
    .filter(|s| (100..=599).contains(s))
    .ok_or(ResponseError::BadStatus)?;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(map) = obj.get("headers").and_then(Value::as_object) {
        for (k, v) in map {
            headers.push((k.to_ascii_lowercase(), scalar_text(v).ok_or(ResponseError::BadHeader)?));
        }
    }
    if let Some(map) = obj.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, values) in map {
            let name = k.to_ascii_lowercase();
            if obj.get("headers").and_then(|h| h.get(k)).is_some() {
                headers.retain(|(n, _)| *n != name);
            }
            for v in values.as_array().ok_or(ResponseError::BadHeader)? {
                headers.push((name.clone(), scalar_text(v).ok_or(ResponseError::BadHeader)?));
            }
        }
    }
    if let Some(cookies) = obj.get("cookies").and_then(Value::as_array) {
        for cookie in cookies {
            headers
                .push(("set-cookie".into(), scalar_text(cookie).ok_or(ResponseError::BadHeader)?));
        }
    }
    for (name, value) in &headers {
        let ok = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && http::HeaderValue::from_str(value).is_ok();
        if !ok {
            return Err(ResponseError::BadHeader);
        }
    }
    if !headers.iter().any(|(k, _)| k == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let body = match obj.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if obj.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|_| ResponseError::BadBody)?
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(_) => return Err(ResponseError::BadBody),
    };
    Ok(HttpResponse { status, headers, body })
}

/// `Content-Type` of a streamed response that starts with an HTTP prelude
/// (`awslambda.HttpResponseStream.from`, `lambda_runtime`'s `StreamResponse`).
pub const HTTP_INTEGRATION_CONTENT_TYPE: &str =
    "application/vnd.awslambda.http-integration-response";

/// The eight NUL bytes that end the JSON prelude of such a stream.
pub const PRELUDE_DELIMITER: [u8; 8] = [0; 8];

/// Where the prelude of a streamed HTTP response ends in `buf`: the offset of the
/// delimiter, if it has arrived.
pub fn find_prelude_end(buf: &[u8]) -> Option<usize> {
    buf.windows(PRELUDE_DELIMITER.len()).position(|w| w == PRELUDE_DELIMITER)
}

/// The status and headers of a streamed HTTP response from its JSON prelude
/// `{"statusCode", "headers", "multiValueHeaders", "cookies"}` (every member optional:
/// 200 and `application/octet-stream` by default). The returned body is empty.
pub fn stream_prelude(prelude: &[u8]) -> Result<HttpResponse, ResponseError> {
    let text = if prelude.iter().all(u8::is_ascii_whitespace) { b"{}" as &[u8] } else { prelude };
    let value: Value = serde_json::from_slice(text).map_err(|_| ResponseError::NotJson)?;
    let mut obj = value.as_object().cloned().ok_or(ResponseError::NotJson)?;
    obj.remove("body");
    obj.entry("statusCode").or_insert(Value::from(200));
    let declared = obj
        .get("headers")
        .and_then(Value::as_object)
        .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type")));
    let mut head = structured_response(&obj)?;
    if !declared {
        for (name, value) in &mut head.headers {
            if name == "content-type" {
                "application/octet-stream".clone_into(value);
            }
        }
    }
    Ok(head)
}

/// CORS: whether `origin` is one the configuration allows.
fn origin_allowed(cors: &Cors, origin: &str) -> bool {
    cors.allow_origins.iter().flatten().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

/// The `Access-Control-Allow-Origin` value for an allowed origin: `*` when every origin is
/// allowed and credentials are not, else the origin itself.
fn allow_origin_value(cors: &Cors, origin: &str) -> String {
    let wildcard = cors.allow_origins.iter().flatten().any(|o| o == "*");
    if wildcard && cors.allow_credentials != Some(true) {
        "*".to_owned()
    } else {
        origin.to_owned()
    }
}

/// Whether a request is a CORS preflight the platform answers itself: `OPTIONS` with
/// `Origin` and `Access-Control-Request-Method`, to a URL that has a CORS configuration.
pub fn is_preflight(cors: Option<&Cors>, method: &str, headers: &HeaderMap) -> bool {
    cors.is_some()
        && method.eq_ignore_ascii_case("OPTIONS")
        && headers.contains_key(http::header::ORIGIN)
        && headers.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The headers of the answer to a preflight (status 200, empty body). A disallowed origin
/// gets no `Access-Control-*` headers, so the browser refuses the real request.
pub fn preflight_headers(cors: &Cors, headers: &HeaderMap) -> Vec<(String, String)> {
    let origin = headers.get(http::header::ORIGIN).map(header_text).unwrap_or_default();
    if !origin_allowed(cors, &origin) {
        return Vec::new();
    }
    let mut out = vec![
        ("access-control-allow-origin".to_owned(), allow_origin_value(cors, &origin)),
        ("vary".to_owned(), "Origin".to_owned()),
    ];
    if let Some(methods) = cors.allow_methods.as_ref().filter(|m| !m.is_empty()) {
        out.push(("access-control-allow-methods".into(), methods.join(",")));
    }
    if let Some(allowed) = cors.allow_headers.as_ref().filter(|h| !h.is_empty()) {
        out.push(("access-control-allow-headers".into(), allowed.join(",")));
    }
    if cors.allow_credentials == Some(true) {
        out.push(("access-control-allow-credentials".into(), "true".into()));
    }
    if let Some(age) = cors.max_age {
        out.push(("access-control-max-age".into(), age.to_string()));
    }
    out
}

/// Applies the CORS configuration to a function's answer: the function's own
/// `Access-Control-*` headers are replaced, and an allowed `Origin` gets the configured ones.
pub fn apply_cors(cors: &Cors, request_headers: &HeaderMap, response: &mut HttpResponse) {
    response.headers.retain(|(k, _)| !k.starts_with("access-control-"));
    let Some(origin) = request_headers.get(http::header::ORIGIN).map(header_text) else {
        return;
    };
    if !origin_allowed(cors, &origin) {
        return;
    }
    response
        .headers
        .push(("access-control-allow-origin".into(), allow_origin_value(cors, &origin)));
    if let Some(expose) = cors.expose_headers.as_ref().filter(|h| !h.is_empty()) {
        response.headers.push(("access-control-expose-headers".into(), expose.join(",")));
    }
    if cors.allow_credentials == Some(true) {
        response.headers.push(("access-control-allow-credentials".into(), "true".into()));
    }
    if !response.headers.iter().any(|(k, v)| k == "vary" && v.contains("Origin")) {
        response.headers.push(("vary".into(), "Origin".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpRequest {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        HttpRequest {
            method: method.into(),
            path: path.into(),
            raw_query: query.into(),
            headers: map,
            body: body.to_vec(),
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1".into(),
        }
    }

    fn context() -> EventContext {
        EventContext {
            account_id: "anonymous".into(),
            api_id: "abc".into(),
            domain_name: "127.0.0.1:9000".into(),
            domain_prefix: "abc".into(),
            request_id: "req-1".into(),
            route_key: "$default".into(),
            stage: "$default".into(),
            time: DateTime::parse_from_rfc3339("2020-03-12T19:03:58.123Z")
                .unwrap()
                .with_timezone(&Utc),
            resource: "/{proxy+}".into(),
            path_parameters: BTreeMap::new(),
            stage_variables: BTreeMap::new(),
            iam: None,
        }
    }

    #[test]
    fn v2_event_from_a_get_with_query_and_cookies() {
        let req = request(
            "GET",
            "/items/42",
            "a=1&a=2&b=x%20y&c=p+q",
            &[
                ("User-Agent", "curl/8"),
                ("X-Multi", "one"),
                ("x-multi", "two"),
                ("Cookie", "s=1; t=2"),
            ],
            b"",
        );
        let e = event_v2(&req, &context());
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "$default");
        assert_eq!(e["rawPath"], "/items/42");
        assert_eq!(e["rawQueryString"], "a=1&a=2&b=x%20y&c=p+q");
        assert_eq!(e["queryStringParameters"], json!({"a": "1,2", "b": "x y", "c": "p q"}));
        assert_eq!(e["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(e["headers"]["x-multi"], "one,two");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["requestContext"]["http"]["method"], "GET");
        assert_eq!(e["requestContext"]["http"]["userAgent"], "curl/8");
        assert_eq!(e["requestContext"]["time"], "12/Mar/2020:19:03:58 +0000");
        assert_eq!(e["requestContext"]["timeEpoch"], 1_584_039_838_123_i64);
        assert_eq!(e["requestContext"]["stage"], "$default");
        assert_eq!(e["isBase64Encoded"], false);
        assert!(e.get("body").is_none());
        assert!(e.get("pathParameters").is_none());
    }

    #[test]
    fn bodies_are_text_or_base64_by_content_type() {
        let json_req = request(
            "POST",
            "/",
            "",
            &[("content-type", "application/json; charset=utf-8")],
            b"{\"a\":1}",
        );
        let e = event_v2(&json_req, &context());
        assert_eq!(e["body"], "{\"a\":1}");
        assert_eq!(e["isBase64Encoded"], false);
        let bin =
            request("POST", "/", "", &[("content-type", "application/octet-stream")], &[0, 255, 1]);
        let e = event_v2(&bin, &context());
        assert_eq!(e["body"], "AP8B");
        assert_eq!(e["isBase64Encoded"], true);
        let form = request(
            "POST",
            "/",
            "",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"a=1",
        );
        assert_eq!(event_v2(&form, &context())["isBase64Encoded"], true);
        let untyped = request("POST", "/", "", &[], b"hello");
        assert_eq!(event_v2(&untyped, &context())["isBase64Encoded"], true);
        assert!(is_text_content_type(Some("text/plain")));
        assert!(is_text_content_type(Some("application/vnd.api+json")));
        assert!(!is_text_content_type(Some("image/png")));
    }

    #[test]
    fn v1_event_has_multi_value_maps_and_route_fields() {
        let req = request("GET", "/pets/7", "q=1&q=2", &[("accept", "a"), ("accept", "b")], b"");
        let mut ctx = context();
        ctx.route_key = "GET /pets/{id}".into();
        ctx.stage = "prod".into();
        ctx.resource = "/pets/{id}".into();
        ctx.path_parameters.insert("id".into(), "7".into());
        ctx.stage_variables.insert("color".into(), "blue".into());
        let e = event_v1(&req, &ctx);
        assert_eq!(e["version"], "1.0");
        assert_eq!(e["httpMethod"], "GET");
        assert_eq!(e["path"], "/pets/7");
        assert_eq!(e["resource"], "/pets/{id}");
        assert_eq!(e["headers"]["accept"], "b");
        assert_eq!(e["multiValueHeaders"]["accept"], json!(["a", "b"]));
        assert_eq!(e["queryStringParameters"], json!({"q": "2"}));
        assert_eq!(e["multiValueQueryStringParameters"], json!({"q": ["1", "2"]}));
        assert_eq!(e["pathParameters"], json!({"id": "7"}));
        assert_eq!(e["stageVariables"], json!({"color": "blue"}));
        assert_eq!(e["requestContext"]["path"], "/prod/pets/7");
        assert_eq!(e["body"], Value::Null);
        let bare = event_v1(&request("GET", "/", "", &[], b""), &context());
        assert_eq!(bare["queryStringParameters"], Value::Null);
        assert_eq!(bare["pathParameters"], Value::Null);
    }

    #[test]
    fn structured_responses() {
        let r = http_response(
            br#"{"statusCode": 201, "headers": {"X-A": "1", "n": 5}, "cookies": ["a=1", "b=2; Path=/"], "body": "made"}"#,
            PayloadFormat::V2,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("x-a"), Some("1"));
        assert_eq!(r.header("n"), Some("5"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let cookies: Vec<_> =
            r.headers.iter().filter(|(k, _)| k == "set-cookie").map(|(_, v)| v.as_str()).collect();
        assert_eq!(cookies, ["a=1", "b=2; Path=/"]);
        assert_eq!(r.body, b"made");
        let bin = http_response(
            br#"{"statusCode": 200, "headers": {"content-type": "image/png"}, "body": "AP8B", "isBase64Encoded": true}"#,
            PayloadFormat::V1,
        )
        .unwrap();
        assert_eq!(bin.body, [0, 255, 1]);
        assert_eq!(bin.header("content-type"), Some("image/png"));
        let multi = http_response(
            br#"{"statusCode": 200, "multiValueHeaders": {"x-m": ["1", "2"]}}"#,
            PayloadFormat::V1,
        )
        .unwrap();
        assert_eq!(multi.headers.iter().filter(|(k, _)| k == "x-m").count(), 2);
        assert!(multi.body.is_empty());
    }

    #[test]
    fn shorthand_and_errors() {
        let r = http_response(br#"{"hello": "world"}"#, PayloadFormat::V2).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, br#"{"hello": "world"}"# as &[u8]));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(http_response(br#""plain""#, PayloadFormat::V2).unwrap().body, b"plain");
        assert_eq!(http_response(b"[1,2]", PayloadFormat::V2).unwrap().body, b"[1,2]");
        assert_eq!(
            http_response(br#"{"a": 1}"#, PayloadFormat::V1),
            Err(ResponseError::NoStatusCode)
        );
        assert_eq!(http_response(b"not json", PayloadFormat::V2), Err(ResponseError::NotJson));
        assert_eq!(
            http_response(br#"{"statusCode": 9999}"#, PayloadFormat::V2),
            Err(ResponseError::BadStatus)
        );
        assert_eq!(
            http_response(br#"{"statusCode": 200, "body": {"a": 1}}"#, PayloadFormat::V2),
            Err(ResponseError::BadBody)
        );
        assert_eq!(
            http_response(
                br#"{"statusCode": 200, "body": "%%", "isBase64Encoded": true}"#,
                PayloadFormat::V2
            ),
            Err(ResponseError::BadBody)
        );
        assert_eq!(
            http_response(
                br#"{"statusCode": 200, "headers": {"bad header": "x"}}"#,
                PayloadFormat::V2
            ),
            Err(ResponseError::BadHeader)
        );
    }

    #[test]
    fn cors_decisions() {
        let cors = Cors {
            allow_origins: Some(vec!["https://app.example".into()]),
            allow_methods: Some(vec!["GET".into(), "POST".into()]),
            allow_headers: Some(vec!["x-custom".into()]),
            expose_headers: Some(vec!["x-out".into()]),
            allow_credentials: Some(true),
            max_age: Some(600),
        };
        let mut h = HeaderMap::new();
        h.insert("origin", "https://app.example".parse().unwrap());
        h.insert("access-control-request-method", "POST".parse().unwrap());
        assert!(is_preflight(Some(&cors), "OPTIONS", &h));
        assert!(!is_preflight(None, "OPTIONS", &h));
        assert!(!is_preflight(Some(&cors), "GET", &h));
        let pre = preflight_headers(&cors, &h);
        let get = |k: &str| pre.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get("access-control-allow-origin").as_deref(), Some("https://app.example"));
        assert_eq!(get("access-control-allow-methods").as_deref(), Some("GET,POST"));
        assert_eq!(get("access-control-allow-headers").as_deref(), Some("x-custom"));
        assert_eq!(get("access-control-max-age").as_deref(), Some("600"));
        assert_eq!(get("access-control-allow-credentials").as_deref(), Some("true"));

        let mut other = HeaderMap::new();
        other.insert("origin", "https://evil.example".parse().unwrap());
        assert!(preflight_headers(&cors, &other).is_empty());

        let mut resp = HttpResponse {
            status: 200,
            headers: vec![("access-control-allow-origin".into(), "*".into())],
            body: Vec::new(),
        };
        apply_cors(&cors, &h, &mut resp);
        assert_eq!(resp.header("access-control-allow-origin"), Some("https://app.example"));
        assert_eq!(resp.header("access-control-expose-headers"), Some("x-out"));
        let mut resp2 = HttpResponse { status: 200, headers: Vec::new(), body: Vec::new() };
        apply_cors(&cors, &other, &mut resp2);
        assert_eq!(resp2.header("access-control-allow-origin"), None);

        let star = Cors { allow_origins: Some(vec!["*".into()]), ..Cors::default() };
        let mut resp3 = HttpResponse { status: 200, headers: Vec::new(), body: Vec::new() };
        apply_cors(&star, &other, &mut resp3);
        assert_eq!(resp3.header("access-control-allow-origin"), Some("*"));
    }

    #[test]
    fn stream_preludes_give_status_headers_and_cookies() {
        let mut stream = br#"{"statusCode":201,"headers":{"Content-Type":"text/plain","X-Custom":"a"},"cookies":["k=v"]}"#.to_vec();
        let prelude_len = stream.len();
        stream.extend_from_slice(&PRELUDE_DELIMITER);
        stream.extend_from_slice(b"body\0bytes");
        let end = find_prelude_end(&stream).expect("delimiter");
        assert_eq!(end, prelude_len);
        assert_eq!(&stream[end + PRELUDE_DELIMITER.len()..], b"body\0bytes");
        let head = stream_prelude(&stream[..end]).expect("valid prelude");
        assert_eq!(head.status, 201);
        assert_eq!(head.header("content-type"), Some("text/plain"));
        assert_eq!(head.header("x-custom"), Some("a"));
        assert_eq!(head.header("set-cookie"), Some("k=v"));
        assert!(head.body.is_empty());
        assert_eq!(find_prelude_end(b"{\"statusCode\":200}\0\0\0\0"), None);
    }

    #[test]
    fn stream_prelude_defaults() {
        let head = stream_prelude(b"{}").expect("empty prelude");
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-type"), Some("application/octet-stream"));
        assert_eq!(stream_prelude(b"not json"), Err(ResponseError::NotJson));
        assert_eq!(stream_prelude(br#"{"statusCode":99}"#), Err(ResponseError::BadStatus));
    }
}

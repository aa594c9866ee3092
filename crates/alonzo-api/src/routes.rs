//! The route table of the minimal API gateway, without I/O: the declarative routes file
//! (JSON: stages, their variables, and `METHOD /path/{param}` routes to functions or
//! aliases), its validation, and API Gateway's route selection (exact paths before parameter
//! paths before greedy paths, a specific method before `ANY`, `$default` last).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use alonzo_model::{Account, FunctionRef};
use serde::Deserialize;

use crate::http_event::PayloadFormat;

/// Methods a route may name (`ANY` matches every method).
pub const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];

/// Why a routes file was refused; the message names the stage and route at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutesError {
    /// The text is not JSON of the expected shape (unknown keys are refused too).
    #[error("routes file: {0}")]
    Syntax(String),
    /// A stage name, variable, route or target breaks a rule.
    #[error("routes file: {0}")]
    Invalid(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    stages: BTreeMap<String, StageDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StageDoc {
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    routes: Vec<RouteDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    route: String,
    function: String,
    #[serde(default)]
    payload_format: Option<String>,
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Matches exactly this (decoded) text.
    Literal(String),
    /// `{name}`: one segment.
    Param(String),
    /// `{name+}`: the final segment and everything below it (at least one segment).
    Greedy(String),
}

impl Segment {
    /// Literal before parameter before greedy.
    fn rank(&self) -> u8 {
        match self {
            Self::Literal(_) => 0,
            Self::Param(_) => 1,
            Self::Greedy(_) => 2,
        }
    }
}

/// One route of a stage.
#[derive(Debug, Clone)]
pub struct Route {
    /// The route key as written: `GET /pets/{id}` or `$default`.
    pub key: String,
    /// `None` for `ANY` and `$default`.
    method: Option<String>,
    /// `None` for `$default`.
    template: Option<Vec<Segment>>,
    /// The path template (`/pets/{id}`), or `$default`.
    pub resource: String,
    /// The function, as `Invoke`'s `FunctionName` takes it (`name`, `name:alias`, an ARN).
    pub function: String,
    /// The event format sent and the result shape accepted.
    pub format: PayloadFormat,
}

impl Route {
    /// The method as written (`ANY` for `ANY` routes; `$default` has none).
    pub fn method(&self) -> Option<&str> {
        if self.template.is_none() {
            None
        } else {
            Some(self.method.as_deref().unwrap_or("ANY"))
        }
    }

    /// The payload format as written in the file.
    pub fn format_name(&self) -> &'static str {
        match self.format {
            PayloadFormat::V1 => "1.0",
            PayloadFormat::V2 => "2.0",
        }
    }

    /// Matches a decoded request path's segments; `Some` holds the path parameters.
    fn matches(&self, segments: &[String]) -> Option<BTreeMap<String, String>> {
        let template = self.template.as_ref()?;
        let mut params = BTreeMap::new();
        for (i, seg) in template.iter().enumerate() {
            match seg {
                Segment::Greedy(name) => {
                    let rest = segments.get(i..).filter(|r| !r.is_empty())?;
                    params.insert(name.clone(), rest.join("/"));
                    return Some(params);
                }
                Segment::Literal(text) => {
                    if segments.get(i)? != text {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let value = segments.get(i).filter(|v| !v.is_empty())?;
                    params.insert(name.clone(), value.clone());
                }
            }
        }
        (segments.len() == template.len()).then_some(params)
    }

    /// Orders matching routes, most specific first: no greedy segment before greedy; then
    /// segment by segment, literal before parameter before greedy; then a named method
    /// before `ANY`.
    fn specificity(&self, other: &Self) -> Ordering {
        let class = |r: &Self| {
            r.template.as_ref().map_or(3, |t| {
                if t.iter().any(|s| matches!(s, Segment::Greedy(_))) {
                    2
                } else if t.iter().any(|s| matches!(s, Segment::Param(_))) {
                    1
                } else {
                    0
                }
            })
        };
        let ranks = |r: &Self| -> Vec<u8> {
            r.template.iter().flatten().map(Segment::rank).collect::<Vec<_>>()
        };
        class(self)
            .cmp(&class(other))
            .then_with(|| ranks(self).cmp(&ranks(other)))
            .then_with(|| self.method.is_none().cmp(&other.method.is_none()))
    }
}

/// One stage: its variables and routes.
#[derive(Debug, Clone, Default)]
pub struct Stage {
    /// `stageVariables` of every event of this stage.
    pub variables: BTreeMap<String, String>,
    /// The routes, in file order.
    pub routes: Vec<Route>,
}

/// The route a request selected, with its path parameters (decoded).
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    /// The route.
    pub route: &'a Route,
    /// `pathParameters`.
    pub path_parameters: BTreeMap<String, String>,
}

/// Every stage and its routes, validated.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    stages: BTreeMap<String, Stage>,
}

impl RouteTable {
    /// Parses and validates a routes file; `account` checks function ARNs.
    pub fn parse(text: &str, account: &Account) -> Result<Self, RoutesError> {
        let doc: FileDoc =
            serde_json::from_str(text).map_err(|e| RoutesError::Syntax(e.to_string()))?;
        let mut stages = BTreeMap::new();
        for (name, stage) in doc.stages {
            check_stage_name(&name)?;
            for (k, v) in &stage.variables {
                check_variable(&name, k, v)?;
            }
            let mut routes: Vec<Route> = Vec::new();
            for doc in stage.routes {
                let route = parse_route(&name, doc, account)?;
                if let Some(other) = routes.iter().find(|r| same_shape(r, &route)) {
                    return Err(RoutesError::Invalid(format!(
                        "stage {name:?}: route {:?} conflicts with route {:?}",
                        route.key, other.key
                    )));
                }
                routes.push(route);
            }
            stages.insert(name, Stage { variables: stage.variables, routes });
        }
        Ok(Self { stages })
    }

    /// The stages, by name.
    pub fn stages(&self) -> &BTreeMap<String, Stage> {
        &self.stages
    }

    /// Whether there is no stage at all.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// The stage of this name.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.get(name)
    }
}

impl Stage {
    /// Selects the route for a method and a path relative to the stage (as on the wire:
    /// percent-encoded, starting with `/`).
    pub fn select(&self, method: &str, raw_path: &str) -> Option<RouteMatch<'_>> {
        let segments = path_segments(raw_path);
        let best = self
            .routes
            .iter()
            .filter(|r| r.template.is_some())
            .filter(|r| r.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method)))
            .filter_map(|r| r.matches(&segments).map(|p| (r, p)))
            .min_by(|(a, _), (b, _)| a.specificity(b));
        if let Some((route, path_parameters)) = best {
            return Some(RouteMatch { route, path_parameters });
        }
        let fallback = self.routes.iter().find(|r| r.template.is_none())?;
        Some(RouteMatch { route: fallback, path_parameters: BTreeMap::new() })
    }
}

/// `/a/b%20c/` → `["a", "b c"]`: decoded segments, one trailing slash ignored; the root is
/// no segment at all.
fn path_segments(raw_path: &str) -> Vec<String> {
    let trimmed = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect()
}

/// Two routes no request could tell apart: same method and same template shape.
fn same_shape(a: &Route, b: &Route) -> bool {
    let shape = |r: &Route| -> Option<Vec<Option<String>>> {
        r.template.as_ref().map(|t| {
            t.iter()
                .map(|s| match s {
                    Segment::Literal(text) => Some(text.clone()),
                    Segment::Param(_) => None,
                    Segment::Greedy(_) => Some("{+}".to_owned()),
                })
                .collect()
        })
    };
    a.method == b.method && shape(a) == shape(b)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn check_stage_name(name: &str) -> Result<(), RoutesError> {
    let ok = name == "$default"
        || (!name.is_empty() && name.len() <= 128 && name.chars().all(is_name_char));
    if ok {
        Ok(())
    } else {
        Err(RoutesError::Invalid(format!(
            "stage name {name:?} must be 1-128 letters, digits, '-' or '_' (or \"$default\")"
        )))
    }
}

fn check_variable(stage: &str, name: &str, value: &str) -> Result<(), RoutesError> {
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !name_ok {
        return Err(RoutesError::Invalid(format!(
            "stage {stage:?}: variable name {name:?} must be 1-64 letters, digits or '_'"
        )));
    }
    if value.len() > 2048 {
        return Err(RoutesError::Invalid(format!(
            "stage {stage:?}: variable {name:?} is longer than 2048 characters"
        )));
    }
    Ok(())
}

fn parse_route(stage: &str, doc: RouteDoc, account: &Account) -> Result<Route, RoutesError> {
    let invalid = |what: String| RoutesError::Invalid(format!("stage {stage:?}: {what}"));
    let format = match doc.payload_format.as_deref() {
        None | Some("2.0") => PayloadFormat::V2,
        Some("1.0") => PayloadFormat::V1,
        Some(other) => {
            return Err(invalid(format!(
                "route {:?}: payload_format {other:?} must be \"1.0\" or \"2.0\"",
                doc.route
            )))
        }
    };
    let key = doc.route.trim().to_owned();
    FunctionRef::parse(&doc.function, account).map_err(|_| {
        invalid(format!(
            "route {key:?}: function {:?} is not a function name, name:qualifier or ARN of this account",
            doc.function
        ))
    })?;
    if key == "$default" {
        if format == PayloadFormat::V1 {
            return Err(invalid(
                "the $default route needs payload_format \"2.0\" (HTTP-API style)".into(),
            ));
        }
        return Ok(Route {
            key: key.clone(),
            method: None,
            template: None,
            resource: key,
            function: doc.function,
            format,
        });
    }
    let Some((method, path)) = key.split_once(' ') else {
        return Err(invalid(format!(
            "route {key:?} must be \"METHOD /path\" (e.g. \"GET /pets/{{id}}\") or \"$default\""
        )));
    };
    let path = path.trim();
    if !METHODS.contains(&method) {
        return Err(invalid(format!(
            "route {key:?}: method {method:?} must be one of {}",
            METHODS.join(", ")
        )));
    }
    let template = parse_template(path).map_err(|why| invalid(format!("route {key:?}: {why}")))?;
    Ok(Route {
        key: format!("{method} {path}"),
        method: (method != "ANY").then(|| method.to_owned()),
        template: Some(template),
        resource: path.to_owned(),
        function: doc.function,
        format,
    })
}

fn parse_template(path: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("path {path:?} must start with '/'"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    let mut names: Vec<&str> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            return Err(format!("path {path:?} has an empty segment"));
        }
        if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            let (name, greedy) = inner.strip_suffix('+').map_or((inner, false), |n| (n, true));
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "parameter {part:?} must be {{name}} or {{name+}} with letters, digits or '_'"
                ));
            }
            if names.contains(&name) {
                return Err(format!("parameter {name:?} appears twice"));
            }
            names.push(name);
            if greedy {
                if i + 1 != parts.len() {
                    return Err(format!("greedy parameter {part:?} must be the last segment"));
                }
                out.push(Segment::Greedy(name.to_owned()));
            } else {
                out.push(Segment::Param(name.to_owned()));
            }
        } else if part.contains(['{', '}']) {
            return Err(format!("segment {part:?}: a parameter must be a whole segment"));
        } else {
            out.push(Segment::Literal(
                percent_encoding::percent_decode_str(part).decode_utf8_lossy().into_owned(),
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account { region: "us-east-1".into(), account_id: "000000000000".into() }
    }

    fn table(routes: &str) -> Result<RouteTable, RoutesError> {
        RouteTable::parse(
            &format!(
                r#"{{"stages": {{"prod": {{"variables": {{"k": "v"}}, "routes": [{routes}]}}}}}}"#
            ),
            &account(),
        )
    }

    fn route(key: &str, function: &str) -> String {
        format!(r#"{{"route": "{key}", "function": "{function}"}}"#)
    }

    fn select(t: &RouteTable, method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
        let m = t.stage("prod")?.select(method, path)?;
        Some((m.route.key.clone(), m.path_parameters.into_iter().collect()))
    }

    #[test]
    fn parses_the_documented_example() {
        let t = RouteTable::parse(
            r#"{"stages": {"prod": {"variables": {"k": "v"}, "routes": [
                {"route": "GET /pets/{id}", "function": "pets:live", "payload_format": "1.0"},
                {"route": "ANY /{proxy+}", "function": "catchall", "payload_format": "2.0"}]}}}"#,
            &account(),
        )
        .unwrap();
        let prod = t.stage("prod").unwrap();
        assert_eq!(prod.variables["k"], "v");
        assert_eq!(prod.routes.len(), 2);
        assert_eq!(prod.routes[0].format, PayloadFormat::V1);
        assert_eq!(prod.routes[0].function, "pets:live");
        assert_eq!(prod.routes[0].resource, "/pets/{id}");
        assert_eq!(prod.routes[1].method(), Some("ANY"));
        let m = prod.select("GET", "/pets/7").unwrap();
        assert_eq!(m.route.key, "GET /pets/{id}");
        assert_eq!(m.path_parameters["id"], "7");
        let m = prod.select("DELETE", "/a/b/c").unwrap();
        assert_eq!(m.route.key, "ANY /{proxy+}");
        assert_eq!(m.path_parameters["proxy"], "a/b/c");
        assert!(t.stage("dev").is_none());
    }

    #[test]
    fn precedence_exact_then_parameters_then_greedy_then_default() {
        let t = table(
            &[
                route("ANY /{proxy+}", "f"),
                route("GET /pets/{proxy+}", "f"),
                route("GET /pets/{kind}/{id}", "f"),
                route("GET /pets/dog/{id}", "f"),
                route("GET /pets/dog/1", "f"),
                route("$default", "f"),
            ]
            .join(","),
        )
        .unwrap();
        let key = |m: &str, p: &str| select(&t, m, p).map(|x| x.0);
        assert_eq!(key("GET", "/pets/dog/1").as_deref(), Some("GET /pets/dog/1"));
        assert_eq!(key("GET", "/pets/dog/2").as_deref(), Some("GET /pets/dog/{id}"));
        assert_eq!(key("GET", "/pets/cat/2").as_deref(), Some("GET /pets/{kind}/{id}"));
        assert_eq!(key("GET", "/pets/cat/2/toys").as_deref(), Some("GET /pets/{proxy+}"));
        assert_eq!(key("POST", "/pets/dog/1").as_deref(), Some("ANY /{proxy+}"));
        assert_eq!(key("GET", "/").as_deref(), Some("$default"));
        assert_eq!(key("GET", "/pets").as_deref(), Some("ANY /{proxy+}"));
    }

    #[test]
    fn a_named_method_beats_any_on_the_same_path() {
        let t =
            table(&[route("ANY /items/{id}", "any"), route("POST /items/{id}", "post")].join(","))
                .unwrap();
        let prod = t.stage("prod").unwrap();
        assert_eq!(prod.select("POST", "/items/3").unwrap().route.function, "post");
        assert_eq!(prod.select("GET", "/items/3").unwrap().route.function, "any");
        assert_eq!(prod.select("post", "/items/3").unwrap().route.function, "post");
    }

    #[test]
    fn unmatched_paths_and_methods() {
        let t = table(&[route("GET /pets/{id}", "f"), route("POST /pets", "f")].join(",")).unwrap();
        assert!(select(&t, "GET", "/pets").is_none());
        assert!(select(&t, "GET", "/pets/1/2").is_none());
        assert!(select(&t, "PUT", "/pets/1").is_none());
        assert!(select(&t, "HEAD", "/pets/1").is_none());
        assert!(select(&t, "GET", "/").is_none());
        // An empty segment does not fill a parameter; one trailing slash is ignored.
        assert!(select(&t, "GET", "/pets//").is_none());
        assert_eq!(select(&t, "POST", "/pets/").unwrap().0, "POST /pets");
        // Greedy needs at least one segment: `/{proxy+}` does not match the root.
        let g = table(&route("ANY /{proxy+}", "f")).unwrap();
        assert!(select(&g, "GET", "/").is_none());
        let root = table(&route("GET /", "f")).unwrap();
        assert_eq!(select(&root, "GET", "/").unwrap().0, "GET /");
        assert!(select(&root, "GET", "/x").is_none());
    }

    #[test]
    fn path_parameters_are_decoded() {
        let t = table(&[route("GET /files/{name}", "f"), route("GET /raw/{p+}", "f")].join(","))
            .unwrap();
        assert_eq!(
            select(&t, "GET", "/files/a%20b").unwrap().1,
            [("name".to_owned(), "a b".to_owned())]
        );
        assert_eq!(
            select(&t, "GET", "/raw/x/y%2Fz").unwrap().1,
            [("p".to_owned(), "x/y/z".to_owned())]
        );
    }

    #[test]
    fn invalid_files_name_the_problem() {
        let err = |routes: &str| table(routes).unwrap_err().to_string();
        assert!(err(&route("FETCH /x", "f")).contains("method \"FETCH\""));
        assert!(err(&route("GET x", "f")).contains("must start with '/'"));
        assert!(err(&route("GET /a/{p+}/b", "f")).contains("must be the last segment"));
        assert!(err(&route("GET /a/{}", "f")).contains("parameter"));
        assert!(err(&route("GET /a/x{id}", "f")).contains("whole segment"));
        assert!(err(&route("GET /a//b", "f")).contains("empty segment"));
        assert!(err(&route("GET /{a}/{a}", "f")).contains("appears twice"));
        assert!(err(&route("GET", "f")).contains("METHOD /path"));
        assert!(err(&route("GET /x", "bad name!")).contains("function \"bad name!\""));
        assert!(err(&route("GET /x", "arn:aws:lambda:us-east-1:999999999999:function:f"))
            .contains("function"));
        assert!(err(&[route("GET /p/{id}", "f"), route("GET /p/{name}", "g")].join(","))
            .contains("conflicts with"));
        assert!(err(r#"{"route": "GET /x", "function": "f", "payload_format": "3.0"}"#)
            .contains("payload_format"));
        assert!(err(r#"{"route": "$default", "function": "f", "payload_format": "1.0"}"#)
            .contains("$default"));
        assert!(err(r#"{"route": "GET /x", "function": "f", "typo": 1}"#).contains("typo"));
        let account = account();
        assert!(RouteTable::parse("{", &account).is_err());
        assert!(RouteTable::parse(r#"{"stages": {"a b": {}}}"#, &account)
            .unwrap_err()
            .to_string()
            .contains("stage name"));
        assert!(RouteTable::parse(r#"{"stages": {"p": {"variables": {"a-b": "x"}}}}"#, &account)
            .unwrap_err()
            .to_string()
            .contains("variable name"));
        assert!(RouteTable::parse(r#"{"stages": {"$default": {}}}"#, &account).is_ok());
        assert!(RouteTable::parse(r#"{"stages": {}}"#, &account).unwrap().is_empty());
    }

    #[test]
    fn the_same_path_with_different_methods_is_no_conflict() {
        let t = table(
            &[route("GET /p/{id}", "f"), route("PUT /p/{id}", "g"), route("ANY /p/{id}", "h")]
                .join(","),
        )
        .unwrap();
        assert_eq!(t.stage("prod").unwrap().routes.len(), 3);
    }
}

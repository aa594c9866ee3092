//! Lambda event filtering: parsing the EventBridge-style patterns of an event source mapping's
//! `FilterCriteria` (`{"Filters":[{"Pattern":"<json>"}]}`) and deciding which records they keep.
//!
//! A pattern is a JSON object shaped like the records it selects. Its leaves are arrays of
//! match values; nested objects select nested fields. Every field the pattern names must match
//! (AND), any value of a leaf array may match (OR), and when the record holds an array where
//! the pattern expects a value, one matching element is enough. Besides literal strings,
//! numbers, booleans and `null`, a leaf may hold the match expressions `prefix`, `suffix`,
//! `equals-ignore-case`, `wildcard`, `anything-but`, `numeric` and `exists`; `$or` combines
//! whole sub-patterns. Patterns are validated once by [`EventPattern::parse`], so matching
//! never fails: it is a pure function of the pattern and the record.
//!
//! Matching follows the content-filtering semantics EventBridge documents and Lambda reuses:
//!
//! - Only leaves (strings, numbers, booleans, `null`) are values. A field holding an object is
//!   not a value, so `{"exists": true}` does not match it and `{"exists": false}` does; an
//!   empty array holds no value either.
//! - Every matcher except `{"exists": false}` needs a value: a missing field matches nothing
//!   else, not even `anything-but`.
//! - Literal matching is typed: `"5"` does not match the number `5`, while numbers compare
//!   numerically (`5` matches `5.0`).
//! - When the record holds an array of objects under a nested pattern, one element must match
//!   the whole nested pattern by itself; fields are not combined across elements.
//!
//! SQS records carry their message as a string `body`; [`sqs_record_view`] builds the view
//! Lambda matches against, in which a body that is a JSON object can be filtered field by field.

use serde_json::{Map, Number, Value};

/// The longest filter pattern accepted, in bytes (Lambda's limit on `Filter.Pattern`).
pub const MAX_PATTERN_LEN: usize = 4096;

/// How many levels pattern objects (nested fields and `$or` branches) may nest.
const MAX_DEPTH: usize = 32;

/// The key that combines sub-patterns with OR instead of naming a field.
const OR_KEY: &str = "$or";

const EQUALS_IGNORE_CASE: &str = "equals-ignore-case";

/// Why a filter pattern was rejected; its message is meant to be shown to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter pattern definition: {reason}")]
pub struct PatternError {
    reason: String,
}

impl PatternError {
    fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }

    /// An error about the pattern field at `path` (dotted, empty for the pattern itself).
    fn at(path: &str, reason: impl std::fmt::Display) -> Self {
        if path.is_empty() {
            Self { reason: reason.to_string() }
        } else {
            Self { reason: format!("field \"{path}\": {reason}") }
        }
    }

    /// What is wrong with the pattern, without the "Invalid filter pattern definition" lead-in.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// A parsed, validated filter pattern.
#[derive(Debug, Clone)]
pub struct EventPattern {
    root: Node,
}

impl EventPattern {
    /// Parses and validates one `Filter.Pattern` string.
    ///
    /// Rejected: patterns longer than [`MAX_PATTERN_LEN`] bytes, text that is not JSON or not
    /// a JSON object, empty objects, field values that are neither an array nor an object,
    /// empty arrays, unknown or malformed match expressions, `$or` with fewer than two object
    /// branches, and nesting deeper than 32 levels.
    pub fn parse(pattern: &str) -> Result<Self, PatternError> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::new(format!(
                "the pattern is {} bytes long, the limit is {MAX_PATTERN_LEN}",
                pattern.len()
            )));
        }
        let value: Value = serde_json::from_str(pattern)
            .map_err(|e| PatternError::new(format!("the pattern is not valid JSON: {e}")))?;
        let Value::Object(map) = &value else {
            return Err(PatternError::new("the pattern must be a JSON object"));
        };
        Ok(Self { root: Node::parse(map, "", 0)? })
    }

    /// Whether `event` (a record as it will be delivered, or the view of it Lambda filters on,
    /// see [`sqs_record_view`]) matches this pattern.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches(Some(event))
    }
}

/// Whether a record passes a mapping's filters: Lambda keeps a record that matches any of
/// them, and keeps every record when there are no filters.
pub fn matches_any(patterns: &[EventPattern], event: &Value) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| p.matches(event))
}

/// The view of an SQS record that filters are matched against: a copy of `record` whose `body`
/// is replaced by its parsed content when that is a JSON object, so that patterns such as
/// `{"body": {"kind": ["order"]}}` can look inside it. Any other body (plain text, or JSON that
/// is not an object) stays a string, which only string matchers on `body` itself can match.
pub fn sqs_record_view(record: &Value) -> Value {
    let mut view = record.clone();
    let parsed = record
        .get("body")
        .and_then(Value::as_str)
        .and_then(|body| serde_json::from_str::<Value>(body).ok())
        .filter(Value::is_object);
    if let (Some(parsed), Some(fields)) = (parsed, view.as_object_mut()) {
        fields.insert("body".to_owned(), parsed);
    }
    view
}

/// A pattern object: fields that must all match, plus optional `$or` branches of which one
/// must match the same object.
#[derive(Debug, Clone)]
struct Node {
    fields: Vec<(String, Field)>,
    /// Empty when the object has no `$or`.
    any_of: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Field {
    /// An array of matchers, one of which must match.
    Leaf(Vec<Matcher>),
    /// A nested pattern object.
    Nested(Node),
}

#[derive(Debug, Clone)]
enum Matcher {
    /// `{"exists": true}` (the field holds a value) or `{"exists": false}` (it holds none).
    Exists(bool),
    /// A value matching this.
    Is(ValueMatcher),
    /// A value matching none of these.
    AnythingBut(Vec<ValueMatcher>),
}

/// A test on one value (a string, number, boolean or null; never an array or object).
#[derive(Debug, Clone)]
enum ValueMatcher {
    String(String),
    Number(Number),
    Bool(bool),
    Null,
    Prefix(String),
    /// Holds the lowercased prefix.
    PrefixIgnoreCase(String),
    Suffix(String),
    /// Holds the lowercased suffix.
    SuffixIgnoreCase(String),
    /// Holds the lowercased string.
    EqualsIgnoreCase(String),
    Wildcard(Wildcard),
    Numeric(NumericRange),
}

/// A `wildcard` pattern split at its unescaped stars: the value must start with the first
/// part, end with the last, and contain the others in order between them.
#[derive(Debug, Clone)]
struct Wildcard {
    /// Never empty; one more part than there are stars.
    parts: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Bound {
    value: f64,
    inclusive: bool,
}

#[derive(Debug, Clone, Copy)]
struct NumericRange {
    lower: Option<Bound>,
    upper: Option<Bound>,
}

impl Node {
    fn parse(map: &Map<String, Value>, path: &str, depth: usize) -> Result<Self, PatternError> {
        if depth >= MAX_DEPTH {
            return Err(PatternError::at(
                path,
                format_args!("patterns may nest at most {MAX_DEPTH} levels deep"),
            ));
        }
        if map.is_empty() {
            return Err(PatternError::at(path, "empty objects are not allowed"));
        }
        let mut node = Self { fields: Vec::with_capacity(map.len()), any_of: Vec::new() };
        for (name, value) in map {
            if name == OR_KEY {
                node.any_of = parse_or(value, path, depth)?;
                continue;
            }
            let child_path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            let field = match value {
                Value::Array(items) => Field::Leaf(parse_leaf(items, &child_path)?),
                Value::Object(inner) => Field::Nested(Self::parse(inner, &child_path, depth + 1)?),
                _ => {
                    return Err(PatternError::at(
                        &child_path,
                        "must be an array of match values or an object",
                    ))
                }
            };
            node.fields.push((name.clone(), field));
        }
        Ok(node)
    }

    /// Matches the pattern object against the value found at its place in the event (`None`
    /// when the event has nothing there).
    fn matches(&self, value: Option<&Value>) -> bool {
        match value {
            Some(Value::Object(fields)) => self.matches_object(Some(fields)),
            Some(Value::Array(items)) => {
                // One element (of a possibly nested array) must match on its own; an array
                // without elements is as good as a missing field.
                let mut pending: Vec<&Value> = items.iter().rev().collect();
                let mut any_element = false;
                while let Some(item) = pending.pop() {
                    match item {
                        Value::Array(inner) => pending.extend(inner.iter().rev()),
                        element => {
                            any_element = true;
                            if self.matches_object(element.as_object()) {
                                return true;
                            }
                        }
                    }
                }
                !any_element && self.matches_object(None)
            }
            _ => self.matches_object(None),
        }
    }

    fn matches_object(&self, object: Option<&Map<String, Value>>) -> bool {
        self.fields.iter().all(|(name, field)| {
            let value = object.and_then(|fields| fields.get(name));
            match field {
                Field::Leaf(matchers) => matchers.iter().any(|m| m.matches(value)),
                Field::Nested(node) => node.matches(value),
            }
        }) && (self.any_of.is_empty() || self.any_of.iter().any(|b| b.matches_object(object)))
    }
}

fn parse_or(value: &Value, path: &str, depth: usize) -> Result<Vec<Node>, PatternError> {
    const SHAPE: &str = "\"$or\" must be an array of at least two pattern objects";
    let Value::Array(branches) = value else {
        return Err(PatternError::at(path, SHAPE));
    };
    if branches.len() < 2 {
        return Err(PatternError::at(path, SHAPE));
    }
    branches
        .iter()
        .map(|branch| match branch {
            Value::Object(map) => Node::parse(map, path, depth + 1),
            _ => Err(PatternError::at(path, SHAPE)),
        })
        .collect()
}

fn parse_leaf(items: &[Value], path: &str) -> Result<Vec<Matcher>, PatternError> {
    if items.is_empty() {
        return Err(PatternError::at(path, "empty arrays are not allowed"));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(Matcher::Is(ValueMatcher::String(s.clone()))),
            Value::Number(n) => Ok(Matcher::Is(ValueMatcher::Number(n.clone()))),
            Value::Bool(b) => Ok(Matcher::Is(ValueMatcher::Bool(*b))),
            Value::Null => Ok(Matcher::Is(ValueMatcher::Null)),
            Value::Object(expr) => parse_match_expression(expr, path),
            Value::Array(_) => Err(PatternError::at(
                path,
                "match values must be strings, numbers, booleans, null or match expressions",
            )),
        })
        .collect()
}

/// The single `(name, operand)` entry of a match expression object.
fn single_entry<'a>(
    expr: &'a Map<String, Value>,
    path: &str,
    what: &str,
) -> Result<(&'a str, &'a Value), PatternError> {
    let mut entries = expr.iter();
    match (entries.next(), entries.next()) {
        (Some((name, operand)), None) => Ok((name.as_str(), operand)),
        _ => Err(PatternError::at(path, format_args!("{what} must have exactly one key"))),
    }
}

fn string_operand<'a>(operand: &'a Value, name: &str, path: &str) -> Result<&'a str, PatternError> {
    operand.as_str().ok_or_else(|| {
        PatternError::at(path, format_args!("the value of \"{name}\" must be a string"))
    })
}

fn parse_match_expression(expr: &Map<String, Value>, path: &str) -> Result<Matcher, PatternError> {
    let (name, operand) = single_entry(expr, path, "a match expression")?;
    let matcher = match name {
        "prefix" | "suffix" => Matcher::Is(parse_affix(operand, name, path)?),
        EQUALS_IGNORE_CASE => Matcher::Is(ValueMatcher::EqualsIgnoreCase(
            string_operand(operand, name, path)?.to_lowercase(),
        )),
        "wildcard" => Matcher::Is(ValueMatcher::Wildcard(parse_wildcard(
            string_operand(operand, name, path)?,
            path,
        )?)),
        "anything-but" => Matcher::AnythingBut(parse_anything_but(operand, path)?),
        "numeric" => Matcher::Is(ValueMatcher::Numeric(parse_numeric(operand, path)?)),
        "exists" => match operand {
            Value::Bool(exists) => Matcher::Exists(*exists),
            _ => {
                return Err(PatternError::at(path, "the value of \"exists\" must be true or false"))
            }
        },
        other => {
            return Err(PatternError::at(
                path,
                format_args!("unsupported match expression \"{other}\""),
            ))
        }
    };
    Ok(matcher)
}

/// `prefix` or `suffix` (`name`) with a string or an `{"equals-ignore-case": string}` operand.
fn parse_affix(operand: &Value, name: &str, path: &str) -> Result<ValueMatcher, PatternError> {
    let suffix = name == "suffix";
    match operand {
        Value::String(s) if suffix => Ok(ValueMatcher::Suffix(s.clone())),
        Value::String(s) => Ok(ValueMatcher::Prefix(s.clone())),
        Value::Object(expr) => {
            let (inner, value) = single_entry(expr, path, &format!("the value of \"{name}\""))?;
            if inner != EQUALS_IGNORE_CASE {
                return Err(PatternError::at(
                    path,
                    format_args!("unsupported \"{name}\" expression \"{inner}\""),
                ));
            }
            let lowered = string_operand(value, inner, path)?.to_lowercase();
            Ok(if suffix {
                ValueMatcher::SuffixIgnoreCase(lowered)
            } else {
                ValueMatcher::PrefixIgnoreCase(lowered)
            })
        }
        _ => Err(PatternError::at(
            path,
            format_args!(
                "the value of \"{name}\" must be a string or an \
                 {{\"{EQUALS_IGNORE_CASE}\": string}} object"
            ),
        )),
    }
}

fn parse_anything_but(operand: &Value, path: &str) -> Result<Vec<ValueMatcher>, PatternError> {
    match operand {
        Value::String(s) => Ok(vec![ValueMatcher::String(s.clone())]),
        Value::Number(n) => Ok(vec![ValueMatcher::Number(n.clone())]),
        Value::Array(items) => {
            if items.is_empty() {
                return Err(PatternError::at(
                    path,
                    "the list of \"anything-but\" must not be empty",
                ));
            }
            if let Some(strings) = items.iter().map(Value::as_str).collect::<Option<Vec<_>>>() {
                return Ok(strings
                    .into_iter()
                    .map(|s| ValueMatcher::String(s.to_owned()))
                    .collect());
            }
            let numbers = items.iter().map(|item| match item {
                Value::Number(n) => Some(ValueMatcher::Number(n.clone())),
                _ => None,
            });
            numbers.collect::<Option<Vec<_>>>().ok_or_else(|| {
                PatternError::at(
                    path,
                    "the values of an \"anything-but\" list must be all strings or all numbers",
                )
            })
        }
        Value::Object(expr) => {
            let (name, inner) = single_entry(expr, path, "the value of \"anything-but\"")?;
            if !matches!(name, "prefix" | "suffix" | EQUALS_IGNORE_CASE | "wildcard") {
                return Err(PatternError::at(
                    path,
                    format_args!("unsupported \"anything-but\" expression \"{name}\""),
                ));
            }
            let values: Vec<&str> = match inner {
                Value::String(s) => vec![s.as_str()],
                Value::Array(items) if !items.is_empty() => {
                    items.iter().map(Value::as_str).collect::<Option<_>>().ok_or_else(|| {
                        PatternError::at(
                            path,
                            format_args!(
                                "the values of \"anything-but\" \"{name}\" must be strings"
                            ),
                        )
                    })?
                }
                _ => {
                    return Err(PatternError::at(
                        path,
                        format_args!(
                            "the value of \"anything-but\" \"{name}\" must be a string or a \
                             non-empty list of strings"
                        ),
                    ))
                }
            };
            values
                .into_iter()
                .map(|value| match name {
                    "prefix" | "suffix" if value.is_empty() => Err(PatternError::at(
                        path,
                        format_args!("an \"anything-but\" \"{name}\" must not be empty"),
                    )),
                    "prefix" => Ok(ValueMatcher::Prefix(value.to_owned())),
                    "suffix" => Ok(ValueMatcher::Suffix(value.to_owned())),
                    EQUALS_IGNORE_CASE => Ok(ValueMatcher::EqualsIgnoreCase(value.to_lowercase())),
                    // "wildcard", the only name left after the check above.
                    _ => parse_wildcard(value, path).map(ValueMatcher::Wildcard),
                })
                .collect()
        }
        _ => Err(PatternError::at(
            path,
            "the value of \"anything-but\" must be a string, a number, a list of strings or \
             numbers, or a prefix, suffix, equals-ignore-case or wildcard expression",
        )),
    }
}

/// `numeric`: `[op, n]` with op one of `=`, `<`, `<=`, `>`, `>=`, or a range
/// `[">" | ">=", low, "<" | "<=", high]` with `low < high`.
fn parse_numeric(operand: &Value, path: &str) -> Result<NumericRange, PatternError> {
    let Value::Array(items) = operand else {
        return Err(PatternError::at(path, "the value of \"numeric\" must be an array"));
    };
    let term = |i: usize| -> Result<(&str, Bound), PatternError> {
        let op = match items.get(i) {
            Some(Value::String(op)) if matches!(op.as_str(), "=" | "<" | "<=" | ">" | ">=") => {
                op.as_str()
            }
            Some(Value::String(op)) => {
                return Err(PatternError::at(
                    path,
                    format_args!("unknown \"numeric\" operator \"{op}\" (use =, <, <=, >, >=)"),
                ))
            }
            _ => {
                return Err(PatternError::at(
                    path,
                    "\"numeric\" expects an operator (=, <, <=, >, >=) before each number",
                ))
            }
        };
        let value = items.get(i + 1).and_then(Value::as_f64).ok_or_else(|| {
            PatternError::at(
                path,
                format_args!("the value after \"{op}\" in \"numeric\" must be a number"),
            )
        })?;
        Ok((op, Bound { value, inclusive: op.contains('=') }))
    };
    let (op, first) = term(0)?;
    let range = match (op, items.len()) {
        ("=", 2) => NumericRange { lower: Some(first), upper: Some(first) },
        ("<" | "<=", 2) => NumericRange { lower: None, upper: Some(first) },
        (">" | ">=", 2) => NumericRange { lower: Some(first), upper: None },
        (">" | ">=", 4) => {
            let (op2, second) = term(2)?;
            if !matches!(op2, "<" | "<=") {
                return Err(PatternError::at(
                    path,
                    "a \"numeric\" range must be a lower bound (> or >=) then an upper bound \
                     (< or <=)",
                ));
            }
            if first.value >= second.value {
                return Err(PatternError::at(
                    path,
                    "the lower bound of a \"numeric\" range must be below its upper bound",
                ));
            }
            NumericRange { lower: Some(first), upper: Some(second) }
        }
        _ => {
            return Err(PatternError::at(
                path,
                "\"numeric\" must be [op, number] or [\">\"|\">=\", low, \"<\"|\"<=\", high]",
            ))
        }
    };
    Ok(range)
}

/// Splits a wildcard pattern at its stars; `\*` is a literal star and `\\` a literal backslash.
fn parse_wildcard(pattern: &str, path: &str) -> Result<Wildcard, PatternError> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                return Err(PatternError::at(
                    path,
                    "consecutive wildcard characters are not allowed in \"wildcard\"",
                ));
            }
            '*' => parts.push(std::mem::take(&mut current)),
            '\\' => match chars.next() {
                Some(escaped @ ('*' | '\\')) => current.push(escaped),
                _ => {
                    return Err(PatternError::at(
                        path,
                        "in \"wildcard\" a backslash may only escape * or \\",
                    ))
                }
            },
            other => current.push(other),
        }
    }
    parts.push(current);
    Ok(Wildcard { parts })
}

impl Matcher {
    /// Matches the value found at the field's place in the event (`None` when missing).
    fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Self::Exists(wanted) => any_leaf(value, |_| true) == *wanted,
            Self::Is(matcher) => any_leaf(value, |leaf| matcher.matches(leaf)),
            Self::AnythingBut(excluded) => {
                any_leaf(value, |leaf| !excluded.iter().any(|m| m.matches(leaf)))
            }
        }
    }
}

/// Whether any value held at a field (itself, or an element of a possibly nested array)
/// satisfies `test`. Objects are not values; a missing field holds none.
fn any_leaf(value: Option<&Value>, mut test: impl FnMut(&Value) -> bool) -> bool {
    match value {
        None | Some(Value::Object(_)) => false,
        Some(Value::Array(items)) => {
            let mut pending: Vec<&Value> = items.iter().rev().collect();
            while let Some(item) = pending.pop() {
                match item {
                    Value::Array(inner) => pending.extend(inner.iter().rev()),
                    Value::Object(_) => {}
                    leaf => {
                        if test(leaf) {
                            return true;
                        }
                    }
                }
            }
            false
        }
        Some(leaf) => test(leaf),
    }
}

impl ValueMatcher {
    fn matches(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::String(expected), Value::String(s)) => expected == s,
            (Self::Number(expected), Value::Number(n)) => numbers_equal(expected, n),
            (Self::Bool(expected), Value::Bool(b)) => expected == b,
            (Self::Null, Value::Null) => true,
            (Self::Prefix(prefix), Value::String(s)) => s.starts_with(prefix.as_str()),
            (Self::PrefixIgnoreCase(prefix), Value::String(s)) => {
                s.to_lowercase().starts_with(prefix.as_str())
            }
            (Self::Suffix(suffix), Value::String(s)) => s.ends_with(suffix.as_str()),
            (Self::SuffixIgnoreCase(suffix), Value::String(s)) => {
                s.to_lowercase().ends_with(suffix.as_str())
            }
            (Self::EqualsIgnoreCase(expected), Value::String(s)) => s.to_lowercase() == *expected,
            (Self::Wildcard(wildcard), Value::String(s)) => wildcard.matches(s),
            (Self::Numeric(range), Value::Number(n)) => {
                n.as_f64().is_some_and(|x| range.contains(x))
            }
            _ => false,
        }
    }
}

/// Numeric equality: integers compare exactly (so large account-number-like values do not
/// collide through rounding), anything involving a fraction or exponent compares as `f64`.
fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    if a.is_f64() || b.is_f64() {
        return matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y);
    }
    // A negative integer and one above i64::MAX.
    false
}

impl NumericRange {
    fn contains(&self, x: f64) -> bool {
        let above = self.lower.is_none_or(|b| if b.inclusive { x >= b.value } else { x > b.value });
        let below = self.upper.is_none_or(|b| if b.inclusive { x <= b.value } else { x < b.value });
        above && below
    }
}

impl Wildcard {
    fn matches(&self, s: &str) -> bool {
        let Some((first, rest)) = self.parts.split_first() else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return s == first;
        };
        let Some(mut remaining) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        // Taking each middle part at its leftmost occurrence leaves the most room for the rest.
        for part in middle {
            match remaining.find(part.as_str()) {
                Some(at) => remaining = &remaining[at + part.len()..],
                None => return false,
            }
        }
        remaining.ends_with(last.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pattern(text: &str) -> EventPattern {
        EventPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn matches(text: &str, event: &Value) -> bool {
        pattern(text).matches(event)
    }

    fn parse_error(text: &str) -> String {
        match EventPattern::parse(text) {
            Ok(p) => panic!("{text} parsed as {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    // ---- literal values ----

    #[test]
    fn string_literal_matches_exactly() {
        let p = r#"{"name": ["Alice"]}"#;
        assert!(matches(p, &json!({"name": "Alice"})));
        assert!(!matches(p, &json!({"name": "alice"})));
        assert!(!matches(p, &json!({"name": "Alice "})));
        assert!(!matches(p, &json!({"other": "Alice"})));
    }

    #[test]
    fn literals_in_one_leaf_are_alternatives() {
        let p = r#"{"PaymentType": ["Credit", "Debit"]}"#;
        assert!(matches(p, &json!({"PaymentType": "Credit"})));
        assert!(matches(p, &json!({"PaymentType": "Debit"})));
        assert!(!matches(p, &json!({"PaymentType": "Cash"})));
    }

    #[test]
    fn every_field_must_match() {
        let p = r#"{"Location": ["New York"], "Day": ["Monday"]}"#;
        assert!(matches(p, &json!({"Location": "New York", "Day": "Monday"})));
        assert!(!matches(p, &json!({"Location": "New York", "Day": "Tuesday"})));
        assert!(!matches(p, &json!({"Location": "New York"})));
    }

    #[test]
    fn empty_string_matches_only_empty_string() {
        let p = r#"{"LastName": [""]}"#;
        assert!(matches(p, &json!({"LastName": ""})));
        assert!(!matches(p, &json!({"LastName": "Doe"})));
        assert!(!matches(p, &json!({})));
        assert!(!matches(p, &json!({"LastName": null})));
    }

    #[test]
    fn numbers_compare_numerically() {
        let p = r#"{"n": [5]}"#;
        assert!(matches(p, &json!({"n": 5})));
        assert!(matches(p, &json!({"n": 5.0})));
        assert!(!matches(p, &json!({"n": 5.5})));
        assert!(matches(r#"{"n": [5.0]}"#, &json!({"n": 5})));
        assert!(matches(r#"{"n": [3.018e2]}"#, &json!({"n": 301.8})));
        assert!(matches(r#"{"n": [-0.5]}"#, &json!({"n": -0.5})));
    }

    #[test]
    fn large_integers_compare_exactly() {
        let p = r#"{"account": [123456789012345678]}"#;
        assert!(matches(p, &json!({"account": 123_456_789_012_345_678_u64})));
        assert!(!matches(p, &json!({"account": 123_456_789_012_345_679_u64})));
        assert!(matches(r#"{"n": [18446744073709551615]}"#, &json!({"n": u64::MAX})));
        assert!(!matches(r#"{"n": [-1]}"#, &json!({"n": u64::MAX})));
    }

    #[test]
    fn literal_matching_is_typed() {
        assert!(!matches(r#"{"n": ["5"]}"#, &json!({"n": 5})));
        assert!(!matches(r#"{"n": [5]}"#, &json!({"n": "5"})));
        assert!(!matches(r#"{"b": ["true"]}"#, &json!({"b": true})));
        assert!(!matches(r#"{"b": [true]}"#, &json!({"b": "true"})));
        assert!(!matches(r#"{"b": [1]}"#, &json!({"b": true})));
    }

    #[test]
    fn booleans_match() {
        let p = r#"{"enabled": [true]}"#;
        assert!(matches(p, &json!({"enabled": true})));
        assert!(!matches(p, &json!({"enabled": false})));
        assert!(matches(r#"{"enabled": [false]}"#, &json!({"enabled": false})));
    }

    #[test]
    fn null_matches_a_present_null_only() {
        let p = r#"{"UserID": [null]}"#;
        assert!(matches(p, &json!({"UserID": null})));
        assert!(!matches(p, &json!({})));
        assert!(!matches(p, &json!({"UserID": "null"})));
        assert!(!matches(p, &json!({"UserID": ""})));
        assert!(matches(p, &json!({"UserID": ["a", null]})));
    }

    // ---- string matchers ----

    #[test]
    fn prefix_matches_strings_only() {
        let p = r#"{"Region": [{"prefix": "us-"}]}"#;
        assert!(matches(p, &json!({"Region": "us-east-1"})));
        assert!(matches(p, &json!({"Region": "us-"})));
        assert!(!matches(p, &json!({"Region": "eu-west-1"})));
        assert!(!matches(p, &json!({"Region": "US-east-1"})));
        assert!(!matches(r#"{"n": [{"prefix": "1"}]}"#, &json!({"n": 12})));
        assert!(matches(r#"{"s": [{"prefix": ""}]}"#, &json!({"s": "anything"})));
    }

    #[test]
    fn suffix_matches() {
        let p = r#"{"FileName": [{"suffix": ".png"}]}"#;
        assert!(matches(p, &json!({"FileName": "image.png"})));
        assert!(!matches(p, &json!({"FileName": "image.PNG"})));
        assert!(!matches(p, &json!({"FileName": "image.png.txt"})));
        assert!(!matches(p, &json!({"FileName": null})));
    }

    #[test]
    fn equals_ignore_case_matches() {
        let p = r#"{"Name": [{"equals-ignore-case": "alice"}]}"#;
        assert!(matches(p, &json!({"Name": "Alice"})));
        assert!(matches(p, &json!({"Name": "ALICE"})));
        assert!(!matches(p, &json!({"Name": "Alicia"})));
        assert!(matches(r#"{"Name": [{"equals-ignore-case": "ÉLAN"}]}"#, &json!({"Name": "élan"})));
    }

    #[test]
    fn prefix_and_suffix_ignoring_case() {
        let p = r#"{"k": [{"prefix": {"equals-ignore-case": "AB"}}]}"#;
        assert!(matches(p, &json!({"k": "abc"})));
        assert!(matches(p, &json!({"k": "aBc"})));
        assert!(!matches(p, &json!({"k": "cab"})));
        let p = r#"{"k": [{"suffix": {"equals-ignore-case": ".PNG"}}]}"#;
        assert!(matches(p, &json!({"k": "x.png"})));
        assert!(matches(p, &json!({"k": "x.Png"})));
        assert!(!matches(p, &json!({"k": "x.jpg"})));
    }

    #[test]
    fn wildcard_matches() {
        let p = r#"{"k": [{"wildcard": "a*b"}]}"#;
        assert!(matches(p, &json!({"k": "ab"})));
        assert!(matches(p, &json!({"k": "axxb"})));
        assert!(matches(p, &json!({"k": "abab"})));
        assert!(!matches(p, &json!({"k": "abc"})));
        assert!(!matches(p, &json!({"k": "cab"})));
        assert!(!matches(p, &json!({"k": "a"})));
        assert!(!matches(p, &json!({"k": 5})));
    }

    #[test]
    fn wildcard_positions_and_repeats() {
        let any = r#"{"k": [{"wildcard": "*"}]}"#;
        assert!(matches(any, &json!({"k": ""})));
        assert!(matches(any, &json!({"k": "xyz"})));
        assert!(!matches(any, &json!({"k": 1})));
        let lead = r#"{"k": [{"wildcard": "*.png"}]}"#;
        assert!(matches(lead, &json!({"k": "a.png"})));
        assert!(!matches(lead, &json!({"k": "a.png.jpg"})));
        let trail = r#"{"k": [{"wildcard": "dir/*"}]}"#;
        assert!(matches(trail, &json!({"k": "dir/"})));
        assert!(matches(trail, &json!({"k": "dir/a/b"})));
        let many = r#"{"k": [{"wildcard": "a*b*c"}]}"#;
        assert!(matches(many, &json!({"k": "abc"})));
        assert!(matches(many, &json!({"k": "abxbc"})));
        assert!(matches(many, &json!({"k": "a_b_b_c_c"})));
        assert!(!matches(many, &json!({"k": "acb"})));
        // The last part must not overlap the middle one.
        let overlap = r#"{"k": [{"wildcard": "*ab*ba"}]}"#;
        assert!(!matches(overlap, &json!({"k": "aba"})));
        assert!(matches(overlap, &json!({"k": "abba"})));
        let exact = r#"{"k": [{"wildcard": "plain"}]}"#;
        assert!(matches(exact, &json!({"k": "plain"})));
        assert!(!matches(exact, &json!({"k": "plainer"})));
    }

    #[test]
    fn wildcard_escapes() {
        let star = r#"{"k": [{"wildcard": "a\\*b"}]}"#;
        assert!(matches(star, &json!({"k": "a*b"})));
        assert!(!matches(star, &json!({"k": "axb"})));
        let backslash = r#"{"k": [{"wildcard": "a\\\\*"}]}"#;
        assert!(matches(backslash, &json!({"k": "a\\"})));
        assert!(matches(backslash, &json!({"k": "a\\zz"})));
        assert!(!matches(backslash, &json!({"k": "az"})));
        let star_then_wildcard = r#"{"k": [{"wildcard": "\\**"}]}"#;
        assert!(matches(star_then_wildcard, &json!({"k": "*rest"})));
        assert!(!matches(star_then_wildcard, &json!({"k": "rest"})));
    }

    // ---- anything-but ----

    #[test]
    fn anything_but_single_value() {
        let p = r#"{"Weather": [{"anything-but": "Raining"}]}"#;
        assert!(matches(p, &json!({"Weather": "Sunny"})));
        assert!(!matches(p, &json!({"Weather": "Raining"})));
        assert!(!matches(p, &json!({})), "anything-but needs the field");
        let n = r#"{"n": [{"anything-but": 0}]}"#;
        assert!(matches(n, &json!({"n": 1})));
        assert!(!matches(n, &json!({"n": 0.0})));
    }

    #[test]
    fn anything_but_lists() {
        let p = r#"{"Weather": [{"anything-but": ["Raining", "Snowing"]}]}"#;
        assert!(matches(p, &json!({"Weather": "Sunny"})));
        assert!(!matches(p, &json!({"Weather": "Raining"})));
        assert!(!matches(p, &json!({"Weather": "Snowing"})));
        let n = r#"{"code": [{"anything-but": [100, 200, 300]}]}"#;
        assert!(matches(n, &json!({"code": 404})));
        assert!(!matches(n, &json!({"code": 200})));
    }

    #[test]
    fn anything_but_excludes_only_same_typed_values() {
        let p = r#"{"v": [{"anything-but": ["5"]}]}"#;
        assert!(matches(p, &json!({"v": 5})));
        assert!(matches(p, &json!({"v": null})));
        assert!(!matches(p, &json!({"v": "5"})));
    }

    #[test]
    fn anything_but_on_arrays_needs_one_other_element() {
        let p = r#"{"tags": [{"anything-but": "internal"}]}"#;
        assert!(matches(p, &json!({"tags": ["internal", "public"]})));
        assert!(!matches(p, &json!({"tags": ["internal"]})));
        assert!(!matches(p, &json!({"tags": []})));
    }

    #[test]
    fn anything_but_prefix_and_suffix() {
        let p = r#"{"state": [{"anything-but": {"prefix": "init"}}]}"#;
        assert!(matches(p, &json!({"state": "running"})));
        assert!(!matches(p, &json!({"state": "initializing"})));
        let s = r#"{"file": [{"anything-but": {"suffix": ".tmp"}}]}"#;
        assert!(matches(s, &json!({"file": "a.txt"})));
        assert!(!matches(s, &json!({"file": "a.tmp"})));
        let list = r#"{"file": [{"anything-but": {"suffix": [".tmp", ".bak"]}}]}"#;
        assert!(matches(list, &json!({"file": "a.txt"})));
        assert!(!matches(list, &json!({"file": "a.bak"})));
    }

    #[test]
    fn anything_but_equals_ignore_case_and_wildcard() {
        let p = r#"{"Name": [{"anything-but": {"equals-ignore-case": ["alice", "BOB"]}}]}"#;
        assert!(matches(p, &json!({"Name": "Carol"})));
        assert!(!matches(p, &json!({"Name": "ALICE"})));
        assert!(!matches(p, &json!({"Name": "bob"})));
        let w = r#"{"key": [{"anything-but": {"wildcard": "logs/*.gz"}}]}"#;
        assert!(matches(w, &json!({"key": "data/x.csv"})));
        assert!(!matches(w, &json!({"key": "logs/2024/x.gz"})));
    }

    // ---- numeric ----

    #[test]
    fn numeric_single_comparisons() {
        let cases = [
            ("=", 100.0, true, false, false),
            ("<", 100.0, false, true, false),
            ("<=", 100.0, true, true, false),
            (">", 100.0, false, false, true),
            (">=", 100.0, true, false, true),
        ];
        for (op, bound, at, below, above) in cases {
            let p = pattern(&format!(r#"{{"Price": [{{"numeric": ["{op}", {bound}]}}]}}"#));
            assert_eq!(p.matches(&json!({"Price": 100})), at, "{op} at");
            assert_eq!(p.matches(&json!({"Price": 99.5})), below, "{op} below");
            assert_eq!(p.matches(&json!({"Price": 100.5})), above, "{op} above");
        }
    }

    #[test]
    fn numeric_ranges() {
        let p = r#"{"Price": [{"numeric": [">", 10, "<=", 20]}]}"#;
        assert!(!matches(p, &json!({"Price": 10})));
        assert!(matches(p, &json!({"Price": 10.01})));
        assert!(matches(p, &json!({"Price": 20})));
        assert!(!matches(p, &json!({"Price": 20.5})));
        let closed = r#"{"t": [{"numeric": [">=", -5, "<", 0]}]}"#;
        assert!(matches(closed, &json!({"t": -5})));
        assert!(matches(closed, &json!({"t": -0.001})));
        assert!(!matches(closed, &json!({"t": 0})));
    }

    #[test]
    fn numeric_needs_a_number() {
        let p = r#"{"Price": [{"numeric": [">", 0]}]}"#;
        assert!(!matches(p, &json!({"Price": "5"})));
        assert!(!matches(p, &json!({"Price": true})));
        assert!(!matches(p, &json!({})));
        assert!(matches(p, &json!({"Price": [-1, "7", 3]})));
    }

    // ---- exists ----

    #[test]
    fn exists_true_and_false() {
        let yes = r#"{"ProductName": [{"exists": true}]}"#;
        let no = r#"{"ProductName": [{"exists": false}]}"#;
        for present in [json!("x"), json!(""), json!(0), json!(false), json!(null), json!(["x"])] {
            let event = json!({"ProductName": present});
            assert!(matches(yes, &event), "{event}");
            assert!(!matches(no, &event), "{event}");
        }
        assert!(!matches(yes, &json!({"Other": 1})));
        assert!(matches(no, &json!({"Other": 1})));
    }

    #[test]
    fn exists_only_sees_leaves() {
        let yes = r#"{"person": {"address": [{"exists": true}]}}"#;
        let no = r#"{"person": {"address": [{"exists": false}]}}"#;
        let object = json!({"person": {"address": {"street": "Main"}}});
        assert!(!matches(yes, &object));
        assert!(matches(no, &object));
        let empty_array = json!({"person": {"address": []}});
        assert!(!matches(yes, &empty_array));
        assert!(matches(no, &empty_array));
    }

    #[test]
    fn exists_false_holds_when_a_parent_is_missing_or_not_an_object() {
        let no = r#"{"detail": {"state": [{"exists": false}]}}"#;
        assert!(matches(no, &json!({})));
        assert!(matches(no, &json!({"detail": "text"})));
        assert!(matches(no, &json!({"detail": {"other": 1}})));
        assert!(!matches(no, &json!({"detail": {"state": "on"}})));
    }

    #[test]
    fn exists_combines_with_other_matchers() {
        let p = r#"{"k": [{"exists": false}, "x"]}"#;
        assert!(matches(p, &json!({})));
        assert!(matches(p, &json!({"k": "x"})));
        assert!(!matches(p, &json!({"k": "y"})));
    }

    // ---- nesting and arrays ----

    #[test]
    fn nested_objects_match_nested_fields() {
        let p = r#"{"detail": {"state": ["running"], "meta": {"zone": [{"prefix": "us-"}]}}}"#;
        assert!(matches(
            p,
            &json!({"detail": {"state": "running", "meta": {"zone": "us-east-1a"}}})
        ));
        assert!(!matches(p, &json!({"detail": {"state": "running", "meta": {"zone": "eu-1"}}})));
        assert!(!matches(p, &json!({"detail": {"state": "running"}})));
        assert!(!matches(p, &json!({"detail": "running"})));
        assert!(!matches(p, &json!({"state": "running", "zone": "us-east-1a"})));
    }

    #[test]
    fn leaf_pattern_does_not_match_an_object() {
        let p = r#"{"detail": ["running"]}"#;
        assert!(!matches(p, &json!({"detail": {"state": "running"}})));
    }

    #[test]
    fn event_arrays_match_when_any_element_does() {
        let p = r#"{"resources": ["arn:b"]}"#;
        assert!(matches(p, &json!({"resources": ["arn:a", "arn:b"]})));
        assert!(!matches(p, &json!({"resources": ["arn:a", "arn:c"]})));
        assert!(!matches(p, &json!({"resources": []})));
        assert!(matches(p, &json!({"resources": [["arn:a"], ["arn:b"]]})));
        assert!(!matches(p, &json!({"resources": [{"arn": "arn:b"}]})));
    }

    #[test]
    fn arrays_of_objects_match_element_by_element() {
        let p = r#"{"items": {"kind": ["book"], "qty": [{"numeric": [">", 1]}]}}"#;
        assert!(matches(
            p,
            &json!({"items": [{"kind": "pen", "qty": 5}, {"kind": "book", "qty": 2}]})
        ));
        // "book" and a quantity above 1 exist, but not in the same element.
        assert!(!matches(
            p,
            &json!({"items": [{"kind": "book", "qty": 1}, {"kind": "pen", "qty": 9}]})
        ));
        assert!(matches(p, &json!({"items": [[{"kind": "book", "qty": 3}]]})));
        assert!(!matches(p, &json!({"items": []})));
        assert!(matches(r#"{"items": {"kind": [{"exists": false}]}}"#, &json!({"items": []})));
    }

    #[test]
    fn nested_event_arrays_are_flattened() {
        let mut event = json!("needle");
        for _ in 0..200 {
            event = Value::Array(vec![event]);
        }
        let event = json!({"k": event});
        assert!(matches(r#"{"k": ["needle"]}"#, &event));
        assert!(matches(r#"{"k": {"x": [{"exists": false}]}}"#, &event));
    }

    #[test]
    fn non_object_events_only_match_absence() {
        assert!(!matches(r#"{"k": ["v"]}"#, &json!("v")));
        assert!(matches(r#"{"k": [{"exists": false}]}"#, &json!(null)));
        assert!(matches(r#"{"k": ["v"]}"#, &json!([{"k": "x"}, {"k": "v"}])));
    }

    // ---- $or ----

    #[test]
    fn or_across_fields() {
        let p = r#"{"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}"#;
        assert!(matches(p, &json!({"Location": "New York", "Day": "Friday"})));
        assert!(matches(p, &json!({"Location": "Boston", "Day": "Monday"})));
        assert!(!matches(p, &json!({"Location": "Boston", "Day": "Friday"})));
        assert!(!matches(p, &json!({})));
    }

    #[test]
    fn or_is_anded_with_sibling_fields() {
        // source AND (metricName OR (metricType AND namespace) OR scope)
        let p = r#"{
            "source": ["aws.cloudwatch"],
            "$or": [
                {"metricName": ["CPUUtilization", "ReadLatency"]},
                {"metricType": ["MetricType"], "namespace": ["AWS/EC2", "AWS/ES"]},
                {"scope": ["Service"]}
            ]
        }"#;
        let base = |extra: Value| {
            let mut event = json!({"source": "aws.cloudwatch"});
            if let (Some(event), Value::Object(extra)) = (event.as_object_mut(), extra) {
                event.extend(extra);
            }
            event
        };
        assert!(matches(p, &base(json!({"metricName": "ReadLatency"}))));
        assert!(matches(p, &base(json!({"metricType": "MetricType", "namespace": "AWS/ES"}))));
        assert!(!matches(p, &base(json!({"metricType": "MetricType"}))));
        assert!(matches(p, &base(json!({"scope": "Service"}))));
        assert!(!matches(p, &base(json!({"scope": "Other"}))));
        assert!(!matches(p, &json!({"source": "aws.ec2", "scope": "Service"})));
    }

    #[test]
    fn nested_or_and_or_inside_or() {
        let p = r#"{"detail": {"$or": [
            {"c-count": [{"numeric": [">", 0, "<=", 5]}]},
            {"d-count": [{"numeric": ["<", 10]}]},
            {"$or": [{"x-limit": [{"numeric": ["=", 3.018e2]}]}, {"y": ["yes"]}]}
        ]}}"#;
        assert!(matches(p, &json!({"detail": {"c-count": 3}})));
        assert!(matches(p, &json!({"detail": {"d-count": 9}})));
        assert!(matches(p, &json!({"detail": {"x-limit": 301.8}})));
        assert!(matches(p, &json!({"detail": {"y": "yes"}})));
        assert!(!matches(p, &json!({"detail": {"c-count": 6, "d-count": 10, "y": "no"}})));
        assert!(!matches(p, &json!({"c-count": 3})));
    }

    #[test]
    fn or_branches_stay_within_one_array_element() {
        let p = r#"{"r": {"a": ["1"], "$or": [{"b": ["2"]}, {"c": ["3"]}]}}"#;
        assert!(matches(p, &json!({"r": [{"a": "1", "c": "3"}]})));
        assert!(!matches(p, &json!({"r": [{"a": "1"}, {"b": "2"}]})));
    }

    // ---- matches_any ----

    #[test]
    fn matches_any_keeps_records_matching_one_filter() {
        let filters = [pattern(r#"{"a": ["1"]}"#), pattern(r#"{"b": ["2"]}"#)];
        assert!(matches_any(&filters, &json!({"a": "1"})));
        assert!(matches_any(&filters, &json!({"b": "2"})));
        assert!(!matches_any(&filters, &json!({"a": "2", "b": "1"})));
        assert!(matches_any(&[], &json!({"anything": true})));
        assert!(matches_any(&[], &json!(null)));
    }

    // ---- parse errors ----

    #[test]
    fn errors_carry_the_client_message() {
        let err = EventPattern::parse("[]").err();
        let err = err.as_ref().map(|e| (e.to_string(), e.reason().to_owned()));
        assert_eq!(
            err,
            Some((
                "Invalid filter pattern definition: the pattern must be a JSON object".to_owned(),
                "the pattern must be a JSON object".to_owned()
            ))
        );
        let nested = parse_error(r#"{"detail": {"state": "running"}}"#);
        assert!(nested.contains("field \"detail.state\""), "{nested}");
    }

    #[test]
    fn rejects_text_that_is_not_a_json_object() {
        for text in ["", "   ", "not json", "{\"a\": [\"x\"]", "[]", "\"x\"", "5", "null", "true"] {
            let err = parse_error(text);
            assert!(err.starts_with("Invalid filter pattern definition: "), "{err}");
        }
    }

    #[test]
    fn rejects_empty_objects_and_arrays() {
        assert!(parse_error("{}").contains("empty objects"));
        assert!(parse_error(r#"{"detail": {}}"#).contains("empty objects"));
        assert!(parse_error(r#"{"a": []}"#).contains("empty arrays"));
        assert!(parse_error(r#"{"d": {"a": []}}"#).contains("\"d.a\""));
    }

    #[test]
    fn rejects_leaves_that_are_not_arrays() {
        for leaf in [r#""x""#, "5", "true", "null"] {
            let err = parse_error(&format!(r#"{{"a": {leaf}}}"#));
            assert!(err.contains("must be an array"), "{err}");
        }
        assert!(parse_error(r#"{"a": [["x"]]}"#).contains("match values"));
    }

    #[test]
    fn rejects_malformed_match_expressions() {
        let cases = [
            (r#"{"a": [{}]}"#, "exactly one key"),
            (r#"{"a": [{"prefix": "x", "suffix": "y"}]}"#, "exactly one key"),
            (r#"{"a": [{"regex": "x.*"}]}"#, "unsupported match expression \"regex\""),
            (r#"{"a": [{"cidr": "10.0.0.0/8"}]}"#, "unsupported match expression"),
            (r#"{"a": [{"prefix": 5}]}"#, "\"prefix\""),
            (r#"{"a": [{"prefix": {"wildcard": "x"}}]}"#, "unsupported \"prefix\" expression"),
            (r#"{"a": [{"suffix": {"equals-ignore-case": 1}}]}"#, "must be a string"),
            (r#"{"a": [{"equals-ignore-case": ["x"]}]}"#, "must be a string"),
            (r#"{"a": [{"wildcard": 1}]}"#, "must be a string"),
            (r#"{"a": [{"wildcard": "a**b"}]}"#, "consecutive wildcard"),
            (r#"{"a": [{"wildcard": "a\\b"}]}"#, "backslash"),
            (r#"{"a": [{"wildcard": "a\\"}]}"#, "backslash"),
            (r#"{"a": [{"exists": "yes"}]}"#, "true or false"),
            (r#"{"a": [{"exists": null}]}"#, "true or false"),
        ];
        for (text, expected) in cases {
            let err = parse_error(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_malformed_anything_but() {
        let cases = [
            (r#"{"a": [{"anything-but": []}]}"#, "must not be empty"),
            (r#"{"a": [{"anything-but": ["x", 1]}]}"#, "all strings or all numbers"),
            (r#"{"a": [{"anything-but": [true]}]}"#, "all strings or all numbers"),
            (r#"{"a": [{"anything-but": true}]}"#, "must be a string, a number"),
            (r#"{"a": [{"anything-but": null}]}"#, "must be a string, a number"),
            (r#"{"a": [{"anything-but": {"prefix": ""}}]}"#, "must not be empty"),
            (r#"{"a": [{"anything-but": {"suffix": ["x", ""]}}]}"#, "must not be empty"),
            (r#"{"a": [{"anything-but": {"prefix": 1}}]}"#, "non-empty list of strings"),
            (r#"{"a": [{"anything-but": {"prefix": []}}]}"#, "non-empty list of strings"),
            (r#"{"a": [{"anything-but": {"wildcard": ["x", 2]}}]}"#, "must be strings"),
            (r#"{"a": [{"anything-but": {"numeric": [">", 1]}}]}"#, "unsupported"),
            (r#"{"a": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}"#, "exactly one key"),
            (r#"{"a": [{"anything-but": {"wildcard": "**"}}]}"#, "consecutive wildcard"),
        ];
        for (text, expected) in cases {
            let err = parse_error(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_malformed_numeric() {
        let cases = [
            (r#"{"a": [{"numeric": ">"}]}"#, "must be an array"),
            (r#"{"a": [{"numeric": []}]}"#, "expects an operator"),
            (r#"{"a": [{"numeric": [">"]}]}"#, "must be a number"),
            (r#"{"a": [{"numeric": [">", "5"]}]}"#, "must be a number"),
            (r#"{"a": [{"numeric": [">", null]}]}"#, "must be a number"),
            (r#"{"a": [{"numeric": ["!=", 5]}]}"#, "unknown \"numeric\" operator \"!=\""),
            (r#"{"a": [{"numeric": [5, ">"]}]}"#, "expects an operator"),
            (r#"{"a": [{"numeric": ["=", 5, "<", 6]}]}"#, "must be [op, number]"),
            (r#"{"a": [{"numeric": ["<", 5, ">", 1]}]}"#, "must be [op, number]"),
            (r#"{"a": [{"numeric": [">", 5, ">", 6]}]}"#, "lower bound (> or >=) then"),
            (r#"{"a": [{"numeric": [">", 1, "<"]}]}"#, "must be [op, number]"),
            (r#"{"a": [{"numeric": [">", 1, "<", "9"]}]}"#, "must be a number"),
            (r#"{"a": [{"numeric": [">", 5, "<", 5]}]}"#, "below its upper bound"),
            (r#"{"a": [{"numeric": [">=", 9, "<=", 1]}]}"#, "below its upper bound"),
            (r#"{"a": [{"numeric": [">", 1, "<", 9, "=", 3]}]}"#, "must be [op, number]"),
        ];
        for (text, expected) in cases {
            let err = parse_error(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn rejects_malformed_or() {
        let cases = [
            r#"{"$or": [{"a": ["1"]}]}"#,
            r#"{"$or": []}"#,
            r#"{"$or": {"a": ["1"]}}"#,
            r#"{"$or": ["a", "b"]}"#,
            r#"{"$or": [{"a": ["1"]}, "b"]}"#,
        ];
        for text in cases {
            let err = parse_error(text);
            assert!(err.contains("at least two pattern objects"), "{text}: {err}");
        }
        assert!(parse_error(r#"{"$or": [{"a": ["1"]}, {}]}"#).contains("empty objects"));
        assert!(parse_error(r#"{"$or": [{"a": ["1"]}, {"b": "2"}]}"#).contains("\"b\""));
    }

    #[test]
    fn enforces_the_size_limit() {
        let filler = |len: usize| {
            let overhead = r#"{"k": [""]}"#.len();
            format!(r#"{{"k": ["{}"]}}"#, "x".repeat(len - overhead))
        };
        let at_limit = filler(MAX_PATTERN_LEN);
        assert_eq!(at_limit.len(), MAX_PATTERN_LEN);
        assert!(EventPattern::parse(&at_limit).is_ok());
        let err = parse_error(&filler(MAX_PATTERN_LEN + 1));
        assert!(err.contains("4097 bytes long, the limit is 4096"), "{err}");
    }

    #[test]
    fn enforces_the_depth_limit() {
        let nested =
            |depth: usize| format!("{}[\"x\"]{}", r#"{"a": "#.repeat(depth), "}".repeat(depth));
        let deepest = nested(MAX_DEPTH);
        assert!(EventPattern::parse(&deepest).is_ok(), "{deepest}");
        let mut event = json!("x");
        for _ in 0..MAX_DEPTH {
            event = json!({"a": event});
        }
        assert!(pattern(&deepest).matches(&event));
        assert!(parse_error(&nested(MAX_DEPTH + 1)).contains("at most 32 levels"));
        let or_nested = format!(
            "{}{}{}",
            r#"{"$or": [{"z": ["1"]}, "#.repeat(MAX_DEPTH),
            r#"{"z": ["1"]}"#,
            "]}".repeat(MAX_DEPTH)
        );
        assert!(parse_error(&or_nested).contains("at most 32 levels"), "{or_nested}");
    }

    // ---- SQS body view ----

    #[test]
    fn sqs_view_parses_json_object_bodies() {
        let record = json!({"messageId": "1", "body": "{\"kind\": \"order\", \"total\": 12}"});
        let view = sqs_record_view(&record);
        assert_eq!(view["body"], json!({"kind": "order", "total": 12}));
        assert_eq!(view["messageId"], json!("1"));
        assert_eq!(record["body"], json!("{\"kind\": \"order\", \"total\": 12}"));
        assert!(matches(r#"{"body": {"kind": ["order"]}}"#, &view));
        assert!(matches(r#"{"body": {"total": [{"numeric": [">", 10]}]}}"#, &view));
        assert!(!matches(r#"{"body": {"kind": ["refund"]}}"#, &view));
        // A JSON body is no longer a string.
        assert!(!matches(r#"{"body": [{"prefix": "{"}]}"#, &view));
    }

    #[test]
    fn sqs_view_keeps_other_bodies_as_strings() {
        for body in ["plain text", "[1, 2]", "42", "\"quoted\"", "null", "{broken", ""] {
            let record = json!({"body": body});
            assert_eq!(sqs_record_view(&record), record, "{body}");
        }
        let view = sqs_record_view(&json!({"body": "order-123"}));
        assert!(matches(r#"{"body": [{"prefix": "order-"}]}"#, &view));
        assert!(matches(r#"{"body": ["order-123"]}"#, &view));
        assert!(!matches(r#"{"body": {"kind": ["order"]}}"#, &view));
        assert!(matches(r#"{"body": {"kind": [{"exists": false}]}}"#, &view));
    }

    #[test]
    fn sqs_view_leaves_records_without_a_string_body_alone() {
        for record in
            [json!({"messageId": "1"}), json!({"body": {"a": 1}}), json!("x"), json!(null)]
        {
            assert_eq!(sqs_record_view(&record), record);
        }
    }

    // ---- examples from the AWS documentation ----

    #[test]
    fn aws_example_ec2_state_change() {
        let p = r#"{
            "source": ["aws.ec2"],
            "detail-type": ["EC2 Instance State-change Notification"],
            "detail": {"state": ["running"]}
        }"#;
        let event = json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "EC2 Instance State-change Notification",
            "source": "aws.ec2",
            "account": "111122223333",
            "time": "2017-12-22T18:43:48Z",
            "region": "us-west-1",
            "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
            "detail": {"instance-id": "i-1234567890abcdef0", "state": "running"}
        });
        assert!(matches(p, &event));
        let mut stopped = event;
        stopped["detail"]["state"] = json!("stopped");
        assert!(!matches(p, &stopped));
    }

    #[test]
    fn aws_example_resources_array() {
        let p = r#"{"resources": [
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"
        ]}"#;
        let event = json!({"resources": [
            "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
            "arn:aws:ec2:us-east-1:000000000000:instance/i-b188560f"
        ]});
        assert!(matches(p, &event));
        assert!(!matches(p, &json!({"resources": ["arn:aws:ec2:us-east-1:0:instance/x"]})));
    }

    #[test]
    fn aws_example_numeric_detail() {
        let p = r#"{"detail": {
            "c-count": [{"numeric": [">", 0, "<=", 5]}],
            "d-count": [{"numeric": ["<", 10]}],
            "x-limit": [{"numeric": ["=", 3.018e2]}]
        }}"#;
        assert!(matches(p, &json!({"detail": {"c-count": 5, "d-count": 7, "x-limit": 301.8}})));
        assert!(!matches(p, &json!({"detail": {"c-count": 0, "d-count": 7, "x-limit": 301.8}})));
    }

    #[test]
    fn aws_example_wildcard_event_bus_arn() {
        let p = r#"{"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}"#;
        assert!(matches(
            p,
            &json!({"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/default"})
        ));
        assert!(!matches(
            p,
            &json!({"EventBusArn": "arn:aws:events:us-west-2:123456789012:event-bus/default"})
        ));
    }

    #[test]
    fn aws_example_sqs_body_filter() {
        let record = json!({
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
            "body": "{\n \"RequestCode\" : \"AAAA\"\n}",
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183"},
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "awsRegion": "us-east-2"
        });
        let view = sqs_record_view(&record);
        assert!(matches(r#"{"body": {"RequestCode": ["AAAA"]}}"#, &view));
        assert!(!matches(r#"{"body": {"RequestCode": ["BBBB"]}}"#, &view));
        assert!(matches(r#"{"attributes": {"ApproximateReceiveCount": ["1"]}}"#, &view));
    }

    #[test]
    fn aws_example_dynamodb_keys() {
        let p = r#"{"dynamodb": {"Keys": {"CustomerName": {"S": ["AnyCompany Industries"]}}}}"#;
        let record = json!({
            "eventName": "INSERT",
            "dynamodb": {
                "Keys": {"CustomerName": {"S": "AnyCompany Industries"}},
                "NewImage": {
                    "AccountManager": {"S": "Pat Candella"},
                    "PaymentTerms": {"S": "60 days"}
                }
            }
        });
        assert!(matches(p, &record));
        let p = r#"{
            "eventName": ["INSERT"],
            "dynamodb": {"NewImage": {"PaymentTerms": {"S": [{"anything-but": ["30 days"]}]}}}
        }"#;
        assert!(matches(p, &record));
    }

    #[test]
    fn aws_example_lambda_rule_table() {
        let event = json!({
            "UserID": null,
            "LastName": "",
            "Name": "Alice",
            "Location": "New York",
            "Day": "Monday",
            "PaymentType": "Credit",
            "Weather": "Sunny",
            "Price": 100,
            "ProductName": "Widget",
            "Region": "us-east-1",
            "FileName": "photo.png"
        });
        let rules = [
            r#"{"UserID": [null]}"#,
            r#"{"LastName": [""]}"#,
            r#"{"Name": ["Alice"]}"#,
            r#"{"Name": [{"equals-ignore-case": "alice"}]}"#,
            r#"{"Location": ["New York"], "Day": ["Monday"]}"#,
            r#"{"PaymentType": ["Credit", "Debit"]}"#,
            r#"{"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}"#,
            r#"{"Weather": [{"anything-but": ["Raining"]}]}"#,
            r#"{"Price": [{"numeric": ["=", 100]}]}"#,
            r#"{"Price": [{"numeric": [">", 10, "<=", 100]}]}"#,
            r#"{"ProductName": [{"exists": true}]}"#,
            r#"{"Discount": [{"exists": false}]}"#,
            r#"{"Region": [{"prefix": "us-"}]}"#,
            r#"{"FileName": [{"suffix": ".png"}]}"#,
        ];
        for rule in rules {
            assert!(matches(rule, &event), "{rule}");
        }
    }
}

//! Parsing what a client calls a function: a bare name, a full or partial ARN, each with an
//! optional qualifier, plus the name rules Lambda enforces on tags.

use std::collections::BTreeMap;

use crate::{Account, ValidationError};

/// The longest value a `FunctionName` parameter may have when it is an ARN.
const MAX_FUNCTION_PARAM_LEN: usize = 140;
/// The longest bare function name.
const MAX_NAME_LEN: usize = 64;
const NAME_PATTERN: &str = "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?";

/// A qualifier: `$LATEST`, a published version number or an alias name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Qualifier {
    /// The mutable, unpublished version.
    Latest,
    /// A published version number.
    Version(u64),
    /// An alias name (never all digits).
    Alias(String),
}

impl Qualifier {
    /// Classifies a qualifier string; `None` if it cannot be one.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "$LATEST" {
            return Some(Self::Latest);
        }
        if s.is_empty() || s.len() > 128 || !s.bytes().all(is_name_byte) {
            return None;
        }
        let numeric = s.bytes().all(|b| b.is_ascii_digit());
        match s.parse::<u64>() {
            // Version numbers are written without leading zeros: `01` names no version (and
            // no alias can be all digits), so it resolves to nothing rather than to version 1.
            Ok(_) if numeric && s.len() > 1 && s.starts_with('0') => {
                Some(Self::Alias(s.to_owned()))
            }
            Ok(n) if numeric => Some(Self::Version(n)),
            _ if numeric => None,
            _ => Some(Self::Alias(s.to_owned())),
        }
    }

    /// The qualifier as it appears in ARNs and `Version` fields.
    pub fn as_string(&self) -> String {
        match self {
            Self::Latest => "$LATEST".to_owned(),
            Self::Version(n) => n.to_string(),
            Self::Alias(a) => a.clone(),
        }
    }
}

/// A function as a client named it, resolved against this account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// The bare function name.
    pub name: String,
    /// The qualifier given as a `:suffix`, if any.
    pub qualifier: Option<Qualifier>,
}

impl FunctionRef {
    /// Parses a `FunctionName` parameter: `name`, `name:qualifier`, `account:function:name[:q]`
    /// or `arn:aws:lambda:region:account:function:name[:q]`. Region and account in an ARN
    /// must be this account's.
    pub fn parse(raw: &str, account: &Account) -> Result<Self, ValidationError> {
        let invalid = || {
            ValidationError::constraint(
                raw,
                "functionName",
                &format!("Member must satisfy regular expression pattern: {NAME_PATTERN}"),
            )
        };
        if raw.is_empty() {
            return Err(ValidationError::constraint(
                raw,
                "functionName",
                "Member must have length greater than or equal to 1",
            ));
        }
        if raw.len() > MAX_FUNCTION_PARAM_LEN {
            return Err(ValidationError::constraint(
                raw,
                "functionName",
                &format!("Member must have length less than or equal to {MAX_FUNCTION_PARAM_LEN}"),
            ));
        }
        let parts: Vec<&str> = raw.split(':').collect();
        let (prefix, rest) = split_at_function_keyword(&parts).ok_or_else(invalid)?;
        check_arn_prefix(prefix, account, raw)?;
        let (name, qualifier) = match rest {
            [name] => (*name, None),
            [name, q] => (*name, Some(Qualifier::parse(q).ok_or_else(invalid)?)),
            _ => return Err(invalid()),
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(is_name_byte) {
            return Err(invalid());
        }
        Ok(Self { name: name.to_owned(), qualifier })
    }

    /// Checks a bare name as `CreateFunction` requires it (no ARN, no qualifier).
    pub fn validate_new_name(raw: &str, account: &Account) -> Result<String, ValidationError> {
        let parsed = Self::parse(raw, account)?;
        if parsed.qualifier.is_some() {
            return Err(ValidationError::param(
                "Unsupported qualifier: a function cannot be created with a qualifier.",
            ));
        }
        Ok(parsed.name)
    }
}

/// Splits `[..prefix.., "function", name, (q)]`; a bare `name[:q]` has an empty prefix.
/// A `function` with nothing after it is no keyword: `function` and `name:function` are a
/// bare name (a function, or an alias, may be called `function`).
fn split_at_function_keyword<'a, 'b>(
    parts: &'b [&'a str],
) -> Option<(&'b [&'a str], &'b [&'a str])> {
    match parts.iter().position(|p| *p == "function") {
        Some(idx) if idx + 1 < parts.len() => Some((&parts[..idx], &parts[idx + 1..])),
        _ if parts.len() <= 2 => Some((&[], parts)),
        _ => None,
    }
}

/// Checks what precedes `function:`: nothing, `account`, `region:account` or
/// `arn:partition:lambda:region:account`.
fn check_arn_prefix(prefix: &[&str], account: &Account, raw: &str) -> Result<(), ValidationError> {
    let (region, acct) = match prefix {
        [] => return Ok(()),
        [acct] => (None, *acct),
        [region, acct] => (Some(*region), *acct),
        ["arn", partition, "lambda", region, acct] if partition.starts_with("aws") => {
            (Some(*region), *acct)
        }
        _ => {
            return Err(ValidationError::constraint(
                raw,
                "functionName",
                &format!("Member must satisfy regular expression pattern: {NAME_PATTERN}"),
            ))
        }
    };
    if region.is_some_and(|r| r != account.region) {
        return Err(ValidationError::param(format!(
            "The region in the function ARN does not match this endpoint's region ({})",
            account.region
        )));
    }
    if acct != account.account_id {
        return Err(ValidationError::param(format!(
            "The account in the function ARN does not match this endpoint's account ({})",
            account.account_id
        )));
    }
    Ok(())
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Checks tags as the tagging API does: at most 50, keys 1–128 characters not starting with
/// `aws:`, values up to 256, both from the allowed character set.
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if tags.len() > 50 {
        return Err(ValidationError::param("Number of tags exceeds resource tag limit (50)."));
    }
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 || !key.chars().all(is_tag_char) {
            return Err(ValidationError::param(format!("Tag key is not valid: {key}")));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(ValidationError::param("Tag keys starting with 'aws:' are reserved."));
        }
        if value.chars().count() > 256 || !value.chars().all(is_tag_char) {
            return Err(ValidationError::param(format!("Tag value is not valid for key: {key}")));
        }
    }
    Ok(())
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct() -> Account {
        Account { region: "us-east-1".into(), account_id: "123456789012".into() }
    }

    #[track_caller]
    fn check(raw: &str, name: &str, qualifier: Option<Qualifier>) {
        let parsed = FunctionRef::parse(raw, &acct()).expect(raw);
        assert_eq!(parsed, FunctionRef { name: name.into(), qualifier });
    }

    #[track_caller]
    fn check_err(raw: &str) {
        assert!(FunctionRef::parse(raw, &acct()).is_err(), "{raw} should be rejected");
    }

    #[test]
    fn accepted_forms() {
        check("my-fn", "my-fn", None);
        check("my-fn:$LATEST", "my-fn", Some(Qualifier::Latest));
        check("my-fn:7", "my-fn", Some(Qualifier::Version(7)));
        check("my-fn:prod", "my-fn", Some(Qualifier::Alias("prod".into())));
        check("123456789012:function:my-fn", "my-fn", None);
        check("arn:aws:lambda:us-east-1:123456789012:function:my-fn", "my-fn", None);
        check(
            "arn:aws:lambda:us-east-1:123456789012:function:my-fn:3",
            "my-fn",
            Some(Qualifier::Version(3)),
        );
        check("us-east-1:123456789012:function:f_1", "f_1", None);
    }

    /// Found by the `names` fuzz target: a function (or alias) called `function` was taken
    /// for the ARN keyword and refused in its bare forms.
    #[test]
    fn a_function_may_be_called_function() {
        check("function", "function", None);
        check("f:function", "f", Some(Qualifier::Alias("function".into())));
        check("function:function", "function", None);
        check("123456789012:function:function", "function", None);
        check(
            "arn:aws:lambda:us-east-1:123456789012:function:function:function",
            "function",
            Some(Qualifier::Alias("function".into())),
        );
        check_err("a:b:function");
        assert_eq!(FunctionRef::validate_new_name("function", &acct()).unwrap(), "function");
    }

    #[test]
    fn rejected_forms() {
        check_err("");
        check_err("has space");
        check_err("a:b:c");
        check_err(&"x".repeat(65));
        check_err("arn:aws:lambda:eu-west-1:123456789012:function:f");
        check_err("999999999999:function:f");
        check_err("arn:aws:s3:us-east-1:123456789012:function:f");
        check_err("123456789012:function:");
        check_err("f:$NOPE");
        check_err("f:a:b");
    }

    #[test]
    fn qualifiers() {
        assert_eq!(Qualifier::parse("$LATEST"), Some(Qualifier::Latest));
        assert_eq!(Qualifier::parse("12"), Some(Qualifier::Version(12)));
        assert_eq!(Qualifier::parse("01"), Some(Qualifier::Alias("01".into())), "not version 1");
        assert_eq!(Qualifier::parse("live"), Some(Qualifier::Alias("live".into())));
        assert_eq!(Qualifier::parse(""), None);
        assert_eq!(Qualifier::parse("a.b"), None);
        assert_eq!(Qualifier::parse("99999999999999999999999"), None);
    }

    #[test]
    fn new_names_have_no_qualifier() {
        assert!(FunctionRef::validate_new_name("f:1", &acct()).is_err());
        assert_eq!(FunctionRef::validate_new_name("f", &acct()).unwrap(), "f");
    }

    #[test]
    fn tags() {
        let ok: BTreeMap<String, String> = [("team".to_owned(), "a b/c".to_owned())].into();
        assert!(validate_tags(&ok).is_ok());
        let reserved: BTreeMap<String, String> = [("aws:x".to_owned(), String::new())].into();
        assert!(validate_tags(&reserved).is_err());
        let too_many: BTreeMap<String, String> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(validate_tags(&too_many).is_err());
        let bad_char: BTreeMap<String, String> = [("k".to_owned(), "v<".to_owned())].into();
        assert!(validate_tags(&bad_char).is_err());
    }
}

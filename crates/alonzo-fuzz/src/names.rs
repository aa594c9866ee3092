//! Function names, ARNs and qualifiers (`alonzo_model::FunctionRef`, `Qualifier`).
//!
//! Properties: any string parses or is refused without panicking; a parsed name is a valid
//! bare name and its qualifier renders back to what was written; every form Lambda accepts
//! for a valid name and qualifier (bare, `name:q`, partial ARN, full ARN) parses back to that
//! name and qualifier; an ARN of another region or account is refused.

use alonzo_model::{Account, FunctionRef, Qualifier};

use crate::input::{optional, sections, text};

/// Sections: any `FunctionName` text, a name, a qualifier (none when empty).
#[derive(Debug)]
struct Input {
    raw: String,
    name: String,
    qualifier: Option<String>,
}

/// The fuzz target's body.
pub fn run(data: &[u8]) {
    let s = sections(data, 3);
    let input = Input { raw: text(s[0]), name: text(s[1]), qualifier: optional(s[2]) };
    let account = Account { region: "us-east-1".into(), account_id: "123456789012".into() };
    arbitrary_text(&input.raw, &account);
    round_trips(&input, &account);
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn arbitrary_text(raw: &str, account: &Account) {
    if let Some(q) = Qualifier::parse(raw) {
        assert_eq!(Qualifier::parse(&q.as_string()), Some(q.clone()), "{raw:?}");
        if let Qualifier::Alias(a) = &q {
            assert_eq!(a, raw);
        }
    }
    if let Ok(parsed) = FunctionRef::parse(raw, account) {
        assert!(is_name(&parsed.name) && parsed.name.len() <= 64, "{raw:?} → {parsed:?}");
        assert!(raw.contains(parsed.name.as_str()));
        if let Some(q) = &parsed.qualifier {
            assert!(raw.ends_with(&format!(":{}", q.as_string())), "{raw:?} → {parsed:?}");
        }
    }
    let _ = FunctionRef::validate_new_name(raw, account);
}

fn round_trips(input: &Input, account: &Account) {
    let name = &input.name;
    if !is_name(name) || name.len() > 64 {
        return;
    }
    let qualifier = match input.qualifier.as_deref() {
        None => None,
        Some(q) => match Qualifier::parse(q) {
            Some(parsed) => Some((q, parsed)),
            None => return,
        },
    };
    let expected = FunctionRef { name: name.clone(), qualifier: qualifier.clone().map(|q| q.1) };
    let suffix = qualifier.as_ref().map(|(q, _)| format!(":{q}")).unwrap_or_default();
    let mut forms = vec![
        format!("{}{suffix}", account.function_arn(name)),
        format!("{}:function:{name}{suffix}", account.account_id),
        format!("{}:{}:function:{name}{suffix}", account.region, account.account_id),
    ];
    // `function:q` reads as the partial ARN of function `q`, as Lambda's pattern allows.
    if name != "function" || qualifier.is_none() {
        forms.push(format!("{name}{suffix}"));
    }
    for form in forms {
        if form.len() > 140 {
            continue;
        }
        match FunctionRef::parse(&form, account) {
            Ok(parsed) => assert_eq!(parsed, expected, "{form:?}"),
            Err(e) => panic!("{form:?} is a valid function name but was refused: {e}"),
        }
    }
    let foreign = format!("arn:aws:lambda:eu-west-1:{}:function:{name}", account.account_id);
    assert!(FunctionRef::parse(&foreign, account).is_err(), "{foreign:?}");
    let foreign = format!("arn:aws:lambda:{}:999999999999:function:{name}", account.region);
    assert!(FunctionRef::parse(&foreign, account).is_err(), "{foreign:?}");
}

//! Decoding raw query strings into `(key, value)` pairs, keeping repeated keys (as
//! `UntagResource`'s `tagKeys` needs), which axum's `Query` extractor does not.

/// Percent-decodes each `key=value` pair in order; `+` stays a literal plus, as the AWS SDKs
/// encode spaces as `%20`.
pub(crate) fn pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The first value of `key`.
pub(crate) fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_and_encoded() {
        let p = pairs("tagKeys=a&tagKeys=b%20c&Qualifier=%24LATEST&flag&x=1+1");
        assert_eq!(p.len(), 5);
        assert_eq!(first(&p, "tagKeys"), Some("a"));
        assert_eq!(p[1].1, "b c");
        assert_eq!(first(&p, "Qualifier"), Some("$LATEST"));
        assert_eq!(first(&p, "flag"), Some(""));
        assert_eq!(first(&p, "x"), Some("1+1"));
    }
}

//! The seed format shared by the targets: an input is a list of sections separated by a
//! line holding `~~` (`"\n~~\n"`), so that seeds are readable, realistic samples and crash
//! inputs can be read by eye. A missing section is empty.

/// The separator between sections.
pub const SEPARATOR: &[u8] = b"\n~~\n";

/// The input's sections: at most `max`, the last one taking the rest.
pub fn sections(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(max);
    let mut rest = data;
    while out.len() + 1 < max {
        match rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
            Some(at) => {
                out.push(&rest[..at]);
                rest = &rest[at + SEPARATOR.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out.resize(max, &[][..]);
    out
}

/// A section as text (invalid UTF-8 replaced).
pub fn text(section: &[u8]) -> String {
    String::from_utf8_lossy(section).into_owned()
}

/// A section as text, `None` when empty.
pub fn optional(section: &[u8]) -> Option<String> {
    (!section.is_empty()).then(|| text(section))
}

/// A section as a decimal number (leading digits only; 0 without any).
pub fn number(section: &[u8]) -> u64 {
    section
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, b| n.wrapping_mul(10).wrapping_add(u64::from(b - b'0')))
}

/// `name: value` lines, as header pairs (the value's bytes kept as they are).
pub fn header_lines(section: &[u8]) -> Vec<(String, Vec<u8>)> {
    section
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|b| *b == b':')?;
            let value = line[colon + 1..].strip_prefix(b" ").unwrap_or(&line[colon + 1..]);
            Some((text(&line[..colon]), value.to_vec()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_split_pad_and_keep_the_rest() {
        assert_eq!(sections(b"a\n~~\nb\n~~\nc\n~~\nd", 3), vec![&b"a"[..], b"b", b"c\n~~\nd"]);
        assert_eq!(sections(b"a", 3), vec![&b"a"[..], b"", b""]);
        assert_eq!(number(b"42x"), 42);
        assert_eq!(
            header_lines(b"Host: h\nbad\nx:y"),
            vec![("Host".to_owned(), b"h".to_vec()), ("x".to_owned(), b"y".to_vec())]
        );
    }
}

//! What a server sends is shown, never obeyed: control characters in its variables (a terminal
//! escape sequence that retitles the window or clears the screen, a CR that overwrites the
//! line before it) are printed as `\xNN`, in the billboard, `rv` and `--json` alike.
//!
//! Mode 6 variable text is ASCII by the time it gets here (`parse_varlist` keeps nothing
//! else), so the characters to neutralise are C0 controls and DEL. Reverse DNS names go through
//! the same function: a PTR record is network input too.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every control character (C0, DEL and C1) written as `\xNN`; borrowed if there
/// is none.
pub(crate) fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A reply's variables (`parse_varlist`), with names and values escaped.
pub(crate) fn escaped_varlist(data: &[u8]) -> Vec<(String, String)> {
    sundial_proto::control::parse_varlist(data)
        .into_iter()
        .map(|(name, value)| {
            (
                escape_controls(&name).into_owned(),
                escape_controls(&value).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_as_hex_escapes() {
        assert_eq!(escape_controls("plain text 1.2"), "plain text 1.2");
        assert!(matches!(escape_controls("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape_controls("\u{1b}]0;owned\u{7}\u{1b}[2J\r\nx\u{7f}\u{9b}"),
            "\\x1b]0;owned\\x07\\x1b[2J\\x0d\\x0ax\\x7f\\x9b"
        );
    }

    #[test]
    fn variables_from_the_wire_come_out_escaped() {
        let vars = escaped_varlist(b"version=\"evil \x1b[2J\",na\x1bme=1,refid=\r\n");
        assert_eq!(
            vars,
            [
                ("version".to_owned(), "\"evil \\x1b[2J\"".to_owned()),
                ("na\\x1bme".to_owned(), "1".to_owned()),
                ("refid".to_owned(), String::new()),
            ]
        );
    }
}

//! A minimal JSON writer for `ntpq --json`: flat objects and arrays of them, one document per
//! line. Strings are escaped per RFC 8259; non-finite numbers become `null`.

use std::fmt::Write as _;

/// A JSON object being built, fields in insertion order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Object {
    fields: Vec<(String, String)>,
}

impl Object {
    /// An empty object.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a string field.
    #[must_use]
    pub(crate) fn string(mut self, key: &str, value: &str) -> Self {
        self.fields.push((key.to_owned(), quote(value)));
        self
    }

    /// Adds an integer field.
    #[must_use]
    pub(crate) fn int(mut self, key: &str, value: i64) -> Self {
        self.fields.push((key.to_owned(), value.to_string()));
        self
    }

    /// Adds a number field (`null` if not finite).
    #[must_use]
    pub(crate) fn number(mut self, key: &str, value: f64) -> Self {
        let text = if value.is_finite() {
            value.to_string()
        } else {
            "null".to_owned()
        };
        self.fields.push((key.to_owned(), text));
        self
    }

    /// Adds a mode 6 variable's value: a JSON number if the server sent a decimal number (not
    /// quoted, not hex), so that scripts get numbers, otherwise a string (quotes removed).
    #[must_use]
    pub(crate) fn variable(mut self, key: &str, raw: &str) -> Self {
        let text = if is_json_number(raw) {
            raw.to_owned()
        } else {
            quote(
                raw.strip_prefix('"')
                    .and_then(|r| r.strip_suffix('"'))
                    .unwrap_or(raw),
            )
        };
        self.fields.push((key.to_owned(), text));
        self
    }

    /// Adds a boolean field.
    #[must_use]
    pub(crate) fn boolean(mut self, key: &str, value: bool) -> Self {
        self.fields.push((key.to_owned(), value.to_string()));
        self
    }

    /// Adds `null` for `None`, an integer otherwise.
    #[must_use]
    pub(crate) fn optional_int(mut self, key: &str, value: Option<i64>) -> Self {
        let text = value.map_or_else(|| "null".to_owned(), |v| v.to_string());
        self.fields.push((key.to_owned(), text));
        self
    }

    /// Adds an array of objects.
    #[must_use]
    pub(crate) fn array(mut self, key: &str, items: Vec<Self>) -> Self {
        let inner: Vec<String> = items.into_iter().map(Self::finish).collect();
        self.fields
            .push((key.to_owned(), format!("[{}]", inner.join(","))));
        self
    }

    /// Adds a nested object.
    #[must_use]
    pub(crate) fn object(mut self, key: &str, value: Self) -> Self {
        self.fields.push((key.to_owned(), value.finish()));
        self
    }

    /// The object's text.
    pub(crate) fn finish(self) -> String {
        let inner: Vec<String> = self
            .fields
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", quote(&k)))
            .collect();
        format!("{{{}}}", inner.join(","))
    }
}

/// Whether `text` is a number in RFC 8259's grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
pub(crate) fn is_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b.get(int_start) == Some(&b'0')) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A JSON string literal.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_variables_become_numbers_and_the_rest_strings() {
        let doc = Object::new()
            .variable("stratum", "3")
            .variable("offset", "-0.002481")
            .variable("rootdisp", "1.060")
            .variable("reach", "0x377")
            .variable("refid", "127.0.0.1")
            .variable("version", "\"ntpd sundial-0.1.0\"")
            .variable("x", "007")
            .variable("y", "1e-3")
            .finish();
        assert_eq!(
            doc,
            r#"{"stratum":3,"offset":-0.002481,"rootdisp":1.060,"reach":"0x377","refid":"127.0.0.1","version":"ntpd sundial-0.1.0","x":"007","y":1e-3}"#
        );
        assert!(!is_json_number("-"));
        assert!(!is_json_number("1."));
        assert!(!is_json_number(""));
        assert!(!is_json_number("NaN"));
    }

    #[test]
    fn objects_escape_and_nest() {
        let inner = Object::new().int("a", 1).number("x", f64::NAN);
        let text = Object::new()
            .string("s", "q\"\\\n\u{1}")
            .boolean("b", true)
            .optional_int("w", None)
            .number("f", -0.5)
            .array("items", vec![inner.clone(), inner])
            .object("o", Object::new())
            .finish();
        assert_eq!(
            text,
            r#"{"s":"q\"\\\n\u0001","b":true,"w":null,"f":-0.5,"items":[{"a":1,"x":null},{"a":1,"x":null}],"o":{}}"#
        );
    }
}

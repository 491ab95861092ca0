//! Splitting a line into tokens, walking them, and reading typed values out of them.
//!
//! ntp.conf is line oriented: `#` starts a comment, whitespace separates tokens, and a few
//! arguments (`setvar` values, file names with spaces) may be double-quoted. There are no
//! continuation lines and no escapes inside quotes, so a token is always a slice of its line
//! and its column is enough to point an administrator at it.

use std::fmt::Display;
use std::ops::RangeInclusive;

use sundial_proto::time::NtpDuration;

use super::finding::{Diag, Severity};

/// One token of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Token<'a> {
    /// The text, without the quotes of a quoted token.
    pub(super) text: &'a str,
    /// 1-based character column of the token's first character (the opening quote, if any).
    pub(super) column: u32,
    /// Whether the token was written in double quotes, which keeps keywords from matching it.
    pub(super) quoted: bool,
}

/// Splits one line (without its line terminator) into tokens; the comment is dropped.
///
/// The only lexical error is an unterminated quote. The rest of the line is then unusable,
/// because we cannot tell where the string was meant to end.
pub(super) fn tokenize(line: &str) -> Result<Vec<Token<'_>>, Diag> {
    let mut tokens = Vec::new();
    let mut chars = line.char_indices().peekable();
    let mut column: u32 = 0;
    while let Some((start, c)) = chars.next() {
        column = column.saturating_add(1);
        if c.is_whitespace() {
            continue;
        }
        if c == '#' {
            break;
        }
        let token_column = column;
        if c == '"' {
            let body_start = start + c.len_utf8();
            let mut end = None;
            for (i, d) in chars.by_ref() {
                column = column.saturating_add(1);
                if d == '"' {
                    end = Some(i);
                    break;
                }
            }
            let Some(body) = end.and_then(|end| line.get(body_start..end)) else {
                let rest = line.get(start..).unwrap_or_default();
                return Err(Diag::new(
                    Severity::Error,
                    token_column,
                    rest,
                    "unterminated quoted string".to_owned(),
                ));
            };
            tokens.push(Token {
                text: body,
                column: token_column,
                quoted: true,
            });
            continue;
        }
        let mut end = line.len();
        while let Some(&(i, d)) = chars.peek() {
            if d.is_whitespace() || d == '#' || d == '"' {
                end = i;
                break;
            }
            chars.next();
            column = column.saturating_add(1);
        }
        let text = line.get(start..end).unwrap_or_default();
        tokens.push(Token {
            text,
            column: token_column,
            quoted: false,
        });
    }
    Ok(tokens)
}

impl<'a> Token<'a> {
    /// Whether this is the unquoted keyword `word`. ntpd's keywords are case-sensitive.
    pub(super) fn is(&self, word: &str) -> bool {
        !self.quoted && self.text == word
    }

    /// A finding of `severity` pointing at this token.
    pub(super) fn diag(&self, severity: Severity, message: impl Into<String>) -> Diag {
        Diag::new(severity, self.column, self.text, message.into())
    }

    /// An error finding pointing at this token: the line will be skipped.
    pub(super) fn error(&self, message: impl Into<String>) -> Diag {
        self.diag(Severity::Error, message)
    }

    /// A warning finding pointing at this token.
    pub(super) fn warning(&self, message: impl Into<String>) -> Diag {
        self.diag(Severity::Warning, message)
    }

    /// A notice finding pointing at this token.
    pub(super) fn notice(&self, message: impl Into<String>) -> Diag {
        self.diag(Severity::Notice, message)
    }

    /// A decimal integer, checked against `range`.
    pub(super) fn int<T>(&self, what: &str, range: RangeInclusive<T>) -> Result<T, Diag>
    where
        T: TryFrom<i64> + PartialOrd + Display + Copy,
    {
        let wide = self.wide_int(what)?;
        match T::try_from(wide) {
            Ok(value) if range.contains(&value) => Ok(value),
            _ => Err(self.error(format!(
                "{what} must be between {} and {}",
                range.start(),
                range.end()
            ))),
        }
    }

    /// A decimal integer of any size, for values the caller clamps itself.
    pub(super) fn wide_int(&self, what: &str) -> Result<i64, Diag> {
        self.text
            .parse::<i64>()
            .map_err(|_| self.error(format!("{what} must be an integer")))
    }

    /// A finite decimal number (ntpd's `T_Double`, which also accepts integers).
    pub(super) fn number(&self, what: &str) -> Result<f64, Diag> {
        match self.text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(value),
            _ => Err(self.error(format!("{what} must be a number"))),
        }
    }

    /// A number of seconds that must not be negative.
    pub(super) fn seconds(&self, what: &str) -> Result<NtpDuration, Diag> {
        let secs = self.number(what)?;
        if secs < 0.0 {
            return Err(self.error(format!("{what} must not be negative")));
        }
        Ok(NtpDuration::from_seconds_f64(secs))
    }

    /// A signed number of seconds (offset corrections such as `time1` or `bias`).
    pub(super) fn signed_seconds(&self, what: &str) -> Result<NtpDuration, Diag> {
        self.number(what).map(NtpDuration::from_seconds_f64)
    }

    /// `0` or `1`, as `fudge flag1` and `tos cohort` take them.
    pub(super) fn zero_or_one(&self, what: &str) -> Result<bool, Diag> {
        match self.text {
            "0" => Ok(false),
            "1" => Ok(true),
            _ => Err(self.error(format!("{what} must be 0 or 1"))),
        }
    }
}

/// The arguments of one directive, consumed left to right.
#[derive(Debug)]
pub(super) struct Args<'t, 'a> {
    /// The directive's keyword, for "needs an argument" findings.
    keyword: Token<'a>,
    rest: &'t [Token<'a>],
}

impl<'t, 'a> Args<'t, 'a> {
    /// The arguments that follow `keyword`.
    pub(super) fn new(keyword: Token<'a>, rest: &'t [Token<'a>]) -> Self {
        Self { keyword, rest }
    }

    /// The directive's keyword.
    pub(super) fn keyword(&self) -> Token<'a> {
        self.keyword
    }

    /// The next argument, if any.
    pub(super) fn next(&mut self) -> Option<Token<'a>> {
        let (first, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(*first)
    }

    /// The next argument, left in place.
    pub(super) fn peek(&self) -> Option<Token<'a>> {
        self.rest.first().copied()
    }

    /// The next argument, which the directive cannot do without; `what` names it.
    pub(super) fn required(&mut self, what: &str) -> Result<Token<'a>, Diag> {
        let keyword = self.keyword;
        self.next()
            .ok_or_else(|| keyword.error(format!("{} needs {what}", keyword.text)))
    }

    /// The value that must follow the option `option`.
    pub(super) fn value_of(&mut self, option: Token<'_>) -> Result<Token<'a>, Diag> {
        self.next()
            .ok_or_else(|| option.error(format!("{} needs a value", option.text)))
    }

    /// Succeeds only when no arguments are left; a leftover is a syntax error, as in ntpd.
    pub(super) fn finish(&self) -> Result<(), Diag> {
        match self.peek() {
            None => Ok(()),
            Some(extra) => {
                Err(extra.error(format!("unexpected argument to {}", self.keyword.text)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<(&str, u32, bool)> {
        tokenize(line)
            .unwrap()
            .iter()
            .map(|t| (t.text, t.column, t.quoted))
            .collect()
    }

    #[test]
    fn tokens_carry_character_columns_and_comments_are_dropped() {
        assert_eq!(
            texts("  server\t1.2.3.4  iburst # a comment"),
            [
                ("server", 3, false),
                ("1.2.3.4", 10, false),
                ("iburst", 19, false)
            ]
        );
        assert_eq!(
            texts("é server x#y"),
            [("é", 1, false), ("server", 3, false), ("x", 10, false)]
        );
        assert!(texts("   # only a comment").is_empty());
    }

    #[test]
    fn quoted_strings_keep_spaces_and_hashes() {
        assert_eq!(
            texts(r#"setvar a = "b # c" default"#),
            [
                ("setvar", 1, false),
                ("a", 8, false),
                ("=", 10, false),
                ("b # c", 12, true),
                ("default", 20, false)
            ]
        );
        assert_eq!(texts(r#""""#), [("", 1, true)]);
    }

    #[test]
    fn an_unterminated_quote_is_an_error_at_the_quote() {
        let err = tokenize(r#"setvar a = "open"#).unwrap_err();
        assert_eq!((err.column, err.token.as_str()), (12, "\"open"));
    }

    #[test]
    fn integers_are_range_checked() {
        let tok = Token {
            text: "70000",
            column: 1,
            quoted: false,
        };
        assert!(tok.int::<u16>("key", 1..=65535).is_err());
        let tok = Token {
            text: "4",
            column: 1,
            quoted: false,
        };
        assert_eq!(tok.int::<u8>("version", 1..=4).unwrap(), 4);
        let tok = Token {
            text: "nan",
            column: 1,
            quoted: false,
        };
        assert!(tok.number("x").is_err());
    }
}

//! The textual variable list of mode 6 data (ntpq-mode6.md §6): `name=value` items separated
//! by `", "`, a `\r\n` instead of the space where a line would reach 72 characters, and a final
//! `\r\n` if the last fragment has room.
//!
//! [`VarWriter`] builds such a list into a bounded buffer for the responder; [`parse_varlist`]
//! reads one back for the client.

use core::fmt::{self, Write as _};

use super::header::MAX_DATA_LEN;

/// ntpd's `MAXDATALINELEN`: a line break goes in before an item that would make the line this
/// long.
const MAX_LINE_LEN: usize = 72;

/// Longest single item the writer formats (`name=value`); longer ones are dropped. The longest
/// real item, a filter array of eight clamped values, is well below this.
const MAX_ITEM_LEN: usize = 256;

/// Longest free-text value (version, processor, system, srchost, clock names) the responder
/// sends, matching the 127-octet bound on request values.
pub(crate) const MAX_TEXT_LEN: usize = 127;

/// Appends `name=value` items to a caller-owned buffer with ntpd's separators and line breaks.
#[derive(Debug)]
pub(crate) struct VarWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    line_len: usize,
    truncated: bool,
}

impl<'b> VarWriter<'b> {
    /// A writer that fills `buf` and never writes past it.
    pub(crate) fn new(buf: &'b mut [u8]) -> Self {
        Self {
            buf,
            len: 0,
            line_len: 0,
            truncated: false,
        }
    }

    /// Appends one item, formatted from `args` (`name=value`). An item that does not fit the
    /// remaining space is left out and the list is marked truncated.
    pub(crate) fn item(&mut self, args: fmt::Arguments<'_>) {
        let mut item = Scratch::default();
        if item.write_fmt(args).is_err() {
            self.truncated = true;
            return;
        }
        let item = item.as_bytes();
        let (separator, new_line_len): (&[u8], usize) = if self.len == 0 {
            (b"", item.len())
        } else if self.line_len + 1 + item.len() + 1 >= MAX_LINE_LEN {
            (b",\r\n", item.len())
        } else {
            (b", ", self.line_len + 2 + item.len())
        };
        let end = self.len + separator.len() + item.len();
        let Some(dest) = self.buf.get_mut(self.len..end) else {
            self.truncated = true;
            return;
        };
        let (sep_dest, item_dest) = dest.split_at_mut(separator.len());
        sep_dest.copy_from_slice(separator);
        item_dest.copy_from_slice(item);
        self.len = end;
        self.line_len = new_line_len;
    }

    /// Octets written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Ends the list: appends `\r\n` if the last fragment has room for it (ntpd does the same),
    /// and returns the length written and whether any item was left out.
    pub(crate) fn finish(self) -> (usize, bool) {
        let in_last_fragment = self.len % MAX_DATA_LEN;
        let mut len = self.len;
        let room = in_last_fragment != 0 && in_last_fragment + 2 <= MAX_DATA_LEN;
        if let Some(dest) = self.buf.get_mut(len..len + 2).filter(|_| room) {
            dest.copy_from_slice(b"\r\n");
            len += 2;
        }
        (len, self.truncated)
    }
}

/// A fixed buffer for formatting one item; writing past its end fails.
#[derive(Debug)]
struct Scratch {
    bytes: [u8; MAX_ITEM_LEN],
    len: usize,
}

impl Default for Scratch {
    fn default() -> Self {
        Self {
            bytes: [0; MAX_ITEM_LEN],
            len: 0,
        }
    }
}

impl Scratch {
    fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl fmt::Write for Scratch {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dest = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        dest.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Free text made safe to send as a quoted value: printable ASCII only, at most
/// [`MAX_TEXT_LEN`] characters, and no `"` or `,` that would let the text end the value early
/// and forge further variables (a server name or refid is chosen by someone else).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SafeText<'a>(pub(crate) &'a str);

impl fmt::Display for SafeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars().take(MAX_TEXT_LEN) {
            let c = match c {
                '"' | ',' | '=' => '.',
                c if c == ' ' || c.is_ascii_graphic() => c,
                _ => '.',
            };
            f.write_char(c)?;
        }
        Ok(())
    }
}

/// Parses a variable list into `(name, value)` pairs in order. Values are raw: a quoted string
/// keeps its quotes (see [`unquote`]); surrounding white space and line breaks are removed, NULs
/// and non-ASCII octets are dropped (as NTPsec's ntpq does). Items without `=` get an empty
/// value. Never fails: whatever a server sends yields some list.
pub fn parse_varlist(data: &[u8]) -> Vec<(String, String)> {
    let text: String = data
        .iter()
        .filter(|b| **b != 0 && b.is_ascii())
        .map(|&b| char::from(b))
        .collect();
    let mut items = Vec::new();
    let mut rest = text.as_str();
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return items;
        }
        let name_end = rest.find([',', '=']).unwrap_or(rest.len());
        let (name, after) = rest.split_at(name_end);
        let name = name.trim().to_owned();
        let Some(after_eq) = after.strip_prefix('=') else {
            items.push((name, String::new()));
            rest = after;
            continue;
        };
        let value_start = after_eq.trim_start_matches([' ', '\t']);
        let value_end = if let Some(quoted) = value_start.strip_prefix('"') {
            // The value runs to the closing quote, then to the next separator.
            let close = quoted.find('"').map_or(value_start.len(), |i| i + 2);
            let tail = value_start.get(close..).unwrap_or_default();
            close + tail.find(',').unwrap_or(tail.len())
        } else {
            value_start.find(',').unwrap_or(value_start.len())
        };
        let (value, after_value) = value_start.split_at(value_end.min(value_start.len()));
        items.push((name, value.trim().to_owned()));
        rest = after_value;
    }
}

/// A value without its surrounding double quotes, if it has them.
pub fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(items: &[&str], capacity: usize) -> (String, bool) {
        let mut buf = vec![0u8; capacity];
        let mut w = VarWriter::new(&mut buf);
        for item in items {
            w.item(format_args!("{item}"));
        }
        let (len, truncated) = w.finish();
        (String::from_utf8(buf[..len].to_vec()).unwrap(), truncated)
    }

    #[test]
    fn breaks_lines_where_ntpsec_does() {
        // The first two lines of real NTPsec 1.2.2 `rv` data, observed on the wire.
        let items = [
            "leap=0",
            "stratum=8",
            "precision=-24",
            "rootdelay=0.000",
            "rootdisp=0.000",
            "refid=127.0.0.1",
            "reftime=0x00000000.00000000",
            "tc=0",
            "peer=0",
            "offset=0.000000",
        ];
        let (text, truncated) = write(&items, 468);
        assert!(!truncated);
        assert_eq!(
            text,
            "leap=0, stratum=8, precision=-24, rootdelay=0.000, rootdisp=0.000,\r\n\
             refid=127.0.0.1, reftime=0x00000000.00000000, tc=0, peer=0,\r\n\
             offset=0.000000\r\n"
        );
    }

    #[test]
    fn leaves_out_items_that_do_not_fit() {
        let (text, truncated) = write(&["a=1", "bbbbbbbbbb=2", "c=3"], 12);
        assert_eq!(text, "a=1, c=3\r\n");
        assert!(truncated);
    }

    #[test]
    fn no_final_line_break_in_a_full_fragment() {
        // 233 + ",\r\n" + 232 = 468: the first fragment is full.
        let (a, b) = (
            format!("a={}", "x".repeat(231)),
            format!("b={}", "y".repeat(230)),
        );
        let (text, _) = write(&[&a, &b], 1000);
        assert_eq!(text.len(), 468);
        assert!(text.ends_with('y'));
    }

    #[test]
    fn safe_text_cannot_forge_variables() {
        let s = format!("{}", SafeText("pool\", evil=1\u{7}é"));
        assert_eq!(s, "pool.. evil.1..");
        assert_eq!(format!("{}", SafeText(&"y".repeat(300))).len(), 127);
    }

    #[test]
    fn parses_quoted_values_arrays_and_line_breaks() {
        let data = b"srcadr=192.0.2.1, srchost=\"a, b\",\r\nfiltdelay= 0.05 0.04,\r\nflag, \
                     version=\"ntpd 4\"\r\n\0\0";
        let vars = parse_varlist(data);
        let expect = [
            ("srcadr", "192.0.2.1"),
            ("srchost", "\"a, b\""),
            ("filtdelay", "0.05 0.04"),
            ("flag", ""),
            ("version", "\"ntpd 4\""),
        ];
        assert_eq!(vars.len(), expect.len());
        for ((n, v), (en, ev)) in vars.iter().zip(expect) {
            assert_eq!((n.as_str(), v.as_str()), (en, ev));
        }
        assert_eq!(unquote(&vars[1].1), "a, b");
    }

    #[test]
    fn parses_garbage_without_panicking() {
        for data in [
            &b"=,=\"\"\","[..],
            b"\"",
            b"a=\"unterminated",
            b",,,",
            b"\xff\xfe=1",
        ] {
            let _ = parse_varlist(data);
        }
        assert_eq!(
            parse_varlist(b"a=\"x"),
            vec![("a".to_owned(), "\"x".to_owned())]
        );
    }
}

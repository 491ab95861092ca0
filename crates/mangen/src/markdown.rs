//! The small Markdown subset sundial's docs use, as man(7) roff: `##`/`###` headings, paragraphs,
//! `*` lists, fenced code blocks, two-column tables (each row becomes a tagged paragraph),
//! `code`, **bold** and [links](…). Anything else is passed through as text, escaped, so the
//! page may look plain but is never malformed.

/// Converts `markdown` to roff body text (no `.TH`: the caller writes the title). The first
/// `#` heading is dropped; it is the page title.
pub(crate) fn to_roff(markdown: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    let mut in_list = false;
    let mut paragraph_open = false;
    // Right after a heading (and at the start, under the caller's heading) a paragraph needs
    // no `.PP` of its own; mandoc warns about one.
    let mut after_heading = true;
    for line in markdown.lines() {
        if line.starts_with("```") {
            if in_code {
                out.push_str(".fi\n.RE\n");
            } else {
                if !after_heading {
                    out.push_str(".PP\n");
                }
                out.push_str(".RS 4\n.nf\n");
            }
            after_heading = false;
            in_code = !in_code;
            paragraph_open = false;
            continue;
        }
        if in_code {
            out.push_str(&escape_line(&escape(line)));
            out.push('\n');
            continue;
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            paragraph_open = false;
            in_list = false;
            continue;
        }
        if let Some(title) = trimmed.strip_prefix("### ") {
            out.push_str(&format!(".SS \"{}\"\n", quote(&inline(title))));
            paragraph_open = false;
            after_heading = true;
            continue;
        }
        if let Some(title) = trimmed.strip_prefix("## ") {
            out.push_str(&format!(
                ".SH \"{}\"\n",
                quote(&inline(title).to_uppercase())
            ));
            paragraph_open = false;
            after_heading = true;
            continue;
        }
        if trimmed.starts_with("# ") {
            continue;
        }
        if trimmed.starts_with('|') {
            let cells = table_cells(trimmed);
            let separator = cells
                .iter()
                .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')));
            if separator || cells.len() < 2 || is_header(&cells) {
                continue;
            }
            out.push_str(".TP\n");
            out.push_str(&escape_line(&inline(&cells[0])));
            out.push('\n');
            out.push_str(&escape_line(&inline(&cells[1..].join(" "))));
            out.push('\n');
            paragraph_open = false;
            after_heading = false;
            continue;
        }
        if let Some(item) = trimmed.strip_prefix("* ") {
            out.push_str(".IP \\(bu 2\n");
            out.push_str(&escape_line(&inline(item)));
            out.push('\n');
            in_list = true;
            paragraph_open = true;
            after_heading = false;
            continue;
        }
        if !paragraph_open && !in_list && !after_heading {
            out.push_str(".PP\n");
        }
        paragraph_open = true;
        after_heading = false;
        out.push_str(&escape_line(&inline(trimmed.trim_start())));
        out.push('\n');
    }
    if in_code {
        out.push_str(".fi\n.RE\n");
    }
    out
}

/// A table's header row names its columns ("line", "what sundial does"); the man page's
/// tagged paragraphs need no header.
fn is_header(cells: &[String]) -> bool {
    cells.iter().all(|c| !c.contains('`')) && cells.len() >= 2 && {
        let first = cells[0].to_lowercase();
        matches!(
            first.as_str(),
            "line" | "directive" | "option" | "counter" | "flag" | "name" | "field"
        )
    }
}

/// The cells of a `| a | b |` row; `\|` stays a literal bar inside a cell.
fn table_cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_owned());
    cells
}

/// Inline markup: `code` and **bold** in bold, `[text](link)` as its text; the rest escaped.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`')
            && let Some(end) = after.find('`')
        {
            out.push_str("\\fB");
            out.push_str(&escape(&after[..end]));
            out.push_str("\\fR");
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix("**")
            && let Some(end) = after.find("**")
        {
            out.push_str("\\fB");
            out.push_str(&inline(&after[..end]));
            out.push_str("\\fR");
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix('[')
            && let Some(close) = after.find("](")
            && let Some(end) = after[close..].find(')')
        {
            out.push_str(&inline(&after[..close]));
            rest = &after[close + end + 1..];
        } else {
            let next = rest
                .char_indices()
                .skip(1)
                .find(|&(_, c)| matches!(c, '`' | '*' | '['))
                .map_or(rest.len(), |(i, _)| i);
            out.push_str(&escape(&rest[..next]));
            rest = &rest[next..];
        }
    }
    out
}

/// Escapes roff's special characters in text.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e").replace('-', "\\-")
}

/// A line starting with `.` or `'` would be read as a request.
fn escape_line(line: &str) -> String {
    if line.starts_with('.') || line.starts_with('\'') {
        format!("\\&{line}")
    } else {
        line.to_owned()
    }
}

/// Text inside a quoted macro argument.
fn quote(text: &str) -> String {
    text.replace('"', "\\(dq")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_paragraphs_and_lists_become_macros() {
        let roff = to_roff(
            "# Title\n\nSome `ntpd -g` text.\nMore.\n\n## Access control\n\n* one\n* two\n",
        );
        assert_eq!(
            roff,
            "Some \\fBntpd \\-g\\fR text.\nMore.\n.SH \"ACCESS CONTROL\"\n\
             .IP \\(bu 2\none\n.IP \\(bu 2\ntwo\n"
        );
    }

    #[test]
    fn table_rows_become_tagged_paragraphs() {
        let roff =
            to_roff("| line | what sundial does |\n|---|---|\n| `server A\\|B` | polls **it** |\n");
        assert_eq!(roff, ".TP\n\\fBserver A|B\\fR\npolls \\fBit\\fR\n");
    }

    #[test]
    fn code_blocks_are_kept_verbatim_and_leading_dots_escaped() {
        let roff = to_roff("```\n.hidden\na\\b\n```\n");
        assert_eq!(roff, ".RS 4\n.nf\n\\&.hidden\na\\eb\n.fi\n.RE\n");
    }

    #[test]
    fn links_keep_their_text() {
        assert_eq!(inline("see [the docs](docs/X.md) now"), "see the docs now");
    }
}

//! The Concordance/Relativity DAT load file, as Relativity documents its default delimiters:
//! UTF-8 with a byte-order mark, each field quoted with `þ` (U+00FE), fields separated by
//! ASCII 20 (DC4), records ended by CRLF, and a line break inside a value written as `®`
//! (U+00AE). The first record names the fields.

/// Field separator (ASCII 20).
pub const COLUMN: char = '\u{14}';
/// Quote (þ).
pub const QUOTE: char = '\u{fe}';
/// Stands for a line break inside a value (®).
pub const NEWLINE: char = '\u{ae}';

/// One value, quoted. The format has no escape: the quote, the separator and a literal `®` (read
/// back as a line break) are replaced by `?`, so no value is ever read as another (the CSV load
/// file beside it holds the true value), and line breaks become `®`.
fn field(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push(QUOTE);
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            QUOTE | COLUMN | NEWLINE => out.push('?'),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(NEWLINE);
            }
            '\n' => out.push(NEWLINE),
            c => out.push(c),
        }
    }
    out.push(QUOTE);
    out
}

/// A record.
pub fn record(values: &[String]) -> String {
    let mut line = values
        .iter()
        .map(|v| field(v))
        .collect::<Vec<_>>()
        .join(&COLUMN.to_string());
    line.push_str("\r\n");
    line
}

/// The byte-order mark a DAT starts with.
pub const BOM: &str = "\u{feff}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_and_never_break_the_record() {
        let r = record(&["a".into(), "two\r\nlines\nhere".into(), "þ\u{14}".into()]);
        assert_eq!(r, "þaþ\u{14}þtwo®lines®hereþ\u{14}þ??þ\r\n");
    }

    #[test]
    fn a_literal_registered_sign_is_never_read_back_as_a_line_break() {
        assert_eq!(record(&["Acme® Ltd".into()]), "þAcme? Ltdþ\r\n");
    }
}

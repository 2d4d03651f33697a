//! The Concordance/Relativity DAT load file: UTF-8 with a byte-order mark, each field quoted,
//! fields separated by one character, records ended by CRLF, a line break inside a value written
//! as one character; the first record names the fields.
//!
//! The format has no escape: a value holding the quote, the separator or the newline character
//! would be read back as something else. So the three characters are chosen per volume
//! ([`Delimiters::choose`]): Relativity's defaults — quote `þ` (254), column ASCII 20 (DC4),
//! newline `®` (174) — unless a value of the volume holds one of them; then the first
//! candidate no value holds takes its place, and the volume states what it used (bag-info
//! `Load-File-Delimiters`, the production log), in the decimal codes Relativity's import
//! dialog asks for. Every value is then read back exactly.

use std::collections::BTreeSet;

/// The three characters a DAT uses, as chosen for one volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiters {
    /// Separates fields (default ASCII 20).
    pub column: char,
    /// Surrounds every value (default `þ`, 254).
    pub quote: char,
    /// Stands for a line break inside a value (default `®`, 174).
    pub newline: char,
}

/// Relativity's defaults.
pub const DEFAULT: Delimiters = Delimiters {
    column: '\u{14}',
    quote: '\u{fe}',
    newline: '\u{ae}',
};

/// Candidates, defaults first: control characters for the column (never in a name or a
/// number), Latin-1 letters and signs for the quote and the newline (Relativity's dialog offers
/// codes 1 to 255).
const COLUMNS: &[char] = &[
    '\u{14}', '\u{13}', '\u{12}', '\u{11}', '\u{10}', '\u{0f}', '\u{0e}',
];
const QUOTES: &[char] = &['\u{fe}', '\u{de}', '\u{a6}', '\u{a7}', '\u{b6}', '\u{a4}'];
const NEWLINES: &[char] = &['\u{ae}', '\u{ac}', '\u{a9}', '\u{b0}', '\u{b1}', '\u{b7}'];

impl Delimiters {
    /// The delimiters for a volume whose values are `values`: each the first candidate no value
    /// holds (the defaults when none holds them). `None` when every candidate of a role occurs
    /// in some value.
    pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Delimiters> {
        let mut held: BTreeSet<char> = BTreeSet::new();
        for v in values {
            held.extend(
                v.chars()
                    .filter(|c| COLUMNS.contains(c) || QUOTES.contains(c) || NEWLINES.contains(c)),
            );
        }
        let free = |from: &[char]| from.iter().copied().find(|c| !held.contains(c));
        Some(Delimiters {
            column: free(COLUMNS)?,
            quote: free(QUOTES)?,
            newline: free(NEWLINES)?,
        })
    }

    /// As Relativity's import dialog names them: `column 020, quote 254, newline 174`.
    pub fn describe(&self) -> String {
        format!(
            "column {:03}, quote {:03}, newline {:03}",
            u32::from(self.column),
            u32::from(self.quote),
            u32::from(self.newline)
        )
    }

    /// One value, quoted; line breaks (CRLF, LF, CR) become the newline character. A value
    /// holding a delimiter cannot occur with delimiters from [`Delimiters::choose`]; should one,
    /// it is written as `?` rather than break the record.
    fn field(&self, v: &str) -> String {
        let mut out = String::with_capacity(v.len() + 2);
        out.push(self.quote);
        let mut chars = v.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    out.push(self.newline);
                }
                '\n' => out.push(self.newline),
                c if c == self.quote || c == self.column || c == self.newline => out.push('?'),
                c => out.push(c),
            }
        }
        out.push(self.quote);
        out
    }

    /// A record.
    pub fn record(&self, values: &[String]) -> String {
        let mut line = values
            .iter()
            .map(|v| self.field(v))
            .collect::<Vec<_>>()
            .join(&self.column.to_string());
        line.push_str("\r\n");
        line
    }
}

/// The byte-order mark a DAT starts with.
pub const BOM: &str = "\u{feff}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_and_line_breaks_become_the_newline_character() {
        let r = DEFAULT.record(&["a".into(), "two\r\nlines\nhere".into()]);
        assert_eq!(r, "þaþ\u{14}þtwo®lines®hereþ\r\n");
    }

    #[test]
    fn a_volume_without_reserved_characters_keeps_the_defaults() {
        assert_eq!(Delimiters::choose(["Acme Ltd", "x"]), Some(DEFAULT));
    }

    #[test]
    fn a_registered_sign_in_a_value_moves_the_newline_character() {
        let d = Delimiters::choose(["Acme® Ltd"]).unwrap();
        assert_eq!((d.column, d.quote, d.newline), ('\u{14}', 'þ', '¬'));
        assert_eq!(d.record(&["Acme® Ltd".into()]), "þAcme® Ltdþ\r\n");
        assert_eq!(d.describe(), "column 020, quote 254, newline 172");
    }

    #[test]
    fn a_thorn_and_dc4_in_values_move_the_quote_and_the_column() {
        let d = Delimiters::choose(["Þórr þ", "a\u{14}b"]).unwrap();
        assert_eq!((d.column, d.quote), ('\u{13}', '¦'));
        assert_eq!(
            d.record(&["Þórr þ".into(), "a\u{14}b".into()]),
            "¦Þórr þ¦\u{13}¦a\u{14}b¦\r\n"
        );
    }

    #[test]
    fn when_every_candidate_occurs_there_is_no_choice() {
        let all: String = NEWLINES.iter().collect();
        assert_eq!(Delimiters::choose([all.as_str()]), None);
    }
}

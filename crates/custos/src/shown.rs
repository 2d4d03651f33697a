//! The one way untrusted text is shown to a person: every string from an API, a package or a
//! file goes through [`text`] before it reaches a terminal, a log line for people or a
//! rendering, so that it cannot move the cursor, clear the screen, reorder what follows it
//! (bidi overrides) or start a line of its own (line and paragraph separators). What is escaped
//! is written as `\u{…}`, visibly; JSON output stays exact (serde escapes its own way).

use std::borrow::Cow;
use std::fmt::Write;

/// Whether `c` may change how the text around it is displayed: C0 and C1 controls and DEL,
/// the bidirectional formatting characters, and the Unicode line and paragraph separators.
pub fn is_hazard(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200e}' | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}')
}

/// `s`, with every [`is_hazard`] character written as `\u{hex}` (unchanged, and not copied,
/// when it holds none).
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hazard) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_hazard(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`text`] as a `Display`: `format!("{}", Shown(s))`.
#[derive(Clone, Copy, Debug)]
pub struct Shown<'a>(pub &'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&text(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_not_copied() {
        assert!(matches!(text("Jon Agent <jon@x>"), Cow::Borrowed(_)));
    }

    #[test]
    fn escape_sequences_are_shown_not_obeyed() {
        assert_eq!(
            text("\u{1b}[2J\u{1b}[HVERIFIED"),
            "\\u{1b}[2J\\u{1b}[HVERIFIED"
        );
        assert_eq!(text("a\rb\nc\u{7f}\u{9b}"), "a\\u{d}b\\u{a}c\\u{7f}\\u{9b}");
    }

    #[test]
    fn bidi_overrides_and_separators_are_shown() {
        assert_eq!(text("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(text("x\u{2028}Agent: hi"), "x\\u{2028}Agent: hi");
        assert_eq!(
            text("\u{2066}\u{2069}\u{200f}"),
            "\\u{2066}\\u{2069}\\u{200f}"
        );
    }
}

//! The report as one self-contained HTML page: inline CSS, an inline SVG chart, no script, and
//! a Content-Security-Policy that forbids every fetch, so opening it never touches a network
//! (and text from the API can never become markup: every value is escaped).

use std::fmt::Write;

use super::doc::{Block, Cell, colour};
use super::facts::Facts;

const STYLE: &str = r#"
@page { margin: 16mm 14mm; }
body { font: 10.5pt/1.45 "Helvetica Neue", Helvetica, Arial, sans-serif; color: #111; max-width: 180mm; margin: 1.5em auto; padding: 0 1em; }
h1 { font-size: 19pt; margin: 0 0 .4em; }
h2 { font-size: 13pt; margin: 1.6em 0 .5em; border-bottom: 1px solid #999; padding-bottom: .15em; break-after: avoid; }
p { margin: .45em 0; }
.note { border-left: 4px solid #c62828; background: #fbeaea; padding: .45em .7em; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; table-layout: fixed; }
th, td { border: 1px solid #bbb; padding: .25em .4em; text-align: left; vertical-align: top; }
th { background: #eee; }
tr { break-inside: avoid; }
table.pairs th { width: 30%; background: #f6f6f6; font-weight: normal; }
.mono, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 7.5pt; overflow-wrap: anywhere; word-break: break-all; }
pre { background: #f4f4f4; border: 1px solid #ddd; padding: .6em; white-space: pre-wrap; }
.blank { margin: 1.6em 0 .2em; border-bottom: 1px solid #111; width: 70%; height: 1.2em; }
.blank-label { font-size: 9pt; color: #444; }
svg { max-width: 100%; }
footer { margin-top: 2em; font-size: 8.5pt; color: #555; }
"#;

/// Escapes text for HTML content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn cell(c: &Cell) -> String {
    let text = c.text.split('\n').map(esc).collect::<Vec<_>>().join("<br>");
    if c.mono {
        format!("<span class=\"mono\">{text}</span>")
    } else {
        text
    }
}

/// The page.
pub(super) fn render(blocks: &[Block], f: &Facts) -> String {
    let mut h = String::new();
    let title = match blocks.first() {
        Some(Block::Title(t)) => t.clone(),
        _ => "Export report".into(),
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"{}\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(f.info("Bag-Software-Agent").unwrap_or("custos")),
        esc(&title)
    );
    for b in blocks {
        block(&mut h, b);
    }
    let _ = write!(
        h,
        "<footer>Export {} · written by {}</footer>\n</body>\n</html>\n",
        esc(f.info("Export-Id").unwrap_or("")),
        esc(f.info("Bag-Software-Agent").unwrap_or("custos"))
    );
    h
}

fn block(h: &mut String, b: &Block) {
    match b {
        Block::Title(t) => {
            let _ = writeln!(h, "<h1>{}</h1>", esc(t));
        }
        Block::Heading(t) => {
            let _ = writeln!(h, "<h2>{}</h2>", esc(t));
        }
        Block::Para(t) => {
            let _ = writeln!(h, "<p>{}</p>", esc(t));
        }
        Block::Note(t) => {
            let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(t));
        }
        Block::Pairs(p) => {
            h.push_str("<table class=\"pairs\">\n");
            for (k, v) in p {
                let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), cell(v));
            }
            h.push_str("</table>\n");
        }
        Block::Table { head, widths, rows } => {
            h.push_str("<table>\n<colgroup>");
            for w in widths {
                let _ = write!(h, "<col style=\"width:{:.0}%\">", w * 100.0);
            }
            h.push_str("</colgroup>\n<thead><tr>");
            for c in head {
                let _ = write!(h, "<th>{}</th>", esc(c));
            }
            h.push_str("</tr></thead>\n<tbody>\n");
            for r in rows {
                h.push_str("<tr>");
                for c in r {
                    let _ = write!(h, "<td>{}</td>", cell(c));
                }
                h.push_str("</tr>\n");
            }
            h.push_str("</tbody>\n</table>\n");
        }
        Block::Commands(lines) => {
            h.push_str("<pre>");
            for l in lines {
                let _ = writeln!(h, "{}", esc(l));
            }
            h.push_str("</pre>\n");
        }
        Block::Bars(bars) => bars_svg(h, bars),
        Block::Blank(label) => {
            let _ = writeln!(
                h,
                "<div class=\"blank\"></div><div class=\"blank-label\">{}</div>",
                esc(label)
            );
        }
    }
}

/// A horizontal bar per outcome, its count at the end.
fn bars_svg(h: &mut String, bars: &[(crate::model::Outcome, u64)]) {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let (row, label_w, bar_w) = (22.0, 90.0, 420.0);
    let height = row * bars.len() as f64 + 6.0;
    let _ = writeln!(
        h,
        "<svg role=\"img\" aria-label=\"Items per outcome\" width=\"600\" height=\"{height}\" viewBox=\"0 0 600 {height}\" xmlns=\"http://www.w3.org/2000/svg\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">"
    );
    for (i, (o, n)) in bars.iter().enumerate() {
        let y = 3.0 + row * i as f64;
        let w = (*n as f64 / max * bar_w).max(if *n > 0 { 1.5 } else { 0.0 });
        let (r, g, b) = colour(*o);
        let _ = writeln!(
            h,
            "<text x=\"0\" y=\"{:.1}\">{}</text><rect x=\"{label_w}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"#{r:02x}{g:02x}{b:02x}\"/><text x=\"{:.1}\" y=\"{:.1}\">{n}</text>",
            y + 14.0,
            o.as_str(),
            y + 2.0,
            row - 6.0,
            label_w + w + 6.0,
            y + 14.0
        );
    }
    h.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_values_is_text() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\"\u{7}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\\u{7}"
        );
    }
}

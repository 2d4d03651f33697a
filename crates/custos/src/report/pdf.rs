//! The report as PDF, laid out here on A4: the standard Helvetica and Courier faces (every PDF
//! reader has them, so nothing is embedded), text in WinAnsiEncoding (a character outside it,
//! rare in a report of ids and hashes, is shown as `?`; the HTML report has it), lines broken
//! by the faces' own widths. Each page's content is deflated (FlateDecode) as soon as the page
//! is full, so the report of a large export holds its pages compressed, not as drawn (the pages
//! drawn were the seal's peak: docs/benchmarks.md). The footer, which needs the page count, is
//! each page's second, small stream.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::doc::{Block, Cell, colour};
use super::facts::Facts;

const PAGE_W: f32 = 595.28;
const PAGE_H: f32 = 841.89;
const LEFT: f32 = 50.0;
const RIGHT: f32 = PAGE_W - 50.0;
const TOP: f32 = PAGE_H - 56.0;
const BOTTOM: f32 = 60.0;
const WIDTH: f32 = RIGHT - LEFT;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Face {
    Regular,
    Bold,
    Mono,
}

impl Face {
    fn name(self) -> Name<'static> {
        match self {
            Face::Regular => Name(b"F1"),
            Face::Bold => Name(b"F2"),
            Face::Mono => Name(b"F3"),
        }
    }

    /// Advance width of a WinAnsi byte, in 1/1000 em: Adobe's AFM metrics of the faces (checked
    /// against groff's copies of Helvetica and Helvetica-Bold; they agree on all 95 printable
    /// ASCII codes but ', ^, ` and ~, which groff's encoding maps to other glyphs).
    fn advance(self, b: u8) -> u16 {
        const HELV: [u16; 95] = [
            278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556,
            556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667,
            667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722,
            667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500,
            556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278,
            556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
        ];
        const BOLD: [u16; 95] = [
            278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556,
            556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722,
            722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, 667, 778, 722,
            667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556,
            611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611, 611, 389, 556, 333,
            611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
        ];
        match (self, b) {
            (Face::Mono, _) => 600,
            (Face::Regular, 32..=126) => HELV[usize::from(b - 32)],
            (Face::Bold, 32..=126) => BOLD[usize::from(b - 32)],
            (_, 0x85 | 0x97) => 1000,
            (_, 0x91 | 0x92 | 0xA0 | 0xB7) => 278,
            (_, 0x93 | 0x94) => 333,
            (_, 0x95) => 350,
            _ => 556,
        }
    }

    fn width(self, size: f32, text: &[u8]) -> f32 {
        text.iter()
            .map(|&b| f32::from(self.advance(b)))
            .sum::<f32>()
            * size
            / 1000.0
    }
}

/// Text in WinAnsiEncoding: ASCII and Latin-1 as themselves, the typographic marks Windows-1252
/// adds, `?` for the rest.
fn encode(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '\t' | '\r' => b' ',
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            // The report's own minus sign (U+2212) has no WinAnsi code: the en dash stands in.
            '–' | '−' => 0x96,
            '—' => 0x97,
            '™' => 0x99,
            _ => b'?',
        })
        .collect()
}

/// Breaks `text` into lines no wider than `max`: at spaces, and anywhere inside a word (a hash,
/// a URL) too long for a line of its own.
fn wrap(face: Face, size: f32, text: &str, max: f32) -> Vec<Vec<u8>> {
    text.split('\n')
        .flat_map(|t| wrap_line(face, size, t, max))
        .collect()
}

fn wrap_line(face: Face, size: f32, text: &str, max: f32) -> Vec<Vec<u8>> {
    let bytes = encode(text);
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in bytes.split(|&b| b == b' ') {
        let mut word = word;
        loop {
            let sep = usize::from(!line.is_empty());
            let candidate = face.width(size, &line) + face.width(size, &b" "[..sep]);
            if candidate + face.width(size, word) <= max {
                if sep == 1 {
                    line.push(b' ');
                }
                line.extend_from_slice(word);
                break;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            // A word longer than a line: as much as fits, then the rest on the next.
            let mut n = 0;
            while n < word.len() && face.width(size, &word[..=n]) <= max {
                n += 1;
            }
            let n = n.max(1);
            lines.push(word[..n].to_vec());
            word = &word[n..];
            if word.is_empty() {
                break;
            }
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// A page's content stream, deflated (zlib, as FlateDecode is).
fn deflate(content: Content) -> Vec<u8> {
    let raw = content.finish();
    let mut z = ZlibEncoder::new(Vec::with_capacity(raw.len() / 4), Compression::default());
    z.write_all(&raw).expect("writing to a Vec does not fail");
    z.finish().expect("writing to a Vec does not fail")
}

/// Pages being filled, top to bottom: those full, deflated, and the one being drawn.
struct Layout {
    pages: Vec<Vec<u8>>,
    page: Content,
    y: f32,
}

impl Layout {
    fn new() -> Layout {
        Layout {
            pages: Vec::new(),
            page: Content::new(),
            y: TOP,
        }
    }

    /// Starts a new page unless `h` points still fit on this one.
    fn ensure(&mut self, h: f32) -> bool {
        if self.y - h < BOTTOM && self.y < TOP {
            let full = std::mem::replace(&mut self.page, Content::new());
            self.pages.push(deflate(full));
            self.y = TOP;
            return true;
        }
        false
    }

    fn text(&mut self, x: f32, baseline: f32, face: Face, size: f32, s: &[u8]) {
        self.page.set_fill_rgb(0.07, 0.07, 0.07);
        self.page.begin_text();
        self.page.set_font(face.name(), size);
        self.page.next_line(x, baseline);
        self.page.show(Str(s));
        self.page.end_text();
    }

    fn rule(&mut self, x1: f32, x2: f32, y: f32, grey: f32, width: f32) {
        self.page.set_stroke_rgb(grey, grey, grey);
        self.page.set_line_width(width);
        self.page.move_to(x1, y);
        self.page.line_to(x2, y);
        self.page.stroke();
    }

    fn fill(&mut self, x: f32, y: f32, w: f32, h: f32, rgb: (f32, f32, f32)) {
        self.page.set_fill_rgb(rgb.0, rgb.1, rgb.2);
        self.page.rect(x, y, w, h);
        self.page.fill_nonzero();
    }

    /// A wrapped paragraph at `x`, `width` wide.
    fn para(&mut self, x: f32, width: f32, face: Face, size: f32, text: &str) {
        let lead = size * 1.35;
        for line in wrap(face, size, text, width) {
            self.ensure(lead);
            self.text(x, self.y - size, face, size, &line);
            self.y -= lead;
        }
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        self.pages.push(deflate(self.page));
        self.pages
    }
}

fn cell_face(c: &Cell) -> (Face, f32) {
    if c.mono {
        (Face::Mono, 7.5)
    } else {
        (Face::Regular, 9.0)
    }
}

/// A table row: cells wrapped into their columns, a rule under it; a page break before it when
/// it does not fit (then `head` is drawn again).
fn row(l: &mut Layout, cols: &[(f32, f32)], cells: &[(Face, f32, &str)], head: Option<&[String]>) {
    let wrapped: Vec<Vec<Vec<u8>>> = cells
        .iter()
        .zip(cols)
        .map(|((face, size, t), (_, w))| wrap(*face, *size, t, w - 8.0))
        .collect();
    let height = cells
        .iter()
        .zip(&wrapped)
        .map(|((_, size, _), lines)| lines.len() as f32 * size * 1.3)
        .fold(0.0, f32::max)
        + 6.0;
    if l.ensure(height.min(TOP - BOTTOM - 40.0))
        && let Some(head) = head
    {
        let hc: Vec<(Face, f32, &str)> =
            head.iter().map(|h| (Face::Bold, 8.5, h.as_str())).collect();
        row(l, cols, &hc, None);
    }
    let top = l.y;
    for ((face, size, _), (lines, (x, _))) in cells.iter().zip(wrapped.iter().zip(cols)) {
        let mut y = top - 3.0;
        for line in lines {
            if y - size < BOTTOM - 20.0 {
                break;
            }
            l.text(x + 4.0, y - size, *face, *size, line);
            y -= size * 1.3;
        }
    }
    l.y = top - height;
    l.rule(LEFT, RIGHT, l.y, 0.75, 0.5);
}

fn columns(widths: &[f32]) -> Vec<(f32, f32)> {
    let mut x = LEFT;
    widths
        .iter()
        .map(|w| {
            let c = (x, w * WIDTH);
            x += w * WIDTH;
            c
        })
        .collect()
}

fn block(l: &mut Layout, b: &Block) {
    match b {
        Block::Title(t) => {
            l.para(LEFT, WIDTH, Face::Bold, 18.0, t);
            l.y -= 6.0;
        }
        Block::Heading(t) => {
            l.ensure(70.0);
            l.y -= 12.0;
            l.para(LEFT, WIDTH, Face::Bold, 13.0, t);
            l.rule(LEFT, RIGHT, l.y + 2.0, 0.6, 0.6);
            l.y -= 6.0;
        }
        Block::Para(t) => {
            l.para(LEFT, WIDTH, Face::Regular, 10.0, t);
            l.y -= 5.0;
        }
        Block::Note(t) => {
            let top = l.y;
            l.para(LEFT + 10.0, WIDTH - 10.0, Face::Bold, 9.5, t);
            let bottom = l.y.min(top);
            if bottom < top {
                l.fill(LEFT, bottom, 3.0, top - bottom, (0.78, 0.16, 0.16));
            }
            l.y -= 6.0;
        }
        Block::Pairs(pairs) => {
            let cols = columns(&[0.38, 0.62]);
            for (k, v) in pairs {
                let (face, size) = cell_face(v);
                row(
                    l,
                    &cols,
                    &[(Face::Regular, 9.0, k), (face, size, &v.text)],
                    None,
                );
            }
            l.y -= 6.0;
        }
        Block::Table { head, widths, rows } => {
            let cols = columns(widths);
            let hc: Vec<(Face, f32, &str)> =
                head.iter().map(|h| (Face::Bold, 8.5, h.as_str())).collect();
            l.ensure(40.0);
            row(l, &cols, &hc, None);
            for r in rows {
                let cells: Vec<(Face, f32, &str)> = r
                    .iter()
                    .map(|c| {
                        let (f, s) = cell_face(c);
                        (f, s, c.text.as_str())
                    })
                    .collect();
                row(l, &cols, &cells, Some(head));
            }
            l.y -= 6.0;
        }
        Block::Commands(lines) => {
            for line in lines {
                let face = if line.starts_with('#') {
                    Face::Regular
                } else {
                    Face::Mono
                };
                l.para(LEFT + 6.0, WIDTH - 12.0, face, 8.0, line);
            }
            l.y -= 6.0;
        }
        Block::Bars(counts) => bars(l, counts),
        Block::Blank(label) => {
            l.ensure(40.0);
            l.y -= 26.0;
            l.rule(LEFT, LEFT + 320.0, l.y, 0.1, 0.7);
            l.text(LEFT, l.y - 10.0, Face::Regular, 8.0, &encode(label));
            l.y -= 16.0;
        }
    }
}

/// A bar per outcome, its count at the end.
fn bars(l: &mut Layout, bars: &[(crate::model::Outcome, u64)]) {
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f32;
    l.ensure(bars.len() as f32 * 17.0 + 8.0);
    for (o, n) in bars {
        let w = (*n as f32 / max * 300.0).max(if *n > 0 { 1.5 } else { 0.0 });
        let (r, g, b) = colour(*o);
        let y = l.y - 13.0;
        l.text(LEFT, y + 2.0, Face::Regular, 9.0, o.as_str().as_bytes());
        let rgb = (
            f32::from(r) / 255.0,
            f32::from(g) / 255.0,
            f32::from(b) / 255.0,
        );
        l.fill(LEFT + 75.0, y, w, 11.0, rgb);
        l.text(
            LEFT + 81.0 + w,
            y + 2.0,
            Face::Regular,
            9.0,
            n.to_string().as_bytes(),
        );
        l.y -= 17.0;
    }
    l.y -= 6.0;
}

/// The document.
pub(super) fn render(blocks: &[Block], f: &Facts) -> Vec<u8> {
    let mut l = Layout::new();
    for b in blocks {
        block(&mut l, b);
    }
    let pages = l.finish();
    let n = pages.len();
    let footer = format!("Export {}", f.info("Export-Id").unwrap_or(""));

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let info = Ref::new(3);
    let fonts = [
        (Ref::new(4), Face::Regular, &b"Helvetica"[..]),
        (Ref::new(5), Face::Bold, b"Helvetica-Bold"),
        (Ref::new(6), Face::Mono, b"Courier"),
    ];
    // Each page: its object, its body's stream, its footer's stream.
    let page_ids: Vec<Ref> = (0..n).map(|i| Ref::new(7 + 3 * i as i32)).collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(n as i32);
    let title = format!(
        "Export report: {}",
        f.info("External-Identifier").unwrap_or("")
    );
    pdf.document_info(info)
        .title(TextStr(&title))
        .creator(TextStr(f.info("Bag-Software-Agent").unwrap_or("custos")));
    for (id, _, base) in fonts {
        pdf.type1_font(id)
            .base_font(Name(base))
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    for (i, body) in pages.into_iter().enumerate() {
        let id = page_ids[i];
        let (body_id, footer_id) = (Ref::new(id.get() + 1), Ref::new(id.get() + 2));
        let mut page = pdf.page(id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H));
        page.parent(tree);
        page.contents_array([body_id, footer_id]);
        let mut res = page.resources();
        let mut fs = res.fonts();
        for (fid, face, _) in fonts {
            fs.pair(face.name(), fid);
        }
        fs.finish();
        res.finish();
        page.finish();
        pdf.stream(body_id, &body).filter(Filter::FlateDecode);
        let mut tail = Layout::new();
        tail.text(LEFT, 32.0, Face::Regular, 8.0, &encode(&footer));
        let num = encode(&format!("page {} of {n}", i + 1));
        let w = Face::Regular.width(8.0, &num);
        tail.text(RIGHT - w, 32.0, Face::Regular, 8.0, &num);
        pdf.stream(footer_id, &tail.page.finish());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fit_and_long_words_break() {
        let hash = "a".repeat(200);
        for (face, text) in [
            (Face::Regular, format!("word {hash} end")),
            (Face::Mono, hash.clone()),
        ] {
            let lines = wrap(face, 9.0, &text, 200.0);
            assert!(lines.len() > 2);
            assert!(lines.iter().all(|l| face.width(9.0, l) <= 200.0));
            let joined: Vec<u8> = lines.concat();
            assert_eq!(
                joined.iter().filter(|&&b| b == b'a').count(),
                200,
                "nothing lost"
            );
        }
    }

    /// The streams of `pdf` that follow `/Filter /FlateDecode`, inflated, and those that do not.
    fn streams(pdf: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        use std::io::Read;
        let (mut deflated, mut plain) = (Vec::new(), Vec::new());
        let mut rest = pdf;
        while let Some(at) = rest.windows(7).position(|w| w == b"stream\n") {
            let dict_start = rest[..at].windows(2).rposition(|w| w == b"<<").unwrap();
            let flate = rest[dict_start..at]
                .windows(12)
                .any(|w| w == b"/FlateDecode");
            let body = &rest[at + 7..];
            let end = body.windows(10).position(|w| w == b"\nendstream").unwrap();
            if flate {
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(&body[..end])
                    .read_to_end(&mut out)
                    .expect("a FlateDecode stream inflates");
                deflated.push(out);
            } else {
                plain.push(body[..end].to_vec());
            }
            rest = &body[end + 10..];
        }
        (deflated, plain)
    }

    #[test]
    fn page_bodies_are_deflated_and_each_footer_counts_the_pages() {
        let rows: Vec<Vec<Cell>> = (0..10_000)
            .map(|i| {
                vec![
                    Cell {
                        text: format!("recording-{i:08}"),
                        mono: true,
                    },
                    Cell {
                        text: "Corrupted: the audio is 4.2 s shorter than its metadata states"
                            .into(),
                        mono: false,
                    },
                ]
            })
            .collect();
        let blocks = [
            Block::Title("Export report: M-1".into()),
            Block::Table {
                head: vec!["Recording".into(), "Why".into()],
                widths: vec![0.4, 0.6],
                rows,
            },
        ];
        let pdf = render(&blocks, &Facts::default());
        let (bodies, footers) = streams(&pdf);
        let n = bodies.len();
        assert!(n > 100, "10,000 rows on {n} pages");
        assert_eq!(footers.len(), n, "one footer stream a page");
        let drawn: usize = bodies.iter().map(Vec::len).sum();
        assert!(
            bodies
                .iter()
                .all(|b| b.windows(15).any(|w| w == b"(recording-0000")),
            "every page body holds rows"
        );
        for (i, f) in footers.iter().enumerate() {
            let want = format!("(page {} of {n})", i + 1);
            assert!(
                f.windows(want.len()).any(|w| w == want.as_bytes()),
                "page {}'s footer: {}",
                i + 1,
                String::from_utf8_lossy(f)
            );
        }
        assert!(
            pdf.len() * 4 < drawn,
            "{} bytes written for {drawn} drawn",
            pdf.len()
        );
    }

    #[test]
    fn text_outside_winansi_is_a_question_mark() {
        assert_eq!(encode("Zoë – 李"), b"Zo\xeb \x96 ?");
    }

    #[test]
    fn the_reports_minus_sign_is_an_en_dash_not_a_question_mark() {
        assert_eq!(encode("− failed"), b"\x96 failed");
    }
}

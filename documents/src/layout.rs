//! Typesetting, pure: blocks of text and tables become lines, lines become A4 pages of placed
//! text and rules. Widths come from a [`Measure`], so the rules are tested without a font.
//!
//! Chinese text breaks between any two characters, except that a line never starts with
//! closing punctuation (，。、） …) nor ends with opening punctuation (（《 …); a run of Latin
//! letters, digits and ASCII signs is a word that breaks at spaces, or anywhere when it is
//! wider than a line (a SHA-256 in a narrow column). Justified lines spread their characters
//! to both margins, as printed Chinese does; a paragraph's last line does not.

/// A4 in PDF points (1/72 inch).
pub const A4: (f32, f32) = (595.28, 841.89);

/// The two faces a document uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FontId {
    /// Body text.
    Regular,
    /// Titles, headings, table headers.
    Bold,
}

/// How wide a character is, in ems of its font.
pub trait Measure {
    /// The advance of `c` in `font`, in ems.
    fn advance(&self, font: FontId, c: char) -> f32;
}

/// A kind of text: face, size (points) and line height (a multiple of the size).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    /// The face.
    pub font: FontId,
    /// Size in points.
    pub size: f32,
    /// Line height as a multiple of the size.
    pub leading: f32,
}

impl Style {
    /// A document's title (调解协议书).
    pub const TITLE: Style = Style {
        font: FontId::Bold,
        size: 22.0,
        leading: 1.6,
    };
    /// The issuing court's name above the title.
    pub const ISSUER: Style = Style {
        font: FontId::Bold,
        size: 15.0,
        leading: 1.6,
    };
    /// A section heading.
    pub const HEADING: Style = Style {
        font: FontId::Bold,
        size: 12.5,
        leading: 1.8,
    };
    /// Body text.
    pub const BODY: Style = Style {
        font: FontId::Regular,
        size: 12.0,
        leading: 1.75,
    };
    /// Tables and notes.
    pub const SMALL: Style = Style {
        font: FontId::Regular,
        size: 10.0,
        leading: 1.5,
    };
    /// A table's header row.
    pub const SMALL_BOLD: Style = Style {
        font: FontId::Bold,
        size: 10.0,
        leading: 1.5,
    };

    fn line_height(self) -> f32 {
        self.size * self.leading
    }
}

/// Where a line sits between the margins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Flush left.
    Left,
    /// Centred.
    Center,
    /// Flush right.
    Right,
    /// Spread to both margins (but the last line).
    Justify,
}

/// What a document is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// Text: each `\n` starts a paragraph; `indent` ems before each paragraph's first line.
    Text {
        /// The text.
        text: String,
        /// Its kind.
        style: Style,
        /// Where lines sit.
        align: Align,
        /// First-line indent, in ems (2 for Chinese body text).
        indent: f32,
    },
    /// A table with borders: column widths as parts of the text width, an optional header
    /// row, then rows of cells.
    Table {
        /// Column widths (any unit: they are shares of the width).
        columns: Vec<f32>,
        /// The header row, if any.
        header: Option<Vec<String>>,
        /// The rows.
        rows: Vec<Vec<String>>,
    },
    /// Vertical space, in points.
    Gap(f32),
}

/// Something placed on a page. `y` is measured down from the top of the page.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Text whose baseline starts at (`x`, `y`); `spacing` is added after each character.
    Text {
        /// Left edge.
        x: f32,
        /// Baseline.
        y: f32,
        /// The face.
        font: FontId,
        /// Size in points.
        size: f32,
        /// The text.
        text: String,
        /// Extra space after each character (justification), in points.
        spacing: f32,
    },
    /// A straight rule.
    Rule {
        /// From.
        from: (f32, f32),
        /// To.
        to: (f32, f32),
    },
}

/// The page's margins, in points.
#[derive(Debug, Clone, Copy)]
pub struct Margins {
    /// Top.
    pub top: f32,
    /// Bottom (the footer sits below it).
    pub bottom: f32,
    /// Left.
    pub left: f32,
    /// Right.
    pub right: f32,
}

impl Margins {
    /// Official documents' margins (about 3.7 cm top, 3.5 bottom, 2.8 left, 2.6 right).
    pub const DOCUMENT: Margins = Margins {
        top: 90.0,
        bottom: 90.0,
        left: 79.0,
        right: 74.0,
    };
}

/// One line of text, ready to place.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its characters.
    pub text: String,
    /// Its natural width in points.
    pub width: f32,
    /// It ends a paragraph (never justified).
    pub last: bool,
}

/// Closing punctuation: never at the start of a line.
fn closes(c: char) -> bool {
    "，。、；：？！）》」』】〕”’%‰,.;:!?)]}·…—".contains(c)
}

/// Opening punctuation: never at the end of a line.
fn opens(c: char) -> bool {
    "（《「『【〔“‘([{".contains(c)
}

/// Characters a line may break around: ideographs, kana, fullwidth forms and CJK punctuation.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{2E80}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}' | '\u{FE30}'..='\u{FE4F}'
        | '\u{FF00}'..='\u{FFEF}' | '\u{20000}'..='\u{3FFFF}')
}

/// Breaks one paragraph (no `\n`) into lines of at most `width` points; the first line has
/// `indent` points less.
pub fn break_lines(
    text: &str,
    width: f32,
    indent: f32,
    style: Style,
    measure: &dyn Measure,
) -> Vec<Line> {
    let advance = |c: char| measure.advance(style.font, c) * style.size;
    // Units that must stay together: a character, a word, punctuation glued to its neighbour.
    let chars: Vec<char> = text.chars().collect();
    let mut units: Vec<String> = Vec::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let breakable = match prev {
            None => true,
            Some(p) => {
                let latin_run =
                    !is_cjk(p) && !is_cjk(c) && !p.is_whitespace() && !c.is_whitespace();
                !latin_run && !closes(c) && !opens(p)
            }
        };
        match units.last_mut() {
            Some(unit) if !breakable => unit.push(c),
            _ => units.push(c.to_string()),
        }
    }
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut used = 0.0;
    let room = |lines: &Vec<Line>| {
        if lines.is_empty() {
            width - indent
        } else {
            width
        }
    };
    for unit in units {
        let unit_width: f32 = unit.chars().map(advance).sum();
        let blank = unit.chars().all(char::is_whitespace);
        if current.is_empty() && blank {
            continue; // no space at a line's start
        }
        if used + unit_width <= room(&lines) + 0.01 {
            current.push_str(&unit);
            used += unit_width;
            continue;
        }
        if blank {
            // A space where the line is full: the line ends here, the space is dropped.
            push_line(&mut lines, &mut current, &mut used, advance);
            continue;
        }
        if !current.is_empty() {
            push_line(&mut lines, &mut current, &mut used, advance);
        }
        // A unit wider than a whole line (a hash, a long number) breaks anywhere.
        for c in unit.chars() {
            let w = advance(c);
            if used + w > room(&lines) + 0.01 && !current.is_empty() {
                push_line(&mut lines, &mut current, &mut used, advance);
            }
            current.push(c);
            used += w;
        }
    }
    push_line(&mut lines, &mut current, &mut used, advance);
    if let Some(last) = lines.last_mut() {
        last.last = true;
    }
    if lines.is_empty() {
        lines.push(Line {
            text: String::new(),
            width: 0.0,
            last: true,
        });
    }
    lines
}

fn push_line(
    lines: &mut Vec<Line>,
    current: &mut String,
    used: &mut f32,
    advance: impl Fn(char) -> f32,
) {
    let text = current.trim_end().to_string();
    if !text.is_empty() {
        let width = text.chars().map(advance).sum();
        lines.push(Line {
            text,
            width,
            last: false,
        });
    }
    current.clear();
    *used = 0.0;
}

/// Lays `blocks` out on A4 pages within `margins`.
pub fn lay_out(blocks: &[Block], margins: Margins, measure: &dyn Measure) -> Vec<Vec<Op>> {
    let mut pages = Pager::new(margins);
    for block in blocks {
        match block {
            Block::Gap(points) => pages.y += points,
            Block::Text {
                text,
                style,
                align,
                indent,
            } => {
                for paragraph in text.split('\n') {
                    let indent = indent * style.size;
                    let lines = break_lines(paragraph, pages.width, indent, *style, measure);
                    for (i, line) in lines.iter().enumerate() {
                        let first = if i == 0 { indent } else { 0.0 };
                        pages.text_line(line, *style, *align, first);
                    }
                }
            }
            Block::Table {
                columns,
                header,
                rows,
            } => {
                let total: f32 = columns.iter().sum();
                let widths: Vec<f32> = columns.iter().map(|c| c / total * pages.width).collect();
                if let Some(header) = header {
                    pages.table_row(&widths, header, Style::SMALL_BOLD, measure);
                }
                for row in rows {
                    pages.table_row(&widths, row, Style::SMALL, measure);
                }
            }
        }
    }
    pages.finish()
}

/// The pages so far and where the next line goes.
struct Pager {
    margins: Margins,
    width: f32,
    done: Vec<Vec<Op>>,
    page: Vec<Op>,
    /// The top of the next line, down from the page's top.
    y: f32,
}

impl Pager {
    fn new(margins: Margins) -> Pager {
        Pager {
            margins,
            width: A4.0 - margins.left - margins.right,
            done: Vec::new(),
            page: Vec::new(),
            y: margins.top,
        }
    }

    fn bottom(&self) -> f32 {
        A4.1 - self.margins.bottom
    }

    /// Starts a new page if `height` more does not fit on this one (and this one has
    /// something on it).
    fn room_for(&mut self, height: f32) {
        if self.y + height > self.bottom() && !self.page.is_empty() {
            self.done.push(std::mem::take(&mut self.page));
            self.y = self.margins.top;
        }
    }

    fn text_line(&mut self, line: &Line, style: Style, align: Align, indent: f32) {
        let height = style.line_height();
        self.room_for(height);
        let left = self.margins.left;
        let chars = line.text.chars().count();
        let (x, spacing) = match align {
            Align::Left => (left + indent, 0.0),
            Align::Center => (left + (self.width - line.width) / 2.0, 0.0),
            Align::Right => (left + self.width - line.width, 0.0),
            Align::Justify if !line.last && chars > 1 => {
                let extra = (self.width - indent - line.width) / (chars - 1) as f32;
                // A line of a few long words is not stretched into gaps.
                (
                    left + indent,
                    if extra < style.size {
                        extra.max(0.0)
                    } else {
                        0.0
                    },
                )
            }
            Align::Justify => (left + indent, 0.0),
        };
        self.page.push(Op::Text {
            x,
            y: baseline(self.y, height, style.size),
            font: style.font,
            size: style.size,
            text: line.text.clone(),
            spacing,
        });
        self.y += height;
    }

    fn table_row(&mut self, widths: &[f32], cells: &[String], style: Style, m: &dyn Measure) {
        const PAD: f32 = 4.0;
        let lh = style.line_height();
        let wrapped: Vec<Vec<Line>> = widths
            .iter()
            .zip(
                cells
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::repeat("")),
            )
            .map(|(w, cell)| {
                cell.split('\n')
                    .flat_map(|p| break_lines(p, w - 2.0 * PAD, 0.0, style, m))
                    .collect()
            })
            .collect();
        let lines = wrapped.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let height = lines as f32 * lh + 2.0 * PAD;
        self.room_for(height);
        let (top, left) = (self.y, self.margins.left);
        let right = left + widths.iter().sum::<f32>();
        self.page.push(Op::Rule {
            from: (left, top),
            to: (right, top),
        });
        self.page.push(Op::Rule {
            from: (left, top + height),
            to: (right, top + height),
        });
        let mut x = left;
        for (w, cell) in widths.iter().zip(&wrapped) {
            self.page.push(Op::Rule {
                from: (x, top),
                to: (x, top + height),
            });
            for (i, line) in cell.iter().enumerate() {
                self.page.push(Op::Text {
                    x: x + PAD,
                    y: baseline(top + PAD + i as f32 * lh, lh, style.size),
                    font: style.font,
                    size: style.size,
                    text: line.text.clone(),
                    spacing: 0.0,
                });
            }
            x += w;
        }
        self.page.push(Op::Rule {
            from: (right, top),
            to: (right, top + height),
        });
        self.y += height;
    }

    fn finish(mut self) -> Vec<Vec<Op>> {
        if !self.page.is_empty() || self.done.is_empty() {
            self.done.push(self.page);
        }
        self.done
    }
}

/// The baseline of a line whose box starts at `top`: the glyphs centred in the line's height
/// (CJK glyphs sit about 0.88 em above the baseline and 0.12 below).
fn baseline(top: f32, height: f32, size: f32) -> f32 {
    top + height / 2.0 + size * 0.38
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every CJK character one em, everything else half an em.
    struct Fixed;

    impl Measure for Fixed {
        fn advance(&self, _: FontId, c: char) -> f32 {
            if is_cjk(c) { 1.0 } else { 0.5 }
        }
    }

    const TEN: Style = Style {
        font: FontId::Regular,
        size: 10.0,
        leading: 1.5,
    };

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn chinese_breaks_anywhere_but_never_before_closing_or_after_opening_punctuation() {
        // Five characters to a line (50 points at 10 points each).
        let lines = break_lines("甲付乙一万元。乙收讫（见收据）。", 50.0, 0.0, TEN, &Fixed);
        assert_eq!(
            texts(&lines),
            ["甲付乙一万", "元。乙收讫", "（见收", "据）。"]
        );
        assert!(lines.iter().all(|l| !l.text.starts_with(closes)));
        assert!(lines.iter().all(|l| !l.text.ends_with(opens)));
        assert!(lines.last().is_some_and(|l| l.last) && !lines[0].last);
        // A first-line indent of two characters.
        let lines = break_lines("一二三四五六七八", 50.0, 20.0, TEN, &Fixed);
        assert_eq!(texts(&lines), ["一二三", "四五六七八"]);
    }

    #[test]
    fn latin_words_break_at_spaces_and_a_hash_wider_than_a_line_breaks_anywhere() {
        let lines = break_lines("abc defg hi", 35.0, 0.0, TEN, &Fixed);
        assert_eq!(texts(&lines), ["abc", "defg hi"]);
        let hash = "0123456789abcdef".repeat(4);
        let lines = break_lines(&format!("SHA-256：{hash}"), 100.0, 0.0, TEN, &Fixed);
        assert_eq!(texts(&lines)[0], "SHA-256：");
        let joined: String = lines[1..].iter().map(|l| l.text.as_str()).collect();
        assert_eq!(joined, hash, "nothing of the hash is lost");
        assert!(lines.iter().all(|l| l.width <= 100.01));
        // Digits beside Chinese: the number stays whole.
        let lines = break_lines("人民币40000元", 45.0, 0.0, TEN, &Fixed);
        assert_eq!(texts(&lines), ["人民币", "40000元"]);
    }

    #[test]
    fn pages_fill_and_break_and_justified_lines_reach_the_right_margin() {
        let margins = Margins {
            top: 100.0,
            bottom: 100.0,
            left: 50.0,
            right: 45.28,
        };
        let text = "调".repeat(2000);
        let pages = lay_out(
            &[Block::Text {
                text,
                style: TEN,
                align: Align::Justify,
                indent: 2.0,
            }],
            margins,
            &Fixed,
        );
        // 500 points wide: 50 characters a line; 641.89 points high: 42 lines a page.
        let lines: usize = pages.iter().map(Vec::len).sum();
        assert_eq!(lines, 41);
        assert_eq!(pages.len(), 1);
        for op in pages.iter().flatten() {
            let Op::Text { y, .. } = op else { continue };
            assert!(*y > 100.0 && *y < A4.1 - 100.0, "{y}");
        }
        let long = "调".repeat(6000);
        let pages = lay_out(
            &[Block::Text {
                text: long,
                style: TEN,
                align: Align::Left,
                indent: 0.0,
            }],
            margins,
            &Fixed,
        );
        assert_eq!(pages.len(), 3, "120 lines over pages of 42");
    }

    #[test]
    fn a_table_row_that_does_not_fit_moves_to_the_next_page_whole() {
        let margins = Margins {
            top: 700.0,
            bottom: 100.0,
            left: 50.0,
            right: 45.28,
        };
        let row = vec!["张三".to_string(), "申请人".repeat(30)];
        let pages = lay_out(
            &[Block::Table {
                columns: vec![1.0, 3.0],
                header: None,
                rows: vec![row.clone(), row],
            }],
            margins,
            &Fixed,
        );
        assert_eq!(pages.len(), 2);
        let names = |page: &Vec<Op>| {
            page.iter()
                .filter(|op| matches!(op, Op::Text { text, .. } if text == "张三"))
                .count()
        };
        assert_eq!((names(&pages[0]), names(&pages[1])), (1, 1));
    }
}

//! Laid-out pages to a PDF file: each page's text and rules in one content stream, the two
//! faces embedded as subsets, a footer "第 i 页 共 n 页" on every page, and the document's
//! title in its information dictionary. Nothing varies between runs (no clock is read), so
//! the same document gives the same bytes.

use crate::font::{Embedding, Face, FontError};
use crate::layout::{A4, FontId, Measure, Op};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// The regular and bold faces a document is set in.
#[derive(Debug, Clone)]
pub struct Fonts {
    /// Body text.
    pub regular: Face,
    /// Titles and headings.
    pub bold: Face,
}

impl Fonts {
    fn face(&self, font: FontId) -> &Face {
        match font {
            FontId::Regular => &self.regular,
            FontId::Bold => &self.bold,
        }
    }
}

impl Measure for Fonts {
    fn advance(&self, font: FontId, c: char) -> f32 {
        self.face(font).glyph(c).1
    }
}

/// A finished document.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Its pages.
    pub pages: usize,
    /// Characters the faces had no glyph for (shown as a box): none in a good document.
    pub missing: Vec<char>,
}

/// Writes `pages` (with footers added) as a PDF titled `title`.
pub(crate) fn write(
    fonts: &Fonts,
    title: &str,
    mut pages: Vec<Vec<Op>>,
) -> Result<Rendered, FontError> {
    let count = pages.len();
    for (i, ops) in pages.iter_mut().enumerate() {
        let footer = format!("第 {} 页 共 {} 页", i + 1, count);
        let width: f32 = footer
            .chars()
            .map(|c| fonts.advance(FontId::Regular, c))
            .sum::<f32>()
            * 9.0;
        ops.push(Op::Text {
            x: (A4.0 - width) / 2.0,
            y: A4.1 - 50.0,
            font: FontId::Regular,
            size: 9.0,
            text: footer,
            spacing: 0.0,
        });
    }

    let mut pdf = Pdf::new();
    let mut next = Ref::new(1);
    let (catalog, tree, info, regular, bold) = (
        next.bump(),
        next.bump(),
        next.bump(),
        next.bump(),
        next.bump(),
    );
    let mut embedded = [
        Embedding::new(fonts.regular.clone()),
        Embedding::new(fonts.bold.clone()),
    ];
    let mut page_refs = Vec::with_capacity(count);
    for ops in &pages {
        let (page, content) = (next.bump(), next.bump());
        page_refs.push(page);
        let mut c = Content::new();
        for op in ops {
            match op {
                Op::Text {
                    x,
                    y,
                    font,
                    size,
                    text,
                    spacing,
                } => {
                    let (name, embedding) = match font {
                        FontId::Regular => (Name(b"F0"), &mut embedded[0]),
                        FontId::Bold => (Name(b"F1"), &mut embedded[1]),
                    };
                    let codes = embedding.encode(text);
                    c.begin_text();
                    c.set_font(name, *size);
                    c.set_char_spacing(*spacing);
                    // PDF's y grows upwards from the page's foot.
                    c.set_text_matrix([1.0, 0.0, 0.0, 1.0, *x, A4.1 - *y]);
                    c.show(Str(&codes));
                    c.end_text();
                }
                Op::Rule { from, to } => {
                    c.set_line_width(0.6);
                    c.move_to(from.0, A4.1 - from.1);
                    c.line_to(to.0, A4.1 - to.1);
                    c.stroke();
                }
            }
        }
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&c.finish(), 6);
        pdf.stream(content, &packed).filter(Filter::FlateDecode);
        let mut p = pdf.page(page);
        p.media_box(Rect::new(0.0, 0.0, A4.0, A4.1))
            .parent(tree)
            .contents(content);
        p.resources()
            .fonts()
            .pair(Name(b"F0"), regular)
            .pair(Name(b"F1"), bold);
        p.finish();
    }
    pdf.pages(tree)
        .kids(page_refs.iter().copied())
        .count(count as i32);
    pdf.catalog(catalog).pages(tree);
    pdf.document_info(info)
        .title(TextStr(title))
        .producer(TextStr("tiaojie"));
    embedded[0].write(&mut pdf, &mut next, regular)?;
    embedded[1].write(&mut pdf, &mut next, bold)?;
    let mut missing: Vec<char> = embedded.iter().flat_map(|e| e.missing.clone()).collect();
    missing.sort_unstable();
    missing.dedup();
    Ok(Rendered {
        bytes: pdf.finish(),
        pages: count,
        missing,
    })
}

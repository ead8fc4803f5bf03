//! tiaojie's court documents as PDF files: A4, set in a Chinese serif face embedded as a
//! subset, with the text searchable and copyable (a test reads it back with `pdftotext`).
//!
//! Map of the crate (arrows point down):
//! - [`agreement`], [`minutes`], [`ruling`]: the 调解协议书, the 调解笔录 and the 民事裁定书,
//!   each made from plain data (names and words already chosen by the caller) into blocks.
//! - [`time`]: dates and times in China time as the documents write them.
//! - [`layout`]: blocks → lines → pages, pure (Chinese line breaking, justification, tables,
//!   page breaks), tested without a font.
//! - `pdf`: pages → the file (content streams, the fonts, "第 i 页 共 n 页").
//! - [`font`]: a face from a font file, and the subset of it a document embeds.
//!
//! The crate knows no cases, roles or storage: the server and the court bridge give it what a
//! document says.

pub mod agreement;
pub mod font;
pub mod layout;
pub mod minutes;
mod pdf;
pub mod ruling;
pub mod time;

pub use font::{Face, FontError};
pub use pdf::{Fonts, Rendered};

use std::path::{Path, PathBuf};

/// Where fonts are looked for when none is configured, best first: a Song-style serif as
/// official documents use (Noto Serif CJK SC, the Simplified Chinese face of Debian's
/// `fonts-noto-cjk` collections), then AR PL UMing, then WenQuanYi Micro Hei (sans).
pub const SYSTEM_FONTS: &[(&str, &str, u32)] = &[
    (
        "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
        "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
        2,
    ),
    (
        "/usr/share/fonts/truetype/arphic/uming.ttc",
        "/usr/share/fonts/truetype/arphic/uming.ttc",
        0,
    ),
    (
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
        0,
    ),
];

/// A font to use: a file and the face in it (a collection holds several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FontSpec {
    /// The font file.
    pub path: PathBuf,
    /// The face in it.
    pub index: u32,
}

impl FontSpec {
    /// Reads `path` or `path:index`.
    pub fn parse(text: &str) -> FontSpec {
        match text.rsplit_once(':') {
            Some((path, index)) if index.parse::<u32>().is_ok() => FontSpec {
                path: path.into(),
                index: index.parse().unwrap_or(0),
            },
            _ => FontSpec {
                path: text.into(),
                index: 0,
            },
        }
    }
}

impl Fonts {
    /// The faces `regular` and `bold` (the regular one again for bold if none is given).
    pub fn load(regular: &FontSpec, bold: Option<&FontSpec>) -> Result<Fonts, FontError> {
        let regular_face = Face::load(&regular.path, regular.index)?;
        let bold = match bold {
            Some(b) => Face::load(&b.path, b.index)?,
            None => regular_face.clone(),
        };
        Ok(Fonts {
            regular: regular_face,
            bold,
        })
    }

    /// The first of [`SYSTEM_FONTS`] installed here.
    pub fn system() -> Result<Fonts, FontError> {
        let mut last = None;
        for (regular, bold, index) in SYSTEM_FONTS {
            if !Path::new(regular).exists() {
                continue;
            }
            let spec = |path: &str| FontSpec {
                path: path.into(),
                index: *index,
            };
            match Fonts::load(&spec(regular), Some(&spec(bold))) {
                Ok(fonts) => return Ok(fonts),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| FontError::Read {
            path: SYSTEM_FONTS[0].0.into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no Chinese font installed (Debian: fonts-noto-cjk)",
            ),
        }))
    }
}

/// Sets `blocks` as a PDF titled `title`.
fn render(fonts: &Fonts, title: &str, blocks: &[layout::Block]) -> Result<Rendered, FontError> {
    let pages = layout::lay_out(blocks, layout::Margins::DOCUMENT, fonts);
    pdf::write(fonts, title, pages)
}

/// The 调解协议书 as a PDF.
pub fn render_agreement(fonts: &Fonts, a: &agreement::Agreement) -> Result<Rendered, FontError> {
    render(
        fonts,
        &format!("调解协议书 {}", a.case_number),
        &agreement::blocks(a),
    )
}

/// The 调解笔录 as a PDF.
pub fn render_minutes(fonts: &Fonts, m: &minutes::Minutes) -> Result<Rendered, FontError> {
    render(
        fonts,
        &format!("调解笔录 {}", m.case_number),
        &minutes::blocks(m),
    )
}

/// The 民事裁定书 as a PDF.
pub fn render_ruling(fonts: &Fonts, r: &ruling::Ruling) -> Result<Rendered, FontError> {
    render(
        fonts,
        &format!("民事裁定书 {}", r.number),
        &ruling::blocks(r),
    )
}

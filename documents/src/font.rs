//! A CJK font face from a font file (a TrueType/OpenType file or one face of a collection),
//! and the subset of it one document embeds.
//!
//! A document's text is written as glyph ids, two bytes each (the `Identity-H` encoding), so
//! any of the tens of thousands of CJK glyphs can be used. Only the glyphs used are embedded
//! (a subset, renumbered from 0), with a ToUnicode map from each glyph to the text it shows so
//! the text can be searched and copied (ISO 32000-1 §9.7 and §9.10): a CFF-flavoured face as a
//! `CIDFontType0` with a bare CFF program, a TrueType one as a `CIDFontType2`.

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Filter, Finish, Name, Pdf, Rect, Ref, Str};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use subsetter::GlyphRemapper;

/// Why a font could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FontError {
    /// The file could not be read.
    #[error("cannot read the font {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is no font, or has no such face.
    #[error("{path} has no usable font face {index}")]
    Face {
        /// The file.
        path: PathBuf,
        /// The face asked for.
        index: u32,
    },
    /// The face has no Chinese glyphs.
    #[error("{path} (face {index}) has no Chinese glyphs")]
    NotChinese {
        /// The file.
        path: PathBuf,
        /// The face.
        index: u32,
    },
    /// Subsetting failed (a font the subsetter cannot read).
    #[error("cannot embed the font: {0}")]
    Subset(String),
}

/// A font face, loaded once and shared by every document made with it.
#[derive(Clone)]
pub struct Face {
    /// The whole file (a collection holds several faces).
    data: Arc<Vec<u8>>,
    /// The face within the file.
    index: u32,
    /// Where it came from, for messages.
    path: PathBuf,
    units_per_em: f32,
    cff: bool,
    /// Glyphs looked up so far: a document asks for the same few thousand characters again
    /// and again, and the face is shared by every document.
    glyphs: Arc<Mutex<HashMap<char, (u16, f32)>>>,
}

impl std::fmt::Debug for Face {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Face({}#{})", self.path.display(), self.index)
    }
}

impl Face {
    /// Loads face `index` of the font file at `path`; it must hold Chinese glyphs.
    pub fn load(path: &Path, index: u32) -> Result<Face, FontError> {
        let data = std::fs::read(path).map_err(|source| FontError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let no_face = || FontError::Face {
            path: path.to_path_buf(),
            index,
        };
        let face = ttf_parser::Face::parse(&data, index).map_err(|_| no_face())?;
        if face.glyph_index('调').is_none() {
            return Err(FontError::NotChinese {
                path: path.to_path_buf(),
                index,
            });
        }
        let (units_per_em, cff) = (f32::from(face.units_per_em()), face.tables().cff.is_some());
        Ok(Face {
            data: Arc::new(data),
            index,
            path: path.to_path_buf(),
            units_per_em,
            cff,
            glyphs: Arc::default(),
        })
    }

    /// The parsed face (parsing only reads the table directory: cheap).
    fn parsed(&self) -> Option<ttf_parser::Face<'_>> {
        ttf_parser::Face::parse(&self.data, self.index).ok()
    }

    /// The glyph for `c` (0, the "missing" glyph, if the face has none) and its advance in
    /// ems.
    pub fn glyph(&self, c: char) -> (u16, f32) {
        let mut known = self.glyphs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(glyph) = known.get(&c) {
            return *glyph;
        }
        let Some(face) = self.parsed() else {
            return (0, 0.5);
        };
        let gid = face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
        let advance = face.glyph_hor_advance(gid).unwrap_or(0);
        let glyph = (gid.0, f32::from(advance) / self.units_per_em);
        known.insert(c, glyph);
        glyph
    }
}

/// The glyphs one document uses of a face: their new numbers in the subset, and the text each
/// shows.
pub(crate) struct Embedding {
    face: Face,
    remapper: GlyphRemapper,
    text: BTreeMap<u16, String>,
    /// Characters the face has no glyph for (shown as the missing glyph).
    pub(crate) missing: Vec<char>,
}

impl Embedding {
    pub(crate) fn new(face: Face) -> Embedding {
        Embedding {
            face,
            remapper: GlyphRemapper::new(),
            text: BTreeMap::new(),
            missing: Vec::new(),
        }
    }

    /// The two-byte codes (new glyph numbers) that show `text`, noting each glyph used.
    pub(crate) fn encode(&mut self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            let (gid, _) = self.face.glyph(c);
            if gid == 0 && !c.is_whitespace() && !self.missing.contains(&c) {
                self.missing.push(c);
            }
            let new = self.remapper.remap(gid);
            self.text.entry(new).or_insert_with(|| c.to_string());
            out.extend_from_slice(&new.to_be_bytes());
        }
        out
    }

    /// Writes the font objects (`type0` the one the pages name) and the subset into `pdf`.
    pub(crate) fn write(&self, pdf: &mut Pdf, next: &mut Ref, type0: Ref) -> Result<(), FontError> {
        let face = self
            .face
            .parsed()
            .ok_or_else(|| FontError::Subset("the face cannot be read".into()))?;
        let (cid_font, descriptor, to_unicode, program) =
            (next.bump(), next.bump(), next.bump(), next.bump());
        let per_mille = |units: f32| units / self.face.units_per_em * 1000.0;

        let subset = subsetter::subset(&self.face.data, self.face.index, &self.remapper)
            .map_err(|e| FontError::Subset(format!("{e:?}")))?;
        // A CFF face's program is its CFF table alone (FontFile3, CIDFontType0C); a
        // TrueType face's is the subset file itself (FontFile2).
        let program_bytes = if self.face.cff {
            let raw = ttf_parser::RawFace::parse(&subset, 0)
                .map_err(|e| FontError::Subset(e.to_string()))?;
            raw.table(ttf_parser::Tag::from_bytes(b"CFF "))
                .ok_or_else(|| FontError::Subset("the subset has no CFF table".into()))?
                .to_vec()
        } else {
            subset
        };

        // A subset's name is a tag of six capitals and the face's PostScript name (§9.6.4);
        // the tag follows from the glyphs, so the same document gives the same bytes.
        let postscript = face
            .names()
            .into_iter()
            .find(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .and_then(|n| n.to_string())
            .unwrap_or_else(|| "CJK".into())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>();
        let mut hash: u32 = 2166136261;
        for gid in self.remapper.remapped_gids() {
            hash = (hash ^ u32::from(gid)).wrapping_mul(16777619);
        }
        let tag: String = (0..6)
            .map(|i| char::from(b'A' + ((hash >> (i * 5)) % 26) as u8))
            .collect();
        let name = format!("{tag}+{postscript}");
        let system = SystemInfo {
            registry: Str(b"Adobe"),
            ordering: Str(b"Identity"),
            supplement: 0,
        };

        pdf.type0_font(type0)
            .base_font(Name(name.as_bytes()))
            .encoding_predefined(Name(b"Identity-H"))
            .descendant_font(cid_font)
            .to_unicode(to_unicode);

        let mut cid = pdf.cid_font(cid_font);
        cid.subtype(if self.face.cff {
            CidFontType::Type0
        } else {
            CidFontType::Type2
        });
        cid.base_font(Name(name.as_bytes()))
            .system_info(system)
            .font_descriptor(descriptor)
            .default_width(0.0);
        if !self.face.cff {
            cid.cid_to_gid_map_predefined(Name(b"Identity"));
        }
        // Each glyph's width by its new number, which is its CID.
        let widths: Vec<f32> = self
            .remapper
            .remapped_gids()
            .map(|old| {
                per_mille(f32::from(
                    face.glyph_hor_advance(ttf_parser::GlyphId(old))
                        .unwrap_or(0),
                ))
            })
            .collect();
        cid.widths().consecutive(0, widths);
        cid.finish();

        let bbox = face.global_bounding_box();
        let mut flags = FontFlags::SYMBOLIC;
        flags.set(FontFlags::SERIF, postscript.contains("Serif"));
        let mut d = pdf.font_descriptor(descriptor);
        d.name(Name(name.as_bytes()))
            .flags(flags)
            .bbox(Rect::new(
                per_mille(bbox.x_min.into()),
                per_mille(bbox.y_min.into()),
                per_mille(bbox.x_max.into()),
                per_mille(bbox.y_max.into()),
            ))
            .italic_angle(face.italic_angle())
            .ascent(per_mille(face.ascender().into()))
            .descent(per_mille(face.descender().into()))
            .cap_height(per_mille(
                face.capital_height().unwrap_or(face.ascender()).into(),
            ))
            .stem_v(80.0);
        if self.face.cff {
            d.font_file3(program);
        } else {
            d.font_file2(program);
        }
        d.finish();

        let mut cmap = UnicodeCmap::new(Name(b"Custom"), system);
        for (gid, text) in &self.text {
            cmap.pair_with_multiple(*gid, text.chars());
        }
        let cmap = miniz_oxide::deflate::compress_to_vec_zlib(&cmap.finish(), 6);
        pdf.cmap(to_unicode, &cmap).filter(Filter::FlateDecode);

        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&program_bytes, 6);
        let mut stream = pdf.stream(program, &packed);
        stream.filter(Filter::FlateDecode);
        if self.face.cff {
            stream.pair(Name(b"Subtype"), Name(b"CIDFontType0C"));
        }
        Ok(())
    }
}

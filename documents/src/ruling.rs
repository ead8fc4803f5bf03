//! 民事裁定书 on an application for judicial confirmation (CPL 206): the court, the ruling's
//! number, the applicants, the agreement ruled on (its case number and SHA-256), the ruling's
//! text as the judge wrote it, that a confirmed agreement may be enforced on application, the
//! judge and the date.

use crate::layout::{Align, Block, Style};
use crate::time;

/// What the 民事裁定书 shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruling {
    /// The court.
    pub court: String,
    /// The ruling's number (文号).
    pub number: String,
    /// The applicants, as (name, standing in the mediation).
    pub applicants: Vec<(String, String)>,
    /// The mediation's case number.
    pub case_number: String,
    /// The cause of action.
    pub case_type: String,
    /// When the application was made (the last applicant), Unix ms.
    pub applied_at: i64,
    /// The agreement's SHA-256.
    pub agreement_sha256: String,
    /// Ruled valid (or rejected).
    pub confirmed: bool,
    /// The ruling as the judge wrote it.
    pub text: String,
    /// The judge.
    pub judge: String,
    /// When ruled, Unix ms.
    pub at: i64,
}

/// The document's blocks.
pub fn blocks(r: &Ruling) -> Vec<Block> {
    let text = |text: String, style, align, indent| Block::Text {
        text,
        style,
        align,
        indent,
    };
    let names = r
        .applicants
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join("、");
    let mut out = vec![
        text(r.court.clone(), Style::ISSUER, Align::Center, 0.0),
        text("民 事 裁 定 书".into(), Style::TITLE, Align::Center, 0.0),
        text(r.number.clone(), Style::BODY, Align::Right, 0.0),
        Block::Gap(8.0),
    ];
    for (name, standing) in &r.applicants {
        out.push(text(
            format!("申请人：{name}（调解案件中的{standing}）。"),
            Style::BODY,
            Align::Justify,
            2.0,
        ));
    }
    out.push(text(
        format!(
            "申请人{names}于{}向本院申请确认其在{}{}一案中经调解达成的调解协议的效力，\
             协议文本 SHA-256 为 {}。本院受理后，依法进行了审查。",
            time::date(r.applied_at),
            r.case_number,
            r.case_type,
            r.agreement_sha256
        ),
        Style::BODY,
        Align::Justify,
        2.0,
    ));
    out.push(text(
        r.text.trim().to_string(),
        Style::BODY,
        Align::Justify,
        2.0,
    ));
    if r.confirmed {
        out.push(text(
            "本裁定书自即日起发生法律效力。一方当事人拒绝履行或者未全部履行的，\
             对方当事人可以向人民法院申请执行。"
                .into(),
            Style::BODY,
            Align::Justify,
            2.0,
        ));
    }
    out.push(Block::Gap(24.0));
    out.push(text(
        format!("审判员　{}", r.judge),
        Style::BODY,
        Align::Right,
        0.0,
    ));
    out.push(Block::Gap(12.0));
    out.push(text(
        time::date_in_words(r.at),
        Style::BODY,
        Align::Right,
        0.0,
    ));
    out
}

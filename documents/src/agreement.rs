//! 调解协议书: the mediation agreement as signed — the issuer's heading, the case, the parties
//! with their identity as checked, the mediator, the text exactly as signed, each signature
//! (who, as what, when China time, how, on what identity check), the SHA-256 of the canonical
//! text and the recordings' chain heads, so a judge can check the paper against what crossed.

use crate::layout::{Align, Block, Style};
use crate::time;

/// A party, an agent or anyone else the agreement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    /// 申请人, 被申请人, 张三的代理人 …
    pub standing: String,
    /// Name as recorded.
    pub name: String,
    /// How their identity was checked, as recorded ("证件比对，王调解核验，2026年12月5日 13:20").
    pub identity: String,
}

/// A signature on the version shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Signer's name.
    pub name: String,
    /// 申请人, 被申请人, 调解员.
    pub standing: String,
    /// When, Unix ms.
    pub at: i64,
    /// How the identity was confirmed for it.
    pub identity: String,
}

/// What the 调解协议书 shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// The court or mediation organisation issuing it.
    pub issuer: String,
    /// Case number.
    pub case_number: String,
    /// Cause of action.
    pub case_type: String,
    /// The claim, written out ("人民币 40,000.00 元").
    pub claim: String,
    /// The parties and agents.
    pub parties: Vec<Party>,
    /// The mediator's name.
    pub mediator: String,
    /// Version shown.
    pub version: u32,
    /// Its text, exactly as signed (canonical form).
    pub text: String,
    /// SHA-256 of that text.
    pub sha256: String,
    /// A later version replaced this one: its signatures are void.
    pub void: bool,
    /// Signatures on this version.
    pub signatures: Vec<Signature>,
    /// When it took effect (its last signature), Unix ms.
    pub effective_at: Option<i64>,
    /// The chain heads of the case's recordings.
    pub recordings: Vec<String>,
}

/// The document's blocks.
pub fn blocks(a: &Agreement) -> Vec<Block> {
    let text = |text: String, style, align, indent| Block::Text {
        text,
        style,
        align,
        indent,
    };
    let heading = |t: &str| text(t.to_string(), Style::HEADING, Align::Left, 0.0);
    let mut out = Vec::new();
    if !a.issuer.trim().is_empty() {
        out.push(text(a.issuer.clone(), Style::ISSUER, Align::Center, 0.0));
    }
    out.push(text("调解协议书".into(), Style::TITLE, Align::Center, 0.0));
    out.push(text(a.case_number.clone(), Style::BODY, Align::Center, 0.0));
    if a.void {
        out.push(text(
            format!("第 {} 版（已被新版本取代，其签名无效）", a.version),
            Style::HEADING,
            Align::Center,
            0.0,
        ));
    }
    out.push(Block::Gap(8.0));
    out.push(Block::Table {
        columns: vec![1.0, 3.0],
        header: None,
        rows: vec![
            vec!["案由".into(), a.case_type.clone()],
            vec!["标的额".into(), a.claim.clone()],
            vec!["调解员".into(), a.mediator.clone()],
        ],
    });
    out.push(Block::Gap(10.0));
    out.push(heading("当事人及身份核验"));
    out.push(Block::Table {
        columns: vec![1.4, 1.4, 4.2],
        header: Some(vec![
            "身份".into(),
            "姓名".into(),
            "身份核验（方式、核验人、时间）".into(),
        ]),
        rows: a
            .parties
            .iter()
            .map(|p| vec![p.standing.clone(), p.name.clone(), p.identity.clone()])
            .collect(),
    });
    out.push(Block::Gap(10.0));
    out.push(heading(&format!(
        "协议内容（第 {} 版，签署文本）",
        a.version
    )));
    out.push(text(
        a.text.trim_end().to_string(),
        Style::BODY,
        Align::Justify,
        0.0,
    ));
    out.push(Block::Gap(10.0));
    out.push(heading("签署"));
    if a.signatures.is_empty() {
        out.push(text("尚无签署。".into(), Style::BODY, Align::Left, 0.0));
    } else {
        out.push(Block::Table {
            columns: vec![1.3, 1.3, 2.2, 1.7, 2.5],
            header: Some(vec![
                "签署人".into(),
                "身份".into(),
                "签署时间（北京时间）".into(),
                "签署方式".into(),
                "签署时的身份核验".into(),
            ]),
            rows: a
                .signatures
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.standing.clone(),
                        time::date_time(s.at),
                        "在线电子签名".into(),
                        s.identity.clone(),
                    ]
                })
                .collect(),
        });
    }
    out.push(text(
        "在线电子签名：签署人在平台上阅读本版全文后本人确认签署，签名与本版文本的 SHA-256 绑定。"
            .into(),
        Style::SMALL,
        Align::Justify,
        0.0,
    ));
    out.push(Block::Gap(10.0));
    let effect = match a.effective_at {
        Some(at) => format!(
            "本协议自最后一方签署时生效，生效时间：{}（北京时间）。",
            time::date_time(at)
        ),
        None => "本协议尚未经全部当事人和调解员签署，尚未生效。".into(),
    };
    out.push(text(effect, Style::BODY, Align::Justify, 0.0));
    out.push(heading("核验信息"));
    out.push(text(
        format!("协议文本 SHA-256：{}", a.sha256),
        Style::SMALL,
        Align::Left,
        0.0,
    ));
    let recordings = if a.recordings.is_empty() {
        "本案调解录音录像：无".to_string()
    } else {
        format!(
            "本案调解录音录像校验值（签名清单哈希链头）：{}",
            a.recordings.join("；")
        )
    };
    out.push(text(recordings, Style::SMALL, Align::Left, 0.0));
    out.push(text(
        "以上内容由在线调解平台根据签署记录生成；协议文本的 SHA-256 与各签名所确认的一致，\
         可据此核对本文书与平台记录、司法确认申请材料是否相符。"
            .into(),
        Style::SMALL,
        Align::Justify,
        0.0,
    ));
    out
}

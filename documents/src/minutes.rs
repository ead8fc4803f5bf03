//! 调解笔录: one session's minutes — when, where (online, which room), who attended as what,
//! the text as saved, its revision and SHA-256, each party's confirmation, and whether the
//! recording stands for them by the parties' consent.

use crate::layout::{Align, Block, Style};
use crate::time;

/// What the 调解笔录 shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minutes {
    /// The court or mediation organisation.
    pub issuer: String,
    /// Case number.
    pub case_number: String,
    /// Cause of action.
    pub case_type: String,
    /// The session's number in the case.
    pub session: u32,
    /// When it started, Unix ms.
    pub started_at: Option<i64>,
    /// When it ended, Unix ms.
    pub ended_at: Option<i64>,
    /// The mediator's name.
    pub mediator: String,
    /// Who attended, as (name, standing).
    pub attendees: Vec<(String, String)>,
    /// The minutes' text.
    pub text: String,
    /// Its revision.
    pub revision: i64,
    /// SHA-256 of its canonical text.
    pub sha256: String,
    /// The recording stands for the minutes, by every party's consent.
    pub replaced_by_recording: bool,
    /// The recordings' chain heads.
    pub recordings: Vec<String>,
    /// Parties' confirmations: (name, revision, when).
    pub confirmations: Vec<(String, i64, i64)>,
}

/// The document's blocks.
pub fn blocks(m: &Minutes) -> Vec<Block> {
    let text = |text: String, style, align| Block::Text {
        text,
        style,
        align,
        indent: 0.0,
    };
    let mut out = Vec::new();
    if !m.issuer.trim().is_empty() {
        out.push(text(m.issuer.clone(), Style::ISSUER, Align::Center));
    }
    out.push(text("调解笔录".into(), Style::TITLE, Align::Center));
    out.push(text(m.case_number.clone(), Style::BODY, Align::Center));
    out.push(Block::Gap(8.0));
    let when = match (m.started_at, m.ended_at) {
        (Some(s), Some(e)) => format!("{} 至 {}", time::date_time(s), time::date_time(e)),
        (Some(s), None) => format!("{} 起", time::date_time(s)),
        _ => "尚未开始".into(),
    };
    let attendees = m
        .attendees
        .iter()
        .map(|(name, standing)| format!("{name}（{standing}）"))
        .collect::<Vec<_>>()
        .join("、");
    out.push(Block::Table {
        columns: vec![1.0, 3.0],
        header: None,
        rows: vec![
            vec!["案由".into(), m.case_type.clone()],
            vec!["场次".into(), format!("第 {} 场", m.session)],
            vec!["时间（北京时间）".into(), when],
            vec!["地点".into(), "在线调解室（网络视频）".into()],
            vec!["调解员".into(), m.mediator.clone()],
            vec!["到场人员".into(), attendees],
        ],
    });
    out.push(Block::Gap(10.0));
    out.push(text(
        format!("笔录内容（第 {} 稿）", m.revision),
        Style::HEADING,
        Align::Left,
    ));
    let body = if m.text.trim().is_empty() {
        "（本场没有书面笔录。）".to_string()
    } else {
        m.text.trim_end().to_string()
    };
    out.push(text(body, Style::BODY, Align::Justify));
    if m.replaced_by_recording {
        out.push(text(
            "经各方当事人明确同意，本场调解以录音录像代替调解笔录。".into(),
            Style::BODY,
            Align::Justify,
        ));
    }
    out.push(Block::Gap(10.0));
    out.push(text("当事人确认".into(), Style::HEADING, Align::Left));
    if m.confirmations.is_empty() {
        out.push(text("尚无当事人确认。".into(), Style::BODY, Align::Left));
    } else {
        out.push(Block::Table {
            columns: vec![1.5, 1.2, 2.3],
            header: Some(vec![
                "当事人".into(),
                "确认的稿次".into(),
                "确认时间（北京时间）".into(),
            ]),
            rows: m
                .confirmations
                .iter()
                .map(|(name, revision, at)| {
                    vec![
                        name.clone(),
                        format!("第 {revision} 稿"),
                        time::date_time(*at),
                    ]
                })
                .collect(),
        });
    }
    out.push(Block::Gap(10.0));
    out.push(text(
        format!("笔录文本 SHA-256：{}", m.sha256),
        Style::SMALL,
        Align::Left,
    ));
    if !m.recordings.is_empty() {
        out.push(text(
            format!("录音录像校验值：{}", m.recordings.join("；")),
            Style::SMALL,
            Align::Left,
        ));
    }
    out
}

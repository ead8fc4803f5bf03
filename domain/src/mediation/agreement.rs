//! The agreement's text: its canonical form and hash, and drafting from a template.

use super::case::{Member, Side};
use super::error::RuleError;
use crate::role::Role;

/// Longest agreement text accepted (characters).
pub const MAX_AGREEMENT_CHARS: usize = 100_000;

/// The canonical form a version's hash covers: line ends as `\n`, no trailing spaces on a line,
/// no trailing blank lines, one final `\n`. Two texts that print the same hash the same.
pub fn canonical_text(text: &str) -> String {
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out: String = unified
        .split('\n')
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    let kept = out.trim_end_matches('\n').len();
    out.truncate(kept);
    out.push('\n');
    out
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hash of a text's canonical form.
pub fn text_hash(text: &str) -> String {
    sha256_hex(canonical_text(text).as_bytes())
}

/// The template used when the mediator gives none. Placeholders: `{{case_number}}`,
/// `{{case_type}}`, `{{claim_amount}}` (yuan), `{{applicants}}`, `{{respondents}}`,
/// `{{mediator}}`, `{{terms}}`.
pub const DEFAULT_TEMPLATE: &str = "调解协议书

案号：{{case_number}}
案由：{{case_type}}
标的额：{{claim_amount}} 元

申请人：{{applicants}}
被申请人：{{respondents}}
调解员：{{mediator}}

经调解员主持调解，双方当事人自愿达成如下协议：

{{terms}}

本协议自各方当事人及调解员签章之日起生效。
";

/// What a template is filled with.
pub struct TemplateData<'a> {
    /// Case number.
    pub case_number: &'a str,
    /// Cause of action.
    pub case_type: &'a str,
    /// Claim in fen.
    pub claim_amount: i64,
    /// Everyone in the case.
    pub members: &'a [Member],
    /// The agreed terms, written by the mediator.
    pub terms: &'a str,
}

/// Fills `template`; an unknown `{{placeholder}}` is an error (a typo would reach a signed
/// document otherwise).
pub fn fill_template(template: &str, data: &TemplateData<'_>) -> Result<String, RuleError> {
    let names = |side: Side| {
        data.members
            .iter()
            .filter(|m| m.role == Role::Party && m.side == Some(side))
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join("、")
    };
    let mediator = data
        .members
        .iter()
        .find(|m| m.role == Role::Mediator)
        .map_or("", |m| m.name.as_str());
    let amount = format!(
        "{}.{:02}",
        data.claim_amount / 100,
        (data.claim_amount % 100).abs()
    );
    let mut out = String::with_capacity(template.len() + data.terms.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(RuleError::TemplateUnclosed)?;
        let value = match after[..end].trim() {
            "case_number" => data.case_number.to_string(),
            "case_type" => data.case_type.to_string(),
            "claim_amount" => amount.clone(),
            "applicants" => names(Side::Applicant),
            "respondents" => names(Side::Respondent),
            "mediator" => mediator.to_string(),
            "terms" => data.terms.to_string(),
            other => {
                return Err(RuleError::TemplateUnknown {
                    placeholder: other.to_string(),
                });
            }
        };
        out.push_str(&value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_ignores_line_ends_and_trailing_space_only() {
        let a = "第一条\r\n第二条  \r\n\r\n";
        let b = "第一条\n第二条\n";
        assert_eq!(canonical_text(a), b);
        assert_eq!(text_hash(a), text_hash(b));
        assert_ne!(
            text_hash("第一条\n第二条\n"),
            text_hash("第一条\n第二条 改\n")
        );
        assert_ne!(
            text_hash(" 缩进\n"),
            text_hash("缩进\n"),
            "leading space is kept"
        );
        // SHA-256 of "abc\n".
        assert_eq!(
            text_hash("abc"),
            "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb"
        );
    }

    #[test]
    fn templates_fill_and_refuse_unknown_placeholders() {
        let members = vec![
            Member {
                id: "m".into(),
                name: "王调解".into(),
                role: Role::Mediator,
                side: None,
                represents: None,
            },
            Member {
                id: "a".into(),
                name: "张三".into(),
                role: Role::Party,
                side: Some(Side::Applicant),
                represents: None,
            },
        ];
        let data = TemplateData {
            case_number: "(2026)1号",
            case_type: "借款合同纠纷",
            claim_amount: 1_234_505,
            members: &members,
            terms: "一、还款。",
        };
        let text = fill_template(DEFAULT_TEMPLATE, &data).expect("fills");
        assert!(text.contains("标的额：12345.05 元"));
        assert!(text.contains("申请人：张三"));
        assert!(text.contains("调解员：王调解"));
        assert!(text.contains("一、还款。"));
        assert_eq!(
            fill_template("{{case_nubmer}}", &data),
            Err(RuleError::TemplateUnknown {
                placeholder: "case_nubmer".into()
            })
        );
    }
}

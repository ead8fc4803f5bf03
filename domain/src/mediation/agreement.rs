//! The agreement's text: its canonical form and hash, and drafting from a template.

use super::case::{Member, Side};
use super::error::{Field, RuleError};
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
/// document otherwise). The output is counted while it is built and filling stops at the first
/// character over [`MAX_AGREEMENT_CHARS`]: a template that repeats a long value (`{{terms}}`
/// 70,000 times) must cost at most the limit, not the product of the two sizes.
pub fn fill_template(template: &str, data: &TemplateData<'_>) -> Result<String, RuleError> {
    // An agreement drafted from no terms agrees to nothing.
    if data.terms.trim().is_empty() {
        return Err(RuleError::TextLength {
            field: Field::Terms,
            max: MAX_AGREEMENT_CHARS,
        });
    }
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
    let too_long = RuleError::TextLength {
        field: Field::Agreement,
        max: MAX_AGREEMENT_CHARS,
    };
    let mut out = Bounded::new(MAX_AGREEMENT_CHARS);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push(&rest[..start]).ok_or_else(|| too_long.clone())?;
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(RuleError::TemplateUnclosed)?;
        let value: std::borrow::Cow<'_, str> = match after[..end].trim() {
            "case_number" => data.case_number.into(),
            "case_type" => data.case_type.into(),
            "claim_amount" => amount.as_str().into(),
            "applicants" => names(Side::Applicant).into(),
            "respondents" => names(Side::Respondent).into(),
            "mediator" => mediator.into(),
            "terms" => data.terms.into(),
            other => {
                return Err(RuleError::TemplateUnknown {
                    placeholder: other.chars().take(64).collect(),
                });
            }
        };
        out.push(&value).ok_or_else(|| too_long.clone())?;
        rest = &after[end + 2..];
    }
    out.push(rest).ok_or(too_long)?;
    Ok(out.text)
}

/// A string that refuses to grow past `max` characters (counted, not bytes).
struct Bounded {
    text: String,
    chars: usize,
    max: usize,
}

impl Bounded {
    fn new(max: usize) -> Self {
        Self {
            text: String::new(),
            chars: 0,
            max,
        }
    }

    /// Appends `s`, or `None` (and nothing appended) when it would pass the limit.
    fn push(&mut self, s: &str) -> Option<()> {
        let chars = s.chars().count();
        if self.chars + chars > self.max {
            return None;
        }
        self.text.push_str(s);
        self.chars += chars;
        Some(())
    }
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

    /// A template that repeats a long `{{terms}}` (the probe's was 300,000 characters × 70,000
    /// placeholders: 21 GB) is refused once the text outgrows the limit, before it is built.
    #[test]
    fn a_template_that_multiplies_the_terms_is_refused_while_filling() {
        let terms = "款".repeat(MAX_AGREEMENT_CHARS / 10);
        let data = TemplateData {
            case_number: "(2026)1号",
            case_type: "借款合同纠纷",
            claim_amount: 0,
            members: &[],
            terms: &terms,
        };
        let bomb = "{{terms}}".repeat(100_000);
        let too_long = Err(RuleError::TextLength {
            field: Field::Agreement,
            max: MAX_AGREEMENT_CHARS,
        });
        assert_eq!(fill_template(&bomb, &data), too_long);
        // Ten copies fit exactly; the eleventh character over does not.
        assert!(fill_template(&"{{terms}}".repeat(10), &data).is_ok());
        assert_eq!(
            fill_template(&"{{terms}}".repeat(10).replace("}}{{", "}}x{{"), &data),
            too_long
        );
        // Empty terms agree to nothing.
        let blank = TemplateData {
            terms: " \n",
            ..data
        };
        assert_eq!(
            fill_template(DEFAULT_TEMPLATE, &blank),
            Err(RuleError::TextLength {
                field: Field::Terms,
                max: MAX_AGREEMENT_CHARS
            })
        );
        // The limit counts characters, not bytes.
        let short = TemplateData {
            terms: "款",
            ..data
        };
        let at_limit = format!("{}{{{{terms}}}}", "款".repeat(MAX_AGREEMENT_CHARS - 1));
        assert!(fill_template(&at_limit, &short).is_ok());
    }
}

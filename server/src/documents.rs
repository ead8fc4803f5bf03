//! The case's court documents: what the 调解协议书 and the 调解笔录 say, in the words a court
//! document uses (申请人 / 被申请人 / 张三的代理人, 证件比对 …), from the case's record, for
//! `tiaojie-documents` to set as PDF. The documents are in Chinese whatever a page's
//! language: they are the court's.

use tiaojie_config::DocumentsConfig;
use tiaojie_documents::{FontSpec, Fonts, agreement, minutes};
use tiaojie_domain::mediation::{CaseState, IdentityMethod, Member, Side};
use tiaojie_domain::{PersonId, Role};

/// The fonts the documents are set in: the configured ones, else the first installed of
/// [`tiaojie_documents::SYSTEM_FONTS`]; none, and documents are unavailable (logged once).
pub async fn load_fonts(config: &DocumentsConfig) -> Option<Fonts> {
    let config = config.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        if config.font.trim().is_empty() {
            return Fonts::system();
        }
        let bold =
            (!config.font_bold.trim().is_empty()).then(|| FontSpec::parse(&config.font_bold));
        Fonts::load(&FontSpec::parse(&config.font), bold.as_ref())
    })
    .await;
    match loaded {
        Ok(Ok(fonts)) => Some(fonts),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "no font for court documents: downloads answer documents_unavailable");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "loading the documents' font failed");
            None
        }
    }
}

/// An identity check's method in words.
pub fn method_words(method: IdentityMethod) -> &'static str {
    match method {
        IdentityMethod::IdDocumentVideo => "证件比对",
        IdentityMethod::FaceRecognition => "人脸识别",
        IdentityMethod::CourtAccount => "法院实名账号",
        IdentityMethod::Offline => "线下核验",
    }
}

/// How someone takes part in the case, in a document's words.
pub fn standing(case: &CaseState, m: &Member) -> String {
    match (m.role, m.side) {
        (Role::Party, Some(Side::Applicant)) => "申请人".into(),
        (Role::Party, Some(Side::Respondent)) => "被申请人".into(),
        (Role::Agent, _) => {
            let party = m.represents.as_ref().map(|p| case.name_of(p));
            format!("{}的委托代理人", party.unwrap_or_default())
        }
        (Role::Mediator, _) => "调解员".into(),
        (Role::Judge, _) => "法官".into(),
        (Role::Observer, _) => "旁听人员".into(),
        _ => "当事人".into(),
    }
}

/// `person`'s latest passed identity check of any session, in words.
fn identity_words(case: &CaseState, person: &PersonId) -> String {
    let latest = case
        .sessions
        .iter()
        .filter_map(|s| s.checks.get(person).and_then(|c| c.identity.clone()))
        .filter(|i| i.passed)
        .max_by_key(|i| i.at);
    match latest {
        Some(i) => {
            let note = if i.note.trim().is_empty() {
                String::new()
            } else {
                format!("（{}）", i.note.trim())
            };
            format!(
                "{}{note}，{}核验，{}",
                method_words(i.method),
                case.name_of(&i.by),
                tiaojie_documents::time::date_time(i.at)
            )
        }
        None if case
            .member(person)
            .is_some_and(|m| m.role == Role::Mediator) =>
        {
            "法院工作人员账号登录".into()
        }
        None => "未核验".into(),
    }
}

/// A signature's identity basis ("<method> by <id> at <ms>", as the record keeps it) in
/// words.
fn basis_words(case: &CaseState, basis: &str) -> String {
    let mut parts = basis.split(' ');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(method), Some("by"), Some(by), Some("at"), Some(at)) => {
            let method = [
                IdentityMethod::IdDocumentVideo,
                IdentityMethod::FaceRecognition,
                IdentityMethod::CourtAccount,
                IdentityMethod::Offline,
            ]
            .into_iter()
            .find(|m| m.as_str() == method)
            .map_or("身份核验", method_words);
            let when = at
                .parse::<i64>()
                .map(tiaojie_documents::time::date_time)
                .unwrap_or_default();
            format!(
                "{method}，{}核验，{when}",
                case.name_of(&PersonId::from(by))
            )
        }
        _ if basis == "court staff login" => "法院工作人员账号登录".into(),
        _ => basis.to_string(),
    }
}

/// A claim in fen, written out: `人民币 40,000.00 元`.
fn claim_words(fen: i64) -> String {
    let yuan = (fen / 100).abs().to_string();
    let mut grouped = String::new();
    for (i, c) in yuan.chars().enumerate() {
        if i > 0 && (yuan.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if fen < 0 { "-" } else { "" };
    format!("人民币 {sign}{grouped}.{:02} 元", (fen % 100).abs())
}

/// The 调解协议书 of version `version` (the current one if `None`); `recordings`: the chain
/// heads of the case's recordings. `None` if there is no such version.
pub fn agreement(
    case: &CaseState,
    version: Option<u32>,
    issuer: &str,
    recordings: Vec<String>,
) -> Option<agreement::Agreement> {
    let current = case.agreement.current()?.version;
    let shown = case
        .agreement
        .versions
        .iter()
        .find(|v| v.version == version.unwrap_or(current))?;
    let parties = case
        .members
        .iter()
        .filter(|m| matches!(m.role, Role::Party | Role::Agent))
        .map(|m| agreement::Party {
            standing: standing(case, m),
            name: m.name.clone(),
            identity: identity_words(case, &m.id),
        })
        .collect();
    let signatures = case
        .agreement
        .signatures
        .iter()
        .filter(|s| s.version == shown.version)
        .map(|s| agreement::Signature {
            name: s.name.clone(),
            standing: case
                .member(&s.person)
                .map_or_else(|| "当事人".into(), |m| standing(case, m)),
            at: s.at,
            identity: basis_words(case, &s.identity),
        })
        .collect();
    let is_current = shown.version == current;
    Some(agreement::Agreement {
        issuer: issuer.to_string(),
        case_number: case.number.clone(),
        case_type: case.case_type.clone(),
        claim: claim_words(case.claim_amount),
        parties,
        mediator: case.mediator().map(|m| m.name.clone()).unwrap_or_default(),
        version: shown.version,
        text: tiaojie_domain::mediation::agreement::canonical_text(&shown.text),
        sha256: shown.sha256.clone(),
        void: !is_current,
        signatures,
        effective_at: if is_current {
            case.agreement.effective_at
        } else {
            None
        },
        recordings,
    })
}

/// The 调解笔录 of session `n` (`None` if there is no such session): `text` is the stored
/// minutes (revision, text, hash), `recordings` the chain heads of the session's recordings.
pub fn minutes(
    case: &CaseState,
    n: u32,
    text: &tiaojie_store::Minutes,
    issuer: &str,
    recordings: Vec<String>,
) -> Option<minutes::Minutes> {
    let session = case.session(n).ok()?;
    let attendees = session
        .present_at_start
        .iter()
        .map(|id| {
            let standing = case
                .member(id)
                .map_or_else(|| "管理员".into(), |m| standing(case, m));
            (case.name_of(id), standing)
        })
        .collect();
    Some(minutes::Minutes {
        issuer: issuer.to_string(),
        case_number: case.number.clone(),
        case_type: case.case_type.clone(),
        session: n,
        started_at: session.started_at,
        ended_at: session.ended_at,
        mediator: case.mediator().map(|m| m.name.clone()).unwrap_or_default(),
        attendees,
        text: text.text.clone(),
        revision: text.revision,
        sha256: text.sha256.clone(),
        replaced_by_recording: session.minutes_replaced_by_recording,
        recordings,
        confirmations: session
            .minutes_confirmations
            .iter()
            .map(|c| (case.name_of(&c.person), c.revision, c.at))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_written_out_in_yuan() {
        assert_eq!(claim_words(4_000_000), "人民币 40,000.00 元");
        assert_eq!(claim_words(1_234_505), "人民币 12,345.05 元");
        assert_eq!(claim_words(99), "人民币 0.99 元");
        assert_eq!(claim_words(10_000_000_000), "人民币 100,000,000.00 元");
    }
}

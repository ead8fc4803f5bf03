//! The agreement as a print-ready HTML document: the case, the text of one version, its SHA-256,
//! and every signature on it with the hash signed and how the signer was identified.

use super::agreement::canonical_text;
use super::state::CaseState;

/// Beijing time (UTC+8) for a Unix-ms instant, `YYYY-MM-DD HH:MM:SS`.
pub fn beijing_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000) + 8 * 3600;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The document for `version` (the current one when `None`); `None` if there is no such version.
pub fn agreement_html(case: &CaseState, version: Option<u32>) -> Option<String> {
    let v = match version {
        Some(n) => case.agreement.versions.iter().find(|v| v.version == n)?,
        None => case.agreement.current()?,
    };
    let current = case.agreement.current().map(|c| c.version) == Some(v.version);
    let status = match (current, case.agreement.effective_at) {
        (true, Some(at)) => format!("已生效（{}）", beijing_time(at)),
        (true, None) => "待签署".to_string(),
        (false, _) => "已被新版本取代，签名作废".to_string(),
    };
    let mut rows = String::new();
    for s in case
        .agreement
        .signatures
        .iter()
        .filter(|s| s.version == v.version)
    {
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"hash\">{}</td><td>{}</td></tr>\n",
            escape(&s.name),
            s.role,
            beijing_time(s.at),
            escape(&s.sha256),
            escape(&s.identity)
        ));
    }
    if rows.is_empty() {
        rows.push_str("<tr><td colspan=\"5\">尚无签名</td></tr>\n");
    }
    Some(format!(
        "<!doctype html>
<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">
<title>调解协议 {number} 第{version}版</title>
<style>
body {{ font-family: \"Noto Serif CJK SC\", \"WenQuanYi Micro Hei\", serif; max-width: 48em; margin: 2em auto; line-height: 1.8; }}
pre.text {{ white-space: pre-wrap; font-family: inherit; font-size: 1.05em; }}
table {{ border-collapse: collapse; width: 100%; font-size: .9em; }}
td, th {{ border: 1px solid #444; padding: .3em .5em; vertical-align: top; }}
.hash {{ font-family: monospace; word-break: break-all; font-size: .85em; }}
@media print {{ body {{ margin: 0; }} @page {{ size: A4; margin: 2cm; }} }}
</style></head><body>
<p>案号：{number}　版本：第{version}版　状态：{status}</p>
<pre class=\"text\">{text}</pre>
<h2>文本哈希</h2>
<p>SHA-256（规范化文本）：<span class=\"hash\" id=\"sha256\">{sha}</span></p>
<h2>签名</h2>
<table><thead><tr><th>签署人</th><th>角色</th><th>时间（北京时间）</th><th>所签文本 SHA-256</th><th>身份核验</th></tr></thead>
<tbody>
{rows}</tbody></table>
</body></html>
",
        number = escape(&case.number),
        version = v.version,
        status = status,
        text = escape(&canonical_text(&v.text)),
        sha = escape(&v.sha256),
        rows = rows,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_formats_known_instants() {
        assert_eq!(beijing_time(0), "1970-01-01 08:00:00");
        // 2026-11-28 05:56:07 UTC.
        assert_eq!(beijing_time(1_795_845_367_000), "2026-11-28 13:56:07");
        assert_eq!(beijing_time(951_782_400_000), "2000-02-29 08:00:00");
    }
}

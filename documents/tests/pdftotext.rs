//! The documents read back: each is made with the font this machine has (Debian's
//! fonts-noto-cjk), and `pdftotext` (poppler-utils) must find its words, names and hashes —
//! real, searchable text, not drawings — with every character present in the font.

use std::process::Command;
use tiaojie_documents::agreement::{Agreement, Party, Signature};
use tiaojie_documents::minutes::Minutes;
use tiaojie_documents::ruling::Ruling;
use tiaojie_documents::{Fonts, Rendered};

/// 2026-12-05 13:34 China time.
const T: i64 = 1_796_448_840_000;
const SHA: &str = "4fb5845dc7f0e9f1ae98a85da2678ef1be15e746c89673c77d3b4a2d78b25219";

fn fonts() -> Fonts {
    Fonts::system().expect("a Chinese font is installed (scripts/test installs fonts-noto-cjk)")
}

/// The text `pdftotext` reads from `pdf`, without any whitespace (it breaks lines where the
/// page does).
fn read_back(pdf: &Rendered, name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("tiaojie-documents-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}.pdf"));
    std::fs::write(&path, &pdf.bytes).expect("write");
    let out = Command::new("pdftotext")
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext runs (scripts/test installs poppler-utils)");
    assert!(out.status.success(), "pdftotext failed on {name}");
    String::from_utf8_lossy(&out.stdout)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn agreement(terms: &str) -> Agreement {
    Agreement {
        issuer: "北京市朝阳区人民法院诉调对接中心".into(),
        case_number: "(2026)京0105民诉前调7号".into(),
        case_type: "民间借贷纠纷".into(),
        claim: "人民币 40,000.00 元".into(),
        parties: vec![
            Party {
                standing: "申请人".into(),
                name: "张三".into(),
                identity: "证件比对，王调解核验，2026年12月5日 13:20".into(),
            },
            Party {
                standing: "被申请人".into(),
                name: "李四".into(),
                identity: "人脸识别，王调解核验，2026年12月5日 13:21".into(),
            },
            Party {
                standing: "张三的代理人".into(),
                name: "赵律师".into(),
                identity: "线下核验（律师证线下核验），王调解核验".into(),
            },
        ],
        mediator: "王调解".into(),
        version: 2,
        text: format!("调解协议书\n\n经调解，双方自愿达成如下协议：\n\n{terms}\n"),
        sha256: SHA.into(),
        void: false,
        signatures: vec![
            Signature {
                name: "张三".into(),
                standing: "申请人".into(),
                at: T,
                identity: "证件比对".into(),
            },
            Signature {
                name: "王调解".into(),
                standing: "调解员".into(),
                at: T + 60_000,
                identity: "法院工作人员账号登录".into(),
            },
        ],
        effective_at: Some(T + 60_000),
        recordings: vec![
            "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90112233445566778899aabbccddeeff".into(),
        ],
    }
}

#[test]
fn the_agreement_reads_back_with_its_terms_names_signatures_and_hash() {
    let fonts = fonts();
    let terms = "一、李四于2026年12月31日前向张三支付人民币四万元（¥40,000.00）。\n二、案件受理费减半收取，由李四负担。";
    let pdf = tiaojie_documents::render_agreement(&fonts, &agreement(terms)).expect("renders");
    assert!(
        pdf.missing.is_empty(),
        "characters without a glyph: {:?}",
        pdf.missing
    );
    assert!(
        pdf.bytes.len() < 400_000,
        "a subset, not the whole font: {} bytes",
        pdf.bytes.len()
    );
    let text = read_back(&pdf, "agreement");
    for expected in [
        "北京市朝阳区人民法院诉调对接中心",
        "调解协议书",
        "(2026)京0105民诉前调7号",
        "李四于2026年12月31日前向张三支付人民币四万元",
        "张三的代理人",
        "赵律师",
        "王调解",
        "2026年12月5日13:34",
        SHA,
        "第1页共",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    // The same agreement gives the same bytes (nothing reads a clock).
    let again = tiaojie_documents::render_agreement(&fonts, &agreement(terms)).expect("renders");
    assert_eq!(pdf.bytes, again.bytes);
}

#[test]
fn a_long_agreement_flows_over_pages_and_loses_nothing() {
    let fonts = fonts();
    let terms: String = (1..=60)
        .map(|i| format!("第{i}条 被申请人应于每月十五日前向申请人支付当期款项人民币一千元，逾期未付的，申请人有权就全部未付款项申请强制执行。\n"))
        .collect();
    let pdf = tiaojie_documents::render_agreement(&fonts, &agreement(&terms)).expect("renders");
    assert!(pdf.pages >= 3, "{} pages", pdf.pages);
    let text = read_back(&pdf, "long");
    for i in [1, 30, 60] {
        assert!(
            text.contains(&format!("第{i}条被申请人应于每月十五日前")),
            "clause {i}"
        );
    }
    assert!(text.contains(&format!("第{}页共{}页", pdf.pages, pdf.pages)));
    assert!(text.contains(SHA), "the hash survives the page breaks");
}

#[test]
fn the_minutes_and_the_ruling_read_back() {
    let fonts = fonts();
    let minutes = Minutes {
        issuer: "北京市朝阳区人民法院诉调对接中心".into(),
        case_number: "(2026)京0105民诉前调7号".into(),
        case_type: "民间借贷纠纷".into(),
        session: 1,
        started_at: Some(T),
        ended_at: Some(T + 3_600_000),
        mediator: "王调解".into(),
        attendees: vec![
            ("张三".into(), "申请人".into()),
            ("李四".into(), "被申请人".into()),
        ],
        text: "调解笔录：双方同意分期还款。".into(),
        revision: 3,
        sha256: SHA.into(),
        replaced_by_recording: true,
        recordings: vec![],
        confirmations: vec![("李四".into(), 3, T + 120_000)],
    };
    let pdf = tiaojie_documents::render_minutes(&fonts, &minutes).expect("renders");
    assert!(pdf.missing.is_empty(), "{:?}", pdf.missing);
    let text = read_back(&pdf, "minutes");
    for expected in [
        "调解笔录",
        "双方同意分期还款",
        "第3稿",
        "李四",
        "以录音录像代替调解笔录",
        SHA,
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let ruling = Ruling {
        court: "北京市朝阳区人民法院".into(),
        number: "(2026)京0105民特7号".into(),
        applicants: vec![
            ("张三".into(), "申请人".into()),
            ("李四".into(), "被申请人".into()),
        ],
        case_number: "(2026)京0105民诉前调7号".into(),
        case_type: "民间借贷纠纷".into(),
        applied_at: T,
        agreement_sha256: SHA.into(),
        confirmed: true,
        text:
            "经审查，申请人达成的调解协议符合司法确认条件，裁定如下：\n申请人达成的调解协议有效。"
                .into(),
        judge: "钱法官".into(),
        at: T + 2 * 86_400_000,
    };
    let pdf = tiaojie_documents::render_ruling(&fonts, &ruling).expect("renders");
    assert!(pdf.missing.is_empty(), "{:?}", pdf.missing);
    let text = read_back(&pdf, "ruling");
    for expected in [
        "民事裁定书",
        "(2026)京0105民特7号",
        "申请人：张三",
        "调解协议有效",
        "申请执行",
        "钱法官",
        "二〇二六年十二月七日",
        SHA,
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}

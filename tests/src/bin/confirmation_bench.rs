//! `confirmation-bench`: judicial confirmation's handoff between the real processes
//! (`tiaojie serve` and `tiaojie-court-bridge`, both children on 127.0.0.1).
//!
//! 1. Backlog: `--backlog N` sealed applications wait in the outbox; the bridge connects; how
//!    fast they reach the court inbox (applications per second, from the bridge's own receipt
//!    times).
//! 2. Steady state through the API: the last party's application (HTTP) at `--rate` per second
//!    for `--seconds`; latency from the outbox write to the court inbox; then a judge's decision
//!    per application (the bridge's API) at the same rate; latency from the court's outbox
//!    write to the server's inbox (the case updated).
//! 3. `--link-loss S`: the network between the bridge and the server loses everything for S
//!    seconds without closing anything, while rulings wait at the court and applications at
//!    the server; both sides must notice (heartbeat), then everything crosses once when the
//!    network is back; how long that takes.
//! 4. `--crash-trials T`: the randomized crash matrix (SIGKILLs of either side or both at
//!    random moments), T trials, each checked for nothing lost and nothing doubled.

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tiaojie_confirmation::application::{self as pkg, Application};
use tiaojie_confirmation::{Body, Message, Signer};
use tiaojie_tests::Backend;
use tiaojie_tests::court::{ApiTarget, signed_case};
use tiaojie_tests::court_crash::Rig;

#[derive(Parser)]
#[command(about = "Judicial confirmation's handoff, measured between real processes")]
struct Args {
    /// `sqlite` or `postgres` (this machine's, a fresh database).
    #[arg(long, default_value = "sqlite")]
    backend: String,
    /// Applications waiting in the outbox when the bridge connects.
    #[arg(long, default_value_t = 5000)]
    backlog: usize,
    /// Applications (and then decisions) per second in the steady phase.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Length of the steady phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds the link is lost (nothing passes, nothing closes) in the link-loss phase; 0:
    /// no such phase.
    #[arg(long, default_value_t = 0)]
    link_loss: u64,
    /// Randomized crash trials to run after the measurements.
    #[arg(long, default_value_t = 0)]
    crash_trials: u64,
    /// Where `tiaojie` and `tiaojie-court-bridge` are (default: beside this program).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut ms: Vec<i64>) {
    ms.sort_unstable();
    println!(
        "{name}: n={} p50={} ms p95={} ms p99={} ms max={} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(0)
    );
}

/// A package the size of a real one: the agreement text, three signatures, checks, recordings.
fn package(n: usize) -> Application {
    let text = format!(
        "调解协议书\n\n案号：(2026)京0105民诉前调B{n}号\n案由：民间借贷纠纷\n标的额：40000.00 元\n\n{}",
        "一、李四于2026年12月31日前向张三支付人民币四万元。\n".repeat(20)
    );
    let sha = tiaojie_domain::mediation::agreement::text_hash(&text);
    let person = |id: &str, name: &str| pkg::Person {
        id: id.into(),
        name: name.into(),
    };
    Application {
        case_number: format!("(2026)京0105民诉前调B{n}号"),
        case_type: "民间借贷纠纷".into(),
        claim_amount: 4_000_000,
        mediator: person("med-wang", "王调解"),
        members: ["p-zhang", "p-li"]
            .iter()
            .map(|p| pkg::Member {
                id: (*p).into(),
                name: (*p).into(),
                role: "party".into(),
                side: "applicant".into(),
                represents: None,
            })
            .collect(),
        agreement: pkg::Agreement {
            version: 1,
            text,
            sha256: sha.clone(),
            effective_at: 1,
        },
        signatures: ["p-zhang", "p-li", "med-wang"]
            .iter()
            .map(|p| pkg::Signature {
                person: (*p).into(),
                name: (*p).into(),
                role: "party".into(),
                at: 1,
                sha256: sha.clone(),
                identity: "face_recognition by med-wang at 1".into(),
            })
            .collect(),
        identity_checks: Vec::new(),
        recordings: vec![pkg::RecordingHead {
            recording: "r1".into(),
            room: "room".into(),
            chain_head: "ab".repeat(32),
        }],
        applicants: Vec::new(),
        minutes: Vec::new(),
        consents: Vec::new(),
    }
}

async fn backlog(rig: &mut Rig, n: usize) -> anyhow::Result<()> {
    let key = Signer::from_pkcs8(&std::fs::read(rig.server_dir().join("recording-key.der"))?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let db = sqlx::AnyPool::connect(&rig.database_url()).await?;
    let now = tiaojie_domain::clock::now_millis();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut tx = db.begin().await?;
        for &i in chunk {
            let id = format!("bench-case-{i}");
            sqlx::query("INSERT INTO cases (id, number, mediator, opened_at, due_at, seq) VALUES ($1, $2, 'med-wang', 0, 0, 1)")
                .bind(&id)
                .bind(format!("B{i}"))
                .execute(&mut *tx)
                .await?;
            let message = Message {
                message_id: format!("bench-{i}"),
                case_id: id.clone(),
                seq: 1,
                created_at: now,
                body: Body::Application(Box::new(package(i))),
            };
            let envelope = key.seal(&message);
            sqlx::query("INSERT INTO confirmation_outbox (message_id, case_id, seq, payload, signature, created_at) VALUES ($1, $2, 1, $3, $4, $5)")
                .bind(&message.message_id)
                .bind(&id)
                .bind(&envelope.payload)
                .bind(&envelope.signature)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    println!(
        "backlog: {n} sealed applications ({} bytes each) in the outbox",
        key.seal(&Message {
            message_id: "x".into(),
            case_id: "x".into(),
            seq: 1,
            created_at: 0,
            body: Body::Application(Box::new(package(0)))
        })
        .payload
        .len()
    );
    let started = Instant::now();
    rig.start_bridge(None).await;
    let bridge_db = bridge_db(rig).await?;
    loop {
        let count = count_inbox(&bridge_db).await?;
        if count as usize >= n {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "backlog not drained: {count}/{n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wall = started.elapsed();
    let (first, last): (i64, i64) =
        sqlx::query_as("SELECT MIN(received_at), MAX(received_at) FROM inbox")
            .fetch_one(&bridge_db)
            .await?;
    let span = (last - first).max(1) as f64 / 1000.0;
    println!(
        "backlog: {n} applications into the court inbox in {span:.2} s from the first to the last = {:.0}/s (bridge start to done: {:.2} s)",
        n as f64 / span,
        wall.as_secs_f64()
    );
    Ok(())
}

async fn bridge_db(rig: &Rig) -> anyhow::Result<sqlx::SqlitePool> {
    Ok(sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        rig.bridge_dir().join("court-bridge.sqlite").display()
    ))
    .await?)
}

async fn steady(rig: &mut Rig, rate: u64, seconds: u64) -> anyhow::Result<()> {
    let count = (rate * seconds) as usize;
    // Cases brought to an agreement in effect, the first party applied: 8 at a time.
    let started = Instant::now();
    let rig_ref = &*rig;
    let cases: Vec<_> = futures_util::stream::iter(0..count)
        .map(|n| async move {
            let case = signed_case(rig_ref, &format!("(2026)京0105民诉前调S{n}号")).await;
            let path = format!(
                "/api/cases/{}/members/p-zhang/confirmation-application",
                case.id
            );
            let (status, body) = rig_ref
                .call_api(&case.tokens["p-zhang"], Method::PUT, &path, None)
                .await;
            assert_eq!(status, 200, "{body}");
            case
        })
        .buffer_unordered(8)
        .collect()
        .await;
    println!(
        "steady: {count} cases signed and half-applied in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The last party's application, open loop at `rate`.
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        tokio::time::sleep_until((t0 + interval * i as u32).into()).await;
        let path = format!(
            "/api/cases/{}/members/p-li/confirmation-application",
            case.id
        );
        let token = case.tokens["p-li"].clone();
        let addr = rig.server_addr();
        tasks.push(tokio::spawn(async move {
            let begun = Instant::now();
            let r = reqwest::Client::new()
                .put(format!("http://{addr}{path}"))
                .bearer_auth(token)
                .send()
                .await;
            (
                r.map(|r| r.status().as_u16()).unwrap_or(0),
                begun.elapsed().as_millis() as i64,
            )
        }));
    }
    let mut api_ms = Vec::new();
    for t in tasks {
        let (status, ms) = t.await?;
        anyhow::ensure!(status == 200, "an application failed: {status}");
        api_ms.push(ms);
    }
    let offered = t0.elapsed();
    let bridge_db = bridge_db(rig).await?;
    let db = sqlx::AnyPool::connect(&rig.database_url()).await?;
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for case in &cases {
            let id: Option<String> =
                sqlx::query_scalar("SELECT message_id FROM confirmation_outbox WHERE case_id = $1")
                    .bind(&case.id)
                    .fetch_optional(&db)
                    .await?;
            ids.push(id.context("no outbox message")?);
        }
        ids
    };
    let mut to_court = Vec::new();
    for id in &ids {
        let created: i64 =
            sqlx::query_scalar("SELECT created_at FROM confirmation_outbox WHERE message_id = $1")
                .bind(id)
                .fetch_one(&db)
                .await?;
        let received = loop {
            let r: Option<i64> =
                sqlx::query_scalar("SELECT received_at FROM inbox WHERE message_id = $1")
                    .bind(id)
                    .fetch_optional(&bridge_db)
                    .await?;
            if let Some(r) = r {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        to_court.push(received - created);
    }
    println!(
        "steady: {count} applications offered at {rate}/s over {:.1} s",
        offered.as_secs_f64()
    );
    summary("  the last party's PUT (HTTP round trip)", api_ms);
    summary("  outbox write -> court inbox", to_court);
    // A judge's decision per application, at the same rate, through the bridge's API.
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        tokio::time::sleep_until((t0 + interval * i as u32).into()).await;
        let url = format!("http://{}/api/applications/{id}/actions", rig.bridge_addr());
        let token = rig.judge_token();
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"action": "accept"}))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    for t in tasks {
        let status = t.await?;
        anyhow::ensure!(status == 200, "a decision failed: {status}");
    }
    let updates: Vec<(String, i64)> = sqlx::query_as("SELECT message_id, created_at FROM outbox")
        .fetch_all(&bridge_db)
        .await?;
    let mut to_case = Vec::new();
    for (id, created) in &updates {
        let received = loop {
            let r: Option<i64> = sqlx::query_scalar(
                "SELECT received_at FROM confirmation_inbox WHERE message_id = $1",
            )
            .bind(id)
            .fetch_optional(&db)
            .await?;
            if let Some(r) = r {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        to_case.push(received - created);
    }
    summary(
        "  court decision -> applied to the case (parties notified)",
        to_case,
    );
    let admin = rig.admin_token();
    let (_, sample) = rig
        .call_api(
            &admin,
            Method::GET,
            &format!("/api/cases/{}", cases[0].id),
            None,
        )
        .await;
    anyhow::ensure!(
        sample["confirmation"]["docket"]["status"] == "accepted",
        "not applied: {}",
        sample["confirmation"]
    );
    Ok(())
}

async fn server_metric(rig: &Rig, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("http://{}/metrics", rig.server_addr()))
        .await?
        .text()
        .await?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .context("no such metric")
}

async fn count(db: &sqlx::AnyPool, sql: &'static str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(db).await?)
}

/// Phase 3: the link lost for `seconds`, with the default lease and heartbeat (30 s, 5 s).
async fn link_loss(
    bin_dir: &std::path::Path,
    backend: Backend,
    seconds: u64,
) -> anyhow::Result<()> {
    const CASES: usize = 20;
    let mut rig = Rig::new(bin_dir, backend).await;
    rig.server_setting("TIAOJIE_CONFIRMATION_LEASE", "30s");
    rig.server_setting("TIAOJIE_CONFIRMATION_HEARTBEAT", "5s");
    rig.start_server(None).await;
    let server: std::net::SocketAddr = rig.server_addr().parse()?;
    let path = tiaojie_tests::net::TcpPath::start(server).await;
    rig.bridge_dials(path.addr.port());
    rig.start_bridge(None).await;
    let bridge_db = bridge_db(&rig).await?;
    let db = sqlx::AnyPool::connect(&rig.database_url()).await?;
    let mut before = Vec::new();
    for n in 0..CASES {
        let case = signed_case(&rig, &format!("(2026)京0105民诉前调L{n}号")).await;
        tiaojie_tests::court::apply(&rig, &case).await;
        before.push(case);
    }
    while count_inbox(&bridge_db).await? < CASES as i64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    path.set_down(true);
    let lost_at = Instant::now();
    // At the court: a ruling on each application received; at the server: more applications.
    let ids: Vec<String> = sqlx::query_scalar("SELECT message_id FROM inbox")
        .fetch_all(&bridge_db)
        .await?;
    for id in &ids {
        let status = reqwest::Client::new()
            .post(format!(
                "http://{}/api/applications/{id}/actions",
                rig.bridge_addr()
            ))
            .bearer_auth(rig.judge_token())
            .json(&json!({"action": "accept"}))
            .send()
            .await?
            .status();
        anyhow::ensure!(status == 200, "a decision failed: {status}");
    }
    for n in 0..CASES {
        let case = signed_case(&rig, &format!("(2026)京0105民诉前调M{n}号")).await;
        tiaojie_tests::court::apply(&rig, &case).await;
    }
    tokio::time::sleep_until((lost_at + Duration::from_secs(seconds)).into()).await;
    let connected = server_metric(&rig, "tiaojie_confirmation_bridges_connected").await?;
    let crossed = (
        count_inbox(&bridge_db).await? - CASES as i64,
        count(&db, "SELECT COUNT(*) FROM confirmation_inbox").await?,
    );
    path.set_down(false);
    let back = Instant::now();
    loop {
        let done = count_inbox(&bridge_db).await? == 2 * CASES as i64
            && count(&db, "SELECT COUNT(*) FROM confirmation_inbox").await? == CASES as i64
            && count(
                &db,
                "SELECT COUNT(*) FROM confirmation_outbox WHERE state <> 'acked'",
            )
            .await?
                == 0;
        if done {
            break;
        }
        anyhow::ensure!(
            back.elapsed() < Duration::from_secs(120),
            "not recovered within 120 s of the network's return"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recovered = back.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let unacked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL")
        .fetch_one(&bridge_db)
        .await?;
    anyhow::ensure!(
        unacked == 0
            && count_inbox(&bridge_db).await? == 2 * CASES as i64
            && count(&db, "SELECT COUNT(*) FROM confirmation_inbox").await? == CASES as i64,
        "something crossed twice, or a court update was not acknowledged"
    );
    println!(
        "link loss: lost for {seconds} s with {CASES} rulings waiting at the court and {CASES} applications at the server; \
         during the loss: bridges connected at the server = {connected}, crossed = {} applications / {} rulings; \
         after the network came back everything crossed once in {:.2} s (checked: none twice, every court update acknowledged)",
        crossed.0,
        crossed.1,
        recovered.as_secs_f64()
    );
    rig.finish().await;
    drop(path);
    Ok(())
}

async fn count_inbox(bridge_db: &sqlx::SqlitePool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM inbox")
        .fetch_one(bridge_db)
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    sqlx::any::install_default_drivers();
    let backend = match args.backend.as_str() {
        "sqlite" => Backend::Sqlite,
        "postgres" => Backend::Postgres,
        other => anyhow::bail!("--backend sqlite or postgres, not {other}"),
    };
    let bin_dir = match args.bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .to_path_buf(),
    };
    println!(
        "confirmation-bench: {backend:?}, binaries in {}",
        bin_dir.display()
    );
    let mut rig = Rig::new(&bin_dir, backend).await;
    rig.start_server(None).await;
    if args.backlog > 0 {
        backlog(&mut rig, args.backlog).await?;
    } else {
        rig.start_bridge(None).await;
    }
    if args.rate > 0 && args.seconds > 0 {
        steady(&mut rig, args.rate, args.seconds).await?;
    }
    rig.finish().await;
    if args.link_loss > 0 {
        link_loss(&bin_dir, backend, args.link_loss).await?;
    }
    if args.crash_trials > 0 {
        let started = Instant::now();
        let (mut server, mut bridge, mut applications) = (0, 0, 0);
        for seed in 1..=args.crash_trials {
            let mut rig = Rig::new(&bin_dir, backend).await;
            rig.chaos(seed);
            let cases = 2 + (seed % 4) as usize;
            let report = rig.trial(None, cases).await;
            server += report.server_crashes;
            bridge += report.bridge_crashes;
            applications += report.applications;
            rig.finish().await;
        }
        println!(
            "crash trials: {} randomized trials, {applications} applications, {server} server and {bridge} bridge crashes, all checked (nothing lost, nothing doubled) in {:.0} s",
            args.crash_trials,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

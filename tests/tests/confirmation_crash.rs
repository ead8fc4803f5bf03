//! The crash matrix: the server and the court bridge, as real processes, crashed at every step
//! of the handoff (before and after the lease, the inbox commit, the acknowledgement, applying
//! a result) on SQLite and PostgreSQL, plus randomized SIGKILLs; after each trial nothing is
//! lost, nothing is taken twice, and every ruling applies once, on the hash applied for. The
//! benchmark (`confirmation-bench --crash-trials N`) runs the randomized trials by the hundred.

use std::path::PathBuf;
use tiaojie_tests::Backend;
use tiaojie_tests::court_crash::{FAILPOINTS, Rig};

fn bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|t| Some(t.parent()?.parent()?.to_path_buf()))
        .filter(|d| d.join("tiaojie").exists() && d.join("tiaojie-court-bridge").exists())
        .expect(
            "target/debug/tiaojie and tiaojie-court-bridge (cargo test --workspace builds them)",
        )
}

async fn every_crash_point(backend: Backend) {
    for failpoint in FAILPOINTS {
        let mut rig = Rig::new(&bin_dir(), backend).await;
        let report = rig.trial(Some(failpoint), 2).await;
        let crashed = if failpoint.starts_with("server.") {
            report.server_crashes
        } else {
            report.bridge_crashes
        };
        assert!(crashed >= 1, "{failpoint} never fired: {report:?}");
        eprintln!("{backend:?} {failpoint}: {report:?}");
        rig.finish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_on_sqlite_loses_nothing_and_doubles_nothing() {
    every_crash_point(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_on_postgres_loses_nothing_and_doubles_nothing() {
    every_crash_point(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_of_either_side_lose_nothing_and_double_nothing() {
    for seed in 1..=4u64 {
        let mut rig = Rig::new(&bin_dir(), Backend::Sqlite).await;
        rig.chaos(seed);
        let report = rig.trial(None, 3).await;
        eprintln!("seed {seed}: {report:?}");
        rig.finish().await;
    }
}

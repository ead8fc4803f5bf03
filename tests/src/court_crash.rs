//! The crash matrix's rig: the server and the court bridge as child processes on fixed loopback
//! ports with data kept across restarts; either one is crashed at a named step of the handoff
//! (`TIAOJIE_FAILPOINT`: abort, like `kill -9`) or SIGKILLed at random moments, restarted, and
//! the exactly-once invariants are checked at the end of each trial.

use crate::child::Tokens;
use crate::court::{ApiTarget, SignedCase, bridge_key, signed_case};
use crate::{Backend, TempDir};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tiaojie_domain::Role;

/// Every crash point of the handoff, server side and court side.
pub const FAILPOINTS: &[&str] = &[
    "server.after_lease",
    "server.before_ack_commit",
    "server.after_ack_commit",
    "server.before_result_commit",
    "server.after_result_commit",
    "bridge.before_inbox_commit",
    "bridge.after_inbox_commit",
    "bridge.after_result_sent",
    "bridge.before_result_ack_commit",
];

const SECRET: &str = "crash-matrix-secret-0123456789abcdef";
const JUDGE_TOKEN: &str = "crash-judge-token-0123456789abcdef";

/// A small deterministic generator (xorshift64*), so a failing trial can be replayed by seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded (0 is replaced).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// In `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// What a trial did.
#[derive(Debug, Default, Clone)]
pub struct TrialReport {
    /// Server crashes (failpoint aborts and kills).
    pub server_crashes: u32,
    /// Bridge crashes.
    pub bridge_crashes: u32,
    /// Applications handed across.
    pub applications: usize,
    /// How long the trial took.
    pub elapsed: Duration,
}

/// The two processes and their data.
pub struct Rig {
    server_bin: PathBuf,
    bridge_bin: PathBuf,
    dir: TempDir,
    server_port: u16,
    bridge_port: u16,
    database_url: Option<(String, String)>,
    bridge_key: String,
    server: Option<Child>,
    bridge: Option<Child>,
    tokens: Tokens,
    http: reqwest::Client,
    report: TrialReport,
    /// Random SIGKILLs, when on: the generator that plans them.
    chaos: Option<Rng>,
    /// The processes' ids now (server, bridge), for the chaos thread's SIGKILLs.
    pids: std::sync::Arc<std::sync::Mutex<[Option<u32>; 2]>>,
    /// The port the bridge dials instead of the server's (a [`crate::net::TcpPath`]).
    bridge_dials: Option<u16>,
    /// Settings for the server over the rig's own (later ones win).
    server_env_extra: Vec<(String, String)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn alive(child: &mut Option<Child>) -> bool {
    child
        .as_mut()
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
}

fn kill(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Rig {
    /// A rig in a fresh directory; `bin_dir` holds `tiaojie` and `tiaojie-court-bridge`.
    pub async fn new(bin_dir: &std::path::Path, backend: Backend) -> Rig {
        let dir = TempDir::new("crash");
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(crate::postgres::create_database().await),
        };
        let bridge_dir = dir.0.join("bridge");
        let key = bridge_key(&bridge_dir);
        Rig {
            server_bin: bin_dir.join("tiaojie"),
            bridge_bin: bin_dir.join("tiaojie-court-bridge"),
            server_port: free_port(),
            bridge_port: free_port(),
            database_url,
            bridge_key: key,
            server: None,
            bridge: None,
            tokens: Tokens::new(SECRET).expect("tokens"),
            http: reqwest::Client::new(),
            report: TrialReport::default(),
            chaos: None,
            pids: Default::default(),
            bridge_dials: None,
            server_env_extra: Vec::new(),
            dir,
        }
    }

    /// The server's HTTP address.
    pub fn server_addr(&self) -> String {
        format!("127.0.0.1:{}", self.server_port)
    }

    /// The bridge's HTTP address (judges' page and API).
    pub fn bridge_addr(&self) -> String {
        format!("127.0.0.1:{}", self.bridge_port)
    }

    /// The server's data directory.
    pub fn server_dir(&self) -> PathBuf {
        self.dir.0.join("server")
    }

    /// The bridge's data directory.
    pub fn bridge_dir(&self) -> PathBuf {
        self.dir.0.join("bridge")
    }

    /// The server's database URL.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some((_, url)) => url.clone(),
            None => {
                let mut config = tiaojie_config::Config::default();
                config.server.data_dir = self.server_dir();
                config.database_url()
            }
        }
    }

    /// The judges' API token.
    pub fn judge_token(&self) -> &'static str {
        JUDGE_TOKEN
    }

    /// An admin token for the server.
    pub fn admin_token(&self) -> String {
        self.tokens.issue_admin("bench-admin")
    }

    /// Turns on random SIGKILLs: one to three, of the server, the bridge or both, at random
    /// moments in the first 1.5 s of the handoff (it takes about that long).
    pub fn chaos(&mut self, seed: u64) {
        self.chaos = Some(Rng::new(seed));
    }

    fn set_pid(&self, which: usize, pid: Option<u32>) {
        if let Ok(mut pids) = self.pids.lock() {
            pids[which] = pid;
        }
    }

    /// Plans and starts this trial's kills on a thread of their own: they land while the two
    /// processes work, not only while the test looks.
    fn unleash(&mut self) -> Option<std::thread::JoinHandle<()>> {
        let rng = self.chaos.as_mut()?;
        let mut plan: Vec<(u64, u64)> = (0..=rng.below(3))
            .map(|_| (rng.below(1500), rng.below(3)))
            .collect();
        plan.sort_unstable();
        let pids = self.pids.clone();
        Some(std::thread::spawn(move || {
            let started = Instant::now();
            for (at, target) in plan {
                std::thread::sleep(Duration::from_millis(at).saturating_sub(started.elapsed()));
                let current = pids.lock().map(|p| *p).unwrap_or_default();
                let victims: Vec<u32> = match target {
                    0 => current[0].into_iter().collect(),
                    1 => current[1].into_iter().collect(),
                    _ => current.iter().flatten().copied().collect(),
                };
                for pid in victims {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
        }))
    }

    fn server_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "TIAOJIE_SERVER_LISTEN".to_string(),
                format!("127.0.0.1:{}", self.server_port),
            ),
            (
                "TIAOJIE_SERVER_DATA_DIR".into(),
                self.dir.0.join("server").display().to_string(),
            ),
            ("TIAOJIE_AUTH_SECRET".into(), SECRET.into()),
            ("TIAOJIE_MEDIA_BIND".into(), "127.0.0.1:0".into()),
            ("TIAOJIE_LOG_LEVEL".into(), "warn".into()),
            (
                "TIAOJIE_CONFIRMATION_BRIDGE_KEYS".into(),
                self.bridge_key.clone(),
            ),
            ("TIAOJIE_CONFIRMATION_LEASE".into(), "2s".into()),
            ("TIAOJIE_CONFIRMATION_RETRY".into(), "200ms".into()),
            ("TIAOJIE_CONFIRMATION_HEARTBEAT".into(), "500ms".into()),
        ];
        env.extend(self.server_env_extra.iter().cloned());
        if let Some((_, url)) = &self.database_url {
            env.push(("TIAOJIE_DATABASE_URL".into(), url.clone()));
        }
        env
    }

    fn log(&self, name: &str) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.0.join(name))
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    /// Starts the server (with a crash point, or none).
    pub async fn start_server(&mut self, failpoint: Option<&str>) {
        kill(&mut self.server);
        let child = Command::new(&self.server_bin)
            .arg("serve")
            .envs(self.server_env())
            .env(
                tiaojie_confirmation::failpoint::VAR,
                failpoint.unwrap_or(""),
            )
            .stdout(Stdio::null())
            .stderr(self.log("server.log"))
            .spawn()
            .expect("server starts");
        self.set_pid(0, Some(child.id()));
        self.server = Some(child);
        self.wait_up(0).await;
    }

    /// Sets `TIAOJIE_…` `key` for the server over the rig's setting (before it starts).
    pub fn server_setting(&mut self, key: &str, value: &str) {
        self.server_env_extra.push((key.into(), value.into()));
    }

    /// Has the bridge dial `port` on 127.0.0.1 instead of the server (before it first starts).
    pub fn bridge_dials(&mut self, port: u16) {
        self.bridge_dials = Some(port);
    }

    /// Starts the bridge (with a crash point, or none); writes its configuration first.
    pub async fn start_bridge(&mut self, failpoint: Option<&str>) {
        kill(&mut self.bridge);
        let bridge_dir = self.dir.0.join("bridge");
        let config = bridge_dir.join("court-bridge.toml");
        if !config.exists() {
            let server_key = self.server_key();
            let text = format!(
                "name = \"crash-court\"\nserver_url = \"ws://127.0.0.1:{}/confirmation/bridge\"\n\
                 server_public_key = \"{server_key}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\n\n\
                 [[judges]]\nid = \"judge-sun\"\nname = \"孙法官\"\ntoken = \"{JUDGE_TOKEN}\"\n",
                self.bridge_dials.unwrap_or(self.server_port),
                bridge_dir.display(),
                self.bridge_port
            );
            std::fs::write(&config, text).expect("bridge config");
        }
        let child = Command::new(&self.bridge_bin)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("TIAOJIE_LOG", "warn")
            .env(
                tiaojie_confirmation::failpoint::VAR,
                failpoint.unwrap_or(""),
            )
            .stdout(Stdio::null())
            .stderr(self.log("bridge.log"))
            .spawn()
            .expect("bridge starts");
        self.set_pid(1, Some(child.id()));
        self.bridge = Some(child);
        self.wait_up(1).await;
    }

    fn server_key(&self) -> String {
        let out = Command::new(&self.server_bin)
            .args(["keys", "server-public"])
            .envs(self.server_env())
            .output()
            .expect("tiaojie keys server-public");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Waits for the server (0) or the bridge (1) to answer `/healthz`; returns early if it
    /// died meanwhile (a planned kill): the next [`Rig::tend`] starts it again.
    async fn wait_up(&mut self, which: usize) {
        let port = [self.server_port, self.bridge_port][which];
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let child = if which == 0 {
                &mut self.server
            } else {
                &mut self.bridge
            };
            if !alive(child) {
                return;
            }
            if let Ok(r) = self
                .http
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "nothing answers on port {port} (logs in {})",
            self.dir.0.display()
        );
    }

    /// Restarts whichever process died (a crash point fired, or a kill), without a crash point.
    /// Called between the steps of a trial.
    pub async fn tend(&mut self) {
        if !alive(&mut self.server) {
            self.report.server_crashes += 1;
            self.start_server(None).await;
        }
        if !alive(&mut self.bridge) {
            self.report.bridge_crashes += 1;
            self.start_bridge(None).await;
        }
    }

    /// The judges' API, `None` when the bridge is down.
    async fn judge(&self, method: Method, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        let mut request = self
            .http
            .request(
                method,
                format!("http://127.0.0.1:{}/api{path}", self.bridge_port),
            )
            .bearer_auth(JUDGE_TOKEN)
            .timeout(Duration::from_secs(5));
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.json().await.ok()?))
    }

    /// Repeats `step` (tending the processes between tries) until it gives a value.
    async fn until<T>(
        &mut self,
        what: &str,
        mut step: impl AsyncFnMut(&mut Rig) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(v) = step(self).await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} (logs in {})",
                self.dir.0.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.tend().await;
        }
    }

    /// One trial: `cases` applications across, each accepted and confirmed, with `failpoint`
    /// armed in its process for the first run; then the invariants.
    pub async fn trial(&mut self, failpoint: Option<&str>, cases: usize) -> TrialReport {
        let started = Instant::now();
        let (server_fp, bridge_fp) = match failpoint {
            Some(f) if f.starts_with("server.") => (Some(f), None),
            Some(f) => (None, Some(f)),
            None => (None, None),
        };
        self.start_server(server_fp).await;
        // Cases are made before the bridge connects, so the crash points fire in the handoff.
        let mut signed = Vec::new();
        for n in 0..cases {
            signed.push(signed_case(&*self, &format!("(2026)京0105民诉前调9{n:03}号")).await);
        }
        self.start_bridge(bridge_fp).await;
        let chaos = self.unleash();
        // Every party applies; a server that crashes meanwhile is restarted and asked again.
        for case in &signed {
            for p in ["p-zhang", "p-li"] {
                let path = format!(
                    "/api/cases/{}/members/{p}/confirmation-application",
                    case.id
                );
                let token = case.tokens[p].clone();
                self.until("an application to be taken", async |rig| {
                    let (status, _) = rig.call_api(&token, Method::PUT, &path, None).await;
                    // 409: this party's application was already recorded (before a crash).
                    (status == 200 || status == 409).then_some(())
                })
                .await;
            }
        }
        self.report.applications = cases;
        let ids = self
            .until("every application at the court", async |rig| {
                let (_, list) = rig.judge(Method::GET, "/applications", None).await?;
                let ids: Vec<String> = list
                    .as_array()?
                    .iter()
                    .filter_map(|d| d["id"].as_str().map(str::to_string))
                    .collect();
                (ids.len() >= cases).then_some(ids)
            })
            .await;
        // The judge accepts and confirms each; an action that was done before a crash answers
        // 409, which counts as done.
        for id in &ids {
            for action in [
                json!({"action": "accept"}),
                json!({"action": "confirm", "ruling_number": format!("(2026)京0105民特{id}号"), "ruling_text": "调解协议有效。"}),
            ] {
                let path = format!("/applications/{id}/actions");
                self.until("a judge's action", async |rig| {
                    let (status, _) = rig.judge(Method::POST, &path, Some(action.clone())).await?;
                    (status == 200 || status == 409).then_some(())
                })
                .await;
            }
        }
        for case in &signed {
            let path = format!("/api/cases/{}", case.id);
            self.until("the ruling at the server", async |rig| {
                let admin = rig.tokens.issue_admin("crash-admin");
                let (_, v) = rig.call_api(&admin, Method::GET, &path, None).await;
                (v["confirmation"]["docket"]["status"] == "confirmed").then_some(())
            })
            .await;
        }
        // The last planned kill may still be ahead: let it land, then let the two recover.
        if let Some(chaos) = chaos {
            let _ = tokio::task::spawn_blocking(move || chaos.join()).await;
            self.tend().await;
        }
        self.until("both outboxes to drain", async |rig| {
            let admin = rig.tokens.issue_admin("crash-admin");
            let (_, pending) = rig
                .call_api(
                    &admin,
                    Method::GET,
                    "/api/confirmation/outbox?state=pending",
                    None,
                )
                .await;
            let health: Value = rig
                .http
                .get(format!("http://127.0.0.1:{}/healthz", rig.bridge_port))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (pending.as_array()?.is_empty() && health["outbox_pending"] == 0).then_some(())
        })
        .await;
        self.check(&signed, &ids).await;
        self.report.elapsed = started.elapsed();
        self.report.clone()
    }

    /// The invariants: nothing lost, nothing taken twice, every result once and on its hash.
    async fn check(&mut self, signed: &[SignedCase], ids: &[String]) {
        let admin = self.tokens.issue_admin("crash-admin");
        let (_, dead) = self
            .call_api(
                &admin,
                Method::GET,
                "/api/confirmation/outbox?state=dead",
                None,
            )
            .await;
        assert_eq!(dead, json!([]), "no message dead-lettered");
        let (_, acked) = self
            .call_api(
                &admin,
                Method::GET,
                "/api/confirmation/outbox?state=acked",
                None,
            )
            .await;
        assert_eq!(
            acked.as_array().map(Vec::len),
            Some(signed.len()),
            "one outbox message per application: {acked}"
        );
        let health: Value = self
            .http
            .get(format!("http://127.0.0.1:{}/healthz", self.bridge_port))
            .send()
            .await
            .expect("bridge up")
            .json()
            .await
            .expect("json");
        assert_eq!(
            health["inbox"],
            signed.len(),
            "each application in the court inbox once: {health}"
        );
        assert_eq!(ids.len(), signed.len(), "one docket per application");
        for case in signed {
            let (_, v) = self
                .call_api(
                    &admin,
                    Method::GET,
                    &format!("/api/cases/{}", case.id),
                    None,
                )
                .await;
            let c = &v["confirmation"];
            let actions: Vec<&str> = c["updates"]
                .as_array()
                .map(|u| {
                    u.iter()
                        .filter_map(|u| u["action"]["action"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(
                actions,
                ["accept", "confirm"],
                "each result applied once, in order: {c}"
            );
            for u in c["updates"].as_array().into_iter().flatten() {
                assert_eq!(
                    u["agreement_sha256"],
                    case.sha256.as_str(),
                    "on the hash applied for"
                );
            }
            let (_, events) = self
                .call_api(
                    &admin,
                    Method::GET,
                    &format!("/api/cases/{}/events", case.id),
                    None,
                )
                .await;
            let court = events.as_array().map(|e| {
                e.iter()
                    .filter(|e| e["event"]["kind"] == "court_updated")
                    .count()
            });
            assert_eq!(court, Some(2), "two court updates in the record");
            // Each committed with its audit entry, whatever was killed when.
            let (_, audit) = self
                .call_api(
                    &admin,
                    Method::GET,
                    &format!("/api/audit?target=case:{}", case.id),
                    None,
                )
                .await;
            let audited = audit.as_array().map(|e| {
                e.iter()
                    .filter(|e| e["action"] == "confirmation.court_update")
                    .count()
            });
            assert_eq!(audited, Some(2), "each court update audited once: {audit}");
        }
        let (_, verified) = self
            .call_api(&admin, Method::GET, "/api/audit/verify", None)
            .await;
        assert_eq!(
            verified["problems"],
            json!([]),
            "the chain holds and every case event, the court's too, has its entry"
        );
    }

    /// Kills both and removes the data (and the PostgreSQL database).
    pub async fn finish(mut self) {
        kill(&mut self.server);
        kill(&mut self.bridge);
        self.dir.remove();
        if let Some((name, _)) = self.database_url.take() {
            crate::postgres::drop_database(&name).await;
        }
    }
}

impl Drop for Rig {
    /// A trial that panics still leaves no processes behind.
    fn drop(&mut self) {
        kill(&mut self.server);
        kill(&mut self.bridge);
    }
}

impl ApiTarget for Rig {
    fn staff(&self, identity: &str, role: Role) -> String {
        self.tokens.issue_staff(identity, role)
    }

    async fn call_api(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(
                method,
                format!("http://127.0.0.1:{}{path}", self.server_port),
            )
            .bearer_auth(token)
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            request = request.json(&b);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            // The server is down (crashed): the caller tends the processes and tries again.
            Err(_) => (0, Value::Null),
        }
    }
}

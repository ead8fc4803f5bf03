//! Benchmarks' shared parts: the `tiaojie` server as a child process (so its CPU time and memory
//! are measured apart from the load), join tokens for it, and small measuring helpers.

use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tiaojie_config::AuthConfig;
use tiaojie_domain::Role;
use tiaojie_signaling::token::{TokenKeys, TokenRequest};

/// A `tiaojie serve` child process on 127.0.0.1.
pub struct ServerProcess {
    child: Option<Child>,
    /// Its HTTP address.
    pub addr: String,
    /// Its data directory.
    pub dir: PathBuf,
}

impl ServerProcess {
    /// Starts `bin serve` on port 0 with a fresh data directory, `secret` and extra `env`.
    pub fn start(bin: &Path, secret: &str, env: &[(&str, &str)]) -> anyhow::Result<ServerProcess> {
        let dir = std::env::temp_dir().join(format!(
            "tiaojie-load-{}-{}",
            std::process::id(),
            tiaojie_domain::clock::now_millis()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Self::start_in(bin, &dir, secret, env)
    }

    /// Starts `bin serve` on port 0 with the data directory `dir` (kept from an earlier run, or
    /// new).
    pub fn start_in(
        bin: &Path,
        dir: &Path,
        secret: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<ServerProcess> {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let mut child = Command::new(bin)
            .arg("serve")
            .env("TIAOJIE_SERVER_LISTEN", "127.0.0.1:0")
            .env("TIAOJIE_SERVER_DATA_DIR", &dir)
            .env("TIAOJIE_AUTH_SECRET", secret)
            .env("TIAOJIE_LOG_LEVEL", "warn")
            .env("TIAOJIE_MEDIA_BIND", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines.next().context("server exited before listening")??;
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest
                    .split_whitespace()
                    .next()
                    .context("address")?
                    .to_string();
            }
        };
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Ok(ServerProcess {
            child: Some(child),
            addr,
            dir,
        })
    }

    /// A server someone else started.
    pub fn attach(addr: &str) -> ServerProcess {
        ServerProcess {
            child: None,
            addr: addr.to_string(),
            dir: PathBuf::new(),
        }
    }

    /// Its process id (0 when attached).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Resident memory, KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:")
    }

    /// User + system CPU time so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds_of(&format!("/proc/{}/stat", self.pid()))
    }

    /// SIGINT, wait, remove its data.
    pub fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// SIGKILL — no shutdown at all, as in a crash or power loss; the data directory is kept
    /// and returned.
    pub fn kill(mut self) -> PathBuf {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::mem::take(&mut self.dir)
    }
}

/// A `KiB` line of `/proc/<pid>/status`.
pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU seconds from a `/proc/<pid>/stat` file.
pub fn cpu_seconds_of(stat_path: &str) -> f64 {
    let stat = std::fs::read_to_string(stat_path).unwrap_or_default();
    // Fields after the command name: utime and stime are the 12th and 13th, in clock ticks
    // (100 per second on Linux).
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// The `p` quantile (0..1) of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Join tokens minted with the same secret the child server was started with.
pub struct Tokens(TokenKeys);

impl Tokens {
    /// Keys for HS256 with `secret`.
    pub fn new(secret: &str) -> anyhow::Result<Tokens> {
        let auth = AuthConfig {
            secret: secret.into(),
            ..Default::default()
        };
        Ok(Tokens(TokenKeys::from_config(
            &auth,
            &std::env::temp_dir(),
        )?))
    }

    /// A join token for `identity` in `room` with `role`'s default grants ("" if it cannot be made).
    pub fn issue(&self, room: &str, identity: &str, name: &str, role: Role) -> String {
        let request = TokenRequest {
            identity: identity.into(),
            name: name.into(),
            room: Some(room.into()),
            role,
            grants: None,
            ttl: None,
            not_before_secs: 0,
        };
        self.0.issue(&request).map(|(t, _)| t).unwrap_or_default()
    }

    /// A room-less staff token (a mediator's for their own cases) ("" if it cannot be made).
    pub fn issue_staff(&self, identity: &str, role: Role) -> String {
        let request = TokenRequest {
            identity: identity.into(),
            name: identity.into(),
            room: None,
            role,
            grants: None,
            ttl: None,
            not_before_secs: 0,
        };
        self.0.issue(&request).map(|(t, _)| t).unwrap_or_default()
    }

    /// An admin token for the control API ("" if it cannot be made).
    pub fn issue_admin(&self, identity: &str) -> String {
        let request = TokenRequest {
            identity: identity.into(),
            name: identity.into(),
            room: None,
            role: Role::Admin,
            grants: None,
            ttl: None,
            not_before_secs: 0,
        };
        self.0.issue(&request).map(|(t, _)| t).unwrap_or_default()
    }
}

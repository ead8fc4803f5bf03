//! tiaojie's configuration.
//!
//! Map of the crate:
//! - [`Config`] and its sections ([`ServerConfig`], [`DatabaseConfig`], [`AuthConfig`],
//!   [`SignalingConfig`], [`ApiConfig`], [`MediaConfig`], [`RecordingConfig`],
//!   [`ConfirmationConfig`], [`DocumentsConfig`], [`LogConfig`]): every key has an embedded default, so
//!   `tiaojie serve` runs with no file at all. `config/tiaojie.toml` documents each key.
//! - [`Config::load`]: defaults ← TOML file ← `TIAOJIE_<SECTION>_<KEY>` environment variables,
//!   then [`Config::validate`]. Every error names the key (or variable) that caused it.
//! - [`duration`]: the human duration format used by every time-valued key (`"30s"`, `"2h"`).
//!
//! This crate knows nothing of sockets or storage: it only turns text into checked values.

pub mod duration;

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "TIAOJIE_";

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a value has the wrong type; the message shows the line.
    #[error("configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// The parser's message, which quotes the offending key and line.
        message: String,
    },
    /// An environment override names no known key or carries a bad value.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable, e.g. `TIAOJIE_SERVER_LISTEN`.
        var: String,
        /// What is wrong with it.
        message: String,
    },
    /// A key has a well-typed but unusable value.
    #[error("configuration key {key}: {message}")]
    Invalid {
        /// The key, e.g. `signaling.max_message_bytes`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

/// The whole configuration, one field per TOML section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where to listen and keep data.
    pub server: ServerConfig,
    /// `[database]`: which database holds rooms and records.
    pub database: DatabaseConfig,
    /// `[auth]`: how join tokens are signed and checked.
    pub auth: AuthConfig,
    /// `[signaling]`: WebSocket limits and the resume grace period.
    pub signaling: SignalingConfig,
    /// `[api]`: control API limits.
    pub api: ApiConfig,
    /// `[media]`: the SFU's UDP port and the addresses clients reach it on.
    pub media: MediaConfig,
    /// `[recording]`: what may be recorded, where recordings are kept, who may read them.
    pub recording: RecordingConfig,
    /// `[confirmation]`: the court bridge's keys and the outbox's leases.
    pub confirmation: ConfirmationConfig,
    /// `[documents]`: the court documents' heading and font.
    pub documents: DocumentsConfig,
    /// `[log]`: log format and level.
    pub log: LogConfig,
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP/WebSocket listener binds.
    pub listen: SocketAddr,
    /// Directory for the SQLite database, the generated token secret, the recording key and
    /// recordings.
    pub data_dir: PathBuf,
    /// Base URL people reach the server at, used in join links. Empty: `http://<listen>`.
    pub public_url: String,
    /// How long shutdown waits for connections to close after telling clients.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// Longest wait for a request's headers; a slower client is disconnected.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// Most open connections (HTTP and WebSocket) from one client address. People behind one
    /// office NAT share an address: each browser holds one WebSocket and a few HTTP connections.
    pub max_connections_per_address: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            public_url: String::new(),
            shutdown_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            max_connections_per_address: 256,
        }
    }
}

impl ServerConfig {
    /// The base URL for links, without a trailing slash.
    pub fn public_base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.listen)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`. Empty: SQLite at `<data_dir>/tiaojie.db`.
    pub url: String,
    /// Connection pool size.
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            max_connections: 8,
        }
    }
}

/// Token signing algorithm.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum TokenAlgorithm {
    /// HMAC-SHA256 with a shared secret (default; the secret never leaves the server).
    HS256,
    /// Ed25519 signatures: tokens can be verified, or issued elsewhere, with a public key.
    EdDSA,
}

/// `[auth]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `HS256` or `EdDSA`.
    pub algorithm: TokenAlgorithm,
    /// HS256 secret (at least 32 bytes). Empty: generated on first run into `<data_dir>/jwt-secret`.
    pub secret: String,
    /// EdDSA: PEM file with the PKCS#8 Ed25519 private key. Empty: this server only verifies.
    pub ed25519_private_key: PathBuf,
    /// EdDSA: PEM file with the Ed25519 public key (SPKI).
    pub ed25519_public_key: PathBuf,
    /// `iss` claim written into and required of every token.
    pub issuer: String,
    /// Lifetime of a token when none is asked for.
    #[serde(with = "duration")]
    pub default_ttl: Duration,
    /// Longest lifetime a token may be issued with.
    #[serde(with = "duration")]
    pub max_ttl: Duration,
    /// Clock skew tolerated when checking `exp` and `nbf`.
    #[serde(with = "duration")]
    pub leeway: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            algorithm: TokenAlgorithm::HS256,
            secret: String::new(),
            ed25519_private_key: PathBuf::new(),
            ed25519_public_key: PathBuf::new(),
            issuer: "tiaojie".into(),
            default_ttl: Duration::from_secs(2 * 3600),
            max_ttl: Duration::from_secs(30 * 24 * 3600),
            leeway: Duration::from_secs(30),
        }
    }
}

/// `[signaling]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SignalingConfig {
    /// How long a participant whose connection dropped may resume before the others see it leave.
    #[serde(with = "duration")]
    pub resume_grace: Duration,
    /// Largest WebSocket message answered normally; larger ones get a `message_too_large` error.
    pub max_message_bytes: usize,
    /// Sustained client messages per second per connection.
    pub rate_limit_per_second: u32,
    /// Burst of client messages allowed above the sustained rate.
    pub rate_limit_burst: u32,
    /// Most participants (connected or within grace) one room holds.
    pub max_participants_per_room: usize,
    /// Whether a valid token for an unknown room creates it (otherwise rooms come from the API).
    pub auto_create_rooms: bool,
    /// Messages queued to one client before it is treated as stalled and disconnected.
    pub outbound_queue: usize,
    /// Interval of server WebSocket pings; a client silent for three intervals is treated as dropped.
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    /// Events kept for a disconnected participant to replay on resume.
    pub resume_buffer: usize,
    /// Longest one write to a client may wait; a client that stops reading for longer is
    /// disconnected (and may resume).
    #[serde(with = "duration")]
    pub send_timeout: Duration,
    /// How long a new WebSocket may stay without joining (or following a case).
    #[serde(with = "duration")]
    pub join_timeout: Duration,
}

impl Default for SignalingConfig {
    fn default() -> Self {
        Self {
            resume_grace: Duration::from_secs(30),
            max_message_bytes: 64 * 1024,
            rate_limit_per_second: 20,
            rate_limit_burst: 50,
            max_participants_per_room: 50,
            auto_create_rooms: true,
            outbound_queue: 512,
            ping_interval: Duration::from_secs(15),
            resume_buffer: 256,
            send_timeout: Duration::from_secs(10),
            join_timeout: Duration::from_secs(10),
        }
    }
}

/// `[api]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// `[media]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Run the SFU (audio and video); off, signaling answers media requests `media_unavailable`.
    pub enabled: bool,
    /// The one UDP address every participant's media uses.
    pub bind: SocketAddr,
    /// Comma-separated IP addresses put in ICE candidates, e.g. the public address of a server
    /// behind NAT; empty: the `bind` address (which then must not be 0.0.0.0).
    pub advertise: String,
    /// Least time between keyframe requests to one publisher while one is outstanding.
    #[serde(with = "duration")]
    pub keyframe_throttle: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 50000)),
            advertise: String::new(),
            keyframe_throttle: Duration::from_secs(1),
        }
    }
}

impl MediaConfig {
    /// The advertised addresses, parsed.
    pub fn advertise_ips(&self) -> Result<Vec<std::net::IpAddr>, String> {
        self.advertise
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().map_err(|_| format!("{a:?} is not an IP address")))
            .collect()
    }
}

/// `[recording]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// The most any room may record: `off`, `audio` or `audio_video`. A room's own policy
    /// (set when it is created) may allow less, never more.
    pub allowed: String,
    /// Whether private rooms (背对背) are recorded too. Off: a person in a private room is not
    /// recorded there, and the recording's events say so.
    pub private_rooms: bool,
    /// Where recordings are kept; empty: `<server.data_dir>/recordings`.
    pub dir: String,
    /// The Ed25519 key (PKCS#8 DER) recordings are signed with; empty:
    /// `<server.data_dir>/recording-key.der`, generated on first start.
    pub key_file: String,
    /// Seal a captured segment (fsync, hash, chain) after this long...
    #[serde(with = "duration")]
    pub segment_age: Duration,
    /// ...or at this size, whichever comes first. A crash loses at most the open segment.
    pub segment_bytes: u64,
    /// Packets the media plane may queue for the recorder before it drops (and logs) them.
    pub tap_capacity: usize,
    /// Days a finished recording is kept before it is deleted (audited); 0 keeps it forever.
    pub retention_days: u32,
    /// Whether parties and agents may list and download their room's recordings (mediators,
    /// judges and admins always may). Ignored while `private_rooms` is on: a recording may then
    /// hold one side's private room, which the other side must never get.
    pub participant_download: bool,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            allowed: "audio_video".into(),
            private_rooms: false,
            dir: String::new(),
            key_file: String::new(),
            segment_age: Duration::from_secs(10),
            segment_bytes: 4 << 20,
            tap_capacity: 8192,
            retention_days: 0,
            participant_download: false,
        }
    }
}

impl RecordingConfig {
    /// The recordings directory.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        if self.dir.is_empty() {
            data_dir.join("recordings")
        } else {
            PathBuf::from(&self.dir)
        }
    }

    /// The signing key's file.
    pub fn key_file(&self, data_dir: &Path) -> PathBuf {
        if self.key_file.is_empty() {
            data_dir.join("recording-key.der")
        } else {
            PathBuf::from(&self.key_file)
        }
    }
}

/// `[confirmation]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConfirmationConfig {
    /// Public keys (Ed25519, base64, comma-separated) of the court bridges allowed to connect;
    /// `tiaojie-court-bridge key` prints a bridge's. Empty: no bridge can connect.
    pub bridge_keys: String,
    /// How long a delivered message stays leased to a connection before it is delivered
    /// again if not acknowledged.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// Messages delivered to the bridge and not yet acknowledged, at most, per connection:
    /// enough to keep the link busy while acknowledgements travel back.
    pub window: u32,
    /// After the bridge refuses a message, the wait before delivering it again.
    #[serde(with = "duration")]
    pub retry: Duration,
    /// How often the server pings a bridge connection. A connection silent for three of
    /// these is taken for lost (a network that drops packets closes nothing): the server
    /// gives back its leases, the bridge dials again. Three must be shorter than `lease`.
    #[serde(with = "duration")]
    pub heartbeat: Duration,
}

impl Default for ConfirmationConfig {
    fn default() -> Self {
        Self {
            bridge_keys: String::new(),
            lease: Duration::from_secs(30),
            window: 1024,
            retry: Duration::from_secs(5),
            heartbeat: Duration::from_secs(5),
        }
    }
}

impl ConfirmationConfig {
    /// The bridge keys, one per entry.
    pub fn bridge_keys(&self) -> Vec<String> {
        self.bridge_keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// `[documents]`
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentsConfig {
    /// The court or mediation organisation heading the 调解协议书 and 调解笔录, e.g.
    /// `北京市朝阳区人民法院诉调对接中心`. Empty: no heading above the title.
    pub issuer: String,
    /// The font the documents are set in: a file, or `file:face` for a face of a collection.
    /// Empty: the first installed of Noto Serif CJK SC (Debian's fonts-noto-cjk), AR PL
    /// UMing, WenQuanYi Micro Hei.
    pub font: String,
    /// The bold font, the same way. Empty: with `font` empty, the found family's bold;
    /// otherwise `font` again.
    pub font_bold: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `tiaojie_signaling=debug,info`; `RUST_LOG` wins if set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl Config {
    /// Defaults, then the file (if any), then `TIAOJIE_<SECTION>_<KEY>` variables from `env`, then
    /// [`Config::validate`].
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match file {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?,
            None => String::new(),
        };
        let label = file.map(Path::to_path_buf).unwrap_or_default();
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::File {
            path: label,
            message: e.to_string(),
        })?;
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (var, value) in vars {
            config = config.with_env_override(&var, &value)?;
        }
        config.validate()?;
        Ok(config)
    }

    /// Applies one `TIAOJIE_<SECTION>_<KEY>=value`. Variables whose section is not a
    /// configuration section (e.g. `TIAOJIE_TEST_...`) are left to whoever reads them.
    fn with_env_override(&self, var: &str, value: &str) -> Result<Config, ConfigError> {
        let env_err = |message: String| ConfigError::Env {
            var: var.to_string(),
            message,
        };
        let rest = &var[ENV_PREFIX.len()..];
        let Some((section, key)) = rest.split_once('_') else {
            return Ok(self.clone());
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let mut table = toml::Table::try_from(self).map_err(|e| env_err(e.to_string()))?;
        let Some(toml::Value::Table(section_table)) = table.get_mut(&section) else {
            return Ok(self.clone());
        };
        let new_value = match section_table.get(&key) {
            Some(toml::Value::Integer(_)) => {
                toml::Value::Integer(value.trim().parse().map_err(|_| {
                    env_err(format!(
                        "{section}.{key} must be a whole number, got {value:?}"
                    ))
                })?)
            }
            Some(toml::Value::Boolean(_)) => toml::Value::Boolean(match value.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(env_err(format!(
                        "{section}.{key} must be true or false, got {value:?}"
                    )));
                }
            }),
            Some(toml::Value::String(_)) => toml::Value::String(value.to_string()),
            Some(_) => {
                return Err(env_err(format!(
                    "{section}.{key} cannot be set from the environment"
                )));
            }
            None => return Err(env_err(format!("[{section}] has no key {key:?}"))),
        };
        section_table.insert(key.clone(), new_value);
        // Round-trip through text so the parser's message quotes the offending line.
        let text = toml::to_string(&table).map_err(|e| env_err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| env_err(format!("{section}.{key}: {e}")))
    }

    /// Checks values whose type is right but whose meaning is not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: &str| {
            Err(ConfigError::Invalid {
                key,
                message: message.to_string(),
            })
        };
        if self.server.data_dir.as_os_str().is_empty() {
            return invalid("server.data_dir", "must not be empty");
        }
        if self.server.header_timeout < Duration::from_millis(100) {
            return invalid("server.header_timeout", "must be at least 100ms");
        }
        if self.server.max_connections_per_address == 0 {
            return invalid("server.max_connections_per_address", "must be at least 1");
        }
        let url = &self.database.url;
        if !(url.is_empty()
            || url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return invalid(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            );
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1");
        }
        let public_url = &self.server.public_url;
        if !(public_url.is_empty()
            || public_url.starts_with("http://")
            || public_url.starts_with("https://"))
        {
            return invalid("server.public_url", "must start with http:// or https://");
        }
        match self.auth.algorithm {
            TokenAlgorithm::HS256 => {
                if !self.auth.secret.is_empty() && self.auth.secret.len() < 32 {
                    return invalid(
                        "auth.secret",
                        "must be at least 32 bytes (or empty to generate one)",
                    );
                }
            }
            TokenAlgorithm::EdDSA => {
                if self.auth.ed25519_public_key.as_os_str().is_empty() {
                    return invalid(
                        "auth.ed25519_public_key",
                        "is required when auth.algorithm = \"EdDSA\"",
                    );
                }
            }
        }
        let ips = match self.media.advertise_ips() {
            Ok(ips) => ips,
            Err(e) => return invalid("media.advertise", &e),
        };
        if ips
            .iter()
            .any(|ip| ip.is_unspecified() || ip.is_multicast())
        {
            return invalid("media.advertise", "must name addresses clients can reach");
        }
        if self.media.enabled && ips.is_empty() && self.media.bind.ip().is_unspecified() {
            return invalid(
                "media.advertise",
                "is required when media.bind is 0.0.0.0 (the address clients reach)",
            );
        }
        if self.auth.issuer.is_empty() {
            return invalid("auth.issuer", "must not be empty");
        }
        let r = &self.recording;
        if !["off", "audio", "audio_video"].contains(&r.allowed.as_str()) {
            return invalid("recording.allowed", "must be off, audio or audio_video");
        }
        if r.segment_age < Duration::from_millis(100) || r.segment_age > Duration::from_secs(600) {
            return invalid("recording.segment_age", "must be between 100ms and 10m");
        }
        if r.segment_bytes < 4096 || r.segment_bytes > 1 << 30 {
            return invalid(
                "recording.segment_bytes",
                "must be between 4096 and 1073741824",
            );
        }
        if r.tap_capacity == 0 {
            return invalid("recording.tap_capacity", "must be at least 1");
        }
        let c = &self.confirmation;
        if c.lease < Duration::from_millis(200) || c.lease > Duration::from_secs(3600) {
            return invalid("confirmation.lease", "must be between 200ms and 1h");
        }
        if c.window == 0 || c.window > 10_000 {
            return invalid("confirmation.window", "must be between 1 and 10000");
        }
        if c.heartbeat < Duration::from_millis(100) || c.heartbeat > Duration::from_secs(600) {
            return invalid("confirmation.heartbeat", "must be between 100ms and 10m");
        }
        // A lost link must end (giving its leases back, uncounted) before a lease runs out:
        // a lease that expires counts against its message, and a message must not be
        // dead-lettered for a network that is down.
        if c.heartbeat * 3 >= c.lease {
            return invalid(
                "confirmation.heartbeat",
                "three heartbeats must be shorter than confirmation.lease",
            );
        }
        if self.auth.default_ttl.is_zero() {
            return invalid("auth.default_ttl", "must be longer than zero");
        }
        if self.auth.max_ttl < self.auth.default_ttl {
            return invalid("auth.max_ttl", "must be at least auth.default_ttl");
        }
        let s = &self.signaling;
        if s.max_message_bytes < 1024 || s.max_message_bytes > 16 * 1024 * 1024 {
            return invalid(
                "signaling.max_message_bytes",
                "must be between 1024 and 16777216",
            );
        }
        if s.rate_limit_per_second == 0 {
            return invalid("signaling.rate_limit_per_second", "must be at least 1");
        }
        if s.rate_limit_burst == 0 {
            return invalid("signaling.rate_limit_burst", "must be at least 1");
        }
        if s.max_participants_per_room == 0 {
            return invalid("signaling.max_participants_per_room", "must be at least 1");
        }
        if s.outbound_queue < 16 {
            return invalid("signaling.outbound_queue", "must be at least 16");
        }
        if s.send_timeout < Duration::from_millis(100) {
            return invalid("signaling.send_timeout", "must be at least 100ms");
        }
        if s.join_timeout < Duration::from_millis(100) {
            return invalid("signaling.join_timeout", "must be at least 100ms");
        }
        if s.ping_interval < Duration::from_millis(100) {
            return invalid("signaling.ping_interval", "must be at least 100ms");
        }
        if self.api.max_body_bytes < 1024 {
            return invalid("api.max_body_bytes", "must be at least 1024");
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or SQLite in the data directory.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("tiaojie.db").display()
            )
        } else {
            self.database.url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, env(&[])).expect("defaults are valid");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.data_dir, PathBuf::from("./data"));
        assert_eq!(c.database_url(), "sqlite://./data/tiaojie.db");
        assert_eq!(c.signaling.resume_grace, Duration::from_secs(30));
    }

    #[test]
    fn the_sample_file_matches_the_defaults() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tiaojie.toml");
        let c = Config::load(Some(&sample), env(&[])).expect("sample loads");
        assert_eq!(
            c,
            Config::default(),
            "config/tiaojie.toml must document the embedded defaults"
        );
    }

    #[test]
    fn file_values_and_env_overrides_apply_in_order() {
        let dir = std::env::temp_dir().join(format!("tiaojie-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("t.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[signaling]\nresume_grace = \"5s\"\nmax_message_bytes = 2048\n",
        )
        .expect("write");
        let c = Config::load(
            Some(&file),
            env(&[
                ("TIAOJIE_SERVER_LISTEN", "127.0.0.1:9100"),
                ("TIAOJIE_SIGNALING_AUTO_CREATE_ROOMS", "false"),
                ("TIAOJIE_LOG_FORMAT", "json"),
                ("TIAOJIE_TEST_SOMETHING", "ignored: not a section"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("loads");
        assert_eq!(c.server.listen.port(), 9100);
        assert_eq!(c.signaling.resume_grace, Duration::from_secs(5));
        assert_eq!(c.signaling.max_message_bytes, 2048);
        assert!(!c.signaling.auto_create_rooms);
        assert_eq!(c.log.format, LogFormat::Json);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_values_name_their_key() {
        let err =
            Config::load(None, env(&[("TIAOJIE_SERVER_LISTEN", "not-an-address")])).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("TIAOJIE_SERVER_LISTEN") && msg.contains("listen"),
            "{msg}"
        );

        let err = Config::load(
            None,
            env(&[("TIAOJIE_SIGNALING_MAX_MESSAGE_BYTES", "lots")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("signaling.max_message_bytes"),
            "{err}"
        );

        let err = Config::load(None, env(&[("TIAOJIE_SIGNALING_NO_SUCH_KEY", "1")])).unwrap_err();
        assert!(err.to_string().contains("no_such_key"), "{err}");

        let err =
            Config::load(None, env(&[("TIAOJIE_SIGNALING_RESUME_GRACE", "soon")])).unwrap_err();
        assert!(err.to_string().contains("resume_grace"), "{err}");

        let err = Config::load(None, env(&[("TIAOJIE_AUTH_SECRET", "short")])).unwrap_err();
        assert!(err.to_string().contains("auth.secret"), "{err}");

        let err = Config::load(None, env(&[("TIAOJIE_DATABASE_URL", "mysql://x")])).unwrap_err();
        assert!(err.to_string().contains("database.url"), "{err}");

        // A lost court link must end before its leases run out.
        let err = Config::load(None, env(&[("TIAOJIE_CONFIRMATION_LEASE", "10s")])).unwrap_err();
        assert!(err.to_string().contains("confirmation.heartbeat"), "{err}");
        Config::load(
            None,
            env(&[
                ("TIAOJIE_CONFIRMATION_LEASE", "10s"),
                ("TIAOJIE_CONFIRMATION_HEARTBEAT", "3s"),
            ]),
        )
        .expect("three heartbeats within the lease");
    }

    #[test]
    fn bad_file_names_the_key_and_line() {
        let dir = std::env::temp_dir().join(format!("tiaojie-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("bad.toml");
        std::fs::write(&file, "[api]\nmax_body_bytes = \"big\"\n").expect("write");
        let msg = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(msg.contains("max_body_bytes"), "{msg}");
        std::fs::write(&file, "[api]\nmax_body = 5\n").expect("write");
        let msg = Config::load(Some(&file), env(&[])).unwrap_err().to_string();
        assert!(msg.contains("max_body"), "{msg}");
        std::fs::remove_dir_all(&dir).ok();
    }
}

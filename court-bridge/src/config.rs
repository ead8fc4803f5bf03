//! The bridge's configuration file (TOML; `config/court-bridge.toml` is the documented sample).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tiaojie_confirmation::envelope::Signer;

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// This bridge's name, shown in the server's logs.
    #[serde(default = "default_name")]
    pub name: String,
    /// The server's bridge endpoint: `ws://` or `wss://…/confirmation/bridge`.
    pub server_url: String,
    /// The server's Ed25519 public key, base64 (`tiaojie keys server-public` prints it). Every
    /// delivered envelope must verify with it.
    pub server_public_key: String,
    /// Where the database and, by default, the key live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The bridge's Ed25519 key (PKCS#8 DER); empty: `<data_dir>/bridge-key.der`, generated
    /// on first start. Its public half goes into the server's `confirmation.bridge_keys`.
    #[serde(default)]
    pub key_file: String,
    /// Where the judges' page and API listen (inside the court network).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Judges and the court system's clients that may use the API, each with its own token.
    #[serde(default)]
    pub judges: Vec<Judge>,
    /// The court's name as its rulings (民事裁定书) are headed, e.g. `北京市朝阳区人民法院`.
    /// Empty: `name`.
    #[serde(default)]
    pub court: String,
    /// The font rulings are set in: a file, or `file:face` for a face of a collection.
    /// Empty: the first installed of Noto Serif CJK SC, AR PL UMing, WenQuanYi Micro Hei.
    #[serde(default)]
    pub font: String,
    /// The bold font, the same way (empty: the found family's, or `font` again).
    #[serde(default)]
    pub font_bold: String,
}

/// One judge (or client system) and their API token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Judge {
    /// Person id, recorded on every action.
    pub id: String,
    /// Name, shown to the parties with a ruling.
    pub name: String,
    /// Bearer token: at least [`MIN_TOKEN_CHARS`] characters, random, this judge's alone.
    pub token: String,
}

/// Shortest judge token accepted (the server asks the same of its JWT secret).
pub const MIN_TOKEN_CHARS: usize = 32;

/// Tokens that have been published (in samples and docs) or are placeholders: a bridge
/// configured with one would let anyone who read the sample rule as a judge.
const PUBLISHED_TOKENS: &[&str] = &["change-me-to-a-long-random-token"];

/// Why a judge token is refused, or `None` when it will do.
fn token_problem(token: &str) -> Option<&'static str> {
    let lower = token.to_ascii_lowercase();
    let distinct = token
        .chars()
        .collect::<std::collections::HashSet<_>>()
        .len();
    if token.trim().is_empty() {
        Some("set a token (e.g. the output of `openssl rand -hex 24`)")
    } else if PUBLISHED_TOKENS.contains(&token)
        || [
            "change-me",
            "changeme",
            "example",
            "replace-me",
            "your-token",
        ]
        .iter()
        .any(|p| lower.contains(p))
    {
        Some("the token is the published sample or a placeholder; generate a random one")
    } else if token.chars().count() < MIN_TOKEN_CHARS {
        Some("the token must have at least 32 characters")
    } else if distinct < 10 {
        Some("the token repeats too few characters to be random")
    } else {
        None
    }
}

fn default_name() -> String {
    "court-bridge".into()
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("bridge-data")
}

fn default_listen() -> String {
    "127.0.0.1:8090".into()
}

impl BridgeConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<BridgeConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let config: BridgeConfig =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        config.check()?;
        Ok(config)
    }

    /// Refuses what cannot work.
    pub fn check(&self) -> anyhow::Result<()> {
        if !(self.server_url.starts_with("ws://") || self.server_url.starts_with("wss://")) {
            anyhow::bail!("server_url must be a ws:// or wss:// address");
        }
        for (i, j) in self.judges.iter().enumerate() {
            if let Some(problem) = token_problem(&j.token) {
                anyhow::bail!("judge {}: {problem}", j.id);
            }
            if self.judges[..i].iter().any(|other| other.token == j.token) {
                anyhow::bail!("judge {}: shares a token with another judge", j.id);
            }
        }
        Ok(())
    }

    /// The court's name on its documents.
    pub fn court_name(&self) -> &str {
        if self.court.trim().is_empty() {
            &self.name
        } else {
            &self.court
        }
    }

    /// The fonts rulings are set in: the configured ones, or those found on this machine.
    pub fn fonts(&self) -> Result<tiaojie_documents::Fonts, tiaojie_documents::FontError> {
        use tiaojie_documents::{FontSpec, Fonts};
        if self.font.trim().is_empty() {
            return Fonts::system();
        }
        let bold = (!self.font_bold.trim().is_empty()).then(|| FontSpec::parse(&self.font_bold));
        Fonts::load(&FontSpec::parse(&self.font), bold.as_ref())
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("court-bridge.sqlite")
    }

    /// The key file.
    pub fn key_path(&self) -> PathBuf {
        if self.key_file.is_empty() {
            self.data_dir.join("bridge-key.der")
        } else {
            PathBuf::from(&self.key_file)
        }
    }

    /// Loads the key, generating and saving it (mode 0600) on first start.
    pub fn load_or_generate_key(&self) -> anyhow::Result<Signer> {
        let path = self.key_path();
        match std::fs::read(&path) {
            Ok(der) => {
                Signer::from_pkcs8(&der).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (signer, der) = Signer::generate()?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                write_private(&path, &der)?;
                tracing::info!(path = %path.display(), "generated the bridge key");
                Ok(signer)
            }
            Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "3f9c2a71d04e58b6a1c7e92f40d8b35c";

    fn refusal(config: &BridgeConfig) -> String {
        config
            .check()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn the_sample_configuration_parses_and_needs_only_a_token() {
        let mut sample: BridgeConfig =
            toml::from_str(include_str!("../../config/court-bridge.toml")).expect("parses");
        assert!(
            refusal(&sample).contains("set a token"),
            "{}",
            refusal(&sample)
        );
        sample.judges[0].token = GOOD.into();
        sample.check().expect("valid with a token of its own");
        assert_eq!(sample.listen, default_listen());
        assert_eq!(sample.key_path(), sample.data_dir.join("bridge-key.der"));
        let mut http = sample;
        http.server_url = "http://x".into();
        assert!(http.check().is_err());
    }

    /// The probe's finding: the sample's published token was accepted, so anyone who read the
    /// sample could rule as a judge.
    #[test]
    fn published_short_repetitive_or_shared_judge_tokens_are_refused() {
        let mut config: BridgeConfig =
            toml::from_str(include_str!("../../config/court-bridge.toml")).expect("parses");
        let mut with = |token: &str| {
            config.judges[0].token = token.into();
            refusal(&config)
        };
        assert!(with("change-me-to-a-long-random-token").contains("published sample"));
        assert!(with("please-CHANGEME-0123456789abcdefghij").contains("placeholder"));
        assert!(with("3f9c2a71d04e58b6a1c7e92f40d8b35").contains("at least 32"));
        assert!(with(&"ab".repeat(20)).contains("too few"));
        assert_eq!(with(GOOD), "");
        let mut two = config.clone();
        two.judges.push(Judge {
            id: "judge-li".into(),
            name: "李法官".into(),
            token: GOOD.into(),
        });
        assert!(refusal(&two).contains("shares a token"));
    }
}

//! `tiaojie`: the mediation server's command line.
//!
//! - `tiaojie serve [--config FILE]`: run the server (SQLite in ./data, HTTP on 127.0.0.1:8080).
//! - `tiaojie token create --room R --identity ID --name N --role ROLE [--ttl 2h]`: print a token.
//! - `tiaojie keys generate --out DIR`: write an Ed25519 key pair for `auth.algorithm = "EdDSA"`.
//! - `tiaojie config show [--config FILE]`: print the configuration in force (secrets hidden).
//! - `tiaojie recording verify DIR`: check a recording's segments, hash chain, signatures,
//!   manifest and derived files.
//! - `tiaojie audit verify`: recompute the audit log's hash chain; say where it breaks.
//! - `tiaojie recording recover DIR`: finish a recording a crash interrupted (derived files and
//!   a signed manifest marked incomplete, from what was sealed).

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tiaojie_config::{Config, LogFormat};
use tiaojie_domain::{Grant, PersonId, Role, RoomName};
use tiaojie_signaling::token::{TokenKeys, TokenRequest, generate_ed25519_pem, write_private_file};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "tiaojie",
    version,
    about = "Court-connected online mediation server (调解)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// TOML configuration file (see config/tiaojie.toml); TIAOJIE_<SECTION>_<KEY> variables override it.
    #[arg(long, short = 'c', env = "TIAOJIE_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ConfigArg),
    /// Join and admin tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Recordings.
    Recording {
        #[command(subcommand)]
        command: RecordingCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the audit log's hash chain in the configured database and say which entries
    /// were edited, removed or inserted. Exit status 1 if any.
    Verify(ConfigArg),
}

#[derive(Subcommand)]
enum RecordingCommand {
    /// Recompute a recording's hash chain from its files and check every signature; say exactly
    /// what does not match. Exit status 1 if anything does.
    Verify {
        /// The recording's directory (holds recording.json and chain.jsonl).
        dir: PathBuf,
    },
    /// Finish a recording whose capture was interrupted (the server was killed): derive the
    /// playable files from the sealed segments and sign a manifest marked incomplete, with the
    /// server's recording key. The server does this itself when it starts again.
    Recover {
        #[command(flatten)]
        config: ConfigArg,
        /// The recording's directory.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a signed token (to standard output, nothing else).
    Create {
        #[command(flatten)]
        config: ConfigArg,
        /// Room the token admits to (omit only with --role admin).
        #[arg(long)]
        room: Option<RoomName>,
        /// The person's identity in the room.
        #[arg(long)]
        identity: PersonId,
        /// Display name (default: the identity).
        #[arg(long, default_value = "")]
        name: String,
        /// mediator, party, agent, judge, observer or admin.
        #[arg(long)]
        role: Role,
        /// Comma-separated grants instead of the role's defaults: publish,subscribe,moderate,record,admin.
        #[arg(long, value_delimiter = ',')]
        grants: Option<Vec<Grant>>,
        /// Lifetime such as 30m, 2h, 7d (default auth.default_ttl).
        #[arg(long)]
        ttl: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write an Ed25519 key pair (tiaojie-ed25519.pem, mode 0600, and tiaojie-ed25519.pub.pem).
    Generate {
        /// Directory to write into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the server's Ed25519 public key (base64), generating the key on first use: it
    /// signs recordings and judicial-confirmation envelopes; the court bridge's
    /// `server_public_key`.
    ServerPublic(ConfigArg),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the configuration in force, as TOML, with secrets hidden.
    Show(ConfigArg),
}

fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    Ok(Config::load(arg.config.as_deref(), std::env::vars())?)
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(arg) => {
            let config = load_config(&arg)?;
            init_logging(&config);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve(config))
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    config,
                    room,
                    identity,
                    name,
                    role,
                    grants,
                    ttl,
                },
        } => {
            let config = load_config(&config)?;
            let keys = TokenKeys::from_config(&config.auth, &config.server.data_dir)?;
            let ttl = ttl
                .as_deref()
                .map(tiaojie_config::duration::parse)
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("--ttl")?;
            let (token, claims) = keys.issue(&TokenRequest {
                identity,
                name,
                room,
                role,
                grants,
                ttl,
                not_before_secs: 0,
            })?;
            println!("{token}");
            if let Some(room) = &claims.room {
                eprintln!(
                    "room {room}, {} as {}, expires at Unix time {}; join link: {}/join?token=<the token>",
                    claims.sub,
                    claims.role,
                    claims.exp,
                    config.server.public_base_url()
                );
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Generate { out },
        } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let (private, public) = generate_ed25519_pem()?;
            let private_path = out.join("tiaojie-ed25519.pem");
            let public_path = out.join("tiaojie-ed25519.pub.pem");
            if private_path.exists() {
                bail!(
                    "{} exists; refusing to overwrite a key",
                    private_path.display()
                );
            }
            write_private_file(&private_path, private.as_bytes())
                .with_context(|| format!("writing {}", private_path.display()))?;
            std::fs::write(&public_path, public)
                .with_context(|| format!("writing {}", public_path.display()))?;
            println!(
                "wrote {} and {}",
                private_path.display(),
                public_path.display()
            );
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::ServerPublic(arg),
        } => {
            let config = load_config(&arg)?;
            let recorders = tiaojie_signaling::recording::Recorders::open(
                &config.recording,
                &config.server.data_dir,
            )?;
            println!("{}", recorders.key()?.public_b64());
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::Show(arg),
        } => {
            let mut config = load_config(&arg)?;
            if !config.auth.secret.is_empty() {
                config.auth.secret = "(hidden)".into();
            }
            print!("{}", toml::to_string(&config)?);
            Ok(())
        }
        Command::Recording {
            command: RecordingCommand::Verify { dir },
        } => {
            let report = tiaojie_recorder::verify(&dir);
            print!("{report}");
            if !report.problems.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify(arg),
        } => {
            let config = load_config(&arg)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(async {
                let store = tiaojie_store::Store::connect(&config.database_url(), 1).await?;
                let report = store.verify_audit_log().await;
                store.close().await;
                report
            })?;
            println!(
                "{} audit entries, head {}",
                report.entries,
                if report.head.is_empty() {
                    "(none)"
                } else {
                    &report.head
                }
            );
            for p in &report.problems {
                println!("MISMATCH: entry {}: {}", p.id, p.what);
            }
            if !report.problems.is_empty() {
                std::process::exit(1);
            }
            println!("verified: every entry and link matches");
            Ok(())
        }
        Command::Recording {
            command: RecordingCommand::Recover { config, dir },
        } => {
            let config = load_config(&config)?;
            if tiaojie_recorder::Manifest::read(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .is_some()
            {
                println!(
                    "{} is finished already (it has a signed manifest); nothing to recover",
                    dir.display()
                );
                return Ok(());
            }
            let key_path = config.recording.key_file(&config.server.data_dir);
            let der = std::fs::read(&key_path)
                .with_context(|| format!("reading the recording key {}", key_path.display()))?;
            let key = tiaojie_recorder::SigningKey::from_pkcs8(&der).map_err(anyhow::Error::msg)?;
            let manifest = tiaojie_recorder::recover(&dir, &key)
                .with_context(|| format!("recovering {}", dir.display()))?;
            println!(
                "recovered {}: {} sealed segments, head {}, {} files:",
                manifest.recording,
                manifest.chain_entries,
                manifest.chain_head,
                manifest.derived.len()
            );
            for d in &manifest.derived {
                println!("  {} ({} bytes, sha256 {})", d.file, d.bytes, d.sha256);
            }
            for n in &manifest.notes {
                println!("  note: {n}");
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = tiaojie_server::Server::start(config).await?;
    eprintln!(
        "tiaojie is listening on http://{}  (Ctrl-C to stop)",
        server.addr
    );
    shutdown_signal().await;
    server.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

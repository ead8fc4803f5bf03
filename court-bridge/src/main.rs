//! `tiaojie-court-bridge`: runs inside the court network; see the library's map (`lib.rs`).

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tiaojie_court_bridge::{Bridge, api, config::BridgeConfig, link};

#[derive(Parser)]
#[command(
    version,
    about = "The court bridge for judicial confirmation (司法确认)"
)]
struct Cli {
    /// The configuration file (see config/court-bridge.toml).
    #[arg(
        long,
        short,
        env = "TIAOJIE_BRIDGE_CONFIG",
        default_value = "court-bridge.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Dial the server and serve the judges (the default).
    Serve,
    /// Print this bridge's public key (generating the key on first use), for the server's
    /// `confirmation.bridge_keys`.
    Key,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries what a command prints (the key, the address).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TIAOJIE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let config = BridgeConfig::load(&cli.config)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Key => {
            std::fs::create_dir_all(&config.data_dir)?;
            println!("{}", config.load_or_generate_key()?.public_b64());
        }
        Command::Serve => {
            let listen = config.listen.clone();
            let bridge = Bridge::open(config).await?;
            tokio::spawn(link::run(bridge.clone()));
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            tracing::info!(%listen, key = %bridge.key.public_b64(), "court bridge serving judges");
            println!(
                "tiaojie-court-bridge is listening on http://{}",
                listener.local_addr()?
            );
            axum::serve(listener, api::router(bridge))
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
    }
    Ok(())
}

//! `regstat`: the operator's command line.

use anyhow::Context;
use clap::{Parser, Subcommand};
use regstat_shared::config::Settings;
use std::path::PathBuf;

/// Operate a regstat installation.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (default: $REGSTAT_CONFIG, else built-in defaults + env).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations.
    Migrate,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    regstat_shared::telemetry::init(&settings.telemetry, std::io::stderr);
    match cli.command {
        Command::Migrate => {
            let pool = regstat_worker::db::pool(&settings.database)?;
            regstat_worker::db::migrate(&pool)
                .await
                .context("applying migrations")?;
            let applied = regstat_worker::db::MIGRATOR.iter().count();
            println!("database is up to date ({applied} migrations)");
        }
    }
    Ok(())
}

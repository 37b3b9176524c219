//! The command line the service binaries share (`--config`, and the `healthcheck`
//! subcommand), and the probe behind `regstat-receiver healthcheck` and `regstat-worker
//! healthcheck`: the running service's own endpoint, from the same host, so container images
//! need no curl or shell.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// A service binary's arguments: its configuration file and an optional subcommand.
#[derive(Debug, clap::Parser)]
pub struct ServiceArgs {
    /// TOML configuration file (default: $REGSTAT_CONFIG, else built-in defaults + env).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do instead of running the service.
    #[command(subcommand)]
    pub command: Option<ServiceCommand>,
}

impl ServiceArgs {
    /// Parses the command line of the service binary `name`, described by `about` (its
    /// crate's description, shown by `--help`), exiting with clap's message on a usage error.
    pub fn parse_for(name: &'static str, about: &'static str) -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command()
            .name(name)
            .about(about)
            .version(crate::VERSION)
            .get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }
}

/// What a service binary can do besides running.
#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Exit 0 if the running service answers /readyz with 200 (container health checks).
    Healthcheck {
        /// Probe /healthz (the process serves HTTP) instead of /readyz.
        #[arg(long)]
        live: bool,
    },
}

/// Runs `healthcheck` against the service listening on `listen`: returns if it is healthy,
/// else prints why and exits with status 1.
pub async fn run(listen: &str, live: bool, tls: bool) {
    let which = if live { Probe::Live } else { Probe::Ready };
    if let Err(reason) = probe(listen, which, tls).await {
        eprintln!("{reason}");
        std::process::exit(1);
    }
}

/// Longest wait for the whole probe.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Which endpoint to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `/readyz`: able to do its work.
    Ready,
    /// `/healthz`: the process serves HTTP.
    Live,
}

/// GETs the endpoint of a service listening on `listen` (`0.0.0.0` and `[::]` are probed on
/// loopback). `tls`: HTTPS, trusting whatever certificate loopback presents. Returns why it
/// is not healthy.
pub async fn probe(listen: &str, probe: Probe, tls: bool) -> Result<(), String> {
    let address: SocketAddr = listen
        .parse()
        .map_err(|e| format!("healthcheck: listen address {listen:?}: {e}"))?;
    let host = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let path = match probe {
        Probe::Ready => "/readyz",
        Probe::Live => "/healthz",
    };
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://{}{path}", SocketAddr::new(host, address.port()));
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .danger_accept_invalid_certs(tls)
        .build()
        .map_err(|e| format!("healthcheck: {e}"))?;
    let response = client
        .get(&url)
        .header(reqwest::header::CONNECTION, "close")
        .send()
        .await
        .map_err(|e| format!("healthcheck: {url}: {e}"))?;
    if response.status() == reqwest::StatusCode::OK {
        Ok(())
    } else {
        Err(format!("healthcheck: {url} answered {}", response.status()))
    }
}

//! Typed, layered configuration.
//!
//! Sources, later ones winning: the built-in defaults (`defaults.toml`, embedded in every
//! binary: the one place defaults live), an optional TOML file ([`ConfigFile::locate`]: `--config`,
//! else `$REGSTAT_CONFIG`, else the first of [`SEARCH_PATH`] that exists), then environment
//! variables `REGSTAT__<SECTION>__<KEY>` (lists comma-separated). [`Settings::load`] validates
//! the result and names the offending key in every error.

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The built-in defaults, documented in place.
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "REGSTAT_CONFIG";

/// Where a binary looks for its config file when neither `--config` nor `$REGSTAT_CONFIG`
/// names one: the first that exists is read. `./regstat.toml` is a file of the directory the
/// command runs in; `.regstat-dev/regstat.toml` is what `deploy/dev.sh` writes (so commands
/// run from the repository find it); `/etc/regstat/regstat.toml` is where the container image,
/// compose and Kubernetes put it.
pub const SEARCH_PATH: [&str; 3] = [
    "regstat.toml",
    ".regstat-dev/regstat.toml",
    "/etc/regstat/regstat.toml",
];

/// The config file a binary reads, and why that one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The file.
    pub path: PathBuf,
    /// How it was chosen: `--config`, `$REGSTAT_CONFIG` or `search path`.
    pub chosen_by: &'static str,
}

impl ConfigFile {
    /// `--config` if given, else `$REGSTAT_CONFIG` if set, else the first of [`SEARCH_PATH`]
    /// that exists, else none (defaults and the environment only).
    pub fn locate(cli: Option<&Path>) -> Option<Self> {
        let chosen = |path: PathBuf, chosen_by| Some(Self { path, chosen_by });
        if let Some(path) = cli {
            return chosen(path.to_owned(), "--config");
        }
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
            return chosen(PathBuf::from(path), "$REGSTAT_CONFIG");
        }
        SEARCH_PATH
            .iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
            .and_then(|path| chosen(path, "search path"))
    }
}

impl ConfigFile {
    /// `file` for a log line or a message: its path and how it was chosen, or that there is
    /// none.
    pub fn describe(file: Option<&Self>) -> String {
        file.map_or_else(
            || "none (built-in defaults and REGSTAT__* environment variables)".to_owned(),
            Self::to_string,
        )
    }
}

impl std::fmt::Display for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (from {})", self.path.display(), self.chosen_by)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type; the message names the key.
    #[error("invalid configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value has the right type but is unusable.
    #[error("invalid configuration: `{key}`: {reason}")]
    Invalid {
        /// The dotted key, e.g. `receiver.listen`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Everything regstat's binaries can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// RabbitMQ.
    pub amqp: AmqpSettings,
    /// PostgreSQL (worker and CLI only; the receiver never touches it).
    pub database: DatabaseSettings,
    /// The webhook receiver.
    pub receiver: ReceiverSettings,
    /// The queue consumer.
    pub worker: WorkerSettings,
    /// The web console and JSON API.
    pub console: ConsoleSettings,
    /// Registry callbacks.
    pub callbacks: CallbackSettings,
    /// Registries the worker may call back, matched to events by host.
    pub registries: Vec<RegistrySettings>,
    /// The event ledger's partitions, retention and dedupe window.
    pub ledger: LedgerSettings,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// What `regstat doctor` checks besides the services above.
    pub doctor: DoctorSettings,
    /// Cleanup plans.
    pub cleanup: CleanupSettings,
}

/// `regstat cleanup`'s settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanupSettings {
    /// The policy file `regstat cleanup plan` uses without `--policy` (empty: none).
    pub policy_file: String,
}

/// `regstat doctor`'s settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorSettings {
    /// Base URLs of running receivers, workers and consoles (e.g. `http://127.0.0.1:8080`),
    /// whose `/readyz` it probes (a list, or one comma-separated string).
    #[serde(deserialize_with = "comma_separated")]
    pub endpoints: Vec<String>,
}

/// RabbitMQ settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// Broker URI; carries the password.
    pub url: SecretString,
    /// Prefix of every exchange and queue name.
    pub prefix: String,
    /// Longest wait for publisher confirms before answering 503.
    pub confirm_timeout_ms: u64,
    /// Quorum-queue delivery limit before dead-lettering.
    pub delivery_limit: u32,
    /// Longest pause between reconnection attempts.
    pub reconnect_max_backoff_ms: u64,
    /// Delays of the retry queues, in seconds.
    #[serde(deserialize_with = "comma_separated")]
    pub retry_delays_secs: Vec<u64>,
    /// Work queues per path (1: unsharded).
    pub shards: u16,
    /// The shard count whose queues the workers keep draining while `shards` changes (0: none).
    pub previous_shards: u16,
    /// Initial quorum group size of regstat's queues (0: the broker's default).
    pub quorum_group_size: u16,
}

impl AmqpSettings {
    /// The nodes of [`Self::url`]: one URI, or a cluster's, separated by commas.
    pub fn node_urls(&self) -> Vec<SecretString> {
        node_urls(&self.url)
    }

    /// [`Self::confirm_timeout_ms`] as a duration.
    pub fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }

    /// [`Self::reconnect_max_backoff_ms`] as a duration.
    pub fn reconnect_max_backoff(&self) -> Duration {
        Duration::from_millis(self.reconnect_max_backoff_ms)
    }
}

/// PostgreSQL settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Connection URL; may carry a password.
    pub url: SecretString,
    /// Pool size.
    pub max_connections: u32,
    /// Longest wait for a pooled connection.
    pub acquire_timeout_ms: u64,
    /// Whether the worker applies pending migrations at start.
    pub migrate_on_start: bool,
}

/// Webhook receiver settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSettings {
    /// Listen address, `host:port`.
    pub listen: String,
    /// Largest accepted body.
    pub body_limit_bytes: usize,
    /// Accepted bearer tokens (a list, or one comma-separated string as the environment
    /// gives it).
    #[serde(deserialize_with = "comma_separated")]
    pub tokens: Vec<SecretString>,
    /// Accepted basic credentials (tables, or `user:password,...` as the environment gives it).
    #[serde(deserialize_with = "comma_separated")]
    pub basic: Vec<BasicCredential>,
    /// Accept notifications without credentials when none are configured (it refuses to
    /// start without credentials otherwise).
    pub allow_anonymous: bool,
    /// Retry-After seconds on 503.
    pub retry_after_secs: u32,
    /// Longest wait for a request's events to be written to the broker connection before the
    /// request is answered 503 (the broker blocks publishers during a memory or disk alarm).
    pub blocked_answer_ms: u64,
    /// PEM certificate chain for HTTPS (empty: plain HTTP).
    pub tls_cert_file: String,
    /// PEM private key for HTTPS (empty: plain HTTP).
    pub tls_key_file: String,
    /// HTTP worker threads (0: one per core).
    pub http_workers: usize,
    /// Grace period for in-flight requests on shutdown.
    pub shutdown_timeout_secs: u64,
    /// Deadline for a request's head, from its connection opening.
    pub request_head_timeout_ms: u64,
    /// Deadline for a request's body, from its head.
    pub request_body_timeout_ms: u64,
    /// Keep-alive for another request on a connection (0: closed after each answer).
    pub keep_alive_secs: u64,
    /// Most open connections, all HTTP worker threads together.
    pub max_connections: usize,
}

/// Web console and JSON API settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Listen address, `host:port`.
    pub listen: String,
    /// The PostgreSQL URL the console reads (a read replica will do); empty: `database.url`.
    pub database_url: SecretString,
    /// Accepted bearer tokens (a list, or one comma-separated string).
    #[serde(deserialize_with = "comma_separated")]
    pub tokens: Vec<SecretString>,
    /// Accepted basic credentials, what a browser sends (tables, or `user:password,...` as the
    /// environment gives it).
    #[serde(deserialize_with = "comma_separated")]
    pub basic: Vec<BasicCredential>,
    /// Serve without credentials (the console refuses to start with none, unless this is set).
    pub allow_anonymous: bool,
    /// HTTP worker threads (0: one per core).
    pub http_workers: usize,
}

impl ConsoleSettings {
    /// The database settings the console uses: `database`, with [`Self::database_url`] when set.
    pub fn database(&self, database: &DatabaseSettings) -> DatabaseSettings {
        let mut settings = database.clone();
        if !self.database_url.expose_secret().trim().is_empty() {
            settings.url = self.database_url.clone();
        }
        settings
    }

    /// Whether no credential is configured.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.basic.is_empty()
    }
}

/// One accepted basic-auth user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredential {
    /// User name.
    pub username: String,
    /// Password.
    pub password: SecretString,
}

/// Worker settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Address of the health and metrics endpoint.
    pub listen: String,
    /// Broker prefetch (unacked messages in flight per worker).
    pub prefetch: u16,
    /// Most events per database transaction.
    pub batch_size: usize,
    /// How long a started batch waits for more events.
    pub batch_linger_ms: u64,
    /// Tries of an event before it is dead-lettered.
    pub max_attempts: u32,
    /// The shards this worker consumes (empty: all).
    #[serde(deserialize_with = "comma_separated")]
    pub shards: Vec<u16>,
    /// User-Agent substrings whose pulls count as system pulls.
    #[serde(deserialize_with = "comma_separated")]
    pub system_user_agents: Vec<String>,
    /// Seconds after a tag resolve within which a GET of its digest by the same client
    /// completes the same pull.
    pub pull_window_secs: u32,
    /// Milliseconds between passes of the cache refresher, and how long a repository stays
    /// marked stale before a pass recomputes it.
    pub cache_refresh_ms: u64,
}

/// How the worker calls registries back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSettings {
    /// Longest wait for one registry request.
    pub timeout_ms: u64,
    /// Concurrent requests per registry.
    pub concurrency: usize,
    /// In-memory manifest cache size.
    pub manifest_cache_entries: usize,
    /// Largest manifest or config blob accepted.
    pub max_document_bytes: usize,
    /// `{"canonical": ["alias", ...]}` file; empty for none.
    pub equiv_registries_file: String,
}

impl CallbackSettings {
    /// [`Self::timeout_ms`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// One registry regstat may call back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// Canonical name used in every table and report.
    pub name: String,
    /// Base URL for callbacks, e.g. `https://registry.example.com:5000`.
    pub url: String,
    /// Other hosts (`host` or `host:port`) clients use for this registry.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Docker `config.json` to read credentials from.
    #[serde(default)]
    pub docker_config: Option<std::path::PathBuf>,
    /// User name for Basic auth or the token flow.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for it.
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Extra CA certificate (PEM) to trust for this registry.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// Skip TLS verification (test registries only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Token servers (`https://auth.example.com`) this registry's 401s may send regstat to,
    /// besides the registry's own origin: a realm anywhere else is refused before any
    /// credential is sent.
    #[serde(default)]
    pub token_realms: Vec<String>,
}

/// How much time one partition of the ledger covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionInterval {
    /// One partition per UTC calendar month: few partitions, for most installations.
    Month,
    /// One partition per UTC day: for millions of events a day, where a month is too much to
    /// keep past the retention or to index as one table.
    Day,
}

/// The event ledger's partitions, retention and dedupe window (docs/MODEL.md, "Ledger
/// retention").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSettings {
    /// Time covered by each partition the worker creates.
    pub partition_interval: PartitionInterval,
    /// Partitions kept ready after the current one, so that inserts never wait for one.
    pub partitions_ahead: u32,
    /// Days of ledger rows the worker keeps (whole partitions are dropped past it); 0 keeps
    /// them forever.
    pub retention_days: u32,
    /// Days an event id is remembered at least (and never less than its ledger row), so a
    /// redelivery within them is recognised.
    pub dedupe_days: u32,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// Output format.
    pub format: LogFormat,
    /// Filter directives used when `RUST_LOG` is unset.
    pub filter: String,
}

impl Settings {
    /// Loads defaults, then the file [`ConfigFile::locate`] finds (`cli`: the `--config`
    /// argument), then `REGSTAT__*` environment variables, and validates the result.
    pub fn load(cli: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_located(cli).map(|(settings, _)| settings)
    }

    /// [`Self::load`], also saying which file was read (`None`: defaults and the
    /// environment only).
    pub fn load_located(cli: Option<&Path>) -> Result<(Self, Option<ConfigFile>), ConfigError> {
        let file = ConfigFile::locate(cli);
        let path = file.as_ref().map(|file| file.path.as_path());
        let settings =
            Self::from_sources(path, Environment::default()).map_err(|error| {
                match (&file, error) {
                    (Some(file), ConfigError::Load(error)) => ConfigError::Load(
                        config::ConfigError::Message(format!("{error} (config file {file})")),
                    ),
                    (_, error) => error,
                }
            })?;
        Ok((settings, file))
    }

    /// Loads from the given file and an explicit map standing in for the environment
    /// (for tests, which must not touch the process environment).
    pub fn load_with_env<I>(file: Option<&Path>, env: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let env: config::Map<String, String> = env.into_iter().collect();
        Self::from_sources(file, Environment::default().source(Some(env)))
    }

    fn from_sources(file: Option<&Path>, env: Environment) -> Result<Self, ConfigError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(path) = file {
            builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
        }
        // Values stay strings: numbers and booleans are parsed per key on deserialisation.
        // `try_parsing` would guess types up front, turning a token `0123` into the integer
        // 123 (an error that prints the secret) and a prefix `007` into `7`.
        let env = env.prefix("REGSTAT").prefix_separator("__").separator("__");
        let settings: Settings = builder.add_source(env).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that deserialise but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        let nodes = self.amqp.node_urls();
        if nodes.is_empty()
            || nodes.iter().any(|url| {
                let url = url.expose_secret();
                !(url.starts_with("amqp://") || url.starts_with("amqps://"))
            })
        {
            return invalid(
                "amqp.url",
                "must be one or more comma-separated URIs, each starting with amqp:// or amqps://",
            );
        }
        if self.amqp.shards == 0 {
            return invalid("amqp.shards", "must be above 0");
        }
        if let Some(shard) = self.worker.shards.iter().find(|s| **s >= self.amqp.shards) {
            return invalid(
                "worker.shards",
                &format!(
                    "shard {shard} does not exist: amqp.shards = {} numbers them from 0 to {}",
                    self.amqp.shards,
                    self.amqp.shards - 1
                ),
            );
        }
        if self.amqp.prefix.is_empty()
            || !self
                .amqp
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return invalid(
                "amqp.prefix",
                "must be non-empty ASCII letters, digits, '-', '_' or '.'",
            );
        }
        if self.amqp.retry_delays_secs.is_empty() || self.amqp.retry_delays_secs.contains(&0) {
            return invalid(
                "amqp.retry_delays_secs",
                "must list at least one delay, each above 0",
            );
        }
        if self.worker.max_attempts == 0 {
            return invalid("worker.max_attempts", "must be above 0");
        }
        if self.worker.pull_window_secs == 0 {
            return invalid("worker.pull_window_secs", "must be above 0");
        }
        if self.worker.cache_refresh_ms == 0 {
            return invalid("worker.cache_refresh_ms", "must be above 0");
        }
        if self.amqp.confirm_timeout_ms == 0 {
            return invalid("amqp.confirm_timeout_ms", "must be above 0");
        }
        if self.receiver.blocked_answer_ms == 0 {
            return invalid("receiver.blocked_answer_ms", "must be above 0");
        }
        if self.receiver.request_head_timeout_ms == 0 {
            return invalid("receiver.request_head_timeout_ms", "must be above 0");
        }
        if self.receiver.request_body_timeout_ms == 0 {
            return invalid("receiver.request_body_timeout_ms", "must be above 0");
        }
        if self.receiver.max_connections == 0 {
            return invalid("receiver.max_connections", "must be above 0");
        }
        let db_url = self.database.url.expose_secret();
        if !(db_url.starts_with("postgres://") || db_url.starts_with("postgresql://")) {
            return invalid(
                "database.url",
                "must start with postgres:// or postgresql://",
            );
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be above 0");
        }
        if self.receiver.listen.parse::<SocketAddr>().is_err() {
            return invalid("receiver.listen", "must be an address such as 0.0.0.0:8080");
        }
        if self.receiver.body_limit_bytes < 1024 {
            return invalid("receiver.body_limit_bytes", "must be at least 1024");
        }
        if self
            .receiver
            .tokens
            .iter()
            .any(|t| t.expose_secret().trim().is_empty())
        {
            return invalid("receiver.tokens", "tokens must not be empty");
        }
        if self.worker.listen.parse::<SocketAddr>().is_err() {
            return invalid("worker.listen", "must be an address such as 0.0.0.0:9090");
        }
        if self.console.listen.parse::<SocketAddr>().is_err() {
            return invalid("console.listen", "must be an address such as 0.0.0.0:8081");
        }
        if self
            .console
            .tokens
            .iter()
            .any(|t| t.expose_secret().trim().is_empty())
        {
            return invalid("console.tokens", "tokens must not be empty");
        }
        let console_db = self.console.database_url.expose_secret().trim();
        if !(console_db.is_empty()
            || console_db.starts_with("postgres://")
            || console_db.starts_with("postgresql://"))
        {
            return invalid(
                "console.database_url",
                "must be empty (database.url) or start with postgres:// or postgresql://",
            );
        }
        if self.receiver.tls_cert_file.is_empty() != self.receiver.tls_key_file.is_empty() {
            return invalid(
                "receiver.tls_cert_file",
                "set both receiver.tls_cert_file and receiver.tls_key_file, or neither",
            );
        }
        if self.worker.prefetch == 0 {
            return invalid("worker.prefetch", "must be above 0");
        }
        if self.worker.batch_size == 0 {
            return invalid("worker.batch_size", "must be above 0");
        }
        if self.callbacks.concurrency == 0 {
            return invalid("callbacks.concurrency", "must be above 0");
        }
        if self.callbacks.timeout_ms == 0 {
            return invalid("callbacks.timeout_ms", "must be above 0");
        }
        if !(1..=366).contains(&self.ledger.partitions_ahead) {
            return invalid("ledger.partitions_ahead", "must be between 1 and 366");
        }
        if self.ledger.dedupe_days == 0 {
            return invalid("ledger.dedupe_days", "must be above 0");
        }
        let mut names = std::collections::HashSet::new();
        for registry in &self.registries {
            if registry.name.trim().is_empty() {
                return invalid("registries.name", "must not be empty");
            }
            if !names.insert(registry.name.as_str()) {
                return invalid("registries.name", "names must be unique");
            }
            if !(registry.url.starts_with("http://") || registry.url.starts_with("https://")) {
                return invalid("registries.url", "must start with http:// or https://");
            }
        }
        Ok(())
    }

    /// The receiver's `blocked_answer_ms` as a duration.
    pub fn receiver_blocked_answer(&self) -> Duration {
        Duration::from_millis(self.receiver.blocked_answer_ms)
    }

    /// `receiver.listen` as an address (validated at load).
    pub fn receiver_listen(&self) -> Result<SocketAddr, ConfigError> {
        self.receiver
            .listen
            .parse()
            .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                key: "receiver.listen",
                reason: e.to_string(),
            })
    }
}

/// An item of a list setting that the environment gives as one comma-separated string.
trait ListItem: Sized {
    fn from_text(text: &str) -> Result<Self, String>;
}

impl ListItem for SecretString {
    /// A token, trimmed: `"a, b"` and a value ending in a newline (a file read into the
    /// environment) give `a` and `b`.
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(SecretString::from(text.trim()))
    }
}

impl ListItem for BasicCredential {
    /// `user:password` (the environment's form of a `[[...basic]]` table).
    fn from_text(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some((username, password)) if !username.trim().is_empty() && !password.is_empty() => {
                Ok(BasicCredential {
                    username: username.trim().to_owned(),
                    password: SecretString::from(password),
                })
            }
            _ => Err("a basic credential is user:password".to_owned()),
        }
    }
}

impl ListItem for String {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.trim().to_owned())
    }
}

/// `url` with the password (userinfo after `user:`, and any `password=` query parameter)
/// replaced by `***`, for error messages; in a comma-separated list of URIs (a
/// cluster's `amqp.url`), every one's.
pub fn redact_url(url: &str) -> String {
    // A cluster's list: each node's URI redacted on its own.
    if url.contains(',') && url.split(',').all(|node| node.contains("://")) {
        return url.split(',').map(redact_one).collect::<Vec<_>>().join(",");
    }
    redact_one(url)
}

fn redact_one(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Whole numbers, in lists of any of these widths.
macro_rules! number_list_items {
    ($($number:ty),*) => {$(
        impl ListItem for $number {
            fn from_text(text: &str) -> Result<Self, String> {
                text.trim()
                    .parse()
                    .map_err(|e| format!("{text:?} is not a whole number: {e}"))
            }
        }
    )*};
}

number_list_items!(u16, u64);

/// The node URIs of an `amqp.url`: one, or a cluster's separated by commas (a comma inside a
/// password is written `%2C`), trimmed, empty items dropped.
pub fn node_urls(url: &SecretString) -> Vec<SecretString> {
    url.expose_secret()
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(SecretString::from)
        .collect()
}

/// A list given as a list (TOML) or as one comma-separated string (environment).
fn comma_separated<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: ListItem + Deserialize<'de>,
{
    struct ListVisitor<T>(std::marker::PhantomData<T>);

    impl<'de, T: ListItem + Deserialize<'de>> serde::de::Visitor<'de> for ListVisitor<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list, or a comma-separated string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            // An empty string is one empty item: an empty token is then rejected by
            // validation rather than silently opening the receiver.
            text.split(',')
                .map(|item| T::from_text(item).map_err(E::custom))
                .collect()
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut list = Vec::new();
            while let Some(item) = seq.next_element()? {
                list.push(item);
            }
            Ok(list)
        }
    }

    deserializer.deserialize_any(ListVisitor(std::marker::PhantomData))
}

impl WorkerSettings {
    /// [`Self::batch_linger_ms`] as a duration.
    pub fn batch_linger(&self) -> Duration {
        Duration::from_millis(self.batch_linger_ms)
    }

    /// [`Self::pull_window_secs`] as a duration.
    pub fn pull_window(&self) -> Duration {
        Duration::from_secs(u64::from(self.pull_window_secs))
    }

    /// [`Self::cache_refresh_ms`] as a duration.
    pub fn cache_refresh(&self) -> Duration {
        Duration::from_millis(self.cache_refresh_ms)
    }
}

impl DatabaseSettings {
    /// [`Self::acquire_timeout_ms`] as a duration.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

#[cfg(test)]
mod tests;

//! `regstat doctor`: checks everything a running installation needs and says, per check, OK,
//! WARN (passes, but worth a look) or FAIL, what is wrong and how to fix it.
//!
//! In order, each group only when what it needs passed (no migration check without a
//! database):
//! 1. `config`: the configuration loads, and from where.
//! 2. `postgres`, `migrations`, `partitions`: PostgreSQL answers; every migration this binary
//!    knows is applied and none it does not know; range partitions of the ledger hold now and
//!    the next slot.
//! 3. `rabbitmq`, `exchange …`, `queue …`, `topology`, `consumers …`, `dead letters`, `quarantine`: the
//!    broker answers; every exchange and queue of the topology exists and was declared with
//!    the arguments this configuration gives it; a worker consumes each work queue; dead
//!    letters and quarantined events (WARN when there are some).
//! 4. `registry NAME`: each configured registry answers, accepts regstat's credentials (the
//!    token round trip, where it uses tokens, happens in the client) and lists a first page of
//!    its catalog.
//! 5. `endpoint URL`: each of `doctor.endpoints` answers `/readyz` with 200.
//!
//! Nothing here creates or changes anything: existence is checked with passive declares, and
//! the arguments with an active declare of an object that exists, which the broker answers
//! with a no-op when they match and PRECONDITION_FAILED when not. Every network step is
//! bounded by [`STEP_TIMEOUT`], every connection closed. Expected failures are check lines,
//! never log lines.
//!
//! # Layout
//! - this file: [`Report`] and [`Check`], [`Configuration`] (the first check, and the order
//!   of the others), [`run`].
//! - `database`: PostgreSQL, migrations, partitions.
//! - `broker`: RabbitMQ, the topology, consumers, dead letters and quarantine.
//! - `remote`: registries and health endpoints.

mod broker;
mod database;
mod remote;

use regstat_shared::config::{ConfigFile, Settings};
use serde::Serialize;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// Longest wait for one network step (a connection, a declare, a request), so that an
/// unreachable service fails its check quickly.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Passes.
    Ok,
    /// Passes, but deserves a look (dead letters waiting, say).
    Warn,
    /// Fails: the installation cannot do its work until it is fixed.
    Fail,
}

impl Status {
    /// The word the table shows.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short fixed name: `config`, `postgres`, `queue regstat.ingest`, `registry main`...
    pub name: String,
    /// How it went.
    pub status: Status,
    /// What was found and, unless it passed, how to fix it.
    pub message: String,
}

impl Check {
    fn new(name: impl Into<String>, status: Status, message: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            message: message.into(),
        }
    }
}

/// Everything `regstat doctor` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// No check failed (warnings allowed): the exit status is 0 exactly then.
    pub ok: bool,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    fn new() -> Self {
        Self {
            ok: true,
            checks: Vec::new(),
        }
    }

    /// Adds a check; returns whether it did not fail (so the checks that need it may run).
    fn add(&mut self, check: Check) -> bool {
        let passed = check.status != Status::Fail;
        self.ok &= passed;
        self.checks.push(check);
        passed
    }

    fn ok(&mut self, name: impl Into<String>, message: impl Into<String>) -> bool {
        self.add(Check::new(name, Status::Ok, message))
    }

    fn warn(&mut self, name: impl Into<String>, message: impl Into<String>) -> bool {
        self.add(Check::new(name, Status::Warn, message))
    }

    fn fail(&mut self, name: impl Into<String>, message: impl Into<String>) -> bool {
        self.add(Check::new(name, Status::Fail, message))
    }

    /// The check named `name`, if it ran.
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.name == name)
    }

    /// The report as a table: status, check, message.
    pub fn table(&self) -> String {
        let mut table = crate::render::Table::new([
            ("STATUS", crate::render::Align::Left),
            ("CHECK", crate::render::Align::Left),
            ("MESSAGE", crate::render::Align::Left),
        ]);
        for check in &self.checks {
            table.row(vec![
                check.status.label().to_owned(),
                check.name.clone(),
                check.message.clone(),
            ]);
        }
        table.render()
    }
}

/// The configuration, loaded (or not) as the other commands load it: the first check.
#[derive(Debug)]
pub struct Configuration {
    check: Check,
    loaded: Option<(Settings, Option<ConfigFile>)>,
}

impl Configuration {
    /// Loads the settings (`cli`: the `--config` argument) and says from where, or why not.
    pub fn load(cli: Option<&Path>) -> Self {
        match Settings::load_located(cli) {
            Ok((settings, file)) => {
                let message = match &file {
                    Some(file) => format!("loaded {file}, then REGSTAT__* variables"),
                    None => "no config file (none named by --config or $REGSTAT_CONFIG, none \
                             on the search path): built-in defaults and REGSTAT__* variables"
                        .to_owned(),
                };
                Self {
                    check: Check::new("config", Status::Ok, message),
                    loaded: Some((settings, file)),
                }
            }
            Err(error) => Self {
                check: Check::new(
                    "config",
                    Status::Fail,
                    format!(
                        "{}: fix the file or the REGSTAT__* variable it names",
                        chain(&error)
                    ),
                ),
                loaded: None,
            },
        }
    }

    /// The settings, if they loaded.
    pub fn settings(&self) -> Option<&Settings> {
        self.loaded.as_ref().map(|(settings, _)| settings)
    }

    /// Runs every check the configuration allows.
    pub async fn examine(self) -> Report {
        let mut report = Report::new();
        report.add(self.check);
        if let Some((settings, file)) = &self.loaded {
            database::check(&mut report, settings).await;
            broker::check(&mut report, settings, file.as_ref()).await;
            for registry in &settings.registries {
                remote::registry(&mut report, registry, settings).await;
            }
            for url in &settings.doctor.endpoints {
                remote::endpoint(&mut report, url).await;
            }
        }
        report
    }
}

/// `regstat doctor`: loads the configuration (`cli_config`: the `--config` argument) and runs
/// every check.
pub async fn run(cli_config: Option<&Path>) -> Report {
    Configuration::load(cli_config).examine().await
}

// ---------------------------------------------------------------------------------------------
// Helpers of every check.

/// `future`, given up after [`STEP_TIMEOUT`].
async fn bounded<F: Future>(future: F) -> Result<F::Output, tokio::time::error::Elapsed> {
    tokio::time::timeout(STEP_TIMEOUT, future).await
}

/// `n` and `noun`, plural unless `n` is 1: `2 consumers`.
fn count(n: u32, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A duration in whole milliseconds.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// An error and its causes, `: `-separated (each once: a cause repeated in its parent's
/// message is left out).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

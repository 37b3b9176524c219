//! Logging setup shared by every binary.
//!
//! Spans carry `event.id`, `request.id` and `repository` so that one event can be followed from
//! the receiver's request through the worker (the request id travels as the AMQP correlation id).

use crate::config::{LogFormat, TelemetrySettings};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, fmt};

/// Directives added to every filter that does not name the library itself (`RUST_LOG=info,
/// lapin=debug` shows lapin's lines again):
/// - lapin logs an `ERROR` for every channel the broker closes (a passive declare of a missing
///   queue, which `regstat status` and `regstat doctor` make on purpose) and on every
///   connection close, and returns each of those failures to regstat as well, which logs it
///   once in its own words where it matters (reconnecting, 503, a failing check);
/// - PostgreSQL's notices (`relation "_sqlx_migrations" already exists, skipping` on every
///   migrate), which sqlx logs at `INFO`;
/// - actix-server's start and stop chatter ("Tokio runtime found", "starting service", "accept
///   thread stopped"): each service logs its own "started" and "stopped" lines.
const QUIET_LIBRARIES: [(&str, &str); 3] = [
    ("lapin", "lapin=off"),
    ("sqlx", "sqlx::postgres::notice=warn"),
    ("actix_server", "actix_server=warn"),
];

/// The filter directives in effect: `from_env` (`RUST_LOG`) if set and valid, else
/// `configured` if valid, else `info`; with [`QUIET_LIBRARIES`] for the libraries they do not
/// name.
fn directives(configured: &str, from_env: Option<String>) -> String {
    let valid = |directives: &str| EnvFilter::try_new(directives).is_ok();
    let mut chosen = from_env
        .filter(|directives| valid(directives))
        .or_else(|| valid(configured).then(|| configured.to_owned()))
        .unwrap_or_else(|| "info".to_owned());
    for (library, directive) in QUIET_LIBRARIES {
        if !chosen.contains(library) {
            chosen.push(',');
            chosen.push_str(directive);
        }
    }
    chosen
}

/// Installs the global subscriber writing to `writer` (stderr in binaries, a sink in tests).
/// `RUST_LOG`, when set, overrides the configured filter. Calling it twice keeps the first one.
pub fn init<W>(settings: &TelemetrySettings, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let directives = directives(&settings.filter, std::env::var(EnvFilter::DEFAULT_ENV).ok());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(writer);
    let installed = match settings.format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    // A subscriber already installed (tests starting several apps) is fine.
    drop(installed);
}

#[cfg(test)]
mod tests {
    use super::directives;

    const QUIET: &str = "lapin=off,sqlx::postgres::notice=warn,actix_server=warn";

    #[test]
    fn libraries_are_quiet_unless_named() {
        assert_eq!(directives("info", None), format!("info,{QUIET}"));
        assert_eq!(
            directives("info", Some("debug".into())),
            format!("debug,{QUIET}")
        );
        assert_eq!(
            directives("info,lapin=debug", None),
            "info,lapin=debug,sqlx::postgres::notice=warn,actix_server=warn"
        );
        assert_eq!(
            directives(
                "info",
                Some("lapin=warn,sqlx=debug,actix_server=info".into())
            ),
            "lapin=warn,sqlx=debug,actix_server=info"
        );
        assert_eq!(
            directives("not a [filter", Some("x=[".into())),
            format!("info,{QUIET}")
        );
    }
}

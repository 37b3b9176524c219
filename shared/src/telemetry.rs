//! Logging setup shared by every binary.
//!
//! Spans carry `event.id`, `request.id` and `repository` so that one event can be followed from
//! the receiver's request through the worker (the request id travels as the AMQP correlation id).

use crate::config::{LogFormat, TelemetrySettings};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber writing to `writer` (stderr in binaries, a sink in tests).
/// `RUST_LOG`, when set, overrides the configured filter. Calling it twice keeps the first one.
pub fn init<W>(settings: &TelemetrySettings, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
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

//! What becomes of a message: [`Outcome`], and [`Reason`] when it is not recorded. Below both
//! the handler and the callbacks, which both decide outcomes.

/// What to do with one message once the batch is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Durably recorded (or already recorded): acknowledge.
    Ack,
    /// Not recorded because something it needs is unavailable (the registry): try again later.
    Retry(Reason),
    /// Can never succeed (malformed, rejected by the database, refused by the registry).
    DeadLetter(Reason),
}

/// Why an event was not recorded: a stable kind (header `x-regstat-error-kind`, metric label)
/// and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// `invalid_event`, `database_rejected`, `registry_unavailable`, `registry_refused` or
    /// `manifest_invalid`.
    pub kind: &'static str,
    /// What happened.
    pub message: String,
}

impl Reason {
    /// A reason of `kind`.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether the message mentions `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.message.contains(text)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

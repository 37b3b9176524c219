//! Why a registry document could not be had, and the two ways a response turns into one:
//! a transport error ([`classify`]) and a body too large ([`read_limited`]).

/// Why a registry document could not be had. Messages name the registry, repository and
/// digest, never a credential or token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// 404: deleted meanwhile. Record it as gone; never retry.
    #[error("not found (deleted meanwhile)")]
    Gone,
    /// 5xx, 429, a timeout, a refused or reset connection: retry later.
    #[error("registry unavailable: {0}")]
    Transient(String),
    /// 401/403 after authenticating, or no usable credentials: dead-letter.
    #[error("access denied: {0}")]
    Denied(String),
    /// Digest mismatch, body too large, unparseable: dead-letter.
    #[error("invalid content: {0}")]
    Invalid(String),
}

/// Reads a body of at most `limit` bytes, refusing a larger one as soon as it shows (by its
/// Content-Length, or while streaming when that is absent or wrong).
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::Invalid(format!("{what}: larger than {limit} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(e, what))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sorts a transport error: timeouts, refused or reset connections and broken bodies are
/// transient; redirect loops and unbuildable requests are not. The message keeps the cause
/// chain but no URL (a storage redirect's query may be a signature).
pub(crate) fn classify(error: reqwest::Error, what: &str) -> FetchError {
    let permanent = error.is_redirect() || error.is_builder();
    let timed_out = error.is_timeout();
    let error = error.without_url();
    let mut message = format!("{what}: ");
    if timed_out {
        message.push_str("timed out: ");
    }
    message.push_str(&error.to_string());
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if permanent {
        FetchError::Invalid(message)
    } else {
        FetchError::Transient(message)
    }
}

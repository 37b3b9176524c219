//! Authentication of requests to regstat's HTTP services (the receiver's webhook, the
//! console): `Authorization: Bearer <token>` and `Authorization: Basic
//! <base64(user:password)>` against the configured values, compared in constant time.
//!
//! A registry sends whatever headers its endpoint configuration lists; a browser sends Basic
//! credentials after a `WWW-Authenticate: Basic` challenge; scripts send either.

use crate::config::BasicCredential;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use subtle::ConstantTimeEq;

/// The accepted credentials.
pub struct Authenticator {
    /// Accepted bearer tokens.
    bearer: Vec<SecretString>,
    /// Accepted basic credentials, pre-encoded as the header would carry them.
    basic: Vec<SecretBox<str>>,
}

impl Authenticator {
    /// Accepts these bearer `tokens` and `basic` users.
    pub fn new(tokens: &[SecretString], basic: &[BasicCredential]) -> Self {
        let basic = basic
            .iter()
            .map(|c| {
                let pair = format!("{}:{}", c.username, c.password.expose_secret());
                SecretBox::from(STANDARD.encode(pair))
            })
            .collect();
        Self {
            bearer: tokens.to_vec(),
            basic,
        }
    }

    /// True when no credential is configured: every request is accepted.
    pub fn is_open(&self) -> bool {
        self.bearer.is_empty() && self.basic.is_empty()
    }

    /// Whether an `Authorization` header value is acceptable.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        if self.is_open() {
            return true;
        }
        let Some(value) = authorization.and_then(|v| std::str::from_utf8(v).ok()) else {
            return false;
        };
        let Some((scheme, credential)) = value.trim().split_once(' ') else {
            return false;
        };
        let candidates: Vec<&str> = if scheme.eq_ignore_ascii_case("bearer") {
            self.bearer.iter().map(|t| t.expose_secret()).collect()
        } else if scheme.eq_ignore_ascii_case("basic") {
            self.basic.iter().map(|b| b.expose_secret()).collect()
        } else {
            return false;
        };
        let credential = credential.trim().as_bytes();
        // Check every candidate, without stopping at the first match.
        candidates
            .iter()
            .fold(subtle::Choice::from(0), |found, candidate| {
                found | candidate.as_bytes().ct_eq(credential)
            })
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(tokens: &[&str], basic: &[(&str, &str)]) -> Authenticator {
        let tokens: Vec<SecretString> = tokens.iter().map(|t| SecretString::from(*t)).collect();
        let basic: Vec<BasicCredential> = basic
            .iter()
            .map(|(u, p)| BasicCredential {
                username: (*u).to_owned(),
                password: SecretString::from(*p),
            })
            .collect();
        Authenticator::new(&tokens, &basic)
    }

    #[test]
    fn open_when_nothing_is_configured() {
        let auth = authenticator(&[], &[]);
        assert!(auth.is_open());
        assert!(auth.accepts(None));
    }

    #[test]
    fn bearer_tokens() {
        let auth = authenticator(&["one", "two"], &[]);
        assert!(auth.accepts(Some(b"Bearer one")));
        assert!(auth.accepts(Some(b"bearer two")));
        assert!(!auth.accepts(Some(b"Bearer three")));
        assert!(!auth.accepts(Some(b"Bearer on")));
        assert!(!auth.accepts(Some(b"Bearer")));
        assert!(!auth.accepts(Some(b"Basic one")));
        assert!(!auth.accepts(None));
        assert!(!auth.accepts(Some(&[0xff, 0xfe])));
    }

    #[test]
    fn basic_credentials() {
        let auth = authenticator(&[], &[("registry", "pw")]);
        let good = format!("Basic {}", STANDARD.encode("registry:pw"));
        let bad = format!("Basic {}", STANDARD.encode("registry:nope"));
        assert!(auth.accepts(Some(good.as_bytes())));
        assert!(!auth.accepts(Some(bad.as_bytes())));
        assert!(!auth.accepts(Some(b"Bearer registry:pw")));
    }
}

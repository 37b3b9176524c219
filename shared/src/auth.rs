//! Authentication of requests to regstat's HTTP services (the receiver's webhook, the
//! console): `Authorization: Bearer <token>` and `Authorization: Basic
//! <base64(user:password)>` against the configured values, compared in constant time.
//!
//! Only SHA-256 digests of the accepted values are kept, and a presented credential is hashed
//! before it is compared: every comparison is of 32 bytes against 32 bytes, so its time says
//! nothing about the accepted values' lengths (a byte-wise constant-time comparison of values
//! of different lengths returns at once, which leaks the length).
//!
//! A registry sends whatever headers its endpoint configuration lists; a browser sends Basic
//! credentials after a `WWW-Authenticate: Basic` challenge; scripts send either.

use crate::config::BasicCredential;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of a credential: what is kept and compared.
type Fingerprint = [u8; 32];

fn fingerprint(credential: &[u8]) -> Fingerprint {
    Sha256::digest(credential).into()
}

/// The accepted credentials.
pub struct Authenticator {
    /// Digests of the accepted bearer tokens.
    bearer: Vec<Fingerprint>,
    /// Digests of the accepted basic credentials, encoded as the header would carry them.
    basic: Vec<Fingerprint>,
}

impl Authenticator {
    /// Accepts these bearer `tokens` and `basic` users.
    pub fn new(tokens: &[SecretString], basic: &[BasicCredential]) -> Self {
        let basic = basic
            .iter()
            .map(|c| {
                let pair = format!("{}:{}", c.username, c.password.expose_secret());
                fingerprint(STANDARD.encode(pair).as_bytes())
            })
            .collect();
        Self {
            bearer: tokens
                .iter()
                .map(|t| fingerprint(t.expose_secret().as_bytes()))
                .collect(),
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
        let candidates = if scheme.eq_ignore_ascii_case("bearer") {
            &self.bearer
        } else if scheme.eq_ignore_ascii_case("basic") {
            &self.basic
        } else {
            return false;
        };
        let presented = fingerprint(credential.trim().as_bytes());
        // Check every candidate, without stopping at the first match.
        candidates
            .iter()
            .fold(subtle::Choice::from(0), |found, candidate| {
                found | candidate.ct_eq(&presented)
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

    /// What is kept and compared is a fixed-size digest whatever the credential's length, so
    /// the comparison's time cannot tell a presented value's length from the accepted one's.
    #[test]
    fn only_fixed_size_digests_are_kept_and_compared() {
        let long = "t".repeat(10_000);
        let auth = authenticator(&["x", &long], &[("u", "p")]);
        assert!(auth.bearer.iter().chain(&auth.basic).all(|d| d.len() == 32));
        assert_eq!(auth.bearer[0], fingerprint(b"x"));
        assert!(auth.accepts(Some(format!("Bearer {long}").as_bytes())));
        assert!(!auth.accepts(Some(format!("Bearer {long}t").as_bytes())));
        assert!(!auth.accepts(Some(b"Bearer xx")));
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

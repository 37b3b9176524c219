//! Checks on what goes into a registry URL (repository names, tags, digests, by the one
//! grammar of [`regstat_shared::grammar`]) and on what comes back (the content matches its
//! digest).

use regstat_shared::grammar::{digest_problem, repository_problem, tag_problem};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm regstat can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// `sha256:<64 hex>`, what every registry uses.
    Sha256,
    /// `sha512:<128 hex>`, allowed by the OCI spec.
    Sha512,
}

impl Algorithm {
    /// The lowercase hex digest of `bytes`.
    fn hex(self, bytes: &[u8]) -> String {
        match self {
            Self::Sha256 => format!("{:x}", Sha256::digest(bytes)),
            Self::Sha512 => format!("{:x}", Sha512::digest(bytes)),
        }
    }
}

/// The algorithm of a digest regstat may fetch by: a digest as distribution's grammar defines
/// it ([`digest_problem`]) whose algorithm regstat can verify. Anything else (including path
/// tricks) is refused before a URL is built.
pub(crate) fn fetchable(digest: &str) -> Result<Algorithm, String> {
    if let Some(problem) = digest_problem(digest) {
        return Err(format!("`{digest}` {problem}"));
    }
    match digest.split_once(':').map(|(algorithm, _)| algorithm) {
        Some("sha256") => Ok(Algorithm::Sha256),
        Some("sha512") => Ok(Algorithm::Sha512),
        other => Err(format!(
            "unsupported digest algorithm `{}`",
            other.unwrap_or_default()
        )),
    }
}

/// Whether `bytes` hash to `digest` (whose algorithm [`fetchable`] returned).
pub(crate) fn matches(algorithm: Algorithm, digest: &str, bytes: &[u8]) -> bool {
    digest
        .split_once(':')
        .is_some_and(|(_, hex)| algorithm.hex(bytes) == hex)
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", Algorithm::Sha256.hex(bytes))
}

/// Checks a repository name against distribution's grammar ([`repository_problem`]) before
/// it goes into a URL.
pub(crate) fn check_repository(repository: &str) -> Result<(), String> {
    match repository_problem(repository) {
        None => Ok(()),
        Some(problem) => Err(format!("`{repository}` {problem}")),
    }
}

/// Checks a tag against distribution's grammar ([`tag_problem`]) before it goes into a URL.
pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    match tag_problem(tag) {
        None => Ok(()),
        Some(problem) => Err(format!("`{tag}` {problem}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetchable_digests() {
        let hex = "a".repeat(64);
        assert_eq!(fetchable(&format!("sha256:{hex}")), Ok(Algorithm::Sha256));
        assert_eq!(
            fetchable(&format!("sha512:{}", "0".repeat(128))),
            Ok(Algorithm::Sha512)
        );
        for bad in [
            "",
            "sha256",
            "sha256:",
            "md5:abc",
            "sha256:../../v2",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            &format!("sha256:{hex}/x"),
        ] {
            assert!(fetchable(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn verification() {
        let digest = sha256(b"hello");
        assert_eq!(
            digest,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let algorithm = fetchable(&digest).expect("fetchable");
        assert!(matches(algorithm, &digest, b"hello"));
        assert!(!matches(algorithm, &digest, b"hello!"));
    }

    #[test]
    fn repository_names() {
        for good in [
            "a",
            "library/alpine",
            "e2e/app",
            "a.b_c__d---e/f-0",
            "x/y/z",
        ] {
            assert!(check_repository(good).is_ok(), "refused {good:?}");
        }
        let long = "a".repeat(256);
        for bad in [
            "", "/a", "a/", "a//b", "A", "a..b", "a___b", "a._b", "-a", "a-", "../v2", "a?b",
            "a%2fb", "a b", &long,
        ] {
            assert!(check_repository(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn tags() {
        for good in ["latest", "v1.2.3", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(check_tag(good).is_ok(), "refused {good:?}");
        }
        for bad in [
            "",
            ".x",
            "-x",
            "a/b",
            "a:b",
            "../x",
            "a b",
            &"a".repeat(129),
        ] {
            assert!(check_tag(bad).is_err(), "accepted {bad:?}");
        }
    }
}

//! Checks on what goes into a registry URL (repository names, digests) and on what comes back
//! (the content matches its digest).

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

/// The algorithm of a digest regstat may fetch by: `sha256:` or `sha512:` and lowercase hex of
/// the right length. Anything else (including path tricks) is refused before a URL is built.
pub(crate) fn fetchable(digest: &str) -> Result<Algorithm, String> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("`{digest}` is not a digest (algorithm:hex)"))?;
    let (algorithm, length) = match algorithm {
        "sha256" => (Algorithm::Sha256, 64),
        "sha512" => (Algorithm::Sha512, 128),
        other => return Err(format!("unsupported digest algorithm `{other}`")),
    };
    let is_hex = hex
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex.len() != length || !is_hex {
        return Err(format!("`{digest}` is not a well-formed digest"));
    }
    Ok(algorithm)
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

/// Whether `digest` has the general OCI digest grammar (`algorithm:encoded`), as every digest
/// inside a manifest must.
pub(crate) fn well_formed(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let encoded_ok = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"=_-".contains(&b));
    algorithm_ok && encoded_ok
}

/// Checks a repository name against distribution's grammar: `/`-separated components of
/// lowercase letters and digits joined by `.`, `_`, `__` or dashes, at most 255 characters.
pub(crate) fn check_repository(repository: &str) -> Result<(), String> {
    let bad = || format!("`{repository}` is not a valid repository name");
    if repository.is_empty() || repository.len() > 255 {
        return Err(bad());
    }
    for component in repository.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Err(bad());
        };
        if !alnum(first) || !alnum(last) {
            return Err(bad());
        }
        // Separators: one `.`, one or two `_`, or any number of `-`, always between alnums.
        let mut separator = String::new();
        for b in bytes {
            if alnum(b) {
                let ok = matches!(separator.as_str(), "" | "." | "_" | "__")
                    || separator.bytes().all(|s| s == b'-');
                if !ok {
                    return Err(bad());
                }
                separator.clear();
            } else if b".-_".contains(b) {
                separator.push(char::from(*b));
            } else {
                return Err(bad());
            }
        }
    }
    Ok(())
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
    fn general_digest_grammar() {
        assert!(well_formed("sha256:abc"));
        assert!(well_formed(
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"
        ));
        assert!(!well_formed("sha256"));
        assert!(!well_formed(":abc"));
        assert!(!well_formed("sha256:"));
        assert!(!well_formed("SHA256:abc"));
        assert!(!well_formed("sha256:a/b"));
    }
}

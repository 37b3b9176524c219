//! The distribution grammar of what events and registry URLs name: repository names, tags
//! and digests (`distribution/reference/regexp.go`, `opencontainers/go-digest`). The receiver
//! checks events with it and the registry client checks what it puts into a URL with it: one
//! grammar, written once.
//!
//! Hand-written rather than with the `regex` crate: the three grammars are tiny and regular, so
//! each check is a few lines of byte matching with no dependency, no lazily compiled statics and
//! no allocation, and each can say which rule broke. The unit tests (`event/tests.rs`) generate
//! names from the very regular expressions of distribution's `reference/regexp.go` (proptest's
//! regex strategies) to check that the hand-written code accepts what the regexes accept.

/// Longest repository name (distribution's `NameTotalLengthMax`).
pub const MAX_REPOSITORY_BYTES: usize = 255;

/// Longest tag (`[\w][\w.-]{0,127}`).
pub const MAX_TAG_BYTES: usize = 128;

/// What is wrong with a repository name, if anything: path components
/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*` joined by `/`, at most 255 bytes.
pub fn repository_problem(name: &str) -> Option<&'static str> {
    if name.len() > MAX_REPOSITORY_BYTES {
        return Some("is not a repository name: longer than 255 bytes");
    }
    if name.split('/').all(is_path_component) {
        None
    } else {
        Some(
            "is not a repository name: path components of lowercase letters and digits, \
             separated by '.', '_', '__' or dashes, joined by '/'",
        )
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`: runs of lowercase letters and digits, each pair
/// separated by one `.`, one `_`, `__`, or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let mut at = 0;
    loop {
        let run = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            .count();
        if run == 0 {
            return false;
        }
        at += run;
        let separator = match bytes.get(at) {
            None => return true,
            Some(b'.') => 1,
            Some(b'_') if bytes.get(at + 1) == Some(&b'_') => 2,
            Some(b'_') => 1,
            Some(b'-') => bytes[at..].iter().take_while(|&&b| b == b'-').count(),
            Some(_) => return false,
        };
        at += separator;
    }
}

/// What is wrong with a tag, if anything: `[\w][\w.-]{0,127}` (`\w` is ASCII here, as in Go).
pub fn tag_problem(tag: &str) -> Option<&'static str> {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = tag.as_bytes();
    let valid = bytes.len() <= MAX_TAG_BYTES
        && bytes.first().is_some_and(word)
        && bytes.iter().all(|b| word(b) || *b == b'.' || *b == b'-');
    (!valid).then_some(
        "is not a tag: up to 128 letters, digits, '_', '.' and '-', starting with a letter, \
         digit or '_'",
    )
}

/// What is wrong with a digest, if anything: `algorithm:encoded` where the algorithm is
/// `[a-z0-9]+(?:[.+_-][a-z0-9]+)*`; sha256, sha384 and sha512 (the algorithms go-digest
/// registers) take exactly 64, 96 and 128 lowercase hex digits, others `[a-zA-Z0-9=_-]+`.
pub fn digest_problem(digest: &str) -> Option<&'static str> {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return Some(NO_SEPARATOR);
    };
    let hex_len = match algorithm {
        "sha256" => Some(64),
        "sha384" => Some(96),
        "sha512" => Some(128),
        _ => None,
    };
    if let Some(len) = hex_len {
        let hex = encoded.len() == len
            && encoded
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        return (!hex).then_some(match algorithm {
            "sha256" => "is not a digest: sha256 takes 64 lowercase hex digits",
            "sha384" => "is not a digest: sha384 takes 96 lowercase hex digits",
            _ => "is not a digest: sha512 takes 128 lowercase hex digits",
        });
    }
    syntax_problem(algorithm, encoded)
}

/// What is wrong with a digest's general form, if anything: the OCI grammar
/// `algorithm:encoded` alone, without [`digest_problem`]'s lengths for registered algorithms.
/// Digests inside a manifest are held to this much (a registry verifies the ones it serves).
pub fn digest_syntax_problem(digest: &str) -> Option<&'static str> {
    match digest.split_once(':') {
        None => Some(NO_SEPARATOR),
        Some((algorithm, encoded)) => syntax_problem(algorithm, encoded),
    }
}

const NO_SEPARATOR: &str = "is not a digest: no ':' between algorithm and hex";

fn syntax_problem(algorithm: &str, encoded: &str) -> Option<&'static str> {
    let algorithm_ok = algorithm.split(['.', '+', '_', '-']).all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    let encoded_ok = !encoded.is_empty()
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    if algorithm_ok && encoded_ok {
        None
    } else {
        Some("is not a digest: algorithm:encoded as the OCI image spec defines")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_general_digest_grammar_takes_any_registered_length() {
        assert_eq!(digest_syntax_problem("sha256:abc"), None);
        assert_eq!(
            digest_syntax_problem(
                "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"
            ),
            None
        );
        assert!(digest_problem("sha256:abc").is_some());
        for bad in ["sha256", ":abc", "sha256:", "SHA256:abc", "sha256:a/b"] {
            assert!(digest_syntax_problem(bad).is_some(), "{bad}");
        }
    }
}

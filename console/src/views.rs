//! How values look on a page, and links that keep their filters. Templates only print what
//! these return (askama escapes it).

use chrono::{DateTime, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What a path segment keeps unencoded (beyond letters and digits).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// A repository path keeps its `/`.
const REPOSITORY_PATH: &AsciiSet = &SEGMENT.remove(b'/');

/// A size in binary units, `-` when unknown.
pub fn bytes(size: Option<i64>) -> String {
    let Some(size) = size else {
        return "-".to_owned();
    };
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = size as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{size} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A time to the minute in UTC, or `none` (e.g. "never") when there is none.
pub fn time_or(at: Option<DateTime<Utc>>, none: &str) -> String {
    at.map_or_else(
        || none.to_owned(),
        |at| at.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// A time, or "never".
pub fn time(at: Option<DateTime<Utc>>) -> String {
    time_or(at, "never")
}

/// A time and what it is (`pushed`, `created`, `first_seen`, `pulled`...), e.g.
/// `2026-11-01 00:00 UTC (built)`; unknown is "unknown", never a date.
pub fn sourced(at: Option<DateTime<Utc>>, source: Option<&str>) -> String {
    let what = match source {
        Some("created") => " (built, estimated)",
        Some("first_seen") => " (first seen)",
        Some("pulled") => " (pulled)",
        Some("checked") => " (checked)",
        Some("pushed") => " (pushed)",
        _ => "",
    };
    at.map_or_else(|| "unknown".to_owned(), |_| format!("{}{what}", time(at)))
}

/// A time to the second, for the activity.
pub fn instant(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A manifest media type as people say it (the full one for anything else).
pub fn media_type(media_type: Option<&str>) -> String {
    match media_type {
        None => String::new(),
        Some("application/vnd.oci.image.manifest.v1+json") => "OCI image".to_owned(),
        Some("application/vnd.oci.image.index.v1+json") => "OCI index".to_owned(),
        Some("application/vnd.docker.distribution.manifest.v2+json") => "Docker image".to_owned(),
        Some("application/vnd.docker.distribution.manifest.list.v2+json") => {
            "Docker manifest list".to_owned()
        }
        Some(other) => other.to_owned(),
    }
}

/// The first 12 hex digits of a digest, for tables (the full one is in the link).
pub fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) if hex.len() > 12 => format!("{algorithm}:{}", &hex[..12]),
        _ => digest.to_owned(),
    }
}

/// The page of a repository.
pub fn repository_href(registry: &str, repository: &str) -> String {
    format!(
        "/repositories/{}/{}",
        utf8_percent_encode(registry, SEGMENT),
        utf8_percent_encode(repository, REPOSITORY_PATH)
    )
}

/// The page of a digest.
pub fn digest_href(digest: &str) -> String {
    format!("/digests/{}", utf8_percent_encode(digest, SEGMENT))
}

/// `path?query` with the given parameters (empty ones left out).
pub fn href(path: &str, params: &[(&str, Option<String>)]) -> String {
    let given: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    if given.is_empty() {
        return path.to_owned();
    }
    let query = serde_urlencoded::to_string(&given).unwrap_or_default();
    format!("{path}?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_for_people() {
        assert_eq!(bytes(Some(1536)), "1.5 KiB");
        assert_eq!(bytes(Some(10)), "10 B");
        assert_eq!(bytes(None), "-");
        assert_eq!(time(None), "never");
        assert_eq!(
            short_digest(&format!("sha256:{}", "ab".repeat(32))),
            "sha256:abababababab"
        );
    }

    #[test]
    fn links_keep_slashes_of_repositories_and_encode_the_rest() {
        assert_eq!(
            repository_href("127.0.0.1:5000", "lab/app"),
            "/repositories/127.0.0.1%3A5000/lab/app"
        );
        assert_eq!(
            repository_href("r", "<script>/x y"),
            "/repositories/r/%3Cscript%3E/x%20y"
        );
        assert_eq!(
            href(
                "/repositories",
                &[
                    ("q", Some("a b".into())),
                    ("page", None),
                    ("registry", Some(String::new()))
                ]
            ),
            "/repositories?q=a+b"
        );
    }
}

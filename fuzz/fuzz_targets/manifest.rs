//! The worker's manifest and config parsers (`regstat_worker::registry::parse_manifest`,
//! `parse_config_platform`) on what a registry might serve. Nothing may panic.
//!
//! The first byte picks the response's Content-Type: one of the types registries send, none,
//! or (from 200 on) the input's first line, so parameters and junk types are reached too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use regstat_worker::registry::{parse_config_platform, parse_manifest};

const CONTENT_TYPES: [Option<&str>; 10] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    Some("application/vnd.docker.distribution.manifest.v1+json"),
    Some("application/json"),
    Some("application/octet-stream"),
    Some("text/html"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector >= 200 {
        let (line, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &[][..]),
        };
        let content_type = String::from_utf8_lossy(line);
        let _ = parse_manifest(Some(&content_type), body);
        let _ = parse_config_platform(body);
    } else {
        let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
        let _ = parse_manifest(content_type, rest);
        let _ = parse_config_platform(rest);
    }
});

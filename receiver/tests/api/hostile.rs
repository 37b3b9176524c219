//! Hostile and broken input, as one table: each request with the answer it must get and exactly
//! what must reach each queue.
//!
//! The rule (see `shared/fixtures/README.md`): the registry retries any non-2xx forever and
//! holds every later event behind it, so only a malformed *request* gets a 4xx; a malformed
//! *event* inside a well-formed envelope goes to the quarantine queue with the reason, the
//! valid events beside it are published, and the request gets 200. Never a 500, never a crash.

use crate::helpers::{TOKEN, TestApp, V1, fixture_bodies};
use regstat_shared::topology::{REASON_HEADER, header_str};
use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};

const SHA: &str = "sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MIB: usize = 1024 * 1024;

/// A request body, sent with a `Content-Length` or chunked (no length announced).
enum Body {
    Sized(Vec<u8>),
    Chunked(Vec<u8>),
}

/// What the receiver must answer and publish.
enum Expect {
    /// A 4xx: this status, this error code, a message containing this; nothing published.
    Rejected {
        status: u16,
        code: &'static str,
        message: &'static str,
    },
    /// 200, and exactly these messages in each queue, in order.
    Accepted {
        /// `(routing key, message id)` of each event published for processing.
        published: Vec<(&'static str, String)>,
        /// `(message id, or None for a fresh one, reason substring)` of each quarantined event.
        quarantined: Vec<(Option<String>, &'static str)>,
    },
}

struct Case {
    name: &'static str,
    /// Changes to the registry's headers (`Authorization: Bearer <token>`, `Content-Type:
    /// ...events.v1+json`): `Some` sets the value, `None` removes the header.
    headers: Vec<(&'static str, Option<Vec<u8>>)>,
    body: Body,
    expect: Expect,
}

fn case(name: &'static str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        headers: Vec::new(),
        body: Body::Sized(body.into()),
        expect: Expect::Accepted {
            published: Vec::new(),
            quarantined: Vec::new(),
        },
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, Some(value.into())));
        self
    }

    fn without(mut self, name: &'static str) -> Self {
        self.headers.push((name, None));
        self
    }

    fn chunked(mut self) -> Self {
        let (Body::Sized(bytes) | Body::Chunked(bytes)) = self.body;
        self.body = Body::Chunked(bytes);
        self
    }

    fn rejected(mut self, status: u16, code: &'static str, message: &'static str) -> Self {
        self.expect = Expect::Rejected {
            status,
            code,
            message,
        };
        self
    }

    fn published(mut self, messages: &[(&'static str, &str)]) -> Self {
        let list = messages.iter().map(|(k, id)| (*k, (*id).to_owned()));
        match &mut self.expect {
            Expect::Accepted { published, .. } => published.extend(list),
            Expect::Rejected { .. } => unreachable!("{}: published after rejected", self.name),
        }
        self
    }

    fn quarantined(mut self, messages: &[(Option<&str>, &'static str)]) -> Self {
        let list = messages
            .iter()
            .map(|(id, reason)| (id.map(str::to_owned), *reason));
        match &mut self.expect {
            Expect::Accepted { quarantined, .. } => quarantined.extend(list),
            Expect::Rejected { .. } => unreachable!("{}: quarantined after rejected", self.name),
        }
        self
    }
}

/// A valid blob pull event (routing key `pull.blob`).
fn pull(id: &str) -> String {
    event(
        id,
        "pull",
        &format!(
            r#"{{"mediaType": "application/octet-stream", "size": 10, "digest": "{SHA}", "repository": "lab/app"}}"#
        ),
    )
}

/// A manifest push event with `target` fields added to a valid manifest target.
fn push_manifest(id: &str, extra_target: &str) -> String {
    event(
        id,
        "push",
        &format!(
            r#"{{"mediaType": "{MANIFEST}", "size": 500, "digest": "{SHA}", "repository": "lab/app", "tag": "v1"{extra_target}}}"#
        ),
    )
}

fn event(id: &str, action: &str, target: &str) -> String {
    format!(
        r#"{{"id": "{id}", "timestamp": "2026-11-22T10:17:28.770756613Z", "action": "{action}", "target": {target}, "request": {{"method": "GET", "useragent": "skopeo/1.9.3"}}, "actor": {{}}, "source": {{"addr": "vm:5000"}}}}"#
    )
}

/// A pull event whose target has `field` set to the raw JSON `value` (replacing a valid one).
fn pull_with(id: &str, field: &str, value: &str) -> String {
    let mut target: serde_json::Map<String, Value> = serde_json::from_str(&format!(
        r#"{{"mediaType": "application/octet-stream", "size": 10, "digest": "{SHA}", "repository": "lab/app"}}"#
    ))
    .unwrap();
    target.remove(field);
    let mut text = serde_json::to_string(&target).unwrap();
    text.pop();
    text.push_str(&format!(r#","{field}": {value}}}"#));
    event(id, "pull", &text)
}

fn envelope(events: &[String]) -> Vec<u8> {
    format!(r#"{{"events": [{}]}}"#, events.join(", ")).into_bytes()
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// The corpus. Ids are unique across cases so that a message in the wrong case shows.
fn corpus() -> Vec<Case> {
    let fixture = fixture_bodies("03-pull-by-tag.jsonl")[0].clone();
    let long_id = "i".repeat(300);
    let many: Vec<String> = (0..1000).map(|i| pull(&format!("many-{i:04}"))).collect();
    let many_ids: Vec<String> = (0..1000).map(|i| format!("many-{i:04}")).collect();
    let mut cases = vec![
        // ---- Authentication: 401, nothing read further.
        case("missing auth", fixture.clone())
            .without("authorization")
            .rejected(401, "unauthorized", "credentials"),
        case("wrong bearer token", fixture.clone())
            .header("authorization", "Bearer wrong-token")
            .rejected(401, "unauthorized", "credentials"),
        case("token with a different case", fixture.clone())
            .header("authorization", format!("Bearer {}", TOKEN.to_uppercase()))
            .rejected(401, "unauthorized", "credentials"),
        case("right token, basic scheme", fixture.clone())
            .header("authorization", format!("Basic {TOKEN}"))
            .rejected(401, "unauthorized", "credentials"),
        case("token without a scheme", fixture.clone())
            .header("authorization", TOKEN)
            .rejected(401, "unauthorized", "credentials"),
        case("authorization that is not ASCII", fixture.clone())
            .header("authorization", b"Bearer \xfftest-token".to_vec())
            .rejected(401, "unauthorized", "credentials"),
        // ---- Content type and encoding: 415.
        case("no content type", fixture.clone())
            .without("content-type")
            .rejected(415, "unsupported_media_type", "content type"),
        case("text/plain", fixture.clone())
            .header("content-type", "text/plain")
            .rejected(415, "unsupported_media_type", "text/plain"),
        case("a type that only starts like JSON", fixture.clone())
            .header("content-type", "application/jsonp")
            .rejected(415, "unsupported_media_type", "application/jsonp"),
        case("multipart form", fixture.clone())
            .header("content-type", "multipart/form-data; boundary=x")
            .rejected(415, "unsupported_media_type", "multipart"),
        case("gzip content encoding", fixture.clone())
            .header("content-encoding", "gzip")
            .rejected(415, "unsupported_content_encoding", "gzip"),
        case("a very long content type", fixture.clone())
            .header("content-type", format!("text/{}", "x".repeat(4000)))
            .rejected(415, "unsupported_media_type", "..."),
        // ---- Size: 413 before or while reading.
        case("5 MiB body with a Content-Length", {
            let mut body = envelope(&[pull("big-1")]);
            body.resize(5 * MIB, b' ');
            body
        })
        .rejected(413, "payload_too_large", "1048576"),
        case("5 MiB body, chunked", {
            let mut body = envelope(&[pull("big-2")]);
            body.resize(5 * MIB, b' ');
            body
        })
        .chunked()
        .rejected(413, "payload_too_large", "1048576"),
        case("1,001 events in one request", {
            let mut events = many.clone();
            events.push(pull("many-1000"));
            envelope(&events)
        })
        .rejected(413, "too_many_events", "1001 events"),
        // ---- Not an envelope: 400 saying what and where.
        case("empty body", "").rejected(400, "bad_request", "EOF"),
        case("not JSON", "hello").rejected(400, "bad_request", "line 1 column 1"),
        case("truncated JSON", r#"{"events": [{"id": "x""#).rejected(
            400,
            "bad_request",
            "EOF",
        ),
        case("a JSON array", format!("[{fixture}]")).rejected(
            400,
            "bad_request",
            "expected a JSON object",
        ),
        case("events is an object", r#"{"events": {"id": "x"}}"#).rejected(
            400,
            "bad_request",
            "invalid type: map",
        ),
        case("events is null", r#"{"events": null}"#).rejected(400, "bad_request", "null"),
        case("no events key", r#"{"event": []}"#).rejected(
            400,
            "bad_request",
            "missing field `events`",
        ),
        case(
            "events given twice",
            format!(r#"{{"events": [], "events": [{}]}}"#, pull("twice")),
        )
        .rejected(400, "bad_request", "duplicate field `events`"),
        case("trailing garbage", format!("{fixture} {{}}")).rejected(
            400,
            "bad_request",
            "trailing characters",
        ),
        case("UTF-8 byte order mark", {
            let mut body = b"\xef\xbb\xbf".to_vec();
            body.extend_from_slice(fixture.as_bytes());
            body
        })
        .rejected(400, "bad_request", "line 1 column 1"),
        case("invalid UTF-8 in a string", {
            let mut body = br#"{"events": [{"id": "utf8-"#.to_vec();
            body.extend_from_slice(b"\xc3\x28");
            body.extend_from_slice(br#"", "action": "pull", "target": {}}]}"#);
            body
        })
        .rejected(400, "bad_request", "invalid unicode"),
        case(
            "a raw NUL byte in a string",
            b"{\"events\": [{\"id\": \"nul\0byte\", \"action\": \"pull\", \"target\": {}}]}".to_vec(),
        )
        .rejected(400, "bad_request", "control character"),
        // serde_json skips unknown values and reads raw events without recursing, so its
        // recursion limit (128) is never reached: a deep body is refused for its shape.
        case("10,000-deep nested arrays as the body", nested_arrays(10_000)).rejected(
            400,
            "bad_request",
            "invalid type: sequence, expected a JSON object at line 1 column 0",
        ),
        case(
            "10,000-deep nested objects as the body",
            format!("{}1{}", r#"{"a": "#.repeat(10_000), "}".repeat(10_000)),
        )
        .rejected(400, "bad_request", "missing field `events`"),
        // ---- Well-formed envelopes: 200.
        case("empty envelope", r#"{"events": []}"#),
        case("real fixture, all fields", fixture.clone()).published(&[(
            "pull.manifest",
            "05ef1ea8-4fac-423a-a6b0-9e0160c37804",
        )]),
        case(
            "deep nesting only in an unknown envelope field",
            format!(
                r#"{{"x": {}, "events": [{}]}}"#,
                nested_arrays(10_000),
                pull("env-deep")
            ),
        )
        .published(&[("pull.blob", "env-deep")]),
        case(
            "distribution 3.x empty values",
            envelope(&[event(
                "v3-empty",
                "delete",
                r#"{"mediaType": "", "size": 0, "digest": "", "length": 0, "repository": "lab/app", "tag": "v1", "url": "", "references": []}"#,
            )]),
        )
        .published(&[("delete.manifest", "v3-empty")]),
        case(
            "unknown action and unknown fields are kept",
            envelope(&[event(
                "scan-1",
                "scan",
                r#"{"mediaType": "application/octet-stream", "repository": "lab/app", "annotations": {"a": [1, {"b": null}]}}"#,
            )]),
        )
        .published(&[("other.blob", "scan-1")]),
        case(
            "escapes in an id",
            envelope(&[pull(r#"\u0065sc\t\"q\" \ud83d\ude00"#)]),
        )
        .published(&[("pull.blob", "esc\t\"q\" \u{1F600}")]),
        case(
            "the same event twice",
            envelope(&[pull("twin"), pull("twin")]),
        )
        .published(&[("pull.blob", "twin"), ("pull.blob", "twin")]),
        case("1,000 events: the limit", envelope(&many)),
        case(
            "a 900 KiB valid event",
            envelope(&[push_manifest(
                "fat",
                &format!(r#", "annotations": {{"pad": "{}"}}"#, "p".repeat(900 * 1024)),
            )]),
        )
        .published(&[("push.manifest", "fat")]),
        case(
            "events that are not objects",
            r#"{"events": [1, "x", null, true, []]}"#,
        )
        .quarantined(&[
            (None, "invalid type: integer `1`, expected a JSON object"),
            (None, "invalid type: string \"x\", expected a JSON object"),
            (None, "invalid type: null, expected a JSON object"),
            (None, "invalid type: boolean `true`, expected a JSON object"),
            (None, "invalid type: sequence, expected a JSON object"),
        ]),
        case(
            "missing id, action, target",
            envelope(&[
                r#"{"action": "pull", "target": {"repository": "lab/app"}}"#.to_owned(),
                r#"{"id": "no-action", "target": {"repository": "lab/app"}}"#.to_owned(),
                r#"{"id": "no-target", "action": "pull"}"#.to_owned(),
                r#"{"id": "", "action": "pull", "target": {}}"#.to_owned(),
                r#"{"id": 42, "action": "pull", "target": {}}"#.to_owned(),
            ]),
        )
        .quarantined(&[
            (None, "event has no id"),
            (Some("no-action"), "event has no action"),
            (Some("no-target"), "event has no target"),
            (None, "event has no id"),
            (None, "invalid type: integer `42`, expected a string"),
        ]),
        case(
            "bad timestamps",
            envelope(&[
                r#"{"id": "ts-word", "timestamp": "yesterday", "action": "pull", "target": {}}"#
                    .to_owned(),
                r#"{"id": "ts-no-offset", "timestamp": "2026-11-22T10:17:52.0117", "action": "pull", "target": {}}"#
                    .to_owned(),
                r#"{"id": "ts-feb-30", "timestamp": "2026-02-30T00:00:00Z", "action": "pull", "target": {}}"#
                    .to_owned(),
                r#"{"id": "ts-number", "timestamp": 1763806672, "action": "pull", "target": {}}"#
                    .to_owned(),
                format!(
                    r#"{{"id": "ts-huge", "timestamp": "{}", "action": "pull", "target": {{}}}}"#,
                    "9".repeat(200_000)
                ),
            ]),
        )
        .quarantined(&[
            (Some("ts-word"), "invalid timestamp \"yesterday\""),
            (Some("ts-no-offset"), "invalid timestamp"),
            (Some("ts-feb-30"), "invalid timestamp"),
            (Some("ts-number"), "invalid type: integer `1763806672`"),
            (Some("ts-huge"), "(200000 bytes)"),
        ]),
        case(
            "odd sizes",
            envelope(&[
                pull_with("size-negative", "size", "-1"),
                pull_with("size-fraction", "size", "1.5"),
                pull_with("size-string", "size", r#""12""#),
                pull_with("size-u64-max", "size", "18446744073709551615"),
                pull_with("size-over-u64", "size", "18446744073709551616"),
                pull_with("size-inf", "size", "1e400"),
                pull_with("size-huge-string", "size", &format!(r#""{}""#, "9".repeat(300_000))),
            ]),
        )
        .quarantined(&[
            (Some("size-negative"), "-1"),
            (Some("size-fraction"), "floating point `1.5`"),
            (Some("size-string"), "invalid type: string \"12\""),
            (Some("size-u64-max"), "target.size 18446744073709551615 is larger than 2^63 - 1"),
            (Some("size-over-u64"), "floating point"),
            (Some("size-inf"), "number out of range"),
            (Some("size-huge-string"), "[...]"),
        ]),
        case(
            "absurd tags",
            envelope(&[
                push_manifest("tag-long", &format!(r#", "tag": "{}""#, "t".repeat(129)))
                    .replacen(r#""tag": "v1", "#, "", 1),
                push_manifest("tag-dash", "").replace(r#""tag": "v1""#, r#""tag": "-v1""#),
                push_manifest("tag-space", "").replace(r#""tag": "v1""#, r#""tag": "v 1""#),
                push_manifest("tag-slash", "").replace(r#""tag": "v1""#, r#""tag": "../v1""#),
                push_manifest("tag-unicode", "").replace(r#""tag": "v1""#, r#""tag": "vé""#),
                push_manifest("tag-128", "").replace(
                    r#""tag": "v1""#,
                    &format!(r#""tag": "{}""#, "t".repeat(128)),
                ),
            ]),
        )
        .published(&[("push.manifest", "tag-128")])
        .quarantined(&[
            (Some("tag-long"), "target.tag"),
            (Some("tag-dash"), "target.tag \"-v1\" is not a tag"),
            (Some("tag-space"), "target.tag \"v 1\" is not a tag"),
            (Some("tag-slash"), "target.tag"),
            (Some("tag-unicode"), "target.tag"),
        ]),
        case(
            "repository names outside the grammar",
            envelope(&[
                pull_with("repo-upper", "repository", r#""Lab/App""#),
                pull_with("repo-empty-component", "repository", r#""lab//app""#),
                pull_with("repo-dots", "repository", r#""../etc/passwd""#),
                pull_with("repo-port", "repository", r#""localhost:5000/app""#),
                pull_with("repo-trailing", "repository", r#""lab/app-""#),
                pull_with("repo-256", "repository", &format!(r#""{}""#, "a".repeat(256))),
                pull_with("repo-array", "repository", r#"["lab/app"]"#),
                event(
                    "mount-from-bad",
                    "mount",
                    &format!(
                        r#"{{"mediaType": "application/octet-stream", "digest": "{SHA}", "repository": "lab/app", "fromRepository": "Other"}}"#
                    ),
                ),
                pull_with("repo-ok", "repository", r#""a0/b.c/d_e/f__g/h---i""#),
            ]),
        )
        .published(&[("pull.blob", "repo-ok")])
        .quarantined(&[
            (Some("repo-upper"), "target.repository \"Lab/App\" is not a repository name"),
            (Some("repo-empty-component"), "target.repository"),
            (Some("repo-dots"), "target.repository"),
            (Some("repo-port"), "target.repository"),
            (Some("repo-trailing"), "target.repository"),
            (Some("repo-256"), "longer than 255 bytes"),
            (Some("repo-array"), "invalid type: sequence, expected a string"),
            (Some("mount-from-bad"), "target.fromRepository \"Other\""),
        ]),
        case(
            "bad digests",
            envelope(&[
                pull_with("digest-short", "digest", r#""sha256:abc""#),
                pull_with("digest-upper", "digest", &format!(r#""sha256:{}""#, SHA[7..].to_uppercase())),
                pull_with("digest-upper-algorithm", "digest", &format!(r#""{}""#, SHA.to_uppercase())),
                pull_with("digest-path", "digest", r#""sha256:../../v2""#),
                pull_with("digest-no-algorithm", "digest", r#""9b3a13e0""#),
                pull_with("digest-empty", "digest", r#""""#),
                push_manifest(
                    "digest-reference",
                    r#", "references": [{"mediaType": "application/octet-stream", "size": 1, "digest": "md5:"}]"#,
                ),
            ]),
        )
        .published(&[("pull.blob", "digest-empty")])
        .quarantined(&[
            (Some("digest-short"), "target.digest \"sha256:abc\" is not a digest"),
            (Some("digest-upper"), "64 lowercase hex digits"),
            (Some("digest-upper-algorithm"), "as the OCI image spec defines"),
            (Some("digest-path"), "target.digest"),
            (Some("digest-no-algorithm"), "no ':'"),
            (Some("digest-reference"), "target.references[0].digest"),
        ]),
        case(
            "nested values that are not objects",
            envelope(&[
                event("target-array", "push", &format!(r#"["{MANIFEST}", 5, "{SHA}"]"#)),
                r#"{"id": "request-array", "action": "pull", "target": {}, "request": ["GET"]}"#.to_owned(),
                push_manifest("reference-array", r#", "references": [["a", 1]]"#),
            ]),
        )
        .quarantined(&[
            (Some("target-array"), "expected a JSON object"),
            (Some("request-array"), "expected a JSON object"),
            (Some("reference-array"), "expected a JSON object"),
        ]),
        case(
            "U+0000 anywhere",
            envelope(&[
                pull(r"nul-id\u0000"),
                pull_with("nul-repository", "repository", r#""lab/app\u0000""#),
                r#"{"id": "nul-unknown", "action": "pull", "target": {}, "x": ["\u0000"]}"#.to_owned(),
                r#"{"id": "nul-key", "action": "pull", "target": {}, "x\u0000": 1}"#.to_owned(),
                r#"{"id": "nul-escaped", "action": "pull", "target": {}, "x": "\\u0000"}"#.to_owned(),
            ]),
        )
        .published(&[("pull.unknown", "nul-escaped")])
        .quarantined(&[
            (Some("nul-id\0"), "U+0000"),
            (Some("nul-repository"), "target.repository"),
            (Some("nul-unknown"), "U+0000"),
            (Some("nul-key"), "U+0000"),
        ]),
        case(
            "lone surrogate escapes",
            envelope(&[
                pull(r"\udc00"),
                pull(r"\ud800"),
                r#"{"id": "surrogate-unknown", "action": "pull", "target": {}, "x": "\udc00"}"#.to_owned(),
                r#"{"id": "surrogate-pair", "action": "pull", "target": {}, "x": "\ud83d\ude00"}"#.to_owned(),
            ]),
        )
        .published(&[("pull.unknown", "surrogate-pair")])
        .quarantined(&[
            (None, "lone leading surrogate in hex escape"),
            (None, "unexpected end of hex escape"),
            (Some("surrogate-unknown"), "unpaired UTF-16 surrogate"),
        ]),
        case(
            "deep nesting inside events",
            envelope(&[
                nested_arrays(10_000),
                format!(
                    r#"{{"id": "deep-unknown", "action": "pull", "target": {{}}, "x": {}}}"#,
                    nested_arrays(10_000)
                ),
                format!(
                    r#"{{"id": "deep-100k", "action": "pull", "target": {{}}, "x": {}}}"#,
                    nested_arrays(100_000)
                ),
                format!(
                    r#"{{"id": "deep-target", "action": "pull", "target": {{"references": {}}}}}"#,
                    nested_arrays(10_000)
                ),
                format!(
                    r#"{{"id": "deep-127", "action": "pull", "target": {{}}, "x": {}}}"#,
                    nested_arrays(127)
                ),
            ]),
        )
        .published(&[("pull.unknown", "deep-127")])
        .quarantined(&[
            (None, "invalid type: sequence, expected a JSON object"),
            (Some("deep-unknown"), "nest deeper than 128 levels"),
            (Some("deep-100k"), "nest deeper than 128 levels"),
            (Some("deep-target"), "expected a JSON object"),
        ]),
        case(
            "numbers PostgreSQL cannot hold",
            envelope(&[
                r#"{"id": "num-big", "action": "pull", "target": {}, "x": 1e200000}"#.to_owned(),
                r#"{"id": "num-small", "action": "pull", "target": {}, "x": -1e-20000}"#.to_owned(),
                r#"{"id": "num-fine", "action": "pull", "target": {}, "x": 1e400}"#.to_owned(),
            ]),
        )
        .published(&[("pull.unknown", "num-fine")])
        .quarantined(&[
            (Some("num-big"), "numeric"),
            (Some("num-small"), "numeric"),
        ]),
        case(
            "an id longer than a message id",
            envelope(&[pull(&long_id), pull(&"i".repeat(255))]),
        )
        .published(&[("pull.blob", &"i".repeat(255))])
        .quarantined(&[(None, "300 bytes long, over the 255")]),
        case(
            "a request host longer than a host name and port",
            envelope(&[
                pull("host-fine").replace(
                    r#""method": "GET""#,
                    &format!(r#""method": "GET", "host": "{}:5000""#, "h".repeat(253)),
                ),
                pull("host-long").replace(
                    r#""method": "GET""#,
                    &format!(r#""method": "GET", "host": "{}""#, "h".repeat(3000)),
                ),
            ]),
        )
        .published(&[("pull.blob", "host-fine")])
        .quarantined(&[(Some("host-long"), "request.host")]),
        // ---- Never lose a valid event that came in the same request.
        case(
            "valid events among every kind of broken one",
            envelope(&[
                pull("mixed-1"),
                "17".to_owned(),
                push_manifest("mixed-2", ""),
                pull_with("mixed-bad-digest", "digest", r#""sha256:1""#),
                nested_arrays(500),
                pull(r"mixed-\u0000"),
                event("mixed-3", "delete", &format!(r#"{{"digest": "{SHA}", "repository": "lab/app"}}"#)),
                r#"{"id": "mixed-no-target", "action": "push"}"#.to_owned(),
                pull("mixed-4"),
            ]),
        )
        .published(&[
            ("pull.blob", "mixed-1"),
            ("push.manifest", "mixed-2"),
            ("delete.unknown", "mixed-3"),
            ("pull.blob", "mixed-4"),
        ])
        .quarantined(&[
            (None, "invalid type: integer `17`"),
            (Some("mixed-bad-digest"), "target.digest"),
            (None, "invalid type: sequence"),
            (Some("mixed-\0"), "U+0000"),
            (Some("mixed-no-target"), "event has no target"),
        ]),
    ];
    // The 1,000-event case publishes them all.
    let limit = cases
        .iter_mut()
        .find(|c| c.name == "1,000 events: the limit")
        .unwrap();
    if let Expect::Accepted { published, .. } = &mut limit.expect {
        published.extend(many_ids.into_iter().map(|id| ("pull.blob", id)));
    }
    cases
}

/// Every case of the corpus, one after the other on one receiver, each checked exactly:
/// status and error code, and the precise content of every queue (drained after each case).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_exactly_the_expected_answer() {
    let logs = capture_logs();
    let app = TestApp::spawn(&[]).await;
    let url = format!("{}/events", app.address);
    let mut failures = Vec::new();
    let cases = corpus();
    let count = cases.len();
    for case in cases {
        if let Err(failure) = run(&app, &url, &case).await {
            failures.push(format!("{}: {failure}", case.name));
        }
    }
    // The receiver is still up and still takes a real event.
    assert_eq!(app.get("/healthz").await.status(), 200);
    let fixture = fixture_bodies("04-pull-by-digest.jsonl")[0].clone();
    assert_eq!(app.post("/events", fixture).await.status(), 200);
    app.stop().await;

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    if std::env::var_os("REGSTAT_SHOW_LOGS").is_some() {
        println!("{logs}");
    }
    // The check below means something only if the receiver's log lines were captured: the
    // corpus quarantines events, and each quarantined event is logged once.
    assert!(
        logs.contains("event quarantined"),
        "no log line was captured, so the absence of credentials proves nothing:\n{logs}"
    );
    assert!(!logs.contains(TOKEN), "a credential reached the logs");
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

async fn run(app: &TestApp, url: &str, case: &Case) -> Result<(), String> {
    let mut headers = vec![
        (
            "authorization",
            Some(format!("Bearer {TOKEN}").into_bytes()),
        ),
        ("content-type", Some(V1.as_bytes().to_vec())),
    ];
    for (name, value) in &case.headers {
        headers.retain(|(n, _)| n != name);
        headers.push((name, value.clone()));
    }
    let mut request = app.client.post(url);
    for (name, value) in headers {
        if let Some(value) = value {
            let value =
                reqwest::header::HeaderValue::from_bytes(&value).map_err(|e| e.to_string())?;
            request = request.header(name, value);
        }
    }
    let sent: &[u8] = match &case.body {
        Body::Sized(bytes) => {
            request = request.body(bytes.clone());
            bytes
        }
        Body::Chunked(bytes) => {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
            request = request.body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )));
            bytes
        }
    };
    let response = request
        .send()
        .await
        .map_err(|e| format!("no answer: {e:?}"))?;
    let status = response.status().as_u16();
    let www_authenticate = response.headers().contains_key("www-authenticate");
    let answer: Value = response
        .json()
        .await
        .map_err(|e| format!("status {status}, body is not JSON: {e}"))?;
    let queues = drain(app).await;

    match &case.expect {
        Expect::Rejected {
            status: want,
            code,
            message,
        } => {
            check(status == *want, || {
                format!("status {status}, want {want}: {answer}")
            })?;
            check(answer["error"] == *code, || format!("error code: {answer}"))?;
            let text = answer["message"].as_str().unwrap_or_default();
            check(text.contains(message), || {
                format!("message lacks {message:?}: {answer}")
            })?;
            check(answer["request_id"].is_string(), || {
                format!("no request id: {answer}")
            })?;
            check(text.len() < 2048, || {
                format!("message of {} bytes", text.len())
            })?;
            check(!text.contains(TOKEN), || {
                "message echoes the token".to_owned()
            })?;
            check(status != 401 || www_authenticate, || {
                "401 without WWW-Authenticate".to_owned()
            })?;
            check(queues.iter().all(Vec::is_empty), || {
                format!("published on a {status}: {queues:?}")
            })
        }
        Expect::Accepted {
            published,
            quarantined,
        } => {
            check(status == 200, || format!("status {status}: {answer}"))?;
            check(answer["accepted"] == published.len(), || {
                format!("accepted {}, want {}", answer["accepted"], published.len())
            })?;
            check(answer["quarantined"] == quarantined.len(), || {
                format!(
                    "quarantined {}, want {}",
                    answer["quarantined"],
                    quarantined.len()
                )
            })?;
            let [manifests, ingest, quarantine] = &queues;
            let want_manifests: Vec<(String, String)> = published
                .iter()
                .filter(|(key, _)| *key == "push.manifest")
                .map(|(k, id)| ((*k).to_owned(), id.clone()))
                .collect();
            let want_ingest: Vec<(String, String)> = published
                .iter()
                .filter(|(key, _)| *key != "push.manifest")
                .map(|(k, id)| ((*k).to_owned(), id.clone()))
                .collect();
            let keyed = |messages: &[Message]| -> Vec<(String, String)> {
                messages
                    .iter()
                    .map(|m| (m.routing_key.clone(), m.id.clone()))
                    .collect()
            };
            check(keyed(manifests) == want_manifests, || {
                format!(
                    "manifest queue {:?}, want {want_manifests:?}",
                    keyed(manifests)
                )
            })?;
            check(keyed(ingest) == want_ingest, || {
                format!(
                    "ingest queue {:?}, want {want_ingest:?}",
                    short(&keyed(ingest))
                )
            })?;
            check(quarantine.len() == quarantined.len(), || {
                format!(
                    "quarantine holds {:?}, want {quarantined:?}",
                    quarantine
                        .iter()
                        .map(|m| (&m.id, &m.reason))
                        .collect::<Vec<_>>()
                )
            })?;
            for (message, (id, reason)) in quarantine.iter().zip(quarantined) {
                check(message.routing_key == "quarantine", || {
                    format!("routed {}", message.routing_key)
                })?;
                match id {
                    Some(id) => check(&message.id == id, || {
                        format!("quarantined id {:?}, want {id:?}", message.id)
                    })?,
                    None => check(uuid::Uuid::parse_str(&message.id).is_ok(), || {
                        format!("quarantined id {:?} is not a fresh uuid", message.id)
                    })?,
                }
                check(message.reason.contains(reason), || {
                    format!("reason {:?} lacks {reason:?}", message.reason)
                })?;
                check(message.reason.len() <= 1024, || {
                    format!("reason of {} bytes", message.reason.len())
                })?;
            }
            // Every message is the event exactly as sent: a slice of the request body.
            let body = std::str::from_utf8(sent).map_err(|e| e.to_string())?;
            for message in manifests.iter().chain(ingest).chain(quarantine) {
                check(body.contains(message.data.as_str()), || {
                    format!("message {:?} is not a slice of the body", message.id)
                })?;
            }
            Ok(())
        }
    }
}

fn check(ok: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(message()) }
}

fn short(list: &[(String, String)]) -> String {
    if list.len() <= 10 {
        format!("{list:?}")
    } else {
        format!("{:?} ... ({} messages)", &list[..10], list.len())
    }
}

#[derive(Debug)]
struct Message {
    routing_key: String,
    id: String,
    reason: String,
    data: String,
}

/// Empties the manifest, ingest and quarantine queues, in that order.
async fn drain(app: &TestApp) -> [Vec<Message>; 3] {
    let topology = &app.broker.topology;
    let mut queues = [Vec::new(), Vec::new(), Vec::new()];
    for (queue, name) in queues.iter_mut().zip([
        topology.manifest_queue(),
        topology.ingest_queue(),
        topology.quarantine_queue(),
    ]) {
        *queue = app
            .broker
            .drain(&name)
            .await
            .into_iter()
            .map(|m| Message {
                routing_key: m.routing_key.to_string(),
                id: m
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                reason: header_str(m.properties.headers(), REASON_HEADER)
                    .unwrap_or_default()
                    .to_owned(),
                data: String::from_utf8_lossy(&m.data).into_owned(),
            })
            .collect();
    }
    queues
}

/// Captures every log line of this test binary (set `REGSTAT_SHOW_LOGS=1` to print them), so
/// the test can check that no credential is ever logged.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let capture = Capture(buffer.clone());
    let settings = regstat_shared::config::Settings::load_with_env(None, Vec::new()).unwrap();
    assert!(
        !tracing::dispatcher::has_been_set(),
        "a log subscriber is already installed in this test binary: this one would capture nothing"
    );
    regstat_shared::telemetry::init(&settings.telemetry, move || capture.clone());
    buffer
}

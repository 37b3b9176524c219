//! Tests of the notification model: every real fixture request, the leniency rules, and
//! property tests (typed round-trip, no panic on any input).

#![allow(clippy::unwrap_used)]

use super::*;
use chrono::{TimeZone, Timelike};
use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// Real fixtures
// ---------------------------------------------------------------------------------------------

/// Environment variable that points the fixture tests at another directory.
const FIXTURES_ENV: &str = "REGSTAT_FIXTURES";

/// Where the fixtures captured from distribution 2.8.2 live by default.
const DEFAULT_FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/fixtures/distribution-2.8.2"
);

/// One event of one fixture request: what the capture's parsed `body` says, and what we parse
/// from the raw bytes.
struct FixtureEvent {
    /// `file:line#index`, for messages.
    at: String,
    /// The event as the capture's own JSON parser saw it (`body.events[i]`).
    json: Value,
    /// The event as [`Event::parse_valid`] saw it.
    event: Event,
}

/// One captured HTTP request.
struct FixtureRequest {
    /// What the capturing endpoint answered.
    status: u64,
    events: Vec<FixtureEvent>,
}

fn fixtures_dir() -> PathBuf {
    std::env::var_os(FIXTURES_ENV).map_or_else(|| PathBuf::from(DEFAULT_FIXTURES), PathBuf::from)
}

/// Loads and parses every request of every `*.jsonl` file, keyed by file name. Fails (never
/// skips) when the directory is missing or holds no fixtures.
fn load_fixtures() -> BTreeMap<String, Vec<FixtureRequest>> {
    let dir = fixtures_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "fixture directory {} cannot be read ({e}); it is looked up as ${FIXTURES_ENV} or \
             else {DEFAULT_FIXTURES}",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("fixture directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.jsonl fixture in {} (looked up as ${FIXTURES_ENV} or else {DEFAULT_FIXTURES})",
        dir.display()
    );

    let mut all = BTreeMap::new();
    for path in files {
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let mut requests = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{name}:{}", index + 1);
            requests.push(parse_request(&at, line));
        }
        assert!(!requests.is_empty(), "{name} holds no request");
        all.insert(name, requests);
    }
    all
}

fn parse_request(at: &str, line: &str) -> FixtureRequest {
    let record: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{at}: line is not JSON: {e}"));
    let body_raw = record["body_raw"]
        .as_str()
        .unwrap_or_else(|| panic!("{at}: no string `body_raw`"));
    let body = &record["body"];
    let json_events = body["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{at}: `body.events` is not an array"));
    if let Some(len) = record["body_len"].as_u64() {
        assert_eq!(
            body_raw.len() as u64,
            len,
            "{at}: body_raw is not body_len bytes"
        );
    }
    if let Some(count) = record["event_count"].as_u64() {
        assert_eq!(json_events.len() as u64, count, "{at}: event_count");
    }

    let envelope = Envelope::parse(body_raw.as_bytes())
        .unwrap_or_else(|e| panic!("{at}: Envelope::parse failed: {e}"));
    assert_eq!(
        envelope.events.len(),
        json_events.len(),
        "{at}: number of events"
    );

    let mut events = Vec::new();
    for (i, (raw, json)) in envelope.events.iter().zip(json_events).enumerate() {
        let at = format!("{at}#{i}");
        // The raw event is the registry's own bytes: a slice of the body, equal to `body`.
        assert!(
            body_raw.contains(raw.get()),
            "{at}: raw event is not a slice of the body"
        );
        let reparsed: Value = serde_json::from_str(raw.get()).expect("raw event is JSON");
        assert_eq!(&reparsed, json, "{at}: raw event differs from `body`");

        // Every real event passes the receiver's strictest judgement.
        let event = Event::parse_checked(raw.get().as_bytes())
            .unwrap_or_else(|e| panic!("{at}: fixture event is invalid: {e}"));
        check_against_json(&at, &event, json);
        events.push(FixtureEvent {
            at,
            json: json.clone(),
            event,
        });
    }
    FixtureRequest {
        status: record["status"].as_u64().unwrap_or(0),
        events,
    }
}

/// A string field as the typed model sees it: absent, `null` and `""` are all `None`.
fn json_str<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A size field as the typed model sees it: absent, `null` and `0` are all `None`.
fn json_u64(value: &Value, key: &str) -> Option<u64> {
    value.get(key).and_then(Value::as_u64).filter(|n| *n != 0)
}

/// Formats a timestamp as Go's `time.RFC3339Nano` does (trailing zeros of the fraction
/// dropped), to compare it with the registry's text independently of the parser.
fn go_rfc3339_nano(t: &DateTime<Utc>) -> String {
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let fraction = format!("{:09}", t.nanosecond());
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        format!("{base}Z")
    } else {
        format!("{base}.{fraction}Z")
    }
}

/// Every typed field equals what the capture's JSON says.
fn check_against_json(at: &str, event: &Event, json: &Value) {
    assert_eq!(event.id.as_deref(), json_str(json, "id"), "{at}: id");
    let action = event.action.as_ref().expect("valid events have an action");
    assert_eq!(
        Some(action.as_str()),
        json_str(json, "action"),
        "{at}: action"
    );
    assert!(
        !matches!(action, Action::Other(_)),
        "{at}: distribution 2.8 only sends known actions, got {action}"
    );
    let timestamp = event.timestamp.as_ref().expect("fixture events are timed");
    assert_eq!(
        Some(go_rfc3339_nano(timestamp).as_str()),
        json_str(json, "timestamp"),
        "{at}: timestamp"
    );

    let target = event.target.as_ref().expect("valid events have a target");
    let jt = &json["target"];
    assert_eq!(
        target.media_type.as_deref(),
        json_str(jt, "mediaType"),
        "{at}: mediaType"
    );
    assert_eq!(target.size, json_u64(jt, "size"), "{at}: size");
    assert_eq!(target.length, json_u64(jt, "length"), "{at}: length");
    assert_eq!(
        target.digest.as_deref(),
        json_str(jt, "digest"),
        "{at}: digest"
    );
    assert_eq!(
        target.repository.as_deref(),
        json_str(jt, "repository"),
        "{at}: repository"
    );
    assert!(
        target.repository.is_some(),
        "{at}: every event names a repository"
    );
    assert_eq!(
        target.from_repository.as_deref(),
        json_str(jt, "fromRepository"),
        "{at}: fromRepository"
    );
    assert_eq!(target.url.as_deref(), json_str(jt, "url"), "{at}: url");
    assert_eq!(target.tag.as_deref(), json_str(jt, "tag"), "{at}: tag");
    let json_refs = jt
        .get("references")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    assert_eq!(
        target.references.len(),
        json_refs.len(),
        "{at}: number of references"
    );
    for (k, (typed, json_ref)) in target.references.iter().zip(json_refs).enumerate() {
        assert_eq!(
            typed.media_type.as_deref(),
            json_str(json_ref, "mediaType"),
            "{at}: references[{k}].mediaType"
        );
        assert_eq!(
            typed.size,
            json_u64(json_ref, "size"),
            "{at}: references[{k}].size"
        );
        assert_eq!(
            typed.digest.as_deref(),
            json_str(json_ref, "digest"),
            "{at}: references[{k}].digest"
        );
        assert!(
            typed.media_type.is_some() && typed.size.is_some() && typed.digest.is_some(),
            "{at}: references[{k}] is a full descriptor"
        );
    }

    let jr = &json["request"];
    assert_eq!(
        event.request.id.as_deref(),
        json_str(jr, "id"),
        "{at}: request.id"
    );
    assert_eq!(
        event.request.addr.as_deref(),
        json_str(jr, "addr"),
        "{at}: request.addr"
    );
    assert_eq!(
        event.request.host.as_deref(),
        json_str(jr, "host"),
        "{at}: request.host"
    );
    assert_eq!(
        event.request.method.as_deref(),
        json_str(jr, "method"),
        "{at}: request.method"
    );
    assert_eq!(
        event.request.useragent.as_deref(),
        json_str(jr, "useragent"),
        "{at}: request.useragent"
    );
    assert_eq!(
        event.actor.name.as_deref(),
        json_str(&json["actor"], "name"),
        "{at}: actor.name"
    );
    let js = &json["source"];
    assert_eq!(
        event.source.addr.as_deref(),
        json_str(js, "addr"),
        "{at}: source.addr"
    );
    assert_eq!(
        event.source.instance_id.as_deref(),
        json_str(js, "instanceID"),
        "{at}: source.instanceID"
    );
    assert!(
        event.source.instance_id.is_some(),
        "{at}: source.instanceID"
    );

    // Kind and routing key follow from the media type (and tag).
    let expected_kind = match target.media_type.as_deref() {
        Some(BLOB_MEDIA_TYPE) => Kind::Blob,
        Some(_) => Kind::Manifest,
        None if target.tag.is_some() => Kind::Manifest,
        None => Kind::Unknown,
    };
    assert_eq!(event.kind(), expected_kind, "{at}: kind");
    assert_eq!(
        event.routing_key(),
        format!("{}.{}", action.as_str(), expected_kind.as_str()),
        "{at}: routing key"
    );
}

/// The requests of the one fixture file whose name starts with `prefix`.
fn file<'a>(all: &'a BTreeMap<String, Vec<FixtureRequest>>, prefix: &str) -> &'a [FixtureRequest] {
    let mut matching = all.iter().filter(|(name, _)| name.starts_with(prefix));
    let (_, requests) = matching.next().unwrap_or_else(|| {
        panic!(
            "no fixture file starting with {prefix:?} in {}",
            fixtures_dir().display()
        )
    });
    assert!(
        matching.next().is_none(),
        "several fixture files start with {prefix:?}"
    );
    requests
}

fn events(requests: &[FixtureRequest]) -> impl Iterator<Item = &FixtureEvent> {
    requests.iter().flat_map(|r| &r.events)
}

fn target(e: &FixtureEvent) -> &Target {
    e.event.target.as_ref().expect("valid events have a target")
}

/// How many times each event id occurs in a file.
fn id_counts(requests: &[FixtureRequest]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for e in events(requests) {
        *counts
            .entry(e.event.id.clone().expect("valid events have an id"))
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn every_fixture_request_parses_and_matches_its_json() {
    let all = load_fixtures();
    let mut requests = 0;
    let mut parsed = 0;
    for reqs in all.values() {
        for request in reqs {
            requests += 1;
            // distribution sends exactly one event per POST.
            assert_eq!(request.events.len(), 1, "one event per request");
            parsed += request.events.len();
        }
    }
    // All ten capture files, 51 requests (a smaller REGSTAT_FIXTURES set still has to parse).
    if std::env::var_os(FIXTURES_ENV).is_none() {
        assert_eq!(all.len(), 10, "fixture files: {:?}", all.keys());
        assert_eq!(requests, 51);
        assert_eq!(parsed, 51);
    }
}

#[test]
fn fixture_blob_events_are_blobs() {
    let all = load_fixtures();
    let mut blobs = 0;
    for e in all.values().flat_map(|r| events(r)) {
        if target(e).media_type.as_deref() == Some(BLOB_MEDIA_TYPE) {
            blobs += 1;
            assert_eq!(e.event.kind(), Kind::Blob, "{}", e.at);
            let action = e.event.action.as_ref().expect("action");
            assert_eq!(e.event.routing_key(), format!("{action}.blob"), "{}", e.at);
            assert!(
                target(e).references.is_empty(),
                "{}: blob with references",
                e.at
            );
            assert!(target(e).tag.is_none(), "{}: blob with a tag", e.at);
            assert!(target(e).digest.is_some(), "{}: blob without digest", e.at);
        }
    }
    assert!(blobs > 0, "no blob event in the fixtures");

    // The OCI push: three blob pushes then the manifest.
    let push = file(&all, "01-");
    let keys: Vec<String> = events(push).map(|e| e.event.routing_key()).collect();
    assert_eq!(
        keys,
        ["push.blob", "push.blob", "push.blob", "push.manifest"]
    );
    for e in events(push).take(3) {
        assert_eq!(e.event.action, Some(Action::Push), "{}", e.at);
        assert_eq!(e.event.kind(), Kind::Blob, "{}", e.at);
        assert_eq!(target(e).size, target(e).length, "{}", e.at);
        assert!(target(e).size.is_some(), "{}", e.at);
    }
}

#[test]
fn fixture_manifest_pushes_carry_references() {
    let all = load_fixtures();

    let push = file(&all, "01-");
    let manifest = events(push).last().expect("01 has events");
    let t = target(manifest);
    assert_eq!(manifest.event.routing_key(), "push.manifest");
    assert_eq!(manifest.event.kind(), Kind::Manifest);
    assert_eq!(
        t.media_type.as_deref(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(t.tag.as_deref(), Some("v1"));
    assert_eq!(t.repository.as_deref(), Some("lab/app"));
    assert_eq!(t.references.len(), 3, "config + two layers");
    assert_eq!(
        t.references[0].media_type.as_deref(),
        Some("application/vnd.oci.image.config.v1+json")
    );
    // The referenced blobs are exactly the blobs pushed before the manifest.
    let mut pushed: Vec<&str> = events(push)
        .filter(|e| e.event.kind() == Kind::Blob)
        .map(|e| target(e).digest.as_deref().expect("digest"))
        .collect();
    let mut referenced: Vec<&str> = t
        .references
        .iter()
        .map(|d| d.digest.as_deref().expect("digest"))
        .collect();
    pushed.sort_unstable();
    referenced.sort_unstable();
    assert_eq!(pushed, referenced);

    // Every manifest push of every file but r6 carries references.
    let mut manifest_pushes = 0;
    for (name, requests) in &all {
        for e in events(requests) {
            if e.event.routing_key() == "push.manifest" {
                manifest_pushes += 1;
                if !name.starts_with("r6-") {
                    assert!(!target(e).references.is_empty(), "{}: no references", e.at);
                }
            }
        }
    }
    assert!(
        manifest_pushes >= 6,
        "only {manifest_pushes} manifest pushes"
    );

    // The multi-arch push: two image manifests by digest, then the index by tag.
    let multi = file(&all, "06-");
    let manifests: Vec<&FixtureEvent> = events(multi)
        .filter(|e| e.event.routing_key() == "push.manifest")
        .collect();
    assert_eq!(manifests.len(), 3);
    for image in &manifests[..2] {
        assert_eq!(
            target(image).tag,
            None,
            "{}: children are pushed by digest",
            image.at
        );
        assert_eq!(target(image).references.len(), 2, "{}", image.at);
    }
    let index = manifests[2];
    let t = target(index);
    assert_eq!(
        t.media_type.as_deref(),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert_eq!(t.tag.as_deref(), Some("v1"));
    let children: Vec<Option<&str>> = t.references.iter().map(|d| d.digest.as_deref()).collect();
    let pushed: Vec<Option<&str>> = manifests[..2]
        .iter()
        .map(|e| target(e).digest.as_deref())
        .collect();
    assert_eq!(children.len(), 2);
    for child in &children {
        assert!(
            pushed.contains(child),
            "index child {child:?} was not pushed"
        );
    }
    for d in &t.references {
        assert_eq!(
            d.media_type.as_deref(),
            Some("application/vnd.oci.image.manifest.v1+json")
        );
    }
}

#[test]
fn fixture_delete_by_digest_yields_one_unknown_and_three_tag_deletes() {
    let all = load_fixtures();
    let requests = file(&all, "12-");
    let deletes: Vec<&FixtureEvent> = events(requests)
        .filter(|e| e.event.action == Some(Action::Delete))
        .collect();
    assert_eq!(deletes.len(), 4);

    let unknown: Vec<&FixtureEvent> = deletes
        .iter()
        .copied()
        .filter(|e| e.event.routing_key() == "delete.unknown")
        .collect();
    assert_eq!(unknown.len(), 1, "one delete by digest");
    let by_digest = target(unknown[0]);
    assert_eq!(unknown[0].event.kind(), Kind::Unknown);
    assert_eq!(by_digest.media_type, None);
    assert_eq!(by_digest.tag, None);
    assert_eq!(by_digest.size, None);
    assert_eq!(by_digest.repository.as_deref(), Some("lab/app"));
    assert_eq!(unknown[0].event.request.method.as_deref(), Some("DELETE"));
    let digest = by_digest
        .digest
        .as_deref()
        .expect("delete by digest has a digest");
    assert!(digest.starts_with("sha256:"), "{digest}");

    // The deleted digest is the manifest pulled just before.
    let pulled = events(requests)
        .find(|e| e.event.action == Some(Action::Pull))
        .expect("12 pulls the manifest first");
    assert_eq!(target(pulled).digest.as_deref(), Some(digest));

    let mut tags = Vec::new();
    for e in deletes
        .iter()
        .filter(|e| e.event.routing_key() == "delete.manifest")
    {
        let t = target(e);
        assert_eq!(e.event.kind(), Kind::Manifest, "{}", e.at);
        assert_eq!(t.media_type, None, "{}", e.at);
        assert_eq!(t.digest, None, "{}: tag deletes carry no digest", e.at);
        assert_eq!(t.repository.as_deref(), Some("lab/app"), "{}", e.at);
        assert_eq!(
            e.event.request.method.as_deref(),
            Some("DELETE"),
            "{}",
            e.at
        );
        tags.push(t.tag.clone().expect("tag delete has a tag"));
    }
    tags.sort();
    assert_eq!(tags, ["v1", "v2", "v3"]);

    // All four deletes come from the one DELETE request.
    let request_ids: Vec<&Option<String>> = deletes.iter().map(|e| &e.event.request.id).collect();
    assert!(
        request_ids
            .iter()
            .all(|id| *id == request_ids[0] && id.is_some())
    );
}

#[test]
fn fixture_auth_push_names_the_actor() {
    let all = load_fixtures();
    let auth = file(&all, "a2-");
    assert!(events(auth).count() > 0);
    for e in events(auth) {
        assert_eq!(e.event.actor.name.as_deref(), Some("labuser"), "{}", e.at);
        assert_eq!(
            e.json["actor"]["name"].as_str(),
            Some("labuser"),
            "{}",
            e.at
        );
    }
    // Without auth the actor is `{}`.
    for (name, requests) in &all {
        if !name.starts_with("a2-") {
            for e in events(requests) {
                assert_eq!(e.event.actor, Actor::default(), "{}", e.at);
            }
        }
    }
}

#[test]
fn fixture_without_references_has_none() {
    let all = load_fixtures();
    let norefs = file(&all, "r6-");
    let mut manifests = 0;
    for e in events(norefs) {
        assert!(target(e).references.is_empty(), "{}", e.at);
        assert!(e.json["target"].get("references").is_none(), "{}", e.at);
        if e.event.kind() == Kind::Manifest {
            manifests += 1;
        }
    }
    assert!(manifests >= 2, "r6 pushes and pulls a manifest");

    // r6 also shows a cross-repository mount.
    let mount = events(norefs)
        .find(|e| e.event.action == Some(Action::Mount))
        .expect("r6 mounts a blob");
    assert_eq!(mount.event.routing_key(), "mount.blob");
    assert_eq!(target(mount).from_repository.as_deref(), Some("lab/res"));
    assert_eq!(target(mount).repository.as_deref(), Some("lab/res-norefs"));
}

#[test]
fn fixture_pulls_are_get_or_head() {
    let all = load_fixtures();
    let mut methods = BTreeMap::new();
    for e in all.values().flat_map(|r| events(r)) {
        if e.event.action == Some(Action::Pull) {
            let method = e
                .event
                .request
                .method
                .as_deref()
                .expect("pull has a method");
            assert!(
                method == "GET" || method == "HEAD",
                "{}: pull by {method}",
                e.at
            );
            assert!(e.event.routing_key().starts_with("pull."), "{}", e.at);
            *methods.entry(method).or_insert(0) += 1;
        }
    }
    assert!(methods.contains_key("GET"), "{methods:?}");
    assert!(methods.contains_key("HEAD"), "{methods:?}");
}

#[test]
fn fixture_retries_repeat_event_ids() {
    let all = load_fixtures();

    // r1: the endpoint answered 500 five times, so the first event arrived six times.
    let r1 = file(&all, "r1-");
    let repeated: Vec<(String, usize)> =
        id_counts(r1).into_iter().filter(|(_, n)| *n > 1).collect();
    assert_eq!(repeated.len(), 1, "{repeated:?}");
    assert_eq!(repeated[0].1, 6);
    assert_eq!(r1.iter().filter(|r| r.status == 500).count(), 5);
    assert_eq!(id_counts(r1).len(), 3, "three distinct events");

    // r3: the endpoint was slower than the registry's timeout: the first event arrived thrice.
    let r3 = file(&all, "r3-");
    let repeated: Vec<(String, usize)> =
        id_counts(r3).into_iter().filter(|(_, n)| *n > 1).collect();
    assert_eq!(repeated.len(), 1, "{repeated:?}");
    assert_eq!(repeated[0].1, 3);
    assert_eq!(id_counts(r3).len(), 3, "three distinct events");

    // A re-sent event is the same event, field for field.
    for requests in [r1, r3] {
        for a in events(requests) {
            for b in events(requests) {
                if a.event.id == b.event.id {
                    assert_eq!(a.event, b.event, "{} vs {}", a.at, b.at);
                }
            }
        }
    }

    // No other capture repeats an id.
    for (name, requests) in &all {
        if !name.starts_with("r1-") && !name.starts_with("r3-") {
            assert!(
                id_counts(requests).values().all(|n| *n == 1),
                "{name} repeats an event id"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Leniency
// ---------------------------------------------------------------------------------------------

fn parse_str(json: &str) -> Result<Event, Invalid> {
    Event::parse(json.as_bytes())
}

fn schema_error(json: &str) -> String {
    match parse_str(json) {
        Err(Invalid::Schema(message)) => message,
        other => panic!("{json}: expected a schema error, got {other:?}"),
    }
}

#[test]
fn distribution_3_empty_values_mean_absent() {
    let event = Event::parse_valid(
        br#"{"id": "e1", "action": "delete",
             "target": {"mediaType": "", "size": 0, "digest": "", "length": 0,
                        "repository": "lab/app", "tag": "v1", "url": "", "fromRepository": "",
                        "references": [{"mediaType": "", "size": 0, "digest": ""}]},
             "request": {"id": "", "addr": "", "host": "", "method": "", "useragent": ""},
             "actor": {"name": ""}, "source": {"addr": "", "instanceID": ""},
             "timestamp": ""}"#,
    )
    .unwrap();
    let target = event.target.as_ref().unwrap();
    assert_eq!(target.media_type, None);
    assert_eq!(target.size, None);
    assert_eq!(target.digest, None);
    assert_eq!(target.length, None);
    assert_eq!(target.url, None);
    assert_eq!(target.from_repository, None);
    assert_eq!(target.repository.as_deref(), Some("lab/app"));
    assert_eq!(target.references, [Descriptor::default()]);
    assert_eq!(event.request, Request::default());
    assert_eq!(event.actor, Actor::default());
    assert_eq!(event.source, Source::default());
    assert_eq!(event.timestamp, None);
    // A tag delete sent the 3.x way routes like the 2.8 one.
    assert_eq!(event.routing_key(), "delete.manifest");

    // A digest delete sent the 3.x way is still `delete.unknown`.
    let event = Event::parse_valid(
        br#"{"id": "e2", "action": "delete",
             "target": {"mediaType": "", "size": 0, "digest": "sha256:abc", "repository": "r", "tag": ""}}"#,
    )
    .unwrap();
    assert_eq!(event.kind(), Kind::Unknown);
    assert_eq!(event.routing_key(), "delete.unknown");

    // An empty id is no id.
    assert_eq!(
        Event::parse_valid(br#"{"id": "", "action": "push", "target": {}}"#),
        Err(Invalid::MissingId)
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let event = Event::parse_valid(
        br#"{"id": "e1", "action": "push", "extra": {"deep": [1, 2, {"x": null}]},
             "target": {"mediaType": "application/octet-stream", "digest": "sha256:1",
                        "annotations": {"a": "b"}, "artifactType": "x",
                        "references": [{"digest": "sha256:2", "platform": {"os": "linux"}}]},
             "request": {"method": "PUT", "protocol": "HTTP/1.1"},
             "actor": {"name": "u", "groups": ["g"]},
             "source": {"addr": "a:1", "instanceID": "i", "region": 3},
             "version": 2}"#,
    )
    .unwrap();
    assert_eq!(event.routing_key(), "push.blob");
    assert_eq!(event.actor.name.as_deref(), Some("u"));
    assert_eq!(event.source.instance_id.as_deref(), Some("i"));
    let target = event.target.unwrap();
    assert_eq!(target.references.len(), 1);
    assert_eq!(target.references[0].digest.as_deref(), Some("sha256:2"));

    // Unknown fields of the envelope are ignored as well.
    let envelope =
        Envelope::parse(br#"{"version": 2, "events": [{"id": "x"}], "x": null}"#).unwrap();
    assert_eq!(envelope.events.len(), 1);
}

#[test]
fn unknown_action_is_kept_and_routed_as_other() {
    let event = Event::parse_valid(
        br#"{"id": "e1", "action": "scan",
             "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "r"}}"#,
    )
    .unwrap();
    assert_eq!(event.action, Some(Action::Other("scan".to_owned())));
    let action = event.action.as_ref().unwrap();
    assert_eq!(action.as_str(), "scan");
    assert_eq!(action.to_string(), "scan");
    assert_eq!(action.routing_word(), "other");
    assert_eq!(event.routing_key(), "other.manifest");

    for (target, key) in [
        (r#"{"mediaType": "application/octet-stream"}"#, "other.blob"),
        (r#"{"digest": "sha256:1"}"#, "other.unknown"),
        (r#"{"tag": "v1"}"#, "other.manifest"),
    ] {
        let event = parse_str(&format!(
            r#"{{"id": "e", "action": "scan", "target": {target}}}"#
        ))
        .unwrap();
        assert_eq!(event.routing_key(), key, "{target}");
    }

    // It serialises back as written.
    assert_eq!(serde_json::to_string(action).unwrap(), r#""scan""#);
    // Known actions are recognised, case-sensitively as distribution spells them.
    assert_eq!(Action::from("push".to_owned()), Action::Push);
    assert_eq!(Action::from("pull".to_owned()), Action::Pull);
    assert_eq!(Action::from("mount".to_owned()), Action::Mount);
    assert_eq!(Action::from("delete".to_owned()), Action::Delete);
    assert_eq!(
        Action::from("PUSH".to_owned()),
        Action::Other("PUSH".to_owned())
    );
}

#[test]
fn nulls_mean_defaults() {
    let event = Event::parse_valid(
        br#"{"id": "e1", "action": "push", "timestamp": null,
             "target": {"mediaType": null, "size": null, "digest": null, "references": null,
                        "repository": "r", "tag": null},
             "request": null, "actor": null, "source": null}"#,
    )
    .unwrap();
    assert_eq!(event.request, Request::default());
    assert_eq!(event.actor, Actor::default());
    assert_eq!(event.source, Source::default());
    assert_eq!(event.timestamp, None);
    let target = event.target.as_ref().unwrap();
    assert!(target.references.is_empty());
    assert_eq!(target.media_type, None);
    assert_eq!(target.size, None);
    assert_eq!(event.routing_key(), "push.unknown");

    // `"target": null` is no target.
    assert_eq!(
        parse_str(r#"{"id": "e1", "action": "push", "target": null}"#)
            .unwrap()
            .validate(),
        Err(Invalid::MissingTarget)
    );
    // `null` id and action are missing ones.
    assert_eq!(
        Event::parse_valid(br#"{"id": null, "action": "push", "target": {}}"#),
        Err(Invalid::MissingId)
    );
    assert_eq!(
        Event::parse_valid(br#"{"id": "e", "action": null, "target": {}}"#),
        Err(Invalid::MissingAction)
    );
}

#[test]
fn missing_required_fields_fail_validation() {
    // `parse` accepts them (they are quarantined, not rejected as JSON)...
    let no_id = parse_str(r#"{"action": "push", "target": {"repository": "r"}}"#).unwrap();
    assert_eq!(no_id.validate(), Err(Invalid::MissingId));
    let no_action = parse_str(r#"{"id": "e", "target": {"repository": "r"}}"#).unwrap();
    assert_eq!(no_action.validate(), Err(Invalid::MissingAction));
    let no_target = parse_str(r#"{"id": "e", "action": "push"}"#).unwrap();
    assert_eq!(no_target.validate(), Err(Invalid::MissingTarget));

    // ...and `parse_valid` reports the first thing missing.
    assert_eq!(Event::parse_valid(b"{}"), Err(Invalid::MissingId));
    assert_eq!(
        Event::parse_valid(br#"{"target": {}}"#),
        Err(Invalid::MissingId)
    );
    assert_eq!(
        Event::parse_valid(br#"{"id": "e"}"#),
        Err(Invalid::MissingAction)
    );
    assert_eq!(
        Event::parse_valid(br#"{"id": "e", "action": "pull"}"#),
        Err(Invalid::MissingTarget)
    );
    // An event without a target routes as `<action>.unknown`.
    assert_eq!(no_target.kind(), Kind::Unknown);
    assert_eq!(no_target.routing_key(), "push.unknown");
    assert_eq!(no_action.routing_key(), "other.unknown");

    // The reasons read well in the quarantine.
    assert_eq!(Invalid::MissingId.to_string(), "event has no id");
    assert_eq!(Invalid::MissingAction.to_string(), "event has no action");
    assert_eq!(Invalid::MissingTarget.to_string(), "event has no target");
}

#[test]
fn non_object_events_are_schema_errors() {
    for json in [
        "1",
        r#""x""#,
        "[]",
        "null",
        "true",
        "[1, 2]",
        r#"["id", "2026-01-01T00:00:00Z", "push"]"#,
    ] {
        let message = schema_error(json);
        assert!(!message.is_empty(), "{json}");
        assert!(
            Invalid::Schema(message.clone())
                .to_string()
                .starts_with("event does not match the notification schema: "),
            "{json}: {message}"
        );
    }
    // serde's derive would take an array as the fields in order: `[id, timestamp, action,
    // target]` must not pass for a valid event.
    let message = schema_error(r#"["e", null, "push", {}]"#);
    assert!(message.contains("expected a JSON object"), "{message}");
    assert!(matches!(
        Event::parse_valid(br#"["e", null, "push", {"repository": "r"}]"#),
        Err(Invalid::Schema(_))
    ));
    // Not JSON at all.
    schema_error("");
    schema_error("{");
    schema_error("{\"id\": \"e\"} trailing");
    assert!(matches!(Event::parse_valid(b"[]"), Err(Invalid::Schema(_))));
}

#[test]
fn wrongly_typed_fields_are_schema_errors() {
    let message = schema_error(r#"{"id": "e", "action": "push", "timestamp": "yesterday"}"#);
    assert!(message.contains("timestamp"), "{message}");
    assert!(message.contains("yesterday"), "{message}");
    // Not RFC 3339: no offset.
    let message = schema_error(r#"{"id": "e", "timestamp": "2026-11-22T10:17:52.0117"}"#);
    assert!(message.contains("timestamp"), "{message}");
    schema_error(r#"{"id": "e", "timestamp": 1763806672}"#);

    let message = schema_error(r#"{"id": "e", "action": "push", "target": {"size": -1}}"#);
    assert!(message.contains("-1"), "{message}");
    schema_error(r#"{"id": "e", "target": {"size": 1.5}}"#);
    schema_error(r#"{"id": "e", "target": {"size": "12"}}"#);
    schema_error(r#"{"id": "e", "target": {"references": [{"size": -3}]}}"#);
    schema_error(r#"{"id": 7}"#);
    schema_error(r#"{"id": "e", "action": 1}"#);
    schema_error(r#"{"id": "e", "target": "lab/app"}"#);
    schema_error(r#"{"id": "e", "target": {"references": {}}}"#);
    schema_error(r#"{"id": "e", "request": "GET"}"#);
    schema_error(r#"{"id": "e", "actor": "me"}"#);
    schema_error(r#"{"id": "e", "target": {"repository": ["a"]}}"#);

    // A valid timestamp keeps its offset's instant and its nanoseconds.
    let event = parse_str(r#"{"timestamp": "2026-11-22T11:17:52.011760493+01:00"}"#).unwrap();
    assert_eq!(
        event.timestamp,
        Some(
            Utc.with_ymd_and_hms(2026, 11, 22, 10, 17, 52).unwrap()
                + chrono::Duration::nanoseconds(11_760_493)
        )
    );
}

#[test]
fn envelope_errors() {
    for body in [
        &b"{}"[..],
        br#"{"events": null}"#,
        br#"{"event": []}"#,
        br#"{"events": {}}"#,
        br#"{"events": "x"}"#,
        b"",
        b"not json",
        b"{\"events\": [",
        b"{\"events\": []} {}",
        b"null",
        b"\xff\xfe",
        // An array is not an envelope, even one holding an array of events.
        b"[]",
        br#"[[{"id": "e", "action": "push", "target": {}}]]"#,
    ] {
        assert!(
            Envelope::parse(body).is_err(),
            "{:?} parsed",
            String::from_utf8_lossy(body)
        );
    }
    let message = Envelope::parse(b"{}").unwrap_err().to_string();
    assert!(message.contains("events"), "{message}");
}

#[test]
fn envelope_keeps_events_raw() {
    assert!(
        Envelope::parse(br#"{"events": []}"#)
            .unwrap()
            .events
            .is_empty()
    );
    assert!(
        Envelope::parse(b" {\"events\":[]}\n")
            .unwrap()
            .events
            .is_empty()
    );

    // Each event stays the exact text that was sent, invalid ones included: they are
    // judged one by one.
    let body = br#"{"events": [ {"id" : "a",  "action":"push"} ,1, "x", {"id": "\u0062"} ]}"#;
    let envelope = Envelope::parse(body).unwrap();
    let raws: Vec<&str> = envelope.events.iter().map(|r| r.get()).collect();
    assert_eq!(
        raws,
        [
            r#"{"id" : "a",  "action":"push"}"#,
            "1",
            r#""x""#,
            r#"{"id": "\u0062"}"#
        ]
    );
    assert_eq!(
        Event::parse(raws[0].as_bytes()).unwrap().action,
        Some(Action::Push)
    );
    assert!(matches!(
        Event::parse(raws[1].as_bytes()),
        Err(Invalid::Schema(_))
    ));
    assert_eq!(
        Event::parse(raws[3].as_bytes()).unwrap().id.as_deref(),
        Some("b")
    );
}

// ---------------------------------------------------------------------------------------------
// Strictness: nested objects, grammar, storability
// ---------------------------------------------------------------------------------------------

const SHA256: &str = "sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57";

/// An event whose target is `target` (JSON), otherwise valid.
fn with_target(target: &str) -> String {
    format!(r#"{{"id": "e", "action": "push", "target": {target}}}"#)
}

fn checked(json: &str) -> Result<Event, Invalid> {
    Event::parse_checked(json.as_bytes())
}

/// The field named by the error `json` fails with, and the whole reason.
fn field_error(json: &str) -> (String, String) {
    let invalid = checked(json).expect_err(json);
    match &invalid {
        Invalid::Field { field, .. } => (field.clone(), invalid.to_string()),
        other => panic!("{json}: expected a field error, got {other:?}"),
    }
}

#[test]
fn nested_structures_must_be_objects() {
    // serde's derive takes `[media type, size, digest, ...]` for a target: a registry never
    // sends that, and it must not pass for a manifest push.
    for json in [
        with_target(r#"["application/vnd.oci.image.manifest.v1+json", 5, "sha256:1"]"#),
        with_target(r#"{"references": [["application/octet-stream", 5]]}"#),
        r#"{"id": "e", "action": "pull", "target": {}, "request": ["r1", "1.2.3.4"]}"#.to_owned(),
        r#"{"id": "e", "action": "pull", "target": {}, "actor": ["me"]}"#.to_owned(),
        r#"{"id": "e", "action": "pull", "target": {}, "source": ["a:1", "i"]}"#.to_owned(),
    ] {
        let message = schema_error(&json);
        assert!(
            message.contains("expected a JSON object"),
            "{json}: {message}"
        );
    }
    // Objects and nulls are still fine.
    let event = checked(
        r#"{"id": "e", "action": "pull", "target": {"references": [{"size": 1}]},
            "request": null, "actor": {}, "source": null}"#,
    )
    .unwrap();
    assert_eq!(event.target.unwrap().references.len(), 1);
}

#[test]
fn repository_names_follow_the_distribution_grammar() {
    for name in [
        "a",
        "library/nginx",
        "lab/app",
        "a0/b1/c2",
        "my.repo",
        "my_repo",
        "my__repo",
        "my-repo",
        "my----repo",
        "a.b_c__d-e--f",
        "0",
        &"a".repeat(255),
        &["ab"; 85].join("/"),
    ] {
        assert_eq!(repository_problem(name), None, "{name}");
        checked(&with_target(&format!(r#"{{"repository": "{name}"}}"#))).unwrap();
    }
    for name in [
        "Lab/App",
        "a//b",
        "/a",
        "a/",
        "a..b",
        "a___b",
        "a._b",
        "-a",
        "a-",
        "a_",
        ".a",
        "a b",
        "localhost:5000/a",
        "a/../b",
        "é",
        "a\nb",
        &"a".repeat(256),
    ] {
        assert!(repository_problem(name).is_some(), "{name}");
    }
    let (field, reason) = field_error(&with_target(r#"{"repository": "Lab/App"}"#));
    assert_eq!(field, "target.repository");
    assert!(reason.contains(r#""Lab/App""#), "{reason}");
    assert!(reason.contains("is not a repository name"), "{reason}");
    let (field, reason) = field_error(&with_target(&format!(
        r#"{{"repository": "{}"}}"#,
        "a".repeat(300)
    )));
    assert_eq!(field, "target.repository");
    assert!(reason.contains("longer than 255 bytes"), "{reason}");
    assert!(reason.len() < 300, "the value is shortened: {reason}");
    let (field, _) = field_error(&with_target(
        r#"{"repository": "a", "fromRepository": "B"}"#,
    ));
    assert_eq!(field, "target.fromRepository");
}

#[test]
fn tags_follow_the_distribution_grammar() {
    for tag in [
        "v1",
        "latest",
        "1.0.0-rc.1",
        "_x",
        "A_b.c-d",
        &"t".repeat(128),
    ] {
        assert_eq!(tag_problem(tag), None, "{tag}");
    }
    for tag in [
        "-v1",
        ".v1",
        "v 1",
        "v1/",
        "v:1",
        "ünï",
        "v1\u{0}",
        &"t".repeat(129),
    ] {
        assert!(tag_problem(tag).is_some(), "{tag:?}");
    }
    let (field, reason) = field_error(&with_target(r#"{"repository": "a", "tag": "-x"}"#));
    assert_eq!(field, "target.tag");
    assert!(reason.contains("is not a tag"), "{reason}");
}

#[test]
fn digests_follow_the_oci_grammar() {
    let sha512 = format!("sha512:{}", "0a".repeat(64));
    let sha384 = format!("sha384:{}", "f".repeat(96));
    for digest in [
        SHA256,
        &sha512,
        &sha384,
        "md5:abc",
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "sha3.256_x-y:AbC=_-",
    ] {
        assert_eq!(digest_problem(digest), None, "{digest}");
    }
    for digest in [
        "sha256:abc",
        "sha256:1",
        &SHA256.to_uppercase(),
        &format!("{SHA256}0"),
        &SHA256.replace("sha256", "sha512"),
        "SHA256:abc",
        "sha256",
        ":abc",
        "md5:",
        "md5:a/b",
        "sha256:../../v2",
        "a..b:c",
        "-a:c",
        "a:b:c",
    ] {
        assert!(digest_problem(digest).is_some(), "{digest}");
    }
    let (field, reason) = field_error(&with_target(r#"{"digest": "sha256:abc"}"#));
    assert_eq!(field, "target.digest");
    assert!(reason.contains("64 lowercase hex digits"), "{reason}");
    let (field, _) = field_error(&with_target(&format!(
        r#"{{"references": [{{"digest": "{SHA256}"}}, {{"digest": "nope"}}]}}"#
    )));
    assert_eq!(field, "target.references[1].digest");
    // distribution 3.x's empty digest is an absent one.
    checked(&with_target(
        r#"{"digest": "", "references": [{"digest": ""}]}"#,
    ))
    .unwrap();
}

#[test]
fn sizes_and_ids_fit_the_pipeline() {
    let max = i64::MAX;
    checked(&with_target(&format!(r#"{{"size": {max}}}"#))).unwrap();
    for target in [
        format!(r#"{{"size": {}}}"#, u64::MAX),
        format!(r#"{{"length": {}}}"#, i64::MAX as u64 + 1),
        format!(r#"{{"references": [{{"size": {}}}]}}"#, u64::MAX),
    ] {
        let (field, reason) = field_error(&with_target(&target));
        assert!(
            field.ends_with("size") || field.ends_with("length"),
            "{field}"
        );
        assert!(reason.contains("2^63 - 1"), "{reason}");
    }
    // Negative sizes never parse (they are schema errors, see above).
    assert!(matches!(
        checked(&with_target(r#"{"size": -1}"#)),
        Err(Invalid::Schema(_))
    ));

    let id = "i".repeat(MAX_ID_BYTES);
    checked(&format!(
        r#"{{"id": "{id}", "action": "pull", "target": {{}}}}"#
    ))
    .unwrap();
    let long = format!(r#"{{"id": "{id}x", "action": "pull", "target": {{}}}}"#);
    assert_eq!(checked(&long), Err(Invalid::IdTooLong(256)));
    assert!(
        Invalid::IdTooLong(256).to_string().contains("255"),
        "names the limit"
    );
    // Multi-byte characters count in bytes, as AMQP does.
    let wide = format!(
        r#"{{"id": "{}", "action": "pull", "target": {{}}}}"#,
        "é".repeat(128)
    );
    assert_eq!(checked(&wide), Err(Invalid::IdTooLong(256)));
}

#[test]
fn storable_json_has_no_nul_no_lone_surrogate_no_extreme_nesting_or_numbers() {
    let unstorable = |raw: &str| match check_storable(raw.as_bytes()) {
        Err(Invalid::Unstorable(reason)) => reason,
        other => panic!("{raw}: expected unstorable, got {other:?}"),
    };
    for raw in [
        r#"{"id": "a\u0000"}"#,
        r#"{"x\u0000": 1}"#,
        r#"{"x": ["\u0000"]}"#,
        r#"{"x": "\\\u0000"}"#,
        "{\"x\": \"\0\"}",
    ] {
        assert!(unstorable(raw).contains("U+0000"), "{raw}");
    }
    for raw in [
        r#"{"x": "\udc00"}"#,
        r#"{"x": "\ud800"}"#,
        r#"{"x": "\ud800x"}"#,
        r#"{"x": "\ud800\u0041"}"#,
        r#"{"x": "\ud800\ud800"}"#,
        r#"{"\uDFFF": 1}"#,
    ] {
        assert!(unstorable(raw).contains("surrogate"), "{raw}");
    }
    for raw in [
        // Escaped backslashes followed by text are not escapes.
        r#"{"x": "\\u0000 \\udc00"}"#,
        // A proper pair is one character (U+1F600).
        r#"{"x": "\ud83d\ude00 \uD83D\uDE00"}"#,
        r#"{"x": "\u0001 \u00e9 \uffff"}"#,
        // Brackets inside strings are text.
        &format!(r#"{{"x": "{}"}}"#, "[".repeat(1000)),
        r#"{"x": [1e400, -1E-400, 0.5, -0, 123456789012345678901234567890]}"#,
    ] {
        assert_eq!(check_storable(raw.as_bytes()), Ok(()), "{raw}");
    }

    let nested = |depth: usize| {
        format!(
            r#"{{"id": "e", "x": {}{}}}"#,
            "[".repeat(depth - 1),
            "]".repeat(depth - 1)
        )
    };
    assert_eq!(check_storable(nested(MAX_DEPTH).as_bytes()), Ok(()));
    assert!(unstorable(&nested(MAX_DEPTH + 1)).contains("deeper than 128"));
    assert!(unstorable(&nested(100_000)).contains("deeper than 128"));

    for number in ["1e200000", "1e-20000", "-1E+10001", &"9".repeat(1001)] {
        assert!(
            unstorable(&format!(r#"{{"x": {number}}}"#)).contains("numeric"),
            "{number}"
        );
    }
    assert_eq!(check_storable(br#"{"x": 1e10000}"#), Ok(()));

    // In a whole event, the unknown field is what makes it unstorable.
    let event = r#"{"id": "e", "action": "pull", "target": {}, "extra": "\u0000"}"#;
    assert!(Event::parse_valid(event.as_bytes()).is_ok());
    assert!(matches!(checked(event), Err(Invalid::Unstorable(_))));
    // serde itself refuses lone surrogates in the fields it reads.
    let message = schema_error(r#"{"id": "\udc00"}"#);
    assert!(message.contains("surrogate"), "{message}");
}

#[test]
fn reasons_stay_short_whatever_the_input() {
    let huge = "x".repeat(500_000);
    for json in [
        format!(r#"{{"id": "e", "timestamp": "{huge}"}}"#),
        format!(r#"{{"id": "e", "target": {{"size": "{huge}"}}}}"#),
        format!(r#"{{"id": "e", "action": {{"{huge}": 1}}}}"#),
        with_target(&format!(r#"{{"repository": "{huge}"}}"#)),
        with_target(&format!(r#"{{"digest": "{huge}"}}"#)),
        format!(r#"{{"id": "{huge}", "action": "pull", "target": {{}}}}"#),
    ] {
        let reason = checked(&json).unwrap_err().to_string();
        assert!(reason.len() <= 1024, "{} bytes", reason.len());
    }
    // A cut parser message keeps where the problem is.
    let message = schema_error(&format!(
        r#"{{"id": "e", "timestamp": 1, "x": 1, "target": {{"size": "{huge}"}}}}"#
    ));
    assert!(message.contains("column"), "{message}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Names generated from distribution's own regular expressions pass the hand-written
    /// checks. (`[-]*` is written `-*` here; `\w` is ASCII, as in Go's RE2.)
    #[test]
    fn grammar_examples_pass(
        repository in "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}(/[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,3}){0,4}",
        tag in "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
        hex in "[a-f0-9]{64}",
        other in "[a-z0-9]{1,6}([.+_-][a-z0-9]{1,6}){0,2}:[a-zA-Z0-9=_-]{1,40}",
    ) {
        prop_assert_eq!(repository_problem(&repository), None);
        prop_assert_eq!(tag_problem(&tag), None);
        prop_assert_eq!(digest_problem(&format!("sha256:{hex}")), None);
        prop_assume!(!["sha256", "sha384", "sha512"].iter().any(|a| other.starts_with(&format!("{a}:"))));
        prop_assert_eq!(digest_problem(&other), None);
    }

    /// Any string outside the alphabet of a grammar fails it.
    #[test]
    fn foreign_characters_fail(prefix in "[a-z]{0,3}", bad in "[^a-z0-9._/-]", suffix in "[a-z]{0,3}") {
        let name = format!("{prefix}{bad}{suffix}");
        prop_assert!(repository_problem(&name).is_some(), "{:?}", name);
    }
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// A non-empty string of any characters, escapes and newlines included (empty strings
/// normalise to `None`, so they cannot round-trip as `Some`).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "(?s).{1,24}",
        "[a-z0-9./:_+-]{1,40}",
        Just("application/octet-stream".to_owned()),
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

/// Sizes are never 0 here: 0 normalises to `None`.
fn opt_size() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(1..=u64::MAX)
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        Just(Action::Push),
        Just(Action::Pull),
        Just(Action::Mount),
        Just(Action::Delete),
        // Any other spelling, the empty one included, stays `Other`.
        "(?s).{0,16}"
            .prop_filter("known actions parse as themselves", |s| {
                !matches!(s.as_str(), "push" | "pull" | "mount" | "delete")
            })
            .prop_map(Action::Other),
    ]
}

/// Instants from year 1 to year 9999 (what RFC 3339 can write), with nanoseconds.
fn timestamp_value() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_135_596_800_i64..=253_402_300_799, 0_u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).expect("in chrono's range"))
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    (opt_text(), opt_size(), opt_text()).prop_map(|(media_type, size, digest)| Descriptor {
        media_type,
        size,
        digest,
    })
}

fn target_value() -> impl Strategy<Value = Target> {
    (
        (opt_text(), opt_size(), opt_text(), opt_size()),
        (opt_text(), opt_text(), opt_text(), opt_text()),
        proptest::collection::vec(descriptor(), 0..4),
    )
        .prop_map(
            |(
                (media_type, size, digest, length),
                (repository, from_repository, url, tag),
                references,
            )| {
                Target {
                    media_type,
                    size,
                    digest,
                    length,
                    repository,
                    from_repository,
                    url,
                    tag,
                    references,
                }
            },
        )
}

fn event_value() -> impl Strategy<Value = Event> {
    (
        (
            opt_text(),
            proptest::option::of(timestamp_value()),
            proptest::option::of(action()),
            proptest::option::of(target_value()),
        ),
        (opt_text(), opt_text(), opt_text(), opt_text(), opt_text()),
        opt_text(),
        (opt_text(), opt_text()),
    )
        .prop_map(
            |(
                (id, timestamp, action, target),
                (request_id, addr, host, method, useragent),
                name,
                (source_addr, instance_id),
            )| Event {
                id,
                timestamp,
                action,
                target,
                request: Request {
                    id: request_id,
                    addr,
                    host,
                    method,
                    useragent,
                },
                actor: Actor { name },
                source: Source {
                    addr: source_addr,
                    instance_id,
                },
            },
        )
}

/// Bytes shaped like notification JSON, to reach deeper than random bytes do.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(r#"{"events":["#.to_owned()),
        Just(r#"{"id":"e","action":"push","target":{"#.to_owned()),
        Just(r#""mediaType":"application/octet-stream","#.to_owned()),
        Just(r#""size":"#.to_owned()),
        Just(r#""timestamp":"2026-11-22T10:17:52.011760493Z""#.to_owned()),
        Just(r#""timestamp":""#.to_owned()),
        Just(r#""references":["#.to_owned()),
        Just(r#""request":{"method":"GET"}"#.to_owned()),
        Just("null".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1e400".to_owned()),
        Just(r#""\ud800""#.to_owned()),
        "[{}\\[\\]\":, 0-9a-z.\\\\-]{0,8}",
    ];
    proptest::collection::vec(token, 0..24).prop_map(|parts| parts.concat().into_bytes())
}

fn exercise(bytes: &[u8]) {
    if let Ok(envelope) = Envelope::parse(bytes) {
        for raw in &envelope.events {
            exercise_event(raw.get().as_bytes());
        }
    }
    exercise_event(bytes);
}

fn exercise_event(bytes: &[u8]) {
    if let Err(invalid) = Event::parse_checked(bytes) {
        // Reasons travel in an AMQP header and in log lines: always short.
        let reason = invalid.to_string();
        assert!(reason.len() <= 1024, "{} bytes: {reason}", reason.len());
    }
    let _ = check_storable(bytes);
    if let Ok(event) = Event::parse(bytes) {
        let _ = event.validate();
        let _ = event.check_fields();
        let _ = event.kind();
        let _ = event.routing_key();
        // What parsed serialises and parses back to itself.
        let json = serde_json::to_vec(&event).expect("events serialise");
        assert_eq!(Event::parse(&json), Ok(event));
    }
    let _ = Event::parse_valid(bytes);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn events_round_trip_through_json(event in event_value()) {
        let json = serde_json::to_string(&event).expect("events serialise");
        prop_assert_eq!(Event::parse(json.as_bytes()), Ok(event.clone()));
        // And inside an envelope, as the receiver sees them.
        let body = format!(r#"{{"events": [{json}, {json}]}}"#);
        let envelope = Envelope::parse(body.as_bytes()).expect("envelope parses");
        prop_assert_eq!(envelope.events.len(), 2);
        for raw in &envelope.events {
            prop_assert_eq!(raw.get(), json.as_str());
            prop_assert_eq!(Event::parse(raw.get().as_bytes()), Ok(event.clone()));
        }
        let valid = event.id.is_some() && event.action.is_some() && event.target.is_some();
        prop_assert_eq!(Event::parse_valid(json.as_bytes()).is_ok(), valid);
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn jsonish_bytes_never_panic(bytes in jsonish()) {
        exercise(&bytes);
        let mut wrapped = br#"{"events":["#.to_vec();
        wrapped.extend_from_slice(&bytes);
        wrapped.extend_from_slice(b"]}");
        exercise(&wrapped);
    }
}

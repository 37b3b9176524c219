#![allow(clippy::unwrap_used)]

use super::*;
use chrono::{DateTime, Utc};
use regstat_shared::event::Event;

fn fixture_events(file: &str) -> Vec<Event> {
    let text = regstat_shared::testkit::fixture_text(file);
    text.lines()
        .flat_map(|line| {
            let request: serde_json::Value = serde_json::from_str(line).unwrap();
            let body: serde_json::Value =
                serde_json::from_str(request["body_raw"].as_str().unwrap()).unwrap();
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| serde_json::from_value::<Event>(e.clone()).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn changes_of<'a>(events: impl IntoIterator<Item = &'a Event>, system: &[String]) -> Changes {
    let mut changes = Changes::default();
    for event in events {
        let content = event
            .target
            .as_ref()
            .and_then(|t| Content::from_event(t.media_type.as_deref(), &t.references));
        changes.record(&ModelEvent {
            id: event.id.as_deref().unwrap(),
            event,
            registry: "reg",
            at: event.timestamp.unwrap(),
            client: ClientKind::of(event.request.useragent.as_deref(), system),
            content: content.as_ref(),
        });
    }
    changes
}

fn key(repository: &str, name: &str) -> (String, String, String) {
    ("reg".into(), repository.into(), name.into())
}

#[test]
fn a_single_arch_pull_by_tag_is_one_tag_pull_and_one_image_pull() {
    let events = fixture_events("03-pull-by-tag.jsonl");
    let changes = changes_of(&events, &[]);
    let tag = &changes.tags[&key("lab/app", "v1")];
    assert_eq!(tag.pull_count, 1);
    assert!(tag.push.is_none(), "a pull does not point the tag anywhere");
    let repo = &changes.repositories[&("reg".into(), "lab/app".into())];
    assert_eq!((repo.pulls, repo.pushes), (1, 0));
    assert_eq!(changes.pull_metrics.len(), 1);
    assert_eq!(changes.pull_metrics.values().sum::<i64>(), 1);
    // Three blob GETs: config and two layers, with their bytes.
    let blob_pulls: i64 = changes.blobs.values().map(|b| b.pull_count).sum();
    assert_eq!(blob_pulls, 3);
    assert!(changes.blobs.values().all(|b| b.pulled_bytes > 0));
}

#[test]
fn a_multi_arch_pull_by_tag_is_one_tag_pull_and_one_image_pull_of_the_child() {
    let events = fixture_events("07-pull-one-arch.jsonl");
    let changes = changes_of(&events, &[]);
    assert_eq!(changes.tags[&key("lab/multi", "v1")].pull_count, 1);
    let repo = &changes.repositories[&("reg".into(), "lab/multi".into())];
    assert_eq!(
        repo.pulls, 1,
        "the index GET is not an image pull; the child GET is"
    );
    let metrics: Vec<_> = changes.pull_metrics.iter().collect();
    assert_eq!(metrics.len(), 2);
    let child = events[1].target.as_ref().unwrap().digest.clone().unwrap();
    assert!(
        metrics
            .iter()
            .any(|(k, n)| k.3.is_empty() && k.4 == child && **n == 1)
    );
    assert!(metrics.iter().any(|(k, n)| k.3 == "v1" && **n == 1));
}

#[test]
fn heads_and_regstats_own_requests_count_nothing() {
    let events = fixture_events("r6-no-references.jsonl");
    let head = events
        .iter()
        .find(|e| e.request.method.as_deref() == Some("HEAD"))
        .unwrap();
    assert!(changes_of([head], &[]).is_empty());

    let mut own = fixture_events("03-pull-by-tag.jsonl");
    for event in &mut own {
        event.request.useragent = Some("regstat/0.1.0".into());
    }
    assert!(changes_of(&own, &[]).is_empty());
}

#[test]
fn system_pulls_are_counted_apart_and_never_move_last_pulled() {
    let mut events = fixture_events("03-pull-by-tag.jsonl");
    for event in &mut events {
        event.request.useragent = Some("Trivy/0.50.1".into());
    }
    let changes = changes_of(&events, &["trivy".to_owned()]);
    let tag = &changes.tags[&key("lab/app", "v1")];
    assert_eq!((tag.pull_count, tag.system_pull_count), (0, 1));
    assert!(tag.last_pulled_at.is_none());
    assert!(changes.blobs.values().all(|b| b.last_pulled_at.is_none()));
    let repo = &changes.repositories[&("reg".into(), "lab/app".into())];
    assert_eq!((repo.pulls, repo.system_pulls), (0, 1));
    assert!(changes.actors.is_empty());
    assert!(
        changes.pull_metrics.keys().all(|k| k.5),
        "metrics flagged system"
    );
}

#[test]
fn pushes_record_manifests_tags_blobs_and_references() {
    let events = fixture_events("01-push-oci-by-tag.jsonl");
    let changes = changes_of(&events, &[]);
    let manifest_digest = events[3].target.as_ref().unwrap().digest.clone().unwrap();
    let tag = &changes.tags[&key("lab/app", "v1")];
    assert_eq!(tag.push.as_ref().unwrap().1, manifest_digest);
    assert_eq!(changes.blobs.len(), 3);
    assert!(changes.blobs.values().all(|b| b.via_push && !b.via_mount));
    let manifest = &changes.manifests[&key("lab/app", &manifest_digest)];
    let content = manifest.content.as_ref().unwrap();
    assert_eq!(content.status, FetchStatus::FromEvent);
    assert_eq!(content.references[0].role, Role::Config);
    assert_eq!(content.references.len(), 3);
    assert_eq!(
        changes.repositories[&("reg".into(), "lab/app".into())].pushes,
        1
    );
}

#[test]
fn a_delete_by_digest_and_its_tag_deletes_are_tombstones_and_audit_rows() {
    let events = fixture_events("12-delete-manifest-by-digest.jsonl");
    let changes = changes_of(&events, &[]);
    assert_eq!(changes.digest_deletions.len(), 1);
    for tag in ["v1", "v2", "v3"] {
        assert!(changes.tags[&key("lab/app", tag)].deleted_at.is_some());
    }
    assert_eq!(changes.deletions.len(), 4);
}

#[test]
fn the_newest_push_names_the_tag_and_ties_go_to_the_greater_digest() {
    let base = fixture_events("01-push-oci-by-tag.jsonl")[3].clone();
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let push = |id: &str, digest: &str, time: &str| {
        let mut e = base.clone();
        e.id = Some(id.into());
        e.timestamp = Some(at(time));
        e.target.as_mut().unwrap().digest = Some(digest.into());
        e
    };
    let events = [
        push("1", "sha256:b", "2026-01-01T00:00:01Z"),
        push("2", "sha256:c", "2026-01-01T00:00:02Z"),
        push("3", "sha256:a", "2026-01-01T00:00:02Z"),
    ];
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2], [2, 0, 1]] {
        let changes = changes_of(order.iter().map(|&i| &events[i]), &[]);
        let tag = &changes.tags[&key("lab/app", "v1")];
        assert_eq!(tag.push.as_ref().unwrap().1, "sha256:c");
        assert_eq!(tag.first_pushed_at, Some(at("2026-01-01T00:00:01Z")));
    }
}

#[test]
fn changes_do_not_depend_on_event_order() {
    let mut events = Vec::new();
    for file in [
        "01-push-oci-by-tag.jsonl",
        "03-pull-by-tag.jsonl",
        "06-push-multiarch-oci-index.jsonl",
        "07-pull-one-arch.jsonl",
        "12-delete-manifest-by-digest.jsonl",
        "r6-no-references.jsonl",
        "a2-auth-push.jsonl",
    ] {
        events.extend(fixture_events(file));
    }
    let forward = changes_of(&events, &[]);
    let backward = changes_of(events.iter().rev(), &[]);
    let interleaved = changes_of(
        events
            .iter()
            .step_by(2)
            .chain(events.iter().skip(1).step_by(2)),
        &[],
    );
    assert_eq!(forward, backward);
    assert_eq!(forward, interleaved);
}

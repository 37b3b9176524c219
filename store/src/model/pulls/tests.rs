#![allow(clippy::unwrap_used)]

use super::*;
use crate::model::changes::ClientKind;
use proptest::prelude::*;
use regstat_shared::event::Event;

const WINDOW: i64 = 60;

fn window() -> chrono::Duration {
    chrono::Duration::seconds(WINDOW)
}

fn at(second: i64) -> Time {
    DateTime::from_timestamp(1_790_000_000 + second, 0).unwrap()
}

fn key(client: &str, digest: &str) -> Key {
    Key {
        registry: "reg".into(),
        repository: "lab/app".into(),
        client_addr: client.into(),
        client_agent: "containerd/1.6.20".into(),
        digest: digest.into(),
    }
}

fn request(id: &str, method: Method, tag: Option<&str>, second: i64) -> Request {
    Request {
        event_id: event_key(id),
        key: key("10.0.0.1", "sha256:d"),
        tag: tag.map(Into::into),
        method,
        at: at(second),
        system: false,
    }
}

fn head(id: &str, tag: &str, second: i64) -> Request {
    request(id, Method::Head, Some(tag), second)
}

fn fetch(id: &str, second: i64) -> Request {
    request(id, Method::Get, None, second)
}

fn classes(requests: &[Request]) -> Vec<Class> {
    requests
        .iter()
        .map(|r| classify(r, requests, window()))
        .collect()
}

fn check(is_check: bool) -> Class {
    Class {
        is_check: Some(is_check),
        credited_tag: None,
    }
}

fn credited(tag: &str) -> Class {
    Class {
        is_check: None,
        credited_tag: Some(tag.into()),
    }
}

#[test]
fn a_resolve_then_a_fetch_is_one_pull_of_the_tag() {
    let pull = [head("h", "v1", 0), fetch("g", 1)];
    assert_eq!(classes(&pull), [check(false), credited("v1")]);
}

#[test]
fn a_resolve_alone_is_a_version_check_and_a_fetch_alone_a_pull_by_digest() {
    assert_eq!(classes(&[head("h", "v1", 0)]), [check(true)]);
    assert_eq!(classes(&[fetch("g", 0)]), [credited("")]);
}

#[test]
fn a_fetch_outside_the_window_or_before_the_resolve_does_not_pair() {
    let late = [head("h", "v1", 0), fetch("g", WINDOW + 1)];
    assert_eq!(classes(&late), [check(true), credited("")]);
    let before = [fetch("g", 0), head("h", "v1", 1)];
    assert_eq!(classes(&before), [credited(""), check(true)]);
}

#[test]
fn a_resolve_by_digest_pairs_without_a_tag() {
    let by_digest = [request("h", Method::Head, None, 0), fetch("g", 1)];
    assert_eq!(classes(&by_digest), [check(false), credited("")]);
}

#[test]
fn the_newest_resolve_before_a_fetch_takes_it() {
    // Two tags naming the same digest resolved by one client, then one fetch.
    let both = [head("h1", "v1", 0), head("h2", "latest", 5), fetch("g", 6)];
    assert_eq!(
        classes(&both),
        [check(false), check(false), credited("latest")]
    );
    // A GET by tag counted its own pull: the fetch after it is no second pull of a tag.
    let get_by_tag = [
        head("h", "v1", 0),
        request("t", Method::Get, Some("v1"), 1),
        fetch("g", 2),
    ];
    assert_eq!(
        classes(&get_by_tag),
        [check(false), Class::default(), credited("")]
    );
}

#[test]
fn a_client_is_its_address_without_port_and_its_user_agent() {
    assert_eq!(without_port("10.0.0.1:40312"), "10.0.0.1");
    assert_eq!(without_port("[2001:db8::1]:5000"), "[2001:db8::1]");
    assert_eq!(without_port("2001:db8::1"), "2001:db8::1");
    assert_eq!(without_port("10.0.0.1"), "10.0.0.1");
    assert_eq!(without_port(""), "");
}

/// Every non-zero count of `changes` this module writes.
fn counts(changes: &Changes) -> (Vec<String>, Vec<String>) {
    let metrics = changes
        .pull_metrics
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(k, v)| format!("{k:?}={v}"))
        .chain(
            changes
                .tags
                .iter()
                .filter(|(_, t)| t.pull_count != 0 || t.system_pull_count != 0)
                .map(|(k, t)| format!("{k:?}={}/{}", t.pull_count, t.system_pull_count)),
        )
        .collect();
    let checks = changes
        .version_checks
        .iter()
        .map(|(k, (n, last))| format!("{k:?}={n}@{last:?}"))
        .collect();
    (metrics, checks)
}

/// Adds `other`'s counts to `total` (the sum of several transactions' changes).
fn add(total: &mut Changes, other: Changes) {
    for (k, v) in other.pull_metrics {
        *total.pull_metrics.entry(k).or_default() += v;
    }
    for (k, v) in other.tags {
        let row = total.tags.entry(k).or_default();
        row.pull_count += v.pull_count;
        row.system_pull_count += v.system_pull_count;
    }
    for (k, (n, last)) in other.version_checks {
        let row = total.version_checks.entry(k).or_insert((0, None));
        row.0 += n;
        row.1 = row.1.max(last);
    }
}

fn any_request() -> impl Strategy<Value = Request> {
    let client = prop::sample::select(&["10.0.0.1", "10.0.0.2"][..]);
    let digest = prop::sample::select(&["sha256:d1", "sha256:d2"][..]);
    let tag = prop::option::of(prop::sample::select(&["v1", "latest"][..]));
    let method = prop::sample::select(&[Method::Get, Method::Head][..]);
    (client, digest, tag, method, 0i64..200, any::<bool>()).prop_map(
        |(client, digest, tag, method, second, system)| Request {
            event_id: Uuid::nil(),
            key: key(client, digest),
            tag: tag.map(Into::into),
            method,
            at: at(second),
            system,
        },
    )
}

proptest! {
    /// Settled in any order, in any batches, some twice, the counts are those of settling
    /// everything at once.
    #[test]
    fn counts_depend_only_on_the_set_of_requests(
        requests in prop::collection::vec(any_request(), 1..30)
            .prop_map(|mut rs| {
                for (i, r) in rs.iter_mut().enumerate() {
                    r.event_id = event_key(&format!("e{i:02}"));
                }
                rs
            })
            .prop_flat_map(|rs| (Just(rs.clone()), Just(rs).prop_shuffle())),
        batch in 1usize..5,
    ) {
        let (requests, shuffled) = requests;
        let mut stored = Vec::new();
        let mut expected = Changes::default();
        settle_in_memory(&mut stored, &requests, window(), &mut expected);

        let mut stored = Vec::new();
        let mut total = Changes::default();
        // Redelivered requests are not new: the ledger admits an id once.
        let mut seen = std::collections::HashSet::new();
        for chunk in shuffled.chunks(batch) {
            let new: Vec<Request> = chunk.iter().filter(|r| seen.insert(r.event_id)).cloned().collect();
            let mut changes = Changes::default();
            settle_in_memory(&mut stored, &new, window(), &mut changes);
            add(&mut total, changes);
        }
        prop_assert_eq!(counts(&total), counts(&expected));
    }
}

/// The requests of the captured containerd and skopeo pulls.
fn captured(file: &str) -> Vec<Request> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/containerd-1.6.20/");
    let text = std::fs::read_to_string(format!("{path}{file}")).unwrap();
    text.lines()
        .flat_map(|line| {
            let request: serde_json::Value = serde_json::from_str(line).unwrap();
            let body: serde_json::Value =
                serde_json::from_str(request["body_raw"].as_str().unwrap()).unwrap();
            body["events"].as_array().unwrap().clone()
        })
        .filter_map(|raw| {
            let event: Event = serde_json::from_value(raw).unwrap();
            let client = ClientKind::of(event.request.useragent.as_deref(), &[]);
            Request::of(
                event.id.as_deref().unwrap(),
                &event,
                "reg",
                event.timestamp.unwrap(),
                client,
            )
        })
        .collect()
}

#[test]
fn captured_containerd_pulls_count_as_pulls_and_checks() {
    let files = [
        "c1-ctr-pull-single.jsonl",
        "c2-ctr-pull-multi-arm64.jsonl",
        "c3-ctr-pull-by-digest.jsonl",
        "c4-ctr-pull-again.jsonl",
        "c5-skopeo-pull.jsonl",
    ];
    let requests: Vec<Request> = files.iter().flat_map(|f| captured(f)).collect();
    let mut stored = Vec::new();
    let mut changes = Changes::default();
    settle_in_memory(&mut stored, &requests, window(), &mut changes);
    let class = |file: &str, position: usize| {
        let id = &captured(file)[position].event_id;
        stored
            .iter()
            .find(|(r, _)| &r.event_id == id)
            .unwrap()
            .1
            .clone()
    };
    // c1: HEAD lab/app:v1, GET by digest: one pull of the tag.
    assert_eq!(class(files[0], 0), check(false));
    assert_eq!(class(files[0], 1), credited("v1"));
    // c2: HEAD of the index by tag, GET of the index by digest: one pull of lab/multi:v1;
    // the GET of the arm64 manifest is a pull by digest (an image pull, as before).
    assert_eq!(class(files[1], 0), check(false));
    assert_eq!(class(files[1], 1), credited("v1"));
    assert_eq!(class(files[1], 2), credited(""));
    // c3: HEAD by digest, GET by digest: a pull by digest.
    assert_eq!(class(files[2], 0), check(false));
    assert_eq!(class(files[2], 1), credited(""));
    // c4: the images were there: two version checks.
    assert_eq!(class(files[3], 0), check(true));
    assert_eq!(class(files[3], 1), check(true));
    // c5: skopeo GETs by tag count themselves; nothing to pair.
    assert_eq!(class(files[4], 0), Class::default());
    let checks: i64 = changes.version_checks.values().map(|(n, _)| n).sum();
    assert_eq!(checks, 2);
    let credited_pulls: i64 = changes.tags.values().map(|t| t.pull_count).sum();
    assert_eq!(credited_pulls, 2, "lab/app:v1 and lab/multi:v1 once each");
}

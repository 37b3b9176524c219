//! The stream of events every fault test sends, and the state it must produce.
//!
//! The events are the real ones in `shared/fixtures/distribution-2.8.2` (blob and manifest
//! pushes, an OCI index with its children, pulls by tag and by digest, HEADs, a mount, deletes
//! by digest and by tag), each distinct fixture event once per round with a fresh id. Round `r`
//! moves every repository to one of a few variants and the timestamps `r` minutes later, so
//! the derived tables get many rows whose merge (newest push, newest delete, sums) depends on
//! events spread over the whole stream. Every tenth event is followed later by a re-send of an
//! earlier one, byte for byte, as a registry does when it did not see an answer.

use crate::helpers::{TestDb, fixture_bodies};
use crate::model::snapshot;
use chrono::{DateTime, SecondsFormat};
use regstat_worker::handler::{Context, Incoming, Outcome, handle_batch};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The captured fixture files (`shared/fixtures/README.md` says what each one did).
const FIXTURES: [&str; 10] = [
    "01-push-oci-by-tag.jsonl",
    "03-pull-by-tag.jsonl",
    "04-pull-by-digest.jsonl",
    "06-push-multiarch-oci-index.jsonl",
    "07-pull-one-arch.jsonl",
    "12-delete-manifest-by-digest.jsonl",
    "a2-auth-push.jsonl",
    "r1-endpoint-500-first-5.jsonl",
    "r3-endpoint-slower-than-timeout.jsonl",
    "r6-no-references.jsonl",
];

/// The `Host` the fixture clients used (`request.host`, and inside `target.url`).
pub const FIXTURE_HOST: &str = "127.0.0.1:5000";

/// Round `r` uses repository `<fixture repository>-<r % REPOSITORY_VARIANTS>`.
const REPOSITORY_VARIANTS: usize = 5;

/// One re-sent duplicate per this many events.
const DUPLICATE_EVERY: usize = 10;

/// What a blob event says its media type is.
const BLOB: &str = "application/octet-stream";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Every distinct event of the fixtures (by id: the retry fixtures repeat theirs), in capture
/// order.
pub fn templates() -> Vec<Value> {
    let mut seen = HashSet::new();
    let mut events = Vec::new();
    for file in FIXTURES {
        for body in fixture_bodies(file) {
            let envelope: Value = serde_json::from_str(&body).expect("fixture body is JSON");
            for event in envelope["events"].as_array().expect("an events array") {
                let id = event["id"].as_str().expect("fixture events have ids");
                if seen.insert(id.to_owned()) {
                    events.push(event.clone());
                }
            }
        }
    }
    events
}

/// Whether `event` is a manifest push (the only event that needs a registry callback).
pub fn is_manifest_push(event: &Value) -> bool {
    event["action"] == "push"
        && event["target"]["mediaType"]
            .as_str()
            .is_some_and(|media_type| media_type != BLOB)
}

/// The events to send and what they must add up to.
pub struct Stream {
    /// Each distinct event's JSON, in the order first sent.
    pub events: Vec<String>,
    /// Their ids.
    pub ids: BTreeSet<String>,
    /// The request bodies in sending order: one event each (as a registry sends), re-sent
    /// duplicates included.
    pub bodies: Vec<String>,
}

impl Stream {
    /// `n` distinct events made from the fixtures, each passed through `rewrite` (with its
    /// round) as JSON text, plus one duplicate per [`DUPLICATE_EVERY`].
    pub fn build(n: usize, rewrite: impl Fn(usize, String) -> String) -> Self {
        let templates = templates();
        let mut events = Vec::with_capacity(n);
        let mut ids = BTreeSet::new();
        let mut bodies = Vec::with_capacity(n + n / DUPLICATE_EVERY);
        for i in 0..n {
            let round = i / templates.len();
            let mut event = templates[i % templates.len()].clone();
            let id = uuid::Uuid::new_v4().to_string();
            event["id"] = json!(id);
            shift(&mut event, round);
            let text = rewrite(round, event.to_string());
            ids.insert(id);
            bodies.push(envelope(&text));
            events.push(text);
            if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 {
                // Alternately a recent event and one from much earlier in the stream.
                let earlier = if (i / DUPLICATE_EVERY).is_multiple_of(2) {
                    i - 7
                } else {
                    i / 2
                };
                bodies.push(envelope(&events[earlier]));
            }
        }
        Self {
            events,
            ids,
            bodies,
        }
    }

    /// Bodies whose event is a manifest push (duplicates included).
    pub fn manifest_push_bodies(&self) -> usize {
        self.bodies
            .iter()
            .filter(|body| {
                let envelope: Value = serde_json::from_str(body).expect("a body we built");
                is_manifest_push(&envelope["events"][0])
            })
            .count()
    }

    /// Distinct manifest digests pushed.
    pub fn manifest_push_digests(&self) -> usize {
        self.manifest_pushes()
            .map(|event| {
                event["target"]["digest"]
                    .as_str()
                    .expect("a digest")
                    .to_owned()
            })
            .collect::<BTreeSet<_>>()
            .len()
    }

    fn manifest_pushes(&self) -> impl Iterator<Item = Value> + '_ {
        self.events
            .iter()
            .map(|text| serde_json::from_str::<Value>(text).expect("an event we built"))
            .filter(is_manifest_push)
    }

    /// Ids of the distinct manifest pushes.
    pub fn manifest_push_ids(&self) -> BTreeSet<String> {
        self.manifest_pushes()
            .map(|event| event["id"].as_str().expect("an id").to_owned())
            .collect()
    }
}

/// `{"events": [<event>]}`, the event's bytes kept as they are.
fn envelope(event: &str) -> String {
    format!("{{\"events\":[{event}]}}")
}

/// Moves `event` to round `round`: repository variant and timestamp.
fn shift(event: &mut Value, round: usize) {
    let suffix = format!("-{}", round % REPOSITORY_VARIANTS);
    for field in ["repository", "fromRepository"] {
        if let Some(repository) = event["target"][field].as_str() {
            event["target"][field] = json!(format!("{repository}{suffix}"));
        }
    }
    let timestamp = event["timestamp"].as_str().expect("fixture timestamp");
    let shifted = DateTime::parse_from_rfc3339(timestamp).expect("RFC 3339 timestamp")
        + chrono::Duration::minutes(i64::try_from(round).expect("a small round"));
    event["timestamp"] = json!(shifted.to_rfc3339_opts(SecondsFormat::Nanos, true));
}

/// Applies the distinct events to `db` the plain way (one worker, in stream order, no broker,
/// no faults) and returns the state they give: what every faulty run must end with.
pub async fn reference_state(db: &TestDb, ctx: &Context, stream: &Stream) -> Value {
    for chunk in stream.events.chunks(50) {
        let messages: Vec<Incoming> = chunk
            .iter()
            .map(|event| Incoming {
                body: event.clone().into_bytes(),
                correlation_id: None,
                received_at: None,
            })
            .collect();
        let (outcomes, _) = handle_batch(ctx, &messages)
            .await
            .expect("the reference database is available");
        assert!(
            outcomes.iter().all(|outcome| *outcome == Outcome::Ack),
            "the reference run must record every event: {outcomes:?}"
        );
    }
    snapshot(db).await
}

/// `sha256:<hex>` of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Manifests a test registry serves for the stream's manifest pushes, so that callbacks get
/// verifiable content.
///
/// The fixtures' manifests were not captured, only their digests: for each round, every
/// pushed fixture manifest gets a small stand-in (an OCI image with its own config blob, or an
/// OCI index of the stand-ins of its children) whose digest replaces the fixture digest
/// everywhere in that round's events (pushes, pulls, deletes, references). Each round has its
/// own stand-ins, so every round's pushes need callbacks of their own.
pub struct Served {
    /// Per round: (fixture digest, stand-in digest).
    replacements: Vec<Vec<(String, String)>>,
    /// Every stand-in document: digest, content type, bytes.
    pub documents: Vec<(String, &'static str, Vec<u8>)>,
}

impl Served {
    /// Stand-ins for `rounds` rounds of the fixture manifests.
    pub fn new(rounds: usize) -> Self {
        // Each pushed fixture manifest: its media type and the references its event lists.
        let mut pushed: BTreeMap<String, (String, Vec<Value>)> = BTreeMap::new();
        for event in templates().iter().filter(|e| is_manifest_push(e)) {
            let target = &event["target"];
            let digest = target["digest"].as_str().expect("pushed digest").to_owned();
            let media_type = target["mediaType"].as_str().expect("media type").to_owned();
            let references = target["references"].as_array().cloned().unwrap_or_default();
            let entry = pushed.entry(digest).or_insert((media_type, Vec::new()));
            if entry.1.is_empty() {
                entry.1 = references;
            }
        }
        let mut replacements = Vec::with_capacity(rounds);
        let mut documents = Vec::new();
        for round in 0..rounds {
            let mut map: Vec<(String, String)> = Vec::new();
            let mut architectures: BTreeMap<String, &str> = BTreeMap::new();
            // Images first: an index needs its children's stand-in digests.
            let (indexes, images): (Vec<_>, Vec<_>) = pushed
                .iter()
                .partition(|(_, (media_type, _))| media_type == OCI_INDEX);
            for (position, (digest, (_, references))) in images.iter().enumerate() {
                let architecture = if position % 2 == 0 { "amd64" } else { "arm64" };
                let config = json!({
                    "architecture": architecture, "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "config": {"Labels": {"stand-in-for": digest, "round": round}},
                })
                .to_string()
                .into_bytes();
                let config_digest = sha256(&config);
                let fixture_config = references
                    .iter()
                    .find(|r| r["mediaType"] == OCI_CONFIG)
                    .and_then(|r| r["digest"].as_str());
                if let Some(fixture_config) = fixture_config {
                    map.push((fixture_config.to_owned(), config_digest.clone()));
                }
                let layers: Vec<&Value> = references
                    .iter()
                    .filter(|r| r["mediaType"] != OCI_CONFIG)
                    .collect();
                let manifest = json!({
                    "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
                    "layers": layers,
                    "annotations": {"stand-in-for": digest, "round": round.to_string()},
                })
                .to_string()
                .into_bytes();
                let manifest_digest = sha256(&manifest);
                map.push(((*digest).clone(), manifest_digest.clone()));
                architectures.insert(manifest_digest.clone(), architecture);
                documents.push((config_digest, OCI_CONFIG, config));
                documents.push((manifest_digest, OCI_MANIFEST, manifest));
            }
            for (digest, (_, references)) in indexes {
                let children: Vec<Value> = references
                    .iter()
                    .map(|child| {
                        let fixture_child = child["digest"].as_str().expect("child digest");
                        let stand_in = map
                            .iter()
                            .find(|(from, _)| from == fixture_child)
                            .map(|(_, to)| to.clone())
                            .expect("the fixtures push an index's children before it");
                        let size = documents
                            .iter()
                            .find(|(d, _, _)| *d == stand_in)
                            .map(|(_, _, bytes)| bytes.len())
                            .expect("a stand-in document");
                        let platform = json!({"os": "linux", "architecture": architectures[&stand_in]});
                        json!({"mediaType": OCI_MANIFEST, "digest": stand_in, "size": size, "platform": platform})
                    })
                    .collect();
                let index = json!({
                    "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children,
                    "annotations": {"stand-in-for": digest, "round": round.to_string()},
                })
                .to_string()
                .into_bytes();
                let index_digest = sha256(&index);
                map.push((digest.clone(), index_digest.clone()));
                documents.push((index_digest, OCI_INDEX, index));
            }
            replacements.push(map);
        }
        Self {
            replacements,
            documents,
        }
    }

    /// `event` (round `round`'s JSON text) with the fixture digests replaced by the stand-ins.
    pub fn rewrite(&self, round: usize, mut event: String) -> String {
        for (from, to) in &self.replacements[round] {
            event = event.replace(from.as_str(), to);
        }
        event
    }
}

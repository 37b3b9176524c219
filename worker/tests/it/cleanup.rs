//! Cleanup plans on the model the worker builds: the inventory a plan decides about, from real
//! fixture events.

use crate::helpers::{TestDb, context, fixture_bodies};
use regstat_store::cleanup::decide::{RowKind, Verdict, decide};
use regstat_store::cleanup::inventory;
use regstat_store::cleanup::policy::Policies;
use regstat_worker::handler::{Incoming, handle_batch};
use serde_json::Value;

async fn recorded(files: &[&str]) -> TestDb {
    let db = TestDb::new().await;
    let messages: Vec<Incoming> = files
        .iter()
        .flat_map(|file| fixture_bodies(file))
        .flat_map(|body| {
            let envelope: Value = serde_json::from_str(&body).unwrap();
            envelope["events"].as_array().unwrap().clone()
        })
        .map(|event| Incoming {
            body: event.to_string().into_bytes(),
            correlation_id: None,
            received_at: None,
        })
        .collect();
    handle_batch(&context(&db), &messages).await.unwrap();
    db
}

const POLICIES: &str = r#"
[[policy]]
repositories = ["lab/app"]
keep.used_within = "30d"
untagged = "delete"

[[policy]]
repositories = ["lab/*"]
keep.tags = ["^v1$"]
untagged = "delete"
"#;

/// The inventory holds each live tag with its push, last use (the pull) and age, and each live
/// manifest with an index's children (from the pushed index event's references), so that the
/// decision sees an index and its children as one.
#[tokio::test]
async fn a_plan_decides_on_the_inventory_of_the_model() {
    let db = recorded(&[
        "01-push-oci-by-tag.jsonl",
        "03-pull-by-tag.jsonl",
        "06-push-multiarch-oci-index.jsonl",
    ])
    .await;
    let repositories = inventory::repositories(&db.pool, None).await.unwrap();
    let names: Vec<&str> = repositories.iter().map(|r| r.repository.as_str()).collect();
    assert_eq!(names, ["lab/app", "lab/multi"]);
    let (app, multi) = (&repositories[0], &repositories[1]);
    assert_eq!(app.registry, "127.0.0.1:5000");
    assert_eq!(app.tags.len(), 1);
    let v1 = &app.tags[0];
    assert_eq!(v1.tag, "v1");
    assert!(v1.last_used_at > v1.pushed_at, "the pull is the last use");
    assert_eq!(v1.age_at, v1.pushed_at);
    let index = multi
        .manifests
        .iter()
        .find(|m| m.is_index)
        .expect("the pushed index");
    assert_eq!(index.children.len(), 2);
    assert_eq!(multi.manifests.len(), 3);
    assert_eq!(multi.tags[0].digest, index.digest);

    let policies = Policies::parse(POLICIES).unwrap();
    let last_use = v1.last_used_at.unwrap();
    let soon = last_use + chrono::Duration::days(10);
    let later = last_use + chrono::Duration::days(40);
    let verdicts = |state, now| -> Vec<(RowKind, Verdict)> {
        decide(&policies, state, now)
            .into_iter()
            .map(|d| (d.kind, d.verdict))
            .collect()
    };
    assert_eq!(verdicts(app, soon), [(RowKind::Image, Verdict::Keep)]);
    assert_eq!(verdicts(app, later), [(RowKind::Image, Verdict::Delete)]);
    // The index tag is kept by its name, and its children with it.
    assert_eq!(
        verdicts(multi, later),
        [
            (RowKind::Index, Verdict::Keep),
            (RowKind::Child, Verdict::Keep),
            (RowKind::Child, Verdict::Keep),
        ]
    );
}

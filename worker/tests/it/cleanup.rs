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

/// Runs the real `regstat` binary on `db`.
async fn regstat(db: &TestDb, args: &[&str]) -> std::process::Output {
    crate::helpers::regstat(db, None, args).await
}

/// `regstat cleanup plan` prints the plan (table, JSON, CSV), writes it with the policy's hash
/// and the newest event it saw, changes nothing, and refuses an invalid policy naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_command_prints_and_writes_the_plan_and_refuses_a_bad_policy() {
    let db = recorded(&[
        "01-push-oci-by-tag.jsonl",
        "03-pull-by-tag.jsonl",
        "06-push-multiarch-oci-index.jsonl",
    ])
    .await;
    let dir = std::env::temp_dir().join(regstat_shared::testkit::unique_name("plan"));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.toml");
    // Everything is older than a day: lab/app goes, lab/multi keeps v1 (and its children).
    std::fs::write(
        &policy,
        "[[policy]]\nrepositories = [\"lab/app\"]\nuntagged = \"delete\"\n\n\
         [[policy]]\nrepositories = [\"lab/*\"]\nkeep.tags = [\"^v1$\"]\nuntagged = \"delete\"\n",
    )
    .unwrap();
    let output = dir.join("plan.json");
    let ledger_before = db.ledger_len().await;

    let json = regstat(
        &db,
        &[
            "cleanup",
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "json",
            "--output",
            output.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let printed: Value = serde_json::from_slice(&json.stdout).unwrap();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert!(
        printed["policy_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    let newest: String = sqlx::query_scalar(
        "SELECT id FROM regstat.events ORDER BY received_at DESC, id DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(printed["newest_event"]["id"], newest.as_str());
    let decisions: Vec<(String, String, String)> = printed["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["repository"].as_str().unwrap().to_owned(),
                r["kind"].as_str().unwrap().to_owned(),
                r["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("lab/app", "image", "delete"),
        ("lab/multi", "index", "keep"),
        ("lab/multi", "child", "keep"),
        ("lab/multi", "child", "keep"),
    ];
    assert_eq!(
        decisions,
        expected.map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
    );
    let app = &printed["rows"][0];
    // The fixture's pull was on 2026-11-22: counted while that is within the last 30 days.
    let pulled: chrono::NaiveDate = "2026-11-22".parse().unwrap();
    let recent = chrono::Utc::now().date_naive() - pulled < chrono::Duration::days(30);
    assert_eq!(
        app["pulls_30d"],
        u64::from(recent),
        "the pull of v1 in 30 days"
    );
    assert!(
        app["reason"]
            .as_str()
            .unwrap()
            .contains("no rule of policy[0]")
    );
    // Its config and layers are shared with no kept manifest: deleting it frees them all.
    let blob_bytes: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(size), 0)::bigint FROM regstat.manifest_references
         WHERE repository = 'lab/app' AND manifest_digest = $1 AND role IN ('config', 'layer')",
    )
    .bind(app["digest"].as_str().unwrap())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(blob_bytes > 0);
    assert_eq!(app["bytes_freed"], blob_bytes);
    let totals = printed["totals"].as_array().unwrap();
    assert_eq!(
        (totals[0]["kept"].as_u64(), totals[0]["candidates"].as_u64()),
        (Some(0), Some(1))
    );

    let table = regstat(
        &db,
        &["cleanup", "plan", "--policy", policy.to_str().unwrap()],
    )
    .await;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("1 candidates") && text.contains("nothing was changed"),
        "{text}"
    );
    let csv = regstat(
        &db,
        &[
            "cleanup",
            "plan",
            "--policy",
            policy.to_str().unwrap(),
            "--format",
            "csv",
        ],
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&csv.stdout).lines().count(),
        5,
        "a header and 4 rows"
    );
    assert_eq!(
        db.ledger_len().await,
        ledger_before,
        "a plan changes nothing"
    );

    std::fs::write(
        &policy,
        "[[policy]]\nrepositories = [\"lab/*\"]\nuntagged = \"sometimes\"\n",
    )
    .unwrap();
    let refused = regstat(
        &db,
        &["cleanup", "plan", "--policy", policy.to_str().unwrap()],
    )
    .await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains("sometimes"),
        "{stderr}"
    );
    let missing = regstat(&db, &["cleanup", "plan"]).await;
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--policy"));
    std::fs::remove_dir_all(&dir).unwrap();
}

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
        "SELECT regstat.event_id(e) FROM regstat.events e
         ORDER BY received_at DESC, id DESC LIMIT 1",
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

mod against_the_registry {
    //! A plan made from real usage and applied to the real registry (distribution 2.8, deletes
    //! enabled, notifying the pipeline), checked through the registry's own API.

    use crate::helpers::{TestDb, TestReceiver, TestWorker, settings_with_file};
    use crate::support::{
        Notifications, OciLayout, RegistryOptions, Scratch, free_port, require_tools, skopeo,
    };
    use regstat_shared::testkit::{self, TestBroker};
    use regstat_store::cleanup::decide::{RowKind, Verdict};
    use regstat_store::cleanup::inventory;
    use regstat_store::cleanup::plan::{Scope, plan};
    use regstat_store::cleanup::policy::Policies;
    use std::time::Duration;

    const DEADLINE: Duration = Duration::from_secs(60);

    const POLICY: &str = r#"
[[policy]]
repositories = ["e2e/**"]
keep.tags = ['^v\d+\.\d+\.\d+$']
keep.used_within = "30d"
untagged = "delete"
min_age = "24h"
"#;

    /// The real pipeline (receiver, RabbitMQ, worker) for a registry named `e2e` that is yet
    /// to be started on `port`, notifying `notifications`.
    struct Pipeline {
        port: u16,
        registry: String,
        config: String,
        db: TestDb,
        _broker: TestBroker,
        receiver: TestReceiver,
        worker: TestWorker,
        scratch: Scratch,
        notifications: Notifications,
    }

    impl Pipeline {
        async fn start() -> Self {
            require_tools();
            let token = uuid::Uuid::new_v4().simple().to_string();
            let port = free_port();
            let registry = format!("127.0.0.1:{port}");
            let config = format!("[[registries]]\nname = \"e2e\"\nurl = \"http://{registry}\"\n");
            let db = TestDb::new().await;
            let broker = TestBroker::new().await;
            let settings = settings_with_file(
                &db,
                &broker,
                &config,
                &[("REGSTAT__RECEIVER__TOKENS", &token)],
            );
            let receiver = TestReceiver::spawn(&settings).await;
            let worker = TestWorker::spawn(&settings);
            let notifications = Notifications {
                url: format!("{}/events", receiver.address),
                token,
                include_references: true,
            };
            Pipeline {
                port,
                registry,
                config,
                db,
                _broker: broker,
                receiver,
                worker,
                scratch: Scratch::new(),
                notifications,
            }
        }
    }

    /// The registry's tags of `repository` (empty once it has none).
    async fn tags(registry: &str, repository: &str) -> Vec<String> {
        let response = reqwest::get(format!("http://{registry}/v2/{repository}/tags/list"))
            .await
            .unwrap();
        if response.status() == 404 {
            return Vec::new();
        }
        let body: serde_json::Value = response.json().await.unwrap();
        let mut tags: Vec<String> = body["tags"]
            .as_array()
            .map(|t| t.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// Whether the registry still has the manifest `digest` in `repository`.
    async fn has_manifest(registry: &str, repository: &str, digest: &str) -> bool {
        let client = reqwest::Client::new();
        let response = client
            .head(format!("http://{registry}/v2/{repository}/manifests/{digest}"))
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            )
            .send()
            .await
            .unwrap();
        response.status() == 200
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plan_applied_to_the_registry_deletes_exactly_what_the_rules_say() {
        let Pipeline {
            port,
            registry,
            config,
            db,
            _broker,
            receiver,
            worker,
            mut scratch,
            notifications,
        } = Pipeline::start().await;
        scratch
            .start_registry_on(port, &RegistryOptions::default(), Some(&notifications))
            .await;
        let mut oci = OciLayout::new(&scratch, "oci");
        let amd64 = oci.image("amd64", None).await;
        let arm64 = oci.image("arm64", Some("v8")).await;
        let armv7 = oci.image("arm", Some("v7")).await;
        let signature = oci.image("ppc64le", None).await;
        let checked = oci.image("s390x", None).await;
        let multi = oci.index(&[&amd64, &arm64]);
        oci.tag("amd64", &amd64.manifest);
        oci.tag("arm64", &arm64.manifest);
        oci.tag("armv7", &armv7.manifest);
        oci.tag("multi", &multi);
        oci.tag("signature", &signature.manifest);
        oci.tag("checked", &checked.manifest);
        let push = |source: &str, target: &str, all: bool| {
            let source = oci.reference(source);
            let target = format!("docker://{registry}/{target}");
            let scratch = &scratch;
            async move {
                let mut args = vec!["copy", "--dest-tls-verify=false"];
                if all {
                    args.push("--all");
                }
                args.extend([source.as_str(), target.as_str()]);
                skopeo(&args, scratch).await;
            }
        };
        push("amd64", "e2e/app:v1.0.0", false).await; // kept by its name
        push("amd64", "e2e/app:shared", false).await; // a candidate sharing v1.0.0's manifest
        push("arm64", "e2e/app:old", false).await; // a candidate
        push("checked", "e2e/app:checked", false).await; // only version-checked: kept
        push("armv7", "e2e/app:pulled", false).await; // a candidate, pulled before apply
        push("multi", "e2e/multi:v2", true).await; // an index: goes with its children
        push("arm64", "other/app:old", false).await; // no policy: kept whole
        // A signature of e2e/app:old, by the cosign tag convention: goes with its subject.
        let sig_tag = format!(
            "sha256-{}.sig",
            arm64.manifest.digest.trim_start_matches("sha256:")
        );
        push("signature", &format!("e2e/app:{sig_tag}"), false).await;

        // Wait until the pipeline recorded everything with its content (the index's children).
        let ready = || async {
            if scratch.pending_notifications().await != 0 {
                return None;
            }
            let repositories = inventory::repositories(&db.pool, Some("e2e")).await.ok()?;
            let tags: usize = repositories.iter().map(|r| r.tags.len()).sum();
            let children: usize = repositories
                .iter()
                .flat_map(|r| &r.manifests)
                .map(|m| m.children.len())
                .sum();
            (tags == 8 && children == 2).then_some(repositories)
        };
        testkit::eventually(DEADLINE, "the pushes recorded", ready).await;

        // A client whose image is up to date only HEADs the tag (containerd, `docker pull`,
        // `imagePullPolicy: Always`): a version check, which is a use.
        let head = reqwest::Client::new()
            .head(format!("http://{registry}/v2/e2e/app/manifests/checked"))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .header("User-Agent", "containerd/1.7.24")
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        let checked_at = testkit::eventually(DEADLINE, "the version check recorded", || async {
            let repositories = inventory::repositories(&db.pool, Some("e2e")).await.ok()?;
            let tag = repositories
                .iter()
                .flat_map(|r| &r.tags)
                .find(|t| t.tag == "checked")?;
            tag.last_used_at.filter(|&at| Some(at) > tag.pushed_at)
        })
        .await;

        // Now, everything is younger than min_age: nothing is a candidate.
        let policies = Policies::parse(POLICY).unwrap();
        let young = plan(
            &db.pool,
            &policies,
            None,
            &Scope::default(),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        for row in young
            .rows
            .iter()
            .filter(|r| r.repository.starts_with("e2e/"))
        {
            assert_eq!(row.decision, Verdict::Keep, "{row:?}");
        }
        // Plan as if 30 days had passed since the version check, less a millisecond: the
        // checked tag was used within 30 days, every other use (the pushes, all before the
        // check) is older than that, and everything is older than min_age.
        let later = checked_at + chrono::Duration::days(30) - chrono::Duration::milliseconds(1);
        let made = plan(
            &db.pool,
            &policies,
            Some("policy.toml".into()),
            &Scope::default(),
            later,
        )
        .await
        .unwrap();
        let decided = |repository: &str, tag: Option<&str>| {
            made.rows
                .iter()
                .filter(|r| r.repository == repository && r.tag.as_deref() == tag)
                .map(|r| (r.kind, r.decision))
                .collect::<Vec<_>>()
        };
        use RowKind::*;
        use Verdict::*;
        assert_eq!(decided("e2e/app", Some("v1.0.0")), [(Image, Keep)]);
        assert_eq!(decided("e2e/app", Some("shared")), [(Image, Delete)]);
        assert_eq!(decided("e2e/app", Some("old")), [(Image, Delete)]);
        assert_eq!(decided("e2e/app", Some("checked")), [(Image, Keep)]);
        let checked_row = made
            .rows
            .iter()
            .find(|r| r.tag.as_deref() == Some("checked"));
        assert!(
            checked_row.is_some_and(|r| r.reason.contains("keep.used_within")),
            "{checked_row:?}"
        );
        assert_eq!(decided("e2e/app", Some("pulled")), [(Image, Delete)]);
        assert_eq!(decided("e2e/multi", Some("v2")), [(Index, Delete)]);
        assert_eq!(
            decided("e2e/multi", None),
            [(Child, Delete), (Child, Delete)]
        );
        assert_eq!(decided("other/app", Some("old")), [(Image, Keep)]);
        assert_eq!(decided("e2e/app", Some(&sig_tag)), [(Referrer, Delete)]);
        let plan_file = scratch.write("plan.json", serde_json::to_vec(&made).unwrap());

        // A tag pulled between plan and apply survives.
        let pulled_to = format!("oci:{}:pulled", scratch.dir.join("pulled").display());
        let pulled_from = format!("docker://{registry}/e2e/app:pulled");
        skopeo(
            &["copy", "--src-tls-verify=false", &pulled_from, &pulled_to],
            &scratch,
        )
        .await;
        let planned_use = made
            .rows
            .iter()
            .find(|r| r.tag.as_deref() == Some("pulled"))
            .and_then(|r| r.last_used_at);
        testkit::eventually(DEADLINE, "the pull recorded", || async {
            let repositories = inventory::repositories(&db.pool, Some("e2e")).await.ok()?;
            let now = repositories
                .iter()
                .flat_map(|r| &r.tags)
                .find(|t| t.tag == "pulled")?
                .last_used_at;
            (now > planned_use).then_some(())
        })
        .await;

        let config_file = scratch.write("regstat.toml", &config);
        let apply = |yes: bool, max: Option<&str>| {
            let mut args = vec![
                "--config".to_owned(),
                config_file.display().to_string(),
                "cleanup".to_owned(),
                "apply".to_owned(),
                "--plan".to_owned(),
                plan_file.display().to_string(),
            ];
            if yes {
                args.push("--yes".to_owned());
            }
            if let Some(max) = max {
                args.extend(["--max-deletions".to_owned(), max.to_owned()]);
            }
            let db = &db;
            async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                super::regstat(db, &args).await
            }
        };
        let limited = apply(false, Some("2")).await;
        let limited = String::from_utf8_lossy(&limited.stdout).into_owned();
        assert!(
            limited.contains("dry run: 2 manifests would be deleted (stopped at --max-deletions 2; 3 more remain)"),
            "{limited}"
        );
        let dry = apply(false, None).await;
        let dry_text = String::from_utf8_lossy(&dry.stdout).into_owned();
        assert!(
            dry.status.success(),
            "{dry_text}{}",
            String::from_utf8_lossy(&dry.stderr)
        );
        assert!(
            dry_text.contains("dry run: 5 manifests would be deleted"),
            "{dry_text}"
        );
        let mut before = vec![
            "checked",
            "old",
            "pulled",
            "shared",
            sig_tag.as_str(),
            "v1.0.0",
        ];
        before.sort_unstable();
        assert_eq!(tags(&registry, "e2e/app").await, before);

        let done = apply(true, None).await;
        let text = String::from_utf8_lossy(&done.stdout).into_owned();
        assert!(
            done.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&done.stderr)
        );
        assert!(text.contains("skipped e2e/e2e/app:pulled"), "{text}");
        assert!(text.contains("used since the plan"), "{text}");
        assert!(text.contains("skipped e2e/e2e/app:shared"), "{text}");
        assert!(text.contains("garbage-collect"), "{text}");
        println!("{text}");

        // The registry, through its own API: exactly the plan's deletions happened.
        assert_eq!(
            tags(&registry, "e2e/app").await,
            ["checked", "pulled", "shared", "v1.0.0"]
        );
        assert!(!has_manifest(&registry, "e2e/app", &arm64.manifest.digest).await);
        assert!(!has_manifest(&registry, "e2e/app", &signature.manifest.digest).await);
        assert!(has_manifest(&registry, "e2e/app", &amd64.manifest.digest).await);
        assert_eq!(tags(&registry, "e2e/multi").await, Vec::<String>::new());
        assert!(!has_manifest(&registry, "e2e/multi", &multi.digest).await);
        assert!(!has_manifest(&registry, "e2e/multi", &amd64.manifest.digest).await);
        assert!(!has_manifest(&registry, "e2e/multi", &arm64.manifest.digest).await);
        assert_eq!(tags(&registry, "other/app").await, ["old"]);

        // The deletions reach regstat through the registry's own events: the audit trail says
        // which plan deleted them, and the tags are gone from regstat's model too.
        let plan_hash = format!(
            "sha256:{:x}",
            <sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&plan_file).unwrap())
        );
        testkit::eventually(DEADLINE, "the deletions recorded", || async {
            let agents: Vec<Option<String>> = sqlx::query_scalar(
                "SELECT request_useragent FROM regstat.deletions
                 WHERE repository LIKE 'e2e/%' AND digest IS NOT NULL",
            )
            .fetch_all(&db.pool)
            .await
            .ok()?;
            (agents.len() == 5).then_some(agents)
        })
        .await
        .iter()
        .for_each(|agent| {
            let agent = agent.as_deref().unwrap_or_default();
            assert!(
                agent.starts_with("regstat-cleanup/") && agent.contains(&plan_hash),
                "{agent}"
            );
        });
        let left: Vec<String> = inventory::repositories(&db.pool, Some("e2e"))
            .await
            .unwrap()
            .iter()
            .flat_map(|r| r.tags.iter().map(|t| format!("{}:{}", r.repository, t.tag)))
            .collect();
        assert_eq!(
            left,
            [
                "e2e/app:checked",
                "e2e/app:pulled",
                "e2e/app:shared",
                "e2e/app:v1.0.0",
                "other/app:old"
            ]
        );
        worker.stop().await;
        receiver.stop().await;
    }

    /// A registry that refuses deletions (distribution's default: `storage.delete.enabled`
    /// off) stops `apply` at the first refusal: nothing after it is tried, the registry keeps
    /// every tag, and the command fails.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn apply_stops_at_the_first_deletion_the_registry_refuses() {
        let Pipeline {
            port,
            registry,
            config,
            db,
            _broker,
            receiver,
            worker,
            mut scratch,
            notifications,
        } = Pipeline::start().await;
        let options = RegistryOptions {
            deletes_disabled: true,
            ..RegistryOptions::default()
        };
        scratch
            .start_registry_on(port, &options, Some(&notifications))
            .await;
        let mut oci = OciLayout::new(&scratch, "oci");
        let amd64 = oci.image("amd64", None).await;
        let arm64 = oci.image("arm64", Some("v8")).await;
        oci.tag("amd64", &amd64.manifest);
        oci.tag("arm64", &arm64.manifest);
        for (source, tag) in [("amd64", "a"), ("arm64", "b")] {
            let source = oci.reference(source);
            let target = format!("docker://{registry}/e2e/app:{tag}");
            skopeo(
                &["copy", "--dest-tls-verify=false", &source, &target],
                &scratch,
            )
            .await;
        }
        testkit::eventually(DEADLINE, "the pushes recorded", || async {
            if scratch.pending_notifications().await != 0 {
                return None;
            }
            let repositories = inventory::repositories(&db.pool, Some("e2e")).await.ok()?;
            (repositories.iter().map(|r| r.tags.len()).sum::<usize>() == 2).then_some(())
        })
        .await;

        let policies = Policies::parse(POLICY).unwrap();
        let later = chrono::Utc::now() + chrono::Duration::days(60);
        let made = plan(&db.pool, &policies, None, &Scope::default(), later)
            .await
            .unwrap();
        let candidates = made
            .rows
            .iter()
            .filter(|r| r.decision == Verdict::Delete)
            .count();
        assert_eq!(candidates, 2, "{made:?}");
        let plan_file = scratch.write("plan.json", serde_json::to_vec(&made).unwrap());
        let config_file = scratch.write("regstat.toml", &config);
        let args = [
            "--config",
            config_file.to_str().unwrap(),
            "cleanup",
            "apply",
            "--plan",
            plan_file.to_str().unwrap(),
            "--yes",
        ];
        let applied = super::regstat(&db, &args).await;
        let text = String::from_utf8_lossy(&applied.stdout).into_owned();
        assert!(!applied.status.success(), "{text}");
        assert_eq!(text.matches("refused ").count(), 1, "{text}");
        assert!(
            text.contains("stopping here, nothing after it was tried"),
            "{text}"
        );
        assert!(!text.contains("\ndeleted e2e"), "{text}");
        assert!(text.contains("deleted 0 manifests"), "{text}");
        assert_eq!(tags(&registry, "e2e/app").await, ["a", "b"]);
        assert!(has_manifest(&registry, "e2e/app", &amd64.manifest.digest).await);
        assert!(has_manifest(&registry, "e2e/app", &arm64.manifest.digest).await);
        worker.stop().await;
        receiver.stop().await;
    }
}

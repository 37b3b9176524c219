//! The registry model's laws on a real database: any order, any batching, any duplication and
//! any number of concurrent workers give the same state; the per-repository caches, refreshed
//! while workers write, never disagree with it.

use crate::helpers::{TestDb, context, messages};
use proptest::prelude::*;
use regstat_worker::handler::handle_batch;
use serde_json::{Value, json};

const REPOSITORIES: [&str; 2] = ["lab/a", "lab/b"];
const TAGS: [&str; 2] = ["v1", "v2"];
const MANIFESTS: [&str; 3] = ["sha256:m1", "sha256:m2", "sha256:m3"];
const BLOBS: [&str; 3] = ["sha256:b1", "sha256:b2", "sha256:b3"];
const AGENTS: [&str; 4] = [
    "skopeo/1.9.3",
    "Trivy/0.50.1",
    "regstat/0.1.0",
    "containerd/1.6.20~ds1",
];
/// Client addresses (the port differs per request, as with every real client).
const ADDRS: [&str; 3] = ["10.0.0.1:40001", "10.0.0.1:40002", "10.0.0.2:40003"];
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";

fn time(second: u8) -> String {
    format!("2026-11-22T10:00:0{second}.000000001Z")
}

/// What a manifest digest contains is fixed, as it is in a real registry.
fn references(manifest: &str) -> (&'static str, Value) {
    if manifest == MANIFESTS[2] {
        let children: Vec<Value> = MANIFESTS[..2]
            .iter()
            .map(|d| json!({"mediaType": IMAGE, "size": 500, "digest": d}))
            .collect();
        (INDEX, Value::Array(children))
    } else {
        let config = json!({"mediaType": "application/vnd.oci.image.config.v1+json", "size": 300, "digest": BLOBS[0]});
        let layer = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": 1000, "digest": if manifest == MANIFESTS[0] { BLOBS[1] } else { BLOBS[2] }});
        (IMAGE, json!([config, layer]))
    }
}

fn event(action: &str, method: &str, agent: &str, second: u8, target: Value) -> Value {
    json!({
        "timestamp": time(second),
        "action": action,
        "target": target,
        "request": {"method": method, "useragent": agent, "host": "registry.test:5000", "addr": ADDRS[0]},
        "actor": {"name": "alice"},
    })
}

fn any_event() -> impl Strategy<Value = Value> {
    let repo = prop::sample::select(&REPOSITORIES[..]);
    let tag = prop::option::of(prop::sample::select(&TAGS[..]));
    let manifest = prop::sample::select(&MANIFESTS[..]);
    let blob = prop::sample::select(&BLOBS[..]);
    let agent = prop::sample::select(&AGENTS[..]);
    let method = prop::sample::select(&["GET", "HEAD"][..]);
    let second = 0u8..6;
    prop_oneof![
        (repo.clone(), blob.clone(), second.clone()).prop_map(|(r, b, s)| event(
            "push", "PUT", AGENTS[0], s,
            json!({"mediaType": "application/octet-stream", "size": 1000, "digest": b, "repository": r})
        )),
        (repo.clone(), blob.clone(), second.clone()).prop_map(|(r, b, s)| {
            let from = if r == REPOSITORIES[0] { REPOSITORIES[1] } else { REPOSITORIES[0] };
            event("mount", "POST", AGENTS[0], s,
                json!({"mediaType": "application/octet-stream", "size": 1000, "digest": b, "repository": r, "fromRepository": from}))
        }),
        (repo.clone(), manifest.clone(), tag.clone(), second.clone()).prop_map(|(r, m, t, s)| {
            let (media_type, refs) = references(m);
            let mut target = json!({"mediaType": media_type, "size": 500, "digest": m, "repository": r, "references": refs});
            if let Some(t) = t { target["tag"] = json!(t); }
            event("push", "PUT", AGENTS[0], s, target)
        }),
        (repo.clone(), manifest.clone(), tag.clone(), method.clone(), agent.clone(), second.clone(), prop::sample::select(&ADDRS[..])).prop_map(|(r, m, t, how, a, s, addr)| {
            let (media_type, _) = references(m);
            let mut target = json!({"mediaType": media_type, "size": 500, "digest": m, "repository": r});
            if let Some(t) = t { target["tag"] = json!(t); }
            let mut e = event("pull", how, a, s, target);
            e["request"]["addr"] = json!(addr);
            e
        }),
        (repo.clone(), blob.clone(), method, agent, second.clone()).prop_map(|(r, b, how, a, s)| event(
            "pull", how, a, s,
            json!({"mediaType": "application/octet-stream", "size": 1000, "digest": b, "repository": r})
        )),
        (repo.clone(), prop::sample::select(&TAGS[..]), second.clone()).prop_map(|(r, t, s)| event(
            "delete", "DELETE", AGENTS[0], s, json!({"repository": r, "tag": t})
        )),
        (repo, prop::sample::select(&[MANIFESTS[0], MANIFESTS[1], MANIFESTS[2], BLOBS[1]][..]), second).prop_map(|(r, d, s)| event(
            "delete", "DELETE", AGENTS[0], s, json!({"repository": r, "digest": d})
        )),
    ]
}

/// A set of events with unique ids, and a shuffled copy of it.
fn event_sets() -> impl Strategy<Value = (Vec<Value>, Vec<Value>)> {
    prop::collection::vec(any_event(), 1..40)
        .prop_map(|mut events| {
            for (i, event) in events.iter_mut().enumerate() {
                event["id"] = json!(format!("event-{i:03}"));
            }
            events
        })
        .prop_flat_map(|events| (Just(events.clone()), Just(events).prop_shuffle()))
}

async fn apply_in_batches(db: &TestDb, events: &[Value], batch: usize) {
    let ctx = context(db);
    for chunk in messages(events).chunks(batch) {
        let (outcomes, _) = handle_batch(&ctx, chunk).await.unwrap();
        assert!(
            outcomes
                .iter()
                .all(|o| *o == regstat_worker::handler::Outcome::Ack)
        );
    }
}

/// Every state table, each row as JSON, in a stable order.
pub(crate) async fn snapshot(db: &TestDb) -> Value {
    let mut state = serde_json::Map::new();
    for table in [
        "blobs",
        "manifests",
        "manifest_references",
        "tags",
        "digest_deletions",
        "deletions",
        "pull_metrics",
        "version_checks",
        "manifest_requests",
        "repository_stats",
        "actors",
        "repository_pulls",
        "registry_pulls",
    ] {
        let sql = format!(
            "SELECT coalesce(json_agg(t ORDER BY t::text), '[]'::json) FROM regstat.{table} t"
        );
        let rows: Value = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        state.insert(table.to_owned(), rows);
    }
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT regstat.event_id(e) FROM regstat.events e ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    state.insert("events".to_owned(), json!(ids));
    Value::Object(state)
}

/// Rows of each cache and of the view it caches that differ, for repositories not marked
/// stale (those are read from the model), and repositories of the model the caches neither
/// hold nor mark stale. All zero: a reader gets what the model says.
async fn caches_disagreeing_with_the_model(db: &TestDb) -> Vec<(String, i64)> {
    let not_stale = |alias: &str| {
        format!(
            "NOT EXISTS (SELECT 1 FROM regstat.stale_repositories s
                         WHERE s.registry = {alias}.registry AND s.repository = {alias}.repository)"
        )
    };
    let (c, l) = (not_stale("c"), not_stale("l"));
    let mut checks: Vec<(String, String)> = [
        ("image_rows", "images_live"),
        ("digest_tag_rows", "digest_tags_live"),
        ("unreferenced_blob_rows", "unreferenced_blobs"),
        ("undetermined_blob_rows", "undetermined_blobs_live"),
        ("missing_blob_rows", "missing_blobs_live"),
    ]
    .into_iter()
    .map(|(cache, live)| {
        (
            cache.to_owned(),
            format!(
                "SELECT count(*) FROM (
                     (SELECT * FROM regstat.{cache} c WHERE {c}
                      EXCEPT ALL SELECT * FROM regstat.{live} l WHERE {l})
                     UNION ALL
                     (SELECT * FROM regstat.{live} l WHERE {l}
                      EXCEPT ALL SELECT * FROM regstat.{cache} c WHERE {c})) d"
            ),
        )
    })
    .collect();
    // Window sums per tag: for repositories whose cached windows are today's (the others are
    // read from the model).
    let cached = |alias: &str| {
        format!(
            "EXISTS (SELECT 1 FROM regstat.window_cached k
                     WHERE k.registry = {alias}.registry AND k.repository = {alias}.repository)"
        )
    };
    let (c_today, l_today) = (cached("c"), cached("l"));
    for (cache, live) in [
        ("tag_pull_window_rows", "tag_pull_windows_live"),
        ("tag_check_window_rows", "tag_check_windows_live"),
        ("platform_pull_window_rows", "platform_pull_windows_live"),
    ] {
        checks.push((
            cache.to_owned(),
            format!(
                "SELECT count(*) FROM (
                     (SELECT * FROM regstat.{cache} c WHERE {c_today}
                      EXCEPT ALL SELECT * FROM regstat.{live} l WHERE {l_today})
                     UNION ALL
                     (SELECT * FROM regstat.{live} l WHERE {l_today}
                      EXCEPT ALL SELECT * FROM regstat.{cache} c WHERE {c_today})) d"
            ),
        ));
    }
    checks.push((
        "repository_contents.pulls_30d".to_owned(),
        "SELECT count(*) FROM regstat.window_cached w
         WHERE w.pulls_30d IS DISTINCT FROM (
             SELECT COALESCE(sum(p.pulls), 0)::bigint FROM regstat.repository_pulls p
             WHERE p.registry = w.registry AND p.repository = w.repository
               AND p.day > (now() AT TIME ZONE 'UTC')::date - 30)"
            .to_owned(),
    ));
    checks.push((
        "repository_contents".to_owned(),
        format!(
            "SELECT count(*) FROM regstat.repository_contents c
             CROSS JOIN LATERAL regstat.contents_of(c.registry, c.repository) l
             WHERE {c} AND (c.tags, c.manifests, c.blobs, c.blob_bytes)
                           IS DISTINCT FROM (l.tags, l.manifests, l.blobs, l.blob_bytes)"
        ),
    ));
    // Pulls per platform, per (repository, day) with pulls: cached rows equal the live ones
    // unless the day is marked stale.
    checks.push((
        "platform_pull_rows".to_owned(),
        "WITH days AS (
             SELECT DISTINCT registry, repository, day FROM regstat.pull_metrics k
             WHERE NOT EXISTS (SELECT 1 FROM regstat.stale_pull_days s
                               WHERE s.registry = k.registry AND s.repository = k.repository
                                 AND s.day = k.day))
         SELECT count(*) FROM (
             (SELECT c.registry, c.repository, c.day, c.os, c.architecture, c.variant, c.pulls
              FROM regstat.platform_pull_rows c JOIN days USING (registry, repository, day)
              EXCEPT ALL
              SELECT l.registry, l.repository, l.day, l.os, l.architecture, l.variant, l.pulls
              FROM regstat.platform_pulls_live l JOIN days USING (registry, repository, day))
             UNION ALL
             (SELECT l.registry, l.repository, l.day, l.os, l.architecture, l.variant, l.pulls
              FROM regstat.platform_pulls_live l JOIN days USING (registry, repository, day)
              EXCEPT ALL
              SELECT c.registry, c.repository, c.day, c.os, c.architecture, c.variant, c.pulls
              FROM regstat.platform_pull_rows c JOIN days USING (registry, repository, day))) d"
            .to_owned(),
    ));
    checks.push((
        "repositories neither cached nor stale".to_owned(),
        "SELECT count(*) FROM (
             SELECT registry, repository FROM regstat.repository_stats
             UNION SELECT registry, repository FROM regstat.tags
             UNION SELECT registry, repository FROM regstat.manifests
             UNION SELECT registry, repository FROM regstat.blobs
             EXCEPT SELECT registry, repository FROM regstat.repository_contents
             EXCEPT SELECT registry, repository FROM regstat.stale_repositories) r"
            .to_owned(),
    ));
    let mut disagreeing = Vec::new();
    for (what, sql) in checks {
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if rows > 0 {
            disagreeing.push((what, rows));
        }
    }
    disagreeing
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn any_order_batching_duplication_or_concurrency_gives_the_same_state(
        (events, shuffled) in event_sets()
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            // One worker, one event at a time, in order.
            let reference = TestDb::new().await;
            apply_in_batches(&reference, &events, 1).await;
            let expected = snapshot(&reference).await;

            // Shuffled, everything twice, in batches of 7.
            let duplicated = TestDb::new().await;
            let twice: Vec<Value> = shuffled.iter().chain(events.iter().rev()).cloned().collect();
            apply_in_batches(&duplicated, &twice, 7).await;
            assert_eq!(snapshot(&duplicated).await, expected);

            // Three workers at once on overlapping thirds, in batches of 3, and the caches'
            // refresher running beside them.
            let concurrent = TestDb::new().await;
            let third = shuffled.len().div_ceil(3);
            let workers = (0..3).map(|i| {
                let start = (i * third).saturating_sub(1);
                let part: Vec<Value> = shuffled.iter().skip(start).take(third + 1).cloned().collect();
                let db = &concurrent;
                async move { apply_in_batches(db, &part, 3).await }
            });
            let stop = tokio_util::sync::CancellationToken::new();
            let refresher = tokio::spawn(regstat_store::caches::run_refresher(
                concurrent.pool.clone(),
                std::time::Duration::from_millis(1),
                stop.clone(),
            ));
            futures_util::future::join_all(workers).await;
            stop.cancel();
            refresher.await.unwrap();
            assert_eq!(snapshot(&concurrent).await, expected);
            assert_eq!(caches_disagreeing_with_the_model(&concurrent).await, []);
            regstat_store::caches::refresh_all(&concurrent.pool).await.unwrap();
            assert_eq!(regstat_store::caches::stale(&concurrent.pool).await.unwrap(), (0, 0));
            assert_eq!(caches_disagreeing_with_the_model(&concurrent).await, []);
            // What the reports read, cached, is what the model says.
            let images = |view: &'static str| {
                let pool = concurrent.pool.clone();
                async move {
                    let sql = format!(
                        "SELECT coalesce(json_agg(t ORDER BY t::text), '[]'::json) FROM regstat.{view} t"
                    );
                    sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(sql))
                        .fetch_one(&pool)
                        .await
                        .unwrap()
                }
            };
            assert_eq!(images("report_images").await, images("images_live").await);
            let rows_of = |sql: &str| {
                let pool = concurrent.pool.clone();
                let sql = sql.to_owned();
                async move {
                    sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(format!(
                        "SELECT coalesce(json_agg(t ORDER BY t::text), '[]'::json) FROM ({sql}) t"
                    )))
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                }
            };
            // Top pulled, version checks and pulls per platform, from the window caches (7,
            // 30, 365 days) and as before (any other window), are the sums over the window.
            for days in [7, 30, 365, 36500] {
                assert_eq!(
                    rows_of(&format!("SELECT * FROM regstat.top_pulled({days})")).await,
                    rows_of(&format!(
                        "SELECT registry, repository, tag, sum(pulls)::bigint AS pulls,
                                max(day) AS last_day
                         FROM regstat.pull_metrics
                         WHERE NOT system AND tag <> ''
                           AND day > (now() AT TIME ZONE 'UTC')::date - {days}
                         GROUP BY registry, repository, tag"
                    ))
                    .await,
                    "top_pulled({days})"
                );
                assert_eq!(
                    rows_of(&format!("SELECT * FROM regstat.top_checked({days})")).await,
                    rows_of(&format!(
                        "SELECT registry, repository, tag, digest, sum(checks)::bigint AS checks,
                                max(last_checked_at) AS last_checked_at
                         FROM regstat.version_checks
                         WHERE NOT system AND day > (now() AT TIME ZONE 'UTC')::date - {days}
                         GROUP BY registry, repository, tag, digest
                         HAVING sum(checks) > 0"
                    ))
                    .await,
                    "top_checked({days})"
                );
                assert_eq!(
                    rows_of(&format!("SELECT * FROM regstat.pulls_by_platform({days})")).await,
                    rows_of(&format!(
                        "SELECT registry, os, architecture, variant, sum(pulls)::bigint AS pulls
                         FROM regstat.platform_pulls_live
                         WHERE day > (now() AT TIME ZONE 'UTC')::date - {days}
                         GROUP BY registry, os, architecture, variant"
                    ))
                    .await,
                    "pulls_by_platform({days})"
                );
                // Asked for their first rows only, in the report's order: the same first rows.
                assert_eq!(
                    rows_of(&format!(
                        "SELECT * FROM regstat.top_pulled({days}, 3)
                         ORDER BY pulls DESC, registry, repository, tag LIMIT 3"
                    ))
                    .await,
                    rows_of(&format!(
                        "SELECT * FROM regstat.top_pulled({days})
                         ORDER BY pulls DESC, registry, repository, tag LIMIT 3"
                    ))
                    .await,
                    "top_pulled({days}, 3)"
                );
                assert_eq!(
                    rows_of(&format!(
                        "SELECT * FROM regstat.top_checked({days}, 3)
                         ORDER BY checks DESC, registry, repository, tag, digest LIMIT 3"
                    ))
                    .await,
                    rows_of(&format!(
                        "SELECT * FROM regstat.top_checked({days})
                         ORDER BY checks DESC, registry, repository, tag, digest LIMIT 3"
                    ))
                    .await,
                    "top_checked({days}, 3)"
                );
            }
            // Most tags, whole and its first rows, is the image rows grouped by digest.
            let grouped = "SELECT registry, repository, digest, media_type, count(*) AS tags,
                                  array_agg(tag ORDER BY tag) AS tag_names
                           FROM regstat.report_images
                           GROUP BY registry, repository, digest, media_type";
            assert_eq!(
                rows_of("SELECT * FROM regstat.most_tags()").await,
                rows_of(grouped).await,
                "most_tags()"
            );
            let first = "ORDER BY tags DESC, registry, repository, digest LIMIT 3";
            assert_eq!(
                rows_of(&format!("SELECT * FROM regstat.most_tags(3) {first}")).await,
                rows_of(&format!("SELECT * FROM ({grouped}) g {first}")).await,
                "most_tags(3)"
            );
        });
    }
}

/// A tag's own pulls before its newest push were pulls of the content it pointed at then:
/// they do not make the tag's current content "pulled".
#[tokio::test]
async fn a_moved_tag_is_not_pulled_until_pulled_again() {
    let db = TestDb::new().await;
    let ctx = context(&db);
    let push = |id: &str, second: u8, digest: &str| {
        let (media_type, refs) = references(digest);
        let mut e = event(
            "push",
            "PUT",
            AGENTS[0],
            second,
            json!({"mediaType": media_type, "size": 500, "digest": digest, "repository": "lab/a", "tag": "v1", "references": refs}),
        );
        e["id"] = json!(id);
        e
    };
    let pull = |id: &str, second: u8, digest: &str| {
        let mut e = event(
            "pull",
            "GET",
            AGENTS[0],
            second,
            json!({"mediaType": IMAGE, "size": 500, "digest": digest, "repository": "lab/a", "tag": "v1"}),
        );
        e["id"] = json!(id);
        e
    };
    let last_pulled = || async {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT last_pulled_at FROM regstat.live_tags WHERE repository = 'lab/a' AND tag = 'v1'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let events = [
        push("p1", 1, MANIFESTS[0]),
        pull("g1", 2, MANIFESTS[0]),
        push("p2", 3, MANIFESTS[1]),
    ];
    handle_batch(&ctx, &messages(&events)).await.unwrap();
    assert_eq!(
        last_pulled().await,
        None,
        "v1 now names content nobody pulled"
    );

    handle_batch(&ctx, &messages(&[pull("g2", 4, MANIFESTS[1])]))
        .await
        .unwrap();
    assert_eq!(
        last_pulled().await.unwrap().to_rfc3339(),
        "2026-11-22T10:00:04+00:00"
    );
}

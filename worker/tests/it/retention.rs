//! The partitioned ledger: idempotency across partitions, the migration from the unpartitioned
//! ledger, partitions created ahead, retention, and the dedupe window (docs/MODEL.md,
//! "Ledger retention").

use crate::helpers::{TestDb, context};
use chrono::{DateTime, Duration, Utc};
use regstat_shared::config::{LedgerSettings, PartitionInterval, Settings};
use regstat_store::keys::event_key;
use regstat_store::retention;
use regstat_worker::handler::{Incoming, Outcome, handle_batch};

/// The migration that partitions the ledger.
const PARTITIONED: i64 = 20261122000006;

fn settings(interval: PartitionInterval, retention_days: u32) -> LedgerSettings {
    LedgerSettings {
        partition_interval: interval,
        partitions_ahead: 3,
        retention_days,
        dedupe_days: 30,
    }
}

/// A blob event of `action` (`push`, or a `pull` by GET) in repository `r`.
fn blob_event(id: &str, action: &str, digest: &str) -> String {
    let method = if action == "push" { "PUT" } else { "GET" };
    serde_json::json!({
        "id": id,
        "timestamp": "2025-02-10T10:00:00Z",
        "action": action,
        "target": {
            "mediaType": "application/octet-stream",
            "repository": "r",
            "digest": digest,
            "size": 100
        },
        "request": {"host": "registry.example", "method": method, "useragent": "docker/24"},
        "actor": {},
        "source": {}
    })
    .to_string()
}

fn received(body: &str, at: DateTime<Utc>) -> Incoming {
    Incoming {
        body: body.as_bytes().to_vec(),
        correlation_id: Some("request-1".into()),
        received_at: Some(at),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The partition holding the ledger row of `id`.
async fn partition_of(db: &TestDb, id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT tableoid::regclass::text FROM regstat.events WHERE id = regstat.event_key($1)",
    )
    .bind(id)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn partition_names(db: &TestDb) -> Vec<String> {
    let mut conn = db.pool.acquire().await.unwrap();
    retention::partitions(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect()
}

/// The keys `regstat.event_ids` holds, as the sorted ids (of `ids`) they are the keys of.
async fn event_ids(db: &TestDb) -> Vec<String> {
    let keys: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT id FROM regstat.event_ids")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let candidates = [
        "future", "now", "old", "new-pull", "pull-1", "push-1", "old-pull",
    ];
    let mut ids: Vec<String> = keys
        .iter()
        .map(|key| {
            candidates
                .iter()
                .find(|id| event_key(id) == *key)
                .map_or_else(|| key.to_string(), |id| (*id).to_owned())
        })
        .collect();
    ids.sort();
    ids
}

/// The derived state of blobs, as JSON rows (compared whole).
async fn blobs(db: &TestDb) -> Vec<serde_json::Value> {
    sqlx::query_scalar(
        "SELECT to_jsonb(b) FROM regstat.blobs b ORDER BY registry, repository, digest",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn pull_count(db: &TestDb, digest: &str) -> i64 {
    sqlx::query_scalar("SELECT pull_count FROM regstat.blobs WHERE digest = $1")
        .bind(digest)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_event_id_is_recorded_once_whichever_partitions_its_copies_fall_in() {
    let db = TestDb::new().await;
    let ctx = context(&db);
    let now = Utc::now();
    let push = blob_event("push-1", "push", "sha256:b1");
    let pull = blob_event("pull-1", "pull", "sha256:b1");

    // The same id twice in one batch, received a month apart (two POSTs of the registry).
    let (_, summary) = handle_batch(
        &ctx,
        &[
            received(&push, now),
            received(&pull, now),
            received(&pull, now + Duration::days(40)),
        ],
    )
    .await
    .unwrap();
    assert_eq!((summary.stored, summary.duplicates), (2, 1));

    // Redeliveries, in this month's partition, next month's, and the default partition.
    for later in [
        now,
        now + Duration::days(40),
        now + Duration::days(3650),
        now - Duration::days(3650),
    ] {
        let (outcomes, summary) = handle_batch(&ctx, &[received(&pull, later)]).await.unwrap();
        assert_eq!(outcomes, vec![Outcome::Ack]);
        assert_eq!((summary.stored, summary.duplicates), (0, 1), "at {later}");
    }
    assert_eq!(
        db.ledger_counts().await,
        vec![("pull-1".to_owned(), 1), ("push-1".to_owned(), 1)]
    );
    assert_eq!(event_ids(&db).await.len(), 2);
    assert_eq!(
        pull_count(&db, "sha256:b1").await,
        1,
        "the pull counted once"
    );
    let expected = format!("regstat.events_p{}", now.format("%Y%m01"));
    assert_eq!(partition_of(&db, "pull-1").await, vec![expected]);
}

#[tokio::test]
async fn the_migration_on_an_empty_ledger_creates_this_month_and_three_ahead() {
    let db = TestDb::new().await;
    let month = retention::slot_start(PartitionInterval::Month, Utc::now());
    let mut expected = Vec::new();
    let mut start = month;
    for _ in 0..4 {
        expected.push(format!("events_p{}", start.format("%Y%m%d")));
        start = retention::next_slot(PartitionInterval::Month, start);
    }
    assert_eq!(partition_names(&db).await, expected);
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        retention::default_rows(&mut conn).await.unwrap(),
        retention::DefaultRows::default()
    );
    assert_eq!(
        retention::dedupe_horizon(&db.pool).await.unwrap(),
        None,
        "nothing forgotten yet"
    );
}

#[tokio::test]
async fn the_migration_keeps_every_row_of_a_populated_ledger() {
    let db = TestDb::new().await;
    // Back to the schema before partitioning: everything lives in schema `regstat`.
    sqlx::raw_sql("DROP SCHEMA regstat CASCADE; DELETE FROM _sqlx_migrations;")
        .execute(&db.pool)
        .await
        .unwrap();
    let before = regstat_store::db::MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|v| *v < PARTITIONED)
        .max()
        .unwrap();
    regstat_store::db::MIGRATOR
        .run_to(before, &db.pool)
        .await
        .unwrap();

    // Rows with the old schema: old, current, and in the future (outside every partition the
    // migration creates), with every column set or NULL.
    sqlx::raw_sql(
        "INSERT INTO regstat.events (id, occurred_at, action, media_type, digest, size,
             repository, tag, from_repository, actor, request_id, request_addr, request_host,
             request_method, request_useragent, source_addr, source_instance_id, received_at,
             correlation_id, stored_at, raw)
         VALUES
         ('old', '2024-05-31 23:59:59.999999+00', 'push', 'application/octet-stream',
          'sha256:o', 7, 'lib/a', NULL, NULL, 'alice', 'req-o', '10.0.0.1', 'reg:5000', 'PUT',
          'docker/24', 'src:5000', 'inst-1', '2024-05-31 23:59:59.999999+00', 'corr-o',
          '2024-06-01 00:00:01+00', '{\"id\": \"old\", \"action\": \"push\"}'),
         ('now', now(), 'pull', NULL, 'sha256:n', NULL, 'lib/a', 'v1', NULL, NULL, NULL, NULL,
          NULL, 'GET', NULL, NULL, NULL, now(), NULL, now(), '{\"id\": \"now\"}'),
         ('future', '2031-01-01 00:00:00+00', 'mount', NULL, 'sha256:f', 1, 'lib/b', NULL,
          'lib/a', NULL, NULL, NULL, NULL, 'POST', NULL, NULL, NULL, '2031-01-01 00:00:00+00',
          NULL, now(), '{\"nested\": {\"a\": [1, 2]}}');
         INSERT INTO regstat.blobs (registry, repository, digest, size, pull_count)
         VALUES ('reg', 'lib/a', 'sha256:o', 7, 3);",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    // Migration 22 changes the type of the three id columns: compared apart, below.
    let rows = "SELECT to_jsonb(e) - 'id' - 'request_id' - 'source_instance_id' - 'raw'
                FROM regstat.events e ORDER BY id";
    let ledger: Vec<serde_json::Value> =
        sqlx::query_scalar(rows).fetch_all(&db.pool).await.unwrap();
    let state = blobs(&db).await;

    regstat_store::db::migrate(&db.pool).await.unwrap();

    // Migration 17 renamed `raw` to `raw_rest` (rows written before it keep the whole event
    // there). Migration 21 added target_url_prefix, NULL for rows written before it, and
    // migration 22 made the ids uuids, keeping a value a uuid column would not give back in
    // raw_rest (both checked apart): every other column is unchanged.
    let renamed = "SELECT to_jsonb(e) - 'raw_rest' - 'target_url_prefix' - 'id' - 'request_id'
                          - 'source_instance_id'
                   FROM regstat.events e ORDER BY regstat.event_id(e)";
    let prefixes: i64 = sqlx::query_scalar("SELECT count(target_url_prefix) FROM regstat.events")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        prefixes, 0,
        "rows from before migration 21 keep their URL in raw_rest"
    );
    let after: Vec<serde_json::Value> = sqlx::query_scalar(renamed)
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(after, ledger, "every row, every other column, unchanged");
    // The events as sent: the ids (none a UUID here) as event_id() and event_json() give them
    // back, with every column's value.
    let events: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT regstat.event_id(e), regstat.event_json(e) FROM regstat.events e ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let expected = [
        (
            "future",
            serde_json::json!({"id": "future", "nested": {"a": [1, 2]}, "action": "mount",
                "target": {"digest": "sha256:f", "size": 1, "repository": "lib/b",
                           "fromRepository": "lib/a"},
                "request": {"method": "POST"}}),
        ),
        (
            "now",
            serde_json::json!({"id": "now", "action": "pull",
                "target": {"digest": "sha256:n", "repository": "lib/a", "tag": "v1"},
                "request": {"method": "GET"}}),
        ),
        (
            "old",
            serde_json::json!({"id": "old", "action": "push",
                "target": {"mediaType": "application/octet-stream", "digest": "sha256:o",
                           "size": 7, "repository": "lib/a"},
                "actor": {"name": "alice"},
                "request": {"id": "req-o", "addr": "10.0.0.1", "host": "reg:5000",
                            "method": "PUT", "useragent": "docker/24"},
                "source": {"addr": "src:5000", "instanceID": "inst-1"}}),
        ),
    ];
    assert_eq!(
        events,
        expected.map(|(id, event)| (id.to_owned(), event)).to_vec()
    );
    assert_eq!(blobs(&db).await, state);
    let ids: Vec<String> = event_ids(&db).await;
    assert_eq!(ids, ["future", "now", "old"]);
    assert_eq!(
        partition_of(&db, "old").await,
        vec!["regstat.events_p20240501".to_owned()]
    );
    assert_eq!(
        partition_of(&db, "future").await,
        vec!["regstat.events_default".to_owned()]
    );
    let names = partition_names(&db).await;
    assert_eq!(names.first().map(String::as_str), Some("events_p20240501"));
    assert!(names.len() >= 30, "one per month since May 2024: {names:?}");
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM regstat.report_history")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(history, 3, "the view reading the ledger was recreated");

    // Ids recorded before the migration are still known.
    let redelivered = r#"{"id":"now","action":"pull","target":{"repository":"lib/a"}}"#;
    let (_, summary) = handle_batch(&context(&db), &[received(redelivered, Utc::now())])
        .await
        .unwrap();
    assert_eq!((summary.stored, summary.duplicates), (0, 1));
}

#[tokio::test]
async fn maintain_creates_partitions_ahead_and_moves_rows_out_of_the_default_partition() {
    let db = TestDb::new().await;
    let ctx = context(&db);
    // The 11th of a month beyond the migration's partitions, at noon: the event lands in the
    // default partition.
    let month = retention::slot_start(PartitionInterval::Month, Utc::now() + Duration::days(400));
    let day = month + Duration::days(10);
    let later = day + Duration::hours(12);
    let body = blob_event("early-1", "push", "sha256:e");
    handle_batch(&ctx, &[received(&body, later)]).await.unwrap();
    assert_eq!(
        partition_of(&db, "early-1").await,
        vec!["regstat.events_default".to_owned()]
    );

    let daily = settings(PartitionInterval::Day, 0);
    let done = retention::maintain_at(&db.pool, &daily, later)
        .await
        .unwrap()
        .expect("nobody else maintains");
    let ranges = |m: &retention::Maintenance| {
        m.created
            .iter()
            .map(|p| (p.start, p.end))
            .collect::<Vec<_>>()
    };
    let days = |from: i64, to: i64| (day + Duration::days(from), day + Duration::days(to));
    assert_eq!(
        ranges(&done),
        (0..4).map(|n| days(n, n + 1)).collect::<Vec<_>>(),
        "the day of `now` and three ahead"
    );
    assert_eq!(done.default, retention::DefaultRows::default());
    assert_eq!(
        partition_of(&db, "early-1").await,
        vec![format!("regstat.events_p{}", later.format("%Y%m%d"))],
        "moved into its new partition"
    );

    // Idempotent; and a redelivery into the new partition is a duplicate.
    let again = retention::maintain_at(&db.pool, &daily, later)
        .await
        .unwrap()
        .unwrap();
    assert!(again.created.is_empty());
    let (_, summary) = handle_batch(&ctx, &[received(&body, later + Duration::hours(1))])
        .await
        .unwrap();
    assert_eq!((summary.stored, summary.duplicates), (0, 1));
    assert_eq!(db.ledger_counts().await, vec![("early-1".to_owned(), 1)]);

    // Switched to monthly: the parts of this month the daily partitions leave, then three
    // whole months.
    let monthly = settings(PartitionInterval::Month, 0);
    let done = retention::maintain_at(&db.pool, &monthly, later)
        .await
        .unwrap()
        .unwrap();
    let next = |m| retention::next_slot(PartitionInterval::Month, m);
    let (m1, m2, m3, m4) = (
        next(month),
        next(next(month)),
        next(next(next(month))),
        next(next(next(next(month)))),
    );
    assert_eq!(
        ranges(&done),
        vec![
            (month, day),
            (days(4, 4).0, m1),
            (m1, m2),
            (m2, m3),
            (m3, m4)
        ]
    );
}

#[tokio::test]
async fn the_default_partition_is_reported() {
    let db = TestDb::new().await;
    let far = Utc::now() + Duration::days(3650);
    let body = blob_event("skewed-1", "push", "sha256:s");
    handle_batch(&context(&db), &[received(&body, far)])
        .await
        .unwrap();
    let done = retention::maintain(&db.pool, &settings(PartitionInterval::Month, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.default.rows, 1);
    assert_eq!(
        done.default.oldest.map(|t| t.timestamp_micros()),
        Some(far.timestamp_micros())
    );
}

/// Old events in partitions of their own (January to March 2025), and their derived state.
async fn old_ledger(db: &TestDb) -> DateTime<Utc> {
    let created = retention::create_partitions(
        &db.pool,
        PartitionInterval::Month,
        at("2025-01-01T00:00:00Z"),
        at("2025-04-01T00:00:00Z"),
    )
    .await
    .unwrap();
    assert_eq!(created.len(), 3);
    let old = at("2025-02-10T10:00:05Z");
    let messages = [
        received(&blob_event("old-push", "push", "sha256:b1"), old),
        received(&blob_event("old-pull", "pull", "sha256:b1"), old),
    ];
    let (_, summary) = handle_batch(&context(db), &messages).await.unwrap();
    assert_eq!(summary.stored, 2);
    assert_eq!(
        partition_of(db, "old-pull").await,
        vec!["regstat.events_p20250201".to_owned()]
    );
    old
}

#[tokio::test]
async fn prune_drops_whole_old_partitions_and_keeps_the_derived_state() {
    let db = TestDb::new().await;
    old_ledger(&db).await;
    let recent = blob_event("new-pull", "pull", "sha256:b1");
    handle_batch(&context(&db), &[received(&recent, Utc::now())])
        .await
        .unwrap();
    let state = blobs(&db).await;
    assert_eq!(pull_count(&db, "sha256:b1").await, 2);
    let partitions_before = partition_names(&db).await;
    let ledger = settings(PartitionInterval::Month, 0);

    let now = Utc::now();
    let dry = retention::prune_at(&db.pool, &ledger, 90, true, now)
        .await
        .unwrap();
    let listed: Vec<_> = dry.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        listed,
        ["events_p20250101", "events_p20250201", "events_p20250301"]
    );
    assert_eq!(
        dry.ids, 2,
        "the old ids, past 30 days and past every kept row"
    );
    assert!(dry.to_string().contains("dry run: nothing changed"));
    assert_eq!(partition_names(&db).await, partitions_before);
    assert_eq!(db.ledger_len().await, 3);
    assert_eq!(event_ids(&db).await.len(), 3);

    let done = retention::prune_at(&db.pool, &ledger, 90, false, now)
        .await
        .unwrap();
    assert_eq!(done.partitions, dry.partitions);
    assert_eq!(done.ids, 2);
    assert_eq!(db.ledger_counts().await, vec![("new-pull".to_owned(), 1)]);
    let ids: Vec<String> = event_ids(&db).await;
    assert_eq!(ids, ["new-pull"]);
    assert_eq!(blobs(&db).await, state, "derived state untouched");
    assert_eq!(
        partition_names(&db).await,
        partitions_before[3..],
        "only the 2025 partitions went"
    );
    // Ids are forgotten before the dedupe window and the oldest remaining partition, whichever
    // is earlier.
    let this_month = retention::slot_start(PartitionInterval::Month, now);
    let horizon = (now - Duration::days(30)).min(this_month);
    assert_eq!(done.ids_before, horizon);
    assert_eq!(
        retention::dedupe_horizon(&db.pool)
            .await
            .unwrap()
            .map(|t| t.timestamp_micros()),
        Some(horizon.timestamp_micros())
    );

    // Nothing more to do.
    let again = retention::prune_at(&db.pool, &ledger, 90, false, now)
        .await
        .unwrap();
    assert!(again.partitions.is_empty());
    assert_eq!((again.default_rows, again.ids), (0, 0));
}

/// Forgetting ids reads `event_ids` a range of pages at a time (it has no index on
/// `received_at`): every old id goes, on every page, and no newer one.
#[tokio::test]
async fn old_ids_are_forgotten_on_every_page_and_newer_ones_kept() {
    let db = TestDb::new().await;
    // 100,000 ids (about 640 pages, three ranges of 256), every tenth one recent.
    sqlx::query(
        "INSERT INTO regstat.event_ids (id, received_at)
         SELECT gen_random_uuid(),
                CASE WHEN g % 10 = 0 THEN now() ELSE '2025-01-01 00:00:00+00' END
         FROM generate_series(1, 100000) AS g",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let pages: i64 = sqlx::query_scalar(
        "SELECT pg_relation_size('regstat.event_ids') / current_setting('block_size')::bigint",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(pages > 512, "{pages} pages: more than two ranges");

    let ledger = settings(PartitionInterval::Month, 0);
    let done = retention::prune_at(&db.pool, &ledger, 90, false, Utc::now())
        .await
        .unwrap();
    assert_eq!(done.ids, 90_000);
    let (left, old): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE received_at < now() - interval '1 day')
         FROM regstat.event_ids",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((left, old), (10_000, 0));
}

#[tokio::test]
async fn ids_outlive_the_dedupe_window_while_their_ledger_rows_remain() {
    let db = TestDb::new().await;
    old_ledger(&db).await;
    // The ledger is kept forever: the 2025 ids stay although they are past dedupe_days.
    let done = retention::maintain(&db.pool, &settings(PartitionInterval::Month, 0))
        .await
        .unwrap()
        .unwrap();
    assert!(done.pruned.partitions.is_empty());
    assert_eq!(done.pruned.ids, 0);
    assert_eq!(event_ids(&db).await.len(), 2);
    assert!(done.pruned.ids_before <= at("2025-01-01T00:00:00Z"));
    let (_, summary) = handle_batch(
        &context(&db),
        &[received(
            &blob_event("old-pull", "pull", "sha256:b1"),
            at("2025-02-10T10:00:05Z"),
        )],
    )
    .await
    .unwrap();
    assert_eq!((summary.stored, summary.duplicates), (0, 1));

    // Automatic retention applies the same rules as `regstat ledger prune`.
    let done = retention::maintain(&db.pool, &settings(PartitionInterval::Month, 90))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.pruned.partitions.len(), 3);
    assert_eq!(done.pruned.ids, 2);
    assert_eq!(db.ledger_len().await, 0);
}

#[tokio::test]
async fn an_event_older_than_the_dedupe_horizon_is_refused_rather_than_counted_twice() {
    let db = TestDb::new().await;
    let old = old_ledger(&db).await;
    let ledger = settings(PartitionInterval::Month, 0);
    retention::prune_at(&db.pool, &ledger, 90, false, Utc::now())
        .await
        .unwrap();
    let state = blobs(&db).await;
    assert_eq!(pull_count(&db, "sha256:b1").await, 1);

    // A dead letter of that pull replayed now: it carries its original received_at, before
    // the horizon, and its id is forgotten. It may have been recorded (it was): refused.
    let replayed = received(&blob_event("old-pull", "pull", "sha256:b1"), old);
    let never_seen = received(&blob_event("old-other", "pull", "sha256:b1"), old);
    let (outcomes, summary) = handle_batch(&context(&db), &[replayed, never_seen])
        .await
        .unwrap();
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Outcome::DeadLetter(r) if r.kind == "database_rejected" && r.contains("dedupe horizon")),
            "{outcome:?}"
        );
    }
    assert_eq!(summary.dead_lettered, 2);
    assert_eq!(blobs(&db).await, state, "nothing counted twice");
    let mut tx = db.pool.begin().await.unwrap();
    let row = regstat_worker::handler::decode(&received(
        &blob_event("old-pull", "pull", "sha256:b1"),
        old,
    ))
    .unwrap()
    .0;
    let error = regstat_store::ledger::insert(&mut tx, &[row])
        .await
        .unwrap_err();
    let code = error.as_database_error().and_then(|e| e.code());
    assert_eq!(
        code.as_deref(),
        Some(regstat_store::ledger::BEYOND_DEDUPE_HORIZON)
    );
    assert!(
        !regstat_store::db::is_transient(&error),
        "not retried forever"
    );
    drop(tx);
    assert_eq!(db.ledger_len().await, 0);

    // Why the horizon exists: the same event with a fresh received_at (as if re-sent to the
    // receiver) cannot be recognised any more, and is counted again.
    let resent = received(&blob_event("old-pull", "pull", "sha256:b1"), Utc::now());
    let (_, summary) = handle_batch(&context(&db), &[resent]).await.unwrap();
    assert_eq!(summary.stored, 1);
    assert_eq!(
        pull_count(&db, "sha256:b1").await,
        2,
        "counted a second time"
    );
}

/// A partition an operator attached by hand may have a name that is not a plain identifier
/// (capitals, a space, a quote): retention still drops it, as it names tables quoted.
#[tokio::test]
async fn prune_drops_a_hand_attached_partition_whatever_its_name() {
    let db = TestDb::new().await;
    let name = "Old \"Events\" 2024";
    let quoted = "regstat.\"Old \"\"Events\"\" 2024\"";
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {quoted} (LIKE regstat.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER TABLE regstat.events ATTACH PARTITION {quoted}
             FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00')"
    )))
    .execute(&db.pool)
    .await
    .unwrap();
    assert!(partition_names(&db).await.contains(&name.to_owned()));

    let report = retention::prune_at(
        &db.pool,
        &settings(PartitionInterval::Month, 0),
        90,
        false,
        Utc::now(),
    )
    .await
    .unwrap();
    let dropped: Vec<_> = report.partitions.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(dropped, [name]);
    assert!(!partition_names(&db).await.contains(&name.to_owned()));
}

#[tokio::test]
async fn a_prune_needs_at_least_one_day() {
    let db = TestDb::new().await;
    let ledger = settings(PartitionInterval::Month, 0);
    let error = retention::prune(&db.pool, &ledger, 0, true)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("at least 1 day"), "{error}");
}

#[test]
fn ledger_settings_default_and_validate() {
    let defaults = Settings::load_with_env(None, Vec::new()).unwrap();
    assert_eq!(defaults.ledger.partition_interval, PartitionInterval::Month);
    assert_eq!(defaults.ledger.partitions_ahead, 3);
    assert_eq!(defaults.ledger.retention_days, 0, "kept forever by default");
    assert_eq!(defaults.ledger.dedupe_days, 30);

    let env = |key: &str, value: &str| vec![(key.to_owned(), value.to_owned())];
    let daily =
        Settings::load_with_env(None, env("REGSTAT__LEDGER__PARTITION_INTERVAL", "day")).unwrap();
    assert_eq!(daily.ledger.partition_interval, PartitionInterval::Day);
    let kept = Settings::load_with_env(None, env("REGSTAT__LEDGER__RETENTION_DAYS", "90")).unwrap();
    assert_eq!(kept.ledger.retention_days, 90);
    for (key, value, named) in [
        (
            "REGSTAT__LEDGER__PARTITION_INTERVAL",
            "week",
            "partition_interval",
        ),
        (
            "REGSTAT__LEDGER__PARTITIONS_AHEAD",
            "0",
            "ledger.partitions_ahead",
        ),
        ("REGSTAT__LEDGER__DEDUPE_DAYS", "0", "ledger.dedupe_days"),
    ] {
        let error = Settings::load_with_env(None, env(key, value)).unwrap_err();
        assert!(error.to_string().contains(named), "{key}={value}: {error}");
    }
}

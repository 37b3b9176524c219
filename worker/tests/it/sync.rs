//! `regstat sync` (`regstat_cli::sync`) against a real registry (Debian's
//! `docker-registry`, fed by skopeo, sending no notifications) and a real PostgreSQL: backfill,
//! repeatability, what the registry no longer has (deletes, `garbage-collect`, repositories).
//! `dry_run` checks `--dry-run`, `events` order-independence with events, `pagination` paginated
//! listings and failing registries (with a small fake registry).

mod dry_run;
mod events;
mod pagination;

use crate::helpers::TestDb;
use crate::support::{
    Layout, OCI_INDEX, OCI_MANIFEST, OciLayout, RegistryOptions, Scratch, build_oci_layout,
    callbacks, require_tools, run, settings, skopeo,
};
use regstat_cli::sync::{MovedTag, Progress, SyncOptions, SyncReport, sync};
use regstat_registry::RegistryClient;

/// The registry's canonical name in regstat.
const REGISTRY: &str = "sync";

/// A real registry (no notifications), images to push, and a database.
struct Setup {
    scratch: Scratch,
    host: String,
    layout: Layout,
    db: TestDb,
    client: RegistryClient,
}

impl Setup {
    async fn new() -> Self {
        require_tools();
        let mut scratch = Scratch::new();
        let host = scratch.start_registry(&RegistryOptions::default()).await;
        let layout = build_oci_layout(&scratch).await;
        let client =
            RegistryClient::new(&settings(REGISTRY, &format!("http://{host}")), &callbacks())
                .expect("registry client");
        Self {
            scratch,
            host,
            layout,
            db: TestDb::new().await,
            client,
        }
    }

    /// `skopeo copy` of `source` (an `oci:` reference) to `<host>/<destination>`.
    async fn push(&self, source: &str, destination: &str, all: bool) {
        let target = format!("docker://{}/{destination}", self.host);
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if all {
            args.push("--all");
        }
        args.extend([source, target.as_str()]);
        skopeo(&args, &self.scratch).await;
    }

    /// `sync/app`: v1 → amd64, v2 and latest → arm64; `sync/multi`: latest → the index of
    /// both.
    async fn push_standard(&self) {
        self.push(&self.layout.reference("amd64"), "sync/app:v1", false)
            .await;
        self.push(&self.layout.reference("arm64"), "sync/app:v2", false)
            .await;
        self.push(&self.layout.reference("arm64"), "sync/app:latest", false)
            .await;
        self.push(&self.layout.reference("multi"), "sync/multi:latest", true)
            .await;
    }

    /// `skopeo delete` (a DELETE by digest: the manifest and every tag naming it).
    async fn delete(&self, reference: &str) {
        let target = format!("docker://{}/{reference}", self.host);
        skopeo(&["delete", "--tls-verify=false", &target], &self.scratch).await;
    }

    async fn sync_with(&self, options: SyncOptions) -> SyncReport {
        let report = sync(&self.db.pool, &self.client, &options)
            .await
            .expect("sync");
        assert!(report.is_complete(), "{}", report.differences_text());
        report
    }

    async fn sync(&self) -> SyncReport {
        self.sync_with(quiet()).await
    }

    /// A single-platform image of its own in a new layout, as an `oci:` reference.
    async fn extra_image(&self, name: &str) -> (String, String) {
        let mut layout = OciLayout::new(&self.scratch, name);
        let image = layout.image("riscv64", None).await;
        layout.tag("x", &image.manifest);
        (layout.reference("x"), image.manifest.digest)
    }
}

fn quiet() -> SyncOptions {
    SyncOptions {
        progress: Progress::Hidden,
        ..SyncOptions::default()
    }
}

/// (repository, tag, digest, pushed at is NULL, pull count, last pulled is NULL).
type LiveTag = (String, String, String, bool, i64, bool);

async fn live_tags(db: &TestDb) -> Vec<LiveTag> {
    sqlx::query_as(
        "SELECT repository, tag, digest, pushed_at IS NULL, pull_count, last_pulled_at IS NULL
         FROM regstat.live_tags WHERE registry = $1 ORDER BY repository, tag",
    )
    .bind(REGISTRY)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

fn tag(repository: &str, tag: &str, digest: &str) -> LiveTag {
    (repository.into(), tag.into(), digest.into(), true, 0, true)
}

/// (repository, digest, media type, fetch status, platform `os/arch[/variant]`).
async fn live_manifests(db: &TestDb) -> Vec<(String, String, Option<String>, String, String)> {
    sqlx::query_as(
        "SELECT m.repository, m.digest, m.media_type, m.fetch_status,
                concat_ws('/', p.os, p.architecture, p.variant)
         FROM regstat.live_manifests m
         JOIN regstat.manifest_platforms p USING (registry, repository, digest)
         WHERE m.registry = $1 ORDER BY 1, 2",
    )
    .bind(REGISTRY)
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// Every row of every state table, as JSON text, sorted; without `seen_at` unless `exact`.
async fn snapshot(db: &TestDb, exact: bool) -> Vec<String> {
    let strip: Vec<&str> = if exact { vec![] } else { vec!["seen_at"] };
    let mut rows = Vec::new();
    for table in [
        "tags",
        "manifests",
        "manifest_references",
        "digest_deletions",
        "deletions",
        "blobs",
        "pull_metrics",
        "repository_stats",
        "actors",
        "events",
    ] {
        let query = format!(
            "SELECT '{table} ' || (to_jsonb(x) - $1::text[])::text FROM regstat.{table} x ORDER BY 1"
        );
        let table_rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(query))
            .bind(&strip)
            .fetch_all(&db.pool)
            .await
            .unwrap();
        rows.extend(table_rows);
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_records_what_the_registry_holds_and_repeats_without_change() {
    let setup = Setup::new().await;
    setup.push_standard().await;
    let (amd64, arm64, index) = (
        setup.layout.amd64.manifest.digest.as_str(),
        setup.layout.arm64.manifest.digest.as_str(),
        setup.layout.index.digest.as_str(),
    );

    let report = setup.sync().await;
    assert_eq!(report.repositories, 2);
    assert_eq!(report.tags_seen, 4);
    assert_eq!(report.tags_new, 4);
    assert_eq!(
        report.manifests_seen, 5,
        "2 in sync/app, the index and its 2 children"
    );
    assert_eq!(
        report.manifests_fetched, 3,
        "each digest fetched once: {report:?}"
    );
    assert_eq!(
        report.manifests_cached, 2,
        "the children, known from sync/app"
    );
    assert_eq!((report.tags_gone, report.manifests_gone), (0, 0));

    assert_eq!(
        live_tags(&setup.db).await,
        [
            tag("sync/app", "latest", arm64),
            tag("sync/app", "v1", amd64),
            tag("sync/app", "v2", arm64),
            tag("sync/multi", "latest", index),
        ],
        "observed, never pushed nor pulled"
    );
    let fetched = |repository: &str, digest: &str, media_type: &str, platform: &str| {
        (
            repository.to_owned(),
            digest.to_owned(),
            Some(media_type.to_owned()),
            "fetched".to_owned(),
            platform.to_owned(),
        )
    };
    let mut expected = vec![
        fetched("sync/app", amd64, OCI_MANIFEST, "linux/amd64"),
        fetched("sync/app", arm64, OCI_MANIFEST, "linux/arm64/v8"),
        fetched("sync/multi", amd64, OCI_MANIFEST, "linux/amd64"),
        fetched("sync/multi", arm64, OCI_MANIFEST, "linux/arm64/v8"),
        fetched("sync/multi", index, OCI_INDEX, ""),
    ];
    expected.sort();
    assert_eq!(live_manifests(&setup.db).await, expected);
    let children: Vec<(String, String)> = sqlx::query_as(
        "SELECT digest, concat_ws('/', os, architecture, variant) FROM regstat.manifest_references
         WHERE repository = 'sync/multi' AND manifest_digest = $1 AND role = 'manifest'
         ORDER BY position",
    )
    .bind(index)
    .fetch_all(&setup.db.pool)
    .await
    .unwrap();
    assert_eq!(
        children,
        [
            (amd64.to_owned(), "linux/amd64".to_owned()),
            (arm64.to_owned(), "linux/arm64/v8".to_owned())
        ]
    );
    // Nothing invented: no pushes, pulls, blobs or ledger rows.
    let invented: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM regstat.repository_stats)
              + (SELECT count(*) FROM regstat.pull_metrics)
              + (SELECT count(*) FROM regstat.actors)
              + (SELECT count(*) FROM regstat.blobs)
              + (SELECT count(*) FROM regstat.events)
              + (SELECT count(*) FROM regstat.manifests
                 WHERE last_pushed_at IS NOT NULL OR pull_count > 0)",
    )
    .fetch_one(&setup.db.pool)
    .await
    .unwrap();
    assert_eq!(invented, 0);
    // The report views read observed content like pushed content.
    let images: Vec<(String, String, Vec<String>, bool)> = sqlx::query_as(
        "SELECT repository, tag, platforms, pushed_at IS NULL FROM regstat.report_images
         WHERE registry = $1 ORDER BY 1, 2",
    )
    .bind(REGISTRY)
    .fetch_all(&setup.db.pool)
    .await
    .unwrap();
    assert_eq!(images.len(), 4);
    assert_eq!(images[3].2, ["linux/amd64", "linux/arm64/v8"], "{images:?}");

    // Again: the same state (only the observation times move), nothing fetched.
    let before = snapshot(&setup.db, false).await;
    let again = setup.sync().await;
    assert!(again.differences.is_empty(), "{}", again.differences_text());
    assert_eq!((again.tags_seen, again.manifests_seen), (4, 5));
    assert_eq!((again.manifests_fetched, again.manifests_cached), (0, 5));
    assert_eq!(snapshot(&setup.db, false).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_registry_no_longer_has_is_gone() {
    let setup = Setup::new().await;
    setup.push_standard().await;
    let amd64 = setup.layout.amd64.manifest.digest.clone();
    let arm64 = setup.layout.arm64.manifest.digest.clone();
    let (rc1, rc1_digest) = setup.extra_image("rc1").await;
    setup.push(&rc1, "sync/app:rc", false).await;
    setup.sync().await;
    let multi_before = rows_of(&setup.db, "sync/multi").await;

    // A delete regstat hears nothing of: v1's manifest, and so v1, leave sync/app.
    setup.delete(&format!("sync/app@{amd64}")).await;
    // Overwriting rc leaves rc1 untagged, but it still exists: a HEAD says so.
    let (rc2, rc2_digest) = setup.extra_image("rc2").await;
    setup.push(&rc2, "sync/app:rc", false).await;
    let dry = setup
        .sync_with(SyncOptions {
            dry_run: true,
            ..quiet()
        })
        .await;
    assert_eq!(
        dry.differences[0].gone_manifests,
        std::slice::from_ref(&amd64)
    );
    // garbage-collect removes it, without an event.
    let config = setup.scratch.dir.join("config.yml");
    run(
        "/usr/bin/docker-registry",
        &[
            "garbage-collect",
            "--delete-untagged",
            config.to_str().unwrap(),
        ],
    )
    .await;

    let report = setup.sync().await;
    assert_eq!(report.differences.len(), 1, "{}", report.differences_text());
    let app = &report.differences[0];
    assert_eq!(app.repository, "sync/app");
    assert_eq!(app.gone_tags, ["v1"]);
    assert_eq!(
        app.moved_tags,
        [MovedTag {
            tag: "rc".into(),
            from: rc1_digest.clone(),
            to: rc2_digest.clone()
        }]
    );
    assert_eq!(app.gone_manifests, sorted([&amd64, &rc1_digest]));
    assert_eq!((report.tags_gone, report.manifests_gone), (1, 2));
    assert_eq!(
        live_tags(&setup.db).await,
        [
            tag("sync/app", "latest", &arm64),
            tag("sync/app", "rc", &rc2_digest),
            tag("sync/app", "v2", &arm64),
            tag("sync/multi", "latest", &setup.layout.index.digest),
        ]
    );
    let tombstones: (i64, bool) = sqlx::query_as(
        "SELECT count(*), bool_and(deleted_at >= $2) FROM regstat.digest_deletions
         WHERE registry = 'sync' AND repository = 'sync/app' AND digest = ANY($1)",
    )
    .bind([&amd64, &rc1_digest])
    .bind(report.started_at)
    .fetch_one(&setup.db.pool)
    .await
    .unwrap();
    assert_eq!(tombstones, (2, true), "tombstones at the sync's time");
    assert_eq!(
        live_digests(&setup.db, "sync/app").await,
        sorted([&arm64, &rc2_digest])
    );
    // The other repository, where amd64 is an index's child, is untouched; there is no
    // delete event, so no audit row.
    assert_eq!(rows_of(&setup.db, "sync/multi").await, multi_before);
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM regstat.deletions")
        .fetch_one(&setup.db.pool)
        .await
        .unwrap();
    assert_eq!(audit, 0);

    // A repository that leaves the catalog takes everything live in it along.
    std::fs::remove_dir_all(
        setup
            .scratch
            .dir
            .join("data/docker/registry/v2/repositories/sync/multi"),
    )
    .unwrap();
    let report = setup.sync().await;
    assert_eq!(report.repositories_gone, 1, "{}", report.summary());
    assert_eq!((report.tags_gone, report.manifests_gone), (1, 3));
    assert!(report.differences[0].repository_gone);
    assert!(live_digests(&setup.db, "sync/multi").await.is_empty());
    assert_eq!(live_tags(&setup.db).await.len(), 3);
}

fn sorted<const N: usize>(digests: [&String; N]) -> Vec<String> {
    let mut digests: Vec<String> = digests.into_iter().cloned().collect();
    digests.sort();
    digests
}

async fn live_digests(db: &TestDb, repository: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT digest FROM regstat.live_manifests WHERE repository = $1 ORDER BY 1")
        .bind(repository)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// The snapshot's rows of one repository (observation times aside).
async fn rows_of(db: &TestDb, repository: &str) -> Vec<String> {
    let needle = format!("\"repository\": \"{repository}\"");
    snapshot(db, false)
        .await
        .into_iter()
        .filter(|row| row.contains(&needle))
        .collect()
}

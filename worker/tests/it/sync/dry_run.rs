//! `--dry-run`: the differences a sync would make, and nothing written.

use super::{Setup, SyncReport, quiet, snapshot};
use regstat_cli::sync::SyncOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_the_differences_and_writes_nothing() {
    let setup = Setup::new().await;
    setup.push_standard().await;
    setup.sync().await;
    let amd64 = setup.layout.amd64.manifest.digest.clone();
    let arm64 = setup.layout.arm64.manifest.digest.clone();
    setup.delete(&format!("sync/app@{amd64}")).await;
    let (extra, extra_digest) = setup.extra_image("extra").await;
    setup.push(&extra, "sync/app:latest", false).await;
    setup.push(&extra, "sync/new:v1", false).await;
    let before = snapshot(&setup.db, true).await;

    let dry = setup
        .sync_with(SyncOptions {
            dry_run: true,
            ..quiet()
        })
        .await;
    assert_eq!(
        snapshot(&setup.db, true).await,
        before,
        "a dry run writes nothing"
    );
    assert!(dry.dry_run);
    assert_eq!(
        dry.manifests_fetched, 2,
        "extra, in sync/app and in sync/new"
    );
    let text = dry.differences_text();
    for line in [
        "- tag sync/app:v1".to_owned(),
        format!("~ tag sync/app:latest {arm64} -> {extra_digest}"),
        format!("- manifest sync/app@{amd64}"),
        format!("+ manifest sync/app@{extra_digest}"),
        format!("  fetch sync/app@{extra_digest}"),
        format!("+ tag sync/new:v1 -> {extra_digest}"),
        format!("  fetch sync/new@{extra_digest}"),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(dry.to_string().ends_with("nothing changed\n"), "{dry}");

    // The real sync makes exactly those changes. (It fetches extra once: the other
    // repository has it from the client's cache or the database, not "fetched".)
    let real = setup.sync().await;
    let without_fetches = |report: &SyncReport| {
        let mut differences = report.differences.clone();
        differences.iter_mut().for_each(|d| d.fetched.clear());
        differences
    };
    assert_eq!(without_fetches(&real), without_fetches(&dry));
    assert_eq!(real.manifests_fetched, 1);
    assert_eq!(
        (
            real.tags_new,
            real.tags_moved,
            real.tags_gone,
            real.manifests_gone
        ),
        (1, 1, 1, 1)
    );
    let again = setup
        .sync_with(SyncOptions {
            dry_run: true,
            ..quiet()
        })
        .await;
    assert!(again.differences.is_empty(), "{}", again.differences_text());
}

//! The registry model (`docs/MODEL.md`) against a real registry: skopeo pushes, copies,
//! re-tags, pulls and deletes on Debian's `docker-registry` (distribution 2.8), which notifies
//! the receiver through the recording proxy; the worker calls the registry back for manifest
//! contents. The derived state must agree with what the registry itself serves (its tag lists
//! and `Docker-Content-Digest`s), and every counter with the rules applied to the ledger.
//!
//! What skopeo 1.9.3 does, measured, and what it means for the counters (every GET of a
//! manifest by a client other than regstat is a pull, MODEL.md):
//! - a registry-to-registry `skopeo copy` GETs the source manifest by tag: copying
//!   `e2e/app:v1` (to `e2e/copy:v1`, and to `e2e/app:v2` to re-tag it) pulls `e2e/app:v1` twice;
//! - `skopeo delete` GETs the manifest (for its digest) before the DELETE: one pull of
//!   `e2e/copy@<digest>`;
//! - `skopeo copy docker://... oci:...` GETs the manifest once (for an index: the index by tag,
//!   then the chosen child by digest).
//!
//! Layout: `drive` runs the scenario (the pipeline, the images, skopeo's steps) and reads what
//! regstat saw; `clients` are skopeo and the registry API as the test calls them; `state` reads
//! the ledger and the derived tables; `checks` holds the assertions (`manifests`, `pulls`).

mod checks;
mod clients;
mod console;
mod containerd;
mod drive;
mod state;

use crate::support::require_tools;
use checks::Check;
use drive::{Images, Pipeline, Seen, drive};

/// The registry's canonical name in regstat's settings.
const REGISTRY: &str = "e2e";
/// The user skopeo pushes and pulls as (htpasswd variant).
const USER: &str = "alice";
const USER_PASSWORD: &str = "alice-pw-e2e";
/// The user regstat calls back as (htpasswd variant): must never show in `actors`.
const READER: &str = "regstat-reader";
const READER_PASSWORD: &str = "reader-pw-e2e";
/// The test's own requests to the registry API.
const CHECKER_AGENT: &str = "regstat-e2e-check/1";
/// The four manifest types: without them OCI content answers 404.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";
const REPOSITORIES: [&str; 4] = ["e2e/app", "e2e/copy", "e2e/docker", "e2e/multi"];

/// What varies between the tests.
struct Variant {
    name: &'static str,
    /// htpasswd auth on the registry; skopeo and regstat authenticate (as different users).
    htpasswd: bool,
    /// `notifications.events.includereferences`.
    include_references: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_with_references() {
    scenario(Variant {
        name: "anonymous",
        htpasswd: false,
        include_references: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_htpasswd_auth() {
    scenario(Variant {
        name: "htpasswd",
        htpasswd: true,
        include_references: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_references() {
    scenario(Variant {
        name: "no-references",
        htpasswd: false,
        include_references: false,
    })
    .await;
}

/// `tags.pull_count`: GETs naming the tag (the module comment says what skopeo GETs).
const TAG_PULLS: [(&str, &str, i64); 5] = [
    ("e2e/app", "v1", 2),  // the two registry-to-registry copies read it by tag
    ("e2e/app", "v2", 1),  // pulled by tag
    ("e2e/copy", "v1", 0), // the delete read it by digest
    ("e2e/docker", "v1", 1),
    ("e2e/multi", "v1", 1), // the index, by tag
];

/// `repository_stats`: (repository, pushes (manifest PUTs), pulls (image-manifest GETs)); the
/// same numbers per actor in `actors`.
const REPOSITORY_COUNTS: [(&str, i64, i64); 4] = [
    ("e2e/app", 3, 4),  // A v1, A v2, A2 v1; the two copies, v2, A2 by digest
    ("e2e/copy", 1, 1), // the copy; skopeo delete's GET
    ("e2e/docker", 1, 1),
    ("e2e/multi", 3, 1), // two children and the index; the arm64 child (not the index)
];

async fn scenario(variant: Variant) {
    require_tools();
    let pipeline = Pipeline::start(&variant).await;
    let images = Images::build(&pipeline.scratch).await;
    let run = drive(&pipeline, &images, &variant).await;
    let seen = Seen::read(&pipeline).await;
    let check = Check {
        variant: &variant,
        images: &images,
        run: &run,
        seen: &seen,
        host: &pipeline.host,
    };
    check.registry_and_tags();
    check.manifests();
    check.deletes();
    check.pulls();
    check.counters_against_the_ledger();
    check.mount();
    check.clients();
    check.callbacks();
    images_report(&pipeline, &run).await;
    pipeline.assert_broker_empty().await;
    check.summary();
    pipeline.stop().await;
}

/// `regstat report images` against what the registry serves: one row per tag it lists, on
/// the digest it serves, with the platforms of what was pushed.
async fn images_report(pipeline: &Pipeline, run: &drive::Run) {
    let mut connection = pipeline.db.pool.acquire().await.unwrap();
    let rows = regstat_store::reports::run(
        &mut connection,
        &regstat_store::reports::Report::Images,
        &regstat_store::reports::Filters::default(),
    )
    .await
    .unwrap();
    let listed: Vec<(String, String)> = run
        .tags
        .iter()
        .flat_map(|(r, tags)| tags.iter().map(move |t| (r.clone(), t.clone())))
        .collect();
    let reported: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["repository"].as_str().unwrap().to_owned(),
                r["tag"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reported, listed,
        "report images against the registry's tag lists"
    );
    for row in &rows {
        let (repository, tag) = (
            row["repository"].as_str().unwrap(),
            row["tag"].as_str().unwrap(),
        );
        assert_eq!(row["registry"], REGISTRY);
        assert_eq!(row["digest"].as_str().unwrap(), run.served(repository, tag));
        assert!(row["size"].as_u64().is_some_and(|s| s > 0), "{row}");
        let expected = match repository {
            "e2e/multi" => serde_json::json!(["linux/amd64", "linux/arm64/v8"]),
            "e2e/docker" => serde_json::json!(["linux/arm64"]),
            _ => serde_json::json!(["linux/amd64"]),
        };
        assert_eq!(row["platforms"], expected, "{repository}:{tag}");
    }
}

//! Pulls as containerd makes them (docs/MODEL.md, "Pulls and version checks"), end to end: a
//! private containerd daemon (own root, state and socket under the scratch directory, the CRI
//! plugin off) pulls with `ctr` from the real registry, which notifies the real pipeline;
//! skopeo pulls beside it. The reports must say what the clients did.

use super::clients::Skopeo;
use super::drive::{Images, Pipeline, settle};
use super::{REGISTRY, Variant};
use crate::support::{INSTALL, Scratch, require_tools, run, try_run};
use regstat_store::reports::{Filters, Report, run as report};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A containerd daemon of the test's own, stopped and removed on drop.
struct Containerd {
    dir: PathBuf,
    socket: String,
    daemon: Child,
}

impl Containerd {
    async fn start(scratch: &Scratch) -> Self {
        for tool in ["containerd", "ctr"] {
            assert!(
                Command::new(tool).arg("--version").output().is_ok(),
                "{tool} is missing: {INSTALL}"
            );
        }
        let dir = scratch.dir.join("containerd");
        std::fs::create_dir_all(&dir).expect("containerd's directory");
        let socket = dir.join("containerd.sock").display().to_string();
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).expect("containerd's config");
        let log = std::fs::File::create(dir.join("containerd.log")).expect("containerd's log");
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("containerd's log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start containerd ({e}): {INSTALL}"));
        let mut this = Self {
            dir,
            socket,
            daemon,
        };
        let mut answer = Err(String::new());
        for _ in 0..200 {
            if let Ok(Some(status)) = this.daemon.try_wait() {
                panic!("containerd exited ({status}):\n{}", this.log());
            }
            answer = try_run("ctr", &["--address", &this.socket, "version"]).await;
            if answer.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Err(error) = answer {
            this.stop();
            panic!("containerd did not answer: {error}");
        }
        this
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    async fn ctr(&self, args: &[&str]) {
        let mut all = vec!["--address", self.socket.as_str()];
        all.extend(args);
        run("ctr", &all).await;
    }

    /// `ctr images pull` over plain http, unpacked with the native snapshotter (works in any
    /// filesystem).
    async fn pull(&self, reference: &str, platform: Option<&str>) {
        let mut args = vec!["images", "pull", "--plain-http", "--snapshotter", "native"];
        if let Some(platform) = platform {
            args.extend(["--platform", platform]);
        }
        args.push(reference);
        self.ctr(&args).await;
    }

    /// Removes an image and its content, so the next pull fetches it again.
    async fn remove(&self, reference: &str) {
        self.ctr(&["images", "rm", "--sync", reference]).await;
    }

    fn stop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn rows(pipeline: &Pipeline, which: Report) -> Vec<Value> {
    let mut connection = pipeline.db.pool.acquire().await.expect("a connection");
    report(&mut connection, &which, &Filters::default())
        .await
        .expect("the report")
}

/// `[repository, tag, field]` of each row.
fn per_tag(rows: &[Value], field: &str) -> Vec<Value> {
    rows.iter()
        .map(|r| json!([r["repository"], r["tag"], r[field]]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_and_skopeo_pulls_are_counted_as_the_clients_made_them() {
    require_tools();
    let pipeline = Pipeline::start(&Variant {
        name: "containerd",
        htpasswd: false,
        include_references: true,
    })
    .await;
    let images = Images::build(&pipeline.scratch).await;
    let sk = Skopeo {
        scratch: &pipeline.scratch,
        host: pipeline.host.clone(),
        creds: None,
    };
    sk.push(&images.layout.reference("a"), "ctr/app:v1", &[])
        .await;
    sk.push(&images.layout.reference("m"), "ctr/multi:v1", &["--all"])
        .await;
    let host = &pipeline.host;
    let app = format!("{host}/ctr/app:v1");
    let multi = format!("{host}/ctr/multi:v1");
    let arm64 = Some("linux/arm64/v8");

    let ctr = Containerd::start(&pipeline.scratch).await;
    // A pull of each tag: HEAD by tag, GET by digest (the index, then its arm64 child).
    ctr.pull(&app, None).await;
    ctr.pull(&multi, arm64).await;
    // A pull by digest: HEAD and GET by digest, no tag.
    ctr.remove(&app).await;
    ctr.pull(
        &format!("{host}/ctr/app@{}", images.a.manifest.digest),
        None,
    )
    .await;
    // Both again with the images present: a HEAD by tag each, nothing fetched.
    ctr.pull(&app, None).await;
    ctr.pull(&multi, arm64).await;
    // skopeo beside it: a GET by tag each (for the index, then the arm64/v8 child).
    sk.pull("ctr/app:v1", &[]).await;
    sk.pull(
        "ctr/multi:v1",
        &["--override-arch", "arm64", "--override-variant", "v8"],
    )
    .await;
    settle(&pipeline).await;

    let days = 1;
    let top = rows(&pipeline, Report::TopPulled { days, limit: 10 }).await;
    assert_eq!(
        per_tag(&top, "pulls"),
        [json!(["ctr/app", "v1", 2]), json!(["ctr/multi", "v1", 2])],
        "one ctr pull and one skopeo pull of each tag"
    );
    let images_report = rows(&pipeline, Report::Images).await;
    assert_eq!(
        per_tag(&images_report, "pull_count"),
        [json!(["ctr/app", "v1", 2]), json!(["ctr/multi", "v1", 2])]
    );
    assert_eq!(
        per_tag(&images_report, "version_checks"),
        [json!(["ctr/app", "v1", 1]), json!(["ctr/multi", "v1", 1])],
        "the second ctr pull of each found the image present"
    );
    let platforms = rows(&pipeline, Report::Architectures { days }).await;
    let by_platform: Vec<Value> = platforms
        .iter()
        .map(|r| json!([r["architecture"], r["variant"], r["pulls"]]))
        .collect();
    assert_eq!(
        by_platform,
        [json!(["amd64", null, 3]), json!(["arm64", "v8", 2])],
        "amd64: ctr by tag, ctr by digest, skopeo; arm64/v8: ctr and skopeo"
    );
    assert!(platforms.iter().all(|r| r["registry"] == REGISTRY));

    pipeline.assert_broker_empty().await;
    drop(ctr);
    pipeline.stop().await;
}

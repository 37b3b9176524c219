//! What the benchmark sends: registry events shaped like the ones distribution 2.8.2 sends
//! (`../shared/fixtures`), with fresh ids.
//!
//! Two sources:
//! - [`FixtureShapes`]: the six kinds of event a push, pull, mount and delete produce, copied
//!   field for field from the captured fixtures, cycled with fresh ids (scenarios 1 and 2, which
//!   measure the receiver only);
//! - [`Workload`]: a registry of ~1,000 repositories and ~10,000 tags whose images really
//!   exist (their manifests and configs are served by [`crate::fake_registry`], so the worker's
//!   callbacks succeed and verify), producing a realistic mix: mostly blob and manifest pulls,
//!   some pushes of new builds, mounts and deletes (scenarios 3 and 4); optionally some of its
//!   images are multi-arch indexes, pushed child by child and pulled the way containerd pulls
//!   them (scenario 6).

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

/// The host the simulated registry's clients use (`request.host`); the worker maps it to the
/// stand-in registry by an alias.
pub const REGISTRY_HOST: &str = "registry.bench:5000";

/// Media type of an OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const BLOB: &str = "application/octet-stream";

/// The events of a real push, pull, mount and delete (fixtures `01-push-oci-by-tag`,
/// `03-pull-by-tag`, `r6-no-references`, `12-delete-manifest-by-digest`), with `{ID}` where
/// the id goes.
const FIXTURE_SHAPES: [&str; 6] = [
    r#"{"id":"{ID}","timestamp":"2026-11-22T10:17:28.770756613Z","action":"push","target":{"mediaType":"application/octet-stream","size":65761,"digest":"sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57","length":65761,"repository":"lab/app","url":"http://127.0.0.1:5000/v2/lab/app/blobs/sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57"},"request":{"id":"eddd2b16-e0fa-471a-9403-616386d781cd","addr":"127.0.0.1:46460","host":"127.0.0.1:5000","method":"PUT","useragent":"skopeo/1.9.3"},"actor":{},"source":{"addr":"vm:5000","instanceID":"294a6061-28fa-4ff1-b96d-ff4f92d01aa9"}}"#,
    r#"{"id":"{ID}","timestamp":"2026-11-22T10:17:28.862277048Z","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":668,"digest":"sha256:97d9a279464f7bcbf0e1f8e6b57afc0399d130b4428d176fbdac20b0db1e7f4e","length":668,"repository":"lab/app","url":"http://127.0.0.1:5000/v2/lab/app/manifests/sha256:97d9a279464f7bcbf0e1f8e6b57afc0399d130b4428d176fbdac20b0db1e7f4e","tag":"v1","references":[{"mediaType":"application/vnd.oci.image.config.v1+json","size":582,"digest":"sha256:e73d18845b61b33d508fd63ea8c51c656dea53b6be5e8d91964f14829547238b"},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":65761,"digest":"sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57"},{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":65759,"digest":"sha256:d7211f5f30ed0ead4bc533bf7a53f2d045564f883b71ae8b47afbb3e5f18ddd2"}]},"request":{"id":"c6c13e9c-b692-40ea-a14b-1d4d560f2c20","addr":"127.0.0.1:46558","host":"127.0.0.1:5000","method":"PUT","useragent":"skopeo/1.9.3"},"actor":{},"source":{"addr":"vm:5000","instanceID":"294a6061-28fa-4ff1-b96d-ff4f92d01aa9"}}"#,
    r#"{"id":"{ID}","timestamp":"2026-11-22T10:17:40.120456789Z","action":"pull","target":{"mediaType":"application/octet-stream","size":65761,"digest":"sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57","length":65761,"repository":"lab/app","url":"http://127.0.0.1:5000/v2/lab/app/blobs/sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57"},"request":{"id":"0f0a2c4e-8f5e-4a34-a7b1-2a9c6f0e4d11","addr":"127.0.0.1:46612","host":"127.0.0.1:5000","method":"GET","useragent":"skopeo/1.9.3"},"actor":{},"source":{"addr":"vm:5000","instanceID":"294a6061-28fa-4ff1-b96d-ff4f92d01aa9"}}"#,
    r#"{"id":"{ID}","timestamp":"2026-11-22T10:17:40.101234567Z","action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":668,"digest":"sha256:97d9a279464f7bcbf0e1f8e6b57afc0399d130b4428d176fbdac20b0db1e7f4e","length":668,"repository":"lab/app","url":"http://127.0.0.1:5000/v2/lab/app/manifests/sha256:97d9a279464f7bcbf0e1f8e6b57afc0399d130b4428d176fbdac20b0db1e7f4e","tag":"v1"},"request":{"id":"5d0e6a8b-3c3f-4d2a-9c1e-7b6f5a4d3c2b","addr":"127.0.0.1:46600","host":"127.0.0.1:5000","method":"GET","useragent":"skopeo/1.9.3"},"actor":{},"source":{"addr":"vm:5000","instanceID":"294a6061-28fa-4ff1-b96d-ff4f92d01aa9"}}"#,
    r#"{"id":"{ID}","timestamp":"2026-11-22T10:19:00.080472418Z","action":"mount","target":{"mediaType":"application/octet-stream","size":16583,"digest":"sha256:a334ed78ff8690d888b62540278a6359ed52e6c21e19b9c0441dee04b7150cfa","length":16583,"repository":"lab/res-norefs","fromRepository":"lab/res","url":"http://127.0.0.1:5000/v2/lab/res-norefs/blobs/sha256:a334ed78ff8690d888b62540278a6359ed52e6c21e19b9c0441dee04b7150cfa"},"request":{"id":"4cfe7390-cd79-415b-b5f8-fefc3b180d56","addr":"127.0.0.1:40132","host":"127.0.0.1:5000","method":"POST","useragent":"skopeo/1.9.3"},"actor":{},"source":{"addr":"vm:5000","instanceID":"44917917-4346-471b-9cdc-4dea44e9a26d"}}"#,
    r#"{"id":"{ID}","timestamp":"2026-11-22T10:17:52.016159523Z","action":"delete","target":{"digest":"sha256:97d9a279464f7bcbf0e1f8e6b57afc0399d130b4428d176fbdac20b0db1e7f4e","repository":"lab/app"},"request":{"id":"beefb32c-1408-4fc8-8e56-eaffb0063416","addr":"127.0.0.1:37044","host":"127.0.0.1:5000","method":"DELETE","useragent":"skopeo/1.9.3"},"actor":{},"source":{"addr":"vm:5000","instanceID":"294a6061-28fa-4ff1-b96d-ff4f92d01aa9"}}"#,
];

/// Wraps one event as the registry does: `{"events":[event]}`.
pub fn envelope(event: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(event.len() + 12);
    body.extend_from_slice(b"{\"events\":[");
    body.extend_from_slice(event.as_bytes());
    body.extend_from_slice(b"]}");
    body
}

/// The fixture events in turn, each with a fresh id.
#[derive(Debug, Default)]
pub struct FixtureShapes {
    next: usize,
}

impl FixtureShapes {
    /// The next event (JSON).
    pub fn next_event(&mut self) -> String {
        let shape = FIXTURE_SHAPES[self.next % FIXTURE_SHAPES.len()];
        self.next += 1;
        shape.replace("{ID}", &uuid::Uuid::new_v4().to_string())
    }
}

/// A document the fake registry serves: a manifest or a config blob.
#[derive(Debug, Clone)]
pub struct Document {
    /// Its media type (Content-Type).
    pub media_type: &'static str,
    /// Its bytes (their sha256 is the digest it is served under).
    pub bytes: Arc<[u8]>,
}

/// Every manifest and config blob of the benchmark's registry, by digest.
pub type Documents = Arc<RwLock<HashMap<String, Document>>>;

/// One tagged image.
#[derive(Debug, Clone)]
struct Image {
    /// What the tag points at: the image manifest, or the index of a multi-arch image.
    manifest: Descriptor,
    /// One per platform; a single-arch image has one, whose manifest is `manifest`.
    platforms: Vec<Platform>,
}

impl Image {
    fn is_index(&self) -> bool {
        self.manifest.media_type == OCI_INDEX
    }
}

/// One platform's image manifest and what it references.
#[derive(Debug, Clone)]
struct Platform {
    architecture: &'static str,
    manifest: Descriptor,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Debug, Clone)]
struct Descriptor {
    media_type: &'static str,
    digest: String,
    size: u64,
}

#[derive(Debug)]
struct Repository {
    name: String,
    tags: Vec<(String, Image)>,
    /// Manifests that lost their tag to a newer push (what a cleanup would delete).
    superseded: Vec<String>,
}

/// The kinds of event in the realistic mix, with their share in percent.
const MIX: [(Kind, u32); 7] = [
    (Kind::PullBlob, 52),
    (Kind::PullManifest, 22),
    (Kind::HeadManifest, 8),
    (Kind::PushBlob, 8),
    (Kind::PushManifest, 4),
    (Kind::Mount, 4),
    (Kind::Delete, 2),
];

/// What one generated event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET` of a layer or config blob.
    PullBlob,
    /// `GET` of an image manifest by tag (counts as an image pull).
    PullManifest,
    /// `HEAD` of an image manifest by tag (docker's "is it up to date?"; not a pull).
    HeadManifest,
    /// A layer upload.
    PushBlob,
    /// A new build pushed to a tag (needs a registry callback).
    PushManifest,
    /// A layer mounted from another repository.
    Mount,
    /// A superseded manifest deleted by digest.
    Delete,
}

/// A seeded registry and the events that happen in it.
#[derive(Debug)]
pub struct Workload {
    rng: fastrand::Rng,
    host: String,
    repositories: Vec<Repository>,
    documents: Documents,
    builds: u64,
    /// One repository in this many holds multi-arch images (0: none).
    multi_arch_every: usize,
    /// The rest of a push or pull already begun, sent before anything new.
    pending: VecDeque<(Kind, Value)>,
    /// The client of the push or pull in progress (address and user agent), so that all of its
    /// requests come from one client as they do from a real one.
    client: Option<(String, &'static str)>,
    /// Whether the last event returned continued a push or pull begun before it.
    follows: bool,
    /// The actor of the push or pull in progress.
    actor: Value,
}

impl Workload {
    /// A registry at `host` with `repositories` × `tags_per_repository` images; their
    /// documents go into `documents`.
    pub fn new(host: &str, repositories: usize, tags_per_repository: usize, seed: u64) -> Self {
        Self::with_multi_arch(host, repositories, tags_per_repository, seed, 0)
    }

    /// As [`Workload::new`], with one repository in `every` holding multi-arch images
    /// (amd64 and arm64 under an OCI index); 0 for none.
    pub fn with_multi_arch(
        host: &str,
        repositories: usize,
        tags_per_repository: usize,
        seed: u64,
        every: usize,
    ) -> Self {
        let mut workload = Self {
            rng: fastrand::Rng::with_seed(seed),
            host: host.to_owned(),
            repositories: Vec::with_capacity(repositories),
            documents: Documents::default(),
            builds: 0,
            multi_arch_every: every,
            pending: VecDeque::new(),
            client: None,
            follows: false,
            actor: Value::Null,
        };
        let teams = [
            "platform", "payments", "search", "data", "web", "ml", "infra", "mobile",
        ];
        for r in 0..repositories {
            let name = format!("{}/service-{r:04}", teams[r % teams.len()]);
            let tags = (0..tags_per_repository)
                .map(|t| {
                    let tag = if t == 0 {
                        "latest".to_owned()
                    } else {
                        format!("1.{}.{t}", r % 7)
                    };
                    (tag, workload.build(r))
                })
                .collect();
            workload.repositories.push(Repository {
                name,
                tags,
                superseded: Vec::new(),
            });
        }
        workload
    }

    /// The documents the fake registry must serve.
    pub fn documents(&self) -> Documents {
        self.documents.clone()
    }

    /// A new image for repository `r`: multi-arch (an index over amd64 and arm64) in one
    /// repository of every `multi_arch_every`, else a single platform.
    fn build(&mut self, r: usize) -> Image {
        if self.multi_arch_every > 0 && r.is_multiple_of(self.multi_arch_every) {
            let platforms = vec![self.platform("amd64"), self.platform("arm64")];
            let manifests: Vec<Value> = platforms
                .iter()
                .map(|p| {
                    let mut descriptor = descriptor_json(&p.manifest);
                    descriptor["platform"] = json!({"architecture": p.architecture, "os": "linux"});
                    descriptor
                })
                .collect();
            let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
            let manifest = self.register(OCI_INDEX, serde_json::to_vec(&index).unwrap_or_default());
            return Image {
                manifest,
                platforms,
            };
        }
        let architecture = if self.rng.u8(..10) < 7 {
            "amd64"
        } else {
            "arm64"
        };
        let platform = self.platform(architecture);
        Image {
            manifest: platform.manifest.clone(),
            platforms: vec![platform],
        }
    }

    /// A new image manifest for `architecture`: a shared base layer, a fresh application
    /// layer and a config naming the platform, all registered as documents.
    fn platform(&mut self, architecture: &'static str) -> Platform {
        self.builds += 1;
        let base = Descriptor {
            media_type: OCI_LAYER,
            digest: fake_digest(&format!("base-{architecture}-{}", self.rng.u8(..16))),
            size: 28_000_000 + u64::from(self.rng.u32(..1_000_000)),
        };
        let app = Descriptor {
            media_type: OCI_LAYER,
            digest: fake_digest(&format!("app-{}-{}", self.builds, self.rng.u64(..))),
            size: 1_000_000 + u64::from(self.rng.u32(..5_000_000)),
        };
        let config = json!({
            "architecture": architecture,
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [fake_digest(&base.digest), fake_digest(&app.digest)]},
        });
        let config = self.register(OCI_CONFIG, serde_json::to_vec(&config).unwrap_or_default());
        let layers = vec![base, app];
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor_json(&config),
            "layers": layers.iter().map(descriptor_json).collect::<Vec<_>>(),
        });
        let manifest = self.register(
            OCI_MANIFEST,
            serde_json::to_vec(&manifest).unwrap_or_default(),
        );
        Platform {
            architecture,
            manifest,
            config,
            layers,
        }
    }

    fn register(&mut self, media_type: &'static str, bytes: Vec<u8>) -> Descriptor {
        let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
        let descriptor = Descriptor {
            media_type,
            digest: digest.clone(),
            size: bytes.len() as u64,
        };
        if let Ok(mut documents) = self.documents.write() {
            documents.insert(
                digest,
                Document {
                    media_type,
                    bytes: bytes.into(),
                },
            );
        }
        descriptor
    }

    /// The next event of the realistic mix: its kind and JSON. A push or pull of a multi-arch
    /// image takes several events; they come in turn, before anything new.
    pub fn next_event(&mut self) -> (Kind, String) {
        if let Some((kind, event)) = self.pending.pop_front() {
            self.follows = true;
            return (kind, self.finish(event));
        }
        let mut roll = self.rng.u32(..100);
        let kind = MIX
            .iter()
            .find(|(_, share)| {
                let hit = roll < *share;
                roll = roll.saturating_sub(*share);
                hit
            })
            .map_or(Kind::PullBlob, |(kind, _)| *kind);
        (kind, self.event_of(kind))
    }

    /// Whether the event [`Workload::next_event`] returned last continues a push or pull begun
    /// before it (the same client, a moment later).
    pub fn follows(&self) -> bool {
        self.follows
    }

    /// An event of `kind` in a random repository (the first of its push or pull; the rest wait
    /// for [`Workload::next_event`]).
    pub fn event_of(&mut self, kind: Kind) -> String {
        self.follows = false;
        self.client = None;
        // Popular repositories get most of the traffic.
        let r = (self.rng.f64().powi(3) * self.repositories.len() as f64) as usize;
        let t = self.rng.usize(..self.repositories[r].tags.len());
        let name = self.repositories[r].name.clone();
        let mut events: VecDeque<(Kind, Value)> = match kind {
            Kind::PullBlob | Kind::PushBlob => {
                let image = &self.repositories[r].tags[t].1;
                let platform = &image.platforms[self.rng.usize(..image.platforms.len())];
                let blob = if self.rng.u8(..4) == 0 {
                    platform.config.clone()
                } else {
                    platform.layers[self.rng.usize(..platform.layers.len())].clone()
                };
                let (action, method) = if kind == Kind::PullBlob {
                    ("pull", "GET")
                } else {
                    ("push", "PUT")
                };
                [(kind, self.blob_event(action, method, &name, &blob, None))].into()
            }
            Kind::Mount => {
                let from = self.rng.usize(..self.repositories.len());
                let image = &self.repositories[from].tags[0].1;
                let layer = image.platforms[0].layers[0].clone();
                let from = self.repositories[from].name.clone();
                [(
                    kind,
                    self.blob_event("mount", "POST", &name, &layer, Some(&from)),
                )]
                .into()
            }
            Kind::PullManifest | Kind::HeadManifest => {
                let (tag, image) = self.repositories[r].tags[t].clone();
                if kind == Kind::HeadManifest {
                    let check = self.manifest_event(
                        "pull",
                        "HEAD",
                        &name,
                        &image.manifest,
                        Some(&tag),
                        None,
                    );
                    [(kind, check)].into()
                } else if image.is_index() {
                    // containerd: resolve the tag, fetch the index and its platform by digest.
                    let platform = image.platforms[self.rng.usize(..image.platforms.len())].clone();
                    [
                        (
                            Kind::HeadManifest,
                            self.manifest_event(
                                "pull",
                                "HEAD",
                                &name,
                                &image.manifest,
                                Some(&tag),
                                None,
                            ),
                        ),
                        (
                            kind,
                            self.manifest_event("pull", "GET", &name, &image.manifest, None, None),
                        ),
                        (
                            kind,
                            self.manifest_event(
                                "pull",
                                "GET",
                                &name,
                                &platform.manifest,
                                None,
                                None,
                            ),
                        ),
                    ]
                    .into()
                } else {
                    [(
                        kind,
                        self.manifest_event(
                            "pull",
                            "GET",
                            &name,
                            &image.manifest,
                            Some(&tag),
                            None,
                        ),
                    )]
                    .into()
                }
            }
            Kind::PushManifest => {
                let image = self.build(r);
                let (tag, old) = &mut self.repositories[r].tags[t];
                let tag = tag.clone();
                let old = std::mem::replace(old, image.clone());
                self.repositories[r].superseded.push(old.manifest.digest);
                // Each platform's manifest first (by digest), then what the tag points at.
                let mut events: VecDeque<(Kind, Value)> = VecDeque::new();
                if image.is_index() {
                    for platform in &image.platforms {
                        let references = std::iter::once(&platform.config)
                            .chain(&platform.layers)
                            .cloned()
                            .collect();
                        events.push_back((
                            kind,
                            self.manifest_event(
                                "push",
                                "PUT",
                                &name,
                                &platform.manifest,
                                None,
                                Some(references),
                            ),
                        ));
                    }
                    let references = image.platforms.iter().map(|p| p.manifest.clone()).collect();
                    events.push_back((
                        kind,
                        self.manifest_event(
                            "push",
                            "PUT",
                            &name,
                            &image.manifest,
                            Some(&tag),
                            Some(references),
                        ),
                    ));
                } else {
                    let platform = &image.platforms[0];
                    let references = std::iter::once(&platform.config)
                        .chain(&platform.layers)
                        .cloned()
                        .collect();
                    events.push_back((
                        kind,
                        self.manifest_event(
                            "push",
                            "PUT",
                            &name,
                            &image.manifest,
                            Some(&tag),
                            Some(references),
                        ),
                    ));
                }
                events
            }
            Kind::Delete => {
                let digest = self.repositories[r]
                    .superseded
                    .pop()
                    .unwrap_or_else(|| fake_digest(&format!("gone-{}", uuid::Uuid::new_v4())));
                let request = self.request("DELETE");
                [(
                    kind,
                    json!({
                        "target": {"digest": digest, "repository": name},
                        "action": "delete",
                        "request": request,
                    }),
                )]
                .into()
            }
        };
        let (_, first) = events.pop_front().unwrap_or((kind, json!({})));
        self.pending.extend(events);
        self.finish(first)
    }

    fn blob_event(
        &mut self,
        action: &str,
        method: &str,
        repository: &str,
        blob: &Descriptor,
        from: Option<&str>,
    ) -> Value {
        let mut target = json!({
            "mediaType": BLOB,
            "size": blob.size,
            "digest": blob.digest,
            "length": blob.size,
            "repository": repository,
            "url": format!("http://{}/v2/{repository}/blobs/{}", self.host, blob.digest),
        });
        if let (Some(from), Some(object)) = (from, target.as_object_mut()) {
            object.insert("fromRepository".into(), json!(from));
        }
        json!({"action": action, "target": target, "request": self.request(method)})
    }

    /// A manifest event; `references` only on a push (the registry lists them then).
    fn manifest_event(
        &mut self,
        action: &str,
        method: &str,
        repository: &str,
        manifest: &Descriptor,
        tag: Option<&str>,
        references: Option<Vec<Descriptor>>,
    ) -> Value {
        let mut target = json!({
            "mediaType": manifest.media_type,
            "size": manifest.size,
            "digest": manifest.digest,
            "length": manifest.size,
            "repository": repository,
            "url": format!("http://{}/v2/{repository}/manifests/{}", self.host, manifest.digest),
        });
        if let Some(object) = target.as_object_mut() {
            if let Some(tag) = tag {
                object.insert("tag".into(), json!(tag));
            }
            if let Some(references) = references {
                let references = references.iter().map(descriptor_json).collect();
                object.insert("references".into(), Value::Array(references));
            }
        }
        json!({"action": action, "target": target, "request": self.request(method)})
    }

    /// The request of the push or pull in progress: every request of one comes from the same
    /// client.
    fn request(&mut self, method: &str) -> Value {
        let (addr, agent) = match &self.client {
            Some(client) => client.clone(),
            None => {
                let client = self.new_client();
                self.client = Some(client.clone());
                client
            }
        };
        json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "addr": format!("{addr}:{}", self.rng.u16(1024..)),
            "host": self.host,
            "method": method,
            "useragent": agent,
        })
    }

    /// A client somewhere in the network, with the user agent of a common tool.
    fn new_client(&mut self) -> (String, &'static str) {
        let agent = match self.rng.u8(..10) {
            0..=5 => {
                "docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.1.0 os/linux arch/amd64"
            }
            6..=7 => "containerd/v1.7.22",
            8 => "skopeo/1.9.3",
            _ => "Trivy/0.56.2",
        };
        (
            format!("10.1.{}.{}", self.rng.u8(..), self.rng.u8(..)),
            agent,
        )
    }

    /// Adds what every event has: a fresh id, a timestamp, an actor and the source.
    fn finish(&mut self, mut event: Value) -> String {
        if let Some(object) = event.as_object_mut() {
            object.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
            object.insert(
                "timestamp".into(),
                json!(Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)),
            );
            if !self.follows {
                self.actor = match self.rng.u8(..4) {
                    0 => json!({"name": "ci-bot"}),
                    1 => json!({"name": format!("dev{}", self.rng.u8(..20))}),
                    _ => json!({}),
                };
            }
            object.insert("actor".into(), self.actor.clone());
            object.insert(
                "source".into(),
                json!({"addr": "registry-0:5000", "instanceID": "294a6061-28fa-4ff1-b96d-ff4f92d01aa9"}),
            );
        }
        event.to_string()
    }
}

fn descriptor_json(descriptor: &Descriptor) -> Value {
    json!({"mediaType": descriptor.media_type, "size": descriptor.size, "digest": descriptor.digest})
}

/// A well-formed digest of something the benchmark does not serve (layers are never fetched).
fn fake_digest(seed: &str) -> String {
    format!("sha256:{:x}", Sha256::digest(seed.as_bytes()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use regstat_shared::event::Event;

    #[test]
    fn every_generated_event_passes_the_receivers_checks() {
        for every in [0, 2] {
            let mut workload = Workload::with_multi_arch("127.0.0.1:5000", 20, 5, 7, every);
            for _ in 0..2_000 {
                let (_, event) = workload.next_event();
                if let Err(error) = Event::parse_checked(event.as_bytes()) {
                    panic!("{error}: {event}");
                }
            }
        }
        let mut shapes = FixtureShapes::default();
        for _ in 0..6 {
            let event = shapes.next_event();
            assert!(Event::parse_checked(event.as_bytes()).is_ok(), "{event}");
        }
    }

    #[test]
    fn pushed_manifests_are_served_under_their_digest() {
        let mut workload = Workload::new("127.0.0.1:5000", 3, 2, 1);
        let event = workload.event_of(Kind::PushManifest);
        let event: Value = serde_json::from_str(&event).unwrap();
        let digest = event["target"]["digest"].as_str().unwrap();
        let documents = workload.documents();
        let documents = documents.read().unwrap();
        let document = &documents[digest];
        assert_eq!(
            format!("sha256:{:x}", Sha256::digest(&document.bytes)),
            digest
        );
    }

    #[test]
    fn a_multi_arch_push_sends_each_platform_then_the_tagged_index() {
        let mut workload = Workload::with_multi_arch("127.0.0.1:5000", 3, 2, 1, 1);
        let first: Value = serde_json::from_str(&workload.event_of(Kind::PushManifest)).unwrap();
        assert!(!workload.follows());
        let events: Vec<Value> = (0..2)
            .map(|_| serde_json::from_str(&workload.next_event().1).unwrap())
            .collect();
        assert!(workload.follows());
        let index = &events[1]["target"];
        assert_eq!(index["mediaType"], OCI_INDEX);
        assert!(index["tag"].is_string());
        assert!(first["target"].get("tag").is_none());
        let children: Vec<&Value> = index["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["digest"])
            .collect();
        assert_eq!(
            children,
            [&first["target"]["digest"], &events[0]["target"]["digest"]]
        );
        // One client pushes all three.
        let addr = |e: &Value| {
            e["request"]["addr"]
                .as_str()
                .unwrap()
                .rsplit_once(':')
                .unwrap()
                .0
                .to_owned()
        };
        assert_eq!(addr(&first), addr(&events[1]));
        let documents = workload.documents();
        let documents = documents.read().unwrap();
        for event in std::iter::once(&first).chain(&events) {
            assert!(documents.contains_key(event["target"]["digest"].as_str().unwrap()));
        }
    }
}

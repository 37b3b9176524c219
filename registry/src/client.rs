//! One registry's client: manifests and config blobs by digest, authenticated, verified,
//! bounded and cached, and a manifest's content (manifest, then its config's platform) as
//! callbacks and `regstat sync` record it.

use crate::digest::{self, Algorithm};
use crate::error::{FetchError, read_limited};
use crate::manifest::{
    Descriptor, ImageConfig, MANIFEST_ACCEPT, Manifest, ManifestKind, Platform, parse_config,
    parse_manifest, schema1_signed_payload,
};
use crate::transport::Transport;
use moka::future::Cache;
use regstat_shared::config::{CallbackSettings, RegistrySettings};
use regstat_shared::content::{Content, FetchStatus, Reference, Role};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use std::sync::Arc;

/// A manifest as fetched (or found in the cache).
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The manifest's media type (as in [`Manifest::media_type`]).
    pub media_type: String,
    /// Its size in bytes: the body whose digest was verified.
    pub size: u64,
    /// What it says.
    pub manifest: Manifest,
    /// Whether it came from the in-memory cache rather than from this call's request.
    pub from_cache: bool,
}

/// A manifest's content as fetched: [`RegistryClient::content`].
#[derive(Debug, Clone)]
pub struct FetchedContent {
    /// The manifest's media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// What it contains, with the image's platform from its config.
    pub content: Content,
    /// Whether the manifest came from the in-memory cache.
    pub from_cache: bool,
}

/// What the manifest cache keeps per digest.
struct CachedManifest {
    manifest: Manifest,
    size: u64,
}

/// Which endpoint a fetch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Manifests,
    Blobs,
}

impl Endpoint {
    fn segment(self) -> &'static str {
        match self {
            Self::Manifests => "manifests",
            Self::Blobs => "blobs",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Manifests => "manifest",
            Self::Blobs => "blob",
        }
    }
}

/// A verified response body and its Content-Type.
struct Body {
    content_type: Option<String>,
    bytes: Vec<u8>,
}

/// Calls one configured registry. Cheap to share by reference; all state is inside.
pub struct RegistryClient {
    /// The authenticated request path.
    pub(crate) transport: Transport,
    /// Parsed manifests by digest (content-addressed: valid in every repository).
    manifests: Cache<String, Arc<CachedManifest>>,
    /// What image configs state, by config digest.
    configs: Cache<String, ImageConfig>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("name", &self.transport.name)
            .field("url", &self.transport.base.as_str())
            .field("auth", &self.transport.auth.describe())
            .field("insecure_skip_verify", &self.transport.insecure)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Builds the client for one configured registry: its URL, TLS settings and credentials
    /// (settings first, else its Docker config). Errors name the registry and the setting.
    pub fn new(settings: &RegistrySettings, callbacks: &CallbackSettings) -> anyhow::Result<Self> {
        let entries = u64::try_from(callbacks.manifest_cache_entries).unwrap_or(u64::MAX);
        Ok(Self {
            transport: Transport::new(settings, callbacks)?,
            manifests: Cache::builder().max_capacity(entries).build(),
            configs: Cache::builder().max_capacity(entries).build(),
        })
    }

    /// The registry's canonical name.
    pub fn name(&self) -> &str {
        &self.transport.name
    }

    /// The base URL callbacks go to.
    pub fn url(&self) -> &Url {
        &self.transport.base
    }

    /// What the manifest `digest` of `repository` contains: the manifest ([`Self::manifest`])
    /// and, for an image, the platform and creation time its config states
    /// ([`Self::config`]; a config the registry no longer has states none). The one fetch
    /// both callbacks and `regstat sync` make. A manifest the registry no longer has is
    /// [`FetchError::Gone`].
    pub async fn content(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<FetchedContent, FetchError> {
        let fetched = self.manifest(repository, digest).await?;
        let config = match (&fetched.manifest.kind, &fetched.manifest.config) {
            (ManifestKind::Image, Some(config)) => {
                match self.config(repository, &config.digest).await {
                    Ok(config) => config,
                    Err(FetchError::Gone) => ImageConfig::default(),
                    Err(error) => return Err(error),
                }
            }
            // Schema1 states its architecture in the manifest itself.
            _ => ImageConfig {
                platform: fetched.manifest.platform.clone(),
                created: None,
            },
        };
        let mut content = content_of(&fetched.manifest, config.platform);
        content.created = config.created;
        Ok(FetchedContent {
            content,
            media_type: fetched.media_type,
            size: fetched.size,
            from_cache: fetched.from_cache,
        })
    }

    /// The manifest `digest` of `repository`: `GET /v2/<repository>/manifests/<digest>`,
    /// verified against the digest and parsed. A digest is fetched at most once per process
    /// while it stays in the cache; concurrent calls for one digest share one request.
    pub async fn manifest(&self, repository: &str, digest: &str) -> Result<Fetched, FetchError> {
        let entry = self
            .manifests
            .entry_by_ref(digest)
            .or_try_insert_with(async {
                let body = self.fetch(Endpoint::Manifests, repository, digest).await?;
                let manifest = parse_manifest(body.content_type.as_deref(), &body.bytes)
                    .map_err(|e| self.invalid(repository, digest, &e))?;
                Ok::<_, FetchError>(Arc::new(CachedManifest {
                    manifest,
                    size: body.bytes.len() as u64,
                }))
            })
            .await
            .map_err(|e| FetchError::clone(&e))?;
        let from_cache = !entry.is_fresh();
        let cached = entry.into_value();
        Ok(Fetched {
            media_type: cached.manifest.media_type.clone(),
            size: cached.size,
            manifest: cached.manifest.clone(),
            from_cache,
        })
    }

    /// What an image config blob states (platform, creation time): `GET
    /// /v2/<repository>/blobs/<digest>` (following redirects to storage), verified and bounded
    /// like a manifest, and cached by digest.
    pub async fn config(&self, repository: &str, digest: &str) -> Result<ImageConfig, FetchError> {
        self.configs
            .try_get_with_by_ref(digest, async {
                let body = self.fetch(Endpoint::Blobs, repository, digest).await?;
                parse_config(&body.bytes).map_err(|e| self.invalid(repository, digest, &e))
            })
            .await
            .map_err(|e| FetchError::clone(&e))
    }

    /// The platform an image config blob states ([`Self::config`]'s). `None` for configs
    /// that name no platform (artifacts).
    pub async fn config_platform(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Platform>, FetchError> {
        self.config(repository, digest)
            .await
            .map(|config| config.platform)
    }

    fn invalid(&self, repository: &str, digest: &str, error: &dyn std::fmt::Display) -> FetchError {
        FetchError::Invalid(format!("{}/{repository}@{digest}: {error}", self.name()))
    }

    /// One authenticated GET, within the concurrency bound: the body, verified against
    /// `digest` and at most `max_bytes` long.
    async fn fetch(
        &self,
        endpoint: Endpoint,
        repository: &str,
        digest: &str,
    ) -> Result<Body, FetchError> {
        let algorithm = digest::fetchable(digest).map_err(FetchError::Invalid)?;
        digest::check_repository(repository).map_err(FetchError::Invalid)?;
        let url = self
            .transport
            .url(&format!("v2/{repository}/{}/{digest}", endpoint.segment()))?;
        let _permit = self.transport.permit().await?;
        let what = format!("{} {}/{repository}@{digest}", endpoint.what(), self.name());
        let scope = format!("repository:{repository}:pull");
        let accept = (endpoint == Endpoint::Manifests).then_some(MANIFEST_ACCEPT);
        let response = self
            .transport
            .send(Method::GET, url, accept, &scope, &what)
            .await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_limited(response, self.transport.max_bytes, &what).await?;
        verify(algorithm, endpoint, digest, &bytes, &what)?;
        Ok(Body {
            content_type,
            bytes,
        })
    }
}

/// Checks the body against its digest. A signed schema1 manifest's digest covers its payload
/// without the signatures.
fn verify(
    algorithm: Algorithm,
    endpoint: Endpoint,
    digest: &str,
    bytes: &[u8],
    what: &str,
) -> Result<(), FetchError> {
    if digest::matches(algorithm, digest, bytes) {
        return Ok(());
    }
    let payload_matches = endpoint == Endpoint::Manifests
        && schema1_signed_payload(bytes).is_some_and(|p| digest::matches(algorithm, digest, &p));
    if payload_matches {
        return Ok(());
    }
    Err(FetchError::Invalid(format!(
        "{what}: the content's digest is {}",
        digest::sha256(bytes)
    )))
}

/// The content of a fetched manifest, with the image's `platform` (from its config).
pub fn content_of(manifest: &Manifest, platform: Option<Platform>) -> Content {
    let mut content = Content::empty(FetchStatus::Fetched);
    let (os, architecture, variant) =
        platform.map_or((None, None, None), |p| (p.os, p.architecture, p.variant));
    content.os = os;
    content.architecture = architecture;
    content.variant = variant;
    content.artifact_type = manifest.artifact_type.clone();
    content.config_digest = manifest.config.as_ref().map(|c| c.digest.clone());
    content.subject_digest = manifest.subject.as_ref().map(|s| s.digest.clone());
    let reference = |role, position: usize, d: &Descriptor, p: Option<&Platform>| Reference {
        role,
        position: i32::try_from(position).unwrap_or(i32::MAX),
        digest: d.digest.clone(),
        media_type: d.media_type.clone(),
        size: d.size.and_then(|s| i64::try_from(s).ok()),
        os: p.and_then(|p| p.os.clone()),
        architecture: p.and_then(|p| p.architecture.clone()),
        variant: p.and_then(|p| p.variant.clone()),
    };
    if let Some(config) = &manifest.config {
        content
            .references
            .push(reference(Role::Config, 0, config, None));
    }
    for (i, layer) in manifest.layers.iter().enumerate() {
        content
            .references
            .push(reference(Role::Layer, i, layer, None));
    }
    for (i, (child, platform)) in manifest.children.iter().enumerate() {
        content
            .references
            .push(reference(Role::Manifest, i, child, platform.as_ref()));
    }
    if let Some(subject) = &manifest.subject {
        content
            .references
            .push(reference(Role::Subject, 0, subject, None));
    }
    content
}

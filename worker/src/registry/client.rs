//! One registry's HTTP client: manifests and config blobs by digest, authenticated, verified,
//! bounded and cached.

use super::auth::{Authenticator, Authorization};
use super::credentials::{self, Credentials};
use super::digest::{self, Algorithm};
use super::manifest::{
    MANIFEST_ACCEPT, Manifest, Platform, parse_config_platform, parse_manifest,
    schema1_signed_payload,
};
use anyhow::{Context, bail};
use moka::future::Cache;
use regstat_shared::config::{CallbackSettings, RegistrySettings};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Url};
use std::sync::Arc;
use tokio::sync::Semaphore;

mod listing;

/// Why a registry document could not be had. Messages name the registry, repository and
/// digest, never a credential or token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// 404: deleted meanwhile. Record it as gone; never retry.
    #[error("not found (deleted meanwhile)")]
    Gone,
    /// 5xx, 429, a timeout, a refused or reset connection: retry later.
    #[error("registry unavailable: {0}")]
    Transient(String),
    /// 401/403 after authenticating, or no usable credentials: dead-letter.
    #[error("access denied: {0}")]
    Denied(String),
    /// Digest mismatch, body too large, unparseable: dead-letter.
    #[error("invalid content: {0}")]
    Invalid(String),
}

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

/// Calls one configured registry back. Cheap to share by reference; all state is inside.
pub struct RegistryClient {
    /// Canonical name, for logs and messages.
    name: String,
    /// `scheme://host[:port]/`, from the settings only (never from an event).
    base: Url,
    /// Carries the registry's TLS settings, timeout and User-Agent.
    http: reqwest::Client,
    /// Credentials, scheme memory and cached tokens.
    auth: Authenticator,
    /// Bounds concurrent fetches (each makes its requests one at a time).
    permits: Semaphore,
    /// Largest manifest, config blob or token response accepted.
    max_bytes: usize,
    /// Whether TLS verification is off (shown in `Debug`).
    insecure: bool,
    /// Parsed manifests by digest (content-addressed: valid in every repository).
    manifests: Cache<String, Arc<CachedManifest>>,
    /// Config platforms by config digest.
    platforms: Cache<String, Option<Platform>>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("name", &self.name)
            .field("url", &self.base.as_str())
            .field("auth", &self.auth.describe())
            .field("insecure_skip_verify", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Builds the client for one configured registry: its URL, TLS settings and credentials
    /// (settings first, else its Docker config). Errors name the registry and the setting.
    pub fn new(settings: &RegistrySettings, callbacks: &CallbackSettings) -> anyhow::Result<Self> {
        let name = &settings.name;
        let base = base_url(settings)?;
        let mut hosts = url_hosts(&base);
        hosts.extend(
            settings
                .aliases
                .iter()
                .map(|a| a.trim().to_ascii_lowercase()),
        );
        let credentials = credentials::load(settings, &hosts)?;
        if matches!(credentials, Some(Credentials::Basic { .. })) && base.scheme() == "http" {
            tracing::warn!(registry = %name, "credentials will be sent over plain http");
        }

        let mut builder = reqwest::Client::builder()
            .user_agent(format!("regstat/{}", regstat_shared::VERSION))
            .timeout(callbacks.timeout())
            .connect_timeout(callbacks.timeout())
            // Blob GETs may redirect to storage; reqwest drops Authorization on any redirect
            // to another scheme, host or port.
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(path) = &settings.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("registry `{name}`: ca_file {}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("registry `{name}`: ca_file {}", path.display()))?;
            if certificates.is_empty() {
                bail!(
                    "registry `{name}`: ca_file {} holds no PEM certificate",
                    path.display()
                );
            }
            builder = builder.tls_certs_merge(certificates);
        }
        if settings.insecure_skip_verify {
            tracing::warn!(registry = %name, "TLS certificate verification is off");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .with_context(|| format!("registry `{name}`: building the HTTP client"))?;
        let entries = u64::try_from(callbacks.manifest_cache_entries).unwrap_or(u64::MAX);
        Ok(Self {
            name: name.clone(),
            base,
            http,
            auth: Authenticator::new(name, credentials, callbacks.max_document_bytes),
            permits: Semaphore::new(callbacks.concurrency.max(1)),
            max_bytes: callbacks.max_document_bytes,
            insecure: settings.insecure_skip_verify,
            manifests: Cache::builder().max_capacity(entries).build(),
            platforms: Cache::builder().max_capacity(entries).build(),
        })
    }

    /// The registry's canonical name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The base URL callbacks go to.
    pub fn url(&self) -> &Url {
        &self.base
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

    /// The platform an image config blob states: `GET /v2/<repository>/blobs/<digest>`
    /// (following redirects to storage), verified and bounded like a manifest, and cached by
    /// digest. `None` for configs that name no platform (artifacts).
    pub async fn config_platform(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<Option<Platform>, FetchError> {
        self.platforms
            .try_get_with_by_ref(digest, async {
                let body = self.fetch(Endpoint::Blobs, repository, digest).await?;
                parse_config_platform(&body.bytes).map_err(|e| self.invalid(repository, digest, &e))
            })
            .await
            .map_err(|e| FetchError::clone(&e))
    }

    fn invalid(&self, repository: &str, digest: &str, error: &dyn std::fmt::Display) -> FetchError {
        FetchError::Invalid(format!("{}/{repository}@{digest}: {error}", self.name))
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
            .base
            .join(&format!("v2/{repository}/{}/{digest}", endpoint.segment()))
            .map_err(|e| FetchError::Invalid(format!("cannot build the URL: {e}")))?;
        let _permit =
            self.permits.acquire().await.map_err(|_| {
                FetchError::Transient("the registry client is shutting down".into())
            })?;
        let what = format!("{} {}/{repository}@{digest}", endpoint.what(), self.name);
        let scope = format!("repository:{repository}:pull");
        let accept = (endpoint == Endpoint::Manifests).then_some(MANIFEST_ACCEPT);
        let response = self.send(Method::GET, url, accept, &scope, &what).await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_limited(response, self.max_bytes, &what).await?;
        verify(algorithm, endpoint, digest, &bytes, &what)?;
        Ok(Body {
            content_type,
            bytes,
        })
    }

    fn describe_sent(&self, authorization: Option<&Authorization>) -> String {
        match authorization {
            None => "no credentials".to_owned(),
            Some(Authorization::Basic { .. }) => self.auth.describe(),
            Some(Authorization::Bearer(_)) => {
                format!("a token obtained with {}", self.auth.describe())
            }
        }
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

/// Reads a body of at most `limit` bytes, refusing a larger one as soon as it shows (by its
/// Content-Length, or while streaming when that is absent or wrong).
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    what: &str,
) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::Invalid(format!("{what}: larger than {limit} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(e, what))? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sorts a transport error: timeouts, refused or reset connections and broken bodies are
/// transient; redirect loops and unbuildable requests are not. The message keeps the cause
/// chain but no URL (a storage redirect's query may be a signature).
pub(crate) fn classify(error: reqwest::Error, what: &str) -> FetchError {
    let permanent = error.is_redirect() || error.is_builder();
    let timed_out = error.is_timeout();
    let error = error.without_url();
    let mut message = format!("{what}: ");
    if timed_out {
        message.push_str("timed out: ");
    }
    message.push_str(&error.to_string());
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if permanent {
        FetchError::Invalid(message)
    } else {
        FetchError::Transient(message)
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// The registry's base URL from its settings: http(s), a host, no path, query or fragment.
fn base_url(settings: &RegistrySettings) -> anyhow::Result<Url> {
    let name = &settings.name;
    let url = Url::parse(settings.url.trim())
        .with_context(|| format!("registry `{name}`: url `{}`", settings.url))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("registry `{name}`: url must be http(s)://host[:port]");
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        bail!(
            "registry `{name}`: url must be http(s)://host[:port] without a path (the API is \
             always under /v2/)"
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("registry `{name}`: put credentials in username/password, not in the url");
    }
    Ok(url)
}

/// The lowercase `host[:port]` forms clients use for a URL: with its port (explicit or the
/// scheme's default), and without it when it is the default.
pub(crate) fn url_hosts(url: &Url) -> Vec<String> {
    let Some(host) = url.host_str() else {
        return Vec::new();
    };
    let host = host.to_ascii_lowercase();
    let mut hosts = Vec::new();
    if url.port().is_none() {
        hosts.push(host.clone());
    }
    if let Some(port) = url.port_or_known_default() {
        hosts.push(format!("{host}:{port}"));
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> RegistrySettings {
        RegistrySettings {
            name: "main".into(),
            url: url.into(),
            aliases: vec![],
            docker_config: None,
            username: None,
            password: None,
            ca_file: None,
            insecure_skip_verify: false,
        }
    }

    #[test]
    fn base_urls() {
        assert!(base_url(&settings("http://127.0.0.1:5000")).is_ok());
        assert!(base_url(&settings("https://registry.example.com/")).is_ok());
        for bad in [
            "registry.example.com",
            "ftp://registry.example.com",
            "https://registry.example.com/v2/",
            "https://registry.example.com/?x=1",
            "https://user:pw@registry.example.com",
        ] {
            let error = base_url(&settings(bad)).expect_err(bad);
            assert!(format!("{error:#}").contains("main"), "{error:#}");
            assert!(!format!("{error:#}").contains("pw@"), "{error:#}");
        }
    }

    #[test]
    fn hosts_of_a_url() {
        let hosts = |url: &str| url_hosts(&Url::parse(url).expect("url"));
        assert_eq!(hosts("http://127.0.0.1:5000"), ["127.0.0.1:5000"]);
        assert_eq!(
            hosts("https://Registry.Example.com"),
            ["registry.example.com", "registry.example.com:443"]
        );
        assert_eq!(
            hosts("https://registry.example.com:443"),
            ["registry.example.com", "registry.example.com:443"]
        );
        assert_eq!(hosts("http://[::1]:5000"), ["[::1]:5000"]);
    }

    #[test]
    fn origins() {
        let url = |u: &str| Url::parse(u).expect("url");
        assert!(same_origin(
            &url("https://r.example.com/v2/x"),
            &url("https://r.example.com:443/")
        ));
        assert!(!same_origin(
            &url("http://r.example.com/"),
            &url("https://r.example.com/")
        ));
        assert!(!same_origin(
            &url("http://127.0.0.1:1/"),
            &url("http://127.0.0.1:2/")
        ));
        assert!(!same_origin(&url("http://a/"), &url("http://b/")));
    }
}

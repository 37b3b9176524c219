//! The one authenticated request path to a registry: its base URL (from the settings, never
//! from an event), TLS, time and concurrency bounds, and the 401 dance. Every request the
//! client makes (manifests, blobs, listings, `HEAD` checks) goes through [`Transport::send`].

use crate::auth::{Authenticator, Authorization, Realms};
use crate::challenge;
use crate::credentials::{self, Credentials};
use crate::error::{FetchError, classify};
use crate::hosts::{normalise_host, origin, same_origin, url_hosts};
use anyhow::{Context, bail};
use regstat_shared::config::{CallbackSettings, RegistrySettings};
use reqwest::header::{ACCEPT, USER_AGENT, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use std::time::Instant;
use tokio::sync::{Semaphore, SemaphorePermit};

/// One registry's connection settings and authentication state.
pub(crate) struct Transport {
    /// Canonical name, for logs and messages.
    pub(crate) name: String,
    /// `scheme://host[:port]/`, from the settings only (never from an event).
    pub(crate) base: Url,
    /// Carries the registry's TLS settings, timeout and User-Agent.
    http: reqwest::Client,
    /// Credentials, scheme memory and cached tokens.
    pub(crate) auth: Authenticator,
    /// Bounds concurrent fetches (each makes its requests one at a time).
    permits: Semaphore,
    /// Largest manifest, config blob, listing page or token response accepted.
    pub(crate) max_bytes: usize,
    /// Whether TLS verification is off (shown in `Debug`).
    pub(crate) insecure: bool,
}

impl Transport {
    /// The transport for one configured registry: its URL, TLS settings and credentials
    /// (settings first, else its Docker config). Errors name the registry and the setting.
    pub(crate) fn new(
        settings: &RegistrySettings,
        callbacks: &CallbackSettings,
    ) -> anyhow::Result<Self> {
        let name = &settings.name;
        let base = base_url(settings)?;
        let mut hosts = url_hosts(&base);
        hosts.extend(settings.aliases.iter().map(|a| normalise_host(a)));
        let credentials = credentials::load(settings, &hosts)?;
        if matches!(credentials, Some(Credentials::Basic { .. })) && base.scheme() == "http" {
            tracing::warn!(registry = %name, "credentials will be sent over plain http");
        }

        let certificates = match &settings.ca_file {
            Some(path) => {
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
                certificates
            }
            None => Vec::new(),
        };
        if settings.insecure_skip_verify {
            tracing::warn!(registry = %name, "TLS certificate verification is off");
        }
        let client = |redirect: reqwest::redirect::Policy| {
            let mut builder = reqwest::Client::builder()
                .user_agent(format!("regstat/{}", regstat_shared::VERSION))
                .timeout(callbacks.timeout())
                .connect_timeout(callbacks.timeout())
                .redirect(redirect);
            if !certificates.is_empty() {
                builder = builder.tls_certs_merge(certificates.clone());
            }
            if settings.insecure_skip_verify {
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
            builder
                .build()
                .with_context(|| format!("registry `{name}`: building the HTTP client"))
        };
        // Blob GETs may redirect to storage; reqwest drops Authorization on any redirect to
        // another scheme, host or port.
        let http = client(reqwest::redirect::Policy::limited(5))?;
        // Token requests carry the registry's password or refresh token: never redirected.
        let token_http = client(reqwest::redirect::Policy::none())?;
        let realms = Realms::new(&base, &settings.token_realms)
            .map_err(|problem| anyhow::anyhow!("registry `{name}`: token_realms: {problem}"))?;
        Ok(Self {
            name: name.clone(),
            base,
            http,
            auth: Authenticator::new(
                name,
                credentials,
                callbacks.max_document_bytes,
                realms,
                token_http,
            ),
            permits: Semaphore::new(callbacks.concurrency.max(1)),
            max_bytes: callbacks.max_document_bytes,
            insecure: settings.insecure_skip_verify,
        })
    }

    /// `<base><path>`.
    pub(crate) fn url(&self, path: &str) -> Result<Url, FetchError> {
        self.base
            .join(path)
            .map_err(|e| FetchError::Invalid(format!("cannot build the URL: {e}")))
    }

    /// A turn within the registry's concurrency bound.
    pub(crate) async fn permit(&self) -> Result<SemaphorePermit<'_>, FetchError> {
        self.permits
            .acquire()
            .await
            .map_err(|_| FetchError::Transient("the registry client is shutting down".into()))
    }

    /// One authenticated request (the caller holds a permit): a 2xx response, or why not
    /// (404 is [`FetchError::Gone`]). Answers one 401 from the registry's own origin; a 401
    /// from a redirect target is a refusal (credentials never leave the registry's origin
    /// and its token realm).
    pub(crate) async fn send(
        &self,
        method: Method,
        url: Url,
        accept: Option<&str>,
        scope: &str,
        what: &str,
    ) -> Result<reqwest::Response, FetchError> {
        self.send_as(method, url, accept, scope, what, None).await
    }

    /// [`Self::send`] with another User-Agent than regstat's callbacks' (`regstat/<version>`,
    /// whose requests the model ignores): what a request that must show in the registry's
    /// events as its own kind sends, e.g. a cleanup's deletes.
    pub(crate) async fn send_as(
        &self,
        method: Method,
        url: Url,
        accept: Option<&str>,
        scope: &str,
        what: &str,
        user_agent: Option<&str>,
    ) -> Result<reqwest::Response, FetchError> {
        let mut authorization = self.auth.up_front(scope);
        let mut answered = false;
        loop {
            let started = Instant::now();
            let mut request = self.http.request(method.clone(), url.clone());
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(user_agent) = user_agent {
                request = request.header(USER_AGENT, user_agent);
            }
            if let Some(authorization) = &authorization {
                request = authorization.apply(request);
            }
            let result = request.send().await;
            let status = result.as_ref().map_or(0, |r| r.status().as_u16());
            tracing::debug!(
                registry = %self.name,
                method = %method,
                path = url.path(),
                status,
                duration_ms = started.elapsed().as_millis() as u64,
                "registry request"
            );
            let response = result.map_err(|error| classify(error, what))?;
            let status = response.status();
            match status {
                s if s.is_success() => return Ok(response),
                StatusCode::UNAUTHORIZED if !answered => {
                    if !same_origin(response.url(), &self.base) {
                        return Err(FetchError::Denied(format!(
                            "{what}: 401 from {} after a redirect",
                            origin(response.url())
                        )));
                    }
                    let challenge = challenge::parse(
                        response
                            .headers()
                            .get_all(WWW_AUTHENTICATE)
                            .iter()
                            .filter_map(|v| v.to_str().ok()),
                    );
                    authorization = Some(self.auth.answer(challenge, scope).await?);
                    answered = true;
                }
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(FetchError::Denied(format!(
                        "{what}: {status} with {}",
                        self.describe_sent(authorization.as_ref())
                    )));
                }
                StatusCode::NOT_FOUND => return Err(FetchError::Gone),
                StatusCode::METHOD_NOT_ALLOWED => {
                    return Err(FetchError::Denied(format!(
                        "{what}: 405, the registry does not allow it (deletes need \
                         storage.delete.enabled)"
                    )));
                }
                s if s == StatusCode::TOO_MANY_REQUESTS
                    || s == StatusCode::REQUEST_TIMEOUT
                    || s.is_server_error() =>
                {
                    return Err(FetchError::Transient(format!("{what}: {status}")));
                }
                _ => return Err(FetchError::Invalid(format!("{what}: unexpected {status}"))),
            }
        }
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
            token_realms: vec![],
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
}

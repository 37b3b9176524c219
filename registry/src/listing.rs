//! What a registry lists, for `regstat sync`: its repositories (`/v2/_catalog`), a
//! repository's tags (`/v2/<name>/tags/list`), both paginated by `Link: <...>; rel="next"`,
//! and whether a manifest exists (`HEAD /v2/<name>/manifests/<reference>`).
//!
//! Same authentication, TLS, time, concurrency and size bounds as the manifest fetches.

use crate::client::RegistryClient;
use crate::digest;
use crate::error::{FetchError, read_limited};
use crate::hosts::{origin, same_origin};
use crate::manifest::MANIFEST_ACCEPT;
use reqwest::header::LINK;
use reqwest::{Method, Url};
use serde::Deserialize;
use std::collections::HashSet;

/// The header distribution names a manifest's digest in.
const CONTENT_DIGEST: &str = "docker-content-digest";
/// Most pages read of one listing: a registry whose next links never end is refused.
const MAX_PAGES: usize = 100_000;

impl RegistryClient {
    /// Every repository of the registry: `GET /v2/_catalog?n=<page_size>`, following
    /// `rel="next"` links. A registry that does not offer its catalog (404), or not to
    /// regstat's credentials (401/403), is an error saying so.
    pub async fn catalog(&self, page_size: u32) -> Result<Vec<String>, FetchError> {
        self.catalog_pages(page_size, PageCap::All).await
    }

    /// The first page of the registry's catalog (`GET /v2/_catalog?n=<page_size>`, next
    /// links not followed): a cheap proof that the registry answers, accepts regstat's
    /// credentials (after the token round trip, where it uses tokens) and lets them list
    /// repositories. Errors as [`Self::catalog`].
    pub async fn catalog_sample(&self, page_size: u32) -> Result<Vec<String>, FetchError> {
        self.catalog_pages(page_size, PageCap::First(1)).await
    }

    /// The repositories of the catalog's pages up to `cap`.
    async fn catalog_pages(&self, page_size: u32, cap: PageCap) -> Result<Vec<String>, FetchError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        let what = format!("catalog of {}", self.name());
        let first = self.endpoint("v2/_catalog", page_size)?;
        let pages = self
            .pages::<Page>(first, "registry:catalog:*", &what, cap)
            .await
            .map_err(|error| match error {
                FetchError::Gone => FetchError::Denied(format!(
                    "registry {} does not offer its catalog (GET /v2/_catalog answered 404); \
                     sync needs it",
                    self.name()
                )),
                FetchError::Denied(reason) => FetchError::Denied(format!(
                    "{reason}; listing repositories needs access to scope registry:catalog:*"
                )),
                other => other,
            })?;
        Ok(pages
            .into_iter()
            .flat_map(|page| page.repositories.unwrap_or_default())
            .collect())
    }

    /// The tags of `repository`: `GET /v2/<repository>/tags/list?n=<page_size>`, following
    /// `rel="next"` links, in the registry's order. A repository the registry does not know
    /// (404) has none.
    pub async fn tags(&self, repository: &str, page_size: u32) -> Result<Vec<String>, FetchError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        digest::check_repository(repository).map_err(FetchError::Invalid)?;
        let what = format!("tags of {}/{repository}", self.name());
        let first = self.endpoint(&format!("v2/{repository}/tags/list"), page_size)?;
        let scope = format!("repository:{repository}:pull");
        match self.pages::<Page>(first, &scope, &what, PageCap::All).await {
            Ok(pages) => Ok(pages
                .into_iter()
                .flat_map(|page| page.tags.unwrap_or_default())
                .collect()),
            Err(FetchError::Gone) => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    /// The digest of the manifest `reference` (a tag or a digest) of `repository` names now:
    /// `HEAD /v2/<repository>/manifests/<reference>` and its `Docker-Content-Digest`. `None`
    /// when the registry answers 404.
    pub async fn manifest_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, FetchError> {
        digest::check_repository(repository).map_err(FetchError::Invalid)?;
        let by_digest = reference.contains(':');
        if by_digest {
            digest::fetchable(reference).map_err(FetchError::Invalid)?;
        } else {
            digest::check_tag(reference).map_err(FetchError::Invalid)?;
        }
        let url = self
            .transport
            .url(&format!("v2/{repository}/manifests/{reference}"))?;
        let what = format!("manifest {}/{repository}:{reference}", self.name());
        let scope = format!("repository:{repository}:pull");
        let _permit = self.transport.permit().await?;
        let head = self
            .transport
            .send(Method::HEAD, url, Some(MANIFEST_ACCEPT), &scope, &what);
        let response = match head.await {
            Ok(response) => response,
            Err(FetchError::Gone) => return Ok(None),
            Err(error) => return Err(error),
        };
        let named = response
            .headers()
            .get(CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .ok_or_else(|| FetchError::Invalid(format!("{what}: no Docker-Content-Digest")))?;
        digest::fetchable(named)
            .map_err(|e| FetchError::Invalid(format!("{what}: Docker-Content-Digest {e}")))?;
        if by_digest && named != reference {
            return Err(FetchError::Invalid(format!(
                "{what}: the registry names it {named}"
            )));
        }
        Ok(Some(named.to_owned()))
    }

    /// Whether the manifest `digest` exists in `repository` (`HEAD`; 404 is `false`).
    pub async fn manifest_exists(
        &self,
        repository: &str,
        digest: &str,
    ) -> Result<bool, FetchError> {
        Ok(self.manifest_digest(repository, digest).await?.is_some())
    }

    /// `<base><path>?n=<page_size>`.
    fn endpoint(&self, path: &str, page_size: u32) -> Result<Url, FetchError> {
        let mut url = self.transport.url(path)?;
        url.query_pairs_mut()
            .append_pair("n", &page_size.max(1).to_string());
        Ok(url)
    }

    /// The pages of a paginated listing, from `first` on, as many as `cap` allows. A next
    /// link must stay on the registry's origin and endpoint, and never repeat.
    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        first: Url,
        scope: &str,
        what: &str,
        cap: PageCap,
    ) -> Result<Vec<T>, FetchError> {
        let mut pages = Vec::new();
        let mut visited = HashSet::new();
        let mut next = Some(first.clone());
        while let Some(url) = next.take() {
            if !visited.insert(url.to_string()) {
                return Err(FetchError::Invalid(format!(
                    "{what}: the next page link repeats a page"
                )));
            }
            if visited.len() > MAX_PAGES {
                return Err(FetchError::Invalid(format!(
                    "{what}: more than {MAX_PAGES} pages"
                )));
            }
            let permit = self.transport.permit().await?;
            let response = self
                .transport
                .send(Method::GET, url.clone(), None, scope, what)
                .await?;
            let link = next_link(&response);
            let body = read_limited(response, self.transport.max_bytes, what).await?;
            drop(permit);
            pages.push(
                serde_json::from_slice(&body)
                    .map_err(|e| FetchError::Invalid(format!("{what}: unreadable page: {e}")))?,
            );
            if let Some(link) = link {
                let target = url
                    .join(&link)
                    .map_err(|e| FetchError::Invalid(format!("{what}: next page link: {e}")))?;
                if !same_origin(&target, &self.transport.base) || target.path() != first.path() {
                    return Err(FetchError::Invalid(format!(
                        "{what}: the next page link leaves the endpoint ({}{})",
                        origin(&target),
                        target.path()
                    )));
                }
                if cap.allows(pages.len() + 1) {
                    next = Some(target);
                }
            }
        }
        Ok(pages)
    }
}

/// How many pages of a listing to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageCap {
    /// Every page (more than [`MAX_PAGES`] is an error).
    All,
    /// At most this many; the rest is left unread.
    First(usize),
}

impl PageCap {
    /// Whether page number `count` (1-based) is to be read.
    fn allows(self, count: usize) -> bool {
        match self {
            Self::All => true,
            Self::First(most) => count <= most,
        }
    }
}

/// The target of a response's `Link: <...>; rel="next"`, if any.
fn next_link(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(parse_next_link)
}

/// `<url>; rel="next"` (among comma-separated links): the url.
fn parse_next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
        let next = params.split(';').any(|param| {
            param.trim().split_once('=').is_some_and(|(key, value)| {
                key.trim().eq_ignore_ascii_case("rel")
                    && value
                        .trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel.eq_ignore_ascii_case("next"))
            })
        });
        next.then(|| target.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_links() {
        assert_eq!(
            parse_next_link(r#"</v2/_catalog?last=p%2Fr1&n=1>; rel="next""#).as_deref(),
            Some("/v2/_catalog?last=p%2Fr1&n=1")
        );
        assert_eq!(
            parse_next_link(r#"<https://r.example.com/v2/a/tags/list?last=x>;rel=next"#).as_deref(),
            Some("https://r.example.com/v2/a/tags/list?last=x")
        );
        assert_eq!(
            parse_next_link(r#"</first>; rel="prev", </second>; rel="next""#).as_deref(),
            Some("/second")
        );
        assert_eq!(parse_next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(parse_next_link("garbage"), None);
    }

    #[test]
    fn page_caps() {
        assert!(
            PageCap::All.allows(MAX_PAGES + 1),
            "the page count check refuses it"
        );
        assert!(PageCap::First(1).allows(1));
        assert!(!PageCap::First(1).allows(2));
    }
}

//! A seen manifest's content: from the database when the registry's content for that digest
//! was already fetched (in this repository or another: content is immutable for a digest),
//! else fetched from the registry by digest, as callbacks do ([`RegistryClient::content`]).

use super::diff::{Seen, Source};
use super::retrying;
use regstat_registry::{FetchError, RegistryClient};
use regstat_shared::content::{Content, Role};
use regstat_store::model::Known;

/// How known content is seen in `repository`: nothing to write when it is recorded there.
pub(super) fn seen(known: Known, repository: &str) -> Seen {
    let here = known.repository == repository;
    Seen {
        media_type: known.media_type,
        size: known.size,
        source: if here {
            Source::Recorded
        } else {
            Source::Cached
        },
        content: Some(known.content),
    }
}

/// The digests of the children a content lists (an index's manifests).
pub(super) fn children(content: Option<&Content>) -> impl Iterator<Item = &str> {
    content
        .into_iter()
        .flat_map(|c| c.references.iter())
        .filter(|r| r.role == Role::Manifest)
        .map(|r| r.digest.as_str())
}

/// Fetches the manifest `digest` of `repository` and, for an image, its config's platform.
/// `None`: the registry no longer has it (404). Access denied or invalid content: seen
/// without content. Unavailable (after retries): an error.
pub(super) async fn fetch(
    client: &RegistryClient,
    repository: &str,
    digest: &str,
) -> Result<Option<Seen>, FetchError> {
    let unreadable = |error: FetchError| {
        tracing::warn!(
            registry = client.name(),
            repository,
            digest,
            %error,
            "cannot read a manifest's content; recording that it exists"
        );
        Some(Seen {
            media_type: None,
            size: None,
            content: None,
            source: Source::Unreadable,
        })
    };
    let fetched = match retrying(|| client.content(repository, digest)).await {
        Ok(fetched) => fetched,
        Err(FetchError::Gone) => return Ok(None),
        Err(error @ FetchError::Transient(_)) => return Err(error),
        Err(error) => return Ok(unreadable(error)),
    };
    Ok(Some(Seen {
        media_type: Some(fetched.media_type),
        size: i64::try_from(fetched.size).ok(),
        content: Some(fetched.content),
        source: if fetched.from_cache {
            Source::Cached
        } else {
            Source::Fetched
        },
    }))
}

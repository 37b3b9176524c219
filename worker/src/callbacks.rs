//! Learning what a pushed manifest contains: from content already known, from the registry
//! (called back by digest at its configured URL), or from the event's references.

use crate::outcome::Reason;
use regstat_registry::{FetchError, Resolved};
use regstat_shared::content::{Content, FetchStatus};
use regstat_shared::event::{Action, Event, Kind};
use regstat_store::model::Known;

/// Why content could not be learned now.
#[derive(Debug)]
pub enum Failure {
    /// The registry is unavailable: retry this event later.
    Retry(Reason),
    /// Will never work (access denied, a manifest that lies about its digest...).
    Permanent(Reason),
}

/// Whether an event is a manifest push, the only event that needs content.
pub fn needs_content(event: &Event) -> bool {
    event.action == Some(Action::Push) && event.kind() == Kind::Manifest
}

/// What a registry callback would be for: the repository and digest of a pushed manifest,
/// when the event is one and its registry is configured for callbacks.
pub fn callback_target<'e>(
    event: &'e Event,
    registry: &Resolved<'_>,
) -> Option<(&'e str, &'e str)> {
    if !needs_content(event) || registry.client.is_none() {
        return None;
    }
    let target = event.target.as_ref()?;
    Some((target.repository.as_deref()?, target.digest.as_deref()?))
}

/// The content of the manifest a push event names (`None` for other events), given what the
/// database already knows of it (`known`, looked up for a whole batch at once with
/// [`regstat_store::model::known_contents_batch`] for the events [`callback_target`] names).
pub async fn content(
    event: &Event,
    registry: &Resolved<'_>,
    known: Option<Known>,
) -> Result<Option<Content>, Failure> {
    if !needs_content(event) {
        return Ok(None);
    }
    let Some(target) = &event.target else {
        return Ok(None);
    };
    let (Some(repository), Some(digest)) = (&target.repository, &target.digest) else {
        return Ok(None);
    };
    let from_event = Content::from_event(target.media_type.as_deref(), &target.references);
    let Some(client) = registry.client else {
        metrics::counter!("regstat_worker_unconfigured_registry_events_total").increment(1);
        return Ok(Some(
            from_event.unwrap_or_else(|| Content::empty(FetchStatus::NoRegistry)),
        ));
    };
    if let Some(known) = known {
        metrics::counter!("regstat_worker_manifest_content_total", "source" => "database")
            .increment(1);
        return Ok(Some(known.content));
    }
    match client.content(repository, digest).await {
        Ok(fetched) => {
            let source = if fetched.from_cache {
                "cache"
            } else {
                "registry"
            };
            metrics::counter!("regstat_worker_manifest_content_total", "source" => source)
                .increment(1);
            Ok(Some(fetched.content))
        }
        Err(FetchError::Gone) => {
            metrics::counter!("regstat_worker_manifest_content_total", "source" => "gone")
                .increment(1);
            Ok(Some(
                from_event.unwrap_or_else(|| Content::empty(FetchStatus::Gone)),
            ))
        }
        Err(error) => Err(failure(error)),
    }
}

fn failure(error: FetchError) -> Failure {
    match error {
        FetchError::Transient(reason) => Failure::Retry(Reason::new(
            "registry_unavailable",
            format!("registry unavailable: {reason}"),
        )),
        FetchError::Invalid(reason) => Failure::Permanent(Reason::new(
            "manifest_invalid",
            format!("registry served an unusable manifest: {reason}"),
        )),
        other => Failure::Permanent(Reason::new(
            "registry_refused",
            format!("registry callback failed: {other}"),
        )),
    }
}

//! Learning what a pushed manifest contains: from content already known, from the registry
//! (called back by digest at its configured URL), or from the event's references.

use crate::handler::Reason;
use crate::model::{Content, FetchStatus, Known, Reference, Role};
use crate::registry::{FetchError, Fetched, ManifestKind, Platform, Resolved};
use regstat_shared::event::{Action, Event, Kind};

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
/// [`crate::model::known_contents_batch`] for the events [`callback_target`] names).
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
    match client.manifest(repository, digest).await {
        Ok(fetched) => {
            let source = if fetched.from_cache {
                "cache"
            } else {
                "registry"
            };
            metrics::counter!("regstat_worker_manifest_content_total", "source" => source)
                .increment(1);
            let platform = match (&fetched.manifest.kind, &fetched.manifest.config) {
                (ManifestKind::Image, Some(config)) => {
                    match client.config_platform(repository, &config.digest).await {
                        Ok(platform) => platform,
                        Err(FetchError::Gone) => None,
                        Err(error) => return Err(failure(error)),
                    }
                }
                // Schema1 states its architecture in the manifest itself.
                _ => fetched.manifest.platform.clone(),
            };
            Ok(Some(from_fetched(&fetched, platform)))
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

/// Content of a manifest built from what the registry served.
pub fn from_fetched(fetched: &Fetched, platform: Option<Platform>) -> Content {
    let manifest = &fetched.manifest;
    let mut content = Content::empty(FetchStatus::Fetched);
    let (os, architecture, variant) =
        platform.map_or((None, None, None), |p| (p.os, p.architecture, p.variant));
    content.os = os;
    content.architecture = architecture;
    content.variant = variant;
    content.artifact_type = manifest.artifact_type.clone();
    content.config_digest = manifest.config.as_ref().map(|c| c.digest.clone());
    content.subject_digest = manifest.subject.as_ref().map(|s| s.digest.clone());
    let reference =
        |role, position: usize, d: &crate::registry::Descriptor, p: Option<&Platform>| Reference {
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

//! What the registry shows for one repository, and recording it.
//!
//! 1. `tags/list`, then a `HEAD` by tag for the digest each names.
//! 2. The manifests those digests lead to, level by level (an index leads to its children):
//!    content from the database when known, else fetched by digest.
//! 3. Live manifests no tag leads to: a `HEAD` by digest each; 404 means gone.

use super::content;
use super::diff::{self, Current, Observation, Seen, Source};
use super::report::Outcome;
use super::{SyncOptions, record, retrying, store};
use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use regstat_registry::RegistryClient;
use regstat_store::model::{Known, known_contents};
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap};

/// Requests in flight per repository (the client's own bound applies too).
const IN_FLIGHT: usize = 8;

/// Syncs one repository of the catalog: observes it, then (unless a dry run) records the
/// observations and tombstones, at the time its tags were listed.
pub(super) async fn sync_repository(
    pool: &PgPool,
    client: &RegistryClient,
    options: &SyncOptions,
    repository: &str,
) -> anyhow::Result<Outcome> {
    let registry = client.name();
    let at = Utc::now();
    let names = retrying(|| client.tags(repository, options.page_size))
        .await
        .context("listing its tags")?;
    let current = store::live_state(pool, registry, repository)
        .await
        .context("reading its state")?;
    let walk = Walk {
        pool,
        client,
        repository,
        dry_run: options.dry_run,
    };
    let seen = walk.observe(&names, &current).await?;
    let diff = diff::diff(repository, &current, &seen);
    if !options.dry_run {
        record::record(pool, registry, repository, at, &seen, &diff)
            .await
            .context("recording it")?;
    }
    Ok(Outcome::new(&seen, diff))
}

/// A repository the catalog no longer lists: its live tags and manifests are gone at `at`.
pub(super) async fn repository_gone(
    pool: &PgPool,
    registry: &str,
    repository: &str,
    at: DateTime<Utc>,
    options: &SyncOptions,
) -> anyhow::Result<Outcome> {
    let current = store::live_state(pool, registry, repository)
        .await
        .context("reading its state")?;
    let (seen, diff) = diff::gone(repository, &current);
    if !options.dry_run {
        record::record(pool, registry, repository, at, &seen, &diff)
            .await
            .context("recording it gone")?;
    }
    Ok(Outcome::new(&seen, diff))
}

/// One repository's walk.
struct Walk<'a> {
    pool: &'a PgPool,
    client: &'a RegistryClient,
    repository: &'a str,
    /// Fetch no content: what is not in the database is [`Source::Pending`].
    dry_run: bool,
}

impl Walk<'_> {
    async fn observe(&self, names: &[String], current: &Current) -> anyhow::Result<Observation> {
        let mut seen = Observation::default();
        // 1. Which digest each tag names now.
        let resolved: Vec<_> = futures_util::stream::iter(names)
            .map(|tag| async move {
                let digest = retrying(|| self.client.manifest_digest(self.repository, tag)).await;
                (tag, digest)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for (tag, digest) in resolved {
            // A tag deleted since it was listed (404) counts as not listed.
            if let Some(digest) = digest.with_context(|| format!("resolving tag {tag}"))? {
                seen.tags.insert(tag.clone(), digest);
            }
        }

        // 2. The manifests the tags lead to.
        let tagged: BTreeSet<String> = seen.tags.values().cloned().collect();
        let mut vanished = self.walk(tagged, &mut seen).await?;
        // A tag whose manifest vanished while being read counts as not listed.
        seen.tags.retain(|_, digest| !vanished.contains(digest));

        // 3. Live manifests no tag leads to: does the registry still have them?
        let untagged: Vec<&String> = current
            .manifests
            .iter()
            .filter(|d| !seen.manifests.contains_key(*d) && !vanished.contains(*d))
            .collect();
        let heads: Vec<_> = futures_util::stream::iter(untagged)
            .map(|digest| async move {
                let exists =
                    retrying(|| self.client.manifest_exists(self.repository, digest)).await;
                (digest, exists)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut existing = BTreeSet::new();
        for (digest, exists) in heads {
            if exists.with_context(|| format!("checking manifest {digest}"))? {
                existing.insert(digest.clone());
            } else {
                vanished.insert(digest.clone());
            }
        }
        vanished.extend(self.walk(existing, &mut seen).await?);
        seen.missing = vanished
            .into_iter()
            .filter(|d| current.manifests.contains(d) && !seen.manifests.contains_key(d))
            .collect();
        Ok(seen)
    }

    /// Adds the manifests `start` leads to (itself and, for indexes, their children) to
    /// `seen.manifests`; returns the digests the registry answered 404 for.
    async fn walk(
        &self,
        start: BTreeSet<String>,
        seen: &mut Observation,
    ) -> anyhow::Result<BTreeSet<String>> {
        let mut vanished = BTreeSet::new();
        let mut level: Vec<String> = start.into_iter().collect();
        while !level.is_empty() {
            let known = known_contents(self.pool, self.client.name(), self.repository, &level)
                .await
                .context("reading known manifest content")?;
            let found = self.contents(&level, known).await?;
            let mut next = BTreeSet::new();
            for (digest, manifest) in found {
                let Some(manifest) = manifest else {
                    vanished.insert(digest);
                    continue;
                };
                for child in content::children(manifest.content.as_ref()) {
                    if !seen.manifests.contains_key(child) && child != digest {
                        next.insert(child.to_owned());
                    }
                }
                seen.manifests.insert(digest, manifest);
            }
            next.retain(|d| !seen.manifests.contains_key(d) && !vanished.contains(d));
            level = next.into_iter().collect();
        }
        Ok(vanished)
    }

    /// The content of each digest of `level`: known, else fetched (`None`: 404).
    async fn contents(
        &self,
        level: &[String],
        mut known: HashMap<String, Known>,
    ) -> anyhow::Result<Vec<(String, Option<Seen>)>> {
        let mut found = Vec::with_capacity(level.len());
        let mut to_fetch = Vec::new();
        for digest in level {
            match known.remove(digest) {
                Some(known) => {
                    found.push((digest.clone(), Some(content::seen(known, self.repository))))
                }
                None if self.dry_run => found.push((
                    digest.clone(),
                    Some(Seen {
                        media_type: None,
                        size: None,
                        content: None,
                        source: Source::Pending,
                    }),
                )),
                None => to_fetch.push(digest),
            }
        }
        let fetched: Vec<_> = futures_util::stream::iter(to_fetch)
            .map(|digest| async move {
                let seen = content::fetch(self.client, self.repository, digest).await;
                (digest, seen)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for (digest, seen) in fetched {
            let seen = seen.with_context(|| format!("fetching manifest {digest}"))?;
            found.push((digest.clone(), seen));
        }
        Ok(found)
    }
}

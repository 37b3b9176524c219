//! The effects of events on the state, coalesced per row.

use chrono::{DateTime, NaiveDate, Utc};
use regstat_shared::content::{Content, is_index};
use regstat_shared::event::{Action, Event, Kind};
use std::collections::{BTreeMap, BTreeSet};

type Time = DateTime<Utc>;

/// Who made the registry request behind an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// regstat's own callbacks (`User-Agent: regstat/...`): no effect at all.
    Own,
    /// An automated client (`worker.system_user_agents`): counted apart, never "last pulled".
    System,
    /// Anyone else.
    User,
}

impl ClientKind {
    /// Classifies a User-Agent against the configured system patterns (case-insensitive
    /// substrings).
    pub fn of(useragent: Option<&str>, system_agents: &[String]) -> Self {
        let Some(agent) = useragent else {
            return ClientKind::User;
        };
        let agent = agent.to_ascii_lowercase();
        if agent.starts_with("regstat/") {
            ClientKind::Own
        } else if system_agents
            .iter()
            .any(|pattern| !pattern.is_empty() && agent.contains(&pattern.to_ascii_lowercase()))
        {
            ClientKind::System
        } else {
            ClientKind::User
        }
    }
}

/// One new event, with what the model needs beyond the event itself.
#[derive(Debug, Clone)]
pub struct ModelEvent<'a> {
    /// Ledger id.
    pub id: &'a str,
    /// The parsed event.
    pub event: &'a Event,
    /// Canonical registry name.
    pub registry: &'a str,
    /// Event time (the receiver's time when the event has none).
    pub at: Time,
    /// Who made the request.
    pub client: ClientKind,
    /// Manifest content for a pushed manifest, if known.
    pub content: Option<&'a Content>,
}

type RepoKey = (String, String);
type DigestKey = (String, String, String);
/// (day, registry, repository, tag or '', digest, system).
type MetricKey = (NaiveDate, String, String, String, String, bool);

fn key(registry: &str, repository: &str, name: &str) -> DigestKey {
    (registry.to_owned(), repository.to_owned(), name.to_owned())
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct BlobRow {
    pub size: Option<i64>,
    pub first_pushed_at: Option<Time>,
    pub last_pushed_at: Option<Time>,
    pub via_push: bool,
    pub via_mount: bool,
    pub mounted_from: Option<String>,
    pub last_pulled_at: Option<Time>,
    pub pull_count: i64,
    pub pulled_bytes: i64,
    pub system_pull_count: i64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ManifestRow {
    pub media_type: Option<String>,
    pub size: Option<i64>,
    pub first_pushed_at: Option<Time>,
    pub last_pushed_at: Option<Time>,
    pub last_pulled_at: Option<Time>,
    pub pull_count: i64,
    pub system_pull_count: i64,
    /// Newest time a sync saw it in the registry.
    pub seen_at: Option<Time>,
    /// Earliest time a sync saw it in the registry.
    pub first_seen_at: Option<Time>,
    pub content: Option<Content>,
}

impl ManifestRow {
    /// Keeps the most informative content (content is immutable for a digest).
    fn merge_content(&mut self, content: Option<&Content>) {
        if let Some(content) = content {
            self.content = Some(match self.content.take() {
                Some(known) if known.status >= content.status => known,
                _ => content.clone(),
            });
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct TagRow {
    /// Newest push: (time, digest), ties broken by the greater digest.
    pub push: Option<(Time, String)>,
    pub first_pushed_at: Option<Time>,
    pub deleted_at: Option<Time>,
    pub last_pulled_at: Option<Time>,
    pub pull_count: i64,
    pub system_pull_count: i64,
    /// Newest sync observation: (time, digest the registry named), ties broken by the
    /// greater digest.
    pub seen: Option<(Time, String)>,
    /// Earliest sync observation.
    pub first_seen_at: Option<Time>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct DeletionRow {
    pub registry: String,
    pub repository: String,
    pub digest: Option<String>,
    pub tag: Option<String>,
    pub deleted_at: Time,
    pub actor: Option<String>,
    pub useragent: Option<String>,
    pub addr: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct RepositoryRow {
    pub pushes: i64,
    pub pulls: i64,
    pub system_pulls: i64,
    pub first_push_at: Option<Time>,
    pub last_push_at: Option<Time>,
    pub first_pull_at: Option<Time>,
    pub last_pull_at: Option<Time>,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct ActorRow {
    pub events: i64,
    pub first_at: Time,
    pub last_at: Time,
}

/// The coalesced effects of a set of events, keyed like the tables (sorted, so rows are
/// locked in the same order by every worker).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Changes {
    pub(super) blobs: BTreeMap<DigestKey, BlobRow>,
    pub(super) manifests: BTreeMap<DigestKey, ManifestRow>,
    pub(super) tags: BTreeMap<DigestKey, TagRow>,
    pub(super) digest_deletions: BTreeMap<DigestKey, Time>,
    pub(super) deletions: BTreeMap<String, DeletionRow>,
    pub(super) pull_metrics: BTreeMap<MetricKey, i64>,
    /// Version checks: (checks added, newest resolve), per day, tag and digest.
    pub(super) version_checks: BTreeMap<MetricKey, (i64, Option<Time>)>,
    pub(super) repositories: BTreeMap<RepoKey, RepositoryRow>,
    /// Image pulls (non-system, system) per day and repository.
    pub(super) repository_days: BTreeMap<(NaiveDate, String, String), (i64, i64)>,
    pub(super) actors: BTreeMap<(String, String, String, &'static str), ActorRow>,
}

fn metric_key(day: NaiveDate, key: &super::pulls::Key, tag: &str, system: bool) -> MetricKey {
    (
        day,
        key.registry.clone(),
        key.repository.clone(),
        tag.to_owned(),
        key.digest.clone(),
        system,
    )
}

fn earliest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn latest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl Changes {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Every (registry, repository, digest) whose platform the content written here may decide
    /// (`locks::decided_by`), sorted.
    pub fn platforms_decided(&self) -> BTreeSet<(&str, &str, &str)> {
        self.manifests
            .iter()
            .filter_map(|(key, row)| row.content.as_ref().map(|content| (key, content)))
            .flat_map(|((registry, repository, digest), content)| {
                super::locks::decided_by(digest, content)
                    .map(move |d| (registry.as_str(), repository.as_str(), d))
            })
            .collect()
    }

    /// Every (registry, repository, day) whose pulls change here, sorted.
    pub fn pull_days_touched(&self) -> BTreeSet<(&str, &str, NaiveDate)> {
        self.pull_metrics
            .keys()
            .map(|(day, registry, repository, ..)| (registry.as_str(), repository.as_str(), *day))
            .collect()
    }

    /// Every (registry, repository) with a change, sorted: what the caches must recompute.
    pub fn repositories_touched(&self) -> BTreeSet<(&str, &str)> {
        let mut touched = BTreeSet::new();
        for (registry, repository, _) in self
            .blobs
            .keys()
            .chain(self.manifests.keys())
            .chain(self.tags.keys())
            .chain(self.digest_deletions.keys())
        {
            touched.insert((registry.as_str(), repository.as_str()));
        }
        for (_, registry, repository, ..) in
            self.pull_metrics.keys().chain(self.version_checks.keys())
        {
            touched.insert((registry.as_str(), repository.as_str()));
        }
        for deletion in self.deletions.values() {
            touched.insert((deletion.registry.as_str(), deletion.repository.as_str()));
        }
        for (registry, repository) in self.repositories.keys() {
            touched.insert((registry.as_str(), repository.as_str()));
        }
        for (_, registry, repository) in self.repository_days.keys() {
            touched.insert((registry.as_str(), repository.as_str()));
        }
        for (registry, repository, ..) in self.actors.keys() {
            touched.insert((registry.as_str(), repository.as_str()));
        }
        touched
    }

    /// Adds the effects of one event. Events without a repository, and regstat's own
    /// requests, change nothing.
    pub fn record(&mut self, e: &ModelEvent<'_>) {
        if e.client == ClientKind::Own {
            return;
        }
        let Some(target) = &e.event.target else {
            return;
        };
        let Some(repository) = target.repository.as_deref() else {
            return;
        };
        let get = e.event.request.method.as_deref() == Some("GET");
        let system = e.client == ClientKind::System;
        let digest = target.digest.as_deref();
        let size = target.size.and_then(|s| i64::try_from(s).ok());
        let row_key = |name: &str| key(e.registry, repository, name);

        match (e.event.action.as_ref(), e.event.kind()) {
            (Some(Action::Push), Kind::Blob) => {
                if let Some(digest) = digest {
                    self.link_blob(row_key(digest), e.at, size, true, None);
                }
            }
            (Some(Action::Mount), _) => {
                if let Some(digest) = digest {
                    let from = target.from_repository.clone();
                    self.link_blob(row_key(digest), e.at, size, false, from);
                }
            }
            (Some(Action::Push), Kind::Manifest) => {
                if let Some(digest) = digest {
                    let row = self.manifests.entry(row_key(digest)).or_default();
                    row.media_type = latest(row.media_type.take(), target.media_type.clone());
                    row.size = latest(row.size, size);
                    row.first_pushed_at = earliest(row.first_pushed_at, Some(e.at));
                    row.last_pushed_at = latest(row.last_pushed_at, Some(e.at));
                    row.merge_content(e.content);
                    if let Some(tag) = &target.tag {
                        let row = self.tags.entry(row_key(tag)).or_default();
                        row.push = latest(row.push.take(), Some((e.at, digest.to_owned())));
                        row.first_pushed_at = earliest(row.first_pushed_at, Some(e.at));
                    }
                }
                let repo = self.repository(e.registry, repository);
                repo.pushes += 1;
                repo.first_push_at = earliest(repo.first_push_at, Some(e.at));
                repo.last_push_at = latest(repo.last_push_at, Some(e.at));
                self.actor(e, repository, "push");
            }
            (Some(Action::Pull), Kind::Blob) if get => {
                if let Some(digest) = digest {
                    let row = self.blobs.entry(row_key(digest)).or_default();
                    row.size = latest(row.size, size);
                    if system {
                        row.system_pull_count += 1;
                    } else {
                        row.pull_count += 1;
                        row.pulled_bytes += size.unwrap_or(0);
                        row.last_pulled_at = latest(row.last_pulled_at, Some(e.at));
                    }
                }
            }
            (Some(Action::Pull), Kind::Manifest) if get => {
                let Some(digest) = digest else { return };
                let row = self.manifests.entry(row_key(digest)).or_default();
                row.media_type = latest(row.media_type.take(), target.media_type.clone());
                row.size = latest(row.size, size);
                if system {
                    row.system_pull_count += 1;
                } else {
                    row.pull_count += 1;
                    row.last_pulled_at = latest(row.last_pulled_at, Some(e.at));
                }
                if let Some(tag) = &target.tag {
                    let row = self.tags.entry(row_key(tag)).or_default();
                    if system {
                        row.system_pull_count += 1;
                    } else {
                        row.pull_count += 1;
                        row.last_pulled_at = latest(row.last_pulled_at, Some(e.at));
                    }
                }
                let metric = (
                    e.at.date_naive(),
                    e.registry.to_owned(),
                    repository.to_owned(),
                    target.tag.clone().unwrap_or_default(),
                    digest.to_owned(),
                    system,
                );
                *self.pull_metrics.entry(metric).or_default() += 1;
                // An image pull is the GET of an image manifest: once per pulled image, by tag
                // or by digest, whether or not an index was read first.
                if !is_index(target.media_type.as_deref()) {
                    let day = self
                        .repository_days
                        .entry((
                            e.at.date_naive(),
                            e.registry.to_owned(),
                            repository.to_owned(),
                        ))
                        .or_default();
                    if system {
                        day.1 += 1;
                    } else {
                        day.0 += 1;
                    }
                    let repo = self.repository(e.registry, repository);
                    if system {
                        repo.system_pulls += 1;
                    } else {
                        repo.pulls += 1;
                        repo.first_pull_at = earliest(repo.first_pull_at, Some(e.at));
                        repo.last_pull_at = latest(repo.last_pull_at, Some(e.at));
                        self.actor(e, repository, "pull");
                    }
                }
            }
            (Some(Action::Delete), _) => {
                if let Some(tag) = &target.tag {
                    self.tag_deleted(e.registry, repository, tag, e.at);
                } else if let Some(digest) = digest {
                    self.digest_deleted(e.registry, repository, digest, e.at);
                } else {
                    return;
                }
                self.deletions.insert(
                    e.id.to_owned(),
                    DeletionRow {
                        registry: e.registry.to_owned(),
                        repository: repository.to_owned(),
                        digest: digest.map(str::to_owned),
                        tag: target.tag.clone(),
                        deleted_at: e.at,
                        actor: e.event.actor.name.clone(),
                        useragent: e.event.request.useragent.clone(),
                        addr: e.event.request.addr.clone(),
                    },
                );
            }
            _ => {}
        }
    }

    /// Records that a sync saw manifest `digest` of `repository` in the registry at `at`, with
    /// its media type and size, and its content when that is to be written here.
    #[allow(clippy::too_many_arguments)]
    pub fn observe_manifest(
        &mut self,
        registry: &str,
        repository: &str,
        digest: &str,
        at: Time,
        media_type: Option<&str>,
        size: Option<i64>,
        content: Option<&Content>,
    ) {
        let row = self
            .manifests
            .entry(key(registry, repository, digest))
            .or_default();
        row.media_type = latest(row.media_type.take(), media_type.map(str::to_owned));
        row.size = latest(row.size, size);
        row.seen_at = latest(row.seen_at, Some(at));
        row.first_seen_at = earliest(row.first_seen_at, Some(at));
        row.merge_content(content);
    }

    /// Records that a sync saw `tag` of `repository` naming `digest` at `at`.
    pub fn observe_tag(
        &mut self,
        registry: &str,
        repository: &str,
        tag: &str,
        digest: &str,
        at: Time,
    ) {
        let row = self.tags.entry(key(registry, repository, tag)).or_default();
        row.seen = latest(row.seen.take(), Some((at, digest.to_owned())));
        row.first_seen_at = earliest(row.first_seen_at, Some(at));
    }

    /// Records that `tag` of `repository` was deleted at `at` (a delete event, or a sync that
    /// found it gone): the newest deletion wins.
    pub fn tag_deleted(&mut self, registry: &str, repository: &str, tag: &str, at: Time) {
        let row = self.tags.entry(key(registry, repository, tag)).or_default();
        row.deleted_at = latest(row.deleted_at, Some(at));
    }

    /// Records that manifest `digest` of `repository` was deleted at `at` (a delete by digest,
    /// or a sync that found it gone): the newest deletion wins.
    pub fn digest_deleted(&mut self, registry: &str, repository: &str, digest: &str, at: Time) {
        let deleted_at = self
            .digest_deletions
            .entry(key(registry, repository, digest))
            .or_insert(at);
        *deleted_at = (*deleted_at).max(at);
    }

    /// Adds `delta` version checks of `tag` (`""`: by digest) naming `key.digest` on `day`,
    /// and a resolve at `at` if given (the newest resolve is kept).
    pub(super) fn count_version_check(
        &mut self,
        day: NaiveDate,
        key: &super::pulls::Key,
        tag: &str,
        system: bool,
        delta: i64,
        at: Option<Time>,
    ) {
        let row = self
            .version_checks
            .entry(metric_key(day, key, tag, system))
            .or_insert((0, None));
        row.0 += delta;
        row.1 = latest(row.1, at);
    }

    /// Credits `sign` pulls of `key.digest` on `day` to `tag` instead of to no tag (a GET by
    /// digest that completes a resolve of the tag).
    pub(super) fn credit_tag_pull(
        &mut self,
        day: NaiveDate,
        key: &super::pulls::Key,
        tag: &str,
        system: bool,
        sign: i64,
    ) {
        *self
            .pull_metrics
            .entry(metric_key(day, key, tag, system))
            .or_default() += sign;
        *self
            .pull_metrics
            .entry(metric_key(day, key, "", system))
            .or_default() -= sign;
        let row = self
            .tags
            .entry((key.registry.clone(), key.repository.clone(), tag.to_owned()))
            .or_default();
        if system {
            row.system_pull_count += sign;
        } else {
            row.pull_count += sign;
        }
    }

    fn link_blob(
        &mut self,
        key: DigestKey,
        at: Time,
        size: Option<i64>,
        pushed: bool,
        mounted_from: Option<String>,
    ) {
        let row = self.blobs.entry(key).or_default();
        row.size = latest(row.size, size);
        row.first_pushed_at = earliest(row.first_pushed_at, Some(at));
        row.last_pushed_at = latest(row.last_pushed_at, Some(at));
        row.via_push |= pushed;
        row.via_mount |= !pushed;
        row.mounted_from = latest(row.mounted_from.take(), mounted_from);
    }

    fn repository(&mut self, registry: &str, repository: &str) -> &mut RepositoryRow {
        self.repositories
            .entry((registry.to_owned(), repository.to_owned()))
            .or_default()
    }

    fn actor(&mut self, e: &ModelEvent<'_>, repository: &str, action: &'static str) {
        let actor = e.event.actor.name.clone().unwrap_or_default();
        let key = (e.registry.to_owned(), repository.to_owned(), actor, action);
        self.actors
            .entry(key)
            .and_modify(|row| {
                row.events += 1;
                row.first_at = row.first_at.min(e.at);
                row.last_at = row.last_at.max(e.at);
            })
            .or_insert(ActorRow {
                events: 1,
                first_at: e.at,
                last_at: e.at,
            });
    }
}

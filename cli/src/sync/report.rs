//! What a sync did (or, in a dry run, would do): counts, and the differences per repository.

use super::diff::{Observation, RepositoryDiff, Source};
use chrono::{DateTime, Utc};
use std::fmt::{self, Write as _};

/// One repository's share of the report.
#[derive(Debug)]
pub(super) struct Outcome {
    tags_seen: usize,
    manifests_seen: usize,
    fetched: usize,
    cached: usize,
    unreadable: usize,
    diff: RepositoryDiff,
}

impl Outcome {
    pub(super) fn new(seen: &Observation, diff: RepositoryDiff) -> Self {
        let count = |wanted: &[Source]| {
            seen.manifests
                .values()
                .filter(|m| wanted.contains(&m.source))
                .count()
        };
        Self {
            tags_seen: seen.tags.len(),
            manifests_seen: seen.manifests.len(),
            fetched: count(&[Source::Fetched, Source::Pending]),
            cached: count(&[Source::Recorded, Source::Cached]),
            unreadable: count(&[Source::Unreadable]),
            diff,
        }
    }
}

/// A repository the sync could not complete; nothing of it was written.
#[derive(Debug)]
pub struct RepositoryFailure {
    /// The repository.
    pub repository: String,
    /// Why (with its causes).
    pub error: anyhow::Error,
}

/// What a sync did: the summary the CLI prints and the tests assert.
#[derive(Debug)]
pub struct SyncReport {
    /// The registry's canonical name.
    pub registry: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// When the sync started (the time of the tombstones of repositories gone).
    pub started_at: DateTime<Utc>,
    /// Repositories in the catalog.
    pub repositories: usize,
    /// Repositories regstat had live content for that the catalog no longer lists.
    pub repositories_gone: usize,
    /// Tags listed, each naming a digest.
    pub tags_seen: usize,
    /// Manifests found (led to by a tag, or confirmed by a `HEAD`).
    pub manifests_seen: usize,
    /// Manifests whose content was fetched from the registry (dry run: would be).
    pub manifests_fetched: usize,
    /// Manifests whose content was known without a request (database or client cache).
    pub manifests_cached: usize,
    /// Manifests that exist but whose content could not be read (denied, invalid).
    pub manifests_unreadable: usize,
    /// Tags new to regstat (not live before).
    pub tags_new: usize,
    /// Live tags found naming another digest.
    pub tags_moved: usize,
    /// Live tags marked gone.
    pub tags_gone: usize,
    /// Live manifests marked gone.
    pub manifests_gone: usize,
    /// The differences, per repository that had any, by repository name.
    pub differences: Vec<RepositoryDiff>,
    /// Repositories that failed and were left unchanged.
    pub failures: Vec<RepositoryFailure>,
}

impl SyncReport {
    pub(super) fn new(registry: &str, dry_run: bool, started_at: DateTime<Utc>) -> Self {
        Self {
            registry: registry.to_owned(),
            dry_run,
            started_at,
            repositories: 0,
            repositories_gone: 0,
            tags_seen: 0,
            manifests_seen: 0,
            manifests_fetched: 0,
            manifests_cached: 0,
            manifests_unreadable: 0,
            tags_new: 0,
            tags_moved: 0,
            tags_gone: 0,
            manifests_gone: 0,
            differences: Vec::new(),
            failures: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, outcome: Outcome) {
        self.tags_seen += outcome.tags_seen;
        self.manifests_seen += outcome.manifests_seen;
        self.manifests_fetched += outcome.fetched;
        self.manifests_cached += outcome.cached;
        self.manifests_unreadable += outcome.unreadable;
        self.tags_new += outcome.diff.new_tags.len();
        self.tags_moved += outcome.diff.moved_tags.len();
        self.tags_gone += outcome.diff.gone_tags.len();
        self.manifests_gone += outcome.diff.gone_manifests.len();
        if !outcome.diff.is_empty() {
            self.differences.push(outcome.diff);
        }
    }

    pub(super) fn sort(&mut self) {
        self.differences
            .sort_by(|a, b| a.repository.cmp(&b.repository));
        self.failures
            .sort_by(|a, b| a.repository.cmp(&b.repository));
    }

    /// Whether every repository was synced.
    pub fn is_complete(&self) -> bool {
        self.failures.is_empty()
    }

    /// One line: the counts.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "{}{}: {} repositories ({} gone), {} tags seen ({} new, {} moved, {} gone), \
             {} manifests seen ({} {}, {} cached, {} gone)",
            if self.dry_run {
                "dry run of "
            } else {
                "synced "
            },
            self.registry,
            self.repositories,
            self.repositories_gone,
            self.tags_seen,
            self.tags_new,
            self.tags_moved,
            self.tags_gone,
            self.manifests_seen,
            self.manifests_fetched,
            if self.dry_run { "to fetch" } else { "fetched" },
            self.manifests_cached,
            self.manifests_gone,
        );
        if self.manifests_unreadable > 0 {
            let _ = write!(line, ", {} unreadable", self.manifests_unreadable);
        }
        if !self.failures.is_empty() {
            let _ = write!(line, "; {} repositories failed", self.failures.len());
        }
        if self.dry_run {
            line.push_str("; nothing changed");
        }
        line
    }

    /// The differences, one line each (`+` new, `~` moved, `-` gone, `fetch` content to
    /// read), then the failures.
    pub fn differences_text(&self) -> String {
        let mut text = String::new();
        for diff in &self.differences {
            let repository = &diff.repository;
            if diff.repository_gone {
                let _ = writeln!(text, "- repository {repository} (not in the catalog)");
            }
            for (tag, digest) in &diff.new_tags {
                let _ = writeln!(text, "+ tag {repository}:{tag} -> {digest}");
            }
            for moved in &diff.moved_tags {
                let _ = writeln!(
                    text,
                    "~ tag {repository}:{} {} -> {}",
                    moved.tag, moved.from, moved.to
                );
            }
            for tag in &diff.gone_tags {
                let _ = writeln!(text, "- tag {repository}:{tag}");
            }
            for digest in &diff.new_manifests {
                let _ = writeln!(text, "+ manifest {repository}@{digest}");
            }
            for digest in &diff.gone_manifests {
                let _ = writeln!(text, "- manifest {repository}@{digest}");
            }
            for digest in &diff.fetched {
                let _ = writeln!(text, "  fetch {repository}@{digest}");
            }
        }
        for failure in &self.failures {
            let _ = writeln!(
                text,
                "! {} failed, left unchanged: {:#}",
                failure.repository, failure.error
            );
        }
        text
    }
}

/// A dry run: the differences and the summary. Otherwise: the failures and the summary.
impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            f.write_str(&self.differences_text())?;
        } else {
            for failure in &self.failures {
                writeln!(
                    f,
                    "! {} failed, left unchanged: {:#}",
                    failure.repository, failure.error
                )?;
            }
        }
        writeln!(f, "{}", self.summary())
    }
}

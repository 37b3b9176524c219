//! What regstat holds for a repository ([`Current`]), what the registry shows
//! ([`Observation`]), and the differences between them ([`RepositoryDiff`]).

use regstat_shared::content::Content;
use std::collections::{BTreeMap, BTreeSet};

/// A repository as regstat holds it now: its live tags and live manifests.
pub(super) type Current = regstat_store::sync::LiveState;

/// Where a seen manifest's content comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// Already recorded in this repository: nothing to fetch or write.
    Recorded,
    /// Known without a request: from another repository of the registry, or the client's
    /// cache.
    Cached,
    /// Fetched from the registry by this sync.
    Fetched,
    /// Dry run: would be fetched.
    Pending,
    /// It exists, but its content could not be read (access denied, invalid): recorded
    /// without content.
    Unreadable,
}

/// A manifest the registry has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    /// Its media type, when known.
    pub(super) media_type: Option<String>,
    /// Its size in bytes, when known.
    pub(super) size: Option<i64>,
    /// Content to record in this repository (none when already recorded or unknown).
    pub(super) content: Option<Content>,
    /// Where the content comes from.
    pub(super) source: Source,
}

/// What the registry shows for a repository.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Observation {
    /// Listed tag → the digest it names (a tag that vanished while being read is left out:
    /// it counts as not listed).
    pub(super) tags: BTreeMap<String, String>,
    /// Manifests that exist: led to by a tag (directly or as an index's child), or found by a
    /// `HEAD` by digest.
    pub(super) manifests: BTreeMap<String, Seen>,
    /// Live manifests the registry answered 404 for.
    pub(super) missing: BTreeSet<String>,
}

/// A tag that names another digest than regstat thought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedTag {
    /// The tag.
    pub tag: String,
    /// The digest regstat had.
    pub from: String,
    /// The digest the registry names.
    pub to: String,
}

/// How a repository in regstat differs from the registry (what a sync changes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryDiff {
    /// The repository.
    pub repository: String,
    /// The catalog no longer lists it: everything live in it is gone.
    pub repository_gone: bool,
    /// Tags the registry lists that are not live in regstat: (tag, digest).
    pub new_tags: Vec<(String, String)>,
    /// Live tags that name another digest in the registry.
    pub moved_tags: Vec<MovedTag>,
    /// Live tags the registry no longer lists.
    pub gone_tags: Vec<String>,
    /// Manifests the registry has that are not live in regstat.
    pub new_manifests: Vec<String>,
    /// Live manifests the registry no longer has.
    pub gone_manifests: Vec<String>,
    /// Manifests whose content is fetched (dry run: would be).
    pub fetched: Vec<String>,
}

impl RepositoryDiff {
    /// Whether regstat already agrees with the registry.
    pub fn is_empty(&self) -> bool {
        !self.repository_gone
            && self.new_tags.is_empty()
            && self.moved_tags.is_empty()
            && self.gone_tags.is_empty()
            && self.new_manifests.is_empty()
            && self.gone_manifests.is_empty()
            && self.fetched.is_empty()
    }
}

/// The differences between what regstat holds and what the registry shows.
pub(super) fn diff(repository: &str, current: &Current, seen: &Observation) -> RepositoryDiff {
    let mut diff = RepositoryDiff {
        repository: repository.to_owned(),
        ..RepositoryDiff::default()
    };
    for (tag, digest) in &seen.tags {
        match current.tags.get(tag) {
            None => diff.new_tags.push((tag.clone(), digest.clone())),
            Some(held) if held != digest => diff.moved_tags.push(MovedTag {
                tag: tag.clone(),
                from: held.clone(),
                to: digest.clone(),
            }),
            Some(_) => {}
        }
    }
    diff.gone_tags = current
        .tags
        .keys()
        .filter(|tag| !seen.tags.contains_key(*tag))
        .cloned()
        .collect();
    for (digest, manifest) in &seen.manifests {
        if !current.manifests.contains(digest) {
            diff.new_manifests.push(digest.clone());
        }
        if matches!(manifest.source, Source::Fetched | Source::Pending) {
            diff.fetched.push(digest.clone());
        }
    }
    diff.gone_manifests = seen
        .missing
        .iter()
        .filter(|digest| current.manifests.contains(*digest))
        .cloned()
        .collect();
    diff
}

/// Everything live in a repository the catalog no longer lists is gone.
pub(super) fn gone(repository: &str, current: &Current) -> (Observation, RepositoryDiff) {
    let seen = Observation {
        missing: current.manifests.clone(),
        ..Observation::default()
    };
    let mut diff = diff(repository, current, &seen);
    diff.repository_gone = true;
    (seen, diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(source: Source) -> Seen {
        Seen {
            media_type: None,
            size: None,
            content: None,
            source,
        }
    }

    fn strings<const N: usize>(items: [&str; N]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn new_moved_and_gone() {
        let current = Current {
            tags: [("same", "d1"), ("moved", "d1"), ("gone", "d2")]
                .map(|(t, d)| (t.to_owned(), d.to_owned()))
                .into(),
            manifests: ["d1", "d2", "d4"].map(str::to_owned).into(),
        };
        let observation = Observation {
            tags: [("same", "d1"), ("moved", "d3"), ("new", "d3")]
                .map(|(t, d)| (t.to_owned(), d.to_owned()))
                .into(),
            manifests: [
                ("d1".to_owned(), seen(Source::Recorded)),
                ("d3".to_owned(), seen(Source::Fetched)),
                ("d4".to_owned(), seen(Source::Cached)),
            ]
            .into(),
            missing: ["d2", "d9"].map(str::to_owned).into(),
        };
        let diff = diff("r", &current, &observation);
        assert_eq!(diff.new_tags, [("new".to_owned(), "d3".to_owned())]);
        assert_eq!(
            diff.moved_tags,
            [MovedTag {
                tag: "moved".into(),
                from: "d1".into(),
                to: "d3".into()
            }]
        );
        assert_eq!(diff.gone_tags, strings(["gone"]));
        assert_eq!(diff.new_manifests, strings(["d3"]));
        // d9 was not live: nothing changes for it.
        assert_eq!(diff.gone_manifests, strings(["d2"]));
        assert_eq!(diff.fetched, strings(["d3"]));
        assert!(!diff.is_empty());
    }

    #[test]
    fn agreement_is_empty() {
        let current = Current {
            tags: [("v1".to_owned(), "d1".to_owned())].into(),
            manifests: ["d1".to_owned()].into(),
        };
        let observation = Observation {
            tags: current.tags.clone(),
            manifests: [("d1".to_owned(), seen(Source::Recorded))].into(),
            missing: BTreeSet::new(),
        };
        assert!(diff("r", &current, &observation).is_empty());
    }

    #[test]
    fn a_gone_repository_loses_everything_live() {
        let current = Current {
            tags: [("v1".to_owned(), "d1".to_owned())].into(),
            manifests: ["d1", "d2"].map(str::to_owned).into(),
        };
        let (observation, diff) = gone("r", &current);
        assert!(observation.tags.is_empty() && observation.manifests.is_empty());
        assert!(diff.repository_gone);
        assert_eq!(diff.gone_tags, strings(["v1"]));
        assert_eq!(diff.gone_manifests, strings(["d1", "d2"]));
    }
}

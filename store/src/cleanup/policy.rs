//! Cleanup policies: which tags and untagged manifests may go, in the vocabulary of Harbor's and
//! zot's retention rules.
//!
//! ```toml
//! [[policy]]                       # the first policy whose repositories match wins
//! repositories = ["team-a/**"]     # globs; exclude_repositories = [...]
//! keep.tags = ['^v\d+\.\d+\.\d+$', "latest"]   # regexes, always kept
//! keep.used_within = "30d"         # last used = latest of non-system pull, version check, push
//! keep.pushed_within = "14d"
//! keep.most_recently_used = 5
//! keep.most_recently_pushed = 5
//! untagged = "delete"              # or "keep"; children of a kept index are never untagged
//! min_age = "24h"                  # nothing younger is ever a candidate
//! ```
//!
//! Every rule keeps; rules combine with OR; a tag is a candidate only if no rule keeps it; a
//! repository no policy matches is kept whole. An invalid policy is refused with the key and the
//! reason named ([`PolicyError`]).

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::time::Duration;

/// Why a policy file was refused: the key (`policy[1].keep.tags[0]`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct PolicyError {
    /// Where, e.g. `policy[2].min_age` (the whole file: `policy`).
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl PolicyError {
    fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A policy file: its policies in order, and the hash that a plan records.
#[derive(Debug, Clone)]
pub struct Policies {
    /// The policies; the first whose repositories match a repository applies to it.
    pub policies: Vec<Policy>,
    /// `sha256:<hex>` of the file's text.
    pub hash: String,
}

/// What to do with manifests no tag points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Untagged {
    /// They are candidates (once older than `min_age`).
    Delete,
    /// They are kept.
    Keep,
}

/// One `[[policy]]`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its position in the file (0-based), to name it in reasons (`policy[0]`).
    pub index: usize,
    /// Repository globs it applies to.
    pub repositories: Vec<glob::Pattern>,
    /// Repository globs it does not apply to.
    pub exclude_repositories: Vec<glob::Pattern>,
    /// The keep rules.
    pub keep: Keep,
    /// Untagged manifests.
    pub untagged: Untagged,
    /// Nothing younger is a candidate.
    pub min_age: Duration,
}

/// The keep rules of a policy; each keeps, and they combine with OR.
#[derive(Debug, Clone, Default)]
pub struct Keep {
    /// Tags matching any of these regexes are always kept.
    pub tags: Vec<regex::Regex>,
    /// Tags used (non-system pull, version check, push) within this long are kept.
    pub used_within: Option<Duration>,
    /// Tags pushed within this long are kept.
    pub pushed_within: Option<Duration>,
    /// The N most recently used tags of the repository are kept.
    pub most_recently_used: Option<usize>,
    /// The N most recently pushed tags of the repository are kept.
    pub most_recently_pushed: Option<usize>,
}

/// Repository names are matched with `*` within one path segment and `**` across segments.
pub(super) const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

impl Policy {
    /// Whether this policy applies to `repository`.
    pub fn applies_to(&self, repository: &str) -> bool {
        self.repositories
            .iter()
            .any(|p| p.matches_with(repository, MATCH))
            && !self
                .exclude_repositories
                .iter()
                .any(|p| p.matches_with(repository, MATCH))
    }
}

impl Policies {
    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text[..span.start.min(text.len())].lines().count().max(1));
            let reason = match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_owned(),
            };
            PolicyError::new("policy", reason)
        })?;
        if raw.policy.is_empty() {
            return Err(PolicyError::new(
                "policy",
                "the file has no [[policy]] table: nothing would ever be a candidate",
            ));
        }
        let policies = raw
            .policy
            .into_iter()
            .enumerate()
            .map(|(index, raw)| raw.check(index))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            policies,
            hash: format!("sha256:{:x}", Sha256::digest(text.as_bytes())),
        })
    }

    /// The policy that applies to `repository`: the first that matches, if any.
    pub fn for_repository(&self, repository: &str) -> Option<&Policy> {
        self.policies.iter().find(|p| p.applies_to(repository))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    policy: Vec<RawPolicy>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    repositories: Vec<String>,
    #[serde(default)]
    exclude_repositories: Vec<String>,
    #[serde(default)]
    keep: RawKeep,
    untagged: Option<Untagged>,
    min_age: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawKeep {
    #[serde(default)]
    tags: Vec<String>,
    used_within: Option<String>,
    pushed_within: Option<String>,
    most_recently_used: Option<usize>,
    most_recently_pushed: Option<usize>,
}

impl RawPolicy {
    fn check(self, index: usize) -> Result<Policy, PolicyError> {
        let key = |name: &str| format!("policy[{index}].{name}");
        if self.repositories.is_empty() {
            return Err(PolicyError::new(
                key("repositories"),
                "lists no repository glob: the policy would apply to nothing",
            ));
        }
        let globs = |name: &str, list: Vec<String>| {
            list.iter()
                .enumerate()
                .map(|(i, text)| {
                    glob::Pattern::new(text)
                        .map_err(|e| PolicyError::new(key(&format!("{name}[{i}]")), e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let tags = self
            .keep
            .tags
            .iter()
            .enumerate()
            .map(|(i, text)| {
                regex::Regex::new(text)
                    .map_err(|e| PolicyError::new(key(&format!("keep.tags[{i}]")), e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let duration =
            |name: &str, text: Option<String>| -> Result<Option<Duration>, PolicyError> {
                text.map(|text| {
                    humantime::parse_duration(&text).map_err(|e| {
                        PolicyError::new(
                            key(name),
                            format!("{text:?} is not a duration like \"30d\" or \"24h\": {e}"),
                        )
                    })
                })
                .transpose()
            };
        for (name, count) in [
            ("keep.most_recently_used", self.keep.most_recently_used),
            ("keep.most_recently_pushed", self.keep.most_recently_pushed),
        ] {
            if count == Some(0) {
                return Err(PolicyError::new(
                    key(name),
                    "0 keeps nothing: leave the rule out instead",
                ));
            }
        }
        let untagged = self.untagged.ok_or_else(|| {
            PolicyError::new(
                key("untagged"),
                "say what happens to untagged manifests: \"delete\" or \"keep\"",
            )
        })?;
        Ok(Policy {
            index,
            repositories: globs("repositories", self.repositories)?,
            exclude_repositories: globs("exclude_repositories", self.exclude_repositories)?,
            keep: Keep {
                tags,
                used_within: duration("keep.used_within", self.keep.used_within)?,
                pushed_within: duration("keep.pushed_within", self.keep.pushed_within)?,
                most_recently_used: self.keep.most_recently_used,
                most_recently_pushed: self.keep.most_recently_pushed,
            },
            untagged,
            min_age: duration("min_age", self.min_age)?.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[[policy]]
repositories = ["team-a/**"]
exclude_repositories = ["team-a/keep-*"]
keep.tags = ['^v\d+\.\d+\.\d+$', "^latest$"]
keep.used_within = "30d"
keep.pushed_within = "14d"
keep.most_recently_used = 5
keep.most_recently_pushed = 5
untagged = "delete"
min_age = "24h"

[[policy]]
repositories = ["*"]
untagged = "keep"
"#;

    #[test]
    fn the_example_parses_and_the_first_matching_policy_wins() {
        let policies = Policies::parse(EXAMPLE).expect("valid");
        assert_eq!(policies.policies.len(), 2);
        let first = &policies.policies[0];
        assert_eq!(
            first.keep.used_within,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(first.min_age, Duration::from_secs(86_400));
        assert_eq!(first.untagged, Untagged::Delete);
        assert!(first.keep.tags[0].is_match("v1.2.3"));
        assert!(!first.keep.tags[0].is_match("v1.2.3-rc1"));
        let index = |repository: &str| policies.for_repository(repository).map(|p| p.index);
        assert_eq!(index("team-a/app"), Some(0));
        assert_eq!(index("team-a/deep/app"), Some(0));
        assert_eq!(
            index("team-a/keep-this"),
            None,
            "excluded, and * is one segment"
        );
        assert_eq!(index("alpine"), Some(1));
        assert_eq!(index("team-b/app"), None, "no policy: kept whole");
        assert!(policies.hash.starts_with("sha256:"));
    }

    #[test]
    fn an_invalid_policy_is_refused_with_the_key_and_reason() {
        let refused = |text: &str| Policies::parse(text).expect_err(text);
        let cases = [
            ("", "policy"),
            (
                "[[policy]]\nrepositories = []\nuntagged = \"keep\"\n",
                "policy[0].repositories",
            ),
            ("[[policy]]\nrepositories = [\"a\"]\n", "policy[0].untagged"),
            (
                "[[policy]]\nrepositories = [\"a\"]\nuntagged = \"keep\"\nkeep.tags = [\"(\"]\n",
                "policy[0].keep.tags[0]",
            ),
            (
                "[[policy]]\nrepositories = [\"a\"]\nuntagged = \"keep\"\nmin_age = \"soon\"\n",
                "policy[0].min_age",
            ),
            (
                "[[policy]]\nrepositories = [\"a\"]\nuntagged = \"keep\"\nkeep.most_recently_used = 0\n",
                "policy[0].keep.most_recently_used",
            ),
            (
                "[[policy]]\nrepositories = [\"a[\"]\nuntagged = \"keep\"\n",
                "policy[0].repositories[0]",
            ),
        ];
        for (text, key) in cases {
            assert_eq!(refused(text).key, key, "{text}");
        }
        let unknown =
            refused("[[policy]]\nrepositories = [\"a\"]\nuntagged = \"keep\"\nkeep.tagz = []\n");
        assert!(unknown.reason.contains("tagz"), "{unknown}");
        let wrong = refused("[[policy]]\nrepositories = [\"a\"]\nuntagged = \"maybe\"\n");
        assert!(wrong.reason.contains("maybe"), "{wrong}");
    }
}

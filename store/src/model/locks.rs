//! The advisory locks a write of the model takes first in its transaction, in name order, so
//! that two transactions never wait for each other in a cycle:
//!
//! - a pull key's (one client's requests of one digest): pairing resolves with fetches
//!   ([`super::pulls`]);
//! - a manifest's platform (one digest in one repository), taken by whoever records a pull of
//!   it and whoever writes content that decides its platform (its own, or an index listing
//!   it): the cache of pulls per platform (`platform_pull_rows`) relies on it, since a content
//!   write marks the days the digest was pulled and must see a first pull committed beside
//!   it, or be seen by the refresher that computes that pull's day. Only a pull and a content
//!   write need to exclude each other: pulls of one manifest read nothing the others write
//!   under this lock, so they share it ([`Lock::platform_pulled`]) and content writes take it
//!   alone ([`Lock::platform_decided`]). A popular manifest is pulled in nearly every batch;
//!   held alone, its lock made concurrent workers write one batch at a time.
//!
//! Every transaction takes all its locks in one statement, in name order (a name wanted both
//! ways is taken alone), so no two transactions wait for each other in a cycle.

use regstat_shared::content::{Content, Role};
use sqlx::{Postgres, Transaction};

/// An advisory lock a transaction takes, alone or beside others taking it shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lock {
    name: String,
    exclusive: bool,
}

impl Lock {
    /// A lock only one transaction holds at a time.
    pub(crate) fn exclusive(name: String) -> Self {
        Self {
            name,
            exclusive: true,
        }
    }

    /// The platform lock of `digest` in `repository`, as a write of content that may decide
    /// its platform takes it: alone.
    pub(crate) fn platform_decided(registry: &str, repository: &str, digest: &str) -> Self {
        Self::exclusive(platform(registry, repository, digest))
    }

    /// The platform lock of `digest` in `repository`, as the recording of a pull of it takes
    /// it: beside other pulls' recordings, not beside a content write.
    pub(crate) fn platform_pulled(registry: &str, repository: &str, digest: &str) -> Self {
        Self {
            name: platform(registry, repository, digest),
            exclusive: false,
        }
    }
}

/// The name of the lock on the platform of `digest` in `repository`.
fn platform(registry: &str, repository: &str, digest: &str) -> String {
    ["platform", registry, repository, digest].join("\u{1f}")
}

/// The manifests whose platform writing `content` (of manifest `digest`) may decide: the
/// manifest itself and, for an index, the manifests it lists.
pub(crate) fn decided_by<'a>(
    digest: &'a str,
    content: &'a Content,
) -> impl Iterator<Item = &'a str> + 'a {
    std::iter::once(digest).chain(
        content
            .references
            .iter()
            .filter(|r| r.role == Role::Manifest)
            .map(|r| r.digest.as_str()),
    )
}

/// Takes `locks` in name order, each name once (alone if any of its entries is exclusive),
/// waiting for each.
pub(crate) async fn take(
    tx: &mut Transaction<'_, Postgres>,
    mut locks: Vec<Lock>,
) -> Result<(), sqlx::Error> {
    if locks.is_empty() {
        return Ok(());
    }
    // By name, exclusive entries first, so that deduplicating keeps them.
    locks.sort_by(|a, b| a.name.cmp(&b.name).then(b.exclusive.cmp(&a.exclusive)));
    locks.dedup_by(|later, first| later.name == first.name);
    let (names, exclusive): (Vec<String>, Vec<bool>) =
        locks.into_iter().map(|l| (l.name, l.exclusive)).unzip();
    sqlx::query(
        "SELECT CASE WHEN k.exclusive THEN pg_advisory_xact_lock(hashtextextended(k.name, 0))
                     ELSE pg_advisory_xact_lock_shared(hashtextextended(k.name, 0)) END
         FROM UNNEST($1::text[], $2::bool[]) WITH ORDINALITY AS k(name, exclusive, position)
         ORDER BY position",
    )
    .bind(names)
    .bind(exclusive)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

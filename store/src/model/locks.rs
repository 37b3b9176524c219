//! The advisory locks a write of the model takes first in its transaction, in name order, so
//! that two transactions never wait for each other in a cycle:
//!
//! - a pull key's (one client's requests of one digest): pairing resolves with fetches
//!   ([`super::pulls`]);
//! - a manifest's platform (one digest in one repository), taken by whoever records a pull of
//!   it and whoever writes content that decides its platform (its own, or an index listing
//!   it): the cache of pulls per platform (`platform_pull_rows`) relies on it, since a content
//!   write marks the days the digest was pulled and must see a first pull committed beside
//!   it, or be seen by the refresher that computes that pull's day.

use regstat_shared::content::{Content, Role};
use sqlx::{Postgres, Transaction};

/// The lock on the platform of `digest` in `repository`.
pub(crate) fn platform(registry: &str, repository: &str, digest: &str) -> String {
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

/// Takes the advisory locks named `names` (sorted, each once), waiting for each.
pub(crate) async fn take(
    tx: &mut Transaction<'_, Postgres>,
    mut names: Vec<String>,
) -> Result<(), sqlx::Error> {
    if names.is_empty() {
        return Ok(());
    }
    names.sort();
    names.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended(name, 0))
         FROM UNNEST($1::text[]) WITH ORDINALITY AS k(name, position)
         ORDER BY position",
    )
    .bind(names)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

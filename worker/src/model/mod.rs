//! The registry model: what each event changes in the derived state.
//!
//! [`Changes`] accumulates the effects of a batch of new events, coalesced per row key (sums,
//! earliest/latest times, newest push), and [`apply`] writes them with one set-based upsert
//! per table, in key order. Every merge is commutative and associative, in Rust and in SQL
//! alike, so the state depends only on the set of events, not on their order, their batching
//! or the number of workers. `docs/MODEL.md` states each rule and the event that drives it.

mod apply;
mod changes;
mod content;
mod known;

pub use apply::{ReferenceRow, apply, upsert_references};
pub use changes::{Changes, ClientKind, ModelEvent};
pub use content::{Content, FetchStatus, Reference, Role};
pub use known::{Known, Wanted, known_contents, known_contents_batch};

/// Media types of manifest lists / image indexes.
pub const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Whether a manifest media type is an index (multi-platform) rather than an image.
pub fn is_index(media_type: Option<&str>) -> bool {
    media_type.is_some_and(|m| INDEX_MEDIA_TYPES.contains(&m))
}

#[cfg(test)]
mod tests;

//! The registry model: what each event, and each observation of `regstat sync`, changes in
//! the derived state.
//!
//! [`Changes`] accumulates the effects of a batch of new events ([`Changes::record`]) or of
//! a sync's observations and tombstones ([`Changes::observe_manifest`] and the like),
//! coalesced per row key (sums, earliest/latest times, newest push, newest observation), and
//! [`apply`] writes them with one set-based upsert per table, in key order. Events and
//! observations go through the same upserts. Every merge is commutative and associative, in
//! Rust and in SQL alike, so the state depends only on the set of events and observations,
//! not on their order, their batching or the number of workers. [`pulls`] pairs a client's
//! tag resolves with its fetches of their digest (containerd's pulls) and counts version
//! checks, with the same property. `docs/MODEL.md` states each rule and the event that drives
//! it.

mod apply;
mod changes;
mod known;
pub(crate) mod locks;
pub mod pulls;

pub use apply::{apply, write};
pub use changes::{Changes, ClientKind, ModelEvent};
pub use known::{Known, Wanted, known_contents, known_contents_batch};
pub use regstat_shared::content::{Content, FetchStatus, Reference, Role, is_index};

#[cfg(test)]
mod tests;

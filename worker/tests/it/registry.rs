//! The registry client (`regstat_registry`) against a real distribution registry
//! (Debian's `docker-registry`, fed by skopeo: plain, htpasswd and TLS), and against small
//! in-process servers where a real registry cannot show the behaviour (token auth, storage
//! redirects, failures).

mod failures;
pub mod fake;
mod real;
// The shared support module, where `super::support` finds it.
use crate::support;
mod token;

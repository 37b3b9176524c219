//! What can go: cleanup policies ([`policy`]) and the decision they make for each tag and
//! untagged manifest of a repository ([`decide`]), read-only. The plan that the CLI prints and
//! applies, and the console shows, is built from these.

pub mod decide;
pub mod inventory;
pub mod plan;
pub mod policy;

#[cfg(test)]
mod tests;

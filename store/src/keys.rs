//! How event ids and other UUIDs of an event are stored: as PostgreSQL `uuid`s (16 bytes)
//! rather than text (37), in the ledger, `regstat.event_ids` and
//! `regstat.manifest_requests` (migration `20261203000022_uuid_ids.sql`, issue 16).
//!
//! A registry's ids are UUIDs, and a `uuid` column gives one back exactly when it was spelled
//! as PostgreSQL spells it (lowercase, hyphenated). Any other value keeps its spelling in
//! `raw_rest` ([`crate::ledger::LedgerRow::rest`] takes out only what a column gives back).

use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid};

/// `value` as a `uuid` column holds it, when the column gives it back as sent: a UUID spelled
/// lowercase and hyphenated. `None` for anything else (upper case, braces, no hyphens, not a
/// UUID).
pub fn uuid_column(value: &str) -> Option<Uuid> {
    Uuid::try_parse(value)
        .ok()
        .filter(|uuid| uuid.hyphenated().to_string() == value)
}

/// The key an event id is stored and deduplicated under (`regstat.events.id`,
/// `regstat.event_ids.id`, `regstat.manifest_requests.event_id`): the id itself when it is a
/// UUID a `uuid` column gives back as sent ([`uuid_column`]); otherwise the version-8 UUID of
/// the first 16 bytes of the id's SHA-256 (its spelling then stays in `raw_rest`).
/// `regstat.event_key(text)` (migration 22) is the same function in SQL, for lookups by hand
/// and for the migration; a ledger test checks that the two agree.
pub fn event_key(id: &str) -> Uuid {
    uuid_column(id).unwrap_or_else(|| {
        let hash = Sha256::digest(id.as_bytes());
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&hash[..16]);
        Builder::from_custom_bytes(bytes).into_uuid()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn only_a_uuid_spelled_as_postgresql_spells_it_is_a_column_value() {
        let id = "0f6b8a1e-3c2d-4e5f-9a8b-7c6d5e4f3a2b";
        assert_eq!(uuid_column(id).unwrap().to_string(), id);
        for other in [
            "0F6B8A1E-3C2D-4E5F-9A8B-7C6D5E4F3A2B",
            "{0f6b8a1e-3c2d-4e5f-9a8b-7c6d5e4f3a2b}",
            "0f6b8a1e3c2d4e5f9a8b7c6d5e4f3a2b",
            "urn:uuid:0f6b8a1e-3c2d-4e5f-9a8b-7c6d5e4f3a2b",
            "push-1",
            "",
        ] {
            assert_eq!(uuid_column(other), None, "{other}");
        }
    }

    #[test]
    fn an_id_that_is_not_a_column_uuid_is_keyed_by_its_hash() {
        let id = "0f6b8a1e-3c2d-4e5f-9a8b-7c6d5e4f3a2b";
        assert_eq!(event_key(id).to_string(), id);
        let upper = event_key(&id.to_uppercase());
        assert_ne!(upper, event_key(id));
        assert_eq!(upper.get_version_num(), 8);
        assert_eq!(event_key("push-1"), event_key("push-1"));
        assert_ne!(event_key("push-1"), event_key("push-2"));
    }
}

//! The event ledger: `regstat.events`, one row per distinct event id, and `regstat.event_ids`,
//! where an id's uniqueness is decided.
//!
//! The ledger is range-partitioned by `received_at` (so no key of it could make `id` unique,
//! and it has none); [`insert`] admits each id through `regstat.event_ids` first
//! and writes ledger rows for the admitted ids only, in one statement. Partitions and
//! retention are [`crate::retention`]'s.

use crate::keys::{event_key, uuid_column};
use crate::model::locks;
use crate::model::pulls::{self, Request};
use crate::model::{Changes, ClientKind, Content, ModelEvent};
use chrono::{DateTime, Utc};
use regstat_shared::event::Event;
use serde_json::Value;
use serde_json::value::RawValue;
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// SQLSTATE of the database's refusal to admit an unknown event id received before the dedupe
/// horizon (its id may have been recorded and forgotten since): see [`insert`]. Not transient:
/// the event is dead-lettered again rather than counted twice.
pub const BEYOND_DEDUPE_HORIZON: &str = "RS001";

/// One ledger row, decoded from a message.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    /// Event id as sent: unique in the ledger (decided by `regstat.event_ids`, see [`insert`]),
    /// stored under its key ([`event_key`]).
    pub id: String,
    /// Event timestamp, or `received_at` when absent.
    pub occurred_at: DateTime<Utc>,
    /// Action as sent (`push`, `pull`, ... or unknown).
    pub action: String,
    /// `target.mediaType`.
    pub media_type: Option<String>,
    /// `target.digest`.
    pub digest: Option<String>,
    /// `target.size`.
    pub size: Option<i64>,
    /// `target.repository`.
    pub repository: Option<String>,
    /// `target.tag`.
    pub tag: Option<String>,
    /// `target.fromRepository` (mounts).
    pub from_repository: Option<String>,
    /// `actor.name`.
    pub actor: Option<String>,
    /// `request.id` (a `uuid` column: see [`uuid_column`]).
    pub request_id: Option<String>,
    /// `request.addr`.
    pub request_addr: Option<String>,
    /// `request.host`.
    pub request_host: Option<String>,
    /// `request.method`.
    pub request_method: Option<String>,
    /// `request.useragent`.
    pub request_useragent: Option<String>,
    /// `source.addr`.
    pub source_addr: Option<String>,
    /// `source.instanceID` (a `uuid` column: see [`uuid_column`]).
    pub source_instance_id: Option<String>,
    /// When the receiver accepted the event.
    pub received_at: DateTime<Utc>,
    /// The receiver's request id.
    pub correlation_id: Option<String>,
    /// The event JSON as received (stored as the columns plus what they do not hold,
    /// [`LedgerRow::rest`]; `regstat.event_json(row)` gives it back).
    pub raw: String,
}

impl LedgerRow {
    /// What the row stores of its event beyond its columns: `raw_rest`, the event minus every
    /// value one of the row's columns holds, where the event spells it exactly as the column's
    /// JSON (a value that is absent, `null`, spelled otherwise or of another type stays), and
    /// `target_url_prefix` when `target.url` ends with `/` and the digest (as a registry's
    /// URLs do): the URL is then taken out of the rest and only what precedes the digest is
    /// stored. An object of the event left empty by taking its fields out is left out too (one
    /// that was empty as sent stays). `regstat.event_json(row)` (migrations 17 and 21) puts
    /// each column back where the rest has nothing, creating its object if the rest has none,
    /// so it gives back exactly the event; it pairs columns and paths as
    /// `LedgerRow::fields` below does, and the ledger tests check the round trip. Only the
    /// event's own keys and those of its `target`, `actor`, `request` and `source` objects are
    /// parsed; every other value is kept as sent, byte for byte. An event that does not parse
    /// as such (it always does: the worker parsed it already) is stored whole, which
    /// `event_json` gives back unchanged too.
    pub fn rest(&self) -> Rest {
        self.strip().unwrap_or_else(|_| Rest {
            json: self.raw.clone(),
            target_url_prefix: None,
        })
    }

    fn strip(&self) -> Result<Rest, serde_json::Error> {
        let fields = self.fields();
        let mut event: JsonObject = serde_json::from_str(&self.raw)?;
        let mut target_url_prefix = None;
        let mut emptied = Vec::new();
        take(&mut event, &fields, None);
        for parent in ["target", "actor", "request", "source"] {
            let Some(value) = event.get_mut(parent) else {
                continue;
            };
            // Not an object (then no column came from it): kept as it is.
            let Ok(mut object) = serde_json::from_str::<JsonObject>(value.get()) else {
                continue;
            };
            let mut taken = take(&mut object, &fields, Some(parent));
            if parent == "target" {
                target_url_prefix = take_url(&mut object, self.digest.as_deref());
                taken |= target_url_prefix.is_some();
            }
            if taken && object.is_empty() {
                // Every field of it is a column's: `event_json` creates it as it puts them back.
                emptied.push(parent);
            } else if taken {
                *value = serde_json::value::to_raw_value(&object)?;
            }
        }
        for parent in emptied {
            event.remove(parent);
        }
        Ok(Rest {
            json: serde_json::to_string(&event)?,
            target_url_prefix,
        })
    }

    /// Where in the event each column comes from (the object, `None` for the event itself,
    /// and the key) with the column's value as JSON text, `None` for a NULL column.
    fn fields(&self) -> [(Option<&'static str>, &'static str, Option<String>); 16] {
        let text = |value: Option<&str>| value.map(|v| Value::from(v).to_string());
        let uuid = |value: Option<Uuid>| value.map(|v| Value::from(v.to_string()).to_string());
        [
            (None, "id", uuid(Some(event_key(&self.id)))),
            (None, "action", text(Some(&self.action))),
            (
                Some("target"),
                "mediaType",
                text(self.media_type.as_deref()),
            ),
            (Some("target"), "digest", text(self.digest.as_deref())),
            (Some("target"), "size", self.size.map(|s| s.to_string())),
            (
                Some("target"),
                "repository",
                text(self.repository.as_deref()),
            ),
            (Some("target"), "tag", text(self.tag.as_deref())),
            (
                Some("target"),
                "fromRepository",
                text(self.from_repository.as_deref()),
            ),
            (Some("actor"), "name", text(self.actor.as_deref())),
            (
                Some("request"),
                "id",
                uuid(self.request_id.as_deref().and_then(uuid_column)),
            ),
            (Some("request"), "addr", text(self.request_addr.as_deref())),
            (Some("request"), "host", text(self.request_host.as_deref())),
            (
                Some("request"),
                "method",
                text(self.request_method.as_deref()),
            ),
            (
                Some("request"),
                "useragent",
                text(self.request_useragent.as_deref()),
            ),
            (Some("source"), "addr", text(self.source_addr.as_deref())),
            (
                Some("source"),
                "instanceID",
                uuid(self.source_instance_id.as_deref().and_then(uuid_column)),
            ),
        ]
    }
}

/// What a ledger row stores of its event beyond its columns ([`LedgerRow::rest`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rest {
    /// `raw_rest`: the event minus the values the row's columns hold.
    pub json: String,
    /// `target_url_prefix`: `target.url` without its final `/` and digest, when it ends so
    /// and is spelled as its JSON string (it is then not in `json`).
    pub target_url_prefix: Option<String>,
}

/// A JSON object whose values are kept as sent.
type JsonObject = BTreeMap<String, Box<RawValue>>;

/// Takes `url` out of `target` when it is a string spelled as its JSON and ending with `/` and
/// `digest`, and returns what precedes that ending.
fn take_url(target: &mut JsonObject, digest: Option<&str>) -> Option<String> {
    let spelled = target.get("url")?.get();
    let url: String = serde_json::from_str(spelled).ok()?;
    // Compared as text: a URL with an escape serde_json would not write stays whole.
    if serde_json::to_string(&url).ok()? != spelled {
        return None;
    }
    let prefix = url.strip_suffix(digest?)?.strip_suffix('/')?.to_owned();
    target.remove("url");
    Some(prefix)
}

/// Removes from `object` (the event, or its member `parent`) each field of `fields` in it whose
/// value is spelled exactly as the column's; says whether it removed any.
fn take(
    object: &mut JsonObject,
    fields: &[(Option<&'static str>, &'static str, Option<String>)],
    parent: Option<&str>,
) -> bool {
    let mut taken = false;
    for (_, key, column) in fields.iter().filter(|(p, ..)| *p == parent) {
        if let Some(column) = column
            && object.get(*key).is_some_and(|value| value.get() == column)
        {
            object.remove(*key);
            taken = true;
        }
    }
    taken
}

/// One event to record: its ledger row and what the model needs to apply its effects.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// The ledger row.
    pub row: &'a LedgerRow,
    /// The parsed event.
    pub event: &'a Event,
    /// Canonical registry name.
    pub registry: &'a str,
    /// Who made the request.
    pub client: ClientKind,
    /// Manifest content for a pushed manifest, if known.
    pub content: Option<&'a Content>,
}

/// Records events in one transaction: ledger rows for the ids not recorded yet ([`insert`]),
/// then the effects on the registry model of exactly those, each id once even if `entries`
/// holds it twice, manifest requests paired as pulls within `pull_window`
/// ([`crate::model::pulls`]). Returns how many were new.
pub async fn record(
    pool: &PgPool,
    entries: &[Entry<'_>],
    pull_window: std::time::Duration,
) -> Result<usize, sqlx::Error> {
    let window = chrono::Duration::from_std(pull_window).unwrap_or(chrono::Duration::MAX);
    // Sorted by id, like the state tables by key, so concurrent workers take row locks in
    // the same order and cannot deadlock on overlapping batches.
    let mut rows: Vec<LedgerRow> = entries.iter().map(|e| e.row.clone()).collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let requests: Vec<Request> = entries
        .iter()
        .filter_map(|e| Request::of(&e.row.id, e.event, e.registry, e.row.occurred_at, e.client))
        .collect();
    let mut tx = pool.begin().await?;
    let mut locks = pulls::locks(&requests);
    for entry in entries {
        if let (Some(content), Some(target)) = (entry.content, entry.event.target.as_ref())
            && let (Some(repository), Some(digest)) = (&target.repository, &target.digest)
        {
            locks.extend(
                locks::decided_by(digest, content)
                    .map(|d| locks::Lock::platform_decided(entry.registry, repository, d)),
            );
        }
    }
    locks::take(&mut tx, locks).await?;
    let inserted: HashSet<Uuid> = insert(&mut tx, &rows).await?.into_iter().collect();
    let mut changes = Changes::default();
    let mut applied = HashSet::new();
    let mut recorded_ids = Vec::new();
    for entry in entries {
        let key = event_key(&entry.row.id);
        if inserted.contains(&key) && applied.insert(key) {
            recorded_ids.push(entry.row.id.as_str());
            changes.record(&ModelEvent {
                id: &entry.row.id,
                event: entry.event,
                registry: entry.registry,
                at: entry.row.occurred_at,
                client: entry.client,
                content: entry.content,
            });
        }
    }
    let mut settled = HashSet::new();
    let new: Vec<Request> = requests
        .into_iter()
        .filter(|r| inserted.contains(&r.event_id) && settled.insert(r.event_id))
        .collect();
    pulls::settle(&mut tx, &new, window, &mut changes).await?;
    crate::model::apply(&mut tx, &changes).await?;
    tx.commit().await?;
    for id in recorded_ids {
        tracing::debug!(event.id = %id, "event recorded");
    }
    Ok(inserted.len())
}

/// Inserts rows whose id is not recorded yet, in one statement, and returns the keys
/// ([`event_key`]) of the ids that were new. Ids already recorded (redeliveries, registry
/// retries) are left untouched; an id twice in `rows` is new once, with its first row.
///
/// The key is admitted by `regstat.event_ids`, and only admitted keys get a ledger row, so the
/// returned keys are exactly those whose effects must be applied in the same transaction.
/// Nearly every batch is all new, so it is first inserted as such, in a savepoint: a plain
/// insert writes no speculative-insertion confirm record, as `ON CONFLICT` does (about 48 B of
/// WAL per event, issue 16). A batch holding a recorded id fails on the key (a concurrent
/// worker's insert of the same id is waited for first); it is rolled back to the savepoint and
/// inserted again with `ON CONFLICT (id) DO NOTHING`. An event received before the dedupe
/// horizon (its id may have been pruned) whose id is not known makes the statement fail with
/// [`BEYOND_DEDUPE_HORIZON`]: see docs/MODEL.md, "Ledger retention".
pub async fn insert(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[LedgerRow],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let rests: Vec<Rest> = rows.iter().map(LedgerRow::rest).collect();
    let mut attempt = sqlx::Acquire::begin(&mut **tx).await?;
    match admit(&mut attempt, rows, &rests, Admit::AllNew).await {
        Ok(keys) => {
            attempt.commit().await?;
            Ok(keys)
        }
        Err(error) if is_recorded_id(&error) => {
            attempt.rollback().await?;
            admit(tx, rows, &rests, Admit::SkipRecorded).await
        }
        Err(error) => Err(error),
    }
}

/// How [`admit`] treats an id `regstat.event_ids` holds already.
#[derive(Debug, Clone, Copy)]
enum Admit {
    /// Fails on it (the batch is expected to be new).
    AllNew,
    /// Skips it.
    SkipRecorded,
}

/// Whether `error` is `regstat.event_ids`' key refusing an id recorded already.
fn is_recorded_id(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation() && e.constraint() == Some("event_ids_pkey"))
}

/// The statement of [`insert`]: admits the batch's keys in `regstat.event_ids` as `mode`
/// says, writes the ledger rows of the admitted ones, and returns their keys.
async fn admit(
    conn: &mut PgConnection,
    rows: &[LedgerRow],
    rests: &[Rest],
    mode: Admit,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let uuids = |field: fn(&LedgerRow) -> Option<&str>| {
        rows.iter()
            .map(|r| field(r).and_then(uuid_column))
            .collect::<Vec<_>>()
    };
    // Column arrays for UNNEST: one round trip whatever the batch size.
    sqlx::query_scalar(AssertSqlSafe(format!(
        "WITH batch AS (
             -- The first row of each id, in the caller's order.
             SELECT DISTINCT ON (id) *
             FROM UNNEST($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                         $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $11::uuid[], $12::text[], $13::text[], $14::text[], $15::text[],
                         $16::text[], $17::uuid[], $18::timestamptz[], $19::text[], $20::text[],
                         $21::text[])
                  WITH ORDINALITY
                  AS t(id, occurred_at, action, media_type, digest, size, repository, tag,
                       from_repository, actor, request_id, request_addr, request_host,
                       request_method, request_useragent, source_addr, source_instance_id,
                       received_at, correlation_id, raw, target_url_prefix, position)
             ORDER BY id, position
         ), admitted AS (
             INSERT INTO regstat.event_ids (id, received_at)
             SELECT id, received_at FROM batch ORDER BY id
             {on_conflict}
             RETURNING id
         ), stored AS (
             INSERT INTO regstat.events (
                 id, occurred_at, action, media_type, digest, size, repository, tag,
                 from_repository, actor, request_id, request_addr, request_host,
                 request_method, request_useragent, source_addr, source_instance_id,
                 received_at, correlation_id, raw_rest, target_url_prefix)
             SELECT id, occurred_at, action, media_type, digest, size, repository, tag,
                    from_repository, actor, request_id, request_addr, request_host,
                    request_method, request_useragent, source_addr, source_instance_id,
                    received_at, correlation_id, raw::jsonb, target_url_prefix
             FROM batch JOIN admitted USING (id)
             RETURNING id
         )
         SELECT id FROM stored",
        on_conflict = match mode {
            Admit::AllNew => "",
            Admit::SkipRecorded => "ON CONFLICT (id) DO NOTHING",
        }
    )))
    .bind(rows.iter().map(|r| event_key(&r.id)).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.occurred_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>())
    .bind(texts(rows, |r| r.media_type.as_deref()))
    .bind(texts(rows, |r| r.digest.as_deref()))
    .bind(rows.iter().map(|r| r.size).collect::<Vec<_>>())
    .bind(texts(rows, |r| r.repository.as_deref()))
    .bind(texts(rows, |r| r.tag.as_deref()))
    .bind(texts(rows, |r| r.from_repository.as_deref()))
    .bind(texts(rows, |r| r.actor.as_deref()))
    .bind(uuids(|r| r.request_id.as_deref()))
    .bind(texts(rows, |r| r.request_addr.as_deref()))
    .bind(texts(rows, |r| r.request_host.as_deref()))
    .bind(texts(rows, |r| r.request_method.as_deref()))
    .bind(texts(rows, |r| r.request_useragent.as_deref()))
    .bind(texts(rows, |r| r.source_addr.as_deref()))
    .bind(uuids(|r| r.source_instance_id.as_deref()))
    .bind(rows.iter().map(|r| r.received_at).collect::<Vec<_>>())
    .bind(texts(rows, |r| r.correlation_id.as_deref()))
    .bind(rests.iter().map(|r| r.json.as_str()).collect::<Vec<_>>())
    .bind(
        rests
            .iter()
            .map(|r| r.target_url_prefix.as_deref())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await
}

/// One optional text column of `rows`, borrowed.
fn texts<'a>(
    rows: &'a [LedgerRow],
    field: impl Fn(&'a LedgerRow) -> Option<&'a str>,
) -> Vec<Option<&'a str>> {
    rows.iter().map(field).collect()
}

/// Which of `ids` are already recorded (in `regstat.event_ids`, which remembers an id at least
/// as long as its ledger row).
pub async fn recorded(pool: &sqlx::PgPool, ids: &[&str]) -> Result<Vec<String>, sqlx::Error> {
    let by_key: HashMap<Uuid, &str> = ids.iter().map(|id| (event_key(id), *id)).collect();
    let keys: Vec<Uuid> = by_key.keys().copied().collect();
    let found: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM regstat.event_ids WHERE id = ANY($1)")
            .bind(keys)
            .fetch_all(pool)
            .await?;
    Ok(found
        .iter()
        .filter_map(|key| by_key.get(key).map(|id| (*id).to_owned()))
        .collect())
}

/// The number of ledger rows as the planner estimates it: the sum over the table's leaf
/// partitions (a partitioned parent holds no rows, and its own `reltuples` is only set by a
/// manual `ANALYZE`; `pg_partition_tree` lists nothing for a plain table, which counts
/// itself). Cheap on any size; partitions never vacuumed or analysed (`reltuples` -1) count 0.
pub async fn estimated_len<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::bigint
         FROM pg_class c
         WHERE c.relkind = 'r'
           AND (c.oid = 'regstat.events'::regclass
                OR c.oid IN (SELECT relid FROM pg_partition_tree('regstat.events'::regclass)))",
    )
    .fetch_one(db)
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    /// The id of the rows below: a UUID, as a registry sends, so a `uuid` column holds it.
    const ID: &str = "0f6b8a1e-3c2d-4e5f-9a8b-7c6d5e4f3a2b";

    fn row(raw: &str) -> LedgerRow {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        LedgerRow {
            id: ID.into(),
            occurred_at: at,
            action: "push".into(),
            media_type: None,
            digest: Some("sha256:aa".into()),
            size: Some(668),
            repository: Some("lab/app".into()),
            tag: None,
            from_repository: None,
            actor: None,
            request_id: None,
            request_addr: None,
            request_host: Some("a&b".into()),
            request_method: None,
            request_useragent: None,
            source_addr: None,
            source_instance_id: None,
            received_at: at,
            correlation_id: None,
            raw: raw.into(),
        }
    }

    #[test]
    fn the_rest_keeps_what_no_column_holds_as_sent() {
        // Spaced as distribution sends it; `host` escaped as Go escapes `&`.
        let raw = r#"{
            "id": "0f6b8a1e-3c2d-4e5f-9a8b-7c6d5e4f3a2b", "action": "push", "timestamp": "2026-11-22T10:17:32.623838084Z",
            "target": {"digest": "sha256:aa", "size": 668, "length": 668,
                       "repository": "other", "tag": null, "big": 123456789012345678901234567890},
            "request": {"host": "a\u0026b"}, "actor": {}, "extra": [1, 2.50]
        }"#;
        let mut rest: serde_json::Value = serde_json::from_str(&row(raw).rest().json).unwrap();
        // Too big for serde_json's numbers: checked in the text below.
        rest["target"].as_object_mut().unwrap().remove("big");
        assert_eq!(
            rest,
            json!({
                "timestamp": "2026-11-22T10:17:32.623838084Z",
                "target": {"length": 668, "repository": "other", "tag": null},
                "request": {"host": "a&b"}, "actor": {}, "extra": [1, 2.50]
            })
        );
        let text = row(raw).rest().json;
        assert!(
            text.contains("123456789012345678901234567890"),
            "kept byte for byte: {text}"
        );
        assert!(text.contains("2.50"), "kept byte for byte: {text}");
        assert!(text.contains(r#""a\u0026b""#), "kept as spelled: {text}");
    }

    #[test]
    fn a_url_ending_with_the_digest_is_stored_without_it() {
        let rest = row(r#"{"target": {"digest": "sha256:aa", "url": "http://r:5000/v2/lab/app/blobs/sha256:aa"}}"#).rest();
        assert_eq!(rest.json, "{}", "target's fields are all columns'");
        assert_eq!(
            rest.target_url_prefix.as_deref(),
            Some("http://r:5000/v2/lab/app/blobs")
        );
        // Kept whole: another digest, no slash before it, a JSON escape Go never writes.
        for url in [
            r#""http://r:5000/v2/lab/app/blobs/sha256:bb""#,
            r#""http://r:5000/v2/lab/app/blobssha256:aa""#,
            r#""http:\/\/r:5000\/v2\/lab\/app\/blobs\/sha256:aa""#,
            r#"{"href": "http://r:5000/v2/lab/app/blobs/sha256:aa"}"#,
        ] {
            let rest = row(&format!(
                r#"{{"target": {{"digest": "sha256:aa", "url": {url}}}}}"#
            ))
            .rest();
            assert_eq!(rest.json, format!(r#"{{"target":{{"url":{url}}}}}"#));
            assert_eq!(rest.target_url_prefix, None, "{url}");
        }
    }

    #[test]
    fn an_object_emptied_by_the_columns_is_left_out_and_an_empty_one_kept() {
        let raw = r#"{"target": {"digest": "sha256:aa", "size": 668},
                      "request": {"host": "a&b"}, "actor": {}, "source": {}}"#;
        assert_eq!(row(raw).rest().json, r#"{"actor":{},"source":{}}"#);
    }

    #[test]
    fn a_uuid_is_taken_out_only_when_spelled_as_its_column_gives_it_back() {
        let upper = ID.to_uppercase();
        let mut row = row(&format!(
            r#"{{"id": "{upper}", "request": {{"id": "{ID}"}}, "source": {{"instanceID": "{upper}"}}}}"#
        ));
        row.id = upper.clone();
        row.request_id = Some(ID.into());
        row.source_instance_id = Some(upper.clone());
        assert_eq!(
            row.rest().json,
            format!(r#"{{"id":"{upper}","source":{{"instanceID": "{upper}"}}}}"#)
        );
    }

    #[test]
    fn an_event_that_is_not_an_object_is_stored_whole() {
        let rest = row("[1]").rest();
        assert_eq!(rest.json, "[1]");
        assert_eq!(rest.target_url_prefix, None);
    }
}

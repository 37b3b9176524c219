//! Pulls as clients make them: a tag resolved (HEAD by tag) and then its digest fetched (GET
//! by digest) by the same client within the window is one pull of the tag; a resolve no fetch
//! follows is a version check. docs/MODEL.md, "Pulls and version checks", states the rules.
//!
//! A request's classification depends only on the requests of the same client and digest
//! within the window around it ([`classify`]). Each batch locks the keys it touches
//! (`locks`, taken by `locks::take` before anything else), stores its new requests,
//! reclassifies every stored request whose neighbourhood they joined, and adds the difference
//! of their contributions to [`Changes`]. So the counts are a sum over the final
//! classification of every request: the same whatever the order, batching, duplication or
//! number of workers.

use super::changes::{Changes, ClientKind};
use super::locks::Lock;
use crate::keys::event_key;
use chrono::{DateTime, Utc};
use regstat_shared::event::{Action, Event, Kind};
use sqlx::{Postgres, Transaction};
use std::collections::BTreeMap;
use uuid::Uuid;

type Time = DateTime<Utc>;

/// How a manifest was requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// The manifest itself was fetched.
    Get,
    /// Only its digest was asked for (a resolve).
    Head,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "GET" => Some(Method::Get),
            "HEAD" => Some(Method::Head),
            _ => None,
        }
    }
}

/// The requests that can pair: one client's requests of one digest in one repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Canonical registry name.
    pub registry: String,
    /// Repository.
    pub repository: String,
    /// The client's address without its port.
    pub client_addr: String,
    /// The client's User-Agent.
    pub client_agent: String,
    /// The manifest digest requested (or that the tag named).
    pub digest: String,
}

impl Key {
    /// The string the per-key lock is taken on.
    fn lock_name(&self) -> String {
        [
            self.registry.as_str(),
            &self.repository,
            &self.client_addr,
            &self.client_agent,
            &self.digest,
        ]
        .join("\u{1f}")
    }
}

/// One manifest HEAD or GET by a client (regstat's own requests never are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The event id's key ([`crate::keys::event_key`]), as `regstat.manifest_requests`
    /// stores it.
    pub event_id: Uuid,
    /// Who asked for which digest where.
    pub key: Key,
    /// The tag the request named (`None`: by digest).
    pub tag: Option<String>,
    /// HEAD or GET.
    pub method: Method,
    /// Event time.
    pub at: Time,
    /// An automated client (`worker.system_user_agents`).
    pub system: bool,
}

/// How a request counts now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Class {
    /// For a HEAD: whether it is a version check (no fetch of its digest by the client
    /// followed within the window).
    pub is_check: Option<bool>,
    /// For a GET by digest: the tag of the resolve it completes (`""`: none, a pull by
    /// digest).
    pub credited_tag: Option<String>,
}

impl Request {
    /// The request an event stands for: a manifest pull (HEAD or GET) naming a repository and
    /// a digest, by anyone but regstat itself.
    pub fn of(
        id: &str,
        event: &Event,
        registry: &str,
        at: Time,
        client: ClientKind,
    ) -> Option<Self> {
        if client == ClientKind::Own
            || event.action != Some(Action::Pull)
            || event.kind() != Kind::Manifest
        {
            return None;
        }
        let method = Method::parse(event.request.method.as_deref()?)?;
        let target = event.target.as_ref()?;
        Some(Self {
            event_id: event_key(id),
            key: Key {
                registry: registry.to_owned(),
                repository: target.repository.clone()?,
                client_addr: without_port(event.request.addr.as_deref().unwrap_or_default())
                    .to_owned(),
                client_agent: event.request.useragent.clone().unwrap_or_default(),
                digest: target.digest.clone()?,
            },
            tag: target.tag.clone(),
            method,
            at,
            system: client == ClientKind::System,
        })
    }

    /// Asks what the tag (or digest) names: a HEAD, or a GET by tag.
    fn resolves(&self) -> bool {
        self.method == Method::Head || self.tag.is_some()
    }

    /// Fetches the manifest: a GET, by tag or by digest.
    fn fetches(&self) -> bool {
        self.method == Method::Get
    }

    /// Ordering for ties: time, then event id.
    fn order(&self) -> (Time, Uuid) {
        (self.at, self.event_id)
    }
}

/// `host:port` or `[v6]:port` without the port.
fn without_port(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            host
        }
        _ => addr,
    }
}

/// How `request` counts among `neighbours` (the requests of its key; it may be among them):
/// - a HEAD is a version check unless a GET (by tag or digest) by the client follows it
///   within `window`;
/// - a GET by digest completes the newest resolve (HEAD, or GET by tag) at or before it
///   within `window`: credited to that resolve's tag when it was a HEAD by tag (a GET by tag
///   counted its own pull; a HEAD by digest names no tag), else to none;
/// - a GET by tag is its own pull and needs nothing.
pub fn classify(request: &Request, neighbours: &[Request], window: chrono::Duration) -> Class {
    let others = || neighbours.iter().filter(|n| n.event_id != request.event_id);
    match (request.method, &request.tag) {
        (Method::Head, _) => Class {
            is_check: Some(!others().any(|f| {
                f.fetches() && f.order() >= request.order() && f.at - request.at <= window
            })),
            credited_tag: None,
        },
        (Method::Get, None) => {
            let resolve = others()
                .filter(|r| {
                    r.resolves() && r.order() <= request.order() && request.at - r.at <= window
                })
                .max_by(|a, b| a.order().cmp(&b.order()));
            let tag = match resolve {
                Some(r) if r.method == Method::Head => r.tag.clone().unwrap_or_default(),
                _ => String::new(),
            };
            Class {
                is_check: None,
                credited_tag: Some(tag),
            }
        }
        (Method::Get, Some(_)) => Class::default(),
    }
}

/// Adds what `request` counts as under `class`, `sign` times (1 to add, -1 to take back).
fn contribute(changes: &mut Changes, request: &Request, class: &Class, sign: i64) {
    let day = request.at.date_naive();
    let key = &request.key;
    if class.is_check == Some(true) {
        let tag = request.tag.as_deref().unwrap_or_default();
        changes.count_version_check(day, key, tag, request.system, sign, None);
    }
    if let Some(tag) = class.credited_tag.as_deref().filter(|t| !t.is_empty()) {
        changes.credit_tag_pull(day, key, tag, request.system, sign);
    }
}

/// The advisory locks recording `requests` needs (see [`super::locks`]): their pull keys,
/// alone, and the platforms of the digests they fetch, shared.
pub(crate) fn locks(requests: &[Request]) -> Vec<Lock> {
    requests
        .iter()
        .flat_map(|r| {
            let key = &r.key;
            [
                Lock::exclusive(key.lock_name()),
                Lock::platform_pulled(&key.registry, &key.repository, &key.digest),
            ]
        })
        .collect()
}

/// Stores `new` (requests just recorded, their keys locked as [`locks`] says), reclassifies every
/// request whose neighbourhood they joined, and adds the differences to `changes`.
pub(crate) async fn settle(
    tx: &mut Transaction<'_, Postgres>,
    new: &[Request],
    window: chrono::Duration,
    changes: &mut Changes,
) -> Result<(), sqlx::Error> {
    if new.is_empty() {
        return Ok(());
    }
    insert(tx, new).await?;
    let spans = admit(new, changes);
    let stored = neighbourhoods(tx, &spans, window + window).await?;
    let updates = reclassify(&spans, &stored, window, changes);
    update(tx, &updates).await
}

/// Counts what new requests count whatever their class (the newest resolve of a tag each
/// day), and returns each key's span of new requests: their neighbours within one window may
/// change class, and classifying those needs the requests within two windows.
fn admit<'a>(new: &'a [Request], changes: &mut Changes) -> BTreeMap<&'a Key, (Time, Time)> {
    let mut spans: BTreeMap<&Key, (Time, Time)> = BTreeMap::new();
    for request in new {
        if request.method == Method::Head {
            let tag = request.tag.as_deref().unwrap_or_default();
            let day = request.at.date_naive();
            changes.count_version_check(
                day,
                &request.key,
                tag,
                request.system,
                0,
                Some(request.at),
            );
        }
        let span = spans
            .entry(&request.key)
            .or_insert((request.at, request.at));
        span.0 = span.0.min(request.at);
        span.1 = span.1.max(request.at);
    }
    spans
}

/// Per key of `spans`: reclassifies the stored requests (`stored`, with their stored class)
/// within one window of the span, adds the difference of each changed contribution to
/// `changes`, and returns the new classes to store.
fn reclassify(
    spans: &BTreeMap<&Key, (Time, Time)>,
    stored: &BTreeMap<Key, Vec<(Request, Class)>>,
    window: chrono::Duration,
    changes: &mut Changes,
) -> Vec<(Uuid, Class)> {
    let mut updates = Vec::new();
    for (key, (first, last)) in spans {
        let Some(rows) = stored.get(*key) else {
            continue;
        };
        let requests: Vec<Request> = rows.iter().map(|(r, _)| r.clone()).collect();
        for (request, old) in rows {
            if request.at < *first - window || request.at > *last + window {
                continue;
            }
            let class = classify(request, &requests, window);
            if class != *old {
                contribute(changes, request, old, -1);
                contribute(changes, request, &class, 1);
                updates.push((request.event_id, class));
            }
        }
    }
    updates
}

/// What [`settle`] does, on requests held in memory (unit tests): new requests join
/// `stored` unclassified, then are settled.
#[cfg(test)]
fn settle_in_memory(
    stored: &mut Vec<(Request, Class)>,
    new: &[Request],
    window: chrono::Duration,
    changes: &mut Changes,
) {
    for request in new {
        if stored.iter().all(|(r, _)| r.event_id != request.event_id) {
            stored.push((request.clone(), Class::default()));
        }
    }
    let spans = admit(new, changes);
    let mut by_key: BTreeMap<Key, Vec<(Request, Class)>> = BTreeMap::new();
    for (request, class) in stored.iter() {
        if spans.contains_key(&request.key) {
            by_key
                .entry(request.key.clone())
                .or_default()
                .push((request.clone(), class.clone()));
        }
    }
    for (id, class) in reclassify(&spans, &by_key, window, changes) {
        if let Some(row) = stored.iter_mut().find(|(r, _)| r.event_id == id) {
            row.1 = class;
        }
    }
}

async fn insert(tx: &mut Transaction<'_, Postgres>, new: &[Request]) -> Result<(), sqlx::Error> {
    let column = |f: fn(&Request) -> &str| new.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO regstat.manifest_requests (event_id, registry, repository, client_addr,
             client_agent, digest, tag, method, at, system)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::bool[])
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(new.iter().map(|r| r.event_id).collect::<Vec<_>>())
    .bind(column(|r| &r.key.registry))
    .bind(column(|r| &r.key.repository))
    .bind(column(|r| &r.key.client_addr))
    .bind(column(|r| &r.key.client_agent))
    .bind(column(|r| &r.key.digest))
    .bind(new.iter().map(|r| r.tag.as_deref()).collect::<Vec<_>>())
    .bind(column(|r| r.method.as_str()))
    .bind(new.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(new.iter().map(|r| r.system).collect::<Vec<_>>())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The stored requests of each key within `margin` of its span, with their stored class.
async fn neighbourhoods(
    tx: &mut Transaction<'_, Postgres>,
    spans: &BTreeMap<&Key, (Time, Time)>,
    margin: chrono::Duration,
) -> Result<BTreeMap<Key, Vec<(Request, Class)>>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Row {
        event_id: Uuid,
        registry: String,
        repository: String,
        client_addr: String,
        client_agent: String,
        digest: String,
        tag: Option<String>,
        method: String,
        at: Time,
        system: bool,
        is_check: Option<bool>,
        credited_tag: Option<String>,
    }
    let keys: Vec<&Key> = spans.keys().copied().collect();
    let column = |f: fn(&Key) -> &str| keys.iter().map(|k| f(k)).collect::<Vec<_>>();
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT r.event_id, r.registry, r.repository, r.client_addr, r.client_agent, r.digest,
                r.tag, r.method, r.at, r.system, r.is_check, r.credited_tag
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::timestamptz[], $7::timestamptz[])
              AS k(registry, repository, client_addr, client_agent, digest, low, high)
         JOIN regstat.manifest_requests r
           ON r.registry = k.registry AND r.repository = k.repository
          AND r.client_addr = k.client_addr AND r.client_agent = k.client_agent
          AND r.digest = k.digest AND r.at BETWEEN k.low AND k.high",
    )
    .bind(column(|k| &k.registry))
    .bind(column(|k| &k.repository))
    .bind(column(|k| &k.client_addr))
    .bind(column(|k| &k.client_agent))
    .bind(column(|k| &k.digest))
    .bind(
        spans
            .values()
            .map(|(first, _)| *first - margin)
            .collect::<Vec<_>>(),
    )
    .bind(
        spans
            .values()
            .map(|(_, last)| *last + margin)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut stored: BTreeMap<Key, Vec<(Request, Class)>> = BTreeMap::new();
    for row in rows {
        let Some(method) = Method::parse(&row.method) else {
            continue;
        };
        let key = Key {
            registry: row.registry,
            repository: row.repository,
            client_addr: row.client_addr,
            client_agent: row.client_agent,
            digest: row.digest,
        };
        let request = Request {
            event_id: row.event_id,
            key: key.clone(),
            tag: row.tag,
            method,
            at: row.at,
            system: row.system,
        };
        let class = Class {
            is_check: row.is_check,
            credited_tag: row.credited_tag,
        };
        stored.entry(key).or_default().push((request, class));
    }
    Ok(stored)
}

async fn update(
    tx: &mut Transaction<'_, Postgres>,
    updates: &[(Uuid, Class)],
) -> Result<(), sqlx::Error> {
    if updates.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE regstat.manifest_requests r
         SET is_check = u.is_check, credited_tag = u.credited_tag
         FROM UNNEST($1::uuid[], $2::bool[], $3::text[]) AS u(event_id, is_check, credited_tag)
         WHERE r.event_id = u.event_id",
    )
    .bind(updates.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(updates.iter().map(|(_, c)| c.is_check).collect::<Vec<_>>())
    .bind(
        updates
            .iter()
            .map(|(_, c)| c.credited_tag.as_deref())
            .collect::<Vec<_>>(),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;

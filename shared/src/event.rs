//! The distribution notification model.
//!
//! A registry POSTs an [`Envelope`] (`{"events": [...]}`) holding any number of events (in
//! practice exactly one). The receiver keeps every event as the raw JSON it was sent, so the
//! bytes that reach the worker are the bytes the registry wrote, and parses a typed [`Event`]
//! only to key, route and validate it.
//!
//! Parsing is lenient in the ways real registries need: unknown fields are ignored, unknown
//! actions are kept, and empty strings and zero sizes (which distribution 3.x sends for absent
//! values) mean "absent". It is strict where leniency would let garbage through: every nested
//! structure must be a JSON object (serde's derive would also take an array of the fields).
//!
//! Three levels of judgement, each giving an [`Invalid`] reason for the quarantine:
//! - [`Event::parse`]: the event has the notification schema;
//! - [`Event::validate`] (and [`Event::parse_valid`]): it can be keyed and routed (id, action,
//!   target);
//! - [`Event::parse_checked`]: what it names follows distribution's grammar (repository names,
//!   tags, digests), its sizes and id fit the pipeline, and [`check_storable`] says PostgreSQL
//!   can store its raw JSON. The receiver admits events with this one.

pub use crate::grammar::{
    MAX_REPOSITORY_BYTES, MAX_TAG_BYTES, digest_problem, repository_problem, tag_problem,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use std::marker::PhantomData;

/// Media type distribution puts on every blob event.
pub const BLOB_MEDIA_TYPE: &str = "application/octet-stream";

/// One notification request body. Each event stays raw JSON until [`Event::parse`] is called.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// The events, exactly as sent.
    #[serde(borrow)]
    pub events: Vec<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// Parses a request body; the error says what is wrong and where.
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<Object<Self>>(body).map(|envelope| envelope.0)
    }
}

/// One registry event. Every field is optional at this level: [`Event::validate`] decides
/// whether an event is usable.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Event {
    /// Unique id the registry gives the event; re-sent unchanged on every retry.
    #[serde(default, deserialize_with = "non_empty")]
    pub id: Option<String>,
    /// When the registry emitted the event.
    #[serde(default, deserialize_with = "timestamp")]
    pub timestamp: Option<DateTime<Utc>>,
    /// What happened.
    #[serde(default)]
    pub action: Option<Action>,
    /// What it happened to.
    #[serde(default, deserialize_with = "optional_object")]
    pub target: Option<Target>,
    /// The HTTP request to the registry that caused the event.
    #[serde(default, deserialize_with = "object_or_default")]
    pub request: Request,
    /// Who made that request (empty without registry auth).
    #[serde(default, deserialize_with = "object_or_default")]
    pub actor: Actor,
    /// The registry node that emitted the event.
    #[serde(default, deserialize_with = "object_or_default")]
    pub source: Source,
}

/// What an event reports. Unknown actions are kept, never rejected: a 4xx would make the
/// registry retry the event forever.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// A blob or manifest was uploaded.
    Push,
    /// A blob or manifest was fetched (GET or HEAD).
    Pull,
    /// A blob was linked into a repository from another one.
    Mount,
    /// A manifest, tag or blob was deleted.
    Delete,
    /// An action this version does not know.
    Other(String),
}

impl Action {
    /// The action as the registry spells it.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Mount => "mount",
            Action::Delete => "delete",
            Action::Other(other) => other,
        }
    }

    /// The first word of the routing key: the action, or `other` for unknown actions so that
    /// every event has a route.
    pub fn routing_word(&self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Mount => "mount",
            Action::Delete => "delete",
            Action::Other(_) => "other",
        }
    }
}

impl From<String> for Action {
    fn from(value: String) -> Self {
        match value.as_str() {
            "push" => Action::Push,
            "pull" => Action::Pull,
            "mount" => Action::Mount,
            "delete" => Action::Delete,
            _ => Action::Other(value),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Action::from)
    }
}

/// The object of an event.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Media type; [`BLOB_MEDIA_TYPE`] for blobs, absent on deletes.
    #[serde(default, deserialize_with = "non_empty")]
    pub media_type: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "non_zero")]
    pub size: Option<u64>,
    /// Content digest (`sha256:...`); absent on tag deletes.
    #[serde(default, deserialize_with = "non_empty")]
    pub digest: Option<String>,
    /// Legacy duplicate of `size`.
    #[serde(default, deserialize_with = "non_zero")]
    pub length: Option<u64>,
    /// Repository name, e.g. `library/nginx`.
    #[serde(default, deserialize_with = "non_empty")]
    pub repository: Option<String>,
    /// Source repository of a `mount`.
    #[serde(default, deserialize_with = "non_empty")]
    pub from_repository: Option<String>,
    /// URL built from the client's Host header: informative only, never fetched.
    #[serde(default, deserialize_with = "non_empty")]
    pub url: Option<String>,
    /// Tag, only when the registry request named one.
    #[serde(default, deserialize_with = "non_empty")]
    pub tag: Option<String>,
    /// Descriptors a manifest references (sent with `includereferences: true`).
    #[serde(default, deserialize_with = "objects")]
    pub references: Vec<Descriptor>,
}

/// A content descriptor inside `target.references`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default, deserialize_with = "non_empty")]
    pub media_type: Option<String>,
    /// Size in bytes.
    #[serde(default, deserialize_with = "non_zero")]
    pub size: Option<u64>,
    /// Digest of the referenced content.
    #[serde(default, deserialize_with = "non_empty")]
    pub digest: Option<String>,
}

/// The registry request behind an event.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Request {
    /// The registry's request id (shared by all events of one request).
    #[serde(default, deserialize_with = "non_empty")]
    pub id: Option<String>,
    /// Client address as the registry saw it.
    #[serde(default, deserialize_with = "non_empty")]
    pub addr: Option<String>,
    /// Host header the client used: names the registry the event is about.
    #[serde(default, deserialize_with = "non_empty")]
    pub host: Option<String>,
    /// HTTP method (`GET`, `HEAD`, `PUT`, `DELETE`...).
    #[serde(default, deserialize_with = "non_empty")]
    pub method: Option<String>,
    /// The client's User-Agent.
    #[serde(default, deserialize_with = "non_empty")]
    pub useragent: Option<String>,
}

/// The authenticated user behind an event.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Actor {
    /// User name; absent when the registry runs without auth.
    #[serde(default, deserialize_with = "non_empty")]
    pub name: Option<String>,
}

/// The registry node that emitted an event.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
pub struct Source {
    /// The node's address (`host:port`).
    #[serde(default, deserialize_with = "non_empty")]
    pub addr: Option<String>,
    /// Id of the registry process; changes on restart.
    #[serde(default, rename = "instanceID", deserialize_with = "non_empty")]
    pub instance_id: Option<String>,
}

/// What an event is about, as far as the event itself says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A manifest (any manifest media type, or a tag).
    Manifest,
    /// A blob (media type `application/octet-stream`).
    Blob,
    /// A digest with no media type: distribution's deletes of blobs and manifests look alike.
    Unknown,
}

impl Kind {
    /// The second word of the routing key.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::Blob => "blob",
            Kind::Unknown => "unknown",
        }
    }
}

/// Why an event that parsed as JSON cannot be processed. Such events go to the quarantine
/// queue with this reason; they are never dropped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Invalid {
    /// The event is not an object of the expected shape.
    #[error("event does not match the notification schema: {0}")]
    Schema(String),
    /// No `id`: the event cannot be deduplicated.
    #[error("event has no id")]
    MissingId,
    /// No `action`.
    #[error("event has no action")]
    MissingAction,
    /// No `target`.
    #[error("event has no target")]
    MissingTarget,
    /// An id too long to be a message id (AMQP short strings hold at most 255 bytes).
    #[error("event id is {0} bytes long, over the {MAX_ID_BYTES} an AMQP message id holds")]
    IdTooLong(usize),
    /// A field that breaks distribution's grammar or the pipeline's limits.
    #[error("{field} {value} {problem}")]
    Field {
        /// Where, e.g. `target.repository` or `target.references[2].digest`.
        field: String,
        /// The offending value, quoted and shortened.
        value: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Something PostgreSQL's `jsonb` cannot hold, so the event could never be stored.
    #[error("event cannot be stored: {0}")]
    Unstorable(&'static str),
}

impl Event {
    /// Parses one raw event.
    pub fn parse(raw: &[u8]) -> Result<Self, Invalid> {
        serde_json::from_slice::<Object<Self>>(raw)
            .map(|event| event.0)
            .map_err(|e| Invalid::Schema(bounded(e.to_string())))
    }

    /// Parses and checks that the event can be keyed and routed.
    pub fn parse_valid(raw: &[u8]) -> Result<Self, Invalid> {
        let event = Self::parse(raw)?;
        event.validate()?;
        Ok(event)
    }

    /// Checks that the event has what the pipeline needs: an id, an action and a target.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.id.is_none() {
            return Err(Invalid::MissingId);
        }
        if self.action.is_none() {
            return Err(Invalid::MissingAction);
        }
        if self.target.is_none() {
            return Err(Invalid::MissingTarget);
        }
        Ok(())
    }

    /// Parses an event the way the receiver admits it: [`Event::parse_valid`], then
    /// [`Event::check_fields`], then [`check_storable`] on the raw bytes. An event that fails
    /// goes to quarantine with the reason.
    ///
    /// The worker keeps using [`Event::parse_valid`]: what reaches its queues already passed here.
    pub fn parse_checked(raw: &[u8]) -> Result<Self, Invalid> {
        let event = Self::parse_valid(raw)?;
        event.check_fields()?;
        check_storable(raw)?;
        Ok(event)
    }

    /// Checks what the event names against distribution's grammar
    /// (`distribution/reference/regexp.go`, `opencontainers/go-digest`) and the pipeline's
    /// limits: the repository and mount source are repository names, the tag a tag, every
    /// digest a digest, every size fits PostgreSQL's `bigint`, the id fits a message id and the
    /// request's host fits a host name and port ([`MAX_HOST_BYTES`]).
    /// Absent values (including distribution 3.x's `""` and `0`) pass.
    pub fn check_fields(&self) -> Result<(), Invalid> {
        if let Some(id) = &self.id
            && id.len() > MAX_ID_BYTES
        {
            return Err(Invalid::IdTooLong(id.len()));
        }
        check("request.host", self.request.host.as_deref(), host_problem)?;
        let Some(target) = &self.target else {
            return Ok(());
        };
        check(
            "target.repository",
            target.repository.as_deref(),
            repository_problem,
        )?;
        check(
            "target.fromRepository",
            target.from_repository.as_deref(),
            repository_problem,
        )?;
        check("target.tag", target.tag.as_deref(), tag_problem)?;
        check("target.digest", target.digest.as_deref(), digest_problem)?;
        check_size("target.size", target.size)?;
        check_size("target.length", target.length)?;

        for (index, reference) in target.references.iter().enumerate() {
            check(
                &format!("target.references[{index}].digest"),
                reference.digest.as_deref(),
                digest_problem,
            )?;
            check_size(&format!("target.references[{index}].size"), reference.size)?;
        }
        Ok(())
    }

    /// What the event is about.
    pub fn kind(&self) -> Kind {
        let Some(target) = &self.target else {
            return Kind::Unknown;
        };
        match target.media_type.as_deref() {
            Some(BLOB_MEDIA_TYPE) => Kind::Blob,
            Some(_) => Kind::Manifest,
            None if target.tag.is_some() => Kind::Manifest,
            None => Kind::Unknown,
        }
    }

    /// Routing key `<action>.<kind>`, e.g. `push.manifest`, `pull.blob`, `delete.unknown`.
    pub fn routing_key(&self) -> String {
        let action = self.action.as_ref().map_or("other", Action::routing_word);
        format!("{action}.{}", self.kind().as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Content checks
//
// The name, tag and digest grammar is `crate::grammar`'s (the registry client checks what it
// puts into URLs with the same functions).
// ---------------------------------------------------------------------------------------------

/// Longest accepted event id: the id becomes the AMQP message id, a short string.
pub const MAX_ID_BYTES: usize = 255;

/// Deepest nesting of arrays and objects accepted in one event. Real events nest 4 levels;
/// PostgreSQL's `jsonb` parser recurses and fails somewhere past 10,000, which an event of a
/// few hundred kilobytes reaches. 128 is serde_json's own recursion limit.
pub const MAX_DEPTH: usize = 128;

/// Longest number literal accepted in an event, and largest decimal exponent. Both far inside
/// what PostgreSQL's `numeric` holds (131,072 digits before the point, 16,383 after), which a
/// literal such as `1e200000` exceeds.
const MAX_NUMBER_DIGITS: usize = 1000;
const MAX_NUMBER_EXPONENT: u64 = 10_000;

/// Longest reason kept from a parser message: the reason travels in an AMQP header, which must
/// fit in one frame, and in log lines, and serde quotes whole offending strings.
const MAX_REASON_BYTES: usize = 512;

/// How much of an offending value a reason quotes.
const SHOWN_CHARS: usize = 64;

/// Checks that raw event JSON can be stored in PostgreSQL's `jsonb`: no `\u0000` escape (or raw
/// NUL byte) anywhere, keys included; no unpaired UTF-16 surrogate escape; at most
/// [`MAX_DEPTH`] levels of nesting; no number literal out of `numeric`'s range. One pass, no
/// allocation; bytes that are not JSON are skipped, never a panic.
pub fn check_storable(raw: &[u8]) -> Result<(), Invalid> {
    let mut depth = 0_usize;
    let mut at = 0;
    while let Some(&byte) = raw.get(at) {
        at = match byte {
            b'"' => skip_string(raw, at + 1)?,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(Invalid::Unstorable(
                        "arrays and objects nest deeper than 128 levels",
                    ));
                }
                at + 1
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                at + 1
            }
            b'-' | b'0'..=b'9' => skip_number(raw, at)?,
            0 => return Err(Invalid::Unstorable(NUL)),
            _ => at + 1,
        };
    }
    Ok(())
}

const NUL: &str = "it contains U+0000, which PostgreSQL text and jsonb cannot hold";

/// Skips a string body from just after its opening quote; returns the index after the closing
/// quote (or the end).
fn skip_string(raw: &[u8], mut at: usize) -> Result<usize, Invalid> {
    while let Some(&byte) = raw.get(at) {
        match byte {
            b'"' => return Ok(at + 1),
            0 => return Err(Invalid::Unstorable(NUL)),
            b'\\' if raw.get(at + 1) == Some(&b'u') => {
                let unit = hex4(raw, at + 2);
                at += 6;
                match unit {
                    Some(0) => return Err(Invalid::Unstorable(NUL)),
                    Some(0xD800..=0xDBFF) => {
                        let low = if raw.get(at) == Some(&b'\\') && raw.get(at + 1) == Some(&b'u') {
                            hex4(raw, at + 2)
                        } else {
                            None
                        };
                        if !matches!(low, Some(0xDC00..=0xDFFF)) {
                            return Err(Invalid::Unstorable(SURROGATE));
                        }
                        at += 6;
                    }
                    Some(0xDC00..=0xDFFF) => return Err(Invalid::Unstorable(SURROGATE)),
                    _ => {}
                }
            }
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
    Ok(at)
}

const SURROGATE: &str =
    "it contains an unpaired UTF-16 surrogate escape, which is not Unicode text";

fn hex4(raw: &[u8], at: usize) -> Option<u16> {
    let digits = raw.get(at..at + 4)?;
    digits.iter().try_fold(0_u16, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        Some(value << 4 | u16::try_from(nibble).ok()?)
    })
}

/// Skips a number literal; fails when `numeric` could not hold it.
fn skip_number(raw: &[u8], start: usize) -> Result<usize, Invalid> {
    const TOO_BIG: &str = "it contains a number beyond what PostgreSQL's numeric holds";
    let mut at = start;
    let mut digits = 0_usize;
    let mut exponent = None::<u64>;
    while let Some(&byte) = raw.get(at) {
        match (byte, exponent.as_mut()) {
            (b'0'..=b'9', None) => digits += 1,
            (b'0'..=b'9', Some(value)) => {
                *value = value
                    .saturating_mul(10)
                    .saturating_add(u64::from(byte - b'0'));
            }
            (b'e' | b'E', None) => exponent = Some(0),
            (b'-' | b'+' | b'.', _) => {}
            _ => break,
        }
        at += 1;
    }
    if digits > MAX_NUMBER_DIGITS || exponent.is_some_and(|e| e > MAX_NUMBER_EXPONENT) {
        return Err(Invalid::Unstorable(TOO_BIG));
    }
    Ok(at)
}

/// Checks an optional field with `problem`, which says what is wrong with a present value.
fn check(
    field: &str,
    value: Option<&str>,
    problem: fn(&str) -> Option<&'static str>,
) -> Result<(), Invalid> {
    match value.and_then(|v| problem(v).map(|p| (v, p))) {
        None => Ok(()),
        Some((value, problem)) => Err(Invalid::Field {
            field: field.to_owned(),
            value: shown(value),
            problem,
        }),
    }
}

/// Longest `request.host`: a DNS name (253 bytes) and a port (`:65535`). The host becomes the
/// registry's name in every table and index when no configured registry claims it, and a
/// B-tree index entry holds at most about 2.7 kB: a host of a few kB cannot be stored (it was
/// dead-lettered by the database), and nothing longer than a host name and port is a real one.
pub const MAX_HOST_BYTES: usize = 259;

/// What is wrong with a `request.host`, if anything.
fn host_problem(host: &str) -> Option<&'static str> {
    (host.len() > MAX_HOST_BYTES).then_some("is longer than the 259 bytes of a host name and port")
}

/// Sizes land in PostgreSQL `bigint` columns.
fn check_size(field: &str, size: Option<u64>) -> Result<(), Invalid> {
    match size {
        Some(size) if i64::try_from(size).is_err() => Err(Invalid::Field {
            field: field.to_owned(),
            value: size.to_string(),
            problem: "is larger than 2^63 - 1 bytes",
        }),
        _ => Ok(()),
    }
}

/// A value quoted for a reason, cut to [`SHOWN_CHARS`] characters.
fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}... ({} bytes)", &value[..cut], value.len()),
    }
}

/// A parser message cut to [`MAX_REASON_BYTES`], keeping its start and its end (where serde
/// says the line and column).
fn bounded(message: String) -> String {
    if message.len() <= MAX_REASON_BYTES {
        return message;
    }
    let head = floor_char_boundary(&message, MAX_REASON_BYTES - 128);
    let tail = ceil_char_boundary(&message, message.len() - 100);
    format!("{} [...] {}", &message[..head], &message[tail..])
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

/// A `T` read only from a JSON object. serde's derived `Deserialize` also accepts an array of
/// the fields in declaration order, which would let `["id", null, "push", {}]` pass for a valid
/// event (and `[[...]]` for an envelope).
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

fn non_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.is_empty()))
}

fn non_zero<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<u64>::deserialize(deserializer)?.filter(|n| *n != 0))
}

/// An optional nested object (`target`): absent or `null` is `None`, anything but an object is
/// an error.
fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Object<T>>::deserialize(deserializer)?.map(|object| object.0))
}

/// A nested object that defaults when absent or `null` (`request`, `actor`, `source`).
fn object_or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(optional_object(deserializer)?.unwrap_or_default())
}

/// An array of objects (`references`); absent or `null` is empty.
fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<Object<T>>>::deserialize(deserializer)?
        .unwrap_or_default()
        .into_iter()
        .map(|object| object.0)
        .collect())
}

fn timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match non_empty(deserializer)? {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| {
                serde::de::Error::custom(format!("invalid timestamp {}: {e}", shown(&text)))
            }),
    }
}

#[cfg(test)]
mod tests;

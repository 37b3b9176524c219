//! The distribution notification model.
//!
//! A registry POSTs an [`Envelope`] (`{"events": [...]}`) holding any number of events (in
//! practice exactly one). The receiver keeps every event as the raw JSON it was sent, so the
//! bytes that reach the worker are the bytes the registry wrote, and parses a typed [`Event`]
//! only to key, route and validate it.
//!
//! Parsing is lenient in the ways real registries need: unknown fields are ignored, unknown
//! actions are kept, and empty strings and zero sizes (which distribution 3.x sends for absent
//! values) mean "absent".

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
    #[serde(default, deserialize_with = "null_as_default")]
    pub target: Option<Target>,
    /// The HTTP request to the registry that caused the event.
    #[serde(default, deserialize_with = "null_as_default")]
    pub request: Request,
    /// Who made that request (empty without registry auth).
    #[serde(default, deserialize_with = "null_as_default")]
    pub actor: Actor,
    /// The registry node that emitted the event.
    #[serde(default, deserialize_with = "null_as_default")]
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
    #[serde(default, deserialize_with = "null_as_default")]
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
}

impl Event {
    /// Parses one raw event.
    pub fn parse(raw: &[u8]) -> Result<Self, Invalid> {
        serde_json::from_slice::<Object<Self>>(raw)
            .map(|event| event.0)
            .map_err(|e| Invalid::Schema(e.to_string()))
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

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn timestamp<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    match non_empty(deserializer)? {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {text:?}: {e}"))),
    }
}

#[cfg(test)]
mod tests;

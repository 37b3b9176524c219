//! What a dead letter says about itself.
//!
//! A dead letter arrives one of two ways:
//! - the worker gave up on it (a permanent failure, or retries exhausted): it carries our
//!   headers ([`REASON_HEADER`], [`ERROR_KIND_HEADER`], [`ATTEMPTS_HEADER`],
//!   [`LAST_FAILURE_HEADER`]...);
//! - the broker dead-lettered it after the work queue's delivery limit (workers kept crashing
//!   on it): it carries only RabbitMQ's `x-death` array, most recent death first, whose
//!   `reason` is `delivery_limit`.
//!
//! Either way the body is the event as the registry sent it and the routing key is the
//! original one, so the event can be replayed to the events exchange unchanged.

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use regstat_shared::event::Event;
use regstat_shared::topology::{
    ATTEMPTS_HEADER, ERROR_KIND_HEADER, FIRST_FAILURE_HEADER, LAST_FAILURE_HEADER, REASON_HEADER,
    RECEIVED_AT_HEADER, header_i64, header_str,
};
use serde::Serialize;

/// RabbitMQ's dead-lettering history header.
pub const X_DEATH_HEADER: &str = "x-death";

/// RabbitMQ's count of earlier deliveries of a quorum-queue message (the worker copies it
/// from the work queue's delivery when it dead-letters; stale after a replay).
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// Headers that describe a failure, removed on replay so that the replayed event starts over
/// (attempts from zero, no stale reason). Everything else, such as when the receiver accepted
/// the event, is kept. RabbitMQ's `x-first-death-*` and `x-last-death-*` are removed too.
pub const FAILURE_HEADERS: [&str; 7] = [
    REASON_HEADER,
    ERROR_KIND_HEADER,
    ATTEMPTS_HEADER,
    FIRST_FAILURE_HEADER,
    LAST_FAILURE_HEADER,
    X_DEATH_HEADER,
    DELIVERY_COUNT_HEADER,
];

/// One dead letter as an operator sees it. Fields are `None` (blank in a table, `null` in
/// JSON) when the message does not say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The event id (the AMQP `message_id`, else the `id` in the body): what `--id` selects.
    pub id: Option<String>,
    /// The event's action, read from the body (best effort).
    pub action: Option<String>,
    /// The event's repository, read from the body (best effort).
    pub repository: Option<String>,
    /// Our failure kind (`invalid_event`, `registry_unavailable`...); absent when the broker
    /// dead-lettered the message.
    pub error_kind: Option<String>,
    /// Why it was dead-lettered: our reason, else the broker's (`delivery_limit`).
    pub reason: Option<String>,
    /// How many times the worker tried it (our count). `None` when the broker dead-lettered
    /// it: then the work queue's delivery limit was reached, and the `x-delivery-count` the
    /// message carries in the dead queue counts deliveries from the dead queue, not attempts.
    pub attempts: Option<i64>,
    /// Seconds since it failed last (our last-failure time, else the broker's dead-lettering
    /// time, else the message's AMQP timestamp).
    pub age_secs: Option<i64>,
    /// The original routing key, used again on replay.
    pub routing_key: String,
    /// When the receiver accepted the event (what the dedupe horizon is compared with).
    pub received_at: Option<DateTime<Utc>>,
}

impl DeadLetter {
    /// Reads a dead letter's fields from its routing key, properties and body, with ages
    /// relative to `now`.
    pub fn read(
        routing_key: &str,
        properties: &BasicProperties,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Self {
        let headers = properties.headers();
        let event = Event::parse(body).ok();
        let death = latest_death(headers);
        let failed_at = header_i64(headers, LAST_FAILURE_HEADER)
            .and_then(DateTime::from_timestamp_millis)
            .or_else(|| death.and_then(|d| table_i64(d, "time")).and_then(from_secs))
            .or_else(|| {
                properties
                    .timestamp()
                    .and_then(|t| i64::try_from(t).ok())
                    .and_then(from_secs)
            });
        let id = properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .or_else(|| event.as_ref().and_then(|e| e.id.clone()));
        Self {
            id,
            action: event
                .as_ref()
                .and_then(|e| e.action.as_ref())
                .map(|a| a.as_str().to_owned()),
            repository: event
                .as_ref()
                .and_then(|e| e.target.as_ref())
                .and_then(|t| t.repository.clone()),
            error_kind: header_str(headers, ERROR_KIND_HEADER).map(str::to_owned),
            reason: header_str(headers, REASON_HEADER)
                .or_else(|| death.and_then(|d| table_str(d, "reason")))
                .or_else(|| header_str(headers, "x-first-death-reason"))
                .map(str::to_owned),
            attempts: header_i64(headers, ATTEMPTS_HEADER),
            age_secs: failed_at.map(|at| (now - at).num_seconds().max(0)),
            routing_key: routing_key.to_owned(),
            received_at: header_i64(headers, RECEIVED_AT_HEADER)
                .and_then(DateTime::from_timestamp_millis),
        }
    }

    /// Whether the event was received before `horizon` (the dedupe horizon): its id may have
    /// been forgotten, so the worker would refuse it (docs/MODEL.md, "Ledger retention").
    /// Unknown when the letter does not say when it was received: then `false`.
    pub fn before(&self, horizon: Option<DateTime<Utc>>) -> bool {
        matches!((self.received_at, horizon), (Some(at), Some(horizon)) if at < horizon)
    }
}

/// The headers a replayed event is published with: the dead letter's, minus
/// [`FAILURE_HEADERS`] and RabbitMQ's `x-first-death-*` / `x-last-death-*`.
pub fn replay_headers(headers: &Option<FieldTable>) -> FieldTable {
    let mut kept = FieldTable::default();
    for (name, value) in headers.iter().flat_map(|table| table.inner()) {
        let name_str = name.as_str();
        let failure = FAILURE_HEADERS.contains(&name_str)
            || name_str.starts_with("x-first-death-")
            || name_str.starts_with("x-last-death-");
        if !failure {
            kept.insert(name.clone(), value.clone());
        }
    }
    kept
}

/// The most recent entry of `x-death` (RabbitMQ keeps the latest first).
fn latest_death(headers: &Option<FieldTable>) -> Option<&FieldTable> {
    let value = headers
        .as_ref()?
        .inner()
        .get(&ShortString::from(X_DEATH_HEADER))?;
    let AMQPValue::FieldArray(deaths) = value else {
        return None;
    };
    deaths.as_slice().iter().find_map(|death| match death {
        AMQPValue::FieldTable(table) => Some(table),
        _ => None,
    })
}

fn table_str<'a>(table: &'a FieldTable, key: &str) -> Option<&'a str> {
    match table.inner().get(&ShortString::from(key))? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

fn table_i64(table: &FieldTable, key: &str) -> Option<i64> {
    match table.inner().get(&ShortString::from(key))? {
        AMQPValue::Timestamp(n) => i64::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn from_secs(secs: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(secs, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString};

    fn text(value: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(value))
    }

    fn x_death(reason: &str, time_secs: u64) -> AMQPValue {
        let mut death = FieldTable::default();
        death.insert("reason".into(), text(reason));
        death.insert("queue".into(), text("regstat.manifests"));
        death.insert("time".into(), AMQPValue::Timestamp(time_secs));
        death.insert("count".into(), AMQPValue::LongLongInt(1));
        AMQPValue::FieldTable(death)
    }

    const BODY: &[u8] =
        br#"{"id":"e1","action":"push","target":{"repository":"lab/app","tag":"v1"}}"#;

    #[test]
    fn our_headers_win_and_the_body_gives_action_and_repository() {
        let now = Utc::now();
        let mut headers = FieldTable::default();
        headers.insert(REASON_HEADER.into(), text("registry said 500"));
        headers.insert(ERROR_KIND_HEADER.into(), text("registry_unavailable"));
        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(6));
        let failed = now.timestamp_millis() - 180_000;
        headers.insert(LAST_FAILURE_HEADER.into(), AMQPValue::LongLongInt(failed));
        let properties = BasicProperties::default()
            .with_message_id("e1".into())
            .with_headers(headers);
        let letter = DeadLetter::read("push.manifest", &properties, BODY, now);
        assert_eq!(
            letter,
            DeadLetter {
                id: Some("e1".into()),
                action: Some("push".into()),
                repository: Some("lab/app".into()),
                error_kind: Some("registry_unavailable".into()),
                reason: Some("registry said 500".into()),
                attempts: Some(6),
                age_secs: Some(180),
                routing_key: "push.manifest".into(),
                received_at: None,
            }
        );
    }

    #[test]
    fn a_broker_dead_letter_is_read_from_x_death_and_a_bad_body_leaves_blanks() {
        let now = Utc::now();
        let secs = u64::try_from(now.timestamp() - 7200).expect("after 1970");
        let mut headers = FieldTable::default();
        headers.insert(
            X_DEATH_HEADER.into(),
            AMQPValue::FieldArray(FieldArray::from(vec![
                x_death("delivery_limit", secs),
                x_death("expired", secs - 100),
            ])),
        );
        let properties = BasicProperties::default().with_headers(headers);
        let letter = DeadLetter::read("pull.blob", &properties, b"{not json", now);
        assert_eq!(letter.id, None);
        assert_eq!(letter.action, None);
        assert_eq!(letter.repository, None);
        assert_eq!(letter.error_kind, None);
        assert_eq!(letter.reason.as_deref(), Some("delivery_limit"));
        assert_eq!(letter.age_secs, Some(7200));
        assert_eq!(letter.routing_key, "pull.blob");
    }

    #[test]
    fn without_failure_times_the_amqp_timestamp_gives_the_age_and_the_body_the_id() {
        let now = Utc::now();
        let sent = u64::try_from(now.timestamp() - 60).expect("after 1970");
        let properties = BasicProperties::default().with_timestamp(sent);
        let letter = DeadLetter::read("push.manifest", &properties, BODY, now);
        assert_eq!(letter.id.as_deref(), Some("e1"));
        assert_eq!(letter.age_secs, Some(60));
        assert_eq!(letter.reason, None);
    }

    #[test]
    fn replay_removes_failure_headers_and_keeps_the_rest() {
        let mut headers = FieldTable::default();
        for name in FAILURE_HEADERS {
            headers.insert(name.into(), text("x"));
        }
        headers.insert("x-first-death-reason".into(), text("delivery_limit"));
        headers.insert("x-last-death-queue".into(), text("q"));
        headers.insert(
            regstat_shared::topology::RECEIVED_AT_HEADER.into(),
            AMQPValue::LongLongInt(1),
        );
        let kept = replay_headers(&Some(headers));
        let names: Vec<&str> = kept.inner().keys().map(ShortString::as_str).collect();
        assert_eq!(names, [regstat_shared::topology::RECEIVED_AT_HEADER]);
        assert!(replay_headers(&None).inner().is_empty());
    }
}

//! The operator's tools on a real broker and database: listing dead letters keeps them,
//! replay and purge touch only what was selected, status counts what is there, and the
//! `regstat` binary prints parseable JSON. This file holds the fixtures: dead letters made
//! the way the worker and the broker make them, and ledger rows.

mod dead_letters;
mod status_and_cli;

use crate::helpers::{TestDb, settings};
use chrono::{Duration as Age, Utc};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Connection};
use regstat_cli::admin;
use regstat_cli::admin::letter::DeadLetter;
use regstat_shared::config::Settings;
use regstat_shared::testkit::TestBroker;
use regstat_shared::topology::{
    ATTEMPTS_HEADER, ERROR_KIND_HEADER, FIRST_FAILURE_HEADER, LAST_FAILURE_HEADER, REASON_HEADER,
    RECEIVED_AT_HEADER,
};
use serde_json::json;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const BLOB: &str = "application/octet-stream";

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn manifest_push(id: &str) -> Vec<u8> {
    json!({
        "id": id, "timestamp": "2026-11-22T10:00:00Z", "action": "push",
        "target": {"mediaType": MANIFEST, "size": 300,
                   "digest": "sha256:m", "repository": "lab/app", "tag": "v1"},
        "request": {"method": "PUT", "host": "elsewhere.example:5000"},
    })
    .to_string()
    .into_bytes()
}

fn blob_pull(id: &str) -> Vec<u8> {
    json!({
        "id": id, "timestamp": "2026-11-22T10:00:00Z", "action": "pull",
        "target": {"mediaType": BLOB, "size": 10, "digest": "sha256:b",
                   "repository": "lab/blobs"},
        "request": {"method": "GET", "useragent": "skopeo/1.9.3"},
    })
    .to_string()
    .into_bytes()
}

/// Publishes with confirms and checks the broker routed it.
async fn publish(
    broker: &TestBroker,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) {
    let channel = &broker.channel;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let options = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let confirm = channel
        .basic_publish(
            exchange.into(),
            key.into(),
            options,
            body,
            props.with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(
        confirm.is_ack() && confirm.take_message().is_none(),
        "{key} not routed"
    );
}

/// Dead-letters an event as the worker does (consumer.rs): original body and routing key,
/// message and correlation id, and the failure headers.
async fn worker_dead_letter(
    broker: &TestBroker,
    key: &str,
    id: &str,
    body: &[u8],
    kind: &str,
    attempts: i64,
    failed_ago: Age,
) {
    let last = (Utc::now() - failed_ago).timestamp_millis();
    let mut headers = FieldTable::default();
    headers.insert(
        RECEIVED_AT_HEADER.into(),
        AMQPValue::LongLongInt(last - 60_000),
    );
    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongLongInt(attempts));
    headers.insert(ERROR_KIND_HEADER.into(), text(kind));
    headers.insert(
        REASON_HEADER.into(),
        text(&format!("{kind} (gave up after {attempts} attempts)")),
    );
    headers.insert(
        FIRST_FAILURE_HEADER.into(),
        AMQPValue::LongLongInt(last - 30_000),
    );
    headers.insert(LAST_FAILURE_HEADER.into(), AMQPValue::LongLongInt(last));
    let props = BasicProperties::default()
        .with_message_id(id.into())
        .with_correlation_id(format!("req-{id}").into())
        .with_headers(headers);
    publish(
        broker,
        &broker.topology.dead_letter_exchange(),
        key,
        body,
        props,
    )
    .await;
}

/// Dead-letters an event as the broker does after the delivery limit: only `x-death`.
async fn broker_dead_letter(broker: &TestBroker, key: &str, id: &str, body: &[u8], died_ago: Age) {
    let mut death = FieldTable::default();
    death.insert("count".into(), AMQPValue::LongLongInt(1));
    death.insert("reason".into(), text("delivery_limit"));
    death.insert("queue".into(), text(&broker.topology.manifest_queue()));
    death.insert(
        "time".into(),
        AMQPValue::Timestamp((Utc::now() - died_ago).timestamp() as u64),
    );
    death.insert("exchange".into(), text(&broker.topology.exchange()));
    death.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![text(key)])),
    );
    let mut headers = FieldTable::default();
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
    );
    headers.insert("x-first-death-reason".into(), text("delivery_limit"));
    let props = BasicProperties::default()
        .with_message_id(id.into())
        .with_headers(headers);
    publish(
        broker,
        &broker.topology.dead_letter_exchange(),
        key,
        body,
        props,
    )
    .await;
}

async fn connect(db: &TestDb, broker: &TestBroker) -> (Settings, Connection) {
    let settings = settings(db, broker, &[]);
    let connection = admin::connect_broker(&settings.amqp).await.unwrap();
    (settings, connection)
}

fn by_id<'a>(letters: &'a [DeadLetter], id: &str) -> &'a DeadLetter {
    letters
        .iter()
        .find(|l| l.id.as_deref() == Some(id))
        .unwrap_or_else(|| panic!("{id} listed"))
}

fn ids(letters: &[DeadLetter]) -> Vec<&str> {
    let mut ids: Vec<&str> = letters.iter().filter_map(|l| l.id.as_deref()).collect();
    ids.sort_unstable();
    ids
}

fn assert_about(actual: Option<i64>, expected: i64) {
    let actual = actual.expect("an age");
    assert!(
        (expected..expected + 10).contains(&actual),
        "{actual} is not about {expected}"
    );
}

/// Inserts a ledger row routed like `action`/`media_type`/`tag`, received `ago`.
async fn record(
    db: &TestDb,
    id: &str,
    action: &str,
    media_type: Option<&str>,
    tag: Option<&str>,
    ago: Age,
) {
    sqlx::query(
        "INSERT INTO regstat.events (id, occurred_at, action, media_type, tag, received_at, raw_rest)
         VALUES (regstat.event_key($1), $2, $3, $4, $5, $2, '{}')",
    )
    .bind(id)
    .bind(Utc::now() - ago)
    .bind(action)
    .bind(media_type)
    .bind(tag)
    .execute(&db.pool)
    .await
    .unwrap();
}

//! The unit of work on a real database, without a broker.

use crate::helpers::{TestDb, context, fixture_bodies};
use regstat_store::keys::{event_key, uuid_column};
use regstat_worker::handler::{BatchSummary, Incoming, Outcome, handle_batch};
use sqlx::postgres::PgPoolOptions;
use std::time::Duration;

fn incoming(body: &str) -> Incoming {
    Incoming {
        body: body.as_bytes().to_vec(),
        correlation_id: Some("request-1".into()),
        received_at: None,
    }
}

/// Every event of every fixture request, one message each (as the receiver publishes them).
fn fixture_events() -> Vec<Incoming> {
    let files = [
        "01-push-oci-by-tag.jsonl",
        "03-pull-by-tag.jsonl",
        "06-push-multiarch-oci-index.jsonl",
        "12-delete-manifest-by-digest.jsonl",
        "a2-auth-push.jsonl",
        "r1-endpoint-500-first-5.jsonl",
    ];
    files
        .iter()
        .flat_map(|file| fixture_bodies(file))
        .flat_map(|body| {
            let envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
            envelope["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| incoming(&event.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn distinct_ids(messages: &[Incoming]) -> usize {
    let ids: std::collections::HashSet<String> = messages
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
            v["id"].as_str().unwrap().to_owned()
        })
        .collect();
    ids.len()
}

#[tokio::test]
async fn a_batch_is_recorded_once_however_often_it_is_applied() {
    let db = TestDb::new().await;
    let messages = fixture_events();
    let distinct = distinct_ids(&messages);
    assert!(
        distinct < messages.len(),
        "the r1 fixture repeats ids: the batch holds duplicates"
    );

    let (outcomes, summary) = handle_batch(&context(&db), &messages).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Outcome::Ack));
    assert_eq!(
        summary,
        BatchSummary {
            stored: distinct,
            duplicates: messages.len() - distinct,
            retried: 0,
            dead_lettered: 0
        }
    );
    assert_eq!(db.ledger_len().await, distinct as i64);

    // A redelivery of everything changes nothing.
    let (outcomes, summary) = handle_batch(&context(&db), &messages).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Outcome::Ack));
    assert_eq!(summary.stored, 0);
    assert_eq!(summary.duplicates, messages.len());
    assert_eq!(db.ledger_len().await, distinct as i64);

    // Recorded ids beside a new one (the insert's all-new attempt fails on the key, and the
    // batch is inserted again skipping the recorded ids): the new one only.
    let mut mixed = messages.clone();
    mixed.push(incoming(
        r#"{"id":"new-1","action":"pull","target":{"repository":"a","digest":"sha256:1"}}"#,
    ));
    let (outcomes, summary) = handle_batch(&context(&db), &mixed).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Outcome::Ack));
    assert_eq!(summary.stored, 1);
    assert_eq!(summary.duplicates, messages.len());
    assert_eq!(db.ledger_len().await, distinct as i64 + 1);
}

#[tokio::test]
async fn ledger_rows_carry_the_event_fields() {
    let db = TestDb::new().await;
    let body = &fixture_bodies("a2-auth-push.jsonl")[2];
    let envelope: serde_json::Value = serde_json::from_str(body).unwrap();
    let event = &envelope["events"][0];
    let message = Incoming {
        body: event.to_string().into_bytes(),
        correlation_id: Some("req-42".into()),
        received_at: Some(chrono::DateTime::from_timestamp_millis(1_800_000_000_123).unwrap()),
    };
    handle_batch(&context(&db), &[message]).await.unwrap();

    #[derive(sqlx::FromRow, Debug)]
    struct Row {
        id: String,
        action: String,
        media_type: Option<String>,
        digest: Option<String>,
        repository: Option<String>,
        actor: Option<String>,
        request_useragent: Option<String>,
        correlation_id: Option<String>,
        received_at: chrono::DateTime<chrono::Utc>,
        occurred_at: chrono::DateTime<chrono::Utc>,
        raw: serde_json::Value,
    }
    let row: Row = sqlx::query_as(
        "SELECT regstat.event_id(e) AS id, action, media_type, digest, repository, actor,
                request_useragent, correlation_id, received_at, occurred_at,
                regstat.event_json(e) AS raw
         FROM regstat.events e",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(row.id, event["id"].as_str().unwrap());
    assert_eq!(row.action, event["action"].as_str().unwrap());
    assert_eq!(
        row.media_type.as_deref(),
        event["target"]["mediaType"].as_str()
    );
    assert_eq!(row.digest.as_deref(), event["target"]["digest"].as_str());
    assert_eq!(
        row.repository.as_deref(),
        event["target"]["repository"].as_str()
    );
    assert_eq!(row.actor.as_deref(), event["actor"]["name"].as_str());
    assert!(row.actor.is_some(), "the auth fixture names its actor");
    assert_eq!(
        row.request_useragent.as_deref(),
        event["request"]["useragent"].as_str()
    );
    assert_eq!(row.correlation_id.as_deref(), Some("req-42"));
    assert_eq!(row.received_at.timestamp_millis(), 1_800_000_000_123);
    let timestamp =
        chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).unwrap();
    // Postgres keeps microseconds.
    assert_eq!(
        row.occurred_at.timestamp_micros(),
        timestamp.timestamp_micros()
    );
    assert_eq!(&row.raw, event);
}

#[tokio::test]
async fn the_ledger_gives_back_every_event_exactly_and_stores_each_value_once() {
    let db = TestDb::new().await;
    let mut events: Vec<serde_json::Value> = fixture_events()
        .iter()
        .map(|m| serde_json::from_slice(&m.body).unwrap())
        .collect();
    // What no fixture shows but a registry may send: nulls, distribution 3.x's empty values,
    // fields regstat does not know, an actor named null, no source at all, escapes and
    // non-ASCII text, a URL that does not end with the digest.
    let mut unusual = events[0].clone();
    unusual["id"] = "unusual-1".into();
    unusual["target"]["tag"] = serde_json::Value::Null;
    unusual["target"]["fromRepository"] = "".into();
    unusual["target"]["annotations"] = serde_json::json!({"a": [1, 2.50, null]});
    unusual["request"]["useragent"] = "containerd/2.0 \"quoted\" été \\ \n".into();
    unusual["actor"] = serde_json::json!({"name": null});
    unusual.as_object_mut().unwrap().remove("source");
    unusual["target"]["url"] = "http://r:5000/v2/lab/app/manifests/v1".into();
    events.push(unusual);
    let messages: Vec<Incoming> = events.iter().map(|e| incoming(&e.to_string())).collect();
    let (outcomes, _) = handle_batch(&context(&db), &messages).await.unwrap();
    assert!(outcomes.iter().all(|o| *o == Outcome::Ack));

    let stored: Vec<(String, serde_json::Value, serde_json::Value, Option<String>)> =
        sqlx::query_as(
            "SELECT regstat.event_id(e), regstat.event_json(e), raw_rest, target_url_prefix
             FROM regstat.events e ORDER BY 1",
        )
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), distinct_ids(&messages));
    let (mut compacted, mut left_out) = (0, 0);
    for (id, json, rest, url_prefix) in &stored {
        let sent = events.iter().find(|e| e["id"] == *id.as_str()).unwrap();
        assert_eq!(json, sent, "event {id} as stored");
        // A registry's ids are UUIDs, stored as uuid columns; any other id stays in the rest.
        assert_eq!(
            rest.get("id").is_none(),
            uuid_column(id).is_some(),
            "{id}: a UUID id is a column, not in the rest"
        );
        for (object, key) in [("request", "id"), ("source", "instanceID")] {
            if sent[object][key].as_str().and_then(uuid_column).is_some() {
                assert!(
                    rest[object].get(key).is_none(),
                    "{id}: {object}.{key} in {rest}"
                );
            }
        }
        assert!(rest["target"].get("digest").is_none() || sent["target"]["digest"].is_null());
        // A URL ending with the digest (as a registry sends it) is stored without it.
        let expected = sent["target"]["url"]
            .as_str()
            .zip(sent["target"]["digest"].as_str())
            .and_then(|(url, digest)| url.strip_suffix(digest)?.strip_suffix('/'));
        assert_eq!(url_prefix.as_deref(), expected, "{id}");
        if expected.is_some() {
            compacted += 1;
            assert!(rest["target"].get("url").is_none(), "{id}: {rest}");
        }
        // An object whose fields are all columns' is left out (a registry's `request`).
        if sent.get("request").is_some() && rest.get("request").is_none() {
            left_out += 1;
        }
    }
    assert!(
        compacted > 0 && left_out > 0,
        "{compacted} URLs, {left_out} requests"
    );
    let (.., unusual, unusual_url_prefix) =
        stored.iter().find(|(id, ..)| id == "unusual-1").unwrap();
    assert_eq!(
        unusual["target"]["url"], "http://r:5000/v2/lab/app/manifests/v1",
        "a URL not ending with the digest stays in the rest"
    );
    assert_eq!(*unusual_url_prefix, None);
    assert_eq!(
        unusual["target"]["tag"],
        serde_json::Value::Null,
        "a null stays a null"
    );
    assert_eq!(
        unusual["target"]["fromRepository"], "",
        "an empty value is not a column's"
    );

    // A row written before migration 17 holds the whole event in raw_rest: it gives back the
    // same event.
    sqlx::query(
        "UPDATE regstat.events SET raw_rest = $1 WHERE id = regstat.event_key('unusual-1')",
    )
    .bind(&events[events.len() - 1])
    .execute(&db.pool)
    .await
    .unwrap();
    let whole: serde_json::Value = sqlx::query_scalar(
        "SELECT regstat.event_json(e) FROM regstat.events e WHERE id = regstat.event_key('unusual-1')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(&whole, &events[events.len() - 1]);
}

/// `regstat.event_key` (SQL, for lookups by hand and migration 22) and `keys::event_key` (the
/// worker's) give every id the same key.
#[tokio::test]
async fn event_keys_agree_in_rust_and_sql() {
    let db = TestDb::new().await;
    let ids = [
        "0f6b8a1e-3c2d-4e5f-9a8b-7c6d5e4f3a2b",
        "0F6B8A1E-3C2D-4E5F-9A8B-7C6D5E4F3A2B",
        "0f6b8a1e3c2d4e5f9a8b7c6d5e4f3a2b",
        "push-1",
        "été \"quoted\" \u{1f600}",
        "",
    ];
    for id in ids {
        let sql: uuid::Uuid = sqlx::query_scalar("SELECT regstat.event_key($1)")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(sql, event_key(id), "{id:?}");
        let column: Option<uuid::Uuid> = sqlx::query_scalar("SELECT regstat.uuid_column($1)")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(column, uuid_column(id), "{id:?}");
    }
}

#[tokio::test]
async fn malformed_messages_are_dead_lettered_and_the_rest_recorded() {
    let db = TestDb::new().await;
    let good = r#"{"id":"good-1","action":"pull","target":{"repository":"a","digest":"sha256:1"}}"#;
    // Postgres cannot store U+0000 in jsonb: the database rejects this one event.
    let nul = r#"{"id":"nul-1","action":"pull","target":{"repository":"a\u0000b"}}"#;
    let messages = vec![
        incoming("not json"),
        incoming(r#"{"action":"push","target":{}}"#),
        incoming(good),
        incoming(nul),
        Incoming {
            body: vec![0xff, 0xfe],
            correlation_id: None,
            received_at: None,
        },
    ];
    let (outcomes, summary) = handle_batch(&context(&db), &messages).await.unwrap();
    assert!(matches!(&outcomes[0], Outcome::DeadLetter(r) if r.contains("invalid event")));
    assert!(matches!(&outcomes[1], Outcome::DeadLetter(r) if r.contains("no id")));
    assert_eq!(outcomes[2], Outcome::Ack);
    assert!(matches!(&outcomes[3], Outcome::DeadLetter(r) if r.contains("database rejected")));
    assert!(matches!(&outcomes[4], Outcome::DeadLetter(r) if r.contains("UTF-8")));
    assert_eq!(
        summary,
        BatchSummary {
            stored: 1,
            duplicates: 0,
            retried: 0,
            dead_lettered: 4
        }
    );
    assert_eq!(db.ledger_counts().await, vec![("good-1".to_owned(), 1)]);
}

#[tokio::test]
async fn an_unreachable_database_is_reported_as_unavailable() {
    // Nothing listens on port 1: the batch must be held and retried, not dead-lettered.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let settings = regstat_shared::config::Settings::load_with_env(None, Vec::new()).unwrap();
    let ctx = regstat_worker::handler::Context::new(pool, &settings).unwrap();
    let result = handle_batch(&ctx, &fixture_events()[..3]).await;
    assert!(result.is_err(), "expected Unavailable, got {result:?}");
}

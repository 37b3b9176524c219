//! `regstat dlq`: list keeps every letter, replay and purge touch only the selected ones.

use super::{
    DEADLINE, assert_about, blob_pull, broker_dead_letter, by_id, connect, ids, manifest_push,
    publish, worker_dead_letter,
};
use crate::helpers::{TestDb, TestWorker};
use chrono::Duration as Age;
use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicNackOptions};
use regstat_cli::admin::dlq::{self, DeadLetterQueue, Selection};
use regstat_cli::admin::output;
use regstat_shared::testkit::{TestBroker, eventually};
use regstat_shared::topology::{
    ATTEMPTS_HEADER, ERROR_KIND_HEADER, FIRST_FAILURE_HEADER, LAST_FAILURE_HEADER, REASON_HEADER,
    RECEIVED_AT_HEADER, header_i64, header_str,
};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_every_dead_letter_and_keeps_them_all() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    worker_dead_letter(
        &broker,
        "push.manifest",
        "push-1",
        &manifest_push("push-1"),
        "registry_unavailable",
        6,
        Age::minutes(3),
    )
    .await;
    worker_dead_letter(
        &broker,
        "pull.blob",
        "broken-1",
        b"{\"id\": \"broken-1\", \"action\": ",
        "invalid_event",
        1,
        Age::hours(2),
    )
    .await;
    broker_dead_letter(
        &broker,
        "push.manifest",
        "crash-1",
        &manifest_push("crash-1"),
        Age::days(5),
    )
    .await;
    let (_settings, connection) = connect(&db, &broker).await;

    let letters = dlq::list(&connection, &broker.topology).await.unwrap();
    assert_eq!(ids(&letters), ["broken-1", "crash-1", "push-1"]);
    let push = by_id(&letters, "push-1");
    assert_eq!(push.action.as_deref(), Some("push"));
    assert_eq!(push.repository.as_deref(), Some("lab/app"));
    assert_eq!(push.error_kind.as_deref(), Some("registry_unavailable"));
    assert_eq!(
        push.reason.as_deref(),
        Some("registry_unavailable (gave up after 6 attempts)")
    );
    assert_eq!(push.attempts, Some(6));
    assert_about(push.age_secs, 180);
    assert_eq!(push.routing_key, "push.manifest");
    let broken = by_id(&letters, "broken-1");
    assert_eq!(
        (broken.action.as_deref(), broken.repository.as_deref()),
        (None, None),
        "unparseable body"
    );
    assert_eq!(broken.error_kind.as_deref(), Some("invalid_event"));
    assert_about(broken.age_secs, 7200);
    let crash = by_id(&letters, "crash-1");
    assert_eq!(crash.reason.as_deref(), Some("delivery_limit"));
    assert_eq!((crash.error_kind.as_deref(), crash.attempts), (None, None));
    assert_eq!(crash.repository.as_deref(), Some("lab/app"));
    assert_about(crash.age_secs, 5 * 86_400);

    let table = output::dead_letters_table(&letters);
    assert!(table.starts_with("ID "), "{table}");
    for age in ["3m", "2h", "5d"] {
        assert!(table.contains(age), "{age} in {table}");
    }
    assert_eq!(
        broker.depth(&broker.topology.dead_queue()).await,
        3,
        "listing kept them"
    );
    let again = dlq::list(&connection, &broker.topology).await.unwrap();
    assert_eq!(ids(&again), ids(&letters));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_by_id_republishes_that_letter_without_failure_headers_and_keeps_the_other() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    let topology = &broker.topology;
    worker_dead_letter(
        &broker,
        "push.manifest",
        "push-1",
        &manifest_push("push-1"),
        "registry_unavailable",
        6,
        Age::minutes(1),
    )
    .await;
    broker_dead_letter(
        &broker,
        "push.manifest",
        "crash-1",
        &manifest_push("crash-1"),
        Age::minutes(1),
    )
    .await;
    let (_settings, connection) = connect(&db, &broker).await;
    let one = Selection::Ids(vec!["push-1".into()]);

    // Dry run: what `--dry-run` does; nothing changes.
    let held = DeadLetterQueue::open(&connection, topology).await.unwrap();
    assert_eq!(held.selected(&one).count(), 1);
    held.release().await.unwrap();
    assert_eq!(broker.depth(&topology.dead_queue()).await, 2);
    assert_eq!(broker.depth(&topology.manifest_queue()).await, 0);

    let held = DeadLetterQueue::open(&connection, topology).await.unwrap();
    let summary = held.replay(&one, None).await.unwrap();
    assert_eq!(ids(&summary.replayed), ["push-1"]);
    assert_eq!(
        (summary.kept, summary.not_found.len(), summary.failed.len()),
        (1, 0, 0)
    );

    let replayed = broker.drain(&topology.manifest_queue()).await;
    assert_eq!(replayed.len(), 1);
    let message = &replayed[0];
    let props = &message.properties;
    assert_eq!(props.message_id().as_ref().unwrap().as_str(), "push-1");
    assert_eq!(
        props.correlation_id().as_ref().unwrap().as_str(),
        "req-push-1"
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    assert_eq!(message.data, manifest_push("push-1"));
    let headers = props.headers();
    for gone in [
        ATTEMPTS_HEADER,
        ERROR_KIND_HEADER,
        REASON_HEADER,
        FIRST_FAILURE_HEADER,
        LAST_FAILURE_HEADER,
    ] {
        assert!(
            header_str(headers, gone).is_none() && header_i64(headers, gone).is_none(),
            "{gone} removed"
        );
    }
    assert!(
        header_i64(headers, RECEIVED_AT_HEADER).is_some(),
        "received-at kept"
    );

    let left = dlq::list(&connection, topology).await.unwrap();
    assert_eq!(ids(&left), ["crash-1"]);

    // Repeating it finds nothing to do and says which id was missing.
    let held = DeadLetterQueue::open(&connection, topology).await.unwrap();
    let summary = held.replay(&one, None).await.unwrap();
    assert_eq!((summary.replayed.len(), summary.kept), (0, 1));
    assert_eq!(summary.not_found, ["push-1"]);
    assert_eq!(broker.depth(&topology.dead_queue()).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_letter_is_recorded_by_a_worker() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    worker_dead_letter(
        &broker,
        "pull.blob",
        "pull-1",
        &blob_pull("pull-1"),
        "database_rejected",
        1,
        Age::minutes(1),
    )
    .await;
    let (settings, connection) = connect(&db, &broker).await;
    let summary = DeadLetterQueue::open(&connection, &broker.topology)
        .await
        .unwrap()
        .replay(&Selection::All, None)
        .await
        .unwrap();
    assert_eq!((summary.replayed.len(), summary.kept), (1, 0));

    let worker = TestWorker::spawn(&settings);
    eventually(DEADLINE, "the replayed event in the ledger", || async {
        (db.ledger_counts().await == [("pull-1".to_owned(), 1)]).then_some(())
    })
    .await;
    worker.stop().await;
    assert_eq!(broker.depth(&broker.topology.dead_queue()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_only_the_selected_letters() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    for id in ["a", "b", "c"] {
        worker_dead_letter(
            &broker,
            "pull.blob",
            id,
            &blob_pull(id),
            "invalid_event",
            1,
            Age::minutes(1),
        )
        .await;
    }
    let (_settings, connection) = connect(&db, &broker).await;
    let held = DeadLetterQueue::open(&connection, &broker.topology)
        .await
        .unwrap();
    let summary = held.purge(&Selection::Ids(vec!["b".into()])).await.unwrap();
    assert_eq!((ids(&summary.deleted), summary.kept), (vec!["b"], 2));
    assert_eq!(
        ids(&dlq::list(&connection, &broker.topology).await.unwrap()),
        ["a", "c"]
    );

    let held = DeadLetterQueue::open(&connection, &broker.topology)
        .await
        .unwrap();
    let summary = held.purge(&Selection::All).await.unwrap();
    assert_eq!((summary.deleted.len(), summary.kept), (2, 0));
    assert_eq!(broker.depth(&broker.topology.dead_queue()).await, 0);
}

/// A message workers keep failing on is dead-lettered by the broker itself (delivery limit);
/// it is listed with the broker's reason and can be replayed like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_the_broker_dead_lettered_is_listed_and_replayed() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    let topology = &broker.topology;
    let props = BasicProperties::default().with_message_id("crash-1".into());
    publish(
        &broker,
        &topology.exchange(),
        "push.manifest",
        &manifest_push("crash-1"),
        props,
    )
    .await;
    let dead = topology.dead_queue();
    for _ in 0..40 {
        if broker.depth(&dead).await == 1 {
            break;
        }
        let get = BasicGetOptions { no_ack: false };
        if let Some(message) = broker
            .channel
            .basic_get(topology.manifest_queue().into(), get)
            .await
            .unwrap()
        {
            let requeue = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            message.delivery.acker.nack(requeue).await.unwrap();
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eventually(DEADLINE, "the broker's dead letter", || async {
        (broker.depth(&dead).await == 1).then_some(())
    })
    .await;
    let (_settings, connection) = connect(&db, &broker).await;
    let letters = dlq::list(&connection, topology).await.unwrap();
    let letter = by_id(&letters, "crash-1");
    assert_eq!(letter.reason.as_deref(), Some("delivery_limit"));
    assert_eq!(letter.attempts, None, "the broker keeps no attempt count");
    assert_eq!(letter.routing_key, "push.manifest");
    assert_eq!(letter.action.as_deref(), Some("push"));
    assert_about(letter.age_secs, 0);

    let held = DeadLetterQueue::open(&connection, topology).await.unwrap();
    assert_eq!(
        held.replay(&Selection::All, None)
            .await
            .unwrap()
            .replayed
            .len(),
        1
    );
    let back = broker.drain(&topology.manifest_queue()).await;
    assert_eq!(back.len(), 1);
    let headers = back[0].properties.headers();
    let names: Vec<String> = headers
        .iter()
        .flat_map(|h| h.inner().keys())
        .map(|k| k.to_string())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with("x-death") && !n.contains("-death-")),
        "{names:?}"
    );
}

/// A dead letter whose routing key no longer routes (say, an old binding) is returned by the
/// broker: it stays in the dead queue and the summary says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_replay_is_kept_and_reported() {
    let (db, broker) = (TestDb::new().await, TestBroker::new().await);
    let body = blob_pull("old-1");
    worker_dead_letter(
        &broker,
        "legacy.key",
        "old-1",
        &body,
        "invalid_event",
        1,
        Age::minutes(1),
    )
    .await;
    let (_settings, connection) = connect(&db, &broker).await;
    let held = DeadLetterQueue::open(&connection, &broker.topology)
        .await
        .unwrap();
    let summary = held.replay(&Selection::All, None).await.unwrap();
    assert_eq!((summary.replayed.len(), summary.kept), (0, 1));
    assert_eq!(summary.failed.len(), 1);
    assert!(
        summary.failed[0].error.contains("unroutable"),
        "{:?}",
        summary.failed
    );
    let left = dlq::list(&connection, &broker.topology).await.unwrap();
    assert_eq!(ids(&left), ["old-1"]);
}

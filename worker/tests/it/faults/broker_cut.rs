//! Fault 2: the network between the services and RabbitMQ cut for a few seconds (a TCP proxy
//! in front of the shared broker, which itself keeps running).
//!
//! Meanwhile the receiver answers 503 (nothing is accepted that the broker did not confirm),
//! the sender keeps re-sending the same event like a registry, and the workers lose their
//! consumers. Once the link is back, receiver and workers reconnect by themselves and every
//! event arrives exactly once in the ledger.

use super::harness::{
    DEADLINE, Figures, OUTAGE, assert_converged, assert_only_2xx_or_503, proxy_for, time_until,
    until_ledger, until_queues_drained, until_status, with_common,
};
use super::sender::Sending;
use super::stream::{Stream, reference_state};
use crate::helpers::{TestDb, TestReceiver, TestWorker, context, settings};
use regstat_shared::testkit::{TestBroker, eventually};
use std::time::Instant;

const EVENTS: usize = 1500;
/// Registries sending at once (each one event at a time).
const LANES: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_answers_503_and_everything_arrives_once_the_link_is_back() {
    let stream = Stream::build(EVENTS, |_, event| event);
    let expected = {
        let reference = TestDb::new().await;
        reference_state(&reference, &context(&reference), &stream).await
    };
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let (proxy, amqp_via_proxy) = proxy_for(&regstat_shared::testkit::amqp_url()).await;
    let settings = settings(
        &db,
        &broker,
        &with_common(&[("REGSTAT__AMQP__URL", &amqp_via_proxy)]),
    );
    let receiver = TestReceiver::spawn(&settings).await;
    let workers = [TestWorker::spawn(&settings), TestWorker::spawn(&settings)];
    let receiver_ready = format!("{}/readyz", receiver.address);
    let workers_ready: Vec<String> = workers
        .iter()
        .map(|w| format!("{}/readyz", w.address))
        .collect();
    for ready in &workers_ready {
        until_status(ready, 200, Instant::now()).await;
    }

    // The link goes down a third of the way through.
    let sending = Sending::start(
        &stream.bodies,
        &format!("{}/events", receiver.address),
        LANES,
    );
    let stats = sending.stats.clone();
    eventually(DEADLINE, "a third of the stream accepted", || async {
        (stats.accepted() >= (stream.bodies.len() / 3) as u64).then_some(())
    })
    .await;
    proxy.cut();
    let cut_at = Instant::now();
    until_status(&receiver_ready, 503, cut_at).await;
    for ready in &workers_ready {
        until_status(ready, 503, cut_at).await;
    }
    let accepted_when_down = stats.accepted();
    eventually(DEADLINE, "the sender answered 503", || async {
        (stats.unavailable() > 0).then_some(())
    })
    .await;
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;
    assert_eq!(
        stats.accepted(),
        accepted_when_down,
        "nothing may be accepted while the broker is unreachable"
    );
    let unavailable_during_cut = stats.unavailable();

    proxy.restore();
    let restored = Instant::now();
    let first_accept = time_until(restored, "an event accepted after the outage", || async {
        stats.accepted() > accepted_when_down
    })
    .await;
    let receiver_ready_again = until_status(&receiver_ready, 200, restored).await;
    let mut workers_ready_again = restored.elapsed();
    for ready in &workers_ready {
        workers_ready_again = until_status(ready, 200, restored).await;
    }
    let stats = sending.finish().await;
    until_ledger(&db, EVENTS).await;
    let ledger_complete = restored.elapsed();
    until_queues_drained(&broker).await;
    assert_only_2xx_or_503(&stats);
    assert!(unavailable_during_cut > 0);
    assert_converged(&db, &stream, &expected).await;

    let mut figures = Figures::new(
        "2 broker cut",
        &stream,
        &stats,
        db.ledger_len().await,
        &expected,
    );
    figures.recovery = vec![
        ("receiver_ready", receiver_ready_again),
        ("first_accept", first_accept),
        ("workers_ready", workers_ready_again),
        ("ledger_complete", ledger_complete),
    ];
    figures.print();
    for worker in workers {
        worker.stop().await;
    }
    receiver.stop().await;
}

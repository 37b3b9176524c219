//! Fault 6: the broker blocks publishers (a memory alarm) for a few seconds, on a private
//! RabbitMQ node so the alarm disturbs no other test.
//!
//! Meanwhile the receiver answers every request 503 before the sender's timeout (a registry
//! gives up after 1-2 s and would otherwise pile up retries inside the receiver), and the
//! workers keep consuming what is queued. Once the alarm clears, requests are accepted again and
//! every event arrives exactly once in the ledger.

use super::harness::{
    DEADLINE, Figures, OUTAGE, assert_converged, assert_only_2xx_or_503, time_until, until_ledger,
    until_queues_drained, until_status, with_common,
};
use super::sender::Sending;
use super::stream::{Stream, reference_state};
use crate::helpers::{TestDb, TestReceiver, TestWorker, context, settings};
use regstat_shared::testkit::private_node::PrivateNode;
use regstat_shared::testkit::{TestBroker, eventually};
use std::time::Instant;

const EVENTS: usize = 1500;
/// Registries sending at once (each one event at a time).
const LANES: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_broker_answers_503_in_time_and_everything_arrives_once_it_clears() {
    let stream = Stream::build(EVENTS, |_, event| event);
    let expected = {
        let reference = TestDb::new().await;
        reference_state(&reference, &context(&reference), &stream).await
    };
    let node = PrivateNode::start().await;
    let db = TestDb::new().await;
    let broker = TestBroker::at(&node.url()).await;
    let url = node.url();
    let settings = settings(&db, &broker, &with_common(&[("REGSTAT__AMQP__URL", &url)]));
    let receiver = TestReceiver::spawn(&settings).await;
    let workers = [TestWorker::spawn(&settings), TestWorker::spawn(&settings)];
    for worker in &workers {
        until_status(&format!("{}/readyz", worker.address), 200, Instant::now()).await;
    }

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
    node.raise_memory_alarm();
    let raised = Instant::now();
    eventually(DEADLINE, "the sender answered 503", || async {
        (stats.unavailable() > 0).then_some(())
    })
    .await;
    tokio::time::sleep(OUTAGE.saturating_sub(raised.elapsed())).await;
    let unavailable_during_alarm = stats.unavailable();

    node.clear_memory_alarm();
    let cleared = Instant::now();
    let accepted_at_clear = stats.accepted();
    let first_accept = time_until(cleared, "an event accepted after the alarm", || async {
        stats.accepted() > accepted_at_clear
    })
    .await;
    let stats = sending.finish().await;
    until_ledger(&db, EVENTS).await;
    let ledger_complete = cleared.elapsed();
    until_queues_drained(&broker).await;
    assert_only_2xx_or_503(&stats);
    assert!(unavailable_during_alarm > 0);
    assert_eq!(
        stats.unreachable(),
        0,
        "every request got an answer within the sender's timeout, none timed out"
    );
    assert_converged(&db, &stream, &expected).await;

    let mut figures = Figures::new(
        "6 blocked broker",
        &stream,
        &stats,
        db.ledger_len().await,
        &expected,
    );
    figures.recovery = vec![
        ("first_accept", first_accept),
        ("ledger_complete", ledger_complete),
    ];
    figures.print();
    for worker in workers {
        worker.stop().await;
    }
    receiver.stop().await;
}

//! Fault 3: the network between the workers and PostgreSQL cut for a few seconds (a TCP proxy).
//!
//! The receiver does not need the database and keeps accepting. The workers hold the batch in
//! hand (retrying it with backoff), ack nothing, and take no more than their prefetch, so the
//! backlog waits in RabbitMQ. Once the link is back they record everything, exactly once.

use super::harness::{
    DEADLINE, Figures, OUTAGE, assert_converged, assert_only_2xx_or_503, proxy_for, queue_state,
    time_until, until_ledger, until_queues_drained, until_status, with_common, work_backlog,
};
use super::sender::Sending;
use super::stream::{Stream, reference_state};
use crate::helpers::{TestDb, TestReceiver, TestWorker, context, settings};
use regstat_shared::testkit::{TestBroker, eventually};
use std::time::Instant;

const EVENTS: usize = 1500;
/// Registries sending at once (each one event at a time).
const LANES: usize = 2;
/// Small enough that the backlog visibly stays in the broker during the outage.
const PREFETCH: &str = "64";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_stops_acks_and_loses_nothing() {
    let stream = Stream::build(EVENTS, |_, event| event);
    let expected = {
        let reference = TestDb::new().await;
        reference_state(&reference, &context(&reference), &stream).await
    };
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let (proxy, db_via_proxy) = proxy_for(&db.url).await;
    let receiver = TestReceiver::spawn(&settings(&db, &broker, &with_common(&[]))).await;
    let worker_settings = settings(
        &db,
        &broker,
        &with_common(&[
            ("REGSTAT__DATABASE__URL", &db_via_proxy),
            ("REGSTAT__DATABASE__ACQUIRE_TIMEOUT_MS", "300"),
            ("REGSTAT__WORKER__PREFETCH", PREFETCH),
        ]),
    );
    let workers = [
        TestWorker::spawn(&worker_settings),
        TestWorker::spawn(&worker_settings),
    ];
    let workers_ready: Vec<String> = workers
        .iter()
        .map(|w| format!("{}/readyz", w.address))
        .collect();
    for ready in &workers_ready {
        until_status(ready, 200, Instant::now()).await;
    }

    let sending = Sending::start(
        &stream.bodies,
        &format!("{}/events", receiver.address),
        LANES,
    );
    let stats = sending.stats.clone();
    eventually(DEADLINE, "a quarter of the stream recorded", || async {
        (db.ledger_len().await >= (EVENTS / 4) as i64).then_some(())
    })
    .await;
    proxy.cut();
    let cut_at = Instant::now();
    for ready in &workers_ready {
        until_status(ready, 503, cut_at).await;
    }
    // Whatever was committing when the link went is settled one way or the other by now.
    let rows_when_down = db.ledger_len().await;
    let accepted_when_down = stats.accepted();
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;
    let rows_before_restore = db.ledger_len().await;
    let backlog_before_restore = work_backlog(&broker).await;
    let accepted_during_cut = stats.accepted() - accepted_when_down;
    assert_eq!(
        rows_before_restore, rows_when_down,
        "nothing can be recorded while the database is unreachable"
    );
    assert!(
        accepted_during_cut > 0,
        "the receiver keeps accepting without the database"
    );
    assert!(
        backlog_before_restore > 0,
        "workers stop taking messages beyond their prefetch: the backlog waits in RabbitMQ"
    );
    for queue in broker.topology.work_queues() {
        assert_eq!(
            queue_state(&broker, &queue).await.1,
            2,
            "workers keep their consumers on {queue} while they wait for the database"
        );
    }

    proxy.restore();
    let restored = Instant::now();
    let first_row = time_until(restored, "a row recorded after the outage", || async {
        db.ledger_len().await > rows_before_restore
    })
    .await;
    let mut workers_ready_again = restored.elapsed();
    for ready in &workers_ready {
        workers_ready_again = until_status(ready, 200, restored).await;
    }
    let stats = sending.finish().await;
    until_ledger(&db, EVENTS).await;
    let ledger_complete = restored.elapsed();
    until_queues_drained(&broker).await;
    assert_only_2xx_or_503(&stats);
    assert_converged(&db, &stream, &expected).await;

    let mut figures = Figures::new(
        "3 database cut",
        &stream,
        &stats,
        db.ledger_len().await,
        &expected,
    );
    figures.recovery = vec![
        ("first_row", first_row),
        ("workers_ready", workers_ready_again),
        ("ledger_complete", ledger_complete),
    ];
    figures.print();
    println!(
        "fault[3 database cut]: during the outage {accepted_during_cut} events were accepted, \
         {} rows recorded, {backlog_before_restore} messages waited in the broker",
        rows_before_restore - rows_when_down
    );
    for worker in workers {
        worker.stop().await;
    }
    receiver.stop().await;
}

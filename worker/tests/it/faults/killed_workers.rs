//! Fault 1: worker processes SIGKILLed again and again while events flow, and restarted.
//!
//! A SIGKILLed worker acks nothing more: whatever it held unacked goes back to the queue
//! (including batches it had committed but not yet acked, and batches in the middle of their
//! transaction, which PostgreSQL rolls back), and another worker records them. The ledger must
//! still end with each id once and the derived counts must not count any event twice.

use super::harness::{
    DEADLINE, Figures, assert_converged, assert_only_2xx_or_503, until_consumers, until_ledger,
    until_queues_drained, with_common, worker_env,
};
use super::processes::WorkerProcesses;
use super::sender::Sending;
use super::stream::{Stream, reference_state};
use crate::helpers::{TestDb, TestReceiver, context, settings};
use regstat_shared::testkit::{TestBroker, eventually};
use std::time::{Duration, Instant};

const EVENTS: usize = 1500;
const WORKERS: usize = 3;
/// Registries sending at once (each one event at a time).
const LANES: usize = 2;
/// Kills, spread evenly over the stream (four per worker). Each kill returns what the worker
/// held to the queue, which counts as a delivery: a quorum queue dead-letters a message after
/// 20, so this stays well below.
const KILLS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sigkilled_mid_batch_lose_nothing_and_count_nothing_twice() {
    let stream = Stream::build(EVENTS, |_, event| event);
    let expected = {
        let reference = TestDb::new().await;
        reference_state(&reference, &context(&reference), &stream).await
    };
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let receiver = TestReceiver::spawn(&settings(&db, &broker, &with_common(&[]))).await;
    let mut workers = WorkerProcesses::start(WORKERS, worker_env(&db, &broker));
    until_consumers(&broker, WORKERS as u32).await;

    let sending = Sending::start(
        &stream.bodies,
        &format!("{}/events", receiver.address),
        LANES,
    );
    let stats = sending.stats.clone();
    let mut kills_mid_stream = 0;
    for kill in 0..KILLS {
        let due = (stream.bodies.len() * (kill + 1) / (KILLS + 1)) as u64;
        eventually(DEADLINE, &format!("{due} bodies accepted"), || async {
            (stats.accepted() >= due).then_some(())
        })
        .await;
        // A varied delay, so that kills land at different points of a batch.
        tokio::time::sleep(Duration::from_millis((kill as u64 * 37) % 150)).await;
        if db.ledger_len().await < EVENTS as i64 {
            kills_mid_stream += 1;
        }
        workers.kill(kill % WORKERS);
        workers.restart(kill % WORKERS);
    }
    let fault_end = Instant::now();

    let stats = sending.finish().await;
    until_ledger(&db, EVENTS).await;
    let ledger_complete = fault_end.elapsed();
    until_queues_drained(&broker).await;
    until_consumers(&broker, WORKERS as u32).await;
    assert_only_2xx_or_503(&stats);
    assert!(
        kills_mid_stream >= KILLS / 2,
        "most kills must land while events are still being recorded ({kills_mid_stream} did)"
    );
    assert_converged(&db, &stream, &expected).await;

    let mut figures = Figures::new(
        "1 sigkill workers",
        &stream,
        &stats,
        db.ledger_len().await,
        &expected,
    );
    figures.worker_kills = workers.killed;
    figures.worker_restarts = workers.restarts();
    figures.recovery = vec![("last_restart_to_ledger_complete", ledger_complete)];
    figures.print();
    println!(
        "fault[1 sigkill workers]: {kills_mid_stream} of {} kills landed before the ledger was complete",
        workers.killed
    );
    drop(workers);
    receiver.stop().await;
}

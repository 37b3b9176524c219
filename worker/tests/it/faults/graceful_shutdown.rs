//! Fault 5: receiver and workers shut down gracefully under load, and started again.
//!
//! Worker processes get SIGTERM (one, then all three at once, then one together with the
//! receiver): each finishes and acks the batch in hand, leaves everything else in the queue,
//! and exits 0. The receiver is stopped as its SIGTERM handler stops it while four senders
//! post at once: in-flight requests finish (a 200 only after the broker confirmed), new
//! connections are refused until it is back on the same port, and the senders re-send. Nothing
//! may be lost or counted twice.

use super::harness::{
    DEADLINE, Figures, Receiver, assert_converged, assert_only_2xx_or_503, until_consumers,
    until_ledger, until_queues_drained, with_common, worker_env,
};
use super::processes::WorkerProcesses;
use super::sender::{Sending, Stats};
use super::stream::{Stream, reference_state};
use crate::helpers::{TestDb, context, settings};
use regstat_shared::testkit::{TestBroker, eventually};
use std::time::Instant;

const EVENTS: usize = 1500;
const WORKERS: usize = 3;
/// Registries sending at once, so that the receiver has requests in flight when it stops.
const LANES: usize = 4;

/// Waits until `fraction` of the bodies are accepted.
async fn until_accepted(stats: &Stats, bodies: usize, fraction: f64) {
    let target = (bodies as f64 * fraction) as u64;
    eventually(DEADLINE, &format!("{target} bodies accepted"), || async {
        (stats.accepted() >= target).then_some(())
    })
    .await;
}

/// Waits until the senders have met the stopped receiver once more (a refused connection).
async fn until_unreachable_again(stats: &Stats) {
    let before = stats.unreachable();
    eventually(DEADLINE, "a sender met the stopped receiver", || async {
        (stats.unreachable() > before).then_some(())
    })
    .await;
}

/// Once every worker is consuming, SIGTERMs the workers in `slots` together, checks that each
/// exited 0, and restarts them.
///
/// (Waiting for the consumers matters: a worker SIGTERMed within its first milliseconds, before
/// its signal handler is installed, dies of the signal instead of stopping; it holds nothing
/// yet, so nothing is lost, but that is not the shutdown this test is about.)
async fn terminate_and_restart(
    broker: &TestBroker,
    workers: &mut WorkerProcesses,
    slots: &[usize],
) {
    until_consumers(broker, WORKERS as u32).await;
    for (slot, status) in slots.iter().zip(workers.terminate(slots).await) {
        assert!(
            status.success(),
            "worker {slot} must exit 0 after SIGTERM, not {status}"
        );
    }
    for &slot in slots {
        workers.restart(slot);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_and_workers_stopped_gracefully_under_load_lose_nothing() {
    let stream = Stream::build(EVENTS, |_, event| event);
    let expected = {
        let reference = TestDb::new().await;
        reference_state(&reference, &context(&reference), &stream).await
    };
    let db = TestDb::new().await;
    let broker = TestBroker::new().await;
    let mut receiver = Receiver::start(&settings(&db, &broker, &with_common(&[]))).await;
    let mut workers = WorkerProcesses::start(WORKERS, worker_env(&db, &broker));
    until_consumers(&broker, WORKERS as u32).await;

    let sending = Sending::start(&stream.bodies, &receiver.url(), LANES);
    let stats = sending.stats.clone();
    let bodies = stream.bodies.len();

    until_accepted(&stats, bodies, 0.15).await;
    terminate_and_restart(&broker, &mut workers, &[0]).await;

    until_accepted(&stats, bodies, 0.30).await;
    receiver.stop().await;
    until_unreachable_again(&stats).await;
    receiver.restart().await;

    until_accepted(&stats, bodies, 0.45).await;
    terminate_and_restart(&broker, &mut workers, &[0, 1, 2]).await;

    until_accepted(&stats, bodies, 0.60).await;
    tokio::join!(
        terminate_and_restart(&broker, &mut workers, &[1]),
        receiver.stop()
    );
    until_unreachable_again(&stats).await;
    receiver.restart().await;
    let fault_end = Instant::now();

    let stats = sending.finish().await;
    until_ledger(&db, EVENTS).await;
    let ledger_complete = fault_end.elapsed();
    until_queues_drained(&broker).await;
    until_consumers(&broker, WORKERS as u32).await;
    assert_only_2xx_or_503(&stats);
    assert!(
        stats.unreachable() > 0,
        "the senders must have met the stopped receiver"
    );
    assert_converged(&db, &stream, &expected).await;

    let mut figures = Figures::new(
        "5 graceful shutdown",
        &stream,
        &stats,
        db.ledger_len().await,
        &expected,
    );
    figures.worker_sigterms = workers.terminated;
    figures.worker_restarts = workers.restarts();
    figures.receiver_restarts = receiver.starts - 1;
    figures.recovery = vec![("last_restart_to_ledger_complete", ledger_complete)];
    figures.print();
    until_consumers(&broker, WORKERS as u32).await;
    let statuses = workers.terminate(&[0, 1, 2]).await;
    assert!(statuses.iter().all(std::process::ExitStatus::success));
    receiver.stop().await;
}

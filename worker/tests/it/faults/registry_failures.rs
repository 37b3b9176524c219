//! Fault 4: the registry callback fails. The stream's manifest pushes name stand-in manifests
//! that a test registry serves (so callbacks get verifiable content), and the registry answers
//! 500 to everything for a while, or for good.
//!
//! - For a while: each failed manifest push goes through the retry queue and comes back; pulls
//!   and blob events keep flowing; once the registry works again every push is recorded with
//!   the fetched content.
//! - For good: after `worker.max_attempts` the pushes are dead-lettered; once the registry
//!   works again `regstat dlq replay --all` sends them back and they are recorded.
//!
//! Either way the end state must be the reference state, which the same events give when the
//! registry never failed.

use super::harness::{
    DEADLINE, Figures, OUTAGE, assert_converged, assert_only_2xx_or_503, queue_state, time_until,
    until_ledger, until_queues_drained, with_common,
};
use super::sender::Sending;
use super::stream::{FIXTURE_HOST, Served, Stream, reference_state, templates};
use crate::helpers::{TestDb, TestReceiver, TestWorker, settings_with_file};
use crate::registry::fake::{Auth, Behaviour, FakeRegistry};
use regstat_shared::testkit::{self, TestBroker, eventually};
use regstat_worker::handler::Context;
use std::process::Command;
use std::time::Instant;

const EVENTS: usize = 400;
/// Workers per test.
const WORKERS: usize = 2;

/// A registry serving stand-ins for the stream's manifests, the stream naming it, the config
/// file that declares it, and the state the stream gives when the registry never fails.
struct Setup {
    registry: FakeRegistry,
    stream: Stream,
    config: String,
    expected: serde_json::Value,
    db: TestDb,
    broker: TestBroker,
}

impl Setup {
    async fn new() -> Self {
        let registry = FakeRegistry::start(Auth::None);
        let host = registry.url().trim_start_matches("http://").to_owned();
        let served = Served::new(EVENTS.div_ceil(templates().len()));
        for (digest, content_type, bytes) in &served.documents {
            registry.state.add(digest, content_type, bytes);
        }
        let stream = Stream::build(EVENTS, |round, event| {
            served.rewrite(round, event.replace(FIXTURE_HOST, &host))
        });
        let config = format!(
            "[[registries]]\nname = \"fake\"\nurl = \"{}\"\n",
            registry.url()
        );
        let broker = TestBroker::with_retry_delays(&[1]).await;
        let expected = {
            let reference = TestDb::new().await;
            let settings = settings_with_file(&reference, &broker, &config, &[]);
            let ctx = Context::new(reference.pool.clone(), &settings).expect("a context");
            reference_state(&reference, &ctx, &stream).await
        };
        // The stand-ins really are fetched (the comparison would be weak if both sides only
        // had the events' references).
        let manifests = expected["manifests"].as_array().expect("manifest rows");
        let pushed = manifests.iter().filter(|m| !m["first_pushed_at"].is_null());
        assert!(
            pushed.clone().count() > 0 && pushed.clone().all(|m| m["fetch_status"] == "fetched"),
            "every pushed manifest's content is fetched in the reference run: {manifests:?}"
        );
        Self {
            registry,
            stream,
            config,
            expected,
            db: TestDb::new().await,
            broker,
        }
    }

    /// Receiver and workers with `max_attempts`, retries after 1 s.
    async fn services(&self, max_attempts: &str) -> (TestReceiver, Vec<TestWorker>) {
        let settings = settings_with_file(
            &self.db,
            &self.broker,
            &self.config,
            &with_common(&[
                ("REGSTAT__AMQP__RETRY_DELAYS_SECS", "1"),
                ("REGSTAT__WORKER__MAX_ATTEMPTS", max_attempts),
            ]),
        );
        let receiver = TestReceiver::spawn(&settings).await;
        let workers = (0..WORKERS).map(|_| TestWorker::spawn(&settings)).collect();
        (receiver, workers)
    }

    /// Requests the registry answered so far.
    fn callbacks(&self) -> usize {
        self.registry.state.seen().len()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_500s_are_retried_and_recorded_once_it_recovers() {
    let setup = Setup::new().await;
    let (stream, db, broker) = (&setup.stream, &setup.db, &setup.broker);
    let pushes = stream.manifest_push_ids().len();
    let digests = stream.manifest_push_digests();
    setup.registry.state.set_behaviour(Behaviour::Status(500));
    let callbacks_before = setup.callbacks();
    let (receiver, workers) = setup.services("50").await;

    let stats = Sending::start(&stream.bodies, &format!("{}/events", receiver.address), 1)
        .finish()
        .await;
    // Everything but the manifest pushes goes through; the pushes wait in the retry queue.
    until_ledger(db, EVENTS - pushes).await;
    let failing_since = Instant::now();
    eventually(
        DEADLINE,
        "two failed callbacks per pushed manifest, on average",
        || async { (setup.callbacks() - callbacks_before >= 2 * digests).then_some(()) },
    )
    .await;
    tokio::time::sleep(OUTAGE.saturating_sub(failing_since.elapsed())).await;
    assert_eq!(
        db.ledger_len().await,
        (EVENTS - pushes) as i64,
        "no push is recorded while its manifest cannot be fetched"
    );
    assert_eq!(
        queue_state(broker, &broker.topology.dead_queue()).await.0,
        0
    );

    setup.registry.state.set_behaviour(Behaviour::Normal);
    let recovered = Instant::now();
    let failures = setup.callbacks() - callbacks_before;
    until_ledger(db, EVENTS).await;
    let ledger_complete = recovered.elapsed();
    until_queues_drained(broker).await;
    assert_only_2xx_or_503(&stats);
    assert_converged(db, stream, &setup.expected).await;

    let mut figures = Figures::new(
        "4a registry 500s",
        stream,
        &stats,
        db.ledger_len().await,
        &setup.expected,
    );
    figures.callback_failures = failures;
    figures.recovery = vec![("ledger_complete", ledger_complete)];
    figures.print();
    for worker in workers {
        worker.stop().await;
    }
    receiver.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_down_for_good_dead_letters_and_dlq_replay_records_them_after_recovery() {
    let setup = Setup::new().await;
    let (stream, db, broker) = (&setup.stream, &setup.db, &setup.broker);
    let pushes = stream.manifest_push_ids().len();
    setup.registry.state.set_behaviour(Behaviour::Status(500));
    let callbacks_before = setup.callbacks();
    let (receiver, workers) = setup.services("3").await;

    let stats = Sending::start(&stream.bodies, &format!("{}/events", receiver.address), 1)
        .finish()
        .await;
    // Every copy of every manifest push is dead-lettered (a duplicate is only known to be one
    // once the original is recorded, and none is).
    let dead = broker.topology.dead_queue();
    let expected_letters = stream.manifest_push_bodies() as u32;
    eventually(DEADLINE, "every manifest push dead-lettered", || async {
        (queue_state(broker, &dead).await.0 >= expected_letters).then_some(())
    })
    .await;
    until_ledger(db, EVENTS - pushes).await;
    let dead_letters = queue_state(broker, &dead).await.0;
    assert_eq!(dead_letters, expected_letters, "one dead letter per copy");
    let failures = setup.callbacks() - callbacks_before;

    setup.registry.state.set_behaviour(Behaviour::Normal);
    let recovered = Instant::now();
    let replay = Command::new(regstat_shared::testkit::workspace_binary("regstat"))
        .args(["dlq", "replay", "--all"])
        .env_clear()
        .env("REGSTAT__AMQP__URL", testkit::amqp_url())
        .env("REGSTAT__AMQP__PREFIX", &broker.prefix)
        .env("REGSTAT__DATABASE__URL", &db.url)
        .env("REGSTAT__TELEMETRY__FILTER", "warn")
        .output()
        .expect("run regstat dlq replay");
    let said = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "regstat dlq replay --all failed: {said}\n{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert!(
        said.contains(&format!("replayed {dead_letters}, kept 0")),
        "regstat dlq replay --all said: {said}"
    );
    let ledger_complete = time_until(recovered, "the replayed pushes recorded", || async {
        db.ledger_len().await == EVENTS as i64
    })
    .await;
    assert_only_2xx_or_503(&stats);
    assert_converged(db, stream, &setup.expected).await;
    let left_behind = queue_state(broker, &dead).await.0;

    let mut figures = Figures::new(
        "4b registry down",
        stream,
        &stats,
        db.ledger_len().await,
        &setup.expected,
    );
    figures.callback_failures = failures;
    figures.dead_letters = dead_letters;
    figures.replayed = dead_letters;
    figures.recovery = vec![("replay_to_ledger_complete", ledger_complete)];
    figures.print();
    println!(
        "fault[4b registry down]: {left_behind} dead letters still in the dead queue after the replay"
    );
    for worker in workers {
        worker.stop().await;
    }
    receiver.stop().await;
    // Last, so that a failure here says the replayed events were all recorded correctly.
    assert_eq!(
        left_behind, 0,
        "`regstat dlq replay --all` said it replayed and removed all {dead_letters} dead letters, \
         yet {left_behind} of them are still in {dead}, redelivered, with their old failure \
         headers: their acks were lost when the command closed its channel"
    );
    until_queues_drained(broker).await;
}

//! Fault 7: a node of a three-node RabbitMQ cluster lost under load.
//!
//! The cluster is `deploy/rabbitmq-cluster.sh`'s (its own node names, ports and folder),
//! the topology has four shards (quorum queues replicated on the three nodes), two receivers
//! and three worker processes get `amqp.url` as the list of the three nodes, and registries
//! post on four lanes. Twice, with a fresh database and prefix each time: (a) the node leading
//! the most shard queues is killed (`kill -9`) mid-load, then restarted; (b) a node is stopped
//! gracefully, then started. Each time every event answered 2xx must be in the ledger exactly
//! once, the derived state must equal the reference state of the same events, and the figures
//! line reports how long the node took to go (`kill` returns at once, a graceful stop hands
//! its queues' leadership over first), the time from then to the first accepted request, the
//! node's time to rejoin, and the time from the fault to the ledger holding every event.
//! The last third of the stream is held back until the node is gone, so a first accepted
//! request without the node is always there to measure.

use super::harness::{
    DEADLINE, Figures, assert_converged, assert_only_2xx_or_503, time_until, until_consumers,
    until_ledger, until_queues_drained, with_common, worker_env,
};
use super::processes::WorkerProcesses;
use super::sender::Sending;
use super::stream::{Stream, reference_state};
use crate::helpers::{TestDb, TestReceiver, context, settings};
use regstat_shared::testkit::{self, TestBroker, eventually, ports};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

const EVENTS: usize = 1500;
const SHARDS: u16 = 4;
const WORKERS: usize = 3;
/// Registries sending at once (each one event at a time), spread over the two receivers.
const LANES: usize = 4;

/// A three-node cluster of `deploy/rabbitmq-cluster.sh`, taken down (its folder removed) on
/// drop, also when the test fails.
struct Cluster {
    env: Vec<(String, String)>,
    name: String,
    /// The three nodes' URLs, comma-separated.
    url: String,
}

impl Cluster {
    /// Starts the cluster and waits until its three nodes run in it.
    async fn up() -> Self {
        let name = testkit::unique_name("cluster");
        let env = vec![
            ("REGSTAT_CLUSTER_NAME".to_owned(), name.clone()),
            (
                "REGSTAT_CLUSTER_PORT".to_owned(),
                ports::free_port_base(&[0, 1, 2, 20_000, 20_001, 20_002]).to_string(),
            ),
            (
                "REGSTAT_CLUSTER_DIR".to_owned(),
                std::env::temp_dir().join(&name).display().to_string(),
            ),
        ];
        let mut cluster = Self {
            env,
            name,
            url: String::new(),
        };
        cluster.run(&["up"]).await;
        cluster.url = cluster.run(&["url"]).await.trim().to_owned();
        cluster
    }

    fn command(&self, args: &[&str]) -> Command {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/rabbitmq-cluster.sh");
        let mut command = Command::new("bash");
        command
            .arg(script)
            .args(args)
            .envs(self.env.iter().cloned());
        command
    }

    /// Runs the script with `args`; fails the test with its output if it fails.
    async fn run(&self, args: &[&str]) -> String {
        let mut command = self.command(args);
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("run deploy/rabbitmq-cluster.sh: {e}"));
        assert!(
            output.status.success(),
            "deploy/rabbitmq-cluster.sh {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// How many of the queues named `prefix.*` each node leads, asked of node `ask`.
    async fn leaders(&self, prefix: &str, ask: u8) -> BTreeMap<u8, usize> {
        let listing = self
            .run(&[
                "ctl",
                &ask.to_string(),
                "-q",
                "list_queues",
                "name",
                "leader",
            ])
            .await;
        let mut leaders = BTreeMap::new();
        for line in listing.lines() {
            let mut fields = line.split_whitespace();
            let (Some(queue), Some(leader)) = (fields.next(), fields.next()) else {
                continue;
            };
            let work = queue.starts_with(&format!("{prefix}.ingest."))
                || queue.starts_with(&format!("{prefix}.manifests."));
            let node = leader
                .strip_prefix(&format!("{}-", self.name))
                .and_then(|n| n.strip_suffix("@localhost"))
                .and_then(|n| n.parse().ok());
            if let (true, Some(node)) = (work, node) {
                *leaders.entry(node).or_default() += 1;
            }
        }
        leaders
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.command(&["down"]).output();
    }
}

/// What happens to the node.
#[derive(Clone, Copy)]
enum Loss {
    /// `kill -9` of the node leading the most shard queues.
    Killed,
    /// `rabbitmqctl stop` of a node.
    Stopped,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_lost_under_load_loses_nothing() {
    let cluster = Cluster::up().await;
    run(&cluster, Loss::Killed).await;
    run(&cluster, Loss::Stopped).await;
}

async fn run(cluster: &Cluster, loss: Loss) {
    let stream = Stream::build(EVENTS, |_, event| event);
    let expected = {
        let reference = TestDb::new().await;
        reference_state(&reference, &context(&reference), &stream).await
    };
    let db = TestDb::new().await;
    let mut broker = TestBroker::sharded(&cluster.url, SHARDS, 0).await;
    let settings = settings(&db, &broker, &with_common(&[]));
    let receivers = [
        TestReceiver::spawn(&settings).await,
        TestReceiver::spawn(&settings).await,
    ];
    let workers = WorkerProcesses::start(WORKERS, worker_env(&db, &broker));
    until_consumers(&broker, WORKERS as u32).await;
    let leaders = cluster.leaders(&broker.prefix, 1).await;
    let (victim, led) = match loss {
        Loss::Killed => leaders
            .iter()
            .max_by_key(|(_, led)| **led)
            .map(|(node, led)| (*node, *led))
            .expect("the shard queues have leaders"),
        Loss::Stopped => (2, leaders.get(&2).copied().unwrap_or_default()),
    };

    let urls: Vec<String> = receivers
        .iter()
        .map(|r| format!("{}/events", r.address))
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    // The last third waits until the node is gone, so that events are still to come then,
    // however long a graceful stop takes (the rest of the stream may be through by then).
    let held = stream.bodies.len() / 3;
    let sending = Sending::start_holding(&stream.bodies, &urls, LANES, held);
    let stats = sending.stats.clone();
    eventually(DEADLINE, "a third of the stream accepted", || async {
        (stats.accepted() >= (stream.bodies.len() / 3) as u64).then_some(())
    })
    .await;
    let (what, action) = match loss {
        Loss::Killed => ("7a cluster node killed", "kill"),
        Loss::Stopped => ("7b cluster node stopped", "stop"),
    };
    let lost_at = Instant::now();
    cluster.run(&[action, &victim.to_string()]).await;
    let node_gone = lost_at.elapsed();
    // The other two nodes carry on: requests are accepted without the lost node.
    let (gone_at, accepted_at_gone) = (Instant::now(), stats.accepted());
    sending.release();
    let first_accept = time_until(gone_at, "an event accepted without the node", || async {
        stats.accepted() > accepted_at_gone
    })
    .await;
    let restarted_at = Instant::now();
    cluster.run(&["start", &victim.to_string()]).await;
    let node_back = restarted_at.elapsed();

    let stats = sending.finish().await;
    until_ledger(&db, EVENTS).await;
    let ledger_complete = lost_at.elapsed();
    broker.reconnect().await;
    until_queues_drained(&broker).await;
    assert_only_2xx_or_503(&stats);
    assert_converged(&db, &stream, &expected).await;

    let mut figures = Figures::new(what, &stream, &stats, db.ledger_len().await, &expected);
    figures.recovery = vec![
        ("node_gone", node_gone),
        ("first_accept_after_gone", first_accept),
        ("node_rejoined", node_back),
        ("ledger_complete", ledger_complete),
    ];
    figures.print();
    println!(
        "fault[{what}]: node {victim} led {led} of {} shard queues; leaders before {leaders:?}, \
         after {:?}",
        2 * SHARDS,
        cluster.leaders(&broker.prefix, 1).await
    );
    drop(workers);
    for receiver in receivers {
        receiver.stop().await;
    }
}

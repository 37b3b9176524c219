//! The five scenarios of the benchmark (issue 6), each returning its figures.

use crate::fake_registry::FakeRegistry;
use crate::load::{self, Sent};
use crate::raw;
use crate::sender::{self, Sender};
use crate::stack::{Services, Stack, TOKEN};
use crate::stats::{Latency, median};
use crate::workload::{FixtureShapes, Kind, REGISTRY_HOST, Workload};
use anyhow::bail;
use chrono::{DateTime, Utc};
use regstat_store::measure::{self, Path};
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Events per block of the interleaved serial measurement.
const SERIAL_BLOCK: usize = 250;

/// How big and how long.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Repetitions of scenarios 1 and 2 (and their raw limits); figures are medians.
    pub runs: usize,
    /// Events per serial run.
    pub serial_events: usize,
    /// Seconds per concurrency level (and per raw pipelined run).
    pub concurrent_secs: u64,
    /// Concurrent sender counts, each with a new connection per request and with kept
    /// connections.
    pub concurrency: Vec<usize>,
    /// Target rate of the end-to-end run, events/s.
    pub rate: f64,
    /// Seconds of the end-to-end run.
    pub end_to_end_secs: u64,
    /// Connections the end-to-end load uses.
    pub end_to_end_senders: usize,
    /// Whether the end-to-end load keeps its connections open.
    pub keep_alive: bool,
    /// Repositories and tags per repository of the simulated registry.
    pub repositories: usize,
    /// Tags per repository.
    pub tags_per_repository: usize,
    /// Events the raw SQL limit writes.
    pub raw_sql_events: usize,
    /// Seconds of queueing the backlog the workers then apply.
    pub backlog_secs: u64,
    /// Seconds of the slow-registry pull-path run.
    pub slow_secs: u64,
    /// Manifest callback delay of the slow registry.
    pub slow_delay: Duration,
    /// Callback concurrencies tried on the manifest path.
    pub callback_concurrency: Vec<usize>,
    /// Events recorded before each console measurement (scenario 6).
    pub console_sizes: Vec<usize>,
}

/// Scenario 1.
#[derive(Debug, Clone, Copy)]
pub struct Serial {
    /// The receiver's answer latency (median over runs of each percentile).
    pub receiver: Latency,
    /// One confirmed publish at a time, no HTTP.
    pub raw: Latency,
    /// The HTTP floor: `GET /healthz` of the receiver, a new connection each, one at a time.
    pub http: Latency,
    /// Receiver p50 ÷ raw p50, the median over runs.
    pub ratio: f64,
}

/// Scenario 2, one concurrency level.
#[derive(Debug, Clone, Copy)]
pub struct Concurrent {
    /// Senders.
    pub senders: usize,
    /// Whether they kept their connections open.
    pub keep_alive: bool,
    /// Events accepted per second (median over runs).
    pub rate: f64,
    /// Answer latency at that load.
    pub latency: Latency,
    /// Requests refused (non-200) over all runs.
    pub refused: u64,
}

/// Scenario 3.
#[derive(Debug, Clone, Default)]
pub struct EndToEnd {
    /// The rate asked of the load generator.
    pub target_rate: f64,
    /// Events accepted per second by the receiver.
    pub accepted_rate: f64,
    /// Events applied per second while the load ran (after a warm-up).
    pub applied_rate: f64,
    /// The same for the pull path (everything but manifest pushes).
    pub pull_path_rate: f64,
    /// Answer to applied, seconds.
    pub lag_p50: f64,
    /// Answer to applied, seconds.
    pub lag_p99: f64,
    /// Answer to applied on the pull path, seconds.
    pub pull_path_lag_p99: f64,
    /// Messages ready in the queues when the load stopped.
    pub depth_at_end: u32,
    /// Seconds from the end of the load until every event was applied.
    pub drain_secs: f64,
    /// Events accepted (and so expected in the ledger).
    pub events: u64,
    /// Whether the ledger holds every event exactly once and image pulls/pushes add up.
    pub exactly_once: bool,
    /// What the exactly-once check found.
    pub check: String,
    /// The raw limit: the same SQL writes by one process, events/s.
    pub raw_sql_rate: f64,
    /// What those writes cost PostgreSQL per event.
    pub write_cost: raw::WriteCost,
    /// Requests the stand-in registry answered (manifest and config callbacks).
    pub callbacks: u64,
    /// Events queued while the workers were stopped.
    pub backlog_events: u64,
    /// How fast the 2 workers applied that backlog, events/s (from their start).
    pub backlog_rate: f64,
}

/// Scenario 4.
#[derive(Debug, Clone, Default)]
pub struct SlowRegistry {
    /// Serial answer latency while callbacks take `slow_delay` (workers running).
    pub serial: Latency,
    /// The same with a registry that answers at once (workers running).
    pub serial_fast_registry: Latency,
    /// The pull path under the realistic load at scenario 3's rate.
    pub pull_path_rate: f64,
    /// Answer to applied on the pull path, seconds.
    pub pull_path_lag_p99: f64,
    /// Manifests applied per second, by callback concurrency.
    pub manifest_rates: Vec<(usize, f64)>,
}

/// Scenario 5: peak resident memory, MiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// The receiver, through scenarios 1 and 2.
    pub receiver_concurrent: Option<f64>,
    /// The receiver through scenario 3.
    pub receiver_end_to_end: Option<f64>,
    /// The larger worker through scenario 3.
    pub worker_end_to_end: Option<f64>,
}

/// Scenarios 1 and 2 share one receiver (its memory peak covers both).
pub async fn receiver_only(
    services: &Services,
    plan: &Plan,
    memory: &mut Memory,
) -> anyhow::Result<(Serial, f64, Vec<Concurrent>)> {
    let mut stack = Stack::new(services, None).await?;
    let result = async {
        let sender = Sender::new(stack.start_receiver().await?, TOKEN);
        let mut receiver_runs = Vec::new();
        let mut raw_runs = Vec::new();
        let mut http_runs = Vec::new();
        let channel = stack.confirm_channel().await?;
        for run in 1..=plan.runs {
            // Interleaved in blocks, so that the receiver, the raw publish and the HTTP floor
            // see the same moments of a noisy machine.
            let mut shapes = FixtureShapes::default();
            let (mut answers, mut raw, mut http) = (Vec::new(), Vec::new(), Vec::new());
            let mut remaining = plan.serial_events;
            while remaining > 0 {
                let block = remaining.min(SERIAL_BLOCK);
                remaining -= block;
                let sent =
                    load::sequential(&sender, block, || (Kind::PullBlob, shapes.next_event()))
                        .await;
                answers.extend(sent.answers);
                raw.extend(raw::serial_publish(&channel, &stack, block).await?);
                for _ in 0..block {
                    let started = Instant::now();
                    if sender::get(sender.addr(), "/healthz").await? != 200 {
                        bail!("the receiver's /healthz did not answer 200");
                    }
                    http.push(started.elapsed());
                }
            }
            stack.purge().await?;
            let (receiver, raw) = (Latency::of(&mut answers), Latency::of(&mut raw));
            let http = Latency::of(&mut http);
            eprintln!(
                "  serial run {run}: receiver p50 {:.3} p99 {:.3} ms; raw p50 {:.3} p99 {:.3} ms; \
                 http p50 {:.3} p99 {:.3} ms",
                receiver.p50, receiver.p99, raw.p50, raw.p99, http.p50, http.p99
            );
            receiver_runs.push(receiver);
            raw_runs.push(raw);
            http_runs.push(http);
        }
        let serial = Serial {
            ratio: median(
                receiver_runs
                    .iter()
                    .zip(&raw_runs)
                    .map(|(receiver, raw)| receiver.p50 / raw.p50),
            ),
            receiver: Latency::median(&receiver_runs),
            raw: Latency::median(&raw_runs),
            http: Latency::median(&http_runs),
        };

        let duration = Duration::from_secs(plan.concurrent_secs);
        let mut raw_rates = Vec::new();
        let mut levels = Vec::new();
        let modes = [false, true];
        for (keep_alive, &senders) in modes
            .iter()
            .flat_map(|mode| plan.concurrency.iter().map(move |s| (*mode, s)))
        {
            let mut rates = Vec::new();
            let mut latencies = Vec::new();
            let mut refused = 0;
            for run in 1..=plan.runs {
                let mut sent = load::closed_loop(&sender, senders, keep_alive, duration).await;
                stack.purge().await?;
                refused += sent.retried;
                eprintln!(
                    "  concurrent {senders}{} run {run}: {:.0} events/s",
                    if keep_alive { " kept connections" } else { "" },
                    sent.rate()
                );
                rates.push(sent.rate());
                latencies.push(Latency::of(&mut sent.answers));
            }
            levels.push(Concurrent {
                senders,
                keep_alive,
                rate: median(rates),
                latency: Latency::median(&latencies),
                refused,
            });
        }
        for run in 1..=plan.runs {
            let rate = raw::pipelined_publish(&stack, duration).await?;
            stack.purge().await?;
            eprintln!("  raw pipelined run {run}: {rate:.0} messages/s");
            raw_rates.push(rate);
        }
        memory.receiver_concurrent = stack.receiver_peak_rss();
        Ok((serial, median(raw_rates), levels))
    }
    .await;
    stack.close().await?;
    result
}

/// The simulated registry of `plan`'s size (seeded) and the stand-in serving its documents.
pub(crate) fn simulated_registry(
    plan: &Plan,
    seed: u64,
) -> anyhow::Result<(FakeRegistry, Arc<Mutex<Workload>>)> {
    let workload = Workload::new(
        REGISTRY_HOST,
        plan.repositories,
        plan.tags_per_repository,
        seed,
    );
    let registry = FakeRegistry::start(workload.documents())?;
    Ok((registry, Arc::new(Mutex::new(workload))))
}

/// Scenario 3: the realistic mix through receiver, RabbitMQ and two workers into Postgres.
pub async fn end_to_end(
    services: &Services,
    plan: &Plan,
    memory: &mut Memory,
) -> anyhow::Result<EndToEnd> {
    let (registry, workload) = simulated_registry(plan, 1)?;
    let result = async {
        let raw = {
            let stack = Stack::new(services, Some(registry.addr)).await?;
            let raw = raw::sql_writes(&stack, &workload, plan.raw_sql_events).await;
            stack.close().await?;
            raw?
        };
        let raw_sql_rate = raw.rate;
        eprintln!("  raw SQL writes: {raw_sql_rate:.0} events/s; per event, by table (rows, index entries):");
        for (table, rows, entries) in &raw.cost.tables {
            eprintln!("    {table}: {rows:.2}, {entries:.2}");
        }

        let mut stack = Stack::new(services, Some(registry.addr)).await?;
        let result = async {
            let sender = Sender::new(stack.start_receiver().await?, TOKEN);
            stack.start_workers(2, None).await?;
            let load = Load::run(&stack, &sender, &workload, plan, plan.end_to_end_secs).await?;
            let applied = load.wait_applied(&stack.pool, load.sent.accepted).await?;
            let all = lag(&stack.pool, load.started_at, false).await?;
            let pulls = lag(&stack.pool, load.started_at, true).await?;
            let applied_rate = load.applied_rate(&stack.pool, false).await?;
            let pull_path_rate = load.applied_rate(&stack.pool, true).await?;

            // What the workers can apply when they need not share the cores with the load
            // generator and the receiver: a backlog queued while they were stopped.
            stack.stop_workers().await?;
            let backlog = load::paced(
                &sender,
                workload.clone(),
                1e9,
                Duration::from_secs(plan.backlog_secs),
                64,
                true,
            )
            .await;
            let started = Instant::now();
            stack.start_workers(2, None).await?;
            let (accepted_rate, events) = (load.sent.rate(), load.sent.accepted);
            let backlog_events = backlog.accepted;
            let mut total = load.sent;
            total.merge(backlog);
            wait_rows(
                &stack.pool,
                Path::All,
                total.accepted,
                Duration::from_secs(600),
            )
            .await?;
            let backlog_rate = backlog_events as f64 / started.elapsed().as_secs_f64();
            eprintln!("  backlog: {backlog_events} events applied at {backlog_rate:.0}/s");
            let check = exactly_once(&stack.pool, &total).await?;
            memory.receiver_end_to_end = stack.receiver_peak_rss();
            memory.worker_end_to_end = stack.worker_peak_rss();
            Ok::<_, anyhow::Error>(EndToEnd {
                target_rate: plan.rate,
                accepted_rate,
                applied_rate,
                pull_path_rate,
                lag_p50: all.0,
                lag_p99: all.1,
                pull_path_lag_p99: pulls.1,
                depth_at_end: load.depth_at_end,
                drain_secs: applied.as_secs_f64(),
                events,
                backlog_events,
                backlog_rate,
                exactly_once: check.is_ok(),
                check: check.unwrap_or_else(|e| e),
                raw_sql_rate,
                write_cost: raw.cost.clone(),
                callbacks: registry.requests(),
            })
        }
        .await;
        stack.close().await?;
        result
    }
    .await;
    registry.stop().await;
    result
}

/// Scenario 4: manifest callbacks answered after `plan.slow_delay`.
pub async fn slow_registry(services: &Services, plan: &Plan) -> anyhow::Result<SlowRegistry> {
    let (registry, workload) = simulated_registry(plan, 2)?;
    let result = async {
        let mut figures = SlowRegistry::default();
        let mut stack = Stack::new(services, Some(registry.addr)).await?;
        let result = async {
            let sender = Sender::new(stack.start_receiver().await?, TOKEN);
            stack.start_workers(2, None).await?;
            let next = || {
                workload
                    .lock()
                    .map(|mut w| w.next_event())
                    .unwrap_or((Kind::PullBlob, String::new()))
            };
            // The same serial sender with workers busy behind the receiver, first with a
            // registry answering at once, then with the slow one: what the slowness costs.
            let mut fast = load::sequential(&sender, plan.serial_events, next).await;
            figures.serial_fast_registry = Latency::of(&mut fast.answers);
            registry.set_manifest_delay(plan.slow_delay);
            let mut serial = load::sequential(&sender, plan.serial_events, next).await;
            figures.serial = Latency::of(&mut serial.answers);
            eprintln!(
                "  serial with workers: fast registry p50 {:.3} p99 {:.3} ms; slow registry \
                 p50 {:.3} p99 {:.3} ms",
                figures.serial_fast_registry.p50,
                figures.serial_fast_registry.p99,
                figures.serial.p50,
                figures.serial.p99
            );
            let load = Load::run(&stack, &sender, &workload, plan, plan.slow_secs).await?;
            let pull_path = |sent: &Sent| sent.accepted - sent.manifest_pushes;
            load.wait_pull_path(
                &stack.pool,
                pull_path(&load.sent) + pull_path(&serial) + pull_path(&fast),
            )
            .await?;
            figures.pull_path_rate = load.applied_rate(&stack.pool, true).await?;
            figures.pull_path_lag_p99 = lag(&stack.pool, load.started_at, true).await?.1;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        stack.close().await?;
        result?;

        for &concurrency in &plan.callback_concurrency {
            let mut stack = Stack::new(services, Some(registry.addr)).await?;
            let rate = async {
                let sender = Sender::new(stack.start_receiver().await?, TOKEN);
                stack.start_workers(2, Some(concurrency)).await?;
                // About 8 s of work at the expected rate (2 workers × concurrency / delay).
                let expected = 2.0 * concurrency as f64 / plan.slow_delay.as_secs_f64();
                let count = ((expected * 8.0) as usize).max(16);
                let events: Vec<(Kind, String)> = {
                    let mut workload = workload
                        .lock()
                        .map_err(|_| anyhow::anyhow!("workload lock poisoned"))?;
                    (0..count)
                        .map(|_| (Kind::PushManifest, workload.event_of(Kind::PushManifest)))
                        .collect()
                };
                let started = Instant::now();
                load::burst(&sender, events, 16).await;
                wait_rows(
                    &stack.pool,
                    Path::All,
                    count as u64,
                    Duration::from_secs(300),
                )
                .await?;
                Ok::<_, anyhow::Error>(count as f64 / started.elapsed().as_secs_f64())
            }
            .await;
            stack.close().await?;
            let rate = rate?;
            eprintln!("  slow registry, callback concurrency {concurrency}: {rate:.1} manifests/s");
            figures.manifest_rates.push((concurrency, rate));
        }
        Ok(figures)
    }
    .await;
    registry.stop().await;
    result
}

/// A paced run of the realistic mix, and when it happened.
struct Load {
    sent: Sent,
    started_at: DateTime<Utc>,
    steady_from: DateTime<Utc>,
    ended_at: DateTime<Utc>,
    ended: Instant,
    depth_at_end: u32,
}

impl Load {
    async fn run(
        stack: &Stack,
        sender: &Sender,
        workload: &Arc<Mutex<Workload>>,
        plan: &Plan,
        secs: u64,
    ) -> anyhow::Result<Self> {
        let started_at = Utc::now();
        let duration = Duration::from_secs(secs);
        let sent = load::paced(
            sender,
            workload.clone(),
            plan.rate,
            duration,
            plan.end_to_end_senders,
            plan.keep_alive,
        )
        .await;
        let ended_at = Utc::now();
        let ended = Instant::now();
        let depth_at_end = stack.queue_depth().await?;
        eprintln!(
            "  load: {} events in {:.1} s ({:.0}/s accepted, {} refusals), {} ready in the queues at the end",
            sent.accepted,
            sent.elapsed.as_secs_f64(),
            sent.rate(),
            sent.retried,
            depth_at_end
        );
        // The first fifth of the run (at most 10 s) warms up: caches, pools, queue consumers.
        let warm_up = chrono::Duration::seconds((secs / 5).clamp(1, 10) as i64);
        Ok(Self {
            sent,
            started_at,
            steady_from: started_at + warm_up,
            ended_at,
            ended,
            depth_at_end,
        })
    }

    /// Waits until the ledger holds `expected` events: how long after the load ended.
    async fn wait_applied(&self, pool: &PgPool, expected: u64) -> anyhow::Result<Duration> {
        wait_rows(pool, Path::All, expected, Duration::from_secs(600)).await?;
        Ok(self.ended.elapsed())
    }

    /// Waits until the ledger holds `expected` pull-path events.
    async fn wait_pull_path(&self, pool: &PgPool, expected: u64) -> anyhow::Result<()> {
        wait_rows(pool, Path::Pull, expected, Duration::from_secs(600)).await
    }

    /// Events (or pull-path events) stored per second between the warm-up and the end of
    /// the load.
    async fn applied_rate(&self, pool: &PgPool, pull_path: bool) -> anyhow::Result<f64> {
        let path = if pull_path { Path::Pull } else { Path::All };
        let count = measure::stored_between(pool, path, self.steady_from, self.ended_at).await?;
        let window = (self.ended_at - self.steady_from).as_seconds_f64();
        Ok(count as f64 / window.max(f64::EPSILON))
    }
}

/// Waits until the ledger holds at least `expected` rows of `path`.
pub(crate) async fn wait_rows(
    pool: &PgPool,
    path: Path,
    expected: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let count = measure::events(pool, path).await?;
        if count as u64 >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the ledger holds {count} of {expected} events ({path:?}) after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Lag from the receiver's answer (`received_at`) to the row's transaction (`stored_at`):
/// p50 and p99 in seconds, for events received since `since`.
async fn lag(pool: &PgPool, since: DateTime<Utc>, pull_path: bool) -> anyhow::Result<(f64, f64)> {
    let path = if pull_path { Path::Pull } else { Path::All };
    let (p50, p99) = measure::lag(pool, path, since).await?;
    Ok((p50.unwrap_or(0.0).max(0.0), p99.unwrap_or(0.0).max(0.0)))
}

/// Every accepted event is in the ledger exactly once, and the image pull and push counters
/// add up to the manifest GETs and pushes sent.
pub(crate) async fn exactly_once(
    pool: &PgPool,
    sent: &Sent,
) -> anyhow::Result<Result<String, String>> {
    let (rows, distinct) = measure::rows_and_ids(pool).await?;
    let (pulls, pushes) = measure::pulls_and_pushes(pool).await?;
    let found = format!(
        "ledger {rows} rows, {distinct} distinct, {} accepted; image pulls {pulls} of {} GETs; \
         pushes {pushes} of {}",
        sent.accepted, sent.manifest_gets, sent.manifest_pushes
    );
    let exact = rows == distinct
        && rows as u64 == sent.accepted
        && pulls as u64 == sent.manifest_gets
        && pushes as u64 == sent.manifest_pushes;
    Ok(if exact { Ok(found) } else { Err(found) })
}

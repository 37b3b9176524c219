//! Scenario 6: the console at real size. A simulated registry (2,000 repositories × 10 tags)
//! is seeded through the worker's own write path (`handle_batch`, registry callbacks to the
//! stand-in included) with the realistic mix spread over 90 days, up to each size in turn;
//! at each size the repository caches are refreshed (as the workers' refresher does while
//! events come) and every page, API endpoint and report is timed over repeated requests.

use crate::fake_registry::FakeRegistry;
use crate::stack::{Services, Stack};
use crate::workload::{REGISTRY_HOST, Workload};
use anyhow::{Context as _, bail};
use chrono::{SecondsFormat, Utc};
use regstat_shared::config::Settings;
use regstat_store::reports::{self, NAMES, Params, Report};
use regstat_worker::handler::{self, Context, Incoming, Outcome};
use serde_json::Value;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Requests per page or endpoint at each size (after one warm-up request)...
const REPEATS: usize = 20;
/// ...or fewer (at least [`MIN_REPEATS`]) when they take longer than this in all.
const TIME_BOX: Duration = Duration::from_secs(10);
/// Requests per page or endpoint however slow it is.
const MIN_REPEATS: usize = 5;
/// Days the seeded events spread over.
const SPREAD_DAYS: i64 = 90;

/// One page, endpoint or report at one size.
#[derive(Debug, Clone)]
pub struct Timing {
    /// What was asked.
    pub what: String,
    /// Median, ms.
    pub p50: f64,
    /// 95th percentile, ms.
    pub p95: f64,
    /// What the answer held: rows, and bytes for an HTTP answer.
    pub answer: String,
    /// A `regstat report` that prints every row (an export: its rows grow with the registry,
    /// so the targets are judged on the API's page of the same report instead).
    pub whole: bool,
}

/// Everything measured at one size.
#[derive(Debug, Clone)]
pub struct AtSize {
    /// Events recorded.
    pub events: usize,
    /// Seconds the seeding up to this size took (from the previous size).
    pub seed_secs: f64,
    /// Seconds the refresh of the repository caches then took, and how many it refreshed.
    pub refresh_secs: f64,
    /// Repositories refreshed.
    pub refreshed: usize,
    /// Pages and endpoints, then reports.
    pub timings: Vec<Timing>,
}

/// Scenario 6's figures.
#[derive(Debug, Clone, Default)]
pub struct ConsoleFigures {
    /// Per size, smallest first.
    pub sizes: Vec<AtSize>,
}

/// Seeds and measures at each of `sizes` (events, ascending).
pub async fn console(services: &Services, sizes: &[usize]) -> anyhow::Result<ConsoleFigures> {
    // 20,000 tags; a quarter of the repositories hold multi-arch images.
    let mut workload = Workload::with_multi_arch(REGISTRY_HOST, 2_000, 10, 6, 4);
    let registry = FakeRegistry::start(workload.documents())?;
    let stack = Stack::new(services, Some(registry.addr)).await?;
    let result = async {
        let mut settings = stack.settings()?;
        settings.console.allow_anonymous = true;
        settings.console.listen = "127.0.0.1:0".to_owned();
        let context = Context::new(stack.pool.clone(), &settings)?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let app = regstat_console::Application::build_with_listener(&settings, listener)?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let mut figures = ConsoleFigures::default();
        let mut recorded = 0;
        for &size in sizes {
            let started = Instant::now();
            seed(&context, &mut workload, size.saturating_sub(recorded)).await?;
            recorded = recorded.max(size);
            let seed_secs = started.elapsed().as_secs_f64();
            // Statistics and visibility maps first, as autovacuum keeps them in a running
            // registry (it may be off on a test machine, and seeding is quicker than its rounds).
            regstat_store::databases::vacuum_analyze(&stack.pool).await?;
            // What the workers' refresher does as events come, at once.
            let started = Instant::now();
            let refreshed = regstat_store::caches::refresh_all(&stack.pool).await?;
            let refresh_secs = started.elapsed().as_secs_f64();
            regstat_store::databases::vacuum_analyze(&stack.pool).await?;
            eprintln!("  {recorded} events seeded ({seed_secs:.0} s); timing pages and reports");
            let mut timings = pages(&base).await?;
            timings.extend(report_timings(&settings).await?);
            figures.sizes.push(AtSize {
                events: recorded,
                seed_secs,
                refresh_secs,
                refreshed,
                timings,
            });
        }
        handle.stop(true).await;
        let _ = server.await;
        Ok::<_, anyhow::Error>(figures)
    }
    .await;
    stack.close().await?;
    drop(registry);
    result
}

/// Records `count` events of the mix, their times spread over the last [`SPREAD_DAYS`] days
/// (the requests of one push or pull a few milliseconds apart, as a client makes them).
async fn seed(context: &Context, workload: &mut Workload, count: usize) -> anyhow::Result<()> {
    let now = Utc::now();
    let mut rng = fastrand::Rng::with_seed(count as u64);
    let mut ago = chrono::Duration::zero();
    let mut done = 0;
    while done < count {
        let batch = 256.min(count - done);
        let messages: Vec<Incoming> = (0..batch)
            .map(|_| {
                let mut event: Value =
                    serde_json::from_str(&workload.next_event().1).unwrap_or_default();
                ago = if workload.follows() {
                    (ago - chrono::Duration::milliseconds(rng.i64(5..50)))
                        .max(chrono::Duration::zero())
                } else {
                    chrono::Duration::milliseconds(rng.i64(0..SPREAD_DAYS * 86_400_000))
                };
                event["timestamp"] =
                    Value::String((now - ago).to_rfc3339_opts(SecondsFormat::Nanos, true));
                Incoming {
                    body: event.to_string().into_bytes(),
                    correlation_id: None,
                    received_at: Some(now - ago),
                }
            })
            .collect();
        let (outcomes, _) = handler::handle_batch(context, &messages)
            .await
            .context("the database is unavailable")?;
        if let Some(outcome) = outcomes.iter().find(|o| **o != Outcome::Ack) {
            bail!("a seeded event was not recorded: {outcome:?}");
        }
        done += batch;
    }
    Ok(())
}

/// Durations of `request` run once to warm up, then [`REPEATS`] times or for [`TIME_BOX`]
/// (at least [`MIN_REPEATS`] times).
async fn repeat(
    mut request: impl AsyncFnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    request().await?;
    let boxed = Instant::now();
    let mut samples = Vec::with_capacity(REPEATS);
    while samples.len() < REPEATS && (samples.len() < MIN_REPEATS || boxed.elapsed() < TIME_BOX) {
        let started = Instant::now();
        request().await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

/// p50 and p95 of `samples`, ms.
fn percentiles(what: String, mut samples: Vec<Duration>, answer: String) -> Timing {
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1000.0
    };
    Timing {
        what,
        p50: at(0.5),
        p95: at(0.95),
        answer,
        whole: false,
    }
}

/// Every page and API endpoint, each asked [`REPEATS`] times after a warm-up.
async fn pages(base: &str) -> anyhow::Result<Vec<Timing>> {
    let client = reqwest_client();
    let top: Value = client
        .get(format!("{base}/api/v1/repositories?sort=pulls&per_page=1"))
        .send()
        .await?
        .json()
        .await?;
    let registry = top["rows"][0]["registry"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let repository = top["rows"][0]["repository"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let repo_path = format!("{}/{repository}", registry.replace(':', "%3A"));
    let detail: Value = client
        .get(format!("{base}/api/v1/repositories/{repo_path}"))
        .send()
        .await?
        .json()
        .await?;
    let digest = detail["tags"][0]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let prefix = repository.split('/').next().unwrap_or_default().to_owned();
    let mut paths: Vec<String> = vec![
        "/".into(),
        "/?days=365".into(),
        "/repositories".into(),
        "/repositories?sort=pulls".into(),
        "/repositories?sort=size&page=5".into(),
        "/repositories?q=service-01".into(),
        format!("/repositories/{repo_path}"),
        format!("/digests/{digest}"),
        "/search?q=service-012".into(),
        format!("/search?q={}", &digest[7..15]),
        "/activity".into(),
        format!("/activity?repository={prefix}&action=push"),
        "/candidates".into(),
        "/api/v1/overview".into(),
        "/api/v1/repositories?sort=pulls".into(),
        format!("/api/v1/repositories/{repo_path}"),
        format!("/api/v1/digests/{digest}"),
        "/api/v1/search?q=service-012".into(),
        "/api/v1/activity?limit=100".into(),
    ];
    paths.extend(
        NAMES
            .iter()
            .filter(|n| **n != "history")
            .map(|name| match *name {
                "stale" | "unpulled" => format!("/api/v1/reports/{name}?days=30"),
                name => format!("/api/v1/reports/{name}"),
            }),
    );
    paths.push(format!("/api/v1/reports/history?repository={repository}"));
    let mut timings = Vec::new();
    for path in paths {
        let url = format!("{base}{path}");
        let mut body = Vec::new();
        let samples = repeat(async || {
            let response = client.get(&url).send().await?;
            let status = response.status();
            body = response.bytes().await?.to_vec();
            if !status.is_success() {
                bail!("{path} answered {status}");
            }
            Ok(())
        })
        .await?;
        timings.push(percentiles(path, samples, describe(&body)));
    }
    Ok(timings)
}

/// An answer's rows (a JSON array, or an object's `rows`) and size.
fn describe(body: &[u8]) -> String {
    let kib = body.len() as f64 / 1024.0;
    let rows = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(rows)) => Some(rows.len()),
        Ok(value) => value["rows"].as_array().map(Vec::len),
        Err(_) => None,
    };
    match rows {
        Some(rows) => format!("{rows} rows, {kib:.0} KiB"),
        None => format!("{kib:.0} KiB"),
    }
}

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap_or_default()
}

/// Every report through the store, on a connection made as `regstat report NAME` makes it.
async fn report_timings(settings: &Settings) -> anyhow::Result<Vec<Timing>> {
    let mut timings = Vec::new();
    let mut connection = regstat_store::db::connect(&settings.database, "regstat-bench").await?;
    for name in NAMES {
        let params = Params {
            days: ["stale", "unpulled"].contains(&name).then_some(30),
            // The busiest repository of the simulated registry.
            repository: (name == "history").then(|| "platform/service-0000".to_owned()),
            ..Params::default()
        };
        let (report, filters) = Report::from_params(name, &params)?;
        let samples = repeat(async || {
            reports::run(&mut connection, &report, &filters).await?;
            Ok(())
        })
        .await?;
        let rows = reports::run(&mut connection, &report, &filters)
            .await?
            .len();
        timings.push(Timing {
            whole: report.own_limit().is_none(),
            ..percentiles(
                format!("regstat report {name}"),
                samples,
                format!("{rows} rows"),
            )
        });
    }
    Ok(timings)
}

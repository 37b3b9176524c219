//! A sender that posts like a distribution registry's notification endpoint (measured, see
//! `shared/fixtures/README.md`): one event per POST, strictly in order, a new TCP connection
//! for every POST, and the same body again after any failure (a non-2xx answer, a refused
//! connection, no answer within the timeout) until it is accepted.
//!
//! Several lanes stand for several registries (or endpoints) sending at once; each lane is
//! sequential.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The bearer token the receiver under test accepts.
pub const TOKEN: &str = "fault-suite-token";

/// A registry's pause before re-sending (the fixtures' registry used 1 s; shorter here).
const BACKOFF: Duration = Duration::from_millis(50);

/// How long a POST may take before it counts as failed and is re-sent.
const TIMEOUT: Duration = Duration::from_secs(2);

/// What the receiver answered, counted over all lanes.
#[derive(Default)]
pub struct Stats {
    /// POSTs made, re-sends included.
    pub requests: AtomicU64,
    /// 2xx answers: events the receiver took responsibility for.
    pub accepted: AtomicU64,
    /// 503 answers (broker unavailable).
    pub unavailable: AtomicU64,
    /// Connections refused or reset, and timeouts.
    pub unreachable: AtomicU64,
    /// Any other status, by status: each would be a bug (a registry retries 4xx forever).
    pub other: Mutex<BTreeMap<u16, u64>>,
    /// How long each 503 answer took, in microseconds.
    pub unavailable_micros: Mutex<Vec<u64>>,
}

impl Stats {
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn unavailable(&self) -> u64 {
        self.unavailable.load(Ordering::SeqCst)
    }

    pub fn unreachable(&self) -> u64 {
        self.unreachable.load(Ordering::SeqCst)
    }

    /// The median and the longest time a 503 answer took, if there was one.
    pub fn unavailable_latency(&self) -> Option<(Duration, Duration)> {
        let mut micros = self.unavailable_micros.lock().unwrap().clone();
        micros.sort_unstable();
        let median = *micros.get(micros.len() / 2)?;
        let longest = *micros.last()?;
        Some((
            Duration::from_micros(median),
            Duration::from_micros(longest),
        ))
    }

    /// Statuses other than 2xx and 503, with counts.
    pub fn other(&self) -> BTreeMap<u16, u64> {
        self.other.lock().unwrap().clone()
    }
}

/// Lanes sending a stream's bodies.
pub struct Sending {
    pub stats: Arc<Stats>,
    lanes: Vec<JoinHandle<()>>,
    /// Set to `true` to let the lanes send the bodies held back (see [`Self::start_holding`]).
    release: watch::Sender<bool>,
}

impl Sending {
    /// Starts `lanes` senders posting `bodies` to `url`: lane `k` sends bodies `k`, `k + lanes`,
    /// ... in that order.
    pub fn start(bodies: &[String], url: &str, lanes: usize) -> Self {
        Self::start_across(bodies, &[url], lanes)
    }

    /// [`Self::start`] with the lanes spread over several receivers: lane `k` posts to
    /// `urls[k % urls.len()]` (registries configured with different endpoints).
    pub fn start_across(bodies: &[String], urls: &[&str], lanes: usize) -> Self {
        Self::start_holding(bodies, urls, lanes, 0)
    }

    /// [`Self::start_across`], with the last `held` bodies sent only after [`Self::release`]:
    /// a test that causes a fault mid-stream can count on events still to come after it,
    /// however long the fault takes to happen.
    pub fn start_holding(bodies: &[String], urls: &[&str], lanes: usize, held: usize) -> Self {
        let first_held = bodies.len().saturating_sub(held);
        let (release, released) = watch::channel(held == 0);
        let stats = Arc::new(Stats::default());
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        let lanes = (0..lanes)
            .map(|lane| {
                let mine: Vec<(usize, String)> = bodies
                    .iter()
                    .cloned()
                    .enumerate()
                    .skip(lane)
                    .step_by(lanes)
                    .collect();
                let url = urls[lane % urls.len()].to_owned();
                let (client, stats) = (client.clone(), stats.clone());
                let mut released = released.clone();
                tokio::spawn(async move {
                    for (index, body) in mine {
                        if index >= first_held {
                            released
                                .wait_for(|released| *released)
                                .await
                                .expect("the sending is alive");
                        }
                        deliver(&client, &url, body, &stats).await;
                    }
                })
            })
            .collect();
        Self {
            stats,
            lanes,
            release,
        }
    }

    /// Lets the lanes send the bodies held back.
    pub fn release(&self) {
        self.release.send_replace(true);
    }

    /// Waits until every body is accepted.
    pub async fn finish(mut self) -> Arc<Stats> {
        for lane in std::mem::take(&mut self.lanes) {
            lane.await.expect("a sender lane panicked");
        }
        self.stats.clone()
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        for lane in &self.lanes {
            lane.abort();
        }
    }
}

/// Posts `body` until a 2xx answer.
async fn deliver(client: &reqwest::Client, url: &str, body: String, stats: &Stats) {
    loop {
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let answer = client
            .post(url)
            .header(
                "Content-Type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .bearer_auth(TOKEN)
            .body(body.clone())
            .send()
            .await;
        match answer {
            Ok(response) if response.status().is_success() => {
                stats.accepted.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(response) if response.status() == 503 => {
                stats.unavailable.fetch_add(1, Ordering::SeqCst);
                let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                stats.unavailable_micros.lock().unwrap().push(took);
            }
            Ok(response) => {
                let status = response.status().as_u16();
                *stats.other.lock().unwrap().entry(status).or_default() += 1;
            }
            Err(_) => {
                stats.unreachable.fetch_add(1, Ordering::SeqCst);
            }
        }
        tokio::time::sleep(BACKOFF).await;
    }
}

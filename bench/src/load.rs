//! Driving the receiver: paced load of the realistic mix (scenarios 3 and 4), closed-loop load
//! of the fixture shapes (scenario 2), and the sequential sender a registry is (scenarios 1, 4).

use crate::sender::{Connection, Sender};
use crate::workload::{FixtureShapes, Kind, Workload, envelope};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What a load run sent.
#[derive(Debug, Default)]
pub struct Sent {
    /// Events answered 200 (each counted once, however often it was retried).
    pub accepted: u64,
    /// Requests answered otherwise (or failed) and sent again, as a registry does.
    pub retried: u64,
    /// How long sending took.
    pub elapsed: Duration,
    /// Answer latency of every accepted request.
    pub answers: Vec<Duration>,
    /// Accepted image manifest GETs (each is one image pull).
    pub manifest_gets: u64,
    /// Accepted manifest pushes (the callback path).
    pub manifest_pushes: u64,
}

impl Sent {
    /// Adds `other`'s counts (not its duration) to these.
    pub fn merge(&mut self, other: Sent) {
        self.accepted += other.accepted;
        self.retried += other.retried;
        self.answers.extend(other.answers);
        self.manifest_gets += other.manifest_gets;
        self.manifest_pushes += other.manifest_pushes;
    }

    /// Accepted events per second.
    pub fn rate(&self) -> f64 {
        self.accepted as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Posts `body` until it is answered 200, pausing briefly after a refusal as a registry's
/// backoff does. Returns the latency of the accepted attempt and the number of refusals.
async fn deliver(connection: &mut Connection, body: &[u8]) -> (Duration, u64) {
    let mut refused = 0;
    loop {
        let started = Instant::now();
        match connection.post(body).await {
            Ok(200) => return (started.elapsed(), refused),
            Ok(_) | Err(_) => {
                refused += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One event after another, as a registry sends: `count` events from `next`.
pub async fn sequential(
    sender: &Sender,
    count: usize,
    mut next: impl FnMut() -> (Kind, String),
) -> Sent {
    let mut sent = Sent::default();
    let mut connection = sender.connection(false);
    let started = Instant::now();
    for _ in 0..count {
        let (kind, event) = next();
        let (answer, refused) = deliver(&mut connection, &envelope(&event)).await;
        sent.count(kind, answer, refused);
    }
    sent.elapsed = started.elapsed();
    sent
}

impl Sent {
    fn count(&mut self, kind: Kind, answer: Duration, refused: u64) {
        self.accepted += 1;
        self.retried += refused;
        self.answers.push(answer);
        match kind {
            Kind::PullManifest => self.manifest_gets += 1,
            Kind::PushManifest => self.manifest_pushes += 1,
            _ => {}
        }
    }
}

/// `senders` connections posting fixture-shaped events as fast as they are answered, for
/// `duration` (a new TCP connection per request unless `keep_alive`).
pub async fn closed_loop(
    sender: &Sender,
    senders: usize,
    keep_alive: bool,
    duration: Duration,
) -> Sent {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let mut connection = sender.connection(keep_alive);
            tokio::spawn(async move {
                let mut shapes = FixtureShapes::default();
                let mut sent = Sent::default();
                while Instant::now() < deadline {
                    let body = envelope(&shapes.next_event());
                    let (answer, refused) = deliver(&mut connection, &body).await;
                    sent.count(Kind::PullBlob, answer, refused);
                }
                sent
            })
        })
        .collect();
    collect(tasks, started).await
}

/// The realistic mix at `rate` events/s for `duration`, over `senders` connections (each
/// one request at a time; a new TCP connection per request unless `keep_alive`). If the
/// receiver falls behind, the achieved rate shows it.
pub async fn paced(
    sender: &Sender,
    workload: Arc<Mutex<Workload>>,
    rate: f64,
    duration: Duration,
    senders: usize,
    keep_alive: bool,
) -> Sent {
    let (queue, events) = mpsc::channel::<(Kind, Vec<u8>)>(senders * 4);
    let events = Arc::new(tokio::sync::Mutex::new(events));
    let started = Instant::now();
    let generator = tokio::spawn(async move {
        let mut due_so_far = 0u64;
        let mut ticks = tokio::time::interval(Duration::from_millis(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            let elapsed = started.elapsed();
            if elapsed >= duration {
                return;
            }
            let due = (elapsed.as_secs_f64() * rate) as u64;
            // Behind schedule (the senders are saturated), the deadline still ends the run.
            while due_so_far < due && started.elapsed() < duration {
                let Some((kind, event)) = workload.lock().ok().map(|mut w| w.next_event()) else {
                    return;
                };
                if queue.send((kind, envelope(&event))).await.is_err() {
                    return;
                }
                due_so_far += 1;
            }
        }
    });
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let mut connection = sender.connection(keep_alive);
            let events = events.clone();
            tokio::spawn(async move {
                let mut sent = Sent::default();
                loop {
                    let next = events.lock().await.recv().await;
                    let Some((kind, body)) = next else {
                        return sent;
                    };
                    let (answer, refused) = deliver(&mut connection, &body).await;
                    sent.count(kind, answer, refused);
                }
            })
        })
        .collect();
    let _ = generator.await;
    collect(tasks, started).await
}

/// `events` given events posted by `senders` connections as fast as they are answered.
pub async fn burst(sender: &Sender, events: Vec<(Kind, String)>, senders: usize) -> Sent {
    let started = Instant::now();
    let events = Arc::new(Mutex::new(events));
    let tasks: Vec<_> = (0..senders)
        .map(|_| {
            let mut connection = sender.connection(false);
            let events = events.clone();
            tokio::spawn(async move {
                let mut sent = Sent::default();
                loop {
                    let next = events.lock().ok().and_then(|mut events| events.pop());
                    let Some((kind, event)) = next else {
                        return sent;
                    };
                    let (answer, refused) = deliver(&mut connection, &envelope(&event)).await;
                    sent.count(kind, answer, refused);
                }
            })
        })
        .collect();
    collect(tasks, started).await
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Sent>>, started: Instant) -> Sent {
    let mut total = Sent::default();
    for task in tasks {
        if let Ok(sent) = task.await {
            total.merge(sent);
        }
    }
    total.elapsed = started.elapsed();
    total
}

//! Measures the receiver's answer latency the way a registry sends: one event per POST, one
//! at a time, a new TCP connection for each. Alongside, the raw limit: a bare confirmed
//! publish with one message in flight on the same kind of queue.
//!
//! Starts its own receiver in-process against the RabbitMQ at `REGSTAT_TEST_AMQP_URL` (default
//! local guest) under a throw-away prefix, and deletes that topology at the end:
//!
//! ```text
//! cargo run --release -p regstat-receiver --example ack_latency -- 1000
//! ```
#![allow(clippy::unwrap_used, missing_docs)]

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use regstat_receiver::Application;
use regstat_shared::config::Settings;
use regstat_shared::testkit::{self, TestBroker};
use std::time::{Duration, Instant};

const EVENT: &str = r#"{"id":"ID","timestamp":"2026-11-22T10:17:28.770756613Z","action":"pull","target":{"mediaType":"application/octet-stream","size":65761,"digest":"sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57","length":65761,"repository":"lab/app","url":"http://127.0.0.1:5000/v2/lab/app/blobs/sha256:9b3a13e00c25939f6d8043447135e87c523bbbce6d6dc4a364db57633feedc57"},"request":{"id":"eddd2b16-e0fa-471a-9403-616386d781cd","addr":"127.0.0.1:46460","host":"127.0.0.1:5000","method":"GET","useragent":"skopeo/1.9.3"},"actor":{},"source":{"addr":"vm:5000","instanceID":"294a6061-28fa-4ff1-b96d-ff4f92d01aa9"}}"#;

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("count must be a number"))
        .unwrap_or(1000);
    let broker = TestBroker::new().await;
    let settings = Settings::load_with_env(
        None,
        [
            ("REGSTAT__AMQP__URL".to_owned(), testkit::amqp_url()),
            ("REGSTAT__AMQP__PREFIX".to_owned(), broker.prefix.clone()),
            ("REGSTAT__TELEMETRY__FILTER".to_owned(), "warn".to_owned()),
        ],
    )
    .unwrap();
    let app = Application::build_with_listener(
        &settings,
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/events", app.port());
    let publisher = app.publisher();
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    testkit::eventually(Duration::from_secs(10), "receiver ready", || {
        let ready = publisher.is_ready();
        async move { ready.then_some(()) }
    })
    .await;

    // No connection reuse: every request opens a new connection, as the registry does.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut answers = Vec::with_capacity(count);
    for _ in 0..count {
        let body = format!(
            r#"{{"events":[{}]}}"#,
            EVENT.replace("ID", &uuid::Uuid::new_v4().to_string())
        );
        let started = Instant::now();
        let response = client
            .post(&url)
            .header(
                "Content-Type",
                "application/vnd.docker.distribution.events.v1+json",
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        answers.push(started.elapsed());
    }

    // The raw limit: one confirmed publish at a time on the same quorum queue.
    broker
        .channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut raw = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        broker
            .channel
            .basic_publish(
                broker.topology.exchange().into(),
                "pull.blob".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                EVENT.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        raw.push(started.elapsed());
    }
    handle.stop(true).await;
    server.await.unwrap().unwrap();
    broker.purge(&broker.topology.ingest_queue()).await;

    println!("{count} sequential POSTs, one event each, new connection each");
    report("receiver answer", &mut answers);
    report("raw confirm (1 in flight)", &mut raw);
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<28} p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(0.999)),
        ms(samples[samples.len() - 1])
    );
}

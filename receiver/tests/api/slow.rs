//! Slow and stalled clients: every request head and body has a deadline, so no client can hold
//! a connection open by sending slowly or not at all.

use crate::helpers::{TOKEN, TestApp, V1, fixture_bodies};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most a test waits for the receiver to close a connection (never a speed assertion: the
/// deadlines under test are a second).
const PATIENCE: Duration = Duration::from_secs(10);

fn request(body: &str) -> String {
    format!(
        "POST /events HTTP/1.1\r\nHost: receiver\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: {V1}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Reads until the peer closes the connection or `PATIENCE` passes; returns what was read and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), false),
        }
    }
}

/// Opens `connections` connections to `address`, sends `head` on each and nothing more, and
/// returns what each received until it was closed (or `PATIENCE` passed).
async fn stall(address: &str, head: &str, connections: usize) -> Vec<(String, bool)> {
    let mut stalled = Vec::new();
    for _ in 0..connections {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    futures_util::future::join_all(
        stalled
            .iter_mut()
            .map(|stream| async move { read_until_closed(stream).await }),
    )
    .await
}

/// After a quick first request, a second request head sent a byte every 300 ms on the same
/// connection never gets to hold it: the connection is closed (actix-web's head deadline
/// covers only a connection's first request, so regstat does not keep connections alive by
/// default; a registry opens one per notification anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_request_head_sent_a_byte_at_a_time_cannot_hold_the_connection() {
    let app = TestApp::spawn(&[("REGSTAT__RECEIVER__REQUEST_HEAD_TIMEOUT_MS", "1000")]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    let body = fixture_bodies("03-pull-by-tag.jsonl")[0].clone();
    stream.write_all(request(&body).as_bytes()).await.unwrap();

    let drip = b"POST /events HTTP/1.1\r\nHost: receiver\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    let mut answered = String::new();
    let started = tokio::time::Instant::now();
    for byte in drip {
        if stream.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let read =
            tokio::time::timeout(Duration::from_millis(300), stream.read_buf(&mut Vec::new()))
                .await;
        if let Ok(Ok(0) | Err(_)) = read {
            closed = true;
            break;
        }
        if started.elapsed() > PATIENCE {
            break;
        }
    }
    if !closed {
        let (rest, was_closed) = read_until_closed(&mut stream).await;
        answered = rest;
        closed = was_closed;
    }
    assert!(
        closed,
        "a second head dripped over {:?} kept the connection open {answered}",
        started.elapsed()
    );
    app.stop().await;
}

/// 200 connections that declare a body and never send it: each gets 408 with the JSON error
/// once the body deadline passes, and its connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_bodies_get_408_and_their_connections_are_closed() {
    let app = TestApp::spawn(&[("REGSTAT__RECEIVER__REQUEST_BODY_TIMEOUT_MS", "1000")]).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: receiver\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: {V1}\r\nContent-Length: 1048576\r\n\r\n{{\"events\": ["
    );
    for (answer, closed) in stall(&address, &head, 200).await {
        assert!(closed, "a stalled body kept its connection: {answer:?}");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"error\":\"request_timeout\""), "{answer}");
    }
    app.stop().await;
}

/// A receiver process of its own (so its memory is its own), on a free port.
struct ReceiverProcess {
    child: std::process::Child,
    address: String,
}

impl ReceiverProcess {
    async fn start(broker: &regstat_shared::testkit::TestBroker, extra: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_regstat-receiver"))
            .env_remove("REGSTAT_CONFIG")
            .env("REGSTAT__RECEIVER__LISTEN", &address)
            .env("REGSTAT__RECEIVER__TOKENS", TOKEN)
            .env("REGSTAT__AMQP__URL", regstat_shared::testkit::amqp_url())
            .env("REGSTAT__AMQP__PREFIX", &broker.prefix)
            .env("REGSTAT__TELEMETRY__FILTER", "error")
            .envs(extra.iter().copied())
            .spawn()
            .unwrap();
        let ready = format!("http://{address}/readyz");
        regstat_shared::testkit::eventually(PATIENCE, "the receiver ready", || async {
            let status = reqwest::get(&ready).await.ok()?.status();
            (status == 200).then_some(())
        })
        .await;
        Self { child, address }
    }

    /// Peak resident memory so far, in MiB (`VmHWM`).
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024.0
    }
}

impl Drop for ReceiverProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 1,000 connections that declare a 1 MiB body, send 1 KiB of it and stall: every one is
/// answered 408 and closed at the body deadline, and the receiver's memory stays small (it
/// buffers what arrives, never what is declared). Prints the figures line of the fault suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_stalled_connections_are_cut_and_cost_little_memory() {
    const CONNECTIONS: usize = 1000;
    let broker = regstat_shared::testkit::TestBroker::new().await;
    let receiver = ReceiverProcess::start(
        &broker,
        &[
            ("REGSTAT__RECEIVER__REQUEST_BODY_TIMEOUT_MS", "2000"),
            ("REGSTAT__RECEIVER__HTTP_WORKERS", "2"),
        ],
    )
    .await;
    let idle_rss = receiver.peak_rss_mib();
    let head = format!(
        "POST /events HTTP/1.1\r\nHost: receiver\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: {V1}\r\nContent-Length: 1048576\r\n\r\n{{\"events\": [{}",
        " ".repeat(1024)
    );
    let answers = stall(&receiver.address, &head, CONNECTIONS).await;
    let cut = answers.iter().filter(|(_, closed)| *closed).count();
    let answered_408 = answers
        .iter()
        .filter(|(answer, _)| answer.starts_with("HTTP/1.1 408"))
        .count();
    let peak_rss = receiver.peak_rss_mib();
    println!(
        "fault[slow clients]: connections={CONNECTIONS} answered_408={answered_408} cut={cut} \
         receiver_idle_rss_mib={idle_rss:.1} receiver_peak_rss_mib={peak_rss:.1}"
    );
    assert_eq!(cut, CONNECTIONS, "every stalled connection is closed");
    assert_eq!(
        answered_408, CONNECTIONS,
        "every stalled body is answered 408"
    );
}

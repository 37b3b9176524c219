//! HTTPS: with `receiver.tls_cert_file` and `receiver.tls_key_file` the receiver serves HTTPS
//! only; unusable files stop start-up with an error naming the setting and the path.

use crate::helpers::{TOKEN, V1, fixture_bodies, settings};
use regstat_receiver::Application;
use regstat_shared::config::Settings;
use regstat_shared::testkit::{self, TestBroker};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Files in a fresh temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(testkit::unique_name("tls"));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

fn with_tls(settings: &Settings, cert: &str, key: &str) -> Settings {
    let mut settings = settings.clone();
    settings.receiver.tls_cert_file = cert.to_owned();
    settings.receiver.tls_key_file = key.to_owned();
    settings
}

/// The start-up error for these TLS files, with its whole cause chain.
async fn startup_error(cert: &str, key: &str) -> String {
    let settings = settings(&testkit::unique_name("q"), &testkit::amqp_url(), &[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    match Application::build_with_listener(&with_tls(&settings, cert, key), listener) {
        Ok(_) => panic!("started with cert {cert:?} and key {key:?}"),
        Err(error) => format!("{error:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_certificate_the_receiver_serves_https_only() {
    let scratch = Scratch::new();
    let (cert_pem, key_pem) = self_signed();
    let cert = scratch.write("cert.pem", &cert_pem);
    let key = scratch.write("key.pem", &key_pem);
    let broker = TestBroker::new().await;
    let settings = with_tls(
        &settings(&broker.prefix, &testkit::amqp_url(), &[]),
        &cert,
        &key,
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::build_with_listener(&settings, listener).unwrap();
    let port = app.port();
    let publisher = app.publisher();
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    testkit::eventually(Duration::from_secs(15), "receiver connected", || {
        let ready = publisher.is_ready();
        async move { ready.then_some(()) }
    })
    .await;

    // A client that trusts exactly this certificate.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let body = fixture_bodies("03-pull-by-tag.jsonl")[0].clone();
    for host in ["127.0.0.1", "localhost"] {
        let response = client
            .post(format!("https://{host}:{port}/events"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Content-Type", V1)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{host}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["accepted"], 1);
    }
    let published = broker.drain(&broker.topology.ingest_queue()).await;
    assert_eq!(published.len(), 2);

    // Plain HTTP on the same port gets no answer.
    let plain = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/events"))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", V1)
        .body(body.clone())
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    // Nor does a client that does not trust the certificate.
    let untrusting = reqwest::Client::new()
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(untrusting.is_err(), "untrusted certificate accepted");
    assert!(
        broker
            .drain(&broker.topology.ingest_queue())
            .await
            .is_empty()
    );

    handle.stop(true).await;
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_tls_files_stop_startup_naming_the_setting_and_path() {
    let scratch = Scratch::new();
    let (cert_pem, key_pem) = self_signed();
    let (other_cert, other_key) = self_signed();
    let cert = scratch.write("cert.pem", &cert_pem);
    let key = scratch.write("key.pem", &key_pem);
    let missing = scratch.path("missing.pem");
    let garbage = scratch.write("garbage.pem", "not PEM at all\n");
    let empty = scratch.write("empty.pem", "");
    let truncated = scratch.write("truncated.pem", &cert_pem[..cert_pem.len() / 2]);
    let other_cert = scratch.write("other-cert.pem", other_cert);
    drop(other_key);

    for (cert_file, key_file, setting, path) in [
        (&missing, &key, "receiver.tls_cert_file", &missing),
        (&garbage, &key, "receiver.tls_cert_file", &garbage),
        (&empty, &key, "receiver.tls_cert_file", &empty),
        (&truncated, &key, "receiver.tls_cert_file", &truncated),
        // A key file holding a certificate, or the key where the certificate should be.
        (&key, &key, "receiver.tls_cert_file", &key),
        (&cert, &missing, "receiver.tls_key_file", &missing),
        (&cert, &cert, "receiver.tls_key_file", &cert),
        (&cert, &garbage, "receiver.tls_key_file", &garbage),
    ] {
        let error = startup_error(cert_file, key_file).await;
        assert!(error.contains(setting), "{error}");
        assert!(error.contains(path.as_str()), "{error}");
    }
    let error = startup_error(&missing, &key).await;
    assert!(error.contains("No such file"), "the cause is kept: {error}");

    // A certificate and a key that do not belong together: both are named.
    let error = startup_error(&other_cert, &key).await;
    assert!(error.contains("receiver.tls_cert_file"), "{error}");
    assert!(error.contains("receiver.tls_key_file"), "{error}");
    assert!(error.contains(&other_cert), "{error}");
    assert!(Path::new(&cert).exists());
}

//! Secrets (database and broker passwords, registry credentials) never reach logs or errors,
//! even at debug level and on every failure path.

use std::process::{Command, Stdio};
use std::time::Duration;

const SECRETS: [&str; 4] = ["s3cr3t-amqp", "s3cr3t-db", "s3cr3t-registry", "czNjcjN0"];

fn assert_no_secret(what: &str, output: &str) {
    for secret in SECRETS {
        assert!(!output.contains(secret), "{what} shows {secret}:\n{output}");
    }
}

/// The worker, with every service unreachable and a registry password configured, logs its
/// failures at debug level without a secret.
#[test]
fn the_worker_never_logs_secrets() {
    let dir = std::env::temp_dir().join(regstat_shared::testkit::unique_name("secrets"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("regstat.toml");
    std::fs::write(
        &config,
        "[[registries]]\nname = \"main\"\nurl = \"http://127.0.0.1:1\"\n\
         username = \"regstat\"\npassword = \"s3cr3t-registry\"\n",
    )
    .unwrap();
    let mut worker = Command::new(env!("CARGO_BIN_EXE_regstat-worker"))
        .arg("--config")
        .arg(&config)
        .env(
            "REGSTAT__AMQP__URL",
            "amqp://guest:s3cr3t-amqp@127.0.0.1:1/%2f",
        )
        .env(
            "REGSTAT__DATABASE__URL",
            "postgres://postgres:s3cr3t-db@127.0.0.1:1/regstat",
        )
        .env("REGSTAT__WORKER__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start regstat-worker");
    // Its log lines as they come, from both streams.
    let (lines, logged) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> = [
        worker
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        worker
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stream)) {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        })
    })
    .collect();
    drop(lines);
    // Until several failed connection attempts were logged (the failure paths ran).
    let mut logs = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while logs.matches("database unavailable").count() < 3 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match logged.recv_timeout(left) {
            Ok(line) => logs.push_str(&(line + "\n")),
            Err(_) => panic!("the worker did not log three failed connections:\n{logs}"),
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while worker.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = worker.kill();
    let _ = worker.wait();
    for reader in readers {
        reader.join().unwrap();
    }
    logs.extend(logged.try_iter().map(|line| line + "\n"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_no_secret("the worker's log", &logs);
}

/// The CLI's errors name what failed, not the password.
#[test]
fn cli_errors_never_show_secrets() {
    let output = Command::new(regstat_shared::testkit::workspace_binary("regstat"))
        .arg("migrate")
        .env(
            "REGSTAT__DATABASE__URL",
            "postgres://postgres:s3cr3t-db@127.0.0.1:1/regstat",
        )
        .env("REGSTAT__DATABASE__ACQUIRE_TIMEOUT_MS", "500")
        .output()
        .expect("run regstat migrate");
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_no_secret("regstat migrate", &text);
}

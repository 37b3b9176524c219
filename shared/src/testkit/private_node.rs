//! A RabbitMQ node of a test's own, started from the installed packages, for tests that change
//! broker-wide settings (memory and disk alarms, limits) and so must not share the machine's
//! broker with the tests running beside them.
//!
//! The node has its own name, AMQP and distribution ports, data directory and Erlang cookie
//! (under a temporary directory); it is stopped and its directory removed on drop, also after a
//! failed assertion.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's RabbitMQ keeps the scripts that run a node as the calling user.
const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";

/// How long a node gets to boot.
const BOOT_DEADLINE: Duration = Duration::from_secs(90);

/// What to tell someone whose machine has no RabbitMQ installed.
const INSTALL_RABBITMQ: &str = "RabbitMQ's scripts are not in /usr/lib/rabbitmq/bin: install the \
`rabbitmq-server` package (`deploy/dev.sh --services-only` does)";

/// A running private RabbitMQ node.
pub struct PrivateNode {
    /// The Erlang node name (`regstat-test-…@localhost`).
    pub name: String,
    /// The AMQP port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    server: Child,
}

impl PrivateNode {
    /// Starts a node and waits until it accepts AMQP connections; fails the test, with the
    /// node's log, if it does not boot.
    pub async fn start() -> Self {
        let name = format!("{}@localhost", super::unique_name("rabbit"));
        let dir = std::env::temp_dir().join(name.replace('@', "-"));
        std::fs::create_dir_all(&dir).expect("create the node's directory");
        let port = super::ports::free_port_base(&[0, 1]);
        let dist_port = port + 1;
        let log = std::fs::File::create(dir.join("server.out")).expect("create the node's log");
        let server = Command::new(format!("{RABBITMQ_BIN}/rabbitmq-server"))
            .envs(node_env(&name, &dir))
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("rabbit.pid"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run rabbitmq-server ({e}). {INSTALL_RABBITMQ}"));
        let mut node = Self {
            name,
            port,
            dir,
            server,
        };
        node.wait_booted().await;
        node
    }

    /// The AMQP URL of the node's default vhost, as guest.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Runs `rabbitmqctl` against this node and returns its output; fails the test if it fails.
    pub fn ctl(&self, args: &[&str]) -> String {
        let output = Command::new(format!("{RABBITMQ_BIN}/rabbitmqctl"))
            .envs(node_env(&self.name, &self.dir))
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run rabbitmqctl ({e}). {INSTALL_RABBITMQ}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Raises the node's memory alarm: every publishing connection is blocked.
    pub fn raise_memory_alarm(&self) {
        self.ctl(&["set_vm_memory_high_watermark", "0.000001"]);
    }

    /// Clears the memory alarm raised by [`Self::raise_memory_alarm`].
    pub fn clear_memory_alarm(&self) {
        self.ctl(&["set_vm_memory_high_watermark", "0.4"]);
    }

    async fn wait_booted(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.server.try_wait() {
                panic!(
                    "the private RabbitMQ node exited ({status}) while booting:\n{}",
                    self.log_tail()
                );
            }
            let connected = tokio::time::timeout(
                Duration::from_secs(2),
                lapin::Connection::connect(&self.url(), lapin::ConnectionProperties::default()),
            )
            .await;
            if let Ok(Ok(connection)) = connected {
                let _ = connection.close(200, "booted".into()).await;
                return;
            }
            assert!(
                started.elapsed() < BOOT_DEADLINE,
                "the private RabbitMQ node did not boot within {BOOT_DEADLINE:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.out")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for PrivateNode {
    fn drop(&mut self) {
        let _ = Command::new(format!("{RABBITMQ_BIN}/rabbitmqctl"))
            .envs(node_env(&self.name, &self.dir))
            .args(["-n", &self.name, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The environment both the server and rabbitmqctl need to find the node: its name and a
/// HOME of its own (the Erlang cookie is created there).
fn node_env(name: &str, dir: &std::path::Path) -> Vec<(&'static str, std::ffi::OsString)> {
    vec![
        ("RABBITMQ_NODENAME", name.into()),
        ("HOME", dir.as_os_str().to_owned()),
    ]
}

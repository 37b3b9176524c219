//! Workers as real processes (`regstat-worker`), for the faults only a process can have:
//! SIGKILL and SIGTERM. No process outlives its [`WorkerProcesses`]: dropping it (also when
//! the test fails) kills and reaps every child.
//!
//! Each run's stderr goes to a log file in a scratch directory, removed when the test passes
//! and kept (its path printed) when it fails.

use regstat_shared::testkit;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long a SIGTERMed worker may take to finish its batch and exit.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// A fixed number of worker slots, each running a worker process or empty.
pub struct WorkerProcesses {
    /// `REGSTAT__*` settings for every worker; nothing else is inherited.
    env: Vec<(String, String)>,
    slots: Vec<Option<Child>>,
    /// Where each run's stderr goes.
    logs: PathBuf,
    /// Processes started, first starts included.
    pub started: usize,
    /// SIGKILLs sent.
    pub killed: usize,
    /// SIGTERMs sent.
    pub terminated: usize,
}

impl WorkerProcesses {
    /// Starts `count` workers with `env`.
    pub fn start(count: usize, env: Vec<(String, String)>) -> Self {
        let logs = std::env::temp_dir().join(testkit::unique_name("faults-logs"));
        std::fs::create_dir_all(&logs).expect("create the log directory");
        let mut workers = Self {
            env,
            slots: (0..count).map(|_| None).collect(),
            logs,
            started: 0,
            killed: 0,
            terminated: 0,
        };
        for slot in 0..count {
            workers.restart(slot);
        }
        workers
    }

    /// Processes started after the first one of each slot.
    pub fn restarts(&self) -> usize {
        self.started - self.slots.len()
    }

    /// Starts a worker in `slot`, which must be empty.
    pub fn restart(&mut self, slot: usize) {
        assert!(self.slots[slot].is_none(), "slot {slot} is running");
        let log = self
            .logs
            .join(format!("worker-{slot}-{}.log", self.started));
        let stderr = std::fs::File::create(&log).expect("create a worker log");
        let child = Command::new(env!("CARGO_BIN_EXE_regstat-worker"))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start regstat-worker");
        self.slots[slot] = Some(child);
        self.started += 1;
    }

    /// SIGKILLs the worker in `slot` and reaps it.
    pub fn kill(&mut self, slot: usize) {
        let mut child = self.slots[slot].take().expect("a running worker");
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "worker {slot} had already exited ({status}); see {:?}",
                self.logs
            );
        }
        child.kill().expect("SIGKILL a worker");
        child.wait().expect("reap a killed worker");
        self.killed += 1;
    }

    /// SIGTERMs the workers in `slots` together and waits for each to exit; returns their exit
    /// statuses. The slots are empty afterwards.
    pub async fn terminate(&mut self, slots: &[usize]) -> Vec<ExitStatus> {
        let mut children: Vec<Child> = slots
            .iter()
            .map(|&slot| self.slots[slot].take().expect("a running worker"))
            .collect();
        for child in &children {
            // `std` only sends SIGKILL, and this workspace forbids `unsafe` (libc::kill).
            let sent = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("run kill(1)");
            assert!(sent.success(), "kill -TERM {} failed", child.id());
            self.terminated += 1;
        }
        let until = tokio::time::Instant::now() + STOP_DEADLINE;
        let mut statuses = Vec::with_capacity(children.len());
        for child in &mut children {
            loop {
                if let Some(status) = child.try_wait().expect("poll a worker") {
                    statuses.push(status);
                    break;
                }
                if tokio::time::Instant::now() > until {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "a SIGTERMed worker did not exit within {STOP_DEADLINE:?}; see {:?}",
                        self.logs
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        statuses
    }
}

impl Drop for WorkerProcesses {
    fn drop(&mut self) {
        for child in self.slots.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("worker logs kept in {}", self.logs.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.logs);
        }
    }
}

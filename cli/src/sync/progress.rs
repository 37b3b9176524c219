//! A sync's progress: a bar on a terminal, `tracing` lines otherwise.

use super::report::SyncReport;
use super::{LOG_EVERY, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Shows progress over `total` repositories.
pub(super) struct Reporter {
    /// The bar, when drawing one.
    bar: Option<ProgressBar>,
    /// Whether to log lines instead.
    log: bool,
    total: usize,
    done: usize,
}

impl Reporter {
    pub(super) fn new(progress: Progress, total: usize) -> Self {
        let progress = match progress {
            Progress::Auto if std::io::stderr().is_terminal() => Progress::Bar,
            Progress::Auto => Progress::Log,
            other => other,
        };
        let bar = (progress == Progress::Bar).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} repositories {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        Self {
            bar,
            log: progress == Progress::Log,
            total,
            done: 0,
        }
    }

    /// One more repository done (`repository`, the counts so far in `report`).
    pub(super) fn advance(&mut self, repository: &str, report: &SyncReport) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.set_message(repository.to_owned());
            bar.inc(1);
        } else if self.log && self.done.is_multiple_of(LOG_EVERY) && self.done < self.total {
            tracing::info!(
                registry = %report.registry,
                repositories_done = self.done,
                repositories_total = self.total,
                tags_seen = report.tags_seen,
                manifests_fetched = report.manifests_fetched,
                failures = report.failures.len(),
                "sync in progress"
            );
        }
    }

    /// A warning, printed above the bar rather than through it.
    pub(super) fn warn(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| tracing::warn!("{message}")),
            None => tracing::warn!("{message}"),
        }
    }

    /// The end: clears the bar, logs the summary.
    pub(super) fn finish(&self, report: &SyncReport) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.log {
            tracing::info!(
                registry = %report.registry,
                dry_run = report.dry_run,
                repositories = report.repositories,
                repositories_gone = report.repositories_gone,
                tags_seen = report.tags_seen,
                tags_gone = report.tags_gone,
                manifests_seen = report.manifests_seen,
                manifests_fetched = report.manifests_fetched,
                manifests_cached = report.manifests_cached,
                manifests_gone = report.manifests_gone,
                failures = report.failures.len(),
                "sync finished"
            );
        }
    }
}

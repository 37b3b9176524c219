//! Retry delays, the same way everywhere: exponential from a first delay, capped, built with
//! [`backon`]. Two shapes cover every retry in regstat:
//!
//! - [`Policy::retry`]: a bounded number of retries of one operation while its error is
//!   transient (`regstat sync`'s registry requests and transactions);
//! - [`Backoff`]: the delays of a loop that keeps going until it succeeds or is cancelled, and
//!   starts over after a success (broker reconnects, a batch held while the database is down,
//!   migrations waiting for the database).

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long to wait before each retry: `first`, then multiplied by `factor` each time, never
/// more than `max`; at most `retries` retries (`None`: as many as it takes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The first delay.
    pub first: Duration,
    /// What each delay is multiplied by.
    pub factor: f32,
    /// The longest delay.
    pub max: Duration,
    /// Most retries after the first attempt; `None` for no limit.
    pub retries: Option<usize>,
}

impl Policy {
    /// Doubling delays from `first` up to `max`, without a limit on retries.
    pub const fn exponential(first: Duration, max: Duration) -> Self {
        Self {
            first,
            factor: 2.0,
            max,
            retries: None,
        }
    }

    /// The same delays multiplied by `factor` instead of 2.
    pub const fn with_factor(mut self, factor: f32) -> Self {
        self.factor = factor;
        self
    }

    /// At most `retries` retries after the first attempt.
    pub const fn with_retries(mut self, retries: usize) -> Self {
        self.retries = Some(retries);
        self
    }

    fn builder(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.first)
            .with_factor(self.factor)
            .with_max_delay(self.max);
        match self.retries {
            Some(retries) => builder.with_max_times(retries),
            None => builder.without_max_times(),
        }
    }

    /// Runs `operation`, and again after each delay while it fails with an error for which
    /// `transient` is true and retries are left. `notify` sees each retried error and the delay
    /// before the next attempt (to log it).
    pub async fn retry<T, E, Fut>(
        &self,
        operation: impl FnMut() -> Fut,
        transient: impl FnMut(&E) -> bool,
        notify: impl FnMut(&E, Duration),
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        operation
            .retry(self.builder())
            .sleep(tokio::time::sleep)
            .when(transient)
            .notify(notify)
            .await
    }
}

/// The delays of a retry loop: [`Backoff::next_delay`] before each retry, [`Backoff::reset`]
/// after a success.
#[derive(Debug)]
pub struct Backoff {
    policy: Policy,
    delays: ExponentialBackoff,
}

impl Backoff {
    /// Delays following `policy`, from its first.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            delays: policy.builder().build(),
        }
    }

    /// The delay before the next retry (the policy's longest once its retries are used up).
    pub fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.policy.max)
    }

    /// Starts over from the first delay.
    pub fn reset(&mut self) {
        self.delays = self.policy.builder().build();
    }
}

/// Sleeps `delay` unless `cancel` fires first. Returns `false` if it was cancelled.
pub async fn pause(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = cancel.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// `Duration` from f32 arithmetic: compare to the millisecond.
    fn millis(delay: Duration) -> u128 {
        (delay.as_micros() + 500) / 1000
    }

    #[test]
    fn delays_double_up_to_the_cap_and_start_over_after_a_reset() {
        let mut backoff = Backoff::new(Policy::exponential(ms(100), ms(500)));
        let delays: Vec<u128> = (0..5).map(|_| millis(backoff.next_delay())).collect();
        assert_eq!(delays, [100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(millis(backoff.next_delay()), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_retries_stop_at_the_limit_and_at_a_permanent_error() {
        let policy = Policy::exponential(ms(250), ms(10_000))
            .with_factor(4.0)
            .with_retries(2);
        let calls = Cell::new(0);
        let mut waited = Vec::new();
        let result: Result<(), &str> = policy
            .retry(
                || {
                    calls.set(calls.get() + 1);
                    async { Err("down") }
                },
                |_| true,
                |_, delay| waited.push(millis(delay)),
            )
            .await;
        assert_eq!((result, calls.get()), (Err("down"), 3));
        assert_eq!(waited, [250, 1000]);

        calls.set(0);
        let result: Result<(), &str> = policy
            .retry(
                || {
                    calls.set(calls.get() + 1);
                    async { Err("refused") }
                },
                |error| *error != "refused",
                |_, _| {},
            )
            .await;
        assert_eq!((result, calls.get()), (Err("refused"), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_ends_early_when_cancelled() {
        let cancel = CancellationToken::new();
        assert!(pause(ms(10), &cancel).await);
        cancel.cancel();
        assert!(!pause(Duration::from_secs(3600), &cancel).await);
    }
}

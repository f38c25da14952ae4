//! Small helpers every scenario uses: errors as text with context, and
//! waiting for a condition with a deadline.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// A scenario's outcome: `Err` holds what went wrong, for people.
pub type Outcome<T = ()> = Result<T, String>;

/// Adds what was being done to an error.
pub trait Context<T> {
    /// `Err(e)` becomes `Err("what: e")`; `None` becomes `Err("what")`.
    fn context(self, what: impl Display) -> Outcome<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> Outcome<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Outcome<T> {
        self.ok_or_else(|| what.to_string())
    }
}

/// Fails with `message` unless `condition` holds.
pub fn ensure(condition: bool, message: impl Display) -> Outcome {
    if condition {
        Ok(())
    } else {
        Err(message.to_string())
    }
}

/// Polls `probe` every `every` until it returns `Some`, for at most
/// `within`. On timeout the error says what was awaited and what `describe`
/// says about the last state seen.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut probe: F,
    describe: impl Fn() -> String,
) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            tracing::debug!(what, elapsed = ?started.elapsed(), "condition met");
            return Ok(value);
        }
        if started.elapsed() >= within {
            return Err(format!(
                "timed out after {within:?} waiting for {what} ({})",
                describe()
            ));
        }
        tokio::time::sleep(every).await;
    }
}

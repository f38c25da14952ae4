//! Small helpers every step uses: errors as text with context, checks, and
//! waiting for a condition with a deadline.
//!
//! The tier reports to people, so an error is a sentence saying what was
//! being done and what was seen, not a typed value to match on.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// A step's outcome: `Err` holds what went wrong, for people.
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

/// How long the tier waits for Kubernetes to act on something: long enough
/// for a sidecar's exponential backoff on a loaded two-core machine, short
/// enough that a hang is reported while someone still waits.
pub const PATIENCE: Duration = Duration::from_secs(180);

/// How often conditions are polled.
pub const POLL: Duration = Duration::from_millis(500);

/// Polls `probe` every [`POLL`] until it returns `Ok(Some(_))`, for at
/// most `within`. A probe error ends the wait at once. On timeout the error
/// says what was awaited and what `describe` says about the state seen last.
pub async fn wait_for<T, F, Fut, D, DFut>(
    what: &str,
    within: Duration,
    mut probe: F,
    describe: D,
) -> Outcome<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome<Option<T>>>,
    D: FnOnce() -> DFut,
    DFut: Future<Output = String>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await? {
            tracing::debug!(what, elapsed = ?started.elapsed(), "condition met");
            return Ok(value);
        }
        if started.elapsed() >= within {
            return Err(format!(
                "timed out after {} s waiting for {what} ({})",
                within.as_secs(),
                describe().await
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The last `lines` lines of a text.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_says_what_was_done() {
        let e: Result<(), &str> = Err("boom");
        assert_eq!(e.context("reading x"), Err("reading x: boom".to_owned()));
        assert_eq!(None::<u8>.context("no x"), Err("no x".to_owned()));
        assert!(ensure(false, "bad").is_err());
        assert!(ensure(true, "bad").is_ok());
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
        assert_eq!(tail("", 5), "");
    }

    #[tokio::test]
    async fn wait_for_returns_the_value_or_says_what_it_saw() {
        let mut n = 0;
        let v = wait_for(
            "n to reach 2",
            Duration::from_secs(30),
            || {
                n += 1;
                let now = n;
                async move { Ok((now >= 2).then_some(now)) }
            },
            || async { String::new() },
        )
        .await;
        assert_eq!(v, Ok(2));
        let e = wait_for(
            "never",
            Duration::ZERO,
            || async { Ok(None::<()>) },
            || async { "last seen: nothing".to_owned() },
        )
        .await
        .unwrap_err();
        assert!(e.contains("waiting for never (last seen: nothing)"), "{e}");
        let e = wait_for(
            "an error",
            Duration::from_secs(30),
            || async { Err::<Option<()>, _>("broken".to_owned()) },
            || async { String::new() },
        )
        .await
        .unwrap_err();
        assert_eq!(e, "broken");
    }
}

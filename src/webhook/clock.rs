//! The wall clock deliveries are scheduled and signed by. Production reads the
//! system clock; tests use [`TokioClock`], which follows tokio's clock, so a
//! paused runtime can jump a day of retries without sleeping while
//! `webhook-timestamp` still moves the way real time would.

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync + 'static {
    /// Now, as Unix time goes (signatures carry it as `webhook-timestamp`).
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time that advances with tokio's clock (paused or not) from a start.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// Starts at the system clock's now.
    pub fn new() -> TokioClock {
        TokioClock {
            wall: Utc::now(),
            start: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        TokioClock::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.start;
        self.wall + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }
}

//! What protects the API server (and authentik) from a burst of deletions: a cap per cycle
//! (`MAX_DELETIONS_PER_CYCLE` per `CLEANUP_INTERVAL`) and a client-side rate limit
//! (`DELETE_RATE` per second, a token bucket).
//!
//! Written here rather than taken from `governor`: we need one unkeyed bucket plus a window
//! cap, waiting on tokio's clock (so tests can pause time); governor brings its own clock,
//! keyed-state machinery and several dependencies for what is twenty lines.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The cycle's cap is used up; deletions resume when the next cycle starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapReached {
    pub resumes_in: Duration,
}

#[derive(Debug)]
pub struct Throttle {
    state: Mutex<State>,
    rate: f64,
    burst: f64,
    cap: u32,
    cycle: Duration,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    refilled: Instant,
    cycle_started: Instant,
    used: u32,
}

impl Throttle {
    /// `rate` deletions per second (bursts of up to one second's worth), at most `cap` per
    /// `cycle`.
    pub fn new(rate: f64, cap: u32, cycle: Duration) -> Self {
        let burst = rate.max(1.0);
        let now = Instant::now();
        Self {
            state: Mutex::new(State {
                tokens: burst,
                refilled: now,
                cycle_started: now,
                used: 0,
            }),
            rate,
            burst,
            cap,
            cycle,
        }
    }

    /// Takes one deletion from this cycle's cap, then waits for the rate limit. Call right
    /// before the delete request.
    pub async fn acquire(&self) -> Result<(), CapReached> {
        self.take_from_cap()?;
        loop {
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                let elapsed = now.duration_since(state.refilled).as_secs_f64();
                state.tokens = (state.tokens + elapsed * self.rate).min(self.burst);
                state.refilled = now;
                if state.tokens >= 1.0 {
                    state.tokens -= 1.0;
                    return Ok(());
                }
                Duration::from_secs_f64((1.0 - state.tokens) / self.rate)
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn take_from_cap(&self) -> Result<(), CapReached> {
        let mut state = self.lock();
        let now = Instant::now();
        let since = now.duration_since(state.cycle_started);
        if since >= self.cycle {
            // Windows stay aligned to the start so "per cycle" keeps meaning per interval.
            let cycles = (since.as_secs_f64() / self.cycle.as_secs_f64()).floor();
            state.cycle_started += self.cycle.mul_f64(cycles);
            state.used = 0;
        }
        if state.used >= self.cap {
            return Err(CapReached {
                resumes_in: (state.cycle_started + self.cycle).duration_since(now),
            });
        }
        state.used += 1;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn rate_is_limited_after_a_burst() {
        let throttle = Throttle::new(2.0, 1000, Duration::from_secs(3600));
        let start = Instant::now();
        for _ in 0..6 {
            throttle.acquire().await.expect("under the cap");
        }
        // 2 from the initial burst, then 4 more at 2/s.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_rates_wait_for_whole_tokens() {
        let throttle = Throttle::new(0.5, 1000, Duration::from_secs(3600));
        let start = Instant::now();
        throttle.acquire().await.expect("first");
        throttle.acquire().await.expect("second");
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn cap_resets_each_cycle() {
        let throttle = Throttle::new(1000.0, 3, Duration::from_secs(60));
        for _ in 0..3 {
            throttle.acquire().await.expect("under the cap");
        }
        tokio::time::advance(Duration::from_secs(20)).await;
        let reached = throttle.acquire().await.expect_err("cap reached");
        assert_eq!(reached.resumes_in, Duration::from_secs(40));

        tokio::time::advance(Duration::from_secs(100)).await;
        throttle.acquire().await.expect("a new cycle");
        let reached = throttle
            .acquire()
            .await
            .map(|_| ())
            .and(throttle.acquire().await)
            .and(throttle.acquire().await);
        assert_eq!(
            reached,
            Err(CapReached {
                resumes_in: Duration::from_secs(60)
            }),
            "windows stay aligned"
        );
    }
}

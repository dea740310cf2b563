//! Polling with a deadline: the only way tests and start-up wait for the cluster.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Calls `check` until it yields `Some`, backing off from 50 ms to 1 s between calls; fails
/// with [`Error::Timeout`] naming `what` once `timeout` has passed. Errors from `check` end
/// the wait at once; return `Ok(None)` for conditions worth retrying.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                what: what.to_owned(),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

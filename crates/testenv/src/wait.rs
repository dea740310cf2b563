//! Polling with a deadline: the only way tests and start-up wait for the cluster.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a test waits for the cluster, a controller or the double to reach a state.
pub const WAIT: Duration = Duration::from_secs(60);

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

/// Polls `check` until it yields `Some`, for at most [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(what, WAIT, || {
        let next = check();
        async move { Ok(next.await) }
    })
    .await
}

/// [`eventually`] for tests: panics naming `what` when the state is not reached in time.
pub async fn wait_until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually(what, check).await.expect("condition reached")
}

/// The value of one series (`name` or `name{labels}`, exactly as exposed) in a Prometheus text
/// exposition: what tests wait on to know that a controller did something (or a sweep passed).
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_is_found_by_its_exact_name_and_labels() {
        let body = "# TYPE x counter\nx_total 3\nx_total_more 9\ny{a=\"b\"} 1.5\n";
        assert_eq!(metric_value(body, "x_total"), Some(3.0));
        assert_eq!(metric_value(body, r#"y{a="b"}"#), Some(1.5));
        assert_eq!(metric_value(body, "y"), None);
        assert_eq!(metric_value(body, "z"), None);
    }
}

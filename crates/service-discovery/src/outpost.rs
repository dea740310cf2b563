//! Outpost provider lists: one writer task per process, so writes are serialised, and requests
//! that arrive while it waits or writes share one read-modify-write. authentik has no
//! conditional write for the list, so every write is read back, and retried when another writer
//! overwrote it. Providers other tools put in the list are carried over from the fresh read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use authentik_client::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::authentik::Authentik;
use crate::metrics::names;

/// How often a write is re-done after a concurrent writer undid it.
const MAX_ATTEMPTS: usize = 4;

/// A request: provider `provider` should (not) be in outpost `outpost` (UUID).
struct Assignment {
    outpost: String,
    provider: i64,
    present: bool,
    done: oneshot::Sender<Result<(), AssignError>>,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum AssignError {
    #[error(transparent)]
    Authentik(#[from] Error),
    #[error(
        "outpost {outpost}: another client kept rewriting the provider list; gave up after {MAX_ATTEMPTS} verified attempts"
    )]
    ConcurrentWriter { outpost: String },
    #[error("the outpost writer stopped (shutting down)")]
    Stopped,
}

#[derive(Clone)]
pub struct OutpostAssigner {
    queue: mpsc::UnboundedSender<Assignment>,
}

impl OutpostAssigner {
    /// Starts the writer task. `window` is how long it waits for more requests after the
    /// first one before writing.
    pub fn spawn(authentik: Arc<Authentik>, window: Duration, shutdown: CancellationToken) -> Self {
        let (queue, requests) = mpsc::unbounded_channel();
        tokio::spawn(run(requests, authentik, window, shutdown));
        Self { queue }
    }

    /// Makes sure `provider` is (or is not) in the outpost, returning once that is verified.
    pub async fn ensure(
        &self,
        outpost: &str,
        provider: i64,
        present: bool,
    ) -> Result<(), AssignError> {
        let (done, result) = oneshot::channel();
        self.queue
            .send(Assignment {
                outpost: outpost.to_owned(),
                provider,
                present,
                done,
            })
            .map_err(|_| AssignError::Stopped)?;
        result.await.unwrap_or(Err(AssignError::Stopped))
    }
}

async fn run(
    mut requests: mpsc::UnboundedReceiver<Assignment>,
    authentik: Arc<Authentik>,
    window: Duration,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            first = requests.recv() => match first {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = vec![first];
        let deadline = Instant::now() + window;
        loop {
            tokio::select! {
                biased;
                more = requests.recv() => match more {
                    Some(more) => batch.push(more),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let mut by_outpost: BTreeMap<String, Vec<Assignment>> = BTreeMap::new();
        for assignment in batch {
            by_outpost
                .entry(assignment.outpost.clone())
                .or_default()
                .push(assignment);
        }
        for (outpost, assignments) in by_outpost {
            let changes: Vec<(i64, bool)> = assignments
                .iter()
                .map(|a| (a.provider, a.present))
                .collect();
            let result = apply(&authentik, &outpost, &changes).await;
            for assignment in assignments {
                let _ = assignment.done.send(result.clone());
            }
        }
    }
}

/// The list with `changes` applied: existing order kept, additions appended, the last request
/// for a provider winning.
pub fn merged(current: &[i64], changes: &[(i64, bool)]) -> Vec<i64> {
    let mut wanted: BTreeMap<i64, bool> = BTreeMap::new();
    for (provider, present) in changes {
        wanted.insert(*provider, *present);
    }
    let mut list: Vec<i64> = current
        .iter()
        .copied()
        .filter(|p| wanted.get(p) != Some(&false))
        .collect();
    for (provider, present) in &wanted {
        if *present && !list.contains(provider) {
            list.push(*provider);
        }
    }
    list
}

fn satisfied(list: &[i64], changes: &[(i64, bool)]) -> bool {
    merged(list, changes).as_slice() == list
}

async fn apply(
    authentik: &Authentik,
    outpost: &str,
    changes: &[(i64, bool)],
) -> Result<(), AssignError> {
    let client = authentik.client();
    let mut current = authentik.call(client.get_outpost(outpost)).await?;
    for _ in 0..MAX_ATTEMPTS {
        if satisfied(&current.providers, changes) {
            authentik.remember_outpost(&current);
            return Ok(());
        }
        let list = merged(&current.providers, changes);
        authentik
            .call(client.set_outpost_providers(outpost, &list))
            .await?;
        metrics::counter!(names::OUTPOST_WRITES).increment(1);
        metrics::histogram!(names::OUTPOST_BATCH_SIZE).record(changes.len() as f64);
        // Read back: a concurrent writer may have replaced the list since our read.
        current = authentik.call(client.get_outpost(outpost)).await?;
    }
    if satisfied(&current.providers, changes) {
        authentik.remember_outpost(&current);
        return Ok(());
    }
    Err(AssignError::ConcurrentWriter {
        outpost: outpost.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_foreign_providers_and_order() {
        assert_eq!(merged(&[5, 1, 9], &[(3, true)]), vec![5, 1, 9, 3]);
        assert_eq!(merged(&[5, 1, 9], &[(1, false)]), vec![5, 9]);
        assert_eq!(
            merged(&[5, 1], &[(1, true), (2, true), (5, false)]),
            vec![1, 2]
        );
        assert_eq!(merged(&[], &[(4, true), (4, false)]), Vec::<i64>::new());
        assert_eq!(merged(&[4], &[(4, true)]), vec![4]);
    }

    #[test]
    fn satisfied_needs_every_change() {
        assert!(satisfied(&[1, 2], &[(1, true), (3, false)]));
        assert!(!satisfied(&[1, 2], &[(3, true)]));
        assert!(!satisfied(&[1, 2], &[(2, false)]));
    }
}

//! Outpost provider lists: one writer task per process, so writes are serialised, and requests
//! that arrive while it waits or writes share one read-modify-write. authentik has no
//! conditional write for the list, so every write is read back, and retried when another writer
//! overwrote it. Providers other tools put in the list are carried over from the fresh read.
//!
//! A provider deleted by someone else between our read and our write makes authentik reject the
//! whole list (`400 {"providers": ["Invalid pk \"374\" - object does not exist."]}`). The
//! writer then re-reads the outpost, leaves out the pks authentik named (only pks it named, and
//! only ones we sent), and writes again. A provider of ours that authentik named is reported as
//! gone to its reconcile, which re-creates it; everyone else in the batch succeeds.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gitops_authentik::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::authentik::Authentik;
use crate::metrics::names;

/// How often a write is re-done after a concurrent writer undid it.
const MAX_ATTEMPTS: usize = 4;
/// How often a write rejected for naming a deleted provider is re-done without it. authentik
/// names one unknown pk per rejection; a fresh read drops every provider deleted before it.
const MAX_STALE_REJECTIONS: usize = 8;

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
    #[error(
        "outpost {outpost}: authentik says provider {provider} no longer exists (deleted by someone else); it will be re-created"
    )]
    ProviderGone { outpost: String, provider: i64 },
    #[error("the outpost writer stopped (shutting down)")]
    Stopped,
}

/// Providers authentik said no longer exist while a write was applied.
type Vanished = BTreeSet<i64>;

#[derive(Clone)]
pub struct OutpostAssigner {
    queue: mpsc::UnboundedSender<Assignment>,
}

impl OutpostAssigner {
    /// Starts the writer task. An assignment that finds the writer idle (no write for `window`)
    /// is written at once; otherwise it waits until `window` after the last write, with
    /// everything else that arrives meanwhile, so bulk onboarding makes few, large writes.
    pub fn spawn(authentik: Arc<Authentik>, window: Duration, shutdown: CancellationToken) -> Self {
        let (queue, requests) = mpsc::unbounded_channel();
        let write = move |outpost: String, changes: Vec<(i64, bool)>| {
            let authentik = authentik.clone();
            async move { apply(&authentik, &outpost, &changes).await }
        };
        tokio::spawn(run(requests, write, window, shutdown));
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

async fn run<W, F>(
    mut requests: mpsc::UnboundedReceiver<Assignment>,
    write: W,
    window: Duration,
    shutdown: CancellationToken,
) where
    W: Fn(String, Vec<(i64, bool)>) -> F,
    F: Future<Output = Result<Vanished, AssignError>>,
{
    let mut last_write: Option<Instant> = None;
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return,
            first = requests.recv() => match first {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = vec![first];
        // Busy (written within the window): collect until a window after that write.
        if let Some(deadline) = last_write
            .map(|at| at + window)
            .filter(|deadline| *deadline > Instant::now())
        {
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
        }
        // Whatever queued up meanwhile (e.g. during the previous write) joins this one.
        while let Ok(more) = requests.try_recv() {
            batch.push(more);
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
            let result = write(outpost.clone(), changes).await;
            for assignment in assignments {
                let outcome = match &result {
                    Ok(vanished)
                        if assignment.present && vanished.contains(&assignment.provider) =>
                    {
                        Err(AssignError::ProviderGone {
                            outpost: outpost.clone(),
                            provider: assignment.provider,
                        })
                    }
                    Ok(_) => Ok(()),
                    Err(error) => Err(error.clone()),
                };
                let _ = assignment.done.send(outcome);
            }
        }
        last_write = Some(Instant::now());
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

/// The provider pks a rejected outpost write named as not existing
/// (`{"providers": ["Invalid pk \"374\" - object does not exist."]}`).
fn nonexistent_providers(error: &Error) -> BTreeSet<i64> {
    error
        .field_errors("providers")
        .unwrap_or_default()
        .iter()
        .filter(|message| message.contains("does not exist"))
        .filter_map(|message| {
            let quoted = message.strip_prefix("Invalid pk \"")?;
            quoted.split('"').next()?.parse().ok()
        })
        .collect()
}

async fn apply(
    authentik: &Authentik,
    outpost: &str,
    changes: &[(i64, bool)],
) -> Result<Vanished, AssignError> {
    let mut vanished = Vanished::new();
    let mut rejections = 0;
    let mut writes = 0;
    let mut current = authentik.call(|client| client.get_outpost(outpost)).await?;
    loop {
        let live: Vec<(i64, bool)> = changes
            .iter()
            .copied()
            .filter(|(provider, _)| !vanished.contains(provider))
            .collect();
        if satisfied(&current.providers, &live) {
            authentik.remember_outpost(&current).await;
            return Ok(vanished);
        }
        if writes == MAX_ATTEMPTS {
            return Err(AssignError::ConcurrentWriter {
                outpost: outpost.to_owned(),
            });
        }
        let list: Vec<i64> = merged(&current.providers, &live)
            .into_iter()
            .filter(|provider| !vanished.contains(provider))
            .collect();
        match authentik
            .call(|client| client.set_outpost_providers(outpost, &list))
            .await
        {
            Ok(_) => {
                writes += 1;
                metrics::counter!(names::OUTPOST_WRITES).increment(1);
                metrics::histogram!(names::OUTPOST_BATCH_SIZE).record(changes.len() as f64);
            }
            Err(error) => {
                // Only pks we sent, and only newly named ones: anything else is not the
                // "deleted meanwhile" case, and repeating would not help.
                let named: Vanished = nonexistent_providers(&error)
                    .into_iter()
                    .filter(|provider| list.contains(provider))
                    .collect();
                if named.is_empty() || rejections == MAX_STALE_REJECTIONS {
                    return Err(error.into());
                }
                rejections += 1;
                tracing::info!(
                    outpost,
                    providers = ?named,
                    "outpost write named providers deleted meanwhile; writing again without them"
                );
                for provider in &named {
                    authentik.forget_provider_pk(*provider).await;
                }
                vanished.extend(named);
            }
        }
        // Read back: a concurrent writer may have replaced the list since our read, and a
        // rejected write needs the list without everything deleted meanwhile.
        current = authentik.call(|client| client.get_outpost(outpost)).await?;
    }
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

    /// Writes seen by the fake writer: (time since start, changes).
    type Written = Arc<std::sync::Mutex<Vec<(Duration, Vec<(i64, bool)>)>>>;

    /// The writer with a fake write that records what it writes and takes `took`.
    fn writer(window: Duration, took: Duration) -> (OutpostAssigner, Written) {
        let started = Instant::now();
        let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = writes.clone();
        let write = move |_outpost: String, changes: Vec<(i64, bool)>| {
            let log = log.clone();
            async move {
                log.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((started.elapsed(), changes));
                tokio::time::sleep(took).await;
                Ok(Vanished::new())
            }
        };
        let (queue, requests) = mpsc::unbounded_channel();
        tokio::spawn(run(requests, write, window, CancellationToken::new()));
        (OutpostAssigner { queue }, writes)
    }

    #[tokio::test(start_paused = true)]
    async fn an_assignment_after_a_quiet_spell_is_written_at_once() {
        let (assigner, writes) = writer(Duration::from_millis(500), Duration::from_millis(50));
        assigner.ensure("o", 1, true).await.ok();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assigner.ensure("o", 2, true).await.ok();
        let writes = writes.lock().map(|w| w.clone()).unwrap_or_default();
        assert_eq!(
            writes,
            vec![
                (Duration::ZERO, vec![(1, true)]),
                (Duration::from_millis(2050), vec![(2, true)]),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn assignments_that_keep_coming_share_writes() {
        let (assigner, writes) = writer(Duration::from_millis(500), Duration::from_millis(50));
        // One assignment every 20 ms for 2 s: the first is written alone and at once, the
        // rest in batches a window apart.
        let senders: Vec<_> = (0..100)
            .map(|provider| {
                let assigner = assigner.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(20) * provider).await;
                    assigner.ensure("o", i64::from(provider), true).await
                })
            })
            .collect();
        for sender in senders {
            assert!(matches!(sender.await, Ok(Ok(()))));
        }
        let writes = writes.lock().map(|w| w.clone()).unwrap_or_default();
        assert_eq!(writes[0], (Duration::ZERO, vec![(0, true)]));
        let written: usize = writes.iter().map(|(_, changes)| changes.len()).sum();
        assert_eq!(written, 100, "every assignment written once");
        assert!(
            writes.len() <= 6,
            "{} writes for 100 assignments: {writes:?}",
            writes.len()
        );
    }

    #[test]
    fn rejected_pks_are_read_from_the_providers_field() {
        let rejection = |body: &str| {
            serde_json::from_str::<BTreeMap<String, Vec<String>>>(body).map(|fields| {
                Error::Validation {
                    endpoint: "PATCH /outposts/instances/u/".to_owned(),
                    status: 400,
                    fields,
                }
            })
        };
        let named = rejection(r#"{"providers": ["Invalid pk \"374\" - object does not exist."]}"#)
            .map(|error| nonexistent_providers(&error));
        assert_eq!(named.ok(), Some(BTreeSet::from([374])));
        for other in [
            r#"{"providers": ["Outpost type proxy can't be used with OAuth2Provider providers."]}"#,
            r#"{"providers": ["This list may not be empty."]}"#,
            r#"{"name": ["Invalid pk \"5\" - object does not exist."]}"#,
            r#"{"providers": ["Invalid pk \"abc\" - object does not exist."]}"#,
        ] {
            let named = rejection(other).map(|error| nonexistent_providers(&error));
            assert_eq!(named.ok(), Some(BTreeSet::new()), "{other}");
        }
    }

    #[tokio::test]
    async fn only_the_assignment_of_a_vanished_provider_fails() {
        let write =
            |_outpost: String, _changes: Vec<(i64, bool)>| async { Ok(Vanished::from([2, 3])) };
        let (queue, requests) = mpsc::unbounded_channel();
        tokio::spawn(run(
            requests,
            write,
            Duration::ZERO,
            CancellationToken::new(),
        ));
        let assigner = OutpostAssigner { queue };
        let (kept, gone, removed) = tokio::join!(
            assigner.ensure("o", 1, true),
            assigner.ensure("o", 2, true),
            assigner.ensure("o", 3, false),
        );
        assert!(kept.is_ok(), "{kept:?}");
        assert!(
            matches!(gone, Err(AssignError::ProviderGone { provider: 2, .. })),
            "{gone:?}"
        );
        assert!(
            removed.is_ok(),
            "a removal of a deleted provider is done: {removed:?}"
        );
    }

    #[test]
    fn satisfied_needs_every_change() {
        assert!(satisfied(&[1, 2], &[(1, true), (3, false)]));
        assert!(!satisfied(&[1, 2], &[(3, true)]));
        assert!(!satisfied(&[1, 2], &[(2, false)]));
    }
}

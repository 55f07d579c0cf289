//! Exclusive tasks: work that must run on exactly one node of the cluster at a time (an alert
//! partition's evaluator, so a rule fires once, not once per node). Each task has a lease in
//! the cluster's lease bucket under its own key ([`crate::lease::task_key`]), with the same
//! timing as the ingest's venue leases ([`crate::failover`]):
//!
//! - every node that [`Exclusive::spawn`]s a task competes for its lease, trying every 250 ms;
//! - the holder starts the task and renews every `ttl / 3`; it stops the task (cancels its
//!   token and waits for it) when a renewal is refused (the lease expired and was taken) or
//!   when **half** a TTL has passed since its last successful renewal (NATS unreachable, the
//!   node paused): the lease itself lives a whole TTL after that renewal, so the task has
//!   stopped before a standby can take it over;
//! - a clean shutdown stops the task and releases the lease, so a standby starts at once; a
//!   node that dies lets the lease expire (at most `ttl`).
//!
//! A task that ends by itself while its lease is held is started again at the next renewal.

use crate::lease::{self, Lease};
use crate::{ClusterError, ClusterOptions};
use async_nats::jetstream::{self, kv};
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a standby tries to take a lease (at most; `ttl / 3` when shorter).
const STANDBY_RETRY: Duration = Duration::from_millis(250);

/// This node's exclusive tasks and the leases that gate them.
#[derive(Debug)]
pub struct Exclusive {
    store: kv::Store,
    node: String,
    ttl: Duration,
    /// Names of the tasks running here now.
    running: Mutex<BTreeSet<String>>,
}

/// A running task and the lease it runs under.
struct Held {
    lease: Lease,
    stop: CancellationToken,
    task: JoinHandle<()>,
    /// The task may run until then (half a TTL after the last renewal).
    until: Instant,
}

impl Exclusive {
    /// Exclusive tasks of node `options.node`, on the cluster's lease bucket (created if
    /// missing).
    pub async fn start(
        client: async_nats::Client,
        options: &ClusterOptions,
    ) -> Result<Arc<Self>, ClusterError> {
        let names = options.names()?;
        let js = jetstream::new(client);
        let store = lease::bucket(&js, &names, options.lease_ttl).await?;
        Ok(Arc::new(Self {
            store,
            node: options.node.clone(),
            ttl: options.lease_ttl,
            running: Mutex::new(BTreeSet::new()),
        }))
    }

    /// The tasks running on this node now, by name.
    pub fn running(&self) -> Vec<String> {
        self.running.lock().iter().cloned().collect()
    }

    /// Competes for task `name` until `shutdown`: while this node holds its lease, runs
    /// `make(stop)`, where `stop` is cancelled when the lease is lost or at shutdown (the
    /// future must return promptly then). The handle ends after shutdown, once the task has
    /// stopped and the lease is released.
    pub fn spawn<F, Fut>(
        self: &Arc<Self>,
        name: &str,
        make: F,
        shutdown: CancellationToken,
    ) -> JoinHandle<()>
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(self.clone().run(name.to_string(), make, shutdown))
    }

    async fn run<F, Fut>(self: Arc<Self>, name: String, mut make: F, shutdown: CancellationToken)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let period = self.ttl / 3;
        let allowance = self.ttl / 2;
        let key = lease::task_key(&name);
        let mut held: Option<Held> = None;
        loop {
            // The holder wakes to renew, and at the latest when its allowance runs out.
            let wait = match &held {
                Some(h) => period.min(h.until.saturating_duration_since(Instant::now())),
                None => period.min(STANDBY_RETRY),
            };
            tokio::select! {
                () = shutdown.cancelled() => {
                    // A clean stop hands the task over at once; a crash lets the lease expire.
                    if let Some(h) = held.take() {
                        let lease = self.stop(&name, h).await;
                        lease.release().await;
                    }
                    return;
                }
                () = tokio::time::sleep(wait) => {}
            }
            let Some(mut h) = held.take() else {
                match Lease::acquire_key(&self.store, key.clone(), &name, &self.node).await {
                    Ok(Some(lease)) => {
                        tracing::info!(task = %name, revision = lease.revision(), "task lease taken: this node runs it");
                        let stop = shutdown.child_token();
                        let task = tokio::spawn(make(stop.clone()));
                        self.running.lock().insert(name.clone());
                        held = Some(Held {
                            lease,
                            stop,
                            task,
                            until: Instant::now() + allowance,
                        });
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(task = %name, error = %error, "task lease acquire failed");
                    }
                }
                continue;
            };
            // Never renew past the allowance: a renewal NATS does not answer in time counts as
            // failed, and the task stops before the lease can pass to another node.
            let left = h.until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, h.lease.renew()).await {
                Ok(Ok(())) => {
                    h.until = Instant::now() + allowance;
                    if h.task.is_finished() {
                        tracing::warn!(task = %name, "task ended by itself; starting it again");
                        h.stop = shutdown.child_token();
                        h.task = tokio::spawn(make(h.stop.clone()));
                    }
                    held = Some(h);
                }
                Ok(Err(ClusterError::Fenced { .. })) => {
                    tracing::warn!(task = %name, "task lease taken by another node; stopping the task");
                    self.stop(&name, h).await;
                }
                outcome => {
                    let error = match outcome {
                        Ok(Err(error)) => error.to_string(),
                        _ => "no answer in time".to_string(),
                    };
                    if Instant::now() >= h.until {
                        tracing::warn!(task = %name, error = %error, "task lease not renewed in time; stopping the task");
                        let lease = self.stop(&name, h).await;
                        // Still ours if NATS comes back before it expires: let a standby have it.
                        lease.release().await;
                    } else {
                        tracing::warn!(task = %name, error = %error, "task lease renewal failed");
                        held = Some(h);
                    }
                }
            }
        }
    }

    /// Stops a held task and waits for it; returns its lease.
    async fn stop(&self, name: &str, held: Held) -> Lease {
        held.stop.cancel();
        if let Err(error) = held.task.await {
            tracing::warn!(task = %name, error = %error, "task failed");
        }
        self.running.lock().remove(name);
        held.lease
    }
}

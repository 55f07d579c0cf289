//! Ingest failover: a [`Gate`] that lets this node publish a venue only while it holds the
//! venue's lease ([`crate::lease`]), so of several ingest nodes running the same venues exactly
//! one forwards each venue, and a standby takes over when the owner dies.
//!
//! A venue is tracked from the first time the forwarder asks about it (so consolidated `all`
//! channels and chains get leases too). Its task tries to create the lease every `ttl / 3`;
//! once held, it renews every `ttl / 3`. The node may publish until **half** a TTL after its
//! last successful renewal: the lease itself lives a whole TTL after it, so a node that can no
//! longer renew (partitioned, paused) has stopped publishing before anyone else can take the
//! venue. The new owner's hub has its own epoch, and its forwarder's claim on each frames
//! subject makes JetStream refuse any frame the old owner still sends.

use crate::forwarder::Gate;
use crate::lease::{self, Lease};
use crate::{ClusterError, ClusterOptions};
use async_nats::jetstream::{self, kv};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Lease-backed publishing rights, per venue.
#[derive(Debug)]
pub struct LeaseGate {
    store: kv::Store,
    node: String,
    ttl: std::time::Duration,
    venues: Mutex<HashMap<String, Venue>>,
    shutdown: CancellationToken,
}

#[derive(Debug, Default)]
struct Venue {
    /// Publishing is allowed until then (`None`: not the owner).
    until: Option<Instant>,
    /// JetStream refused a publish: give the lease up and stand by.
    fenced: bool,
}

impl LeaseGate {
    /// The gate of node `options.node`, on the cluster's lease bucket (created if missing).
    pub async fn start(
        client: async_nats::Client,
        options: &ClusterOptions,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, ClusterError> {
        let names = options.names()?;
        let js = jetstream::new(client);
        let store = lease::bucket(&js, &names, options.lease_ttl).await?;
        Ok(Arc::new(Self {
            store,
            node: options.node.clone(),
            ttl: options.lease_ttl,
            venues: Mutex::new(HashMap::new()),
            shutdown,
        }))
    }

    /// The venues this node owns right now.
    pub fn owned(&self) -> Vec<String> {
        let now = Instant::now();
        let mut owned: Vec<String> = (self.venues.lock().iter())
            .filter(|(_, v)| v.until.is_some_and(|u| now < u))
            .map(|(name, _)| name.clone())
            .collect();
        owned.sort();
        owned
    }

    fn set(&self, venue: &str, until: Option<Instant>) {
        if let Some(v) = self.venues.lock().get_mut(venue) {
            v.until = until;
        }
    }

    fn take_fenced(&self, venue: &str) -> bool {
        self.venues
            .lock()
            .get_mut(venue)
            .is_some_and(|v| std::mem::take(&mut v.fenced))
    }

    /// Holds or waits for one venue's lease until shutdown.
    async fn run(self: Arc<Self>, venue: String) {
        let period = self.ttl / 3;
        let allowance = self.ttl / 2;
        let mut held: Option<Lease> = None;
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => {
                    self.set(&venue, None);
                    // A clean stop hands the venue over at once; a crash lets it expire.
                    if let Some(lease) = held.take() {
                        lease.release().await;
                    }
                    return;
                }
                () = tokio::time::sleep(if held.is_some() { period } else { period.min(std::time::Duration::from_millis(250)) }) => {}
            }
            if self.take_fenced(&venue)
                && let Some(lease) = held.take()
            {
                self.set(&venue, None);
                tracing::warn!(venue = %venue, "refused as a stale writer; giving the lease up");
                lease.release().await;
                continue;
            }
            match held.as_mut() {
                Some(lease) => match lease.renew().await {
                    Ok(()) => self.set(&venue, Some(Instant::now() + allowance)),
                    Err(error) => {
                        if matches!(error, ClusterError::Fenced { .. }) {
                            self.set(&venue, None);
                            held = None;
                        }
                        // Otherwise keep publishing until the allowance runs out.
                        tracing::warn!(venue = %venue, code = error.code(), error = %error, "lease renewal failed");
                    }
                },
                None => match Lease::acquire(&self.store, &venue, &self.node).await {
                    Ok(Some(lease)) => {
                        tracing::info!(venue = %venue, revision = lease.revision(), "venue lease taken: this node forwards it");
                        self.set(&venue, Some(Instant::now() + allowance));
                        held = Some(lease);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::debug!(venue = %venue, error = %error, "lease acquire failed");
                    }
                },
            }
        }
    }
}

impl Gate for Arc<LeaseGate> {
    fn allowed(&self, venue: &str) -> bool {
        let mut venues = self.venues.lock();
        match venues.get(venue) {
            Some(v) => v.until.is_some_and(|u| Instant::now() < u),
            None => {
                venues.insert(venue.to_string(), Venue::default());
                tokio::spawn(self.clone().run(venue.to_string()));
                false
            }
        }
    }

    fn fenced(&self, venue: &str) {
        if let Some(v) = self.venues.lock().get_mut(venue) {
            v.until = None;
            v.fenced = true;
        }
    }
}

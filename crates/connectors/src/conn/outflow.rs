//! Events a shard holds for ingest while ingest is busy: bounded, never blocking the reader.

use crate::{ConnectorError, FeedBatch};
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Batches a shard keeps for ingest while ingest is busy. Beyond this the shard drops its
/// backlog and rebuilds its books rather than stop reading the socket or grow memory.
pub(crate) const MAX_PENDING_BATCHES: usize = 256;

/// Events waiting for room in the ingest channel.
#[derive(Debug, Default)]
pub(crate) struct Outflow {
    pub(crate) pending: VecDeque<FeedBatch>,
}

impl Outflow {
    /// Queues a batch and sends what fits without waiting. Returns false when the backlog
    /// overflowed and was dropped: the caller must rebuild its books.
    pub(crate) fn push(
        &mut self,
        events: &mpsc::Sender<FeedBatch>,
        batch: FeedBatch,
    ) -> Result<bool, ConnectorError> {
        if !batch.is_empty() {
            self.pending.push_back(batch);
        }
        while let Some(front) = self.pending.pop_front() {
            match events.try_send(front) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(batch)) => {
                    self.pending.push_front(batch);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    return Err(ConnectorError::SinkClosed);
                }
            }
        }
        if self.pending.len() > MAX_PENDING_BATCHES {
            self.pending.clear();
            return Ok(false);
        }
        Ok(true)
    }
}

//! Broadcast receivers for a session's `select!` loop.
//!
//! A `tokio::sync::broadcast::Receiver::recv()` future registers a waiter on the channel's tail
//! mutex when it is first polled and unregisters it when it is dropped. Created afresh in every
//! `select!` iteration, as `BroadcastStream` and `rx.recv()` in a loop do, that is two lock
//! round trips per wake-up and a boxed future per frame, for every client. [`OwnedRecv`] keeps
//! its pending `recv` across iterations (the waiter is registered once and stays until a frame
//! comes), and once a frame has come it takes the next ones with `try_recv`, which needs no
//! waiter at all. [`Feeds`] is the set of a session's channel receivers built on it.

use std::future::poll_fn;
use std::task::{Context, Poll};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::ReusableBoxFuture;

type Pending<T> = ReusableBoxFuture<'static, (Result<T, RecvError>, broadcast::Receiver<T>)>;

async fn recv_owned<T: Clone>(
    mut rx: broadcast::Receiver<T>,
) -> (Result<T, RecvError>, broadcast::Receiver<T>) {
    let result = rx.recv().await;
    (result, rx)
}

/// A broadcast receiver with a pending `recv` that survives being polled from a `select!`.
pub(super) struct OwnedRecv<T> {
    /// The receiver while no `recv` is pending (`None` while `pending` owns it).
    idle: Option<broadcast::Receiver<T>>,
    /// The pending `recv` (owns the receiver) when `idle` is `None`; otherwise a finished
    /// future kept for its allocation.
    pending: Pending<T>,
}

impl<T> std::fmt::Debug for OwnedRecv<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedRecv")
            .field("pending", &self.idle.is_none())
            .finish()
    }
}

impl<T: Clone + Send + 'static> OwnedRecv<T> {
    pub(super) fn new(rx: broadcast::Receiver<T>) -> Self {
        // The future is created armed: its first poll registers the waiter.
        Self {
            idle: None,
            pending: ReusableBoxFuture::new(recv_owned(rx)),
        }
    }

    /// The next value if one is waiting, without registering a waiter. `Empty` while a `recv`
    /// is pending (a value that arrives then wakes the task, and [`poll_recv`] takes it).
    ///
    /// [`poll_recv`]: Self::poll_recv
    pub(super) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match &mut self.idle {
            Some(rx) => rx.try_recv(),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The next value; registers a waiter (once) when none is waiting.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        if let Some(rx) = &mut self.idle {
            match rx.try_recv() {
                Ok(value) => return Poll::Ready(Ok(value)),
                Err(TryRecvError::Lagged(missed)) => {
                    return Poll::Ready(Err(RecvError::Lagged(missed)));
                }
                Err(TryRecvError::Closed) => return Poll::Ready(Err(RecvError::Closed)),
                Err(TryRecvError::Empty) => {}
            }
            let Some(rx) = self.idle.take() else {
                unreachable!("checked above");
            };
            self.pending.set(recv_owned(rx));
        }
        match self.pending.poll(cx) {
            Poll::Ready((result, rx)) => {
                self.idle = Some(rx);
                Poll::Ready(result)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Cancel-safe: a value is never lost when the returned future is dropped.
    pub(super) async fn recv(&mut self) -> Result<T, RecvError> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

/// One item from a session's channels: a frame, or how many frames the session missed.
pub(super) type FeedItem<F> = Result<F, u64>;

/// A session's channel receivers, each under its subscription slot.
pub(super) struct Feeds<F> {
    entries: Vec<(u32, OwnedRecv<F>)>,
    /// Where the next poll starts, so that a busy channel cannot starve the others.
    start: usize,
}

impl<F: Clone + Send + 'static> Default for Feeds<F> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            start: 0,
        }
    }
}

impl<F: Clone + Send + 'static> Feeds<F> {
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds the receiver under `slot`, replacing the one there.
    pub(super) fn insert(&mut self, slot: u32, rx: broadcast::Receiver<F>) {
        let recv = OwnedRecv::new(rx);
        match self.entries.iter_mut().find(|(s, _)| *s == slot) {
            Some(entry) => entry.1 = recv,
            None => self.entries.push((slot, recv)),
        }
    }

    pub(super) fn remove(&mut self, slot: u32) {
        self.entries.retain(|(s, _)| *s != slot);
    }

    /// A frame already waiting on any channel, without registering waiters, taken round robin
    /// from the channels; `None` when there is none. A closed channel is dropped from the set.
    pub(super) fn try_next(&mut self) -> Option<(u32, FeedItem<F>)> {
        let n = self.entries.len();
        for i in 0..n {
            let index = (self.start + i) % n;
            let (slot, recv) = &mut self.entries[index];
            let item = match recv.try_recv() {
                Ok(frame) => Ok(frame),
                Err(TryRecvError::Lagged(missed)) => Err(missed),
                Err(TryRecvError::Empty) => continue,
                Err(TryRecvError::Closed) => {
                    self.entries.remove(index);
                    self.start = 0;
                    return self.try_next();
                }
            };
            // Round robin within a batch too: the next frame comes from the next channel.
            let slot = *slot;
            self.start = (index + 1) % n;
            return Some((slot, item));
        }
        None
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<(u32, FeedItem<F>)> {
        let mut i = 0;
        while i < self.entries.len() {
            let n = self.entries.len();
            let index = (self.start + i) % n;
            let (slot, recv) = &mut self.entries[index];
            match recv.poll_recv(cx) {
                Poll::Ready(Ok(frame)) => {
                    let slot = *slot;
                    self.start = (index + 1) % n;
                    return Poll::Ready((slot, Ok(frame)));
                }
                Poll::Ready(Err(RecvError::Lagged(missed))) => {
                    let slot = *slot;
                    self.start = (index + 1) % n;
                    return Poll::Ready((slot, Err(missed)));
                }
                // The channel is gone (dropped by the hub): nothing more will come on it.
                Poll::Ready(Err(RecvError::Closed)) => {
                    self.entries.remove(index);
                    if self.start > index {
                        self.start -= 1;
                    }
                    if self.entries.is_empty() {
                        self.start = 0;
                    }
                }
                Poll::Pending => i += 1,
            }
        }
        Poll::Pending
    }

    /// The next frame on any channel (pends while there is none, also when the set is empty).
    /// Cancel-safe.
    pub(super) async fn next(&mut self) -> (u32, FeedItem<F>) {
        poll_fn(|cx| self.poll_next(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[tokio::test]
    async fn values_in_order_across_a_pending_recv() {
        let (tx, rx) = broadcast::channel::<u32>(16);
        let mut recv = OwnedRecv::new(rx);
        // Nothing yet: the recv stays pending, and dropping the polling future loses nothing.
        assert!(recv.recv().now_or_never().is_none());
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!(recv.recv().await.unwrap(), 1);
        assert_eq!(recv.try_recv().unwrap(), 2);
        assert!(matches!(recv.try_recv(), Err(TryRecvError::Empty)));
        tx.send(3).unwrap();
        assert_eq!(recv.recv().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_pending_recv_wakes_the_task() {
        let (tx, rx) = broadcast::channel::<u32>(16);
        let mut recv = OwnedRecv::new(rx);
        let waiter = tokio::spawn(async move { recv.recv().await });
        tokio::task::yield_now().await;
        tx.send(7).unwrap();
        assert_eq!(waiter.await.unwrap().unwrap(), 7);
    }

    #[tokio::test]
    async fn lag_and_close_are_reported() {
        let (tx, rx) = broadcast::channel::<u32>(2);
        let mut recv = OwnedRecv::new(rx);
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert!(matches!(recv.recv().await, Err(RecvError::Lagged(3))));
        assert_eq!(recv.try_recv().unwrap(), 3);
        assert_eq!(recv.try_recv().unwrap(), 4);
        drop(tx);
        assert!(matches!(recv.recv().await, Err(RecvError::Closed)));
    }

    #[tokio::test]
    async fn feeds_take_every_channel_and_drop_closed_ones() {
        let (tx_a, rx_a) = broadcast::channel::<u32>(16);
        let (tx_b, rx_b) = broadcast::channel::<u32>(16);
        let mut feeds = Feeds::default();
        feeds.insert(1, rx_a);
        feeds.insert(2, rx_b);
        assert!(feeds.next().now_or_never().is_none());
        tx_a.send(10).unwrap();
        tx_a.send(11).unwrap();
        tx_b.send(20).unwrap();
        let mut got = vec![feeds.next().await];
        while let Some(item) = feeds.try_next() {
            got.push(item);
        }
        // The pending recv on the other channel is not drained by `try_next`; `next` takes it.
        while let Some(item) = feeds.next().now_or_never() {
            got.push(item);
            while let Some(item) = feeds.try_next() {
                got.push(item);
            }
        }
        got.sort_unstable_by_key(|(slot, item)| (*slot, *item.as_ref().unwrap()));
        assert_eq!(got, vec![(1, Ok(10)), (1, Ok(11)), (2, Ok(20))]);
        // Per channel the order is kept.
        tx_a.send(12).unwrap();
        tx_a.send(13).unwrap();
        assert_eq!(feeds.next().await, (1, Ok(12)));
        assert_eq!(feeds.try_next(), Some((1, Ok(13))));
        drop(tx_b);
        assert!(feeds.next().now_or_never().is_none());
        assert_eq!(feeds.entries.len(), 1, "the closed channel is dropped");
        feeds.remove(1);
        assert!(feeds.is_empty());
    }

    #[tokio::test]
    async fn a_batch_alternates_between_busy_channels() {
        let (tx_a, rx_a) = broadcast::channel::<u32>(16);
        let (tx_b, rx_b) = broadcast::channel::<u32>(16);
        let mut feeds = Feeds::default();
        feeds.insert(1, rx_a);
        feeds.insert(2, rx_b);
        for i in 0..3 {
            tx_a.send(i).unwrap();
            tx_b.send(10 + i).unwrap();
        }
        // Both receivers become idle once each has given its first frame.
        let mut slots = vec![feeds.next().await.0, feeds.next().await.0];
        while let Some((slot, _)) = feeds.try_next() {
            slots.push(slot);
        }
        assert_eq!(slots, vec![1, 2, 1, 2, 1, 2]);
    }

    #[tokio::test]
    async fn replacing_a_slot_keeps_one_receiver() {
        let (tx, rx) = broadcast::channel::<u32>(16);
        let mut feeds = Feeds::default();
        feeds.insert(5, rx);
        feeds.insert(5, tx.subscribe());
        assert_eq!(feeds.entries.len(), 1);
        assert_eq!(tx.receiver_count(), 1);
        tx.send(1).unwrap();
        assert_eq!(feeds.next().await, (5, Ok(1)));
    }
}

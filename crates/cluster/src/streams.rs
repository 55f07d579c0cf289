//! The two JetStream streams of a cluster and their retention.
//!
//! - `<P>_FRAMES` (`<p>.f.>`): every frame, bounded per subject (= per channel) by
//!   `history_size` messages and by age `max(history_ttl, 2 × snapshot_interval)`, so it holds
//!   at least the frames after each channel's last snapshot. Edges rebuild from it.
//! - `<P>_SNAP` (`<p>.s.>`): one record per channel (max 1 message per subject): the channel's
//!   mode and its state at some seq S (book snapshot, latest value, or just the position).

use crate::{ClusterError, ClusterOptions, Names};
use async_nats::jetstream::{self, stream};

pub(crate) struct Streams {
    pub frames: stream::Stream,
    pub snapshots: stream::Stream,
}

/// Creates (or updates) both streams.
pub(crate) async fn ensure(
    js: &jetstream::Context,
    names: &Names,
    options: &ClusterOptions,
) -> Result<Streams, ClusterError> {
    let age = options.history_ttl.max(options.snapshot_interval * 2);
    let frames = stream::Config {
        name: names.frames_stream(),
        subjects: vec![names.all_frames()],
        max_messages_per_subject: options.history_size as i64,
        max_age: age,
        allow_direct: true,
        ..Default::default()
    };
    let snapshots = stream::Config {
        name: names.snapshots_stream(),
        subjects: vec![names.all_snapshots()],
        max_messages_per_subject: 1,
        allow_direct: true,
        ..Default::default()
    };
    for config in [frames, snapshots] {
        js.create_or_update_stream(config)
            .await
            .map_err(|e| ClusterError::JetStream {
                what: "stream create",
                source: e.into(),
            })?;
    }
    let get = |name: String| async move {
        js.get_stream(name)
            .await
            .map_err(|e| ClusterError::JetStream {
                what: "stream lookup",
                source: e.into(),
            })
    };
    Ok(Streams {
        frames: get(names.frames_stream()).await?,
        snapshots: get(names.snapshots_stream()).await?,
    })
}

//! Channels, fan-out, per-channel sequence numbers and epochs, history, slow-consumer policy

//! Timing-sensitive tests, in their own test binary so that no other test of this crate runs
//! beside them (cargo runs test binaries one after another): a fast client must keep up while
//! another stalls, which a CPU-starved debug build on 2 shared cores cannot always show.

#[path = "../it/support.rs"]
#[allow(dead_code)]
mod support;

mod slow_consumer;

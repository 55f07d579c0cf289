//! Helpers shared by the test binaries (each uses part of them).
#![allow(dead_code)]

pub mod cut;
pub mod pg;

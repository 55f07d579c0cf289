//! One module per venue.

pub mod sim;

//! Every integration test of this crate, in one binary: one link instead of one per file
//! (each links the whole dependency tree), which keeps a clean build small and fast.

mod admission;
mod common;
mod deploy;
mod drain_by_hand;
mod faults;
mod health;
mod operator;
mod payments;

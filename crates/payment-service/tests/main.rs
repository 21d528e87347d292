//! Every integration test of this crate, in one binary: one link instead of one per file
//! (each links the whole dependency tree), which keeps a clean build small and fast.

mod abort;
mod admission;
mod backup;
mod canary_analysis;
mod common;
mod deploy;
mod faults;
mod operator;
mod safety;
mod versions;
